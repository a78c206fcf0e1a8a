//! Reading another node's blobs: the [`PartitionFetcher`] trait, its
//! [`FetchError`], and the [`RouterFetcher`] that asks the holder's
//! `partitions` actor through the router (see `server.rs`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use cluster_router::{ActorAddr, EnvelopeKind, PayloadFormat, Router, RouterError};
use futures_util::stream::{self, StreamExt};
use tokio::sync::Semaphore;

use super::server::{partitions_addr, MAX_CHUNK};
use super::store::{BlobId, PartitionStore};
use super::wire::{
    decode_answer, encode_request, Answer, PartitionReply, PartitionRequest, WireError,
};

/// How a node fetches blobs (splits, map outputs, reduce outputs) from the
/// other nodes' `partitions` actors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchConfig {
    /// Bytes asked for per request (capped at 8 MiB); must leave
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

/// Why a blob could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The holder node is unknown, Down, or did not answer.
    #[error("node {node} is unavailable")]
    NodeUnavailable {
        /// The holder node.
        node: String,
    },
    /// The holder node answered but does not have the blob (it restarted
    /// or dropped the job).
    #[error("node {node} has no blob {id}")]
    Missing {
        /// The holder node.
        node: String,
        /// The blob asked for.
        id: BlobId,
    },
    /// The holder answered something that is not a valid answer.
    #[error("node {node} sent an invalid partition answer")]
    BadReply {
        /// The holder node.
        node: String,
        /// What was wrong with it.
        #[source]
        source: super::wire::WireError,
    },
    /// The holder has the blob as a file range but cannot read it (the
    /// file was removed or shortened during the job).
    #[error("node {node} cannot read blob {id} from its file")]
    Unreadable {
        /// The holder node.
        node: String,
        /// The blob asked for.
        id: BlobId,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The holder claims a blob larger than the fetcher accepts.
    #[error("node {node} holds blob {id} of {bytes} bytes; at most {limit} are accepted")]
    TooLarge {
        /// The holder node.
        node: String,
        /// The blob asked for.
        id: BlobId,
        /// Its claimed size.
        bytes: u64,
        /// The fetcher's limit.
        limit: u64,
    },
}

/// Reads a blob from the store of a (possibly remote) node.
///
/// In a cluster this is a request to the partition actor on `node`
/// (`RouterFetcher`); in unit tests, `InMemoryFetcher` reads the node's
/// store directly.
#[async_trait]
pub(crate) trait PartitionFetcher: Send + Sync + 'static {
    /// Fetches blob `id` from node `node`.
    ///
    /// # Errors
    ///
    /// [`FetchError`] if the node is unavailable or lacks the blob.
    async fn fetch(&self, node: &str, id: &BlobId) -> Result<Bytes, FetchError>;
}

/// A [`PartitionFetcher`] over in-process stores, one per node name.
///
/// Removing a node simulates its death: its blobs become unavailable.
#[cfg(test)]
#[derive(Clone, Debug, Default)]
pub(crate) struct InMemoryFetcher {
    nodes: Arc<parking_lot::RwLock<rustc_hash::FxHashMap<String, PartitionStore>>>,
}

#[cfg(test)]
impl InMemoryFetcher {
    /// A fetcher that knows no node.
    pub(crate) fn new() -> Self {
        InMemoryFetcher::default()
    }

    /// Makes `store` reachable as node `node`.
    pub(crate) fn add_node(&self, node: impl Into<String>, store: PartitionStore) {
        self.nodes.write().insert(node.into(), store);
    }

    /// Makes node `node` unreachable; returns its store if it was known.
    pub(crate) fn remove_node(&self, node: &str) -> Option<PartitionStore> {
        self.nodes.write().remove(node)
    }

    /// The store of node `node`.
    pub(crate) fn store(&self, node: &str) -> Option<PartitionStore> {
        self.nodes.read().get(node).cloned()
    }
}

#[cfg(test)]
#[async_trait]
impl PartitionFetcher for InMemoryFetcher {
    async fn fetch(&self, node: &str, id: &BlobId) -> Result<Bytes, FetchError> {
        let store = self
            .store(node)
            .ok_or_else(|| FetchError::NodeUnavailable {
                node: node.to_owned(),
            })?;
        store.read(node, id).await
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_fetcher_reports_missing_and_dead_nodes() {
        let fetcher = InMemoryFetcher::new();
        let store = PartitionStore::new();
        let id = BlobId::reduce_output("j", 2);
        store.put(id.clone(), Bytes::from_static(b"x")).unwrap();
        fetcher.add_node("n1", store);
        assert_eq!(&fetcher.fetch("n1", &id).await.unwrap()[..], b"x");
        let other = BlobId::reduce_output("j", 3);
        assert!(matches!(
            fetcher.fetch("n1", &other).await,
            Err(FetchError::Missing { .. })
        ));
        assert!(fetcher.remove_node("n1").is_some());
        assert!(matches!(
            fetcher.fetch("n1", &id).await,
            Err(FetchError::NodeUnavailable { .. })
        ));
        assert_eq!(id.to_string(), "j/Reduce/2/2");
    }
}
