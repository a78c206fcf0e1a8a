//! One-for-one supervision: [`Supervisor`], [`RestartPolicy`], [`ChildEvent`].

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::actor::{Actor, Context};
use crate::actor_ref::{ActorRef, Lifecycle};
use crate::error::{ActorError, BoxError};
use crate::runner::{self, Exit, Mailbox};
use crate::spawn::{prepare, prepare_channel, SpawnOptions};

/// How often a child may be restarted: at most `max_restarts` restarts
/// within any window of length `within`. Default: 3 restarts in 10 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed inside the window; 0 means never restart.
    pub max_restarts: u32,
    /// Length of the sliding window.
    pub within: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 3,
            within: Duration::from_secs(10),
        }
    }
}

/// Why an actor instance failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// A handler, a hook or the factory panicked; the panic message.
    #[error("panicked: {0}")]
    Panicked(String),
    /// `handle` or `started` returned an error.
    #[error("failed: {0}")]
    Errored(#[source] BoxError),
}

impl Failure {
    pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        Self::Panicked(runner::panic_message(payload.as_ref()))
    }
}

/// What happened to a supervised child; delivered on the receiver returned
/// by [`Supervisor::new`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ChildEvent {
    /// The child failed and a fresh instance from its factory took over
    /// the same mailbox.
    Restarted {
        /// The child's name.
        name: String,
        /// Why the previous instance failed.
        cause: Failure,
    },
    /// The child failed with its restart budget exhausted and was stopped.
    GaveUp {
        /// The child's name.
        name: String,
        /// The failure that exhausted the budget.
        cause: Failure,
    },
    /// The child stopped normally (stop requested, or every handle dropped).
    Stopped {
        /// The child's name.
        name: String,
    },
}

impl ChildEvent {
    /// The name of the child the event is about.
    pub fn name(&self) -> &str {
        match self {
            Self::Restarted { name, .. } | Self::GaveUp { name, .. } | Self::Stopped { name } => {
                name
            }
        }
    }
}

/// Spawns children and restarts each one on its own when it fails
/// (one-for-one), within a [`RestartPolicy`] budget.
///
/// A child keeps one mailbox for its whole life: only the actor value is
/// rebuilt by the factory. The message whose handler failed is dropped;
/// every message queued behind it is handled by the new instance, in order.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use actor_core::{Actor, BoxError, ChildEvent, Context, RestartPolicy, SpawnOptions, Supervisor};
///
/// struct Fragile;
/// #[async_trait::async_trait]
/// impl Actor for Fragile {
///     type Message = bool;
///     async fn handle(&mut self, fail: bool, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
///         if fail { Err("boom".into()) } else { Ok(()) }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (supervisor, mut events) = Supervisor::new(RestartPolicy::default());
/// let child = supervisor.spawn_child("fragile", || Fragile, SpawnOptions::default()).unwrap();
/// child.tell(true).await.unwrap();
/// let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap();
/// assert!(matches!(event, Some(ChildEvent::Restarted { .. })));
/// assert!(child.is_alive());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Supervisor {
    policy: RestartPolicy,
    events: mpsc::UnboundedSender<ChildEvent>,
}

impl Supervisor {
    /// Creates a supervisor and the receiver of its children's events.
    /// Dropping the receiver is allowed; events are then discarded.
    pub fn new(policy: RestartPolicy) -> (Supervisor, mpsc::UnboundedReceiver<ChildEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        (Supervisor { policy, events }, rx)
    }

    /// The restart policy applied to every child.
    pub fn policy(&self) -> RestartPolicy {
        self.policy
    }

    /// Spawns a child built by `factory`; `factory` is called again for
    /// every restart. A panicking factory counts as a failure.
    ///
    /// # Errors
    ///
    /// As [`spawn_with`](crate::spawn_with): [`ActorError::InvalidCapacity`],
    /// [`ActorError::NoRuntime`].
    pub fn spawn_child<A, F>(
        &self,
        name: impl Into<String>,
        factory: F,
        opts: SpawnOptions,
    ) -> Result<ActorRef<A::Message>, ActorError>
    where
        A: Actor,
        F: FnMut() -> A + Send + 'static,
    {
        let (handle, runtime, ctx, mailbox) = prepare::<A>(name.into(), &opts)?;
        let child = Child {
            name: handle.name().to_owned(),
            factory,
            ctx,
            mailbox,
            budget: RestartBudget::new(self.policy),
            events: self.events.clone(),
            member: Member::sole(Arc::clone(handle.lifecycle())),
        };
        runtime.spawn(child.run());
        Ok(handle)
    }

