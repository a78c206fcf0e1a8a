//! Fault injection, crashes and pauses: three real `job-node` processes in
//! network namespaces, jobs submitted throughout through `n1`, `n3` killed
//! or stopped. Each scenario prints a ledger line (see `faults/`).

mod faults;

use std::time::{Duration, Instant};

use faults::lab::Lab;
use faults::ledger::Ledger;
use faults::observer::{wait_formed, Observer};
use faults::workload::{coordinator_stats, Workload};
use faults::{all, begin, names, run_for, runtime, LIMIT};

/// The node every scenario here kills or stops.
const VICTIM: usize = 3;

#[test]
fn kill_9_is_detected_and_its_jobs_complete_elsewhere() {
    let Some(_one) = begin("kill-9") else { return };
    let started = Instant::now();
    let lab = Lab::start(3);
    let mut ledger = lab.in_client_ns(|| {
        runtime().block_on(async {
            wait_formed(&lab).await;
            let observer = Observer::start(&lab).await;
            let work = Workload::start(&lab, "kill").await;
            run_for(Duration::from_secs(3)).await;
            let fault = Instant::now();
            lab.signal(VICTIM, "KILL");
            let survivors = names(&lab, &[1, 2]);
            let down = observer
                .wait_all_report(&survivors, "n3", "down", fault)
                .await;
            run_for(Duration::from_secs(3)).await;
            let tally = work.finish(LIMIT).await;
            let (retries, late_dropped) = coordinator_stats(&lab).await;
            Ledger {
                scenario: "kill-9".into(),
                tally,
                retries,
                late_dropped,
                detection: Some(down - fault),
                false_downs: observer.false_downs(|_, member| member == "n3"),
                ..Ledger::default()
            }
        })
    });
    ledger.took = started.elapsed();
    ledger.print_and_check();
}

#[test]
fn short_pauses_cause_no_false_down() {
    let Some(_one) = begin("stop-short") else {
        return;
    };
    let lab = Lab::start(3);
    for pause in [Duration::from_millis(500), Duration::from_secs(1)] {
        let started = Instant::now();
        let scenario = format!("stop-{}ms", pause.as_millis());
        let mut ledger = lab.in_client_ns(|| {
            runtime().block_on(async {
                wait_formed(&lab).await;
                let observer = Observer::start(&lab).await;
                let work = Workload::start(&lab, &scenario).await;
                run_for(Duration::from_secs(2)).await;
                lab.signal(VICTIM, "STOP");
                // The pause itself: what is measured, not a synchronisation.
                std::thread::sleep(pause);
                lab.signal(VICTIM, "CONT");
                run_for(Duration::from_secs(3)).await;
                let tally = work.finish(LIMIT).await;
                let (retries, late_dropped) = coordinator_stats(&lab).await;
                let suspected = all(&lab)
                    .iter()
                    .filter(|o| observer.changes(o, "n3") > 0)
                    .count();
                Ledger {
                    scenario: scenario.clone(),
                    tally,
                    retries,
                    late_dropped,
                    false_downs: observer.false_downs(|_, _| false),
                    note: format!("{suspected} of 3 views saw n3 change status"),
                    ..Ledger::default()
                }
            })
        });
        ledger.took = started.elapsed();
        ledger.print_and_check();
    }
}

#[test]
fn a_long_pause_is_down_then_refutes_and_returns_without_blaming_anyone() {
    let Some(_one) = begin("stop-10s") else {
        return;
    };
    let started = Instant::now();
    let lab = Lab::start(3);
    let mut ledger = lab.in_client_ns(|| {
        runtime().block_on(async {
            wait_formed(&lab).await;
            let observer = Observer::start(&lab).await;
            let work = Workload::start(&lab, "stop10").await;
            run_for(Duration::from_secs(3)).await;
            let fault = Instant::now();
            lab.signal(VICTIM, "STOP");
            let survivors = names(&lab, &[1, 2]);
            let down = observer
                .wait_all_report(&survivors, "n3", "down", fault)
                .await;
            run_for(Duration::from_secs(10).saturating_sub(fault.elapsed())).await;
            let resumed = Instant::now();
            lab.signal(VICTIM, "CONT");
            let everyone = all(&lab);
            let converged = observer.wait_all_up(&everyone, &everyone, resumed).await;
            run_for(Duration::from_secs(3)).await;
            let tally = work.finish(LIMIT).await;
            let (retries, late_dropped) = coordinator_stats(&lab).await;
            Ledger {
                scenario: "stop-10s".into(),
                tally,
                retries,
                late_dropped,
                detection: Some(down - fault),
                converge: Some(converged - resumed),
                // Only the others may call n3 Down; n3's own pause is no
                // evidence against them.
                false_downs: observer.false_downs(|o, m| m == "n3" && o != "n3"),
                note: "converge: from SIGCONT".into(),
                ..Ledger::default()
            }
        })
    });
    ledger.took = started.elapsed();
    ledger.print_and_check();
}
