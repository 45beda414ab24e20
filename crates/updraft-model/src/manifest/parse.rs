//! `Manifest::parse`: reads `updraft.toml` into a `Manifest`, reporting every mistake.
//!
//! The TOML tree is walked by hand. Each check records a `ManifestProblem` and carries
//! on, so one run shows the user everything to fix. A check that fails yields `None`;
//! the manifest is assembled only when no check failed.
//!
//! Problems come out in a fixed order that does not depend on how the TOML library
//! orders keys: top-level keys, `[app]`, functions by name (each in the order of the
//! keys in `FUNCTION_KEYS`), and route conflicts last.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::{Table, Value};

use super::{
    BuildSpec, Destination, EmailTrigger, FunctionConfig, FunctionSpec, HttpAuth, HttpTrigger, Manifest, ManifestError,
    ManifestProblem, QueueTrigger, RuntimeKind, ScheduleTrigger, TopicTrigger, Trigger, WebhookTrigger, WorkflowSpec,
};
use crate::{
    AppName, ByteSize, CatchUp, FunctionName, Limits, MethodSet, QueueName, RoutePattern, RouteSegment,
    ScheduleExpression, SecretName, Timezone, TopicName, format_duration, parse_duration,
};

/// A function's `env` as written: plain values, and references to stored secrets.
#[derive(Debug, Default)]
struct ParsedEnv {
    plain: BTreeMap<String, String>,
    secrets: BTreeMap<String, SecretName>,
}

const TOP_KEYS: &[&str] = &["app", "functions", "workflows"];
const WORKFLOW_KEYS: &[&str] = &["definition"];
const APP_KEYS: &[&str] = &["name"];
const FUNCTION_KEYS: &[&str] = &[
    "runtime",
    "source",
    "build",
    "handler",
    "timeout",
    "memory",
    "concurrency",
    "env",
    "allowed_outbound_hosts",
    "instance_reuse",
    "idle_timeout",
    "min_instances",
    "retries",
    "max_event_age",
    "on_success",
    "on_failure",
    "dead_letter_topic",
    "publishes",
    "starts",
    "triggers",
];
/// Lambda's bounds on an asynchronous event's age.
const MIN_EVENT_AGE: Duration = Duration::from_secs(60);
const MAX_EVENT_AGE: Duration = Duration::from_secs(6 * 3600);
const BUILD_KEYS: &[&str] = &["command", "workdir"];
/// The kinds of trigger, each a key naming what the trigger listens to.
const TRIGGER_KINDS: &[&str] = &["http", "webhook", "topic", "schedule", "queue", "email"];
/// The other keys a trigger may have, each with the kind it belongs to.
const TRIGGER_OPTIONS: &[(&str, &str)] = &[
    ("auth", "http"),
    ("secret_env", "webhook"),
    ("secret", "webhook"),
    ("timezone", "schedule"),
    ("catch_up", "schedule"),
    ("batch_size", "queue"),
    ("batch_window", "queue"),
    ("visibility_timeout", "queue"),
    ("max_receives", "queue"),
    ("dead_letter_queue", "queue"),
];
const DESTINATION_KEYS: &[&str] = &["function", "topic"];

/// Keys that DESIGN.md promises but this version does not implement yet. They get a
/// "not supported yet" message instead of "unknown key", so nobody hunts for a typo.
const FUTURE_TOP_KEYS: &[&str] = &[];
const FUTURE_FUNCTION_KEYS: &[&str] = &[];
const FUTURE_TRIGGER_KINDS: &[&str] = &[];

/// The methods an HTTP trigger may name, in the order messages list them.
const HTTP_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl Manifest {
    /// Parses and validates `text`; `file` is the name used in messages (e.g.
    /// `updraft.toml`). Defaults for `timeout` and `memory` and the allowed ranges of
    /// `timeout`, `memory` and `concurrency` come from `limits`.
    ///
    /// On failure the error lists every problem found, each with its field path and a
    /// sentence saying how to fix it.
    pub fn parse(text: &str, file: &str, limits: &Limits) -> Result<Manifest, ManifestError> {
        let mut checker = Checker { file, limits, problems: Vec::new(), claims: Vec::new() };
        let manifest = match text.parse::<Table>() {
            Ok(root) => checker.manifest(&root),
            Err(error) => {
                // The TOML error already names the line and column and shows the text.
                checker.problem("", error.to_string().trim_end());
                None
            }
        };
        match manifest {
            Some(manifest) if checker.problems.is_empty() => Ok(manifest),
            _ => {
                if checker.problems.is_empty() {
                    // Every check that fails records why, so this is only a safety net.
                    checker.problem("", "the manifest could not be read; this is a bug in Updraft");
                }
                Err(ManifestError { file: file.to_owned(), problems: checker.problems })
            }
        }
    }
}

/// An HTTP trigger seen so far, kept to find two triggers claiming the same requests.
struct RouteClaim {
    /// The function's table name as written, valid or not.
    function: String,
    /// `functions.NAME.triggers[i]`.
    path: String,
    trigger: HttpTrigger,
}

/// The state of one parse: the problems found so far and the routes claimed so far.
struct Checker<'a> {
    file: &'a str,
    limits: &'a Limits,
    problems: Vec<ManifestProblem>,
    claims: Vec<RouteClaim>,
}

