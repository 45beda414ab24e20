//! What the API answers: serializable views, separate from the domain types so the
//! wire shape changes only on purpose.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use updraft_model::Trigger;
use updraft_platform::{DeployOutcome, FunctionRecord, LogLineRecord, VersionRecord};
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorView {
    /// Stable and machine-readable, e.g. `invalid_manifest`, `function_timeout`.
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
    /// For `invalid_manifest`: every problem found, each with its field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemView>,
    /// For `too_many_requests`: which concurrency limit was hit (`function`, `account`
    /// or `node`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProblemView {
    /// Dotted path of the field, e.g. `functions.hello.timeout`.
    pub field: String,
    pub message: String,
}

/// A stored artifact.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ArtifactView {
    /// `sha256:<64 hex digits>`.
    pub digest: String,
    pub size: u64,
}

/// The result of a deploy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeployView {
    pub app: String,
    /// Counts the app's deploys.
    pub generation: i64,
    pub functions: Vec<DeployedFunctionView>,
    /// Functions the app no longer declares, now deleted.
    pub removed: Vec<String>,
    /// What the operator should know about how the deployed functions run (a sandbox
    /// layer the server runs without, say).
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeployedFunctionView {
    pub name: String,
    /// The version serving after the deploy.
    pub version: u32,
    /// Whether this deploy created that version.
    pub changed: bool,
}

impl DeployView {
    pub(crate) fn new(app: &str, outcome: &DeployOutcome, warnings: Vec<String>) -> Self {
        Self {
            app: app.to_owned(),
            generation: outcome.generation,
            functions: outcome
                .functions
                .iter()
                .map(|f| DeployedFunctionView { name: f.name.to_string(), version: f.version.0, changed: f.changed })
                .collect(),
            removed: outcome.removed.iter().map(ToString::to_string).collect(),
            warnings,
        }
    }
}

/// The server and how it can run functions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusView {
    /// The server's version.
    pub version: String,
    pub node_id: String,
    /// Whether wasmtime's pooling allocator is in use.
    pub pooling: bool,
    /// Where asynchronous events wait: `database` or `jetstream`.
    pub event_queue: String,
    /// The Lambda runtime's sandbox on this host; absent when the server runs no
    /// Lambda functions.
    pub sandbox: Option<SandboxView>,
}

/// The process sandbox's layers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SandboxView {
    /// Whether Lambda functions run here (no layer is missing without the operator's
    /// leave).
    pub ready: bool,
    pub layers: Vec<SandboxLayerView>,
}

/// One layer of the process sandbox.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SandboxLayerView {
    /// `namespaces`, `cgroup-memory`, `cgroup-pids`, `cgroup-cpu`, `landlock`,
    /// `seccomp` or `no-new-privs`.
    pub layer: String,
    /// `ok`, `missing` (Lambda functions do not run) or `allowed-missing` (they run
    /// without it, as the operator allowed with `--sandbox-allow-missing`).
    pub state: String,
    /// What is in place, or why it is not.
    pub detail: String,
    /// How to get the layer, when it is not in place.
    pub fix: Option<String>,
}

impl SandboxView {
    pub(crate) fn new(status: &updraft_platform::SandboxStatus) -> Self {
        use updraft_platform::LayerState;
        SandboxView {
            ready: status.check().is_ok(),
            layers: status
                .layers
                .iter()
                .map(|layer| SandboxLayerView {
                    layer: layer.layer.as_str().to_owned(),
                    state: layer.state.as_str().to_owned(),
                    detail: layer.detail.clone(),
                    fix: (layer.state != LayerState::Ok).then(|| layer.layer.fix().to_owned()),
                })
                .collect(),
        }
    }
}

