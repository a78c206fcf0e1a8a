//! Fault injection, network faults: three real `job-node` processes in
//! network namespaces, jobs submitted throughout through `n1`, partitions
//! and packet loss applied with nftables. Each scenario prints a ledger
//! line (see `faults/`).

mod faults;

use std::time::{Duration, Instant};

use faults::lab::Lab;
use faults::ledger::Ledger;
use faults::observer::{wait_formed, Observer};
use faults::workload::{coordinator_stats, Workload};
use faults::{all, begin, names, run_for, runtime, LIMIT};

#[test]
fn a_two_one_partition_is_detected_on_both_sides_and_heals() {
    let Some(_one) = begin("partition") else {
        return;
    };
    let started = Instant::now();
    let lab = Lab::start(3);
    let mut ledger = lab.in_client_ns(|| {
        runtime().block_on(async {
            wait_formed(&lab).await;
            let observer = Observer::start(&lab).await;
            let work = Workload::start(&lab, "part").await;
            run_for(Duration::from_secs(3)).await;
            let fault = Instant::now();
            lab.partition(&[1, 2], &[3]);
            let majority = names(&lab, &[1, 2]);
            let down = observer
                .wait_all_report(&majority, "n3", "down", fault)
                .await;
            let minority = names(&lab, &[3]);
            let far = observer
                .wait_all_report(&minority, "n1", "down", fault)
                .await;
            run_for(Duration::from_secs(10).saturating_sub(fault.elapsed())).await;
            let healed = Instant::now();
            lab.heal();
            let everyone = all(&lab);
            let converged = observer.wait_all_up(&everyone, &everyone, healed).await;
            run_for(Duration::from_secs(3)).await;
            let tally = work.finish(LIMIT).await;
            let (retries, late_dropped) = coordinator_stats(&lab).await;
            Ledger {
                scenario: "partition-2|1".into(),
                tally,
                retries,
                late_dropped,
                detection: Some(down - fault),
                converge: Some(converged - healed),
                // Each side may call the other Down, never one of its own.
                false_downs: observer.false_downs(|o, m| (o == "n3") != (m == "n3")),
                note: format!("n3 saw n1 Down after {:.2} s", (far - fault).as_secs_f64()),
                ..Ledger::default()
            }
        })
    });
    ledger.took = started.elapsed();
    ledger.print_and_check();
}

#[test]
fn asymmetric_reachability_neither_downs_nor_flaps() {
    let Some(_one) = begin("asymmetric") else {
        return;
    };
    let started = Instant::now();
    let lab = Lab::start(3);
    let mut ledger = lab.in_client_ns(|| {
        runtime().block_on(async {
            wait_formed(&lab).await;
            let observer = Observer::start(&lab).await;
            let work = Workload::start(&lab, "asym").await;
            run_for(Duration::from_secs(3)).await;
            // n2 -> n1 dropped; n1 -> n2, and n3 both ways, still flow.
            lab.block(2, 1);
            run_for(Duration::from_secs(10)).await;
            let healed = Instant::now();
            lab.heal();
            let everyone = all(&lab);
            let converged = observer.wait_all_up(&everyone, &everyone, healed).await;
            run_for(Duration::from_secs(3)).await;
            let tally = work.finish(LIMIT).await;
            let (retries, late_dropped) = coordinator_stats(&lab).await;
            let (a, b) = (observer.changes("n1", "n2"), observer.changes("n2", "n1"));
            assert!(
                a <= 2 && b <= 2,
                "flapping: n1 saw n2 change {a} times, n2 saw n1 {b}"
            );
            Ledger {
                scenario: "asymmetric-n2-to-n1".into(),
                tally,
                retries,
                late_dropped,
                converge: Some(converged - healed),
                false_downs: observer.false_downs(|_, _| false),
                note: format!("status changes: n1 about n2 {a}, n2 about n1 {b}"),
                ..Ledger::default()
            }
        })
    });
    ledger.took = started.elapsed();
    ledger.print_and_check();
}

#[test]
fn five_percent_packet_loss_for_thirty_seconds() {
    let Some(_one) = begin("loss") else { return };
    let started = Instant::now();
    let lab = Lab::start(3);
    let mut ledger = lab.in_client_ns(|| {
        runtime().block_on(async {
            wait_formed(&lab).await;
            let observer = Observer::start(&lab).await;
            let work = Workload::start(&lab, "loss").await;
            run_for(Duration::from_secs(2)).await;
            lab.loss(5);
            run_for(Duration::from_secs(30)).await;
            let healed = Instant::now();
            lab.heal();
            let everyone = all(&lab);
            let converged = observer.wait_all_up(&everyone, &everyone, healed).await;
            let tally = work.finish(LIMIT).await;
            let (retries, late_dropped) = coordinator_stats(&lab).await;
            let changes: usize = everyone
                .iter()
                .flat_map(|o| everyone.iter().map(move |m| (o, m)))
                .map(|(o, m)| observer.changes(o, m))
                .sum();
            Ledger {
                scenario: "loss-5%-30s".into(),
                tally,
                retries,
                late_dropped,
                converge: Some(converged - healed),
                false_downs: observer.false_downs(|_, _| false),
                note: format!("{changes} status changes in all views"),
                ..Ledger::default()
            }
        })
    });
    ledger.took = started.elapsed();
    ledger.print_and_check();
}
