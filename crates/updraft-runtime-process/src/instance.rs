//! A running instance: one jailed runtime process with its own Runtime API server,
//! serving one invocation at a time, and what is left of it when it ends.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use updraft_runtime::{Body, BoxFuture, Call, FunctionResponse, GuestOutput, Input, Instance, InvokeError, Invoked};

use crate::api::{Event, Reply, RuntimeApi, StreamEnd};
use crate::cgroup::InstanceCgroup;
use crate::egress::Egress;
use crate::events::{Delivery, Receiver};
use crate::host::{self, Pipes};
use crate::runtime::STRAY_ROUNDS;

/// One running, jailed runtime.
pub(crate) struct ProcessInstance {
    pub(crate) api: RuntimeApi,
    pub(crate) child: Option<tokio::process::Child>,
    pub(crate) pipes: Pipes,
    /// Dropped with the instance, which stops its egress.
    pub(crate) _egress: Option<Egress>,
    pub(crate) cgroup: Option<InstanceCgroup>,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) function_arn: Arc<str>,
    pub(crate) function: Arc<str>,
    pub(crate) region: String,
    pub(crate) account_id: String,
    pub(crate) memory_limit: u64,
}

pub(crate) enum Outcome {
    Reply(Reply),
    Exited(String),
    TimedOut,
}

/// A Lambda instance as the scheduler holds it. The process is behind a lock that one
/// invocation holds from its start to its end: for an answer that streams, past the
/// point where its head went back, so the rest of the stream, the function's output
/// meanwhile and its end are still this invocation's.
pub(crate) struct LambdaInstance(Arc<tokio::sync::Mutex<ProcessInstance>>);

impl LambdaInstance {
    pub(crate) fn new(process: ProcessInstance) -> Self {
        Self(Arc::new(tokio::sync::Mutex::new(process)))
    }
}

impl Instance<Input, FunctionResponse> for LambdaInstance {
    fn invoke(&mut self, input: Input, call: Call) -> BoxFuture<'_, Invoked<FunctionResponse>> {
        let process = self.0.clone();
        Box::pin(async move { ProcessInstance::invoke(process.lock_owned().await, input, call).await })
    }

    fn dispose(self: Box<Self>) {
        if let Ok(mut process) = self.0.try_lock() {
            process.kill();
        }
    }
}

impl ProcessInstance {
    async fn invoke(
        mut this: tokio::sync::OwnedMutexGuard<ProcessInstance>,
        input: Input,
        call: Call,
    ) -> Invoked<FunctionResponse> {
        let started = tokio::time::Instant::now();
        // An HTTP request (a route's, or a webhook's replayed) goes as an API Gateway
        // event and its answer comes back as one; an event's payload goes as it is.
        let Ok(input) = input.read_whole().await else {
            return Invoked::ended(Err(InvokeError::RequestCut), GuestOutput::default(), 0, true);
        };
        let receiver = Receiver { function: &this.function, region: &this.region, account_id: &this.account_id };
        let (delivery, client_context) = crate::events::delivery(input, &receiver);
        let http = matches!(delivery, Delivery::Request(_));
        // A `payload_format = "1.0"` route: REST API events and answers.
        let rest = matches!(&delivery, Delivery::Request(request) if crate::apigw::is_rest(request));
        let payload = match delivery {
            Delivery::Request(request) => {
                let context = crate::apigw::EventContext {
                    account_id: &this.account_id,
                    request_id: &call.request_id,
                    now_ms: call.deadline_ms - i64::try_from(call.timeout.as_millis()).unwrap_or(0),
                };
                if rest {
                    crate::rest_api::request_event(&request, &context)
                } else {
                    crate::apigw::request_event(&request, &context)
                }
            }
            Delivery::Payload(payload) => payload,
        };
        if let Some(cgroup) = &this.cgroup {
            cgroup.reset_peak();
        }
        let event = Event {
            request_id: call.request_id.clone(),
            deadline_ms: call.deadline_ms,
            function_arn: this.function_arn.clone(),
            trace_header: call.trace().amzn_header(),
            client_context,
            payload,
        };
        let outcome = this.run(event, call.timeout).await;
        let result = match outcome {
            Outcome::Reply(Reply::Response { body, content_type }) => {
                if http {
                    let response = if rest { crate::rest_api::response(&body) } else { crate::apigw::response(&body) };
                    response.map_err(|error| InvokeError::BadResponse { message: error.to_string() })
                } else {
                    let mut response = Response::new(body);
                    let content_type = content_type.unwrap_or(HeaderValue::from_static("application/json"));
                    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
                    Ok(response)
                }
            }
            Outcome::Reply(Reply::Error { error_type, body }) => Err(function_error(error_type, &body)),
            Outcome::Reply(Reply::TooLarge { limit }) => Err(InvokeError::ResponseTooLarge { limit }),
            Outcome::Reply(Reply::Streaming { content_type, body, ended }) => {
                let stream = Streamed { content_type, body, ended, deadline: started + call.timeout };
                return ProcessInstance::streamed(this, stream, http, call.timeout).await;
            }
            Outcome::Exited(status) => Err(InvokeError::Exited { status }),
            Outcome::TimedOut => Err(InvokeError::Timeout { timeout: call.timeout }),
        };
        this.ended(result.map(|response| response.map(Body::whole))).await
    }

