//! One-off HTTP requests on fresh connections: readiness checks and first-response
//! timings, where the cost of connecting is part of what is measured.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// A response read whole.
#[derive(Debug)]
pub struct ProbeResponse {
    pub status: http::StatusCode,
    pub body: Bytes,
}

/// Sends `GET path` on a new connection and reads the whole response, giving up after
/// `timeout`.
pub async fn get_once(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<ProbeResponse> {
    tokio::time::timeout(timeout, get_once_unbounded(addr, path))
        .await
        .with_context(|| format!("GET http://{addr}{path} did not answer within {timeout:?}"))?
}

async fn get_once_unbounded(addr: SocketAddr, path: &str) -> anyhow::Result<ProbeResponse> {
    let stream = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let (mut sender, connection) =
        http1::handshake(TokioIo::new(stream)).await.with_context(|| format!("HTTP handshake with {addr}"))?;
    // The connection task ends when the sender is dropped below.
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .context("building the request")?;
    let response = sender.send_request(request).await.with_context(|| format!("GET http://{addr}{path}"))?;
    let status = response.status();
    let body = response.into_body().collect().await.context("reading the response body")?.to_bytes();
    Ok(ProbeResponse { status, body })
}

/// How often a poll retries. Short, because the poll interval bounds how precisely
/// a readiness time is known; the servers answer a refused connection in microseconds.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Polls `GET path` until it answers 2xx, and returns when the good answer arrived.
/// `alive` is asked between tries so a server that died is reported at once instead
/// of at the deadline.
pub async fn poll_until_ok(
    addr: SocketAddr,
    path: &str,
    deadline: Instant,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Instant> {
    let mut last_problem = String::from("no attempt finished");
    loop {
        let now = Instant::now();
        if now >= deadline {
            bail!("GET http://{addr}{path} did not answer 2xx in time; last: {last_problem}");
        }
        match get_once(addr, path, deadline - now).await {
            Ok(response) if response.status.is_success() => return Ok(Instant::now()),
            Ok(response) => last_problem = format!("status {}", response.status),
            Err(error) => last_problem = format!("{error:#}"),
        }
        alive()?;
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
