//! A network lab for one scenario: Linux network namespaces joined by veth
//! pairs to a bridge, real `job-node` processes inside them, and faults
//! applied with nftables. Everything it creates (namespaces, their links
//! and addresses, rules, processes, files) is removed when the [`Lab`] is
//! dropped, on success and on failure alike.
//!
//! ```text
//!   ns <id>-n1 (10.77.0.1)   ns <id>-n2 (10.77.0.2)   ...   ns <id>-cl (10.77.0.100)
//!        eth0                     eth0                           eth0
//!          \________________________|______________________________/
//!                          ns <id>-hub: bridge br0
//! ```
//!
//! Namespace names carry the process id and a counter, so parallel test
//! binaries and scenarios never collide; the addresses live only inside
//! the lab's own namespaces.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

/// The job-node binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_job-node");
/// Port every node listens on (each in its own namespace).
pub const PORT: u16 = 7700;
/// Address of the workload client's namespace.
const CLIENT_IP: &str = "10.77.0.100";
/// The nftables table holding the faults, in every node namespace.
const TABLE: &str = "inet jmfault";

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// Why the suite cannot run here.
#[derive(Debug)]
pub struct Unavailable(pub String);

/// Runs a command, returning its stderr on failure.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `nft -f -` in namespace `ns` with `script` on stdin.
fn nft(ns: &str, script: &str) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| format!("cannot feed nft: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("nft did not finish: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft in {ns} refused {script:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Checks that this machine can run the lab: root, iproute2 with network
/// namespaces, and nftables.
pub fn available() -> Result<(), Unavailable> {
    if std::env::var_os("JOBMESH_SKIP_FAULTS").is_some() {
        return Err(Unavailable("JOBMESH_SKIP_FAULTS is set".into()));
    }
    let probe = format!("jmf{}-probe", std::process::id());
    run("ip", &["netns", "add", &probe]).map_err(|e| {
        Unavailable(format!(
            "cannot create a network namespace (needs root and iproute2): {e}"
        ))
    })?;
    let nft_ok = run("ip", &["netns", "exec", &probe, "nft", "list", "tables"]);
    let _ = run("ip", &["netns", "del", &probe]);
    nft_ok.map_err(|e| {
        Unavailable(format!(
            "nftables is not usable (`apt-get install -y nftables`): {e}"
        ))
    })
}

/// One `job-node start` process inside its namespace.
#[derive(Debug)]
struct NodeProc {
    name: String,
    child: Child,
}

/// The namespaces, links, rules and node processes of one scenario.
#[derive(Debug)]
pub struct Lab {
    id: String,
    namespaces: Vec<String>,
    nodes: Mutex<Vec<NodeProc>>,
    count: usize,
    dir: PathBuf,
    secret: String,
}

impl Lab {
    /// Creates the namespaces and links for `count` nodes and a client, and
    /// starts the nodes (`n1` is the seed the others join; each runs 2
    /// workers). Returns once every node printed its ready line.
    pub fn start(count: usize) -> Lab {
        let seq = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let id = format!("jmf{}x{seq}", std::process::id());
        let dir = std::env::temp_dir().join(&id);
        let mut lab = Lab {
            id,
            namespaces: Vec::new(),
            nodes: Mutex::new(Vec::new()),
            count,
            dir,
            secret: format!("fault-lab-{}", rand::random::<u64>()),
        };
        // From here on, Drop cleans up whatever was made, even on a panic.
        lab.build()
            .unwrap_or_else(|e| panic!("cannot build the lab: {e}"));
        for i in 1..=count {
            lab.start_node(i);
        }
        lab
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.id)
    }

    fn add_ns(&mut self, role: &str) -> Result<String, String> {
        let ns = self.ns(role);
        run("ip", &["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn build(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        std::fs::write(self.dir.join("secret"), &self.secret).map_err(|e| e.to_string())?;
        let hub = self.add_ns("hub")?;
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        let mut roles: Vec<(String, String)> = (1..=self.count)
            .map(|i| (format!("n{i}"), format!("10.77.0.{i}")))
            .collect();
        roles.push(("cl".into(), CLIENT_IP.into()));
        for (role, ip) in roles {
            let ns = self.add_ns(&role)?;
            let port = format!("p-{role}");
            run(
                "ip",
                &[
                    "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                    "netns", &hub,
                ],
            )?;
            run("ip", &["-n", &hub, "link", "set", &port, "master", "br0"])?;
            run("ip", &["-n", &hub, "link", "set", &port, "up"])?;
            let cidr = format!("{ip}/24");
            run("ip", &["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            if role != "cl" {
                nft(
                    &ns,
                    &format!(
                        "table {TABLE} {{\n\
                         chain input {{ type filter hook input priority 0; policy accept; }}\n\
                         chain output {{ type filter hook output priority 0; policy accept; }}\n\
                         }}\n"
                    ),
                )?;
            }
        }
        Ok(())
    }

    /// The node's address inside the lab.
    pub fn ip(&self, i: usize) -> String {
        format!("10.77.0.{i}")
    }

    /// The node's cluster URL.
    pub fn url(&self, i: usize) -> String {
        format!("ws://{}:{PORT}", self.ip(i))
    }

    /// The node's name (`n<i>`).
    pub fn name(&self, i: usize) -> String {
        format!("n{i}")
    }

    /// How many nodes the lab runs.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The cluster secret (clients derive their token from it).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    fn start_node(&self, i: usize) {
        let name = self.name(i);
        let listen = format!("{}:{PORT}", self.ip(i));
        let secret = self.dir.join("secret");
        let log = File::create(self.dir.join(format!("{name}.log"))).expect("log file");
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.ns(&name), BIN, "start"])
            .args(["--name", &name, "--listen", &listen, "--workers", "2"])
            .arg("--secret-file")
            .arg(&secret)
            .arg("--supervised");
        if i > 1 {
            command.args(["--join", &self.url(1)]);
        }
        let log_level = std::env::var("FAULTS_NODE_LOG")
            .unwrap_or_else(|_| "warn,cluster_router=info,job_queue=info".into());
        let mut child = command
            .env("RUST_LOG", log_level)
            .env_remove("JOBMESH_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn job-node in its namespace");
        let stdout = child.stdout.take().expect("piped stdout");
        self.nodes.lock().unwrap().push(NodeProc {
            name: name.clone(),
            child,
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep draining so the node never blocks on stdout.
            for _ in lines {}
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(Ok(line))) if line.contains("\"ready\"") => {}
            other => panic!(
                "{name} did not get ready: {other:?}; log:\n{}",
                self.log_tail(i)
            ),
        }
    }

    /// The process id of node `i` (`ip netns exec` execs the node itself).
    pub fn pid(&self, i: usize) -> u32 {
        let nodes = self.nodes.lock().unwrap();
        nodes[i - 1].child.id()
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`) to node `i`.
    pub fn signal(&self, i: usize, signal: &str) {
        let pid = self.pid(i).to_string();
        run("kill", &["-s", signal, &pid]).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Drops every packet node `from` sends to node `to` (one direction).
    pub fn block(&self, from: usize, to: usize) {
        let ns = self.ns(&self.name(from));
        let rule = format!("add rule {TABLE} output ip daddr {} drop\n", self.ip(to));
        nft(&ns, &rule).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Cuts every node in `a` from every node in `b`, both ways.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                self.block(x, y);
                self.block(y, x);
            }
        }
    }

    /// Drops `percent` % of the packets every node receives, at random.
    pub fn loss(&self, percent: u32) {
        for i in 1..=self.count {
            let ns = self.ns(&self.name(i));
            let rule = format!(
                "add rule {TABLE} input ip saddr 10.77.0.0/24 numgen random mod 100 < {percent} drop\n"
            );
            nft(&ns, &rule).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Removes every fault rule.
    pub fn heal(&self) {
        for i in 1..=self.count {
            let ns = self.ns(&self.name(i));
            nft(&ns, &format!("flush table {TABLE}\n")).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// The client namespace, as a file to `setns` a thread into.
    pub fn client_netns(&self) -> File {
        File::open(format!("/var/run/netns/{}", self.ns("cl"))).expect("client netns")
    }

    /// The last lines of node `i`'s log (its stderr).
    pub fn log_tail(&self, i: usize) -> String {
        let path = self.dir.join(format!("{}.log", self.name(i)));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Runs `body` on a thread moved into the client namespace, on a
    /// current-thread runtime of its own: every socket it opens lives in
    /// the lab.
    pub fn in_client_ns<T: Send>(&self, body: impl FnOnce() -> T + Send) -> T {
        let netns = self.client_netns();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    rustix::thread::move_into_link_name_space(
                        netns.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .expect("setns into the client namespace");
                    body()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let nodes = std::mem::take(&mut *self.nodes.lock().unwrap_or_else(|p| p.into_inner()));
        for mut node in nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
            if std::thread::panicking() {
                let path = self.dir.join(format!("{}.log", node.name));
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                let mut err = std::io::stderr();
                let _ = writeln!(err, "---- log of {} (last lines) ----", node.name);
                for line in tail.iter().rev() {
                    let _ = writeln!(err, "{line}");
                }
            }
        }
        // Deleting a namespace deletes its end of each veth pair, and so
        // the pair; its nftables rules go with it.
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = run("ip", &["netns", "del", &ns]) {
                let _ = writeln!(std::io::stderr(), "lab cleanup: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