    /// An invocation whose runtime answers in streaming mode: the head goes back at once
    /// and the instance stays this invocation's (the guard moves into `rest`) until the
    /// stream ends. Behind an HTTP trigger, an answer that starts with a prelude
    /// (`HttpResponseStream.from`) has it read first, as the head; the rest streams on.
    async fn streamed(
        mut this: tokio::sync::OwnedMutexGuard<ProcessInstance>,
        stream: Streamed,
        http: bool,
        timeout: Duration,
    ) -> Invoked<FunctionResponse> {
        let Streamed { content_type, body, mut ended, deadline } = stream;
        if http && crate::apigw::is_http_integration(content_type.as_ref()) {
            return ProcessInstance::streamed_http(this, body, ended, deadline, timeout).await;
        }
        let mut response = Response::new(body);
        let content_type = content_type.unwrap_or(HeaderValue::from_static("application/octet-stream"));
        response.headers_mut().insert(header::CONTENT_TYPE, content_type);
        let rest = async move {
            let end = this.stream_end(&mut ended, deadline, timeout).await;
            this.ended(end).await
        };
        Invoked::streaming(response, rest)
    }

    /// A streamed answer with an HTTP prelude behind an HTTP trigger: the prelude is
    /// read (while the function's output is read and its end watched) and becomes the
    /// head; what follows it is forwarded as the body while the function still writes.
    /// A failure after the head cuts the body, so the client sees an error, not an end.
    async fn streamed_http(
        mut this: tokio::sync::OwnedMutexGuard<ProcessInstance>,
        mut body: Body,
        mut ended: tokio::sync::oneshot::Receiver<StreamEnd>,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Invoked<FunctionResponse> {
        // The stream's end, if it came before the prelude was read.
        let mut end = None;
        let prelude = tokio::select! {
            // A prelude that is there is the head, even if the stream failed after it.
            biased;
            prelude = read_prelude(&mut body) => prelude,
            finished = this.stream_end(&mut ended, deadline, timeout) => {
                // Ended cleanly: everything it wrote is waiting in the body.
                let prelude = match &finished {
                    Ok(()) => read_prelude(&mut body).await,
                    Err(_) => Err(InvokeError::BadResponse { message: "the stream ended before its prelude".into() }),
                };
                end = Some(finished);
                prelude
            },
        };
        let (head, first) = match prelude {
            Ok(prelude) => prelude,
            Err(error) => {
                let end = match end {
                    Some(end) => end,
                    None => {
                        // What follows a bad prelude is read and dropped, so the function can
                        // finish; its end (or its failure, or the deadline) is what counts.
                        let drain =
                            async { while let Some(Ok(_)) = http_body_util::BodyExt::frame(&mut body).await {} };
                        tokio::select! {
                            end = this.stream_end(&mut ended, deadline, timeout) => end,
                            () = drain => this.stream_end(&mut ended, deadline, timeout).await,
                        }
                    }
                };
                // The function's own failure says more than the missing prelude.
                return this.ended(end.and(Err(error))).await;
            }
        };
        let (sender, streamed) = Body::channel();
        let rest = async move {
            let forward = forward(first, &mut body, sender);
            tokio::pin!(forward);
            // The body's clean end waits for the function's, and a failure (the deadline
            // included) drops the forwarding at once, which cuts the client's body.
            let (end, complete) = match end {
                Some(end) => (end, None),
                None => tokio::select! {
                    end = this.stream_end(&mut ended, deadline, timeout) => (end, None),
                    complete = &mut forward => (this.stream_end(&mut ended, deadline, timeout).await, Some(complete)),
                },
            };
            let complete = match (&end, complete) {
                (Err(_), _) => None,
                (Ok(()), Some(complete)) => complete,
                // A slow client still reading when the function has ended: until the deadline.
                (Ok(()), None) => tokio::time::timeout_at(deadline, &mut forward).await.ok().flatten(),
            };
            let mut ended = this.ended(end).await;
            if let Some(sender) = complete.filter(|_| ended.result.is_ok()) {
                ended.finish_when_settled(sender);
            }
            ended
        };
        Invoked::streaming(head.map(|()| streamed), rest)
    }

    /// Waits for a streamed answer to end, reading the function's output meanwhile (a
    /// chatty function must not stall on a full pipe), until the invocation's deadline.
    async fn stream_end(
        &mut self,
        ended: &mut tokio::sync::oneshot::Receiver<StreamEnd>,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<(), InvokeError> {
        let Some(child) = self.child.as_mut() else {
            return Err(InvokeError::Exited { status: "the instance was stopped".into() });
        };
        let end = tokio::select! {
            end = ended => end,
            status = child.wait() => return Err(InvokeError::Exited { status: describe(status) }),
            () = tokio::time::sleep_until(deadline) => return Err(InvokeError::Timeout { timeout }),
            () = self.pipes.pump() => unreachable!("pump never completes"),
        };
        match end {
            Ok(StreamEnd::Complete) => Ok(()),
            Ok(StreamEnd::Failed { error_type, body }) => Err(function_error(error_type, &body)),
            Ok(StreamEnd::Cut { message }) => Err(InvokeError::BadResponse { message }),
            Err(_) => Err(InvokeError::Exited { status: "the Runtime API stopped".into() }),
        }
    }

    /// An invocation that ended with `result`: its output and memory peak collected,
    /// and the instance readied for the next (strays ended) or, after a failure that
    /// may have left it broken, not reused.
    async fn ended<T>(&mut self, result: Result<T, InvokeError>) -> Invoked<T> {
        self.pipes.drain();
        let output = self.pipes.take();
        let max_memory_used = self.cgroup.as_ref().and_then(InstanceCgroup::peak_memory).unwrap_or(0);
        let (result, reusable) = match result {
            Err(InvokeError::Exited { status }) => {
                let oom = self.cgroup.as_ref().is_some_and(|cgroup| cgroup.oom_kills() > 0);
                let error = if oom {
                    InvokeError::OutOfMemory { limit: self.memory_limit }
                } else {
                    InvokeError::Exited { status }
                };
                (Err(error), false)
            }
            Err(InvokeError::Timeout { timeout }) => {
                self.kill();
                (Err(InvokeError::Timeout { timeout }), false)
            }
            result => {
                self.end_strays().await;
                (result, true)
            }
        };
        Invoked::ended(result, output, max_memory_used, reusable)
    }
}

/// A streamed answer as the Runtime API handed it over, with the invocation's deadline.
struct Streamed {
    content_type: Option<HeaderValue>,
    body: Body,
    ended: tokio::sync::oneshot::Receiver<StreamEnd>,
    deadline: tokio::time::Instant,
}

/// Reads a streamed answer up to the end of its prelude: the head it describes, and the
/// first bytes of the body that came with it.
async fn read_prelude(body: &mut Body) -> Result<(Response<()>, Bytes), InvokeError> {
    use http_body_util::BodyExt as _;
    let bad = |message: String| InvokeError::BadResponse { message };
    let mut buffered = bytes::BytesMut::new();
    // Where the search for the separator goes on from: it may straddle two chunks.
    let mut searched = 0;
    loop {
        if let Some(end) = crate::apigw::prelude_end(&buffered[searched..]).map(|at| searched + at) {
            let head = crate::apigw::prelude_head(&buffered[..end]).map_err(|error| bad(error.to_string()))?;
            return Ok((head, buffered.freeze().slice(end + 8..)));
        }
        if buffered.len() > crate::apigw::MAX_PRELUDE {
            return Err(bad(format!(
                "the streamed answer's HTTP prelude is longer than {} KiB",
                crate::apigw::MAX_PRELUDE / 1024
            )));
        }
        searched = buffered.len().saturating_sub(7);
        match body.frame().await {
            Some(Ok(frame)) => buffered.extend_from_slice(&frame.into_data().unwrap_or_default()),
            Some(Err(cut)) => return Err(bad(cut.to_string())),
            None => return Err(bad(crate::apigw::ResponseError::Prelude.to_string())),
        }
    }
}

/// Forwards a streamed answer's body to the client: `first`, then the rest as it comes.
/// Returns the sender of a body that arrived whole, to be finished by the caller once
/// the function's end is known; a cut answer cuts the client's body, and a client gone
/// leaves the rest read and dropped, so the function can finish.
async fn forward(
    first: Bytes,
    body: &mut Body,
    sender: updraft_runtime::BodySender,
) -> Option<updraft_runtime::BodySender> {
    use http_body_util::BodyExt as _;
    let mut sender = Some(sender);
    if !first.is_empty()
        && let Some(to) = &sender
        && to.send(first).await.is_err()
    {
        sender = None;
    }
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Some(to) = &sender else { continue };
                if let Ok(data) = frame.into_data()
                    && to.send(data).await.is_err()
                {
                    sender = None;
                }
            }
            // Dropping the sender unfinished cuts the client's body.
            Some(Err(_)) => return None,
            None => return sender,
        }
    }
}

