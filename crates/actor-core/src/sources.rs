//! Message sources owned by an actor instance: timers and forwarded streams,
//! each one task that feeds the actor's mailbox and is aborted when the
//! instance ends.

use std::fmt;

use futures_util::{Stream, StreamExt};
use tokio::task::AbortHandle;

use crate::actor_ref::WeakActorRef;

/// Identifies a timer or forwarded stream of one actor instance, for
/// [`Context::cancel`](crate::Context::cancel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceId(u64);

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "source-{}", self.0)
    }
}

/// The running sources of one actor instance.
#[derive(Default)]
pub(crate) struct Sources {
    next: u64,
    running: Vec<(SourceId, AbortHandle)>,
}

impl Sources {
    /// Running sources (finished ones may still be counted until the next
    /// spawn prunes them).
    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }

    /// Starts a task that forwards `stream`'s items, mapped, to `actor`.
    pub(crate) fn spawn<M, S, F>(&mut self, actor: WeakActorRef<M>, stream: S, map: F) -> SourceId
    where
        M: Send + 'static,
        S: Stream + Send + 'static,
        F: FnMut(S::Item) -> M + Send + 'static,
    {
        self.running.retain(|(_, task)| !task.is_finished());
        self.next += 1;
        let id = SourceId(self.next);
        let task = tokio::spawn(feed(actor, stream, map));
        self.running.push((id, task.abort_handle()));
        id
    }

    pub(crate) fn cancel(&mut self, id: SourceId) -> bool {
        let Some(at) = self.running.iter().position(|(i, _)| *i == id) else {
            return false;
        };
        let (_, task) = self.running.swap_remove(at);
        let running = !task.is_finished();
        task.abort();
        running
    }

    pub(crate) fn cancel_all(&mut self) {
        for (_, task) in self.running.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Sources {
    fn drop(&mut self) {
        self.cancel_all();
    }
}

/// Tells each item to the actor, waiting for room; ends with the stream or
/// once the actor has stopped (or every strong handle to it is gone).
async fn feed<M, S, F>(actor: WeakActorRef<M>, stream: S, mut map: F)
where
    M: Send + 'static,
    S: Stream + Send + 'static,
    F: FnMut(S::Item) -> M + Send + 'static,
{
    let mut stream = std::pin::pin!(stream);
    loop {
        // The item is converted before the next await, so only the message
        // (which is `Send`) is held across it.
        let msg = match stream.next().await {
            Some(item) => map(item),
            None => return,
        };
        let Some(actor) = actor.try_upgrade() else {
            return;
        };
        if actor.tell(msg).await.is_err() {
            return;
        }
    }
}
