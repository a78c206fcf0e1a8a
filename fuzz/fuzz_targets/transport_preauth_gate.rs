//! The pre-auth gate: raw bytes of an unauthenticated peer (upgrade head,
//! then WebSocket frames), cut at the boundaries the WebSocket layer may see.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cluster_transport::fuzzing::preauth_gate(data));
