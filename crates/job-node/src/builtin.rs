//! The adapter from the built-in kinds ([`crate::kinds`]) to the job
//! queue's handler registry.

use std::sync::Arc;
use std::time::Duration;

use job_queue::{HandlerError, HandlerRegistry, JobContext};
use tokio_util::sync::CancellationToken;

use crate::kinds::{Builtin, CancelSource, ExecPolicy, KindError};

/// A job's context gives its token only to a kind that asks for one: the
/// context makes it then (an `echo` job makes none).
impl CancelSource for JobContext {
    fn token(&self) -> &CancellationToken {
        self.cancellation_token()
    }
}

/// Registers `echo`, `sleep`, `sha256` and `exec` (under `policy`).
#[cfg(test)]
pub(crate) fn register_builtins(registry: &mut HandlerRegistry, policy: ExecPolicy) {
    let policy = Arc::new(policy);
    for kind in Builtin::ALL {
        let policy = Arc::clone(&policy);
        registry.register(kind.name(), move |ctx: JobContext| {
            let policy = Arc::clone(&policy);
            async move {
                let cancel = ctx.cancellation();
                kind.run_cancellable(ctx.data(), &policy, &cancel)
                    .await
                    .map_err(to_handler_error)
            }
        });
    }
}

/// What [`register_builtins_observed`] reports after each attempt: the
/// kind, whether it succeeded, and how long it ran.
pub(crate) type AttemptObserver = Arc<dyn Fn(&'static str, bool, Duration) + Send + Sync>;

/// Registers the built-in kinds like [`register_builtins`] (but `exec` only
/// if `policy` allows some program), and calls
/// `observer` after every attempt that ran to its end (an attempt the worker
/// cancels at its timeout is not reported).
pub(crate) fn register_builtins_observed(
    registry: &mut HandlerRegistry,
    policy: ExecPolicy,
    observer: AttemptObserver,
) {
    let policy = Arc::new(policy);
    for kind in Builtin::ALL {
        // `exec` is served (and its `kind:exec` tag advertised) only with a
        // non-empty allow-list: a node refusing every program serves nothing.
        if kind == Builtin::Exec && policy.allowed().next().is_none() {
            continue;
        }
        let policy = Arc::clone(&policy);
        let observer = Arc::clone(&observer);
        registry.register(kind.name(), move |ctx: JobContext| {
            let policy = Arc::clone(&policy);
            let observer = Arc::clone(&observer);
            async move {
                let outcome = kind.run_cancellable(ctx.data(), &policy, &ctx).await;
                // From the attempt's start (one clock read fewer per job).
                observer(kind.name(), outcome.is_ok(), ctx.started().elapsed());
                outcome.map_err(to_handler_error)
            }
        });
    }
}

/// A registry holding only the built-in kinds.
#[cfg(test)]
pub(crate) fn builtin_registry(policy: ExecPolicy) -> HandlerRegistry {
    let mut registry = HandlerRegistry::new();
    register_builtins(&mut registry, policy);
    registry
}

/// Maps a kind's error onto the queue's retry semantics: undecodable data
/// is bad data, other permanent errors are permanent, the rest retryable.
pub(crate) fn to_handler_error(err: KindError) -> HandlerError {
    match err {
        KindError::InvalidJson { .. } | KindError::InvalidSleep { .. } => {
            HandlerError::bad_data(err)
        }
        err if err.is_retryable() => HandlerError::retryable(err),
        err => HandlerError::permanent(err),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use job_queue::{FailureCause, Job, JobFailure};
    use tokio::time::timeout;

    use super::*;

    async fn run(
        registry: &HandlerRegistry,
        kind: &str,
        data: &str,
    ) -> Result<String, HandlerError> {
        let handler = registry.get(kind).expect("registered");
        let ctx = JobContext::new(Job::new(kind, data), "node-a");
        timeout(Duration::from_secs(10), handler.handle(ctx))
            .await
            .expect("handler hung")
    }

    #[tokio::test]
    async fn builtins_are_registered_and_run() {
        let registry = builtin_registry(ExecPolicy::allow(["echo"]));
        assert_eq!(registry.kinds(), ["echo", "exec", "sha256", "sleep"]);
        assert_eq!(registry.kind_tags()[0], "kind:echo");
        assert_eq!(run(&registry, "echo", "hi").await.unwrap(), "hi");
        assert_eq!(run(&registry, "sleep", "1").await.unwrap(), "1");
        assert_eq!(run(&registry, "sha256", "abc").await.unwrap().len(), 64);
        let out = run(&registry, "exec", r#"{"program":"echo","args":["x"]}"#)
            .await
            .unwrap();
        assert!(out.contains(r#""stdout":"x\n""#), "{out}");
    }

    #[tokio::test]
    async fn observed_builtins_report_each_attempt() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let mut registry = HandlerRegistry::new();
        register_builtins_observed(
            &mut registry,
            ExecPolicy::deny_all(),
            Arc::new(move |kind, ok, _| sink.lock().unwrap().push((kind, ok))),
        );
        assert_eq!(run(&registry, "echo", "hi").await.unwrap(), "hi");
        run(&registry, "sleep", "never").await.unwrap_err();
        assert_eq!(*seen.lock().unwrap(), [("echo", true), ("sleep", false)]);
    }

    #[tokio::test]
    async fn errors_keep_their_retry_semantics() {
        let registry = builtin_registry(ExecPolicy::deny_all());
        let refused = run(&registry, "exec", r#"{"program":"rm"}"#)
            .await
            .unwrap_err();
        assert!(matches!(refused, HandlerError::Permanent(_)), "{refused}");
        let failure = JobFailure::from_handler_error(&refused);
        assert_eq!(
            (failure.cause, failure.retryable),
            (FailureCause::Handler, false)
        );
        assert!(
            failure.message.contains("--allow-exec"),
            "{}",
            failure.message
        );
        let bad = run(&registry, "sleep", "soon").await.unwrap_err();
        assert!(matches!(bad, HandlerError::BadData(_)), "{bad}");
        let huge = run(&registry, "sha256", r#"{"input":"a","rounds":0}"#)
            .await
            .unwrap_err();
        assert!(matches!(huge, HandlerError::Permanent(_)), "{huge}");
        let timed_out = to_handler_error(KindError::ExecTimeout {
            program: "x".into(),
            timeout: Duration::from_millis(1),
        });
        assert!(timed_out.is_retryable());
    }
}
