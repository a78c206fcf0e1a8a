//! The `system` actor's JSON command parse and its error reply.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cluster_router::fuzzing::system_command_json(data));
