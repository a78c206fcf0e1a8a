//! The coordinator actor: drives [`CoordinatorCore`] from envelopes,
//! membership events, ticks and local calls, and carries out its actions.

use std::time::{Duration, Instant};

use actor_core::{Actor, BoxError, Context};
use async_trait::async_trait;
use bytes::Bytes;
use cluster_router::{
    ActorAddr, ActorName, Envelope, EnvelopeKind, Member, MemberEvent, MemberStatus, MessageId,
    NodeId, PayloadFormat, Router,
};
use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use super::command::{self, Command};
use super::{Accepted, CoordinatorOptions, Msg};
use crate::coordinator::{Action, CoordinatorCore, NodeInfo, NodeLoad, NodeStatus};
use crate::failure::{FailureCause, JobFailure};
use crate::handler::ProgressUpdate;
use crate::job::{Job, JobId, JobResult};
use crate::pool::WORKER;
use crate::protocol::{decode_job, decode_reply, encode_job, WorkerReply};

/// Who waits for a job's result.
enum Waiter {
    Local(oneshot::Sender<JobResult>),
    Remote {
        to: ActorAddr,
        request: MessageId,
        format: PayloadFormat,
    },
}

pub(super) struct CoordinatorActor {
    core: CoordinatorCore,
    router: Router,
    me: ActorAddr,
    format: PayloadFormat,
    waiters: FxHashMap<JobId, Waiter>,
    dispatches: FxHashMap<MessageId, (JobId, u32)>,
    progress: FxHashMap<JobId, ProgressUpdate>,
    refresh: Duration,
    last_refresh: Option<Instant>,
}

impl CoordinatorActor {
    pub(super) fn new(
        core: CoordinatorCore,
        router: Router,
        me: ActorAddr,
        options: &CoordinatorOptions,
    ) -> Self {
        CoordinatorActor {
            core,
            router,
            me,
            format: options.dispatch_format,
            waiters: FxHashMap::default(),
            dispatches: FxHashMap::default(),
            progress: FxHashMap::default(),
            refresh: options.refresh,
            last_refresh: None,
        }
    }
}

#[async_trait]
impl Actor for CoordinatorActor {
    type Message = Msg;

    async fn started(&mut self, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.refresh_nodes(Instant::now());
        Ok(())
    }

    async fn handle(&mut self, msg: Msg, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let now = Instant::now();
        match msg {
            Msg::Envelope(env) => self.on_envelope(env, now).await,
            Msg::Member(event) => self.on_member(event, now),
            Msg::Tick => self.on_tick(now),
            Msg::Submit(job, reply) => {
                let accepted = self.accept(job, now);
                reply.send(accepted);
            }
            Msg::Resubmit(id, reply) => {
                let accepted = self.accept_resubmit(&id, now);
                reply.send(accepted);
            }
            Msg::Stats(reply) => {
                reply.send(self.core.stats());
            }
            Msg::DeadLetters(reply) => {
                reply.send(self.core.dead_letters().into_iter().cloned().collect());
            }
            Msg::Progress(id, reply) => {
                reply.send(self.progress.get(&id).cloned());
            }
        }
        self.flush(now).await;
        Ok(())
    }
}

impl CoordinatorActor {
    fn accept(&mut self, job: Job, now: Instant) -> Accepted {
        let id = self.core.submit(job, now)?;
        let (tx, rx) = oneshot::channel();
        self.waiters.insert(id.clone(), Waiter::Local(tx));
        Ok((id, rx))
    }

    fn accept_resubmit(&mut self, id: &JobId, now: Instant) -> Accepted {
        let id = self.core.resubmit_dead_letter(id, now)?;
        let (tx, rx) = oneshot::channel();
        self.waiters.insert(id.clone(), Waiter::Local(tx));
        Ok((id, rx))
    }

    fn on_tick(&mut self, now: Instant) {
        self.core.tick(now);
        let due = self
            .last_refresh
            .is_none_or(|last| now.saturating_duration_since(last) >= self.refresh);
        if due {
            self.refresh_nodes(now);
            self.prune_dispatches();
        }
    }

    /// Reloads the node table from the router (status, tags, load).
    fn refresh_nodes(&mut self, now: Instant) {
        let infos = self.router.members().iter().map(node_info).collect();
        self.core.set_nodes(infos, now);
        self.last_refresh = Some(now);
    }

    /// Forgets dispatch ids whose attempt is over (their replies are late).
    fn prune_dispatches(&mut self) {
        if self.dispatches.len() > 2 * self.core.in_progress() + 1024 {
            let core = &self.core;
            self.dispatches
                .retain(|_, (id, attempt)| core.is_running(id, *attempt));
        }
    }

    fn on_member(&mut self, event: MemberEvent, now: Instant) {
        match &event {
            MemberEvent::Down(m) | MemberEvent::Left(m) => {
                tracing::info!(node = %m.node, "member gone: retrying its jobs");
                self.core.member_down(m.node.as_str(), now);
            }
            other => self.core.update_node(node_info(other.member()), now),
        }
    }

    async fn on_envelope(&mut self, env: Envelope, now: Instant) {
        match env.kind {
            EnvelopeKind::Message => {
                let from_worker = env.from.actor().as_str() == WORKER;
                if from_worker && env.correlation_id.is_some() {
                    self.on_worker_reply(&env, now);
                } else {
                    self.on_request(env, now).await;
                }
            }
            _ => self.on_bounce(&env, now),
        }
    }

