//! `ActorAddr` parsing (`FromStr`, `parse`, serde).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| jobmesh_fuzz::fuzz_router_addr(data));
