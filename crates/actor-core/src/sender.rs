//! The sending side of a mailbox, as held by an [`ActorRef`](crate::ActorRef):
//! either the actor's own channel sender, or a *mapped* sender that accepts
//! another message type and converts it on the way in (see
//! [`ActorRef::recipient`](crate::ActorRef::recipient)).
//!
//! A mapped send reserves a slot first and converts only once the slot is
//! held, so a failed send hands the caller's own message back unconverted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::error::{SendError, TrySendError};

/// A boxed, sendable future (one allocation per waiting send on a mapped
/// handle; direct handles never box).
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Puts one message into a reserved mailbox slot.
pub(crate) type Slot<M> = Box<dyn FnOnce(M) + Send>;

/// Why a slot could not be reserved.
pub(crate) enum ReserveError {
    Full,
    Closed,
}

/// A mailbox sender for messages of type `M`.
pub(crate) enum Tx<M> {
    /// The actor's own channel: `M` is its message type.
    Direct(mpsc::Sender<M>),
    /// A sender that converts `M` into the actor's message type.
    Mapped(Arc<dyn ErasedTx<M>>),
}

impl<M> Clone for Tx<M> {
    fn clone(&self) -> Self {
        match self {
            Tx::Direct(tx) => Tx::Direct(tx.clone()),
            Tx::Mapped(tx) => Tx::Mapped(Arc::clone(tx)),
        }
    }
}

impl<M: Send + 'static> Tx<M> {
    pub(crate) async fn send(&self, msg: M) -> Result<(), SendError<M>> {
        match self {
            Tx::Direct(tx) => tx.send(msg).await.map_err(|err| SendError(err.0)),
            Tx::Mapped(tx) => tx.send(msg).await,
        }
    }

    pub(crate) fn try_send(&self, msg: M) -> Result<(), TrySendError<M>> {
        match self {
            Tx::Direct(tx) => tx.try_send(msg).map_err(|err| match err {
                mpsc::error::TrySendError::Full(msg) => TrySendError::Full(msg),
                mpsc::error::TrySendError::Closed(msg) => TrySendError::Closed(msg),
            }),
            Tx::Mapped(tx) => tx.try_send(msg),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Tx::Direct(tx) => tx.is_closed(),
            Tx::Mapped(tx) => tx.is_closed(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        match self {
            Tx::Direct(tx) => tx.capacity(),
            Tx::Mapped(tx) => tx.capacity(),
        }
    }

    pub(crate) fn max_capacity(&self) -> usize {
        match self {
            Tx::Direct(tx) => tx.max_capacity(),
            Tx::Mapped(tx) => tx.max_capacity(),
        }
    }

    /// A sender of `N`, converted into `M` on the way in.
    pub(crate) fn map<N>(&self) -> Tx<N>
    where
        N: Send + 'static,
        M: From<N>,
    {
        match self {
            Tx::Direct(tx) => Tx::Mapped(Arc::new(Mapped { tx: tx.clone() })),
            Tx::Mapped(inner) => Tx::Mapped(Arc::new(Chained {
                inner: Arc::clone(inner),
            })),
        }
    }
}

/// The operations of a type-erased mapped sender of `N`.
pub(crate) trait ErasedTx<N>: Send + Sync {
    fn try_send(&self, msg: N) -> Result<(), TrySendError<N>>;
    fn send(&self, msg: N) -> BoxFuture<'_, Result<(), SendError<N>>>;
    /// Reserves a slot without waiting (used to chain mapped senders).
    fn try_slot(&self) -> Result<Slot<N>, ReserveError>;
    /// Reserves a slot, waiting for room.
    fn slot(&self) -> BoxFuture<'_, Option<Slot<N>>>;
    fn is_closed(&self) -> bool;
    fn capacity(&self) -> usize;
    fn max_capacity(&self) -> usize;
}

/// Converts `N` into the actor's message type `M`.
struct Mapped<M> {
    tx: mpsc::Sender<M>,
}

impl<M, N> ErasedTx<N> for Mapped<M>
where
    M: From<N> + Send + 'static,
    N: Send + 'static,
{
    fn try_send(&self, msg: N) -> Result<(), TrySendError<N>> {
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(M::from(msg));
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => Err(TrySendError::Full(msg)),
            Err(mpsc::error::TrySendError::Closed(())) => Err(TrySendError::Closed(msg)),
        }
    }

    fn send(&self, msg: N) -> BoxFuture<'_, Result<(), SendError<N>>> {
        Box::pin(async move {
            match self.tx.reserve().await {
                Ok(permit) => {
                    permit.send(M::from(msg));
                    Ok(())
                }
                Err(_) => Err(SendError(msg)),
            }
        })
    }

    fn try_slot(&self) -> Result<Slot<N>, ReserveError> {
        match self.tx.clone().try_reserve_owned() {
            Ok(permit) => Ok(Box::new(move |msg: N| {
                permit.send(M::from(msg));
            })),
            Err(mpsc::error::TrySendError::Full(_)) => Err(ReserveError::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(ReserveError::Closed),
        }
    }

    fn slot(&self) -> BoxFuture<'_, Option<Slot<N>>> {
        Box::pin(async move {
            let permit = self.tx.clone().reserve_owned().await.ok()?;
            Some(Box::new(move |msg: N| {
                permit.send(M::from(msg));
            }) as Slot<N>)
        })
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    fn capacity(&self) -> usize {
        self.tx.capacity()
    }

    fn max_capacity(&self) -> usize {
        self.tx.max_capacity()
    }
}

/// A recipient of a recipient: converts `N` into `M`, which the inner
/// mapped sender converts further. Each send boxes one slot.
struct Chained<M> {
    inner: Arc<dyn ErasedTx<M>>,
}

impl<M, N> ErasedTx<N> for Chained<M>
where
    M: From<N> + Send + 'static,
    N: Send + 'static,
{
    fn try_send(&self, msg: N) -> Result<(), TrySendError<N>> {
        match self.inner.try_slot() {
            Ok(slot) => {
                slot(M::from(msg));
                Ok(())
            }
            Err(ReserveError::Full) => Err(TrySendError::Full(msg)),
            Err(ReserveError::Closed) => Err(TrySendError::Closed(msg)),
        }
    }

    fn send(&self, msg: N) -> BoxFuture<'_, Result<(), SendError<N>>> {
        Box::pin(async move {
            match self.inner.slot().await {
                Some(slot) => {
                    slot(M::from(msg));
                    Ok(())
                }
                None => Err(SendError(msg)),
            }
        })
    }

    fn try_slot(&self) -> Result<Slot<N>, ReserveError> {
        let slot = self.inner.try_slot()?;
        Ok(Box::new(move |msg: N| slot(M::from(msg))))
    }

    fn slot(&self) -> BoxFuture<'_, Option<Slot<N>>> {
        Box::pin(async move {
            let slot = self.inner.slot().await?;
            Some(Box::new(move |msg: N| slot(M::from(msg))) as Slot<N>)
        })
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    fn max_capacity(&self) -> usize {
        self.inner.max_capacity()
    }
}
