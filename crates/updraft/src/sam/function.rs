//! `AWS::Serverless::Function`: its properties, and each of its `Events` as a trigger.

use serde_json::Value;
use toml::Table;

use super::template::{Referent, last_name};
use super::{Conversion, toml_table, valid_function};

/// Properties that only matter in AWS: permissions, tracing, processors, packaging.
const IGNORED: &[&str] = &[
    "Policies",
    "Role",
    "RolePath",
    "PermissionsBoundary",
    "AssumeRolePolicyDocument",
    "Tracing",
    "Architectures",
    "Tags",
    "PropagateTags",
    "AutoPublishCodeSha256",
    "AutoPublishAliasAllProperties",
    "VersionDescription",
    "KmsKeyArn",
    "LoggingConfig",
    "VpcConfig",
    "RuntimeManagementConfig",
    "SnapStart",
    "EphemeralStorage",
    "CodeSigningConfigArn",
];

/// `DeploymentPreference` canary types: the share and how long before the rest moves.
const CANARIES: &[(&str, f64, &str)] = &[
    ("Canary10Percent5Minutes", 10.0, "5m"),
    ("Canary10Percent10Minutes", 10.0, "10m"),
    ("Canary10Percent15Minutes", 10.0, "15m"),
    ("Canary10Percent30Minutes", 10.0, "30m"),
];

