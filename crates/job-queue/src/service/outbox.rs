//! Non-blocking sends for the coordinator and worker pool actors: an
//! envelope goes out at once when the router can take it without waiting;
//! otherwise it joins a per-node lane drained by one task, so a full link
//! never stalls an actor's mailbox (and results keep flowing while
//! dispatches wait, so two full directions cannot deadlock).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cluster_router::{Envelope, MessageId, NodeId, Router};
use futures_util::FutureExt;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

/// A send that failed after it was queued in a lane.
#[derive(Debug)]
pub(crate) struct SendFailure {
    /// The envelope's id.
    pub(crate) id: MessageId,
    /// Why it failed.
    pub(crate) reason: String,
}

struct Lane {
    tx: mpsc::UnboundedSender<Envelope>,
    /// Envelopes queued in the lane and not yet handed to the router.
    queued: Arc<AtomicUsize>,
}

pub(crate) struct Outbox {
    router: Router,
    lanes: FxHashMap<NodeId, Lane>,
    failures: mpsc::UnboundedSender<SendFailure>,
}

impl Outbox {
    pub(crate) fn new(router: Router) -> (Self, mpsc::UnboundedReceiver<SendFailure>) {
        let (failures, failed) = mpsc::unbounded_channel();
        let outbox = Outbox {
            router,
            lanes: FxHashMap::default(),
            failures,
        };
        (outbox, failed)
    }

    /// Sends `env` without waiting. `Err` is an immediate failure (unknown
    /// or Down node, stopped router); a failure after queueing is reported
    /// on the receiver returned by [`Outbox::new`].
    pub(crate) fn send(&mut self, env: Envelope) -> Result<(), String> {
        self.send_with(env, false)
    }

    /// [`send`](Self::send); with `own_json`, of a JSON payload this node
    /// serialized itself
    /// ([`Router::send_own_json`](cluster_router::Router::send_own_json)).
    pub(crate) fn send_with(&mut self, env: Envelope, own_json: bool) -> Result<(), String> {
        if let Some(lane) = self.lanes.get(env.to.node()) {
            if lane.queued.load(Ordering::Acquire) > 0 {
                // Keep per-node order: join the queue behind earlier sends.
                lane.queued.fetch_add(1, Ordering::AcqRel);
                let _ = lane.tx.send(env);
                return Ok(());
            }
        }
        // `Router::send` completes without waiting when the link's queue
        // (or the local mailbox) has room; when it would wait, the attempt
        // is dropped unsent (documented cancel safety) and the clone (cheap:
        // shared addresses and payload) goes to the lane.
        let sent = if own_json {
            self.router.send_own_json(env.clone()).now_or_never()
        } else {
            self.router.send(env.clone()).now_or_never()
        };
        match sent {
            Some(Ok(())) => Ok(()),
            Some(Err(err)) => Err(err.to_string()),
            None => {
                self.lane(env.to.node()).push(env);
                Ok(())
            }
        }
    }

    /// Whether envelopes to `node` wait in its lane (a send now would join
    /// them).
    pub(crate) fn is_queued(&self, node: &NodeId) -> bool {
        self.lanes
            .get(node)
            .is_some_and(|lane| lane.queued.load(Ordering::Acquire) > 0)
    }

    fn lane(&mut self, node: &NodeId) -> &Lane {
        let router = &self.router;
        let failures = &self.failures;
        self.lanes.entry(node.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let queued = Arc::new(AtomicUsize::new(0));
            tokio::spawn(drain(router.clone(), rx, queued.clone(), failures.clone()));
            Lane { tx, queued }
        })
    }
}

impl Lane {
    fn push(&self, env: Envelope) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        let _ = self.tx.send(env);
    }
}

/// Sends a lane's envelopes in order, waiting for link space as needed.
async fn drain(
    router: Router,
    mut rx: mpsc::UnboundedReceiver<Envelope>,
    queued: Arc<AtomicUsize>,
    failures: mpsc::UnboundedSender<SendFailure>,
) {
    while let Some(env) = rx.recv().await {
        let id = env.id;
        let to = env.to.clone();
        if let Err(err) = router.send(env).await {
            tracing::debug!(%to, %err, "queued send failed");
            let _ = failures.send(SendFailure {
                id,
                reason: err.to_string(),
            });
        }
        queued.fetch_sub(1, Ordering::AcqRel);
    }
}
