//! The HTTP process contract (`runtime = "http"`): a web server started by a command in
//! the same sandbox as a Lambda handler, listening on `$PORT` on the loopback of its
//! own network namespace. The instance is ready once its readiness path answers (as
//! AWS's Lambda Web Adapter checks); each request is sent to it as it came, each event
//! as a CloudEvents `POST` (`updraft_runtime::cloudevents`). Its answer's head returns
//! as soon as the server sends it and the body streams on chunk by chunk (`Relay`),
//! still under the invocation's deadline and response limit. The host reaches the
//! server through sockets its jailer opens in the namespace (`host::Connector`).

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{HeaderName, Request, Response, header};
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use updraft_model::ServerSpec;
use updraft_runtime::{
    Body, BodyCut, BodySender, BoxFuture, Call, FunctionResponse, GuestOutput, HttpRequest, Input, Instance,
    InvokeError, Invoked, ReaderGone,
};

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

/// A running server process, shared by the instances that send it requests (one, or
/// up to `concurrency_per_instance`). A supervising task owns the process: it reads
/// its output, notices its exit and stops it once its last instance is gone.
pub(crate) struct Server {
    connector: Connector,
    control: mpsc::UnboundedSender<Control>,
    /// The exit status, once the process has ended.
    exited: watch::Receiver<Option<String>>,
    function: Arc<str>,
    memory_limit: u64,
    max_response: usize,
}

enum Control {
    /// What the process wrote since the last collection, and its memory.
    Collect(oneshot::Sender<Collected>),
    Stop,
}

#[derive(Default)]
struct Collected {
    output: GuestOutput,
    max_memory_used: u64,
    oom: bool,
}

impl Server {
    /// Starts supervising `process`, whose server `connector` reaches.
    pub(crate) fn supervise(mut process: ProcessInstance, connector: Connector, max_response: usize) -> Arc<Server> {
        let (control, mut commands) = mpsc::unbounded_channel();
        let (exit, exited) = watch::channel(None);
        let server = Arc::new(Server {
            connector,
            control,
            exited,
            function: process.function.clone(),
            memory_limit: process.memory_limit,
            max_response,
        });
        tokio::spawn(async move {
            let Some(mut child) = process.child.take() else { return };
            let mut running = true;
            loop {
                tokio::select! {
                    status = child.wait(), if running => {
                        running = false;
                        exit.send_replace(Some(describe(status)));
                    }
                    command = commands.recv() => match command {
                        Some(Control::Collect(reply)) => {
                            process.pipes.drain();
                            let cgroup = process.cgroup.as_ref();
                            let collected = Collected {
                                output: process.pipes.take(),
                                max_memory_used: cgroup.and_then(|cgroup| cgroup.peak_memory()).unwrap_or(0),
                                oom: cgroup.is_some_and(|cgroup| cgroup.oom_kills() > 0),
                            };
                            // The next collection's peak starts from here.
                            if let Some(cgroup) = cgroup {
                                cgroup.reset_peak();
                            }
                            let _ = reply.send(collected);
                        }
                        Some(Control::Stop) | None => break,
                    },
                    () = process.pipes.pump() => unreachable!("pump never completes"),
                }
            }
            // Stopped while running: no instance may take it from here on.
            if exit.borrow().is_none() {
                exit.send_replace(Some("the server was stopped".to_owned()));
            }
            process.child = Some(child);
            process.kill();
        });
        server
    }

    fn has_exited(&self) -> bool {
        self.exited.borrow().is_some()
    }

    async fn collect(&self) -> Collected {
        let (reply, collected) = oneshot::channel();
        if self.control.send(Control::Collect(reply)).is_err() {
            return Collected::default();
        }
        collected.await.unwrap_or_default()
    }

    fn stop(&self) {
        let _ = self.control.send(Control::Stop);
    }
}

/// The servers of one version with room for more requests, when several may share
/// one (`concurrency_per_instance` above 1).
pub(crate) struct Servers {
    per_instance: u32,
    /// Each live server and how many instances share it. Only touched under this lock,
    /// so a server is never handed out as its last instance stops it.
    live: Mutex<Vec<(Arc<Server>, u32)>>,
    /// Held while a server starts, so that a burst shares it instead of starting one
    /// each.
    starting: tokio::sync::Mutex<()>,
}

impl Servers {
    pub(crate) fn new(per_instance: u32) -> Arc<Servers> {
        Arc::new(Servers { per_instance, live: Mutex::default(), starting: tokio::sync::Mutex::new(()) })
    }

