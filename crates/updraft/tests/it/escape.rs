//! The escape and abuse suite: hostile Lambda and wasm functions on a real server try
//! the host's files, `/proc`, devices, mounts, other processes and signals, the
//! network, the server's ports and data, other functions' instances, bundles and
//! secrets, and exhaust forks, memory, disk, descriptors, logs and CPU. Each attempt
//! is preceded by a check that the sandbox is in place, and each aims at something of
//! the test's own (a scratch folder, a sentinel process, a witness listener), so that a
//! sandbox failing open would harm nothing.

use std::net::TcpListener;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestServer, app_with_guest};

/// Runs the attempt named in the event and says what happened, never raising.
const PROBE: &str = r#"
import ctypes, json, os, socket, subprocess, time, urllib.request

libc = ctypes.CDLL(None, use_errno=True)

def attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except BaseException as e:
        return {"ok": False, "error": type(e).__name__ + ": " + str(e)}

def check(result, what):
    if result != 0:
        raise OSError(ctypes.get_errno(), what + ": " + os.strerror(ctypes.get_errno()))
    return "done"

def alive():
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/stat" % pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        found.append(int(pid))
            except OSError:
                pass
    return sorted(found)

def read(path):
    with open(path, "rb") as f:
        return len(f.read())

def write(path):
    with open(path, "wb") as f:
        f.write(b"x")
    return path

def connect(host, port):
    with socket.create_connection((host, port), timeout=3) as s:
        return "connected"

def http_get(url, headers={}):
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return {"status": response.status, "body": response.read().decode()}

def scan(first, last):
    open_ports = []
    for port in range(first, last + 1):
        s = socket.socket()
        s.settimeout(0.2)
        try:
            # A connection to itself (its own ephemeral port) is not a listener.
            if s.connect_ex(("127.0.0.1", port)) == 0 and s.getsockname() != s.getpeername():
                open_ports.append(port)
        finally:
            s.close()
    return open_ports

def mount(target):
    os.makedirs(target, exist_ok=True)
    return check(libc.mount(b"none", target.encode(), b"tmpfs", 0, None), "mount")

def ptrace_attach(pid):
    return check(libc.ptrace(16, pid, None, None), "ptrace")

def mknod(path):
    return check(libc.mknod(path.encode(), 0o20600, (1 << 8) | 1), "mknod")

def open_files():
    held = []
    try:
        while len(held) < 100000:
            held.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as e:
        return {"opened": len(held), "error": str(e)}
    finally:
        for fd in held:
            os.close(fd)
    return {"opened": len(held)}

def fork_bomb():
    children = 0
    for _ in range(1000):
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
    return children

def allocate(mib):
    return len([bytearray(1 << 20) for _ in range(mib)])

def fill_tmp():
    written = 0
    with open("/tmp/fill", "wb") as f:
        while written < (4 << 30):
            f.write(b"x" * (1 << 20))
            f.flush()
            written += 1 << 20
    return written

def flood(lines):
    line = "flood " + "." * 200
    for _ in range(lines):
        print(line)
    return lines

