//! The host's side of the sandbox: finding interpreters, starting the jailer, taking
//! the Runtime API listener it opens, reading the instance's output and ending it.

#![allow(unsafe_code)]
// This is the crate that starts sandboxed processes: the jailer, and the interpreter
// once, to ask it where it lives.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::io::{self, IoSliceMut};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use tokio::net::unix::pipe;
use updraft_runtime::{GuestOutput, LogStream};

use crate::spec::{JailSpec, ProbeReport};

/// A runtime's interpreter as resolved once on this host.
#[derive(Debug, Clone)]
pub struct Interpreter {
    /// The real executable (symbolic links and shims followed).
    pub program: PathBuf,
    /// Folders outside `/usr` the interpreter needs, bound read-only into instances.
    pub extra_paths: Vec<PathBuf>,
}

impl Interpreter {
    /// Python: Debian's `/usr/bin/python3` when present (it starts fastest), else the
    /// `python3` on PATH, asked for its real executable once (a pyenv shim costs
    /// ~60 ms per start on its own).
    pub fn python(configured: Option<&Path>) -> io::Result<Interpreter> {
        let candidate = match configured {
            Some(path) => path.to_owned(),
            None if Path::new("/usr/bin/python3").exists() => PathBuf::from("/usr/bin/python3"),
            None => PathBuf::from("python3"),
        };
        let output = std::process::Command::new(&candidate)
            .args(["-I", "-c", "import sys; print(sys.executable); print(sys.base_prefix)"])
            .output()
            .map_err(|error| io::Error::new(error.kind(), format!("cannot run {}: {error}", candidate.display())))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let mut lines = text.lines();
        let (Some(executable), Some(prefix)) = (lines.next(), lines.next()) else {
            return Err(io::Error::other(format!("{} did not say where it lives", candidate.display())));
        };
        let program = std::fs::canonicalize(executable)?;
        let extra_paths = outside_usr(Path::new(prefix));
        Ok(Interpreter { program, extra_paths })
    }

    /// Node.js: the `node` configured or on PATH, links followed.
    pub fn node(configured: Option<&Path>) -> io::Result<Interpreter> {
        let program = match configured {
            Some(path) => std::fs::canonicalize(path)?,
            None => which("node").ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no `node` on PATH"))?,
        };
        let prefix = program.parent().and_then(Path::parent).map(Path::to_owned).unwrap_or_default();
        Ok(Interpreter { extra_paths: outside_usr(&prefix), program })
    }
}

fn outside_usr(prefix: &Path) -> Vec<PathBuf> {
    if prefix.starts_with("/usr") || prefix == Path::new("/") { Vec::new() } else { vec![prefix.to_owned()] }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .and_then(|found| std::fs::canonicalize(found).ok())
}

/// The dynamic loader every executable needs: Landlock checks it like the program.
pub fn elf_loader() -> Option<PathBuf> {
    ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
        .iter()
        .find_map(|path| std::fs::canonicalize(path).ok())
}

/// The interpreter named by a script's `#!` line, if it has one.
pub fn shebang(script: &Path) -> Option<PathBuf> {
    let mut head = [0u8; 256];
    let read = io::Read::read(&mut std::fs::File::open(script).ok()?, &mut head).ok()?;
    let line = head[..read].strip_prefix(b"#!")?;
    let line = line.split(|b| *b == b'\n').next()?;
    let program = std::str::from_utf8(line).ok()?.split_whitespace().next()?;
    std::fs::canonicalize(program).ok()
}

/// `path` with its links followed, if it exists.
pub fn canonical(path: &str) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

/// A started jailer: the process, the sockets it opened inside the instance and its
/// output pipes.
pub struct Launched {
    pub child: tokio::process::Child,
    pub sockets: InstanceSockets,
    pub pipes: Pipes,
    /// The jailer's stdin: a pre-started sandbox's init listens on it, a probe
    /// reports on it and a server's jailer hands out sockets on it ([`Connector`]).
    pub control: UnixStream,
}

