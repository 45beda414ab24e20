//! Views of functions, their configuration and versions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use updraft_model::Trigger;
use updraft_platform::{FunctionInfo, VersionInfo};
use utoipa::ToSchema;

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
    /// The canary deploy running, if any (shown by `GET /v1/functions/{name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryView>,
}

/// A version's configuration.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    pub runtime: String,
    /// A Lambda function's `module.function` (or a custom runtime's handler).
    #[serde(default)]
    pub handler: Option<String>,
    /// An `http` function's command, which starts its server on `$PORT`.
    #[serde(default)]
    pub command: Option<String>,
    /// An `http` function's readiness path.
    #[serde(default)]
    pub readiness_path: Option<String>,
    /// `sha256:<hex>` of the code.
    pub artifact: String,
    pub memory_bytes: u64,
    pub timeout_ms: u64,
    /// `null`: the account's limit.
    pub concurrency: Option<u32>,
    pub instance_reuse: bool,
    /// How many requests one instance runs at once: a web server's
    /// `concurrency_per_instance`, or a WASIp3 component's with `instance_reuse`.
    pub concurrency_per_instance: u32,
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
    /// The topics whose trigger names an alias, with the alias whose version runs each
    /// message.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub topic_aliases: std::collections::BTreeMap<String, String>,
    /// Whether a chain of invocations may run the function more than 16 times
    /// (`recursive_loop = "allow"`); by default such a loop is stopped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recursive_loop_allowed: bool,
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
    /// The alias whose version serves the route, if the trigger names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The API Gateway payload format a Lambda handler gets: `2.0` (HTTP API, the
    /// default) or `1.0` (REST API).
    #[serde(default = "http_api")]
    pub payload_format: String,
}

fn http_api() -> String {
    updraft_model::PayloadFormat::HttpApi.as_str().to_owned()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueTriggerView {
    pub queue: String,
    pub batch_size: u32,
    pub batch_window_ms: u64,
    pub visibility_timeout_ms: u64,
    pub max_receives: u32,
    pub dead_letter_queue: String,
    /// The alias whose version runs each batch, if the trigger names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
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
    fn new(version: &VersionInfo) -> Self {
        let config = &version.config;
        Self {
            runtime: config.runtime.to_string(),
            handler: config.handler.clone(),
            command: config.server.as_ref().map(|server| server.command.clone()),
            readiness_path: config.server.as_ref().map(|server| server.readiness_path.clone()),
            artifact: version.artifact.to_string(),
            memory_bytes: config.memory.bytes(),
            timeout_ms: config.timeout.as_millis() as u64,
            concurrency: config.concurrency,
            instance_reuse: config.instance_reuse,
            concurrency_per_instance: config
                .server
                .as_ref()
                .map_or(config.concurrency_per_instance, |server| server.concurrency_per_instance),
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
                        alias: http.alias.as_ref().map(ToString::to_string),
                        payload_format: http.payload_format.as_str().to_owned(),
                    }),
                    Trigger::Webhook(webhook) => Some(RouteView {
                        kind: "webhook".to_owned(),
                        methods: webhook.methods.to_string(),
                        route: webhook.route.to_string(),
                        auth: "public".to_owned(),
                        secret_env: webhook.secret_env.clone(),
                        secret: webhook.secret.as_ref().map(ToString::to_string),
                        alias: None,
                        payload_format: http_api(),
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
                        alias: queue.alias.as_ref().map(ToString::to_string),
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
            topic_aliases: config
                .triggers
                .iter()
                .filter_map(|trigger| match trigger {
                    Trigger::Topic(topic) => Some((topic.topic.to_string(), topic.alias.as_ref()?.to_string())),
                    _ => None,
                })
                .collect(),
            recursive_loop_allowed: config.recursive_loop == updraft_model::RecursiveLoop::Allow,
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
pub(crate) fn redacted_env(config: &updraft_model::FunctionConfig) -> BTreeMap<String, String> {
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
    pub(crate) fn new(record: &FunctionInfo) -> Self {
        Self {
            name: record.name.to_string(),
            app: record.app.to_string(),
            version: record.current.version.0,
            latest_version: record.latest_version.0,
            config: ConfigView::new(&record.current),
            created_at_ms: record.created_at,
            updated_at_ms: record.updated_at,
            canary: None,
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
    pub(crate) fn new(version: &VersionInfo, current: u32) -> Self {
        Self {
            version: version.version.0,
            current: version.version.0 == current,
            config: ConfigView::new(version),
            created_at_ms: version.created_at,
        }
    }
}

/// A canary deploy of a function.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CanaryView {
    pub function: String,
    /// The version that served before the deploy and took the rest of the invocations.
    pub previous_version: u32,
    /// The new version's share of invocations, in percent.
    pub percent: f64,
    pub started_at_ms: i64,
    pub ends_at_ms: i64,
}

impl CanaryView {
    pub fn new(canary: &updraft_platform::CanaryInfo) -> Self {
        CanaryView {
            function: canary.function.to_string(),
            previous_version: canary.previous.0,
            percent: canary.share * 100.0,
            started_at_ms: canary.started_at,
            ends_at_ms: canary.ends_at,
        }
    }
}
