//! Shuffle data over the router: the `partitions@<node>` actor that serves
//! a node's [`PartitionStore`], and the [`RouterFetcher`] that asks it.

use std::time::Duration;

use actor_core::{Actor, BoxError, Context};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use cluster_router::{
    ActorAddr, ActorName, Envelope, EnvelopeKind, NodeId, PayloadFormat, Router, RouterError,
};
use futures_util::stream::{self, StreamExt};

use super::store::{BlobId, FetchError, PartitionFetcher, PartitionStore};
use super::wire::{
    decode_answer, decode_request, encode_chunk, encode_reply, encode_request, Answer,
    PartitionReply, PartitionRequest, WireError,
};

/// The well-known name of a node's partition actor: `partitions@<node>`.
pub const PARTITIONS: &str = "partitions";

/// The largest chunk a partition actor sends, whatever is asked: well
/// below the default 16 MiB frame limit.
pub const MAX_CHUNK: u32 = 8 << 20;

/// Settings of a [`RouterFetcher`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchConfig {
    /// Bytes asked for per request (capped at [`MAX_CHUNK`]); must leave
    /// room under the cluster's frame limit. Default 4 MiB.
    pub chunk: u32,
    /// Timeout of each chunk request. Default 10 s.
    pub timeout: Duration,
    /// Chunk requests of one blob in flight at once. Default 4.
    pub pipeline: usize,
    /// The largest blob accepted (a holder claiming more is refused before
    /// anything is allocated). Default 4 GiB.
    pub max_blob: u64,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            chunk: 4 << 20,
            timeout: Duration::from_secs(10),
            pipeline: 4,
            max_blob: 4 << 30,
        }
    }
}

/// The partition actor: answers fetch and drop requests from one store.
pub(crate) struct PartitionServer {
    pub(crate) router: Router,
    pub(crate) store: PartitionStore,
}

#[async_trait]
impl Actor for PartitionServer {
    type Message = Envelope;

    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if env.kind != EnvelopeKind::Message {
            return Ok(());
        }
        let reply = match decode_request(&env.payload) {
            Ok(request) => self.answer(&env, request),
            Err(err) => {
                tracing::warn!(from = %env.from, %err, "undecodable partition request");
                env.error_reply(&format!("cannot decode partition request: {err}"))
            }
        };
        if let Err(err) = self.router.send(reply).await {
            tracing::debug!(to = %env.from, %err, "cannot answer a partition request");
        }
        Ok(())
    }
}

impl PartitionServer {
    fn answer(&self, env: &Envelope, request: PartitionRequest) -> Envelope {
        let payload = match request {
            PartitionRequest::Fetch {
                id,
                offset,
                max_len,
            } => match self.store.get(&id) {
                None => encode_reply(&PartitionReply::Missing),
                Some(blob) => {
                    let total = blob.len() as u64;
                    if offset > total {
                        encode_reply(&PartitionReply::BadOffset { total })
                    } else {
                        let start = offset as usize;
                        let len = max_len.clamp(1, MAX_CHUNK) as usize;
                        let end = blob.len().min(start.saturating_add(len));
                        encode_chunk(total, offset, &blob[start..end])
                    }
                }
            },
            PartitionRequest::DropJob { job } => {
                let blobs = self.store.remove_job(&job) as u64;
                tracing::debug!(%job, blobs, "map-reduce job data dropped");
                encode_reply(&PartitionReply::Dropped { blobs })
            }
        };
        env.reply_with(EnvelopeKind::Message, PayloadFormat::Binary, payload)
    }
}

/// The address of `node`'s partition actor.
pub(crate) fn partitions_addr(node: &str) -> Result<ActorAddr, RouterError> {
    let actor = ActorName::new(PARTITIONS)?;
    let node: NodeId = node.parse()?;
    Ok(ActorAddr::new(actor, node))
}

/// A [`PartitionFetcher`] that asks the holder's `partitions` actor
/// through the router; blobs larger than one chunk come in several
/// requests (pipelined), each bounded by a timeout. Blobs of this node are
/// read from its own store directly.
#[derive(Clone, Debug)]
pub struct RouterFetcher {
    router: Router,
    local: PartitionStore,
    config: FetchConfig,
}

fn unavailable(node: &str, err: &RouterError) -> FetchError {
    tracing::debug!(%node, %err, "partition fetch failed");
    FetchError::NodeUnavailable {
        node: node.to_owned(),
    }
}

impl RouterFetcher {
    /// A fetcher over `router`; `local` is this node's store.
    pub fn new(router: Router, local: PartitionStore, config: FetchConfig) -> Self {
        RouterFetcher {
            router,
            local,
            config,
        }
    }

