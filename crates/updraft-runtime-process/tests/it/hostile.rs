//! Hostile functions: each attempt fails, and the instance (or the next one) and the
//! host keep serving. Every test first asserts the sandbox is in place (its own pid
//! namespace and hostname), and every write targets a path of the test's own, so a
//! sandbox that failed open would harm nothing.

use std::time::Duration;

use serde_json::{Value, json};
use updraft_runtime::InvokeError;

use crate::harness::{Function, Started, call, harness, invoke, json, output};

/// Runs the attack named in the event and reports what happened, never raising.
pub const PROBE: &str = r#"
import os, socket, subprocess, time, json

def attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except BaseException as e:
        return {"ok": False, "error": type(e).__name__ + ": " + str(e)}

def running():
    # Processes that are alive: a killed child the runtime never waited for stays
    # behind as a zombie (state Z), holding nothing but its pid.
    alive = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with open("/proc/%s/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(int(pid))
    return sorted(alive)

def age_ms():
    # How long this process has been running, from /proc (start time in clock ticks).
    with open("/proc/self/stat") as f:
        started = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return int((uptime - started / os.sysconf("SC_CLK_TCK")) * 1000)

def read(path):
    with open(path, "rb") as f:
        return len(f.read())

def write(path, size=1):
    with open(path, "wb") as f:
        f.write(b"x" * size)
    return size

def connect(host, port):
    s = socket.create_connection((host, port), timeout=2)
    s.close()
    return "connected"

def fill_tmp():
    written = 0
    with open("/tmp/fill", "wb") as f:
        chunk = b"x" * (1 << 20)
        while written < (1 << 30):
            f.write(chunk)
            f.flush()
            written += len(chunk)
    return written

def allocate(mib):
    blocks = [bytearray(1 << 20) for _ in range(mib)]
    return len(blocks)

def fork_bomb():
    children = 0
    for _ in range(500):
        pid = os.fork()
        if pid == 0:
            time.sleep(5)
            os._exit(0)
        children += 1
    return children

def leave_child():
    pid = os.fork()
    if pid == 0:
        os.setsid()
        while True:
            time.sleep(1)
    return pid

ATTACKS = {
    "whoami": lambda: {"pid": os.getpid(), "uid": os.getuid(), "hostname": socket.gethostname(),
                       "processes": running(), "age_ms": age_ms(), "cwd": os.getcwd(),
                       "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME")},
    "read": lambda e: read(e["path"]),
    "write": lambda e: write(e["path"]),
    "connect": lambda e: connect(e["host"], e["port"]),
    "exec": lambda e: subprocess.run(e["argv"], capture_output=True, timeout=5).returncode,
    "fill_tmp": lambda e: fill_tmp(),
    "allocate": lambda e: allocate(e["mib"]),
    "fork_bomb": lambda e: fork_bomb(),
    "leave_child": lambda e: leave_child(),
}

def handler(event, context):
    name = event["attack"]
    if name == "whoami":
        return ATTACKS[name]()
    return attempt(lambda: ATTACKS[name](event))
"#;

async fn probe(memory: u64, network: bool) -> (crate::harness::Harness, Started) {
    let h = harness().await;
    let function = Function { memory, network, ..Function::python("probe.handler") };
    let mut instance = h.start("probe", function, &[("probe.py", PROBE, false)]).await.unwrap();
    assert_sandboxed(&mut instance).await;
    (h, instance)
}

/// The sandbox is in place: the runtime is not pid 1's sibling on the host, it sees
/// only its own namespace's few processes, and it is not root.
pub async fn assert_sandboxed(instance: &mut Started) {
    let me = json(&invoke(instance, "who", json!({"attack": "whoami"})).await);
    assert_eq!(me["hostname"], "updraft", "the instance has its own UTS namespace: {me}");
    assert!(me["pid"].as_i64().unwrap() <= 3, "the runtime is one of the first pids of its own namespace: {me}");
    assert!(me["processes"].as_array().unwrap().len() <= 3, "the instance sees only its own processes: {me}");
    assert_ne!(me["uid"], 0, "the runtime does not run as root: {me}");
}

pub async fn attack(instance: &mut Started, event: Value) -> Value {
    json(&invoke(instance, "attack", event).await)
}

pub fn refused(result: &Value) -> bool {
    result["ok"] == false
}

