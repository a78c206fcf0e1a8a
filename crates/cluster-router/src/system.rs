//! The `system` actor of every node: JSON cluster commands (for nodes and
//! external clients alike) and the binary gossip/join protocol.

use std::sync::{Arc, Weak};
use std::time::Instant;

use actor_core::{Actor, BoxError, Context};
use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use crate::envelope::{Envelope, EnvelopeKind, PayloadFormat};
use crate::gossip;
use crate::membership::Changes;
use crate::route::error_chain;
use crate::router::Inner;
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

/// A gossip/join message from another node.
///
/// The answer is queued before the merged changes are applied: when the
/// sender announces that it left, applying them closes its link, and the
/// answer should be on its way first (the leaver also takes the close as
/// the acknowledgement, should the close overtake the answer).
fn on_system_message(inner: &Arc<Inner>, env: Envelope) {
    let result = wire::decode(&env.payload).and_then(|msg| match msg {
        SystemMessage::Join(rows) | SystemMessage::Gossip(rows) => Ok((merge(inner, rows)?, true)),
        SystemMessage::Table(rows) => Ok((merge(inner, rows)?, false)),
    });
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
        Err(err) => {
            let reason = error_chain(&err);
            tracing::warn!(from = %env.from, %reason, "refused a system message");
            inner.post(env.error_reply(&reason));
        }
    }
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
