//! The web dashboard in a real browser: Debian's chromium, headless,
//! driven through chromedriver (WebDriver, with fantoccini) against three
//! real `job-node` processes.
//!
//! The page shows the three members; a job submitted from the page
//! succeeds; a running `sleep` job is cancelled from the page; the jobs
//! page finds jobs by state; a node killed with SIGKILL is shown Down; the
//! browser's console has no errors. Screenshots land in
//! `target/dashboard-screenshots/`.
//!
//! Without chromium and chromedriver (`apt-get install chromium
//! chromium-driver`; `.ci/run` installs them) the test says why and skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{cluster, http, NodeProc, LIMIT};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

/// The first of `names` found on `PATH`.
fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// chromedriver and the browsers it started, in their own process group:
/// all killed on drop, also when the test fails before closing its session.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

/// chromedriver on a free loopback port (it prints the port it got).
async fn start_chromedriver(bin: &Path) -> (Driver, u16) {
    let mut child = Command::new(bin)
        .args(["--port=0", "--allowed-ips=127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chromedriver");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let port = timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.expect("chromedriver stdout") {
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                return rest.trim_end_matches('.').trim().parse::<u16>().ok();
            }
        }
        None
    })
    .await
    .expect("chromedriver did not start in time")
    .expect("chromedriver printed no port");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (Driver(child), port)
}

/// The browser's console log (chromedriver's `se/log` command, which
/// fantoccini has no method for).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

struct Browser {
    client: Client,
    shots: PathBuf,
}

