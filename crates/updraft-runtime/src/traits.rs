//! The runtime traits: what every kind of function code (a wasm component, a process)
//! provides to the scheduler. The scheduler calls only these methods and never asks
//! which kind of runtime it holds.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use updraft_model::{ArtifactDigest, FunctionConfig, FunctionName, InvocationStatus};

/// A boxed future, so the traits stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a version could not be prepared; the message says what to fix.
pub type PrepareError = Box<dyn std::error::Error + Send + Sync>;

/// The code and configuration of one function version, as handed to `Runtime::prepare`.
#[derive(Debug, Clone)]
pub struct VersionSource {
    pub function: FunctionName,
    pub artifact: ArtifactDigest,
    /// Where the artifact's bytes are on this node.
    pub artifact_path: PathBuf,
    pub config: FunctionConfig,
}

/// How each instance of a version runs.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    /// The most memory an instance may hold, in bytes.
    pub memory_limit: u64,
    pub env: Arc<[(String, String)]>,
    /// Hosts the function may call; empty means no network.
    pub allowed_outbound_hosts: Arc<[String]>,
    /// The largest response an invocation may return, in bytes.
    pub max_response_bytes: usize,
    /// Whether one instance keeps its in-memory state between invocations. Runtimes
    /// whose instances always do (processes) ignore it.
    pub reuse_state: bool,
}

/// A kind of function code: turns an artifact into something that can start instances.
pub trait Runtime<I, O>: Send + Sync {
    /// Checks and compiles a version so that starting an instance later is quick. Slow
    /// (it may compile); called on deploy and on start, never on the invoke path.
    fn prepare(&self, source: VersionSource) -> BoxFuture<'_, Result<Arc<dyn Prepared<I, O>>, PrepareError>>;
}

/// A prepared version: starts instances.
pub trait Prepared<I, O>: Send + Sync {
    /// Starts one instance: the cold-start work, timed as init duration.
    fn create(&self, config: &Arc<InstanceConfig>) -> BoxFuture<'_, Result<Box<dyn Instance<I, O>>, InvokeError>>;
}

/// One isolated execution environment, serving one invocation at a time.
pub trait Instance<I, O>: Send {
    /// Runs one invocation; the runtime stops it at `call.timeout` even if the code
    /// never yields (the scheduler also gives up on it shortly after, whatever the
    /// runtime does).
    fn invoke(&mut self, input: I, call: Call) -> BoxFuture<'_, Invoked<O>>;

    /// Releases the instance. The default drops it.
    fn dispose(self: Box<Self>) {}
}

/// Who an invocation is and how long it may run: what a runtime tells the function
/// besides its input (Lambda's Runtime API hands all of it to the handler).
#[derive(Debug, Clone)]
pub struct Call {
    /// The invocation's id, the one in its record and log lines.
    pub request_id: Arc<str>,
    /// The W3C trace id (32 hex digits) the invocation belongs to.
    pub trace_id: Arc<str>,
    pub timeout: Duration,
    /// When the timeout runs out, in milliseconds since the Unix epoch.
    pub deadline_ms: i64,
    /// The chain's lineage with this invocation counted: what the function hands on
    /// with its trace context (recursive loop detection).
    pub lineage: updraft_model::Lineage,
}

impl Call {
    /// The invocation's span id within its trace (16 hex digits): the last hex digits
    /// of the request id (a UUIDv7's random part), so every hop names it alike.
    pub fn span_id(&self) -> String {
        updraft_model::span_id_of(&self.request_id)
    }

    /// The context the function runs under and hands on: its own span in its trace.
    pub fn trace(&self) -> updraft_model::TraceParent {
        updraft_model::TraceParent {
            trace_id: self.trace_id.to_string(),
            span_id: self.span_id(),
            lineage: self.lineage.clone(),
        }
    }
}

/// How one invocation on an instance ended, or how its result began when its body
/// still streams (`rest`).
pub struct Invoked<O> {
    pub result: Result<O, InvokeError>,
    /// What the guest wrote to stdout and stderr.
    pub output: GuestOutput,
    /// The most memory the instance held during the invocation, in bytes.
    pub max_memory_used: u64,
    /// Whether the instance may serve another invocation. A runtime answers `false`
    /// after anything that may have left the instance broken (a timeout, a trap).
    pub reusable: bool,
    /// For a result whose body still streams from the instance: the rest of the
    /// invocation, which ends when the body does. The instance stays busy and the
    /// invocation's deadline holds until then; what it reports (an error cutting the
    /// body, more output, the memory peak, whether the instance may be reused) is the
    /// invocation's last word.
    pub rest: Option<BoxFuture<'static, Invoked<()>>>,
    /// Run once the instance is handed back and the invocation's permit released. A
    /// streamed body's end waits for it, so that a client that has seen the whole
    /// answer finds the instance free (and its concurrency room) for its next request.
    pub settled: Option<Box<dyn FnOnce() + Send>>,
}

