//! Job handlers: the [`Handler`] trait, the per-kind [`HandlerRegistry`] and
//! the [`JobContext`] a handler receives.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::failure::HandlerError;
use crate::job::{Job, JobId};
use crate::worker::TaskControl;

/// The tag prefix with which a node advertises a kind it serves
/// (`kind:resize`).
pub const KIND_TAG_PREFIX: &str = "kind:";

/// The tag that advertises `kind` (`kind:<kind>`).
pub fn kind_tag(kind: &str) -> String {
    format!("{KIND_TAG_PREFIX}{kind}")
}

/// Runs jobs of one kind.
///
/// Any `Fn(JobContext) -> impl Future<Output = Result<String, HandlerError>>`
/// that is `Send + Sync + 'static` is a handler.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Runs one attempt of a job and returns its output.
    ///
    /// # Errors
    ///
    /// A [`HandlerError`]: retryable errors are retried on another node,
    /// permanent and bad-data errors fail the job at once.
    async fn handle(&self, ctx: JobContext) -> Result<String, HandlerError>;
}

// Written out (not `#[async_trait]`): the closure's own future is boxed,
// instead of a wrapper future holding it and the context, which would be
// built, then copied into its box, once per job.
impl<F, Fut> Handler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, HandlerError>> + Send + 'static,
{
    fn handle<'life0, 'async_trait>(
        &'life0 self,
        ctx: JobContext,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<String, HandlerError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin((self)(ctx))
    }
}

/// A progress report from a running handler.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgressUpdate {
    /// The job reporting.
    pub job_id: JobId,
    /// Its attempt number.
    pub attempt: u32,
    /// Fraction done, clamped to 0.0..=1.0.
    pub fraction: f32,
    /// A free-form note (`"resized 3 of 10"`).
    pub note: String,
}

pub(crate) type ProgressFn = Arc<dyn Fn(ProgressUpdate) + Send + Sync>;

/// What a handler gets: the job, its attempt and a progress reporter.
pub struct JobContext {
    job: Job,
    node: Arc<str>,
    progress: Option<ProgressFn>,
    cancel: CancelSource,
    started: Instant,
}

/// Where a [`JobContext`]'s cancellation comes from. Either way its token
/// is made only when asked for: most handlers never look at it, and a
/// token is an allocation (and a lock per clone, drop and check).
enum CancelSource {
    /// The context's own token ([`JobContext::new`], a worker engine used
    /// without controls: made on first use, and then fires only if someone
    /// cancels it), or the one given to
    /// [`with_cancellation`](JobContext::with_cancellation).
    Own(OnceLock<CancellationToken>),
    /// The controls of a worker pool's job: cancelled by the pool.
    Control(Arc<TaskControl>),
}

impl CancelSource {
    fn token(&self) -> &CancellationToken {
        match self {
            CancelSource::Own(token) => token.get_or_init(CancellationToken::new),
            CancelSource::Control(control) => control.token(),
        }
    }

    /// Makes no token.
    fn is_cancelled(&self) -> bool {
        match self {
            CancelSource::Own(token) => token.get().is_some_and(CancellationToken::is_cancelled),
            CancelSource::Control(control) => control.is_cancelled(),
        }
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("job", &self.job)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// A context for `job` running on `node`, without a progress sink
    /// (progress reports are dropped). Useful to unit-test handlers.
    pub fn new(job: Job, node: &str) -> Self {
        JobContext {
            job,
            node: Arc::from(node),
            progress: None,
            cancel: CancelSource::Own(OnceLock::new()),
            started: Instant::now(),
        }
    }

    /// A worker's context for one attempt: cancelled through the job's
    /// `control` if it has one (the worker pool's jobs); without, its
    /// token is its own, made on first use.
    pub(crate) fn for_attempt(
        job: Job,
        node: Arc<str>,
        progress: Option<ProgressFn>,
        control: Option<Arc<TaskControl>>,
        started: Instant,
    ) -> Self {
        let cancel = match control {
            Some(control) => CancelSource::Control(control),
            None => CancelSource::Own(OnceLock::new()),
        };
        JobContext {
            job,
            node,
            progress,
            cancel,
            started,
        }
    }

    /// When the worker started this attempt (its timeout counts from here).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Replaces the context's cancellation token (the worker's, or a test's).
    pub fn with_cancellation(mut self, token: CancellationToken) -> Self {
        self.cancel = CancelSource::Own(OnceLock::from(token));
        self
    }

    /// Completes when the job is cancelled (`cancel` command, `DELETE
    /// /v1/jobs/{id}`, [`Coordinator::cancel`](crate::Coordinator::cancel)).
    /// A handler that runs long should race its work against this and
    /// clean up (kill child processes, remove temporary files) when it
    /// fires: the worker waits a short grace (500 ms) for the handler to
    /// return, then drops its future. The job's result is then a
    /// [`FailureCause::Cancelled`](crate::FailureCause::Cancelled) failure,
    /// whatever the handler returns.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn cancelled(&self) {
        self.cancel.token().cancelled().await;
    }