/// A function and the version serving it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FunctionView {
    pub name: String,
    pub app: String,
    /// The version serving traffic.
    pub version: u32,
    pub latest_version: u32,
    #[serde(flatten)]
    pub config: ConfigView,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A version's configuration.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    pub runtime: String,
    /// `sha256:<hex>` of the code.
    pub artifact: String,
    pub memory_bytes: u64,
    pub timeout_ms: u64,
    /// `null`: the account's limit.
    pub concurrency: Option<u32>,
    pub instance_reuse: bool,
    /// Plain variables (a webhook secret's value is shown as `(secret)`).
    pub env: BTreeMap<String, String>,
    /// Variables whose values are stored secrets: the variable and the secret's name,
    /// never its value.
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub routes: Vec<RouteView>,
    /// Topics the function subscribes to.
    pub topics: Vec<String>,
    /// Work queues the function consumes.
    pub queues: Vec<QueueTriggerView>,
    /// Addresses whose mail the function receives (`*@domain`: all of the domain's).
    pub emails: Vec<String>,
    pub schedules: Vec<ScheduleView>,
    /// Retries of a failed asynchronous invocation (0–2).
    pub retries: u32,
    pub max_event_age_ms: u64,
    /// `function NAME` or `topic NAME`.
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub dead_letter_topic: Option<String>,
    /// Topics its token may publish to.
    #[serde(default)]
    pub publishes: Vec<String>,
    /// Workflows its token may start.
    #[serde(default)]
    pub starts: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RouteView {
    /// `http` (answered by the function) or `webhook` (stored, answered 202, delivered later).
    pub kind: String,
    /// `*` or comma-separated methods.
    pub methods: String,
    pub route: String,
    /// `public` or `key`.
    pub auth: String,
    /// For a signed webhook: the env variable holding its secret (its value is not shown).
    pub secret_env: Option<String>,
    /// For a webhook signed with a stored secret: the secret's name.
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueTriggerView {
    pub queue: String,
    pub batch_size: u32,
    pub batch_window_ms: u64,
    pub visibility_timeout_ms: u64,
    pub max_receives: u32,
    pub dead_letter_queue: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    /// `rate(5 minutes)` or a cron expression.
    pub schedule: String,
    pub timezone: String,
    /// `latest`, `skip` or `all`.
    pub catch_up: String,
}

impl ConfigView {
    fn new(version: &VersionRecord) -> Self {
        let config = &version.config;
        Self {
            runtime: config.runtime.to_string(),
            artifact: version.artifact.to_string(),
            memory_bytes: config.memory.bytes(),
            timeout_ms: config.timeout.as_millis() as u64,
            concurrency: config.concurrency,
            instance_reuse: config.instance_reuse,
            env: redacted_env(config),
            secret_env: config
                .secret_env
                .iter()
                .map(|(variable, secret)| (variable.clone(), secret.to_string()))
                .collect(),
            allowed_outbound_hosts: config.allowed_outbound_hosts.clone(),
            routes: config
                .triggers
                .iter()
                .filter_map(|trigger| match trigger {
                    Trigger::Http(http) => Some(RouteView {
                        kind: "http".to_owned(),
                        methods: http.methods.to_string(),
                        route: http.route.to_string(),
                        auth: match http.auth {
                            updraft_model::HttpAuth::Public => "public".to_owned(),
                            updraft_model::HttpAuth::Key => "key".to_owned(),
                        },
                        secret_env: None,
                        secret: None,
                    }),
                    Trigger::Webhook(webhook) => Some(RouteView {
                        kind: "webhook".to_owned(),
                        methods: webhook.methods.to_string(),
                        route: webhook.route.to_string(),
                        auth: "public".to_owned(),
                        secret_env: webhook.secret_env.clone(),
                        secret: webhook.secret.as_ref().map(ToString::to_string),
                    }),
                    Trigger::Topic(_) | Trigger::Schedule(_) | Trigger::Queue(_) | Trigger::Email(_) => None,
                })
                .collect(),
            emails: config
                .triggers
                .iter()
                .filter_map(|trigger| match trigger {
                    Trigger::Email(email) => Some(email.address.clone()),
                    _ => None,
                })
                .collect(),
            queues: config
                .triggers
                .iter()
                .filter_map(|trigger| match trigger {
                    Trigger::Queue(queue) => Some(QueueTriggerView {
                        queue: queue.queue.to_string(),
                        batch_size: queue.batch_size,
                        batch_window_ms: queue.batch_window.as_millis() as u64,
                        visibility_timeout_ms: queue.visibility_timeout.as_millis() as u64,
                        max_receives: queue.max_receives,
                        dead_letter_queue: queue.dead_letter_queue.to_string(),
                    }),
                    _ => None,
                })
                .collect(),
            topics: config
                .triggers
                .iter()
                .filter_map(|trigger| match trigger {
                    Trigger::Topic(topic) => Some(topic.topic.to_string()),
                    _ => None,
                })
                .collect(),
            schedules: config
                .triggers
                .iter()
                .filter_map(|trigger| match trigger {
                    Trigger::Schedule(schedule) => Some(ScheduleView {
                        schedule: schedule.schedule.to_string(),
                        timezone: schedule.timezone.name().to_owned(),
                        catch_up: schedule.catch_up.as_str().to_owned(),
                    }),
                    _ => None,
                })
                .collect(),
            retries: config.retries,
            max_event_age_ms: config.max_event_age.as_millis() as u64,
            on_success: config.on_success.as_ref().map(ToString::to_string),
            on_failure: config.on_failure.as_ref().map(ToString::to_string),
            dead_letter_topic: config.dead_letter_topic.as_ref().map(ToString::to_string),
            publishes: config.publishes.iter().map(ToString::to_string).collect(),
            starts: config.starts.iter().map(ToString::to_string).collect(),
        }
    }
}

/// The function's env with the values of webhook secrets hidden.
fn redacted_env(config: &updraft_model::FunctionConfig) -> BTreeMap<String, String> {
    let mut env = config.env.clone();
    for trigger in &config.triggers {
        if let Trigger::Webhook(updraft_model::WebhookTrigger { secret_env: Some(name), .. }) = trigger
            && let Some(value) = env.get_mut(name)
        {
            *value = "(secret)".to_owned();
        }
    }
    env
}

impl FunctionView {
    pub(crate) fn new(record: &FunctionRecord) -> Self {
        Self {
            name: record.name.to_string(),
            app: record.app.to_string(),
            version: record.current.version.0,
            latest_version: record.latest_version.0,
            config: ConfigView::new(&record.current),
            created_at_ms: record.created_at,
            updated_at_ms: record.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FunctionListView {
    /// By name.
    pub functions: Vec<FunctionView>,
    /// When more follow: pass it as `after` for the next page.
    #[serde(default)]
    pub next_after: Option<String>,
}

/// One immutable version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    pub version: u32,
    /// Whether this version serves traffic now.
    pub current: bool,
    #[serde(flatten)]
    pub config: ConfigView,
    pub created_at_ms: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionListView {
    pub function: String,
    /// Newest first.
    pub versions: Vec<VersionView>,
}

impl VersionView {
    pub(crate) fn new(version: &VersionRecord, current: u32) -> Self {
        Self {
            version: version.version.0,
            current: version.version.0 == current,
            config: ConfigView::new(version),
            created_at_ms: version.created_at,
        }
    }
}

/// A line a function wrote, or a platform note about its invocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogLineView {
    /// Position; pass the last one as `after` to follow.
    pub id: i64,
    pub at_ms: i64,
    pub version: u32,
    pub request_id: String,
    /// `stdout`, `stderr` or `platform`.
    pub stream: String,
    pub line: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogListView {
    pub function: String,
    pub lines: Vec<LogLineView>,
    /// Pass as `after` to get the lines that follow these.
    pub next_after: i64,
}

impl LogLineView {
    pub(crate) fn new(record: &LogLineRecord) -> Self {
        Self {
            id: record.id,
            at_ms: record.line.at,
            version: record.line.version.0,
            request_id: record.line.request_id.clone(),
            stream: record.line.stream.clone(),
            line: record.line.line.clone(),
        }
    }
}

/// One invocation's record.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvocationView {
    /// The request id, which also tags the invocation's log lines.
    pub id: String,
    pub function: String,
    pub version: u32,
    /// `http`, `direct`, `async`, `topic`, `schedule` or `webhook`.
    pub trigger: String,
    /// When it arrived, in ms since the Unix epoch.
    pub started_at_ms: i64,
    /// Handler start to finish, in milliseconds (fractional).
    pub duration_ms: f64,
    /// Duration rounded up to the millisecond.
    pub billed_duration_ms: u64,
    /// Time to start the instance, for a cold start.
    pub init_duration_ms: Option<f64>,
    pub cold: bool,
    pub memory_limit_mb: u64,
    pub max_memory_used_mb: u64,
    /// `success`, `error`, `timeout` or `throttled`.
    pub status: String,
    /// Lambda-style, e.g. `Sandbox.Timedout`, `Runtime.OutOfMemory`.
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    /// W3C trace id.
    pub trace_id: String,
    /// Lines of the function's output that were not kept (over its log budget, or
    /// while the server's log writer was behind).
    #[serde(default)]
    pub log_lines_dropped: u64,
}

impl InvocationView {
    pub fn new(record: &updraft_platform::InvocationRecord) -> Self {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        Self {
            id: record.id.clone(),
            function: record.function.to_string(),
            version: record.version.0,
            trigger: record.trigger.as_str().to_owned(),
            started_at_ms: record.started_at,
            duration_ms: ms(record.duration),
            billed_duration_ms: record.billed_duration_ms(),
            init_duration_ms: record.init_duration.map(ms),
            cold: record.cold,
            memory_limit_mb: record.memory_limit.div_ceil(1 << 20),
            max_memory_used_mb: record.max_memory_used.div_ceil(1 << 20),
            status: record.status.as_str().to_owned(),
            error_type: record.error_type.clone(),
            error_message: record.error_message.clone(),
            trace_id: record.trace_id.clone(),
            log_lines_dropped: record.log_lines_dropped,
        }
    }
}

/// A page of invocation records, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvocationListView {
    pub invocations: Vec<InvocationView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Usage and its cost.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UsageView {
    /// Invocations that ran (throttled ones are not billed).
    pub requests: u64,
    /// Billed duration × memory.
    pub gb_seconds: f64,
    pub cold_starts: u64,
    pub throttles: u64,
    pub errors: u64,
    /// In US dollars, from the server's price table.
    pub cost_usd: f64,
}

impl UsageView {
    pub fn new(usage: &updraft_platform::Usage, prices: &updraft_platform::PriceTable) -> Self {
        Self {
            requests: usage.requests,
            gb_seconds: usage.gb_seconds(),
            cold_starts: usage.cold_starts,
            throttles: usage.throttles,
            errors: usage.errors,
            cost_usd: usage.cost(prices),
        }
    }
}

/// One function's usage in one hour.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageHourView {
    pub function: String,
    /// The hour's start, in ms since the Unix epoch.
    pub hour_ms: i64,
    #[serde(flatten)]
    pub usage: UsageView,
}

/// One function's usage over the period.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FunctionUsageView {
    pub function: String,
    #[serde(flatten)]
    pub usage: UsageView,
}

/// The price table costs are computed with.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PricesView {
    pub per_million_requests_usd: f64,
    pub per_gb_second_usd: f64,
}

