//! `exec`: runs an allow-listed program on the worker.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::KindError;

/// Which programs `exec` may run on this node, and the limits it runs them
/// under. The default policy allows nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecPolicy {
    allowed: BTreeSet<String>,
    max_output_bytes: usize,
    default_timeout: Duration,
    max_timeout: Duration,
}

impl Default for ExecPolicy {
    fn default() -> Self {
        ExecPolicy::deny_all()
    }
}

impl ExecPolicy {
    /// A policy that refuses every program (the node's default).
    pub(crate) fn deny_all() -> Self {
        ExecPolicy {
            allowed: BTreeSet::new(),
            max_output_bytes: 1024 * 1024,
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(600),
        }
    }

    /// A policy that runs exactly these programs. The match is exact on the
    /// string the job names: allowing `echo` does not allow `/bin/echo`.
    pub(crate) fn allow<I, S>(programs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExecPolicy {
            allowed: programs.into_iter().map(Into::into).collect(),
            ..ExecPolicy::deny_all()
        }
    }

    /// Caps stdout and stderr at `bytes` each (default 1 MiB); the rest is
    /// read and discarded, and the result says it was truncated.
    #[cfg(test)]
    pub(crate) fn with_max_output(mut self, bytes: usize) -> Self {
        self.max_output_bytes = bytes;
        self
    }

    /// The time limit when the job gives no `timeout_ms` (default 30 s).
    #[cfg(test)]
    pub(crate) fn with_default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// The largest `timeout_ms` a job may ask for (default 10 minutes).
    #[cfg(test)]
    pub(crate) fn with_max_timeout(mut self, timeout: Duration) -> Self {
        self.max_timeout = timeout;
        self
    }

    /// Whether `program` is on the allow-list.
    pub(crate) fn is_allowed(&self, program: &str) -> bool {
        self.allowed.contains(program)
    }

    /// The allowed programs, sorted.
    pub(crate) fn allowed(&self) -> impl Iterator<Item = &str> {
        self.allowed.iter().map(String::as_str)
    }

    fn allowed_list(&self) -> String {
        if self.allowed.is_empty() {
            "none".to_owned()
        } else {
            self.allowed().collect::<Vec<_>>().join(",")
        }
    }
}

/// The program an `exec` job names, read from its data without checking
/// the rest (the coordinator's selector for exact eligibility: the job goes
/// only to a node tagged `accept:exec:<program>`). `None` when the data is
/// not an exec request; the worker then answers with its decoding error.
pub(crate) fn exec_program(data: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct ProgramOnly {
        program: String,
    }
    serde_json::from_str::<ProgramOnly>(data)
        .ok()
        .map(|p| p.program)
}

/// The data of an `exec` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecRequest {
    /// The program, exactly as listed in `--allow-exec`.
    pub program: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Text written to its standard input (none: stdin is empty).
    #[serde(default)]
    pub stdin: Option<String>,
    /// Time limit in milliseconds (default: the policy's default).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The result of an `exec` job, returned as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExecOutput {
    /// The exit code; `null` when the program was ended by a signal.
    pub status: Option<i32>,
    /// Standard output (lossy UTF-8), at most the policy's cap.
    pub stdout: String,
    /// Standard error (lossy UTF-8), at most the policy's cap.
    pub stderr: String,
    /// Whether stdout was cut at the cap.
    pub stdout_truncated: bool,
    /// Whether stderr was cut at the cap.
    pub stderr_truncated: bool,
}

