//! The client side of `submit`, `status` and `demo`: a [`Session`] with one
//! node over the WebSocket client edge, speaking the coordinator's and the
//! system actor's JSON protocols (`docs/jobs.md`, `docs/wire.md`).
//!
//! Jobs go to `coordinator@<node>` of the node connected to; each is
//! answered once, when final, with its `JobResult` JSON (or an `error`
//! envelope saying why it was refused). Job ids are assigned here when the
//! caller gave none (`<node>-c<client>-<n>`), so they are known at once.

use std::time::Duration;

use cluster_router::{client_token, Secret};
use serde::Deserialize;

use crate::client::{
    ClientEnvelope, ClientError, ClientFrame, ClientReceiver, ClientSender, ClusterClient,
};
use crate::http::{ClusterView, JobSubmission, MemberView, StatsView};
use crate::secret::ClusterSecret;

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The connection failed.
    #[error(transparent)]
    Client(Box<ClientError>),
    /// The node did not introduce itself (no welcome envelope).
    #[error("the node at {url} sent no welcome within {timeout:?}")]
    NoWelcome {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// A request was answered with an error or undeliverable envelope.
    #[error("{to} refused the request: {reason}")]
    Refused {
        /// The addressee.
        to: String,
        /// The reason it gave.
        reason: String,
    },
    /// A request got no answer in time.
    #[error("no answer from {to} within {timeout:?}")]
    Timeout {
        /// The addressee.
        to: String,
        /// The limit.
        timeout: Duration,
    },
    /// An answer did not have the expected shape.
    #[error("unexpected answer from {from}: {source}")]
    BadAnswer {
        /// The sender.
        from: String,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// The node reported that a frame of ours was malformed.
    #[error("the node rejected a frame: {0}")]
    Rejected(String),
}

impl From<ClientError> for RemoteError {
    fn from(err: ClientError) -> Self {
        RemoteError::Client(Box::new(err))
    }
}

/// One job's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobReply {
    /// The job's final `JobResult`, as JSON text; `success` says whether it
    /// carries a result rather than an error.
    Result {
        /// The JSON text.
        json: String,
        /// Whether the job succeeded.
        success: bool,
    },
    /// The coordinator refused the job (invalid, duplicate id, at capacity).
    Refused(String),
}

/// Most ids per `get`, `cancel` or `attach` command: the coordinator's bound.
pub use job_queue::MAX_IDS;

/// The answer to `get`: the records found and the ids nobody knows.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct Lookup {
    /// One JobRecord JSON object per known id.
    #[serde(default)]
    pub records: Vec<serde_json::Value>,
    /// The ids no coordinator knows.
    #[serde(default)]
    pub unknown: Vec<String>,
}

/// The first answer to `attach`.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct Attached {
    /// The ids whose results will follow.
    #[serde(default)]
    pub attached: Vec<String>,
    /// The ids this coordinator does not own.
    #[serde(default)]
    pub unknown: Vec<String>,
}

/// An authenticated session with one node.
#[derive(Debug)]
pub struct Session {
    sender: ClientSender,
    receiver: ClientReceiver,
    node: String,
    client_id: u64,
}

#[derive(Deserialize)]
struct Welcome {
    welcome: String,
}

impl Session {
    /// Connects to `url` with the client token of `secret` and waits for
    /// the node's welcome, all within `timeout`.
    ///
    /// # Errors
    ///
    /// [`RemoteError::Client`] (unreachable, wrong secret) or
    /// [`RemoteError::NoWelcome`].
    pub async fn connect(
        url: &str,
        secret: &ClusterSecret,
        timeout: Duration,
    ) -> Result<Session, RemoteError> {
        Self::connect_with(url, secret, timeout, None).await
    }

