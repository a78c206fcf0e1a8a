//! What arrives from the network besides dispatch bounces: worker replies
//! (results and progress) and requests from other nodes and external
//! clients (submissions and JSON commands).

use std::time::Instant;

use bytes::Bytes;
use cluster_router::{ActorAddr, Envelope, PayloadFormat};

use super::super::command::{self, Command};
use super::{RecurringCommand, Shell, Waiter};
use crate::handler::ProgressUpdate;
use crate::job::{Job, JobId};
use crate::mapreduce::{engine_kind_refusal, is_engine_kind};
use crate::protocol::{decode_job, decode_reply, encode_reply, WorkerReply};

impl Shell {
    pub(super) fn on_worker_reply(&mut self, env: &Envelope, now: Instant) {
        match decode_reply(&env.payload, env.format) {
            Ok(reply) => self.on_reply(&env.from, reply, now),
            Err(err) => tracing::warn!(from = %env.from, %err, "undecodable worker reply"),
        }
    }

    /// A worker pool's reply, from an envelope or (this node's pool) as a
    /// typed value.
    pub(super) fn on_reply(&mut self, from: &ActorAddr, reply: WorkerReply, now: Instant) {
        #[cfg(feature = "fault-injection")]
        if std::mem::take(&mut self.fault_armed) {
            panic!("injected fault: panicked while handling a reply from {from}");
        }
        let node = from.node().as_str();
        match reply {
            WorkerReply::Result(result) => {
                self.core.result_received(result, node, now);
            }
            WorkerReply::Results(results) => {
                for result in results {
                    self.core.result_received(result, node, now);
                }
            }
            WorkerReply::Fenced(incarnation, results) => {
                if incarnation != self.incarnation {
                    // Attempts an earlier incarnation of this coordinator
                    // dispatched: their jobs were resumed and run again.
                    tracing::debug!(%from, count = results.len(), "results of an earlier incarnation dropped");
                    self.core.count_late(results.len() as u64);
                    return;
                }
                for result in results {
                    self.core.result_received(result, node, now);
                }
            }
            WorkerReply::Progress(update) => {
                if self.core.is_running(&update.job_id, update.attempt) {
                    self.forward_progress(&update);
                    self.progress.insert(update.job_id.clone(), update);
                }
            }
        }
    }

    /// Hands a progress report to a submitter that asked for them.
    fn forward_progress(&mut self, update: &ProgressUpdate) {
        match self.waiter(&update.job_id) {
            Some(Waiter::Local {
                progress: Some(tx), ..
            }) => {
                let _ = tx.try_send(update.clone());
            }
            Some(Waiter::Remote {
                to,
                request,
                format,
                progress: true,
            }) => {
                let payload = encode_reply(&WorkerReply::Progress(update.clone()), *format);
                let mut env = Envelope::new(to.clone(), self.me.clone(), *format, payload);
                env.correlation_id = Some(*request);
                self.send(env);
            }
            _ => {}
        }
    }

    /// A submission or a command from a node or an external client.
    pub(super) fn on_request(&mut self, env: Envelope, now: Instant) {
        if env.format == PayloadFormat::Json {
            // A handle on the same bytes: a batch's jobs borrow from it.
            let payload = env.payload.clone();
            if let Some(cmd) = command::parse(&payload) {
                self.on_command(env, cmd, now);
                return;
            }
        }
        let job =
            decode_job(&env.payload, env.format).map_err(|e| format!("cannot decode job: {e}"));
        self.submit_remote(job, &env, false, false, now);
    }

    fn submit_remote(
        &mut self,
        job: Result<Job, String>,
        env: &Envelope,
        progress: bool,
        rerun: bool,
        now: Instant,
    ) {
        let job = match job {
            Ok(job) if env.sent_by_client() && is_engine_kind(&job.kind) => {
                Err(engine_kind_refusal(&job.kind))
            }
            Ok(job) if !rerun && !job.id.is_unassigned() && self.records.contains(&job.id) => {
                return self.wait_known(job.id, env, progress);
            }
            other => other,
        };
        let submitted = job.and_then(|job| {
            let accepted = if rerun {
                self.rerun(job, now)
            } else {
                self.submit_fresh(job, now)
            };
            accepted.map_err(|e| e.to_string())
        });
        match submitted {
            Ok(id) => {
                self.journal_submit(&id);
                self.wait_remote(id, env, progress);
            }
            Err(reason) => self.send(env.error_reply(&reason)),
        }
    }

    fn on_command(&mut self, env: Envelope, cmd: Result<Command<'_>, String>, now: Instant) {
        let reply = match cmd {
            Ok(Command::Stats) => match serde_json::to_vec(&self.core.stats()) {
                Ok(json) => env.reply(Bytes::from(json)),
                Err(err) => env.error_reply(&format!("cannot encode stats: {err}")),
            },
            Ok(Command::DeadLetters) => env.reply(Bytes::from(command::dead_letters_json(
                &self.core.dead_letters(),
            ))),
            Ok(Command::Resubmit { id }) => {
                let resubmitted = JobId::new(&id)
                    .map_err(|e| e.to_string())
                    .and_then(|id| self.resubmit(&id, now).map_err(|e| e.to_string()));
                match resubmitted {
                    Ok(id) => {
                        self.journal_submit(&id);
                        return self.wait_remote(id, &env, false);
                    }
                    Err(reason) => env.error_reply(&reason),
                }
            }
            Ok(Command::Submit {
                job,
                progress,
                rerun,
            }) => {
                let job =
                    Job::from_json(&job.to_string()).map_err(|e| format!("cannot decode job: {e}"));
                return self.submit_remote(job, &env, progress, rerun, now);
            }
            Ok(Command::SubmitBatch { jobs }) => return self.on_submit_batch(&env, jobs, now),
            Ok(Command::Get { ids, local }) => return self.on_get(env, ids, local),
            Ok(Command::Cancel { ids, local }) => return self.on_cancel(env, ids, local, now),
            Ok(Command::Attach { ids }) => return self.on_attach(env, ids),
            Ok(Command::Discard { id }) => return self.on_discard(env, &id),
            Ok(Command::RecurringAdd { recurring }) => {
                return self.on_recurring_command(env, RecurringCommand::Add(recurring))
            }
            Ok(Command::RecurringRemove { name }) => {
                return self.on_recurring_command(env, RecurringCommand::Remove(name))
            }
            Ok(Command::RecurringList) => {
                return self.on_recurring_command(env, RecurringCommand::List)
            }
            Err(reason) => env.error_reply(&reason),
        };
        self.send(reply);
    }

    fn wait_remote(&mut self, id: JobId, env: &Envelope, progress: bool) {
        let waiter = Waiter::Remote {
            to: env.from.clone(),
            request: env.id,
            format: env.format,
            progress,
        };
        self.wait_for(id, waiter);
    }
}
