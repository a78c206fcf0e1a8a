//! Scheduling against real processes: exact eligibility (an `exec` job
//! goes only to a node that allows its program).

mod common;

use common::{cli, stdout, wait_formed, NodeProc, LIMIT};
use job_node::{ClusterSecret, Session};
use serde_json::Value;
use tokio::time::timeout;

/// Submits one job through `url`'s coordinator and returns its result JSON.
async fn submit_one(url: &str, kind: &str, data: &str) -> Value {
    let out = cli(&[
        "submit",
        "--cluster",
        url,
        "--kind",
        kind,
        "--data",
        data,
        "--wait",
    ])
    .await;
    serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_job_goes_only_to_a_node_that_allows_its_program() {
    let closed = NodeProc::start("closed", &[]).await;
    let seed = closed.url().to_owned();
    let echo = NodeProc::start("allows-echo", &["--join", &seed, "--allow-exec", "echo"]).await;
    let date = NodeProc::start("allows-date", &["--join", &seed, "--allow-exec", "date"]).await;
    wait_formed(closed.url(), 3).await;
    // The gossip of the later nodes' tags reaches the first one.
    wait_formed(echo.url(), 3).await;
    wait_formed(date.url(), 3).await;

    // Submitted to the node that allows nothing: every attempt of every job
    // lands on the one node that allows its program, never elsewhere.
    for i in 0..6 {
        let data = format!(r#"{{"program":"echo","args":["{i}"]}}"#);
        let result = submit_one(closed.url(), "exec", &data).await;
        assert_eq!(result["worker_node"], "allows-echo", "{result}");
        assert_eq!(result["attempt"], 1, "{result}");
        let output: Value = serde_json::from_str(result["result"].as_str().unwrap()).unwrap();
        assert_eq!(output["stdout"], format!("{i}\n"));
    }
    let result = submit_one(echo.url(), "exec", r#"{"program":"date"}"#).await;
    assert_eq!(result["worker_node"], "allows-date", "{result}");
    assert!(result["error"].is_null(), "{result}");

    // A program no node allows is not sent anywhere: it fails at once
    // (never run, not dead-lettered) and says why.
    let result = submit_one(closed.url(), "exec", r#"{"program":"/bin/echo"}"#).await;
    assert_eq!(result["error"]["cause"], "no_eligible_node", "{result}");
    assert_eq!(result["attempt"], 0, "{result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("accept:exec:/bin/echo"), "{message}");

    // The node without an allow-list does not advertise `exec` at all.
    let secret = ClusterSecret::development();
    let mut session = timeout(LIMIT, Session::connect(closed.url(), &secret, LIMIT))
        .await
        .expect("connect in time")
        .expect("connect");
    let view = session.cluster(LIMIT).await.expect("membership");
    let tags = |name: &str| -> Vec<String> {
        let member = view.members.iter().find(|m| m.node == name);
        member
            .unwrap_or_else(|| panic!("{name} in {view:?}"))
            .tags
            .clone()
    };
    assert!(!tags("closed").iter().any(|t| t == "kind:exec"));
    assert!(tags("allows-echo").iter().any(|t| t == "kind:exec"));
    assert!(tags("allows-echo").iter().any(|t| t == "accept:exec:echo"));
}