/// Usage per function per hour since a time, with totals and cost.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageReportView {
    /// The start of the first hour counted, in ms since the Unix epoch.
    pub since_ms: i64,
    pub prices: PricesView,
    pub total: UsageView,
    pub functions: Vec<FunctionUsageView>,
    pub hours: Vec<UsageHourView>,
}

/// A new access key, with its secret (shown once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessKeyCreatedView {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`: not shown again.
    pub secret_access_key: String,
    pub role: String,
    /// The region SigV4 signatures name.
    pub region: String,
}

impl AccessKeyCreatedView {
    pub fn new(key: &updraft_platform::AccessKey) -> Self {
        Self {
            access_key_id: key.id.clone(),
            secret_access_key: key.secret.clone(),
            role: key.role.as_str().to_owned(),
            region: updraft_platform::REGION.to_owned(),
        }
    }
}

/// An access key, without its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessKeyView {
    pub access_key_id: String,
    pub role: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl AccessKeyView {
    pub fn new(key: &updraft_platform::AccessKeyInfo) -> Self {
        Self { access_key_id: key.id.clone(), role: key.role.as_str().to_owned(), created_at: key.created_at }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessKeyListView {
    pub keys: Vec<AccessKeyView>,
}

/// An accepted asynchronous invocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AsyncAcceptedView {
    /// Its id: the request id of each attempt, in its records and logs.
    pub id: String,
    pub function: String,
}

/// An asynchronous invocation not yet delivered, or failed for good.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AsyncEventView {
    pub id: String,
    pub function: String,
    /// What it came from: `async` (invoke-async, Lambda's Event, a destination),
    /// `topic`, `schedule` or `webhook`.
    pub trigger: String,
    /// `queued` or `failed`.
    pub state: String,
    /// Attempts that ran and failed.
    pub attempts: i64,
    /// Milliseconds since the Unix epoch.
    pub enqueued_at: i64,
    pub last_error: Option<String>,
}