impl Conversion<'_> {
    pub(super) fn function(&mut self, id: &str, properties: &Value) {
        let at = format!("Resources.{id}.Properties");
        let Some(Referent::Function(name)) = self.scope.ids.get(id).cloned() else { return };
        if !valid_function(&name) {
            self.problem(format!("{at}.FunctionName"), format!("{name:?} is not a valid Updraft function name"));
            return;
        }
        let mut table = Table::new();
        let mut alias = None;
        let Some(properties) = properties.as_object() else {
            self.problem(at, "must be a mapping");
            return;
        };
        for (key, value) in properties {
            let here = format!("{at}.{key}");
            // Events are mapped last, once the alias is known.
            if key == "Events" {
                continue;
            }
            if IGNORED.contains(&key.as_str()) {
                self.note(format!("{key} (AWS permissions, tracing, processor and packaging settings)"));
                continue;
            }
            // Its alarms and hooks name AWS resources; only its Type is resolved.
            if key == "DeploymentPreference" {
                self.deployment_preference(id, &here, value);
                continue;
            }
            let value = match self.scope.resolve(value) {
                Ok(value) => value,
                Err(message) => {
                    self.problem(here, message);
                    continue;
                }
            };
            match key.as_str() {
                "FunctionName" => {}
                "CodeUri" => match value.as_str() {
                    Some(path) => {
                        let path = path.trim_end_matches('/');
                        let path = if path.is_empty() { "." } else { path };
                        if !self.dir.join(path).exists() {
                            self.problem(here, format!("{path:?} does not exist beside the template"));
                        }
                        table.insert("source".to_owned(), path.into());
                    }
                    None => self.problem(
                        here,
                        "an S3 location cannot be read; point CodeUri at the function's folder beside the template",
                    ),
                },
                "InlineCode" => {
                    self.problem(here, "cannot be mapped; put the code in a file in a folder and set CodeUri to it")
                }
                "PackageType" if value == "Zip" => {}
                "PackageType" | "ImageUri" | "ImageConfig" => self.problem(
                    here,
                    "container images cannot be mapped; Updraft runs zip functions (CodeUri with Handler and Runtime)",
                ),
                "Handler" => {
                    table.insert("handler".to_owned(), self.text(&here, &value).into());
                }
                "Runtime" => {
                    let runtime = self.text(&here, &value);
                    match runtime_kind(&runtime) {
                        Some(kind) => {
                            table.insert("runtime".to_owned(), kind.into());
                        }
                        None => self.problem(
                            here,
                            format!(
                                "{runtime:?} cannot be mapped; Updraft runs python3.x, nodejs*.x and provided.* \
                                 functions"
                            ),
                        ),
                    }
                }
                "MemorySize" => match value.as_u64() {
                    Some(megabytes) => {
                        table.insert("memory".to_owned(), format!("{megabytes}MiB").into());
                    }
                    None => self.problem(here, "must be a number of MB"),
                },
                "Timeout" => match value.as_u64() {
                    Some(seconds) => {
                        table.insert("timeout".to_owned(), format!("{seconds}s").into());
                    }
                    None => self.problem(here, "must be a number of seconds"),
                },
                "Description" => {
                    table.insert("description".to_owned(), self.text(&here, &value).into());
                }
                "Environment" => {
                    let mut env = Table::new();
                    for (variable, value) in value["Variables"].as_object().into_iter().flatten() {
                        let text = self.text(&format!("{here}.Variables.{variable}"), value);
                        env.insert(variable.clone(), text.into());
                    }
                    if !env.is_empty() {
                        table.insert("env".to_owned(), toml::Value::Table(env));
                    }
                }
                "ReservedConcurrentExecutions" => match value.as_u64() {
                    Some(limit) => {
                        table.insert("concurrency".to_owned(), (limit as i64).into());
                    }
                    None => self.problem(here, "must be a number"),
                },
                "ProvisionedConcurrencyConfig" => match value["ProvisionedConcurrentExecutions"].as_u64() {
                    Some(count) => {
                        table.insert("min_instances".to_owned(), (count as i64).into());
                    }
                    None => self.problem(here, "needs ProvisionedConcurrentExecutions, a number"),
                },
                "AutoPublishAlias" => {
                    let name = self.text(&here, &value);
                    table.insert(
                        "aliases".to_owned(),
                        toml::Value::Table(toml_table([(name.as_str(), "$LATEST".into())])),
                    );
                    alias = Some(name);
                }
                "DeadLetterQueue" => match (value["Type"].as_str(), value["TargetArn"].as_str()) {
                    (Some("SNS"), Some(arn)) => {
                        table.insert("dead_letter_topic".to_owned(), last_name(arn).into());
                    }
                    (Some("SQS"), _) => self.problem(
                        here,
                        "an SQS dead-letter queue cannot be mapped; Updraft sends failed events to a topic \
                         (Type: SNS)",
                    ),
                    _ => self.problem(here, "needs Type (SNS) and TargetArn"),
                },
                "EventInvokeConfig" => self.event_invoke_config(&here, &value, &mut table),
                "RecursiveLoop" => match value.as_str() {
                    Some("Allow") => {
                        table.insert("recursive_loop".to_owned(), "allow".into());
                    }
                    Some("Terminate") => {}
                    _ => self.problem(here, "must be Allow or Terminate"),
                },
                "Layers" => self.problem(
                    here,
                    "layers cannot be mapped; put their code in the function's folder (or in its requirements.txt \
                     or package.json)",
                ),
                "FunctionUrlConfig" => self.problem(
                    here,
                    "cannot be mapped; give the function an Api or HttpApi event for the routes it serves",
                ),
                "FileSystemConfigs" => self.problem(here, "EFS file systems cannot be mapped; remove it"),
                other => self.problem(format!("{at}.{other}"), "is not a property Updraft can map; remove it"),
            }
        }
        if !table.contains_key("runtime") {
            self.problem(format!("{at}.Runtime"), "is missing; name the runtime, like python3.12");
        }
        self.functions.insert(name.clone(), toml::Value::Table(table));
        if let Some(events) = properties.get("Events").and_then(Value::as_object) {
            for (event_id, event) in events {
                let here = format!("{at}.Events.{event_id}");
                match self.scope.resolve(event) {
                    Ok(event) => {
                        if let Some(mut trigger) = self.event(&here, &event) {
                            let aliasable = ["http", "topic", "queue"].iter().any(|kind| trigger.contains_key(*kind));
                            if let Some(alias) = alias.as_ref().filter(|_| aliasable) {
                                // SAM points a function's event sources at its AutoPublishAlias.
                                trigger.insert("alias".to_owned(), alias.clone().into());
                            }
                            self.add_trigger(&here, &name, trigger);
                        }
                    }
                    Err(message) => self.problem(here, message),
                }
            }
        }
    }

    fn text(&mut self, at: &str, value: &Value) -> String {
        match value {
            Value::String(text) => text.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            other => {
                self.problem(at, format!("must be text, not {other}"));
                String::new()
            }
        }
    }

    fn deployment_preference(&mut self, id: &str, at: &str, value: &Value) {
        if value["Enabled"] == Value::Bool(false) {
            return;
        }
        for key in value.as_object().into_iter().flatten().map(|(key, _)| key.as_str()) {
            match key {
                "Type" | "Enabled" | "Role" => {}
                "Alarms" => self.note(format!(
                    "{id}.DeploymentPreference.Alarms (a canary is rolled back when the new version's error rate \
                     passes the old one's)"
                )),
                other => self.problem(format!("{at}.{other}"), "cannot be mapped; remove it"),
            }
        }
        let kind = match self.scope.resolve(&value["Type"]) {
            Ok(kind) => kind,
            Err(message) => return self.problem(format!("{at}.Type"), message),
        };
        match kind.as_str() {
            Some("AllAtOnce") => {}
            Some(kind) => match CANARIES.iter().find(|(name, ..)| *name == kind) {
                Some((_, percent, duration)) => self.canaries.push((id.to_owned(), (*percent, (*duration).to_owned()))),
                None => self.problem(
                    format!("{at}.Type"),
                    format!(
                        "{kind} cannot be mapped; Updraft shifts traffic once, so use AllAtOnce or a canary type ({})",
                        CANARIES.iter().map(|(name, ..)| *name).collect::<Vec<_>>().join(", ")
                    ),
                ),
            },
            None => self.problem(format!("{at}.Type"), "is missing"),
        }
    }

    fn event_invoke_config(&mut self, at: &str, value: &Value, table: &mut Table) {
        for (key, setting) in value.as_object().into_iter().flatten() {
            let here = format!("{at}.{key}");
            match key.as_str() {
                "MaximumEventAgeInSeconds" => match setting.as_u64() {
                    Some(seconds) => {
                        table.insert("max_event_age".to_owned(), format!("{seconds}s").into());
                    }
                    None => self.problem(here, "must be a number of seconds"),
                },
                "MaximumRetryAttempts" => match setting.as_u64() {
                    Some(retries) => {
                        table.insert("retries".to_owned(), (retries as i64).into());
                    }
                    None => self.problem(here, "must be a number"),
                },
                "DestinationConfig" => {
                    for (outcome, field) in [("OnSuccess", "on_success"), ("OnFailure", "on_failure")] {
                        let Some(destination) = setting.get(outcome) else { continue };
                        let target = destination["Destination"].as_str().map(last_name);
                        let mapped = match (destination["Type"].as_str(), target) {
                            (Some("SNS"), Some(topic)) => Some(toml_table([("topic", topic.into())])),
                            (Some("Lambda"), Some(function)) => Some(toml_table([("function", function.into())])),
                            _ => None,
                        };
                        match mapped {
                            Some(mapped) => {
                                table.insert(field.to_owned(), toml::Value::Table(mapped));
                            }
                            None => self.problem(
                                format!("{here}.{outcome}"),
                                "cannot be mapped; a destination is an SNS topic or a Lambda function of the \
                                 template (Type: SNS or Lambda, with Destination)",
                            ),
                        }
                    }
                }
                other => self.problem(format!("{at}.{other}"), "cannot be mapped; remove it"),
            }
        }
    }

    /// One event source as a trigger, or `None` (with a problem, or a note when it is
    /// disabled).
    fn event(&mut self, at: &str, event: &Value) -> Option<Table> {
        let kind = event["Type"].as_str().unwrap_or_default();
        let properties = event.get("Properties").cloned().unwrap_or_else(|| Value::Object(Default::default()));
        let keys: Vec<String> = properties.as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
        let here = format!("{at}.Properties");
        let refuse_others = |conversion: &mut Self, allowed: &[&str]| {
            let mut clean = true;
            for key in &keys {
                if !allowed.contains(&key.as_str()) {
                    conversion
                        .problem(format!("{here}.{key}"), format!("cannot be mapped for a {kind} event; remove it"));
                    clean = false;
                }
            }
            clean
        };
        let disabled = properties["Enabled"] == Value::Bool(false) || properties["State"] == "DISABLED";
        if disabled {
            self.note(format!("{at} (disabled)"));
            return None;
        }
        match kind {
            "Api" | "HttpApi" => {
                let allowed = [
                    "Path",
                    "Method",
                    "RestApiId",
                    "ApiId",
                    "PayloadFormatVersion",
                    "TimeoutInMillis",
                    "RouteSettings",
                ];
                if !refuse_others(self, &allowed) {
                    return None;
                }
                let path = properties["Path"].as_str().unwrap_or("$default");
                let method = properties["Method"].as_str().unwrap_or("any");
                let route = if path == "$default" { "/{*proxy}".to_owned() } else { route(path) };
                let method = if method.eq_ignore_ascii_case("any") { "*".to_owned() } else { method.to_uppercase() };
                let mut trigger = toml_table([("http", format!("{method} {route}").into())]);
                // A REST API (`Api`) sends payload format 1.0, as does an HTTP API asked to.
                let version = &properties["PayloadFormatVersion"];
                if kind == "Api" || version == "1.0" || version.as_f64() == Some(1.0) {
                    trigger.insert("payload_format".to_owned(), "1.0".into());
                }
                Some(trigger)
            }
            "Schedule" | "ScheduleV2" => {
                let (expression_key, allowed): (&str, &[&str]) = if kind == "Schedule" {
                    ("Schedule", &["Schedule", "Enabled", "State", "Name", "Description"])
                } else {
                    (
                        "ScheduleExpression",
                        &[
                            "ScheduleExpression",
                            "ScheduleExpressionTimezone",
                            "State",
                            "Name",
                            "Description",
                            "FlexibleTimeWindow",
                            "GroupName",
                        ],
                    )
                };
                if !refuse_others(self, allowed) {
                    return None;
                }
                let expression = properties[expression_key].as_str().unwrap_or_default();
                let schedule = match schedule(expression) {
                    Ok(schedule) => schedule,
                    Err(message) => {
                        self.problem(format!("{here}.{expression_key}"), message);
                        return None;
                    }
                };
                let mut trigger = toml_table([("schedule", schedule.into())]);
                if let Some(zone) = properties["ScheduleExpressionTimezone"].as_str() {
                    trigger.insert("timezone".to_owned(), zone.into());
                }
                Some(trigger)
            }
            "SQS" => {
                let allowed = [
                    "Queue",
                    "BatchSize",
                    "MaximumBatchingWindowInSeconds",
                    "Enabled",
                    "FunctionResponseTypes",
                    "ScalingConfig",
                ];
                if !refuse_others(self, &allowed) {
                    return None;
                }
                let Some(queue) = properties["Queue"].as_str().map(last_name) else {
                    self.problem(format!("{here}.Queue"), "is missing; name the queue (!GetAtt MyQueue.Arn)");
                    return None;
                };
                let mut trigger = toml_table([("queue", queue.into())]);
                if let Some(size) = properties["BatchSize"].as_u64() {
                    trigger.insert("batch_size".to_owned(), (size as i64).into());
                }
                if let Some(seconds) = properties["MaximumBatchingWindowInSeconds"].as_u64() {
                    trigger.insert("batch_window".to_owned(), format!("{seconds}s").into());
                }
                if let Some(settings) = self.queues.get(queue) {
                    if let Some(seconds) = settings.visibility_timeout {
                        trigger.insert("visibility_timeout".to_owned(), format!("{seconds}s").into());
                    }
                    if let Some((dead_letter, receives)) = &settings.dead_letter {
                        trigger.insert("dead_letter_queue".to_owned(), dead_letter.clone().into());
                        trigger.insert("max_receives".to_owned(), (*receives as i64).into());
                    }
                }
                Some(trigger)
            }
            "SNS" => {
                if !refuse_others(self, &["Topic", "Region"]) {
                    return None;
                }
                let Some(topic) = properties["Topic"].as_str().map(last_name) else {
                    self.problem(format!("{here}.Topic"), "is missing; name the topic (!Ref MyTopic)");
                    return None;
                };
                Some(toml_table([("topic", topic.into())]))
            }
            "EventBridgeRule" => {
                if !refuse_others(self, &["Pattern", "EventBusName", "RuleName", "State", "Target"]) {
                    return None;
                }
                if properties.get("EventBusName").is_some_and(|bus| bus != "default") {
                    self.problem(format!("{here}.EventBusName"), "only the default bus can be mapped; remove it");
                    return None;
                }
                match event_source(&properties["Pattern"]) {
                    Ok(source) => Some(toml_table([("topic", source.into())])),
                    Err(message) => {
                        self.problem(format!("{here}.Pattern"), message);
                        None
                    }
                }
            }
            "" => {
                self.problem(format!("{at}.Type"), "is missing");
                None
            }
            other => {
                self.problem(
                    format!("{at}.Type"),
                    format!(
                        "{other} events cannot be mapped; Updraft maps Api, HttpApi, Schedule, ScheduleV2, SQS, SNS \
                         and EventBridgeRule"
                    ),
                );
                None
            }
        }
    }
}

