//! A guest that does many small things, chosen by path:
//! `/echo` echoes method, path, body and the `x-updraft-*` and `ce-*` headers as text
//! (and prints it to stdout too for an event, a request with `ce-id`, whose answer
//! nobody reads);
//! `/env?name=X` prints an environment variable; `/log?lines=N` writes N lines to
//! stdout and one to stderr; `/big?bytes=N` answers N bytes; `/sleep?ms=N` waits;
//! `/fetch?url=U` makes an outbound request; `/count` counts requests this instance
//! served; `/status?code=N` answers that status.

use std::sync::atomic::{AtomicU64, Ordering};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;
use wstd::http::{Body, Error, Request, Response, StatusCode};
use wstd::runtime::AsyncPollable;

static SERVED: AtomicU64 = AtomicU64::new(0);

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let served = SERVED.fetch_add(1, Ordering::SeqCst) + 1;
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let param = |key: &str| {
        query.split('&').find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.to_owned()))
    };
    let text = |status: u16, body: String| {
        Response::builder().status(status).header("content-type", "text/plain").body(Body::from(body))
    };
    let last = path.rsplit('/').next().unwrap_or("").to_owned();
    match last.as_str() {
        "env" => {
            let name = param("name").unwrap_or_default();
            Ok(text(200, std::env::var(&name).unwrap_or_else(|_| "<unset>".to_owned()))?)
        }
        "log" => {
            let lines: u64 = param("lines").and_then(|n| n.parse().ok()).unwrap_or(1);
            for i in 0..lines {
                println!("line {i}");
            }
            eprintln!("to stderr");
            Ok(text(200, format!("logged {lines}"))?)
        }
        "big" => {
            let bytes: usize = param("bytes").and_then(|n| n.parse().ok()).unwrap_or(0);
            Ok(Response::new(Body::from(vec![b'x'; bytes])))
        }
        "sleep" => {
            let ms: u64 = param("ms").and_then(|n| n.parse().ok()).unwrap_or(0);
            wstd::task::sleep(wstd::time::Duration::from_millis(ms)).await;
            Ok(text(200, format!("slept {ms}"))?)
        }
        "fetch" => {
            let url = param("url").unwrap_or_default();
            match fetch(&url).await {
                Ok((status, body)) => Ok(text(200, format!("fetched {status}: {body}"))?),
                Err(error) => Ok(text(502, format!("fetch failed: {error}"))?),
            }
        }
        "count" => Ok(text(200, served.to_string())?),
        "status" => {
            let code: u16 = param("code").and_then(|n| n.parse().ok()).unwrap_or(200);
            Ok(Response::builder().status(StatusCode::from_u16(code)?).body(Body::from(format!("status {code}")))?)
        }
        _ => {
            let mut headers: Vec<String> = request
                .headers()
                .iter()
                .filter(|(name, _)| name.as_str().starts_with("x-updraft-") || name.as_str().starts_with("ce-"))
                .map(|(name, value)| format!("{}: {}", name, value.to_str().unwrap_or("?")))
                .collect();
            headers.sort();
            let method = request.method().to_string();
            let body = request.body_mut().contents().await?.to_vec();
            let body = String::from_utf8_lossy(&body).into_owned();
            let echoed = format!("{method} {path}?{query}\n{}\n\n{body}", headers.join("\n"));
            if request.headers().contains_key("ce-id") {
                println!("{echoed}");
            }
            Ok(text(200, echoed)?)
        }
    }
}

/// A `GET` of `url`: its status and body. The request's (empty) body is finished before
/// the request goes out, so the host never waits on it while the server answers.
async fn fetch(url: &str) -> Result<(u16, String), String> {
    let uri: wstd::http::Uri = url.parse().map_err(|error| format!("bad url: {error}"))?;
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|()| "method refused".to_owned())?;
    let scheme = if uri.scheme_str() == Some("https") { Scheme::Https } else { Scheme::Http };
    request.set_scheme(Some(&scheme)).map_err(|()| "scheme refused".to_owned())?;
    request.set_authority(uri.authority().map(|a| a.as_str())).map_err(|()| "authority refused".to_owned())?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    request.set_path_with_query(Some(path)).map_err(|()| "path refused".to_owned())?;
    let body = request.body().map_err(|()| "no body".to_owned())?;
    OutgoingBody::finish(body, None).map_err(|error| format!("{error:?}"))?;
    let pending = outgoing_handler::handle(request, None).map_err(|error| format!("{error:?}"))?;
    AsyncPollable::new(pending.subscribe()).wait_for().await;
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken twice".to_owned())?
        .map_err(|error| format!("{error:?}"))?;
    let status = response.status();
    let incoming = response.consume().map_err(|()| "no response body".to_owned())?;
    let stream = incoming.stream().map_err(|()| "no response stream".to_owned())?;
    let mut bytes = Vec::new();
    loop {
        AsyncPollable::new(stream.subscribe()).wait_for().await;
        match stream.read(64 * 1024) {
            Ok(chunk) => bytes.extend(chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => return Err(error.to_debug_string()),
        }
    }
    drop(stream);
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}
