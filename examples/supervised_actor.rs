//! Shows actor-core on its own: a supervised actor that panics on bad input is
//! rebuilt by its factory, keeps its mailbox, and answers `ask`s afterwards;
//! after too many failures the supervisor gives up and says so.
//!
//! Run with `cargo run --example supervised_actor`.

use std::time::Duration;

use actor_core::{
    Actor, BoxError, ChildEvent, Context, ReplyTo, RestartPolicy, SpawnOptions, Supervisor,
};

/// Parses numbers and keeps a running sum; "boom" makes it panic.
struct Summer {
    sum: i64,
}

enum SummerMsg {
    Add(String),
    Sum(ReplyTo<i64>),
}

#[async_trait::async_trait]
impl Actor for Summer {
    type Message = SummerMsg;

    async fn handle(&mut self, msg: SummerMsg, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        match msg {
            SummerMsg::Add(text) if text == "boom" => panic!("{} was told to explode", ctx.name()),
            SummerMsg::Add(text) => self.sum += text.parse::<i64>()?,
            SummerMsg::Sum(reply) => {
                reply.send(self.sum);
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The supervisor catches the panic; print one line instead of a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("panic (caught by the supervisor): {info}")
    }));
    let policy = RestartPolicy {
        max_restarts: 3,
        within: Duration::from_secs(10),
    };
    let (supervisor, mut events) = Supervisor::new(policy);
    let summer = supervisor.spawn_child(
        "summer",
        || Summer { sum: 0 },
        SpawnOptions::default().capacity(64),
    )?;

    // Queue everything at once: the panic on "boom" rebuilds the actor (its
    // state starts again at 0), and the messages behind it are not lost.
    for text in ["1", "2", "boom", "40", "2"] {
        summer.tell(SummerMsg::Add(text.to_owned())).await?;
    }
    let sum = summer.ask(SummerMsg::Sum, Duration::from_secs(1)).await?;
    println!("sum after one restart: {sum} (the 1 and 2 before the panic were lost with the old instance)");

    // A parse error is a failure too; three more failures exhaust the budget.
    for text in ["x", "y", "z"] {
        summer.tell(SummerMsg::Add(text.to_owned())).await?;
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await? {
            Some(ChildEvent::GaveUp { name, cause }) => {
                println!("supervisor gave up on {name}: {cause}");
                break;
            }
            Some(event) => println!("supervisor event: {event:?}"),
            None => break,
        }
    }
    println!("summer alive: {}", summer.is_alive());
    Ok(())
}
