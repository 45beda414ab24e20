//! The `START`, `END` and `REPORT` lines Lambda writes around every invocation, in the
//! same format so that tools that parse Lambda logs parse ours.

use std::time::Duration;

use updraft_model::{InvocationRecord, InvocationStatus};

pub fn start_line(record: &InvocationRecord) -> String {
    format!("START RequestId: {} Version: {}", record.id, record.version)
}

pub fn end_line(record: &InvocationRecord) -> String {
    format!("END RequestId: {}", record.id)
}

/// `Task timed out after 3.00 seconds`, as Lambda writes for a timeout (with the time
/// the invocation actually ran).
pub fn timeout_line(record: &InvocationRecord) -> String {
    format!("{} Task timed out after {:.2} seconds", record.id, record.duration.as_secs_f64())
}

/// The `REPORT` line: tab-separated fields, each followed by a tab; `Init Duration`
/// only on a cold start; `Status` and `Error Type` only on a failure.
pub fn report_line(record: &InvocationRecord) -> String {
    let mut line = format!(
        "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
        record.id,
        millis(record.duration),
        record.billed_duration_ms(),
        record.memory_limit.div_ceil(1 << 20),
        record.max_memory_used.div_ceil(1 << 20),
    );
    if let Some(init) = record.init_duration {
        line.push_str(&format!("Init Duration: {:.2} ms\t", millis(init)));
    }
    if record.status != InvocationStatus::Success {
        line.push_str(&format!("Status: {}\t", record.status));
        if let Some(error_type) = &record.error_type {
            line.push_str(&format!("Error Type: {error_type}\t"));
        }
    }
    line
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use updraft_model::{TriggerKind, VersionNumber};

    use super::*;

    fn record() -> InvocationRecord {
        InvocationRecord {
            id: "8f2c".into(),
            function: "hello".parse().unwrap(),
            version: VersionNumber(3),
            trigger: TriggerKind::Http,
            started_at: 0,
            duration: Duration::from_micros(26_730),
            init_duration: None,
            cold: false,
            memory_limit: 128 << 20,
            max_memory_used: 75 << 20,
            status: InvocationStatus::Success,
            error_type: None,
            error_message: None,
            trace_id: "0".repeat(32),
            parent_span_id: None,
            queued_since: None,
            links: Vec::new(),
            log_lines_dropped: 0,
            node: String::new(),
        }
    }

    #[test]
    fn lines_match_lambdas_format() {
        let warm = record();
        assert_eq!(start_line(&warm), "START RequestId: 8f2c Version: 3");
        assert_eq!(end_line(&warm), "END RequestId: 8f2c");
        assert_eq!(
            report_line(&warm),
            "REPORT RequestId: 8f2c\tDuration: 26.73 ms\tBilled Duration: 27 ms\tMemory Size: 128 MB\tMax Memory Used: 75 MB\t"
        );
        let cold = InvocationRecord { init_duration: Some(Duration::from_micros(130_490)), cold: true, ..record() };
        assert!(report_line(&cold).ends_with("Max Memory Used: 75 MB\tInit Duration: 130.49 ms\t"));
        let timeout = InvocationRecord {
            duration: Duration::from_secs(3),
            status: InvocationStatus::Timeout,
            error_type: Some("Sandbox.Timedout".into()),
            ..record()
        };
        assert!(report_line(&timeout).contains("Billed Duration: 3000 ms\t"));
        assert!(report_line(&timeout).ends_with("\tStatus: timeout\tError Type: Sandbox.Timedout\t"));
        assert_eq!(timeout_line(&timeout), "8f2c Task timed out after 3.00 seconds");
    }
}
