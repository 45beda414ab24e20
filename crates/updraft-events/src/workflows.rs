//! Workflow executions: each runs as a task that steps its state machine (the pure
//! stepping is `updraft_model::StateMachine`), runs Task states as invocations of the
//! app's functions, and persists every step (the new state and its input, or the
//! retry's delay, or the wait's end, with a history entry) before taking the next. At
//! start, every execution still running is resumed at the state it had reached; a task
//! interrupted by the stop runs again (at least once, like every event).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use updraft_model::{
    AfterTask, AppName, FunctionName, StateKind, StateMachine, Step, TaskError, TraceParent, TriggerKind, now_millis,
};
use updraft_runtime::{Event, EventOrigin, Input, InvokeContext, InvokeError, new_trace_id};
use updraft_store::{Execution, HistoryEntry, StoreError};

use crate::host::Ran;
use crate::layer::EventLayer;
use crate::queue::QueueError;

/// Why a workflow could not be started.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("no workflow {name:?}; declare it as [workflows.{name}] in an app's updraft.toml")]
    NotFound { name: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A task's outcome as a history entry: its kind and detail.
type TaskEntry = (&'static str, Value);

/// An execution as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionSummary {
    pub id: String,
    /// `running`, `succeeded`, `failed` or `timed_out`.
    pub status: String,
    /// The state it is in (or ended in).
    pub state: String,
    /// ms since the epoch.
    pub started_at: i64,
    pub updated_at: i64,
}

/// An execution and its history, as `updraft workflow describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionReport {
    pub id: String,
    pub workflow: FunctionName,
    pub app: AppName,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// The state it is in, or ended in.
    pub state: String,
    /// JSON, as the execution was started with.
    pub input: String,
    /// JSON, once it succeeded.
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub started_at: i64,
    pub updated_at: i64,
    /// Oldest first.
    pub history: Vec<HistoryStep>,
}

/// One step of an execution's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryStep {
    pub seq: i64,
    /// When it was taken (ms since the epoch).
    pub at: i64,
    /// `ExecutionStarted`, `StateEntered`, `TaskSucceeded`, `TaskFailed`, `TaskRetried`,
    /// `WaitStarted`, `ExecutionSucceeded`, `ExecutionFailed`.
    pub kind: String,
    pub state: Option<String>,
    /// JSON: the state's input or output, or the error.
    pub detail: Option<String>,
}

impl ExecutionReport {
    fn new(execution: Execution, history: Vec<HistoryEntry>) -> Self {
        Self {
            id: execution.id,
            workflow: execution.workflow,
            app: execution.app,
            status: execution.status,
            state: execution.state,
            input: execution.input,
            output: execution.output,
            error: execution.error,
            cause: execution.cause,
            started_at: execution.started_at,
            updated_at: execution.updated_at,
            history: history
                .into_iter()
                .map(|entry| HistoryStep {
                    seq: entry.seq,
                    at: entry.at,
                    kind: entry.kind,
                    state: entry.state,
                    detail: entry.detail,
                })
                .collect(),
        }
    }
}

impl EventLayer {
    /// Starts an execution of workflow `name` with `input`; returns its id once the
    /// execution is stored (it runs, and survives restarts, from then on).
    /// Its tasks' invocations join `trace` (a new trace when `None`).
    pub async fn workflow_start(
        self: &Arc<Self>,
        name: &str,
        input: Value,
        trace: Option<TraceParent>,
    ) -> Result<String, WorkflowError> {
        let workflow = FunctionName::new(name)
            .ok()
            .and_then(|name| self.workflows().get(&name).cloned())
            .ok_or_else(|| WorkflowError::NotFound { name: name.to_owned() })?;
        let now = now_millis();
        let execution = Execution {
            id: uuid::Uuid::now_v7().to_string(),
            workflow: workflow.name.clone(),
            app: workflow.app.clone(),
            definition: workflow.definition.to_string(),
            status: "running".to_owned(),
            input: input.to_string(),
            output: None,
            error: None,
            cause: None,
            state: workflow.machine.start_at.clone(),
            state_input: input.to_string(),
            attempt: 0,
            wake_at: None,
            seq: 1,
            started_at: now,
            updated_at: now,
            trace_id: Some(trace.as_ref().map_or_else(new_trace_id, |trace| trace.trace_id.clone())),
            parent_span_id: trace.map(|trace| trace.span_id),
        };
        let first = entry(0, "ExecutionStarted", None, Some(&input));
        self.store().execution_create(&execution, self.node_id(), &first).await?;
        let id = execution.id.clone();
        tokio::spawn(run(self.clone(), execution));
        Ok(id)
    }

