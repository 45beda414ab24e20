//! Control groups: each instance's memory, process-count and CPU limits, and the
//! source of its Max Memory Used. Works with whichever hierarchy the host has: the
//! unified v2 tree, or the v1 `memory`, `pids` and `cpu` controllers.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Which control-group hierarchy this host offers Updraft.
#[derive(Debug, Clone)]
pub enum Hierarchy {
    /// cgroup v2: one folder per instance under `<root>/updraft`.
    V2 { parent: PathBuf },
    /// cgroup v1: a folder per instance under `updraft` in each controller's tree.
    V1 { memory: Option<PathBuf>, pids: Option<PathBuf>, cpu: Option<PathBuf> },
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

impl Hierarchy {
    /// Finds a writable hierarchy under `/sys/fs/cgroup`, or `None` (the instance then
    /// falls back to rlimits alone).
    pub fn detect() -> Option<Hierarchy> {
        let base = Path::new("/sys/fs/cgroup");
        if base.join("cgroup.controllers").exists() {
            let parent = base.join("updraft");
            fs::create_dir_all(&parent).ok()?;
            // Let instances below `updraft` have their own limits.
            let _ = fs::write(base.join("cgroup.subtree_control"), "+memory +pids +cpu");
            fs::write(parent.join("cgroup.subtree_control"), "+memory +pids +cpu").ok()?;
            return Some(Hierarchy::V2 { parent });
        }
        let controller = |name: &str| {
            let dir = base.join(name);
            dir.join("cgroup.procs").exists().then(|| dir.join("updraft")).filter(|dir| fs::create_dir_all(dir).is_ok())
        };
        let (memory, pids, cpu) = (controller("memory"), controller("pids"), controller("cpu"));
        (memory.is_some() || pids.is_some()).then_some(Hierarchy::V1 { memory, pids, cpu })
    }

    /// Removes the groups that earlier runs of the server left behind (a crash, or a stop
    /// that came before their cleanup): groups named `PID-N` whose server process is
    /// gone. Another live server's groups are left alone, and one still holding a
    /// process cannot be removed anyway.
    pub fn sweep(&self) -> usize {
        let parents: Vec<&PathBuf> = match self {
            Hierarchy::V2 { parent } => vec![parent],
            Hierarchy::V1 { memory, pids, cpu } => [memory, pids, cpu].into_iter().flatten().collect(),
        };
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

    /// Creates and configures the control group of instance `name`.
    pub fn create(&self, name: &str, limits: CgroupLimits) -> io::Result<InstanceCgroup> {
        let quota = ((limits.cpu_share * CPU_PERIOD_US as f64) as u64).max(1_000);
        match self {
            Hierarchy::V2 { parent } => {
                let dir = parent.join(name);
                fs::create_dir_all(&dir)?;
                let group = InstanceCgroup { dirs: vec![dir.clone()], v2: true };
                fs::write(dir.join("memory.max"), limits.memory_bytes.to_string())?;
                let _ = fs::write(dir.join("memory.swap.max"), "0");
                fs::write(dir.join("pids.max"), limits.max_processes.to_string())?;
                let _ = fs::write(dir.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}"));
                Ok(group)
            }
            Hierarchy::V1 { memory, pids, cpu } => {
                let mut group = InstanceCgroup { dirs: Vec::new(), v2: false };
                if let Some(memory) = memory {
                    let dir = memory.join(name);
                    fs::create_dir_all(&dir)?;
                    group.dirs.push(dir.clone());
                    fs::write(dir.join("memory.limit_in_bytes"), limits.memory_bytes.to_string())?;
                    // Without swap accounting this file is missing; the limit then
                    // counts resident memory only.
                    let _ = fs::write(dir.join("memory.memsw.limit_in_bytes"), limits.memory_bytes.to_string());
                }
                if let Some(pids) = pids {
                    let dir = pids.join(name);
                    fs::create_dir_all(&dir)?;
                    group.dirs.push(dir.clone());
                    fs::write(dir.join("pids.max"), limits.max_processes.to_string())?;
                }
                if let Some(cpu) = cpu {
                    let dir = cpu.join(name);
                    if fs::create_dir_all(&dir).is_ok() {
                        group.dirs.push(dir.clone());
                        let _ = fs::write(dir.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string());
                        let _ = fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string());
                    }
                }
                Ok(group)
            }
        }
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
}

impl InstanceCgroup {
    /// The folders the jailer joins.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    fn memory_dir(&self) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|dir| dir.join(if self.v2 { "memory.max" } else { "memory.limit_in_bytes" }).exists())
            .map(PathBuf::as_path)
    }

    /// Changes the memory limit (a pre-started sandbox gets its function's).
    pub fn set_memory_limit(&self, bytes: u64) -> io::Result<()> {
        let Some(dir) = self.memory_dir() else { return Ok(()) };
        let file = if self.v2 { "memory.max" } else { "memory.limit_in_bytes" };
        fs::write(dir.join(file), bytes.to_string())?;
        if !self.v2 {
            let _ = fs::write(dir.join("memory.memsw.limit_in_bytes"), bytes.to_string());
        }
        Ok(())
    }

    /// The most memory the instance held since the last reset, in bytes.
    pub fn peak_memory(&self) -> Option<u64> {
        let dir = self.memory_dir()?;
        let file = if self.v2 { "memory.peak" } else { "memory.max_usage_in_bytes" };
        fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
    }

    /// Starts a new peak: each invocation reports its own Max Memory Used.
    pub fn reset_peak(&self) {
        if let Some(dir) = self.memory_dir() {
            let file = if self.v2 { "memory.peak" } else { "memory.max_usage_in_bytes" };
            let _ = fs::write(dir.join(file), "0");
        }
    }

    /// How many times the kernel's OOM killer acted in this group.
    pub fn oom_kills(&self) -> u64 {
        let Some(dir) = self.memory_dir() else { return 0 };
        let (file, key) = if self.v2 { ("memory.events", "oom_kill") } else { ("memory.oom_control", "oom_kill") };
        fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|text| text.lines().find_map(|line| line.strip_prefix(key)?.trim().parse().ok()))
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
    #[test]
    fn only_groups_of_servers_that_are_gone_are_stale() {
        assert!(!super::is_stale(&format!("{}-3", std::process::id())), "this process runs");
        assert!(!super::is_stale("1-0"), "pid 1 runs");
        assert!(super::is_stale(&format!("{}-0", u32::MAX)), "no such process");
        assert!(!super::is_stale("not-a-pid") && !super::is_stale("updraft"), "not Updraft's naming");
    }
}
