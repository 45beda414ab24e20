//! Amazon States Language's intrinsic functions: `"key.$": "States.Format('Hi {}',
//! $.name)"` in `Parameters`, `ItemSelector` and `ResultSelector`. A call is parsed
//! when the definition is checked (so a typo is a deploy error) and evaluated when
//! the state runs; an evaluation error is `States.IntrinsicFailure`, as in Step
//! Functions.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Number, Value};

use super::path::JsonPath;

/// The functions, with how many arguments each takes (`min..=max`).
const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("States.Format", 1, usize::MAX),
    ("States.StringToJson", 1, 1),
    ("States.JsonToString", 1, 1),
    ("States.Array", 0, usize::MAX),
    ("States.ArrayPartition", 2, 2),
    ("States.ArrayContains", 2, 2),
    ("States.ArrayRange", 3, 3),
    ("States.ArrayGetItem", 2, 2),
    ("States.ArrayLength", 1, 1),
    ("States.ArrayUnique", 1, 1),
    ("States.Base64Encode", 1, 1),
    ("States.Base64Decode", 1, 1),
    ("States.Hash", 2, 2),
    ("States.JsonMerge", 3, 3),
    ("States.MathRandom", 2, 3),
    ("States.MathAdd", 2, 2),
    ("States.StringSplit", 2, 2),
    ("States.UUID", 0, 0),
];

/// Step Functions' bounds: the longest array `States.ArrayRange` makes, and the
/// longest text the Base64 functions take.
const MAX_RANGE: usize = 1000;
const MAX_BASE64_INPUT: usize = 10_000;

/// A parsed call of an intrinsic function.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    name: &'static str,
    args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Literal(Value),
    /// A string literal: its text, and as written between the quotes (where a
    /// `States.Format` template's escaped braces are still told from its `{}`).
    Text {
        text: String,
        written: String,
    },
    Path(JsonPath),
    Call(Call),
}

/// Whether a `.$` value is an intrinsic call rather than a path.
pub fn is_call(text: &str) -> bool {
    text.trim_start().starts_with("States.")
}

impl Call {
    pub fn parse(text: &str) -> Result<Call, String> {
        let mut parser = Parser { text, at: 0, depth: 0 };
        let call = parser.call().map_err(|why| format!("{text:?} is not an intrinsic function call: {why}"))?;
        parser.skip_spaces();
        if parser.at != text.len() {
            return Err(format!("{text:?} has text after the call's closing parenthesis; remove it"));
        }
        Ok(call)
    }

    /// Evaluates the call over the state's input and the context object (`$$`).
    pub fn eval(&self, input: &Value, context: &Value) -> Result<Value, String> {
        let mut args = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            args.push(match arg {
                Arg::Literal(value) => value.clone(),
                // A template written in the call keeps its escapes for States.Format to read.
                Arg::Text { written, .. } if self.name == "States.Format" && args.is_empty() => {
                    Value::String(written.clone())
                }
                Arg::Text { text, .. } => Value::String(text.clone()),
                Arg::Path(path) => path.read_in(input, context)?.clone(),
                Arg::Call(call) => call.eval(input, context)?,
            });
        }
        apply(self.name, args).map_err(|why| format!("{}: {why}", self.name))
    }
}

struct Parser<'t> {
    text: &'t str,
    at: usize,
    /// How deeply the call being read is nested in others.
    depth: usize,
}

