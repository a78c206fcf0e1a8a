//! The `system` actor of every node: JSON cluster commands (for nodes and
//! external clients alike) and the binary gossip/join protocol.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actor_core::{Actor, BoxError, Context};
use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use crate::addr::NodeId;
use crate::envelope::{Envelope, EnvelopeKind, PayloadFormat};
use crate::gossip;
use crate::membership::Changes;
use crate::route::error_chain;
use crate::router::{Inner, REPLY, SYSTEM};
use crate::wire::{self, SystemMessage, WireError};

/// The JSON form of a command: `{"cmd":"members"}`, `{"cmd":"info"}`,
/// `{"cmd":"ping"}`.
#[derive(Debug, Deserialize)]
struct CommandJson {
    cmd: String,
}

/// A JSON cluster command the system actor answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// `{"cmd":"ping"}`: answers `{"pong": <node>}`.
    Ping,
    /// `{"cmd":"members"}`: the membership table.
    Members,
    /// `{"cmd":"info"}`: this node's own row, actors and counters.
    Info,
}

impl Command {
    /// Every command, for listing and tests.
    pub(crate) const ALL: [Command; 3] = [Command::Ping, Command::Members, Command::Info];

    /// The `cmd` string of this command.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Command::Ping => "ping",
            Command::Members => "members",
            Command::Info => "info",
        }
    }

    /// Parses a JSON command payload; the error is the text of the error
    /// reply sent back to the requester.
    pub(crate) fn parse(payload: &[u8]) -> Result<Command, String> {
        let json = serde_json::from_slice::<CommandJson>(payload).map_err(|err| {
            format!("expected a JSON command such as {{\"cmd\":\"members\"}}: {err}")
        })?;
        Command::ALL
            .into_iter()
            .find(|c| c.name() == json.cmd)
            .ok_or_else(|| {
                format!(
                    "unknown command {:?} (expected \"members\", \"info\" or \"ping\")",
                    json.cmd
                )
            })
    }
}

/// The actor registered as `system` on every node.
pub(crate) struct SystemActor {
    inner: Weak<Inner>,
}

impl SystemActor {
    pub(crate) fn new(inner: &Arc<Inner>) -> Self {
        Self {
            inner: Arc::downgrade(inner),
        }
    }
}

#[async_trait]
impl Actor for SystemActor {
    type Message = Envelope;

    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let Some(inner) = self.inner.upgrade() else {
            return Ok(());
        };
        if env.kind != EnvelopeKind::Message {
            tracing::debug!(from = %env.from, kind = ?env.kind, "system actor ignores a non-message");
            return Ok(());
        }
        match env.format {
            PayloadFormat::Binary => on_system_message(&inner, env),
            _ => on_command(&inner, env).await,
        }
        // Never fail: a failing plain actor would stop, taking gossip with it.
        Ok(())
    }
}

/// A system protocol message from another node: gossip and join, or the
/// failure detector's heartbeats and indirect checks.
///
/// Only the router of another node speaks this protocol (from its `system`
/// actor, or from its `_reply` mailbox during a leave); anything else, an
/// external client included, is refused: a client can never edit the
/// member table.
///
/// The answer to a table is queued before the merged changes are applied:
/// when the sender announces that it left, applying them closes its link,
/// and the answer should be on its way first (the leaver also takes the
/// close as the acknowledgement, should the close overtake the answer).
fn on_system_message(inner: &Arc<Inner>, env: Envelope) {
    let sender = env.from.actor().as_str();
    if sender != SYSTEM && sender != REPLY {
        tracing::warn!(from = %env.from, "refused a system protocol message from a non-router sender");
        inner.post(env.error_reply("the system protocol is for cluster nodes only"));
        return;
    }
    let msg = match wire::decode(&env.payload) {
        Ok(msg) => msg,
        Err(err) => return refuse(inner, env, &err),
    };
    let result = match msg {
        SystemMessage::Join(rows) | SystemMessage::Gossip(rows) => {
            merge(inner, rows).map(|c| (c, true))
        }
        SystemMessage::Table(rows) => merge(inner, rows).map(|c| (c, false)),
        SystemMessage::Heartbeat { incarnation } => {
            let changes =
                inner
                    .membership
                    .write()
                    .on_heartbeat(env.from.node(), incarnation, Instant::now());
            Ok((changes, false))
        }
        SystemMessage::Check { target } => {
            return match wire::check_target(&target) {
                Ok(target) => answer_check(inner, &env, target),
                Err(err) => refuse(inner, env, &err),
            }
        }
        SystemMessage::CheckAnswer {
            target,
            linked,
            silence_ms,
        } => {
            return match wire::check_target(&target) {
                Ok(target) => inner.membership.write().on_check_answer(
                    &target,
                    linked,
                    Duration::from_millis(u64::from(silence_ms)),
                    Instant::now(),
                ),
                Err(err) => refuse(inner, env, &err),
            }
        }
    };
    match result {
        Ok((changes, answer)) => {
            if answer {
                let rows = wire::to_wire(&inner.membership.read().members());
                let table = wire::encode(&SystemMessage::Table(rows));
                let answer = env.reply_with(EnvelopeKind::Message, PayloadFormat::Binary, table);
                gossip::send_gossip_answer(inner, answer);
            }
            gossip::apply(inner, changes);
        }
        Err(err) => refuse(inner, env, &err),
    }
}

