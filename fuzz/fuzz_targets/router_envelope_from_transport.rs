//! The router's conversion of received transport envelopes (`convert::from_transport`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cluster_router::fuzzing::envelope_from_transport(data));
