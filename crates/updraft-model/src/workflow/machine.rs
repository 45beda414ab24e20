//! Running a state machine one state at a time, as pure functions: entering a state
//! says what to do (run a function, wait, run branches, go on, stop), and a task's
//! outcome says what comes next (retry after a delay, a catcher's state, the next
//! state). The platform does the I/O and persists each result before the next state.

use std::time::Duration;

use serde_json::{Value, json};

use super::asl::{
    Catcher, Condition, Operand, PathField, Retrier, State, StateKind, StateMachine, TaskTarget, WaitFor, function_of,
};
use super::path::{JsonPath, TemplateError, apply_template};

/// What entering a state asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Run `function` (the version or alias `qualifier` picks) with `input`, then call
    /// [`StateMachine::task_done`].
    Task {
        function: String,
        qualifier: Option<String>,
        input: Value,
        timeout: Option<Duration>,
    },
    /// Run each branch with `input`, then call [`StateMachine::task_done`] with the
    /// array of their outputs (or the first branch's error).
    Parallel {
        input: Value,
    },
    /// Run the Map state's iterator once per item, at most `max_concurrency` at once,
    /// then call [`StateMachine::task_done`] with the array of their outputs (or the
    /// first item's error).
    Map {
        items: Vec<Value>,
        max_concurrency: usize,
    },
    /// Wait until `until_ms` (ms since the epoch), then go on as `then`.
    Wait {
        until_ms: i64,
        then: Box<Step>,
    },
    /// Enter `state` with `input`.
    Next {
        state: String,
        input: Value,
    },
    Succeed {
        output: Value,
    },
    Fail {
        error: String,
        cause: String,
    },
}

/// A failed task (or branch): its error name and cause, as Step Functions reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// The function's error type (`ValueError`), `States.Timeout`, or `States.TaskFailed`.
    pub error: String,
    pub cause: String,
}

/// What follows a task's outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterTask {
    /// Run it again after `delay` (this was attempt `attempt`, counted from 0).
    Retry {
        delay: Duration,
    },
    Then(Step),
}

/// The context object (`$$`) a state's templates see: the execution's (`Execution`,
/// `StateMachine`, given by the caller) and the state's (`State`, added here).
fn state_context(context: &Value, name: &str, now_ms: i64) -> Value {
    let mut context = context.clone();
    if let Some(object) = context.as_object_mut() {
        let entered = chrono::DateTime::from_timestamp_millis(now_ms).map(|time| time.to_rfc3339());
        object.insert("State".to_owned(), json!({ "Name": name, "EnteredTime": entered }));
    }
    context
}

impl StateMachine {
    /// Enters `name` with `input` at `now_ms`; `context` is the execution's part of
    /// the context object (`{"Execution": {"Id": ...}, "StateMachine": {...}}`).
    pub fn enter(&self, name: &str, input: Value, now_ms: i64, context: &Value) -> Step {
        let Some(state) = self.states.get(name) else {
            return fail("States.Runtime", format!("no state named {name:?}"));
        };
        let context = state_context(context, name, now_ms);
        match self.enter_state(state, input, now_ms, &context) {
            Ok(step) => step,
            Err(TemplateError { error, message }) => fail(error, format!("state {name:?}: {message}")),
        }
    }

