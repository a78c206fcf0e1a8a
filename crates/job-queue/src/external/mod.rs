//! External workers: processes in any language that serve job kinds as
//! clients of a node (issue 17).
//!
//! An authenticated client of a node registers at `external@<node>` (a
//! client-facing name of the node's [`WorkerPool`](crate::WorkerPool)) as
//! a worker for some kinds, with a concurrency and optional tags. The pool
//! then advertises those kinds like its built-in ones, and hands each job
//! of such a kind to [`ExternalWorkers`], this sans-IO state machine, which
//! pushes it to a connected worker with free capacity (or queues it, or
//! refuses it) and turns what the worker sends back into the same results
//! and progress reports a local handler produces.
//!
//! The promises are those of a local worker:
//!
//! - **Never more than its concurrency** in flight to a registration: a
//!   task occupies a slot from the push until the worker answers it, even
//!   after a timeout or a cancellation (the worker may still be running it).
//! - **Exactly one result per attempt**: the worker's answer, or a timeout,
//!   a cancellation, or a retryable `node_down` failure when the worker
//!   disconnects, stops sending heartbeats, or the pool shuts down. A task
//!   that already has its result ignores later answers.
//! - **No forging**: a client may register, answer and report progress only
//!   for tasks the node gave *it*; every field is validated and bounded, and
//!   anything else is answered with an `error` envelope.
//!
//! Every message of a client is answered (an ack, a registration, or an
//! error), so that its flow-control window gets its credit back.

mod session;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster_router::{ActorAddr, Envelope, PayloadFormat};

use crate::failure::{FailureCause, JobFailure};
use crate::handler::{kind_tag, ProgressUpdate};
use crate::job::{Job, JobId, JobResult};

/// The client-facing name at which external workers register
/// (`external@<node>`).
pub const EXTERNAL: &str = "external";

/// Bounds on what external workers may ask of a node.
#[derive(Clone, Debug)]
pub(crate) struct ExternalLimits {
    /// Whether the node takes external workers at all.
    pub(crate) enabled: bool,
    /// The only kinds they may register for (`None`: any not built in).
    pub(crate) allowed_kinds: Option<Vec<String>>,
    /// Registrations one client may hold.
    pub(crate) registrations_per_client: usize,
    /// Registrations on the node.
    pub(crate) registrations: usize,
    /// Kinds per registration.
    pub(crate) kinds: usize,
    /// Tags per registration.
    pub(crate) tags: usize,
    /// Concurrency summed over one client's registrations (it bounds the
    /// jobs and cancellations queued for the client beyond its window).
    pub(crate) concurrency_per_client: u32,
    /// Jobs waiting for a free external worker on the node.
    pub(crate) queue: usize,
    /// Heartbeat interval bounds and default.
    pub(crate) heartbeat: (Duration, Duration, Duration),
    /// Heartbeat intervals without a message before a client is dropped.
    pub(crate) misses: u32,
}

impl ExternalLimits {
    pub(crate) fn new(queue: usize) -> Self {
        ExternalLimits {
            enabled: true,
            allowed_kinds: None,
            registrations_per_client: 64,
            registrations: 4096,
            kinds: 32,
            tags: 16,
            concurrency_per_client: 512,
            queue: queue.max(1),
            heartbeat: (
                Duration::from_millis(100),
                Duration::from_secs(2),
                Duration::from_secs(60),
            ),
            misses: 3,
        }
    }
}

/// Progress notes and error messages are cut to this many bytes.
const MAX_TEXT: usize = 4096;

/// What the pool must do after a call.
#[derive(Debug)]
pub(crate) enum Effect<T> {
    /// Send to a client (a push or an answer).
    Send(Envelope),
    /// An attempt is over: its one result.
    Finished(JobResult, T),
    /// A running task reported progress.
    Progress(ProgressUpdate, T),
    /// The served kinds or tags changed: advertise them again.
    Advertise,
}