    /// [`Session::connect`] with TLS settings for `wss://` URLs.
    ///
    /// # Errors
    ///
    /// As [`Session::connect`].
    pub async fn connect_with(
        url: &str,
        secret: &ClusterSecret,
        timeout: Duration,
        tls: Option<&cluster_router::TlsConfig>,
    ) -> Result<Session, RemoteError> {
        let token = client_token(&Secret::from(secret.expose()));
        let client = ClusterClient::connect_with(url, &token, timeout, tls).await?;
        let client_id = client.client_id();
        let (sender, mut receiver) = client.into_split();
        let welcome = tokio::time::timeout(timeout, async {
            loop {
                if let ClientFrame::Envelope(env) = receiver.recv().await? {
                    if let Ok(w) = serde_json::from_str::<Welcome>(&env.payload) {
                        return Ok::<_, RemoteError>(w.welcome);
                    }
                }
            }
        })
        .await
        .map_err(|_| RemoteError::NoWelcome {
            url: url.to_owned(),
            timeout,
        })??;
        let node = welcome
            .split_once('@')
            .map_or(welcome.as_str(), |(_, node)| node)
            .to_owned();
        Ok(Session {
            sender,
            receiver,
            node,
            client_id,
        })
    }

    /// The name of the node connected to.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The halves and the node's name, for a caller that sends and
    /// receives from two tasks (`submit --file`).
    pub(crate) fn into_parts(self) -> (ClientSender, ClientReceiver, String) {
        (self.sender, self.receiver, self.node)
    }

    /// Sends `payload` to `to` and waits up to `timeout` for its answer,
    /// skipping unrelated envelopes.
    ///
    /// # Errors
    ///
    /// [`RemoteError::Refused`], [`RemoteError::Timeout`] or a connection
    /// error.
    pub async fn request(
        &mut self,
        to: &str,
        payload: &str,
        timeout: Duration,
    ) -> Result<ClientEnvelope, RemoteError> {
        let id = self.sender.send(to, payload).await?;
        let receiver = &mut self.receiver;
        let answer = tokio::time::timeout(timeout, async {
            loop {
                match receiver.recv().await? {
                    ClientFrame::Envelope(env) if env.correlation_id == id => return Ok(env),
                    ClientFrame::Envelope(_) => {}
                    ClientFrame::Error(err) => return Err(RemoteError::Rejected(err)),
                }
            }
        })
        .await
        .map_err(|_| RemoteError::Timeout {
            to: to.to_owned(),
            timeout,
        })??;
        if answer.kind != "message" {
            return Err(RemoteError::Refused {
                to: to.to_owned(),
                reason: reason_text(&answer.payload),
            });
        }
        Ok(answer)
    }

    /// Sends `payload` to `to` without waiting; returns its tag, which its
    /// answers carry as `correlation_id` (see [`answer_to`](Self::answer_to)).
    ///
    /// # Errors
    ///
    /// A connection error.
    pub async fn send(&mut self, to: &str, payload: &str) -> Result<u64, RemoteError> {
        Ok(self.sender.send(to, payload).await?)
    }

    /// The next answer to the message tagged `tag` (others are skipped),
    /// waiting at most `timeout` (`None`: as long as it takes).
    ///
    /// # Errors
    ///
    /// [`RemoteError::Refused`] for an error or undeliverable answer,
    /// [`RemoteError::Timeout`], or a connection error.
    pub async fn answer_to(
        &mut self,
        tag: u64,
        timeout: Option<Duration>,
    ) -> Result<ClientEnvelope, RemoteError> {
        let receiver = &mut self.receiver;
        let wait = async {
            loop {
                match receiver.recv().await? {
                    ClientFrame::Envelope(env) if env.correlation_id == tag => return Ok(env),
                    ClientFrame::Envelope(_) => {}
                    ClientFrame::Error(err) => return Err(RemoteError::Rejected(err)),
                }
            }
        };
        let answer =
            match timeout {
                Some(limit) => tokio::time::timeout(limit, wait).await.map_err(|_| {
                    RemoteError::Timeout {
                        to: format!("coordinator@{}", self.node),
                        timeout: limit,
                    }
                })??,
                None => wait.await?,
            };
        if answer.kind != "message" {
            return Err(RemoteError::Refused {
                to: answer.from.clone(),
                reason: reason_text(&answer.payload),
            });
        }
        Ok(answer)
    }