/// Opens TCP sockets in an instance's network namespace, through its jailer
/// (`JailSpec::connector`): a socket belongs to the namespace it was made in, so the
/// host connects it to the server listening on the instance's loopback.
#[derive(Clone)]
pub struct Connector {
    control: std::sync::Arc<std::sync::Mutex<UnixStream>>,
}

impl Connector {
    pub fn new(control: UnixStream) -> Connector {
        Connector { control: std::sync::Arc::new(std::sync::Mutex::new(control)) }
    }

    /// A new socket of the instance's namespace, ready to be connected.
    pub async fn socket(&self) -> io::Result<tokio::net::TcpSocket> {
        let control = self.control.clone();
        let fd = tokio::task::spawn_blocking(move || -> io::Result<OwnedFd> {
            let control = control.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            io::Write::write_all(&mut &*control, &[crate::spec::CONNECT_REQUEST])?;
            match receive_message(&control)? {
                (Some(crate::spec::SOCKET_MESSAGE), mut fds) if fds.len() == 1 => Ok(fds.remove(0)),
                (Some(crate::spec::SOCKET_MESSAGE), _) => Err(io::Error::other("the jailer could not open a socket")),
                _ => Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the instance's jailer has ended")),
            }
        })
        .await
        .map_err(io::Error::other)??;
        let socket = std::net::TcpStream::from(fd);
        socket.set_nonblocking(true)?;
        Ok(tokio::net::TcpSocket::from_std_stream(socket))
    }
}

/// The sockets a jailer opened inside an instance's network namespace.
pub struct InstanceSockets {
    /// The Runtime API's listener (`127.0.0.1:9001` inside).
    pub runtime_api: std::net::TcpListener,
    /// The DNS server's socket, for a function granted wildcard hosts.
    pub dns: Option<std::net::UdpSocket>,
    /// One listener per egress port, as the spec lists the ports.
    pub egress: Vec<(u16, std::net::TcpListener)>,
}

/// Why an instance did not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot start the jailer {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The jailer ended before handing over its sockets; the text is its stderr.
    #[error("the sandbox could not be built: {0}")]
    Sandbox(String),
}

/// A jailer just started, not yet told its spec.
struct Spawned {
    child: tokio::process::Child,
    /// The host's end of the control socket, with `wait` as its read and write timeouts.
    host_end: UnixStream,
    pipes: Pipes,
    spec_json: Vec<u8>,
}

/// Starts the jailer with no arguments and an empty environment, its stdin the control
/// socket and its stdout and stderr the instance's log pipes.
fn spawn(jailer: &[OsString], spec: &JailSpec, wait: Duration) -> Result<Spawned, LaunchError> {
    let (host_end, jail_end) = UnixStream::pair()?;
    let (out_read, out_write) = io::pipe()?;
    let (err_read, err_write) = io::pipe()?;
    let spec_json = serde_json::to_vec(spec).expect("the spec serialises");
    let (program, args) = jailer.split_first().ok_or_else(|| io::Error::other("no jailer configured"))?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .stdin(Stdio::from(OwnedFd::from(jail_end)))
        .stdout(Stdio::from(out_write))
        .stderr(Stdio::from(err_write))
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|source| LaunchError::Spawn { program: program.to_string_lossy().into_owned(), source })?;
    // The command holds the child's ends of the pipes; without this drop they would
    // never report end of file.
    drop(command);
    let pipes = Pipes::new(out_read, err_read)?;
    host_end.set_read_timeout(Some(wait))?;
    host_end.set_write_timeout(Some(wait))?;
    Ok(Spawned { child, host_end, pipes, spec_json })
}