/// One registration of a client.
#[derive(Debug)]
struct Registration {
    client: ActorAddr,
    kinds: Vec<String>,
    tags: Vec<String>,
    concurrency: usize,
    running: usize,
    /// `false` once unregistered: no new jobs, running ones finish.
    active: bool,
}

#[derive(Debug)]
struct ClientState {
    registrations: Vec<u64>,
    last_seen: Instant,
    heartbeat: Duration,
    concurrency: u32,
}

/// A job pushed to a worker.
#[derive(Debug)]
struct Task<T> {
    client: ActorAddr,
    worker: u64,
    requester: ActorAddr,
    job_id: JobId,
    attempt: u32,
    dispatched: Instant,
    deadline: Instant,
    timeout: Duration,
    /// Where the result goes; `None` once the attempt has its result
    /// (timed out, cancelled) and only the worker's answer is awaited.
    ticket: Option<T>,
}

/// A job waiting for a free worker.
#[derive(Debug)]
struct Queued<T> {
    job: Job,
    requester: ActorAddr,
    ticket: T,
}

/// The external workers of one node and the jobs given to them (see the
/// module documentation).
#[derive(Debug)]
pub(crate) struct ExternalWorkers<T> {
    me: ActorAddr,
    node: Arc<str>,
    /// The node's own tags (`--tags`): a job's required tags may be the
    /// node's or the registration's.
    node_tags: Vec<String>,
    /// Kinds the node serves itself; clients cannot take them over.
    local_kinds: Vec<String>,
    limits: ExternalLimits,
    next_worker: u64,
    next_task: u64,
    clients: HashMap<ActorAddr, ClientState>,
    workers: HashMap<u64, Registration>,
    /// Active registrations per kind.
    serving: HashMap<String, usize>,
    tasks: HashMap<u64, Task<T>>,
    /// Running tasks by (requester, job id), for cancellations.
    by_job: HashMap<(ActorAddr, JobId), u64>,
    queue: VecDeque<Queued<T>>,
    effects: Vec<Effect<T>>,
}

impl<T: Clone> ExternalWorkers<T> {
    /// The state of the node whose `external` actor is `me`.
    pub(crate) fn new(
        me: ActorAddr,
        node_tags: Vec<String>,
        local_kinds: Vec<String>,
        limits: ExternalLimits,
    ) -> Self {
        ExternalWorkers {
            node: Arc::from(me.node().as_str()),
            me,
            node_tags,
            local_kinds,
            limits,
            next_worker: 1,
            next_task: 1,
            clients: HashMap::new(),
            workers: HashMap::new(),
            serving: HashMap::new(),
            tasks: HashMap::new(),
            by_job: HashMap::new(),
            queue: VecDeque::new(),
            effects: Vec::new(),
        }
    }

    /// The effects of the calls since the last take, in order.
    pub(crate) fn take_effects(&mut self) -> Vec<Effect<T>> {
        std::mem::take(&mut self.effects)
    }

    /// Whether an active registration serves `kind`.
    pub(crate) fn serves(&self, kind: &str) -> bool {
        self.serving.contains_key(kind)
    }

    /// Tasks pushed to workers and not answered yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// Jobs waiting for a free worker.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// What the node advertises for its external workers: `kind:<k>` for
    /// each served kind, then the registrations' tags, sorted, no repeats.
    pub(crate) fn advertised(&self) -> Vec<String> {
        let mut tags: Vec<String> = self.serving.keys().map(|k| kind_tag(k)).collect();
        tags.sort_unstable();
        let mut plain: Vec<String> = self
            .workers
            .values()
            .filter(|w| w.active)
            .flat_map(|w| w.tags.iter().cloned())
            .collect();
        plain.sort_unstable();
        plain.dedup();
        tags.extend(plain);
        tags
    }