    fn enter_state(&self, state: &State, raw: Value, now_ms: i64, context: &Value) -> Result<Step, TemplateError> {
        let effective = select(&state.input_path, &raw)?;
        match &state.kind {
            StateKind::Task { target, timeout_seconds, .. } => {
                let timeout = timeout_seconds.map(Duration::from_secs);
                let parameters = parameters(state, &effective, context)?;
                match target {
                    TaskTarget::Function { name, qualifier } => Ok(Step::Task {
                        function: name.clone(),
                        qualifier: qualifier.clone(),
                        input: parameters,
                        timeout,
                    }),
                    TaskTarget::LambdaInvoke => lambda_invoke(parameters, timeout),
                }
            }
            StateKind::Parallel { .. } => Ok(Step::Parallel { input: parameters(state, &effective, context)? }),
            StateKind::Map { items_path, item_selector, max_concurrency, .. } => {
                let items = match items_path.read(&effective)? {
                    Value::Array(items) => items.clone(),
                    other => {
                        let kind = match other {
                            Value::Object(_) => "an object",
                            Value::String(_) => "a string",
                            Value::Number(_) => "a number",
                            _ => "not an array",
                        };
                        return Err(format!("ItemsPath {} is {kind}, not an array", items_path.as_str()).into());
                    }
                };
                let items = match item_selector {
                    None => items,
                    Some(selector) => {
                        let mut selected = Vec::with_capacity(items.len());
                        // One context for all items, its `Map` replaced for each.
                        let mut context = context.clone();
                        for (index, item) in items.into_iter().enumerate() {
                            context["Map"] = json!({ "Item": { "Index": index, "Value": item } });
                            selected.push(apply_template(selector, &effective, &context)?);
                        }
                        selected
                    }
                };
                Ok(Step::Map { items, max_concurrency: *max_concurrency })
            }
            StateKind::Pass { result } => {
                let result = match result {
                    Some(result) => result.clone(),
                    None => parameters(state, &effective, context)?,
                };
                let output = select(&state.output_path, &place(&state.result_path, raw, result)?)?;
                Ok(transition(state, output))
            }
            StateKind::Choice { choices, default } => {
                let output = select(&state.output_path, &effective)?;
                for choice in choices {
                    if holds(&choice.condition, &effective)? {
                        return Ok(Step::Next { state: choice.next.clone(), input: output });
                    }
                }
                match default {
                    Some(default) => Ok(Step::Next { state: default.clone(), input: output }),
                    None => {
                        Ok(fail("States.NoChoiceMatched", "no Choices rule matched and there is no Default".into()))
                    }
                }
            }
            StateKind::Wait { wait } => {
                let until_ms = match wait {
                    WaitFor::Seconds(seconds) => now_ms.saturating_add(*seconds as i64 * 1000),
                    WaitFor::SecondsPath(path) => {
                        let seconds =
                            path.read(&effective)?.as_f64().ok_or("SecondsPath is not a number".to_owned())?;
                        if !(0.0..=366.0 * 86_400.0).contains(&seconds) {
                            return Err(format!("SecondsPath gave {seconds}; a wait is 0 to 31622400 seconds").into());
                        }
                        now_ms.saturating_add((seconds * 1000.0) as i64)
                    }
                    WaitFor::Timestamp(text) => timestamp_ms(text)?,
                    WaitFor::TimestampPath(path) => {
                        let text = path.read(&effective)?.as_str().ok_or("TimestampPath is not a string".to_owned())?;
                        timestamp_ms(text)?
                    }
                };
                let output = select(&state.output_path, &effective)?;
                Ok(Step::Wait { until_ms, then: Box::new(transition(state, output)) })
            }
            StateKind::Succeed => Ok(Step::Succeed { output: select(&state.output_path, &effective)? }),
            StateKind::Fail { error, cause } => Ok(fail(error, cause.clone())),
        }
    }

