//! The jailer: builds one instance's sandbox and executes its runtime inside.
//!
//! In the spirit of Firecracker's jailer, it is a separate, single-threaded process
//! (the `updraft-jail` binary, or `updraft __jail`), because creating namespaces,
//! mounting and forking are only sound before a program has threads. The host starts
//! it with its stdin connected to a Unix socket, stdout and stderr to the instance's
//! log pipes, and a [`JailSpec`] as its argument. It then:
//!
//! 1. joins the instance's control groups (memory, pids, CPU);
//! 2. unshares the mount, pid, IPC, UTS and (unless granted the network) network
//!    namespaces, and a user namespace when not root;
//! 3. brings up the new network namespace's loopback, opens the Runtime API listener
//!    on it and sends the listener's descriptor to the host over stdin;
//! 4. forks the namespace's init (pid 1), which builds the root file system (system
//!    paths read-only, the bundle read-only at `/var/task`, a size-limited `/tmp`, a
//!    private `/proc`, a minimal `/dev`), pivots into it and forks the runtime;
//! 5. in the runtime: sets rlimits, Landlock (only the runtime's own executables may be
//!    executed), drops to an unprivileged user with no new privileges, installs the
//!    seccomp filter and executes the runtime.
//!
//! Init reaps orphans and exits with the runtime, which takes every other process in
//! the namespace with it; the outer jailer process waits for init, so the host killing
//! the jailer (init has it as its parent-death signal) ends the whole instance.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs;
use std::io::{self, IoSlice, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::symlink;
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

use crate::spec::JailSpec;

/// Exit status of a jailer that failed to build the sandbox (its message is on stderr).
pub const SETUP_FAILED: i32 = 125;

/// The jailer's entry point: never returns.
pub fn main(spec_json: &str) -> ! {
    let spec: JailSpec = match serde_json::from_str(spec_json) {
        Ok(spec) => spec,
        Err(error) => fail("reading the sandbox specification", error.into()),
    };
    let root = nix::unistd::geteuid().is_root();

    for cgroup in &spec.cgroups {
        fs::write(cgroup.join("cgroup.procs"), std::process::id().to_string())
            .or_fail("joining the instance's control group");
    }

    let mut flags =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    if !spec.network {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    let (outer_uid, outer_gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    if !root {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    unshare(flags).or_fail("creating the namespaces");
    if !root {
        map_user(outer_uid, outer_gid).or_fail("mapping the user namespace");
    }

    let listen = if spec.network {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)
    } else {
        loopback_up().or_fail("bringing up the loopback interface");
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, spec.runtime_api_port)
    };
    let listener = TcpListener::bind(listen).or_fail("opening the Runtime API listener");
    let address = listener.local_addr().or_fail("reading the listener's address");
    send_listener(&listener).or_fail("handing the listener to the host");
    drop(listener);
    // A pre-started sandbox keeps the socket, for init to hear which function it is
    // for; close-on-exec, so the runtime never holds it.
    let control = spec.attach.as_ref().map(|_| {
        nix::fcntl::fcntl(io::stdin(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
            .map(|fd| {
                // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
                unsafe { OwnedFd::from_raw_fd(fd) }
            })
            .or_fail("keeping the control socket")
    });
    // The host's end of stdin is for the listener only; the runtime reads nothing.
    let null = fs::File::open("/dev/null").or_fail("opening /dev/null");
    nix::unistd::dup2_stdin(&null).or_fail("closing stdin");
    drop(null);

    // SAFETY: the jailer is single-threaded, so the child may do anything.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            drop(control);
            exit_like(wait_for(child))
        }
        Ok(ForkResult::Child) => init(&spec, &address.to_string(), control),
        Err(error) => fail("starting the instance's init", error.into()),
    }
}

/// Pid 1 of the instance: builds the file system, starts the runtime, reaps.
fn init(spec: &JailSpec, runtime_api: &str, control: Option<OwnedFd>) -> ! {
    prctl::set_pdeathsig(Signal::SIGKILL).or_fail("tying init to the jailer");
    build_root(spec).or_fail("building the instance's file system");
    let _ = sethostname("updraft");

    // SAFETY: init is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            if let Some(control) = control {
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
        Ok(ForkResult::Child) => exec_runtime(spec, runtime_api),
        Err(error) => fail("starting the runtime", error.into()),
    }
}

/// In a pre-started sandbox: waits for the host to name a bundle and the size of
/// `/tmp` (one line on the control socket: `BUNDLE TMP_BYTES`), mounts the bundle
/// read-only at `/var/task`, resizes `/tmp` and answers `ok`. The name is
/// one folder under the bundles folder, never a path.
fn attach_when_told(control: OwnedFd) {
    let mut control = std::os::unix::net::UnixStream::from(control);
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

/// The runtime's last steps before `execve`: limits, Landlock, user, seccomp.
fn exec_runtime(spec: &JailSpec, runtime_api: &str) -> ! {
    set_limits(spec).or_fail("setting resource limits");

    let argv: Vec<CString> = spec.argv.iter().map(|arg| cstring(arg)).collect();
    let mut env: Vec<CString> = spec.env.iter().map(|(key, value)| cstring(&format!("{key}={value}"))).collect();
    env.push(cstring(&format!("AWS_LAMBDA_RUNTIME_API={runtime_api}")));
    let Some(program) = argv.first() else { fail("starting the runtime", io::Error::other("no program given")) };

    std::env::set_current_dir("/var/task").or_fail("entering /var/task");
    prctl::set_no_new_privs().or_fail("setting no_new_privs");
    restrict_execution(spec).or_fail("installing the Landlock rules");
    let (uid, gid) = (Uid::from_raw(spec.uid), Gid::from_raw(spec.gid));
    if nix::unistd::geteuid().is_root() {
        setgroups(&[]).or_fail("dropping supplementary groups");
        setresgid(gid, gid, gid).or_fail("switching group");
        setresuid(uid, uid, uid).or_fail("switching user");
    }
    if spec.seccomp {
        crate::seccomp::install().or_fail("installing the seccomp filter");
    }
    let error = execve(program, &argv, &env).unwrap_err();
    fail("executing the runtime", error.into())
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
/// only the runtime's own executables executed. A kernel without Landlock leaves this
/// layer out (the read-only, `noexec` mounts still hold) and says so on stderr.
fn restrict_execution(spec: &JailSpec) -> io::Result<()> {
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
    if status.ruleset == RulesetStatus::NotEnforced {
        eprintln!("updraft-jail: this kernel has no Landlock; execution is limited by mounts only");
    }
    Ok(())
}

/// Sets the loopback interface of the new network namespace up.
fn loopback_up() -> io::Result<()> {
    // Any socket will do for the ioctl; a datagram socket on the wildcard address
    // needs no interface to be up.
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    // SAFETY: an all-zero `ifreq` is a valid value of this plain C struct.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
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

/// Sends the listener's descriptor to the host over stdin (a Unix socket).
fn send_listener(listener: &TcpListener) -> io::Result<()> {
    let fds = [listener.as_raw_fd()];
    let payload = [IoSlice::new(b"L")];
    sendmsg::<UnixAddr>(0, &payload, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)?;
    Ok(())
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
