//! Compiles the seccomp filters in `src/seccomp.json` to BPF once, at build time, so
//! that a sandbox's start installs them without parsing JSON and compiling them again
//! (about 2 ms of every cold start). `src/seccomp.rs` reads the result; a test there
//! checks it against compiling the JSON at run time.
//!
//! The file holds, for each filter in `FILTERS` order, its instruction count (u32) and
//! its instructions (u16 code, u8 jt, u8 jf, u32 k), little-endian.

use std::path::PathBuf;

/// The filters the jailer installs, in the order it installs them.
const FILTERS: [&str; 2] = ["no_clone3", "runtime"];

fn main() {
    println!("cargo:rerun-if-changed=src/seccomp.json");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("seccomp.bpf");
    let mut bytes = Vec::new();
    // The allowlist names x86-64 calls; elsewhere nothing is installed.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
        let json = std::fs::read("src/seccomp.json").expect("reading src/seccomp.json");
        let filters = seccompiler::compile_from_json(json.as_slice(), seccompiler::TargetArch::x86_64)
            .unwrap_or_else(|error| panic!("src/seccomp.json does not compile: {error}"));
        for name in FILTERS {
            let program = filters.get(name).unwrap_or_else(|| panic!("src/seccomp.json has no filter {name}"));
            bytes.extend_from_slice(&u32::try_from(program.len()).expect("a filter's length fits").to_le_bytes());
            for instruction in program {
                bytes.extend_from_slice(&instruction.code.to_le_bytes());
                bytes.push(instruction.jt);
                bytes.push(instruction.jf);
                bytes.extend_from_slice(&instruction.k.to_le_bytes());
            }
        }
    }
    std::fs::write(&out, bytes).expect("writing the compiled seccomp filters");
}