impl Checker<'_> {
    fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(ManifestProblem { field: field.to_owned(), message: message.into() });
    }

    fn manifest(&mut self, root: &Table) -> Option<Manifest> {
        self.unknown_keys("", root, TOP_KEYS, FUTURE_TOP_KEYS);
        let app = match root.get("app") {
            Some(value) => {
                let example = "[app] with name = \"my-app\"";
                self.table("app", value, example).and_then(|table| self.app(table))
            }
            None => {
                self.problem("app", "the [app] table is missing; add [app] with name = \"my-app\" at the top");
                None
            }
        };
        let functions = self.functions(root.get("functions"));
        self.route_conflicts();
        let workflows = self.optional(root, "", "workflows", |checker, path, value| {
            checker.workflows(path, value, root.get("functions").and_then(Value::as_table))
        });
        Some(Manifest { app: app?, functions: functions?, workflows: workflows?.unwrap_or_default() })
    }

    /// `[workflows.NAME]` tables, each a `definition` (Amazon States Language JSON in a
    /// multi-line string) whose tasks name functions of this app.
    fn workflows(
        &mut self,
        path: &str,
        value: &Value,
        functions: Option<&Table>,
    ) -> Option<BTreeMap<FunctionName, WorkflowSpec>> {
        let example = "[workflows.NAME] with definition = '''{ ... }'''";
        let table = self.table(path, value, example)?;
        let mut workflows = BTreeMap::new();
        let mut all_valid = true;
        for (name, value) in sorted(table) {
            let here = join(path, name);
            match self.workflow(&here, name, value, functions) {
                Some((name, workflow)) => {
                    workflows.insert(name, workflow);
                }
                None => all_valid = false,
            }
        }
        all_valid.then_some(workflows)
    }

    fn workflow(
        &mut self,
        path: &str,
        name: &str,
        value: &Value,
        functions: Option<&Table>,
    ) -> Option<(FunctionName, WorkflowSpec)> {
        let name =
            FunctionName::new(name).map_err(|invalid| self.problem(path, format!("{invalid}; rename the table"))).ok();
        let table = self.table(path, value, "[workflows.NAME] with definition = '''{ ... }'''")?;
        self.unknown_keys(path, table, WORKFLOW_KEYS, &[]);
        let definition_path = join(path, "definition");
        let Some(text) = table.get("definition") else {
            self.problem(
                &definition_path,
                "required but missing; paste the Amazon States Language JSON as definition = '''{ ... }'''",
            );
            return None;
        };
        let fix = "write the JSON in a multi-line string: definition = '''{ ... }'''";
        let text = self.string(&definition_path, text, fix)?;
        let definition: serde_json::Value = match serde_json::from_str(text) {
            Ok(definition) => definition,
            Err(error) => {
                self.problem(&definition_path, format!("not valid JSON ({error}); paste the state machine's JSON"));
                return None;
            }
        };
        let machine = match crate::StateMachine::parse(&definition) {
            Ok(machine) => machine,
            Err(problems) => {
                for problem in problems {
                    self.problem(&definition_path, problem);
                }
                return None;
            }
        };
        let mut known = true;
        for function in machine.functions() {
            if !functions.is_some_and(|functions| functions.contains_key(&function)) {
                self.problem(
                    &definition_path,
                    format!(
                        "a Task runs function {function:?}, which this app does not define; add \
                         [functions.{function}] or fix the Resource"
                    ),
                );
                known = false;
            }
        }
        known.then_some((name?, WorkflowSpec { machine, definition }))
    }

    fn app(&mut self, table: &Table) -> Option<AppName> {
        self.unknown_keys("app", table, APP_KEYS, &[]);
        let Some(value) = table.get("name") else {
            self.problem("app.name", "required but missing; add name = \"my-app\" under [app]");
            return None;
        };
        let name = self.string("app.name", value, "write it in quotes, like name = \"my-app\"")?;
        match AppName::new(name) {
            Ok(name) => Some(name),
            Err(invalid) => {
                self.problem("app.name", invalid.to_string());
                None
            }
        }
    }

    fn functions(&mut self, value: Option<&Value>) -> Option<BTreeMap<FunctionName, FunctionSpec>> {
        let add_one = "add a [functions.NAME] table with at least runtime and source";
        let Some(value) = value else {
            self.problem("functions", format!("the app has no functions; {add_one}"));
            return None;
        };
        let table = self.table("functions", value, "[functions.NAME] tables")?;
        if table.is_empty() {
            self.problem("functions", format!("the app has no functions; {add_one}"));
            return None;
        }
        let mut functions = BTreeMap::new();
        let mut all_valid = true;
        for (name, value) in sorted(table) {
            let path = join("functions", name);
            let function_name = match FunctionName::new(name) {
                Ok(function_name) => Some(function_name),
                Err(invalid) => {
                    self.problem(&path, format!("{invalid}; rename the table"));
                    None
                }
            };
            let example = format!("[functions.{name}] with runtime and source");
            let spec = self.table(&path, value, &example).and_then(|body| self.function(&path, name, body));
            match (function_name, spec) {
                (Some(function_name), Some(spec)) => {
                    functions.insert(function_name, spec);
                }
                _ => all_valid = false,
            }
        }
        all_valid.then_some(functions)
    }

    fn function(&mut self, path: &str, name: &str, table: &Table) -> Option<FunctionSpec> {
        self.unknown_keys(path, table, FUNCTION_KEYS, FUTURE_FUNCTION_KEYS);
        let runtime = match table.get("runtime") {
            Some(value) => self.runtime(&join(path, "runtime"), value),
            None => {
                self.problem(
                    &join(path, "runtime"),
                    format!("required but missing; add runtime = \"wasm\" (one of {})", runtime_list()),
                );
                None
            }
        };
        let source = match table.get("source") {
            Some(value) => self.source(&join(path, "source"), value),
            None => {
                self.problem(
                    &join(path, "source"),
                    format!(
                        "required but missing; add source = \"PATH\" with the path of the code, \
                         relative to {}",
                        self.file
                    ),
                );
                None
            }
        };
        let build = self.optional(table, path, "build", Self::build);
        let handler = self.handler(&join(path, "handler"), table.get("handler"), runtime);
        let timeout = self.optional(table, path, "timeout", Self::timeout);
        let memory = self.optional(table, path, "memory", Self::memory);
        let concurrency = self.optional(table, path, "concurrency", Self::concurrency);
        let env = self.optional(table, path, "env", Self::env);
        let hosts = self.optional(table, path, "allowed_outbound_hosts", Self::hosts);
        let instance_reuse = self.optional(table, path, "instance_reuse", |checker, path, value| match value {
            Value::Boolean(reuse) => Some(*reuse),
            other => {
                checker.expected(path, "true or false", other, "write instance_reuse = true or instance_reuse = false");
                None
            }
        });
        let idle_timeout = self.optional(table, path, "idle_timeout", Self::idle_timeout);
        let min_instances = self.optional(table, path, "min_instances", Self::min_instances);
        let retries = self.optional(table, path, "retries", Self::retries);
        let max_event_age = self.optional(table, path, "max_event_age", |checker, path, value| {
            checker.duration(path, value, "max_event_age", MIN_EVENT_AGE, MAX_EVENT_AGE)
        });
        let on_success = self.optional(table, path, "on_success", Self::destination);
        let on_failure = self.optional(table, path, "on_failure", Self::destination);
        let dead_letter_topic = self.optional(table, path, "dead_letter_topic", |checker, path, value| {
            let text = checker.string(path, value, "write it in quotes, like dead_letter_topic = \"signup.dead\"")?;
            checker.topic_name(path, text)
        });
        let publishes = self.optional(table, path, "publishes", |checker, path, value| {
            checker.list(path, value, "publishes = [\"user.signed_up\"]", |checker, path, text| {
                checker.topic_name(path, text)
            })
        });
        let starts = self.optional(table, path, "starts", |checker, path, value| {
            checker.list(path, value, "starts = [\"onboarding\"]", |checker, path, text| {
                text.parse::<FunctionName>().map_err(|invalid| checker.problem(path, invalid.to_string())).ok()
            })
        });
        let triggers =
            self.optional(table, path, "triggers", |checker, path, value| checker.triggers(path, name, value));
        if let (Some(Some(triggers)), Some(env)) = (&triggers, &env) {
            self.webhook_secrets(path, triggers, env.as_ref());
        }
        let env = env.map(|env| env.unwrap_or_default());
        for (key, destination) in [("on_success", &on_success), ("on_failure", &on_failure)] {
            if let Some(Some(Destination::Function(target))) = destination
                && target.as_str() == name
            {
                self.problem(
                    &join(path, key),
                    "a function cannot be its own destination (each record would invoke it again, forever); \
                     name another function or a topic",
                );
                return None;
            }
        }
        let (concurrency, min_instances) = (concurrency?, min_instances?);
        if let (Some(limit), Some(min)) = (concurrency, min_instances)
            && min > limit
        {
            self.problem(
                &join(path, "min_instances"),
                format!("{min} is above the function's concurrency {limit}; keep min_instances at most {limit}"),
            );
            return None;
        }
        Some(FunctionSpec {
            source: source?,
            build: build?,
            config: FunctionConfig {
                runtime: runtime?,
                handler: handler?,
                memory: memory?.unwrap_or(self.limits.default_memory),
                timeout: timeout?.unwrap_or(self.limits.default_timeout),
                concurrency,
                secret_env: env.as_ref()?.secrets.clone(),
                env: env?.plain,
                allowed_outbound_hosts: hosts?.unwrap_or_default(),
                instance_reuse: instance_reuse?.unwrap_or(false),
                idle_timeout: idle_timeout?.unwrap_or(self.limits.default_idle_timeout),
                min_instances: min_instances.unwrap_or(0),
                retries: retries?.unwrap_or(crate::manifest::DEFAULT_RETRIES),
                max_event_age: max_event_age?.unwrap_or(MAX_EVENT_AGE),
                on_success: on_success?,
                on_failure: on_failure?,
                dead_letter_topic: dead_letter_topic?,
                publishes: publishes?.unwrap_or_default(),
                starts: starts?.unwrap_or_default(),
                triggers: triggers?.unwrap_or_default(),
            },
        })
    }

    /// Checks `table[key]` with `check` when present: `Some(None)` when absent,
    /// `Some(Some(value))` when valid, `None` when a problem was recorded.
    fn optional<T>(
        &mut self,
        table: &Table,
        path: &str,
        key: &str,
        check: impl FnOnce(&mut Self, &str, &Value) -> Option<T>,
    ) -> Option<Option<T>> {
        match table.get(key) {
            None => Some(None),
            Some(value) => check(self, &join(path, key), value).map(Some),
        }
    }

    fn runtime(&mut self, path: &str, value: &Value) -> Option<RuntimeKind> {
        let text = self.string(path, value, "write it in quotes, like runtime = \"wasm\"")?;
        if let Some(runtime) = RuntimeKind::ALL.into_iter().find(|runtime| runtime.as_str() == text) {
            return Some(runtime);
        }
        let names = RuntimeKind::ALL.map(RuntimeKind::as_str);
        let mut message = format!("unknown runtime {text:?}; use one of {}", runtime_list());
        if let Some(suggestion) = did_you_mean(text, &names) {
            message = format!("unknown runtime {text:?}; did you mean {suggestion:?}? (one of {})", runtime_list());
        }
        self.problem(path, message);
        None
    }

    fn source(&mut self, path: &str, value: &Value) -> Option<String> {
        let text = self.string(path, value, "write the path in quotes, like source = \"hello.wasm\"")?;
        if text.trim().is_empty() {
            self.problem(path, format!("the path is empty; write the path of the code, relative to {}", self.file));
            return None;
        }
        Some(text.to_owned())
    }

    fn build(&mut self, path: &str, value: &Value) -> Option<BuildSpec> {
        match value {
            Value::String(command) => {
                let command = self.command(path, command)?;
                Some(BuildSpec { command, workdir: None })
            }
            Value::Table(table) => {
                self.unknown_keys(path, table, BUILD_KEYS, &[]);
                let command_path = join(path, "command");
                let command = match table.get("command") {
                    Some(value) => self
                        .string(&command_path, value, "write it in quotes, like command = \"make\"")
                        .and_then(|command| self.command(&command_path, command)),
                    None => {
                        self.problem(
                            &command_path,
                            "required but missing; add command = \"...\" with the build command",
                        );
                        None
                    }
                };
                let workdir = self.optional(table, path, "workdir", |checker, path, value| {
                    let workdir =
                        checker.string(path, value, "write the folder in quotes, like workdir = \"hello\"")?;
                    if workdir.trim().is_empty() {
                        checker.problem(
                            path,
                            format!(
                                "the folder is empty; name a folder relative to {}, or remove workdir \
                                 to build in the manifest's folder",
                                checker.file
                            ),
                        );
                        return None;
                    }
                    Some(workdir.to_owned())
                });
                Some(BuildSpec { command: command?, workdir: workdir? })
            }
            other => {
                self.expected(
                    path,
                    "a command string or a table",
                    other,
                    "write build = \"COMMAND\" or build = { command = \"COMMAND\", workdir = \"FOLDER\" }",
                );
                None
            }
        }
    }

    fn command(&mut self, path: &str, command: &str) -> Option<String> {
        if command.trim().is_empty() {
            self.problem(path, "the build command is empty; write the command, or remove build");
            return None;
        }
        Some(command.to_owned())
    }

    /// `handler`: required by python3 and nodejs, refused by wasm. `Some(None)` when it
    /// is absent and may be.
    fn handler(&mut self, path: &str, value: Option<&Value>, runtime: Option<RuntimeKind>) -> Option<Option<String>> {
        let lambda_runtimes = "python3, nodejs, provided";
        let Some(value) = value else {
            return match runtime {
                Some(runtime @ (RuntimeKind::Python3 | RuntimeKind::Nodejs)) => {
                    self.problem(
                        path,
                        format!(
                            "required by the {runtime} runtime but missing; add handler = \"MODULE.FUNCTION\", \
                             like handler = \"app.handler\""
                        ),
                    );
                    None
                }
                _ => Some(None),
            };
        };
        let text = self.string(path, value, "write it in quotes, like handler = \"app.handler\"")?;
        match runtime {
            Some(RuntimeKind::Wasm) => {
                self.problem(
                    path,
                    format!(
                        "handler is only for Lambda runtimes ({lambda_runtimes}); remove it, since a wasm \
                         component is called through its wasi:http export"
                    ),
                );
                None
            }
            Some(RuntimeKind::Python3 | RuntimeKind::Nodejs) => {
                if is_module_function(text) {
                    Some(Some(text.to_owned()))
                } else {
                    self.problem(path, format!("{text:?} is not MODULE.FUNCTION; write it like \"app.handler\""));
                    None
                }
            }
            Some(RuntimeKind::Provided) | None => {
                if text.trim().is_empty() {
                    self.problem(path, "the handler is empty; name it, or remove handler");
                    return None;
                }
                Some(Some(text.to_owned()))
            }
        }
    }

    fn timeout(&mut self, path: &str, value: &Value) -> Option<Duration> {
        let (min, max) = (self.limits.min_timeout, self.limits.max_timeout);
        self.duration(path, value, "timeout", min, max)
    }

    fn idle_timeout(&mut self, path: &str, value: &Value) -> Option<Duration> {
        self.duration(path, value, "idle_timeout", Duration::from_millis(1), self.limits.max_idle_timeout)
    }

    /// A duration written as `"5s"` or a whole number of seconds, within `min..=max`.
    fn duration(&mut self, path: &str, value: &Value, key: &str, min: Duration, max: Duration) -> Option<Duration> {
        let (duration, written) = match value {
            Value::String(text) => match parse_duration(text) {
                Ok(duration) => (duration, format!("{text:?}")),
                Err(message) => {
                    // In TOML a bare integer is a number of seconds.
                    let digits = text.trim();
                    let message = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                        format!("{message}, or {digits} without quotes for seconds")
                    } else {
                        message
                    };
                    self.problem(path, message);
                    return None;
                }
            },
            Value::Integer(seconds) => match u64::try_from(*seconds) {
                Ok(seconds) => (Duration::from_secs(seconds), seconds.to_string()),
                Err(_) => {
                    self.problem(path, format!("{seconds} is negative; write a duration like \"5s\""));
                    return None;
                }
            },
            other => {
                self.expected(
                    path,
                    "a duration like \"5s\" or a whole number of seconds",
                    other,
                    &format!("write it like {key} = \"500ms\", \"5s\", \"2m\" or \"1m30s\""),
                );
                return None;
            }
        };
        if duration > max {
            self.problem(path, format!("{written} is above the maximum {}", format_duration(max)));
            return None;
        }
        if duration < min {
            self.problem(path, format!("{written} is below the minimum {}", format_duration(min)));
            return None;
        }
        Some(duration)
    }

    /// Retries of a failed asynchronous invocation: 0, 1 or 2, as on Lambda.
    fn retries(&mut self, path: &str, value: &Value) -> Option<u32> {
        match value {
            Value::Integer(n @ 0..=2) => Some(*n as u32),
            Value::Integer(n) => {
                self.problem(
                    path,
                    format!("{n} is not 0, 1 or 2; an asynchronous invocation is retried at most twice"),
                );
                None
            }
            other => {
                self.expected(path, "0, 1 or 2", other, "write it like retries = 1");
                None
            }
        }
    }

    fn min_instances(&mut self, path: &str, value: &Value) -> Option<u32> {
        let max = self.limits.max_concurrency;
        match value {
            Value::Integer(n) => match u32::try_from(*n) {
                Ok(n) if n <= max => Some(n),
                _ if *n < 0 => {
                    self.problem(path, format!("{n} is negative; write 0 (scale to zero) or a number up to {max}"));
                    None
                }
                _ => {
                    self.problem(path, format!("{n} is above the maximum {max}"));
                    None
                }
            },
            other => {
                self.expected(path, "a whole number", other, "write it like min_instances = 1");
                None
            }
        }
    }

    fn memory(&mut self, path: &str, value: &Value) -> Option<ByteSize> {
        let (memory, written) = match value {
            Value::String(text) => match ByteSize::parse(text) {
                Ok(memory) => (memory, format!("{text:?}")),
                Err(message) => {
                    self.problem(path, message);
                    return None;
                }
            },
            Value::Integer(bytes) => match u64::try_from(*bytes) {
                Ok(bytes) => (ByteSize(bytes), bytes.to_string()),
                Err(_) => {
                    self.problem(path, format!("{bytes} is negative; write a size like \"128MiB\""));
                    return None;
                }
            },
            other => {
                self.expected(
                    path,
                    "a size like \"128MiB\" or a whole number of bytes",
                    other,
                    "write it like memory = \"128MiB\" or \"1GiB\"",
                );
                return None;
            }
        };
        let (min, max) = (self.limits.min_memory, self.limits.max_memory);
        if memory > max {
            self.problem(path, format!("{written} is above the maximum {max}"));
            return None;
        }
        if memory < min {
            self.problem(path, format!("{written} is below the minimum {min}"));
            return None;
        }
        Some(memory)
    }

    fn concurrency(&mut self, path: &str, value: &Value) -> Option<u32> {
        let max = self.limits.max_concurrency;
        let Value::Integer(concurrency) = value else {
            let fix = match value {
                Value::String(text) if text.trim().parse::<u64>().is_ok() => {
                    format!("write it without quotes, like concurrency = {}", text.trim())
                }
                _ => format!("write it like concurrency = 50 (at most {max}; 0 disables the function)"),
            };
            self.expected(path, "a whole number", value, &fix);
            return None;
        };
        if *concurrency < 0 {
            self.problem(
                path,
                format!("{concurrency} is negative; write 0 to disable the function, or a number up to {max}"),
            );
            return None;
        }
        match u32::try_from(*concurrency) {
            Ok(concurrency) if concurrency <= max => Some(concurrency),
            _ => {
                self.problem(path, format!("{concurrency} is above the maximum {max}"));
                None
            }
        }
    }

    fn env(&mut self, path: &str, value: &Value) -> Option<ParsedEnv> {
        let table = self.table(path, value, "env = { NAME = \"value\" }")?;
        let mut env = ParsedEnv::default();
        let mut all_valid = true;
        for (name, value) in sorted(table) {
            let variable_path = join(path, name);
            if !is_env_name(name) {
                self.problem(
                    &variable_path,
                    format!(
                        "{name:?} is not a valid environment variable name; use letters, digits and '_', \
                         not starting with a digit"
                    ),
                );
                all_valid = false;
            } else if name.starts_with("UPDRAFT_") {
                self.problem(
                    &variable_path,
                    format!(
                        "{name} is reserved: Updraft sets the UPDRAFT_ variables itself (the function's name, version, \
                         memory, and for grants its API address and token); pick another name"
                    ),
                );
                all_valid = false;
            }
            let quoted = match value {
                Value::String(text) if text.contains('\0') => {
                    self.problem(
                        &variable_path,
                        "the value contains a NUL character, which no environment can hold; remove it",
                    );
                    all_valid = false;
                    continue;
                }
                Value::String(text) => {
                    env.plain.insert(name.clone(), text.clone());
                    continue;
                }
                Value::Table(reference) if reference.contains_key("secret") => {
                    match self.secret_reference(&variable_path, reference) {
                        Some(secret) => {
                            env.secrets.insert(name.clone(), secret);
                        }
                        None => all_valid = false,
                    }
                    continue;
                }
                Value::Integer(n) => Some(n.to_string()),
                Value::Float(n) => Some(n.to_string()),
                Value::Boolean(b) => Some(b.to_string()),
                Value::Datetime(datetime) => Some(datetime.to_string()),
                Value::Array(_) | Value::Table(_) => None,
            };
            let fix = match quoted {
                Some(text) => {
                    format!("environment values are strings, so quote it: {name} = {text:?}")
                }
                None => format!(
                    "environment values are strings; write one string, or {name} = {{ secret = \"NAME\" }} for a \
                     secret stored with `updraft secrets set NAME`"
                ),
            };
            self.expected(&variable_path, "a string", value, &fix);
            all_valid = false;
        }
        let size = crate::environment_size(
            env.plain.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(env.secrets.keys().map(|k| (k.as_str(), ""))),
        );
        if size > crate::MAX_ENVIRONMENT_BYTES {
            self.problem(
                path,
                format!(
                    "the variables take {size} bytes (names and values together), over the limit of {} (Lambda's); \
                     keep large values in files of the bundle, or in secrets read at run time",
                    crate::MAX_ENVIRONMENT_BYTES
                ),
            );
            all_valid = false;
        }
        all_valid.then_some(env)
    }

    /// `{ secret = "NAME" }`: a stored secret's name, and nothing else.
    fn secret_reference(&mut self, path: &str, table: &Table) -> Option<SecretName> {
        if let Some(other) = table.keys().find(|key| key.as_str() != "secret") {
            self.problem(&join(path, other), "a secret reference has only `secret = \"NAME\"`; remove this key");
            return None;
        }
        let secret_path = join(path, "secret");
        let text =
            self.string(&secret_path, &table["secret"], "write the secret's name in quotes, like secret = \"stripe\"")?;
        text.parse::<SecretName>().map_err(|invalid| self.problem(&secret_path, invalid.to_string())).ok()
    }

    fn hosts(&mut self, path: &str, value: &Value) -> Option<Vec<String>> {
        let example = "allowed_outbound_hosts = [\"api.example.com\"]";
        self.strings(
            path,
            value,
            example,
            "write each host in quotes, like \"api.example.com\"",
            |checker, path, host| {
                check_host(host).map(|()| host.to_owned()).map_err(|message| checker.problem(path, message)).ok()
            },
        )
    }

    /// A list of strings, each checked by `check` (given its path and text);
    /// `quote_fix` says how to write an item that is not a string.
    fn strings<T>(
        &mut self,
        path: &str,
        value: &Value,
        example: &str,
        quote_fix: &str,
        check: impl Fn(&mut Self, &str, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let array = self.array(path, value, example)?;
        let mut items = Vec::new();
        let mut all_valid = true;
        for (index, value) in array.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            match self.string(&item_path, value, quote_fix).and_then(|text| check(self, &item_path, text)) {
                Some(item) => items.push(item),
                None => all_valid = false,
            }
        }
        all_valid.then_some(items)
    }

    /// A list of names in quotes, each checked by `check`; no repeats.
    fn list<T: PartialEq>(
        &mut self,
        path: &str,
        value: &Value,
        example: &str,
        check: impl Fn(&mut Self, &str, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = self.strings(path, value, example, &format!("write each name in quotes, like {example}"), check)?;
        let mut repeated = false;
        for (index, item) in items.iter().enumerate() {
            if items[..index].contains(item) {
                self.problem(&format!("{path}[{index}]"), "listed twice; keep one");
                repeated = true;
            }
        }
        (!repeated).then_some(items)
    }

    fn triggers(&mut self, path: &str, function: &str, value: &Value) -> Option<Vec<Trigger>> {
        let array = self.array(path, value, "triggers = [{ http = \"GET /hello\" }]")?;
        let mut triggers = Vec::new();
        let mut all_valid = true;
        for (index, value) in array.iter().enumerate() {
            let trigger_path = format!("{path}[{index}]");
            let trigger = self
                .table(&trigger_path, value, "{ http = \"GET /hello\" }")
                .and_then(|table| self.trigger(&trigger_path, table));
            match trigger {
                Some(trigger) => {
                    let claim = match &trigger {
                        Trigger::Http(http) => Some(http.clone()),
                        Trigger::Webhook(webhook) => Some(webhook.as_route()),
                        Trigger::Topic(_) | Trigger::Schedule(_) | Trigger::Queue(_) | Trigger::Email(_) => None,
                    };
                    if let Some(claim) = claim {
                        self.claims.push(RouteClaim {
                            function: function.to_owned(),
                            path: trigger_path,
                            trigger: claim,
                        });
                    }
                    triggers.push(trigger);
                }
                None => all_valid = false,
            }
        }
        all_valid.then_some(triggers)
    }

    fn trigger(&mut self, path: &str, table: &Table) -> Option<Trigger> {
        let supported = "supported: http, webhook, topic, schedule, queue, email";
        let known: Vec<&str> =
            TRIGGER_KINDS.iter().copied().chain(TRIGGER_OPTIONS.iter().map(|(option, _)| *option)).collect();
        // Each unknown key is reported as a would-be kind, so a missing kind is reported
        // only when there is no unknown key at all.
        let mut unknown_key = false;
        for (key, _) in sorted(table) {
            if known.contains(&key.as_str()) {
                continue;
            }
            unknown_key = true;
            let key_path = join(path, key);
            if FUTURE_TRIGGER_KINDS.contains(&key.as_str()) {
                self.problem(&key_path, format!("`{key}` triggers are not supported yet; {supported}"));
            } else if let Some(suggestion) = did_you_mean(key, &known) {
                self.problem(&key_path, format!("unknown key {key:?}; did you mean {suggestion:?}?"));
            } else {
                self.problem(
                    &key_path,
                    format!("unknown trigger kind {key:?}; {supported} (like {{ http = \"GET /hello\" }})"),
                );
            }
        }
        let kinds: Vec<&str> = TRIGGER_KINDS.iter().copied().filter(|kind| table.contains_key(*kind)).collect();
        let kind = match kinds.as_slice() {
            [kind] => *kind,
            [] => {
                if !unknown_key {
                    self.problem(
                        path,
                        format!("the trigger has no kind; write it like {{ http = \"GET /hello\" }} ({supported})"),
                    );
                }
                return None;
            }
            [first, second, ..] => {
                self.problem(
                    path,
                    format!("a trigger has one kind, this one has {first} and {second}; make them two triggers"),
                );
                return None;
            }
        };
        let mut misplaced = false;
        for (option, owner) in TRIGGER_OPTIONS {
            if *owner != kind && table.contains_key(*option) {
                self.problem(&join(path, option), format!("{option} is for {owner} triggers, not {kind}; remove it"));
                misplaced = true;
            }
        }
        let kind_path = join(path, kind);
        let value = &table[kind];
        let trigger = match kind {
            "http" => {
                let auth = self.optional(table, path, "auth", Self::auth);
                let (methods, route) = self.route(&kind_path, value, "http = \"GET /hello\"")?;
                Trigger::Http(HttpTrigger { methods, route, auth: auth?.unwrap_or_default() })
            }
            "webhook" => {
                let secret_env = self.optional(table, path, "secret_env", |checker, path, value| {
                    let fix = "name one of the function's env variables, like secret_env = \"HOOK_SECRET\"";
                    checker.string(path, value, fix).map(str::to_owned)
                });
                let secret = self.optional(table, path, "secret", |checker, path, value| {
                    let text = checker.string(path, value, "name a stored secret, like secret = \"ci-hook\"")?;
                    text.parse::<SecretName>().map_err(|invalid| checker.problem(path, invalid.to_string())).ok()
                });
                let (methods, route) = self.route(&kind_path, value, "webhook = \"POST /hooks/ci\"")?;
                let (secret_env, secret) = (secret_env?, secret?);
                if secret_env.is_some() && secret.is_some() {
                    self.problem(
                        &join(path, "secret"),
                        "a webhook takes its secret from one place; keep either secret or secret_env",
                    );
                    return None;
                }
                Trigger::Webhook(WebhookTrigger { methods, route, secret_env, secret })
            }
            "topic" => {
                let text = self.string(&kind_path, value, "write it in quotes, like topic = \"user.signed_up\"")?;
                Trigger::Topic(TopicTrigger { topic: self.topic_name(&kind_path, text)? })
            }
            "queue" => self.queue_trigger(path, &kind_path, value, table)?,
            "email" => {
                let text = self.string(&kind_path, value, "write it in quotes, like email = \"signup@example.com\"")?;
                Trigger::Email(EmailTrigger { address: self.email_address(&kind_path, text)? })
            }
            _ => {
                let schedule = self
                    .string(&kind_path, value, "write it in quotes, like schedule = \"rate(5 minutes)\"")
                    .and_then(|text| self.schedule_part(&kind_path, ScheduleExpression::parse(text)));
                let timezone = self.optional(table, path, "timezone", |checker, path, value| {
                    let text = checker.string(path, value, "write it in quotes, like timezone = \"Europe/Paris\"")?;
                    checker.schedule_part(path, Timezone::parse(text))
                });
                let catch_up = self.optional(table, path, "catch_up", Self::catch_up);
                Trigger::Schedule(ScheduleTrigger {
                    schedule: schedule?,
                    timezone: timezone?.unwrap_or(Timezone::UTC),
                    catch_up: catch_up?.unwrap_or_default(),
                })
            }
        };
        (!misplaced).then_some(trigger)
    }

    fn queue_trigger(&mut self, path: &str, kind_path: &str, value: &Value, table: &Table) -> Option<Trigger> {
        let queue_name = |checker: &mut Self, path: &str, value: &Value| {
            let text = checker.string(path, value, "write it in quotes, like queue = \"jobs\"")?;
            QueueName::new(text).map_err(|invalid| checker.problem(path, invalid.to_string())).ok()
        };
        let queue = queue_name(self, kind_path, value);
        let batch_size = self.optional(table, path, "batch_size", |checker, path, value| {
            checker.whole_number(path, value, "batch_size", 1, 10_000)
        });
        let batch_window = self.optional(table, path, "batch_window", |checker, path, value| {
            checker.duration(path, value, "batch_window", Duration::ZERO, Duration::from_secs(300))
        });
        let visibility_timeout = self.optional(table, path, "visibility_timeout", |checker, path, value| {
            checker.duration(path, value, "visibility_timeout", Duration::from_secs(1), Duration::from_secs(12 * 3600))
        });
        let max_receives = self.optional(table, path, "max_receives", |checker, path, value| {
            checker.whole_number(path, value, "max_receives", 1, 1_000)
        });
        let dead_letter_queue = self.optional(table, path, "dead_letter_queue", queue_name);
        let queue = queue?;
        let dead_letter_queue = match dead_letter_queue? {
            Some(dead) if dead == queue => {
                self.problem(
                    &join(path, "dead_letter_queue"),
                    format!("{dead} is the queue itself; name another queue for messages that keep failing"),
                );
                return None;
            }
            Some(dead) => dead,
            None => match QueueName::new(format!("{queue}-dlq")) {
                Ok(dead) => dead,
                Err(_) => {
                    self.problem(
                        &join(path, "dead_letter_queue"),
                        format!("{queue}-dlq (the default) is too long a name; name the dead-letter queue yourself"),
                    );
                    return None;
                }
            },
        };
        Some(Trigger::Queue(QueueTrigger {
            queue,
            batch_size: batch_size?.unwrap_or(10),
            batch_window: batch_window?.unwrap_or(Duration::ZERO),
            visibility_timeout: visibility_timeout?.unwrap_or(Duration::from_secs(30)),
            max_receives: max_receives?.unwrap_or(5),
            dead_letter_queue,
        }))
    }

    /// `local@domain` or `*@domain`, lowercased.
    fn email_address(&mut self, path: &str, text: &str) -> Option<String> {
        let address = text.trim().to_ascii_lowercase();
        let valid = address.split_once('@').is_some_and(|(local, domain)| {
            let local_ok = local == "*"
                || (!local.is_empty() && local.chars().all(|c| c.is_ascii_graphic() && !"<>()[],;:\\\"@*".contains(c)));
            let domain_ok = !domain.is_empty()
                && domain
                    .split('.')
                    .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            local_ok && domain_ok
        });
        if !valid {
            self.problem(
                path,
                format!(
                    "{text:?} is not an email address; write one like \"signup@example.com\", or \"*@example.com\" \
                     for every address of a domain"
                ),
            );
            return None;
        }
        Some(address)
    }

    /// A whole number within `min..=max`.
    fn whole_number(&mut self, path: &str, value: &Value, key: &str, min: i64, max: i64) -> Option<u32> {
        match value {
            Value::Integer(n) if (min..=max).contains(n) => Some(*n as u32),
            Value::Integer(n) => {
                self.problem(path, format!("{n} is outside {min}–{max}; write {key} = {min} up to {max}"));
                None
            }
            other => {
                self.expected(path, "a whole number", other, &format!("write it like {key} = {min}"));
                None
            }
        }
    }

    /// `"METHODS /route"` of an `http` or `webhook` trigger.
    fn route(&mut self, path: &str, value: &Value, example: &str) -> Option<(MethodSet, RoutePattern)> {
        let text = self.string(path, value, &format!("write it in quotes, like {example}"))?;
        match parse_http(text) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.problem(path, message);
                None
            }
        }
    }

    fn topic_name(&mut self, path: &str, text: &str) -> Option<TopicName> {
        match TopicName::new(text) {
            Ok(topic) => Some(topic),
            Err(invalid) => {
                self.problem(path, invalid.to_string());
                None
            }
        }
    }

    fn schedule_part<T>(&mut self, path: &str, parsed: Result<T, crate::InvalidSchedule>) -> Option<T> {
        parsed.map_err(|invalid| self.problem(path, invalid.0)).ok()
    }

    fn catch_up(&mut self, path: &str, value: &Value) -> Option<CatchUp> {
        let text = self.string(path, value, "write it in quotes, like catch_up = \"skip\"")?;
        let found = CatchUp::ALL.into_iter().find(|policy| policy.as_str() == text);
        if found.is_none() {
            self.problem(
                path,
                format!(
                    "unknown catch_up {text:?}; use \"latest\" (a missed tick fires once, the default), \"skip\" \
                     (missed ticks are dropped) or \"all\" (every missed tick fires)"
                ),
            );
        }
        found
    }

    /// `{ function = "NAME" }` or `{ topic = "TOPIC" }`.
    fn destination(&mut self, path: &str, value: &Value) -> Option<Destination> {
        let example = "{ topic = \"signup.dead\" } or { function = \"audit\" }";
        let table = self.table(path, value, example)?;
        self.unknown_keys(path, table, DESTINATION_KEYS, &[]);
        match (table.get("function"), table.get("topic")) {
            (Some(function), None) => {
                let function_path = join(path, "function");
                let text = self.string(&function_path, function, "write it in quotes, like function = \"audit\"")?;
                match FunctionName::new(text) {
                    Ok(name) => Some(Destination::Function(name)),
                    Err(invalid) => {
                        self.problem(&function_path, invalid.to_string());
                        None
                    }
                }
            }
            (None, Some(topic)) => {
                let topic_path = join(path, "topic");
                let text = self.string(&topic_path, topic, "write it in quotes, like topic = \"signup.dead\"")?;
                self.topic_name(&topic_path, text).map(Destination::Topic)
            }
            (Some(_), Some(_)) => {
                self.problem(path, format!("a destination is a function or a topic, not both; write {example}"));
                None
            }
            (None, None) => {
                if table.keys().all(|key| DESTINATION_KEYS.contains(&key.as_str())) {
                    self.problem(path, format!("the destination names nothing; write {example}"));
                }
                None
            }
        }
    }

    /// A webhook's `secret_env` must name one of the function's env variables.
    fn webhook_secrets(&mut self, path: &str, triggers: &[Trigger], env: Option<&ParsedEnv>) {
        for (index, trigger) in triggers.iter().enumerate() {
            if let Trigger::Webhook(WebhookTrigger { secret_env: Some(name), .. }) = trigger
                && env.is_none_or(|env| {
                    !env.secrets.contains_key(name) && env.plain.get(name).is_none_or(|secret| secret.is_empty())
                })
            {
                self.problem(
                    &format!("{path}.triggers[{index}].secret_env"),
                    format!(
                        "{name} is not set in the function's env; add {name} = \"...\" under env, \
                         or remove secret_env to accept unsigned requests"
                    ),
                );
            }
        }
    }

    fn auth(&mut self, path: &str, value: &Value) -> Option<HttpAuth> {
        let text = self.string(path, value, "write it in quotes, like auth = \"key\"")?;
        match text {
            "public" => Some(HttpAuth::Public),
            "key" => Some(HttpAuth::Key),
            _ => {
                self.problem(
                    path,
                    format!(
                        "unknown auth {text:?}; use \"public\" (anyone may call, the default) or \"key\" \
                         (callers need an Updraft API key)"
                    ),
                );
                None
            }
        }
    }

    /// Reports each HTTP trigger that answers some request an earlier trigger already
    /// answers, naming the first such earlier trigger.
    fn route_conflicts(&mut self) {
        let claims = std::mem::take(&mut self.claims);
        for (index, claim) in claims.iter().enumerate() {
            let trigger = &claim.trigger;
            let shape = trigger.route.shape_key();
            let earlier = claims[..index].iter().find(|earlier| {
                earlier.trigger.methods.overlaps(&trigger.methods) && earlier.trigger.route.shape_key() == shape
            });
            if let Some(earlier) = earlier {
                let methods = overlap(&earlier.trigger.methods, &trigger.methods);
                self.problem(
                    &claim.path,
                    format!(
                        "{methods} {} is also claimed by function {:?} ({}); give one of them another \
                         route or method",
                        trigger.route, earlier.function, earlier.path
                    ),
                );
            }
        }
    }

    /// Reports keys of `table` outside `known`; `future` keys are promised but not
    /// implemented yet.
    fn unknown_keys(&mut self, path: &str, table: &Table, known: &[&str], future: &[&str]) {
        for (key, _) in sorted(table) {
            if known.contains(&key.as_str()) {
                continue;
            }
            let message = if future.contains(&key.as_str()) {
                format!("{key} is not supported yet; remove it")
            } else if let Some(suggestion) = did_you_mean(key, known) {
                format!("unknown key {key:?}; did you mean {suggestion:?}?")
            } else {
                format!("unknown key {key:?}; remove it (the keys allowed here are {})", known.join(", "))
            };
            self.problem(&join(path, key), message);
        }
    }

    fn expected(&mut self, path: &str, expected: &str, found: &Value, fix: &str) {
        self.problem(path, format!("expected {expected}, found {}; {fix}", describe(found)));
    }

    fn string<'v>(&mut self, path: &str, value: &'v Value, fix: &str) -> Option<&'v str> {
        match value {
            Value::String(text) => Some(text),
            other => {
                self.expected(path, "a string", other, fix);
                None
            }
        }
    }

    fn table<'v>(&mut self, path: &str, value: &'v Value, example: &str) -> Option<&'v Table> {
        match value {
            Value::Table(table) => Some(table),
            other => {
                self.expected(path, "a table", other, &format!("write it like {example}"));
                None
            }
        }
    }

    fn array<'v>(&mut self, path: &str, value: &'v Value, example: &str) -> Option<&'v [Value]> {
        match value {
            Value::Array(array) => Some(array),
            other => {
                self.expected(path, "a list", other, &format!("write it like {example}"));
                None
            }
        }
    }
}