    /// An execution with its history.
    pub async fn execution(&self, id: &str) -> Result<Option<ExecutionReport>, QueueError> {
        let Some(execution) = self.store().execution_get(id).await? else { return Ok(None) };
        let history = self.store().execution_history(id).await?;
        Ok(Some(ExecutionReport::new(execution, history)))
    }

    /// `workflow`'s latest executions (without their history), the latest first.
    pub async fn executions(&self, workflow: &FunctionName, limit: i64) -> Result<Vec<ExecutionSummary>, QueueError> {
        let executions = self.store().execution_list(workflow, limit).await?;
        Ok(executions
            .into_iter()
            .map(|execution| ExecutionSummary {
                id: execution.id,
                status: execution.status,
                state: execution.state,
                started_at: execution.started_at,
                updated_at: execution.updated_at,
            })
            .collect())
    }

    /// Resumes every execution a previous run left running.
    pub(crate) async fn resume_workflows(self: &Arc<Self>) -> Result<(), StoreError> {
        let running = self.store().execution_running(self.node_id()).await?;
        if !running.is_empty() {
            tracing::info!(executions = running.len(), "resuming workflow executions");
        }
        for execution in running {
            self.resume(execution);
        }
        Ok(())
    }

    /// Drives `execution` on from where it was last stored.
    pub(crate) fn resume(self: &Arc<Self>, execution: Execution) {
        tokio::spawn(run(self.clone(), execution));
    }
}

fn entry(seq: i64, kind: &str, state: Option<&str>, detail: Option<&Value>) -> HistoryEntry {
    HistoryEntry {
        seq,
        at: now_millis(),
        kind: kind.to_owned(),
        state: state.map(str::to_owned),
        detail: detail.map(Value::to_string),
    }
}

/// Runs an execution to its end (or until the layer stops).
async fn run(layer: Arc<EventLayer>, mut execution: Execution) {
    let id = execution.id.clone();
    if let Err(error) = drive(&layer, &mut execution).await {
        // The execution stays `running` where it was last stored; the next start resumes it.
        tracing::error!(execution = %id, %error, "cannot record a workflow step; it resumes at the next start");
    }
}