    /// What follows the outcome of the task (parallel or map) state `name`, entered
    /// with `raw` input, on its attempt `attempt` (0 for the first); `context` as for
    /// [`StateMachine::enter`].
    pub fn task_done(
        &self,
        name: &str,
        raw: &Value,
        outcome: Result<Value, TaskError>,
        attempt: u32,
        context: &Value,
    ) -> AfterTask {
        let Some(state) = self.states.get(name) else {
            return AfterTask::Then(fail("States.Runtime", format!("no state named {name:?}")));
        };
        let (retry, catch) = match &state.kind {
            StateKind::Task { retry, catch, .. }
            | StateKind::Parallel { retry, catch, .. }
            | StateKind::Map { retry, catch, .. } => (retry, catch),
            _ => return AfterTask::Then(fail("States.Runtime", format!("state {name:?} runs no task"))),
        };
        match outcome {
            Ok(result) => {
                let context = state_context(context, name, crate::now_millis());
                let output = self.task_output(state, raw, result, &context);
                AfterTask::Then(match output {
                    Ok(output) => transition(state, output),
                    Err(TemplateError { error, message }) => fail(error, format!("state {name:?}: {message}")),
                })
            }
            Err(error) => {
                if let Some(retrier) = retry.iter().find(|retrier| matches(&retrier.error_equals, &error.error))
                    && attempt < retrier.max_attempts
                {
                    return AfterTask::Retry { delay: delay(retrier, attempt) };
                }
                match catch.iter().find(|catcher| matches(&catcher.error_equals, &error.error)) {
                    Some(catcher) => AfterTask::Then(caught(catcher, raw, &error)),
                    None => AfterTask::Then(Step::Fail { error: error.error, cause: error.cause }),
                }
            }
        }
    }
}

impl StateMachine {
    /// A task's result made the state's output: wrapped as Invoke's answer for
    /// `lambda:invoke`, through `ResultSelector`, placed by `ResultPath`, selected by
    /// `OutputPath`.
    fn task_output(&self, state: &State, raw: &Value, result: Value, context: &Value) -> Result<Value, TemplateError> {
        let result = match &state.kind {
            StateKind::Task { target: TaskTarget::LambdaInvoke, .. } => json!({
                "Payload": result,
                "StatusCode": 200,
                "SdkHttpMetadata": { "HttpStatusCode": 200 },
            }),
            _ => result,
        };
        let result = match &state.result_selector {
            Some(selector) => apply_template(selector, &result, context)?,
            None => result,
        };
        Ok(select(&state.output_path, &place(&state.result_path, raw.clone(), result)?)?)
    }
}

/// A `lambda:invoke` task's step from its resolved `Parameters`: the Invoke request.
fn lambda_invoke(request: Value, timeout: Option<Duration>) -> Result<Step, TemplateError> {
    let named = request["FunctionName"].as_str().unwrap_or_default();
    let (function, mut qualifier) = function_of(named)
        .ok_or_else(|| format!("FunctionName {} is not a function's name or Lambda ARN", request["FunctionName"]))?;
    if let Some(given) = request["Qualifier"].as_str() {
        qualifier = Some(given.to_owned()).filter(|given| given != "$LATEST");
    }
    // No Payload: the function is invoked with an empty event, as Invoke without one.
    let input = request.get("Payload").cloned().unwrap_or_else(|| json!({}));
    Ok(Step::Task { function, qualifier, input, timeout })
}

fn transition(state: &State, output: Value) -> Step {
    match &state.next {
        Some(next) => Step::Next { state: next.clone(), input: output },
        None => Step::Succeed { output },
    }
}

fn fail(error: &str, cause: String) -> Step {
    Step::Fail { error: error.to_owned(), cause }
}

fn caught(catcher: &Catcher, raw: &Value, error: &TaskError) -> Step {
    let detail = json!({ "Error": error.error, "Cause": error.cause });
    match place(&catcher.result_path, raw.clone(), detail) {
        Ok(output) => Step::Next { state: catcher.next.clone(), input: output },
        Err(message) => fail("States.Runtime", message),
    }
}

/// Whether an `ErrorEquals` list covers `error`: by name, `States.ALL`, or
/// `States.TaskFailed` for anything but a timeout.
fn matches(error_equals: &[String], error: &str) -> bool {
    error_equals
        .iter()
        .any(|name| name == error || name == "States.ALL" || (name == "States.TaskFailed" && error != "States.Timeout"))
}

fn delay(retrier: &Retrier, attempt: u32) -> Duration {
    let mut seconds = retrier.interval_seconds * retrier.backoff_rate.powi(attempt as i32);
    if let Some(max) = retrier.max_delay_seconds {
        seconds = seconds.min(max);
    }
    Duration::from_secs_f64(seconds.clamp(0.0, 365.0 * 86_400.0))
}

