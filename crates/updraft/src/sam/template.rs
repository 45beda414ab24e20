//! A SAM template's text made JSON, and CloudFormation's intrinsic functions resolved
//! over the template's own resources.
//!
//! YAML's short forms (`!Ref X`, `!GetAtt X.Arn`, `!Sub '...'`) become the long forms
//! JSON templates use (`{"Ref": "X"}`, `{"Fn::GetAtt": ...}`), so the rest of the
//! conversion sees one shape. Resolving makes every intrinsic a plain value: a
//! function's name, a topic's or queue's ARN, a parameter's default. What cannot be
//! known without AWS (`Fn::ImportValue`, `Fn::GetAZs`, attributes of resources Updraft
//! does not make) is an error naming it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use updraft_model::{ACCOUNT_ID, REGION};

/// A YAML document as JSON, with tags in their long forms.
pub fn from_yaml(text: &str) -> Result<Value, String> {
    let yaml: yaml_serde::Value = yaml_serde::from_str(text).map_err(|error| format!("not valid YAML: {error}"))?;
    to_json(yaml)
}

fn to_json(yaml: yaml_serde::Value) -> Result<Value, String> {
    use yaml_serde::Value as Yaml;
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(flag) => Value::Bool(flag),
        Yaml::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Value::from(integer)
            } else if let Some(integer) = number.as_u64() {
                Value::from(integer)
            } else {
                number.as_f64().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
            }
        }
        Yaml::String(text) => Value::String(text),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Yaml::String(key) => key,
                    Yaml::Number(number) => number.to_string(),
                    Yaml::Bool(flag) => flag.to_string(),
                    other => return Err(format!("a mapping key must be text, not {other:?}")),
                };
                object.insert(key, to_json(value)?);
            }
            Value::Object(object)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let long = match name {
                "Ref" | "Condition" => name.to_owned(),
                _ => format!("Fn::{name}"),
            };
            let mut inner = to_json(tagged.value)?;
            // `!GetAtt Resource.Attribute` is the short form of `["Resource", "Attribute"]`.
            if name == "GetAtt"
                && let Some((resource, attribute)) = inner.as_str().and_then(|text| text.split_once('.'))
            {
                inner = Value::Array(vec![Value::from(resource), Value::from(attribute)]);
            }
            Value::Object(Map::from_iter([(long, inner)]))
        }
    })
}

/// What a logical id in the template stands for, for `Ref` and `Fn::GetAtt`.
#[derive(Debug, Clone)]
pub enum Referent {
    Function(String),
    StateMachine(String),
    Topic(String),
    Queue(String),
    /// A template parameter, with its default.
    Parameter(Value),
    /// A resource that exists only in AWS (an IAM role, an API): nothing to refer to.
    Unmapped(String),
}

/// The template's logical ids and what they stand for.
#[derive(Debug, Default)]
pub struct Scope {
    pub ids: BTreeMap<String, Referent>,
    /// `AWS::StackName`: the app's name.
    pub stack: String,
}

pub fn lambda_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}")
}

pub fn topic_arn(name: &str) -> String {
    format!("arn:aws:sns:{REGION}:{ACCOUNT_ID}:{name}")
}

pub fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}")
}

fn queue_url(name: &str) -> String {
    format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}")
}

impl Scope {
    /// `value` with every intrinsic function replaced by what it stands for.
    pub fn resolve(&self, value: &Value) -> Result<Value, String> {
        match value {
            Value::Object(object) if object.len() == 1 => {
                let (key, argument) = object.iter().next().expect("one entry");
                match key.as_str() {
                    "Ref" => self.reference(argument),
                    "Fn::GetAtt" => self.attribute(argument),
                    "Fn::Sub" => self.substitute(argument),
                    "Fn::Join" => self.join(argument),
                    other if other.starts_with("Fn::") || other == "Condition" => Err(format!(
                        "{other} cannot be resolved by Updraft; replace it with its value (Ref, Fn::GetAtt, \
                         Fn::Sub and Fn::Join of this template's resources can be)"
                    )),
                    _ => self.resolve_members(object),
                }
            }
            Value::Object(object) => self.resolve_members(object),
            Value::Array(items) => {
                let mut resolved = Vec::with_capacity(items.len());
                for item in items {
                    // `AWS::NoValue` removes the item, as CloudFormation does.
                    if item.get("Ref").and_then(Value::as_str) != Some("AWS::NoValue") {
                        resolved.push(self.resolve(item)?);
                    }
                }
                Ok(Value::Array(resolved))
            }
            other => Ok(other.clone()),
        }
    }

