//! `ActorAddr` parsing (`FromStr`, `parse`, `parse_reusing`, serde).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cluster_router::fuzzing::addr(data));