impl AsyncEventView {
    pub fn new(event: &updraft_platform::AsyncEvent) -> Self {
        Self {
            id: event.id.clone(),
            function: event.function.to_string(),
            trigger: event.source.trigger().as_str().to_owned(),
            state: event.state.as_str().to_owned(),
            attempts: event.attempts,
            enqueued_at: event.enqueued_at,
            last_error: event.last_error.clone(),
        }
    }
}

/// A message accepted by a topic: a copy for each subscriber is stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublishedView {
    pub message_id: String,
    pub topic: String,
    /// The functions that will each get a copy, with their own retries.
    pub subscribers: Vec<String>,
}

/// A topic that live functions subscribe to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopicView {
    pub topic: String,
    pub subscribers: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopicListView {
    pub topics: Vec<TopicView>,
}

/// A message stored in a work queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueSentView {
    pub message_id: String,
    pub queue: String,
}

/// A work queue's depth.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    pub queue: String,
    /// Messages waiting for delivery.
    pub visible: i64,
    /// Messages delivered and not yet handled (invisible until their visibility timeout).
    pub in_flight: i64,
    /// The functions consuming it.
    pub consumers: Vec<String>,
}

/// A workflow execution just started.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionStartedView {
    pub execution_id: String,
    pub workflow: String,
}