/// The deepest nesting of calls in one another a definition may have.
const MAX_DEPTH: usize = 16;

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn skip_spaces(&mut self) {
        let trimmed = self.rest().trim_start();
        self.at = self.text.len() - trimmed.len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_spaces();
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn call(&mut self) -> Result<Call, String> {
        self.skip_spaces();
        let length = self.rest().find(|c: char| !(c.is_ascii_alphanumeric() || c == '.')).unwrap_or(self.rest().len());
        let written = &self.rest()[..length];
        let Some(&(name, min, max)) = FUNCTIONS.iter().find(|(name, ..)| *name == written) else {
            let known: Vec<&str> = FUNCTIONS.iter().map(|(name, ..)| *name).collect();
            return Err(format!("unknown function {written:?} (known: {})", known.join(", ")));
        };
        self.at += length;
        if !self.eat('(') {
            return Err(format!("{name} must be followed by its arguments in parentheses"));
        }
        let mut args = Vec::new();
        if !self.eat(')') {
            loop {
                args.push(self.arg()?);
                if self.eat(')') {
                    break;
                }
                if !self.eat(',') {
                    return Err(format!("expected , or ) after argument {} of {name}", args.len()));
                }
            }
        }
        if args.len() < min || args.len() > max {
            let wanted = match (min, max) {
                (min, max) if min == max => format!("{min}"),
                (min, usize::MAX) => format!("at least {min}"),
                (min, max) => format!("{min} to {max}"),
            };
            return Err(format!("{name} takes {wanted} arguments, not {}", args.len()));
        }
        Ok(Call { name, args })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        self.skip_spaces();
        let rest = self.rest();
        if rest.starts_with('\'') {
            return self.string().map(|(text, written)| Arg::Text { text, written });
        }
        if rest.starts_with("States.") {
            if self.depth >= MAX_DEPTH {
                return Err(format!("calls are nested more than {MAX_DEPTH} deep"));
            }
            self.depth += 1;
            let call = self.call().map(Arg::Call);
            self.depth -= 1;
            return call;
        }
        if rest.starts_with('$') {
            let length = path_length(rest);
            let path = JsonPath::parse(rest[..length].trim_end())?;
            self.at += length;
            return Ok(Arg::Path(path));
        }
        let length = rest.find([',', ')']).unwrap_or(rest.len());
        let word = rest[..length].trim();
        let value = match word {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            number => match serde_json::from_str::<Number>(number) {
                Ok(number) => Value::Number(number),
                Err(_) => {
                    return Err(format!(
                        "{word:?} is not an argument; write text in single quotes, a number, true, false, null, \
                         a path like $.name, or another States. call"
                    ));
                }
            },
        };
        self.at += length;
        Ok(Arg::Literal(value))
    }

    /// A single-quoted string: its text (`\'`, `\{`, `\}` and `\\` stand for the
    /// character) and what is written between the quotes.
    fn string(&mut self) -> Result<(String, String), String> {
        let mut text = String::new();
        let mut chars = self.rest().char_indices().skip(1);
        while let Some((offset, c)) = chars.next() {
            match c {
                '\'' => {
                    let written = self.rest()[1..offset].to_owned();
                    self.at += offset + 1;
                    return Ok((text, written));
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => text.push(escaped),
                    None => break,
                },
                other => text.push(other),
            }
        }
        Err("a string is not closed; end it with '".to_owned())
    }
}

/// How much of `text` (starting at `$`) is a path: up to a `,` or `)` outside
/// brackets and quotes.
fn path_length(text: &str) -> usize {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (offset, c) in text.char_indices() {
        match (quote, c) {
            (Some(open), c) if c == open => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => depth = depth.saturating_sub(1),
            (None, ',' | ')') if depth == 0 => return offset,
            _ => {}
        }
    }
    text.len()
}

