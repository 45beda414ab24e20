//! Control groups: each instance's memory, process-count and CPU limits, and the
//! source of its Max Memory Used. Works with whichever hierarchy the host has: the
//! unified v2 tree, or the v1 `memory`, `pids` and `cpu` controllers.
//!
//! Each controller is found (or not) on its own, so that the server can say exactly
//! which layer is missing. Every instance group sits under one `updraft` group whose
//! CPU weight is a quarter of an ordinary process's: functions spinning at their
//! quota still leave the server's own threads the CPU they need.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::spec::SandboxLayer;

/// A controller Updraft uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Pids,
    Cpu,
}

impl Controller {
    pub const ALL: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Cpu];

    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }

    pub fn layer(self) -> SandboxLayer {
        match self {
            Controller::Memory => SandboxLayer::CgroupMemory,
            Controller::Pids => SandboxLayer::CgroupPids,
            Controller::Cpu => SandboxLayer::CgroupCpu,
        }
    }
}

/// The control-group hierarchy this host offers Updraft, controller by controller.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    v2: bool,
    /// Per controller, the `updraft` folder its instance groups go in, or why there is
    /// none.
    memory: Result<PathBuf, String>,
    pids: Result<PathBuf, String>,
    cpu: Result<PathBuf, String>,
}

/// What one instance may use.
#[derive(Debug, Clone, Copy)]
pub struct CgroupLimits {
    pub memory_bytes: u64,
    pub max_processes: u32,
    /// CPU time per period, as a fraction of one CPU (1.0 = one full core).
    pub cpu_share: f64,
}

const CPU_PERIOD_US: u64 = 100_000;
/// The `updraft` group's CPU weight against an ordinary process's (v1 `cpu.shares`
/// of 1024, v2 `cpu.weight` of 100): a quarter.
const SHARES_V1: u32 = 256;
const WEIGHT_V2: u32 = 25;

impl Hierarchy {
    /// Finds each controller under `root` (normally `/sys/fs/cgroup`), making the
    /// `updraft` groups where they are missing.
    pub fn detect(root: &Path) -> Hierarchy {
        if root.join("cgroup.controllers").exists() {
            return Self::detect_v2(root);
        }
        let controller = |controller: Controller| -> Result<PathBuf, String> {
            let dir = root.join(controller.name());
            if !dir.join("cgroup.procs").exists() {
                return Err(format!("no {} controller is mounted at {}", controller.name(), dir.display()));
            }
            let parent = dir.join("updraft");
            fs::create_dir_all(&parent).map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
            if controller == Controller::Cpu {
                fs::write(parent.join("cpu.shares"), SHARES_V1.to_string())
                    .map_err(|error| format!("cannot set {}/cpu.shares: {error}", parent.display()))?;
            }
            Ok(parent)
        };
        Hierarchy {
            v2: false,
            memory: controller(Controller::Memory),
            pids: controller(Controller::Pids),
            cpu: controller(Controller::Cpu),
        }
    }

    fn detect_v2(root: &Path) -> Hierarchy {
        let parent = root.join("updraft");
        if let Err(error) = fs::create_dir_all(&parent) {
            let reason = format!("cannot create {}: {error}", parent.display());
            return Hierarchy { v2: true, memory: Err(reason.clone()), pids: Err(reason.clone()), cpu: Err(reason) };
        }
        let enable = |controller: Controller| -> Result<PathBuf, String> {
            let name = controller.name();
            // Let `updraft` have it (the root may have enabled it already), then its
            // children.
            let _ = fs::write(root.join("cgroup.subtree_control"), format!("+{name}"));
            fs::write(parent.join("cgroup.subtree_control"), format!("+{name}"))
                .map_err(|error| format!("cannot enable the {name} controller under {}: {error}", parent.display()))?;
            if controller == Controller::Cpu {
                fs::write(parent.join("cpu.weight"), WEIGHT_V2.to_string())
                    .map_err(|error| format!("cannot set {}/cpu.weight: {error}", parent.display()))?;
            }
            Ok(parent.clone())
        };
        Hierarchy {
            v2: true,
            memory: enable(Controller::Memory),
            pids: enable(Controller::Pids),
            cpu: enable(Controller::Cpu),
        }
    }

    fn parent(&self, controller: Controller) -> &Result<PathBuf, String> {
        match controller {
            Controller::Memory => &self.memory,
            Controller::Pids => &self.pids,
            Controller::Cpu => &self.cpu,
        }
    }

    /// Why `controller` is unavailable, or `None` when it is available.
    pub fn missing(&self, controller: Controller) -> Option<&str> {
        self.parent(controller).as_ref().err().map(String::as_str)
    }

