//! Binary node frames (batches and control frames) as a link decodes them.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| jobmesh_fuzz::fuzz_transport_node_frame(data));
