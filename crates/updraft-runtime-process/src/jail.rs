//! The jailer: builds one instance's sandbox and executes its runtime inside.
//!
//! In the spirit of Firecracker's jailer, it is a separate, single-threaded process
//! (the `updraft-jail` binary, or `updraft __jail`), because creating namespaces,
//! mounting and forking are only sound before a program has threads. The host starts
//! it with no arguments and an empty environment, its stdin a Unix socket (the control
//! socket) and stdout and stderr the instance's log pipes, and writes the
//! [`JailSpec`] to the socket (`spec.rs` says why not on the command line). It then:
//!
//! 1. joins the instance's control groups (memory, pids, CPU);
//! 2. unshares the mount, pid, IPC, UTS and network namespaces, and a user namespace
//!    when not root;
//! 3. brings up the new network namespace's loopback (the only interface it will
//!    have), opens the Runtime API listener and, for a function granted hosts, the
//!    egress listeners and DNS socket on it, and sends their descriptors to the host
//!    over the control socket;
//! 4. forks the namespace's init (pid 1), which builds the root file system (system
//!    paths read-only, the bundle read-only at `/var/task`, a size-limited `/tmp`, a
//!    private `/proc`, a minimal `/dev`, and the egress's `/etc/hosts`), pivots into
//!    it and forks the runtime;
//! 5. in the runtime: sets rlimits, `no_new_privs`, Landlock (only the runtime's own
//!    executables may be executed), drops to an unprivileged user, installs the
//!    seccomp filter and executes the runtime.
//!
//! Every layer fails closed: a step that cannot be done ends the jailer with
//! [`SETUP_FAILED`] and the step on stderr, unless the operator allowed that layer to
//! be missing (`JailSpec::allow_missing`). A probing jailer (`JailSpec::probe`) takes
//! the same steps but reports each layer on the control socket instead of running a
//! program.
//!
//! Init reaps orphans and exits with the runtime, which takes every other process in
//! the namespace with it; the outer jailer process waits for init, so the host killing
//! the jailer (init has it as its parent-death signal) ends the whole instance.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs;
use std::io::{self, IoSlice, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError,
    RulesetStatus,
};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::Signal;
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, execve, fork, pivot_root, setgroups, sethostname, setresgid, setresuid};

use crate::spec::{
    CONNECT_REQUEST, DNS_ADDRESS, EgressSpec, JailSpec, LayerCheck, ProbeReport, SOCKET_MESSAGE, SOCKETS_MESSAGE,
    SandboxLayer, read_frame, write_frame,
};

/// Exit status of a jailer that failed to build the sandbox (its message is on stderr).
pub const SETUP_FAILED: i32 = 125;

/// The jailer's entry point: reads the spec from stdin (the control socket); never
/// returns.
pub fn main() -> ! {
    // SAFETY: the host starts the jailer with a Unix socket as its stdin; nothing else
    // in this process owns descriptor 0, and from here `control` does.
    let mut control = UnixStream::from(unsafe { OwnedFd::from_raw_fd(0) });
    let spec: JailSpec = match read_frame(&mut control).and_then(|bytes| {
        serde_json::from_slice(&bytes).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    }) {
        Ok(spec) => spec,
        Err(error) => fail("reading the sandbox specification from the control socket", error),
    };
    let root = nix::unistd::geteuid().is_root();

    for cgroup in &spec.cgroups {
        fs::write(cgroup.join("cgroup.procs"), std::process::id().to_string())
            .or_fail("joining the instance's control group");
    }

    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWNET;
    let (outer_uid, outer_gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    if !root {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    let namespaces = unshare(flags)
        .map_err(io::Error::from)
        .and_then(|()| if root { Ok(()) } else { map_user(outer_uid, outer_gid) });
    if let Err(error) = namespaces {
        if spec.probe {
            let mut report = ProbeReport::default();
            report.layers.push(missing(SandboxLayer::Namespaces, format!("unshare: {error}")));
            send_report(&mut control, &report);
            std::process::exit(0);
        }
        fail("creating the namespaces", error);
    }

    let sockets = open_sockets(&spec).or_fail("opening the instance's sockets");
    send_sockets(&control, &sockets).or_fail("handing the sockets to the host");
    drop(sockets);
    // A pre-started sandbox keeps the socket, for init to hear which function it is
    // for, a probe for its report and a server's jailer to hand out sockets;
    // close-on-exec, so the runtime never holds it.
    let control = (spec.attach.is_some() || spec.probe || spec.connector).then(|| {
        nix::fcntl::fcntl(&control, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
            .map(|fd| {
                // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
                UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) })
            })
            .or_fail("keeping the control socket")
    });
    // The host's end of stdin is for the spec and the sockets only; the runtime reads
    // nothing.
    let null = fs::File::open("/dev/null").or_fail("opening /dev/null");
    nix::unistd::dup2_stdin(&null).or_fail("closing stdin");
    drop(null);

    // A server's jailer hands out sockets until init is gone, which it learns from
    // this pipe: init holds the write end (close-on-exec, so only init) for its life.
    // (No thread can do it: a process that unshared its pid namespace cannot make any.)
    let lifeline = spec
        .connector
        .then(|| nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).or_fail("making the instance's lifeline"));
    // SAFETY: the jailer is single-threaded, so the child may do anything.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            if let (Some(control), Some((alive, held))) = (control.as_ref().filter(|_| spec.connector), lifeline) {
                drop(held);
                if open_sockets_when_asked(control, &alive) == Served::HostGone {
                    // Nothing else would end a server whose host is gone (a Lambda
                    // runtime ends with its Runtime API): init, and the namespace with it.
                    let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                }
            }
            drop(control);
            exit_like(wait_for(child))
        }
        Ok(ForkResult::Child) => {
            // Held, never dropped: `init` does not return.
            let _lifeline = lifeline.map(|(_, held)| held);
            init(&spec, root, control.filter(|_| !spec.connector))
        }
        Err(error) => fail("starting the instance's init", error.into()),
    }
}