impl Browser {
    async fn open(driver_port: u16, chromium: &Path) -> Browser {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000",
                         "--no-first-run", "--disable-extensions",
                         // No crash handler: it would leave its own session
                         // behind if the test is killed.
                         "--disable-breakpad", "--disable-crash-reporter"],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = timeout(
            LIMIT,
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{driver_port}")),
        )
        .await
        .expect("browser session in time")
        .expect("browser session");
        let shots =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Browser { client, shots }
    }

    /// Evaluates `expr` in the page until it is truthy (bounded); returns
    /// its value.
    async fn until(&self, what: &str, expr: &str) -> Value {
        let script = format!("return ({expr}) || null;");
        let wait = async {
            loop {
                let value = self.client.execute(&script, vec![]).await.expect("script");
                if !value.is_null() && value != json!(false) {
                    return value;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        match timeout(Duration::from_secs(60), wait).await {
            Ok(value) => value,
            Err(_) => {
                self.shot("failure").await;
                panic!("the page never showed {what} ({expr})");
            }
        }
    }

    /// Clicks the element `css` finds; again if the live page replaced it
    /// between the find and the click (a stale element).
    async fn click(&self, css: &str) {
        for _ in 0..20 {
            let element = timeout(LIMIT, self.client.wait().for_element(Locator::Css(css)))
                .await
                .unwrap_or_else(|_| panic!("no {css} in time"))
                .unwrap_or_else(|e| panic!("no {css}: {e}"));
            match element.click().await {
                Ok(()) => return,
                Err(e) if e.to_string().contains("stale element") => continue,
                Err(e) => panic!("click {css}: {e}"),
            }
        }
        panic!("{css} went stale 20 times in a row");
    }

    async fn fill(&self, css: &str, text: &str) {
        let element = self.client.find(Locator::Css(css)).await.expect(css);
        element.clear().await.expect("clear");
        element.send_keys(text).await.expect("type");
    }

    async fn shot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Console entries of level SEVERE.
    async fn console_errors(&self) -> Vec<Value> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("browser log");
        log.as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_watches_and_steers_a_real_cluster() {
    let (Some(chromium), Some(driver)) = (
        which(&["chromium", "chromium-browser", "google-chrome"]),
        which(&["chromedriver"]),
    ) else {
        eprintln!(
            "skipping the dashboard browser test: chromium and chromedriver are not installed \
             (apt-get install -y chromium chromium-driver)"
        );
        return;
    };
    let mut nodes = cluster(3, &["--http", "127.0.0.1:0"]).await;
    let api = nodes[0].http();
    let (_driver, driver_port) = start_chromedriver(&driver).await;
    let browser = Browser::open(driver_port, &chromium).await;
    let page = format!("http://{api}/");
    timeout(LIMIT, browser.client.goto(&page))
        .await
        .expect("page load in time")
        .expect("page load");

    // Cluster: the three members, Up.
    browser
        .until(
            "three members up",
            "document.querySelectorAll('#members tbody tr[data-status=up]').length === 3",
        )
        .await;
    browser
        .until(
            "the live feed",
            "document.getElementById('live').textContent === 'live'",
        )
        .await;

    // Some traffic for the charts and the jobs page: 300 jobs at once,
    // then a trickle of short sleeps while the test goes on.
    let batch: Vec<Value> = (0..300)
        .map(|i| json!({"kind": if i % 3 == 0 { "sha256" } else { "echo" }, "data": format!("job {i}")}))
        .collect();
    let reply = http(
        api,
        "POST",
        "/v1/jobs?wait=true&timeout=60",
        Some(&Value::Array(batch).to_string()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let trickle = tokio::spawn(async move {
        let mut pace = tokio::time::interval(Duration::from_millis(200));
        for round in 0u64.. {
            pace.tick().await;
            let jobs: Vec<Value> = (0..10)
                .map(|i| json!({"kind": "sleep", "data": ((round * 7 + i * 13) % 40 + 5).to_string()}))
                .collect();
            http(
                api,
                "POST",
                "/v1/jobs",
                Some(&Value::Array(jobs).to_string()),
            )
            .await;
        }
    });

    // Submit from the page and see it succeed.
    browser.click("a[data-page=submit]").await;
    browser.fill("#submit-kind", "sha256").await;
    browser.fill("#submit-data", "abc").await;
    browser.click("#submit-button").await;
    let result = browser
        .until(
            "the submitted job succeed",
            "(() => { const r = document.querySelector('#recent tbody tr[data-state=succeeded]'); \
             return r && r.children[4].textContent; })()",
        )
        .await;
    assert_eq!(result, json!(ABC_SHA256));

    // Cancel a running sleep job from the page.
    browser.fill("#submit-kind", "sleep").await;
    browser.fill("#submit-data", "600000").await;
    browser.fill("#submit-timeout", "900000").await;
    browser.click("#submit-button").await;
    let id = browser
        .until(
            "the sleep job running",
            "(() => { const r = document.querySelector('#recent tbody tr[data-state=running]'); \
             return r && r.dataset.id; })()",
        )
        .await;
    let id = id.as_str().expect("an id").to_owned();
    browser
        .click(&format!("#recent tbody tr[data-id='{id}'] button.cancel"))
        .await;
    browser
        .until(
            "the sleep job cancelled",
            &format!("document.querySelector(\"#recent tbody tr[data-id='{id}']\").dataset.state === 'cancelled'"),
        )
        .await;
    let record = http(api, "GET", &format!("/v1/jobs/{id}"), None)
        .await
        .json();
    assert_eq!(record["state"], "cancelled", "{record}");
    // The cluster page counts it as cancelled, not failed.
    browser.click("a[data-page=cluster]").await;
    browser
        .until(
            "the cancelled counter",
            "document.getElementById('s-cancelled').textContent === '1' && document.getElementById('s-failed').textContent === '0'",
        )
        .await;
    browser.click("a[data-page=submit]").await;
    browser.shot("submit").await;

    // Jobs: the search finds the cancelled job; its detail lists its attempt.
    browser.click("a[data-page=jobs]").await;
    browser.fill("#q-id", &id).await;
    browser.click("#search button[type=submit]").await;
    browser
        .until(
            "the job found by id",
            &format!("document.querySelectorAll(\"#jobs tbody tr[data-id='{id}'][data-state=cancelled]\").length === 1"),
        )
        .await;
    browser
        .click(&format!("#jobs tbody tr[data-id='{id}']"))
        .await;
    browser
        .until(
            "the attempts",
            "document.querySelectorAll('#attempts tbody tr').length === 1",
        )
        .await;
    browser.fill("#q-id", "").await;
    browser.fill("#q-kind", "sha256").await;
    browser
        .client
        .execute(
            "document.getElementById('q-state').value = 'succeeded';",
            vec![],
        )
        .await
        .expect("select");
    browser.click("#search button[type=submit]").await;
    browser
        .until(
            "a page of succeeded jobs",
            "document.querySelectorAll('#jobs tbody tr[data-state=succeeded]').length === 50 \
             && /^1–50 of 101$/.test(document.getElementById('page-info').textContent)",
        )
        .await;
    browser.shot("jobs").await;

    // Charts have drawn the traffic.
    browser.click("a[data-page=charts]").await;
    browser
        .until(
            "a legend",
            "document.querySelectorAll('#l-rate-kind span').length >= 2",
        )
        .await;
    browser.shot("charts").await;

    // The cluster page, for the README.
    browser.click("a[data-page=cluster]").await;
    browser
        .until(
            "the counters and some jobs running",
            "Number(document.getElementById('s-succeeded').textContent.replace(/,/g, '')) > 301 \
             && document.getElementById('s-rate').textContent !== '0'",
        )
        .await;
    browser.shot("cluster").await;

    // kill -9 a node: it shows Down.
    nodes[2].child.start_kill().expect("kill -9 node-3");
    browser
        .until(
            "node-3 down",
            "(() => { const r = document.querySelector('#members tbody tr[data-node=node-3]'); \
             return r && r.dataset.status === 'down'; })()",
        )
        .await;
    let shot = browser.shot("node-down").await;
    eprintln!("screenshots in {}", shot.parent().unwrap().display());

    trickle.abort();
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    with_http_auth(&browser).await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.client.close().await.expect("close the browser");
}

/// A node with `--http-auth`: the page asks for the client token, then
/// works on a session cookie (a submission from the page succeeds), and
/// logging out asks again.
async fn with_http_auth(browser: &Browser) {
    let secret = "the dashboard test's cluster secret";
    let dir = std::env::temp_dir().join(format!("jobmesh-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("secret");
    std::fs::write(&file, secret).expect("secret file");
    let node = NodeProc::start(
        "auth-1",
        &[
            "--secret-file",
            file.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
            "--http-auth",
        ],
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let api = node.http();
    assert_eq!(http(api, "GET", "/v1/cluster", None).await.status, 401);
    let token = cluster_router::client_token(&cluster_router::Secret::from(secret));

    timeout(LIMIT, browser.client.goto(&format!("http://{api}/")))
        .await
        .expect("page load in time")
        .expect("page load");
    browser
        .until(
            "the login form",
            "!document.getElementById('page-login').classList.contains('hidden')",
        )
        .await;
    browser.shot("login").await;
    browser.fill("#login-token", &token).await;
    browser.click("#login-form button[type=submit]").await;
    browser
        .until(
            "the member after login",
            "document.querySelectorAll('#members tbody tr[data-status=up]').length === 1",
        )
        .await;
    let cookie = browser
        .client
        .get_named_cookie("jobmesh_session")
        .await
        .expect("a session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");

    browser.click("a[data-page=submit]").await;
    browser.fill("#submit-kind", "echo").await;
    browser.fill("#submit-data", "behind a login").await;
    browser.fill("#submit-timeout", "").await;
    browser.click("#submit-button").await;
    let result = browser
        .until(
            "the job submitted with a session succeed",
            "(() => { const r = document.querySelector('#recent tbody tr[data-state=succeeded]'); \
             return r && r.children[4].textContent; })()",
        )
        .await;
    assert_eq!(result, json!("behind a login"));

    browser.click("#logout").await;
    browser
        .until(
            "the login form again",
            "!document.getElementById('page-login').classList.contains('hidden')",
        )
        .await;
    drop(node);
}
