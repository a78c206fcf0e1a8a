//! `Job` and `JobResult` in their JSON and bincode forms.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| jobmesh_fuzz::fuzz_job_queue_wire(data));