/// The sockets a jailer opens inside the instance's network namespace, in the order
/// the host expects them: the Runtime API's listener, then (with egress) the DNS
/// socket and one listener per egress port in `EgressSpec::ports` order.
struct Sockets {
    fds: Vec<OwnedFd>,
}

fn open_sockets(spec: &JailSpec) -> io::Result<Sockets> {
    loopback_up()?;
    let mut fds = Vec::new();
    let api = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, spec.runtime_api_port))?;
    fds.push(OwnedFd::from(api));
    if let Some(egress) = &spec.egress {
        for (index, address) in egress.local_addresses.iter().enumerate() {
            add_loopback_address(index, *address)
                .map_err(|error| io::Error::new(error.kind(), format!("adding {address} to lo: {error}")))?;
        }
        if egress.dns {
            let dns = UdpSocket::bind(SocketAddrV4::new(DNS_ADDRESS, 53))?;
            fds.push(OwnedFd::from(dns));
        }
        for &port in &egress.ports {
            let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
                .map_err(|error| io::Error::new(error.kind(), format!("listening on port {port}: {error}")))?;
            fds.push(OwnedFd::from(listener));
        }
    }
    Ok(Sockets { fds })
}

/// Sends every socket's descriptor to the host in one message.
fn send_sockets(control: &UnixStream, sockets: &Sockets) -> io::Result<()> {
    let fds: Vec<RawFd> = sockets.fds.iter().map(AsRawFd::as_raw_fd).collect();
    let payload = [IoSlice::new(&[SOCKETS_MESSAGE])];
    sendmsg::<UnixAddr>(control.as_raw_fd(), &payload, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)?;
    Ok(())
}

/// Why a server's jailer stopped handing out sockets.
#[derive(Debug, PartialEq, Eq)]
enum Served {
    InitGone,
    /// The host closed the control socket (it stopped, or died) or broke the protocol.
    HostGone,
}

/// For a server: answers each [`CONNECT_REQUEST`] on `control` with a new TCP socket
/// of the instance's network namespace (this process is in it, outside every other
/// layer), until init ends (`alive` reports end of file) or the host goes away. It
/// only opens sockets: the host connects them to the server's port, so nothing here
/// reads what the function sends.
fn open_sockets_when_asked(control: &UnixStream, alive: &OwnedFd) -> Served {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd as _;
    let mut byte = [0u8; 1];
    loop {
        let mut fds = [PollFd::new(control.as_fd(), PollFlags::POLLIN), PollFd::new(alive.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return Served::HostGone,
        }
        if fds[1].revents().is_some_and(|events| !events.is_empty()) {
            return Served::InitGone;
        }
        if !matches!(io::Read::read(&mut &*control, &mut byte), Ok(1)) || byte[0] != CONNECT_REQUEST {
            return Served::HostGone;
        }
        let payload = [IoSlice::new(&[SOCKET_MESSAGE])];
        let opened = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Stream,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        );
        let sent = match &opened {
            Ok(socket) => {
                let fds = [socket.as_raw_fd()];
                sendmsg::<UnixAddr>(
                    control.as_raw_fd(),
                    &payload,
                    &[ControlMessage::ScmRights(&fds)],
                    MsgFlags::empty(),
                    None,
                )
            }
            Err(_) => sendmsg::<UnixAddr>(control.as_raw_fd(), &payload, &[], MsgFlags::empty(), None),
        };
        if sent.is_err() {
            return Served::HostGone;
        }
    }
}

