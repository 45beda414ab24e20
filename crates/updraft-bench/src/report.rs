//! The figures of one run, their summaries, and how they are printed: a table for
//! people, or JSON (`--output json`) for scripts.

use std::fmt::Write as _;

use serde::Serialize;

pub use crate::latency::{LatencyHistogram, LatencySummary};
use crate::load::LoadResult;

/// One server at one connection count.
#[derive(Debug, Clone, Serialize)]
pub struct LoadFigures {
    pub requests_per_second: f64,
    pub non_2xx: u64,
    pub errors: u64,
    pub latency: LatencySummary,
}

impl From<&LoadResult> for LoadFigures {
    fn from(result: &LoadResult) -> Self {
        Self {
            requests_per_second: result.requests_per_second(),
            non_2xx: result.non_2xx,
            errors: result.errors,
            latency: result.latency.summary(),
        }
    }
}

/// Both servers at one connection count.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRow {
    pub connections: usize,
    pub baseline: LoadFigures,
    pub updraft: LoadFigures,
    /// Updraft's requests per second divided by the baseline's.
    pub ratio: f64,
    /// The same component deployed with `instance_reuse = true`.
    pub updraft_reused: LoadFigures,
    pub ratio_reused: f64,
    /// The same component under `wasmtime serve` (a fresh instance per request, as
    /// Updraft's default), when the run was given a `wasmtime` to compare with.
    pub wasmtime: Option<LoadFigures>,
    pub ratio_wasmtime: Option<f64>,
}

impl LoadRow {
    pub fn new(
        connections: usize,
        baseline: LoadFigures,
        updraft: LoadFigures,
        updraft_reused: LoadFigures,
        wasmtime: Option<LoadFigures>,
    ) -> Self {
        let ratio_to_baseline = |figures: &LoadFigures| {
            if baseline.requests_per_second > 0.0 {
                figures.requests_per_second / baseline.requests_per_second
            } else {
                0.0
            }
        };
        let ratio = ratio_to_baseline(&updraft);
        let ratio_reused = ratio_to_baseline(&updraft_reused);
        let ratio_wasmtime = wasmtime.as_ref().map(ratio_to_baseline);
        Self { connections, baseline, updraft, ratio, updraft_reused, ratio_reused, wasmtime, ratio_wasmtime }
    }
}

/// GET /hello at 32 connections while greedy neighbours spin, against the same with
/// none (measured in the same run).
#[derive(Debug, Clone, Serialize)]
pub struct FairnessRow {
    pub neighbours: String,
    pub quiet: LoadFigures,
    pub spinning: LoadFigures,
    /// p50 and p99 while spinning, as multiples of the quiet ones.
    pub p50_ratio: f64,
    pub p99_ratio: f64,
    /// Spinning invocations that ran into their timeout during the measurement.
    pub spins_ended: u64,
}

impl FairnessRow {
    pub fn new(neighbours: String, quiet: LoadFigures, spinning: LoadFigures, spins_ended: u64) -> Self {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        FairnessRow {
            p50_ratio: ratio(spinning.latency.p50_us, quiet.latency.p50_us),
            p99_ratio: ratio(spinning.latency.p99_us, quiet.latency.p99_us),
            neighbours,
            quiet,
            spinning,
            spins_ended,
        }
    }
}

/// Picks one figure out of a restart's.
type RestartFigure = fn(&RestartFigures) -> f64;

