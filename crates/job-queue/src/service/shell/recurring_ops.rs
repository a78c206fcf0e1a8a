//! Recurring jobs at the coordinator: firing them on the deadline sweep,
//! and adding, removing and listing them (library calls and the JSON
//! commands `recurring_add`, `recurring_remove`, `recurring_list`).

use std::time::Instant;

use bytes::Bytes;
use cluster_router::Envelope;
use serde::Serialize;

use tokio::sync::oneshot;

use super::super::journal::{Ack, Record};
use super::super::recurring::{RecurringError, RecurringJob};
use super::Shell;
use crate::mapreduce::{engine_kind_refusal, is_engine_kind};
use crate::record::now_ms;

/// One recurring job as the `recurring_list` command answers it.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    spec: &'a RecurringJob,
    next_ms: u64,
}

impl Shell {
    /// Submits the jobs whose fire time has come, like any submission
    /// (recorded, journaled); a fire whose id is already known (a restart
    /// firing the same time again) is not run twice.
    pub(super) fn fire_recurring(&mut self, now: Instant) {
        for job in self.recurring.due(now_ms()) {
            if self.records.contains(&job.id) {
                continue;
            }
            let id = job.id.clone();
            match self.submit_fresh(job, now) {
                Ok(id) => {
                    tracing::debug!(%id, "recurring job fired");
                    self.journal_submit(&id);
                }
                Err(err) => tracing::warn!(%id, %err, "recurring job not submitted"),
            }
        }
    }

    pub(super) fn add_recurring(&mut self, spec: RecurringJob) -> Result<u64, RecurringError> {
        let body = serde_json::to_vec(&spec).unwrap_or_default();
        let name = spec.name.clone();
        let next = self.recurring.insert(spec, now_ms())?;
        if self.journal.is_some() {
            self.journal_batch
                .records
                .push(Record::Recurring(name.clone(), body));
        }
        tracing::info!(%name, next_ms = next, "recurring job added");
        Ok(next)
    }

    pub(super) fn remove_recurring(&mut self, name: &str) -> bool {
        let removed = self.recurring.remove(name);
        if removed && self.journal.is_some() {
            self.journal_batch
                .records
                .push(Record::Unrecurring(name.to_owned()));
        }
        removed
    }

    /// Gives `answer` to `reply` once the change it reports is durable:
    /// after the journal's fsync of the current batch (an error if that
    /// fails), at once without a journal or when the change failed.
    pub(super) fn answer_when_durable<T: Send + 'static>(
        &mut self,
        answer: Result<T, RecurringError>,
        reply: impl FnOnce(Result<T, RecurringError>) + Send + 'static,
    ) {
        if answer.is_err() || self.journal.is_none() {
            return reply(answer);
        }
        let (tx, rx) = oneshot::channel();
        self.journal_batch.acks.push(Ack::Durable(tx));
        tokio::spawn(async move {
            let durable = rx.await.unwrap_or(Err(std::io::ErrorKind::BrokenPipe));
            reply(
                durable
                    .map_err(|kind| RecurringError::Journal { kind })
                    .and(answer),
            );
        });
    }

    /// Answers a `recurring_*` command (a change once it is durable).
    pub(super) fn on_recurring_command(&mut self, env: Envelope, cmd: RecurringCommand) {
        let answer = match cmd {
            RecurringCommand::Add(value) => match serde_json::from_value::<RecurringJob>(value) {
                Ok(spec) if env.sent_by_client() && is_engine_kind(&spec.job.kind) => {
                    Err(engine_kind_refusal(&spec.job.kind))
                }
                Ok(spec) => {
                    let name = spec.name.clone();
                    let added = self
                        .add_recurring(spec)
                        .map(|next_ms| serde_json::json!({"name": name, "next_ms": next_ms}));
                    return self.reply_when_durable(env, added);
                }
                Err(err) => Err(format!("bad recurring job: {err}")),
            },
            RecurringCommand::Remove(name) => {
                let removed = serde_json::json!({"removed": self.remove_recurring(&name)});
                return self.reply_when_durable(env, Ok(removed));
            }
            RecurringCommand::List => {
                let list = self.recurring.list();
                let listed: Vec<Listed<'_>> = list
                    .iter()
                    .map(|(spec, next_ms)| Listed {
                        spec,
                        next_ms: *next_ms,
                    })
                    .collect();
                serde_json::to_value(listed).map_err(|e| e.to_string())
            }
        };
        self.send(json_answer(&env, answer));
    }

    /// Replies to `env` with `answer` once the change is durable.
    fn reply_when_durable(
        &mut self,
        env: Envelope,
        answer: Result<serde_json::Value, RecurringError>,
    ) {
        let router = self.router.clone();
        self.answer_when_durable(answer, move |answer| {
            let reply = json_answer(&env, answer.map_err(|e| e.to_string()));
            // The journal's acknowledgement arrives on a task of its own;
            // the reply leaves from there.
            tokio::spawn(async move {
                if let Err(err) = router.send(reply).await {
                    tracing::warn!(%err, "cannot deliver a recurring-job answer");
                }
            });
        });
    }
}

fn json_answer(env: &Envelope, answer: Result<serde_json::Value, String>) -> Envelope {
    match answer {
        Ok(value) => env.reply(Bytes::from(value.to_string())),
        Err(reason) => env.error_reply(&reason),
    }
}

/// The recurring-job commands, as parsed.
#[derive(Debug)]
pub(in crate::service) enum RecurringCommand {
    /// `{"cmd":"recurring_add","recurring":{"name","cron","job"}}`.
    Add(serde_json::Value),
    /// `{"cmd":"recurring_remove","name":..}`.
    Remove(String),
    /// `{"cmd":"recurring_list"}`.
    List,
}
