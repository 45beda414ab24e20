//! The HTTP process contract (`runtime = "http"`): a web server started by a command in
//! the same sandbox as a Lambda handler, listening on `$PORT` on the loopback of its
//! own network namespace. The instance is ready once its readiness path answers (as
//! AWS's Lambda Web Adapter checks); each request is sent to it as it came, each event
//! as a CloudEvents `POST` (`updraft_runtime::cloudevents`). The host reaches the
//! server through sockets its jailer opens in the namespace (`host::Connector`).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, Request, Response, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use updraft_model::ServerSpec;
use updraft_runtime::{BoxFuture, Call, HttpRequest, HttpResponse, Input, Instance, InvokeError, Invoked};

use crate::host::{Connector, Pipes};
use crate::instance::{ProcessInstance, describe};
use crate::launch::Sandbox;
use crate::runtime::INIT_LIMIT;

/// Where the server listens, inside its namespace.
const SERVER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), ServerSpec::PORT);

/// How often readiness is asked while the server starts: often enough that a cold
/// start is not padded much, rarely enough that the asking costs nothing.
const READINESS_INTERVAL: Duration = Duration::from_millis(5);

/// Headers that belong to one connection, never forwarded (RFC 9110, 7.6.1).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// One running server: the sandboxed process and a kept-alive connection to it.
pub(crate) struct ServerInstance {
    pub(crate) process: ProcessInstance,
    connector: Connector,
    /// The connection of the last request, kept for the next one when the server
    /// keeps it alive.
    idle: Option<SendRequest<Full<Bytes>>>,
    /// The largest response body taken from it.
    max_response: usize,
}

/// Waits until the server in `sandbox` answers `readiness_path` with a status below
/// 500, or fails with why it did not: it exited, or did not within the init limit.
pub(crate) async fn ready(mut sandbox: Sandbox, readiness_path: &str) -> Result<(Sandbox, Connector), InvokeError> {
    let control = sandbox
        .control
        .take()
        .ok_or_else(|| InvokeError::Internal { message: "a server's sandbox has no line to its jailer".into() })?;
    let connector = Connector::new(control);
    let deadline = Instant::now() + INIT_LIMIT;
    loop {
        let Sandbox { child, pipes, .. } = &mut sandbox;
        let answer = tokio::select! {
            answer = readiness(&connector, readiness_path) => answer,
            status = child.wait() => {
                let status = describe(status);
                return Err(init_error(pipes, format!("the server exited before it was ready ({status})")));
            }
            () = pipes.pump() => unreachable!("pump never completes"),
        };
        let last = match answer {
            Ok(status) if status < 500 => {
                // What the server printed while starting goes with its first invocation.
                sandbox.pipes.drain();
                return Ok((sandbox, connector));
            }
            Ok(status) => format!("GET {readiness_path} answered {status}"),
            Err(error) => error,
        };
        if Instant::now() >= deadline {
            let message = format!(
                "the server was not ready within {}s ({last}); it must listen on 127.0.0.1:$PORT and answer \
                 GET {readiness_path} (readiness_path) with a status below 500",
                INIT_LIMIT.as_secs()
            );
            return Err(init_error(&mut sandbox.pipes, message));
        }
        let Sandbox { child, pipes, .. } = &mut sandbox;
        tokio::select! {
            () = tokio::time::sleep(READINESS_INTERVAL) => {}
            status = child.wait() => {
                let status = describe(status);
                return Err(init_error(pipes, format!("the server exited before it was ready ({status})")));
            }
            () = pipes.pump() => unreachable!("pump never completes"),
        }
    }
}

/// The init error, with what the server wrote (usually why it stopped).
fn init_error(pipes: &mut Pipes, message: String) -> InvokeError {
    pipes.drain();
    let output = pipes.take_text();
    let output = output.trim();
    let message = if output.is_empty() { message } else { format!("{message}: {output}") };
    InvokeError::Init { message }
}

/// One readiness check: the status of `GET path` on a new connection.
async fn readiness(connector: &Connector, path: &str) -> Result<u16, String> {
    let mut sender = connect(connector).await.map_err(|error| format!("connecting to $PORT: {error}"))?;
    let request = Request::get(path)
        .header(header::HOST, "localhost")
        .header(header::USER_AGENT, "updraft-readiness")
        .body(Full::new(Bytes::new()))
        .map_err(|error| error.to_string())?;
    let response = sender.send_request(request).await.map_err(|error| format!("GET {path}: {error}"))?;
    Ok(response.status().as_u16())
}

/// A new HTTP/1.1 connection to the server.
async fn connect(connector: &Connector) -> std::io::Result<SendRequest<Full<Bytes>>> {
    let socket = connector.socket().await?;
    let stream = socket.connect(SERVER).await?;
    stream.set_nodelay(true)?;
    handshake(stream).await
}

