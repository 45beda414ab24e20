//! `/v1/async`, `/v1/topics`, `/v1/queues`, `/v1/workflows` and `/v1/executions`: the
//! event layer.

use axum::Json;
use axum::extract::{Path, Query, State};
use bytes::Bytes;
use http::StatusCode;
use updraft_model::{QueueName, TopicName, Trigger};
use updraft_platform::Message;

use crate::params::{FailedEventParams, RedriveParams, RetryAllParams};
use crate::v1::function_name;
use crate::views::{
    AsyncEventListView, AsyncEventView, AsyncRetriedView, ExecutionListView, ExecutionStartedView,
    ExecutionSummaryView, ExecutionView, PublishedView, QueueListView, QueueRedriveView, QueueSentView,
    QueueSummaryView, QueueView, TopicListView, TopicView, WorkflowListView, WorkflowView,
};
use crate::{ApiError, AppState};

/// An asynchronous invocation that has not succeeded yet: queued (with its attempts so
/// far) or failed for good. One that succeeded is gone (404); its records are in
/// `/v1/invocations`, under the same id.
#[utoipa::path(
    get, path = "/v1/async/{id}", tag = "functions",
    params(("id" = String, Path, description = "The id `invoke-async` answered")),
    responses(
        (status = 200, description = "Queued or failed", body = AsyncEventView),
        (status = 404, description = "Delivered, or never accepted", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn async_event_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AsyncEventView>, ApiError> {
    let event = state.platform.events().async_event(&id).await?.ok_or_else(|| {
        ApiError::not_found("async_event_not_found", format!("no pending or failed asynchronous invocation {id:?}"))
    })?;
    Ok(Json(AsyncEventView::new(&event)))
}

/// Failed asynchronous invocations (out of retries or too old), the latest accepted
/// first, paged.
#[utoipa::path(
    get, path = "/v1/async/failed", tag = "functions",
    params(FailedEventParams),
    responses((status = 200, description = "Failed events", body = AsyncEventListView)),
    security(("bearer" = []))
)]
pub(crate) async fn failed_event_list(
    State(state): State<AppState>,
    Query(params): Query<FailedEventParams>,
) -> Result<Json<AsyncEventListView>, ApiError> {
    let function = params.function.as_deref().map(function_name).transpose()?;
    let limit = params.limit.unwrap_or(50).clamp(1, 1000);
    let events = state.platform.events().failed_events(function.as_ref(), params.before, limit).await?;
    let next_before = (events.len() as i64 == limit).then(|| events.last().map(|event| event.enqueued_at)).flatten();
    Ok(Json(AsyncEventListView { events: events.iter().map(AsyncEventView::new).collect(), next_before }))
}

/// Retry a failed asynchronous invocation: it is queued again as if newly accepted
/// (its function's retries and maximum age start over), with its id, payload and trace.
#[utoipa::path(
    post, path = "/v1/async/{id}/retry", tag = "functions",
    params(("id" = String, Path, description = "The failed event's id")),
    responses(
        (status = 200, description = "Queued again", body = AsyncEventView),
        (status = 404, description = "No such event", body = crate::views::ErrorBody),
        (status = 409, description = "Not failed: still queued or running", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn async_event_retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AsyncEventView>, ApiError> {
    let events = state.platform.events();
    let retried = events.redrive(std::slice::from_ref(&id)).await?;
    let event = events.async_event(&id).await?.ok_or_else(|| {
        ApiError::not_found("async_event_not_found", format!("no pending or failed asynchronous invocation {id:?}"))
    })?;
    if retried.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "async_event_not_failed",
            format!(
                "asynchronous invocation {id:?} has not failed: it is queued or running; only a failed one is retried"
            ),
        ));
    }
    Ok(Json(AsyncEventView::new(&event)))
}

