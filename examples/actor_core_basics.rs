//! Shows actor-core on its own: spawn an actor, `tell` and `ask` it, see a
//! bounded mailbox push back (`ask` timing out, `try_tell` handing the
//! message back), then run the actor under a `Supervisor` that rebuilds it
//! after a panic with its mailbox intact, until its restart budget runs out.
//!
//! Run with `cargo run --example actor_core_basics`.
//! Depends on: `actor-core`, `tokio`, `async-trait`.

use std::time::Duration;

use actor_core::{
    spawn_with, Actor, AskError, BoxError, ChildEvent, Context, ReplyTo, RestartPolicy,
    SpawnOptions, Supervisor, TrySendError,
};
use tokio::sync::oneshot;

/// Parses numbers and keeps a running sum; "boom" makes it panic.
struct Summer {
    sum: i64,
}

enum SummerMsg {
    Add(String),
    Sum(ReplyTo<i64>),
    /// Says it started, then blocks until the gate opens (to fill the mailbox).
    Hold {
        started: oneshot::Sender<()>,
        gate: oneshot::Receiver<()>,
    },
}

#[async_trait::async_trait]
impl Actor for Summer {
    type Message = SummerMsg;

    async fn handle(&mut self, msg: SummerMsg, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        match msg {
            SummerMsg::Add(text) if text == "boom" => panic!("{} was told to explode", ctx.name()),
            // A parse error is returned as an error: it fails the actor too.
            SummerMsg::Add(text) => self.sum += text.parse::<i64>()?,
            SummerMsg::Sum(reply) => {
                reply.send(self.sum);
            }
            SummerMsg::Hold { started, gate } => {
                let _ = started.send(());
                let _ = gate.await;
            }
        }
        Ok(())
    }
}

/// `tell`, `ask`, and what a full mailbox does.
async fn basics() -> Result<(), Box<dyn std::error::Error>> {
    let summer = spawn_with(
        "summer",
        Summer { sum: 0 },
        SpawnOptions::default().capacity(2),
    )?;
    summer.tell(SummerMsg::Add("40".into())).await?;
    summer.tell(SummerMsg::Add("2".into())).await?;
    let sum = summer.ask(SummerMsg::Sum, Duration::from_secs(5)).await?;
    println!("ask answered: sum = {sum}");

    // Block the actor, then ask with a short timeout: no answer in time.
    let (started_tx, started) = oneshot::channel();
    let (open, gate) = oneshot::channel();
    let hold = SummerMsg::Hold {
        started: started_tx,
        gate,
    };
    summer.tell(hold).await?;
    started.await?;
    let late = summer.ask(SummerMsg::Sum, Duration::from_millis(50)).await;
    assert_eq!(late, Err(AskError::Timeout));
    println!("ask while the actor is busy: {}", late.unwrap_err());

    // The mailbox (capacity 2) holds that Sum; one more fills it, and
    // try_tell hands the third message back instead of waiting.
    summer.tell(SummerMsg::Add("1".into())).await?;
    match summer.try_tell(SummerMsg::Add("1000".into())) {
        Err(TrySendError::Full(SummerMsg::Add(text))) => {
            println!("try_tell on a full mailbox handed back Add({text})")
        }
        other => return Err(format!("expected Full, got {other:?}").into()),
    }
    let _ = open.send(());
    let sum = summer.ask(SummerMsg::Sum, Duration::from_secs(5)).await?;
    println!("after the gate opened: sum = {sum}");
    summer.stop();
    summer.wait_stopped().await;
    Ok(())
}

/// A supervised child: restarts on panic and on error, then gives up.
async fn supervision() -> Result<(), Box<dyn std::error::Error>> {
    let policy = RestartPolicy {
        max_restarts: 3,
        within: Duration::from_secs(10),
    };
    let (supervisor, mut events) = Supervisor::new(policy);
    let summer = supervisor.spawn_child(
        "supervised-summer",
        || Summer { sum: 0 },
        SpawnOptions::default().capacity(64),
    )?;

    // Queue everything at once: the panic on "boom" rebuilds the actor (its
    // state starts again at 0), and the messages behind it are not lost.
    for text in ["1", "2", "boom", "40", "2"] {
        summer.tell(SummerMsg::Add(text.to_owned())).await?;
    }
    let sum = summer.ask(SummerMsg::Sum, Duration::from_secs(5)).await?;
    println!("sum after one restart: {sum} (the 1 and 2 before the panic were lost with the old instance)");

    // Three more failures (parse errors) exhaust the budget of 3 restarts.
    for text in ["x", "y", "z"] {
        summer.tell(SummerMsg::Add(text.to_owned())).await?;
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await? {
            Some(ChildEvent::GaveUp { name, cause }) => {
                println!("supervisor gave up on {name}: {cause}");
                break;
            }
            Some(event) => println!("supervisor event: {event:?}"),
            None => return Err("supervisor ended without giving up".into()),
        }
    }
    summer.wait_stopped().await;
    println!("summer alive: {}", summer.is_alive());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The supervisor catches the panic; print one line instead of a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("panic (caught by the supervisor): {info}")
    }));
    basics().await?;
    supervision().await?;
    Ok(())
}
