//! The `[functions.NAME]` section: each function's runtime, code, limits, environment
//! and grants.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::{Table, Value};

use crate::manifest::parse::toml_values::{did_you_mean, join, sorted};
use crate::manifest::parse::{
    BUILD_KEYS, Checker, FUNCTION_KEYS, FUTURE_FUNCTION_KEYS, MAX_DESCRIPTION, MAX_EVENT_AGE, MIN_EVENT_AGE, ParsedEnv,
};
use crate::manifest::{BuildSpec, Destination, FunctionConfig, FunctionSpec, RecursiveLoop, RuntimeKind, ServerSpec};
use crate::outbound::check_host;
use crate::{AliasName, ByteSize, FunctionName, SecretName, VersionNumber, format_duration, parse_duration};

impl Checker<'_> {
    pub(super) fn functions(&mut self, value: Option<&Value>) -> Option<BTreeMap<FunctionName, FunctionSpec>> {
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

    pub(super) fn function(&mut self, path: &str, name: &str, table: &Table) -> Option<FunctionSpec> {
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
        let server = self.server(path, table, runtime);
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
        let description = self.optional(table, path, "description", |checker, path, value| {
            let text = checker.string(path, value, "write it in quotes, like description = \"Makes thumbnails\"")?;
            if text.chars().count() > MAX_DESCRIPTION {
                checker.problem(
                    path,
                    format!("it is longer than {MAX_DESCRIPTION} characters (Lambda's limit); shorten it"),
                );
                return None;
            }
            Some(text.to_owned())
        });
        let aliases = self.optional(table, path, "aliases", Self::aliases);
        let recursive_loop = self.optional(table, path, "recursive_loop", |checker, path, value| {
            let fix = "write recursive_loop = \"allow\" (never stop a loop) or \"terminate\" (the default)";
            match checker.string(path, value, fix)? {
                "allow" => Some(RecursiveLoop::Allow),
                "terminate" => Some(RecursiveLoop::Terminate),
                other => {
                    checker.problem(path, format!("unknown setting {other:?}; {fix}"));
                    None
                }
            }
        });
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
        let reuse = instance_reuse?.unwrap_or(false);
        // A wasm component's: the server's is in `server`.
        let concurrency_per_instance = match runtime {
            Some(RuntimeKind::Wasm) => {
                self.optional(table, path, "concurrency_per_instance", Self::concurrency_per_instance)?
            }
            _ => None,
        };
        if let Some(n) = concurrency_per_instance
            && n > 1
            && !reuse
        {
            self.problem(
                &join(path, "concurrency_per_instance"),
                format!(
                    "{n} requests at once in one instance means the instance is reused; \
                     add instance_reuse = true, or remove concurrency_per_instance"
                ),
            );
            return None;
        }
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
            aliases: aliases?.unwrap_or_default(),
            config: FunctionConfig {
                runtime: runtime?,
                handler: handler?,
                server: server?,
                memory: memory?.unwrap_or(self.limits.default_memory),
                timeout: timeout?.unwrap_or(self.limits.default_timeout),
                concurrency,
                secret_env: env.as_ref()?.secrets.clone(),
                env: env?.plain,
                allowed_outbound_hosts: hosts?.unwrap_or_default(),
                instance_reuse: reuse,
                concurrency_per_instance: concurrency_per_instance.unwrap_or(1),
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
                description: description?,
                lambda_runtime: None,
                recursive_loop: recursive_loop?.unwrap_or_default(),
            },
        })
    }

    /// `aliases = { live = "$LATEST", stable = 3 }`: each alias and the version it names.
    fn aliases(&mut self, path: &str, value: &Value) -> Option<BTreeMap<AliasName, Option<VersionNumber>>> {
        let fix = "aliases = { live = \"$LATEST\", stable = 3 }";
        let table = self.table(path, value, fix)?;
        let mut aliases = BTreeMap::new();
        let mut all_valid = true;
        for (name, value) in sorted(table) {
            let alias_path = join(path, name);
            let alias = AliasName::new(name).map_err(|invalid| self.problem(&alias_path, invalid.to_string()));
            let version = match value {
                Value::String(text) if text == "$LATEST" => Ok(None),
                Value::Integer(number) => {
                    u32::try_from(*number).ok().filter(|n| *n >= 1).map(|n| Some(VersionNumber(n))).ok_or(())
                }
                _ => Err(()),
            }
            .map_err(|()| {
                self.problem(
                    &alias_path,
                    format!("an alias names a version number (like {name} = 3) or \"$LATEST\" for the version serving"),
                )
            });
            match (alias, version) {
                (Ok(alias), Ok(version)) => {
                    aliases.insert(alias, version);
                }
                _ => all_valid = false,
            }
        }
        all_valid.then_some(aliases)
    }

    pub(super) fn runtime(&mut self, path: &str, value: &Value) -> Option<RuntimeKind> {
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

    pub(super) fn source(&mut self, path: &str, value: &Value) -> Option<String> {
        let text = self.string(path, value, "write the path in quotes, like source = \"hello.wasm\"")?;
        if text.trim().is_empty() {
            self.problem(path, format!("the path is empty; write the path of the code, relative to {}", self.file));
            return None;
        }
        Some(text.to_owned())
    }

    pub(super) fn build(&mut self, path: &str, value: &Value) -> Option<BuildSpec> {
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

    pub(super) fn command(&mut self, path: &str, command: &str) -> Option<String> {
        if command.trim().is_empty() {
            self.problem(path, "the build command is empty; write the command, or remove build");
            return None;
        }
        Some(command.to_owned())
    }

    /// `handler`: required by python3 and nodejs, refused by wasm. `Some(None)` when it
    /// is absent and may be.
    pub(super) fn handler(
        &mut self,
        path: &str,
        value: Option<&Value>,
        runtime: Option<RuntimeKind>,
    ) -> Option<Option<String>> {
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
            Some(RuntimeKind::Http) => {
                self.problem(
                    path,
                    format!(
                        "handler is only for Lambda runtimes ({lambda_runtimes}); an http function is a web \
                         server: remove handler and start it with command"
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

    /// `command`, `readiness_path` and `concurrency_per_instance`: required (the first)
    /// and allowed only by the `http` runtime. `Some(None)` for other runtimes.
    pub(super) fn server(
        &mut self,
        path: &str,
        table: &Table,
        runtime: Option<RuntimeKind>,
    ) -> Option<Option<ServerSpec>> {
        const KEYS: [&str; 3] = ["command", "readiness_path", "concurrency_per_instance"];
        if runtime != Some(RuntimeKind::Http) {
            let mut valid = true;
            // A WASIp3 component's instances may run several requests at once too.
            let wasm_key = |key: &str| runtime == Some(RuntimeKind::Wasm) && key == "concurrency_per_instance";
            for key in KEYS.iter().filter(|key| table.contains_key(**key) && !wasm_key(key)) {
                if runtime.is_some() {
                    self.problem(
                        &join(path, key),
                        match *key {
                            "concurrency_per_instance" => format!(
                                "{key} is only for runtime = \"http\" (a web server started by a command) and \"wasm\" (a WASIp3 component); remove it"
                            ),
                            _ => format!("{key} is only for runtime = \"http\" (a web server started by a command); remove it"),
                        },
                    );
                }
                valid = false;
            }
            return valid.then_some(None);
        }
        let command = match table.get("command") {
            Some(value) => {
                let fix = "write it in quotes, like command = \"gunicorn app:app --bind 127.0.0.1:$PORT\"";
                match self.string(&join(path, "command"), value, fix) {
                    Some(text) if text.trim().is_empty() => {
                        self.problem(&join(path, "command"), format!("the command is empty; {fix}"));
                        None
                    }
                    text => text.map(str::to_owned),
                }
            }
            None => {
                self.problem(
                    &join(path, "command"),
                    "required by the http runtime but missing; add the command that starts the server on \
                     $PORT, like command = \"gunicorn app:app --bind 127.0.0.1:$PORT\"",
                );
                None
            }
        };
        let readiness_path = self.optional(table, path, "readiness_path", |checker, path, value| {
            let text = checker.string(path, value, "write it in quotes, like readiness_path = \"/healthz\"")?;
            let valid = text.starts_with('/') && !text.contains(char::is_whitespace) && !text.contains('#');
            if !valid {
                checker.problem(path, format!("{text:?} is not a path; write one starting with /, like \"/healthz\""));
                return None;
            }
            Some(text.to_owned())
        });
        let concurrency_per_instance =
            self.optional(table, path, "concurrency_per_instance", Self::concurrency_per_instance);
        Some(Some(ServerSpec {
            command: command?,
            readiness_path: readiness_path?.unwrap_or_else(|| ServerSpec::DEFAULT_READINESS_PATH.to_owned()),
            concurrency_per_instance: concurrency_per_instance?.unwrap_or(1),
        }))
    }

    /// `concurrency_per_instance`: 1 (one request at a time) up to the maximum.
    fn concurrency_per_instance(&mut self, path: &str, value: &Value) -> Option<u32> {
        let max = ServerSpec::MAX_CONCURRENCY_PER_INSTANCE;
        match value {
            Value::Integer(n) if (1..=i64::from(max)).contains(n) => u32::try_from(*n).ok(),
            Value::Integer(n) => {
                self.problem(
                    path,
                    format!("{n} is out of range; write a number from 1 (one request at a time) to {max}"),
                );
                None
            }
            other => {
                self.expected(path, "a whole number", other, "write it like concurrency_per_instance = 8");
                None
            }
        }
    }

    pub(super) fn timeout(&mut self, path: &str, value: &Value) -> Option<Duration> {
        let (min, max) = (self.limits.min_timeout, self.limits.max_timeout);
        self.duration(path, value, "timeout", min, max)
    }

    pub(super) fn idle_timeout(&mut self, path: &str, value: &Value) -> Option<Duration> {
        self.duration(path, value, "idle_timeout", Duration::from_millis(1), self.limits.max_idle_timeout)
    }

    /// A duration written as `"5s"` or a whole number of seconds, within `min..=max`.
    pub(super) fn duration(
        &mut self,
        path: &str,
        value: &Value,
        key: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
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
    pub(super) fn retries(&mut self, path: &str, value: &Value) -> Option<u32> {
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

    pub(super) fn min_instances(&mut self, path: &str, value: &Value) -> Option<u32> {
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

    pub(super) fn memory(&mut self, path: &str, value: &Value) -> Option<ByteSize> {
        let (memory, written) = match value {
            Value::String(text) => match ByteSize::parse_memory(text) {
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

    pub(super) fn concurrency(&mut self, path: &str, value: &Value) -> Option<u32> {
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

    pub(super) fn env(&mut self, path: &str, value: &Value) -> Option<ParsedEnv> {
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
    pub(super) fn secret_reference(&mut self, path: &str, table: &Table) -> Option<SecretName> {
        if let Some(other) = table.keys().find(|key| key.as_str() != "secret") {
            self.problem(&join(path, other), "a secret reference has only `secret = \"NAME\"`; remove this key");
            return None;
        }
        let secret_path = join(path, "secret");
        let text =
            self.string(&secret_path, &table["secret"], "write the secret's name in quotes, like secret = \"stripe\"")?;
        text.parse::<SecretName>().map_err(|invalid| self.problem(&secret_path, invalid.to_string())).ok()
    }

    pub(super) fn hosts(&mut self, path: &str, value: &Value) -> Option<Vec<String>> {
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
}

pub(super) fn runtime_list() -> String {
    RuntimeKind::ALL.map(RuntimeKind::as_str).join(", ")
}

/// `module.function`: a module path, a dot, and an identifier.
pub(super) fn is_module_function(handler: &str) -> bool {
    let Some((module, function)) = handler.rsplit_once('.') else {
        return false;
    };
    let mut function_chars = function.chars();
    let function_ok = function_chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && function_chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    function_ok && !module.is_empty() && !module.chars().any(char::is_whitespace)
}

pub(super) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