/// Retry every failed asynchronous invocation, or every one of a function.
#[utoipa::path(
    post, path = "/v1/async/retry", tag = "functions",
    params(RetryAllParams),
    responses(
        (status = 200, description = "How many were queued again", body = AsyncRetriedView),
        (status = 404, description = "No such function", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn async_retry_all(
    State(state): State<AppState>,
    Query(params): Query<RetryAllParams>,
) -> Result<Json<AsyncRetriedView>, ApiError> {
    let function = params.function.as_deref().map(function_name).transpose()?;
    let retried = state.platform.events().redrive_all(function.as_ref()).await?;
    Ok(Json(AsyncRetriedView { retried }))
}

/// Publish a message to a topic: a copy for every subscribed function is stored
/// durably (all or none) before the `202`, and each is delivered with that function's
/// own retries. Lambda functions get it as an SNS record, wasm functions as a
/// CloudEvent. Besides an API key, a function's token (`UPDRAFT_TOKEN`) is accepted
/// for the topics in its `publishes` grant.
#[utoipa::path(
    post, path = "/v1/topics/{topic}", tag = "events",
    params(
        ("topic" = String, Path, description = "Topic name"),
        ("x-updraft-subject" = Option<String>, Header, description = "A subject line (SNS's Subject)"),
    ),
    request_body(content = String, description = "The message; its Content-Type travels with it", content_type = "application/json"),
    responses(
        (status = 202, description = "Stored for every subscriber", body = PublishedView),
        (status = 400, description = "Invalid topic name", body = crate::views::ErrorBody),
        (status = 403, description = "A function token without a grant for this topic", body = crate::views::ErrorBody),
        (status = 404, description = "No function subscribes to the topic", body = crate::views::ErrorBody),
        (status = 413, description = "Message above 1 MiB", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn topic_publish(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<PublishedView>), ApiError> {
    let topic = TopicName::new(topic).map_err(|invalid| ApiError::bad_request(invalid.to_string()))?;
    let text = |name: http::HeaderName| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let message = Message {
        payload: body,
        content_type: text(http::header::CONTENT_TYPE),
        subject: text(http::HeaderName::from_static("x-updraft-subject")),
        attributes: Vec::new(),
        trace: crate::gateway::trace_parent(&headers),
    };
    let published = state.platform.events().publish(&topic, message).await?;
    let view = PublishedView {
        message_id: published.message_id,
        topic: topic.to_string(),
        subscribers: published.subscribers.iter().map(ToString::to_string).collect(),
    };
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// The topics live functions subscribe to, with their subscribers.
#[utoipa::path(
    get, path = "/v1/topics", tag = "events",
    responses((status = 200, description = "Topics by name", body = TopicListView)),
    security(("bearer" = []))
)]
pub(crate) async fn topic_list(State(state): State<AppState>) -> Json<TopicListView> {
    let live = state.platform.live();
    let topics = live
        .topics
        .iter()
        .map(|(topic, subscribers)| TopicView {
            topic: topic.to_string(),
            subscribers: subscribers.iter().map(|function| function.name.to_string()).collect(),
        })
        .collect();
    Json(TopicListView { topics })
}

pub(super) fn queue_name(queue: String) -> Result<QueueName, ApiError> {
    QueueName::new(queue).map_err(|invalid| ApiError::bad_request(invalid.to_string()))
}

/// Send a message to a work queue: stored durably before the `202`, then delivered in
/// a batch to a function consuming the queue (an SQS batch event). A queue needs no
/// consumer to accept messages: they wait.
#[utoipa::path(
    post, path = "/v1/queues/{queue}", tag = "events",
    params(("queue" = String, Path, description = "Queue name")),
    request_body(content = String, description = "The message; its Content-Type travels with it", content_type = "application/json"),
    responses(
        (status = 202, description = "Stored", body = QueueSentView),
        (status = 400, description = "Invalid queue name", body = crate::views::ErrorBody),
        (status = 413, description = "Message above 1 MiB", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn queue_send(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<QueueSentView>), ApiError> {
    let queue = queue_name(queue)?;
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).map(str::to_owned);
    // The sender's trace (its `traceparent`, or `X-Amzn-Trace-Id` from a Lambda
    // function): the batch that handles the message links to it.
    let trace = crate::gateway::trace_parent(&headers);
    let message_id = state.platform.events().send_to_queue(&queue, body, content_type, trace).await?;
    Ok((StatusCode::ACCEPTED, Json(QueueSentView { message_id, queue: queue.to_string() })))
}

/// A work queue's depth and consumers.
#[utoipa::path(
    get, path = "/v1/queues/{queue}", tag = "events",
    params(("queue" = String, Path, description = "Queue name")),
    responses((status = 200, description = "Depth and consumers", body = QueueView)),
    security(("bearer" = []))
)]
pub(crate) async fn queue_get(
    State(state): State<AppState>,
    Path(queue): Path<String>,
) -> Result<Json<QueueView>, ApiError> {
    let queue = queue_name(queue)?;
    let depth = state.platform.events().queue_depth(&queue).await?;
    let consumers = state
        .platform
        .live()
        .functions
        .values()
        .filter(|function| {
            function.config.triggers.iter().any(|trigger| matches!(trigger, Trigger::Queue(q) if q.queue == queue))
        })
        .map(|function| function.name.to_string())
        .collect();
    Ok(Json(QueueView { queue: queue.to_string(), visible: depth.visible, in_flight: depth.in_flight, consumers }))
}

/// Redrive a dead-letter queue: every message waiting in it moves back to the queue
/// it came from (or to `to`), deliverable again with its receives reset.
#[utoipa::path(
    post, path = "/v1/queues/{queue}/redrive", tag = "events",
    params(("queue" = String, Path, description = "The dead-letter queue"), RedriveParams),
    responses(
        (status = 200, description = "Moved", body = QueueRedriveView),
        (status = 400, description = "No queue (or more than one) sends its dead letters here and no `to` was given, or `to` is this queue", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn queue_redrive(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    Query(params): Query<RedriveParams>,
) -> Result<Json<QueueRedriveView>, ApiError> {
    let dead_letter = queue_name(queue)?;
    let to = match params.to {
        Some(to) => queue_name(to)?,
        None => {
            let mut sources: Vec<QueueName> = state
                .platform
                .live()
                .functions
                .values()
                .flat_map(|function| function.config.triggers.iter())
                .filter_map(|trigger| match trigger {
                    Trigger::Queue(q) if q.dead_letter_queue == dead_letter => Some(q.queue.clone()),
                    _ => None,
                })
                .collect();
            sources.sort();
            sources.dedup();
            match sources.as_slice() {
                [source] => source.clone(),
                [] => {
                    return Err(ApiError::bad_request(format!(
                        "no queue trigger sends its dead letters to {dead_letter}; say where they go with `to`"
                    )));
                }
                many => {
                    let names: Vec<String> = many.iter().map(ToString::to_string).collect();
                    return Err(ApiError::bad_request(format!(
                        "queues {} all send their dead letters to {dead_letter}; say which one gets them with `to`",
                        names.join(", ")
                    )));
                }
            }
        }
    };
    if to == dead_letter {
        return Err(ApiError::bad_request(format!("{dead_letter} cannot be redriven to itself")));
    }
    let moved = state.platform.events().queue_redrive(&dead_letter, &to).await?;
    Ok(Json(QueueRedriveView { from: dead_letter.to_string(), to: to.to_string(), moved }))
}

/// Every work queue a trigger consumes or dead-letters into, with its depth.
#[utoipa::path(
    get, path = "/v1/queues", tag = "events",
    responses((status = 200, description = "Queues by name", body = QueueListView)),
    security(("bearer" = []))
)]
pub(crate) async fn queue_list(State(state): State<AppState>) -> Result<Json<QueueListView>, ApiError> {
    let mut queues: std::collections::BTreeMap<QueueName, (Vec<String>, Vec<String>)> = Default::default();
    for function in state.platform.live().functions.values() {
        for trigger in function.config.triggers.iter() {
            if let Trigger::Queue(q) = trigger {
                queues.entry(q.queue.clone()).or_default().0.push(function.name.to_string());
                queues.entry(q.dead_letter_queue.clone()).or_default().1.push(q.queue.to_string());
            }
        }
    }
    let now = updraft_model::now_millis();
    let mut list = Vec::with_capacity(queues.len());
    for (queue, (mut consumers, mut dead_letters_of)) in queues {
        let depth = state.platform.events().queue_depth(&queue).await?;
        consumers.sort();
        consumers.dedup();
        dead_letters_of.sort();
        dead_letters_of.dedup();
        list.push(QueueSummaryView {
            queue: queue.to_string(),
            visible: depth.visible,
            in_flight: depth.in_flight,
            oldest_age_ms: depth.oldest_visible_at.map(|at| (now - at).max(0)),
            consumers,
            dead_letters_of,
        });
    }
    Ok(Json(QueueListView { queues: list }))
}

/// The deployed workflows, with their definitions.
#[utoipa::path(
    get, path = "/v1/workflows", tag = "events",
    responses((status = 200, description = "Workflows by name", body = WorkflowListView)),
    security(("bearer" = []))
)]
pub(crate) async fn workflow_list(State(state): State<AppState>) -> Json<WorkflowListView> {
    let workflows = state
        .platform
        .events()
        .workflows()
        .values()
        .map(|workflow| WorkflowView {
            name: workflow.name.to_string(),
            app: workflow.app.to_string(),
            start_at: workflow.machine.start_at.clone(),
            definition: workflow.definition.clone(),
        })
        .collect();
    Json(WorkflowListView { workflows })
}