    /// Another instance of a running server with room, if there is one.
    fn share(self: &Arc<Self>) -> Option<ServerInstance> {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let (server, count) =
            live.iter_mut().find(|(server, count)| *count < self.per_instance && !server.has_exited())?;
        *count += 1;
        Some(ServerInstance { server: server.clone(), servers: self.clone(), kept: Kept::default() })
    }

    /// An instance of a running server with room, or of one `start` starts.
    pub(crate) async fn instance<F>(self: &Arc<Self>, start: F) -> Result<ServerInstance, InvokeError>
    where
        F: Future<Output = Result<Arc<Server>, InvokeError>>,
    {
        let shared = self.per_instance > 1;
        if shared && let Some(instance) = self.share() {
            return Ok(instance);
        }
        let _starting = if shared { Some(self.starting.lock().await) } else { None };
        // Another instance may have started one while this waited.
        if shared && let Some(instance) = self.share() {
            return Ok(instance);
        }
        let server = start.await?;
        self.live.lock().unwrap_or_else(PoisonError::into_inner).push((server.clone(), 1));
        Ok(ServerInstance { server, servers: self.clone(), kept: Kept::default() })
    }

    /// One instance of `server` is gone; the last one stops it.
    fn release(&self, server: &Arc<Server>) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(index) = live.iter().position(|(candidate, _)| Arc::ptr_eq(candidate, server)) else { return };
        live[index].1 -= 1;
        if live[index].1 == 0 {
            live.swap_remove(index);
            server.stop();
        }
    }
}

/// One instance of a server: the requests it sends go over a connection of its own,
/// kept alive between them.
pub(crate) struct ServerInstance {
    server: Arc<Server>,
    servers: Arc<Servers>,
    kept: Kept,
}

/// An instance's connection to its server while no request is on it; a streamed
/// response's relay puts it back when the body is through.
type Kept = Arc<Mutex<Option<SendRequest<Body>>>>;

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
        .body(Body::default())
        .map_err(|error| error.to_string())?;
    let response = sender.send_request(request).await.map_err(|error| format!("GET {path}: {error}"))?;
    Ok(response.status().as_u16())
}

/// Whether `error` is the request's body being cut off on its way (its client went
/// away or sent too much), not the server's doing.
fn cut_request(error: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(error) = source {
        if error.is::<BodyCut>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// A new HTTP/1.1 connection to the server.
async fn connect(connector: &Connector) -> std::io::Result<SendRequest<Body>> {
    let socket = connector.socket().await?;
    let stream = socket.connect(SERVER).await?;
    stream.set_nodelay(true)?;
    handshake(stream).await
}

async fn handshake<S>(stream: S) -> std::io::Result<SendRequest<Body>>
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

/// How the wait for a response's head ended.
enum Head {
    Answered(Result<(SendRequest<Body>, Response<Incoming>), InvokeError>),
    Exited(String),
    TimedOut,
}

impl Instance<Input, FunctionResponse> for ServerInstance {
    fn invoke(&mut self, input: Input, call: Call) -> BoxFuture<'_, Invoked<FunctionResponse>> {
        Box::pin(async move {
            let server = self.server.clone();
            let deadline = tokio::time::Instant::now() + call.timeout;
            let request = updraft_runtime::cloudevents::request(input, &server.function, &call);
            let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner).take();
            let mut exited = server.exited.clone();
            let head = tokio::select! {
                answer = send(&server.connector, kept, request) => Head::Answered(answer),
                status = exited.wait_for(Option::is_some) => Head::Exited(exit_status(status.ok().as_deref())),
                () = tokio::time::sleep_until(deadline) => Head::TimedOut,
            };
            let (sender, response) = match head {
                Head::Answered(Ok(answered)) => answered,
                Head::Answered(Err(error)) => return server.ended(Err(error)).await,
                Head::Exited(status) => return server.ended(Err(InvokeError::Exited { status })).await,
                Head::TimedOut => return server.timed_out(call.timeout).await,
            };
            // The head goes back now; the body streams on, under the same deadline.
            let (mut parts, incoming) = response.into_parts();
            for name in &HOP_BY_HOP {
                parts.headers.remove(name);
            }
            // The gateway frames the body anew.
            parts.headers.remove(header::CONTENT_LENGTH);
            let (body, streamed) = Body::channel();
            let relay =
                Relay { server, kept: self.kept.clone(), sender, incoming, body, deadline, timeout: call.timeout };
            Invoked::streaming(Response::from_parts(parts, streamed), relay.run())
        })
    }
}

