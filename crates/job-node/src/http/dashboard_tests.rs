//! The dashboard's routes (page, search, live feed, login) against the
//! fake backend, over real loopback sockets.

use super::*;

const TOKEN: &str = "the-client-token";

/// A server with the bearer guard on (`TOKEN`).
async fn start_guarded() -> Server {
    let metrics = Arc::new(Metrics::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(Arc::new(FakeApi::default()), metrics.clone());
    let app = guard(app, HttpAuth::bearer(TOKEN.into(), false));
    let task = tokio::spawn(serve(listener, app, async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        metrics,
        stop: Some(stop),
        task,
    }
}

/// One request with extra header lines (`"Name: value\r\n"` each).
async fn call_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: Option<&str>,
) -> Reply {
    timeout(LIMIT, request_with(addr, method, path, headers, body))
        .await
        .expect("HTTP request hung")
}

/// Opens `GET /dashboard/events` and reads until `until` appears in what
/// arrived; returns the stream (still open) and the text.
async fn open_stream(addr: SocketAddr, headers: &str, until: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET /dashboard/events HTTP/1.1\r\nHost: test\r\n{headers}\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut text = String::new();
    let read = async {
        let mut buf = vec![0u8; 64 * 1024];
        while !text.contains(until) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream closed early: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    timeout(LIMIT, read).await.expect("no event in time");
    (stream, text)
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let server = Server::start().await;
    let page = server.call("GET", "/", None).await;
    assert_eq!(page.status, 200);
    assert!(page.headers.contains("text/html"), "{}", page.headers);
    assert!(page
        .headers
        .to_ascii_lowercase()
        .contains("content-security-policy: default-src 'self'"));
    assert!(page.body.contains("/dashboard/app.js"));
    for (path, kind) in [
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
        ("/dashboard/icon.svg", "image/svg+xml"),
    ] {
        let reply = server.call("GET", path, None).await;
        assert_eq!(reply.status, 200, "{path}");
        assert!(reply.headers.contains(kind), "{path}: {}", reply.headers);
        assert!(reply.body.len() > 100, "{path}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn job_records_are_searched_and_paged_on_the_server() {
    let server = Server::start().await;
    let batch: Vec<Value> = (0..120)
        .map(|i| json!({"kind": "echo", "id": format!("job-{i:03}")}))
        .chain((0..5).map(|i| json!({"kind": "fail", "id": format!("bad-{i}")})))
        .collect();
    let reply = server
        .call("POST", "/v1/jobs", Some(&Value::Array(batch).to_string()))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);

    let page = server
        .call("GET", "/v1/job-records?state=succeeded&limit=50", None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let page = page.json();
    assert_eq!(page["total"], 120);
    assert_eq!(page["jobs"].as_array().unwrap().len(), 50);
    assert_eq!(page["jobs"][0]["id"], "job-119");

    let last = server
        .call(
            "GET",
            "/v1/job-records?state=succeeded&offset=100&limit=50&kind=&node=",
            None,
        )
        .await
        .json();
    assert_eq!(
        (
            last["offset"].as_u64(),
            last["jobs"].as_array().unwrap().len()
        ),
        (Some(100), 20)
    );

    let dead = server
        .call("GET", "/v1/job-records?state=dead", None)
        .await
        .json();
    assert_eq!(dead["total"], 5);
    let by_id = server
        .call("GET", "/v1/job-records?id=job-07", None)
        .await
        .json();
    assert_eq!(by_id["total"], 10);

    let bad = server.call("GET", "/v1/job-records?state=lost", None).await;
    assert!(bad.error(400).contains("unknown state"));
    let bad = server.call("GET", "/v1/job-records?limit=0", None).await;
    assert!(bad.error(400).contains("limit"));
    let bad = server.call("GET", "/v1/job-records?limit=501", None).await;
    bad.error(400);
    let bad = server.call("GET", "/v1/job-records?color=red", None).await;
    bad.error(400);
    server.shutdown().await;
}

#[tokio::test]
async fn the_live_feed_sends_history_then_ticks_and_ends_with_the_server() {
    let server = Server::start().await;
    server
        .call("POST", "/v1/jobs", Some(r#"{"kind":"echo","data":"x"}"#))
        .await;
    let (stream, text) = open_stream(server.addr, "", "event: tick").await;
    assert!(text.contains("text/event-stream"), "{text}");
    assert!(text.contains("event: history"), "{text}");
    let tick = text
        .split("event: tick\ndata: ")
        .nth(1)
        .and_then(|rest| rest.split('\n').next())
        .expect("tick data");
    let tick: Value = serde_json::from_str(tick).expect("tick is JSON");
    assert_eq!(
        tick["state"]["cluster"]["members"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(tick["state"]["since_ms"]["node-c"].is_u64(), "{tick}");
    assert!(tick["series"]["all"]["n"].as_u64().unwrap() >= 1, "{tick}");
    // A graceful shutdown ends the open stream instead of waiting on it.
    server.shutdown().await;
    drop(stream);
}

#[tokio::test]
async fn live_streams_are_capped() {
    let server = Server::start().await;
    let mut open = Vec::new();
    for _ in 0..live::MAX_STREAMS {
        open.push(open_stream(server.addr, "", "event: history").await.0);
    }
    let refused = server.call("GET", "/dashboard/events", None).await;
    assert!(refused
        .error(503)
        .contains("too many live dashboard streams"));
    open.pop();
    // A closed stream's slot is given back (once the server notices).
    let reopened = async {
        loop {
            let mut s = TcpStream::connect(server.addr).await.unwrap();
            s.write_all(b"GET /dashboard/events HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 12];
            s.read_exact(&mut buf).await.unwrap();
            if &buf[9..12] == b"200" {
                return s;
            }
            tokio::task::yield_now().await;
        }
    };
    open.push(timeout(LIMIT, reopened).await.expect("slot never freed"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_login_turns_the_token_into_a_session_cookie() {
    let server = start_guarded().await;
    let addr = server.addr;
    // The page is public; the data is not.
    assert_eq!(call_with(addr, "GET", "/", "", None).await.status, 200);
    let session = call_with(addr, "GET", "/dashboard/session", "", None)
        .await
        .json();
    assert_eq!(session, json!({"auth_required": true, "logged_in": false}));
    call_with(addr, "GET", "/v1/cluster", "", None)
        .await
        .error(401);
    call_with(addr, "GET", "/dashboard/events", "", None)
        .await
        .error(401);
    let wrong = call_with(
        addr,
        "POST",
        "/dashboard/login",
        "",
        Some(r#"{"token":"nope"}"#),
    )
    .await;
    assert!(wrong.error(401).contains("invalid token"));
    assert!(!wrong.headers.to_ascii_lowercase().contains("set-cookie"));

    let body = format!(r#"{{"token":"{TOKEN}"}}"#);
    let login = call_with(addr, "POST", "/dashboard/login", "", Some(&body)).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let set_cookie = login
        .headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie")
        .to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let pair = set_cookie[11..]
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let cookie = format!("Cookie: {pair}\r\n");

    assert_eq!(
        call_with(addr, "GET", "/v1/cluster", &cookie, None)
            .await
            .status,
        200
    );
    let session = call_with(addr, "GET", "/dashboard/session", &cookie, None)
        .await
        .json();
    assert_eq!(session["logged_in"], true);
    let (stream, _) = open_stream(addr, &cookie, "event: history").await;
    drop(stream);
    let job = Some(r#"{"kind":"echo"}"#);
    let forged = call_with(addr, "POST", "/v1/jobs", &cookie, job).await;
    assert!(forged.error(403).contains("x-jobmesh-dashboard"));
    let with_header = format!("{cookie}x-jobmesh-dashboard: 1\r\n");
    assert_eq!(
        call_with(addr, "POST", "/v1/jobs", &with_header, job)
            .await
            .status,
        202
    );
    // The bearer token keeps working beside sessions.
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    assert_eq!(
        call_with(addr, "POST", "/v1/jobs", &bearer, job)
            .await
            .status,
        202
    );
    // A forged cookie is no session.
    let forged = format!("Cookie: {}={}\r\n", session::COOKIE, "ab".repeat(32));
    call_with(addr, "GET", "/v1/cluster", &forged, None)
        .await
        .error(401);

    let logout = call_with(addr, "POST", "/dashboard/logout", &with_header, None).await;
    assert_eq!(logout.status, 200);
    assert!(logout.headers.contains("Max-Age=0"));
    call_with(addr, "GET", "/v1/cluster", &cookie, None)
        .await
        .error(401);
    server.shutdown().await;
}
