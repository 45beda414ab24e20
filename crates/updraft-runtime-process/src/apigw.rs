//! HTTP triggers for Lambda handlers: the request becomes an API Gateway HTTP API
//! (payload format 2.0) event, and the handler's answer becomes the response by API
//! Gateway's rules, so handlers written for API Gateway run unchanged.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use serde::Serialize;
use serde_json::Value;

/// The gateway's headers naming the matched route and its parameters.
pub(crate) const ROUTE_HEADER: &str = "x-updraft-route";
pub(crate) const PARAM_PREFIX: &str = "x-updraft-param-";
/// The gateway's header on a request whose trigger asks for REST API events
/// (`payload_format = "1.0"`, `crate::rest_api`).
pub const PAYLOAD_FORMAT_HEADER: &str = "x-updraft-payload-format";

/// The route's path parameters by their names as the route writes them: the gateway's
/// headers carry them lowercased (header names are), the route header in their case.
pub(crate) fn path_parameters(headers: &http::HeaderMap) -> BTreeMap<String, String> {
    let route = headers.get(ROUTE_HEADER).and_then(|route| route.to_str().ok()).unwrap_or_default();
    let names: Vec<&str> = route
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| name.trim_start_matches('*'))
        .collect();
    headers
        .iter()
        .filter_map(|(name, value)| {
            let lowered = name.as_str().strip_prefix(PARAM_PREFIX)?;
            let name = names.iter().find(|name| name.eq_ignore_ascii_case(lowered)).map_or(lowered, |name| name);
            Some((name.to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// A request's body as both payload formats carry it: `None` when empty, text as it is
/// for a textual type, else base64 (the flag says which).
pub(crate) fn event_body(request: &Request<Bytes>) -> (Option<String>, bool) {
    let body = request.body();
    if body.is_empty() {
        (None, false)
    } else if is_textual(request.headers().get(header::CONTENT_TYPE))
        && let Ok(text) = std::str::from_utf8(body)
    {
        (Some(text.to_owned()), false)
    } else {
        (Some(BASE64.encode(body)), true)
    }
}

/// Whether the request's trigger asks for REST API (payload format 1.0) events.
pub fn is_rest(request: &Request<Bytes>) -> bool {
    request.headers().get(PAYLOAD_FORMAT_HEADER).is_some_and(|format| format == "1.0")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    version: &'static str,
    route_key: &'a str,
    raw_path: &'a str,
    raw_query_string: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cookies: Vec<&'a str>,
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    query_string_parameters: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    path_parameters: BTreeMap<String, String>,
    request_context: RequestContext<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext<'a> {
    account_id: &'a str,
    api_id: &'static str,
    domain_name: &'a str,
    domain_prefix: &'a str,
    http: HttpContext<'a>,
    request_id: &'a str,
    route_key: &'a str,
    stage: &'static str,
    time: String,
    time_epoch: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpContext<'a> {
    method: &'a str,
    path: &'a str,
    protocol: &'static str,
    source_ip: &'a str,
    user_agent: &'a str,
}

/// Who the event is for: filled in by the runtime.
pub struct EventContext<'a> {
    pub account_id: &'a str,
    pub request_id: &'a str,
    /// Milliseconds since the Unix epoch.
    pub now_ms: i64,
}

/// The API Gateway v2 event for an HTTP request.
pub fn request_event(request: &Request<Bytes>, context: &EventContext<'_>) -> Bytes {
    let headers_in = request.headers();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let path_parameters = path_parameters(headers_in);
    let mut cookies = Vec::new();
    for (name, value) in headers_in {
        let Ok(value) = value.to_str() else { continue };
        let name = name.as_str();
        if name.starts_with(PARAM_PREFIX) {
            continue;
        } else if name == header::COOKIE {
            cookies.extend(value.split(';').map(str::trim).filter(|c| !c.is_empty()));
        } else if name != ROUTE_HEADER {
            // Repeated headers are joined with commas, as API Gateway does.
            headers
                .entry(name.to_owned())
                .and_modify(|v| {
                    v.push(',');
                    v.push_str(value)
                })
                .or_insert_with(|| value.to_owned());
        }
    }
    // API Gateway's route key is one method and the route: `GET /items/{id}`.
    let route_key = match headers_in.get(ROUTE_HEADER).and_then(|v| v.to_str().ok()) {
        Some(route) => format!("{} {route}", request.method()),
        None => "$default".to_owned(),
    };
    let route_key = route_key.as_str();
    let raw_query = request.uri().query().unwrap_or_default();
    let mut query = BTreeMap::<String, String>::new();
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        query
            .entry(key.into_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value)
            })
            .or_insert_with(|| value.into_owned());
    }
    let header = |name: &str| headers.get(name).cloned();
    let domain = header("host").unwrap_or_else(|| "localhost".to_owned());
    let domain_prefix = domain.split('.').next().unwrap_or(&domain).to_owned();
    let source_ip = header("x-forwarded-for").unwrap_or_else(|| "127.0.0.1".to_owned());
    let user_agent = header("user-agent").unwrap_or_default();
    let (body, is_base64_encoded) = event_body(request);
    let event = Event {
        version: "2.0",
        route_key,
        raw_path: request.uri().path(),
        raw_query_string: raw_query,
        cookies,
        query_string_parameters: query,
        path_parameters,
        request_context: RequestContext {
            account_id: context.account_id,
            api_id: "updraft",
            domain_name: &domain,
            domain_prefix: &domain_prefix,
            http: HttpContext {
                method: request.method().as_str(),
                path: request.uri().path(),
                protocol: "HTTP/1.1",
                source_ip: &source_ip,
                user_agent: &user_agent,
            },
            request_id: context.request_id,
            route_key,
            stage: "$default",
            time: clf_time(context.now_ms),
            time_epoch: context.now_ms,
        },
        headers,
        body,
        is_base64_encoded,
    };
    serde_json::to_vec(&event).expect("the event serialises").into()
}