/// Pid 1 of the instance: builds the file system, starts the runtime, reaps.
fn init(spec: &JailSpec, root: bool, control: Option<UnixStream>) -> ! {
    prctl::set_pdeathsig(Signal::SIGKILL).or_fail("tying init to the jailer");
    build_root(spec).or_fail("building the instance's file system");
    let _ = sethostname("updraft");

    let (init_control, runtime_control) = match control {
        Some(control) if spec.probe => (None, Some(control)),
        other => (other, None),
    };
    // SAFETY: init is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            drop(runtime_control);
            if let Some(control) = init_control {
                attach_when_told(control);
            }
            loop {
                // Reap everything; leave with the runtime.
                match waitpid(None::<Pid>, None) {
                    Ok(status) if status.pid() == Some(child) => exit_like(status),
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => std::process::exit(SETUP_FAILED),
                }
            }
        }
        Ok(ForkResult::Child) => {
            drop(init_control);
            exec_runtime(spec, root, runtime_control)
        }
        Err(error) => fail("starting the runtime", error.into()),
    }
}

/// In a pre-started sandbox: waits for the host to name a bundle and the size of
/// `/tmp` (one line on the control socket: `BUNDLE TMP_BYTES`), mounts the bundle
/// read-only at `/var/task`, resizes `/tmp` and answers `ok`. The name is
/// one folder under the bundles folder, never a path.
fn attach_when_told(mut control: UnixStream) {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 256 {
        match io::Read::read(&mut control, &mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => line.push(byte[0]),
            // The host went away before assigning a function: nothing to do.
            _ => std::process::exit(0),
        }
    }
    let answer = match attach(&line) {
        Ok(()) => "ok\n".to_owned(),
        Err(error) => format!("error: {error}\n"),
    };
    let _ = control.write_all(answer.as_bytes());
}

