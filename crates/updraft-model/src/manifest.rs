//! The `updraft.toml` manifest: an app, its functions and their triggers.
//!
//! Parsing walks the TOML tree by hand instead of deriving `Deserialize`, so that one
//! pass reports every mistake at once, each with its field path and a fix, and so that
//! unknown keys get a "did you mean" suggestion.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    AppName, ByteSize, CatchUp, FunctionName, MethodSet, QueueName, RoutePattern, ScheduleExpression, SecretName,
    Timezone, TopicName,
};

mod parse;

/// A parsed and validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub app: AppName,
    pub functions: BTreeMap<FunctionName, FunctionSpec>,
    /// `[workflows.NAME]`: state machines whose tasks run this app's functions.
    pub workflows: BTreeMap<FunctionName, WorkflowSpec>,
}

/// A `[workflows.NAME]` table: an Amazon States Language definition.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowSpec {
    pub machine: crate::StateMachine,
    /// The definition as written, kept with each execution.
    pub definition: serde_json::Value,
}

/// One `[functions.NAME]` table: where the code comes from and how it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// `source`: a path relative to the manifest's folder (a `.wasm` file for `wasm`).
    pub source: String,
    /// `build`: how to produce `source`, run by the CLI before uploading.
    pub build: Option<BuildSpec>,
    /// `aliases`: names for the function's versions the deploy sets, each naming a
    /// version by number or (`None`, written `"$LATEST"`) the version serving. Not part
    /// of a version: changing one changes the alias, not the function.
    pub aliases: BTreeMap<crate::AliasName, Option<crate::VersionNumber>>,
    /// Everything that decides how the function runs; a change here makes a new version.
    pub config: FunctionConfig,
}

/// `build = { command = "...", workdir = "..." }` or `build = "command"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    pub command: String,
    /// Relative to the manifest's folder; the folder itself when absent.
    pub workdir: Option<String>,
}

/// How a function runs. Persisted with each version, so its serialized form is stable:
/// add fields with `#[serde(default)]`, never rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionConfig {
    pub runtime: RuntimeKind,
    /// `handler` for Lambda runtimes (`module.function`); unused by `wasm`.
    #[serde(default)]
    pub handler: Option<String>,
    /// For `runtime = "http"`: the web server the function is, and how it is reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerSpec>,
    pub memory: ByteSize,
    #[serde(with = "duration_millis")]
    pub timeout: Duration,
    /// At most this many invocations at once; `None` means the account's limit.
    #[serde(default)]
    pub concurrency: Option<u32>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Environment variables whose values are secrets (`env = { KEY = { secret =
    /// "NAME" } }`): the server puts in the secret's value when an instance starts, and
    /// nothing but the name is stored with the version or shown.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, SecretName>,
    /// Hosts the function may call (`"api.example.com"`, `"*.example.com"`,
    /// `"127.0.0.1:8080"`, or `"*"` for any); empty means no outbound network.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Whether an instance that finished cleanly serves later invocations (warm state
    /// in memory, at the cost of isolation between requests); off by default.
    #[serde(default)]
    pub instance_reuse: bool,
    /// How many requests one instance of a WASIp3 component (`wasi:http/handler@0.3`)
    /// with `instance_reuse` runs at once; 1, one at a time, by default. (A web server's
    /// is its `server.concurrency_per_instance`.)
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub concurrency_per_instance: u32,
    /// How long an idle instance is kept before it is stopped (scale to zero).
    #[serde(default = "default_idle_timeout", with = "duration_millis")]
    pub idle_timeout: Duration,
    /// Instances kept started even with no traffic (provisioned concurrency).
    #[serde(default)]
    pub min_instances: u32,
    /// How many times a failed asynchronous invocation is tried again (0–2).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// An asynchronous invocation older than this is not tried again (60 s – 6 h).
    #[serde(default = "default_max_event_age", with = "duration_millis")]
    pub max_event_age: Duration,
    /// Where the record of a successful asynchronous invocation goes.
    #[serde(default)]
    pub on_success: Option<Destination>,
    /// Where the record of an asynchronous invocation that failed for good goes.
    #[serde(default)]
    pub on_failure: Option<Destination>,
    /// The topic that gets the original event of an asynchronous invocation that
    /// failed for good (Lambda's dead-letter queue: the payload only, no response).
    #[serde(default)]
    pub dead_letter_topic: Option<TopicName>,
    /// Topics the function may publish to, with the token it is given at start
    /// (`UPDRAFT_TOKEN`, for `POST $UPDRAFT_API_URL/v1/topics/{topic}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publishes: Vec<TopicName>,
    /// Workflows it may start the same way (`POST .../v1/workflows/{name}/executions`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starts: Vec<FunctionName>,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// What the function is for, in a sentence (Lambda's `Description`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The Lambda runtime identifier a function made through Lambda's API was given
    /// (`python3.12`, `nodejs20.x`, `provided.al2023`), shown back as it was given; the
    /// host's interpreter of `runtime` runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_runtime: Option<String>,
    /// Whether an invocation that would run the function more than
    /// [`MAX_RECURSION`](crate::MAX_RECURSION) times in one chain is stopped (Lambda's
    /// recursive loop detection) or allowed.
    #[serde(default, skip_serializing_if = "RecursiveLoop::is_terminate")]
    pub recursive_loop: RecursiveLoop,
}

