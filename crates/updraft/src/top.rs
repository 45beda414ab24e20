//! `updraft top`: per-function rates, errors, p99 and concurrency, live in the terminal.
//!
//! It reads the server's own Prometheus metrics (`GET /metrics`) every interval and
//! shows what changed between two reads, so it needs nothing on the server beyond what
//! a Prometheus scrape already gets, and costs the server one scrape per refresh.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::client::Client;
use crate::output::Output;

/// One function's counters at one read.
#[derive(Debug, Clone, Default, PartialEq)]
struct Counters {
    /// Invocations by status (`success`, `error`, `timeout`, `throttled`).
    by_status: BTreeMap<String, f64>,
    cold_starts: f64,
    /// The duration histogram: (upper bound in seconds, cumulative count).
    buckets: Vec<(f64, f64)>,
    concurrent: f64,
}

/// One function's row: what happened between two reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Row {
    function: String,
    requests_per_second: f64,
    errors_per_second: f64,
    throttles_per_second: f64,
    /// The upper bound of the histogram bucket holding the 99th percentile.
    p99_ms: Option<f64>,
    cold_starts: f64,
    concurrent: f64,
}

pub async fn run(client: &Client, interval: Duration, once: bool, output: Output) -> anyhow::Result<()> {
    if interval < Duration::from_millis(100) {
        anyhow::bail!("--interval must be at least 100ms");
    }
    let live = !once && output == Output::Human && std::io::stdout().is_terminal();
    let mut before = read(client).await?;
    loop {
        tokio::time::sleep(interval).await;
        let after = read(client).await?;
        let rows = rows(&before, &after, interval);
        let mut stdout = std::io::stdout().lock();
        match output {
            Output::Json => {
                let frame = serde_json::json!({ "at_ms": updraft_model::now_millis(), "functions": rows });
                writeln!(stdout, "{frame}")?;
            }
            Output::Human => {
                if live {
                    // Clear the screen and go home, then the frame.
                    write!(stdout, "\x1b[2J\x1b[H")?;
                    writeln!(
                        stdout,
                        "updraft top: {} every {} (ctrl-c to quit)\n",
                        client.endpoint(),
                        updraft_model::format_duration(interval)
                    )?;
                }
                write!(stdout, "{}", table(&rows))?;
            }
        }
        stdout.flush()?;
        if once {
            return Ok(());
        }
        before = after;
    }
}

async fn read(client: &Client) -> anyhow::Result<BTreeMap<String, Counters>> {
    let response = client.send(client.request(reqwest::Method::GET, "/metrics")).await?;
    let text = response.text().await.context("reading the server's metrics")?;
    Ok(counters(&text))
}

/// Each function's counters in a Prometheus text exposition of Updraft's metrics.
fn counters(text: &str) -> BTreeMap<String, Counters> {
    let mut functions: BTreeMap<String, Counters> = BTreeMap::new();
    for (name, labels, value) in text.lines().filter_map(sample) {
        let Some(function) = labels.get("function") else { continue };
        let counters = functions.entry(function.clone()).or_default();
        match name {
            "updraft_invocations_total" => {
                if let Some(status) = labels.get("status") {
                    counters.by_status.insert(status.clone(), value);
                }
            }
            "updraft_cold_starts_total" => counters.cold_starts = value,
            "updraft_concurrent_executions" => counters.concurrent = value,
            "updraft_invocation_duration_seconds_bucket" => {
                let bound =
                    labels.get("le").and_then(|le| if le == "+Inf" { Some(f64::INFINITY) } else { le.parse().ok() });
                if let Some(bound) = bound {
                    counters.buckets.push((bound, value));
                }
            }
            _ => {}
        }
    }
    for counters in functions.values_mut() {
        counters.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    functions
}

/// One sample line: its name, labels and value (`None` for comments and anything else).
fn sample(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, labels)) = series.split_once('{') else {
        return Some((series, BTreeMap::new(), value));
    };
    let labels = labels.strip_suffix('}')?;
    Some((name, parse_labels(labels)?, value))
}