/// A table's entries sorted by key, so problems come out in the same order whether or
/// not the TOML library preserves the file's order.
fn sorted(table: &Table) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// `parent.key`, quoting `key` the way TOML would when it is not a bare key.
fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let key = if bare { key.to_owned() } else { format!("{key:?}") };
    if parent.is_empty() { key } else { format!("{parent}.{key}") }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "a whole number",
        Value::Float(_) => "a decimal number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

/// The candidate closest to `key`, if one is close enough to be a likely typo.
fn did_you_mean<'c>(key: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let key_length = key.chars().count();
    candidates
        .iter()
        .map(|candidate| (*candidate, strsim::jaro_winkler(key, candidate)))
        .filter(|(candidate, similarity)| {
            // A short key is a few edits from anything, so edits count only when they
            // leave most of the key in place.
            let edits = strsim::levenshtein(key, candidate);
            *similarity >= 0.8 || (edits <= 2 && edits * 2 < key_length)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(candidate, _)| candidate)
}

fn runtime_list() -> String {
    RuntimeKind::ALL.map(RuntimeKind::as_str).join(", ")
}

/// `module.function`: a module path, a dot, and an identifier.
fn is_module_function(handler: &str) -> bool {
    let Some((module, function)) = handler.rsplit_once('.') else {
        return false;
    };
    let mut function_chars = function.chars();
    let function_ok = function_chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && function_chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    function_ok && !module.is_empty() && !module.chars().any(char::is_whitespace)
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks one `allowed_outbound_hosts` entry: a host, optionally `*.` in front and a port
/// after, or `*` alone.
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty; write a host like \"api.example.com\", or remove the entry".to_owned());
    }
    if let Some((scheme, rest)) = host.split_once("://") {
        let bare = rest.split('/').next().unwrap_or_default();
        return Err(format!("{host:?} has a scheme ({scheme}://); drop it and write only the host, like {bare:?}"));
    }
    if host.chars().any(char::is_whitespace) {
        return Err(format!("{host:?} contains a space; write only the host, like \"api.example.com\""));
    }
    if let Some((bare, _)) = host.split_once('/') {
        return Err(format!("{host:?} has a path; drop it and write only the host, like {bare:?}"));
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if host != "*" && name.contains('*') {
        return Err(format!(
            "{host:?} has a '*' in the middle; use \"*\" alone for any host, or \"*.\" in front for subdomains, \
             like \"*.example.com\""
        ));
    }
    // A port follows the last ':', except inside an IPv6 address in brackets.
    let port = if name.starts_with('[') {
        name.split_once("]:").map(|(_, port)| port)
    } else {
        name.rsplit_once(':').map(|(_, port)| port)
    };
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|port| port > 0)
    {
        return Err(format!("{host:?} has the invalid port {port:?}; use a number from 1 to 65535"));
    }
    Ok(())
}

