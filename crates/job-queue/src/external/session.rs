//! What an external worker sends: each message decoded, validated against
//! what the client holds, applied, and answered.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster_router::{ActorAddr, Envelope, PayloadFormat};

use super::wire::{self, ClientOp};
use super::{check_name, truncate, ClientState, Effect, ExternalWorkers, Registration, Task};
use crate::failure::{FailureCause, JobFailure};
use crate::handler::ProgressUpdate;
use crate::job::{Job, JobResult};

impl<T: Clone> ExternalWorkers<T> {
    /// A message from a client to `external@<node>`; always answered.
    pub(crate) fn on_message(&mut self, env: &Envelope, now: Instant) {
        let answer = self.handle(env, now);
        let reply = match answer {
            Ok(payload) => env.reply(Bytes::from(payload.to_string())),
            Err(why) => {
                tracing::debug!(from = %env.from, %why, "external worker message refused");
                env.error_reply(&why)
            }
        };
        self.effects.push(Effect::Send(reply));
    }

    fn handle(&mut self, env: &Envelope, now: Instant) -> Result<serde_json::Value, String> {
        let client = &env.from;
        if client.node() != self.me.node() || !client.actor().as_str().starts_with("client-") {
            return Err(format!(
                "{} takes messages from clients of {} only",
                self.me, self.node
            ));
        }
        if env.format != PayloadFormat::Json {
            return Err("external worker messages are JSON".to_owned());
        }
        let op = wire::decode(&env.payload)
            .map_err(|err| format!("malformed external worker message: {err}"))?;
        if let Some(state) = self.clients.get_mut(client) {
            state.last_seen = now;
        }
        match op {
            ClientOp::Register {
                kinds,
                concurrency,
                tags,
                heartbeat_ms,
            } => self.register(client, kinds, concurrency, tags, heartbeat_ms, now),
            ClientOp::Heartbeat {} => Ok(serde_json::json!({
                "op": "heartbeat",
                "workers": self.clients.get(client).map_or(0, |c| c.registrations.len()),
            })),
            ClientOp::Progress {
                task,
                fraction,
                note,
            } => self.progress(client, task, fraction, note),
            ClientOp::Result { task, result } => {
                let text = match result {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                if text.len() > Job::MAX_DATA_LEN {
                    return Err(format!(
                        "result of task {task} is {} bytes (at most {} allowed)",
                        text.len(),
                        Job::MAX_DATA_LEN
                    ));
                }
                self.answer(client, task, Ok(text), now)
            }
            ClientOp::Error {
                task,
                message,
                retryable,
                bad_data,
            } => {
                let message = truncate(message);
                let failure = if bad_data {
                    JobFailure::new(FailureCause::BadData, message)
                } else {
                    JobFailure {
                        cause: FailureCause::Handler,
                        message,
                        retryable,
                    }
                };
                self.answer(client, task, Err(failure), now)
            }
            ClientOp::Unregister { worker } => self.unregister(client, worker),
        }
    }

    fn register(
        &mut self,
        client: &ActorAddr,
        kinds: Vec<String>,
        concurrency: u32,
        tags: Vec<String>,
        heartbeat_ms: Option<u64>,
        now: Instant,
    ) -> Result<serde_json::Value, String> {
        let limits = &self.limits;
        if !limits.enabled {
            return Err("external workers are disabled on this node".to_owned());
        }
        if kinds.is_empty() || kinds.len() > limits.kinds {
            return Err(format!("register 1..={} kinds", limits.kinds));
        }
        for kind in &kinds {
            check_name("kind", kind)?;
            // Their reports steer a map-reduce driver (which node holds
            // which output): a client must not answer them.
            if crate::mapreduce::is_engine_kind(kind) {
                return Err(crate::mapreduce::engine_kind_refusal(kind));
            }
            if self.local_kinds.iter().any(|k| k == kind) {
                return Err(format!(
                    "kind {kind:?} is served by {}'s own handlers",
                    self.node
                ));
            }
            if let Some(allowed) = &limits.allowed_kinds {
                if !allowed.iter().any(|k| k == kind) {
                    return Err(format!(
                        "external workers on {} may only serve {}; not {kind:?}",
                        self.node,
                        allowed.join(", ")
                    ));
                }
            }
        }
        if tags.len() > limits.tags {
            return Err(format!("at most {} tags", limits.tags));
        }
        for tag in &tags {
            check_name("tag", tag)?;
        }
        let (min, default, max) = limits.heartbeat;
        let heartbeat = heartbeat_ms.map_or(default, Duration::from_millis);
        if heartbeat < min || heartbeat > max {
            return Err(format!(
                "heartbeat_ms must be {}..={}",
                min.as_millis(),
                max.as_millis()
            ));
        }
        let state = self.clients.get(client);
        let held = state.map_or(0, |c| c.registrations.len());
        let used = state.map_or(0, |c| c.concurrency);
        if concurrency == 0 || used.saturating_add(concurrency) > limits.concurrency_per_client {
            return Err(format!(
                "concurrency must be >= 1 and the client's total at most {} ({used} registered)",
                limits.concurrency_per_client
            ));
        }
        if held >= limits.registrations_per_client || self.workers.len() >= limits.registrations {
            return Err(format!(
                "too many registrations (at most {} per client, {} per node)",
                limits.registrations_per_client, limits.registrations
            ));
        }
        let mut kinds = kinds;
        kinds.sort_unstable();
        kinds.dedup();
        let id = self.next_worker;
        self.next_worker += 1;
        let state = self
            .clients
            .entry(client.clone())
            .or_insert_with(|| ClientState {
                registrations: Vec::new(),
                last_seen: now,
                heartbeat,
                concurrency: 0,
            });
        state.registrations.push(id);
        state.concurrency += concurrency;
        state.heartbeat = heartbeat;
        for kind in &kinds {
            *self.serving.entry(kind.clone()).or_default() += 1;
        }
        let answer = serde_json::json!({
            "op": "registered", "worker": id, "node": &*self.node, "kinds": kinds,
            "concurrency": concurrency, "heartbeat_ms": heartbeat.as_millis() as u64,
        });
        tracing::info!(%client, worker = id, ?kinds, concurrency, "external worker registered");
        self.workers.insert(
            id,
            Registration {
                client: client.clone(),
                kinds,
                tags,
                concurrency: concurrency as usize,
                running: 0,
                active: true,
            },
        );
        self.effects.push(Effect::Advertise);
        self.pump(id, now);
        Ok(answer)
    }

    fn unregister(&mut self, client: &ActorAddr, worker: u64) -> Result<serde_json::Value, String> {
        let Some(reg) = self
            .workers
            .get_mut(&worker)
            .filter(|w| &w.client == client)
        else {
            return Err(format!("worker {worker} is not registered by {client}"));
        };
        let running = reg.running;
        if reg.active {
            reg.active = false;
            let kinds = reg.kinds.clone();
            self.stop_serving(&kinds);
            self.effects.push(Effect::Advertise);
        }
        if running == 0 {
            self.remove_worker(worker);
        }
        tracing::info!(%client, worker, running, "external worker unregistered");
        Ok(serde_json::json!({ "op": "unregistered", "worker": worker, "running": running }))
    }

    fn progress(
        &mut self,
        client: &ActorAddr,
        task_id: u64,
        fraction: f32,
        note: String,
    ) -> Result<serde_json::Value, String> {
        let task = self.own_task(client, task_id)?;
        if let Some(ticket) = &task.ticket {
            let update = ProgressUpdate {
                job_id: task.job_id.clone(),
                attempt: task.attempt,
                fraction: if fraction.is_finite() {
                    fraction.clamp(0.0, 1.0)
                } else {
                    0.0
                },
                note: truncate(note),
            };
            let ticket = ticket.clone();
            self.effects.push(Effect::Progress(update, ticket));
        }
        Ok(serde_json::json!({ "op": "ack", "task": task_id }))
    }

    /// The worker's answer to one of its tasks: its result, unless the
    /// attempt already has one; the slot is free again either way.
    fn answer(
        &mut self,
        client: &ActorAddr,
        task_id: u64,
        outcome: Result<String, JobFailure>,
        now: Instant,
    ) -> Result<serde_json::Value, String> {
        self.own_task(client, task_id)?;
        let Some(task) = self.tasks.remove(&task_id) else {
            return Err(format!("task {task_id} is unknown"));
        };
        self.unindex(&task.requester, &task.job_id, task_id);
        let late = task.ticket.is_none();
        if let Some(ticket) = task.ticket {
            let elapsed = now.saturating_duration_since(task.dispatched);
            let node = &*self.node;
            let result = match outcome {
                Ok(text) => JobResult::success(task.job_id, text, node, task.attempt, elapsed),
                Err(failure) => {
                    JobResult::failure(task.job_id, failure, node, task.attempt, elapsed)
                }
            };
            self.effects.push(Effect::Finished(result, ticket));
        }
        self.slot_freed(task.worker, now);
        Ok(serde_json::json!({ "op": "ack", "task": task_id, "late": late }))
    }

    fn own_task(&self, client: &ActorAddr, task_id: u64) -> Result<&Task<T>, String> {
        self.tasks
            .get(&task_id)
            .filter(|t| &t.client == client)
            .ok_or_else(|| {
                format!(
                    "task {task_id} is not running on {client} (never given to it, already answered, or its worker was dropped)"
                )
            })
    }
}
