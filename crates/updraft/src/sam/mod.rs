//! SAM templates (`template.yaml`) made Updraft manifests: what `updraft import`
//! writes and what `updraft deploy` deploys when a folder holds a template instead of
//! an `updraft.toml`.
//!
//! Each resource maps to what Updraft has for it: `AWS::Serverless::Function` to a
//! function (its `Events` to triggers), `AWS::Serverless::StateMachine` to a workflow,
//! `AWS::SNS::Topic` to a topic, `AWS::SQS::Queue` to a work queue's settings. What
//! only matters in AWS (IAM policies and roles, tracing, architectures) is left out
//! with a note; anything else that cannot be mapped is an error naming the resource
//! and the property, and the template is not deployed. The generated manifest is
//! checked by the manifest parser like one written by hand.

mod function;
mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde_json::Value;
use toml::Table;
use updraft_model::{AppName, FunctionName, Limits, Manifest};

use self::template::{Referent, Scope};

/// The template file names `updraft deploy` and `updraft import` look for in a folder.
pub const TEMPLATE_NAMES: &[&str] = &["template.yaml", "template.yml"];

/// A template made a manifest.
#[derive(Debug)]
pub struct Converted {
    /// The `updraft.toml` text, with a header saying where it came from.
    pub manifest: String,
    /// The canary a `DeploymentPreference` asks for: its share in percent and how long.
    pub canary: Option<(f64, String)>,
    /// What was left out because it only matters in AWS.
    pub notes: Vec<String>,
}

/// Everything in a template that cannot be mapped, reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamError {
    pub file: String,
    /// Each: where (`Resources.Fn.Properties.Layers`) and what to do.
    pub problems: Vec<(String, String)>,
}

