//! API Gateway mapping: any request becomes a payload 2.0 event that is JSON, and any
//! answer a function gives maps to a response or a clear error.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use updraft_runtime_process::apigw::{EventContext, request_event, response};

fuzz_target!(|data: &[u8]| {
    // Bytes before the first NUL: a request head (method, path, header lines); after:
    // the body, and also an answer to map back.
    let (head, body) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let first = lines.next().unwrap_or("GET /");
    let (method, target) = first.split_once(' ').unwrap_or((first, "/"));
    let mut request = http::Request::builder().method(method).uri(target);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            request = request.header(name.trim(), value.trim());
        }
    }
    if let Ok(request) = request.body(Bytes::copy_from_slice(body)) {
        let context = EventContext { account_id: "000000000000", request_id: "fuzz", now_ms: 0 };
        let event = request_event(&request, &context);
        serde_json::from_slice::<serde_json::Value>(&event).expect("the event is JSON");
    }
    let _ = response(body);
});