/// A runtime's error report as the invocation's error.
fn function_error(error_type: String, body: &[u8]) -> InvokeError {
    let message = report_line(body).unwrap_or_else(|| error_type.clone());
    InvokeError::Function { error_type, message, document: body.to_vec() }
}

impl ProcessInstance {
    pub(crate) async fn run(&mut self, event: Event, timeout: Duration) -> Outcome {
        let Some(child) = self.child.as_mut() else { return Outcome::Exited("the instance was stopped".into()) };
        let deadline = tokio::time::sleep(timeout);
        let reply = tokio::select! {
            reply = self.api.send(event) => reply,
            status = child.wait() => return Outcome::Exited(describe(status)),
        };
        let Some(reply) = reply else { return Outcome::Exited("the Runtime API stopped".into()) };
        tokio::select! {
            reply = reply => match reply {
                Ok(reply) => Outcome::Reply(reply),
                Err(_) => Outcome::Exited("the Runtime API stopped".into()),
            },
            status = child.wait() => {
                // Output written just before exiting is still in the pipes.
                Outcome::Exited(describe(status))
            }
            () = deadline => Outcome::TimedOut,
            () = self.pipes.pump() => unreachable!("pump never completes"),
        }
    }

    /// Ends every process the invocation left behind in the instance: only the
    /// jailer, the namespace's init and the runtime itself stay between invocations.
    /// Strays may still be forking, so it kills in rounds until none is left.
    pub(crate) async fn end_strays(&self) {
        let (Some(cgroup), Some(child)) = (&self.cgroup, &self.child) else { return };
        let Some(jailer) = child.id().and_then(|id| i32::try_from(id).ok()) else { return };
        for _ in 0..STRAY_ROUNDS {
            let processes = cgroup.processes();
            if processes.len() <= 3 {
                return;
            }
            let stats: Vec<(i32, i32, u64)> = processes
                .iter()
                .filter_map(|&pid| host::parent_and_start(pid).map(|(parent, start)| (pid, parent, start)))
                .collect();
            let init = stats.iter().find(|(_, parent, _)| *parent == jailer).map(|(pid, ..)| *pid);
            let runtime = init.and_then(|init| {
                let children = stats.iter().filter(|(_, parent, _)| *parent == init);
                children.min_by_key(|(_, _, start)| *start).map(|(pid, ..)| *pid)
            });
            for (pid, ..) in stats {
                if pid != jailer && Some(pid) != init && Some(pid) != runtime {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        static STAYED: updraft_runtime::LogBudget = updraft_runtime::LogBudget::new(5, Duration::from_secs(1));
        if let Some(suppressed) = STAYED.admit() {
            tracing::warn!(
                suppressed,
                "processes an invocation left behind would not end; they stay until the instance stops"
            );
        }
    }

    pub(crate) fn kill(&mut self) {
        retire(self.child.take(), self.cgroup.take(), self.dir.take());
    }
}

impl Drop for ProcessInstance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Ends an instance: kills its jailer (init follows, taking the namespace's other
/// processes with it), then removes its control group and folder once empty.
pub(crate) fn retire(child: Option<tokio::process::Child>, cgroup: Option<InstanceCgroup>, dir: Option<PathBuf>) {
    let cleanup = async move {
        if let Some(mut child) = child {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        if let Some(cgroup) = cgroup {
            // The namespace's processes die just after the jailer; wait for them.
            for _ in 0..100 {
                if cgroup.remove().is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(cleanup);
        }
        Err(_) => tracing::debug!("no runtime to clean an instance up on"),
    }
}

/// `ErrorType: message` from a runtime's error document (every runtime's shape has
/// both fields), for records and error messages.
pub(crate) fn report_line(document: &[u8]) -> Option<String> {
    let report: serde_json::Value = serde_json::from_slice(document).ok()?;
    let kind = report["errorType"].as_str()?;
    let message = report["errorMessage"].as_str().unwrap_or_default();
    Some(format!("{kind}: {message}"))
}

pub(crate) fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(error) => error.to_string(),
    }
}