async fn drive(layer: &EventLayer, execution: &mut Execution) -> Result<(), StoreError> {
    let definition: Value = serde_json::from_str(&execution.definition).unwrap_or(Value::Null);
    let machine = match StateMachine::parse(&definition) {
        Ok(machine) => machine,
        Err(problems) => {
            let cause = problems.join("; ");
            return finish(layer, execution, None, Err(("States.Runtime".to_owned(), cause))).await;
        }
    };
    let context = context_object(execution);
    let mut stopped = layer.stopping();
    let deadline = machine.timeout_seconds.map(|seconds| execution.started_at.saturating_add(seconds as i64 * 1000));
    while execution.status == "running" {
        if deadline.is_some_and(|deadline| now_millis() >= deadline) {
            let cause =
                format!("the execution ran longer than its TimeoutSeconds ({}s)", machine.timeout_seconds.unwrap_or(0));
            return finish(layer, execution, None, Err(("States.Timeout".to_owned(), cause))).await;
        }
        if let Some(wake_at) = execution.wake_at {
            let until = deadline.map_or(wake_at, |deadline| wake_at.min(deadline));
            let wait = Duration::from_millis((until - now_millis()).max(0) as u64);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stopped.wait_for(|stop| *stop) => return Ok(()),
            }
            if deadline.is_some_and(|deadline| now_millis() >= deadline) {
                continue;
            }
        }
        if *stopped.borrow() {
            return Ok(());
        }
        let input: Value = serde_json::from_str(&execution.state_input).unwrap_or(Value::Null);
        let state = execution.state.clone();
        let step = machine.enter(&state, input.clone(), now_millis(), &context);
        let next = match step {
            Step::Task { function, qualifier, input: task_input, timeout } => {
                let outcome = run_task(layer, execution, &function, qualifier.as_deref(), task_input, timeout).await;
                after_task(layer, execution, &machine, &input, outcome, &context).await?
            }
            Step::Parallel { input: branch_input } => {
                let outcome = run_parallel(layer, execution, &machine, &state, branch_input, &context).await;
                after_task(layer, execution, &machine, &input, outcome, &context).await?
            }
            Step::Map { items, max_concurrency } => {
                let outcome = run_map(layer, execution, &machine, &state, items, max_concurrency, &context).await;
                after_task(layer, execution, &machine, &input, outcome, &context).await?
            }
            Step::Wait { until_ms, then } => {
                if execution.wake_at.is_none() {
                    let mut next = execution.clone();
                    next.wake_at = Some(until_ms);
                    let wait = Value::from(until_ms);
                    record(layer, execution, next, &[("WaitStarted", Some(&state), Some(&wait))]).await?;
                    continue;
                }
                Some((*then, None))
            }
            other => Some((other, None)),
        };
        let Some((next, task)) = next else { continue };
        let task_entry = task.as_ref().map(|(kind, detail)| (*kind, Some(&state), Some(detail)));
        match next {
            Step::Next { state: next_state, input } => {
                let mut next = execution.clone();
                next.state = next_state.clone();
                next.state_input = input.to_string();
                next.attempt = 0;
                next.wake_at = None;
                let mut entries: Vec<_> = task_entry.into_iter().collect();
                entries.push(("StateEntered", Some(&next_state), Some(&input)));
                record(layer, execution, next, &entries).await?;
            }
            Step::Succeed { output } => return finish(layer, execution, task_entry, Ok(output)).await,
            Step::Fail { error, cause } => {
                return finish(layer, execution, task_entry, Err((error, cause))).await;
            }
            Step::Task { .. } | Step::Parallel { .. } | Step::Map { .. } | Step::Wait { .. } => {
                let cause = format!("state {state:?} led to another running step");
                return finish(layer, execution, None, Err(("States.Runtime".to_owned(), cause))).await;
            }
        }
    }
    Ok(())
}

/// What a task's outcome leads to, with the history entry to store with it; `None`
/// when it is to be retried (the retry is stored, with its delay).
async fn after_task(
    layer: &EventLayer,
    execution: &mut Execution,
    machine: &StateMachine,
    input: &Value,
    outcome: Result<Value, TaskError>,
    context: &Value,
) -> Result<Option<(Step, Option<TaskEntry>)>, StoreError> {
    let state = execution.state.clone();
    let attempt = execution.attempt as u32;
    let detail = match &outcome {
        Ok(output) => ("TaskSucceeded", output.clone()),
        Err(error) => ("TaskFailed", serde_json::json!({ "Error": error.error, "Cause": error.cause })),
    };
    match machine.task_done(&state, input, outcome, attempt, context) {
        AfterTask::Retry { delay } => {
            let mut next = execution.clone();
            next.attempt += 1;
            next.wake_at = Some(now_millis() + delay.as_millis() as i64);
            let retry = serde_json::json!({ "attempt": next.attempt, "delay_ms": delay.as_millis() as u64 });
            let entries = [(detail.0, Some(&state), Some(&detail.1)), ("TaskRetried", Some(&state), Some(&retry))];
            record(layer, execution, next, &entries).await?;
            Ok(None)
        }
        // The task's outcome is stored with the step it leads to, in one transaction.
        AfterTask::Then(step) => Ok(Some((step, Some(detail)))),
    }
}

/// Stores `next` as `execution`'s position with history entries, then adopts it.
async fn record(
    layer: &EventLayer,
    execution: &mut Execution,
    mut next: Execution,
    entries: &[(&str, Option<&String>, Option<&Value>)],
) -> Result<(), StoreError> {
    let from = execution.seq;
    let history: Vec<HistoryEntry> = entries
        .iter()
        .enumerate()
        .map(|(offset, (kind, state, detail))| entry(from + offset as i64, kind, state.map(String::as_str), *detail))
        .collect();
    next.seq = from + history.len() as i64;
    next.updated_at = now_millis();
    if !layer.store().execution_step(&next, from, &history).await? {
        return Err(StoreError::Grouped { detail: format!("execution {} was moved by another writer", next.id) });
    }
    *execution = next;
    Ok(())
}

