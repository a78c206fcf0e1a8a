//! job-queue: `Job` and `JobResult` in their JSON (client) and bincode
//! (node-to-node) forms.

use std::time::Duration;

use job_queue::{FailureCause, Job, JobFailure, JobId, JobResult};

/// Decodes `data` in all four forms; whatever is accepted must re-encode in
/// the same form to something that decodes to the same value.
pub fn fuzz_job_queue_wire(data: &[u8]) {
    if let Ok(job) = Job::from_bincode(data) {
        let back = Job::from_bincode(&job.to_bincode()).expect("own bincode decodes");
        assert_eq!(back, job);
        let _ = job.validate();
        let _ = job.heap_bytes();
    }
    if let Ok(res) = JobResult::from_bincode(data) {
        let back = JobResult::from_bincode(&res.to_bincode()).expect("own bincode decodes");
        assert_eq!(back, res);
        let _ = res.outcome();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(job) = Job::from_json(text) {
        let back = Job::from_json(&job.to_json()).expect("own JSON decodes");
        assert_eq!(back, job);
        let _ = job.validate();
    }
    if let Ok(res) = JobResult::from_json(text) {
        let back = JobResult::from_json(&res.to_json()).expect("own JSON decodes");
        // `elapsed` travels as fractional milliseconds (f64): allow rounding.
        let (a, b) = (res.elapsed.as_micros(), back.elapsed.as_micros());
        assert!(a.abs_diff(b) <= 1 + (a >> 40), "elapsed drifted: {a} -> {b}");
        assert_eq!(
            JobResult {
                elapsed: res.elapsed,
                ..back
            },
            res
        );
    }
}

fn sample_jobs() -> Vec<Job> {
    vec![
        Job::new("echo", "hello"),
        Job::new("resize", r#"{"w":64,"h":32}"#)
            .with_id(JobId::new("job-42").expect("valid id"))
            .with_tag("gpu")
            .with_tag("kind:resize")
            .with_timeout(Duration::from_millis(1500))
            .with_max_attempts(5),
        Job::new("sha256", ""),
    ]
}

fn sample_results() -> Vec<JobResult> {
    let id = |s: &str| JobId::new(s).expect("valid id");
    vec![
        JobResult::success(id("job-1"), "ok", "node-b", 1, Duration::from_micros(1234)),
        JobResult::failure(
            id("job-2"),
            JobFailure::new(FailureCause::Handler, "boom"),
            "node-c",
            3,
            Duration::from_millis(20),
        ),
        JobResult::failure(
            id("job-3"),
            JobFailure::new(FailureCause::NoEligibleNode, "no node has tag gpu"),
            "",
            0,
            Duration::ZERO,
        ),
    ]
}

/// Seeds: sample jobs and results in both forms, plus a minimal JSON job.
pub fn seeds_job_queue_wire() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for job in sample_jobs() {
        out.push(job.to_json().into_bytes());
        out.push(job.to_bincode());
    }
    for res in sample_results() {
        out.push(res.to_json().into_bytes());
        out.push(res.to_bincode());
    }
    out.push(br#"{"kind":"echo","data":{"x":[1,2,3]}}"#.to_vec());
    out
}
