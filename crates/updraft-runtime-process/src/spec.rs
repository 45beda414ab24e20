//! What the host tells the jailer about one instance: everything the sandbox needs.
//!
//! The spec travels over the jailer's control socket, never on its command line or in
//! its environment: it holds the function's environment (its secrets and its
//! `UPDRAFT_TOKEN`), and any user of the host may read `/proc/PID/cmdline`. The host
//! writes one frame (a 4-byte little-endian length, then the spec as JSON); the jailer
//! answers with the descriptors it opened inside the instance ([`SOCKETS_MESSAGE`]) or,
//! when probing, with a [`ProbeReport`] frame.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 4 << 20;

/// The one byte that comes with the descriptors the jailer hands to the host.
pub const SOCKETS_MESSAGE: u8 = b'L';

/// The byte a host sends a connector jailer for each socket it wants.
pub const CONNECT_REQUEST: u8 = b'C';

/// The byte that comes with each socket a connector jailer opens (alone, without a
/// descriptor, when it could not open one).
pub const SOCKET_MESSAGE: u8 = b'S';

/// The sandbox of one instance and the program to run in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JailSpec {
    /// An empty folder the jailer turns into the instance's root file system.
    pub root: PathBuf,
    /// The function's bundle, mounted read-only at `/var/task`.
    pub task: PathBuf,
    /// For a sandbox started before its function is known: the bundles folder. `/var/task`
    /// starts as `task` (an empty folder); when the host names a bundle (a folder here)
    /// on the control socket, init mounts it read-only at `/var/task`.
    pub attach: Option<PathBuf>,
    /// Updraft's bootstraps for the managed runtimes, read-only at `/var/runtime`.
    pub runtime_dir: Option<PathBuf>,
    /// Host paths bound read-only at the same place inside (symbolic links are copied
    /// as links). Only what the runtime needs to start.
    pub system_paths: Vec<PathBuf>,
    /// The size of the private `/tmp`, in bytes.
    pub tmp_bytes: u64,
    /// The Runtime API's port inside the instance's network namespace, which holds only
    /// a loopback interface.
    pub runtime_api_port: u16,
    /// The way out, for a function granted hosts: listeners inside the namespace that
    /// the host forwards from. `None`: no network at all.
    pub egress: Option<EgressSpec>,
    /// Control-group folders the instance joins (its memory, pids and CPU limits),
    /// created and configured by the host.
    pub cgroups: Vec<PathBuf>,
    pub limits: RlimitSpec,
    /// The files the instance may execute (inside paths): the runtime's interpreter
    /// and its ELF loader. Landlock refuses `execve` of anything else.
    pub executables: Vec<PathBuf>,
    /// Folders (inside paths) whose files may all be executed: `/var/task` for custom
    /// runtimes, whose bootstrap is the function's own.
    pub executable_dirs: Vec<PathBuf>,
    /// The user and group the runtime runs as.
    pub uid: u32,
    pub gid: u32,
    /// Layers the jailer leaves out on purpose (tests that prove a layer matters, and
    /// debugging a runtime). Never set from the command line.
    pub skip: Vec<SandboxLayer>,
    /// Layers the operator allowed to be missing: applied when the kernel can, left out
    /// without failing when it cannot.
    pub allow_missing: Vec<SandboxLayer>,
    /// Check the layers and report them instead of running a program.
    pub probe: bool,
    /// For a server (an `http` function): the jailer stays on the control socket and
    /// opens a TCP socket in the instance's network namespace for each
    /// [`CONNECT_REQUEST`] byte, sent back with [`SOCKET_MESSAGE`], so that the host
    /// can connect to the server listening inside.
    #[serde(default)]
    pub connector: bool,
    /// The program (an inside path) and its arguments.
    pub argv: Vec<String>,
    /// The runtime's whole environment, except `AWS_LAMBDA_RUNTIME_API`, which the
    /// jailer sets once it knows its listener's address.
    pub env: Vec<(String, String)>,
}

/// How an instance granted hosts reaches them: its namespace still has only a loopback
/// interface, and every way out is a listener the host serves.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EgressSpec {
    /// TCP ports with a listener on `0.0.0.0` inside; the host sees which address a
    /// connection was made to and forwards it, or not.
    pub ports: Vec<u16>,
    /// Lines of the instance's `/etc/hosts`: names allowed by name, each on a loopback
    /// address of its own.
    pub hosts: Vec<(String, Ipv4Addr)>,
    /// IPv4 addresses outside loopback that allowed entries name, added to the
    /// namespace's loopback interface so that connections to them reach the listeners.
    pub local_addresses: Vec<Ipv4Addr>,
    /// Whether a DNS server (served by the host) listens on [`DNS_ADDRESS`] for
    /// names that `/etc/hosts` cannot list (wildcards).
    pub dns: bool,
}

/// The address of the instance's DNS server, as its `/etc/resolv.conf` names it.
pub const DNS_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 53);

/// Resource limits set with `setrlimit`: the fallback where control groups are missing,
/// and a second line where they are not.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RlimitSpec {
    /// Open files.
    pub nofile: u64,
    /// The largest file the instance may write, in bytes.
    pub fsize: u64,
    /// Address space, in bytes, when no memory control group is available (0: none).
    pub address_space: u64,
    /// Processes of the sandbox user, when no pids control group is available (0: none).
    pub nproc: u64,
}