    /// A job for an external kind, from `requester`: pushed to the least
    /// busy worker that serves it, queued, or refused (`refused`: not an
    /// attempt, the coordinator places it again).
    pub(crate) fn submit(&mut self, job: Job, requester: ActorAddr, ticket: T, now: Instant) {
        if !self.serves(&job.kind) {
            let why = format!(
                "no external worker for kind {:?} is registered on {}",
                job.kind, self.node
            );
            return self.refuse(job, ticket, why);
        }
        if let Some(worker) = self.free_worker(&job) {
            return self.assign(worker, job, requester, ticket, now);
        }
        if self.queue.len() >= self.limits.queue {
            let why = format!(
                "the external workers of kind {:?} on {} are busy and its queue is full",
                job.kind, self.node
            );
            return self.refuse(job, ticket, why);
        }
        self.queue.push_back(Queued {
            job,
            requester,
            ticket,
        });
    }

    /// Cancels attempt `attempt` of job `id` from `requester`, queued or
    /// running here; returns whether it was found.
    pub(crate) fn cancel(
        &mut self,
        requester: &ActorAddr,
        id: &JobId,
        attempt: u32,
        now: Instant,
    ) -> bool {
        let key = (requester.clone(), id.clone());
        if let Some(&task_id) = self.by_job.get(&key) {
            let matches = self
                .tasks
                .get(&task_id)
                .is_some_and(|t| t.attempt == attempt);
            if matches {
                let why = format!("cancelled on {} while an external worker ran it", self.node);
                self.conclude(task_id, JobFailure::new(FailureCause::Cancelled, why), now);
                self.push_to_client(task_id, |t| wire::cancel_frame(t, "cancelled"));
                return true;
            }
        }
        let position = self
            .queue
            .iter()
            .position(|q| &q.requester == requester && &q.job.id == id && q.job.attempt == attempt);
        let Some(position) = position else {
            return false;
        };
        if let Some(q) = self.queue.remove(position) {
            let why = format!("cancelled on {} before it started", self.node);
            self.fail_unstarted(q.job, q.ticket, FailureCause::Cancelled, why);
        }
        true
    }

    /// Drops the jobs from `requester` waiting for a worker whose ticket
    /// `stale` says belongs to an older incarnation of that coordinator (not
    /// run, no result: its successor runs them again); returns how many.
    /// Jobs already pushed to a worker run on (their late results are
    /// dropped by the coordinator).
    pub(crate) fn fence(&mut self, requester: &ActorAddr, stale: impl Fn(&T) -> bool) -> usize {
        let before = self.queue.len();
        self.queue
            .retain(|q| &q.requester != requester || !stale(&q.ticket));
        before - self.queue.len()
    }

    /// A client disconnected: its tasks fail (retryable) and its
    /// registrations end.
    pub(crate) fn on_client_gone(&mut self, client: &ActorAddr, now: Instant) {
        self.drop_client(client, "disconnected", false, now);
    }

