//! The benchmark's baseline: the smallest hyper 1.x HTTP/1.1 server that answers
//! "Hello, world!\n" to every request, on tokio's multi-thread runtime.
//!
//! It is what `examples/hello` would cost with no platform at all, so the benchmark
//! can print Updraft's throughput as a fraction of it.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// A hyper hello-world server: the baseline of `updraft-bench`.
#[derive(Debug, Parser)]
#[command(name = "hyper-hello")]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

const BODY: &[u8] = b"Hello, world!\n";

async fn hello(_request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // The same content type as examples/hello, so both answers are the same size.
    let response = Response::builder()
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(BODY)))
        .expect("a static response is valid");
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let listener =
        tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("cannot listen on {}", cli.listen))?;
    eprintln!("hyper-hello listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Running out of file descriptors is transient; keep serving the others.
                eprintln!("accept failed: {error}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            let _ = http1::Builder::new().serve_connection(io, service_fn(hello)).await;
        });
    }
}
