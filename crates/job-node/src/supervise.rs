//! Child processes that never outlive their parent: the `demo` command's
//! node processes.
//!
//! A [`ProcessGroup`] owns its children. Each child gets a pipe on stdin;
//! a node started with the hidden `--supervised` flag drains and exits
//! when that pipe closes, which happens when the group shuts down, when it
//! is dropped (also while unwinding from a panic), and when the parent
//! process dies for any reason, `SIGKILL` included. On top of that every
//! child is killed outright when the group is dropped.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// One supervised child process.
#[derive(Debug)]
pub(crate) struct SupervisedChild {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl SupervisedChild {
    /// The operating-system process id, while it runs.
    pub(crate) fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Takes the child's stdout (piped at spawn), once.
    pub(crate) fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Reads the first line the child prints on stdout (its readiness
    /// report), then keeps draining stdout in the background so the child
    /// never blocks on a full pipe.
    ///
    /// # Errors
    ///
    /// `TimedOut` if no line arrives within `timeout`, `UnexpectedEof` if
    /// the child closes stdout (usually: it exited) first, or the read error.
    pub(crate) async fn ready_line(&mut self, timeout: Duration) -> io::Result<String> {
        let stdout = self
            .take_stdout()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "stdout already taken"))?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(timeout, reader.read_line(&mut line)).await;
        match read {
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} did not report readiness within {timeout:?}", self.label),
            )),
            Ok(Ok(0)) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} exited before reporting readiness", self.label),
            )),
            Ok(Ok(_)) => {
                tokio::spawn(drain(reader));
                Ok(line.trim_end().to_owned())
            }
            Ok(Err(err)) => Err(err),
        }
    }
}

async fn drain<R: AsyncRead + Unpin>(mut reader: R) {
    let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
}

/// How one child ended in [`ProcessGroup::shutdown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChildExit {
    /// The child's label.
    pub label: String,
    /// Its exit status, if it could be collected.
    pub status: Option<ExitStatus>,
    /// Whether it had to be killed after the grace period.
    pub killed: bool,
}

/// A set of child processes killed together.
#[derive(Debug, Default)]
pub(crate) struct ProcessGroup {
    children: Vec<SupervisedChild>,
}

impl ProcessGroup {
    /// An empty group.
    pub(crate) fn new() -> Self {
        ProcessGroup::default()
    }

    /// Spawns `command` as a member: stdin is a pipe held by the group,
    /// stdout is piped (see [`SupervisedChild::ready_line`]), stderr is
    /// inherited, and the process is killed if the group drops it.
    ///
    /// # Errors
    ///
    /// The spawn error.
    pub(crate) fn spawn(
        &mut self,
        label: impl Into<String>,
        mut command: Command,
    ) -> io::Result<&mut SupervisedChild> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take();
        self.children.push(SupervisedChild {
            label: label.into(),
            child,
            stdin,
        });
        Ok(self.children.last_mut().expect("just pushed"))
    }

    /// How many members there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether the group is empty.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Stops every member: closes their stdin (a supervised node then
    /// drains and exits), waits up to `grace` for all of them, kills the
    /// rest, and reports how each ended. The group is empty afterwards.
    pub(crate) async fn shutdown(&mut self, grace: Duration) -> Vec<ChildExit> {
        for child in &mut self.children {
            child.stdin = None;
        }
        let deadline = tokio::time::Instant::now() + grace;
        let mut exits = Vec::with_capacity(self.children.len());
        for mut member in self.children.drain(..) {
            let waited = tokio::time::timeout_at(deadline, member.child.wait()).await;
            let (status, killed) = match waited {
                Ok(status) => (status.ok(), false),
                Err(_) => {
                    let _ = member.child.kill().await;
                    (member.child.try_wait().ok().flatten(), true)
                }
            };
            exits.push(ChildExit {
                label: member.label,
                status,
                killed,
            });
        }
        exits
    }

    /// Kills every member at once without waiting (what drop does too).
    pub(crate) fn kill_all(&mut self) {
        for member in &mut self.children {
            member.stdin = None;
            let _ = member.child.start_kill();
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::time::timeout;

    const LIMIT: Duration = Duration::from_secs(10);

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script);
        command
    }

    /// Reads a child's stdout to EOF: returns once the child is gone.
    async fn wait_gone(stdout: &mut ChildStdout) {
        let mut rest = Vec::new();
        timeout(LIMIT, stdout.read_to_end(&mut rest))
            .await
            .expect("child still alive")
            .unwrap();
    }

    #[tokio::test]
    async fn drop_kills_children() {
        let mut group = ProcessGroup::new();
        let mut outs = Vec::new();
        for i in 0..2 {
            let child = group
                .spawn(format!("sleeper-{i}"), sh("exec sleep 30"))
                .unwrap();
            assert!(child.id().is_some());
            outs.push(child.take_stdout().unwrap());
        }
        assert_eq!(group.len(), 2);
        drop(group);
        for out in &mut outs {
            wait_gone(out).await;
        }
    }

    #[tokio::test]
    async fn drop_while_unwinding_kills_children() {
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = tokio::spawn(async move {
            let mut group = ProcessGroup::new();
            let child = group.spawn("sleeper", sh("exec sleep 30")).unwrap();
            tx.send(child.take_stdout().unwrap()).unwrap();
            panic!("demo crashed");
        });
        assert!(timeout(LIMIT, handle).await.unwrap().is_err());
        let mut stdout = rx.recv().unwrap();
        wait_gone(&mut stdout).await;
    }

    #[tokio::test]
    async fn shutdown_is_graceful_then_forceful() {
        let mut group = ProcessGroup::new();
        group.spawn("reader", Command::new("cat")).unwrap();
        group
            .spawn("stubborn", sh("exec sleep 30 < /dev/null"))
            .unwrap();
        let exits = timeout(LIMIT, group.shutdown(Duration::from_millis(300)))
            .await
            .unwrap();
        assert!(group.is_empty());
        assert_eq!(exits.len(), 2);
        assert_eq!(exits[0].label, "reader");
        assert!(!exits[0].killed);
        assert!(
            exits[0].status.unwrap().success(),
            "cat exits 0 at stdin EOF"
        );
        assert_eq!(exits[1].label, "stubborn");
        assert!(exits[1].killed);
        assert_eq!(
            exits[1].status.and_then(|s| s.code()),
            None,
            "ended by a signal"
        );
    }

    #[tokio::test]
    async fn ready_line_and_early_exit() {
        let mut group = ProcessGroup::new();
        let child = group
            .spawn(
                "node",
                sh(r#"echo '{"event":"ready"}'; yes | head -c 1000000; exec cat"#),
            )
            .unwrap();
        let line = timeout(LIMIT, child.ready_line(LIMIT))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(line, r#"{"event":"ready"}"#);
        let dead = group.spawn("dead", sh("exit 3")).unwrap();
        let err = dead.ready_line(LIMIT).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let silent = group.spawn("silent", sh("read -r line; exit 0")).unwrap();
        let err = silent
            .ready_line(Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let exits = timeout(LIMIT, group.shutdown(Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(
            !exits[0].killed,
            "the drained child must see stdin EOF and exit"
        );
        assert_eq!(exits[1].status.and_then(|s| s.code()), Some(3));
    }
}