/// One layer of the process sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxLayer {
    /// Mount, pid, network, IPC and UTS namespaces (and a user namespace when the
    /// server is not root).
    Namespaces,
    /// The memory control group: the function's memory limit and Max Memory Used.
    CgroupMemory,
    /// The pids control group: a bound on processes per instance.
    CgroupPids,
    /// The cpu control group: one core per instance, and guests below the server.
    CgroupCpu,
    /// Landlock: nothing but the runtime may be executed.
    Landlock,
    /// The seccomp filter: an allowlist of system calls.
    Seccomp,
    /// `no_new_privs`: no set-user-id program regains privileges.
    NoNewPrivs,
}

impl SandboxLayer {
    pub const ALL: [SandboxLayer; 7] = [
        SandboxLayer::Namespaces,
        SandboxLayer::CgroupMemory,
        SandboxLayer::CgroupPids,
        SandboxLayer::CgroupCpu,
        SandboxLayer::Landlock,
        SandboxLayer::Seccomp,
        SandboxLayer::NoNewPrivs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SandboxLayer::Namespaces => "namespaces",
            SandboxLayer::CgroupMemory => "cgroup-memory",
            SandboxLayer::CgroupPids => "cgroup-pids",
            SandboxLayer::CgroupCpu => "cgroup-cpu",
            SandboxLayer::Landlock => "landlock",
            SandboxLayer::Seccomp => "seccomp",
            SandboxLayer::NoNewPrivs => "no-new-privs",
        }
    }

    /// Whether an operator may run without it. Without namespaces there is no sandbox
    /// to speak of, and `no_new_privs` exists on every kernel that has the others.
    pub fn may_be_missing(self) -> bool {
        !matches!(self, SandboxLayer::Namespaces | SandboxLayer::NoNewPrivs)
    }

    /// What an operator does to have the layer.
    pub fn fix(self) -> &'static str {
        match self {
            SandboxLayer::Namespaces => {
                "run the server as root, or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0)"
            }
            SandboxLayer::CgroupMemory | SandboxLayer::CgroupPids | SandboxLayer::CgroupCpu => {
                "give the server a writable control-group hierarchy with this controller (cgroup v2 with it in cgroup.subtree_control, or the v1 controller mounted under --cgroup-root)"
            }
            SandboxLayer::Landlock => {
                "boot a kernel with Landlock (CONFIG_SECURITY_LANDLOCK=y, and `landlock` in the lsm= boot parameter)"
            }
            SandboxLayer::Seccomp => "boot a kernel with seccomp filters (CONFIG_SECCOMP_FILTER=y)",
            SandboxLayer::NoNewPrivs => "run on Linux 3.5 or later",
        }
    }
}

impl fmt::Display for SandboxLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A layer name that is not one of [`SandboxLayer::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0:?} is not a sandbox layer; the layers are {layers}", layers = layer_names())]
pub struct UnknownLayer(pub String);

fn layer_names() -> String {
    SandboxLayer::ALL.iter().map(|layer| layer.as_str()).collect::<Vec<_>>().join(", ")
}

impl FromStr for SandboxLayer {
    type Err = UnknownLayer;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        SandboxLayer::ALL.into_iter().find(|layer| layer.as_str() == name).ok_or_else(|| UnknownLayer(name.to_owned()))
    }
}

/// How one layer fared when the jailer tried it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerCheck {
    pub layer: SandboxLayer,
    /// `None` when it is in place; otherwise why it is not.
    pub missing: Option<String>,
    /// What is in place, for the operator (`ABI 7`, `v1`, ...).
    pub detail: String,
}

/// What a probing jailer found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeReport {
    pub layers: Vec<LayerCheck>,
}

/// Writes one frame: a 4-byte little-endian length, then `bytes`.
pub fn write_frame(writer: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let length = u32::try_from(bytes.len()).map_err(|_| io::Error::other("frame too large"))?;
    writer.write_all(&length.to_le_bytes())?;
    writer.write_all(bytes)?;
    writer.flush()
}

/// Reads one frame written by [`write_frame`], refusing one over [`MAX_FRAME`].
pub fn read_frame(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    reader.read_exact(&mut length)?;
    let length = u32::from_le_bytes(length) as usize;
    if length > MAX_FRAME {
        return Err(io::Error::other(format!("a frame of {length} bytes is over the limit of {MAX_FRAME}")));
    }
    let mut bytes = vec![0u8; length];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_parse_from_their_names_and_unknown_ones_are_named() {
        for layer in SandboxLayer::ALL {
            assert_eq!(layer.as_str().parse::<SandboxLayer>().unwrap(), layer);
        }
        let error = "landlok".parse::<SandboxLayer>().unwrap_err().to_string();
        assert!(error.contains("\"landlok\"") && error.contains("landlock, seccomp"), "{error}");
    }

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut buffer = Vec::new();
        write_frame(&mut buffer, b"{\"a\":1}").unwrap();
        assert_eq!(read_frame(&mut buffer.as_slice()).unwrap(), b"{\"a\":1}");
        let oversized = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert!(read_frame(&mut oversized.as_slice()).is_err());
        assert!(read_frame(&mut [1u8, 0].as_slice()).is_err(), "a cut frame");
    }
}