    /// Enforces timeouts and heartbeats.
    pub(crate) fn tick(&mut self, now: Instant) {
        let overdue: Vec<(u64, Duration)> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.ticket.is_some() && t.deadline <= now)
            .map(|(id, t)| (*id, t.timeout))
            .collect();
        for (task_id, timeout) in overdue {
            let why = format!(
                "external worker on {} overran the job's timeout of {} ms",
                self.node,
                timeout.as_millis()
            );
            self.conclude(task_id, JobFailure::new(FailureCause::Timeout, why), now);
            self.push_to_client(task_id, |t| wire::cancel_frame(t, "timeout"));
        }
        let misses = self.limits.misses;
        let stalled: Vec<ActorAddr> = self
            .clients
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.last_seen) > c.heartbeat * misses)
            .map(|(addr, _)| addr.clone())
            .collect();
        for client in stalled {
            self.drop_client(&client, "missed heartbeats", true, now);
        }
    }

    /// The pool is stopping: every queued and running job fails
    /// (retryable `node_down`).
    pub(crate) fn shutdown(&mut self, now: Instant) {
        let clients: Vec<ActorAddr> = self.clients.keys().cloned().collect();
        for client in clients {
            self.drop_client(&client, "the worker pool is shutting down", true, now);
        }
        for q in std::mem::take(&mut self.queue) {
            let why = format!("worker pool on {} shut down", self.node);
            self.fail_unstarted(q.job, q.ticket, FailureCause::NodeDown, why);
        }
    }

    fn drop_client(&mut self, client: &ActorAddr, reason: &str, notify: bool, now: Instant) {
        let Some(state) = self.clients.remove(client) else {
            return;
        };
        tracing::info!(%client, reason, "external worker dropped");
        let doomed: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, t)| &t.client == client)
            .map(|(id, _)| *id)
            .collect();
        for task_id in doomed {
            let why = format!("external worker {client} on {} {reason}", self.node);
            self.conclude(task_id, JobFailure::new(FailureCause::NodeDown, why), now);
            if let Some(task) = self.tasks.remove(&task_id) {
                self.unindex(&task.requester, &task.job_id, task_id);
            }
        }
        for worker in state.registrations {
            if let Some(reg) = self.workers.remove(&worker) {
                if reg.active {
                    self.stop_serving(&reg.kinds);
                }
            }
            if notify {
                let frame = wire::closed_frame(worker, reason);
                self.push(client.clone(), frame);
            }
        }
        self.effects.push(Effect::Advertise);
        self.refuse_orphans();
    }

    /// Gives the attempt of a running task its result (`failure`) now; the
    /// task keeps its slot until the worker answers.
    fn conclude(&mut self, task_id: u64, failure: JobFailure, now: Instant) {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return;
        };
        let Some(ticket) = task.ticket.take() else {
            return;
        };
        let elapsed = now.saturating_duration_since(task.dispatched);
        let (requester, job_id) = (task.requester.clone(), task.job_id.clone());
        let result =
            JobResult::failure(job_id.clone(), failure, &*self.node, task.attempt, elapsed);
        self.unindex(&requester, &job_id, task_id);
        self.effects.push(Effect::Finished(result, ticket));
    }

    /// Forgets the index entry of `task_id` (not a newer attempt's).
    fn unindex(&mut self, requester: &ActorAddr, job_id: &JobId, task_id: u64) {
        let key = (requester.clone(), job_id.clone());
        if self.by_job.get(&key) == Some(&task_id) {
            self.by_job.remove(&key);
        }
    }

    fn push_to_client(&mut self, task_id: u64, frame: impl FnOnce(u64) -> String) {
        if let Some(task) = self.tasks.get(&task_id) {
            let client = task.client.clone();
            self.push(client, frame(task_id));
        }
    }

    fn push(&mut self, client: ActorAddr, frame: String) {
        let env = Envelope::new(
            client,
            self.me.clone(),
            PayloadFormat::Json,
            Bytes::from(frame),
        );
        self.effects.push(Effect::Send(env));
    }

    fn refuse(&mut self, job: Job, ticket: T, why: String) {
        self.fail_unstarted(job, ticket, FailureCause::Refused, why);
    }

    /// Answers a job that never reached a worker (refused, cancelled or
    /// shut down while queued): no time was spent on it.
    fn fail_unstarted(&mut self, job: Job, ticket: T, cause: FailureCause, why: String) {
        let failure = JobFailure::new(cause, why);
        let result = JobResult::failure(job.id, failure, &*self.node, job.attempt, Duration::ZERO);
        self.effects.push(Effect::Finished(result, ticket));
    }

    fn tags_ok(&self, reg: &Registration, job: &Job) -> bool {
        job.tags
            .iter()
            .all(|t| reg.tags.contains(t) || self.node_tags.contains(t))
    }

    /// The active registration with the lowest load that can take `job`.
    fn free_worker(&self, job: &Job) -> Option<u64> {
        self.workers
            .iter()
            .filter(|(_, w)| {
                w.active
                    && w.running < w.concurrency
                    && w.kinds.contains(&job.kind)
                    && self.tags_ok(w, job)
            })
            .min_by(|(a_id, a), (b_id, b)| {
                let a_load = a.running as f64 / a.concurrency as f64;
                let b_load = b.running as f64 / b.concurrency as f64;
                a_load.total_cmp(&b_load).then(a_id.cmp(b_id))
            })
            .map(|(id, _)| *id)
    }

    fn assign(&mut self, worker: u64, job: Job, requester: ActorAddr, ticket: T, now: Instant) {
        let Some(reg) = self.workers.get_mut(&worker) else {
            return self.refuse(job, ticket, "external worker gone".to_owned());
        };
        reg.running += 1;
        let client = reg.client.clone();
        let task_id = self.next_task;
        self.next_task += 1;
        let frame = wire::job_frame(task_id, worker, &job);
        self.by_job
            .insert((requester.clone(), job.id.clone()), task_id);
        self.tasks.insert(
            task_id,
            Task {
                client: client.clone(),
                worker,
                requester,
                job_id: job.id,
                attempt: job.attempt,
                dispatched: now,
                deadline: now + job.timeout,
                timeout: job.timeout,
                ticket: Some(ticket),
            },
        );
        self.push(client, frame);
    }

    fn slot_freed(&mut self, worker: u64, now: Instant) {
        let Some(reg) = self.workers.get_mut(&worker) else {
            return;
        };
        reg.running = reg.running.saturating_sub(1);
        if !reg.active && reg.running == 0 {
            self.remove_worker(worker);
            return;
        }
        self.pump(worker, now);
    }

    /// Gives `worker` queued jobs it can take while it has room.
    fn pump(&mut self, worker: u64, now: Instant) {
        loop {
            let Some(reg) = self.workers.get(&worker) else {
                return;
            };
            if !reg.active || reg.running >= reg.concurrency {
                return;
            }
            let position = self
                .queue
                .iter()
                .position(|q| reg.kinds.contains(&q.job.kind) && self.tags_ok(reg, &q.job));
            let Some(q) = position.and_then(|p| self.queue.remove(p)) else {
                return;
            };
            self.assign(worker, q.job, q.requester, q.ticket, now);
        }
    }

    fn remove_worker(&mut self, worker: u64) {
        let Some(reg) = self.workers.remove(&worker) else {
            return;
        };
        if reg.active {
            self.stop_serving(&reg.kinds);
        }
        if let Some(state) = self.clients.get_mut(&reg.client) {
            state.registrations.retain(|w| *w != worker);
            let concurrency = u32::try_from(reg.concurrency).unwrap_or(u32::MAX);
            state.concurrency = state.concurrency.saturating_sub(concurrency);
            if state.registrations.is_empty() {
                self.clients.remove(&reg.client);
            }
        }
        self.refuse_orphans();
    }

    fn stop_serving(&mut self, kinds: &[String]) {
        for kind in kinds {
            if let Some(n) = self.serving.get_mut(kind) {
                *n -= 1;
                if *n == 0 {
                    self.serving.remove(kind);
                }
            }
        }
    }

    /// Queued jobs that no active registration serves any more are refused
    /// (the coordinator places them elsewhere).
    fn refuse_orphans(&mut self) {
        if self
            .queue
            .iter()
            .all(|q| self.serving.contains_key(&q.job.kind))
        {
            return;
        }
        let (keep, orphans): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|q| self.serving.contains_key(&q.job.kind));
        self.queue = keep.into();
        for q in orphans {
            let why = format!(
                "the external workers of kind {:?} left {}",
                q.job.kind, self.node
            );
            self.refuse(q.job, q.ticket, why);
        }
    }
}

/// Kinds and tags: 1..=64 bytes of `[A-Za-z0-9_.-]` (a tag must not look
/// like the node's own `kind:` and `capacity:` tags).
fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?} must be 1..=64 characters of [A-Za-z0-9_.-]"
        ))
    }
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
