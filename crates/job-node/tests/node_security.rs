//! Security of real node processes: a joiner with the wrong secret says so
//! and exits non-zero without printing `ready`; the default name carries
//! the real port; the HTTP API refuses requests without the client token on
//! a non-loopback bind (and /metrics may stay open); a TLS cluster of three
//! nodes runs jobs for a wss:// CLI client and an HTTPS API client, and a
//! plaintext client is refused by it.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use common::{cli, stderr, stdout, NodeProc, BIN, LIMIT};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;

/// A scratch directory for one test, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("job-node-sec-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_secret(dir: &Path, name: &str, secret: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, secret).unwrap();
    path.to_str().unwrap().to_owned()
}

fn token(secret: &str) -> String {
    cluster_router::client_token(&cluster_router::Secret::from(secret))
}

#[tokio::test]
async fn a_joiner_with_the_wrong_secret_exits_non_zero_and_says_why() {
    let dir = Scratch::new("wrong");
    let good = write_secret(dir.path(), "good", "the-cluster-secret");
    let bad = write_secret(dir.path(), "bad", "another-secret");
    let seed = NodeProc::start("node-1", &["--secret-file", &good]).await;
    let mut joiner = Command::new(BIN)
        .args(["start", "--name", "node-2", "--listen", "127.0.0.1:0"])
        .args([
            "--join",
            seed.url(),
            "--secret-file",
            &bad,
            "--join-timeout",
            "2",
        ])
        .args(["--supervised"])
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = timeout(LIMIT, async {
        let mut stdout = String::new();
        let mut stderr = String::new();
        joiner
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .await
            .unwrap();
        joiner
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await
            .unwrap();
        (joiner.wait().await.unwrap(), stdout, stderr)
    })
    .await
    .expect("the joiner exits within its join timeout");
    let (status, stdout, stderr) = out;
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(!stdout.contains("ready"), "must not print ready: {stdout}");
    assert!(stderr.contains("could not join the cluster"), "{stderr}");
    assert!(stderr.contains("wrong cluster secret"), "{stderr}");
    assert!(stderr.contains(seed.url()), "{stderr}");
}

#[tokio::test]
async fn mapreduce_with_the_wrong_secret_says_so_at_once() {
    let dir = Scratch::new("mr");
    let good = write_secret(dir.path(), "good", "the-cluster-secret");
    let bad = write_secret(dir.path(), "bad", "another-secret");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a b a").unwrap();
    let seed = NodeProc::start("node-1", &["--secret-file", &good]).await;
    let started = std::time::Instant::now();
    let out = cli(&[
        "mapreduce",
        "wordcount",
        input.to_str().unwrap(),
        "--cluster",
        seed.url(),
        "--secret-file",
        &bad,
    ])
    .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("authentication failed"), "{err}");
    assert!(err.contains("wrong cluster secret"), "{err}");
    // Not the 20 s wait for workers: the refusal is reported right away.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_default_name_carries_the_real_port() {
    let mut child = Command::new(BIN)
        .args([
            "start",
            "--listen",
            "127.0.0.1:0",
            "--supervised",
            "--workers",
            "1",
        ])
        .env("RUST_LOG", "error")
        .env_remove("JOBMESH_NAME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = timeout(LIMIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let ready = job_node::ReadyReport::parse(&line).unwrap();
    let port = ready.url.rsplit(':').next().unwrap();
    assert_ne!(port, "0");
    assert_eq!(ready.node, format!("node-{port}"));
}