fn attach(line: &[u8]) -> io::Result<()> {
    let line = std::str::from_utf8(line).map_err(io::Error::other)?;
    let (name, tmp_bytes) = line.split_once(' ').ok_or_else(|| io::Error::other("expected `BUNDLE TMP_BYTES`"))?;
    let tmp_bytes: u64 = tmp_bytes.parse().map_err(io::Error::other)?;
    let safe = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !safe {
        return Err(io::Error::other(format!("{name:?} is not a bundle name")));
    }
    let source = Path::new(ATTACH_BUNDLES).join(name);
    if fs::symlink_metadata(&source)?.file_type().is_symlink() {
        return Err(io::Error::other(format!("{name:?} is not a bundle")));
    }
    mount(Some(&source), "/var/task", None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
    let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(None::<&str>, "/var/task", None::<&str>, ro, None::<&str>)?;
    // Every other function's bundle leaves the sandbox before any code of this one runs.
    umount2(ATTACH_BUNDLES, MntFlags::MNT_DETACH)?;
    // `/tmp` takes the function's size (it counts toward its memory).
    let options = format!("size={}", tmp_bytes.max(4096));
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(None::<&str>, "/tmp", None::<&str>, flags, Some(options.as_str()))?;
    Ok(())
}

/// Where a pre-started sandbox sees the bundles folder until it is given a function:
/// under a folder only root (init) may enter, and unmounted once the function's
/// bundle is mounted.
const ATTACH_BUNDLES: &str = "/.attach/bundles";

/// The runtime's last steps before `execve`: limits, `no_new_privs`, Landlock, user,
/// seccomp. A probe reports them on `control` instead of executing.
fn exec_runtime(spec: &JailSpec, root: bool, control: Option<UnixStream>) -> ! {
    set_limits(spec).or_fail("setting resource limits");
    let mut report = ProbeReport::default();
    report.layers.push(LayerCheck {
        layer: SandboxLayer::Namespaces,
        missing: None,
        detail: if root { "mount, pid, net, ipc, uts".into() } else { "user, mount, pid, net, ipc, uts".into() },
    });

    let argv: Vec<CString> = spec.argv.iter().map(|arg| cstring(arg)).collect();
    let mut env: Vec<CString> = spec.env.iter().map(|(key, value)| cstring(&format!("{key}={value}"))).collect();
    env.push(cstring(&format!("AWS_LAMBDA_RUNTIME_API=127.0.0.1:{}", spec.runtime_api_port)));
    let program = argv.first().cloned();
    if program.is_none() && !spec.probe {
        fail("starting the runtime", io::Error::other("no program given"));
    }

    std::env::set_current_dir("/var/task").or_fail("entering /var/task");
    prctl::set_no_new_privs().or_fail("setting no_new_privs");
    report.layers.push(LayerCheck { layer: SandboxLayer::NoNewPrivs, missing: None, detail: String::new() });

    let landlock = if spec.skip.contains(&SandboxLayer::Landlock) {
        Err("skipped".to_owned())
    } else {
        restrict_execution(spec).map_err(|error| error.to_string())
    };
    report.layers.push(layer_check(spec, SandboxLayer::Landlock, landlock));

    let (uid, gid) = (Uid::from_raw(spec.uid), Gid::from_raw(spec.gid));
    if nix::unistd::geteuid().is_root() {
        setgroups(&[]).or_fail("dropping supplementary groups");
        setresgid(gid, gid, gid).or_fail("switching group");
        setresuid(uid, uid, uid).or_fail("switching user");
    }

    let seccomp = if spec.skip.contains(&SandboxLayer::Seccomp) {
        Err("skipped".to_owned())
    } else {
        // A probe reports on its socket after the filter is in: `sendmsg`, `write` and
        // `exit_group` are on the allowlist.
        crate::seccomp::install().map(|()| "an allowlist of system calls".to_owned()).map_err(|e| e.to_string())
    };
    report.layers.push(layer_check(spec, SandboxLayer::Seccomp, seccomp));

    if spec.probe {
        if let Some(mut control) = control {
            send_report(&mut control, &report);
        }
        std::process::exit(0);
    }
    let program = program.expect("checked above");
    let error = execve(&program, &argv, &env).unwrap_err();
    fail("executing the runtime", error.into())
}

/// The check of one layer the runtime applies itself. Outside a probe, a missing layer
/// the operator did not allow to be missing ends the jailer here.
fn layer_check(spec: &JailSpec, layer: SandboxLayer, applied: Result<String, String>) -> LayerCheck {
    match applied {
        Ok(detail) => LayerCheck { layer, missing: None, detail },
        Err(reason) => {
            let skipped = spec.skip.contains(&layer);
            if !spec.probe && !skipped && !spec.allow_missing.contains(&layer) {
                fail(&format!("applying {layer}"), io::Error::other(reason));
            }
            missing(layer, reason)
        }
    }
}

fn missing(layer: SandboxLayer, reason: String) -> LayerCheck {
    LayerCheck { layer, missing: Some(reason), detail: String::new() }
}

fn send_report(control: &mut UnixStream, report: &ProbeReport) {
    let json = serde_json::to_vec(report).expect("the report serialises");
    if let Err(error) = write_frame(control, &json) {
        fail("sending the probe's report", error);
    }
}

/// Builds the root file system at `spec.root` and pivots into it.
fn build_root(spec: &JailSpec) -> io::Result<()> {
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    // Nothing mounted here may propagate back to the host.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)?;
    let root = &spec.root;
    mount(Some("tmpfs"), root, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("size=1m,mode=0755"))?;

    for path in &spec.system_paths {
        let inside = root.join(path.strip_prefix("/").unwrap_or(path));
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        if let Some(parent) = inside.parent() {
            fs::create_dir_all(parent)?;
        }
        if meta.file_type().is_symlink() {
            symlink(fs::read_link(path)?, &inside)?;
            continue;
        }
        bind(path, &inside, meta.is_dir(), ro)?;
    }
    if let Some(egress) = &spec.egress {
        write_name_service(&root.join("etc"), egress)?;
    }

    bind(&spec.task, &root.join("var/task"), true, ro)?;
    if let Some(bundles) = &spec.attach {
        let attach = root.join(".attach");
        fs::create_dir_all(&attach)?;
        fs::set_permissions(&attach, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        bind(bundles, &root.join(ATTACH_BUNDLES.trim_start_matches('/')), true, ro)?;
    }
    if let Some(runtime_dir) = &spec.runtime_dir {
        bind(runtime_dir, &root.join("var/runtime"), true, ro)?;
    }

    let tmp = root.join("tmp");
    fs::create_dir_all(&tmp)?;
    let options = format!("size={},mode=1777", spec.tmp_bytes.max(4096));
    mount(
        Some("tmpfs"),
        &tmp,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(options.as_str()),
    )?;

    let proc = root.join("proc");
    fs::create_dir_all(&proc)?;
    let noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), &proc, Some("proc"), noexec, None::<&str>)?;

    let dev = root.join("dev");
    fs::create_dir_all(&dev)?;
    mount(Some("tmpfs"), &dev, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, Some("size=64k,mode=0755"))?;
    for name in ["null", "zero", "full", "random", "urandom"] {
        bind(&Path::new("/dev").join(name), &dev.join(name), false, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC)?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, dev.join(name))?;
    }
    fs::create_dir_all(root.join("var/task"))?;

    // Into the new root; the old one is detached and gone from the instance's view.
    std::env::set_current_dir(root)?;
    pivot_root(".", ".")?;
    umount2(".", MntFlags::MNT_DETACH)?;
    std::env::set_current_dir("/")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )?;
    Ok(())
}

