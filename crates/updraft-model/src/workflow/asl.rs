//! Amazon States Language definitions, parsed and checked: the states Task, Pass,
//! Choice, Wait, Parallel, Map (inline), Succeed and Fail, with Retry, Catch,
//! InputPath, Parameters, ItemSelector, ResultSelector, ResultPath, OutputPath,
//! intrinsic functions, and Lambda's optimized integration
//! (`arn:aws:states:::lambda:invoke`). Everything else is refused by name, so a
//! definition either runs as Step Functions would run it or says what is not supported.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::intrinsics::check_template;
use super::path::JsonPath;

/// A checked state machine (also each branch of a Parallel state).
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    pub start_at: String,
    pub states: BTreeMap<String, State>,
    /// `TimeoutSeconds`: the execution fails with `States.Timeout` after this long.
    pub timeout_seconds: Option<u64>,
}

/// A path field: absent means `$`; JSON `null` means "nothing" (an empty object in,
/// the result discarded, an empty object out).
#[derive(Debug, Clone, PartialEq)]
pub enum PathField {
    Path(JsonPath),
    Null,
}

impl PathField {
    fn root() -> Self {
        PathField::Path(JsonPath::parse("$").expect("$ is a path"))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub kind: StateKind,
    pub input_path: PathField,
    pub output_path: PathField,
    pub result_path: PathField,
    pub parameters: Option<Value>,
    /// `ResultSelector` (Task, Parallel, Map): a template over the result, applied
    /// before `ResultPath`.
    pub result_selector: Option<Value>,
    /// `Next`, or `None` with `End: true` (and for Choice, Succeed, Fail).
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StateKind {
    /// Runs a function.
    Task {
        target: TaskTarget,
        timeout_seconds: Option<u64>,
        retry: Vec<Retrier>,
        catch: Vec<Catcher>,
    },
    Pass {
        result: Option<Value>,
    },
    Choice {
        choices: Vec<Choice>,
        default: Option<String>,
    },
    Wait {
        wait: WaitFor,
    },
    Parallel {
        branches: Vec<StateMachine>,
        retry: Vec<Retrier>,
        catch: Vec<Catcher>,
    },
    /// Runs `iterator` once per item of the array at `items_path` (each item through
    /// `item_selector` when given), at most `max_concurrency` at once; the result is
    /// the array of their outputs, in the items' order.
    Map {
        iterator: Box<StateMachine>,
        items_path: JsonPath,
        item_selector: Option<Value>,
        max_concurrency: usize,
        retry: Vec<Retrier>,
        catch: Vec<Catcher>,
    },
    Succeed,
    Fail {
        error: String,
        cause: String,
    },
}

/// What a Task state runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskTarget {
    /// `Resource` names the function (its name, `name:qualifier`, or a Lambda function
    /// ARN); it gets the state's effective input (after `Parameters`), and its answer
    /// is the result.
    Function { name: String, qualifier: Option<String> },
    /// `"Resource": "arn:aws:states:::lambda:invoke"`, Lambda's optimized integration:
    /// `Parameters` is the Invoke request (`FunctionName`, `Payload`, `Qualifier`), and
    /// the result is Invoke's answer, the function's in `Payload`.
    LambdaInvoke,
}

/// Step Functions runs at most this many iterations of an inline Map at once.
pub(crate) const MAX_MAP_CONCURRENCY: usize = 40;

#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: PathField,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub condition: Condition,
    pub next: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    /// `Variable` compared by `operator` (e.g. `NumericGreaterThan`) with a literal, or
    /// with the value at a path for the `...Path` operators.
    Compare {
        variable: JsonPath,
        operator: String,
        operand: Operand,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Value),
    Path(JsonPath),
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    Seconds(u64),
    /// RFC 3339.
    Timestamp(String),
    SecondsPath(JsonPath),
    TimestampPath(JsonPath),
}

