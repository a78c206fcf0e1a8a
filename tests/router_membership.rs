//! Membership through the router: seed join and gossip, failure detection,
//! graceful leave, restart, tags and load.

mod support;

use std::time::Duration;

use cluster_router::{Load, MemberEvent, MemberStatus, NodeId, Router};
use support::router::*;

fn ids(nodes: &[Router]) -> Vec<NodeId> {
    nodes.iter().map(|n| n.node_id().clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_join_through_one_seed_and_a_sixth_joins_later() {
    let mut nodes = cluster(&["m-1", "m-2", "m-3", "m-4", "m-5"]).await;
    for node in &nodes {
        assert_eq!(node.members().len(), 5);
    }
    // The sixth knows only the seed, yet everyone learns of it by gossip.
    let sixth = start(fast("m-6").seeds([nodes[0].url()])).await;
    nodes.push(sixth);
    let all = ids(&nodes);
    let refs: Vec<&NodeId> = all.iter().collect();
    assert!(
        wait_until(STEP, || nodes.iter().all(|n| sees_up(n, &refs))).await,
        "not every node sees the sixth"
    );
    // Every node can reach every other through its own link.
    for node in &nodes {
        for other in &all {
            within(STEP, "ping", node.ping(other)).await.expect("ping");
        }
    }
    stop_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_is_down_everywhere() {
    let nodes = cluster(&["d-1", "d-2", "d-3"]).await;
    let victim = nodes[2].node_id().clone();
    let mut events = nodes[0].subscribe();
    nodes[2].shutdown().await;
    let started = std::time::Instant::now();
    let survivors = &nodes[..2];
    assert!(
        wait_until(STEP, || survivors
            .iter()
            .all(|n| status_of(n, &victim) == Some(MemberStatus::Down)))
        .await,
        "victim not Down everywhere"
    );
    // down_after is 600 ms; allow for a gossip round and a loaded machine.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "Down took {took:?}");
    assert!(survivors.iter().all(|n| n.get_all_peers().len() == 2));
    let saw_down = within(STEP, "Down event", async {
        loop {
            if let Ok(MemberEvent::Down(m)) = events.recv().await {
                if m.node == victim {
                    return true;
                }
            }
        }
    })
    .await;
    assert!(saw_down);
    stop_all(survivors).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_node_is_left_and_never_down() {
    let nodes = cluster(&["l-1", "l-2", "l-3"]).await;
    let leaver = nodes[2].node_id().clone();
    let mut events = [nodes[0].subscribe(), nodes[1].subscribe()];
    within(STEP, "leave", nodes[2].leave()).await;
    let survivors = &nodes[..2];
    assert!(
        wait_until(STEP, || survivors
            .iter()
            .all(|n| status_of(n, &leaver) == Some(MemberStatus::Left)))
        .await,
        "leaver not Left everywhere"
    );
    // Stay past down_after: still Left, and no Down/Suspect event was emitted.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(900);
    for rx in &mut events {
        let mut seen_left = false;
        while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if ev.member().node != leaver {
                continue;
            }
            match ev {
                MemberEvent::Left(_) => seen_left = true,
                MemberEvent::Down(_) | MemberEvent::Suspect(_) => {
                    panic!("leaver reported as failed: {ev:?}")
                }
                _ => {}
            }
        }
        assert!(seen_left, "no Left event");
    }
    assert!(survivors
        .iter()
        .all(|n| status_of(n, &leaver) == Some(MemberStatus::Left)));
    assert!(survivors.iter().all(|n| n.get_all_peers().len() == 2));
    stop_all(survivors).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_load_propagate() {
    let nodes = cluster(&["t-1", "t-2", "t-3"]).await;
    let source = nodes[1].node_id().clone();
    nodes[1].set_tags(vec!["gpu".into(), "kind:sha256".into()]);
    nodes[1].set_load(Load {
        cpu_percent: 42.5,
        in_flight: 7,
        queue_depth: 3,
    });
    let propagated = wait_until(STEP, || {
        nodes.iter().all(|n| {
            n.member(&source).is_some_and(|m| {
                m.has_tag("gpu")
                    && m.has_tag("kind:sha256")
                    && m.load.in_flight == 7
                    && m.load.queue_depth == 3
                    && (m.load.cpu_percent - 42.5).abs() < f32::EPSILON
            })
        })
    })
    .await;
    assert!(propagated, "tags/load did not reach every node");
    // Tags can be withdrawn too.
    nodes[1].set_tags(vec![]);
    assert!(
        wait_until(STEP, || nodes
            .iter()
            .all(|n| n.member(&source).is_some_and(|m| m.tags.is_empty())))
        .await
    );
    stop_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_node_that_restarts_is_up_again() {
    let nodes = cluster(&["r-1", "r-2"]).await;
    let name = nodes[1].node_id().clone();
    let old_incarnation = nodes[1].member(&name).unwrap().incarnation;
    nodes[1].shutdown().await;
    assert!(
        wait_until(STEP, || status_of(&nodes[0], &name)
            == Some(MemberStatus::Down))
        .await
    );
    let reborn = start(fast("r-2").seeds([nodes[0].url()])).await;
    assert!(
        wait_until(STEP, || status_of(&nodes[0], &name)
            == Some(MemberStatus::Up))
        .await,
        "restarted node not Up again"
    );
    let row = nodes[0].member(&name).unwrap();
    assert!(row.incarnation > old_incarnation);
    assert_eq!(row.url, reborn.url());
    within(STEP, "ping", nodes[0].ping(&name))
        .await
        .expect("ping reborn");
    stop_all(&[nodes[0].clone(), reborn]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_member_is_removed_after_the_grace_period_and_stays_out() {
    let configs = ["x-1", "x-2", "x-3"]
        .iter()
        .map(|name| {
            let mut cfg = fast(name);
            cfg.remove_after = Duration::from_secs(1);
            cfg
        })
        .collect();
    let nodes = cluster_of(configs).await;
    let victim = nodes[2].node_id().clone();
    let mut events = nodes[0].subscribe();
    nodes[2].shutdown().await;
    let removed = within(STEP, "Removed event", async {
        loop {
            match events.recv().await {
                Ok(MemberEvent::Removed(m)) if m.node == victim => return m,
                Ok(MemberEvent::Up(m)) if m.node == victim => panic!("came back: {m:?}"),
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(removed.status, MemberStatus::Down);
    let survivors = &nodes[..2];
    assert!(
        wait_until(STEP, || survivors
            .iter()
            .all(|n| n.member(&victim).is_none()))
        .await,
        "victim still listed"
    );
    // Gossip between the survivors keeps it out (tombstones).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for node in survivors {
        assert!(
            node.member(&victim).is_none(),
            "{} lists it again",
            node.node_id()
        );
        assert_eq!(node.members().len(), 2);
    }
    stop_all(survivors).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_routers_may_speak_the_system_protocol() {
    use bytes::Bytes;
    use cluster_router::{Envelope, EnvelopeKind, PayloadFormat};

    let nodes = cluster(&["sp-1", "sp-2"]).await;
    let (evil, mut inbox) = collector(&nodes[0], "evil");
    // A well-formed gossip message naming made-up members, sent by an
    // ordinary actor rather than a router.
    let gossip = cluster_router::fuzzing::system_wire_seeds()[1].clone();
    let to = cluster_router::ActorAddr::parse("system@sp-2").unwrap();
    let env = Envelope::new(to, evil, PayloadFormat::Binary, Bytes::from(gossip));
    within(STEP, "send", nodes[0].send(env))
        .await
        .expect("sent");
    let answer = within(STEP, "refusal", inbox.recv()).await.expect("answer");
    assert_eq!(answer.kind, EnvelopeKind::Error);
    let reason = answer.payload_str().unwrap_or_default();
    assert!(reason.contains("cluster nodes only"), "{reason}");
    assert_eq!(nodes[1].members().len(), 2, "the table was edited");
    stop_all(&nodes).await;
}
