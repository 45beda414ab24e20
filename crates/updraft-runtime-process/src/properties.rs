//! Property tests (run by `cargo test`) for the Lambda wire shapes this crate owns: API
//! Gateway events and answers, and the Invoke API's request fields. The fuzz targets in
//! `fuzz/` explore the same functions by coverage.

use bytes::Bytes;
use proptest::prelude::*;

use crate::apigw::{EventContext, request_event, response};
use crate::invoke_api::{credential_key_id, decode_client_context, parse_function_name};

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_request_becomes_a_json_event_that_keeps_its_body(
        path in "/[a-zA-Z0-9/._~%-]{0,30}",
        query in "[a-z0-9=&%+]{0,20}",
        headers in prop::collection::vec(("[a-z-]{1,12}", "[ -~]{0,20}"), 0..6),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut request = http::Request::builder().method("POST").uri(format!("{path}?{query}"));
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let Ok(request) = request.body(Bytes::from(body.clone())) else { return Ok(()) };
        let context = EventContext { account_id: "000000000000", request_id: "r", now_ms: 0 };
        let event: serde_json::Value = serde_json::from_slice(&request_event(&request, &context)).unwrap();
        let carried = match event["isBase64Encoded"].as_bool() {
            Some(true) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(event["body"].as_str().unwrap_or("")).unwrap()
            }
            _ => event["body"].as_str().unwrap_or("").as_bytes().to_vec(),
        };
        prop_assert_eq!(carried, body);
    }

    #[test]
    fn any_answer_maps_to_a_response_or_an_error(answer in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = response(&answer);
    }

    #[test]
    fn invoke_request_fields_never_panic(text in "\\PC{0,80}") {
        let (name, _) = parse_function_name(&text);
        prop_assert!(text.contains(name));
        let _ = decode_client_context(&text);
        let _ = credential_key_id(Some(&text));
    }
}