/// One entry of an execution's history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntryView {
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// `ExecutionStarted`, `StateEntered`, `TaskSucceeded`, `TaskFailed`, `TaskRetried`,
    /// `WaitStarted`, `ExecutionSucceeded` or `ExecutionFailed`.
    pub kind: String,
    pub state: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Option<serde_json::Value>,
}

/// A workflow execution: where it stands and how it got there.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionView {
    pub id: String,
    pub workflow: String,
    pub app: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// The state it is in, or ended in.
    pub state: String,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    #[schema(value_type = Object)]
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
    pub history: Vec<HistoryEntryView>,
}

impl ExecutionView {
    pub fn new(report: &updraft_platform::ExecutionReport) -> Self {
        let json =
            |text: &str| serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()));
        let execution = &report.execution;
        Self {
            id: execution.id.clone(),
            workflow: execution.workflow.to_string(),
            app: execution.app.to_string(),
            status: execution.status.clone(),
            state: execution.state.clone(),
            input: json(&execution.input),
            output: execution.output.as_deref().map(json),
            error: execution.error.clone(),
            cause: execution.cause.clone(),
            started_at_ms: execution.started_at,
            updated_at_ms: execution.updated_at,
            history: report
                .history
                .iter()
                .map(|entry| HistoryEntryView {
                    seq: entry.seq,
                    at_ms: entry.at,
                    kind: entry.kind.clone(),
                    state: entry.state.clone(),
                    detail: entry.detail.as_deref().map(json),
                })
                .collect(),
        }
    }
}

/// A secret as listed: never its value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretView {
    pub name: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The deployed functions whose environment or webhooks name it.
    pub used_by: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretListView {
    pub secrets: Vec<SecretView>,
}

/// What setting a secret did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretSetView {
    pub name: String,
    /// False when it replaced an earlier value.
    pub created: bool,
    /// The functions that get the new value in instances started from now on.
    pub used_by: Vec<String>,
}

/// A function's tokens after a rotation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenRotatedView {
    pub function: String,
    /// The generation tokens are signed for now; every earlier one is refused.
    pub generation: i64,
}

/// A rotation of the secrets key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyRotatedView {
    /// How many sealed values (access keys' secrets, secrets, the server's own keys)
    /// were sealed again with the new key.
    pub resealed: usize,
}

impl SecretView {
    pub(crate) fn new(info: &updraft_platform::SecretInfo) -> Self {
        SecretView {
            name: info.name.to_string(),
            created_at_ms: info.created_at,
            updated_at_ms: info.updated_at,
            used_by: info.used_by.iter().map(ToString::to_string).collect(),
        }
    }
}