fn apply(name: &str, mut args: Vec<Value>) -> Result<Value, String> {
    // The two that take any number of arguments; the parser checked every count.
    match name {
        "States.Format" => {
            let rest = args.split_off(1);
            let template = args.pop().unwrap_or_default();
            let template = template.as_str().ok_or("its first argument must be a string")?;
            return format_with(template, rest).map(Value::String);
        }
        "States.Array" => return Ok(Value::Array(args)),
        _ => {}
    }
    let mut args = args.into_iter();
    let mut next = || args.next().unwrap_or(Value::Null);
    Ok(match name {
        "States.StringToJson" => {
            let text = next();
            let text = text.as_str().ok_or("its argument must be a string")?;
            serde_json::from_str(text).map_err(|error| format!("{text:?} is not JSON ({error})"))?
        }
        "States.JsonToString" => Value::String(next().to_string()),
        "States.ArrayPartition" => {
            let items = array(next())?;
            let size = positive(&next(), "the chunk size")?;
            Value::Array(items.chunks(size).map(|chunk| Value::Array(chunk.to_vec())).collect())
        }
        "States.ArrayContains" => {
            let items = array(next())?;
            let wanted = next();
            Value::Bool(items.contains(&wanted))
        }
        "States.ArrayRange" => {
            let (start, end, step) = (integer(&next())?, integer(&next())?, integer(&next())?);
            if step == 0 {
                return Err("the step must not be 0".to_owned());
            }
            // In i128, where no i64 bounds can overflow.
            let (start, end, step) = (i128::from(start), i128::from(end), i128::from(step));
            let count = ((end - start) / step + 1).max(0);
            if count > MAX_RANGE as i128 {
                return Err(format!("the range would have {count} items; at most {MAX_RANGE}"));
            }
            // Each item lies between start and end, so it fits in an i64.
            Value::Array((0..count).map(|i| Value::from((start + i * step) as i64)).collect())
        }
        "States.ArrayGetItem" => {
            let items = array(next())?;
            let index = integer(&next())?;
            usize::try_from(index)
                .ok()
                .and_then(|index| items.get(index).cloned())
                .ok_or_else(|| format!("index {index} is outside the array of {} items", items.len()))?
        }
        "States.ArrayLength" => Value::from(array(next())?.len()),
        "States.ArrayUnique" => {
            let mut unique: Vec<Value> = Vec::new();
            for item in array(next())? {
                if !unique.contains(&item) {
                    unique.push(item);
                }
            }
            Value::Array(unique)
        }
        "States.Base64Encode" => {
            let text = bounded_text(next())?;
            Value::String(BASE64.encode(text))
        }
        "States.Base64Decode" => {
            let text = bounded_text(next())?;
            let bytes = BASE64.decode(text.as_bytes()).map_err(|error| format!("not Base64 ({error})"))?;
            Value::String(String::from_utf8(bytes).map_err(|_| "the decoded bytes are not UTF-8 text")?)
        }
        "States.Hash" => {
            let data = match next() {
                Value::String(text) => text,
                other => other.to_string(),
            };
            let algorithm = next();
            Value::String(hash(&data, algorithm.as_str().unwrap_or_default())?)
        }
        "States.JsonMerge" => {
            let (Value::Object(mut into), Value::Object(from)) = (next(), next()) else {
                return Err("its first two arguments must be objects".to_owned());
            };
            if next() != Value::Bool(false) {
                return Err("only a shallow merge is supported: pass false as the third argument".to_owned());
            }
            into.extend(from);
            Value::Object(into)
        }
        "States.MathRandom" => {
            use rand::{Rng, SeedableRng};
            let (start, end) = (integer(&next())?, integer(&next())?);
            if start >= end {
                return Err(format!("the start ({start}) must be below the end ({end})"));
            }
            let value = match next() {
                Value::Null => rand::rng().random_range(start..end),
                seed => rand::rngs::StdRng::seed_from_u64(integer(&seed)? as u64).random_range(start..end),
            };
            Value::from(value)
        }
        "States.MathAdd" => {
            let (a, b) = (integer(&next())?, integer(&next())?);
            Value::from(a.checked_add(b).ok_or("the sum overflows")?)
        }
        "States.StringSplit" => {
            let (text, separators) = (next(), next());
            let (Some(text), Some(separators)) = (text.as_str(), separators.as_str()) else {
                return Err("both arguments must be strings".to_owned());
            };
            Value::Array(
                text.split(|c| separators.contains(c))
                    .filter(|part| !part.is_empty())
                    .map(|part| Value::String(part.to_owned()))
                    .collect(),
            )
        }
        "States.UUID" => Value::String(uuid::Uuid::new_v4().to_string()),
        other => return Err(format!("{other} is not an intrinsic function")),
    })
}

/// `States.Format`: each `{}` takes the next argument (text as is, anything else as
/// JSON); `\{` and `\}` are literal braces.
fn format_with(template: &str, args: Vec<Value>) -> Result<String, String> {
    let mut args = args.into_iter();
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    let mut used = 0;
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('{' | '}' | '\\' | '\'')) => out.extend(chars.next()),
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                used += 1;
                match args.next() {
                    Some(Value::String(text)) => out.push_str(&text),
                    Some(value @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => out.push_str(&value.to_string()),
                    Some(_) => return Err(format!("argument {used} is an object or array; pass text or a number")),
                    None => return Err(format!("the template has more {{}} than the {} arguments", used - 1)),
                }
            }
            other => out.push(other),
        }
    }
    let left = args.count();
    if left > 0 {
        return Err(format!("{left} argument(s) more than the template's {used} {{}}"));
    }
    Ok(out)
}