/// The comparison operators a Choice rule may use (each also with a `Path` suffix).
const COMPARISONS: &[&str] = &[
    "StringEquals",
    "StringLessThan",
    "StringGreaterThan",
    "StringLessThanEquals",
    "StringGreaterThanEquals",
    "StringMatches",
    "NumericEquals",
    "NumericLessThan",
    "NumericGreaterThan",
    "NumericLessThanEquals",
    "NumericGreaterThanEquals",
    "BooleanEquals",
    "TimestampEquals",
    "TimestampLessThan",
    "TimestampGreaterThan",
    "TimestampLessThanEquals",
    "TimestampGreaterThanEquals",
];
/// The fields each state type may have besides `Type`, `Comment`, `InputPath` and
/// `OutputPath`; anything else is refused rather than silently ignored.
const STATE_FIELDS: &[(&str, &[&str])] = &[
    (
        "Task",
        &["Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "TimeoutSeconds", "Next", "End"],
    ),
    ("Pass", &["Result", "Parameters", "ResultPath", "Next", "End"]),
    ("Choice", &["Choices", "Default"]),
    ("Wait", &["Seconds", "Timestamp", "SecondsPath", "TimestampPath", "Next", "End"]),
    ("Parallel", &["Branches", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "Next", "End"]),
    (
        "Map",
        &[
            "ItemProcessor",
            "Iterator",
            "ItemsPath",
            "ItemSelector",
            "Parameters",
            "MaxConcurrency",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Next",
            "End",
        ],
    ),
    ("Succeed", &[]),
    ("Fail", &["Error", "Cause"]),
];
const MACHINE_FIELDS: &[&str] = &["StartAt", "States", "TimeoutSeconds", "Comment", "Version"];
const RETRY_FIELDS: &[&str] =
    &["ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "Comment"];
/// The Invoke request fields a `lambda:invoke` task's `Parameters` may set.
const LAMBDA_INVOKE_FIELDS: &[&str] = &["FunctionName", "Payload", "Qualifier", "InvocationType"];
const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
/// The longest wait (a year), so that times stay far from overflowing.
const MAX_WAIT_SECONDS: u64 = 366 * 86_400;

/// Type tests: their operand is `true` or `false`.
const TESTS: &[&str] = &["IsPresent", "IsNull", "IsString", "IsNumeric", "IsBoolean", "IsTimestamp"];

impl StateMachine {
    /// Parses and checks a definition, reporting every problem found, each naming the
    /// state and the field.
    pub fn parse(definition: &Value) -> Result<StateMachine, Vec<String>> {
        let mut problems = Vec::new();
        let machine = machine(definition, "", &mut problems);
        match machine {
            Some(machine) if problems.is_empty() => Ok(machine),
            _ => {
                if problems.is_empty() {
                    problems.push("the definition could not be read".to_owned());
                }
                Err(problems)
            }
        }
    }

    /// The functions its Task states (in every branch) run.
    pub fn functions(&self) -> Vec<String> {
        let mut functions = Vec::new();
        for state in self.states.values() {
            match &state.kind {
                StateKind::Task { target: TaskTarget::Function { name, .. }, .. } => functions.push(name.clone()),
                StateKind::Task { target: TaskTarget::LambdaInvoke, .. } => {
                    // A name taken from the input (`FunctionName.$`) is known only when it runs.
                    let named = state.parameters.as_ref().and_then(|parameters| parameters["FunctionName"].as_str());
                    functions.extend(named.and_then(function_of).map(|(name, _)| name));
                }
                StateKind::Parallel { branches, .. } => {
                    branches.iter().for_each(|branch| functions.extend(branch.functions()));
                }
                StateKind::Map { iterator, .. } => functions.extend(iterator.functions()),
                _ => {}
            }
        }
        functions.sort();
        functions.dedup();
        functions
    }
}

fn machine(value: &Value, at: &str, problems: &mut Vec<String>) -> Option<StateMachine> {
    let Some(object) = value.as_object() else {
        problems.push(format!("{at}the definition must be a JSON object with StartAt and States"));
        return None;
    };
    let start_at = object.get("StartAt").and_then(Value::as_str).map(str::to_owned);
    if start_at.is_none() {
        problems.push(format!("{at}StartAt is missing; name the first state"));
    }
    let Some(states_value) = object.get("States").and_then(Value::as_object) else {
        problems.push(format!("{at}States is missing; add an object of states"));
        return None;
    };
    for key in object.keys() {
        if !MACHINE_FIELDS.contains(&key.as_str()) {
            problems.push(format!("{at}{key} is not supported; remove it (supported: {})", MACHINE_FIELDS.join(", ")));
        }
    }
    let timeout_seconds = object.get("TimeoutSeconds").and_then(Value::as_u64);
    let mut states = BTreeMap::new();
    for (name, state_value) in states_value {
        if let Some(state) = state(name, state_value, at, problems) {
            states.insert(name.clone(), state);
        }
    }
    let start_at = start_at?;
    if !states_value.contains_key(&start_at) {
        problems.push(format!("{at}StartAt names {start_at:?}, which is not a state"));
    }
    // Every transition must lead to a state of this machine.
    for (name, state) in &states {
        let mut targets: Vec<&String> = state.next.iter().collect();
        match &state.kind {
            StateKind::Choice { choices, default } => {
                targets.extend(choices.iter().map(|choice| &choice.next));
                targets.extend(default.iter());
            }
            StateKind::Task { catch, .. } | StateKind::Parallel { catch, .. } | StateKind::Map { catch, .. } => {
                targets.extend(catch.iter().map(|catcher| &catcher.next));
            }
            _ => {}
        }
        for target in targets {
            if !states_value.contains_key(target) {
                problems.push(format!("{at}state {name:?} goes to {target:?}, which is not a state"));
            }
        }
    }
    Some(StateMachine { start_at, states, timeout_seconds })
}

fn state(name: &str, value: &Value, at: &str, problems: &mut Vec<String>) -> Option<State> {
    let here = format!("{at}state {name:?}: ");
    let Some(object) = value.as_object() else {
        problems.push(format!("{here}must be an object"));
        return None;
    };
    let kind_name = object.get("Type").and_then(Value::as_str).unwrap_or("");
    if let Some((_, fields)) = STATE_FIELDS.iter().find(|(kind, _)| *kind == kind_name) {
        for key in object.keys() {
            let common = ["Type", "Comment", "InputPath", "OutputPath"].contains(&key.as_str());
            if !common && !fields.contains(&key.as_str()) {
                problems.push(format!(
                    "{here}{key} is not supported in a {kind_name} state; remove it (supported: {})",
                    fields.join(", ")
                ));
            }
        }
    }
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    let next = text("Next");
    let end = object.get("End").and_then(Value::as_bool).unwrap_or(false);
    let path = |key: &str, problems: &mut Vec<String>| match object.get(key) {
        None => PathField::root(),
        Some(Value::Null) => PathField::Null,
        Some(Value::String(text)) => JsonPath::parse(text).map(PathField::Path).unwrap_or_else(|message| {
            problems.push(format!("{here}{key}: {message}"));
            PathField::root()
        }),
        Some(_) => {
            problems.push(format!("{here}{key} must be a path string or null"));
            PathField::root()
        }
    };
    let input_path = path("InputPath", problems);
    let output_path = path("OutputPath", problems);
    let result_path = path("ResultPath", problems);
    let parameters = object.get("Parameters").cloned();
    let result_selector = object.get("ResultSelector").cloned();
    for (key, template) in [("Parameters", &parameters), ("ResultSelector", &result_selector)] {
        if let Some(template) = template {
            check_template(template, problems, &format!("{here}{key}: "));
        }
    }
    let needs_transition = |problems: &mut Vec<String>| match (&next, end) {
        (Some(_), true) => problems.push(format!("{here}has both Next and End; keep one")),
        (None, false) => problems.push(format!("{here}needs Next or \"End\": true")),
        _ => {}
    };
    let kind = match kind_name {
        "Task" => {
            needs_transition(problems);
            let target = match text("Resource") {
                Some(resource) if resource == LAMBDA_INVOKE => {
                    lambda_invoke_parameters(parameters.as_ref(), &here, problems);
                    TaskTarget::LambdaInvoke
                }
                Some(resource) if resource.starts_with("arn:aws:states:::") => {
                    problems.push(format!(
                        "{here}Resource {resource:?} is a Step Functions service integration Updraft does not \
                         run; it runs functions, through \"{LAMBDA_INVOKE}\" or a function's name or ARN"
                    ));
                    TaskTarget::LambdaInvoke
                }
                Some(resource) => match function_of(&resource) {
                    Some((name, qualifier)) => TaskTarget::Function { name, qualifier },
                    None => {
                        problems.push(format!(
                            "{here}Resource {resource:?} is not a function; name a function, use its Lambda ARN \
                             (arn:aws:lambda:REGION:ACCOUNT:function:NAME), or \"{LAMBDA_INVOKE}\""
                        ));
                        TaskTarget::LambdaInvoke
                    }
                },
                None => {
                    problems.push(format!("{here}Resource is missing; name the function to run"));
                    TaskTarget::LambdaInvoke
                }
            };
            StateKind::Task {
                target,
                timeout_seconds: object.get("TimeoutSeconds").and_then(Value::as_u64),
                retry: retriers(object, &here, problems),
                catch: catchers(object, &here, problems),
            }
        }
        "Pass" => {
            needs_transition(problems);
            StateKind::Pass { result: object.get("Result").cloned() }
        }
        "Choice" => {
            let choices = object
                .get("Choices")
                .and_then(Value::as_array)
                .map(|rules| {
                    rules
                        .iter()
                        .enumerate()
                        .filter_map(|(index, rule)| {
                            let next = rule.get("Next").and_then(Value::as_str).map(str::to_owned);
                            if next.is_none() {
                                problems.push(format!("{here}Choices[{index}] needs Next"));
                            }
                            let condition = condition(rule, &format!("{here}Choices[{index}]: "), problems)?;
                            Some(Choice { condition, next: next? })
                        })
                        .collect()
                })
                .unwrap_or_else(|| {
                    problems.push(format!("{here}Choices is missing; add a list of rules"));
                    Vec::new()
                });
            StateKind::Choice { choices, default: text("Default") }
        }
        "Wait" => {
            needs_transition(problems);
            let wait = if let Some(seconds) = object.get("Seconds") {
                match seconds.as_u64() {
                    Some(seconds) if seconds <= MAX_WAIT_SECONDS => Some(WaitFor::Seconds(seconds)),
                    _ => {
                        problems.push(format!("{here}Seconds must be a whole number from 0 to {MAX_WAIT_SECONDS}"));
                        None
                    }
                }
            } else if let Some(timestamp) = text("Timestamp") {
                Some(WaitFor::Timestamp(timestamp))
            } else if let Some(path) = text("SecondsPath") {
                JsonPath::parse(&path).map(WaitFor::SecondsPath).map_err(|m| problems.push(format!("{here}{m}"))).ok()
            } else if let Some(path) = text("TimestampPath") {
                JsonPath::parse(&path).map(WaitFor::TimestampPath).map_err(|m| problems.push(format!("{here}{m}"))).ok()
            } else {
                problems.push(format!("{here}needs Seconds, Timestamp, SecondsPath or TimestampPath"));
                None
            };
            StateKind::Wait { wait: wait.unwrap_or(WaitFor::Seconds(0)) }
        }
        "Parallel" => {
            needs_transition(problems);
            let branches = object
                .get("Branches")
                .and_then(Value::as_array)
                .map(|branches| {
                    branches
                        .iter()
                        .enumerate()
                        .filter_map(|(index, branch)| machine(branch, &format!("{here}Branches[{index}]: "), problems))
                        .collect()
                })
                .unwrap_or_else(|| {
                    problems.push(format!("{here}Branches is missing; add a list of state machines"));
                    Vec::new()
                });
            StateKind::Parallel {
                branches,
                retry: retriers(object, &here, problems),
                catch: catchers(object, &here, problems),
            }
        }
        "Succeed" => StateKind::Succeed,
        "Fail" => StateKind::Fail {
            error: text("Error").unwrap_or_else(|| "States.Fail".to_owned()),
            cause: text("Cause").unwrap_or_default(),
        },
        "Map" => {
            needs_transition(problems);
            map_state(object, &here, problems)?
        }
        other => {
            problems.push(format!(
                "{here}unknown Type {other:?}; use Task, Pass, Choice, Wait, Parallel, Map, Succeed or Fail"
            ));
            return None;
        }
    };
    Some(State { kind, input_path, output_path, result_path, parameters, result_selector, next })
}

/// An inline Map state: its iterator (`ItemProcessor`, or the older `Iterator`), the
/// items and how each is given to it.
fn map_state(object: &Map<String, Value>, here: &str, problems: &mut Vec<String>) -> Option<StateKind> {
    let processor = match (object.get("ItemProcessor"), object.get("Iterator")) {
        (Some(processor), None) => {
            let mode = processor.pointer("/ProcessorConfig/Mode").and_then(Value::as_str).unwrap_or("INLINE");
            if mode != "INLINE" {
                problems.push(format!(
                    "{here}ItemProcessor.ProcessorConfig.Mode {mode:?} is not supported; Updraft runs inline Maps \
                     (\"Mode\": \"INLINE\")"
                ));
            }
            let mut processor = processor.clone();
            if let Some(processor) = processor.as_object_mut() {
                processor.remove("ProcessorConfig");
            }
            processor
        }
        (None, Some(iterator)) => iterator.clone(),
        (Some(_), Some(_)) => {
            problems.push(format!("{here}has both ItemProcessor and Iterator; keep ItemProcessor"));
            return None;
        }
        (None, None) => {
            problems.push(format!("{here}ItemProcessor is missing; add the states each item runs through"));
            return None;
        }
    };
    let iterator = machine(&processor, &format!("{here}ItemProcessor: "), problems);
    let item_selector = match (object.get("ItemSelector"), object.get("Parameters")) {
        (Some(_), Some(_)) => {
            problems.push(format!("{here}has both ItemSelector and Parameters; keep ItemSelector"));
            None
        }
        (selector, parameters) => selector.or(parameters).cloned(),
    };
    if let Some(selector) = &item_selector {
        check_template(selector, problems, &format!("{here}ItemSelector: "));
    }
    let items_path = match object.get("ItemsPath") {
        None => JsonPath::parse("$").ok(),
        Some(value) => match value.as_str().map(JsonPath::parse) {
            Some(Ok(path)) => Some(path),
            Some(Err(message)) => {
                problems.push(format!("{here}ItemsPath: {message}"));
                None
            }
            None => {
                problems.push(format!("{here}ItemsPath must be a path to an array, like \"$.items\""));
                None
            }
        },
    };
    let max_concurrency = match object.get("MaxConcurrency") {
        None => MAX_MAP_CONCURRENCY,
        Some(value) => match value.as_u64() {
            Some(0) => MAX_MAP_CONCURRENCY,
            Some(limit) => (limit as usize).min(MAX_MAP_CONCURRENCY),
            None => {
                problems.push(format!("{here}MaxConcurrency must be a whole number (0 for no limit)"));
                MAX_MAP_CONCURRENCY
            }
        },
    };
    Some(StateKind::Map {
        iterator: Box::new(iterator?),
        items_path: items_path?,
        item_selector,
        max_concurrency,
        retry: retriers(object, here, problems),
        catch: catchers(object, here, problems),
    })
}

/// Checks a `lambda:invoke` task's `Parameters`: the Invoke request.
fn lambda_invoke_parameters(parameters: Option<&Value>, here: &str, problems: &mut Vec<String>) {
    let Some(parameters) = parameters.and_then(Value::as_object) else {
        problems.push(format!(
            "{here}a {LAMBDA_INVOKE} task needs Parameters with FunctionName, like \
             {{\"FunctionName\": \"my-function\", \"Payload.$\": \"$\"}}"
        ));
        return;
    };
    for key in parameters.keys() {
        let field = key.strip_suffix(".$").unwrap_or(key);
        if !LAMBDA_INVOKE_FIELDS.contains(&field) {
            problems.push(format!(
                "{here}Parameters.{key} is not supported for {LAMBDA_INVOKE}; remove it (supported: {})",
                LAMBDA_INVOKE_FIELDS.join(", ")
            ));
        }
    }
    match (parameters.get("FunctionName"), parameters.get("FunctionName.$")) {
        (Some(Value::String(name)), None) => {
            if function_of(name).is_none() {
                problems.push(format!(
                    "{here}Parameters.FunctionName {name:?} is not a function; give its name or Lambda ARN"
                ));
            }
        }
        (None, Some(_)) => {}
        _ => problems.push(format!("{here}Parameters needs FunctionName (or FunctionName.$), and only one of them")),
    }
    if let Some(kind) = parameters.get("InvocationType").filter(|kind| kind.as_str() != Some("RequestResponse")) {
        problems.push(format!(
            "{here}Parameters.InvocationType {kind} is not supported; a task waits for the answer (\"RequestResponse\")"
        ));
    }
}

/// The function (and version or alias) a Task's `Resource` or a `lambda:invoke`
/// task's `FunctionName` names: `NAME`, `NAME:QUALIFIER`, or a Lambda function ARN
/// with or without a qualifier.
pub(crate) fn function_of(resource: &str) -> Option<(String, Option<String>)> {
    let (name, qualifier) = match resource.strip_prefix("arn:aws:lambda:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.as_slice() {
                [_region, _account, "function", name] => (*name, None),
                [_region, _account, "function", name, qualifier] => (*name, Some(*qualifier)),
                _ => return None,
            }
        }
        None => match resource.split_once(':') {
            Some((name, qualifier)) => (name, Some(qualifier)),
            None => (resource, None),
        },
    };
    let name = crate::FunctionName::new(name).ok()?.to_string();
    // `$LATEST` is the version serving, as no qualifier at all.
    let qualifier = qualifier.filter(|qualifier| *qualifier != "$LATEST").map(str::to_owned);
    if qualifier.as_deref().is_some_and(str::is_empty) {
        return None;
    }
    Some((name, qualifier))
}

