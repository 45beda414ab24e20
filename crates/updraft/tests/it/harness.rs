//! `TestServer`: the real `updraft` binary on a free port with a temporary data dir,
//! plus helpers to run the CLI against it and to call it over HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_updraft");

/// The repository's root (for `examples/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_owned()
}

/// Tests that load this 2-core machine heavily (clusters of servers, the event tests
/// with their Python sandboxes, thousands of events and kill -9 recoveries) hold this
/// for reading; a test whose exact counts have failed beside them (a wasm guest's
/// outbound request reported as "connection reset": the end of its request body came
/// late, cause not yet found), the cluster test that waits for a function homed on its
/// small node (which once waited a minute in vain beside them), and the two node-loss
/// tests (six servers and 1,200 Python invocations between them, which once both ran past
/// their two minutes side by side), hold it for writing, so they run alone.
pub static HEAVY_LOAD: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub struct TestServer {
    pub data_dir: tempfile::TempDir,
    pub addr: String,
    pub http: reqwest::Client,
    child: Option<Child>,
    /// Everything the server wrote to stderr (its log).
    pub log: Arc<Mutex<String>>,
    command: Vec<String>,
    extra_args: Vec<String>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra_args: &[&str]) -> Self {
        Self::spawn_command(&["server"], extra_args)
    }

    /// `updraft up DIR`: a server with the app in DIR deployed and watched.
    pub fn up(dir: &Path) -> Self {
        Self::spawn_command(&["up", dir.to_str().unwrap()], &[])
    }

    /// A server whose address space is capped (with `prlimit --as`), as on a small host.
    pub fn start_with_address_space_limit(bytes: u64) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let command = vec![format!("--as={bytes}"), "--".into(), BIN.into(), "server".into()];
        let (child, addr, log) = spawn_program("prlimit", &command, data_dir.path(), &[], "127.0.0.1:0");
        Self {
            data_dir,
            addr,
            http: client(),
            child: Some(child),
            log,
            command: vec!["server".into()],
            extra_args: Vec::new(),
        }
    }

    /// A server on a data dir made beforehand.
    pub fn start_in(data_dir: tempfile::TempDir) -> Self {
        Self::spawn_in(data_dir, &["server"], &[])
    }

    /// A server on a data dir made beforehand, with more arguments.
    pub fn start_in_with(data_dir: tempfile::TempDir, extra_args: &[&str]) -> Self {
        Self::spawn_in(data_dir, &["server"], extra_args)
    }

    fn spawn_command(command: &[&str], extra_args: &[&str]) -> Self {
        Self::spawn_in(tempfile::tempdir().unwrap(), command, extra_args)
    }

    fn spawn_in(data_dir: tempfile::TempDir, command: &[&str], extra_args: &[&str]) -> Self {
        let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let (child, addr, log) = spawn_program(BIN, &command, data_dir.path(), &extra_args, "127.0.0.1:0");
        if let Some((_, stream)) = nats_stream(data_dir.path()) {
            // The NATS pass must really run on NATS.
            let started = log.lock().unwrap().clone();
            assert!(
                started.contains("asynchronous events wait in NATS JetStream") && started.contains(&stream),
                "{started}"
            );
        }
        Self { data_dir, addr, http: client(), child: Some(child), log, command, extra_args }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("admin-token")).unwrap().trim().to_owned()
    }

    /// The CLI with `args`, pointed at this server.
    fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(["--endpoint", &self.url(""), "--data-dir"])
            .arg(self.data_dir.path())
            .args(args)
            .env_remove("UPDRAFT_TOKEN");
        command
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().unwrap()
    }

    /// Runs the CLI against this server from the folder `cwd`.
    pub fn cli_in(&self, cwd: &Path, args: &[&str]) -> Output {
        self.cli_command(args).current_dir(cwd).output().unwrap()
    }

    /// Starts the CLI against this server, its stdout piped (for `-f`); it is killed
    /// when the returned guard drops.
    pub fn cli_spawn(&self, args: &[&str]) -> ChildGuard {
        let child = self
            .cli_command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        ChildGuard(child)
    }

    /// Runs the CLI and fails the test unless it succeeds; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "updraft {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub fn deploy(&self, dir: &Path) -> String {
        self.cli_ok(&["deploy", dir.to_str().unwrap()])
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// A control-plane request with the admin key.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(self.token())
    }

    /// Invokes `function` with `event` through the control plane; its answer, which
    /// must be a `200` with JSON.
    pub async fn invoke(&self, function: &str, event: serde_json::Value) -> serde_json::Value {
        let path = format!("/v1/functions/{function}/invoke");
        let response = self.api(reqwest::Method::POST, &path).json(&event).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, reqwest::StatusCode::OK, "{function} {event}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        child.wait().unwrap()
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same data dir (and a new port).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.terminate();
            assert!(status.success(), "server exited with {status}");
        }
        let (child, addr, log) =
            spawn_program(BIN, &self.command, self.data_dir.path(), &self.extra_args, "127.0.0.1:0");
        self.child = Some(child);
        self.addr = addr;
        self.log = log;
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the server's own log contains `needle` (it is read from a pipe, so
    /// it trails the server a little).
    pub async fn wait_for_server_log(&self, needle: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !self.log_text().contains(needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "{needle:?} never appeared in the server log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `updraft logs FUNCTION` shows `needle`: function logs are written
    /// in batches, off the request path, so they trail the response briefly.
    pub async fn wait_for_function_log(&self, function: &str, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let logs = self.cli_ok(&["logs", function]);
            if logs.contains(needle) {
                return logs;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{needle:?} never appeared in the logs of {function}:\n{logs}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some((url, stream)) = nats_stream(self.data_dir.path()) {
            // Off the test's runtime (this may run inside one): a thread with its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async {
                    if let Ok(client) = async_nats::connect(url).await {
                        let _ = async_nats::jetstream::new(client).delete_stream(stream).await;
                    }
                });
            })
            .join();
        }
    }
}

