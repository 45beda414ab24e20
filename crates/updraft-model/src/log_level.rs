//! How severe a log line is, so that `updraft logs --level error` finds the errors.
//!
//! A line's level is the one it declares: a JSON line's `level` (or `levelname`,
//! `severity`, `log.level`), or a level word among its first words, as the common
//! formats write it (`[ERROR] ...` from Lambda's Python runtime, `WARNING:root:...`
//! from Python's logging, `2026-12-06T10:00:00Z ERROR ...` from tracing or a
//! timestamped Node.js line). A line that declares none is INFO on stdout and ERROR on
//! stderr, as Cloud Run and Cloud Logging take unstructured output.

use std::fmt;
use std::str::FromStr;

/// A log level; the number is OpenTelemetry's `SeverityNumber` at the start of the
/// level's range, so levels compare and store as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace = 1,
    Debug = 5,
    Info = 9,
    Warn = 13,
    Error = 17,
    Fatal = 21,
}

/// How many leading words are looked through for a level word.
const LEADING_WORDS: usize = 4;

impl LogLevel {
    pub const ALL: [LogLevel; 6] =
        [LogLevel::Trace, LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error, LogLevel::Fatal];

    /// The level of a line a function wrote to `stream` (`stdout` or `stderr`).
    pub fn of_output(stream: &str, line: &str) -> LogLevel {
        Self::declared_in(line).unwrap_or(if stream == "stderr" { LogLevel::Error } else { LogLevel::Info })
    }

    /// The level `line` declares, if any.
    pub fn declared_in(line: &str) -> Option<LogLevel> {
        let line = line.trim_start();
        if line.starts_with('{')
            && let Some(level) = Self::of_json(line)
        {
            return Some(level);
        }
        // The first word in any case (`error: ...`); later ones only in capitals, so a
        // sentence that mentions an error is not one.
        line.split(|c: char| c.is_whitespace() || c == '|')
            .filter(|word| !word.is_empty())
            .take(LEADING_WORDS)
            .enumerate()
            .find_map(|(position, word)| {
                let word = word.trim_matches(|c: char| matches!(c, '[' | ']' | '(' | ')' | '<' | '>'));
                // `WARNING:root:message`: the level ends at the first colon.
                let word = word.split(':').next().unwrap_or_default();
                if position > 0 && word.chars().any(|c| c.is_ascii_lowercase()) {
                    return None;
                }
                word.parse().ok()
            })
    }

    fn of_json(line: &str) -> Option<LogLevel> {
        let serde_json::Value::Object(fields) = serde_json::from_str(line).ok()? else {
            return None;
        };
        ["level", "levelname", "severity", "log.level", "lvl"].iter().filter_map(|key| fields.get(*key)).find_map(
            |value| match value {
                serde_json::Value::String(name) => name.parse().ok(),
                // pino's numbers: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal.
                serde_json::Value::Number(number) => match number.as_u64()? {
                    0..=19 => Some(LogLevel::Trace),
                    20..=29 => Some(LogLevel::Debug),
                    30..=39 => Some(LogLevel::Info),
                    40..=49 => Some(LogLevel::Warn),
                    50..=59 => Some(LogLevel::Error),
                    _ => Some(LogLevel::Fatal),
                },
                _ => None,
            },
        )
    }

    /// The severity number, as stored.
    pub fn number(self) -> i64 {
        self as i64
    }

    /// The level of a stored severity number (any number in a level's range).
    pub fn from_number(number: i64) -> LogLevel {
        match number {
            ..=4 => LogLevel::Trace,
            5..=8 => LogLevel::Debug,
            9..=12 => LogLevel::Info,
            13..=16 => LogLevel::Warn,
            17..=20 => LogLevel::Error,
            _ => LogLevel::Fatal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Fatal => "fatal",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not a level name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?}; use trace, debug, info, warn, error or fatal")]
pub struct UnknownLogLevel(pub String);

impl FromStr for LogLevel {
    type Err = UnknownLogLevel;

    /// A level's name in any case, with the common aliases (`warning`, `err`,
    /// `critical`, `panic`, ...).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let level = match name.to_ascii_lowercase().as_str() {
            "trace" | "verbose" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" | "information" | "notice" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warn,
            "error" | "err" => LogLevel::Error,
            "fatal" | "critical" | "crit" | "panic" | "emergency" | "alert" => LogLevel::Fatal,
            _ => return Err(UnknownLogLevel(name.to_owned())),
        };
        Ok(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_formats_declare_their_level() {
        let cases = [
            ("[ERROR]\t2026-12-06T10:00:00.000Z\tabc-123\tboom", LogLevel::Error),
            ("WARNING:root:disk nearly full", LogLevel::Warn),
            ("2026-12-06T10:00:00.000000Z  INFO app::handler: served", LogLevel::Info),
            ("2026-12-06T10:00:00.000Z\tabc-123\tERROR\tInvoke Error", LogLevel::Error),
            ("debug: cache miss", LogLevel::Debug),
            (r#"{"level":"warn","msg":"slow"}"#, LogLevel::Warn),
            (r#"{"levelname": "CRITICAL", "message": "down"}"#, LogLevel::Fatal),
            (r#"{"severity":"ERROR","message":"x"}"#, LogLevel::Error),
            (r#"{"level":50,"msg":"pino error"}"#, LogLevel::Error),
            ("<WARN> retrying", LogLevel::Warn),
        ];
        for (line, level) in cases {
            assert_eq!(LogLevel::declared_in(line), Some(level), "{line}");
        }
    }

    #[test]
    fn a_sentence_mentioning_an_error_declares_nothing() {
        for line in [
            "the request had an error in it",
            "retrying after error",
            r#"{"msg":"no level here"}"#,
            "{not json",
            "",
            "   ",
            "errors: 0",
        ] {
            assert_eq!(LogLevel::declared_in(line), None, "{line:?}");
        }
    }

    #[test]
    fn undeclared_lines_take_their_stream_s_level() {
        assert_eq!(LogLevel::of_output("stdout", "hello"), LogLevel::Info);
        assert_eq!(LogLevel::of_output("stderr", "thread 'main' panicked at src/lib.rs:1:1"), LogLevel::Error);
        assert_eq!(LogLevel::of_output("stderr", "INFO: listening"), LogLevel::Info);
    }

    #[test]
    fn levels_order_and_round_trip_through_their_numbers() {
        assert!(LogLevel::ALL.windows(2).all(|pair| pair[0] < pair[1]));
        for level in LogLevel::ALL {
            assert_eq!(LogLevel::from_number(level.number()), level);
            assert_eq!(level.as_str().parse::<LogLevel>(), Ok(level));
        }
        assert_eq!(LogLevel::from_number(19), LogLevel::Error);
        assert_eq!("loud".parse::<LogLevel>(), Err(UnknownLogLevel("loud".to_owned())));
    }
}
