//! The router's versioned gossip / join protocol and row validation.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| jobmesh_fuzz::fuzz_router_system_wire(data));
