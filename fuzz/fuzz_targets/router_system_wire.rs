//! The router's versioned gossip / join protocol and row validation.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cluster_router::fuzzing::system_wire(data));