/// Parses an HTTP trigger: `"METHODS ROUTE"` or `"ROUTE"` alone for any method.
fn parse_http(text: &str) -> Result<(MethodSet, RoutePattern), String> {
    let example = "like \"GET /hello\" or \"GET,POST /hello/{name}\"";
    let words: Vec<&str> = text.split_whitespace().collect();
    let (methods, route) = match words.as_slice() {
        [] => {
            return Err(format!("the trigger is empty; write the methods and the route, {example}"));
        }
        [word] if !word.starts_with('/') && looks_like_methods(word) => {
            return Err(format!("{text:?} has no route; add one after the methods, like \"{word} /hello\""));
        }
        [route] => (MethodSet::any(), *route),
        [route, methods] if route.starts_with('/') && !methods.starts_with('/') => {
            return Err(format!("{text:?} puts the route first; write the methods first, like \"{methods} {route}\""));
        }
        [methods, route] => (parse_methods(methods)?, *route),
        _ => {
            return Err(format!(
                "{text:?} has too many spaces; write the methods, one space and the route, {example} \
                 (separate methods with commas, without spaces)"
            ));
        }
    };
    let route = RoutePattern::parse(route)?;
    let reserved = match route.segments() {
        // The control plane, and the Lambda API's (`/2015-03-31/functions/...`).
        [RouteSegment::Literal(first), ..] if first == "v1" || first == "2015-03-31" => true,
        [RouteSegment::Literal(only)] => only == "healthz" || only == "metrics",
        _ => false,
    };
    if reserved {
        return Err(format!(
            "route {route} is Updraft's own (/v1/..., /2015-03-31/..., /healthz and /metrics are the server's); \
             pick another path"
        ));
    }
    Ok((methods, route))
}

