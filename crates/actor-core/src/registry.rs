//! [`Registry`]: a local, typed name service for actors.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::actor_ref::{ActorRef, Lifecycle};
use crate::error::ActorError;

struct Entry {
    /// [`Lifecycle::id`] of the registered actor.
    id: usize,
    /// An `ActorRef<M>` for the actor's message type `M`.
    actor: Box<dyn Any + Send + Sync>,
}

/// The shared map behind a [`Registry`].
pub(crate) struct RegistryInner {
    entries: RwLock<HashMap<Arc<str>, Entry>>,
}

impl RegistryInner {
    /// Removes `name` if it still belongs to the actor `owner` (a newer actor
    /// may have taken the name meanwhile).
    pub(crate) fn remove_if(&self, name: &str, owner: &Lifecycle) {
        let mut entries = self.entries.write();
        if entries.get(name).is_some_and(|e| e.id == owner.id()) {
            entries.remove(name);
        }
    }
}

/// A local registry mapping names to live actors.
///
/// Cloning is cheap and every clone shares the same map. An actor is removed
/// automatically when it stops, whether it was registered with
/// [`Registry::register`] or through
/// [`SpawnOptions::registry`](crate::SpawnOptions::registry).
///
/// # Examples
///
/// ```
/// use actor_core::{spawn, Actor, BoxError, Context, Registry};
///
/// struct Echo;
/// #[async_trait::async_trait]
/// impl Actor for Echo {
///     type Message = String;
///     async fn handle(&mut self, _msg: String, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let registry = Registry::new();
/// let echo = spawn("echo", Echo);
/// registry.register(&echo).unwrap();
/// assert!(registry.lookup::<String>("echo").is_some());
/// assert!(registry.lookup::<u64>("echo").is_none()); // wrong message type
/// echo.stop();
/// echo.wait_stopped().await;
/// assert!(registry.lookup::<String>("echo").is_none());
/// # }
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<RegistryInner>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.names())
            .finish()
    }
}

impl Registry {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(RegistryInner {
                entries: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// Registers `actor` under its own name. The registry keeps a handle, so
    /// a registered actor stays alive until it is stopped or unregistered.
    ///
    /// # Errors
    ///
    /// [`ActorError::NameTaken`] if another actor holds the name,
    /// [`ActorError::NotAlive`] if the actor has already stopped.
    pub fn register<M: Send + 'static>(&self, actor: &ActorRef<M>) -> Result<(), ActorError> {
        let lifecycle = actor.lifecycle();
        let name = Arc::clone(lifecycle.name());
        let insert = || {
            let mut entries = self.inner.entries.write();
            if entries.contains_key(&name) {
                return Err(ActorError::NameTaken {
                    name: name.to_string(),
                });
            }
            let entry = Entry {
                id: lifecycle.id(),
                actor: Box::new(actor.clone()),
            };
            entries.insert(Arc::clone(&name), entry);
            Ok(())
        };
        let stopped = || ActorError::NotAlive {
            name: name.to_string(),
        };
        lifecycle.attach_registry(Arc::downgrade(&self.inner), insert, stopped)
    }

    /// Looks up a live actor by name. Returns `None` if no actor has the
    /// name, if it is stopping, or if its message type is not `M`.
    pub fn lookup<M: Send + 'static>(&self, name: &str) -> Option<ActorRef<M>> {
        let entries = self.inner.entries.read();
        let actor = entries.get(name)?.actor.downcast_ref::<ActorRef<M>>()?;
        actor.is_alive().then(|| actor.clone())
    }

    /// Removes `name` (does nothing if it is not registered). The actor keeps
    /// running.
    pub fn unregister(&self, name: &str) {
        self.inner.entries.write().remove(name);
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.inner.entries.read().contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .entries
            .read()
            .keys()
            .map(|name| name.to_string())
            .collect();
        names.sort_unstable();
        names
    }

    /// Number of registered actors.
    pub fn len(&self) -> usize {
        self.inner.entries.read().len()
    }

    /// Whether no actor is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
