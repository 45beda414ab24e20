//! Builds the guest programs in `guests/` for wasm32-wasip2 and writes their paths into
//! `programs.rs`, so tests name a guest by a constant instead of committing binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let guests = manifest_dir.join("guests");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // target/<profile>/build/<pkg>-<hash>/out -> target/
    let target_dir =
        out_dir.ancestors().nth(4).map(Path::to_path_buf).unwrap_or_else(|| out_dir.clone()).join("guests");

    println!("cargo:rerun-if-changed=guests/src");
    println!("cargo:rerun-if-changed=guests/Cargo.toml");
    println!("cargo:rerun-if-changed=guests/Cargo.lock");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // A build script's job here is to run cargo for another target.
    #[allow(clippy::disallowed_methods)]
    let mut command = Command::new(cargo);
    command
        .current_dir(&guests)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--bins"])
        .env("CARGO_TARGET_DIR", &target_dir);
    // The outer build's settings are for the host; the guests build for wasm.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_LLVM_COV",
    ] {
        command.env_remove(var);
    }
    let status = command.status().expect("running cargo to build the guest programs");
    if !status.success() {
        panic!(
            "building the guest programs failed ({status}); is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`"
        );
    }

    let release = target_dir.join("wasm32-wasip2").join("release");
    let mut programs = String::new();
    let mut bins: Vec<String> = std::fs::read_dir(guests.join("src/bin"))
        .expect("reading guests/src/bin")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    bins.sort();
    for bin in bins {
        let path = release.join(format!("{bin}.wasm"));
        assert!(path.is_file(), "guest {bin} was not built at {}", path.display());
        let constant = bin.to_uppercase().replace('-', "_");
        programs.push_str(&format!(
            "/// The `{bin}` guest component.\npub const {constant}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    std::fs::write(out_dir.join("programs.rs"), programs).expect("writing programs.rs");
}