impl fmt::Display for SamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(f, "{} cannot be deployed as it is ({count} problem{}):", self.file, if count == 1 { "" } else { "s" })?;
        for (at, message) in &self.problems {
            if at.is_empty() {
                write!(f, "\n  {}: {message}", self.file)?;
            } else {
                write!(f, "\n  {}: {at}: {message}", self.file)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for SamError {}

/// The template file in `dir`, if there is one.
pub fn template_in(dir: &Path) -> Option<std::path::PathBuf> {
    TEMPLATE_NAMES.iter().map(|name| dir.join(name)).find(|path| path.is_file())
}

/// The app name for a template in `dir`: its folder's name, made a valid app name.
pub fn app_name_for(dir: &Path) -> AppName {
    let folder = std::fs::canonicalize(dir)
        .ok()
        .and_then(|dir| dir.file_name().map(|name| name.to_string_lossy().into_owned()))
        .unwrap_or_default();
    AppName::new(kebab(&folder)).unwrap_or_else(|_| AppName::new("sam-app").expect("a valid app name"))
}

/// Converts the template `text` (read from `file` in `dir`, which `CodeUri` and
/// `DefinitionUri` are relative to) into a manifest for app `app`.
pub fn convert(text: &str, file: &str, dir: &Path, app: &AppName) -> Result<Converted, SamError> {
    let mut conversion = Conversion {
        dir,
        problems: Vec::new(),
        notes: Vec::new(),
        scope: Scope { stack: app.to_string(), ..Scope::default() },
        functions: Table::new(),
        workflows: Table::new(),
        queues: BTreeMap::new(),
        canaries: Vec::new(),
    };
    let fail = |problems| SamError { file: file.to_owned(), problems };
    let root = template::from_yaml(text).map_err(|message| fail(vec![(String::new(), message)]))?;
    conversion.template(&root);
    if !conversion.problems.is_empty() {
        return Err(fail(conversion.problems));
    }
    let canary = match conversion.canaries.as_slice() {
        [] => None,
        [(_, first), rest @ ..] => {
            if let Some((id, other)) = rest.iter().find(|(_, canary)| canary != first) {
                return Err(fail(vec![(
                    format!("Resources.{id}.Properties.DeploymentPreference"),
                    format!(
                        "asks for a canary of {}% for {} where another function asks for {}% for {}; a deploy \
                         has one canary, so give every function the same Type",
                        other.0, other.1, first.0, first.1
                    ),
                )]));
            }
            Some(first.clone())
        }
    };
    let mut document = Table::new();
    document
        .insert("app".to_owned(), toml::Value::Table(Table::from_iter([("name".to_owned(), app.to_string().into())])));
    document.insert("functions".to_owned(), toml::Value::Table(std::mem::take(&mut conversion.functions)));
    if !conversion.workflows.is_empty() {
        document.insert("workflows".to_owned(), toml::Value::Table(std::mem::take(&mut conversion.workflows)));
    }
    let body = toml::to_string_pretty(&document).map_err(|error| fail(vec![(String::new(), error.to_string())]))?;
    let mut manifest = format!(
        "# Made by `updraft import` from {} (a SAM template); see docs/sam.md for how each\n\
         # resource and property maps.\n",
        Path::new(file).file_name().map_or(file.into(), |name| name.to_string_lossy())
    );
    if let Some((percent, duration)) = &canary {
        manifest.push_str(&format!(
            "# DeploymentPreference: deploy with `updraft deploy --canary {percent}% --for {duration}`.\n"
        ));
    }
    for note in &conversion.notes {
        manifest.push_str(&format!("# Left out: {note}\n"));
    }
    manifest.push('\n');
    manifest.push_str(&body);
    // The parser checks what the mapping made, as it checks a manifest written by hand.
    if let Err(error) = Manifest::parse(&manifest, file, &Limits::default()) {
        let problems = error
            .problems
            .into_iter()
            .map(|problem| (problem.field, format!("{} (in the manifest made from the template)", problem.message)))
            .collect();
        return Err(fail(problems));
    }
    Ok(Converted { manifest, canary, notes: conversion.notes })
}

/// A work queue's settings, from its `AWS::SQS::Queue`, applied to each trigger on it.
#[derive(Debug, Clone, Default)]
struct QueueSettings {
    visibility_timeout: Option<u64>,
    dead_letter: Option<(String, u64)>,
}

struct Conversion<'a> {
    dir: &'a Path,
    problems: Vec<(String, String)>,
    notes: Vec<String>,
    scope: Scope,
    functions: Table,
    workflows: Table,
    queues: BTreeMap<String, QueueSettings>,
    /// Each function's `DeploymentPreference` canary: its logical id, share and duration.
    canaries: Vec<(String, (f64, String))>,
}

const TOP_KEYS: &[&str] = &[
    "AWSTemplateFormatVersion",
    "Transform",
    "Description",
    "Metadata",
    "Parameters",
    "Globals",
    "Resources",
    "Outputs",
    "Mappings",
];
/// Resource keys besides `Type` and `Properties` that change nothing here.
const IGNORED_RESOURCE_KEYS: &[&str] =
    &["Metadata", "DependsOn", "DeletionPolicy", "UpdateReplacePolicy", "UpdatePolicy", "Connectors"];
/// Resources that only exist for AWS's sake, with why Updraft needs none.
const IGNORED_TYPES: &[(&str, &str)] = &[
    ("AWS::IAM::Role", "Updraft decides permissions itself"),
    ("AWS::IAM::Policy", "Updraft decides permissions itself"),
    ("AWS::IAM::ManagedPolicy", "Updraft decides permissions itself"),
    ("AWS::Lambda::Permission", "Updraft decides permissions itself"),
    ("AWS::SNS::TopicPolicy", "Updraft decides permissions itself"),
    ("AWS::SQS::QueuePolicy", "Updraft decides permissions itself"),
    ("AWS::Logs::LogGroup", "Updraft keeps each function's logs"),
    ("AWS::CloudWatch::Alarm", "a canary is rolled back when its error rate passes the old version's"),
];
/// The properties of an explicit API (`AWS::Serverless::Api`, `HttpApi`) that change
/// nothing for routes served by Updraft's gateway.
const IGNORED_API_PROPERTIES: &[&str] = &[
    "StageName",
    "Name",
    "Description",
    "Cors",
    "CorsConfiguration",
    "EndpointConfiguration",
    "TracingEnabled",
    "OpenApiVersion",
    "Tags",
    "MethodSettings",
    "AccessLogSetting",
    "AccessLogSettings",
];

impl Conversion<'_> {
    fn problem(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.problems.push((at.into(), message.into()));
    }

    fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    fn template(&mut self, root: &Value) {
        let Some(root) = root.as_object() else {
            self.problem("", "a SAM template is a YAML mapping with Resources");
            return;
        };
        for key in root.keys() {
            if !TOP_KEYS.contains(&key.as_str()) {
                self.problem(key, "is not supported (Conditions and nested templates cannot be mapped); remove it");
            }
        }
        let transform = root.get("Transform");
        let serverless = match transform {
            Some(Value::String(name)) => name.starts_with("AWS::Serverless"),
            Some(Value::Array(names)) => {
                names.iter().any(|name| name.as_str().is_some_and(|n| n.starts_with("AWS::Serverless")))
            }
            _ => false,
        };
        if !serverless {
            self.problem("Transform", "a SAM template has `Transform: AWS::Serverless-2016-10-31`; add it");
        }
        if root.contains_key("Outputs") {
            self.note("Outputs (they describe the AWS stack)".to_owned());
        }
        let Some(resources) = root.get("Resources").and_then(Value::as_object) else {
            self.problem("Resources", "is missing; a template declares its functions under Resources");
            return;
        };
        if let Some(parameters) = root.get("Parameters").and_then(Value::as_object) {
            for (name, parameter) in parameters {
                match parameter.get("Default") {
                    Some(default) => {
                        self.scope.ids.insert(name.clone(), Referent::Parameter(default.clone()));
                    }
                    None => self.problem(
                        format!("Parameters.{name}"),
                        "has no Default, and Updraft takes no parameter overrides; give it a Default",
                    ),
                }
            }
        }
        self.name_resources(resources);
        let globals = root.get("Globals").cloned().unwrap_or(Value::Null);
        self.globals(&globals);
        // Queues first: their settings go on the triggers that read them.
        for (id, resource) in resources {
            if resource["Type"] == "AWS::SQS::Queue" {
                self.queue(id, resource);
            }
        }
        for (id, resource) in resources {
            let at = format!("Resources.{id}");
            let Some(object) = resource.as_object() else {
                self.problem(at, "a resource is a mapping with Type and Properties");
                continue;
            };
            for key in object.keys() {
                if !["Type", "Properties"].contains(&key.as_str()) && !IGNORED_RESOURCE_KEYS.contains(&key.as_str()) {
                    self.problem(format!("{at}.{key}"), "cannot be mapped (Updraft has no conditions); remove it");
                }
            }
            let kind = object.get("Type").and_then(Value::as_str).unwrap_or_default();
            let properties = object.get("Properties").cloned().unwrap_or_else(|| Value::Object(Default::default()));
            match kind {
                "AWS::Serverless::Function" => {
                    let properties = merge_globals(globals.get("Function"), properties);
                    self.function(id, &properties);
                }
                "AWS::Serverless::StateMachine" => self.state_machine(id, &properties),
                "AWS::SNS::Topic" => self.topic(id, &properties),
                "AWS::SQS::Queue" => {}
                "AWS::Serverless::Api" | "AWS::Serverless::HttpApi" => self.api(id, kind, &properties),
                kind if let Some((_, why)) = IGNORED_TYPES.iter().find(|(ignored, _)| *ignored == kind) => {
                    self.note(format!("{id} ({kind}: {why})"));
                }
                "" => self.problem(format!("{at}.Type"), "is missing"),
                other => self.problem(
                    format!("{at}.Type"),
                    format!(
                        "{other} cannot be mapped; Updraft maps AWS::Serverless::Function, \
                         AWS::Serverless::StateMachine, AWS::SNS::Topic and AWS::SQS::Queue (remove it, or run \
                         what it is elsewhere)"
                    ),
                ),
            }
        }
    }

    /// Gives every resource its Updraft name before any property is resolved, so that
    /// references can point forward. Two resources of a kind that would get one name
    /// are refused.
    fn name_resources(&mut self, resources: &serde_json::Map<String, Value>) {
        let mut taken: BTreeMap<(&str, String), String> = BTreeMap::new();
        for (id, resource) in resources {
            let properties = &resource["Properties"];
            let explicit = |key: &str| properties.get(key).and_then(Value::as_str).map(str::to_owned);
            let referent = match resource["Type"].as_str().unwrap_or_default() {
                "AWS::Serverless::Function" => {
                    Referent::Function(explicit("FunctionName").map(|name| kebab(&name)).unwrap_or_else(|| kebab(id)))
                }
                "AWS::Serverless::StateMachine" => {
                    Referent::StateMachine(explicit("Name").map(|name| kebab(&name)).unwrap_or_else(|| kebab(id)))
                }
                "AWS::SNS::Topic" => Referent::Topic(explicit("TopicName").unwrap_or_else(|| kebab(id))),
                "AWS::SQS::Queue" => Referent::Queue(explicit("QueueName").unwrap_or_else(|| kebab(id))),
                other => Referent::Unmapped(other.to_owned()),
            };
            let named = match &referent {
                Referent::Function(name) => Some(("function", name.clone())),
                Referent::StateMachine(name) => Some(("workflow", name.clone())),
                Referent::Topic(name) => Some(("topic", name.clone())),
                Referent::Queue(name) => Some(("queue", name.clone())),
                _ => None,
            };
            if let Some((kind, name)) = named
                && let Some(other) = taken.insert((kind, name.clone()), id.clone())
            {
                self.problem(
                    format!("Resources.{id}"),
                    format!("would be named {name:?}, as {other} is; give one of them another name"),
                );
            }
            self.scope.ids.insert(id.clone(), referent);
        }
    }

    fn globals(&mut self, globals: &Value) {
        let Some(globals) = globals.as_object() else { return };
        for (section, properties) in globals {
            match section.as_str() {
                "Function" => {}
                "Api" | "HttpApi" => {
                    for key in properties.as_object().map(|p| p.keys().collect::<Vec<_>>()).unwrap_or_default() {
                        if IGNORED_API_PROPERTIES.contains(&key.as_str()) {
                            self.note(format!("Globals.{section}.{key} (the gateway serves the routes as they are)"));
                        } else {
                            self.problem(format!("Globals.{section}.{key}"), "cannot be mapped; remove it");
                        }
                    }
                }
                other => self.problem(format!("Globals.{other}"), "cannot be mapped; remove it"),
            }
        }
    }

    fn api(&mut self, id: &str, kind: &str, properties: &Value) {
        for key in properties.as_object().map(|p| p.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
            if IGNORED_API_PROPERTIES.contains(&key.as_str()) {
                self.note(format!("{id}.{key} ({kind}: the gateway serves the routes as they are)"));
            } else {
                self.problem(
                    format!("Resources.{id}.Properties.{key}"),
                    format!("cannot be mapped ({kind}'s routes come from its functions' events); remove it"),
                );
            }
        }
    }

    fn topic(&mut self, id: &str, properties: &Value) {
        let at = format!("Resources.{id}.Properties");
        let Some(Referent::Topic(topic)) = self.scope.ids.get(id).cloned() else { return };
        for (key, value) in properties.as_object().into_iter().flatten() {
            match key.as_str() {
                "TopicName" | "DisplayName" | "Tags" | "KmsMasterKeyId" | "TracingConfig" => {}
                "Subscription" => {
                    for (index, subscription) in value.as_array().into_iter().flatten().enumerate() {
                        let at = format!("{at}.Subscription[{index}]");
                        let protocol = subscription["Protocol"].as_str().unwrap_or_default();
                        let endpoint = self.scope.text(&subscription["Endpoint"]);
                        match (protocol, endpoint) {
                            ("lambda", Ok(endpoint)) => {
                                let function = template::last_name(&endpoint).to_owned();
                                self.add_trigger(&at, &function, toml_table([("topic", topic.clone().into())]));
                            }
                            (_, Err(message)) => self.problem(at, message),
                            (other, _) => self.problem(
                                at,
                                format!("a {other:?} subscription cannot be mapped; topics deliver to functions"),
                            ),
                        }
                    }
                }
                other => self.problem(format!("{at}.{other}"), "cannot be mapped; remove it"),
            }
        }
    }

    fn queue(&mut self, id: &str, resource: &Value) {
        let at = format!("Resources.{id}.Properties");
        let Some(Referent::Queue(name)) = self.scope.ids.get(id).cloned() else { return };
        let mut settings = QueueSettings::default();
        for (key, value) in resource["Properties"].as_object().into_iter().flatten() {
            match key.as_str() {
                "QueueName"
                | "Tags"
                | "KmsMasterKeyId"
                | "SqsManagedSseEnabled"
                | "MessageRetentionPeriod"
                | "ReceiveMessageWaitTimeSeconds"
                | "MaximumMessageSize" => {}
                "VisibilityTimeout" => match self.scope.resolve(value).ok().and_then(|value| value.as_u64()) {
                    Some(seconds) => settings.visibility_timeout = Some(seconds),
                    None => self.problem(format!("{at}.VisibilityTimeout"), "must be a number of seconds"),
                },
                "RedrivePolicy" => {
                    let target = self.scope.text(&value["deadLetterTargetArn"]);
                    let receives =
                        self.scope.resolve(&value["maxReceiveCount"]).ok().and_then(|count| {
                            count.as_u64().or_else(|| count.as_str().and_then(|text| text.parse().ok()))
                        });
                    match (target, receives) {
                        (Ok(target), Some(receives)) => {
                            settings.dead_letter = Some((template::last_name(&target).to_owned(), receives));
                        }
                        _ => self.problem(
                            format!("{at}.RedrivePolicy"),
                            "needs deadLetterTargetArn (a queue of this template) and maxReceiveCount",
                        ),
                    }
                }
                "FifoQueue" | "ContentBasedDeduplication" | "DeduplicationScope" | "FifoThroughputLimit" => self
                    .problem(
                        format!("{at}.{key}"),
                        "FIFO queues cannot be mapped; Updraft's work queues deliver at least once, unordered",
                    ),
                "DelaySeconds" => self.problem(format!("{at}.DelaySeconds"), "cannot be mapped; remove it"),
                other => self.problem(format!("{at}.{other}"), "cannot be mapped; remove it"),
            }
        }
        self.queues.insert(name, settings);
    }

    fn state_machine(&mut self, id: &str, properties: &Value) {
        let at = format!("Resources.{id}.Properties");
        let Some(Referent::StateMachine(name)) = self.scope.ids.get(id).cloned() else { return };
        let mut definition = None;
        let mut substitutions = BTreeMap::new();
        for (key, value) in properties.as_object().into_iter().flatten() {
            match key.as_str() {
                "Definition" => match self.scope.resolve(value) {
                    Ok(resolved) => definition = Some(resolved),
                    Err(message) => self.problem(format!("{at}.Definition"), message),
                },
                "DefinitionUri" => match value.as_str() {
                    Some(path) => match read_definition(&self.dir.join(path)) {
                        Ok(read) => definition = Some(read),
                        Err(message) => self.problem(format!("{at}.DefinitionUri"), message),
                    },
                    None => self.problem(
                        format!("{at}.DefinitionUri"),
                        "an S3 location cannot be read; give the definition file's path in this folder",
                    ),
                },
                "DefinitionSubstitutions" => {
                    for (variable, value) in value.as_object().into_iter().flatten() {
                        match self.scope.text(value) {
                            Ok(text) => {
                                substitutions.insert(variable.clone(), text);
                            }
                            Err(message) => self.problem(format!("{at}.DefinitionSubstitutions.{variable}"), message),
                        }
                    }
                }
                "Name" | "Type" | "Tags" => {}
                "Policies" | "Role" | "RolePath" | "PermissionsBoundary" | "Tracing" | "Logging" => {
                    self.note(format!("{id}.{key} (AWS permissions, tracing and logging)"));
                }
                "Events" => self.problem(
                    format!("{at}.Events"),
                    "cannot be mapped: a workflow is started by a function (`starts`) or through the API",
                ),
                other => self.problem(format!("{at}.{other}"), "cannot be mapped; remove it"),
            }
        }
        let Some(mut definition) = definition else {
            self.problem(at, "needs Definition or DefinitionUri");
            return;
        };
        substitute_definition(&mut definition, &substitutions);
        let text = serde_json::to_string_pretty(&definition).expect("JSON always serializes");
        self.workflows.insert(name, toml::Value::Table(toml_table([("definition", text.into())])));
    }

    /// Adds `trigger` to `function`'s triggers (a function of this template).
    fn add_trigger(&mut self, at: &str, function: &str, trigger: Table) {
        match self.functions.get_mut(function).and_then(toml::Value::as_table_mut) {
            Some(table) => {
                let triggers = table.entry("triggers").or_insert_with(|| toml::Value::Array(Vec::new()));
                if let Some(triggers) = triggers.as_array_mut() {
                    triggers.push(toml::Value::Table(trigger));
                }
            }
            None => self.problem(at, format!("names function {function:?}, which this template does not define")),
        }
    }
}

