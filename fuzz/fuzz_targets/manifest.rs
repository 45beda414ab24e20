//! Manifest parsing: any text gets a manifest or problems, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use updraft_model::{Limits, Manifest};

fuzz_target!(|text: &str| {
    if let Err(error) = Manifest::parse(text, "updraft.toml", &Limits::default()) {
        assert!(!error.problems.is_empty(), "an error names at least one problem");
        let _ = error.to_string();
    }
});