fn array(value: Value) -> Result<Vec<Value>, String> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(format!("expected an array, got {other}")),
    }
}

fn integer(value: &Value) -> Result<i64, String> {
    value
        .as_i64()
        .or_else(|| value.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64))
        .ok_or_else(|| format!("expected an integer, got {value}"))
}

fn positive(value: &Value, what: &str) -> Result<usize, String> {
    match integer(value)? {
        n if n > 0 => Ok(n as usize),
        n => Err(format!("{what} must be above 0, not {n}")),
    }
}

fn bounded_text(value: Value) -> Result<String, String> {
    match value {
        Value::String(text) if text.len() <= MAX_BASE64_INPUT => Ok(text),
        Value::String(text) => Err(format!("{} characters; at most {MAX_BASE64_INPUT}", text.len())),
        other => Err(format!("expected a string, got {other}")),
    }
}

fn hash(data: &str, algorithm: &str) -> Result<String, String> {
    use sha2::Digest;
    let bytes = data.as_bytes();
    Ok(match algorithm {
        "MD5" => hex::encode(md5::Md5::digest(bytes)),
        "SHA-1" => hex::encode(sha1::Sha1::digest(bytes)),
        "SHA-256" => hex::encode(sha2::Sha256::digest(bytes)),
        "SHA-384" => hex::encode(sha2::Sha384::digest(bytes)),
        "SHA-512" => hex::encode(sha2::Sha512::digest(bytes)),
        other => return Err(format!("unknown algorithm {other:?}; use MD5, SHA-1, SHA-256, SHA-384 or SHA-512")),
    })
}