/// A workflow's latest executions, the latest started first.
#[utoipa::path(
    get, path = "/v1/workflows/{name}/executions", tag = "events",
    params(("name" = String, Path, description = "Workflow name"), ("limit" = Option<i64>, Query, description = "At most this many (default 50, at most 1000)")),
    responses(
        (status = 200, description = "Executions", body = ExecutionListView),
        (status = 404, description = "No such workflow", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn execution_list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<ExecutionListView>, ApiError> {
    let workflow = function_name(&name)?;
    let events = state.platform.events();
    if !events.workflows().contains_key(&workflow) {
        return Err(ApiError::not_found("workflow_not_found", format!("no workflow {name} is deployed")));
    }
    let limit = params.get("limit").and_then(|limit| limit.parse::<i64>().ok()).unwrap_or(50).clamp(1, 1000);
    let executions = events.executions(&workflow, limit).await?;
    Ok(Json(ExecutionListView {
        workflow: name,
        executions: executions
            .into_iter()
            .map(|execution| ExecutionSummaryView {
                id: execution.id,
                status: execution.status,
                state: execution.state,
                started_at_ms: execution.started_at,
                updated_at_ms: execution.updated_at,
            })
            .collect(),
    }))
}

/// Start an execution of a workflow with the body as its input (JSON). It is stored
/// before the `202`, runs its states one by one, each step persisted, and resumes
/// after a restart where it stopped. Besides an API key, a function's token
/// (`UPDRAFT_TOKEN`) is accepted for the workflows in its `starts` grant.
#[utoipa::path(
    post, path = "/v1/workflows/{name}/executions", tag = "events",
    params(("name" = String, Path, description = "Workflow name")),
    request_body(content = String, description = "The execution's input (JSON; empty means {})", content_type = "application/json"),
    responses(
        (status = 202, description = "Started", body = ExecutionStartedView),
        (status = 400, description = "The input is not JSON", body = crate::views::ErrorBody),
        (status = 403, description = "A function token without a grant for this workflow", body = crate::views::ErrorBody),
        (status = 404, description = "No such workflow", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn workflow_start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<ExecutionStartedView>), ApiError> {
    let input: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| ApiError::bad_request(format!("the input is not JSON ({error}); send a JSON document")))?
    };
    let execution_id =
        state.platform.events().workflow_start(&name, input, crate::gateway::trace_parent(&headers)).await.map_err(
            |error| match error {
                updraft_platform::WorkflowError::NotFound { .. } => {
                    ApiError::not_found("workflow_not_found", error.to_string())
                }
                updraft_platform::WorkflowError::Store(error) => ApiError::internal(&error),
            },
        )?;
    Ok((StatusCode::ACCEPTED, Json(ExecutionStartedView { execution_id, workflow: name })))
}

/// A workflow execution: its status, current state, output or error, and history.
#[utoipa::path(
    get, path = "/v1/executions/{id}", tag = "events",
    params(("id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, description = "The execution", body = ExecutionView),
        (status = 404, description = "No such execution", body = crate::views::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn execution_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExecutionView>, ApiError> {
    let report = state
        .platform
        .events()
        .execution(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution_not_found", format!("no workflow execution {id:?}")))?;
    Ok(Json(ExecutionView::new(&report)))
}