fn error_equals(object: &Map<String, Value>, here: &str, problems: &mut Vec<String>) -> Vec<String> {
    let errors: Vec<String> = object
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .map(|errors| errors.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    if errors.is_empty() {
        problems.push(format!("{here}ErrorEquals must list at least one error name (\"States.ALL\" for any)"));
    }
    errors
}

fn retriers(object: &Map<String, Value>, here: &str, problems: &mut Vec<String>) -> Vec<Retrier> {
    let Some(list) = object.get("Retry").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .enumerate()
        .filter_map(|(index, retrier)| {
            let here = format!("{here}Retry[{index}]: ");
            let retrier = retrier.as_object()?;
            for key in retrier.keys() {
                if !RETRY_FIELDS.contains(&key.as_str()) {
                    problems.push(format!(
                        "{here}{key} is not supported; remove it (supported: {})",
                        RETRY_FIELDS.join(", ")
                    ));
                }
            }
            let backoff_rate = retrier.get("BackoffRate").and_then(Value::as_f64).unwrap_or(2.0);
            if backoff_rate < 1.0 {
                problems.push(format!("{here}BackoffRate must be at least 1.0"));
            }
            Some(Retrier {
                error_equals: error_equals(retrier, &here, problems),
                interval_seconds: retrier.get("IntervalSeconds").and_then(Value::as_f64).unwrap_or(1.0),
                max_attempts: retrier.get("MaxAttempts").and_then(Value::as_u64).unwrap_or(3) as u32,
                backoff_rate,
                max_delay_seconds: retrier.get("MaxDelaySeconds").and_then(Value::as_f64),
            })
        })
        .collect()
}

fn catchers(object: &Map<String, Value>, here: &str, problems: &mut Vec<String>) -> Vec<Catcher> {
    let Some(list) = object.get("Catch").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .enumerate()
        .filter_map(|(index, catcher)| {
            let here = format!("{here}Catch[{index}]: ");
            let catcher = catcher.as_object()?;
            let Some(next) = catcher.get("Next").and_then(Value::as_str) else {
                problems.push(format!("{here}Next is missing"));
                return None;
            };
            let result_path = match catcher.get("ResultPath") {
                None => PathField::root(),
                Some(Value::Null) => PathField::Null,
                Some(value) => match value.as_str().map(JsonPath::parse) {
                    Some(Ok(path)) => PathField::Path(path),
                    _ => {
                        problems.push(format!("{here}ResultPath must be a path"));
                        PathField::root()
                    }
                },
            };
            Some(Catcher { error_equals: error_equals(catcher, &here, problems), next: next.to_owned(), result_path })
        })
        .collect()
}

fn condition(rule: &Value, here: &str, problems: &mut Vec<String>) -> Option<Condition> {
    let object = rule.as_object()?;
    if let Some(all) = object.get("And").and_then(Value::as_array) {
        return Some(Condition::And(all.iter().filter_map(|rule| condition(rule, here, problems)).collect()));
    }
    if let Some(any) = object.get("Or").and_then(Value::as_array) {
        return Some(Condition::Or(any.iter().filter_map(|rule| condition(rule, here, problems)).collect()));
    }
    if let Some(not) = object.get("Not") {
        return condition(not, here, problems).map(|inner| Condition::Not(Box::new(inner)));
    }
    let Some(variable) = object.get("Variable").and_then(Value::as_str) else {
        problems.push(format!("{here}a rule needs Variable (or And, Or, Not)"));
        return None;
    };
    let variable = JsonPath::parse(variable).map_err(|message| problems.push(format!("{here}{message}"))).ok()?;
    for (key, value) in object {
        if key == "Variable" || key == "Next" {
            continue;
        }
        if TESTS.contains(&key.as_str()) || COMPARISONS.contains(&key.as_str()) {
            return Some(Condition::Compare {
                variable,
                operator: key.clone(),
                operand: Operand::Literal(value.clone()),
            });
        }
        if let Some(base) = key.strip_suffix("Path")
            && COMPARISONS.contains(&base)
        {
            let path = value.as_str().map(JsonPath::parse);
            let Some(Ok(path)) = path else {
                problems.push(format!("{here}{key} must be a path"));
                return None;
            };
            return Some(Condition::Compare { variable, operator: base.to_owned(), operand: Operand::Path(path) });
        }
    }
    problems.push(format!("{here}no comparison operator (like StringEquals or NumericGreaterThan)"));
    None
}
