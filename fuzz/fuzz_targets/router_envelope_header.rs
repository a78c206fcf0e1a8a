//! The router's header of each envelope received from a node link.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cluster_router::fuzzing::envelope_header(data));