    /// `v1` or `v2`, for the operator.
    pub fn version(&self) -> &'static str {
        if self.v2 { "v2" } else { "v1" }
    }

    /// Removes the groups that earlier runs of the server left behind (a crash, or a stop
    /// that came before their cleanup): groups named `PID-N` whose server process is
    /// gone. Another live server's groups are left alone, and one still holding a
    /// process cannot be removed anyway.
    pub fn sweep(&self) -> usize {
        let mut parents: Vec<&PathBuf> = Controller::ALL.iter().filter_map(|c| self.parent(*c).as_ref().ok()).collect();
        parents.dedup();
        let mut removed = 0;
        for parent in parents {
            let Ok(entries) = fs::read_dir(parent) else { continue };
            for entry in entries.flatten() {
                if entry.path().is_dir()
                    && is_stale(&entry.file_name().to_string_lossy())
                    && fs::remove_dir(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Creates and configures the control group of instance `name` in every available
    /// controller. Any limit that cannot be written is an error naming its controller
    /// (the group made so far is removed).
    pub fn create(&self, name: &str, limits: CgroupLimits) -> Result<InstanceCgroup, (Controller, io::Error)> {
        let quota = ((limits.cpu_share * CPU_PERIOD_US as f64) as u64).max(1_000);
        let mut group = InstanceCgroup { dirs: Vec::new(), v2: self.v2, memory: None };
        for controller in Controller::ALL {
            let Ok(parent) = self.parent(controller) else { continue };
            let dir = parent.join(name);
            let configured = (|| -> io::Result<()> {
                if !group.dirs.contains(&dir) {
                    fs::create_dir_all(&dir)?;
                    group.dirs.push(dir.clone());
                }
                match (controller, self.v2) {
                    (Controller::Memory, true) => {
                        fs::write(dir.join("memory.max"), limits.memory_bytes.to_string())?;
                        // Without swap accounting the file is missing: nothing to limit.
                        write_if_present(&dir.join("memory.swap.max"), "0")?;
                    }
                    (Controller::Memory, false) => {
                        fs::write(dir.join("memory.limit_in_bytes"), limits.memory_bytes.to_string())?;
                        write_if_present(&dir.join("memory.memsw.limit_in_bytes"), &limits.memory_bytes.to_string())?;
                    }
                    (Controller::Pids, _) => fs::write(dir.join("pids.max"), limits.max_processes.to_string())?,
                    (Controller::Cpu, true) => fs::write(dir.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}"))?,
                    (Controller::Cpu, false) => {
                        fs::write(dir.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string())?;
                        fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())?;
                    }
                }
                Ok(())
            })();
            if let Err(error) = configured {
                let _ = group.remove();
                return Err((controller, error));
            }
            if controller == Controller::Memory {
                group.memory = Some(dir);
            }
        }
        Ok(group)
    }
}

fn write_if_present(path: &Path, value: &str) -> io::Result<()> {
    match fs::write(path, value) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Whether `name` (`PID-N`) belongs to a server process that no longer runs.
pub fn is_stale(name: &str) -> bool {
    name.split_once('-')
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// One instance's control group (a folder per controller on v1).
#[derive(Debug)]
pub struct InstanceCgroup {
    dirs: Vec<PathBuf>,
    v2: bool,
    /// The folder with the memory controller's files, if it has one.
    memory: Option<PathBuf>,
}

impl InstanceCgroup {
    /// The folders the jailer joins.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether the memory controller limits this group.
    pub fn limits_memory(&self) -> bool {
        self.memory.is_some()
    }

    fn memory_file(&self, v2: &str, v1: &str) -> Option<PathBuf> {
        self.memory.as_ref().map(|dir| dir.join(if self.v2 { v2 } else { v1 }))
    }

    /// Changes the memory limit (a pre-started sandbox gets its function's).
    pub fn set_memory_limit(&self, bytes: u64) -> io::Result<()> {
        let Some(dir) = &self.memory else {
            return Err(io::Error::other("the instance has no memory control group"));
        };
        let file = dir.join(if self.v2 { "memory.max" } else { "memory.limit_in_bytes" });
        if !self.v2 {
            // v1 refuses a memsw limit below the memory limit, and the reverse:
            // lower whichever order keeps them consistent.
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            let current: u64 =
                fs::read_to_string(&file).ok().and_then(|text| text.trim().parse().ok()).unwrap_or(u64::MAX);
            if bytes < current {
                fs::write(&file, bytes.to_string())?;
                return write_if_present(&memsw, &bytes.to_string());
            }
            write_if_present(&memsw, &bytes.to_string())?;
        }
        fs::write(file, bytes.to_string())
    }

    /// The most memory the instance held since the last reset, in bytes.
    pub fn peak_memory(&self) -> Option<u64> {
        let file = self.memory_file("memory.peak", "memory.max_usage_in_bytes")?;
        fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// Starts a new peak: each invocation reports its own Max Memory Used.
    pub fn reset_peak(&self) {
        if let Some(file) = self.memory_file("memory.peak", "memory.max_usage_in_bytes") {
            let _ = fs::write(file, "0");
        }
    }

    /// How many times the kernel's OOM killer acted in this group.
    pub fn oom_kills(&self) -> u64 {
        let Some(file) = self.memory_file("memory.events", "memory.oom_control") else { return 0 };
        fs::read_to_string(file)
            .ok()
            .and_then(|text| text.lines().find_map(|line| line.strip_prefix("oom_kill")?.trim().parse().ok()))
            .unwrap_or(0)
    }

    /// The processes in the group, as host pids.
    pub fn processes(&self) -> Vec<i32> {
        let Some(dir) = self.dirs.first() else { return Vec::new() };
        fs::read_to_string(dir.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|line| line.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Removes the group's folders; they must be empty of processes.
    pub fn remove(&self) -> io::Result<()> {
        for dir in &self.dirs {
            match fs::remove_dir(dir) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_groups_of_servers_that_are_gone_are_stale() {
        assert!(!is_stale(&format!("{}-3", std::process::id())), "this process runs");
        assert!(!is_stale("1-0"), "pid 1 runs");
        assert!(is_stale(&format!("{}-0", u32::MAX)), "no such process");
        assert!(!is_stale("not-a-pid") && !is_stale("updraft"), "not Updraft's naming");
    }

    #[test]
    fn a_root_without_controllers_names_each_one_missing() {
        let empty = tempfile::tempdir().unwrap();
        let hierarchy = Hierarchy::detect(empty.path());
        for controller in Controller::ALL {
            let reason = hierarchy.missing(controller).unwrap();
            assert!(reason.contains(controller.name()), "{reason}");
        }
    }
}
