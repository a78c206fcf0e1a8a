//! Shuffle data over the router: the `partitions@<node>` actor that serves
//! a node's [`PartitionStore`], and the [`RouterFetcher`] that asks it.

use std::sync::Arc;
use std::time::Duration;

use actor_core::{Actor, BoxError, Context};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use cluster_router::{
    ActorAddr, ActorName, Envelope, EnvelopeKind, NodeId, PayloadFormat, Router, RouterError,
};
use futures_util::stream::{self, StreamExt};
use tokio::sync::Semaphore;

use super::source::FileRange;
use super::store::{BlobId, FetchError, PartitionFetcher, PartitionStore, Stored};
use super::wire::{
    chunk_header, decode_answer, decode_request, encode_chunk, encode_reply, encode_request,
    Answer, PartitionReply, PartitionRequest, WireError,
};

/// The well-known name of a node's partition actor: `partitions@<node>`.
pub(crate) const PARTITIONS: &str = "partitions";

/// The largest chunk a partition actor sends, whatever is asked: well
/// below the default 16 MiB frame limit.
pub(crate) const MAX_CHUNK: u32 = 8 << 20;

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
    /// Chunk requests in flight at once from this node, over all its
    /// fetches (reduce tasks, map inputs, the merge): bounds the shuffle
    /// data in transit to a node to about `max_in_flight * chunk`.
    /// Default 8.
    pub max_in_flight: usize,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            chunk: 4 << 20,
            timeout: Duration::from_secs(10),
            pipeline: 4,
            max_blob: 4 << 30,
            max_in_flight: 8,
        }
    }
}

/// File-range chunks a partition actor reads at once; further requests
/// for file ranges wait (bounded memory and threads on the driver node).
const FILE_READS: usize = 4;

/// The partition actor: answers fetch and drop requests from one store.
pub(crate) struct PartitionServer {
    router: Router,
    store: PartitionStore,
    reads: Arc<Semaphore>,
}

impl PartitionServer {
    pub(crate) fn new(router: Router, store: PartitionStore) -> Self {
        PartitionServer {
            router,
            store,
            reads: Arc::new(Semaphore::new(FILE_READS)),
        }
    }
}

#[async_trait]
impl Actor for PartitionServer {
    type Message = Envelope;

    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if env.kind != EnvelopeKind::Message {
            return Ok(());
        }
        let payload = match decode_request(&env.payload) {
            Ok(PartitionRequest::Fetch {
                id,
                offset,
                max_len,
            }) => match self.store.entry(&id) {
                None => encode_reply(&PartitionReply::Missing),
                Some(Stored::Memory(blob)) => memory_chunk(&blob, offset, max_len),
                Some(Stored::File(range)) => {
                    self.serve_file(env, range, offset, max_len).await;
                    return Ok(());
                }
            },
            Ok(PartitionRequest::DropJob { job }) => {
                let blobs = self.store.remove_job(&job) as u64;
                tracing::debug!(%job, blobs, "map-reduce job data dropped");
                encode_reply(&PartitionReply::Dropped { blobs })
            }
            Err(err) => {
                tracing::warn!(from = %env.from, %err, "undecodable partition request");
                let reply = env.error_reply(&format!("cannot decode partition request: {err}"));
                send_reply(&self.router, reply).await;
                return Ok(());
            }
        };
        let reply = env.reply_with(EnvelopeKind::Message, PayloadFormat::Binary, payload);
        send_reply(&self.router, reply).await;
        Ok(())
    }
}

impl PartitionServer {
    /// Answers a fetch of a file range from a task of its own, reading the
    /// chunk on the blocking pool straight into the answer's buffer; at
    /// most [`FILE_READS`] at once (the actor waits for a slot).
    async fn serve_file(&self, env: Envelope, range: FileRange, offset: u64, max_len: u32) {
        let Ok(permit) = self.reads.clone().acquire_owned().await else {
            return;
        };
        let router = self.router.clone();
        tokio::spawn(async move {
            let read = tokio::task::spawn_blocking(move || file_chunk(&range, offset, max_len))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            drop(permit);
            let payload = read.unwrap_or_else(|err| {
                tracing::warn!(%err, "cannot read a staged input");
                encode_reply(&PartitionReply::Unreadable {
                    reason: err.to_string(),
                })
            });
            let reply = env.reply_with(EnvelopeKind::Message, PayloadFormat::Binary, payload);
            send_reply(&router, reply).await;
        });
    }
}

async fn send_reply(router: &Router, reply: Envelope) {
    let to = reply.to.to_string();
    if let Err(err) = router.send(reply).await {
        tracing::debug!(%to, %err, "cannot answer a partition request");
    }
}

/// Up to `max_len` bytes of an in-memory blob from `offset` (one copy
/// into the answer).
fn memory_chunk(blob: &Bytes, offset: u64, max_len: u32) -> Bytes {
    let total = blob.len() as u64;
    if offset > total {
        return encode_reply(&PartitionReply::BadOffset { total });
    }
    let start = offset as usize;
    let len = max_len.clamp(1, MAX_CHUNK) as usize;
    let end = blob.len().min(start.saturating_add(len));
    encode_chunk(total, offset, &blob[start..end])
}

/// Up to `max_len` bytes of a file range from `offset`, read into the
/// answer's buffer after its header (blocking).
fn file_chunk(range: &FileRange, offset: u64, max_len: u32) -> std::io::Result<Bytes> {
    let total = range.len;
    if offset > total {
        return Ok(encode_reply(&PartitionReply::BadOffset { total }));
    }
    let len = u64::from(max_len.clamp(1, MAX_CHUNK)).min(total - offset);
    let mut out = chunk_header(total, offset, len as usize);
    range.read_into(&mut out, offset, len)?;
    Ok(out.freeze())
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
pub(crate) struct RouterFetcher {
    router: Router,
    local: PartitionStore,
    config: FetchConfig,
    in_flight: Arc<Semaphore>,
}

fn unavailable(node: &str, err: &RouterError) -> FetchError {
    tracing::debug!(%node, %err, "partition fetch failed");
    FetchError::NodeUnavailable {
        node: node.to_owned(),
    }
}

impl RouterFetcher {
    /// A fetcher over `router`; `local` is this node's store.
    pub(crate) fn new(router: Router, local: PartitionStore, config: FetchConfig) -> Self {
        let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
        RouterFetcher {
            router,
            local,
            config,
            in_flight,
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
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| FetchError::NodeUnavailable {
                node: node.to_owned(),
            })?;
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
            Answer::Other(PartitionReply::Unreadable { reason }) => Err(FetchError::Unreadable {
                node: node.to_owned(),
                id: id.clone(),
                source: std::io::Error::other(reason),
            }),
            Answer::Other(_) => Err(bad("unexpected answer to a fetch")),
        }
    }

    /// Drops job `job`'s blobs on `node`; returns how many there were.
    ///
    /// # Errors
    ///
    /// [`FetchError`] if the node does not answer.
    pub(crate) async fn drop_job(&self, node: &str, job: &str) -> Result<u64, FetchError> {
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
            return self.local.read(node, id).await;
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