/// One HTTP/1.1 request over any stream; returns (status, body).
async fn request<S>(stream: S, path: &str, auth: Option<&str>, body: Option<&str>) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut stream = stream;
    let method = if body.is_some() { "POST" } else { "GET" };
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    if let Some(token) = auth {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    head.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    timeout(LIMIT, stream.write_all(head.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    let mut raw = Vec::new();
    let _ = timeout(LIMIT, stream.read_to_end(&mut raw)).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn plain(addr: std::net::SocketAddr) -> TcpStream {
    timeout(LIMIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn the_http_api_needs_the_token_on_a_non_loopback_bind() {
    let dir = Scratch::new("http");
    let secret = write_secret(dir.path(), "s", "http-secret");
    let node = NodeProc::start(
        "node-1",
        &[
            "--secret-file",
            &secret,
            "--http",
            "0.0.0.0:0",
            "--metrics-open",
        ],
    )
    .await;
    // Reached through loopback only: the bind is what makes auth mandatory.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], node.http().port()));
    let (status, body) = request(plain(addr).await, "/v1/cluster", None, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("authentication required"), "{body}");
    let (status, body) = request(plain(addr).await, "/v1/cluster", Some("wrong"), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("invalid bearer token"), "{body}");
    let good = token("http-secret");
    let (status, body) = request(plain(addr).await, "/v1/cluster", Some(&good), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("node-1"), "{body}");
    let (status, _) = request(plain(addr).await, "/metrics", None, None).await;
    assert_eq!(status, 200, "--metrics-open leaves /metrics open");
    // One validation for every interface: HTTP is held to the CLI's caps.
    for (job, why) in [
        (
            r#"{"kind":"echo","data":"x","timeout_ms":18446744073709551615}"#,
            "at most 86400 s",
        ),
        (
            r#"{"kind":"echo","data":"x","max_attempts":4294967295}"#,
            "at most 100",
        ),
    ] {
        let (status, body) = request(plain(addr).await, "/v1/jobs", Some(&good), Some(job)).await;
        assert_eq!(status, 422, "{body}");
        assert!(body.contains(why), "{body}");
    }

    // Without a secret file, a public HTTP API is refused at start.
    let out = cli(&["start", "--listen", "127.0.0.1:0", "--http", "0.0.0.0:0"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("without a cluster secret"),
        "{}",
        stderr(&out)
    );
}

/// A CA and a certificate for 127.0.0.1, written as PEM files.
fn pki(dir: &Path) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    (
        write("ca.pem", ca.pem()),
        write("cert.pem", cert.pem()),
        write("key.pem", key.serialize_pem()),
    )
}

#[tokio::test]
async fn a_tls_cluster_runs_jobs_for_wss_and_https_clients() {
    let dir = Scratch::new("tls");
    let secret = write_secret(dir.path(), "s", "tls-secret");
    let (ca, cert, key) = pki(dir.path());
    let tls = ["--tls-cert", &cert, "--tls-key", &key, "--tls-ca", &ca];
    let mut first: Vec<&str> = vec![
        "--secret-file",
        &secret,
        "--http",
        "127.0.0.1:0",
        "--http-auth",
    ];
    first.extend_from_slice(&tls);
    let n1 = NodeProc::start("node-1", &first).await;
    assert!(n1.url().starts_with("wss://"), "{}", n1.url());
    let seed = n1.url().to_owned();
    let mut rest: Vec<&str> = vec!["--secret-file", &secret, "--join", &seed];
    rest.extend_from_slice(&tls);
    let n2 = NodeProc::start("node-2", &rest).await;
    let n3 = NodeProc::start("node-3", &rest).await;

    // The cluster forms over TLS (seen by the CLI through wss://).
    timeout(LIMIT, async {
        loop {
            let out = cli(&[
                "status",
                "--cluster",
                &seed,
                "--tls-ca",
                &ca,
                "--secret-file",
                &secret,
                "--json",
            ])
            .await;
            assert!(out.status.success(), "{}", stderr(&out));
            if stdout(&out).matches("\"up\"").count() >= 3 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("three members up over TLS");

    // The CLI over wss:// runs jobs.
    let out = cli(&[
        "submit",
        "--cluster",
        n3.url(),
        "--tls-ca",
        &ca,
        "--secret-file",
        &secret,
        "--kind",
        "echo",
        "--data",
        "over-tls",
        "--wait",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("over-tls"), "{}", stdout(&out));

    // The HTTPS API, with the token, runs jobs too.
    let connector = tokio_rustls::TlsConnector::from(client_rustls(&ca));
    let https = |addr| {
        let connector = connector.clone();
        async move {
            let tcp = plain(addr).await;
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            timeout(LIMIT, connector.connect(name, tcp))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let good = token("tls-secret");
    let jobs =
        r#"[{"kind":"echo","data":"a"},{"kind":"echo","data":"b"},{"kind":"sha256","data":"c"}]"#;
    let (status, body) = request(
        https(n1.http()).await,
        "/v1/jobs?wait=true",
        Some(&good),
        Some(jobs),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"a\"") && body.contains("\"b\""), "{body}");
    let (status, _) = request(https(n1.http()).await, "/v1/cluster", None, None).await;
    assert_eq!(status, 401, "--http-auth on loopback requires the token");
    // Plain HTTP to the HTTPS port gets no answer.
    let (status, _) = request(plain(n1.http()).await, "/v1/cluster", Some(&good), None).await;
    assert_eq!(status, 0);

    // A plaintext WebSocket client is refused by the TLS node.
    let plain_url = seed.replace("wss://", "ws://");
    let out = cli(&[
        "status",
        "--cluster",
        &plain_url,
        "--secret-file",
        &secret,
        "--connect-timeout",
        "5",
    ])
    .await;
    assert!(!out.status.success());
    // And wss:// without a CA says what is missing.
    let out = cli(&["status", "--cluster", &seed, "--secret-file", &secret]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--tls-ca"), "{}", stderr(&out));
    drop((n2, n3));
}

fn client_rustls(ca: &str) -> Arc<tokio_rustls::rustls::ClientConfig> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Resident set size of process `pid`, in bytes.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_clients_cost_little_memory() {
    const CLIENTS: usize = 10_000;
    const AT_ONCE: usize = 64;
    let node = NodeProc::start("node-1", &[]).await;
    let pid = node.child.id().unwrap();
    let url = node.url().to_owned();
    let token = job_node::ClusterSecret::development().client_token();
    // Warm up: one client in and out, so that lazily built state is counted
    // in the baseline.
    let warm = connect_client(&url, &token).await;
    drop(warm);
    let before = rss_of(pid);
    let mut clients = Vec::with_capacity(CLIENTS);
    while clients.len() < CLIENTS {
        let batch = (CLIENTS - clients.len()).min(AT_ONCE);
        let connects = (0..batch).map(|_| connect_client(&url, &token));
        clients.extend(futures_util::future::join_all(connects).await);
    }
    let after = rss_of(pid);
    let growth = after.saturating_sub(before);
    println!(
        "{CLIENTS} idle authenticated clients: node RSS {:.1} MB -> {:.1} MB, growth {:.1} MB ({} B per client)",
        before as f64 / 1e6,
        after as f64 / 1e6,
        growth as f64 / 1e6,
        growth / CLIENTS as u64
    );
    // Target (issue 12): <= 16 KB per idle client, < 200 MB for 10,000.
    // Measured on this debug build: about 9 KB per client, 115-132 MB in
    // all with any of glibc, jemalloc (the default) and mimalloc
    // (docs/security.md); the bounds below guard against regressions with
    // room for a loaded machine and the 2 MiB steps of transparent huge
    // pages.
    assert!(
        after < 256 * 1000 * 1000,
        "node RSS {after} B with {CLIENTS} clients"
    );
    assert!(
        growth / (CLIENTS as u64) <= 24 * 1024,
        "{} B per client",
        growth / CLIENTS as u64
    );
    drop(clients);
}

type ClientWs = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A bearer-authenticated client that has read its auth reply and welcome.
async fn connect_client(url: &str, token: &str) -> ClientWs {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = timeout(LIMIT, tokio_tungstenite::connect_async(request))
        .await
        .unwrap()
        .unwrap();
    for _ in 0..2 {
        let frame = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
        assert!(frame.is_text(), "{frame:?}");
    }
    ws
}