fn select(path: &PathField, value: &Value) -> Result<Value, String> {
    match path {
        PathField::Null => Ok(json!({})),
        PathField::Path(path) => path.read(value).cloned(),
    }
}

fn place(path: &PathField, raw: Value, result: Value) -> Result<Value, String> {
    match path {
        PathField::Null => Ok(raw),
        PathField::Path(path) => path.write(raw, result),
    }
}

fn parameters(state: &State, effective: &Value, context: &Value) -> Result<Value, TemplateError> {
    match &state.parameters {
        Some(template) => apply_template(template, effective, context),
        None => Ok(effective.clone()),
    }
}

fn timestamp_ms(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis())
        .map_err(|_| format!("{text:?} is not an RFC 3339 timestamp"))
}

fn holds(condition: &Condition, input: &Value) -> Result<bool, String> {
    match condition {
        Condition::And(all) => {
            for condition in all {
                if !holds(condition, input)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Condition::Or(any) => {
            for condition in any {
                if holds(condition, input)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Condition::Not(inner) => Ok(!holds(inner, input)?),
        Condition::Compare { variable, operator, operand } => compare(variable, operator, operand, input),
    }
}

fn compare(variable: &JsonPath, operator: &str, operand: &Operand, input: &Value) -> Result<bool, String> {
    let found = variable.read(input).ok();
    let expected = match operand {
        Operand::Literal(value) => value.clone(),
        Operand::Path(path) => path.read(input)?.clone(),
    };
    let flag = expected.as_bool().unwrap_or(true);
    let Some(value) = found else {
        // A missing variable: only IsPresent may ask about it.
        return if operator == "IsPresent" {
            Ok(!flag)
        } else {
            Err(format!("the path {} does not exist", variable.as_str()))
        };
    };
    use std::cmp::Ordering;
    let ordered = |ordering: Option<Ordering>, wanted: &[Ordering]| ordering.is_some_and(|o| wanted.contains(&o));
    let strings = || value.as_str().zip(expected.as_str()).map(|(a, b)| a.cmp(b));
    let numbers = || value.as_f64().zip(expected.as_f64()).and_then(|(a, b)| a.partial_cmp(&b));
    let times = || {
        let parse = |v: &Value| v.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        parse(value).zip(parse(&expected)).map(|(a, b)| a.cmp(&b))
    };
    use Ordering::{Equal as Eq, Greater as Gt, Less as Lt};
    Ok(match operator {
        "IsPresent" => flag,
        "IsNull" => value.is_null() == flag,
        "IsString" => value.is_string() == flag,
        "IsNumeric" => value.is_number() == flag,
        "IsBoolean" => value.is_boolean() == flag,
        "IsTimestamp" => (value.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).is_some()) == flag,
        "StringEquals" => ordered(strings(), &[Eq]),
        "StringLessThan" => ordered(strings(), &[Lt]),
        "StringGreaterThan" => ordered(strings(), &[Gt]),
        "StringLessThanEquals" => ordered(strings(), &[Lt, Eq]),
        "StringGreaterThanEquals" => ordered(strings(), &[Gt, Eq]),
        "StringMatches" => value.as_str().zip(expected.as_str()).is_some_and(|(text, pattern)| wildcard(pattern, text)),
        "NumericEquals" => ordered(numbers(), &[Eq]),
        "NumericLessThan" => ordered(numbers(), &[Lt]),
        "NumericGreaterThan" => ordered(numbers(), &[Gt]),
        "NumericLessThanEquals" => ordered(numbers(), &[Lt, Eq]),
        "NumericGreaterThanEquals" => ordered(numbers(), &[Gt, Eq]),
        "BooleanEquals" => value.as_bool().is_some_and(|b| Some(b) == expected.as_bool()),
        "TimestampEquals" => ordered(times(), &[Eq]),
        "TimestampLessThan" => ordered(times(), &[Lt]),
        "TimestampGreaterThan" => ordered(times(), &[Gt]),
        "TimestampLessThanEquals" => ordered(times(), &[Lt, Eq]),
        "TimestampGreaterThanEquals" => ordered(times(), &[Gt, Eq]),
        other => return Err(format!("unknown operator {other}")),
    })
}

/// ASL's StringMatches: `*` matches any run of characters, `\*` a literal `*` and
/// `\\` a backslash. Greedy with one backtrack point (the last `*`), so the time is
/// at most the product of the lengths, however many `*` the pattern holds.
pub(crate) fn wildcard(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Star,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' => Token::Star,
            '\\' => match chars.next() {
                Some(escaped) => Token::Char(escaped),
                None => Token::Char('\\'),
            },
            other => Token::Char(other),
        });
    }
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut p) = (0, 0);
    // Where to resume after the last `*`: the token after it, and the text position it
    // has swallowed up to.
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Star) => {
                resume = Some((p + 1, t));
                p += 1;
            }
            Some(Token::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match resume {
                Some((after_star, swallowed)) => {
                    p = after_star;
                    t = swallowed + 1;
                    resume = Some((after_star, swallowed + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|token| *token == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(definition: Value) -> StateMachine {
        StateMachine::parse(&definition).unwrap_or_else(|problems| panic!("{problems:?}"))
    }

    #[test]
    fn string_matches_is_a_wildcard_with_escapes_in_bounded_time() {
        assert!(wildcard("vip-*", "vip-gold"));
        assert!(wildcard("*.log", "a.b.log"));
        assert!(wildcard("a*b*c", "aXXbYYc"));
        assert!(!wildcard("a*b*c", "aXXbYY"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("", "x"));
        assert!(wildcard("\\*literal", "*literal"));
        assert!(!wildcard("\\*literal", "xliteral"));
        assert!(wildcard("back\\\\slash", "back\\slash"));
        assert!(wildcard("ü*ß", "üaßbß"));
        // Many stars and a text that almost matches: exponential for a naive matcher.
        let pattern = "*a".repeat(40) + "b";
        let text = "a".repeat(5000);
        assert!(!wildcard(&pattern, &text));
        assert!(wildcard(&pattern, &(text.clone() + "b")));
    }

    #[test]
    fn a_task_retries_then_catches_into_a_failure_path() {
        let sm = machine(json!({
            "StartAt": "Charge",
            "States": {
                "Charge": {
                    "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123:function:charge",
                    "Parameters": {"amount.$": "$.order.total"},
                    "ResultPath": "$.receipt",
                    "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 2, "MaxAttempts": 2, "BackoffRate": 3}],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Refund", "ResultPath": "$.error"}],
                    "Next": "Done"
                },
                "Refund": {"Type": "Fail", "Error": "Refunded", "Cause": "charge failed"},
                "Done": {"Type": "Succeed", "OutputPath": "$.receipt"}
            }
        }));
        let input = json!({"order": {"total": 42}});
        assert_eq!(
            sm.enter("Charge", input.clone(), 0, &json!({})),
            Step::Task { function: "charge".into(), qualifier: None, input: json!({"amount": 42}), timeout: None }
        );
        let busy = TaskError { error: "Busy".into(), cause: "try later".into() };
        assert_eq!(
            sm.task_done("Charge", &input, Err(busy.clone()), 0, &json!({})),
            AfterTask::Retry { delay: Duration::from_secs(2) }
        );
        assert_eq!(
            sm.task_done("Charge", &input, Err(busy.clone()), 1, &json!({})),
            AfterTask::Retry { delay: Duration::from_secs(6) }
        );
        let AfterTask::Then(Step::Next { state, input: caught }) =
            sm.task_done("Charge", &input, Err(busy), 2, &json!({}))
        else {
            panic!("not caught")
        };
        assert_eq!(state, "Refund");
        assert_eq!(caught["error"], json!({"Error": "Busy", "Cause": "try later"}));
        assert_eq!(caught["order"]["total"], 42);

        let AfterTask::Then(Step::Next { state, input: next }) =
            sm.task_done("Charge", &input, Ok(json!({"id": "r1"})), 0, &json!({}))
        else {
            panic!("no transition")
        };
        assert_eq!((state.as_str(), &next["receipt"]), ("Done", &json!({"id": "r1"})));
        assert_eq!(sm.enter("Done", next, 0, &json!({})), Step::Succeed { output: json!({"id": "r1"}) });
        assert_eq!(
            sm.enter("Refund", json!({}), 0, &json!({})),
            Step::Fail { error: "Refunded".into(), cause: "charge failed".into() }
        );
    }

    #[test]
    fn choices_waits_and_passes() {
        let sm = machine(json!({
            "StartAt": "Route",
            "States": {
                "Route": {"Type": "Choice", "Choices": [
                    {"Not": {"Variable": "$.n", "IsPresent": true}, "Next": "Empty"},
                    {"And": [{"Variable": "$.n", "NumericGreaterThan": 10}, {"Variable": "$.kind", "StringMatches": "vip-*"}], "Next": "Big"}
                ], "Default": "Small"},
                "Big": {"Type": "Wait", "Seconds": 5, "Next": "Small"},
                "Empty": {"Type": "Pass", "Result": {"empty": true}, "ResultPath": "$.note", "End": true},
                "Small": {"Type": "Succeed"}
            }
        }));
        assert_eq!(
            sm.enter("Route", json!({"n": 11, "kind": "vip-gold"}), 0, &json!({})),
            Step::Next { state: "Big".into(), input: json!({"n": 11, "kind": "vip-gold"}) }
        );
        assert_eq!(
            sm.enter("Route", json!({"n": 11, "kind": "plain"}), 0, &json!({})),
            Step::Next { state: "Small".into(), input: json!({"n": 11, "kind": "plain"}) }
        );
        assert!(matches!(sm.enter("Route", json!({}), 0, &json!({})), Step::Next { state, .. } if state == "Empty"));
        assert_eq!(
            sm.enter("Big", json!({"n": 1}), 1_000, &json!({})),
            Step::Wait {
                until_ms: 6_000,
                then: Box::new(Step::Next { state: "Small".into(), input: json!({"n": 1}) })
            }
        );
        assert_eq!(
            sm.enter("Empty", json!({"a": 1}), 0, &json!({})),
            Step::Succeed { output: json!({"a": 1, "note": {"empty": true}}) }
        );
    }

    #[test]
    fn definitions_report_what_to_fix() {
        let problems = StateMachine::parse(&json!({
            "StartAt": "Missing",
            "States": {
                "A": {"Type": "Task", "Resource": "not a function!", "Next": "Nowhere"},
                "B": {"Type": "Map", "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "X",
                      "States": {"X": {"Type": "Succeed"}}}, "End": true},
                "D": {"Type": "Task", "Resource": "arn:aws:states:::sns:publish", "End": true},
                "E": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"Payload.$": "$"},
                      "End": true},
                "F": {"Type": "Pass", "Parameters": {"x.$": "States.Fromat('{}', $.a)"}, "End": true},
                "C": {"Type": "Pass"}
            }
        }))
        .unwrap_err();
        let text = problems.join("\n");
        let ignored = StateMachine::parse(&json!({
            "StartAt": "A",
            "States": {"A": {"Type": "Task", "Resource": "f", "ResultWriter": {}, "End": true}}
        }))
        .unwrap_err();
        assert!(ignored[0].contains("ResultWriter is not supported in a Task state"), "{ignored:?}");
        let sm = machine(json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}}));
        assert!(
            matches!(sm.enter("W", json!({"s": 1e300}), 0, &json!({})), Step::Fail { error, .. } if error == "States.Runtime")
        );
        assert!(matches!(sm.enter("W", json!({"s": -1}), 0, &json!({})), Step::Fail { .. }));
        for expected in [
            "StartAt names \"Missing\"",
            "Resource \"not a function!\" is not a function",
            "goes to \"Nowhere\"",
            "Mode \"DISTRIBUTED\" is not supported",
            "\"arn:aws:states:::sns:publish\" is a Step Functions service integration Updraft does not run",
            "Parameters needs FunctionName",
            "unknown function \"States.Fromat\"",
            "state \"C\": needs Next or \"End\": true",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
        }
    }

    #[test]
    fn lambda_invoke_tasks_wrap_their_answer_and_maps_run_each_item() {
        let sm = machine(json!({
            "StartAt": "Score",
            "States": {
                "Score": {
                    "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {
                        "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:score:live",
                        "Payload": {"order.$": "$.order", "execution.$": "$$.Execution.Id",
                                    "greeting.$": "States.Format('Hi {}', $.order.customer)"}
                    },
                    "ResultSelector": {"score.$": "$.Payload.score", "status.$": "$.StatusCode"},
                    "ResultPath": "$.scored",
                    "Next": "Each"
                },
                "Each": {
                    "Type": "Map", "ItemsPath": "$.order.items", "MaxConcurrency": 2,
                    "ItemSelector": {"sku.$": "$$.Map.Item.Value.sku", "index.$": "$$.Map.Item.Index",
                                     "customer.$": "$.order.customer"},
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": "Price",
                        "States": {"Price": {"Type": "Task", "Resource": "price", "End": true}}
                    },
                    "ResultPath": "$.prices",
                    "End": true
                }
            }
        }));
        assert_eq!(sm.functions(), ["price", "score"]);
        let input = json!({"order": {"customer": "ada", "items": [{"sku": "a"}, {"sku": "b"}]}});
        let context = json!({"Execution": {"Id": "exec-1"}});
        assert_eq!(
            sm.enter("Score", input.clone(), 0, &context),
            Step::Task {
                function: "score".into(),
                qualifier: Some("live".into()),
                input: json!({"order": input["order"], "execution": "exec-1", "greeting": "Hi ada"}),
                timeout: None,
            }
        );
        let AfterTask::Then(Step::Next { state, input: scored }) =
            sm.task_done("Score", &input, Ok(json!({"score": 7})), 0, &context)
        else {
            panic!("no transition")
        };
        assert_eq!((state.as_str(), &scored["scored"]), ("Each", &json!({"score": 7, "status": 200})));
        let Step::Map { items, max_concurrency } = sm.enter("Each", scored.clone(), 0, &context) else {
            panic!("not a map")
        };
        assert_eq!(max_concurrency, 2);
        assert_eq!(
            items,
            [json!({"sku": "a", "index": 0, "customer": "ada"}), json!({"sku": "b", "index": 1, "customer": "ada"})]
        );
        let AfterTask::Then(Step::Succeed { output }) = sm.task_done("Each", &scored, Ok(json!([1, 2])), 0, &context)
        else {
            panic!("not done")
        };
        assert_eq!(output["prices"], json!([1, 2]));
        // A name from the input is resolved when the state runs; a bad one fails it.
        let dynamic = machine(json!({"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName.$": "$.fn"}, "End": true}}}));
        assert!(matches!(dynamic.enter("T", json!({"fn": "score:$LATEST"}), 0, &context),
            Step::Task { function, qualifier: None, input, .. } if function == "score" && input == json!({})));
        assert!(matches!(dynamic.enter("T", json!({"fn": "Not A Function"}), 0, &context),
            Step::Fail { error, .. } if error == "States.Runtime"));
        // An intrinsic that fails is States.IntrinsicFailure; items that are not an
        // array are States.Runtime.
        let failing = machine(json!({"StartAt": "P", "States": {"P": {
            "Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.a, 1)"}, "End": true}}}));
        assert!(matches!(failing.enter("P", json!({"a": "x"}), 0, &context),
            Step::Fail { error, .. } if error == "States.IntrinsicFailure"));
        assert!(matches!(sm.enter("Each", json!({"order": {"items": 3}}), 0, &context),
            Step::Fail { error, cause } if error == "States.Runtime" && cause.contains("not an array")));
    }
}
