//! A function's `triggers` and destinations: routes, webhooks, topics, schedules,
//! queues and mail, and the route conflicts among all functions.

use std::time::Duration;

use toml::{Table, Value};

use crate::manifest::parse::toml_values::{did_you_mean, join, sorted};
use crate::manifest::parse::{
    Checker, DESTINATION_KEYS, FUTURE_TRIGGER_KINDS, ParsedEnv, RouteClaim, TRIGGER_KINDS, TRIGGER_OPTIONS,
};
use crate::manifest::{
    Destination, EmailTrigger, HttpAuth, HttpTrigger, QueueTrigger, ScheduleTrigger, TopicTrigger, Trigger,
    WebhookTrigger,
};
use crate::route::{overlap, parse_http};
use crate::{
    CatchUp, FunctionName, MethodSet, QueueName, RoutePattern, ScheduleExpression, SecretName, Timezone, TopicName,
};

impl Checker<'_> {
    pub(super) fn triggers(&mut self, path: &str, function: &str, value: &Value) -> Option<Vec<Trigger>> {
        let array = self.array(path, value, "triggers = [{ http = \"GET /hello\" }]")?;
        let mut triggers = Vec::new();
        let mut all_valid = true;
        for (index, value) in array.iter().enumerate() {
            let trigger_path = format!("{path}[{index}]");
            let trigger = self
                .table(&trigger_path, value, "{ http = \"GET /hello\" }")
                .and_then(|table| self.trigger(&trigger_path, table));
            match trigger {
                Some(trigger) => {
                    let claim = match &trigger {
                        Trigger::Http(http) => Some(http.clone()),
                        Trigger::Webhook(webhook) => Some(webhook.as_route()),
                        Trigger::Topic(_) | Trigger::Schedule(_) | Trigger::Queue(_) | Trigger::Email(_) => None,
                    };
                    if let Some(claim) = claim {
                        self.claims.push(RouteClaim {
                            function: function.to_owned(),
                            path: trigger_path,
                            trigger: claim,
                        });
                    }
                    triggers.push(trigger);
                }
                None => all_valid = false,
            }
        }
        all_valid.then_some(triggers)
    }

    pub(super) fn trigger(&mut self, path: &str, table: &Table) -> Option<Trigger> {
        let supported = "supported: http, webhook, topic, schedule, queue, email";
        let known: Vec<&str> =
            TRIGGER_KINDS.iter().copied().chain(TRIGGER_OPTIONS.iter().map(|(option, _)| *option)).collect();
        // Each unknown key is reported as a would-be kind, so a missing kind is reported
        // only when there is no unknown key at all.
        let mut unknown_key = false;
        for (key, _) in sorted(table) {
            if known.contains(&key.as_str()) {
                continue;
            }
            unknown_key = true;
            let key_path = join(path, key);
            if FUTURE_TRIGGER_KINDS.contains(&key.as_str()) {
                self.problem(&key_path, format!("`{key}` triggers are not supported yet; {supported}"));
            } else if let Some(suggestion) = did_you_mean(key, &known) {
                self.problem(&key_path, format!("unknown key {key:?}; did you mean {suggestion:?}?"));
            } else {
                self.problem(
                    &key_path,
                    format!("unknown trigger kind {key:?}; {supported} (like {{ http = \"GET /hello\" }})"),
                );
            }
        }
        let kinds: Vec<&str> = TRIGGER_KINDS.iter().copied().filter(|kind| table.contains_key(*kind)).collect();
        let kind = match kinds.as_slice() {
            [kind] => *kind,
            [] => {
                if !unknown_key {
                    self.problem(
                        path,
                        format!("the trigger has no kind; write it like {{ http = \"GET /hello\" }} ({supported})"),
                    );
                }
                return None;
            }
            [first, second, ..] => {
                self.problem(
                    path,
                    format!("a trigger has one kind, this one has {first} and {second}; make them two triggers"),
                );
                return None;
            }
        };
        let mut misplaced = false;
        for (option, owners) in TRIGGER_OPTIONS {
            if !owners.contains(&kind) && table.contains_key(*option) {
                let owners = owners.join(", ");
                self.problem(&join(path, option), format!("{option} is for {owners} triggers, not {kind}; remove it"));
                misplaced = true;
            }
        }
        let kind_path = join(path, kind);
        let value = &table[kind];
        let trigger = match kind {
            "http" => {
                let auth = self.optional(table, path, "auth", Self::auth);
                let alias = self.trigger_alias(table, path);
                let payload_format = self.optional(table, path, "payload_format", Self::payload_format);
                let (methods, route) = self.route(&kind_path, value, "http = \"GET /hello\"")?;
                Trigger::Http(HttpTrigger {
                    methods,
                    route,
                    auth: auth?.unwrap_or_default(),
                    alias: alias?,
                    payload_format: payload_format?.unwrap_or_default(),
                })
            }
            "webhook" => {
                let secret_env = self.optional(table, path, "secret_env", |checker, path, value| {
                    let fix = "name one of the function's env variables, like secret_env = \"HOOK_SECRET\"";
                    checker.string(path, value, fix).map(str::to_owned)
                });
                let secret = self.optional(table, path, "secret", |checker, path, value| {
                    let text = checker.string(path, value, "name a stored secret, like secret = \"ci-hook\"")?;
                    text.parse::<SecretName>().map_err(|invalid| checker.problem(path, invalid.to_string())).ok()
                });
                let (methods, route) = self.route(&kind_path, value, "webhook = \"POST /hooks/ci\"")?;
                let (secret_env, secret) = (secret_env?, secret?);
                if secret_env.is_some() && secret.is_some() {
                    self.problem(
                        &join(path, "secret"),
                        "a webhook takes its secret from one place; keep either secret or secret_env",
                    );
                    return None;
                }
                Trigger::Webhook(WebhookTrigger { methods, route, secret_env, secret })
            }
            "topic" => {
                let alias = self.trigger_alias(table, path);
                let text = self.string(&kind_path, value, "write it in quotes, like topic = \"user.signed_up\"")?;
                Trigger::Topic(TopicTrigger { topic: self.topic_name(&kind_path, text)?, alias: alias? })
            }
            "queue" => self.queue_trigger(path, &kind_path, value, table)?,
            "email" => {
                let text = self.string(&kind_path, value, "write it in quotes, like email = \"signup@example.com\"")?;
                Trigger::Email(EmailTrigger { address: self.email_address(&kind_path, text)? })
            }
            _ => {
                let schedule = self
                    .string(&kind_path, value, "write it in quotes, like schedule = \"rate(5 minutes)\"")
                    .and_then(|text| self.schedule_part(&kind_path, ScheduleExpression::parse(text)));
                let timezone = self.optional(table, path, "timezone", |checker, path, value| {
                    let text = checker.string(path, value, "write it in quotes, like timezone = \"Europe/Paris\"")?;
                    checker.schedule_part(path, Timezone::parse(text))
                });
                let catch_up = self.optional(table, path, "catch_up", Self::catch_up);
                Trigger::Schedule(ScheduleTrigger {
                    schedule: schedule?,
                    timezone: timezone?.unwrap_or(Timezone::UTC),
                    catch_up: catch_up?.unwrap_or_default(),
                })
            }
        };
        (!misplaced).then_some(trigger)
    }

    pub(super) fn queue_trigger(
        &mut self,
        path: &str,
        kind_path: &str,
        value: &Value,
        table: &Table,
    ) -> Option<Trigger> {
        let queue_name = |checker: &mut Self, path: &str, value: &Value| {
            let text = checker.string(path, value, "write it in quotes, like queue = \"jobs\"")?;
            QueueName::new(text).map_err(|invalid| checker.problem(path, invalid.to_string())).ok()
        };
        let queue = queue_name(self, kind_path, value);
        let batch_size = self.optional(table, path, "batch_size", |checker, path, value| {
            checker.whole_number(path, value, "batch_size", 1, 10_000)
        });
        let batch_window = self.optional(table, path, "batch_window", |checker, path, value| {
            checker.duration(path, value, "batch_window", Duration::ZERO, Duration::from_secs(300))
        });
        let visibility_timeout = self.optional(table, path, "visibility_timeout", |checker, path, value| {
            checker.duration(path, value, "visibility_timeout", Duration::from_secs(1), Duration::from_secs(12 * 3600))
        });
        let max_receives = self.optional(table, path, "max_receives", |checker, path, value| {
            checker.whole_number(path, value, "max_receives", 1, 1_000)
        });
        let dead_letter_queue = self.optional(table, path, "dead_letter_queue", queue_name);
        let alias = self.trigger_alias(table, path);
        let queue = queue?;
        let dead_letter_queue = match dead_letter_queue? {
            Some(dead) if dead == queue => {
                self.problem(
                    &join(path, "dead_letter_queue"),
                    format!("{dead} is the queue itself; name another queue for messages that keep failing"),
                );
                return None;
            }
            Some(dead) => dead,
            None => match QueueName::new(format!("{queue}-dlq")) {
                Ok(dead) => dead,
                Err(_) => {
                    self.problem(
                        &join(path, "dead_letter_queue"),
                        format!("{queue}-dlq (the default) is too long a name; name the dead-letter queue yourself"),
                    );
                    return None;
                }
            },
        };
        Some(Trigger::Queue(QueueTrigger {
            queue,
            batch_size: batch_size?.unwrap_or(10),
            batch_window: batch_window?.unwrap_or(Duration::ZERO),
            visibility_timeout: visibility_timeout?.unwrap_or(Duration::from_secs(30)),
            max_receives: max_receives?.unwrap_or(5),
            dead_letter_queue,
            alias: alias?,
        }))
    }

    /// A trigger's `alias`: the alias of the function whose version each invocation runs.
    fn trigger_alias(&mut self, table: &Table, path: &str) -> Option<Option<crate::AliasName>> {
        self.optional(table, path, "alias", |checker, path, value| {
            let text = checker.string(path, value, "name an alias of the function, like alias = \"live\"")?;
            crate::AliasName::new(text).map_err(|invalid| checker.problem(path, invalid.to_string())).ok()
        })
    }

    /// `local@domain` or `*@domain`, lowercased.
    pub(super) fn email_address(&mut self, path: &str, text: &str) -> Option<String> {
        let address = text.trim().to_ascii_lowercase();
        let valid = address.split_once('@').is_some_and(|(local, domain)| {
            let local_ok = local == "*"
                || (!local.is_empty() && local.chars().all(|c| c.is_ascii_graphic() && !"<>()[],;:\\\"@*".contains(c)));
            let domain_ok = !domain.is_empty()
                && domain
                    .split('.')
                    .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            local_ok && domain_ok
        });
        if !valid {
            self.problem(
                path,
                format!(
                    "{text:?} is not an email address; write one like \"signup@example.com\", or \"*@example.com\" \
                     for every address of a domain"
                ),
            );
            return None;
        }
        Some(address)
    }

    /// A whole number within `min..=max`.
    pub(super) fn whole_number(&mut self, path: &str, value: &Value, key: &str, min: i64, max: i64) -> Option<u32> {
        match value {
            Value::Integer(n) if (min..=max).contains(n) => Some(*n as u32),
            Value::Integer(n) => {
                self.problem(path, format!("{n} is outside {min}–{max}; write {key} = {min} up to {max}"));
                None
            }
            other => {
                self.expected(path, "a whole number", other, &format!("write it like {key} = {min}"));
                None
            }
        }
    }

    /// `"METHODS /route"` of an `http` or `webhook` trigger.
    pub(super) fn route(&mut self, path: &str, value: &Value, example: &str) -> Option<(MethodSet, RoutePattern)> {
        let text = self.string(path, value, &format!("write it in quotes, like {example}"))?;
        match parse_http(text) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.problem(path, message);
                None
            }
        }
    }

    pub(super) fn topic_name(&mut self, path: &str, text: &str) -> Option<TopicName> {
        match TopicName::new(text) {
            Ok(topic) => Some(topic),
            Err(invalid) => {
                self.problem(path, invalid.to_string());
                None
            }
        }
    }

    pub(super) fn schedule_part<T>(&mut self, path: &str, parsed: Result<T, crate::InvalidSchedule>) -> Option<T> {
        parsed.map_err(|invalid| self.problem(path, invalid.0)).ok()
    }

    pub(super) fn catch_up(&mut self, path: &str, value: &Value) -> Option<CatchUp> {
        let text = self.string(path, value, "write it in quotes, like catch_up = \"skip\"")?;
        let found = CatchUp::ALL.into_iter().find(|policy| policy.as_str() == text);
        if found.is_none() {
            self.problem(
                path,
                format!(
                    "unknown catch_up {text:?}; use \"latest\" (a missed tick fires once, the default), \"skip\" \
                     (missed ticks are dropped) or \"all\" (every missed tick fires)"
                ),
            );
        }
        found
    }

    /// `{ function = "NAME" }` or `{ topic = "TOPIC" }`.
    pub(super) fn destination(&mut self, path: &str, value: &Value) -> Option<Destination> {
        let example = "{ topic = \"signup.dead\" } or { function = \"audit\" }";
        let table = self.table(path, value, example)?;
        self.unknown_keys(path, table, DESTINATION_KEYS, &[]);
        match (table.get("function"), table.get("topic")) {
            (Some(function), None) => {
                let function_path = join(path, "function");
                let text = self.string(&function_path, function, "write it in quotes, like function = \"audit\"")?;
                match FunctionName::new(text) {
                    Ok(name) => Some(Destination::Function(name)),
                    Err(invalid) => {
                        self.problem(&function_path, invalid.to_string());
                        None
                    }
                }
            }
            (None, Some(topic)) => {
                let topic_path = join(path, "topic");
                let text = self.string(&topic_path, topic, "write it in quotes, like topic = \"signup.dead\"")?;
                self.topic_name(&topic_path, text).map(Destination::Topic)
            }
            (Some(_), Some(_)) => {
                self.problem(path, format!("a destination is a function or a topic, not both; write {example}"));
                None
            }
            (None, None) => {
                if table.keys().all(|key| DESTINATION_KEYS.contains(&key.as_str())) {
                    self.problem(path, format!("the destination names nothing; write {example}"));
                }
                None
            }
        }
    }

    /// A webhook's `secret_env` must name one of the function's env variables.
    pub(super) fn webhook_secrets(&mut self, path: &str, triggers: &[Trigger], env: Option<&ParsedEnv>) {
        for (index, trigger) in triggers.iter().enumerate() {
            if let Trigger::Webhook(WebhookTrigger { secret_env: Some(name), .. }) = trigger
                && env.is_none_or(|env| {
                    !env.secrets.contains_key(name) && env.plain.get(name).is_none_or(|secret| secret.is_empty())
                })
            {
                self.problem(
                    &format!("{path}.triggers[{index}].secret_env"),
                    format!(
                        "{name} is not set in the function's env; add {name} = \"...\" under env, \
                         or remove secret_env to accept unsigned requests"
                    ),
                );
            }
        }
    }

    /// `payload_format = "1.0"` or `"2.0"`: the API Gateway events a Lambda handler gets.
    fn payload_format(&mut self, path: &str, value: &Value) -> Option<crate::PayloadFormat> {
        let text = self.string(path, value, "write it in quotes, like payload_format = \"1.0\"")?;
        match text {
            "2.0" => Some(crate::PayloadFormat::HttpApi),
            "1.0" => Some(crate::PayloadFormat::RestApi),
            _ => {
                self.problem(
                    path,
                    format!(
                        "unknown payload_format {text:?}; use \"2.0\" (API Gateway HTTP API events, the default) \
                         or \"1.0\" (REST API events, as SAM's Api events give)"
                    ),
                );
                None
            }
        }
    }

    pub(super) fn auth(&mut self, path: &str, value: &Value) -> Option<HttpAuth> {
        let text = self.string(path, value, "write it in quotes, like auth = \"key\"")?;
        match text {
            "public" => Some(HttpAuth::Public),
            "key" => Some(HttpAuth::Key),
            _ => {
                self.problem(
                    path,
                    format!(
                        "unknown auth {text:?}; use \"public\" (anyone may call, the default) or \"key\" \
                         (callers need an Updraft API key)"
                    ),
                );
                None
            }
        }
    }

    /// Reports each HTTP trigger that answers some request an earlier trigger already
    /// answers, naming the first such earlier trigger.
    pub(super) fn route_conflicts(&mut self) {
        let claims = std::mem::take(&mut self.claims);
        for (index, claim) in claims.iter().enumerate() {
            let trigger = &claim.trigger;
            let shape = trigger.route.shape_key();
            let earlier = claims[..index].iter().find(|earlier| {
                earlier.trigger.methods.overlaps(&trigger.methods) && earlier.trigger.route.shape_key() == shape
            });
            if let Some(earlier) = earlier {
                let methods = overlap(&earlier.trigger.methods, &trigger.methods);
                self.problem(
                    &claim.path,
                    format!(
                        "{methods} {} is also claimed by function {:?} ({}); give one of them another \
                         route or method",
                        trigger.route, earlier.function, earlier.path
                    ),
                );
            }
        }
    }
}