/// The instance's own name service: `/etc/hosts` with the names it may reach, and,
/// for wildcard entries, the DNS server the host answers on [`DNS_ADDRESS`]. The
/// host's own files are never shown to the instance.
fn write_name_service(etc: &Path, egress: &EgressSpec) -> io::Result<()> {
    fs::create_dir_all(etc)?;
    let mut hosts = String::from("127.0.0.1\tlocalhost updraft\n");
    for (name, address) in &egress.hosts {
        hosts.push_str(&format!("{address}\t{name}\n"));
    }
    fs::write(etc.join("hosts"), hosts)?;
    let resolv = if egress.dns {
        format!("nameserver {DNS_ADDRESS}\noptions timeout:2 attempts:2\n")
    } else {
        // No server: every name not in /etc/hosts fails at once.
        String::new()
    };
    fs::write(etc.join("resolv.conf"), resolv)?;
    fs::write(etc.join("nsswitch.conf"), "hosts: files dns\n")?;
    Ok(())
}

/// Binds `source` onto `target` (created as a folder or an empty file) with `flags`.
fn bind(source: &Path, target: &Path, is_dir: bool, flags: MsFlags) -> io::Result<()> {
    if is_dir {
        fs::create_dir_all(target)?;
    } else {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::File::create(target)?;
    }
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)?;
    // A bind mount takes its flags only on a remount.
    mount(None::<&str>, target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags, None::<&str>)?;
    Ok(())
}

fn set_limits(spec: &JailSpec) -> io::Result<()> {
    let limits = &spec.limits;
    setrlimit(Resource::RLIMIT_NOFILE, limits.nofile, limits.nofile)?;
    setrlimit(Resource::RLIMIT_FSIZE, limits.fsize, limits.fsize)?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
    if limits.address_space > 0 {
        setrlimit(Resource::RLIMIT_AS, limits.address_space, limits.address_space)?;
    }
    if limits.nproc > 0 {
        setrlimit(Resource::RLIMIT_NPROC, limits.nproc, limits.nproc)?;
    }
    Ok(())
}

/// Landlock: everything in the instance's small root may be read, `/tmp` written, and
/// only the runtime's own executables executed. Fails when the kernel enforces none
/// of it; a kernel with an older ABI still enforces execution (ABI 1).
fn restrict_execution(spec: &JailSpec) -> io::Result<String> {
    let abi = ABI::V5;
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let execute = AccessFs::Execute | AccessFs::ReadFile;
    let mut rules: Vec<(&Path, BitFlags<AccessFs>)> = vec![
        (Path::new("/"), read),
        (Path::new("/tmp"), AccessFs::from_all(abi) & !AccessFs::Execute),
        (Path::new("/dev"), AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev),
    ];
    rules.extend(spec.executables.iter().map(|path| (path.as_path(), execute)));
    rules.extend(spec.executable_dirs.iter().map(|path| (path.as_path(), execute | read)));

    let mut beneath = Vec::with_capacity(rules.len());
    for (path, access) in rules {
        let fd = PathFd::new(path).map_err(|error| io::Error::other(format!("{}: {error}", path.display())))?;
        beneath.push(Ok::<_, RulesetError>(PathBeneath::new(fd, access)));
    }
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|ruleset| ruleset.create())
        .and_then(|ruleset| ruleset.add_rules(beneath))
        .and_then(|ruleset| ruleset.restrict_self())
        .map_err(|error| io::Error::other(error.to_string()))?;
    match status.ruleset {
        RulesetStatus::NotEnforced => Err(io::Error::other("this kernel does not enforce Landlock")),
        RulesetStatus::PartiallyEnforced => {
            Ok("enforced in part (an older Landlock ABI); execution is restricted".into())
        }
        RulesetStatus::FullyEnforced => Ok("enforced".into()),
    }
}

