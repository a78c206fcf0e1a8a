//! A client's frame to `coordinator@<node>`: command or job, batches read in one pass.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| job_queue::fuzzing::client_command(data));
