//! JSON text frames from external clients (auth message and envelopes).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cluster_transport::fuzzing::client_text(data));
