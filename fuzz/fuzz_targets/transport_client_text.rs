//! JSON text frames from external clients (auth message and envelopes).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| jobmesh_fuzz::fuzz_transport_client_text(data));