/// Starts the jailer, sends it `spec` over its control socket and takes the sockets it
/// opens in the instance. Nothing of the spec is on the jailer's command line or in
/// its environment.
pub async fn launch(jailer: &[OsString], spec: &JailSpec, wait: Duration) -> Result<Launched, LaunchError> {
    let expected = 1 + spec.egress.as_ref().map_or(0, |egress| usize::from(egress.dns) + egress.ports.len());
    let Spawned { child, host_end, mut pipes, spec_json } = spawn(jailer, spec, wait)?;
    let (host_end, received) = tokio::task::spawn_blocking(move || {
        let received = crate::spec::write_frame(&mut &host_end, &spec_json).and_then(|()| receive_fds(&host_end));
        (host_end, received)
    })
    .await
    .map_err(io::Error::other)?;
    let sockets = received.and_then(|fds| {
        if fds.len() != expected {
            return Err(io::Error::other(format!("the jailer sent {} sockets, not {expected}", fds.len())));
        }
        instance_sockets(fds, spec)
    });
    match sockets {
        Ok(sockets) => {
            host_end.set_read_timeout(None)?;
            host_end.set_write_timeout(None)?;
            Ok(Launched { child, sockets, pipes, control: host_end })
        }
        Err(error) => {
            let mut child = child;
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
            Err(sandbox_error(&mut pipes, &error))
        }
    }
}

/// Sorts the received descriptors into their sockets, in the order the jailer opens
/// them (`jail::open_sockets`).
fn instance_sockets(fds: Vec<OwnedFd>, spec: &JailSpec) -> io::Result<InstanceSockets> {
    let mut fds = fds.into_iter();
    let mut next = || fds.next().ok_or_else(|| io::Error::other("a socket is missing"));
    let runtime_api = std::net::TcpListener::from(next()?);
    runtime_api.set_nonblocking(true)?;
    let mut sockets = InstanceSockets { runtime_api, dns: None, egress: Vec::new() };
    if let Some(egress) = &spec.egress {
        if egress.dns {
            let dns = std::net::UdpSocket::from(next()?);
            dns.set_nonblocking(true)?;
            sockets.dns = Some(dns);
        }
        for &port in &egress.ports {
            let listener = std::net::TcpListener::from(next()?);
            listener.set_nonblocking(true)?;
            sockets.egress.push((port, listener));
        }
    }
    Ok(sockets)
}

/// Runs a jailer that checks every layer with `spec` (a probe) and returns its report.
pub async fn probe(jailer: &[OsString], spec: &JailSpec, wait: Duration) -> Result<ProbeReport, LaunchError> {
    let Spawned { mut child, host_end, mut pipes, spec_json } = spawn(jailer, spec, wait)?;
    // The namespaces may fail before any socket is sent; then the report comes alone.
    let received = tokio::task::spawn_blocking(move || -> io::Result<ProbeReport> {
        crate::spec::write_frame(&mut &host_end, &spec_json)?;
        // A probe needs none of the sockets; they close as they are dropped here.
        let (first, sockets) = receive_message(&host_end)?;
        let frame = if sockets.is_empty() {
            // No sockets: that byte was the first of the report's length.
            let first = first
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the probe ended before reporting"))?;
            crate::spec::read_frame(&mut io::Read::chain(&[first][..], &host_end))?
        } else {
            crate::spec::read_frame(&mut &host_end)?
        };
        serde_json::from_slice(&frame).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    })
    .await
    .map_err(io::Error::other)?;
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
    received.map_err(|error| sandbox_error(&mut pipes, &error))
}

/// Why a jailer failed: what it wrote (its failed step), or else `error`.
fn sandbox_error(pipes: &mut Pipes, error: &io::Error) -> LaunchError {
    pipes.drain();
    let text = pipes.take_text();
    LaunchError::Sandbox(if text.trim().is_empty() { error.to_string() } else { text.trim().to_owned() })
}