    /// Sends a command of the coordinator protocol (`docs/jobs.md`) to the
    /// connected node's coordinator and returns its JSON answer.
    ///
    /// # Errors
    ///
    /// See [`request`](Self::request); [`RemoteError::BadAnswer`].
    pub async fn command(
        &mut self,
        command: &serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, RemoteError> {
        let to = format!("coordinator@{}", self.node);
        let answer = self.request(&to, &command.to_string(), timeout).await?;
        decode(&answer)
    }

    /// The records of `ids` (at most [`MAX_IDS`] per call), found anywhere
    /// in the cluster: `{"records":[JobRecord..],"unknown":[ids..]}`.
    ///
    /// # Errors
    ///
    /// See [`command`](Self::command).
    pub async fn get(&mut self, ids: &[String], timeout: Duration) -> Result<Lookup, RemoteError> {
        let answer = self
            .command(&serde_json::json!({"cmd": "get", "ids": ids}), timeout)
            .await?;
        serde_json::from_value(answer).map_err(|source| RemoteError::BadAnswer {
            from: format!("coordinator@{}", self.node),
            source,
        })
    }

    /// Attaches to `ids` (jobs this node's coordinator owns): returns the
    /// tag their results will carry and the coordinator's first answer
    /// `{"attached":[..],"unknown":[..]}`; each attached job's result then
    /// arrives once, through [`answer_to`](Self::answer_to) with that tag.
    ///
    /// # Errors
    ///
    /// See [`answer_to`](Self::answer_to); [`RemoteError::BadAnswer`].
    pub async fn attach(
        &mut self,
        ids: &[String],
        timeout: Duration,
    ) -> Result<(u64, Attached), RemoteError> {
        let to = format!("coordinator@{}", self.node);
        let payload = serde_json::json!({"cmd": "attach", "ids": ids}).to_string();
        let tag = self.sender.send(&to, &payload).await?;
        let first = self.answer_to(tag, Some(timeout)).await?;
        Ok((tag, decode(&first)?))
    }

    /// The cluster as the connected node sees it (`links` counts the other
    /// members that are up or suspect).
    ///
    /// # Errors
    ///
    /// See [`request`](Self::request); [`RemoteError::BadAnswer`].
    pub async fn cluster(&mut self, timeout: Duration) -> Result<ClusterView, RemoteError> {
        #[derive(Deserialize)]
        struct Members {
            members: Vec<MemberView>,
        }
        let to = format!("system@{}", self.node);
        let answer = self.request(&to, r#"{"cmd":"members"}"#, timeout).await?;
        let Members { mut members } = decode(&answer)?;
        members.sort_by(|a, b| a.node.cmp(&b.node));
        let links = members
            .iter()
            .filter(|m| m.node != self.node && matches!(m.status.as_str(), "up" | "suspect"))
            .count();
        Ok(ClusterView {
            node: self.node.clone(),
            links: links as u64,
            members,
        })
    }

    /// The statistics of the connected node's coordinator.
    ///
    /// # Errors
    ///
    /// See [`request`](Self::request); [`RemoteError::BadAnswer`].
    pub async fn stats(&mut self, timeout: Duration) -> Result<StatsView, RemoteError> {
        let to = format!("coordinator@{}", self.node);
        let answer = self.request(&to, r#"{"cmd":"stats"}"#, timeout).await?;
        decode(&answer)
    }

    /// Submits `jobs` to the connected node's coordinator, giving each job
    /// without an id one (`<node>-c<client>-<n>`), and calls `on_reply`
    /// with each job's index as its answer arrives.
    ///
    /// With `wait`, returns once every job is answered. Without, returns
    /// once the coordinator has taken every submission (refusals are
    /// reported; results that happen to arrive meanwhile are too).
    ///
    /// # Errors
    ///
    /// A connection error; answers already reported stay reported.
    pub async fn submit_jobs(
        mut self,
        mut jobs: Vec<JobSubmission>,
        wait: bool,
        mut on_reply: impl FnMut(usize, &JobSubmission, JobReply),
    ) -> Result<Vec<JobSubmission>, RemoteError> {
        for (n, job) in jobs.iter_mut().enumerate() {
            if job.id.as_deref().is_none_or(str::is_empty) {
                job.id = Some(format!("{}-c{}-{}", self.node, self.client_id, n + 1));
            }
        }
        let first_id = self.sender.next_message_id();
        let to = format!("coordinator@{}", self.node);
        let payloads: Vec<String> = jobs
            .iter()
            .map(|job| serde_json::to_string(job).expect("a job submission always serialises"))
            .collect();
        let mut sender = self.sender;
        let send_to = to.clone();
        let sending = tokio::spawn(async move {
            for payload in &payloads {
                sender.send(&send_to, payload).await?;
            }
            // Barrier: the coordinator answers in order, so once this is
            // answered every submission before it was taken or refused.
            let barrier = sender.send(&send_to, r#"{"cmd":"stats"}"#).await?;
            Ok::<_, RemoteError>((sender, barrier))
        });
        let mut answered = vec![false; jobs.len()];
        let mut remaining = jobs.len();
        let barrier_id = first_id + jobs.len() as u64;
        let mut barrier_seen = false;
        while if wait { remaining > 0 } else { !barrier_seen } {
            let env = match self.receiver.recv().await? {
                ClientFrame::Envelope(env) => env,
                ClientFrame::Error(err) => return Err(RemoteError::Rejected(err)),
            };
            if env.correlation_id == barrier_id {
                barrier_seen = true;
                continue;
            }
            let Some(index) = env
                .correlation_id
                .checked_sub(first_id)
                .and_then(|i| usize::try_from(i).ok())
                .filter(|&i| i < jobs.len() && !answered[i])
            else {
                continue;
            };
            answered[index] = true;
            remaining -= 1;
            on_reply(index, &jobs[index], job_reply(&env));
        }
        match sending.await {
            Ok(Ok((sender, _))) => sender.close().await,
            Ok(Err(err)) => return Err(err),
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
        Ok(jobs)
    }
}

/// Classifies a coordinator's answer to a submission.
pub(crate) fn job_reply(env: &ClientEnvelope) -> JobReply {
    if env.kind != "message" {
        return JobReply::Refused(reason_text(&env.payload));
    }
    JobReply::Result {
        json: env.payload.clone(),
        success: succeeded(&env.payload),
    }
}

/// Whether a `JobResult`'s JSON says success (`error` absent or null).
pub(crate) fn succeeded(result_json: &str) -> bool {
    /// Only whether `error` is set.
    #[derive(Deserialize)]
    struct ErrorProbe {
        #[serde(default)]
        error: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_str::<ErrorProbe>(result_json)
        .map(|probe| probe.error.is_none())
        .unwrap_or(false)
}

/// An error payload is a JSON string (`"no actor named ..."`) or text.
pub(crate) fn reason_text(payload: &str) -> String {
    serde_json::from_str::<String>(payload).unwrap_or_else(|_| payload.to_owned())
}

fn decode<T: serde::de::DeserializeOwned>(env: &ClientEnvelope) -> Result<T, RemoteError> {
    serde_json::from_str(&env.payload).map_err(|source| RemoteError::BadAnswer {
        from: env.from.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(kind: &str, payload: &str) -> ClientEnvelope {
        ClientEnvelope {
            to: "client-1@n".into(),
            from: "coordinator@n".into(),
            payload: payload.into(),
            id: 9,
            correlation_id: 1,
            kind: kind.into(),
        }
    }

    #[test]
    fn replies_are_classified() {
        let ok = envelope(
            "message",
            r#"{"id":"a","result":"x","worker_node":"n","attempt":1,"elapsed_ms":0.1}"#,
        );
        assert!(matches!(
            job_reply(&ok),
            JobReply::Result { success: true, .. }
        ));
        let failed = envelope(
            "message",
            r#"{"id":"a","result":null,"error":{"cause":"handler","message":"m","retryable":false},"worker_node":"n","attempt":1,"elapsed_ms":0.1}"#,
        );
        assert!(matches!(
            job_reply(&failed),
            JobReply::Result { success: false, .. }
        ));
        let refused = envelope("error", r#""job a is already in progress""#);
        assert_eq!(
            job_reply(&refused),
            JobReply::Refused("job a is already in progress".into())
        );
        assert_eq!(reason_text("plain"), "plain");
    }
}
