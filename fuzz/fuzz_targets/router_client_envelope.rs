//! The client edge: a JSON envelope from an external client, the envelope
//! the router builds from it, and the answers it sends back.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cluster_router::fuzzing::client_envelope(data));
