//! The local registry: typed lookup, duplicate names, removal on stop.

use std::time::Duration;

use actor_core::{spawn, spawn_with, Actor, ActorError, BoxError, Context, Registry, SpawnOptions};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(5);

struct Named;

#[async_trait::async_trait]
impl Actor for Named {
    type Message = String;

    async fn handle(&mut self, _msg: String, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        Ok(())
    }
}

#[tokio::test]
async fn spawn_with_registry_registers_and_removes_on_stop() {
    let registry = Registry::new();
    let actor = spawn_with("alpha", Named, SpawnOptions::default().registry(&registry)).unwrap();
    assert_eq!(registry.names(), vec!["alpha".to_owned()]);
    let found = registry.lookup::<String>("alpha").expect("registered");
    assert!(found.same_actor(&actor));
    assert!(registry.lookup::<u64>("alpha").is_none(), "typed lookup");
    assert!(registry.lookup::<String>("beta").is_none());

    actor.stop();
    timeout(LIMIT, actor.wait_stopped()).await.unwrap();
    assert!(registry.lookup::<String>("alpha").is_none());
    assert!(registry.is_empty());
}

#[tokio::test]
async fn duplicate_names_are_rejected() {
    let registry = Registry::new();
    let first = spawn_with("dup", Named, SpawnOptions::default().registry(&registry)).unwrap();
    let err = spawn_with("dup", Named, SpawnOptions::default().registry(&registry)).unwrap_err();
    assert_eq!(
        err,
        ActorError::NameTaken {
            name: "dup".to_owned()
        }
    );
    let other = spawn("dup", Named);
    assert_eq!(
        registry.register(&other).unwrap_err(),
        ActorError::NameTaken {
            name: "dup".to_owned()
        }
    );
    assert!(registry.lookup::<String>("dup").unwrap().same_actor(&first));
}

#[tokio::test]
async fn manual_registration_is_removed_on_stop_too() {
    let registry = Registry::new();
    let actor = spawn("manual", Named);
    registry.register(&actor).unwrap();
    assert!(registry.contains("manual"));
    actor.stop();
    timeout(LIMIT, actor.wait_stopped()).await.unwrap();
    assert!(!registry.contains("manual"));
    assert_eq!(
        registry.register(&actor).unwrap_err(),
        ActorError::NotAlive {
            name: "manual".to_owned()
        }
    );
}

#[tokio::test]
async fn a_stopping_actor_does_not_remove_its_successor() {
    let registry = Registry::new();
    let old = spawn("slot", Named);
    registry.register(&old).unwrap();
    registry.unregister("slot");
    let new = spawn_with("slot", Named, SpawnOptions::default().registry(&registry)).unwrap();
    old.stop();
    timeout(LIMIT, old.wait_stopped()).await.unwrap();
    assert!(registry.lookup::<String>("slot").unwrap().same_actor(&new));
}

#[tokio::test]
async fn one_actor_in_several_registries_leaves_all() {
    let (a, b) = (Registry::new(), Registry::new());
    let actor = spawn_with("both", Named, SpawnOptions::default().registry(&a)).unwrap();
    b.register(&actor).unwrap();
    actor.stop();
    timeout(LIMIT, actor.wait_stopped()).await.unwrap();
    assert!(a.is_empty() && b.is_empty());
}
