//! The servers under test as child processes: finding their binaries, starting them
//! on free loopback ports, stopping them with SIGTERM, and killing them on drop.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The binaries the benchmark runs, found next to its own executable.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub updraft: PathBuf,
    pub hyper_hello: PathBuf,
}

/// The command that builds everything the benchmark needs, in release mode.
pub const BUILD_COMMAND: &str = "cargo build --release -p updraft -p updraft-bench";

impl Binaries {
    /// Looks for `updraft` and `hyper-hello` in the folder of the running executable,
    /// which is cargo's target folder when both were built by `BUILD_COMMAND`.
    pub fn next_to_current_exe() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the benchmark's own executable")?;
        let dir = exe.parent().context("the benchmark's executable has no parent folder")?;
        let find = |name: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
            if !path.is_file() {
                bail!(
                    "{} not found next to {}; build it with `{BUILD_COMMAND}` (from the repository root) \
                     and run target/release/updraft-bench",
                    path.display(),
                    exe.display()
                );
            }
            Ok(path)
        };
        Ok(Self { updraft: find("updraft")?, hyper_hello: find("hyper-hello")? })
    }
}

/// A free port on 127.0.0.1. Another process could take it before the server binds
/// it; on a benchmark machine that race is rare, and the server then fails loudly.
pub fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free loopback port")?;
    listener.local_addr().context("reading the free port")
}

/// A running server process, killed when dropped.
pub struct ServerProcess {
    name: String,
    child: Option<Child>,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Starts `command`, sending its stdout and stderr to `log_path`.
    pub fn spawn(name: &str, mut command: Command, log_path: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let log_for_stdout = log.try_clone().context("duplicating the log file handle")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        Ok(Self { name: name.to_owned(), child: Some(child), log_path: log_path.to_owned() })
    }

    /// Fails if the process has exited, with the end of its log.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        let child = self.child.as_mut().context("the server was already stopped")?;
        if let Some(status) = child.try_wait().context("checking on the server process")? {
            bail!("{} exited early with {status}; the end of its log:\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    /// Sends SIGTERM and waits up to `grace` for a clean exit; kills it after that.
    pub fn terminate(&mut self, grace: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        // `kill` rather than a signal crate: std cannot send SIGTERM without unsafe.
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("running `kill -TERM` on the server")?;
        if !sent.success() {
            bail!("`kill -TERM {}` failed with {sent}", child.id());
        }
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = child.try_wait().context("waiting for the server to exit")? {
                if !status.success() {
                    bail!("{} exited with {status} after SIGTERM; the end of its log:\n{}", self.name, self.log_tail());
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not exit within {grace:?} of SIGTERM; killed it", self.name);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the process at once (`kill -9`), as a crash would.
    #[allow(dead_code, reason = "only the cluster benchmark kills a node; the others include this file too")]
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of the process's output, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `sql` with `psql` against the database at `url`, stopping at the first error.
#[allow(dead_code, reason = "only the events and cluster benchmarks use PostgreSQL; the others include this file too")]
pub fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .context("running psql (Debian's postgresql-client)")?;
    if !output.status.success() {
        bail!("psql {sql:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}
