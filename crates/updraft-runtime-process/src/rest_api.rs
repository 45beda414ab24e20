//! HTTP triggers with `payload_format = "1.0"`: the request becomes an API Gateway REST
//! API proxy event (payload format 1.0, what SAM's `Api` events and handlers written for
//! them expect: `httpMethod`, `path`, `resource`, multi-value headers and query), and
//! the answer is read by REST API's rules, which require a response description.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{Request, Response};
use serde::Serialize;
use serde_json::Value;

use crate::apigw::{EventContext, PARAM_PREFIX, PAYLOAD_FORMAT_HEADER, ROUTE_HEADER, ResponseError};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    resource: String,
    path: &'a str,
    http_method: &'a str,
    headers: BTreeMap<String, String>,
    multi_value_headers: BTreeMap<String, Vec<String>>,
    query_string_parameters: Option<BTreeMap<String, String>>,
    multi_value_query_string_parameters: Option<BTreeMap<String, Vec<String>>>,
    path_parameters: Option<BTreeMap<String, String>>,
    stage_variables: Option<()>,
    request_context: RequestContext<'a>,
    body: Option<String>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext<'a> {
    account_id: &'a str,
    api_id: &'static str,
    domain_name: String,
    http_method: &'a str,
    identity: Identity,
    path: &'a str,
    protocol: &'static str,
    request_id: &'a str,
    request_time: String,
    request_time_epoch: i64,
    resource_id: &'static str,
    resource_path: String,
    stage: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Identity {
    source_ip: String,
    user_agent: String,
}

/// The API Gateway REST API (1.0) event for an HTTP request.
pub fn request_event(request: &Request<Bytes>, context: &EventContext<'_>) -> Bytes {
    let mut headers = BTreeMap::new();
    let mut multi_value_headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let path_parameters = crate::apigw::path_parameters(request.headers());
    for (name, value) in request.headers() {
        let Ok(value) = value.to_str() else { continue };
        let name = name.as_str();
        if name.starts_with(PARAM_PREFIX) {
            continue;
        } else if name != ROUTE_HEADER && name != PAYLOAD_FORMAT_HEADER {
            // The last value in `headers`, every value in `multiValueHeaders`, as REST APIs do.
            headers.insert(name.to_owned(), value.to_owned());
            multi_value_headers.entry(name.to_owned()).or_default().push(value.to_owned());
        }
    }
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes()) {
        query.entry(key.into_owned()).or_default().push(value.into_owned());
    }
    let single_query = query.iter().filter_map(|(key, values)| Some((key.clone(), values.last()?.clone()))).collect();
    // The route in API Gateway's syntax: `/files/{*path}` is `/files/{path+}`.
    let resource = match request.headers().get(ROUTE_HEADER).and_then(|v| v.to_str().ok()) {
        Some(route) => route
            .split('/')
            .map(|segment| match segment.strip_prefix("{*").and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!("{{{name}+}}"),
                None => segment.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/"),
        None => request.uri().path().to_owned(),
    };
    let (body, is_base64_encoded) = crate::apigw::event_body(request);
    let header = |name: &str| headers.get(name).cloned();
    let path = request.uri().path();
    let method = request.method().as_str();
    let request_context = RequestContext {
        account_id: context.account_id,
        api_id: "updraft",
        domain_name: header("host").unwrap_or_else(|| "localhost".to_owned()),
        http_method: method,
        identity: Identity {
            source_ip: header("x-forwarded-for").unwrap_or_else(|| "127.0.0.1".to_owned()),
            user_agent: header("user-agent").unwrap_or_default(),
        },
        path,
        protocol: "HTTP/1.1",
        request_id: context.request_id,
        request_time: crate::apigw::clf_time(context.now_ms),
        request_time_epoch: context.now_ms,
        resource_id: "updraft",
        resource_path: resource.clone(),
        stage: "$default",
    };
    let event = Event {
        resource,
        path,
        http_method: method,
        headers,
        multi_value_headers,
        query_string_parameters: (!query.is_empty()).then_some(single_query),
        multi_value_query_string_parameters: (!query.is_empty()).then_some(query),
        path_parameters: (!path_parameters.is_empty()).then_some(path_parameters),
        stage_variables: None,
        request_context,
        body,
        is_base64_encoded,
    };
    serde_json::to_vec(&event).expect("the event serialises").into()
}