def environ_of(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return f.read().decode(errors="replace")

ATTACKS = {
    "read": lambda e: read(e["path"]),
    "write": lambda e: write(e["path"]),
    "listdir": lambda e: sorted(os.listdir(e["path"])),
    "connect": lambda e: connect(e["host"], e["port"]),
    "resolve": lambda e: socket.gethostbyname(e["host"]),
    "http": lambda e: http_get(e["url"], e.get("headers", {})),
    "scan": lambda e: scan(e["first"], e["last"]),
    "kill": lambda e: os.kill(e["pid"], e["signal"]) or "sent",
    "ptrace": lambda e: ptrace_attach(e["pid"]),
    "mknod": lambda e: mknod(e["path"]),
    "mount": lambda e: mount(e["path"]),
    "umount": lambda e: check(libc.umount2(e["path"].encode(), 2), "umount"),
    "open_files": lambda e: open_files(),
    "fork_bomb": lambda e: fork_bomb(),
    "allocate": lambda e: allocate(e["mib"]),
    "fill_tmp": lambda e: fill_tmp(),
    "flood": lambda e: flood(e["lines"]),
    "environ": lambda e: environ_of(e["pid"]),
    "spin": lambda e: [None for _ in iter(int, 1)],
}

def handler(event, context):
    if event.get("attack") == "whoami":
        return {"pid": os.getpid(), "uid": os.getuid(), "hostname": socket.gethostname(), "processes": alive(),
                "root": sorted(os.listdir("/"))}
    return attempt(lambda: ATTACKS[event["attack"]](event))
"#;

/// The marker in `victim`'s environment.
const MARKER: &str = "updraft-escape-marker-7f3a91c2";

struct Suite {
    server: TestServer,
    /// A listener of the test's own that `granted` may reach.
    witness: TcpListener,
    /// One it may not.
    bystander: TcpListener,
    _app: tempfile::TempDir,
}

fn python(name: &str, extra: &str) -> String {
    format!(
        "[functions.{name}]\nruntime = \"python3\"\nhandler = \"{name}.handler\"\nsource = \"src\"\ntimeout = \"30s\"\n{extra}\n"
    )
}

/// A server with `probe` (no grants), `granted` (one witness port), `victim` (the probe
/// too, with a marker in its environment) and `hostile` (the hostile wasm guest, granted the witness).
fn suite() -> Suite {
    let witness = TcpListener::bind("127.0.0.1:0").unwrap();
    let bystander = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = witness.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        "[app]\nname = \"escape\"\n\n{}{}{}\
         [functions.hostile]\nruntime = \"wasm\"\nsource = \"fn.wasm\"\nmemory = \"32MiB\"\ntimeout = \"10s\"\n\
         allowed_outbound_hosts = [\"127.0.0.1:{port}\"]\ntriggers = [{{ http = \"* /hostile/{{*attempt}}\" }}]\n",
        python("probe", "memory = \"128MiB\""),
        python("granted", &format!("allowed_outbound_hosts = [\"127.0.0.1:{port}\"]")),
        python("victim", &format!("env = {{ MARKER = \"{MARKER}\" }}")),
    );
    app_with_guest(dir.path(), &manifest, &updraft_test_programs::bytes(updraft_test_programs::HOSTILE));
    std::fs::create_dir(dir.path().join("src")).unwrap();
    for name in ["probe", "granted", "victim"] {
        std::fs::write(dir.path().join(format!("src/{name}.py")), PROBE).unwrap();
    }
    let server = TestServer::start();
    server.deploy(dir.path());
    // Accept and drop whatever reaches the witness, so connects complete.
    let accepting = witness.try_clone().unwrap();
    std::thread::spawn(move || {
        for stream in accepting.incoming() {
            drop(stream);
        }
    });
    Suite { server, witness, bystander, _app: dir }
}

impl Suite {
    fn witness_port(&self) -> u16 {
        self.witness.local_addr().unwrap().port()
    }

    fn bystander_port(&self) -> u16 {
        self.bystander.local_addr().unwrap().port()
    }

