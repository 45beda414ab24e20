//! Amazon States Language and JSONPath: any JSON definition is a state machine or a
//! list of problems, and every state of one steps on any input without a panic (its
//! templates' intrinsic functions included); any path parses or is refused, and reads
//! and writes any value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use updraft_model::{JsonPath, StateMachine, apply_template};

fuzz_target!(|data: &[u8]| {
    // The first line is a path, the rest a JSON document (a definition, a template, an input).
    let text = String::from_utf8_lossy(data);
    let (path, document) = text.split_once('\n').unwrap_or((&text, "{}"));
    let Ok(value) = serde_json::from_str::<Value>(document) else { return };
    if let Ok(path) = JsonPath::parse(path) {
        let _ = path.read(&value);
        let _ = path.write(value.clone(), Value::Bool(true));
    }
    // The document as a template over itself, with itself as the context object (`$$`).
    let _ = apply_template(&value, &value, &value);
    if let Ok(machine) = StateMachine::parse(&value) {
        for name in
            value["States"].as_object().map(|states| states.keys().cloned().collect::<Vec<_>>()).unwrap_or_default()
        {
            let _ = machine.enter(&name, value.clone(), 0, &value);
        }
    }
});