/// One restart of `updraft server` on the same data dir.
#[derive(Debug, Clone, Serialize)]
pub struct RestartFigures {
    /// From spawning the process to the first 2xx answer on `/healthz`.
    pub spawn_to_ready_us: f64,
    /// From that answer to the first `GET /hello` answer: the first request served once
    /// the server accepts, compared with the 15 ms target.
    pub ready_to_first_hello_us: f64,
    pub spawn_to_first_hello_us: f64,
    /// A second `GET /hello` right after, on its own fresh connection.
    pub second_hello_us: f64,
    /// The same fresh-connection `GET /hello` to hyper-hello: the baseline for the
    /// three lines above.
    pub baseline_hello_us: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FirstResponses {
    /// How long `updraft deploy` took, its build step (a no-op cargo build) included.
    pub deploy_command_us: f64,
    /// From `updraft deploy` exiting to the first 2xx answer on `GET /hello`.
    pub after_deploy_us: f64,
    pub restarts: Vec<RestartFigures>,
}

/// Calls into `updraft-runtime-wasm` in this process, one at a time.
#[derive(Debug, Clone, Serialize)]
pub struct InProcessFigures {
    /// Whether wasmtime's pooling instance allocator was in use (`Pooling::Auto`).
    pub pooling: bool,
    /// `WasmRuntime::prepare` on an empty cache: compiling hello.wasm with Cranelift.
    pub compile_us: f64,
    /// `WasmRuntime::prepare_cached`: loading the compiled code, as a restart does.
    pub load_cached_us: f64,
    /// A fresh instance per call (the default).
    pub instantiate_and_call: LatencySummary,
    /// One instance reused across calls (`instance_reuse = true`).
    pub call_reused_instance: LatencySummary,
    /// A plain async Rust function that builds the same response.
    pub plain_rust_fn: LatencySummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub nproc: usize,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    /// The benchmark and the servers it ran were debug builds: figures mean little.
    pub debug_build: bool,
    pub load: Vec<LoadRow>,
    /// GET /hello with nothing else running against the same while others spin.
    pub fairness: Vec<FairnessRow>,
    /// `None` in a run of the load table alone (`--load-only`), as is `in_process`.
    pub first_response: Option<FirstResponses>,
    pub in_process: Option<InProcessFigures>,
}

impl Report {
    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "Updraft (examples/hello) vs raw hyper, GET /hello on 127.0.0.1; nproc {}; load generator: 1 thread, \
             keep-alive, closed loop; {}s warm-up + {}s per measurement",
            self.nproc, self.warmup_secs, self.duration_secs
        )?;
        if self.debug_build {
            writeln!(out, "WARNING: debug build; build with `--release` for meaningful figures")?;
        }
        writeln!(out)?;
        out.push_str(&render_load_table(&self.load));
        for row in &self.load {
            let servers = [
                ("baseline", Some(&row.baseline)),
                ("updraft", Some(&row.updraft)),
                ("updraft (reuse)", Some(&row.updraft_reused)),
                ("wasmtime serve", row.wasmtime.as_ref()),
            ];
            for (name, figures) in servers.into_iter().filter_map(|(name, figures)| Some((name, figures?))) {
                if figures.errors > 0 || figures.non_2xx > 0 {
                    writeln!(
                        out,
                        "  note: {name} at {} connections: {} errors, {} non-2xx answers",
                        row.connections, figures.errors, figures.non_2xx
                    )?;
                }
            }
        }

        if !self.fairness.is_empty() {
            writeln!(out)?;
            writeln!(
                out,
                "GET /hello at 32 connections while greedy neighbours spin (baseline: the same, nothing spinning)"
            )?;
            for row in &self.fairness {
                writeln!(
                    out,
                    "  {:<52} req/s {:>8.0} ({:>8.0})  p50 {} ({}, {:.2}x)  p99 {} ({}, {:.2}x)  [{} spins ended]",
                    row.neighbours,
                    row.spinning.requests_per_second,
                    row.quiet.requests_per_second,
                    format_micros(row.spinning.latency.p50_us),
                    format_micros(row.quiet.latency.p50_us),
                    row.p50_ratio,
                    format_micros(row.spinning.latency.p99_us),
                    format_micros(row.quiet.latency.p99_us),
                    row.p99_ratio,
                    row.spins_ended,
                )?;
            }
        }

        if let Some(first) = &self.first_response {
            render_first_responses(out, first)?;
        }
        if let Some(in_process) = &self.in_process {
            render_in_process(out, in_process)?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "Targets from the performance issue, for reading (nothing is asserted): ratio >= 0.3x at 32 \
             connections and updraft p99 <= 2 ms; with instance reuse >= 0.5x"
        )?;
        Ok(())
    }
}

