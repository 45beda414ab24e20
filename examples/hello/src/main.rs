//! The hello example: greets by name, from the query string or the path.
//!
//! `GET /hello?name=Ada` and `GET /hello/Ada` both answer `Hello, Ada!`; the greeting
//! comes from the `GREETING` environment variable set in updraft.toml.

use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_owned());
    let path = request.uri().path();
    let name = match path.strip_prefix("/hello/") {
        Some(name) if !name.is_empty() => percent_decode(name),
        _ => query_param(request.uri().query().unwrap_or(""), "name").unwrap_or_else(|| "world".to_owned()),
    };
    println!("greeting {name}");
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(format!("{greeting}, {name}!\n")))?;
    Ok(response)
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key && !v.is_empty()).then(|| percent_decode(&v.replace('+', " ")))
    })
}

fn percent_decode(text: &str) -> String {
    let hex = |b: &u8| (*b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (bytes.get(i + 1).and_then(hex), bytes.get(i + 2).and_then(hex))
        {
            out.push(high * 16 + low);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