/// What happens to a chain of invocations that loops back to a function: Lambda's
/// `RecursiveLoop` setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecursiveLoop {
    /// Stopped after [`MAX_RECURSION`](crate::MAX_RECURSION) invocations of the function.
    #[default]
    Terminate,
    /// Never stopped: the loop is intended.
    Allow,
}

impl RecursiveLoop {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Terminate => "terminate",
            Self::Allow => "allow",
        }
    }

    fn is_terminate(&self) -> bool {
        *self == Self::Terminate
    }
}

/// Lambda's default: two retries after the first attempt.
pub const DEFAULT_RETRIES: u32 = 2;

fn default_retries() -> u32 {
    DEFAULT_RETRIES
}

fn default_max_event_age() -> Duration {
    Duration::from_secs(6 * 3600)
}

fn default_idle_timeout() -> Duration {
    crate::Limits::default().default_idle_timeout
}

impl FunctionConfig {
    /// A function of `runtime` with every other setting at its default under `limits`:
    /// what a manifest naming only the runtime (and no triggers) deploys.
    pub fn with_defaults(runtime: RuntimeKind, limits: &crate::Limits) -> Self {
        Self {
            runtime,
            handler: None,
            server: None,
            memory: limits.default_memory,
            timeout: limits.default_timeout,
            concurrency: None,
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
            allowed_outbound_hosts: Vec::new(),
            instance_reuse: false,
            concurrency_per_instance: 1,
            idle_timeout: limits.default_idle_timeout,
            min_instances: 0,
            retries: DEFAULT_RETRIES,
            max_event_age: default_max_event_age(),
            on_success: None,
            on_failure: None,
            dead_letter_topic: None,
            publishes: Vec::new(),
            starts: Vec::new(),
            triggers: Vec::new(),
            description: None,
            lambda_runtime: None,
            recursive_loop: Default::default(),
        }
    }

    /// Whether the function reads an HTTP request's body as it arrives (a web server,
    /// `runtime = "http"`), rather than whole once the gateway has all of it (a wasm
    /// guest, a Lambda handler's API Gateway event).
    pub fn streams_requests(&self) -> bool {
        self.runtime == RuntimeKind::Http
    }

    /// The hex sha256 of this configuration's JSON form. Two configurations with the same
    /// fingerprint run the same way, so a deploy that changes neither the artifact nor the
    /// fingerprint makes no new version. Maps are `BTreeMap`s, so the JSON is canonical.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        // Serializing cannot fail: every map has string keys and there are no floats.
        let json = serde_json::to_vec(self).expect("a FunctionConfig always serializes to JSON");
        hex::encode(sha2::Sha256::digest(json))
    }
}

/// The kind of code a function is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// A WebAssembly component exporting `wasi:http/incoming-handler`.
    Wasm,
    /// An AWS Lambda Python handler.
    Python3,
    /// An AWS Lambda Node.js handler.
    Nodejs,
    /// An AWS Lambda custom runtime: an executable `bootstrap`.
    Provided,
    /// A web server (Flask, FastAPI, Express, ...) started by a command: it listens on
    /// `$PORT` and is sent each request, and each event as a CloudEvents `POST`.
    Http,
}

/// How an `http` function's server starts and takes requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// `command`: run with `/bin/sh -c` in `/var/task`, it must listen on
    /// `127.0.0.1:$PORT`.
    pub command: String,
    /// `readiness_path`: the instance is ready once a `GET` of it answers with a status
    /// below 500 (as AWS's Lambda Web Adapter checks).
    pub readiness_path: String,
    /// `concurrency_per_instance`: requests one instance serves at once (1, as Lambda
    /// gives them; higher, as Cloud Run does).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub concurrency_per_instance: u32,
}

fn one() -> u32 {
    1
}

fn is_one(value: &u32) -> bool {
    *value == 1
}

