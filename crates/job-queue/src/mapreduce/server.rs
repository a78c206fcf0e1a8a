//! The `partitions@<node>` actor: serves a node's [`PartitionStore`] to the
//! other nodes (chunked fetches, pipelined by the asker) and drops a job's
//! blobs when its driver says the job has ended.

use std::sync::Arc;

use actor_core::{Actor, BoxError, Context};
use async_trait::async_trait;
use bytes::Bytes;
use cluster_router::{
    ActorAddr, ActorName, Envelope, EnvelopeKind, NodeId, PayloadFormat, Router, RouterError,
};
use tokio::sync::Semaphore;

use super::source::FileRange;
use super::store::{PartitionStore, Stored};
use super::wire::{
    chunk_header, decode_request, encode_chunk, encode_reply, PartitionReply, PartitionRequest,
};

/// The well-known name of a node's partition actor: `partitions@<node>`.
pub(crate) const PARTITIONS: &str = "partitions";

/// The largest chunk a partition actor sends, whatever is asked: well
/// below the default 16 MiB frame limit.
pub(crate) const MAX_CHUNK: u32 = 8 << 20;

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
