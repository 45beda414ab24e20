//! `/v1/async`, `/v1/topics`, `/v1/queues`, `/v1/workflows` and `/v1/executions`: the
//! event layer.

use axum::Json;
use axum::extract::{Path, State};
use bytes::Bytes;
use http::StatusCode;
use updraft_model::{QueueName, TopicName, Trigger};
use updraft_platform::Message;

use crate::views::{
    AsyncEventView, ExecutionStartedView, ExecutionView, PublishedView, QueueSentView, QueueView, TopicListView,
    TopicView,
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
    let message_id = state.platform.events().send_to_queue(&queue, body, content_type).await?;
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
