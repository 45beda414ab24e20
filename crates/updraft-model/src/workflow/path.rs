//! The JSONPath subset Amazon States Language uses for `InputPath`, `ResultPath`,
//! `OutputPath`, `Parameters` (`"key.$"`) and Choice `Variable`s: `$`, `$.field`,
//! `$.a.b[2]`, `$['quoted key']`, and `$$.…` for the context object (the execution,
//! the state, a Map's item) in templates. Reading a missing path is an error
//! (`States.Runtime`); writing creates the objects on the way.

use serde_json::{Map, Value};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Field(String),
    Index(usize),
}

/// A parsed reference path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    /// `$$…`: a path into the context object rather than the input.
    context: bool,
    segments: Vec<Segment>,
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("{text:?} is not a path ({why}); write it like \"$.order.items[0]\"");
        let rest = text.strip_prefix('$').ok_or_else(|| invalid("it must start with $"))?;
        let (context, rest) = match rest.strip_prefix('$') {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let mut segments = Vec::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '.' => {
                    let mut field = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        field.push(c);
                        chars.next();
                    }
                    if field.is_empty() {
                        return Err(invalid("an empty field name"));
                    }
                    segments.push(Segment::Field(field));
                }
                '[' => {
                    let mut inside = String::new();
                    for c in chars.by_ref() {
                        if c == ']' {
                            break;
                        }
                        inside.push(c);
                    }
                    let inside = inside.trim();
                    if let Some(quoted) = inside
                        .strip_prefix('\'')
                        .and_then(|s| s.strip_suffix('\''))
                        .or_else(|| inside.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                    {
                        segments.push(Segment::Field(quoted.to_owned()));
                    } else {
                        let index = inside.parse().map_err(|_| invalid("a bracket holds an index or a quoted key"))?;
                        segments.push(Segment::Index(index));
                    }
                }
                _ => return Err(invalid("expected . or [ after $")),
            }
        }
        Ok(Self { text: text.to_owned(), context, segments })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path in `input`, or in `context` for a `$$` path.
    pub fn read_in<'v>(&self, input: &'v Value, context: &'v Value) -> Result<&'v Value, String> {
        self.walk(if self.context { context } else { input })
    }

    /// The value at this path in `value`; a `$$` path is refused, since only
    /// templates see the context object.
    pub fn read<'v>(&self, value: &'v Value) -> Result<&'v Value, String> {
        if self.context {
            return Err(format!(
                "{} reads the context object, which only Parameters, ItemSelector and ResultSelector can",
                self.text
            ));
        }
        self.walk(value)
    }

    fn walk<'v>(&self, value: &'v Value) -> Result<&'v Value, String> {
        let mut current = value;
        for segment in &self.segments {
            current = match (segment, current) {
                (Segment::Field(field), Value::Object(map)) => map.get(field),
                (Segment::Index(index), Value::Array(items)) => items.get(*index),
                _ => None,
            }
            .ok_or_else(|| format!("the path {} does not exist in the input", self.text))?;
        }
        Ok(current)
    }

    /// `target` with `value` placed at this path (`$` replaces it whole).
    pub fn write(&self, mut target: Value, value: Value) -> Result<Value, String> {
        if self.context {
            return Err(format!("{} names the context object, which cannot be written", self.text));
        }
        let Some((last, parents)) = self.segments.split_last() else { return Ok(value) };
        let mut current = &mut target;
        for segment in parents {
            current = match segment {
                Segment::Field(field) => {
                    if !current.is_object() {
                        *current = Value::Object(Map::new());
                    }
                    current
                        .as_object_mut()
                        .map(|map| map.entry(field.clone()).or_insert_with(|| Value::Object(Map::new())))
                        .ok_or_else(|| format!("cannot write {}", self.text))?
                }
                Segment::Index(index) => {
                    current.get_mut(*index).ok_or_else(|| format!("cannot write {}: no element {index}", self.text))?
                }
            };
        }
        match last {
            Segment::Field(field) => {
                if !current.is_object() {
                    *current = Value::Object(Map::new());
                }
                if let Some(map) = current.as_object_mut() {
                    map.insert(field.clone(), value);
                }
            }
            Segment::Index(index) => {
                let slot =
                    current.get_mut(*index).ok_or_else(|| format!("cannot write {}: no element {index}", self.text))?;
                *slot = value;
            }
        }
        Ok(target)
    }
}

/// Why a template could not be applied: a path that is not there (`States.Runtime`)
/// or an intrinsic function that failed (`States.IntrinsicFailure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub error: &'static str,
    pub message: String,
}

impl From<String> for TemplateError {
    fn from(message: String) -> Self {
        Self { error: "States.Runtime", message }
    }
}

/// `Parameters`, `ItemSelector` or `ResultSelector`: a template whose keys ending in
/// `.$` take the value at a path of `input` (or of `context` for `$$`), or the value
/// of an intrinsic function call.
pub fn apply_template(template: &Value, input: &Value, context: &Value) -> Result<Value, TemplateError> {
    match template {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                if let Some(name) = key.strip_suffix(".$") {
                    let text = value.as_str().ok_or_else(|| format!("{key} must be a path string"))?;
                    let value = if super::intrinsics::is_call(text) {
                        super::intrinsics::Call::parse(text)
                            .and_then(|call| call.eval(input, context))
                            .map_err(|message| TemplateError { error: "States.IntrinsicFailure", message })?
                    } else {
                        JsonPath::parse(text)?.read_in(input, context)?.clone()
                    };
                    out.insert(name.to_owned(), value);
                } else {
                    out.insert(key.clone(), apply_template(value, input, context)?);
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items.iter().map(|item| apply_template(item, input, context)).collect(),
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_read_and_write() {
        let input = json!({"order": {"items": [{"sku": "a"}, {"sku": "b"}], "odd key": 1}});
        assert_eq!(JsonPath::parse("$.order.items[1].sku").unwrap().read(&input).unwrap(), "b");
        assert_eq!(JsonPath::parse("$.order['odd key']").unwrap().read(&input).unwrap(), 1);
        assert_eq!(JsonPath::parse("$").unwrap().read(&input).unwrap(), &input);
        assert!(JsonPath::parse("$.nope").unwrap().read(&input).unwrap_err().contains("does not exist"));
        assert!(JsonPath::parse("order").is_err());
        let context = json!({"Map": {"Item": {"Index": 2}}});
        let index = JsonPath::parse("$$.Map.Item.Index").unwrap();
        assert_eq!(index.read_in(&input, &context).unwrap(), 2);
        assert!(index.read(&input).unwrap_err().contains("context object"));
        let written = JsonPath::parse("$.result.id").unwrap().write(json!({"a": 1}), json!(7)).unwrap();
        assert_eq!(written, json!({"a": 1, "result": {"id": 7}}));
        assert_eq!(JsonPath::parse("$").unwrap().write(json!({"a": 1}), json!(2)).unwrap(), json!(2));
    }

    #[test]
    fn templates_take_paths() {
        let input = json!({"user": {"email": "ada@example.com"}});
        let template = json!({"to.$": "$.user.email", "kind": "welcome", "nested": {"again.$": "$.user"}});
        assert_eq!(
            apply_template(&template, &input, &json!({})).unwrap(),
            json!({"to": "ada@example.com", "kind": "welcome", "nested": {"again": {"email": "ada@example.com"}}})
        );
    }
}
