//! Schedule expressions: when a `schedule` trigger fires.
//!
//! Two forms, as EventBridge users write them: `rate(5 minutes)` (every period,
//! aligned to the Unix epoch so that every node and every restart agrees on the
//! ticks), and cron expressions (five fields, or six with seconds first), evaluated
//! in the trigger's time zone by the `croner` crate, daylight-saving changes included.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// A validated schedule expression; serialized as the text the user wrote.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScheduleExpression {
    text: String,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Rate(Duration),
    Cron(Box<croner::Cron>),
}

/// Why a schedule expression or time zone was refused, with how to write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSchedule(pub String);

impl ScheduleExpression {
    pub fn parse(text: &str) -> Result<Self, InvalidSchedule> {
        let trimmed = text.trim();
        let kind = if let Some(inner) = trimmed.strip_prefix("rate(").and_then(|rest| rest.strip_suffix(')')) {
            Kind::Rate(parse_rate(inner)?)
        } else if trimmed.starts_with("cron(") {
            return Err(InvalidSchedule(format!(
                "{text:?}: write the cron fields without cron( ), like \"0 12 * * MON-FRI\" \
                 (minute hour day-of-month month day-of-week, or six fields with seconds first)"
            )));
        } else {
            let cron = croner::Cron::from_str(trimmed).map_err(|error| {
                InvalidSchedule(format!(
                    "{text:?} is not a cron expression ({error}); write five fields like \"*/15 * * * *\", \
                         six with seconds first, or rate(5 minutes)"
                ))
            })?;
            Kind::Cron(Box::new(cron))
        };
        Ok(Self { text: trimmed.to_owned(), kind })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first tick strictly after `after_ms` (ms since the epoch) in `zone`, or
    /// `None` when the expression never fires again.
    pub fn next_after(&self, after_ms: i64, zone: &Timezone) -> Option<i64> {
        match &self.kind {
            Kind::Rate(period) => {
                let period = period.as_millis() as i64;
                Some((after_ms.div_euclid(period) + 1) * period)
            }
            Kind::Cron(cron) => {
                // Whole seconds: cron ticks fall on them, whatever the moment asked from.
                let after_ms = after_ms.div_euclid(1000) * 1000;
                let after = Utc.timestamp_millis_opt(after_ms).single()?.with_timezone(&zone.0);
                let next = cron.find_next_occurrence(&after, false).ok()?;
                Some(next.timestamp_millis())
            }
        }
    }
}

fn parse_rate(inner: &str) -> Result<Duration, InvalidSchedule> {
    let fix =
        "write rate(N UNIT) with a whole N ≥ 1 and a unit of seconds, minutes, hours or days, like rate(5 minutes)";
    let mut words = inner.split_whitespace();
    let (Some(count), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(InvalidSchedule(format!("rate({inner}) is not a rate; {fix}")));
    };
    let count: u64 = match count.parse() {
        Ok(count) if count >= 1 => count,
        _ => return Err(InvalidSchedule(format!("rate({inner}): {count:?} is not a whole number ≥ 1; {fix}"))),
    };
    let seconds = match unit {
        "second" | "seconds" => 1,
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        other => return Err(InvalidSchedule(format!("rate({inner}): unknown unit {other:?}; {fix}"))),
    };
    if count > 366 * 86_400 / seconds {
        return Err(InvalidSchedule(format!("rate({inner}) is longer than a year; {fix}")));
    }
    Ok(Duration::from_secs(count * seconds))
}

impl PartialEq for ScheduleExpression {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for ScheduleExpression {}

impl fmt::Debug for ScheduleExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl fmt::Display for ScheduleExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for ScheduleExpression {
    type Error = InvalidSchedule;
    fn try_from(value: String) -> Result<Self, InvalidSchedule> {
        Self::parse(&value)
    }
}

impl From<ScheduleExpression> for String {
    fn from(expression: ScheduleExpression) -> String {
        expression.text
    }
}

/// An IANA time zone (`Europe/Paris`, `UTC`), serialized by name.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timezone(chrono_tz::Tz);

impl Timezone {
    pub const UTC: Timezone = Timezone(chrono_tz::Tz::UTC);

