//! Route patterns: any text parses or is refused with a reason; one that parses prints
//! as text that parses back to the same pattern, and never holds a dot segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use updraft_model::{RoutePattern, RouteSegment};

fuzz_target!(|text: &str| {
    match RoutePattern::parse(text) {
        Ok(pattern) => {
            let printed = pattern.to_string();
            assert_eq!(RoutePattern::parse(&printed).as_ref(), Ok(&pattern), "{printed:?} does not round-trip");
            for segment in pattern.segments() {
                if let RouteSegment::Literal(literal) = segment {
                    assert!(literal != "." && literal != ".." && !literal.contains('%'), "{text:?}");
                }
            }
            let _ = pattern.shape_key();
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
});
