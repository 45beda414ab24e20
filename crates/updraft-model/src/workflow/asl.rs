//! Amazon States Language definitions, parsed and checked: the states Task, Pass,
//! Choice, Wait, Parallel, Succeed and Fail, with Retry, Catch, InputPath, Parameters,
//! ResultPath and OutputPath. Everything else is refused by name, so a definition
//! either runs as Step Functions would run it or says what is not supported.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

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
    /// `Next`, or `None` with `End: true` (and for Choice, Succeed, Fail).
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StateKind {
    /// Runs a function (`Resource`: its name or a Lambda function ARN).
    Task {
        function: String,
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
    Succeed,
    Fail {
        error: String,
        cause: String,
    },
}

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
    ("Task", &["Resource", "Parameters", "ResultPath", "Retry", "Catch", "TimeoutSeconds", "Next", "End"]),
    ("Pass", &["Result", "Parameters", "ResultPath", "Next", "End"]),
    ("Choice", &["Choices", "Default"]),
    ("Wait", &["Seconds", "Timestamp", "SecondsPath", "TimestampPath", "Next", "End"]),
    ("Parallel", &["Branches", "Parameters", "ResultPath", "Retry", "Catch", "Next", "End"]),
    ("Succeed", &[]),
    ("Fail", &["Error", "Cause"]),
];
const MACHINE_FIELDS: &[&str] = &["StartAt", "States", "TimeoutSeconds", "Comment", "Version"];
const RETRY_FIELDS: &[&str] = &["ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds"];
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
                StateKind::Task { function, .. } => functions.push(function.clone()),
                StateKind::Parallel { branches, .. } => {
                    branches.iter().for_each(|branch| functions.extend(branch.functions()));
                }
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
            StateKind::Task { catch, .. } | StateKind::Parallel { catch, .. } => {
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
    let needs_transition = |problems: &mut Vec<String>| match (&next, end) {
        (Some(_), true) => problems.push(format!("{here}has both Next and End; keep one")),
        (None, false) => problems.push(format!("{here}needs Next or \"End\": true")),
        _ => {}
    };
    let kind = match kind_name {
        "Task" => {
            needs_transition(problems);
            let function = match text("Resource") {
                Some(resource) => function_of(&resource).unwrap_or_else(|| {
                    problems.push(format!(
                        "{here}Resource {resource:?} is not a function; name a function, or use its Lambda ARN \
                         (arn:aws:lambda:REGION:ACCOUNT:function:NAME)"
                    ));
                    String::new()
                }),
                None => {
                    problems.push(format!("{here}Resource is missing; name the function to run"));
                    String::new()
                }
            };
            StateKind::Task {
                function,
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
            problems.push(format!("{here}Map states are not supported yet; use Parallel, or a Task that fans out"));
            return None;
        }
        other => {
            problems
                .push(format!("{here}unknown Type {other:?}; use Task, Pass, Choice, Wait, Parallel, Succeed or Fail"));
            return None;
        }
    };
    Some(State { kind, input_path, output_path, result_path, parameters, next })
}

/// The function a Task's `Resource` names: `NAME`, or a Lambda function ARN.
fn function_of(resource: &str) -> Option<String> {
    let name = match resource.strip_prefix("arn:aws:lambda:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.as_slice() {
                [_region, _account, "function", name] | [_region, _account, "function", name, _] => *name,
                _ => return None,
            }
        }
        None => resource,
    };
    crate::FunctionName::new(name).ok().map(|name| name.to_string())
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