    fn api_port(&self) -> u16 {
        self.server.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    async fn invoke(&self, function: &str, event: Value) -> Value {
        self.server.invoke(function, event).await
    }

    /// The sandbox is in place: its own UTS and pid namespaces, not root, and a root
    /// file system of its own.
    async fn assert_sandboxed(&self, function: &str) {
        let me = self.invoke(function, json!({"attack": "whoami"})).await;
        assert_eq!(me["hostname"], "updraft", "{me}");
        assert!(me["processes"].as_array().unwrap().len() <= 3, "{me}");
        assert_ne!(me["uid"], 0, "{me}");
        let root: Vec<&str> = me["root"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(!root.contains(&"root") && !root.contains(&"home") && !root.contains(&"work"), "{me}");
    }

    /// Asserts the sandbox, then makes the attempt and returns what happened.
    async fn attempt(&self, function: &str, event: Value) -> Value {
        self.assert_sandboxed(function).await;
        self.invoke(function, event).await
    }

    async fn refused(&self, function: &str, what: &str, event: Value) {
        let result = self.attempt(function, event).await;
        assert_eq!(result["ok"], false, "{what} got through: {result}");
    }

    async fn wasm(&self, path: &str) -> String {
        let response = self.server.get(&format!("/hostile{path}")).await;
        response.text().await.unwrap()
    }
}

#[tokio::test]
async fn lambda_functions_reach_no_file_process_device_or_mount_of_the_host() {
    let suite = suite();
    let data = suite.server.data_dir.path();
    let victim_bundle = std::fs::read_dir(data.join("lambda/bundles"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("victim.py"))
        .find(|path| path.exists())
        .expect("the victim's bundle is unpacked on the host");
    let sentinel = std::process::Command::new("sleep").arg("600").spawn().unwrap();
    let server_pid = suite.server.pid();

    // Files: the host's, the server's data, another function's code.
    for path in [
        "/etc/shadow".to_owned(),
        data.join("secrets.key").display().to_string(),
        data.join("admin-token").display().to_string(),
        data.join("updraft.db").display().to_string(),
        victim_bundle.display().to_string(),
    ] {
        suite.refused("probe", &format!("reading {path}"), json!({"attack": "read", "path": path})).await;
    }
    // The bundle and the root are read-only; only /tmp takes writes.
    suite.refused("probe", "writing the bundle", json!({"attack": "write", "path": "/var/task/probe.py"})).await;
    suite.refused("probe", "writing the root", json!({"attack": "write", "path": "/escape"})).await;

    // /proc: init's environment, the kernel's settings, the server's process.
    suite.refused("probe", "init's environment", json!({"attack": "environ", "pid": 1})).await;
    suite.refused("probe", "a kernel setting", json!({"attack": "write", "path": "/proc/sys/kernel/hostname"})).await;
    suite.refused("probe", "the server's process", json!({"attack": "environ", "pid": server_pid})).await;

    // Devices: none but the harmless few, and none can be made.
    suite.refused("probe", "a disk device", json!({"attack": "read", "path": "/dev/sda"})).await;
    suite.refused("probe", "kernel memory", json!({"attack": "read", "path": "/dev/mem"})).await;
    suite.refused("probe", "making a device", json!({"attack": "mknod", "path": "/tmp/mem"})).await;

    // Mounts.
    suite.refused("probe", "mounting", json!({"attack": "mount", "path": "/tmp/scratch"})).await;
    suite.refused("probe", "unmounting the bundle", json!({"attack": "umount", "path": "/var/task"})).await;

    // Other processes: init, and a process of the host's (the test's own sentinel).
    suite.refused("probe", "tracing init", json!({"attack": "ptrace", "pid": 1})).await;
    suite.refused("probe", "killing init", json!({"attack": "kill", "pid": 1, "signal": 9})).await;
    let sentinel_pid = sentinel.id();
    suite.refused("probe", "killing a host process", json!({"attack": "kill", "pid": sentinel_pid, "signal": 9})).await;
    assert!(std::path::Path::new(&format!("/proc/{sentinel_pid}")).exists(), "the sentinel was killed");
    let mut sentinel = sentinel;
    let _ = sentinel.kill();
    let _ = sentinel.wait();
}

#[tokio::test]
async fn lambda_functions_reach_only_the_hosts_they_are_granted() {
    let suite = suite();
    let (witness, bystander, api) = (suite.witness_port(), suite.bystander_port(), suite.api_port());
    for (function, host, port, what) in [
        ("probe", "127.0.0.1", 5432, "PostgreSQL"),
        ("probe", "127.0.0.1", 4222, "NATS"),
        ("probe", "127.0.0.1", api, "the server's API"),
        ("probe", "127.0.0.1", witness, "a loopback listener"),
        ("probe", "1.1.1.1", 443, "the outside"),
        ("granted", "127.0.0.1", 5432, "PostgreSQL"),
        ("granted", "127.0.0.1", 4222, "NATS"),
        ("granted", "127.0.0.1", api, "the server's API"),
        ("granted", "127.0.0.1", bystander, "another loopback listener"),
        ("granted", "10.0.0.1", witness, "the granted port at another address"),
    ] {
        let event = json!({"attack": "connect", "host": host, "port": port});
        suite.refused(function, &format!("{function} reaching {what} ({host}:{port})"), event).await;
    }
    // What it is granted, it reaches.
    let reached = suite.attempt("granted", json!({"attack": "connect", "host": "127.0.0.1", "port": witness})).await;
    assert_eq!(reached, json!({"ok": true, "value": "connected"}));
    // No name service beyond its grants.
    suite.refused("granted", "resolving a name", json!({"attack": "resolve", "host": "example.com"})).await;
    suite.refused("probe", "resolving a name", json!({"attack": "resolve", "host": "localhost.localdomain"})).await;

    // Inside, only the function's own Runtime API listens (and, for the granted one,
    // its egress port): no other instance's is reachable.
    let open = suite.attempt("probe", json!({"attack": "scan", "first": 1, "last": 65535})).await;
    assert_eq!(open["value"], json!([9001]), "{open}");
    let open = suite.attempt("granted", json!({"attack": "scan", "first": 1, "last": 65535})).await;
    assert_eq!(open["value"], json!([9001, witness]), "{open}");
}

/// The instance's Runtime API is a listener inside its own network namespace: no
/// socket of the host answers as one, while an invocation waits on it.
#[tokio::test]
async fn no_runtime_api_listens_on_the_host() {
    let suite = suite();
    suite.assert_sandboxed("victim").await;
    // Every listening TCP socket of the host's network namespace.
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap().lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields[3] == "0A" {
                let port = u16::from_str_radix(fields[1].rsplit(':').next().unwrap(), 16).unwrap();
                ports.push(port);
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    assert!(ports.contains(&suite.api_port()), "the scan sees the server's own port: {ports:?}");
    // A Runtime API answers any route under its prefix, in Lambda's error shape; this
    // one forges a response to an invocation.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    for port in ports {
        let url = format!("http://127.0.0.1:{port}/2018-06-01/runtime/invocation/forged/response");
        if let Ok(response) = client.post(&url).body("{}").send().await {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert!(
                !body.contains("errorType") && status != StatusCode::ACCEPTED,
                "port {port} answers as a Runtime API: {status} {body}"
            );
        }
    }
}

/// No process outside an instance holds a function's environment: not on a command
/// line, not in an environment.
#[tokio::test]
async fn a_functions_environment_is_in_no_host_process() {
    let suite = suite();
    suite.assert_sandboxed("victim").await;
    let own_pid_namespace = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let mut seen_in_instance = false;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let (Ok(cmdline), Ok(environ)) =
            (std::fs::read(format!("/proc/{pid}/cmdline")), std::fs::read(format!("/proc/{pid}/environ")))
        else {
            continue;
        };
        let holds = |bytes: &[u8]| bytes.windows(MARKER.len()).any(|window| window == MARKER.as_bytes());
        let host_side = std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|ns| ns == own_pid_namespace);
        if host_side {
            assert!(!holds(&cmdline), "process {pid}'s command line holds the marker");
            assert!(!holds(&environ), "process {pid}'s environment holds the marker");
        } else if holds(&environ) {
            seen_in_instance = true;
        }
    }
    // The scan would have seen it: the instance's runtime has it, as Lambda's do.
    assert!(seen_in_instance, "the marker is in no process at all; the scan proves nothing");
    // And no other function sees it.
    suite.assert_sandboxed("probe").await;
    for pid in 1..4 {
        let seen = suite.invoke("probe", json!({"attack": "environ", "pid": pid})).await;
        assert!(!seen.to_string().contains(MARKER), "{seen}");
    }
}

#[tokio::test]
async fn lambda_resource_abuse_is_contained_and_the_server_keeps_serving() {
    let suite = suite();
    // Processes: a fork bomb stops at the pids limit; its children die with the call.
    let bomb = suite.attempt("probe", json!({"attack": "fork_bomb"})).await;
    assert_eq!(bomb["ok"], false, "1000 processes started: {bomb}");
    // Memory: past the limit the instance is killed, reported as out of memory.
    suite.assert_sandboxed("probe").await;
    let response = suite
        .server
        .api(Method::POST, "/v1/functions/probe/invoke")
        .json(&json!({"attack": "allocate", "mib": 1024}))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(text.contains("MemoryError") || text.contains("out of memory"), "{text}");
    // Disk: /tmp fills up at its size.
    let filled = suite.attempt("probe", json!({"attack": "fill_tmp"})).await;
    assert!(filled["error"].as_str().unwrap().contains("No space left"), "{filled}");
    // Descriptors: the instance's own limit.
    let files = suite.attempt("probe", json!({"attack": "open_files"})).await;
    let opened = files["value"]["opened"].as_u64().unwrap();
    assert!(opened < 1024, "{files}");
    // The server answered throughout, and answers now.
    assert_eq!(suite.server.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn wasm_functions_reach_no_file_socket_or_host_but_their_grant() {
    let suite = suite();
    let data = suite.server.data_dir.path().display().to_string();
    let (witness, bystander, api) = (suite.witness_port(), suite.bystander_port(), suite.api_port());
    for (path, what) in [
        ("/read?path=/etc/passwd".to_owned(), "a host file"),
        (format!("/read?path={data}/secrets.key"), "the server's key"),
        ("/list?path=/".to_owned(), "the root folder"),
        ("/tcp?addr=127.0.0.1:5432".to_owned(), "a raw TCP socket"),
        ("/udp?addr=127.0.0.1:53".to_owned(), "a UDP socket"),
        ("/resolve?host=localhost".to_owned(), "name lookup"),
        (format!("/fetch?url=http://127.0.0.1:{api}/healthz"), "the server's API"),
        ("/fetch?url=http://127.0.0.1:5432/".to_owned(), "PostgreSQL over HTTP"),
        (format!("/fetch?url=http://127.0.0.1:{bystander}/"), "another loopback listener"),
        (format!("/fetch?url=http://localhost:{witness}/"), "the granted port under another name"),
    ] {
        let answer = suite.wasm(&path).await;
        assert!(answer.starts_with("refused: "), "{what} ({path}) got through: {answer}");
    }
    // Its environment is its own: no variable of the host's.
    let env = suite.wasm("/env").await;
    for host_variable in ["PATH", "HOME", "UPDRAFT_LOG", "RUST_BACKTRACE"] {
        assert!(!env.split([' ', ',']).any(|name| name == host_variable), "{env}");
    }
    assert!(env.contains("UPDRAFT_FUNCTION_NAME"), "{env}");
    // Deep recursion traps; memory stops at the limit; neither takes the server down.
    let recursed = suite.server.get("/hostile/recurse").await;
    assert_eq!(recursed.status(), StatusCode::BAD_GATEWAY);
    let grown = suite.server.get("/hostile/grow?mib=64").await;
    assert_eq!(grown.status(), StatusCode::BAD_GATEWAY);
    assert!(grown.text().await.unwrap().contains("out of memory"));
    assert_eq!(suite.server.get("/healthz").await.status(), StatusCode::OK);
}