    fn resolve_members(&self, object: &Map<String, Value>) -> Result<Value, String> {
        let mut resolved = Map::new();
        for (key, value) in object {
            if value.get("Ref").and_then(Value::as_str) != Some("AWS::NoValue") {
                resolved.insert(key.clone(), self.resolve(value)?);
            }
        }
        Ok(Value::Object(resolved))
    }

    /// `value` resolved, as text (numbers and booleans written out).
    pub fn text(&self, value: &Value) -> Result<String, String> {
        match self.resolve(value)? {
            Value::String(text) => Ok(text),
            value @ (Value::Number(_) | Value::Bool(_)) => Ok(value.to_string()),
            other => Err(format!("expected text, found {other}")),
        }
    }

    fn reference(&self, argument: &Value) -> Result<Value, String> {
        let name = argument.as_str().ok_or("Ref takes a logical id or a parameter's name")?;
        let pseudo = match name {
            "AWS::Region" => Some(REGION.to_owned()),
            "AWS::AccountId" => Some(ACCOUNT_ID.to_owned()),
            "AWS::Partition" => Some("aws".to_owned()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
            "AWS::StackName" => Some(self.stack.clone()),
            "AWS::StackId" => {
                Some(format!("arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{}/updraft", self.stack))
            }
            _ => None,
        };
        if let Some(pseudo) = pseudo {
            return Ok(Value::String(pseudo));
        }
        Ok(match self.ids.get(name) {
            Some(Referent::Function(function)) => Value::String(function.clone()),
            Some(Referent::StateMachine(machine)) => {
                Value::String(format!("arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{machine}"))
            }
            Some(Referent::Topic(topic)) => Value::String(topic_arn(topic)),
            Some(Referent::Queue(queue)) => Value::String(queue_url(queue)),
            // A parameter's Default is a value: CloudFormation takes no intrinsics there.
            Some(Referent::Parameter(default)) if is_intrinsic(default) => {
                return Err(format!("parameter {name}'s Default must be a value, not an intrinsic function"));
            }
            Some(Referent::Parameter(default)) => default.clone(),
            Some(Referent::Unmapped(kind)) => {
                return Err(format!("Ref {name} names a {kind}, which Updraft does not make; remove the reference"));
            }
            None => return Err(format!("Ref {name}: the template has no resource or parameter {name:?}")),
        })
    }

    fn attribute(&self, argument: &Value) -> Result<Value, String> {
        let (id, attribute) = match argument.as_array().map(Vec::as_slice) {
            Some([id, attribute]) => (id.as_str().unwrap_or_default(), self.text(attribute)?),
            _ => return Err("Fn::GetAtt takes Resource.Attribute".to_owned()),
        };
        let value = match (self.ids.get(id), attribute.as_str()) {
            (Some(Referent::Function(name)), "Arn") => lambda_arn(name),
            (Some(Referent::StateMachine(name)), "Name") => name.clone(),
            (Some(Referent::StateMachine(name)), "Arn") => {
                format!("arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{name}")
            }
            (Some(Referent::Topic(name)), "TopicName") => name.clone(),
            (Some(Referent::Topic(name)), "TopicArn") => topic_arn(name),
            (Some(Referent::Queue(name)), "QueueName") => name.clone(),
            (Some(Referent::Queue(name)), "Arn") => queue_arn(name),
            (Some(Referent::Queue(name)), "QueueUrl") => queue_url(name),
            (None, _) => {
                // SAM's implicit resources (`MyFunctionRole`, `ServerlessRestApi`) exist only in AWS.
                return Err(format!(
                    "Fn::GetAtt {id}.{attribute}: the template has no resource {id:?} (resources SAM makes by \
                     itself, like roles and the implicit API, exist only in AWS)"
                ));
            }
            (Some(_), _) => {
                return Err(format!("Fn::GetAtt {id}.{attribute} cannot be resolved by Updraft; use Ref or Arn"));
            }
        };
        Ok(Value::String(value))
    }

    fn substitute(&self, argument: &Value) -> Result<Value, String> {
        let (template, variables) = match argument {
            Value::String(template) => (template.as_str(), Map::new()),
            Value::Array(parts) => match parts.as_slice() {
                [Value::String(template), Value::Object(variables)] => (template.as_str(), variables.clone()),
                _ => return Err("Fn::Sub takes a string, or a string and a map of variables".to_owned()),
            },
            _ => return Err("Fn::Sub takes a string, or a string and a map of variables".to_owned()),
        };
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| format!("Fn::Sub {template:?}: a ${{ is not closed"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                // `${!Literal}` is the text `${Literal}`.
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(&self.text(value)?);
            } else if let Some((id, attribute)) = name.split_once('.') {
                let value = self.attribute(&Value::Array(vec![Value::from(id), Value::from(attribute)]))?;
                out.push_str(value.as_str().unwrap_or_default());
            } else {
                out.push_str(&self.text(&Value::Object(Map::from_iter([("Ref".to_owned(), Value::from(name))])))?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(Value::String(out))
    }

    fn join(&self, argument: &Value) -> Result<Value, String> {
        let Some([separator, items]) = argument.as_array().map(Vec::as_slice) else {
            return Err("Fn::Join takes a separator and a list".to_owned());
        };
        let separator = separator.as_str().ok_or("Fn::Join's separator must be text")?;
        let items = match self.resolve(items)? {
            Value::Array(items) => items,
            _ => return Err("Fn::Join's second argument must be a list".to_owned()),
        };
        let texts: Result<Vec<String>, String> = items.iter().map(|item| self.text(item)).collect();
        Ok(Value::String(texts?.join(separator)))
    }
}

/// Whether `value` is an intrinsic function (`{"Ref": ...}`, `{"Fn::...": ...}`).
pub fn is_intrinsic(value: &Value) -> bool {
    value.as_object().is_some_and(|object| {
        object.len() == 1 && object.keys().all(|key| key == "Ref" || key == "Condition" || key.starts_with("Fn::"))
    })
}

/// The name at the end of an ARN (`arn:aws:sns:...:NAME`), a queue URL's last segment,
/// or the text itself when it is neither.
pub fn last_name(text: &str) -> &str {
    if text.starts_with("arn:") {
        text.rsplit(':').next().unwrap_or(text)
    } else if text.starts_with("https://") || text.starts_with("http://") {
        text.rsplit('/').next().unwrap_or(text)
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scope() -> Scope {
        let mut scope = Scope { stack: "shop".to_owned(), ..Scope::default() };
        scope.ids.insert("Orders".into(), Referent::Function("orders".into()));
        scope.ids.insert("Events".into(), Referent::Topic("events".into()));
        scope.ids.insert("Jobs".into(), Referent::Queue("jobs".into()));
        scope.ids.insert("Stage".into(), Referent::Parameter(json!("dev")));
        scope.ids.insert("Role".into(), Referent::Unmapped("AWS::IAM::Role".into()));
        scope
    }

    #[test]
    fn short_forms_become_long_forms_and_resolve() {
        let template = from_yaml(
            "a: !Ref Orders\nb: !GetAtt Orders.Arn\nc: !Sub '${Orders}-${Stage}-${AWS::Region}-${!Keep}'\n\
             d: !Sub ['${X}/${Jobs.QueueName}', {X: !Ref Events}]\ne: !Join ['-', [a, !Ref Stage, 3]]\n\
             f: [1, !Ref AWS::NoValue]\ng: {Fn::GetAtt: [Jobs, Arn]}\n",
        )
        .unwrap();
        assert_eq!(template["a"], json!({"Ref": "Orders"}));
        assert_eq!(template["b"], json!({"Fn::GetAtt": ["Orders", "Arn"]}));
        let resolved = scope().resolve(&template).unwrap();
        assert_eq!(
            resolved,
            json!({
                "a": "orders",
                "b": "arn:aws:lambda:us-east-1:000000000000:function:orders",
                "c": "orders-dev-us-east-1-${Keep}",
                "d": "arn:aws:sns:us-east-1:000000000000:events/jobs",
                "e": "a-dev-3",
                "f": [1],
                "g": "arn:aws:sqs:us-east-1:000000000000:jobs",
            })
        );
        assert_eq!(last_name(resolved["g"].as_str().unwrap()), "jobs");
        assert_eq!(last_name("https://sqs.us-east-1.amazonaws.com/000000000000/jobs"), "jobs");
    }

    #[test]
    fn what_cannot_be_resolved_is_named() {
        let scope = scope();
        for (yaml, expected) in [
            ("!GetAtt MissingRole.Arn", "the template has no resource \"MissingRole\""),
            ("!Ref Role", "names a AWS::IAM::Role"),
            ("!ImportValue shared", "Fn::ImportValue cannot be resolved"),
            ("!GetAtt Orders.Version", "Fn::GetAtt Orders.Version cannot be resolved"),
            ("!Sub '${Nope}'", "no resource or parameter \"Nope\""),
        ] {
            let error = scope.resolve(&from_yaml(yaml).unwrap()).unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
        assert!(from_yaml("a: [").unwrap_err().contains("not valid YAML"));
    }
}