/// `exec`: runs `{"program", "args", "stdin", "timeout_ms"}` if the policy
/// allows the program, and returns [`ExecOutput`] as JSON. A non-zero exit
/// status is a successful job whose output says so.
///
/// # Errors
///
/// Permanent: [`KindError::InvalidJson`], [`KindError::ExecNotAllowed`],
/// [`KindError::OutOfRange`] (timeout above the policy's maximum),
/// [`KindError::Spawn`] for a missing program. Retryable:
/// [`KindError::ExecTimeout`] (the program is killed) and [`KindError::Io`].
///
/// # Cancel safety
///
/// Dropping the future kills the program.
pub(crate) async fn exec(
    data: &str,
    policy: &ExecPolicy,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<String, KindError> {
    let request: ExecRequest =
        serde_json::from_str(data).map_err(|source| KindError::InvalidJson {
            kind: "exec",
            source,
        })?;
    let output = run_program(&request, policy, cancel).await?;
    Ok(serde_json::to_string(&output).expect("ExecOutput always serialises"))
}

fn time_limit(request: &ExecRequest, policy: &ExecPolicy) -> Result<Duration, KindError> {
    match request.timeout_ms {
        None => Ok(policy.default_timeout),
        Some(ms) if ms >= 1 && Duration::from_millis(ms) <= policy.max_timeout => {
            Ok(Duration::from_millis(ms))
        }
        Some(ms) => Err(KindError::OutOfRange {
            what: "exec timeout_ms",
            value: ms,
            min: 1,
            max: u64::try_from(policy.max_timeout.as_millis()).unwrap_or(u64::MAX),
        }),
    }
}

async fn run_program(
    request: &ExecRequest,
    policy: &ExecPolicy,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<ExecOutput, KindError> {
    let program = &request.program;
    if !policy.is_allowed(program) {
        return Err(KindError::ExecNotAllowed {
            program: program.clone(),
            allowed: policy.allowed_list(),
        });
    }
    let limit = time_limit(request, policy)?;
    let mut child = Command::new(program)
        .args(&request.args)
        .stdin(if request.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| KindError::Spawn {
            program: program.clone(),
            source,
        })?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let cap = policy.max_output_bytes;
    let io_error = |source| KindError::Io {
        program: program.clone(),
        source,
    };
    let run = tokio::time::timeout(limit, async {
        let input = request.stdin.as_deref().unwrap_or("");
        tokio::join!(
            feed_stdin(stdin, input),
            read_capped(stdout, cap),
            read_capped(stderr, cap),
            child.wait()
        )
    });
    let finished = tokio::select! {
        finished = run => Some(finished),
        () = cancel.cancelled() => None,
    };
    let Some(finished) = finished else {
        // SIGKILL and reap: the program is gone when this returns.
        let _ = child.kill().await;
        return Err(KindError::Cancelled { kind: "exec" });
    };
    let Ok((fed, out, err, status)) = finished else {
        // kill_on_drop also covers this, but reap it now so no zombie lingers.
        let _ = child.kill().await;
        return Err(KindError::ExecTimeout {
            program: program.clone(),
            timeout: limit,
        });
    };
    fed.map_err(io_error)?;
    let (stdout, stdout_truncated) = out.map_err(io_error)?;
    let (stderr, stderr_truncated) = err.map_err(io_error)?;
    Ok(ExecOutput {
        status: status.map_err(io_error)?.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        stdout_truncated,
        stderr_truncated,
    })
}

/// Writes `input` and closes stdin. A program that exits without reading
/// it is not an error.
async fn feed_stdin(
    stdin: Option<tokio::process::ChildStdin>,
    input: &str,
) -> Result<(), std::io::Error> {
    let Some(mut stdin) = stdin else {
        return Ok(());
    };
    match stdin.write_all(input.as_bytes()).await {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Reads to the end, keeping at most `cap` bytes; returns whether more was
/// discarded.
async fn read_capped<R: AsyncRead + Unpin>(
    reader: Option<R>,
    cap: usize,
) -> Result<(Vec<u8>, bool), std::io::Error> {
    let Some(mut reader) = reader else {
        return Ok((Vec::new(), false));
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut chunk = [0u8; 8192];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok((kept, truncated));
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
        truncated |= n > room;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{timeout, Instant};

    const LIMIT: Duration = Duration::from_secs(10);

    async fn run(data: &str, policy: &ExecPolicy) -> Result<ExecOutput, KindError> {
        let text = timeout(LIMIT, exec(data, policy, &Default::default()))
            .await
            .expect("exec hung")?;
        Ok(serde_json::from_str(&text).unwrap())
    }

    fn shell_tools() -> ExecPolicy {
        ExecPolicy::allow([
            "echo",
            "cat",
            "sh",
            "sleep",
            "head",
            "no-such-program-jobmesh",
        ])
    }

    #[tokio::test]
    async fn allowed_program_runs() {
        let out = run(
            r#"{"program":"echo","args":["hello","world"]}"#,
            &shell_tools(),
        )
        .await
        .unwrap();
        assert_eq!(out.status, Some(0));
        assert_eq!(out.stdout, "hello world\n");
        assert_eq!(out.stderr, "");
        assert!(!out.stdout_truncated);
    }

    #[tokio::test]
    async fn stdin_stderr_and_exit_status() {
        let out = run(r#"{"program":"cat","stdin":"piped text"}"#, &shell_tools())
            .await
            .unwrap();
        assert_eq!(out.stdout, "piped text");
        let data = r#"{"program":"sh","args":["-c","echo oops >&2; exit 3"]}"#;
        let out = run(data, &shell_tools()).await.unwrap();
        assert_eq!(out.status, Some(3));
        assert_eq!(out.stderr, "oops\n");
    }

    #[tokio::test]
    async fn refused_programs_are_permanent_errors() {
        let policy = ExecPolicy::allow(["echo"]);
        for program in ["cat", "/bin/echo", "echo ", "ECHO"] {
            let data = serde_json::json!({ "program": program }).to_string();
            let err = run(&data, &policy).await.unwrap_err();
            assert!(matches!(err, KindError::ExecNotAllowed { .. }), "{program}");
            assert!(!err.is_retryable());
            assert!(err.to_string().contains("--allow-exec"), "{err}");
            assert!(err.to_string().contains("allowed: echo"), "{err}");
        }
        let err = run(r#"{"program":"echo"}"#, &ExecPolicy::deny_all())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("allowed: none"), "{err}");
    }

    #[tokio::test]
    async fn output_is_capped() {
        let policy = shell_tools().with_max_output(1000);
        let data = r#"{"program":"head","args":["-c","200000","/dev/zero"]}"#;
        let out = run(data, &policy).await.unwrap();
        assert_eq!(out.stdout.len(), 1000);
        assert!(out.stdout_truncated);
        assert_eq!(
            out.status,
            Some(0),
            "the program must not block on a full pipe"
        );
        let data = r#"{"program":"sh","args":["-c","head -c 5000 /dev/zero >&2"]}"#;
        let out = run(data, &policy).await.unwrap();
        assert!(out.stderr_truncated && !out.stdout_truncated);
    }

    #[tokio::test]
    async fn a_cancelled_program_is_killed_at_once() {
        let start = Instant::now();
        let cancel = tokio_util::sync::CancellationToken::new();
        let data = r#"{"program":"sleep","args":["60"],"timeout_ms":120000}"#;
        let policy = shell_tools().with_max_timeout(Duration::from_secs(300));
        let running = exec(data, &policy, &cancel);
        cancel.cancel();
        let err = timeout(LIMIT, running).await.unwrap().unwrap_err();
        assert!(matches!(err, KindError::Cancelled { .. }), "{err}");
        assert!(!err.is_retryable());
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn timeout_kills_the_program() {
        let start = Instant::now();
        let err = run(
            r#"{"program":"sleep","args":["20"],"timeout_ms":100}"#,
            &shell_tools(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, KindError::ExecTimeout { .. }), "{err}");
        assert!(err.is_retryable());
        assert!(start.elapsed() < Duration::from_secs(5));
        let policy = shell_tools().with_default_timeout(Duration::from_millis(100));
        let err = run(r#"{"program":"sleep","args":["20"]}"#, &policy)
            .await
            .unwrap_err();
        assert!(matches!(err, KindError::ExecTimeout { .. }));
        let policy = shell_tools().with_max_timeout(Duration::from_secs(1));
        let err = run(r#"{"program":"echo","timeout_ms":1001}"#, &policy)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            KindError::OutOfRange {
                value: 1001,
                max: 1000,
                ..
            }
        ));
        let err = run(r#"{"program":"echo","timeout_ms":0}"#, &policy)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec timeout_ms is 0; it must be from 1 to 1000"
        );
    }

    #[tokio::test]
    async fn bad_data_and_missing_program() {
        for bad in [
            "not json",
            r#"{"args":[]}"#,
            r#"{"program":"echo","bogus":1}"#,
        ] {
            let err = run(bad, &shell_tools()).await.unwrap_err();
            assert!(matches!(err, KindError::InvalidJson { .. }), "{bad}");
        }
        let err = run(r#"{"program":"no-such-program-jobmesh"}"#, &shell_tools())
            .await
            .unwrap_err();
        assert!(matches!(err, KindError::Spawn { .. }));
        assert!(!err.is_retryable());
    }
}