fn render_first_responses(out: &mut String, first: &FirstResponses) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(out, "First response (each on a fresh connection)")?;
    writeln!(
        out,
        "  after deploy (`updraft deploy` exited -> first 2xx on GET /hello): {}   (the deploy command took {})",
        format_micros(first.after_deploy_us),
        format_micros(first.deploy_command_us)
    )?;
    if !first.restarts.is_empty() {
        writeln!(
            out,
            "  after restart (SIGTERM, then `updraft server` on the same data dir; compiled code comes from \
             the on-disk cache):"
        )?;
        let mut header = format!("    {:<44}", "");
        for index in 1..=first.restarts.len() {
            let _ = write!(header, "{:>10}", format!("run {index}"));
        }
        writeln!(out, "{header}{:>10}", "median")?;
        let lines: [(&str, RestartFigure); 5] = [
            ("listener ready -> first GET /hello [target]", |r| r.ready_to_first_hello_us),
            ("spawn -> /healthz ready", |r| r.spawn_to_ready_us),
            ("spawn -> first GET /hello", |r| r.spawn_to_first_hello_us),
            ("a second GET /hello", |r| r.second_hello_us),
            ("baseline: GET /hello to hyper-hello", |r| r.baseline_hello_us),
        ];
        for (label, value) in lines {
            let values: Vec<f64> = first.restarts.iter().map(value).collect();
            let mut line = format!("    {label:<44}");
            for v in &values {
                let _ = write!(line, "{:>10}", format_micros(*v));
            }
            writeln!(out, "{line}{:>10}", format_micros(median(&values)))?;
        }
    }
    Ok(())
}

fn render_in_process(out: &mut String, in_process: &InProcessFigures) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(
        out,
        "In-process (updraft-runtime-wasm, GET /hello on hello.wasm, sequential calls; absolute times, no ratio)"
    )?;
    writeln!(out, "    {:<52}{:>10}{:>10}{:>10}{:>10}", "", "calls", "mean", "p50", "p99")?;
    for (label, summary) in [
        ("instantiate and call (fresh instance, the default)", &in_process.instantiate_and_call),
        ("call only (instance reused)", &in_process.call_reused_instance),
        ("plain async Rust fn, same response (reference)", &in_process.plain_rust_fn),
    ] {
        writeln!(
            out,
            "    {label:<52}{:>10}{:>10}{:>10}{:>10}",
            format_count(summary.count as f64),
            format_micros(summary.mean_us),
            format_micros(summary.p50_us),
            format_micros(summary.p99_us)
        )?;
    }
    writeln!(
        out,
        "    compiling hello.wasm: {}; loading it from the compiled-code cache: {}; pooling allocator: {}",
        format_micros(in_process.compile_us),
        format_micros(in_process.load_cached_us),
        if in_process.pooling { "on" } else { "off" }
    )?;
    Ok(())
}

/// The load table: one row per connection count, baseline and Updraft side by side,
/// and `wasmtime serve` after them when any row measured it.
pub fn render_load_table(rows: &[LoadRow]) -> String {
    let mut out = String::new();
    let with_wasmtime = rows.iter().any(|row| row.wasmtime.is_some());
    let _ = write!(
        out,
        "{:>11}  {:>14}{:>10}{:>10}  | {:>13}{:>10}{:>10}{:>8}  | {:>11}{:>10}{:>10}{:>8}",
        "connections",
        "baseline req/s",
        "p50",
        "p99",
        "updraft req/s",
        "p50",
        "p99",
        "ratio",
        "reuse req/s",
        "p50",
        "p99",
        "ratio"
    );
    if with_wasmtime {
        let _ = write!(out, "  | {:>14}{:>10}{:>10}{:>8}", "wasmtime req/s", "p50", "p99", "ratio");
    }
    out.push('\n');
    for row in rows {
        let _ = write!(
            out,
            "{:>11}  {:>14}{:>10}{:>10}  | {:>13}{:>10}{:>10}{:>8}  | {:>11}{:>10}{:>10}{:>8}",
            row.connections,
            format_count(row.baseline.requests_per_second),
            format_micros(row.baseline.latency.p50_us),
            format_micros(row.baseline.latency.p99_us),
            format_count(row.updraft.requests_per_second),
            format_micros(row.updraft.latency.p50_us),
            format_micros(row.updraft.latency.p99_us),
            format!("{:.2}x", row.ratio),
            format_count(row.updraft_reused.requests_per_second),
            format_micros(row.updraft_reused.latency.p50_us),
            format_micros(row.updraft_reused.latency.p99_us),
            format!("{:.2}x", row.ratio_reused),
        );
        if let (Some(figures), Some(ratio)) = (&row.wasmtime, row.ratio_wasmtime) {
            let _ = write!(
                out,
                "  | {:>14}{:>10}{:>10}{:>8}",
                format_count(figures.requests_per_second),
                format_micros(figures.latency.p50_us),
                format_micros(figures.latency.p99_us),
                format!("{ratio:.2}x"),
            );
        } else if with_wasmtime {
            let _ = write!(out, "  | {:>14}", "-");
        }
        out.push('\n');
    }
    out
}

