//! `job-node demo --dashboard`: after the run the cluster stays up, the
//! dashboard's URL is printed and serves the page and the run's jobs;
//! Ctrl-C (SIGINT) then stops every node cleanly.

mod common;

use std::process::Stdio;

use common::{http, BIN, LIMIT};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_keeps_the_cluster_up_for_the_dashboard() {
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--dashboard",
            "--nodes",
            "2",
            "--jobs",
            "100",
            "--workers",
            "2",
        ])
        .env_remove("JOBMESH_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the demo");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let url = timeout(LIMIT * 4, async {
        while let Some(line) = lines.next_line().await.expect("demo stdout") {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.strip_prefix("dashboard: http://") {
                return rest.split('/').next().map(str::to_owned);
            }
        }
        None
    })
    .await
    .expect("no dashboard line in time")
    .unwrap_or_else(|| panic!("the demo printed no dashboard URL:\n{seen}"));
    assert!(seen.contains("100 succeeded, 0 failed"), "{seen}");
    let addr = url.parse().expect("an address");

    let page = http(addr, "GET", "/", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("jobmesh dashboard"));
    let members = http(addr, "GET", "/v1/cluster", None).await.json();
    assert_eq!(members["members"].as_array().unwrap().len(), 2, "{members}");
    let records = http(
        addr,
        "GET",
        "/v1/job-records?state=succeeded&limit=10",
        None,
    )
    .await
    .json();
    assert_eq!(records["total"], 100, "{records}");
    assert_eq!(records["jobs"].as_array().unwrap().len(), 10);

    let pid = child.id().expect("demo running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let rest = timeout(LIMIT * 2, async {
        let mut rest = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    })
    .await
    .expect("the demo did not stop in time");
    assert!(
        rest.contains("nodes stopped: node-1 exited 0, node-2 exited 0"),
        "{rest}"
    );
    let status = timeout(LIMIT, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}\n{rest}");
}