/// Why a handler's answer is not a response.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("statusCode {0} is not an HTTP status")]
    Status(i64),
    #[error("the body is marked isBase64Encoded but is not valid base64")]
    Base64,
    #[error("header {0:?} has a name or value HTTP does not allow")]
    Header(String),
    #[error("the streamed answer is marked as an HTTP response but does not start with a JSON prelude and 8 NUL bytes")]
    Prelude,
    #[error(
        "a REST API route (payload_format = \"1.0\") needs an answer like {{\"statusCode\": 200, \"body\": \"...\"}} \
         (API Gateway calls anything else a malformed Lambda proxy response)"
    )]
    Malformed,
}

/// The HTTP response for a handler's answer, by API Gateway's payload 2.0 rules: an
/// object with `statusCode` is a response description (`headers`, `cookies`, `body`,
/// `isBase64Encoded`); any other valid JSON is the body of a `200` with
/// `content-type: application/json`; anything else is returned as it is.
pub fn response(answer: &[u8]) -> Result<Response<Bytes>, ResponseError> {
    let value: Value = match serde_json::from_slice(answer) {
        Ok(value) => value,
        Err(_) => return Ok(plain(Bytes::copy_from_slice(answer), None)),
    };
    let Some(object) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        // A bare string is the body itself; other values go out as JSON.
        let body = match &value {
            Value::String(text) => Bytes::from(text.clone()),
            _ => Bytes::copy_from_slice(answer),
        };
        return Ok(plain(body, Some("application/json")));
    };
    let body = match object.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) if object.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => {
            BASE64.decode(text).map_err(|_| ResponseError::Base64)?.into()
        }
        Some(Value::String(text)) => Bytes::from(text.clone()),
        Some(other) => Bytes::from(other.to_string()),
    };
    described(object, body)
}

/// The content type of a streamed answer that starts with its HTTP head: a JSON
/// prelude (`statusCode`, `headers`, `cookies`), eight NUL bytes, then the body, as
/// Node's `awslambda.HttpResponseStream.from` writes it.
const HTTP_INTEGRATION: &str = "application/vnd.awslambda.http-integration-response";

/// Whether a streamed answer starts with its HTTP head (`HttpResponseStream.from`).
pub fn is_http_integration(content_type: Option<&HeaderValue>) -> bool {
    content_type.is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(HTTP_INTEGRATION.as_bytes()))
}

/// The most a streamed answer's prelude may take before its 8 NUL bytes.
pub const MAX_PRELUDE: usize = 64 * 1024;

/// Where a streamed answer's prelude ends in `buffered`: the index of its 8 NUL bytes.
pub fn prelude_end(buffered: &[u8]) -> Option<usize> {
    buffered.windows(8).position(|window| window == [0u8; 8])
}

/// The HTTP head a streamed answer's JSON prelude describes (`statusCode`, default
/// 200, `headers`, `cookies`).
pub fn prelude_head(prelude: &[u8]) -> Result<Response<()>, ResponseError> {
    let prelude: Value = serde_json::from_slice(prelude).map_err(|_| ResponseError::Prelude)?;
    let Value::Object(mut prelude) = prelude else { return Err(ResponseError::Prelude) };
    prelude.entry("statusCode").or_insert(Value::from(200));
    described(&prelude, Bytes::new()).map(|response| response.map(drop))
}