/// Receives the descriptors the jailer sends with [`crate::spec::SOCKETS_MESSAGE`].
fn receive_fds(socket: &UnixStream) -> io::Result<Vec<OwnedFd>> {
    let (byte, received) = receive_message(socket)?;
    if received.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the jailer ended before opening the Runtime API"));
    }
    if byte.is_some_and(|byte| byte != crate::spec::SOCKETS_MESSAGE) {
        return Err(io::Error::other("the jailer sent something other than its sockets"));
    }
    Ok(received)
}

/// Receives one message: its byte (`None` at end of file) and the descriptors sent
/// with it (`SCM_RIGHTS`).
fn receive_message(socket: &UnixStream) -> io::Result<(Option<u8>, Vec<OwnedFd>)> {
    use std::os::fd::AsRawFd;
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 64]);
    let message = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut received = Vec::new();
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel has just installed this descriptor in our table for
                // us (SCM_RIGHTS); nothing else refers to it, so we own it.
                received.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let got_byte = message.bytes == 1;
    Ok((got_byte.then_some(byte[0]), received))
}

/// The most guest output kept per invocation; the rest is dropped and marked.
pub const OUTPUT_LIMIT: usize = 256 * 1024;

/// An instance's stdout and stderr, read as they arrive.
pub struct Pipes {
    out: Option<pipe::Receiver>,
    err: Option<pipe::Receiver>,
    captured: GuestOutput,
    bytes: usize,
}

impl Pipes {
    fn new(out: io::PipeReader, err: io::PipeReader) -> io::Result<Pipes> {
        Ok(Pipes {
            out: Some(pipe::Receiver::from_owned_fd(OwnedFd::from(out))?),
            err: Some(pipe::Receiver::from_owned_fd(OwnedFd::from(err))?),
            captured: GuestOutput::default(),
            bytes: 0,
        })
    }

    /// Reads output as it arrives; never completes (pends once both pipes are closed).
    pub async fn pump(&mut self) {
        loop {
            tokio::select! {
                ready = readable(&self.out) => if ready.is_ok() { self.read(LogStream::Stdout) } else { self.out = None },
                ready = readable(&self.err) => if ready.is_ok() { self.read(LogStream::Stderr) } else { self.err = None },
            }
        }
    }

    /// Reads what is already in the pipes, without waiting.
    pub fn drain(&mut self) {
        self.read(LogStream::Stdout);
        self.read(LogStream::Stderr);
    }

    /// The output collected so far, as text (for an error message).
    pub fn take_text(&mut self) -> String {
        self.take().chunks.iter().map(|(_, bytes)| String::from_utf8_lossy(bytes)).collect()
    }

    /// The output collected so far.
    pub fn take(&mut self) -> GuestOutput {
        self.bytes = 0;
        std::mem::take(&mut self.captured)
    }

    fn read(&mut self, stream: LogStream) {
        let slot = match stream {
            LogStream::Stdout => &mut self.out,
            LogStream::Stderr => &mut self.err,
        };
        let Some(receiver) = slot else { return };
        let mut buf = [0u8; 16 * 1024];
        loop {
            match receiver.try_read(&mut buf) {
                Ok(0) => {
                    *slot = None;
                    return;
                }
                Ok(n) => {
                    let room = OUTPUT_LIMIT.saturating_sub(self.bytes);
                    if n > room {
                        self.captured.truncated = true;
                    }
                    let kept = &buf[..n.min(room)];
                    if !kept.is_empty() {
                        self.bytes += kept.len();
                        match self.captured.chunks.last_mut() {
                            Some((last, bytes)) if *last == stream => bytes.extend_from_slice(kept),
                            _ => self.captured.chunks.push((stream, kept.to_vec())),
                        }
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    *slot = None;
                    return;
                }
            }
        }
    }
}

async fn readable(receiver: &Option<pipe::Receiver>) -> io::Result<()> {
    match receiver {
        Some(receiver) => receiver.readable().await,
        None => std::future::pending().await,
    }
}

/// A process's parent pid and start time (clock ticks since boot), from `/proc`.
pub fn parent_and_start(pid: i32) -> Option<(i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}
