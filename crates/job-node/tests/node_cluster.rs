//! A real 3-node cluster of `job-node` processes formed from one seed:
//! `status` lists every node, jobs submitted through the CLI and the HTTP
//! API come back with the right results, bad HTTP bodies get JSON errors,
//! and `/metrics` is valid Prometheus text.

mod common;

use common::{cli, cluster, http, raw_http, stderr, stdout, NodeProc};
use serde_json::Value;

const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_run_jobs_and_report() {
    let nodes = cluster(3, &["--http", "127.0.0.1:0"]).await;
    let seed = nodes[0].url().to_owned();
    status_lists_every_node(&seed).await;
    cli_submissions(&seed, &nodes[2]).await;
    http_submissions(&nodes[0]).await;
    http_errors(&nodes[0]).await;
    metrics_parse(&nodes[0]).await;
}

async fn status_lists_every_node(seed: &str) {
    let out = cli(&["status", "--cluster", seed]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    for node in ["node-1", "node-2", "node-3"] {
        let row = table
            .lines()
            .find(|l| l.starts_with(node))
            .unwrap_or_else(|| panic!("{node} missing:\n{table}"));
        assert!(row.contains(" up "), "{row}");
        // NODE STATUS TAGS KINDS ...: the kinds are listed apart from tags.
        let kinds = row.split_whitespace().nth(3).unwrap_or_default();
        assert!(kinds.split(',').any(|k| k == "sha256"), "{row}");
    }
    assert!(table.contains("3 members, 2 links from node-1"), "{table}");
    let out = cli(&["status", "--cluster", seed, "--json"]).await;
    let json: Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert_eq!(json["cluster"]["members"].as_array().unwrap().len(), 3);
    assert!(json["stats"]["submitted"].is_u64());
}

async fn cli_submissions(seed: &str, other: &NodeProc) {
    let out = cli(&[
        "submit",
        "--cluster",
        seed,
        "--kind",
        "sha256",
        "--data",
        "abc",
        "--wait",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON line");
    assert_eq!(result["result"], ABC_SHA256);
    assert!(result["worker_node"].as_str().unwrap().starts_with("node-"));

    // A jobs file through another node, with its own ids.
    let dir = std::env::temp_dir().join(format!("job-node-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jobs.jsonl");
    let lines: String = (0..12)
        .map(|i| format!("{{\"id\":\"file-{i}\",\"kind\":\"echo\",\"data\":\"line {i}\"}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let out = cli(&[
        "submit",
        "--cluster",
        other.url(),
        "--file",
        file.to_str().unwrap(),
        "--wait",
    ])
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut seen: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_owned(),
                v["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 12, "{text}");
    for (id, result) in &seen {
        assert_eq!(result, &format!("line {}", &id[5..]));
    }
    let workers: std::collections::HashSet<_> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["worker_node"].clone())
        .collect();
    assert!(
        workers.len() >= 2,
        "round robin spreads the jobs: {workers:?}"
    );

    // Without --wait: the ids at once.
    let out = cli(&["submit", "--cluster", seed, "--kind", "echo", "--data", "x"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let id: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert!(id["id"].as_str().unwrap().starts_with('r'), "{id}");
}

async fn http_submissions(node: &NodeProc) {
    let addr = node.http();
    let reply = http(
        addr,
        "POST",
        "/v1/jobs?wait=true&timeout=20",
        Some(r#"{"kind":"sha256","data":"abc"}"#),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let view = reply.json();
    assert_eq!(view["state"], "succeeded");
    assert_eq!(view["result"], ABC_SHA256);
    assert_eq!(view["kind"], "sha256");

    let batch =
        r#"[{"kind":"echo","data":{"n":1}},{"kind":"sleep","data":"20","id":"http-sleep"}]"#;
    let reply = http(addr, "POST", "/v1/jobs", Some(batch)).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let ids = reply.json()["ids"].clone();
    assert_eq!(ids[1], "http-sleep");
    let reply = http(
        addr,
        "POST",
        "/v1/jobs?wait=true&timeout=20",
        Some(r#"{"kind":"echo","data":"after"}"#),
    )
    .await;
    assert_eq!(reply.json()["result"], "after");
    let first = ids[0].as_str().unwrap();
    let view = http(addr, "GET", &format!("/v1/jobs/{first}"), None)
        .await
        .json();
    assert_eq!(view["state"], "succeeded", "{view}");
    assert_eq!(view["owner"], "node-1", "{view}");
    assert_eq!(view["result"]["result"], r#"{"n":1}"#);

    let cluster = http(addr, "GET", "/v1/cluster", None).await.json();
    assert_eq!(cluster["node"], "node-1");
    assert_eq!(cluster["members"].as_array().unwrap().len(), 3);
    assert_eq!(cluster["links"], 2);
    let stats = http(addr, "GET", "/v1/stats", None).await.json();
    assert!(stats["submitted"].as_u64().unwrap() >= 4, "{stats}");
}

async fn http_errors(node: &NodeProc) {
    let addr = node.http();
    let cases: &[(&str, u16, &str)] = &[
        ("{not json", 400, ""),
        (r#"{"data":"no kind"}"#, 422, "kind"),
        (r#"{"kind":"echo","colour":"red"}"#, 422, "colour"),
        (r#"{"kind":"echo","id":"two words"}"#, 422, "id"),
        (
            r#"[{"kind":"echo"},{"kind":"echo","timeout_ms":0}]"#,
            422,
            "job 1",
        ),
    ];
    for (body, status, needle) in cases {
        let reply = http(addr, "POST", "/v1/jobs", Some(body)).await;
        assert_eq!(reply.status, *status, "{body}: {}", reply.body);
        let message = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let reply = http(addr, "GET", "/v1/jobs/no-such-job", None).await;
    assert_eq!(reply.status, 404);
    assert!(reply.json()["error"]
        .as_str()
        .unwrap()
        .contains("no-such-job"));
    let reply = raw_http(
        addr,
        "POST /v1/jobs HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    assert_eq!(reply.status, 415);
    assert!(reply.json()["error"].is_string());
}

async fn metrics_parse(node: &NodeProc) {
    let reply = http(node.http(), "GET", "/metrics", None).await;
    assert_eq!(reply.status, 200);
    // The classic text format unless the scraper asks for OpenMetrics.
    assert!(reply
        .head
        .to_ascii_lowercase()
        .contains("text/plain; version=0.0.4"));
    // Read with a real parser of the classic format.
    use openmetrics_parser::PrometheusValue;
    let parsed = openmetrics_parser::prometheus::parse_prometheus(&reply.body)
        .unwrap_or_else(|e| panic!("{e:?}\n{}", reply.body));
    let value = |name: &str| -> f64 {
        parsed.families.get(name).map_or(0.0, |family| {
            family
                .iter_samples()
                .map(|s| match &s.value {
                    PrometheusValue::Counter(c) => c.value.as_f64(),
                    PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
                    _ => 0.0,
                })
                .sum()
        })
    };
    assert!(
        value("jobmesh_jobs_submitted_total") >= 4.0,
        "{}",
        reply.body
    );
    assert!(
        value("jobmesh_jobs_completed_total") >= 4.0,
        "{}",
        reply.body
    );
    assert_eq!(value("jobmesh_links"), 2.0);
    let up = parsed.families["jobmesh_members"]
        .get_sample_by_label_values(&["up".to_owned()])
        .map(|s| s.value.clone());
    assert!(
        matches!(up, Some(PrometheusValue::Gauge(n)) if n.as_f64() == 3.0),
        "{}",
        reply.body
    );
}