/// Lambda's runtime identifier as an Updraft runtime.
fn runtime_kind(runtime: &str) -> Option<&'static str> {
    if runtime.starts_with("python3.") {
        Some("python3")
    } else if runtime.starts_with("nodejs") && runtime.ends_with(".x") {
        Some("nodejs")
    } else if runtime.starts_with("provided") {
        Some("provided")
    } else {
        None
    }
}

/// An API Gateway path as a route: `{proxy+}` is `{*proxy}`.
fn route(path: &str) -> String {
    let route: Vec<String> = path
        .split('/')
        .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
            Some(name) => format!("{{*{name}}}"),
            None => segment.to_owned(),
        })
        .collect();
    let route = route.join("/");
    if route.starts_with('/') { route } else { format!("/{route}") }
}

/// An EventBridge schedule expression as a `schedule` trigger's: `rate(...)` as it
/// is; `cron(min hour day month weekday year)` as five cron fields, with `?` as `*`
/// and weekdays counted from 0 (EventBridge counts Sunday as 1).
fn schedule(expression: &str) -> Result<String, String> {
    let expression = expression.trim();
    if expression.starts_with("rate(") {
        return Ok(expression.to_owned());
    }
    let Some(fields) = expression.strip_prefix("cron(").and_then(|rest| rest.strip_suffix(')')) else {
        return Err(format!(
            "{expression:?} cannot be mapped; use rate(...) or cron(...) (one-time at(...) schedules are not \
             supported)"
        ));
    };
    let fields: Vec<&str> = fields.split_whitespace().collect();
    let [minute, hour, day, month, weekday, year] = fields.as_slice() else {
        return Err(format!("{expression:?}: cron( ) takes six fields: minutes hours day month weekday year"));
    };
    if *year != "*" {
        return Err(format!("{expression:?}: a year other than * cannot be mapped"));
    }
    let question = |field: &str| if field == "?" { "*".to_owned() } else { field.to_owned() };
    let mut shifted = String::new();
    let mut digits = String::new();
    // A number after `#` (the nth weekday) or `/` (a step) counts no weekday.
    let mut after_hash = false;
    for c in question(weekday).chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if !digits.is_empty() {
            let number: u32 = digits.parse().unwrap_or(0);
            if after_hash {
                shifted.push_str(&digits);
            } else {
                shifted.push_str(&number.saturating_sub(1).to_string());
            }
            digits.clear();
        }
        after_hash = c == '#' || c == '/';
        if c != ' ' {
            shifted.push(c);
        }
    }
    Ok(format!("{minute} {hour} {} {month} {shifted}", question(day)))
}