impl<O> Invoked<O> {
    /// An invocation that ended with `result`, its body (if any) whole.
    pub fn ended(result: Result<O, InvokeError>, output: GuestOutput, max_memory_used: u64, reusable: bool) -> Self {
        Self { result, output, max_memory_used, reusable, rest: None, settled: None }
    }

    /// An invocation whose answer's head is `head` and whose body still streams: `rest`
    /// is the rest of it, and reports the output, memory and reuse.
    pub fn streaming(head: O, rest: impl Future<Output = Invoked<()>> + Send + 'static) -> Self {
        Self {
            result: Ok(head),
            output: GuestOutput::default(),
            max_memory_used: 0,
            reusable: true,
            rest: Some(Box::pin(rest)),
            settled: None,
        }
    }

    /// Ends a streamed body cleanly once the instance is handed back (`settled`), so a
    /// client that has read the whole answer finds the instance and its permit free.
    pub fn finish_when_settled(&mut self, body: crate::BodySender) {
        self.settled = Some(Box::new(move || {
            tokio::spawn(async move {
                // A reader gone at the very end changes nothing.
                let _ = body.finish().await;
            });
        }));
    }
}

/// Which stream a piece of guest output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl<O: fmt::Debug> fmt::Debug for Invoked<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invoked")
            .field("result", &self.result)
            .field("output", &self.output)
            .field("max_memory_used", &self.max_memory_used)
            .field("reusable", &self.reusable)
            .field("streaming", &self.rest.is_some())
            .finish()
    }
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// What the guest wrote to stdout and stderr, in order.
#[derive(Debug, Clone, Default)]
pub struct GuestOutput {
    pub chunks: Vec<(LogStream, Vec<u8>)>,
    /// The guest wrote more than the per-invocation limit; the rest was dropped.
    pub truncated: bool,
}

/// Why an invocation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("the function did not finish within its timeout of {}", DisplayDuration(*timeout))]
    Timeout { timeout: Duration },
    #[error("the function ran out of memory (its limit is {limit} bytes)")]
    OutOfMemory { limit: u64 },
    #[error("the function trapped: {message}")]
    Trap { message: String },
    #[error("the function finished without sending a response")]
    NoResponse,
    #[error("the function's response body is larger than {limit} bytes")]
    ResponseTooLarge { limit: usize },
    #[error("the function failed to produce its response: {message}")]
    BadResponse { message: String },
    #[error("the function's process exited during the invocation ({status})")]
    Exited { status: String },
    #[error("the function's instance could not start: {message}")]
    Init { message: String },
    /// The request's body stopped before it was complete (its client went away or
    /// sent more than the limit) while the function was reading it.
    #[error("the request's body was cut off before it arrived whole")]
    RequestCut,
    #[error("the runtime failed: {message}")]
    Internal { message: String },
    /// Stopped before it ran: its chain of invocations (through topics, queues,
    /// asynchronous calls, routes) had already run the function `count` times.
    #[error(
        "recursive loop detected: this chain of invocations already ran the function {count} times; it was stopped \
         (set recursive_loop = \"allow\" on the function if the loop is intended)"
    )]
    RecursiveLoop { count: u16 },
    /// The function's own code reported an error through its runtime (a Lambda
    /// handler raising): not a fault of the platform, and the document goes back to
    /// the caller as it is.
    #[error("the function failed: {message}")]
    Function {
        error_type: String,
        /// What the report says, in a line (`ErrorType: message` for Lambda runtimes).
        message: String,
        /// The error document the runtime sent, untouched.
        document: Vec<u8>,
    },
}

impl InvokeError {
    /// The Lambda-style error type for records and `REPORT` lines.
    pub fn error_type(&self) -> &str {
        match self {
            InvokeError::Timeout { .. } => "Sandbox.Timedout",
            InvokeError::OutOfMemory { .. } => "Runtime.OutOfMemory",
            InvokeError::Trap { .. } => "Runtime.Trap",
            InvokeError::NoResponse => "Runtime.NoResponse",
            InvokeError::ResponseTooLarge { .. } => "Function.ResponseSizeTooLarge",
            InvokeError::BadResponse { .. } => "Runtime.InvalidResponse",
            InvokeError::Exited { .. } => "Runtime.ExitError",
            InvokeError::Init { .. } => "Runtime.InitError",
            InvokeError::RequestCut => "Request.BodyCut",
            InvokeError::Internal { .. } => "Runtime.Unknown",
            InvokeError::RecursiveLoop { .. } => "RecursiveInvocationException",
            InvokeError::Function { error_type, .. } => error_type,
        }
    }

    pub fn status(&self) -> InvocationStatus {
        match self {
            InvokeError::Timeout { .. } => InvocationStatus::Timeout,
            _ => InvocationStatus::Error,
        }
    }
}

struct DisplayDuration(Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) { write!(f, "{}s", ms / 1000) } else { write!(f, "{ms}ms") }
    }
}