/// A duration given in microseconds, in the unit that keeps three significant digits
/// readable: `85 ns`, `3.2 µs`, `412 µs`, `1.37 ms`, `18.4 ms`, `354 ms`, `2.31 s`.
pub fn format_micros(micros: f64) -> String {
    if micros < 1.0 {
        format!("{:.0} ns", micros * 1000.0)
    } else if micros < 10.0 {
        format!("{micros:.1} µs")
    } else if micros < 1000.0 {
        format!("{micros:.0} µs")
    } else if micros < 10_000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else if micros < 100_000.0 {
        format!("{:.1} ms", micros / 1000.0)
    } else if micros < 1_000_000.0 {
        format!("{:.0} ms", micros / 1000.0)
    } else {
        format!("{:.2} s", micros / 1_000_000.0)
    }
}

/// A count rounded to a whole number with thousands separators: `25,431`.
pub fn format_count(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The median of a few samples (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 { sorted[middle] } else { (sorted[middle - 1] + sorted[middle]) / 2.0 }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations_keep_three_significant_digits_in_a_readable_unit() {
        let formatted: Vec<String> =
            [0.085, 3.24, 412.4, 1370.0, 18_440.0, 354_010.0, 2_310_000.0].into_iter().map(format_micros).collect();
        assert_eq!(formatted, ["85 ns", "3.2 µs", "412 µs", "1.37 ms", "18.4 ms", "354 ms", "2.31 s"]);
    }

    #[test]
    fn counts_get_thousands_separators() {
        let formatted: Vec<String> =
            [0.0, 999.4, 1000.0, 25_431.2, 1_234_567.0].into_iter().map(format_count).collect();
        assert_eq!(formatted, ["0", "999", "1,000", "25,431", "1,234,567"]);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn summary_reads_percentiles_from_the_histogram() {
        let mut histogram = LatencyHistogram::new();
        // 99 requests of 100 µs and one of 10 ms: p50 and p99 are 100 µs, max is 10 ms.
        for _ in 0..99 {
            histogram.record(Duration::from_micros(100));
        }
        histogram.record(Duration::from_millis(10));
        let summary = histogram.summary();
        assert_eq!(summary.count, 100);
        assert!((summary.p50_us - 100.0).abs() < 0.1, "{summary:?}");
        assert!((summary.p99_us - 100.0).abs() < 0.1, "{summary:?}");
        assert!((summary.max_us - 10_000.0).abs() < 10.0, "{summary:?}");
    }

    #[test]
    fn load_table_lines_up_baseline_and_updraft_with_the_ratio() {
        let figures = |rps: f64, p50_us: f64, p99_us: f64| LoadFigures {
            requests_per_second: rps,
            non_2xx: 0,
            errors: 0,
            latency: LatencySummary { count: 1, mean_us: p50_us, p50_us, p99_us, max_us: p99_us },
        };
        let rows = [
            LoadRow::new(
                1,
                figures(25_000.0, 38.0, 71.0),
                figures(8_000.0, 121.0, 305.0),
                figures(16_000.0, 60.0, 150.0),
                None,
            ),
            LoadRow::new(
                32,
                figures(90_000.0, 340.0, 1_200.0),
                figures(30_000.0, 1_050.0, 4_100.0),
                figures(45_000.0, 700.0, 2_000.0),
                None,
            ),
        ];
        let expected = "\
connections  baseline req/s       p50       p99  | updraft req/s       p50       p99   ratio  | reuse req/s       p50       p99   ratio
          1          25,000     38 µs     71 µs  |         8,000    121 µs    305 µs   0.32x  |      16,000     60 µs    150 µs   0.64x
         32          90,000    340 µs   1.20 ms  |        30,000   1.05 ms   4.10 ms   0.33x  |      45,000    700 µs   2.00 ms   0.50x
";
        assert_eq!(render_load_table(&rows), expected);

        // With `wasmtime serve` measured, its figures and ratio follow.
        let row = LoadRow::new(
            32,
            figures(90_000.0, 340.0, 1_200.0),
            figures(30_000.0, 1_050.0, 4_100.0),
            figures(45_000.0, 700.0, 2_000.0),
            Some(figures(15_000.0, 2_100.0, 5_000.0)),
        );
        let table = render_load_table(&[row]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with("  | wasmtime req/s       p50       p99   ratio"), "{table}");
        assert!(lines[1].ends_with("  |         15,000   2.10 ms   5.00 ms   0.17x"), "{table}");
    }
}