impl ServerSpec {
    /// The port the server listens on inside its own network namespace.
    pub const PORT: u16 = 8080;
    pub const DEFAULT_READINESS_PATH: &str = "/";
    /// The most requests one instance may be given at once.
    pub const MAX_CONCURRENCY_PER_INSTANCE: u32 = 1000;
}

impl RuntimeKind {
    pub const ALL: [RuntimeKind; 5] =
        [RuntimeKind::Wasm, RuntimeKind::Python3, RuntimeKind::Nodejs, RuntimeKind::Provided, RuntimeKind::Http];

    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Wasm => "wasm",
            RuntimeKind::Python3 => "python3",
            RuntimeKind::Nodejs => "nodejs",
            RuntimeKind::Provided => "provided",
            RuntimeKind::Http => "http",
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event source bound to a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Http(HttpTrigger),
    Webhook(WebhookTrigger),
    Topic(TopicTrigger),
    Schedule(ScheduleTrigger),
    Queue(QueueTrigger),
    Email(EmailTrigger),
}

/// `{ email = "signup@example.com" }` or `{ email = "*@inbound.example.com" }`: mail
/// the SMTP listener accepts for the address (or any address of the domain).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EmailTrigger {
    /// Lowercase; `*@domain` claims every address of the domain.
    pub address: String,
}

impl EmailTrigger {
    /// Whether mail for `recipient` (any case) is this trigger's.
    pub fn claims(&self, recipient: &str) -> bool {
        let recipient = recipient.to_ascii_lowercase();
        match self.address.strip_prefix("*@") {
            Some(domain) => recipient.rsplit_once('@').is_some_and(|(_, at)| at == domain),
            None => recipient == self.address,
        }
    }
}

/// `{ queue = "jobs", batch_size = 10, batch_window = "2s" }`: batches of messages
/// sent to a work queue, each message handled by one consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueTrigger {
    pub queue: QueueName,
    /// The most messages in one invocation (1–10,000; default 10).
    pub batch_size: u32,
    /// How long to wait for a full batch once a message is waiting (0–300 s; default 0).
    #[serde(with = "duration_millis")]
    pub batch_window: Duration,
    /// How long a delivered message stays invisible to other deliveries; it comes back
    /// if its batch does not succeed in that time (default 30 s, 1 s – 12 h).
    #[serde(with = "duration_millis")]
    pub visibility_timeout: Duration,
    /// Deliveries of a message before it moves to the dead-letter queue (1–1,000; default 5).
    pub max_receives: u32,
    /// Where a message goes after `max_receives` deliveries (default `<queue>-dlq`).
    pub dead_letter_queue: QueueName,
    /// `alias`: each batch runs the version this alias of the function picks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<crate::AliasName>,
}

/// `{ webhook = "POST /hooks/ci", secret_env = "CI_SECRET" }`: the request is answered
/// `202` once stored and delivered to the function asynchronously.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WebhookTrigger {
    pub methods: MethodSet,
    pub route: RoutePattern,
    /// The name of one of the function's `env` variables holding the secret that
    /// signs each request (GitHub's `X-Hub-Signature-256`: `sha256=` and the hex
    /// HMAC-SHA256 of the body). Unsigned or wrongly signed requests are refused.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Or the name of a stored secret (`updraft secrets set`) holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretName>,
}

impl WebhookTrigger {
    /// The route claim it makes, checked against HTTP triggers' claims.
    pub fn as_route(&self) -> HttpTrigger {
        HttpTrigger {
            methods: self.methods.clone(),
            route: self.route.clone(),
            auth: HttpAuth::Public,
            alias: None,
            payload_format: PayloadFormat::default(),
        }
    }
}

/// `{ topic = "user.signed_up" }`: every message published to the topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TopicTrigger {
    pub topic: TopicName,
    /// `alias`: each message runs the version this alias of the function picks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<crate::AliasName>,
}

/// `{ schedule = "rate(5 minutes)" }` or `{ schedule = "0 9 * * MON-FRI",
/// timezone = "Europe/Paris", catch_up = "skip" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleTrigger {
    pub schedule: ScheduleExpression,
    #[serde(default = "utc")]
    pub timezone: Timezone,
    #[serde(default)]
    pub catch_up: CatchUp,
}

fn utc() -> Timezone {
    Timezone::UTC
}

/// Where an asynchronous invocation's outcome is sent: `{ function = "audit" }` or
/// `{ topic = "signup.dead" }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    Function(FunctionName),
    Topic(TopicName),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Function(name) => write!(f, "function {name}"),
            Destination::Topic(topic) => write!(f, "topic {topic}"),
        }
    }
}

