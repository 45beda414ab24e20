//! The seccomp filter every runtime runs under, kept as data in `seccomp.json`: an
//! allowlist with the reason for each call, in seccompiler's JSON format. A call not
//! on the list fails with `EPERM` (the runtime sees an ordinary error, not a crash);
//! `clone` is allowed only without namespace flags, and a second filter answers
//! `clone3` with `ENOSYS`, so that glibc falls back to `clone`, whose flags the first
//! filter can check. Missing on purpose, among others: `mount`, `umount2`,
//! `pivot_root`, `chroot`, `unshare`, `setns`, `ptrace`, `process_vm_readv`,
//! `bpf`, `perf_event_open`, `keyctl`, `add_key`, `userfaultfd`, `io_uring_setup`,
//! `open_by_handle_at`, `init_module`, `kexec_load`, `reboot`, `swapon`, `setuid`,
//! and `memfd_create` and `execveat`: a program written to an anonymous file, or run
//! from a descriptor, would detour around Landlock's rule that only the runtime may be
//! executed.

use std::io;

const FILTERS: &str = include_str!("seccomp.json");

/// Compiles the filters for this machine and installs them on the calling thread
/// (the jailed runtime, just before `execve`).
#[cfg(target_arch = "x86_64")]
pub fn install() -> io::Result<()> {
    let filters = seccompiler::compile_from_json(FILTERS.as_bytes(), seccompiler::TargetArch::x86_64)
        .map_err(|error| io::Error::other(format!("compiling the filter: {error}")))?;
    // The allowlist goes last: once it is in, `seccomp` itself is refused.
    for name in ["no_clone3", "runtime"] {
        let program = filters.get(name).ok_or_else(|| io::Error::other(format!("no filter named {name}")))?;
        seccompiler::apply_filter(program).map_err(|error| io::Error::other(error.to_string()))?;
    }
    Ok(())
}

/// The allowlist names x86-64 calls; elsewhere the other layers stand alone.
#[cfg(not(target_arch = "x86_64"))]
pub fn install() -> io::Result<()> {
    let _ = FILTERS;
    Ok(())
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    #[test]
    fn the_filter_compiles_and_every_allowed_call_has_a_reason() {
        let filters = seccompiler::compile_from_json(super::FILTERS.as_bytes(), seccompiler::TargetArch::x86_64)
            .expect("seccomp.json compiles");
        assert!(filters.contains_key("runtime") && filters.contains_key("no_clone3"));
        let doc: serde_json::Value = serde_json::from_str(super::FILTERS).unwrap();
        for rule in doc["runtime"]["filter"].as_array().unwrap() {
            let reason = rule["comment"].as_str().unwrap_or_default();
            assert!(!reason.is_empty(), "{} has no reason", rule["syscall"]);
            for forbidden in [
                "mount",
                "ptrace",
                "unshare",
                "setns",
                "bpf",
                "pivot_root",
                "chroot",
                "setuid",
                "memfd_create",
                "execveat",
            ] {
                assert_ne!(rule["syscall"], forbidden, "{forbidden} must stay refused");
            }
        }
    }
}