fn looks_like_methods(word: &str) -> bool {
    word == "*" || word.split(',').any(|method| HTTP_METHODS.contains(&method.to_ascii_uppercase().as_str()))
}

/// Parses `*` or a comma-separated list of methods in any case.
fn parse_methods(text: &str) -> Result<MethodSet, String> {
    if text == "*" {
        return Ok(MethodSet::any());
    }
    let mut methods = Vec::new();
    for method in text.split(',') {
        let upper = method.to_ascii_uppercase();
        if upper == "*" {
            return Err(format!(
                "{text:?} mixes \"*\" with other methods; write \"*\" alone for any method, or list methods"
            ));
        }
        if upper.is_empty() {
            return Err(format!(
                "{text:?} has an empty method; separate methods with single commas, like \"GET,POST\""
            ));
        }
        if !HTTP_METHODS.contains(&upper.as_str()) {
            return Err(format!(
                "unknown method {method:?}; use \"*\" for any method, or some of {} separated by commas",
                HTTP_METHODS.join(", ")
            ));
        }
        methods.push(upper);
    }
    methods.sort();
    methods.dedup();
    Ok(MethodSet { methods })
}

/// The methods both sets answer.
fn overlap(a: &MethodSet, b: &MethodSet) -> MethodSet {
    match (a.is_any(), b.is_any()) {
        (true, _) => b.clone(),
        (false, true) => a.clone(),
        (false, false) => MethodSet { methods: a.methods.iter().filter(|m| b.methods.contains(m)).cloned().collect() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sketch from the task, with every key.
    const FULL: &str = r#"
[app]
name = "hello"

[functions.hello]
runtime = "wasm"
source = "target/wasm32-wasip2/release/hello.wasm"
build = { command = "cargo build --release --target wasm32-wasip2", workdir = "hello" }
timeout = "5s"
memory = "128MiB"
concurrency = 50
env = { GREETING = "hi" }
allowed_outbound_hosts = ["api.example.com", "*.example.com", "127.0.0.1:8080", "*"]
triggers = [
    { http = "GET /hello" },
    { http = "get,POST,GET /hello/{name}", auth = "key" },
    { http = "* /static/{*path}" },
]

[functions.welcome]
runtime = "python3"
handler = "welcome.handler"
source = "welcome/"
build = "pip install -r requirements.txt -t welcome"
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, "updraft.toml", &Limits::default())
    }

    /// The problems of an invalid manifest as `(field, message)` pairs.
    fn problems(text: &str) -> Vec<(String, String)> {
        match parse(text) {
            Ok(manifest) => panic!("expected problems, got {manifest:#?}"),
            Err(error) => error.problems.into_iter().map(|p| (p.field, p.message)).collect(),
        }
    }

    /// The only problem of an invalid manifest, as `(field, message)`.
    fn problem(text: &str) -> (String, String) {
        let mut problems = problems(text);
        assert_eq!(problems.len(), 1, "expected one problem, got {problems:#?}");
        problems.remove(0)
    }

    /// A valid manifest with one wasm function whose table ends with `extra`.
    fn with_function(extra: &str) -> String {
        format!("[app]\nname = \"hello\"\n\n[functions.hello]\nruntime = \"wasm\"\nsource = \"hello.wasm\"\n{extra}\n")
    }

    fn name(text: &str) -> FunctionName {
        FunctionName::new(text).unwrap()
    }

    fn http(text: &str, auth: HttpAuth) -> Trigger {
        let (methods, route) = parse_http(text).unwrap();
        Trigger::Http(HttpTrigger { methods, route, auth })
    }

    #[test]
    fn full_manifest_parses() {
        let manifest = parse(FULL).unwrap();
        assert_eq!(manifest.app.as_str(), "hello");
        assert_eq!(manifest.functions.len(), 2);

        let hello = &manifest.functions[&name("hello")];
        assert_eq!(hello.source, "target/wasm32-wasip2/release/hello.wasm");
        assert_eq!(
            hello.build,
            Some(BuildSpec {
                command: "cargo build --release --target wasm32-wasip2".to_owned(),
                workdir: Some("hello".to_owned()),
            })
        );
        let config = &hello.config;
        assert_eq!(config.runtime, RuntimeKind::Wasm);
        assert_eq!(config.handler, None);
        assert_eq!(config.timeout, Duration::from_secs(5));
        assert_eq!(config.memory, ByteSize::mib(128));
        assert_eq!(config.concurrency, Some(50));
        assert_eq!(config.env, BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]));
        assert_eq!(config.allowed_outbound_hosts, ["api.example.com", "*.example.com", "127.0.0.1:8080", "*"]);
        assert_eq!(
            config.triggers,
            [
                http("GET /hello", HttpAuth::Public),
                http("GET,POST /hello/{name}", HttpAuth::Key),
                http("/static/{*path}", HttpAuth::Public),
            ]
        );
        let Trigger::Http(second) = &config.triggers[1] else { panic!("{:?}", config.triggers[1]) };
        assert_eq!(second.methods.methods, ["GET", "POST"]);
        assert_eq!(second.route.to_string(), "/hello/{name}");

        let welcome = &manifest.functions[&name("welcome")];
        assert_eq!(welcome.config.runtime, RuntimeKind::Python3);
        assert_eq!(welcome.config.handler.as_deref(), Some("welcome.handler"));
        assert_eq!(
            welcome.build,
            Some(BuildSpec { command: "pip install -r requirements.txt -t welcome".to_owned(), workdir: None })
        );
    }

    #[test]
    fn defaults_apply_to_absent_keys() {
        let manifest = parse(&with_function("")).unwrap();
        let limits = Limits::default();
        let hello = &manifest.functions[&name("hello")];
        assert_eq!(hello.build, None);
        assert_eq!(
            hello.config,
            FunctionConfig {
                runtime: RuntimeKind::Wasm,
                handler: None,
                memory: limits.default_memory,
                timeout: limits.default_timeout,
                concurrency: None,
                env: BTreeMap::new(),
                secret_env: BTreeMap::new(),
                allowed_outbound_hosts: Vec::new(),
                instance_reuse: false,
                idle_timeout: limits.default_idle_timeout,
                min_instances: 0,
                retries: 2,
                max_event_age: Duration::from_secs(6 * 3600),
                on_success: None,
                on_failure: None,
                dead_letter_topic: None,
                publishes: Vec::new(),
                starts: Vec::new(),
                triggers: Vec::new(),
            }
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
name = "stray"

[app]
name = "Hello"

[functions.a]
runtime = "wasm"
source = ""
timeout = "90m"
memory = "8MiB"
concurrency = "50"
triggers = [{ http = "GET hello" }]

[functions.b]
source = "b.wasm"
"#;
        let fields: Vec<String> = problems(text).into_iter().map(|(field, _)| field).collect();
        assert_eq!(
            fields,
            [
                "name",
                "app.name",
                "functions.a.source",
                "functions.a.timeout",
                "functions.a.memory",
                "functions.a.concurrency",
                "functions.a.triggers[0].http",
                "functions.b.runtime",
            ]
        );
    }

    #[test]
    fn unknown_keys_suggest_the_closest_known_key() {
        let (field, message) = problem(&with_function("timout = \"5s\""));
        assert_eq!(field, "functions.hello.timout");
        assert_eq!(message, "unknown key \"timout\"; did you mean \"timeout\"?");

        let (field, message) =
            problem("[app]\nnmae = \"x\"\nname = \"x\"\n[functions.x]\nruntime = \"wasm\"\nsource = \"x\"");
        assert_eq!(field, "app.nmae");
        assert!(message.contains("did you mean \"name\"?"), "{message}");

        let (field, message) = problem(&with_function("triggers = [{ htp = \"GET /\" , http = \"GET /\" }]"));
        assert_eq!(field, "functions.hello.triggers[0].htp");
        assert!(message.contains("did you mean \"http\"?"), "{message}");

        let (field, message) = problem(&with_function("build = { command = \"make\", wrkdir = \"x\" }"));
        assert_eq!(field, "functions.hello.build.wrkdir");
        assert!(message.contains("did you mean \"workdir\"?"), "{message}");
    }

    #[test]
    fn unknown_keys_without_a_close_match_list_the_allowed_keys() {
        let (field, message) = problem(&with_function("colour = \"blue\""));
        assert_eq!(field, "functions.hello.colour");
        assert!(message.starts_with("unknown key \"colour\"; remove it"), "{message}");
        assert!(message.contains("runtime, source, build"), "{message}");

        let (field, message) = problem(&format!("{}\n[extra]\n", with_function("")));
        assert_eq!(field, "extra");
        assert!(message.contains("app, functions"), "{message}");
    }

    #[test]
    fn promised_keys_are_not_supported_yet() {
        let workflow = |definition: &str| format!("{}\n[workflows.w]\ndefinition = '{definition}'", with_function(""));
        let (field, message) = problems(&workflow("{}")).remove(0);
        assert_eq!(field, "workflows.w.definition");
        assert!(message.contains("StartAt is missing"), "{message}");
        let ghost = r#"{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "ghost", "End": true}}}"#;
        let (field, message) = problem(&workflow(ghost));
        assert_eq!(field, "workflows.w.definition");
        assert!(message.contains("runs function \"ghost\", which this app does not define"), "{message}");
        let good = r#"{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "hello", "End": true}}}"#;
        let manifest = parse(&workflow(good)).unwrap();
        assert_eq!(manifest.workflows[&name("w")].machine.functions(), ["hello"]);
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let (field, message) = problem(&with_function("concurrency = \"50\""));
        assert_eq!(field, "functions.hello.concurrency");
        assert_eq!(message, "expected a whole number, found a string; write it without quotes, like concurrency = 50");

        let cases = [
            ("concurrency = 1.5", "functions.hello.concurrency", "expected a whole number, found a decimal number"),
            ("env = \"GREETING=hi\"", "functions.hello.env", "expected a table, found a string"),
            ("triggers = { http = \"GET /\" }", "functions.hello.triggers", "expected a list, found a table"),
            ("triggers = [\"GET /\"]", "functions.hello.triggers[0]", "expected a table, found a string"),
            (
                "triggers = [{ http = 5 }]",
                "functions.hello.triggers[0].http",
                "expected a string, found a whole number",
            ),
            (
                "timeout = true",
                "functions.hello.timeout",
                "expected a duration like \"5s\" or a whole number of seconds, found a boolean",
            ),
            (
                "memory = [1]",
                "functions.hello.memory",
                "expected a size like \"128MiB\" or a whole number of bytes, found a list",
            ),
            ("build = 3", "functions.hello.build", "expected a command string or a table, found a whole number"),
            (
                "allowed_outbound_hosts = [1]",
                "functions.hello.allowed_outbound_hosts[0]",
                "expected a string, found a whole number",
            ),
        ];
        for (extra, expected_field, expected_start) in cases {
            let (field, message) = problem(&with_function(extra));
            assert_eq!(field, expected_field, "{extra}");
            assert!(message.starts_with(expected_start), "{extra}: {message}");
        }

        let (field, message) = problem("app = \"hello\"\n[functions.x]\nruntime = \"wasm\"\nsource = \"x\"");
        assert_eq!(field, "app");
        assert!(message.starts_with("expected a table, found a string; write it like [app]"), "{message}");

        let (field, message) = problem("[app]\nname = \"x\"\n[functions.x]\nruntime = 1\nsource = \"x\"");
        assert_eq!(field, "functions.x.runtime");
        assert!(message.starts_with("expected a string, found a whole number"), "{message}");
    }

    #[test]
    fn timeouts_parse_and_stay_within_limits() {
        let timeout = |text: &str| {
            parse(&with_function(&format!("timeout = {text}")))
                .map(|manifest| manifest.functions[&name("hello")].config.timeout)
        };
        assert_eq!(timeout("\"500ms\""), Ok(Duration::from_millis(500)));
        assert_eq!(timeout("\"1m30s\""), Ok(Duration::from_secs(90)));
        assert_eq!(
            timeout("\"1h\"").map_err(|e| e.problems[0].message.clone()),
            Err("\"1h\" is above the maximum 900s".to_owned())
        );
        assert_eq!(timeout("\"15m\""), Ok(Duration::from_secs(900)));
        assert_eq!(timeout("10"), Ok(Duration::from_secs(10)));

        let (field, message) = problem(&with_function("timeout = \"90m\""));
        assert_eq!(field, "functions.hello.timeout");
        assert_eq!(message, "\"90m\" is above the maximum 900s");
        assert_eq!(problem(&with_function("timeout = 5400")).1, "5400 is above the maximum 900s");
        assert_eq!(problem(&with_function("timeout = \"0s\"")).1, "\"0s\" is below the minimum 1ms");
        assert!(problem(&with_function("timeout = -1")).1.contains("negative"));
        assert!(problem(&with_function("timeout = \"5\"")).1.contains("has no unit; write \"5s\""));
        assert!(problem(&with_function("timeout = \"5 sec\"")).1.contains("is not a duration"));
    }

    #[test]
    fn memory_stays_within_limits() {
        let (field, message) = problem(&with_function("memory = \"8MiB\""));
        assert_eq!(field, "functions.hello.memory");
        assert_eq!(message, "\"8MiB\" is below the minimum 16MiB");
        assert_eq!(problem(&with_function("memory = \"11GiB\"")).1, "\"11GiB\" is above the maximum 10GiB");
        assert_eq!(problem(&with_function("memory = 1024")).1, "1024 is below the minimum 16MiB");
        assert!(problem(&with_function("memory = \"128\"")).1.contains("has no unit"));

        let memory = |text: &str| {
            parse(&with_function(&format!("memory = {text}"))).unwrap().functions[&name("hello")].config.memory
        };
        assert_eq!(memory("\"1GiB\""), ByteSize(ByteSize::GIB));
        assert_eq!(memory("\"128MB\""), ByteSize(128_000_000));
        assert_eq!(memory("33554432"), ByteSize::mib(32));
    }

    #[test]
    fn concurrency_allows_zero_and_stops_at_the_maximum() {
        let concurrency =
            |extra: &str| parse(&with_function(extra)).unwrap().functions[&name("hello")].config.concurrency;
        assert_eq!(concurrency("concurrency = 0"), Some(0));
        assert_eq!(concurrency("concurrency = 1000"), Some(1000));
        assert_eq!(problem(&with_function("concurrency = 1001")).1, "1001 is above the maximum 1000");
        assert_eq!(problem(&with_function("concurrency = 99999999999")).1, "99999999999 is above the maximum 1000");
        assert!(problem(&with_function("concurrency = -1")).1.starts_with("-1 is negative; write 0"));
    }

    #[test]
    fn bad_routes_say_why() {
        let cases = [
            ("GET hello", "route \"hello\" must start with '/'"),
            ("FETCH /hello", "unknown method \"FETCH\"; use \"*\" for any method, or some of GET, HEAD, POST"),
            ("/hello GET", "puts the route first; write the methods first, like \"GET /hello\""),
            ("GET", "has no route; add one after the methods, like \"GET /hello\""),
            ("GET, POST /hello", "has too many spaces"),
            ("GET,,POST /hello", "has an empty method"),
            ("GET,* /hello", "mixes \"*\" with other methods"),
            ("", "the trigger is empty"),
            ("GET /a/{*rest}/b", "must be the last segment"),
        ];
        for (route, expected) in cases {
            let (field, message) = problem(&with_function(&format!("triggers = [{{ http = {route:?} }}]")));
            assert_eq!(field, "functions.hello.triggers[0].http", "{route}");
            assert!(message.contains(expected), "{route}: {message}");
        }
    }

    #[test]
    fn trigger_kinds_and_auth_are_checked() {
        let (field, message) = problem(&with_function("triggers = [{ email = \"not an address\" }]"));
        assert_eq!(field, "functions.hello.triggers[0].email");
        assert!(message.contains("is not an email address"), "{message}");

        let (field, message) = problem(&with_function("triggers = [{ carrier_pigeon = \"coo\" }]"));
        assert_eq!(field, "functions.hello.triggers[0].carrier_pigeon");
        assert!(message.starts_with("unknown trigger kind \"carrier_pigeon\"; supported: http"), "{message}");

        let (field, message) = problem(&with_function("triggers = [{ auth = \"key\" }]"));
        assert_eq!(field, "functions.hello.triggers[0]");
        assert!(message.starts_with("the trigger has no kind"), "{message}");

        let (field, message) = problem(&with_function("triggers = [{ http = \"/\", auth = \"token\" }]"));
        assert_eq!(field, "functions.hello.triggers[0].auth");
        assert!(message.starts_with("unknown auth \"token\"; use \"public\""), "{message}");
    }

    #[test]
    fn duplicate_routes_name_both_functions() {
        let text = r#"
[app]
name = "hello"

[functions.a]
runtime = "wasm"
source = "a.wasm"
triggers = [{ http = "GET,POST /hello" }]

[functions.b]
runtime = "wasm"
source = "b.wasm"
triggers = [{ http = "GET /hello" }]
"#;
        let (field, message) = problem(text);
        assert_eq!(field, "functions.b.triggers[0]");
        assert_eq!(
            message,
            "GET /hello is also claimed by function \"a\" (functions.a.triggers[0]); give one of them another \
             route or method"
        );
    }

    #[test]
    fn routes_collide_by_shape_and_overlapping_methods_only() {
        let triggers = |list: &str| with_function(&format!("triggers = [{list}]"));
        assert!(parse(&triggers("{ http = \"GET /a\" }, { http = \"POST /a\" }, { http = \"GET /b\" }")).is_ok());
        assert!(parse(&triggers("{ http = \"GET /users/{id}\" }, { http = \"GET /users/me\" }")).is_ok());

        let (field, message) = problem(&triggers("{ http = \"GET /users/{id}\" }, { http = \"/users/{name}\" }"));
        assert_eq!(field, "functions.hello.triggers[1]");
        assert!(
            message
                .starts_with("GET /users/{name} is also claimed by function \"hello\" (functions.hello.triggers[0])"),
            "{message}"
        );

        // A third claim is reported once, against the first claimant.
        let fields: Vec<String> =
            problems(&triggers("{ http = \"/x\" }, { http = \"GET /x\" }, { http = \"PUT /x\" }"))
                .into_iter()
                .map(|p| p.0)
                .collect();
        assert_eq!(fields, ["functions.hello.triggers[1]", "functions.hello.triggers[2]"]);
    }

    #[test]
    fn malformed_toml_is_one_problem_with_its_position() {
        let (field, message) = problem("[app]\nname = \"hello\n");
        assert_eq!(field, "");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn env_values_must_be_quoted_strings() {
        let (field, message) = problem(&with_function("env = { PORT = 8080 }"));
        assert_eq!(field, "functions.hello.env.PORT");
        assert_eq!(
            message,
            "expected a string, found a whole number; environment values are strings, so quote it: PORT = \"8080\""
        );

        let (field, message) = problem(&with_function("env = { \"1BAD\" = \"x\" }"));
        assert_eq!(field, "functions.hello.env.1BAD");
        assert!(message.contains("not a valid environment variable name"), "{message}");

        let (field, message) = problem(&with_function("env = { \"MY VAR\" = \"x\" }"));
        assert_eq!(field, "functions.hello.env.\"MY VAR\"");
        assert!(message.contains("not a valid environment variable name"), "{message}");
    }

    #[test]
    fn env_values_may_name_stored_secrets() {
        let manifest = parse(&with_function(
            "env = { STRIPE_KEY = { secret = \"stripe\" }, MODE = \"live\", HOOK = { secret = \"ci-hook\" } }\n\
             triggers = [{ webhook = \"POST /hooks/a\", secret_env = \"HOOK\" }, { webhook = \"POST /hooks/b\", secret = \"ci-hook\" }]",
        ))
        .unwrap();
        let config = &manifest.functions[&name("hello")].config;
        assert_eq!(config.env, BTreeMap::from([("MODE".to_owned(), "live".to_owned())]));
        let secrets: Vec<(&str, &str)> = config.secret_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(secrets, [("HOOK", "ci-hook"), ("STRIPE_KEY", "stripe")]);
        let Trigger::Webhook(webhook) = &config.triggers[1] else { panic!() };
        assert_eq!(webhook.secret.as_ref().map(SecretName::as_str), Some("ci-hook"));

        let (field, message) = problem(&with_function("env = { KEY = { secret = \"no spaces\" } }"));
        assert_eq!(field, "functions.hello.env.KEY.secret");
        assert!(message.contains("not a valid secret name"), "{message}");
        let (field, message) = problem(&with_function("env = { KEY = { secret = \"a\", value = \"b\" } }"));
        assert_eq!(field, "functions.hello.env.KEY.value");
        assert!(message.contains("only `secret"), "{message}");
        let (field, _) = problem(&with_function(
            "triggers = [{ webhook = \"POST /h\", secret = \"a\", secret_env = \"B\" }]\nenv = { B = \"x\" }",
        ));
        assert_eq!(field, "functions.hello.triggers[0].secret");
    }

    #[test]
    fn env_values_hold_no_nul_and_fit_lambdas_limit() {
        let (field, message) = problem(&with_function("env = { KEY = \"a\\u0000b\" }"));
        assert_eq!(field, "functions.hello.env.KEY");
        assert!(message.contains("NUL"), "{message}");
        let big = "x".repeat(4000);
        let (field, message) = problem(&with_function(&format!("env = {{ A = \"{big}\", B = \"{big}\" }}")));
        assert_eq!(field, "functions.hello.env");
        assert!(message.contains("8002 bytes") && message.contains("limit of 4096"), "{message}");
        assert!(parse(&with_function(&format!("env = {{ A = \"{}\" }}", "x".repeat(4095)))).is_ok());
    }

    #[test]
    fn unknown_runtimes_list_the_valid_ones() {
        let (field, message) = problem("[app]\nname = \"x\"\n[functions.x]\nruntime = \"rust\"\nsource = \"x\"");
        assert_eq!(field, "functions.x.runtime");
        assert_eq!(message, "unknown runtime \"rust\"; use one of wasm, python3, nodejs, provided");

        let (_, message) =
            problem("[app]\nname = \"x\"\n[functions.x]\nruntime = \"python\"\nhandler = \"a.b\"\nsource = \"x\"");
        assert_eq!(
            message,
            "unknown runtime \"python\"; did you mean \"python3\"? (one of wasm, python3, nodejs, provided)"
        );
    }

    #[test]
    fn handlers_follow_the_runtime() {
        let function = |runtime: &str, handler: &str| {
            format!("[app]\nname = \"x\"\n[functions.x]\nruntime = {runtime:?}\nsource = \"x\"\n{handler}")
        };
        let (field, message) = problem(&function("nodejs", ""));
        assert_eq!(field, "functions.x.handler");
        assert!(message.starts_with("required by the nodejs runtime but missing"), "{message}");

        let (field, message) = problem(&function("wasm", "handler = \"app.handler\""));
        assert_eq!(field, "functions.x.handler");
        assert!(message.starts_with("handler is only for Lambda runtimes"), "{message}");

        assert!(problem(&function("python3", "handler = \"app\"")).1.contains("is not MODULE.FUNCTION"));
        assert!(problem(&function("python3", "handler = \"app.\"")).1.contains("is not MODULE.FUNCTION"));
        assert!(parse(&function("python3", "handler = \"pkg.mod.handler\"")).is_ok());
        assert!(parse(&function("nodejs", "handler = \"src/index.handler\"")).is_ok());
        assert!(parse(&function("provided", "")).is_ok());
        assert!(parse(&function("provided", "handler = \"anything\"")).is_ok());
    }

    #[test]
    fn outbound_hosts_are_hosts_only() {
        let hosts = |list: &str| with_function(&format!("allowed_outbound_hosts = [{list}]"));
        let (field, message) = problem(&hosts("\"ok.example.com\", \"https://api.example.com/v1\""));
        assert_eq!(field, "functions.hello.allowed_outbound_hosts[1]");
        assert_eq!(
            message,
            "\"https://api.example.com/v1\" has a scheme (https://); drop it and write only the host, like \"api.example.com\""
        );
        assert!(problem(&hosts("\"\"")).1.contains("the host is empty"));
        assert!(problem(&hosts("\"example.com/path\"")).1.contains("has a path"));
        assert!(problem(&hosts("\"api.*.com\"")).1.contains("'*' in the middle"));
        assert!(problem(&hosts("\"example.com:99999\"")).1.contains("invalid port"));
        assert!(parse(&hosts("\"[::1]:8080\", \"localhost:3000\", \"*.example.com\"")).is_ok());
    }

    #[test]
    fn build_accepts_a_command_or_a_table() {
        assert!(problem(&with_function("build = \"  \"")).1.contains("the build command is empty"));
        let (field, message) = problem(&with_function("build = { workdir = \"x\" }"));
        assert_eq!(field, "functions.hello.build.command");
        assert!(message.starts_with("required but missing"), "{message}");
    }

    #[test]
    fn the_app_and_a_function_are_required() {
        let (field, message) = problem("[functions.x]\nruntime = \"wasm\"\nsource = \"x\"");
        assert_eq!(field, "app");
        assert!(message.contains("add [app]"), "{message}");

        for text in ["[app]\nname = \"x\"", "[app]\nname = \"x\"\n[functions]"] {
            let (field, message) = problem(text);
            assert_eq!(field, "functions");
            assert!(message.contains("add a [functions.NAME] table"), "{message}");
        }

        let (field, message) = problem("[app]\nname = \"x\"\n[functions.Hello]\nruntime = \"wasm\"\nsource = \"x\"");
        assert_eq!(field, "functions.Hello");
        assert!(message.contains("must start with a lowercase letter"), "{message}");
    }

    #[test]
    fn errors_display_with_file_and_field() {
        let error = parse(&with_function("timeout = \"90m\"\nmemory = \"8MiB\"")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "updraft.toml has 2 problems:\n  updraft.toml: functions.hello.timeout: \"90m\" is above the maximum 900s\n  \
             updraft.toml: functions.hello.memory: \"8MiB\" is below the minimum 16MiB"
        );
    }

    #[test]
    fn odd_inputs_are_problems_not_panics() {
        let inputs = [
            "",
            "\u{0}",
            "[[app]]\nname = 1",
            "app = { name = \"\" }\nfunctions = []",
            "[app]\nname = \"x\"\n[functions.x]\nruntime = \"wasm\"\nsource = \"x\"\ntimeout = \"18446744073709551615h\"",
            "[app]\nname = \"x\"\n[functions.x]\nruntime = \"wasm\"\nsource = \"x\"\nmemory = -9223372036854775808",
            "[app]\nname = \"x\"\n[functions.x]\nruntime = \"wasm\"\nsource = \"x\"\ntriggers = [[], {}, { http = \"\u{e9} \u{e9}\" }]",
            "[app]\nname = \"x\"\n[functions.\"\"]\nruntime = \"wasm\"",
        ];
        for input in inputs {
            let error = parse(input).unwrap_err();
            assert!(!error.problems.is_empty(), "{input:?}");
        }
    }

    #[test]
    fn the_servers_own_paths_are_refused_as_routes() {
        for route in ["/v1/functions", "/2015-03-31/functions/f/invocations", "/metrics", "/healthz"] {
            let (field, message) = problem(&with_function(&format!("triggers = [{{ http = \"GET {route}\" }}]")));
            assert_eq!(field, "functions.hello.triggers[0].http");
            assert!(message.contains("is Updraft's own"), "{message}");
        }
        assert!(
            Manifest::parse(
                &with_function("triggers = [{ http = \"GET /metrics/mine\" }]"),
                "updraft.toml",
                &Limits::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn event_triggers_parse_with_their_options() {
        let manifest = parse(&with_function(
            r#"env = { HOOK_SECRET = "s3cret" }
triggers = [
  { topic = "user.signed_up" },
  { webhook = "POST /hooks/{repo}", secret_env = "HOOK_SECRET" },
  { schedule = "0 9 * * MON-FRI", timezone = "Europe/Paris", catch_up = "skip" },
  { schedule = "rate(5 minutes)" },
  { queue = "jobs", batch_size = 25, batch_window = "2s" },
  { email = "Signup@Example.com" },
  { email = "*@inbound.example.com" },
]"#,
        ))
        .unwrap();
        let triggers = &manifest.functions[&name("hello")].config.triggers;
        assert_eq!(triggers[0], Trigger::Topic(TopicTrigger { topic: TopicName::new("user.signed_up").unwrap() }));
        let Trigger::Webhook(webhook) = &triggers[1] else { panic!("{triggers:?}") };
        assert_eq!(
            (webhook.route.to_string().as_str(), webhook.secret_env.as_deref()),
            ("/hooks/{repo}", Some("HOOK_SECRET"))
        );
        let Trigger::Schedule(weekdays) = &triggers[2] else { panic!("{triggers:?}") };
        assert_eq!((weekdays.timezone.name(), weekdays.catch_up), ("Europe/Paris", CatchUp::Skip));
        let Trigger::Schedule(rate) = &triggers[3] else { panic!("{triggers:?}") };
        let Trigger::Queue(jobs) = &triggers[4] else { panic!("{triggers:?}") };
        assert_eq!(
            (
                jobs.queue.as_str(),
                jobs.batch_size,
                jobs.batch_window,
                jobs.max_receives,
                jobs.dead_letter_queue.as_str()
            ),
            ("jobs", 25, Duration::from_secs(2), 5, "jobs-dlq")
        );
        assert_eq!(jobs.visibility_timeout, Duration::from_secs(30));
        let Trigger::Email(signup) = &triggers[5] else { panic!("{triggers:?}") };
        assert!(signup.claims("SIGNUP@example.COM") && !signup.claims("other@example.com"));
        let Trigger::Email(inbound) = &triggers[6] else { panic!("{triggers:?}") };
        assert!(inbound.claims("anyone@inbound.example.com") && !inbound.claims("anyone@example.com"));
        assert_eq!(
            (rate.schedule.as_str(), rate.timezone, rate.catch_up),
            ("rate(5 minutes)", Timezone::UTC, CatchUp::Latest)
        );
    }

    #[test]
    fn event_triggers_report_what_to_fix() {
        let cases = [
            ("{ topic = \"a b\" }", "functions.hello.triggers[0].topic", "is not a valid topic name"),
            ("{ schedule = \"every day\" }", "functions.hello.triggers[0].schedule", "is not a cron expression"),
            ("{ schedule = \"rate(1 fortnight)\" }", "functions.hello.triggers[0].schedule", "unknown unit"),
            ("{ schedule = \"@daily\", timezone = \"Paris\" }", "functions.hello.triggers[0].timezone", "IANA name"),
            (
                "{ schedule = \"@daily\", catch_up = \"some\" }",
                "functions.hello.triggers[0].catch_up",
                "unknown catch_up",
            ),
            (
                "{ topic = \"t\", auth = \"key\" }",
                "functions.hello.triggers[0].auth",
                "auth is for http triggers, not topic",
            ),
            ("{ topic = \"t\", http = \"/x\" }", "functions.hello.triggers[0]", "has http and topic; make them two"),
            (
                "{ webhook = \"POST /h\", secret_env = \"NOPE\" }",
                "functions.hello.triggers[0].secret_env",
                "NOPE is not set",
            ),
            ("{ webhook = \"POST /v1/hooks\" }", "functions.hello.triggers[0].webhook", "is Updraft's own"),
            ("{ queue = \"jobs\", batch_size = 0 }", "functions.hello.triggers[0].batch_size", "outside 1–10000"),
            (
                "{ queue = \"jobs\", batch_window = \"10m\" }",
                "functions.hello.triggers[0].batch_window",
                "above the maximum",
            ),
            (
                "{ queue = \"jobs\", dead_letter_queue = \"jobs\" }",
                "functions.hello.triggers[0].dead_letter_queue",
                "the queue itself",
            ),
        ];
        for (trigger, field, expected) in cases {
            let (found, message) = problem(&with_function(&format!("triggers = [{trigger}]")));
            assert_eq!(found, field, "{trigger}: {message}");
            assert!(message.contains(expected), "{trigger}: {message}");
        }
        // A webhook claims its route like an HTTP trigger does.
        let (field, message) =
            problem(&with_function("triggers = [{ http = \"POST /hooks/ci\" }, { webhook = \"POST /hooks/ci\" }]"));
        assert_eq!(field, "functions.hello.triggers[1]");
        assert!(message.contains("is also claimed"), "{message}");
    }

    #[test]
    fn grants_name_topics_to_publish_to_and_workflows_to_start() {
        let manifest =
            parse(&with_function("publishes = [\"user.signed_up\", \"audit\"]\nstarts = [\"onboarding\"]")).unwrap();
        let config = &manifest.functions[&name("hello")].config;
        assert_eq!(config.publishes, [TopicName::new("user.signed_up").unwrap(), TopicName::new("audit").unwrap()]);
        assert_eq!(config.starts, ["onboarding".parse::<FunctionName>().unwrap()]);
        for (grant, field, expected) in [
            ("publishes = \"user.signed_up\"", "functions.hello.publishes", "a list"),
            ("publishes = [\"bad topic\"]", "functions.hello.publishes[0]", "topic"),
            ("publishes = [\"a\", \"a\"]", "functions.hello.publishes[1]", "listed twice"),
            ("starts = [1]", "functions.hello.starts[0]", "in quotes"),
            ("starts = [\"Not A Name\"]", "functions.hello.starts[0]", ""),
            ("env = { UPDRAFT_TOKEN = \"mine\" }", "functions.hello.env.UPDRAFT_TOKEN", "reserved"),
        ] {
            let (found, message) = problem(&with_function(grant));
            assert_eq!(found, field, "{grant}: {message}");
            assert!(message.contains(expected), "{grant}: {message}");
        }
    }

    #[test]
    fn destinations_are_a_function_or_a_topic() {
        let manifest = parse(&with_function(
            "on_success = { function = \"audit\" }\non_failure = { topic = \"signup.dead\" }\ndead_letter_topic = \"dlq\"",
        ))
        .unwrap();
        let config = &manifest.functions[&name("hello")].config;
        assert_eq!(config.on_success, Some(Destination::Function(name("audit"))));
        assert_eq!(config.on_failure, Some(Destination::Topic(TopicName::new("signup.dead").unwrap())));
        assert_eq!(config.dead_letter_topic, Some(TopicName::new("dlq").unwrap()));
        let (field, message) = problem(&with_function("on_failure = { function = \"a\", topic = \"b\" }"));
        assert_eq!(field, "functions.hello.on_failure");
        assert!(message.contains("not both"), "{message}");
        let (field, message) = problem(&with_function("on_failure = { queue = \"b\" }"));
        assert_eq!(field, "functions.hello.on_failure.queue");
        assert!(message.contains("unknown key"), "{message}");
        let (field, _) = problem(&with_function("on_success = \"audit\""));
        assert_eq!(field, "functions.hello.on_success");
        let (field, message) = problem(&with_function("on_failure = { function = \"hello\" }"));
        assert_eq!(field, "functions.hello.on_failure");
        assert!(message.contains("cannot be its own destination"), "{message}");
    }

    #[test]
    fn retries_and_max_event_age_are_checked() {
        let manifest =
            Manifest::parse(&with_function("retries = 0\nmax_event_age = \"15m\""), "updraft.toml", &Limits::default())
                .unwrap();
        let config = &manifest.functions.values().next().unwrap().config;
        assert_eq!((config.retries, config.max_event_age), (0, Duration::from_secs(900)));
        let defaults = Manifest::parse(&with_function(""), "updraft.toml", &Limits::default()).unwrap();
        let config = &defaults.functions.values().next().unwrap().config;
        assert_eq!((config.retries, config.max_event_age), (2, Duration::from_secs(6 * 3600)));
        let (field, message) = problem(&with_function("retries = 3"));
        assert_eq!(field, "functions.hello.retries");
        assert!(message.contains("at most twice"), "{message}");
        let (field, _) = problem(&with_function("max_event_age = \"10s\""));
        assert_eq!(field, "functions.hello.max_event_age");
    }

    #[test]
    fn idle_timeout_and_min_instances_are_checked() {
        let manifest = Manifest::parse(
            &with_function("idle_timeout = \"30s\"\nmin_instances = 2"),
            "updraft.toml",
            &Limits::default(),
        )
        .unwrap();
        let config = &manifest.functions.values().next().unwrap().config;
        assert_eq!((config.idle_timeout, config.min_instances), (Duration::from_secs(30), 2));
        let (field, message) = problem(&with_function("concurrency = 2\nmin_instances = 3"));
        assert_eq!(field, "functions.hello.min_instances");
        assert!(message.contains("above the function's concurrency 2"), "{message}");
        let (field, message) = problem(&with_function("idle_timeout = \"48h\""));
        assert_eq!(
            (field.as_str(), message.as_str()),
            ("functions.hello.idle_timeout", "\"48h\" is above the maximum 86400s")
        );
    }
}
