//! Each layer proven by a test that fails without it: the same attempts run in a full
//! sandbox, where each is refused, and in one without the layer under test (a harness
//! that skips it), where each gets through. Every attempt runs in a child the probe
//! forks, so that one that gets through changes nothing of the instance, and every
//! path it writes is in the instance's own `/tmp`.

use serde_json::{Value, json};
use updraft_runtime_process::SandboxLayer;

use crate::harness::{Function, Harness, Started, harness, harness_with, invoke, json};
use crate::hostile::assert_sandboxed;

/// Runs the system calls named in the event, each in a forked child, and reports the
/// errno each one got (0 for success).
const SYSCALLS: &str = r#"
import ctypes, os, shutil, subprocess, struct

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def raw(nr, *args):
    converted = [ctypes.c_char_p(a) if isinstance(a, bytes) else ctypes.c_long(a) for a in args]
    result = libc.syscall(ctypes.c_long(nr), *converted)
    return 0 if result >= 0 else ctypes.get_errno()

def clone_new_user():
    # The raw clone returns twice, like fork; the clone leaves at once.
    pid = libc.syscall(ctypes.c_long(56), ctypes.c_long(0x10000000 | 17), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
    if pid == 0:
        os._exit(0)
    if pid < 0:
        return ctypes.get_errno()
    os.waitpid(pid, 0)
    return 0

def iovec(buffer):
    return struct.pack("QQ", ctypes.addressof(buffer), len(buffer))

def process_vm_readv():
    source = ctypes.create_string_buffer(b"secret", 8)
    target = ctypes.create_string_buffer(8)
    local = ctypes.create_string_buffer(iovec(target))
    remote = ctypes.create_string_buffer(iovec(source))
    return raw(310, os.getpid(), ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0)

def io_uring_setup():
    params = ctypes.create_string_buffer(120)
    return raw(425, 4, ctypes.addressof(params))

def execveat():
    # With the filter: refused. Without: the path does not exist.
    return raw(322, -100, b"/nonexistent", 0, 0, 0)

os.makedirs("/tmp/mnt", exist_ok=True)
CALLS = {
    "unshare": lambda: raw(272, 0x10000000),
    "clone_namespace": clone_new_user,
    "ptrace": lambda: raw(101, 0, 0, 0, 0),
    "keyctl": lambda: raw(250, 0, -3 & 0xffffffffffffffff, 1),
    "add_key": lambda: raw(248, b"user", b"updraft-test", b"x", 1, -2 & 0xffffffffffffffff),
    "bpf": lambda: raw(321, 0, 0, 0),
    "mount": lambda: raw(165, b"none", b"/tmp/mnt", b"tmpfs", 0, 0),
    "umount": lambda: raw(166, b"/var/task", 0),
    "pivot_root": lambda: raw(155, b"/tmp", b"/tmp/mnt"),
    "chroot": lambda: raw(161, b"/tmp"),
    "setns": lambda: raw(308, -1, 0),
    "process_vm_readv": process_vm_readv,
    "perf_event_open": lambda: raw(298, 0, 0, -1, -1, 0),
    "userfaultfd": lambda: raw(323, 1),
    "io_uring_setup": io_uring_setup,
    "init_module": lambda: raw(175, 0, 0, b""),
    "kexec_load": lambda: raw(246, 0, 0, 0, 0),
    "reboot": lambda: raw(169, 0xfee1dead, 672274793, 0x4321fedc, 0),
    "swapon": lambda: raw(167, b"/tmp/swap", 0),
    "setuid": lambda: raw(105, os.getuid()),
    "memfd_create": lambda: raw(319, b"payload", 0),
    "execveat": execveat,
    "open_by_handle_at": lambda: raw(304, -100, 0, 0),
    "mknod": lambda: raw(133, b"/tmp/device", 0o20600, (1 << 8) | 3),
}

def in_child(call):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            result = call()
        except BaseException:
            result = 255
        os.write(write, str(result).encode())
        os._exit(0)
    os.close(write)
    answer = os.read(read, 32)
    os.waitpid(pid, 0)
    return int(answer) if answer else -1

def copy_true():
    shutil.copy("/usr/bin/true", "/tmp/true")
    os.chmod("/tmp/true", 0o755)
    return "/tmp/true"

def run(argv, fds=()):
    try:
        return {"ran": True, "status": subprocess.run(argv, capture_output=True, timeout=5, pass_fds=fds).returncode}
    except OSError as e:
        return {"ran": False, "errno": e.errno, "error": str(e)}

def memfd_exec():
    try:
        fd = os.memfd_create("payload")
    except OSError as e:
        return {"ran": False, "errno": e.errno, "error": "memfd_create: " + str(e)}
    with open("/usr/bin/true", "rb") as f:
        os.write(fd, f.read())
    return run(["/proc/self/fd/%d" % fd], (fd,))

def fd_exec():
    fd = os.open(copy_true(), os.O_RDONLY)
    return run(["/proc/self/fd/%d" % fd], (fd,))

def execveat_fd():
    fd = os.open(copy_true(), os.O_RDONLY)
    # AT_EMPTY_PATH: execute the descriptor itself; a success never returns.
    return {"ran": False, "errno": in_child(lambda: raw(322, fd, b"", 0, 0, 0x1000))}

EXECS = {
    "tmp": lambda: run([copy_true()]),
    "proc_fd": fd_exec,
    "memfd": memfd_exec,
    "execveat": execveat_fd,
    "system_binary": lambda: run(["/usr/bin/true"]),
    "shell": lambda: run(["/bin/sh", "-c", "true"]),
    "bundle_script": lambda: run(["/var/task/tool.sh"]),
}

def whoami():
    alive = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    return {"pid": os.getpid(), "uid": os.getuid(), "hostname": os.uname().nodename, "processes": alive}

def handler(event, context):
    if event.get("attack") == "whoami":
        return whoami()
    if "calls" in event:
        return {name: in_child(CALLS[name]) for name in event["calls"]}
    return {name: EXECS[name]() for name in event["execs"]}
"#;

/// A shell script in the bundle: executable, on a mount that is not `noexec`.
const TOOL: &str = "#!/bin/sh\necho ran\n";

const EPERM: i64 = 1;
const EACCES: i64 = 13;

async fn start(h: &Harness) -> Started {
    let files = [("layers.py", SYSCALLS, false), ("tool.sh", TOOL, true)];
    let mut instance = h.start("layers", Function::python("layers.handler"), &files).await.unwrap();
    assert_sandboxed(&mut instance).await;
    instance
}

async fn calls(instance: &mut Started, names: &[&str]) -> Value {
    json(&invoke(instance, "calls", json!({ "calls": names })).await)
}

async fn execs(instance: &mut Started, names: &[&str]) -> Value {
    json(&invoke(instance, "execs", json!({ "execs": names })).await)
}

/// Every family of system calls that seccomp.json leaves out.
const REFUSED: [&str; 24] = [
    "unshare",
    "clone_namespace",
    "ptrace",
    "keyctl",
    "add_key",
    "bpf",
    "mount",
    "umount",
    "pivot_root",
    "chroot",
    "setns",
    "process_vm_readv",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "init_module",
    "kexec_load",
    "reboot",
    "swapon",
    "setuid",
    "memfd_create",
    "execveat",
    "open_by_handle_at",
    "mknod",
];

/// The ones an unprivileged process may make on this kernel when no filter stops it.
const ALLOWED_BUT_FOR_SECCOMP: [&str; 11] = [
    "unshare",
    "clone_namespace",
    "ptrace",
    "keyctl",
    "add_key",
    "setns",
    "process_vm_readv",
    "io_uring_setup",
    "setuid",
    "memfd_create",
    "execveat",
];

#[tokio::test]
async fn each_refused_system_call_family_gets_eperm_from_the_filter() {
    let h = harness().await;
    let mut instance = start(&h).await;
    let results = calls(&mut instance, &REFUSED).await;
    for name in REFUSED {
        assert_eq!(results[name], EPERM, "{name} was not refused with EPERM: {results}");
    }

    // Without the filter, the same calls get through (or fail for another reason):
    // what refused them above was the filter.
    let h = harness_with(|config| config.skip_layers = vec![SandboxLayer::Seccomp]).await;
    let mut unfiltered = start(&h).await;
    let results = calls(&mut unfiltered, &ALLOWED_BUT_FOR_SECCOMP).await;
    for name in ALLOWED_BUT_FOR_SECCOMP {
        assert_ne!(results[name], EPERM, "{name} is refused even without the filter: {results}");
    }
}

#[tokio::test]
async fn nothing_written_or_mapped_by_the_function_can_be_executed() {
    let h = harness().await;
    let mut instance = start(&h).await;
    let results = execs(&mut instance, &["tmp", "proc_fd", "memfd", "execveat"]).await;
    // An ELF copied to /tmp, run by its path or through /proc/self/fd: noexec and
    // Landlock; put into a memfd or run with execveat: seccomp.
    assert_eq!(results["tmp"]["errno"], EACCES, "{results}");
    assert_eq!(results["proc_fd"]["errno"], EACCES, "{results}");
    assert_eq!(results["memfd"]["errno"], EPERM, "{results}");
    assert!(results["memfd"]["error"].as_str().unwrap().starts_with("memfd_create"), "{results}");
    assert_eq!(results["execveat"]["errno"], EPERM, "{results}");
}

#[tokio::test]
async fn landlock_alone_stops_programs_that_no_mount_forbids() {
    // /usr/bin/true and /bin/sh are on read-only mounts that allow execution, and so is
    // the bundle's own script: only Landlock stands between the function and them.
    let attempts = ["system_binary", "shell", "bundle_script"];
    let h = harness().await;
    let mut instance = start(&h).await;
    let results = execs(&mut instance, &attempts).await;
    for name in attempts {
        assert_eq!(results[name]["ran"], false, "{name} ran: {results}");
        assert_eq!(results[name]["errno"], EACCES, "{name}: {results}");
    }

    let h = harness_with(|config| config.skip_layers = vec![SandboxLayer::Landlock]).await;
    let mut without = start(&h).await;
    let results = execs(&mut without, &attempts).await;
    for name in attempts {
        assert_eq!(results[name], json!({"ran": true, "status": 0}), "{name} without Landlock: {results}");
    }
}
