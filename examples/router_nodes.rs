//! Shows cluster-router on its own: two nodes in one process, an actor
//! addressed as `greeter@node-b`, answers that find their way back because
//! every envelope carries its `from` address, an undeliverable bounce,
//! membership events (Up, then Leaving and Left), and an external client
//! speaking plain JSON over a WebSocket, as a program in any language could.
//!
//! Run with `cargo run --example router_nodes`.
//! Depends on: `cluster-router`, `actor-core`, `tokio`, `async-trait`,
//! `serde`, `serde_json`; the client part uses `tokio-tungstenite` and
//! `futures-util`.

use std::time::Duration;

use actor_core::{spawn, Actor, BoxError, Context};
use cluster_router::{
    client_token, Envelope, EnvelopeKind, MemberEvent, Router, RouterConfig, Secret,
};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "example-cluster-secret";
const STEP: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize)]
struct Greet {
    name: String,
}

#[derive(Serialize, Deserialize, Debug)]
struct Greeting {
    text: String,
}

/// Answers a `Greet` with a `Greeting`, to whoever sent it.
struct Greeter {
    router: Router,
}

#[async_trait::async_trait]
impl Actor for Greeter {
    type Message = Envelope;

    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let answer = match env.payload_json::<Greet>() {
            Ok(greet) => {
                let text = format!("hello {}, from {}", greet.name, env.to);
                env.reply(serde_json::to_vec(&Greeting { text })?)
            }
            // Bad input from the network gets an Error answer, not a crash.
            Err(err) => env.error_reply(&format!("expected {{\"name\":...}}: {err}")),
        };
        // `reply` swaps `to` and `from`: the router takes the answer back to
        // the sender, whichever node (or client socket) it is on.
        self.router.send(answer).await?;
        Ok(())
    }
}

/// Hands every envelope it gets to `main`.
struct Inbox(mpsc::Sender<Envelope>);

#[async_trait::async_trait]
impl Actor for Inbox {
    type Message = Envelope;

    async fn handle(&mut self, env: Envelope, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.0.send(env).await?;
        Ok(())
    }
}

/// A router with failure-detector timings short enough for an example.
fn config(name: &str) -> RouterConfig {
    RouterConfig::new(name, SECRET).timing(
        Duration::from_millis(50),
        Duration::from_millis(500),
        Duration::from_secs(1),
    )
}

/// Prints member events until one matches `done`.
async fn watch(
    events: &mut tokio::sync::broadcast::Receiver<MemberEvent>,
    done: impl Fn(&MemberEvent) -> bool,
) -> Result<(), Box<dyn std::error::Error>> {
    loop {
        let event = tokio::time::timeout(STEP, events.recv()).await??;
        let m = event.member();
        println!("node-a event: {:?} {} ({})", m.status, m.node, m.url);
        if done(&event) {
            return Ok(());
        }
    }
}

/// An external client: authenticates with the client token (derived from
/// the cluster secret), then sends and reads JSON text frames.
async fn json_client(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut request = url.into_client_request()?;
    let token = client_token(&Secret::from(SECRET));
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) =
        tokio::time::timeout(STEP, tokio_tungstenite::connect_async(request)).await??;
    let request = r#"{"to":"greeter@node-b","id":7,"payload":{"name":"json client"}}"#;
    ws.send(Message::Text(request.into())).await?;
    // First `{"auth":"ok",...}`, then the welcome naming the client's
    // address (`client-N@node-a`), then the answer tagged with our id 7.
    loop {
        let Some(frame) = tokio::time::timeout(STEP, ws.next()).await? else {
            return Err("connection closed".into());
        };
        let Message::Text(text) = frame? else {
            continue;
        };
        println!("client got {text}");
        let value: serde_json::Value = serde_json::from_str(&text)?;
        if value["correlation_id"] == 7 {
            break;
        }
    }
    ws.close(None).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Router::start(config("node-a")).await?;
    let mut events = a.subscribe();
    let b = Router::start(config("node-b").seeds([a.url()])).await?;
    watch(
        &mut events,
        |e| matches!(e, MemberEvent::Up(m) if m.node == "node-b"),
    )
    .await?;
    let peers: Vec<String> = a
        .get_all_peers()
        .iter()
        .map(|m| m.node.to_string())
        .collect();
    println!("node-a sees Up: {peers:?}");

    // greeter@node-b is client-facing: nodes and external clients may address it.
    let greeter =
        b.register_client_facing("greeter", spawn("greeter", Greeter { router: b.clone() }))?;
    let (tx, mut inbox) = mpsc::channel(16);
    let me = a.register("inbox", spawn("inbox", Inbox(tx)))?;

    // inbox@node-a -> greeter@node-b; the answer comes back to `from`.
    let greet = Greet {
        name: "node-a".into(),
    };
    a.send(Envelope::json(greeter.clone(), me.clone(), &greet)?)
        .await?;
    let answer = tokio::time::timeout(STEP, inbox.recv())
        .await?
        .ok_or("inbox closed")?;
    let greeting: Greeting = answer.payload_json()?;
    println!("{} -> {}: {:?}", answer.from, answer.to, greeting.text);

    // No such actor: the envelope bounces back to its sender.
    let ghost = "ghost@node-b".parse()?;
    a.send(Envelope::json(ghost, me.clone(), &greet)?).await?;
    let bounce = tokio::time::timeout(STEP, inbox.recv())
        .await?
        .ok_or("inbox closed")?;
    assert_eq!(bounce.kind, EnvelopeKind::Undeliverable);
    println!(
        "bounced from {}: {}",
        bounce.from,
        bounce.payload_str().unwrap_or("?")
    );

    // The request/reply helper does the same with a reply mailbox of its own.
    let payload = serde_json::to_vec(&Greet {
        name: "request".into(),
    })?;
    let reply = a
        .request(
            greeter,
            cluster_router::PayloadFormat::Json,
            payload.into(),
            STEP,
        )
        .await?;
    println!("request answered: {}", reply.payload_str().unwrap_or("?"));

    json_client(&a.url()).await?;

    // A graceful leave: node-a sees Leaving, then Left (never Down).
    b.leave().await;
    watch(
        &mut events,
        |e| matches!(e, MemberEvent::Left(m) if m.node == "node-b"),
    )
    .await?;
    a.shutdown().await;
    Ok(())
}