    /// One request: `max_len` bytes of `id` at `offset` from `node`.
    async fn request(
        &self,
        node: &str,
        to: &ActorAddr,
        request: PartitionRequest,
    ) -> Result<Answer, FetchError> {
        let payload = encode_request(&request);
        let env = self
            .router
            .request(
                to.clone(),
                PayloadFormat::Binary,
                payload,
                self.config.timeout,
            )
            .await
            .map_err(|err| unavailable(node, &err))?;
        if env.kind != EnvelopeKind::Message {
            tracing::debug!(%node, kind = ?env.kind, reason = ?env.payload_str(), "partition request refused");
            return Err(FetchError::NodeUnavailable {
                node: node.to_owned(),
            });
        }
        decode_answer(&env.payload).map_err(|source| FetchError::BadReply {
            node: node.to_owned(),
            source,
        })
    }

    async fn chunk(
        &self,
        node: &str,
        to: &ActorAddr,
        id: &BlobId,
        offset: u64,
    ) -> Result<(u64, Bytes), FetchError> {
        let request = PartitionRequest::Fetch {
            id: id.clone(),
            offset,
            max_len: self.config.chunk.clamp(1, MAX_CHUNK),
        };
        let bad = |reason| FetchError::BadReply {
            node: node.to_owned(),
            source: WireError::BadChunk(reason),
        };
        match self.request(node, to, request).await? {
            Answer::Chunk {
                total,
                offset: at,
                data,
            } => {
                if at != offset {
                    return Err(bad("chunk at another offset"));
                }
                if data.is_empty() && offset < total {
                    return Err(bad("empty chunk before the blob's end"));
                }
                Ok((total, data))
            }
            Answer::Other(PartitionReply::Missing) => Err(FetchError::Missing {
                node: node.to_owned(),
                id: id.clone(),
            }),
            Answer::Other(_) => Err(bad("unexpected answer to a fetch")),
        }
    }

    /// Drops job `job`'s blobs on `node`; returns how many there were.
    ///
    /// # Errors
    ///
    /// [`FetchError`] if the node does not answer.
    pub async fn drop_job(&self, node: &str, job: &str) -> Result<u64, FetchError> {
        if node == self.router.node_id().as_str() {
            return Ok(self.local.remove_job(job) as u64);
        }
        let to = partitions_addr(node).map_err(|err| unavailable(node, &err))?;
        let request = PartitionRequest::DropJob {
            job: job.to_owned(),
        };
        match self.request(node, &to, request).await? {
            Answer::Other(PartitionReply::Dropped { blobs }) => Ok(blobs),
            _ => Err(FetchError::BadReply {
                node: node.to_owned(),
                source: WireError::BadChunk("unexpected answer to a drop"),
            }),
        }
    }
}

#[async_trait]
impl PartitionFetcher for RouterFetcher {
    async fn fetch(&self, node: &str, id: &BlobId) -> Result<Bytes, FetchError> {
        if node == self.router.node_id().as_str() {
            return self.local.get(id).ok_or_else(|| FetchError::Missing {
                node: node.to_owned(),
                id: id.clone(),
            });
        }
        let to = partitions_addr(node).map_err(|err| unavailable(node, &err))?;
        let (total, first) = self.chunk(node, &to, id, 0).await?;
        if first.len() as u64 == total {
            return Ok(first);
        }
        if total > self.config.max_blob {
            return Err(FetchError::TooLarge {
                node: node.to_owned(),
                id: id.clone(),
                bytes: total,
                limit: self.config.max_blob,
            });
        }
        // The rest in chunks of the size asked for (the holder sends full
        // chunks but the last).
        let step = first.len() as u64;
        if step != u64::from(self.config.chunk.clamp(1, MAX_CHUNK)) {
            return Err(FetchError::BadReply {
                node: node.to_owned(),
                source: WireError::BadChunk("a short chunk before the blob's end"),
            });
        }
        let offsets = (1..total.div_ceil(step)).map(|k| k * step);
        let mut blob = BytesMut::with_capacity(total as usize);
        blob.extend_from_slice(&first);
        drop(first);
        let mut chunks = stream::iter(offsets)
            .map(|offset| self.chunk(node, &to, id, offset))
            .buffered(self.config.pipeline.max(1));
        while let Some(chunk) = chunks.next().await {
            let (again, data) = chunk?;
            let expected = step.min(total - blob.len() as u64);
            if again != total || data.len() as u64 != expected {
                return Err(FetchError::BadReply {
                    node: node.to_owned(),
                    source: WireError::BadChunk("the blob changed while it was fetched"),
                });
            }
            blob.extend_from_slice(&data);
        }
        if blob.len() as u64 != total {
            return Err(FetchError::BadReply {
                node: node.to_owned(),
                source: WireError::BadChunk("chunks do not add up to the blob"),
            });
        }
        Ok(blob.freeze())
    }
}