async fn finish(
    layer: &EventLayer,
    execution: &mut Execution,
    task: Option<(&str, Option<&String>, Option<&Value>)>,
    outcome: Result<Value, (String, String)>,
) -> Result<(), StoreError> {
    let mut next = execution.clone();
    next.wake_at = None;
    let (kind, detail) = match outcome {
        Ok(output) => {
            next.status = "succeeded".to_owned();
            next.output = Some(output.to_string());
            ("ExecutionSucceeded", output)
        }
        Err((error, cause)) => {
            next.status = "failed".to_owned();
            next.error = Some(error.clone());
            next.cause = Some(cause.clone());
            ("ExecutionFailed", serde_json::json!({ "Error": error, "Cause": cause }))
        }
    };
    let state = execution.state.clone();
    let mut entries: Vec<_> = task.into_iter().collect();
    entries.push((kind, Some(&state), Some(&detail)));
    record(layer, execution, next, &entries).await
}

/// The execution's part of the context object (`$$`) its states' templates read.
fn context_object(execution: &Execution) -> Value {
    let input: Value = serde_json::from_str(&execution.input).unwrap_or(Value::Null);
    let started = chrono::DateTime::from_timestamp_millis(execution.started_at).map(|time| time.to_rfc3339());
    serde_json::json!({
        "Execution": { "Id": execution.id, "Name": execution.id, "Input": input, "StartTime": started },
        "StateMachine": { "Id": execution.workflow, "Name": execution.workflow },
    })
}

/// Runs a Task state: the function (the version or alias `qualifier` picks) gets
/// `input` as its event (a CloudEvent for wasm).
async fn run_task(
    layer: &EventLayer,
    execution: &Execution,
    function: &str,
    qualifier: Option<&str>,
    input: Value,
    timeout: Option<Duration>,
) -> Result<Value, TaskError> {
    let error = |error: &str, cause: String| TaskError { error: error.to_owned(), cause };
    let live =
        FunctionName::new(function).ok().filter(|name| layer.host().is_some_and(|host| host.function(name).is_some()));
    let Some(live) = live else {
        return Err(error("Lambda.ResourceNotFoundException", format!("function {function} is not deployed")));
    };
    let request_id = uuid::Uuid::now_v7().to_string();
    let task = Input::Event(Event {
        id: request_id.clone(),
        payload: Bytes::from(input.to_string()),
        origin: EventOrigin::WorkflowTask { workflow: execution.workflow.clone() },
    });
    let context = InvokeContext {
        request_id,
        trigger: TriggerKind::Workflow,
        trace_id: execution.trace_id.clone(),
        parent_span_id: execution.parent_span_id.clone(),
        queued_since: None,
        links: Vec::new(),
        // Workflows start chains of their own: a loop through one is not counted.
        lineage: Default::default(),
    };
    let invocation = layer.invoke(&live, qualifier, task, context);
    let result = match timeout {
        Some(timeout) => match tokio::time::timeout(timeout, invocation).await {
            Ok(result) => result,
            Err(_) => return Err(error("States.Timeout", format!("the task ran longer than {}s", timeout.as_secs()))),
        },
        None => invocation.await,
    };
    match result {
        Ran::Answered(response) if response.status().is_success() => {
            let body = response.body();
            Ok(serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())))
        }
        Ran::Answered(response) => Err(error(
            "States.TaskFailed",
            format!("the function answered {}: {}", response.status(), String::from_utf8_lossy(response.body())),
        )),
        Ran::Failed(InvokeError::Function { error_type, document, .. }) => {
            // Step Functions names a Lambda task's error by its document's errorType.
            let name = serde_json::from_slice::<Value>(&document)
                .ok()
                .and_then(|document| document["errorType"].as_str().map(str::to_owned))
                .unwrap_or(error_type);
            Err(error(&name, String::from_utf8_lossy(&document).into_owned()))
        }
        Ran::Failed(InvokeError::Timeout { timeout }) => {
            Err(error("States.Timeout", format!("the function did not finish within {}s", timeout.as_secs_f64())))
        }
        Ran::Failed(other) => Err(error(other.error_type(), other.to_string())),
        Ran::Throttled { reason } => Err(error("Lambda.TooManyRequestsException", reason)),
        Ran::NotDeployed => {
            Err(error("Lambda.ResourceNotFoundException", format!("function {function} is not deployed")))
        }
        Ran::NotRun { message } => Err(error("Lambda.ResourceNotFoundException", message)),
    }
}

