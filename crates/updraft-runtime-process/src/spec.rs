//! What the host tells the jailer about one instance: everything the sandbox needs,
//! passed as JSON on the jailer's command line.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// Whether the instance keeps the host's network. Without it, the instance has its
    /// own network namespace holding only a loopback interface, on which the Runtime
    /// API listens.
    pub network: bool,
    /// The Runtime API's port inside the instance's own network namespace.
    pub runtime_api_port: u16,
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
    /// Whether to install the seccomp filter.
    pub seccomp: bool,
    /// The program (an inside path) and its arguments.
    pub argv: Vec<String>,
    /// The runtime's whole environment, except `AWS_LAMBDA_RUNTIME_API`, which the
    /// jailer sets once it knows its listener's address.
    pub env: Vec<(String, String)>,
}

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