/// Answers a refused system message with an Error envelope.
fn refuse(inner: &Inner, env: Envelope, err: &WireError) {
    let reason = error_chain(err);
    tracing::warn!(from = %env.from, %reason, "refused a system message");
    inner.post(env.error_reply(&reason));
}

/// A witness's answer to an indirect check: its own view of `target`.
fn answer_check(inner: &Arc<Inner>, env: &Envelope, target: NodeId) {
    let silence = inner.membership.read().silence_of(&target, Instant::now());
    let silence_ms = silence.map_or(u32::MAX, |s| {
        u32::try_from(s.as_millis()).unwrap_or(u32::MAX)
    });
    let linked = inner.transport.peers().iter().any(|p| p == target.as_str());
    let payload = wire::encode(&SystemMessage::CheckAnswer {
        target: target.to_string(),
        linked,
        silence_ms,
    });
    let answer = env.reply_with(EnvelopeKind::Message, PayloadFormat::Binary, payload);
    gossip::send_gossip_answer(inner, answer);
}

/// Merges a received table; the caller applies the returned changes.
fn merge(inner: &Inner, rows: Vec<wire::WireMember>) -> Result<Changes, WireError> {
    let members = wire::from_wire(rows)?;
    Ok(inner.membership.write().merge(members, Instant::now()))
}

/// A JSON cluster command; the answer goes back to `from`.
async fn on_command(inner: &Arc<Inner>, env: Envelope) {
    let mut answer = match Command::parse(&env.payload) {
        Ok(command) => env.reply(Bytes::from(command_answer(inner, command).to_string())),
        Err(reason) => env.error_reply(&reason),
    };
    answer.format = PayloadFormat::Json;
    if let Err(err) = inner.send(answer).await {
        tracing::debug!(to = %env.from, err = %error_chain(&err), "system answer not delivered");
    }
}

fn command_answer(inner: &Inner, command: Command) -> serde_json::Value {
    match command {
        Command::Ping => json!({ "pong": inner.node }),
        Command::Members => json!({ "members": inner.membership.read().members() }),
        Command::Info => {
            let me = inner.membership.read().me().clone();
            json!({
                "node": inner.node,
                "url": inner.url,
                "incarnation": me.incarnation,
                "status": me.status,
                "tags": me.tags,
                "load": me.load,
                "actors": inner.local_actor_names(),
                "peers_up": inner.membership.read().up_members().len(),
                "stats": inner.counters.snapshot(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Command;

    #[test]
    fn parses_the_three_commands() {
        for command in Command::ALL {
            let json = format!(r#"{{"cmd":"{}","extra":1}}"#, command.name());
            assert_eq!(Command::parse(json.as_bytes()), Ok(command));
        }
    }

    #[test]
    fn errors_say_what_was_expected() {
        let err = Command::parse(br#"{"cmd":"reboot"}"#).unwrap_err();
        assert!(err.starts_with("unknown command \"reboot\""), "{err}");
        let err = Command::parse(b"\xff{").unwrap_err();
        assert!(err.starts_with("expected a JSON command"), "{err}");
        assert!(Command::parse(br#"{"cmd":7}"#).is_err());
        assert!(Command::parse(b"").is_err());
    }
}