    /// Whether the job was cancelled (for loops that poll, e.g. CPU-bound
    /// work on a blocking thread; see also [`cancellation`](Self::cancellation)).
    /// Cheap, and makes no token if the handler has none yet.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A clone of the cancellation token, to move into a blocking task or a
    /// spawned one.
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.token().clone()
    }

    /// The cancellation token, borrowed: for code that runs inside the
    /// handler's own future (a clone, and its drop, each take the token's
    /// lock). The token is made at the first call (of this,
    /// [`cancellation`](Self::cancellation) or
    /// [`cancelled`](Self::cancelled)): a handler that never needs one
    /// costs none.
    pub fn cancellation_token(&self) -> &CancellationToken {
        self.cancel.token()
    }

    /// The job being run.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The job's data.
    pub fn data(&self) -> &str {
        &self.job.data
    }

    /// The 1-based attempt number.
    pub fn attempt(&self) -> u32 {
        self.job.attempt
    }

    /// The node running the job.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Decodes the data as JSON.
    ///
    /// # Errors
    ///
    /// [`HandlerError::BadData`] if the data is not a JSON `T`; return it
    /// with `?` to fail the job without retries.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_str(&self.job.data).map_err(HandlerError::bad_data)
    }

    /// Reports progress (`fraction` is clamped to 0.0..=1.0). Best effort:
    /// reports may be dropped under load.
    pub fn progress(&self, fraction: f32, note: impl Into<String>) {
        if let Some(report) = &self.progress {
            let fraction = if fraction.is_nan() {
                0.0
            } else {
                fraction.clamp(0.0, 1.0)
            };
            report(ProgressUpdate {
                job_id: self.job.id.clone(),
                attempt: self.job.attempt,
                fraction,
                note: note.into(),
            });
        }
    }
}

/// Handlers by job kind.
///
/// ```
/// use job_queue::{HandlerError, HandlerRegistry, JobContext};
///
/// let mut registry = HandlerRegistry::new();
/// registry.register("echo", |ctx: JobContext| async move {
///     Ok::<_, HandlerError>(ctx.data().to_owned())
/// });
/// assert_eq!(registry.kind_tags(), vec!["kind:echo".to_owned()]);
/// ```
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: FxHashMap<String, Arc<dyn Handler>>,
}

impl fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerRegistry")
            .field("kinds", &self.kinds())
            .finish()
    }
}