    /// An Undeliverable or Error answer to one of our dispatches.
    fn on_bounce(&mut self, env: &Envelope, now: Instant) {
        let Some((id, attempt)) = env.correlation_id.and_then(|c| self.dispatches.remove(&c))
        else {
            tracing::debug!(from = %env.from, kind = ?env.kind, "unmatched bounce ignored");
            return;
        };
        let reason = env.payload_str().unwrap_or("").trim_matches('"');
        let failure = JobFailure::new(
            FailureCause::Undeliverable,
            format!("{} did not take the job: {reason}", env.from),
        );
        self.core.attempt_failed(&id, attempt, failure, now);
    }

    fn on_worker_reply(&mut self, env: &Envelope, now: Instant) {
        match decode_reply(&env.payload, env.format) {
            Ok(WorkerReply::Result(result)) => {
                if let Some(c) = env.correlation_id {
                    self.dispatches.remove(&c);
                }
                self.core
                    .result_received(result, env.from.node().as_str(), now);
            }
            Ok(WorkerReply::Progress(update)) => {
                if self.core.is_running(&update.job_id, update.attempt) {
                    self.progress.insert(update.job_id.clone(), update);
                }
            }
            Err(err) => tracing::warn!(from = %env.from, %err, "undecodable worker reply"),
        }
    }

    /// A submission or a command from a node or an external client.
    async fn on_request(&mut self, env: Envelope, now: Instant) {
        if env.format == PayloadFormat::Json {
            if let Some(cmd) = command::parse(&env.payload) {
                self.on_command(env, cmd, now).await;
                return;
            }
        }
        let submitted = decode_job(&env.payload, env.format)
            .map_err(|e| format!("cannot decode job: {e}"))
            .and_then(|job| self.core.submit(job, now).map_err(|e| e.to_string()));
        match submitted {
            Ok(id) => self.wait_remote(id, &env),
            Err(reason) => self.send(env.error_reply(&reason)).await,
        }
    }

    async fn on_command(&mut self, env: Envelope, cmd: Result<Command, String>, now: Instant) {
        let reply = match cmd {
            Ok(Command::Stats) => {
                let json = serde_json::to_vec(&self.core.stats()).expect("stats serialize");
                env.reply(Bytes::from(json))
            }
            Ok(Command::DeadLetters) => env.reply(Bytes::from(command::dead_letters_json(
                &self.core.dead_letters(),
            ))),
            Ok(Command::Resubmit { id }) => {
                let resubmitted = JobId::new(&id).map_err(|e| e.to_string()).and_then(|id| {
                    self.core
                        .resubmit_dead_letter(&id, now)
                        .map_err(|e| e.to_string())
                });
                match resubmitted {
                    Ok(id) => return self.wait_remote(id, &env),
                    Err(reason) => env.error_reply(&reason),
                }
            }
            Err(reason) => env.error_reply(&reason),
        };
        self.send(reply).await;
    }

    fn wait_remote(&mut self, id: JobId, env: &Envelope) {
        let waiter = Waiter::Remote {
            to: env.from.clone(),
            request: env.id,
            format: env.format,
        };
        self.waiters.insert(id, waiter);
    }

    /// Carries out every pending action of the core.
    async fn flush(&mut self, now: Instant) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Dispatch { job, node } => self.dispatch(job, &node, now).await,
                Action::Complete(result) => self.complete(result).await,
                Action::DeadLettered {
                    id,
                    attempts,
                    cause,
                } => {
                    tracing::warn!(%id, attempts, %cause, "job dead-lettered");
                }
            }
        }
    }

    async fn dispatch(&mut self, job: Job, node: &str, now: Instant) {
        let to = match (ActorName::new(WORKER), NodeId::new(node)) {
            (Ok(actor), Ok(node)) => ActorAddr::new(actor, node),
            _ => {
                let failure = JobFailure::new(
                    FailureCause::Undeliverable,
                    format!("bad node name {node:?}"),
                );
                self.core.attempt_failed(&job.id, job.attempt, failure, now);
                return;
            }
        };
        let env = Envelope::new(
            to,
            self.me.clone(),
            self.format,
            encode_job(&job, self.format),
        );
        let msg_id = env.id;
        self.dispatches
            .insert(msg_id, (job.id.clone(), job.attempt));
        if let Err(err) = self.router.send(env).await {
            self.dispatches.remove(&msg_id);
            let failure = JobFailure::new(
                FailureCause::Undeliverable,
                format!("cannot send to {WORKER}@{node}: {err}"),
            );
            self.core.attempt_failed(&job.id, job.attempt, failure, now);
        }
    }

    async fn complete(&mut self, result: JobResult) {
        self.progress.remove(&result.id);
        match self.waiters.remove(&result.id) {
            Some(Waiter::Local(tx)) => {
                let _ = tx.send(result);
            }
            Some(Waiter::Remote {
                to,
                request,
                format,
            }) => {
                let payload = match format {
                    PayloadFormat::Json => Bytes::from(result.to_json()),
                    _ => Bytes::from(result.to_bincode()),
                };
                let mut env = Envelope::new(to, self.me.clone(), format, payload);
                env.correlation_id = Some(request);
                self.send(env).await;
            }
            None => tracing::debug!(id = %result.id, "result without a waiter"),
        }
    }

    async fn send(&mut self, env: Envelope) {
        let to = env.to.clone();
        if let Err(err) = self.router.send(env).await {
            tracing::warn!(%to, %err, "cannot deliver a coordinator reply");
        }
    }
}

fn node_info(member: &Member) -> NodeInfo {
    let status = match member.status {
        MemberStatus::Up => NodeStatus::Up,
        MemberStatus::Suspect | MemberStatus::Leaving => NodeStatus::Suspect,
        _ => NodeStatus::Down,
    };
    NodeInfo {
        name: member.node.to_string(),
        status,
        tags: member.tags.clone(),
        load: NodeLoad {
            cpu: Some(member.load.cpu_percent),
            in_flight: member.load.in_flight,
            queue_depth: member.load.queue_depth,
        },
    }
}
