//! Property tests (run by `cargo test`): the parsers hold their promises on generated
//! input, not only on the examples in each module's tests. The fuzz targets in `fuzz/`
//! explore the same parsers by coverage; these run on every build.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{HostRule, JsonPath, Limits, Manifest, Portless, RoutePattern};

/// A reference `StringMatches`: exponential, obviously right, for short inputs.
fn reference_wildcard(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| reference_wildcard(rest, &text[skip..])),
        Some(('\\', rest)) if !rest.is_empty() => {
            text.first() == Some(&rest[0]) && reference_wildcard(&rest[1..], &text[1..])
        }
        Some((c, rest)) => text.first() == Some(c) && reference_wildcard(rest, &text[1..]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_a_manifest_or_a_list_of_problems(text in "\\PC{0,400}") {
        if let Err(error) = Manifest::parse(&text, "updraft.toml", &Limits::default()) {
            prop_assert!(!error.problems.is_empty());
        }
    }

    #[test]
    fn manifest_like_text_is_a_manifest_or_a_list_of_problems(
        name in "[a-z]{1,8}",
        runtime in prop::sample::select(vec!["wasm", "python3", "nodejs", "provided", "ruby"]),
        key in prop::sample::select(vec!["timeout", "memory", "env", "triggers", "concurrency", "allowed_outbound_hosts", "retries"]),
        value in prop::sample::select(vec!["\"5s\"", "\"64MiB\"", "{ A = \"b\" }", "[{ http = \"GET /a/{b}\" }]", "7", "[\"*\"]", "\"x\"", "[]", "{ K = { secret = \"s\" } }"]),
    ) {
        let text = format!("[app]\nname = \"{name}\"\n\n[functions.{name}]\nruntime = \"{runtime}\"\nsource = \"x\"\nhandler = \"a.b\"\n{key} = {value}\n");
        if let Err(error) = Manifest::parse(&text, "updraft.toml", &Limits::default()) {
            prop_assert!(!error.problems.is_empty());
            prop_assert!(error.problems.iter().all(|problem| problem.field.starts_with("functions.") || problem.field.starts_with("app")));
        }
    }

    #[test]
    fn a_route_that_parses_prints_back_to_itself(route in "(/(\\{[a-z]{1,4}\\}|[a-z.%{}*?]{0,4})){0,5}") {
        if let Ok(pattern) = RoutePattern::parse(&route) {
            prop_assert_eq!(RoutePattern::parse(&pattern.to_string()), Ok(pattern));
        }
    }

    #[test]
    fn string_matches_agrees_with_the_obvious_matcher(pattern in "[ab*\\\\]{0,8}", text in "[ab*\\\\]{0,10}") {
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
        prop_assert_eq!(crate::workflow::matches_wildcard(&pattern, &text), reference_wildcard(&p, &t));
    }

    #[test]
    fn what_a_path_writes_it_reads_back(keys in prop::collection::vec("[a-z]{1,5}", 1..4), n in any::<i64>()) {
        let path = JsonPath::parse(&format!("$.{}", keys.join("."))).unwrap();
        let written = path.write(json!({}), json!(n)).unwrap();
        prop_assert_eq!(path.read(&written).unwrap(), &Value::from(n));
    }

    #[test]
    fn a_host_rule_admits_the_host_it_names_and_no_other(host in "[a-z]{1,8}\\.[a-z]{2,4}", port in 1u16..) {
        let named = HostRule::parse(&format!("{host}:{port}")).unwrap();
        prop_assert!(named.allows(&host, port, Portless::AnyPort));
        let other = format!("x{host}");
        prop_assert!(!named.allows(&other, port, Portless::AnyPort));
        prop_assert!(!named.allows(&host, port.wrapping_add(1).max(1), Portless::AnyPort) || port == u16::MAX);
        let wildcard = HostRule::parse(&format!("*.{host}")).unwrap();
        let sub = format!("api.{host}");
        prop_assert!(wildcard.allows(&sub, 443, Portless::WebPorts));
        prop_assert!(!wildcard.allows(&host, 443, Portless::WebPorts));
        prop_assert!(!wildcard.allows(&sub, 8443, Portless::WebPorts));
    }
}
