//! The pre-auth path: the first text frame of an unauthenticated client
//! (the auth message), as the listener judges it.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cluster_transport::fuzzing::client_preauth(data));
