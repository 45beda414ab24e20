//! `Manifest::parse`: reads `updraft.toml` into a `Manifest`, reporting every mistake.
//!
//! The TOML tree is walked by hand. Each check records a `ManifestProblem` and carries
//! on, so one run shows the user everything to fix. A check that fails yields `None`;
//! the manifest is assembled only when no check failed.
//!
//! Problems come out in a fixed order that does not depend on how the TOML library
//! orders keys: top-level keys, `[app]`, functions by name (each in the order of the
//! keys in `FUNCTION_KEYS`), and route conflicts last.
//!
//! Each section has its own file: `functions.rs`, `triggers.rs` (with destinations and
//! route conflicts), `workflows.rs`; `toml_values.rs` holds the typed reads every
//! section shares. Value grammars live beside their types (`ByteSize::parse`,
//! `parse_duration`, `RoutePattern::parse` and `parse_http` in `route.rs`,
//! `check_host` in `outbound.rs`, `ScheduleExpression::parse`).

use std::collections::BTreeMap;
use std::time::Duration;

use toml::{Table, Value};

mod functions;
#[cfg(test)]
mod tests;
mod toml_values;
mod triggers;
mod workflows;

use super::{HttpTrigger, Manifest, ManifestError, ManifestProblem};
use crate::{AppName, Limits, SecretName};

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
    "command",
    "readiness_path",
    "concurrency_per_instance",
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
    "description",
    "aliases",
    "recursive_loop",
];
/// Lambda's limit on a function's description.
pub(crate) const MAX_DESCRIPTION: usize = 256;
/// Lambda's bounds on an asynchronous event's age.
const MIN_EVENT_AGE: Duration = Duration::from_secs(60);
const MAX_EVENT_AGE: Duration = Duration::from_secs(6 * 3600);
const BUILD_KEYS: &[&str] = &["command", "workdir"];
/// The kinds of trigger, each a key naming what the trigger listens to.
const TRIGGER_KINDS: &[&str] = &["http", "webhook", "topic", "schedule", "queue", "email"];
/// The other keys a trigger may have, each with the kind it belongs to.
const TRIGGER_OPTIONS: &[(&str, &[&str])] = &[
    ("auth", &["http"]),
    ("payload_format", &["http"]),
    ("alias", &["http", "topic", "queue"]),
    ("secret_env", &["webhook"]),
    ("secret", &["webhook"]),
    ("timezone", &["schedule"]),
    ("catch_up", &["schedule"]),
    ("batch_size", &["queue"]),
    ("batch_window", &["queue"]),
    ("visibility_timeout", &["queue"]),
    ("max_receives", &["queue"]),
    ("dead_letter_queue", &["queue"]),
];
const DESTINATION_KEYS: &[&str] = &["function", "topic"];

/// Keys that DESIGN.md promises but this version does not implement yet. They get a
/// "not supported yet" message instead of "unknown key", so nobody hunts for a typo.
const FUTURE_TOP_KEYS: &[&str] = &[];
const FUTURE_FUNCTION_KEYS: &[&str] = &[];
const FUTURE_TRIGGER_KINDS: &[&str] = &[];

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
}