/// `a="x",b="y \"quoted\""` as a map.
fn parse_labels(mut text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    while !text.is_empty() {
        let (key, rest) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (at, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break at,
                c => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        text = rest[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

fn rows(before: &BTreeMap<String, Counters>, after: &BTreeMap<String, Counters>, interval: Duration) -> Vec<Row> {
    let seconds = interval.as_secs_f64();
    let empty = Counters::default();
    let mut rows: Vec<Row> = after
        .iter()
        .map(|(function, now)| {
            let then = before.get(function).unwrap_or(&empty);
            let delta = |status: &str| {
                (now.by_status.get(status).copied().unwrap_or(0.0) - then.by_status.get(status).copied().unwrap_or(0.0))
                    .max(0.0)
            };
            let ran = delta("success") + delta("error") + delta("timeout");
            Row {
                function: function.clone(),
                requests_per_second: (ran + delta("throttled")) / seconds,
                errors_per_second: (delta("error") + delta("timeout")) / seconds,
                throttles_per_second: delta("throttled") / seconds,
                p99_ms: percentile(&then.buckets, &now.buckets, 0.99).map(|bound| bound * 1000.0),
                cold_starts: (now.cold_starts - then.cold_starts).max(0.0),
                concurrent: now.concurrent,
            }
        })
        .collect();
    rows.sort_by(|a, b| b.requests_per_second.total_cmp(&a.requests_per_second).then(a.function.cmp(&b.function)));
    rows
}

/// The upper bound of the bucket holding quantile `q` of what was observed between two
/// reads of a cumulative histogram; `None` when nothing was.
fn percentile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let earlier = |bound: f64| before.iter().find(|(b, _)| *b == bound).map_or(0.0, |(_, count)| *count);
    let window: Vec<(f64, f64)> =
        after.iter().map(|(bound, count)| (*bound, (count - earlier(*bound)).max(0.0))).collect();
    let total = window.last()?.1;
    if total <= 0.0 {
        return None;
    }
    window.iter().find(|(_, count)| *count >= q * total).map(|(bound, _)| *bound)
}

fn table(rows: &[Row]) -> String {
    let mut text = format!(
        "{:<24} {:>9} {:>9} {:>11} {:>10} {:>6} {:>11}\n",
        "FUNCTION", "REQ/S", "ERR/S", "THROTTLE/S", "P99", "COLD", "CONCURRENT"
    );
    if rows.is_empty() {
        text.push_str("no functions have run yet\n");
    }
    for row in rows {
        let p99 = match row.p99_ms {
            None => "-".to_owned(),
            Some(ms) if ms.is_infinite() => "> 900s".to_owned(),
            Some(ms) if ms < 1.0 => format!("≤{:.2}ms", ms),
            Some(ms) if ms < 1000.0 => format!("≤{:.0}ms", ms),
            Some(ms) => format!("≤{:.1}s", ms / 1000.0),
        };
        text.push_str(&format!(
            "{:<24} {:>9.2} {:>9.2} {:>11.2} {:>10} {:>6} {:>11}\n",
            row.function,
            row.requests_per_second,
            row.errors_per_second,
            row.throttles_per_second,
            p99,
            row.cold_starts,
            row.concurrent
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# HELP updraft_invocations Invocations by function and status
# TYPE updraft_invocations counter
updraft_invocations_total{function="cart",status="success"} 10
updraft_invocation_duration_seconds_bucket{le="0.001",function="cart"} 5
updraft_invocation_duration_seconds_bucket{le="0.002",function="cart"} 10
updraft_invocation_duration_seconds_bucket{le="+Inf",function="cart"} 10
updraft_concurrent_executions{function="cart"} 0
"#;

    const AFTER: &str = r#"updraft_invocations_total{function="cart",status="success"} 108
updraft_invocations_total{function="cart",status="error"} 2
updraft_invocations_total{function="cart",status="throttled"} 10
updraft_cold_starts_total{function="cart"} 1
updraft_invocation_duration_seconds_bucket{le="0.001",function="cart"} 5
updraft_invocation_duration_seconds_bucket{le="0.002",function="cart"} 108
updraft_invocation_duration_seconds_bucket{le="+Inf",function="cart"} 110
updraft_concurrent_executions{function="cart"} 3
updraft_invocations_total{function="odd \"name\"",status="success"} 1
"#;

    #[test]
    fn rows_show_what_changed_between_two_reads() {
        let rows = rows(&counters(BEFORE), &counters(AFTER), Duration::from_secs(2));
        assert_eq!(
            rows[0],
            Row {
                function: "cart".to_owned(),
                requests_per_second: 55.0,
                errors_per_second: 1.0,
                throttles_per_second: 5.0,
                // 98 of the 100 new runs took 1–2 ms; the 99th percentile is in the last bucket.
                p99_ms: Some(f64::INFINITY),
                cold_starts: 1.0,
                concurrent: 3.0,
            }
        );
        assert_eq!(rows[1].function, r#"odd "name""#);
        assert_eq!(rows[1].p99_ms, None);
        let table = table(&rows);
        assert!(table.starts_with("FUNCTION"), "{table}");
        assert!(table.contains("cart") && table.contains("55.00") && table.contains("> 900s"), "{table}");
    }

    #[test]
    fn the_percentile_is_the_bucket_holding_it() {
        let before = [(0.001, 0.0), (0.01, 0.0), (f64::INFINITY, 0.0)];
        let after = [(0.001, 90.0), (0.01, 100.0), (f64::INFINITY, 100.0)];
        assert_eq!(percentile(&before, &after, 0.5), Some(0.001));
        assert_eq!(percentile(&before, &after, 0.99), Some(0.01));
        assert_eq!(percentile(&after, &after, 0.99), None, "nothing observed in between");
    }
}
