//! The load generator: N keep-alive HTTP/1.1 connections, each sending the next request
//! as soon as the last answer arrived (closed loop, like `wrk`), on one thread.
//!
//! It runs on a current-thread tokio runtime in a thread of its own, so on a small
//! machine it takes one core and leaves the rest to the server under test. Latency is
//! measured from just before a request is written to the last byte of its answer.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::latency::LatencyHistogram;

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub addr: SocketAddr,
    pub path: String,
    pub connections: usize,
    /// Requests before this are sent but not counted.
    pub warmup: Duration,
    pub duration: Duration,
}

/// What one load run counted in its measurement window.
#[derive(Debug)]
pub struct LoadResult {
    /// Requests answered 2xx, started and finished inside the window.
    pub ok: u64,
    pub non_2xx: u64,
    /// Failed connects, broken connections and requests slower than `REQUEST_TIMEOUT`.
    pub errors: u64,
    pub window: Duration,
    /// Latency of the 2xx answers, in nanoseconds.
    pub latency: LatencyHistogram,
}

impl LoadResult {
    pub fn requests_per_second(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }
}

/// A request that takes this long counts as an error and its connection is replaced.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause after a failed connect, so a dead server is not hammered in a busy loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// Runs the load on its own thread and returns when the window has ended.
pub fn run(config: LoadConfig) -> anyhow::Result<LoadResult> {
    std::thread::Builder::new()
        .name("updraft-bench-load".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building the load generator's runtime")?;
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, run_local(config))
        })
        .context("starting the load generator thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the load generator thread panicked"))?
}

/// Counters shared by every connection task; they all run on this one thread.
struct Shared {
    ok: u64,
    non_2xx: u64,
    errors: u64,
    latency: LatencyHistogram,
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn contains(&self, started: Instant, finished: Instant) -> bool {
        started >= self.start && finished <= self.end
    }
}

async fn run_local(config: LoadConfig) -> anyhow::Result<LoadResult> {
    let start = Instant::now() + config.warmup;
    let window = Window { start, end: start + config.duration };
    let shared = Rc::new(RefCell::new(Shared { ok: 0, non_2xx: 0, errors: 0, latency: LatencyHistogram::new() }));
    let mut tasks = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        tasks.push(tokio::task::spawn_local(connection_loop(config.addr, config.path.clone(), window, shared.clone())));
    }
    for task in tasks {
        task.await.context("a load connection task panicked")?;
    }
    let shared =
        Rc::try_unwrap(shared).map_err(|_| anyhow::anyhow!("a load connection task outlived the run"))?.into_inner();
    Ok(LoadResult {
        ok: shared.ok,
        non_2xx: shared.non_2xx,
        errors: shared.errors,
        window: config.duration,
        latency: shared.latency,
    })
}

type Sender = http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::task::spawn_local(connection);
    Ok(sender)
}

/// One keep-alive connection, sending requests back to back until the window ends.
async fn connection_loop(addr: SocketAddr, path: String, window: Window, shared: Rc<RefCell<Shared>>) {
    let host = addr.to_string();
    let mut sender: Option<Sender> = None;
    let count_error = |at: Instant| {
        if at >= window.start && at <= window.end {
            shared.borrow_mut().errors += 1;
        }
    };
    while Instant::now() < window.end {
        let mut ready = match sender.take() {
            Some(sender) => sender,
            None => match tokio::time::timeout_at(window.end.into(), connect(addr)).await {
                Ok(Ok(sender)) => sender,
                Ok(Err(_)) => {
                    count_error(Instant::now());
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
                Err(_window_over) => break,
            },
        };
        let request = http::Request::get(path.as_str())
            .header(http::header::HOST, host.as_str())
            .body(Empty::<Bytes>::new())
            .expect("the request is valid");
        let started = Instant::now();
        // A request still unanswered when the window ends is simply not counted.
        let deadline = (started + REQUEST_TIMEOUT).min(window.end);
        let exchange = async {
            ready.ready().await?;
            let response = ready.send_request(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        };
        let outcome = tokio::time::timeout_at(deadline.into(), exchange).await;
        match outcome {
            Ok(Ok(status)) => {
                let finished = Instant::now();
                if window.contains(started, finished) {
                    let mut shared = shared.borrow_mut();
                    if status.is_success() {
                        shared.ok += 1;
                        shared.latency.record(finished - started);
                    } else {
                        shared.non_2xx += 1;
                    }
                }
                sender = Some(ready);
            }
            Ok(Err(_)) => count_error(Instant::now()),
            Err(_) if deadline < window.end => count_error(Instant::now()),
            Err(_window_over) => break,
        }
    }
}
