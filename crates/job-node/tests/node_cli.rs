//! The command line against real processes: `exec` is refused without
//! `--allow-exec` and runs with it, bad arguments and settings give clear
//! errors, and the demo runs to completion.

mod common;

use common::{cli, stderr, stdout, NodeProc};
use serde_json::Value;

const EXEC_ECHO: &str = r#"{"program":"echo","args":["hi","there"]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_needs_the_allow_list() {
    let closed = NodeProc::start("closed", &[]).await;
    let open = NodeProc::start("open", &["--allow-exec", "echo"]).await;

    let out = cli(&[
        "submit",
        "--cluster",
        closed.url(),
        "--kind",
        "exec",
        "--data",
        EXEC_ECHO,
        "--wait",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "a failed job fails the command");
    let result: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(result["result"], Value::Null);
    assert_eq!(result["error"]["retryable"], false);
    // No node allows it (the node without an allow-list does not even
    // serve `exec`): it is sent nowhere and fails at once.
    assert_eq!(result["error"]["cause"], "no_eligible_node");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("accept:exec:echo"), "{message}");
    assert!(
        stderr(&out).contains("1 of 1 jobs failed"),
        "{}",
        stderr(&out)
    );

    let out = cli(&[
        "submit",
        "--cluster",
        open.url(),
        "--kind",
        "exec",
        "--data",
        EXEC_ECHO,
        "--wait",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let output: Value = serde_json::from_str(result["result"].as_str().unwrap()).unwrap();
    assert_eq!(output["stdout"], "hi there\n");
    assert_eq!(output["status"], 0);

    // Only the exact program name is allowed.
    let other = r#"{"program":"/bin/echo","args":["x"]}"#;
    let out = cli(&[
        "submit",
        "--cluster",
        open.url(),
        "--kind",
        "exec",
        "--data",
        other,
        "--wait",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("accept:exec:/bin/echo"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn bad_arguments_and_settings_are_explained() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["start", "--workers", "many"], 2, "invalid value 'many'"),
        (&["start", "--bogus"], 2, "--bogus"),
        (&["submit", "--cluster", "ws://127.0.0.1:1"], 2, "--kind"),
        (
            &[
                "submit",
                "--cluster",
                "ws://127.0.0.1:1",
                "--kind",
                "echo",
                "--timeout",
                "0",
            ],
            2,
            "timeout",
        ),
        (&["demo", "--nodes", "0"], 2, "--nodes"),
        (&["start", "--listen", "0.0.0.0:0"], 1, "--secret-file"),
        (
            &["start", "--name", "bad name", "--listen", "127.0.0.1:0"],
            1,
            "invalid node name",
        ),
        (
            &["start", "--join", "http://x:1", "--listen", "127.0.0.1:0"],
            1,
            "ws://",
        ),
        (
            &[
                "start",
                "--secret-file",
                "/nonexistent/secret",
                "--listen",
                "127.0.0.1:0",
            ],
            1,
            "/nonexistent/secret",
        ),
    ];
    for (args, code, needle) in cases {
        let out = cli(args).await;
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[tokio::test]
async fn client_commands_explain_connection_problems() {
    // Nothing listens on port 1.
    let out = cli(&[
        "status",
        "--cluster",
        "ws://127.0.0.1:1",
        "--connect-timeout",
        "5",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot connect to ws://127.0.0.1:1"),
        "{}",
        stderr(&out)
    );
    let out = cli(&["status", "--cluster", "not-a-url"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not-a-url"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused() {
    let node = NodeProc::start("guarded", &[]).await;
    let dir = std::env::temp_dir().join(format!("job-node-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, "not the cluster secret\n").unwrap();
    let out = cli(&[
        "status",
        "--cluster",
        node.url(),
        "--secret-file",
        file.to_str().unwrap(),
    ])
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("wrong client token"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_to_completion() {
    let out = cli(&["demo", "--nodes", "2", "--jobs", "200", "--workers", "2"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.starts_with("jobmesh demo: starting 2 node processes"),
        "{text}"
    );
    assert!(text.contains("cluster formed: 2 members up"), "{text}");
    assert!(
        text.contains("200 succeeded, 0 failed, 0 refused, 0 wrong results"),
        "{text}"
    );
    assert!(
        text.contains("2 members, 1 links from node-1; jobs: 200 submitted"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .ends_with("nodes stopped: node-1 exited 0, node-2 exited 0"),
        "{text}"
    );
}
