//! Jobs, results, worker-protocol payloads and batches in JSON and bincode.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| job_queue::fuzzing::job_wire(data));