/// A function's properties with `Globals.Function` under them: maps merged, lists
/// joined (the global items first), anything else taken from the function.
fn merge_globals(globals: Option<&Value>, properties: Value) -> Value {
    match (globals, properties) {
        (None, properties) => properties,
        // An intrinsic is a value, not a map to merge: the function's own wins.
        (Some(global), own) if template::is_intrinsic(global) || template::is_intrinsic(&own) => own,
        (Some(Value::Object(globals)), Value::Object(mut own)) => {
            for (key, global) in globals {
                let merged = match own.remove(key) {
                    Some(mine) => merge_globals(Some(global), mine),
                    None => global.clone(),
                };
                own.insert(key.clone(), merged);
            }
            Value::Object(own)
        }
        (Some(Value::Array(globals)), Value::Array(own)) => Value::Array(globals.iter().cloned().chain(own).collect()),
        (Some(_), properties) => properties,
    }
}

/// A state machine definition file: JSON, or YAML.
fn read_definition(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    serde_json::from_str(&text)
        .or_else(|_| template::from_yaml(&text))
        .map_err(|error| format!("{} is neither JSON nor YAML: {error}", path.display()))
}

/// Replaces `${Name}` in every string of a definition with its substitution, in one
/// pass (a substitution's own text is not substituted again); other `${...}` stay.
fn substitute_definition(value: &mut Value, substitutions: &BTreeMap<String, String>) {
    match value {
        Value::String(text) if text.contains("${") => {
            let mut out = String::with_capacity(text.len());
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                match after.find('}').and_then(|end| Some((substitutions.get(&after[..end])?, end))) {
                    Some((replacement, end)) => {
                        out.push_str(replacement);
                        rest = &after[end + 1..];
                    }
                    None => {
                        out.push_str("${");
                        rest = after;
                    }
                }
            }
            out.push_str(rest);
            *text = out;
        }
        Value::Array(items) => items.iter_mut().for_each(|item| substitute_definition(item, substitutions)),
        Value::Object(object) => object.values_mut().for_each(|item| substitute_definition(item, substitutions)),
        _ => {}
    }
}