async fn handshake<S>(stream: S) -> std::io::Result<SendRequest<Full<Bytes>>>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        // Ends when the server or the sender closes the connection.
        let _ = connection.await;
    });
    Ok(sender)
}

impl ServerInstance {
    pub(crate) fn new(process: ProcessInstance, connector: Connector, max_response: usize) -> ServerInstance {
        ServerInstance { process, connector, idle: None, max_response }
    }
}

enum Outcome {
    Answered(Result<HttpResponse, InvokeError>),
    Exited(String),
    TimedOut,
}

impl Instance<Input, HttpResponse> for ServerInstance {
    fn invoke(&mut self, input: Input, call: Call) -> BoxFuture<'_, Invoked<HttpResponse>> {
        Box::pin(async move {
            let request = updraft_runtime::cloudevents::request(input, &self.process.function, &call);
            let limit = self.max_response;
            if let Some(cgroup) = &self.process.cgroup {
                cgroup.reset_peak();
            }
            let ServerInstance { process, connector, idle, .. } = self;
            let outcome = match process.child.as_mut() {
                None => Outcome::Exited("the instance was stopped".into()),
                Some(child) => tokio::select! {
                    answer = exchange(connector, idle, request, limit) => Outcome::Answered(answer),
                    status = child.wait() => Outcome::Exited(describe(status)),
                    () = tokio::time::sleep(call.timeout) => Outcome::TimedOut,
                    () = process.pipes.pump() => unreachable!("pump never completes"),
                },
            };
            process.pipes.drain();
            let output = process.pipes.take();
            let max_memory_used = process.cgroup.as_ref().and_then(|cgroup| cgroup.peak_memory()).unwrap_or(0);
            let (result, reusable) = match outcome {
                Outcome::Answered(Ok(response)) => (Ok(response), true),
                // A server that broke the exchange may be broken: another takes its place.
                Outcome::Answered(Err(error)) => (Err(error), false),
                Outcome::Exited(status) => {
                    let oom = process.cgroup.as_ref().is_some_and(|cgroup| cgroup.oom_kills() > 0);
                    let error = if oom {
                        InvokeError::OutOfMemory { limit: process.memory_limit }
                    } else {
                        InvokeError::Exited { status }
                    };
                    (Err(error), false)
                }
                Outcome::TimedOut => {
                    // The request is cut (its connection dropped with the future) and the
                    // instance replaced: a server may go on working on a request it lost.
                    *idle = None;
                    process.kill();
                    (Err(InvokeError::Timeout { timeout: call.timeout }), false)
                }
            };
            if !reusable {
                *idle = None;
            }
            Invoked { result, output, max_memory_used, reusable }
        })
    }

    fn dispose(mut self: Box<Self>) {
        self.idle = None;
        self.process.kill();
    }
}

/// Sends `request` on the kept connection (or a new one) and reads the answer whole,
/// up to `limit` bytes of body.
async fn exchange(
    connector: &Connector,
    idle: &mut Option<SendRequest<Full<Bytes>>>,
    request: HttpRequest,
    limit: usize,
) -> Result<HttpResponse, InvokeError> {
    let bad = |message: String| InvokeError::BadResponse { message };
    let kept = match idle.take() {
        Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
        None => None,
    };
    let mut sender = match kept {
        Some(sender) => sender,
        None => {
            connect(connector).await.map_err(|error| bad(format!("cannot connect to the server on $PORT: {error}")))?
        }
    };
    let (mut parts, body) = request.into_parts();
    for name in &HOP_BY_HOP {
        parts.headers.remove(name);
    }
    // The server sees the path and query only, as behind any reverse proxy.
    parts.uri = parts.uri.path_and_query().map_or_else(
        || http::Uri::from_static("/"),
        |path| http::Uri::try_from(path.as_str()).unwrap_or_else(|_| http::Uri::from_static("/")),
    );
    if !parts.headers.contains_key(header::HOST) {
        parts.headers.insert(header::HOST, http::HeaderValue::from_static("localhost"));
    }
    parts.version = http::Version::HTTP_11;
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|error| bad(format!("the server did not answer: {error}")))?;
    let (mut parts, body) = response.into_parts();
    let body = match Limited::new(body, limit).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(InvokeError::ResponseTooLarge { limit });
        }
        Err(error) => return Err(bad(format!("the server's answer broke off: {error}"))),
    };
    for name in &HOP_BY_HOP {
        parts.headers.remove(name);
    }
    // The body is whole now; the gateway frames it anew.
    parts.headers.remove(header::CONTENT_LENGTH);
    if !sender.is_closed() {
        *idle = Some(sender);
    }
    Ok(Response::from_parts(parts, body))
}