/// The status a server's exit watch saw.
fn exit_status(status: Option<&Option<String>>) -> String {
    status.and_then(Clone::clone).unwrap_or_else(|| "the server was stopped".to_owned())
}

impl Server {
    /// An invocation of this server that ended with `result`, with its output. An
    /// error may have left the server broken: another takes its place.
    async fn ended<O>(&self, result: Result<O, InvokeError>) -> Invoked<O> {
        let Collected { output, max_memory_used, oom } = self.collect().await;
        let result = match result {
            Err(InvokeError::Exited { .. }) if oom => Err(InvokeError::OutOfMemory { limit: self.memory_limit }),
            result => result,
        };
        let reusable = result.is_ok();
        Invoked::ended(result, output, max_memory_used, reusable)
    }

    /// An invocation that ran out of time: the request is cut (its connection dropped
    /// with it) and the server replaced, since it may go on working on a request it
    /// lost. Requests other instances sent it fail with it.
    async fn timed_out<O>(&self, timeout: Duration) -> Invoked<O> {
        self.stop();
        self.ended(Err(InvokeError::Timeout { timeout })).await
    }
}

/// One response body on its way from the server to the caller.
struct Relay {
    server: Arc<Server>,
    /// Where the connection goes back once the body is through.
    kept: Kept,
    sender: SendRequest<Body>,
    incoming: Incoming,
    body: BodySender,
    deadline: tokio::time::Instant,
    timeout: Duration,
}

/// How a relay ended, unless the server exited or the deadline passed.
enum End {
    Complete,
    Broke(String),
    TooLarge,
    /// The caller stopped reading (it went away).
    ReaderGone,
}

impl Relay {
    /// Passes the body on chunk by chunk, at the pace the caller reads, until it ends,
    /// the server exits, the deadline passes or it grows past the response limit; all
    /// but the first cut the caller's body.
    async fn run(mut self) -> Invoked<()> {
        let limit = self.server.max_response;
        let mut exited = self.server.exited.clone();
        let mut relayed = 0usize;
        let end = loop {
            // One chunk on: `None` while the body goes on.
            let next = async {
                let Some(frame) = self.incoming.frame().await else { return Some(End::Complete) };
                let data = match frame.map(Frame::into_data) {
                    Ok(Ok(data)) => data,
                    // Trailers end no body here; nothing to pass on.
                    Ok(Err(_trailers)) => return None,
                    Err(error) => return Some(End::Broke(error.to_string())),
                };
                relayed += data.len();
                if relayed > limit {
                    return Some(End::TooLarge);
                }
                self.body.send(data).await.err().map(|ReaderGone| End::ReaderGone)
            };
            let next = tokio::select! {
                next = next => next,
                status = async { exit_status(exited.wait_for(Option::is_some).await.ok().as_deref()) } => {
                    return self.server.ended(Err(InvokeError::Exited { status })).await;
                }
                () = tokio::time::sleep_until(self.deadline) => return self.server.timed_out(self.timeout).await,
            };
            if let Some(end) = next {
                break end;
            }
        };
        let result = match end {
            End::Complete => {
                if !self.sender.is_closed() {
                    *self.kept.lock().unwrap_or_else(PoisonError::into_inner) = Some(self.sender);
                }
                // The caller sees the end once the instance is free again.
                let body = self.body;
                let mut ended = self.server.ended(Ok(())).await;
                ended.finish_when_settled(body);
                return ended;
            }
            // Not the function's failure: its connection is dropped, so the server sees
            // the request end, and the server serves on.
            End::ReaderGone => Ok(()),
            End::TooLarge => Err(InvokeError::ResponseTooLarge { limit }),
            End::Broke(error) => {
                Err(InvokeError::BadResponse { message: format!("the server's answer broke off: {error}") })
            }
        };
        self.server.ended(result).await
    }
}

impl Drop for ServerInstance {
    fn drop(&mut self) {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.servers.release(&self.server);
    }
}

/// Sends `request` on the kept connection (or a new one) and waits for the head of the
/// answer; returns the connection with it.
async fn send(
    connector: &Connector,
    kept: Option<SendRequest<Body>>,
    request: HttpRequest,
) -> Result<(SendRequest<Body>, Response<Incoming>), InvokeError> {
    let bad = |message: String| InvokeError::BadResponse { message };
    let kept = match kept {
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
    // The body streams on to the server as it arrives from the client.
    let response = sender.send_request(Request::from_parts(parts, body)).await.map_err(|error| {
        if cut_request(&error) { InvokeError::RequestCut } else { bad(format!("the server did not answer: {error}")) }
    })?;
    Ok((sender, response))
}