#[tokio::test]
async fn host_files_and_other_functions_code_are_out_of_reach() {
    let (h, mut instance) = probe(128 << 20, false).await;
    // A file of the "server's data dir" and another function's unpacked bundle.
    let secret = h.dir.path().join("secret.txt");
    std::fs::write(&secret, "host secret").unwrap();
    let other = h.dir.path().join("work/bundles");
    for path in ["/etc/shadow", secret.to_str().unwrap(), "/root/.bash_history", "/proc/1/environ"] {
        let result = attack(&mut instance, json!({"attack": "read", "path": path})).await;
        assert!(refused(&result), "{path} was readable: {result}");
    }
    let result = attack(&mut instance, json!({"attack": "read", "path": other.join("x").to_str().unwrap()})).await;
    assert!(refused(&result), "{result}");
    // The bundle is read-only, /tmp is writable.
    let result = attack(&mut instance, json!({"attack": "write", "path": "/var/task/probe.py"})).await;
    assert!(refused(&result) && result["error"].as_str().unwrap().contains("Read-only"), "{result}");
    let result = attack(&mut instance, json!({"attack": "write", "path": "/tmp/fine"})).await;
    assert_eq!(result["ok"], true, "{result}");
}

#[tokio::test]
async fn nothing_but_the_runtime_may_be_executed() {
    let (_h, mut instance) = probe(128 << 20, false).await;
    for argv in [json!(["/bin/sh", "-c", "true"]), json!(["/usr/bin/id"]), json!(["/usr/bin/python3", "-c", "pass"])] {
        let result = attack(&mut instance, json!({"attack": "exec", "argv": argv})).await;
        // python3 itself is the runtime: the one program the instance may start again.
        if argv[0] == "/usr/bin/python3" {
            continue;
        }
        assert!(refused(&result), "{argv} ran: {result}");
        assert!(result["error"].as_str().unwrap().contains("Permission denied"), "{result}");
    }
}

#[tokio::test]
async fn without_a_grant_there_is_no_network() {
    let (_h, mut instance) = probe(128 << 20, false).await;
    // The host's PostgreSQL, on loopback, and an outside address.
    for (host, port) in [("127.0.0.1", 5432), ("10.0.0.1", 80), ("1.1.1.1", 443)] {
        let result = attack(&mut instance, json!({"attack": "connect", "host": host, "port": port})).await;
        assert!(refused(&result), "{host}:{port} was reachable: {result}");
    }
}

#[tokio::test]
async fn a_fork_bomb_is_contained_and_cleaned_up() {
    let (_h, mut instance) = probe(128 << 20, false).await;
    let result = attack(&mut instance, json!({"attack": "fork_bomb"})).await;
    assert!(refused(&result), "500 processes started: {result}");
    // The children it managed to start are gone after the invocation, and the
    // instance still answers.
    assert_sandboxed(&mut instance).await;
}

#[tokio::test]
async fn a_child_left_running_is_ended_with_the_invocation() {
    let (_h, mut instance) = probe(128 << 20, false).await;
    let result = attack(&mut instance, json!({"attack": "leave_child"})).await;
    assert_eq!(result["ok"], true, "{result}");
    let me = json(&invoke(&mut instance, "who-2", json!({"attack": "whoami"})).await);
    assert!(!me["processes"].as_array().unwrap().contains(&result["value"]), "the child outlived its invocation: {me}");
}

#[tokio::test]
async fn memory_past_the_limit_ends_the_instance_as_out_of_memory() {
    let (_h, mut instance) = probe(128 << 20, false).await;
    let invoked = invoke(&mut instance, "oom", json!({"attack": "allocate", "mib": 512})).await;
    match &invoked.result {
        Err(InvokeError::OutOfMemory { .. }) => assert!(!invoked.reusable),
        // Python may see MemoryError first and report it; either way it failed.
        Ok(_) => assert!(refused(&json(&invoked)), "512 MiB fit in 128: {}", output(&invoked)),
        other => panic!("{other:?}"),
    }
    let small = invoke(&mut instance, "fits", json!({"attack": "allocate", "mib": 16})).await;
    if invoked.reusable {
        assert_eq!(json(&small)["ok"], true);
    }
}

#[tokio::test]
async fn tmp_is_size_limited() {
    let (_h, mut instance) = probe(128 << 20, false).await;
    let result = attack(&mut instance, json!({"attack": "fill_tmp"})).await;
    assert!(refused(&result), "1 GiB fit in /tmp: {result}");
    assert!(result["error"].as_str().unwrap().contains("No space left"), "{result}");
}

#[tokio::test]
async fn one_instance_failing_leaves_the_others_serving() {
    let h = harness().await;
    let function = || Function::python("probe.handler");
    let mut a = h.start("a", function(), &[("probe.py", PROBE, false)]).await.unwrap();
    let mut b = h.start("b", function(), &[("probe.py", PROBE, false)]).await.unwrap();
    let _ = invoke(&mut a, "bomb", json!({"attack": "fork_bomb"})).await;
    let timed_out = a
        .invoke(
            crate::harness::event(json!({"attack": "allocate", "mib": 4000})),
            call("x", Duration::from_millis(500)),
        )
        .await;
    let timed_out = crate::harness::whole(timed_out).await;
    assert!(timed_out.result.is_err());
    assert_eq!(json(&invoke(&mut b, "b-1", json!({"attack": "whoami"})).await)["hostname"], "updraft");
}