/// The HTTP response for a handler's answer by REST API's rules: a JSON object with
/// `statusCode`, and optionally `headers`, `multiValueHeaders`, `body` (text) and
/// `isBase64Encoded`. Anything else is a malformed proxy response (a 502 on AWS too).
pub fn response(answer: &[u8]) -> Result<Response<Bytes>, ResponseError> {
    let value: Value = serde_json::from_slice(answer).map_err(|_| ResponseError::Malformed)?;
    let Some(object) = value.as_object() else { return Err(ResponseError::Malformed) };
    // A number, or a string of one (`'200'`, as some of AWS's own blueprints answer).
    let status = match object.get("statusCode") {
        Some(Value::Number(number)) => number.as_i64(),
        Some(Value::String(text)) => text.trim().parse().ok(),
        _ => None,
    };
    let Some(status) = status else { return Err(ResponseError::Malformed) };
    let body = match object.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) if object.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => {
            BASE64.decode(text).map_err(|_| ResponseError::Base64)?.into()
        }
        Some(Value::String(text)) => Bytes::from(text.clone()),
        Some(_) => return Err(ResponseError::Malformed),
    };
    // `headers` and `multiValueHeaders` are merged, the latter's values winning for a
    // name both give (as API Gateway merges them); names are case-insensitive.
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let multi = object.get("multiValueHeaders").and_then(Value::as_object);
    let mut lines: Vec<(String, String)> = Vec::new();
    for (name, value) in object.get("headers").and_then(Value::as_object).into_iter().flatten() {
        if !multi.is_some_and(|multi| multi.keys().any(|other| other.eq_ignore_ascii_case(name))) {
            lines.push((name.clone(), text(value)));
        }
    }
    for (name, values) in multi.into_iter().flatten() {
        lines.extend(values.as_array().into_iter().flatten().map(|value| (name.clone(), text(value))));
    }
    let mut response = Response::new(body);
    *response.status_mut() = u16::try_from(status)
        .ok()
        .and_then(|status| http::StatusCode::from_u16(status).ok())
        .ok_or(ResponseError::Status(status))?;
    for (name, value) in lines {
        let header = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| ResponseError::Header(name.clone()))?;
        let value = http::HeaderValue::from_str(&value).map_err(|_| ResponseError::Header(name.clone()))?;
        response.headers_mut().append(header, value);
    }
    if !response.headers().contains_key(http::header::CONTENT_TYPE) && !response.body().is_empty() {
        response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_becomes_a_rest_api_event() {
        let request = Request::builder()
            .method("POST")
            .uri("/files/a/b.txt?tag=x&tag=y&one=1")
            .header("host", "api.example.com")
            .header("x-updraft-route", "/files/{*filePath}")
            .header("x-updraft-param-filepath", "a/b.txt")
            .header("x-updraft-payload-format", "1.0")
            .header("accept", "text/plain")
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(Bytes::from_static(b"{\"a\":1}"))
            .unwrap();
        let context = EventContext { account_id: "000000000000", request_id: "r-1", now_ms: 0 };
        let event: Value = serde_json::from_slice(&request_event(&request, &context)).unwrap();
        assert_eq!(event["httpMethod"], "POST");
        assert_eq!(event["path"], "/files/a/b.txt");
        assert_eq!(event["resource"], "/files/{filePath+}");
        // Named as the route writes it, though headers carry it lowercased.
        assert_eq!(event["pathParameters"]["filePath"], "a/b.txt");
        assert_eq!(event["queryStringParameters"]["tag"], "y");
        assert_eq!(event["multiValueQueryStringParameters"]["tag"], serde_json::json!(["x", "y"]));
        assert_eq!(event["headers"]["accept"], "application/json");
        assert_eq!(event["multiValueHeaders"]["accept"], serde_json::json!(["text/plain", "application/json"]));
        assert!(
            event["headers"].get("x-updraft-route").is_none()
                && event["headers"].get("x-updraft-payload-format").is_none()
        );
        assert_eq!(event["requestContext"]["resourcePath"], "/files/{filePath+}");
        assert_eq!(event["requestContext"]["identity"]["sourceIp"], "127.0.0.1");
        assert_eq!(event["body"], "{\"a\":1}");
        assert_eq!(event["isBase64Encoded"], false);
        assert!(event["stageVariables"].is_null());
    }

    #[test]
    fn answers_follow_rest_api_rules() {
        let ok = response(
            br#"{"statusCode":201,"headers":{"x-a":"1"},"multiValueHeaders":{"set-cookie":["a=1","b=2"]},"body":"hi"}"#,
        )
        .unwrap();
        assert_eq!(ok.status(), 201);
        assert_eq!(ok.headers()["x-a"], "1");
        assert_eq!(ok.headers().get_all("set-cookie").iter().count(), 2);
        assert_eq!(ok.body().as_ref(), b"hi");
        // Both maps merged, the multi-value one winning; a string status; one content type.
        let merged = response(
            br#"{"statusCode":"202","headers":{"Content-Type":"text/plain","x-b":"1"},"multiValueHeaders":{"content-type":["text/html"]},"body":"x"}"#,
        )
        .unwrap();
        assert_eq!(merged.status(), 202);
        assert_eq!(merged.headers().get_all("content-type").iter().collect::<Vec<_>>(), ["text/html"]);
        assert_eq!(merged.headers()["x-b"], "1");
        let binary = response(br#"{"statusCode":200,"body":"AJ+Slg==","isBase64Encoded":true}"#).unwrap();
        assert_eq!(binary.body().as_ref(), &[0, 159, 146, 150]);
        // A bare value, or an object without statusCode, is malformed on a REST API.
        let malformed: [&[u8]; 5] = [
            br#""just text""#,
            br#"{"message":"hi"}"#,
            b"not json",
            br#"{"statusCode":200,"body":{"a":1}}"#,
            br#"{"statusCode":"two hundred"}"#,
        ];
        for answer in malformed {
            assert!(matches!(response(answer), Err(ResponseError::Malformed)), "{}", String::from_utf8_lossy(answer));
        }
    }
}
