//! Shows job-queue embedded in your own binary with a job kind of your own:
//! a `quote` handler with typed input and output (serde JSON), the three
//! kinds of handler error (bad data and permanent errors fail at once, a
//! retryable one is retried with backoff), progress reports, cancellation
//! (a slow quote stops when its job is cancelled), a handler
//! unit-tested without a cluster, and a batch of 2,000 jobs checked against
//! a direct computation. One node: a `Router`, a `WorkerPool` and a
//! `Coordinator` in this process; other nodes would join with
//! `RouterConfig::seeds` and register the same handlers.
//!
//! Run with `cargo run --example custom_job_kind`.
//! Depends on: `job-queue`, `cluster-router`, `tokio`, `serde`, `serde_json`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cluster_router::{Router, RouterConfig};
use job_queue::{
    Coordinator, CoordinatorOptions, FailureCause, HandlerError, HandlerRegistry, Job, JobContext,
    JobResult, WorkerPool, WorkerPoolConfig,
};
use serde::{Deserialize, Serialize};

/// The job's input: an order to price.
#[derive(Serialize, Deserialize)]
struct Order {
    lines: Vec<Line>,
    coupon: Option<String>,
    /// How long pricing takes (a slow supplier lookup), in milliseconds.
    #[serde(default)]
    lookup_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct Line {
    sku: String,
    qty: u32,
    unit_cents: u64,
}

/// The job's output.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Quote {
    subtotal_cents: u64,
    discount_cents: u64,
    tax_cents: u64,
}

/// A stand-in for a remote tax service that is down for its first calls.
struct TaxService {
    outages_left: AtomicU32,
}

impl TaxService {
    fn rate_percent(&self) -> Result<u64, String> {
        let down = self
            .outages_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if down {
            return Err("tax service unavailable (503)".into());
        }
        Ok(20)
    }
}

/// The pricing itself, plain code: also what the batch is checked against.
fn price(order: &Order, tax_percent: u64) -> Result<Quote, String> {
    let subtotal_cents: u64 = order
        .lines
        .iter()
        .map(|l| u64::from(l.qty) * l.unit_cents)
        .sum();
    let discount_cents = match order.coupon.as_deref() {
        None => 0,
        Some("TENOFF") => subtotal_cents / 10,
        Some(other) => return Err(format!("unknown coupon {other:?}")),
    };
    let tax_cents = (subtotal_cents - discount_cents) * tax_percent / 100;
    Ok(Quote {
        subtotal_cents,
        discount_cents,
        tax_cents,
    })
}

/// The `quote` handler: typed input in, typed output out.
async fn quote(ctx: JobContext, tax: Arc<TaxService>) -> Result<String, HandlerError> {
    // Undecodable data is a BadData error: the job fails without retries.
    let order: Order = ctx.json()?;
    // A slow step that stops when the job is cancelled: the handler gives
    // up at once and its job ends `cancelled`.
    if order.lookup_ms > 0 {
        ctx.progress(0.0, "looking up the supplier");
        tokio::select! {
            () = ctx.cancelled() => return Err(HandlerError::permanent("cancelled during the lookup")),
            () = tokio::time::sleep(Duration::from_millis(order.lookup_ms)) => {}
        }
    }
    for (i, line) in order.lines.iter().enumerate() {
        let note = format!("priced {} ({} of {})", line.sku, i + 1, order.lines.len());
        ctx.progress((i + 1) as f32 / order.lines.len() as f32, note);
    }
    // A transient failure: retried (on another node if there is one).
    let rate = tax.rate_percent().map_err(HandlerError::retryable)?;
    // A failure no retry can fix.
    let quote = price(&order, rate).map_err(HandlerError::permanent)?;
    serde_json::to_string(&quote).map_err(HandlerError::permanent)
}

fn order(lines: &[(&str, u32, u64)], coupon: Option<&str>) -> Order {
    Order {
        lines: lines
            .iter()
            .map(|&(sku, qty, unit_cents)| Line {
                sku: sku.into(),
                qty,
                unit_cents,
            })
            .collect(),
        coupon: coupon.map(Into::into),
        lookup_ms: 0,
    }
}

fn job(order: &Order) -> Result<Job, serde_json::Error> {
    Ok(Job::new("quote", serde_json::to_string(order)?))
}