    /// Spawns a *balancing pool*: `size` children (at least one) that share
    /// one mailbox, each taking the next message when it is free, so a
    /// slow message holds up one member, not the queue. `factory(i)` builds
    /// member `i` (again for each restart of it). The returned handle is the
    /// pool's: its capacity is the shared mailbox's.
    ///
    /// Each member is supervised on its own, with its own restart budget,
    /// and is named `<name>#<i>` in [`ChildEvent`]s; a member that runs out
    /// of restarts ends while the others go on. A member takes one message
    /// at a time, so its [`Actor::drained`] runs after every message.
    /// [`Context::stop`](crate::Context::stop) ends the member that calls
    /// it; [`ActorRef::stop`] (or dropping every handle, once the mailbox
    /// is drained) ends the pool, which has stopped once its last member
    /// has.
    ///
    /// # Errors
    ///
    /// As [`spawn_child`](Self::spawn_child).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use actor_core::{Actor, BoxError, Context, RestartPolicy, SpawnOptions, Supervisor};
    ///
    /// struct Resizer;
    /// #[async_trait::async_trait]
    /// impl Actor for Resizer {
    ///     type Message = u32;
    ///     async fn handle(&mut self, px: u32, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
    ///         tokio::time::sleep(Duration::from_millis(u64::from(px % 3))).await;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (supervisor, _events) = Supervisor::new(RestartPolicy::default());
    /// let pool = supervisor.spawn_pool("resize", 4, |_i| Resizer, SpawnOptions::default()).unwrap();
    /// for px in 0..100 {
    ///     pool.tell(px).await.unwrap();
    /// }
    /// pool.stop();
    /// pool.wait_stopped().await;
    /// # }
    /// ```
    pub fn spawn_pool<A, F>(
        &self,
        name: impl Into<String>,
        size: usize,
        factory: F,
        opts: SpawnOptions,
    ) -> Result<ActorRef<A::Message>, ActorError>
    where
        A: Actor,
        F: Fn(usize) -> A + Send + Sync + 'static,
    {
        let (handle, runtime, ctx, rx) = prepare_channel::<A>(name.into(), &opts)?;
        let shared = Arc::new(tokio::sync::Mutex::new(rx));
        let factory = Arc::new(factory);
        let size = size.max(1);
        let remaining = Arc::new(AtomicUsize::new(size));
        for i in 0..size {
            let factory = Arc::clone(&factory);
            let child = Child {
                name: format!("{}#{i}", handle.name()),
                factory: move || factory(i),
                ctx: ctx.sibling(),
                mailbox: Mailbox::shared(Arc::clone(&shared)),
                budget: RestartBudget::new(self.policy),
                events: self.events.clone(),
                member: Member::of_pool(Arc::clone(handle.lifecycle()), Arc::clone(&remaining)),
            };
            runtime.spawn(child.run());
        }
        Ok(handle)
    }
}

/// A run loop's share of its actor's life: the actor (or pool) has stopped
/// once its last run loop has left, even if a loop's task is cancelled.
struct Member {
    lifecycle: Arc<Lifecycle>,
    /// Run loops of the pool still running (`None`: a single actor).
    remaining: Option<Arc<AtomicUsize>>,
    left: bool,
    last: bool,
}

impl Member {
    fn sole(lifecycle: Arc<Lifecycle>) -> Self {
        Member {
            lifecycle,
            remaining: None,
            left: false,
            last: false,
        }
    }

    fn of_pool(lifecycle: Arc<Lifecycle>, remaining: Arc<AtomicUsize>) -> Self {
        Member {
            lifecycle,
            remaining: Some(remaining),
            left: false,
            last: false,
        }
    }

    /// Leaves (once); returns whether this was the last run loop.
    fn leave(&mut self) -> bool {
        if !self.left {
            self.left = true;
            self.last = self
                .remaining
                .as_ref()
                .is_none_or(|r| r.fetch_sub(1, Ordering::AcqRel) == 1);
        }
        self.last
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if self.leave() {
            self.lifecycle.finish();
        }
    }
}

/// Sliding-window restart accounting.
struct RestartBudget {
    policy: RestartPolicy,
    restarts: VecDeque<Instant>,
}