/// A response described by `object` (`statusCode`, `headers`, `cookies`) with `body`.
fn described(object: &serde_json::Map<String, Value>, body: Bytes) -> Result<Response<Bytes>, ResponseError> {
    let status = object["statusCode"].as_i64().unwrap_or(0);
    let status =
        u16::try_from(status).ok().and_then(|s| StatusCode::from_u16(s).ok()).ok_or(ResponseError::Status(status))?;
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(Value::Object(map)) = object.get("headers") {
        for (name, value) in map {
            let value = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let name_ok = HeaderName::from_bytes(name.as_bytes()).map_err(|_| ResponseError::Header(name.clone()))?;
            let value_ok = HeaderValue::from_str(&value).map_err(|_| ResponseError::Header(name.clone()))?;
            headers.append(name_ok, value_ok);
        }
    }
    if let Some(Value::Array(cookies)) = object.get("cookies") {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            let value = HeaderValue::from_str(cookie).map_err(|_| ResponseError::Header("set-cookie".into()))?;
            headers.append(header::SET_COOKIE, value);
        }
    }
    if !headers.contains_key(header::CONTENT_TYPE) && !response.body().is_empty() {
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(response)
}

fn plain(body: Bytes, content_type: Option<&'static str>) -> Response<Bytes> {
    let mut response = Response::new(body);
    if let Some(content_type) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

/// Whether API Gateway would pass a body of this type as text.
pub(crate) fn is_textual(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else { return true };
    let value = value.to_ascii_lowercase();
    value.starts_with("text/")
        || ["json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "csv"].iter().any(|t| value.contains(t))
}

/// API Gateway's `requestContext.time`: `27/Nov/2026:07:00:00 +0000`.
pub(crate) fn clf_time(now_ms: i64) -> String {
    use chrono::TimeZone as _;
    chrono::Utc.timestamp_millis_opt(now_ms).single().unwrap_or_default().format("%d/%b/%Y:%H:%M:%S +0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> EventContext<'static> {
        EventContext { account_id: "000000000000", request_id: "req-1", now_ms: 1_795_764_600_000 }
    }

    #[test]
    fn a_request_becomes_a_payload_2_event() {
        let request = Request::post("/notes/7?tag=a&tag=b&q=hello+world%21")
            .header("host", "api.example.com")
            .header("content-type", "application/json")
            .header("cookie", "a=1; b=2")
            .header("x-updraft-route", "/notes/{id}")
            .header("x-updraft-param-id", "7")
            .body(Bytes::from_static(br#"{"x":1}"#))
            .unwrap();
        let event: Value = serde_json::from_slice(&request_event(&request, &context())).unwrap();
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "POST /notes/{id}");
        assert_eq!(event["rawPath"], "/notes/7");
        assert_eq!(event["rawQueryString"], "tag=a&tag=b&q=hello+world%21");
        assert_eq!(event["queryStringParameters"]["tag"], "a,b");
        assert_eq!(event["queryStringParameters"]["q"], "hello world!");
        assert_eq!(event["pathParameters"]["id"], "7");
        assert_eq!(event["cookies"], serde_json::json!(["a=1", "b=2"]));
        assert_eq!(event["headers"]["host"], "api.example.com");
        assert!(event["headers"].get("cookie").is_none() && event["headers"].get("x-updraft-route").is_none());
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
        assert_eq!(event["requestContext"]["domainPrefix"], "api");
        assert_eq!(event["requestContext"]["time"], "27/Nov/2026:07:30:00 +0000");
        assert_eq!(event["body"], r#"{"x":1}"#);
        assert_eq!(event["isBase64Encoded"], false);
    }

    #[test]
    fn binary_bodies_are_base64() {
        let request = Request::post("/up")
            .header("content-type", "application/octet-stream")
            .body(Bytes::from_static(&[0, 159, 146, 150]))
            .unwrap();
        let event: Value = serde_json::from_slice(&request_event(&request, &context())).unwrap();
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "AJ+Slg==");
    }

    #[test]
    fn a_response_description_maps_to_http() {
        let answer = br#"{"statusCode":201,"headers":{"x-a":"1","content-type":"text/plain"},"cookies":["s=1; Path=/"],"body":"made"}"#;
        let response = response(answer).unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["x-a"], "1");
        assert_eq!(response.headers()["content-type"], "text/plain");
        assert_eq!(response.headers()["set-cookie"], "s=1; Path=/");
        assert_eq!(response.body(), "made");

        let binary = super::response(br#"{"statusCode":200,"body":"AJ+Slg==","isBase64Encoded":true}"#).unwrap();
        assert_eq!(binary.body().as_ref(), &[0, 159, 146, 150]);
        assert!(matches!(super::response(br#"{"statusCode":99}"#), Err(ResponseError::Status(99))));
    }

    #[test]
    fn other_answers_follow_api_gateways_inference() {
        let object = response(br#"{"hello":"world"}"#).unwrap();
        assert_eq!(object.status(), 200);
        assert_eq!(object.headers()["content-type"], "application/json");
        assert_eq!(object.body(), r#"{"hello":"world"}"#);
        let string = response(br#""hi there""#).unwrap();
        assert_eq!(string.body(), "hi there");
    }
}
