//! The handshake state machine (both roles) fed arbitrary frame sequences.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cluster_transport::fuzzing::handshake(data));