/// `{ http = "GET,POST /users/{id}", auth = "key" }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HttpTrigger {
    pub methods: MethodSet,
    pub route: RoutePattern,
    #[serde(default)]
    pub auth: HttpAuth,
    /// `alias`: the route serves the version this alias of the function picks (its
    /// version, or its weighted second one), not the version serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<crate::AliasName>,
    /// `payload_format`: the API Gateway event a Lambda handler gets for the request.
    #[serde(default, skip_serializing_if = "PayloadFormat::is_http_api")]
    pub payload_format: PayloadFormat,
}

/// The API Gateway payload format of a Lambda handler's HTTP events and answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PayloadFormat {
    /// HTTP API's `2.0` (the default): `rawPath`, `requestContext.http`, `cookies`; an
    /// answer may be any JSON.
    #[default]
    #[serde(rename = "2.0")]
    HttpApi,
    /// REST API's `1.0`, what SAM's `Api` events give: `httpMethod`, `path`, `resource`,
    /// multi-value headers and query; an answer must describe a response.
    #[serde(rename = "1.0")]
    RestApi,
}

impl PayloadFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpApi => "2.0",
            Self::RestApi => "1.0",
        }
    }

    fn is_http_api(&self) -> bool {
        *self == Self::HttpApi
    }
}

/// Who may call an HTTP trigger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpAuth {
    /// Anyone (the default).
    #[default]
    Public,
    /// Callers presenting a valid Updraft API key as a bearer token.
    Key,
}

/// One mistake in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestProblem {
    /// The field's dotted path, e.g. `functions.hello.timeout`; empty for the whole file.
    pub field: String,
    /// What is wrong and how to fix it, as a sentence.
    pub message: String,
}

/// Everything wrong with a manifest, reported at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The file name shown in messages, e.g. `updraft.toml`.
    pub file: String,
    pub problems: Vec<ManifestProblem>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(f, "{} has {count} problem{}:", self.file, if count == 1 { "" } else { "s" })?;
        for problem in &self.problems {
            if problem.field.is_empty() {
                write!(f, "\n  {}: {}", self.file, problem.message)?;
            } else {
                write!(f, "\n  {}: {}: {}", self.file, problem.field, problem.message)?;
            }
        }
        Ok(())
    }
}

mod duration_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> FunctionConfig {
        FunctionConfig {
            runtime: RuntimeKind::Wasm,
            handler: None,
            server: None,
            memory: ByteSize::mib(128),
            timeout: Duration::from_secs(3),
            concurrency: None,
            env: BTreeMap::from([("A".to_owned(), "1".to_owned()), ("B".to_owned(), "2".to_owned())]),
            secret_env: BTreeMap::new(),
            allowed_outbound_hosts: Vec::new(),
            instance_reuse: false,
            concurrency_per_instance: 1,
            idle_timeout: Duration::from_secs(600),
            min_instances: 0,
            retries: 2,
            max_event_age: Duration::from_secs(6 * 3600),
            on_success: None,
            on_failure: Some(Destination::Topic(TopicName::new("dead").unwrap())),
            dead_letter_topic: None,
            publishes: Vec::new(),
            starts: Vec::new(),
            triggers: vec![
                Trigger::Http(HttpTrigger {
                    methods: MethodSet { methods: vec!["GET".to_owned()] },
                    route: RoutePattern::parse("/hello").unwrap(),
                    auth: HttpAuth::Public,
                    alias: None,
                    payload_format: PayloadFormat::default(),
                }),
                Trigger::Topic(TopicTrigger { topic: TopicName::new("user.signed_up").unwrap(), alias: None }),
                Trigger::Schedule(ScheduleTrigger {
                    schedule: ScheduleExpression::parse("0 9 * * MON-FRI").unwrap(),
                    timezone: Timezone::parse("Europe/Paris").unwrap(),
                    catch_up: CatchUp::Skip,
                }),
            ],
            description: None,
            lambda_runtime: None,
            recursive_loop: Default::default(),
        }
    }

    #[test]
    fn fingerprints_change_with_the_config_only() {
        let fingerprint = config().fingerprint();
        assert_eq!(fingerprint.len(), 64);
        assert!(fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(config().fingerprint(), fingerprint);

        let mut changed = config();
        changed.env.insert("C".to_owned(), "3".to_owned());
        assert_ne!(changed.fingerprint(), fingerprint);

        let mut changed = config();
        changed.timeout = Duration::from_secs(4);
        assert_ne!(changed.fingerprint(), fingerprint);
    }

    #[test]
    fn configs_round_trip_through_json() {
        let json = serde_json::to_string(&config()).unwrap();
        assert_eq!(serde_json::from_str::<FunctionConfig>(&json).unwrap(), config());
    }
}
