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

/// The filters compiled from `seccomp.json` at build time (`build.rs`), in the order
/// they are installed: each an instruction count (u32) and its instructions (u16 code,
/// u8 jt, u8 jf, u32 k), little-endian.
const COMPILED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seccomp.bpf"));

/// The compiled filters, in the order they are installed: `no_clone3`, then the
/// allowlist (once it is in, `seccomp` itself is refused).
fn compiled() -> io::Result<Vec<seccompiler::BpfProgram>> {
    let corrupt = || io::Error::other("the compiled seccomp filters are corrupt (rebuild Updraft)");
    let mut programs = Vec::new();
    let mut rest = COMPILED;
    while let Some((count, tail)) = rest.split_first_chunk::<4>() {
        let count = u32::from_le_bytes(*count) as usize;
        let (body, tail) = tail.split_at_checked(count * 8).ok_or_else(corrupt)?;
        let program = body
            .chunks_exact(8)
            .map(|raw| seccompiler::sock_filter {
                code: u16::from_le_bytes([raw[0], raw[1]]),
                jt: raw[2],
                jf: raw[3],
                k: u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]),
            })
            .collect();
        programs.push(program);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(corrupt());
    }
    Ok(programs)
}

/// Installs the filters on the calling thread (the jailed runtime, just before
/// `execve`).
#[cfg(target_arch = "x86_64")]
pub fn install() -> io::Result<()> {
    let programs = compiled()?;
    if programs.len() != 2 {
        return Err(io::Error::other(format!("expected 2 compiled seccomp filters, found {}", programs.len())));
    }
    for program in &programs {
        seccompiler::apply_filter(program).map_err(|error| io::Error::other(error.to_string()))?;
    }
    Ok(())
}

/// The allowlist names x86-64 calls; elsewhere the other layers stand alone.
#[cfg(not(target_arch = "x86_64"))]
pub fn install() -> io::Result<()> {
    let _ = compiled;
    Ok(())
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    /// The source of the filters: an allowlist with the reason for each call.
    const FILTERS: &str = include_str!("seccomp.json");

    #[test]
    fn the_filters_compiled_at_build_time_are_the_json_ones() {
        let filters = seccompiler::compile_from_json(FILTERS.as_bytes(), seccompiler::TargetArch::x86_64)
            .expect("seccomp.json compiles");
        let compiled = super::compiled().expect("the build's filters decode");
        assert_eq!(compiled, vec![filters["no_clone3"].clone(), filters["runtime"].clone()]);
    }

    #[test]
    fn the_filter_compiles_and_every_allowed_call_has_a_reason() {
        let filters = seccompiler::compile_from_json(FILTERS.as_bytes(), seccompiler::TargetArch::x86_64)
            .expect("seccomp.json compiles");
        assert!(filters.contains_key("runtime") && filters.contains_key("no_clone3"));
        let doc: serde_json::Value = serde_json::from_str(FILTERS).unwrap();
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