fn toml_table<const N: usize>(pairs: [(&str, toml::Value); N]) -> Table {
    pairs.into_iter().map(|(key, value)| (key.to_owned(), value)).collect()
}

/// A logical id or AWS name as an Updraft name: `HelloWorldFunction` is
/// `hello-world-function`, `my_func` stays `my_func`.
pub fn kebab(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    let mut out = String::new();
    for (index, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let after_lower = index > 0 && (chars[index - 1].is_ascii_lowercase() || chars[index - 1].is_ascii_digit());
            let ends_acronym = index > 0
                && chars[index - 1].is_ascii_uppercase()
                && chars.get(index + 1).is_some_and(|next| next.is_ascii_lowercase());
            if (after_lower || ends_acronym) && !out.ends_with('-') {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_matches('-').to_owned();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "f-");
    }
    out.truncate(64);
    out.trim_end_matches('-').to_owned()
}

/// `updraft import`: writes the manifest made from the template at `path` (a file, or
/// a folder holding template.yaml) beside it, or prints it.
pub fn import(path: &Path, stdout: bool, force: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    let template = if path.is_dir() {
        template_in(path).with_context(|| format!("no template.yaml or template.yml in {}", path.display()))?
    } else {
        path.to_owned()
    };
    let dir = template.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned();
    let file = template.display().to_string();
    let text = std::fs::read_to_string(&template).with_context(|| format!("cannot read {file}"))?;
    let converted = convert(&text, &file, &dir, &app_name_for(&dir))?;
    if stdout {
        print!("{}", converted.manifest);
        return Ok(());
    }
    let target = crate::deploy::manifest_path(&dir);
    if target.exists() && !force {
        anyhow::bail!("{} already exists; pass --force to replace it, or --stdout to print", target.display());
    }
    std::fs::write(&target, &converted.manifest).with_context(|| format!("cannot write {}", target.display()))?;
    eprintln!("wrote {}", target.display());
    for note in &converted.notes {
        eprintln!("left out: {note}");
    }
    if let Some((percent, duration)) = converted.canary {
        eprintln!("DeploymentPreference: deploy with `updraft deploy --canary {percent}% --for {duration}`");
    }
    Ok(())
}

/// Whether `name` is a valid function name (for messages about explicit names).
fn valid_function(name: &str) -> bool {
    FunctionName::new(name).is_ok()
}

#[cfg(test)]
mod tests;
