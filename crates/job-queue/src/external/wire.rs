//! The JSON messages between an external worker (a client of the node) and
//! `external@<node>`. Decoded here, at the boundary, into [`ClientOp`]; the
//! node's own messages are built by the `*_frame` functions. The protocol
//! is documented in `docs/wire.md`, "External workers".

use serde::Deserialize;

use crate::job::Job;

/// What an external worker may send (`"op"` names the variant).
/// Unknown fields are ignored, as in every client envelope.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum ClientOp {
    /// Serve `kinds` with at most `concurrency` jobs at once.
    Register {
        kinds: Vec<String>,
        #[serde(default = "one")]
        concurrency: u32,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        heartbeat_ms: Option<u64>,
    },
    /// A sign of life (any message is one; this one says nothing else).
    Heartbeat {},
    /// Progress of a task this client was given.
    Progress {
        task: u64,
        #[serde(default)]
        fraction: f32,
        #[serde(default)]
        note: String,
    },
    /// The task's output: a JSON string is taken as its text, any other
    /// JSON value as its serialized text.
    Result {
        task: u64,
        result: serde_json::Value,
    },
    /// The task failed.
    Error {
        task: u64,
        #[serde(default)]
        message: String,
        #[serde(default)]
        retryable: bool,
        #[serde(default)]
        bad_data: bool,
    },
    /// Stop sending jobs to this registration; its running tasks finish.
    Unregister { worker: u64 },
}

fn one() -> u32 {
    1
}

/// Decodes a client's payload.
pub(crate) fn decode(payload: &[u8]) -> Result<ClientOp, serde_json::Error> {
    serde_json::from_slice(payload)
}

/// `{"op":"job","task":T,"worker":W,"job":{...}}`: a job for a worker.
pub(crate) fn job_frame(task: u64, worker: u64, job: &Job) -> String {
    format!(
        r#"{{"op":"job","task":{task},"worker":{worker},"job":{}}}"#,
        job.to_json()
    )
}

/// `{"op":"cancel","task":T,"reason":".."}`: stop a task.
pub(crate) fn cancel_frame(task: u64, reason: &str) -> String {
    serde_json::json!({ "op": "cancel", "task": task, "reason": reason }).to_string()
}

/// `{"op":"closed","worker":W,"reason":".."}`: the node dropped a
/// registration on its own (missed heartbeats).
pub(crate) fn closed_frame(worker: u64, reason: &str) -> String {
    serde_json::json!({ "op": "closed", "worker": worker, "reason": reason }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_decode_with_defaults_and_ignore_extra_fields() {
        let op = decode(br#"{"op":"register","kinds":["resize"],"x":1}"#).unwrap();
        assert_eq!(
            op,
            ClientOp::Register {
                kinds: vec!["resize".into()],
                concurrency: 1,
                tags: vec![],
                heartbeat_ms: None
            }
        );
        let op = decode(br#"{"op":"result","task":3,"result":{"w":2}}"#).unwrap();
        assert_eq!(
            op,
            ClientOp::Result {
                task: 3,
                result: serde_json::json!({"w":2})
            }
        );
        assert_eq!(
            decode(br#"{"op":"heartbeat"}"#).unwrap(),
            ClientOp::Heartbeat {}
        );
        assert!(decode(br#"{"op":"reboot"}"#).is_err());
        assert!(decode(br#"{"op":"result","task":-1,"result":""}"#).is_err());
        assert!(decode(b"[]").is_err());
    }

    #[test]
    fn job_frame_is_json() {
        let job = Job::new("resize", "{\"w\":1}");
        let frame: serde_json::Value = serde_json::from_str(&job_frame(7, 2, &job)).unwrap();
        assert_eq!(frame["op"], "job");
        assert_eq!(frame["task"], 7);
        assert_eq!(frame["job"]["kind"], "resize");
        assert_eq!(frame["job"]["data"], "{\"w\":1}");
    }
}