/// Runs a Parallel state's branches at once, each to its end in memory; the result is
/// the array of their outputs, or the first failure.
async fn run_parallel(
    layer: &EventLayer,
    execution: &Execution,
    machine: &StateMachine,
    state: &str,
    input: Value,
    context: &Value,
) -> Result<Value, TaskError> {
    let Some(StateKind::Parallel { branches, .. }) = machine.states.get(state).map(|state| &state.kind) else {
        return Err(TaskError { error: "States.Runtime".to_owned(), cause: format!("{state} is not Parallel") });
    };
    // The first failure ends the state; the other branches are dropped, as Step
    // Functions stops them.
    let runs = branches.iter().map(|branch| run_branch(layer, execution, branch, input.clone(), context));
    futures::future::try_join_all(runs).await.map(Value::Array)
}

/// Runs a Map state's iterator over its items, at most `max_concurrency` at once, each
/// to its end in memory like a Parallel branch; the result is the array of their
/// outputs in the items' order, or the first failure (the other iterations are
/// dropped, as Step Functions stops them).
async fn run_map(
    layer: &EventLayer,
    execution: &Execution,
    machine: &StateMachine,
    state: &str,
    items: Vec<Value>,
    max_concurrency: usize,
    context: &Value,
) -> Result<Value, TaskError> {
    use futures::{StreamExt, TryStreamExt};
    let Some(StateKind::Map { iterator, .. }) = machine.states.get(state).map(|state| &state.kind) else {
        return Err(TaskError { error: "States.Runtime".to_owned(), cause: format!("{state} is not Map") });
    };
    futures::stream::iter(items)
        .map(|item| run_branch(layer, execution, iterator, item, context))
        .buffered(max_concurrency.max(1))
        .try_collect()
        .await
        .map(Value::Array)
}

/// One branch of a Parallel state, run to its end without persisting its steps (a
/// restart runs the whole Parallel state again).
fn run_branch<'a>(
    layer: &'a EventLayer,
    execution: &'a Execution,
    machine: &'a StateMachine,
    input: Value,
    context: &'a Value,
) -> futures::future::BoxFuture<'a, Result<Value, TaskError>> {
    Box::pin(async move {
        let mut state = machine.start_at.clone();
        let mut input = input;
        let mut attempt = 0;
        loop {
            let step = match machine.enter(&state, input.clone(), now_millis(), context) {
                Step::Wait { until_ms, then } => {
                    tokio::time::sleep(Duration::from_millis((until_ms - now_millis()).max(0) as u64)).await;
                    *then
                }
                other => other,
            };
            let outcome = match step {
                Step::Task { function, qualifier, input: task_input, timeout } => {
                    run_task(layer, execution, &function, qualifier.as_deref(), task_input, timeout).await
                }
                Step::Parallel { input: branch_input } => {
                    run_parallel(layer, execution, machine, &state, branch_input, context).await
                }
                Step::Map { items, max_concurrency } => {
                    run_map(layer, execution, machine, &state, items, max_concurrency, context).await
                }
                Step::Next { state: next, input: next_input } => {
                    (state, input, attempt) = (next, next_input, 0);
                    continue;
                }
                Step::Succeed { output } => return Ok(output),
                Step::Fail { error, cause } => return Err(TaskError { error, cause }),
                Step::Wait { .. } => {
                    return Err(TaskError {
                        error: "States.Runtime".to_owned(),
                        cause: "a wait led to a wait".to_owned(),
                    });
                }
            };
            match machine.task_done(&state, &input, outcome, attempt, context) {
                AfterTask::Retry { delay } => {
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                }
                AfterTask::Then(Step::Next { state: next, input: next_input }) => {
                    (state, input, attempt) = (next, next_input, 0);
                }
                AfterTask::Then(Step::Succeed { output }) => return Ok(output),
                AfterTask::Then(Step::Fail { error, cause }) => return Err(TaskError { error, cause }),
                AfterTask::Then(_) => {
                    return Err(TaskError {
                        error: "States.Runtime".to_owned(),
                        cause: "an unexpected step".to_owned(),
                    });
                }
            }
        }
    })
}