/// Sets the loopback interface of the new network namespace up.
fn loopback_up() -> io::Result<()> {
    let socket = interface_socket()?;
    let mut request = interface_request("lo");
    // SAFETY: `request` is a valid `ifreq` naming `lo` and the descriptor an open
    // socket; SIOCGIFFLAGS and SIOCSIFFLAGS read and write only its flags field.
    unsafe {
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
            return Err(io::Error::last_os_error());
        }
        request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Adds `address/32` to the loopback interface (as the alias `lo:N`), so that a
/// connection to it stays in the namespace and reaches the egress listeners.
fn add_loopback_address(index: usize, address: Ipv4Addr) -> io::Result<()> {
    let socket = interface_socket()?;
    let label = format!("lo:{}", index + 1);
    let mut request = interface_request(&label);
    let set = |request: &mut libc::ifreq, call: libc::Ioctl, value: Ipv4Addr| -> io::Result<()> {
        let socket_address = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from(value).to_be() },
            sin_zero: [0; 8],
        };
        // SAFETY: `ifru_addr` is a `sockaddr`, which a `sockaddr_in` fits in and
        // overlays exactly (the kernel reads it as AF_INET by its family field).
        unsafe {
            std::ptr::write(std::ptr::addr_of_mut!(request.ifr_ifru.ifru_addr).cast(), socket_address);
        }
        // SAFETY: a valid `ifreq` naming an alias of `lo`, and an open socket; these
        // calls read the address field and write nothing back.
        if unsafe { libc::ioctl(socket.as_raw_fd(), call, &*request) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    set(&mut request, libc::SIOCSIFADDR, address)?;
    set(&mut request, libc::SIOCSIFNETMASK, Ipv4Addr::BROADCAST)?;
    Ok(())
}

/// Any socket will do for interface ioctls; a datagram socket on the wildcard address
/// needs no interface to be up.
fn interface_socket() -> io::Result<UdpSocket> {
    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
}

fn interface_request(name: &str) -> libc::ifreq {
    // SAFETY: an all-zero `ifreq` is a valid value of this plain C struct.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
        *slot = byte as libc::c_char;
    }
    request
}

/// Maps the caller's ids to root in a new user namespace.
fn map_user(uid: Uid, gid: Gid) -> io::Result<()> {
    fs::write("/proc/self/setgroups", "deny")?;
    fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(())
}

fn wait_for(child: Pid) -> WaitStatus {
    loop {
        match waitpid(child, None) {
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return status,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return WaitStatus::Exited(child, SETUP_FAILED),
        }
    }
}

/// Exits the way the waited-for process did (a signal as 128 + its number).
fn exit_like(status: WaitStatus) -> ! {
    match status {
        WaitStatus::Exited(_, code) => std::process::exit(code),
        WaitStatus::Signaled(_, signal, _) => std::process::exit(128 + signal as i32),
        _ => std::process::exit(SETUP_FAILED),
    }
}

fn cstring(value: &str) -> CString {
    CString::new(value.replace('\0', "")).expect("NULs were removed")
}

/// Ends the jailer on an error, saying which step failed.
trait OrFail<T> {
    fn or_fail(self, step: &str) -> T;
}

impl<T, E: Into<io::Error>> OrFail<T> for Result<T, E> {
    fn or_fail(self, step: &str) -> T {
        self.unwrap_or_else(|error| fail(step, error.into()))
    }
}

/// Reports a failed step on stderr, where the host reads it as the init error.
fn fail(step: &str, error: io::Error) -> ! {
    let _ = writeln!(io::stderr(), "updraft-jail: {step}: {error}");
    std::process::exit(SETUP_FAILED)
}
