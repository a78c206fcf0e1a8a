//! Binary node frames (batches and control frames) as a link decodes them.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cluster_transport::fuzzing::node_frame(data));