fn describe(result: &JobResult) -> String {
    match result.outcome() {
        Ok(output) => format!("ok on attempt {}: {output}", result.attempt),
        Err(failure) => format!("failed on attempt {}: {failure}", result.attempt),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A handler is an async fn of a JobContext: test it without any cluster.
    let healthy = Arc::new(TaxService {
        outages_left: AtomicU32::new(0),
    });
    let unit = JobContext::new(job(&order(&[("pen", 2, 150)], None))?, "test");
    println!("unit test of the handler: {}", quote(unit, healthy).await?);

    // The tax service is down for the first two calls.
    let tax = Arc::new(TaxService {
        outages_left: AtomicU32::new(2),
    });
    let mut handlers = HandlerRegistry::new();
    let service = tax.clone();
    handlers.register("quote", move |ctx| quote(ctx, service.clone()));

    let router = Router::start(RouterConfig::new("shop-1", "example-secret")).await?;
    let pool = WorkerPool::start(&router, handlers, WorkerPoolConfig::default()).await?;
    let mut options = CoordinatorOptions::default();
    options.core.backoff.base = Duration::from_millis(20);
    let coordinator = Coordinator::start(&router, options).await?;

    // Retries and progress: attempts 1 and 2 meet the outage, attempt 3 succeeds.
    let cart = order(
        &[("pen", 2, 150), ("ink", 1, 900), ("pad", 3, 250)],
        Some("TENOFF"),
    );
    let mut pending = coordinator
        .submit_with_progress(job(&cart)?.with_timeout(Duration::from_secs(10)))
        .await?;
    while let Some(update) = pending.next_progress().await {
        println!(
            "progress of attempt {}: {:>3.0}% {}",
            update.attempt,
            update.fraction * 100.0,
            update.note
        );
    }
    let result = pending.result().await?;
    println!("retried job: {}", describe(&result));
    let quoted: Quote = serde_json::from_str(result.result.as_deref().ok_or("no output")?)?;
    assert_eq!(quoted, price(&cart, 20)?);

    // Errors that are not retried.
    let bad = coordinator.run(Job::new("quote", "{not json")).await?;
    println!("bad data: {}", describe(&bad));
    assert_eq!(
        bad.error.as_ref().map(|e| e.cause),
        Some(FailureCause::BadData)
    );
    let unknown = coordinator
        .run(job(&order(&[("pen", 1, 150)], Some("FREE")))?)
        .await?;
    println!("permanent: {}", describe(&unknown));
    assert_eq!(unknown.attempt, 1);

    // Cancellation: a quote whose lookup would take a minute is cancelled
    // once it runs; its handler stops and the caller gets `cancelled`.
    let slow = Order {
        lookup_ms: 60_000,
        ..order(&[("desk", 1, 25_000)], None)
    };
    let slow_job = job(&slow)?.with_id(job_queue::JobId::new("slow-quote")?);
    let mut pending = coordinator.submit_with_progress(slow_job).await?;
    // Its first progress report says the handler is in the slow step.
    let update = pending.next_progress().await.ok_or("no progress")?;
    println!("running: {}", update.note);
    let started = std::time::Instant::now();
    let report = coordinator.cancel(vec![pending.id().clone()]).await?;
    while pending.next_progress().await.is_some() {}
    let cancelled = pending.result().await?;
    println!(
        "cancelled: {:?} -> {} after {:.0?}",
        report.cancelled,
        describe(&cancelled),
        started.elapsed()
    );
    assert_eq!(
        cancelled.error.as_ref().map(|e| e.cause),
        Some(FailureCause::Cancelled)
    );

    // A batch, in one trip to the coordinator, checked against `price`.
    let orders: Vec<Order> = (0..2_000u64)
        .map(|i| {
            order(
                &[("pen", (i % 5) as u32 + 1, 150), ("ink", 1, 100 + i)],
                (i % 3 == 0).then_some("TENOFF"),
            )
        })
        .collect();
    let jobs = orders.iter().map(job).collect::<Result<Vec<_>, _>>()?;
    let mut total = 0;
    for (pending, order) in coordinator
        .submit_many(jobs)
        .await?
        .into_iter()
        .zip(&orders)
    {
        let result = pending.result().await?;
        let got: Quote = serde_json::from_str(result.outcome().map_err(|f| f.to_string())?)?;
        assert_eq!(got, price(order, 20)?);
        total += got.subtotal_cents - got.discount_cents + got.tax_cents;
    }
    println!(
        "2000 quotes match the direct computation; total {:.2}",
        total as f64 / 100.0
    );

    let stats = coordinator.stats().await?;
    println!(
        "stats: submitted {}, succeeded {}, failed {}, retries {}",
        stats.submitted, stats.succeeded, stats.failed, stats.retries
    );
    coordinator.shutdown().await;
    pool.shutdown().await;
    router.shutdown().await;
    Ok(())
}