    pub fn parse(name: &str) -> Result<Self, InvalidSchedule> {
        chrono_tz::Tz::from_str(name).map(Timezone).map_err(|_| {
            InvalidSchedule(format!(
                "{name:?} is not a time zone; use an IANA name like \"UTC\", \"Europe/Paris\" or \"America/New_York\""
            ))
        })
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl fmt::Debug for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<String> for Timezone {
    type Error = InvalidSchedule;
    fn try_from(value: String) -> Result<Self, InvalidSchedule> {
        Self::parse(&value)
    }
}

impl From<Timezone> for String {
    fn from(zone: Timezone) -> String {
        zone.name().to_owned()
    }
}

/// What a schedule does about ticks that passed while no server was running (or
/// while it could not keep up), decided when it next looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Missed ticks are dropped; the schedule goes on from the next one.
    Skip,
    /// The most recent missed tick fires once (the default; as anacron and
    /// systemd's `Persistent=` timers do): a nightly job missed during an outage runs
    /// once when the server is back, not once per missed night.
    #[default]
    Latest,
    /// Every missed tick fires, oldest first, each as its own event.
    All,
}

impl CatchUp {
    pub const ALL: [CatchUp; 3] = [CatchUp::Skip, CatchUp::Latest, CatchUp::All];

    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Skip => "skip",
            CatchUp::Latest => "latest",
            CatchUp::All => "all",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis()
    }

    #[test]
    fn rates_tick_on_multiples_of_their_period() {
        let rate = ScheduleExpression::parse("rate(5 minutes)").unwrap();
        assert_eq!(rate.next_after(ms("2026-11-27T10:02:13Z"), &Timezone::UTC), Some(ms("2026-11-27T10:05:00Z")));
        assert_eq!(rate.next_after(ms("2026-11-27T10:05:00Z"), &Timezone::UTC), Some(ms("2026-11-27T10:10:00Z")));
        assert!(ScheduleExpression::parse("rate(1 second)").is_ok());
        for bad in ["rate(0 minutes)", "rate(5)", "rate(five minutes)", "rate(5 weeks)", "rate(500 days)"] {
            assert!(ScheduleExpression::parse(bad).unwrap_err().0.contains("rate(N UNIT)"), "{bad}");
        }
    }

    #[test]
    fn cron_expressions_follow_the_time_zone() {
        let noon = ScheduleExpression::parse("0 12 * * *").unwrap();
        let paris = Timezone::parse("Europe/Paris").unwrap();
        // Noon in Paris is 11:00 UTC in winter.
        assert_eq!(noon.next_after(ms("2026-11-27T10:00:00Z"), &paris), Some(ms("2026-11-27T11:00:00Z")));
        assert_eq!(noon.next_after(ms("2026-11-27T10:00:00Z"), &Timezone::UTC), Some(ms("2026-11-27T12:00:00Z")));
        assert_eq!(noon.next_after(ms("2026-11-27T10:00:00.437Z"), &Timezone::UTC), Some(ms("2026-11-27T12:00:00Z")));
        let seconds = ScheduleExpression::parse("*/2 * * * * *").unwrap();
        assert_eq!(seconds.next_after(ms("2026-11-27T10:00:00Z"), &Timezone::UTC), Some(ms("2026-11-27T10:00:02Z")));
        assert!(ScheduleExpression::parse("61 * * * *").unwrap_err().0.contains("is not a cron expression"));
        assert!(ScheduleExpression::parse("cron(0 12 * * ? *)").unwrap_err().0.contains("without cron( )"));
        assert!(Timezone::parse("Mars/Olympus").unwrap_err().0.contains("IANA"));
    }

    #[test]
    fn expressions_round_trip_through_json() {
        let expression = ScheduleExpression::parse("rate(1 hour)").unwrap();
        let json = serde_json::to_string(&expression).unwrap();
        assert_eq!(json, "\"rate(1 hour)\"");
        assert_eq!(serde_json::from_str::<ScheduleExpression>(&json).unwrap(), expression);
        let zone: Timezone = serde_json::from_str("\"Asia/Tokyo\"").unwrap();
        assert_eq!(zone.name(), "Asia/Tokyo");
    }
}
