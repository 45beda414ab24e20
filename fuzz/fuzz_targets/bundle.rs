//! Bundle unpacking: any bytes as a zip unpack into the destination or are refused;
//! nothing is ever written outside it, and a refused bundle leaves nothing behind.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use updraft_runtime_process::unpack_bundle;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
        assert!(!kind.is_symlink(), "{} is a symbolic link", path.display());
        found.push(path.clone());
        if kind.is_dir() {
            found.extend(files(&path));
        }
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("bundle.zip");
    std::fs::write(&archive, data).unwrap();
    let dest = scratch.path().join("bundles").join("fuzz");
    match unpack_bundle(&archive, &dest) {
        Ok(unpacked) => assert_eq!(unpacked, dest),
        Err(_) => assert!(!dest.exists(), "a refused bundle left {}", dest.display()),
    }
    // Only the archive, the bundles folder and what is under the destination exist.
    for path in files(scratch.path()) {
        assert!(
            path == archive || path == scratch.path().join("bundles") || path.starts_with(&dest),
            "{} was written outside the bundle",
            path.display()
        );
    }
});