impl RestartBudget {
    fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart at `now` if the budget allows one.
    fn try_restart(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.restarts.front() {
            if now.saturating_duration_since(oldest) >= self.policy.within {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        if self.restarts.len() >= self.policy.max_restarts as usize {
            return false;
        }
        self.restarts.push_back(now);
        true
    }
}

/// The run loop of one supervised child (or pool member).
struct Child<A: Actor, F> {
    name: String,
    factory: F,
    ctx: Context<A>,
    mailbox: Mailbox<A::Message>,
    budget: RestartBudget,
    events: mpsc::UnboundedSender<ChildEvent>,
    member: Member,
}

impl<A: Actor, F: FnMut() -> A + Send + 'static> Child<A, F> {
    async fn run(mut self) {
        let name = self.name.clone();
        let (mut actor, mut exit) = match self.build() {
            Ok(mut actor) => {
                let exit =
                    runner::start_and_serve(&mut actor, &mut self.ctx, &mut self.mailbox).await;
                (Some(actor), exit)
            }
            Err(failure) => (None, Exit::Failed(failure)),
        };
        loop {
            let cause = match exit {
                Exit::Failed(cause) => cause,
                Exit::Stopped | Exit::Closed => {
                    self.shut_down(actor.as_mut()).await;
                    self.emit(ChildEvent::Stopped { name });
                    return;
                }
            };
            if !self.budget.try_restart(Instant::now()) {
                tracing::error!(actor = %name, %cause, "child failed; restart budget exhausted, stopping it");
                self.shut_down(actor.as_mut()).await;
                self.emit(ChildEvent::GaveUp { name, cause });
                return;
            }
            tracing::warn!(actor = %name, %cause, "child failed; restarting it");
            if let Some(old) = actor.as_mut() {
                runner::stop_hook(old, &mut self.ctx).await;
            }
            actor = None;
            self.emit(ChildEvent::Restarted {
                name: name.clone(),
                cause,
            });
            exit = match self.build() {
                Ok(mut fresh) => {
                    let exit =
                        runner::start_and_serve(&mut fresh, &mut self.ctx, &mut self.mailbox).await;
                    actor = Some(fresh);
                    exit
                }
                Err(failure) => Exit::Failed(failure),
            };
        }
    }

    /// Calls the factory, turning a panic into a failure.
    fn build(&mut self) -> Result<A, Failure> {
        std::panic::catch_unwind(AssertUnwindSafe(&mut self.factory)).map_err(Failure::from_panic)
    }

    /// Closes the mailbox if this is the last run loop using it, then runs
    /// the `stopped` hook.
    async fn shut_down(&mut self, actor: Option<&mut A>) {
        if self.member.leave() {
            self.mailbox.close(self.ctx.lifecycle());
        }
        if let Some(actor) = actor {
            runner::stop_hook(actor, &mut self.ctx).await;
        }
    }

    fn emit(&self, event: ChildEvent) {
        // The supervisor may have dropped its receiver; that is allowed.
        let _ = self.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_max_restarts_per_window() {
        let policy = RestartPolicy {
            max_restarts: 2,
            within: Duration::from_secs(10),
        };
        let mut budget = RestartBudget::new(policy);
        let t0 = Instant::now();
        assert!(budget.try_restart(t0));
        assert!(budget.try_restart(t0 + Duration::from_secs(1)));
        assert!(!budget.try_restart(t0 + Duration::from_secs(2)));
        // The first restart leaves the window at t0 + 10 s.
        assert!(budget.try_restart(t0 + Duration::from_secs(10)));
        assert!(!budget.try_restart(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn zero_budget_never_restarts() {
        let mut budget = RestartBudget::new(RestartPolicy {
            max_restarts: 0,
            within: Duration::from_secs(1),
        });
        assert!(!budget.try_restart(Instant::now()));
    }

    #[test]
    fn default_policy_is_three_in_ten_seconds() {
        let policy = RestartPolicy::default();
        assert_eq!(policy.max_restarts, 3);
        assert_eq!(policy.within, Duration::from_secs(10));
    }

    #[test]
    fn failure_keeps_its_source() {
        use std::error::Error as _;
        let failure = Failure::Errored("disk full".into());
        assert_eq!(failure.to_string(), "failed: disk full");
        assert_eq!(
            failure.source().map(ToString::to_string).as_deref(),
            Some("disk full")
        );
        let panic = Failure::from_panic(Box::new(String::from("boom")));
        assert_eq!(panic.to_string(), "panicked: boom");
        assert!(panic.source().is_none());
        let event = ChildEvent::Stopped {
            name: "child".into(),
        };
        assert_eq!(event.name(), "child");
    }
}
