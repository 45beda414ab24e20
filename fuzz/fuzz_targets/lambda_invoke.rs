//! The Lambda Invoke API's request: function names and ARNs, client contexts and SigV4
//! credentials parse or are refused, never panic, and what they yield is a part of
//! what was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use updraft_runtime_process::invoke_api::{credential_key_id, decode_client_context, parse_function_name};

fuzz_target!(|text: &str| {
    let (name, qualifier) = parse_function_name(text);
    assert!(text.contains(name));
    if let Some(qualifier) = qualifier {
        assert!(text.ends_with(qualifier));
    }
    if let Ok(context) = decode_client_context(text) {
        serde_json::from_str::<serde_json::Value>(&context).expect("a client context is JSON");
    }
    if let Ok(key) = credential_key_id(Some(text)) {
        assert!(!key.is_empty() && text.contains(key));
    }
});
