//! A wasi:http function in Rust: each request runs in a fresh WebAssembly instance.

use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let name = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("name="))
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or("world");
    println!("greeting {name}");
    let body = format!(r#"{{"message": "Hello, {name}!", "language": "rust"}}"#);
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(body))?;
    Ok(response)
}
