//! Property: in random cluster layouts (2-4 nodes, 1-3 actors each), every
//! envelope between random sender/receiver pairs reaches exactly its
//! addressee, once, and the reply reaches exactly its sender, once.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use actor_core::{spawn, Actor, BoxError, Context};
use bytes::Bytes;
use cluster_router::{ActorAddr, Envelope, EnvelopeKind, PayloadFormat, Router};
use proptest::prelude::*;
use support::router::*;
use tokio::sync::mpsc;

/// Logs what it receives and answers requests (`req:<k>`) with `rep:<k>`.
struct Peer {
    router: Router,
    me: ActorAddr,
    log: mpsc::UnboundedSender<(ActorAddr, Envelope)>,
}

#[async_trait::async_trait]
impl Actor for Peer {
    type Message = Envelope;
    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let _ = self.log.send((self.me.clone(), env.clone()));
        if let Some(k) = env.payload_str().and_then(|p| p.strip_prefix("req:")) {
            let reply = env.reply(Bytes::from(format!("rep:{k}")));
            self.router.send(reply).await?;
        }
        Ok(())
    }
}

static CASE: AtomicUsize = AtomicUsize::new(0);

async fn run_case(actors_per_node: Vec<usize>, pairs: Vec<(usize, usize)>) {
    let case = CASE.fetch_add(1, Ordering::Relaxed);
    let names: Vec<String> = (0..actors_per_node.len())
        .map(|i| format!("p{case}-n{i}"))
        .collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let nodes = cluster(&name_refs).await;
    let (log_tx, mut log) = mpsc::unbounded_channel();
    // Every actor: (its node index, its address).
    let mut actors: Vec<(usize, ActorAddr)> = Vec::new();
    for (n, count) in actors_per_node.iter().enumerate() {
        for a in 0..*count {
            let name = format!("a{a}");
            let me = nodes[n].addr(&name).unwrap();
            let peer = Peer {
                router: nodes[n].clone(),
                me: me.clone(),
                log: log_tx.clone(),
            };
            nodes[n].register(&name, spawn(name.clone(), peer)).unwrap();
            actors.push((n, me));
        }
    }
    let mut expected: HashMap<(ActorAddr, String), usize> = HashMap::new();
    for (k, (s, r)) in pairs.iter().enumerate() {
        let (sender_node, sender) = &actors[s % actors.len()];
        let (_, receiver) = &actors[r % actors.len()];
        let env = Envelope::new(
            receiver.clone(),
            sender.clone(),
            PayloadFormat::Json,
            Bytes::from(format!("req:{k}")),
        );
        within(STEP, "send", nodes[*sender_node].send(env))
            .await
            .unwrap();
        *expected
            .entry((receiver.clone(), format!("req:{k}")))
            .or_default() += 1;
        *expected
            .entry((sender.clone(), format!("rep:{k}")))
            .or_default() += 1;
    }
    let total = pairs.len() * 2;
    let mut seen: HashMap<(ActorAddr, String), usize> = HashMap::new();
    for _ in 0..total {
        let (at, env) = within(STEP, "delivery", log.recv()).await.unwrap();
        assert_eq!(env.to, at, "delivered to the wrong actor");
        assert_eq!(env.kind, EnvelopeKind::Message);
        *seen
            .entry((at, env.payload_str().unwrap().to_owned()))
            .or_default() += 1;
    }
    // Fence: a round trip over every link; anything duplicated would have
    // arrived before the pongs.
    for node in &nodes {
        for other in &nodes {
            within(STEP, "fence", node.ping(other.node_id()))
                .await
                .unwrap();
        }
    }
    assert!(log.try_recv().is_err(), "an envelope was delivered twice");
    assert_eq!(seen, expected);
    for node in &nodes {
        assert_eq!(node.stats().dead_letters, 0);
    }
    stop_all(&nodes).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_envelope_reaches_its_addressee_once_and_the_reply_its_sender(
        actors_per_node in prop::collection::vec(1usize..=3, 2..=4),
        pairs in prop::collection::vec((0usize..12, 0usize..12), 1..30),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run_case(actors_per_node, pairs));
    }
}