/// Checks every `.$` value of a template (`Parameters`, `ItemSelector`,
/// `ResultSelector`): a path or an intrinsic call.
pub fn check_template(template: &Value, problems: &mut Vec<String>, here: &str) {
    match template {
        Value::Object(map) => {
            for (key, value) in map {
                if key.ends_with(".$") {
                    let checked = match value.as_str() {
                        Some(text) if is_call(text) => Call::parse(text).map(drop),
                        Some(text) => JsonPath::parse(text).map(drop),
                        None => Err(format!("{key} must be a path or an intrinsic function call, in a string")),
                    };
                    if let Err(message) = checked {
                        problems.push(format!("{here}{key}: {message}"));
                    }
                } else {
                    check_template(value, problems, here);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| check_template(item, problems, here)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn eval(text: &str, input: Value) -> Result<Value, String> {
        Call::parse(text)?.eval(&input, &json!({"Execution": {"Id": "e-1"}}))
    }

    #[test]
    fn functions_compute_what_step_functions_computes() {
        let input = json!({"name": "Ada", "n": 3, "list": [1, 2, 2, 3], "doc": "{\"a\":1}", "o": {"x": 1}});
        assert_eq!(
            eval("States.Format('Hello, {}! You have {} items.', $.name, $.n)", input.clone()).unwrap(),
            "Hello, Ada! You have 3 items."
        );
        assert_eq!(
            eval(r"States.Format('a \{literal\} and {}', $.name)", input.clone()).unwrap(),
            "a {literal} and Ada"
        );
        assert_eq!(eval(r"States.Format('it\'s {}', $$.Execution.Id)", input.clone()).unwrap(), "it's e-1");
        assert_eq!(eval("States.StringToJson($.doc)", input.clone()).unwrap(), json!({"a": 1}));
        // Escapes are the characters everywhere but in a Format template, where `\{}`
        // stays literal braces.
        assert_eq!(eval(r#"States.StringToJson('\{"a":1\}')"#, input.clone()).unwrap(), json!({"a": 1}));
        assert_eq!(eval(r"States.Format('\{\} is {}', 'x')", input.clone()).unwrap(), "{} is x");
        assert_eq!(eval(r"States.Format('a\\{}', 'x')", input.clone()).unwrap(), "a\\x");
        let deep = format!("{}1{}", "States.Array(".repeat(40), ")".repeat(40));
        assert!(Call::parse(&deep).unwrap_err().contains("nested more than 16 deep"));
        assert_eq!(
            eval("States.ArrayRange(0, -9223372036854775808, -1)", input.clone()).unwrap_err(),
            "States.ArrayRange: the range would have 9223372036854775809 items; at most 1000"
        );
        assert_eq!(eval("States.JsonToString($.o)", input.clone()).unwrap(), "{\"x\":1}");
        assert_eq!(
            eval("States.Array('a', 1, true, null, $.n)", input.clone()).unwrap(),
            json!(["a", 1, true, null, 3])
        );
        assert_eq!(eval("States.ArrayPartition($.list, 3)", input.clone()).unwrap(), json!([[1, 2, 2], [3]]));
        assert_eq!(eval("States.ArrayContains($.list, 3)", input.clone()).unwrap(), json!(true));
        assert_eq!(eval("States.ArrayRange(1, 9, 2)", input.clone()).unwrap(), json!([1, 3, 5, 7, 9]));
        assert_eq!(eval("States.ArrayGetItem($.list, 3)", input.clone()).unwrap(), json!(3));
        assert_eq!(eval("States.ArrayLength($.list)", input.clone()).unwrap(), json!(4));
        assert_eq!(eval("States.ArrayUnique($.list)", input.clone()).unwrap(), json!([1, 2, 3]));
        assert_eq!(eval("States.Base64Encode('Data to encode')", input.clone()).unwrap(), "RGF0YSB0byBlbmNvZGU=");
        assert_eq!(eval("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", input.clone()).unwrap(), "Data to encode");
        assert_eq!(
            eval("States.Hash('input data', 'SHA-1')", input.clone()).unwrap(),
            "aaff4a450a104cd177d28d18d74485e8cae074b7"
        );
        assert_eq!(eval("States.Hash('', 'MD5')", input.clone()).unwrap(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            eval("States.JsonMerge($.o, States.StringToJson($.doc), false)", input.clone()).unwrap(),
            json!({"x": 1, "a": 1})
        );
        assert_eq!(eval("States.MathAdd($.n, -4)", input.clone()).unwrap(), json!(-1));
        let seeded = eval("States.MathRandom(1, 1000, 7)", input.clone()).unwrap();
        assert_eq!(eval("States.MathRandom(1, 1000, 7)", input.clone()).unwrap(), seeded);
        assert!((1..1000).contains(&seeded.as_i64().unwrap()));
        assert_eq!(
            eval("States.StringSplit('This.is+a,test=string', '.+,=')", input.clone()).unwrap(),
            json!(["This", "is", "a", "test", "string"])
        );
        let uuid = eval("States.UUID()", input.clone()).unwrap();
        assert_eq!(uuid::Uuid::parse_str(uuid.as_str().unwrap()).unwrap().get_version_num(), 4);
    }

    #[test]
    fn mistakes_are_named_when_parsed_and_when_run() {
        for (text, expected) in [
            ("States.Formt('x')", "unknown function \"States.Formt\""),
            ("States.MathAdd(1)", "States.MathAdd takes 2 arguments, not 1"),
            ("States.Format('x'", "expected , or )"),
            ("States.Format('x) ", "not closed"),
            ("States.Array(foo)", "\"foo\" is not an argument"),
            ("States.UUID() extra", "text after the call"),
        ] {
            let error = Call::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
        let input = json!({"n": "three"});
        assert!(eval("States.MathAdd($.n, 1)", input.clone()).unwrap_err().contains("expected an integer"));
        assert!(eval("States.Format('{} {}', 1)", input.clone()).unwrap_err().contains("more {}"));
        assert!(eval("States.ArrayRange(0, 5000, 1)", input.clone()).unwrap_err().contains("at most 1000"));
        assert!(eval("States.Hash('x', 'CRC')", input.clone()).unwrap_err().contains("unknown algorithm"));
        assert!(eval("States.Format($.missing)", input).unwrap_err().contains("does not exist"));
        let mut problems = Vec::new();
        check_template(&json!({"a.$": "States.Nope()", "b": {"c.$": "nope"}, "d.$": "$.ok"}), &mut problems, "");
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
