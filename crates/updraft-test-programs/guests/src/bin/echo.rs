//! A guest that does many small things, chosen by path:
//! `/echo` echoes method, path, body and the `x-updraft-*` and `ce-*` headers as text
//! (and prints it to stdout too for an event, a request with `ce-id`, whose answer
//! nobody reads);
//! `/env?name=X` prints an environment variable; `/log?lines=N` writes N lines to
//! stdout and one to stderr; `/big?bytes=N` answers N bytes; `/sleep?ms=N` waits;
//! `/fetch?url=U` makes an outbound request; `/count` counts requests this instance
//! served; `/status?code=N` answers that status.

use std::sync::atomic::{AtomicU64, Ordering};

use wstd::http::{Body, Client, Error, Request, Response, StatusCode};

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
            let outbound = Request::get(url.as_str()).body(Body::empty())?;
            match Client::new().send(outbound).await {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let body = response.body_mut().str_contents().await.unwrap_or("").to_owned();
                    Ok(text(200, format!("fetched {status}: {body}"))?)
                }
                Err(error) => Ok(text(502, format!("fetch failed: {error:?}"))?),
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
