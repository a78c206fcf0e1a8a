//! Routing through the router: local and remote delivery, replies to
//! `from`, Undeliverable answers, unknown nodes, the system actor.

mod support;

use std::time::Duration;

use bytes::Bytes;
use cluster_router::{ActorAddr, Envelope, EnvelopeKind, NodeId, PayloadFormat, RouterError};
use support::router::*;

fn addr(s: &str) -> ActorAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_reaches_from_across_nodes() {
    let nodes = cluster(&["x-a", "x-b"]).await;
    let echo_addr = echo(&nodes[1], "echo");
    let (me, mut inbox) = collector(&nodes[0], "asker");
    let request = Envelope::new(
        echo_addr.clone(),
        me.clone(),
        PayloadFormat::Json,
        Bytes::from_static(br#"{"n":1}"#),
    );
    within(STEP, "send", nodes[0].send(request.clone()))
        .await
        .unwrap();
    let reply = within(STEP, "reply", inbox.recv()).await.unwrap();
    assert_eq!(reply.to, me);
    assert_eq!(reply.from, echo_addr);
    assert_eq!(reply.correlation_id, Some(request.id));
    assert_eq!(reply.kind, EnvelopeKind::Message);
    assert_eq!(&reply.payload[..], br#"{"n":1}"#);
    assert!(nodes[0].stats().routed_remote >= 1);
    assert!(nodes[1].stats().routed_local >= 1);
    stop_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_actor_comes_back_undeliverable() {
    let nodes = cluster(&["u-a", "u-b"]).await;
    let (me, mut inbox) = collector(&nodes[0], "sender");
    let ghost = addr("ghost@u-b");
    let request = Envelope::new(
        ghost.clone(),
        me.clone(),
        PayloadFormat::Json,
        Bytes::from_static(b"1"),
    );
    within(STEP, "send", nodes[0].send(request.clone()))
        .await
        .unwrap();
    let answer = within(STEP, "undeliverable", inbox.recv()).await.unwrap();
    assert_eq!(answer.kind, EnvelopeKind::Undeliverable);
    assert_eq!(answer.correlation_id, Some(request.id));
    assert_eq!(answer.from, ghost);
    let reason: String = answer.payload_json().unwrap();
    assert!(
        reason.contains("no actor named ghost on node u-b"),
        "{reason}"
    );
    let stats = nodes[1].stats();
    assert_eq!(stats.dead_letters, 1);
    assert_eq!(stats.undeliverable_sent, 1);

    // The same through `request`, and locally.
    let reply = within(
        STEP,
        "request",
        nodes[0].request(ghost, PayloadFormat::Json, Bytes::from_static(b"2"), STEP),
    )
    .await
    .unwrap();
    assert_eq!(reply.kind, EnvelopeKind::Undeliverable);
    let local = within(
        STEP,
        "local",
        nodes[0].request(
            addr("nobody@u-a"),
            PayloadFormat::Json,
            Bytes::from_static(b"3"),
            STEP,
        ),
    )
    .await
    .unwrap();
    assert_eq!(local.kind, EnvelopeKind::Undeliverable);

    // An Undeliverable for a missing actor is dropped, never bounced back.
    let before = nodes[0].stats().undeliverable_sent;
    let mut stray = Envelope::new(
        addr("ghost@u-b"),
        addr("ghost2@u-a"),
        PayloadFormat::Json,
        Bytes::from_static(b"4"),
    );
    stray.kind = EnvelopeKind::Undeliverable;
    within(STEP, "stray", nodes[0].send(stray)).await.unwrap();
    assert!(wait_until(STEP, || nodes[1].stats().dead_letters == 3).await);
    assert_eq!(nodes[0].stats().undeliverable_sent, before);
    assert_eq!(nodes[1].stats().undeliverable_sent, 2);
    stop_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_node_is_an_error() {
    let nodes = cluster(&["n-a"]).await;
    let env = Envelope::new(
        addr("w@nowhere"),
        addr("me@n-a"),
        PayloadFormat::Json,
        Bytes::from_static(b"1"),
    );
    let err = within(STEP, "send", nodes[0].send(env)).await.unwrap_err();
    assert!(
        matches!(&err, RouterError::UnknownNode(n) if *n == "nowhere"),
        "{err:?}"
    );
    assert!(err.to_string().contains("unknown node nowhere"));
    let err = within(
        STEP,
        "ping",
        nodes[0].ping(&NodeId::new("nowhere").unwrap()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RouterError::UnknownNode(_)));
    stop_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_delivery_does_not_touch_the_network() {
    let nodes = cluster(&["loc-a", "loc-b"]).await;
    let echo_addr = echo(&nodes[0], "echo");
    let (me, mut inbox) = collector(&nodes[0], "me");
    let frames_before = nodes[0].transport_stats().envelopes_out;
    let routed_local = nodes[0].stats().routed_local;
    let routed_remote = nodes[0].stats().routed_remote;
    for i in 0..100u32 {
        let env = Envelope::json(echo_addr.clone(), me.clone(), &i).unwrap();
        within(STEP, "send", nodes[0].send(env)).await.unwrap();
    }
    for i in 0..100u32 {
        let reply = within(STEP, "reply", inbox.recv()).await.unwrap();
        assert_eq!(reply.payload_json::<u32>().unwrap(), i, "in order");
    }
    // 100 requests and 100 replies (plus any gossip handed to `system`).
    assert!(nodes[0].stats().routed_local - routed_local >= 200);
    assert_eq!(nodes[0].stats().routed_remote, routed_remote);
    // Gossip still flows, but none of the 200 envelopes did.
    let out = nodes[0].transport_stats().envelopes_out - frames_before;
    assert!(out < 100, "{out} envelopes left the node");
    stop_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_actor_answers_commands() {
    let nodes = cluster(&["s-a", "s-b"]).await;
    let system_b = addr("system@s-b");
    let ask = |cmd: &'static str| {
        nodes[0].request(
            system_b.clone(),
            PayloadFormat::Json,
            Bytes::from(cmd),
            STEP,
        )
    };
    let members = within(STEP, "members", ask(r#"{"cmd":"members"}"#))
        .await
        .unwrap();
    let value: serde_json::Value = members.payload_json().unwrap();
    let rows = value["members"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["status"] == "up"));
    let info = within(STEP, "info", ask(r#"{"cmd":"info"}"#))
        .await
        .unwrap();
    let value: serde_json::Value = info.payload_json().unwrap();
    assert_eq!(value["node"], "s-b");
    assert!(value["actors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "system"));
    let pong = within(STEP, "ping", ask(r#"{"cmd":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(
        pong.payload_json::<serde_json::Value>().unwrap()["pong"],
        "s-b"
    );
    let bad = within(STEP, "bad", ask(r#"{"cmd":"reboot"}"#))
        .await
        .unwrap();
    assert_eq!(bad.kind, EnvelopeKind::Error);
    assert!(bad
        .payload_json::<String>()
        .unwrap()
        .contains("unknown command \"reboot\""));
    let rtt = within(STEP, "ping", nodes[0].ping(nodes[1].node_id()))
        .await
        .unwrap();
    assert!(rtt < Duration::from_secs(1));
    stop_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_rules() {
    let nodes = cluster(&["g-a"]).await;
    let router = &nodes[0];
    let first = echo(router, "worker");
    assert_eq!(first, addr("worker@g-a"));
    let dup = router.register("worker", actor_core::spawn("w2", Echo(router.clone())));
    assert!(matches!(dup, Err(RouterError::NameTaken(_))));
    for reserved in ["system", "_reply", "client-3"] {
        let r = router.register(reserved, actor_core::spawn("x", Echo(router.clone())));
        assert!(matches!(r, Err(RouterError::ReservedName(_))), "{reserved}");
    }
    let bad = router.register("bad name", actor_core::spawn("x", Echo(router.clone())));
    assert!(matches!(bad, Err(RouterError::Addr(_))));
    router.unregister("worker");
    let reply = within(
        STEP,
        "request",
        router.request(first, PayloadFormat::Json, Bytes::from_static(b"1"), STEP),
    )
    .await
    .unwrap();
    assert_eq!(reply.kind, EnvelopeKind::Undeliverable);
    // A request nobody answers times out.
    let (silent, _inbox) = collector(router, "silent");
    let err = within(
        STEP,
        "timeout",
        router.request(
            silent,
            PayloadFormat::Json,
            Bytes::from_static(b"1"),
            Duration::from_millis(100),
        ),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RouterError::Timeout { .. }));
    stop_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_envelopes_cross_in_order() {
    const N: u32 = 20_000;
    // The sink's overflow queue holds the whole burst: on loaded cores the
    // collector may fall far behind, and nothing may bounce here (bounces
    // are covered by `router_backlog`). They would reach `src`, checked below.
    let mut receiver = fast("o-b");
    receiver.backlog_limit = N as usize;
    let nodes = cluster_of(vec![fast("o-a"), receiver]).await;
    let (sink, mut inbox) = collector(&nodes[1], "sink");
    let (from, mut bounced) = collector(&nodes[0], "src");
    let sender = nodes[0].clone();
    let send_all = tokio::spawn(async move {
        for i in 0..N {
            let env = Envelope::new(
                sink.clone(),
                from.clone(),
                PayloadFormat::Binary,
                Bytes::copy_from_slice(&i.to_le_bytes()),
            );
            sender.send(env).await.unwrap();
        }
    });
    for i in 0..N {
        let env = within(STEP, "envelope", inbox.recv()).await.unwrap();
        assert_eq!(u32::from_le_bytes(env.payload[..].try_into().unwrap()), i);
    }
    within(STEP, "sender", send_all).await.unwrap();
    // Nothing bounced: a marker sent after the burst to an actor that does
    // not exist bounces back to `src`, and it must be the first bounce
    // (o-b answers in the order it dispatches, on one link).
    let marker = Envelope::new(
        addr("ghost@o-b"),
        nodes[0].addr("src").unwrap(),
        PayloadFormat::Json,
        Bytes::from_static(b"1"),
    );
    let marker_id = marker.id;
    within(STEP, "marker", nodes[0].send(marker)).await.unwrap();
    let first = within(STEP, "marker bounce", bounced.recv()).await.unwrap();
    assert_eq!(first.kind, EnvelopeKind::Undeliverable);
    assert_eq!(
        first.correlation_id,
        Some(marker_id),
        "nothing bounced before the marker"
    );
    stop_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_local_companions_are_kept_per_type_and_per_router() {
    use std::sync::Arc;
    let nodes = cluster(&["local-a", "local-b"]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    assert!(a.local::<String>().is_none());
    let first = Arc::new(String::from("first"));
    assert!(a.set_local(Arc::clone(&first)).is_none());
    assert_eq!(
        a.local::<String>().as_deref().map(String::as_str),
        Some("first")
    );
    // Per type, and per router: another type or router sees nothing.
    assert!(a.local::<u64>().is_none());
    assert!(b.local::<String>().is_none());
    // A successor replaces it; its predecessor cannot withdraw it.
    let second = Arc::new(String::from("second"));
    let replaced = a.set_local(Arc::clone(&second)).expect("the first one");
    assert!(Arc::ptr_eq(&replaced, &first));
    assert!(!a.remove_local(&first));
    assert_eq!(
        a.local::<String>().as_deref().map(String::as_str),
        Some("second")
    );
    assert!(a.remove_local(&second));
    assert!(a.local::<String>().is_none());
    // Shutdown forgets them.
    a.set_local(Arc::new(7u64));
    stop_all(&nodes).await;
    assert!(a.local::<u64>().is_none());
}