/// The topic an EventBridge rule's pattern maps to: its one `source`.
fn event_source(pattern: &Value) -> Result<String, String> {
    let Some(pattern) = pattern.as_object() else {
        return Err("is missing; give the rule a Pattern with a source".to_owned());
    };
    if let Some(other) = pattern.keys().find(|key| *key != "source") {
        return Err(format!(
            "only `source` can be mapped (events from a source are the messages published to the topic of that \
             name); {other:?} cannot, so filter in the function"
        ));
    }
    match pattern["source"].as_array().map(Vec::as_slice) {
        Some([Value::String(source)]) => Ok(source.clone()),
        _ => Err("source must list exactly one source, the topic the function reads".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventbridge_expressions_become_trigger_schedules() {
        assert_eq!(schedule("rate(1 minute)").unwrap(), "rate(1 minute)");
        assert_eq!(schedule("cron(0 12 * * ? *)").unwrap(), "0 12 * * *");
        assert_eq!(schedule("cron(15 10 ? * 2-6 *)").unwrap(), "15 10 * * 1-5");
        assert_eq!(schedule("cron(0 8 ? * 2#1 *)").unwrap(), "0 8 * * 1#1");
        assert_eq!(schedule("cron(0 8 ? * */2 *)").unwrap(), "0 8 * * */2");
        assert_eq!(schedule("cron(0 8 ? * 1/2 *)").unwrap(), "0 8 * * 0/2");
        assert_eq!(schedule("cron(0 8 ? * MON-FRI *)").unwrap(), "0 8 * * MON-FRI");
        assert!(schedule("cron(0 8 * * ? 2027)").unwrap_err().contains("year"));
        assert!(schedule("at(2027-01-01T00:00:00)").unwrap_err().contains("at(...)"));
        for fixed in ["0 12 * * *", "15 10 * * 1-5", "0 8 * * 1#1"] {
            updraft_model::ScheduleExpression::parse(fixed).unwrap();
        }
    }

    #[test]
    fn paths_and_runtimes_map() {
        assert_eq!(route("/users/{id}"), "/users/{id}");
        assert_eq!(route("/files/{proxy+}"), "/files/{*proxy}");
        assert_eq!(route("hello"), "/hello");
        assert_eq!(runtime_kind("python3.14"), Some("python3"));
        assert_eq!(runtime_kind("nodejs24.x"), Some("nodejs"));
        assert_eq!(runtime_kind("provided.al2023"), Some("provided"));
        assert_eq!(runtime_kind("java21"), None);
    }
}
