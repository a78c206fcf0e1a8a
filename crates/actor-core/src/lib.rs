//! Local actors for jobmesh: bounded mailboxes, `tell` / `ask`, lifecycle
//! hooks and one-for-one supervision.
//!
//! # Guide
//!
//! An [`Actor`] owns its state and handles one message at a time. [`spawn`]
//! starts it on the current Tokio runtime and returns an [`ActorRef`], a
//! cheap-to-clone handle:
//!
//! - [`ActorRef::tell`] queues a message and *waits* while the bounded
//!   mailbox is full (backpressure); [`ActorRef::try_tell`] never waits and
//!   hands the message back in [`TrySendError::Full`] or
//!   [`TrySendError::Closed`].
//! - [`ActorRef::ask`] builds a request around a one-shot [`ReplyTo`] and
//!   waits for the answer under a timeout, failing with a typed [`AskError`].
//! - Messages from one sender are handled in the order they were sent.
//!
//! **Lifecycle.** [`Actor::started`] runs before the first message and
//! [`Actor::stopped`] after the last. An actor stops when
//! [`Context::stop`] or [`ActorRef::stop`] is called (after the current
//! message; queued messages are dropped), when every handle to it is gone
//! and its mailbox is drained, or when it fails.
//!
//! **Failures.** A handler (or `started`) that returns `Err` or panics fails
//! the actor. A plain [`spawn`]ed actor is then logged (`tracing::error!`)
//! and stopped. Under a [`Supervisor`] it is rebuilt by its factory instead,
//! keeping its mailbox: the failing message is dropped and every message
//! queued behind it is handled, in order, by the new instance. More than
//! [`RestartPolicy::max_restarts`] restarts within
//! [`RestartPolicy::within`] stop the child and report
//! [`ChildEvent::GaveUp`].
//!
//! **Runs.** The run loop takes what the mailbox holds, up to
//! [`SpawnOptions::batch`] messages, as one run; [`Actor::drained`] runs
//! after each run, so an actor can batch work across messages (one network
//! frame or one journal write per run). [`Context::linger`] makes a busy
//! actor's runs fuller.
//!
//! **One mailbox, several senders.** [`ActorRef::recipient`] gives a handle
//! that accepts another message type and converts it into the actor's own,
//! on the same mailbox; the actor's context feeds it timers
//! ([`Context::send_after`], [`Context::run_interval`]) and streams
//! ([`Context::forward`]), which end with the actor instance. So one actor
//! can react to network envelopes, local calls, ticks and events in one
//! ordered mailbox, with no forwarding task of its own.
//!
//! **Pools.** [`Supervisor::spawn_pool`] runs several members on one shared
//! mailbox: a free member takes the next message.
//!
//! **Names.** An actor's name is for logs and errors; this crate keeps no
//! name registry. Actors are found by name through the cluster router
//! (`cluster_router::Router::register`), which holds the routing state of
//! each name (overflow queue, whether clients may address it).
//!
//! **Performance.** The mailbox is a Tokio bounded `mpsc` channel; the run
//! loop drains it in batches into a reused buffer, and `ask` uses a Tokio
//! `oneshot`. The only allocation per message is the boxed handler future
//! that `async_trait` creates. See `benches/actor_core.rs` at the workspace
//! root for figures.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use actor_core::{spawn, Actor, BoxError, Context, ReplyTo};
//!
//! struct Counter { total: u64 }
//!
//! enum CounterMsg {
//!     Add(u64),
//!     Get(ReplyTo<u64>),
//! }
//!
//! #[async_trait::async_trait]
//! impl Actor for Counter {
//!     type Message = CounterMsg;
//!     async fn handle(&mut self, msg: CounterMsg, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
//!         match msg {
//!             CounterMsg::Add(n) => self.total += n,
//!             CounterMsg::Get(reply) => { reply.send(self.total); }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let counter = spawn("counter", Counter { total: 0 });
//! counter.tell(CounterMsg::Add(2)).await?;
//! counter.tell(CounterMsg::Add(3)).await?;
//! let total = counter.ask(CounterMsg::Get, Duration::from_secs(1)).await?;
//! assert_eq!(total, 5);
//! counter.stop();
//! counter.wait_stopped().await;
//! assert!(!counter.is_alive());
//! # Ok(())
//! # }
//! ```

mod actor;
mod actor_ref;
mod runner;
mod sender;
mod sources;
mod spawn;
mod supervisor;

pub use actor::{Actor, Context};
pub use actor_ref::{ActorRef, ReplyTo, StopWatch};
pub use error::{ActorError, AskError, BoxError, SendError, TrySendError};
pub use sources::SourceId;
pub use spawn::{spawn, spawn_with, SpawnOptions, DEFAULT_BATCH, DEFAULT_CAPACITY};
pub use supervisor::{ChildEvent, Failure, RestartPolicy, Supervisor};

pub mod error;

// The crate's README, tested as doctests (it does not replace the guide above).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