impl HandlerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        HandlerRegistry::default()
    }

    /// Registers `handler` for `kind`, replacing any previous one; returns
    /// the registry for chaining.
    pub fn register(&mut self, kind: impl Into<String>, handler: impl Handler) -> &mut Self {
        self.handlers.insert(kind.into(), Arc::new(handler));
        self
    }

    /// Removes the handler of `kind`; returns whether there was one.
    pub fn unregister(&mut self, kind: &str) -> bool {
        self.handlers.remove(kind).is_some()
    }

    /// The handler of `kind`.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Handler>> {
        self.handlers.get(kind).cloned()
    }

    /// Whether `kind` has a handler.
    pub fn contains(&self, kind: &str) -> bool {
        self.handlers.contains_key(kind)
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        kinds
    }

    /// The `kind:<name>` tags a node serving these kinds advertises, sorted.
    pub fn kind_tags(&self) -> Vec<String> {
        self.kinds().into_iter().map(kind_tag).collect()
    }

    /// The number of registered kinds.
    pub fn len(&self) -> usize {
        self.handlers.len()
    }

    /// Whether no kind is registered.
    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[derive(serde::Deserialize)]
    struct Size {
        w: u32,
    }

    #[tokio::test]
    async fn closures_are_handlers_and_json_errors_are_bad_data() {
        let mut registry = HandlerRegistry::new();
        registry.register("double", |ctx: JobContext| async move {
            let size: Size = ctx.json()?;
            Ok(format!("{}", size.w * 2))
        });
        let handler = registry.get("double").unwrap();
        let ok = handler
            .handle(JobContext::new(Job::new("double", r#"{"w":21}"#), "n"))
            .await;
        assert_eq!(ok.unwrap(), "42");
        let bad = handler
            .handle(JobContext::new(Job::new("double", "nope"), "n"))
            .await;
        assert!(matches!(bad, Err(HandlerError::BadData(_))));
        assert!(registry.get("other").is_none());
        assert!(registry.unregister("double"));
        assert!(registry.is_empty());
    }

    const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

    #[test]
    fn a_context_is_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<JobContext>();
    }

    #[tokio::test]
    async fn a_new_contexts_token_is_its_own_and_fires_only_when_cancelled() {
        let ctx = JobContext::new(Job::new("k", ""), "n");
        assert!(!ctx.is_cancelled());
        assert!(matches!(&ctx.cancel, CancelSource::Own(t) if t.get().is_none()));
        let token = ctx.cancellation();
        assert!(std::ptr::eq(
            ctx.cancellation_token(),
            ctx.cancellation_token()
        ));
        assert!(!token.is_cancelled() && !ctx.is_cancelled());
        token.cancel();
        assert!(ctx.is_cancelled());
        assert!(ctx.cancellation_token().is_cancelled());
        tokio::time::timeout(WAIT, ctx.cancelled()).await.unwrap();
    }

    #[tokio::test]
    async fn with_cancellation_uses_the_given_token() {
        let token = CancellationToken::new();
        let ctx = JobContext::new(Job::new("k", ""), "n").with_cancellation(token.clone());
        assert!(!ctx.is_cancelled());
        let waiter = tokio::spawn(async move {
            ctx.cancelled().await;
            assert!(ctx.is_cancelled());
            ctx
        });
        token.cancel();
        let ctx = tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap();
        // Its clone and its borrow are the given token.
        let other = CancellationToken::new();
        let ctx = ctx.with_cancellation(other.clone());
        assert!(!ctx.is_cancelled());
        ctx.cancellation().cancel();
        assert!(other.is_cancelled());
        assert!(ctx.cancellation_token().is_cancelled());
    }

    #[tokio::test]
    async fn a_workers_context_is_cancelled_through_its_control() {
        let controlled = || {
            let control = Arc::new(TaskControl::default());
            let ctx = JobContext::for_attempt(
                Job::new("k", ""),
                Arc::from("n"),
                None,
                Some(Arc::clone(&control)),
                Instant::now(),
            );
            (control, ctx)
        };
        let (control, ctx) = controlled();
        assert!(!ctx.is_cancelled());
        assert!(!control.has_token(), "is_cancelled makes no token");
        control.cancel();
        assert!(ctx.is_cancelled());
        assert!(!control.has_token());
        // A token asked for after the cancel comes cancelled.
        tokio::time::timeout(WAIT, ctx.cancelled()).await.unwrap();
        assert!(ctx.cancellation().is_cancelled());
        assert!(std::ptr::eq(ctx.cancellation_token(), control.token()));

        // A handler that cancels its token cancels the job.
        let (control, ctx) = controlled();
        ctx.cancellation_token().cancel();
        assert!(control.is_cancelled());
    }

    #[test]
    fn progress_is_clamped_and_tagged() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let report: ProgressFn = Arc::new(move |u| sink.lock().push(u));
        let job = Job::new("k", "").with_id(JobId::new("j1").unwrap());
        let ctx = JobContext::for_attempt(job, Arc::from("n"), Some(report), None, Instant::now());
        ctx.progress(1.5, "over");
        ctx.progress(f32::NAN, "nan");
        let seen = seen.lock();
        assert_eq!(seen[0].fraction, 1.0);
        assert_eq!(seen[0].job_id.as_str(), "j1");
        assert_eq!(seen[1].fraction, 0.0);
        assert_eq!(seen[1].note, "nan");
    }
}