/// With `UPDRAFT_TEST_NATS_URL` set, every test server keeps its events in NATS
/// JetStream there, in a stream of its own (named after its data dir, so a restart
/// finds it again): the NATS URL and the stream's name.
pub fn nats_stream(data_dir: &Path) -> Option<(String, String)> {
    let url = std::env::var("UPDRAFT_TEST_NATS_URL").ok().filter(|url| !url.is_empty())?;
    let name = data_dir.file_name()?.to_string_lossy();
    let suffix: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    Some((url, format!("UPDRAFT_TEST_{suffix}")))
}

/// Runs `program` with `arguments`, then `--data-dir`, `--listen` and `extra_args`, and
/// waits for the server's "listening" line, which carries the port.
fn spawn_program(
    program: &str,
    arguments: &[String],
    data_dir: &Path,
    extra_args: &[String],
    listen: &str,
) -> (Child, String, Arc<Mutex<String>>) {
    let mut child = Command::new(program)
        .args(arguments)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", listen])
        .args(extra_args)
        // A short ack wait: a test's kill -9 should not leave its events held for 30 s.
        .envs(
            nats_stream(data_dir)
                .map(|(url, stream)| {
                    [("UPDRAFT_NATS_URL", url), ("UPDRAFT_NATS_STREAM", stream), ("UPDRAFT_NATS_ACK_WAIT", "3s".into())]
                })
                .into_iter()
                .flatten(),
        )
        .env("UPDRAFT_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (sender, receiver) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut sender = Some(sender);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.find("listening on http://") {
                let addr = line[at + "listening on http://".len()..].split_whitespace().next().unwrap_or("").to_owned();
                if let Some(sender) = sender.take() {
                    let _ = sender.send(addr);
                }
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    match receiver.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => (child, addr, log),
        Err(_) => {
            let _ = child.kill();
            panic!("the server did not start; its log:\n{}", log.lock().unwrap());
        }
    }
}

/// The tests' HTTP client. It lets an idle connection go well before the server does
/// (`--header-timeout`, 10 s, also bounds idle keep-alive connections), so that a request
/// after a long build never lands on a connection the server is closing.
fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(5)).build().expect("a reqwest client")
}

/// Writes an app folder: `updraft.toml` plus the named guest copied in as `fn.wasm`.
pub fn app_with_guest(dir: &Path, manifest: &str, guest: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("updraft.toml"), manifest).unwrap();
    std::fs::write(dir.join("fn.wasm"), guest).unwrap();
}

/// A child process killed when dropped.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Copies the folder `from` (without Python caches) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "__pycache__" {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
