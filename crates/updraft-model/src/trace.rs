//! Trace context: where an invocation sits in a distributed trace.
//!
//! Every invocation is one span. Its span id is derived from its request id, so every
//! hop that knows the request id (the runtimes handing the function its `traceparent`,
//! the trace view, the OTLP exporter) names the span alike without asking anyone. A
//! caller's context arrives as a W3C `traceparent` header or as AWS's `X-Amzn-Trace-Id`
//! (which Lambda functions and the AWS SDKs pass on), and the context an invocation
//! hands on is its own span under the same trace, with the chain's [`Lineage`] (how
//! often each function ran in it) for recursive loop detection.

use crate::Lineage;

/// A trace and the span in it that caused some work.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// 16 lowercase hex digits, not all zero.
    pub span_id: String,
    /// The invocations of each function in the chain so far (empty for a caller from
    /// outside).
    pub lineage: Lineage,
}

/// The W3C `tracestate` member that carries the lineage.
const TRACESTATE_KEY: &str = "updraft";

impl TraceParent {
    /// A span of a trace, with no lineage.
    pub fn new(trace_id: impl Into<String>, span_id: impl Into<String>) -> Self {
        Self { trace_id: trace_id.into(), span_id: span_id.into(), lineage: Lineage::default() }
    }

    /// A W3C `traceparent`: `00-{trace id}-{parent span id}-{flags}`.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // Version 00 has exactly four fields; later versions may add more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let valid = is_hex(version, 2) && version != "ff" && is_id(trace, 32) && is_id(parent, 16) && is_hex(flags, 2);
        valid.then(|| Self::new(trace, parent))
    }

    /// AWS's `X-Amzn-Trace-Id` (`Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled=1`):
    /// the root's 32 hex digits are the trace id. Without a valid parent it is ignored:
    /// there is no span to hang the work under.
    pub fn parse_amzn(value: &str) -> Option<Self> {
        let mut root = None;
        let mut parent = None;
        let mut lineage = None;
        for field in value.split(';') {
            match field.trim().split_once('=') {
                Some(("Root", text)) => root = Some(text),
                Some(("Parent", text)) => parent = Some(text),
                Some(("Lineage", text)) => lineage = Lineage::parse(text),
                _ => {}
            }
        }
        let mut root = root?.split('-');
        let (version, time, unique) = (root.next()?, root.next()?, root.next()?);
        if version != "1" || root.next().is_some() || !is_hex(time, 8) || !is_hex(unique, 24) {
            return None;
        }
        let trace_id = format!("{time}{unique}");
        let span_id = parent.filter(|parent| is_id(parent, 16))?;
        let lineage = lineage.unwrap_or_default();
        is_id(&trace_id, 32).then(|| Self { trace_id, span_id: span_id.to_owned(), lineage })
    }

    /// The `traceparent` header value naming this span as the parent (sampled).
    pub fn header(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }

    /// AWS's form of the same context, as Lambda sets `_X_AMZN_TRACE_ID`: X-Ray's root
    /// id is the same 128 bits, written as the first 8 hex digits (a timestamp in
    /// X-Ray's own ids) and the other 24.
    pub fn amzn_header(&self) -> String {
        let (trace, span) = (&self.trace_id, &self.span_id);
        let header = match (trace.get(..8), trace.get(8..)) {
            (Some(time), Some(unique)) if trace.len() == 32 => {
                format!("Root=1-{time}-{unique};Parent={span};Sampled=1")
            }
            _ => format!("Root=1-00000000-{trace:0>24};Parent={span};Sampled=1"),
        };
        if self.lineage.is_empty() { header } else { format!("{header};Lineage={}", self.lineage) }
    }

    /// The W3C `tracestate` value carrying the lineage; `None` when it is empty.
    pub fn tracestate(&self) -> Option<String> {
        (!self.lineage.is_empty()).then(|| format!("{TRACESTATE_KEY}={}", self.lineage))
    }

    /// The `tracestate` to hand on from a caller's: this span's lineage as the first
    /// member (replacing any earlier one of ours), the caller's other members after it,
    /// as W3C asks of a participant that updates its own entry.
    pub fn tracestate_over(&self, caller: Option<&str>) -> Option<String> {
        let others = caller.into_iter().flat_map(|value| value.split(',')).map(str::trim);
        let others = others
            .filter(|member| !member.is_empty() && member.split_once('=').is_none_or(|(key, _)| key != TRACESTATE_KEY));
        let members: Vec<String> = self.tracestate().into_iter().chain(others.map(str::to_owned)).take(32).collect();
        (!members.is_empty()).then(|| members.join(","))
    }

    /// `existing` with `member` (ours, `updraft=...`) added in front, unless it already
    /// has a member of ours (a caller that passes its own on keeps it).
    pub fn tracestate_with(member: &str, existing: Option<&str>) -> String {
        match existing.map(str::trim).filter(|value| !value.is_empty()) {
            None => member.to_owned(),
            Some(existing)
                if existing
                    .split(',')
                    .any(|m| m.trim().split_once('=').is_some_and(|(key, _)| key == TRACESTATE_KEY)) =>
            {
                existing.to_owned()
            }
            Some(existing) => format!("{member},{existing}"),
        }
    }

    /// The lineage in a caller's W3C `tracestate` (other vendors' members ignored).
    pub fn lineage_in_tracestate(value: &str) -> Option<Lineage> {
        value.split(',').find_map(|member| match member.trim().split_once('=') {
            Some((TRACESTATE_KEY, text)) => Lineage::parse(text),
            _ => None,
        })
    }
}

/// The span id of invocation `request_id`: the last 16 hex digits of the request id
/// (a UUID's random part), zero-padded; never all zero.
pub fn span_id_of(request_id: &str) -> String {
    let hex: Vec<u8> = request_id.bytes().filter(u8::is_ascii_hexdigit).map(|b| b.to_ascii_lowercase()).collect();
    let tail = &hex[hex.len().saturating_sub(16)..];
    let id = format!("{:0>16}", String::from_utf8_lossy(tail));
    if id.bytes().all(|b| b == b'0') { "0000000000000001".to_owned() } else { id }
}

/// The parts of an invocation that get a child span each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationPhase {
    /// Waiting in the event queue (or for a retry) before it ran.
    Queued,
    /// Starting an instance: a cold start.
    Init,
    /// The handler running.
    Run,
}

impl InvocationPhase {
    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Init => "init",
            Self::Run => "run",
        }
    }

    /// The child span's id: the invocation's with its top byte marked by the phase.
    pub fn span_id(self, invocation_span: &str) -> String {
        let base = u64::from_str_radix(invocation_span, 16).unwrap_or(1);
        let tag: u64 = match self {
            Self::Queued => 0xa1,
            Self::Init => 0xb2,
            Self::Run => 0xc3,
        };
        format!("{:016x}", base ^ (tag << 56))
    }
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lowercase hex of `len` digits, not all zero (an all-zero id is invalid in W3C).
fn is_id(text: &str, len: usize) -> bool {
    is_hex(text, len) && text.bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_gives_its_trace_and_parent() {
        let parsed = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(parsed.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.span_id, "00f067aa0ba902b7");
        assert_eq!(parsed.header(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        // A later version may carry more fields.
        assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra").is_some());
    }

    #[test]
    fn an_invalid_traceparent_is_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_amzn_trace_id_round_trips() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let parsed = TraceParent::parse_amzn(header).unwrap();
        assert_eq!(parsed.trace_id, "5759e988bd862e3fe1be46a994272793");
        assert_eq!(parsed.span_id, "53995c3f42cd8ad8");
        assert_eq!(parsed.amzn_header(), header);
        let w3c = TraceParent::new("5bef4de7ad49b0e87f6ef6c87fc2e700", "9a9197af755a6419");
        assert_eq!(w3c.amzn_header(), "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1");
        // An id that is not a W3C one still makes a header, never a panic.
        let odd = TraceParent::new("abc", "53995c3f42cd8ad8");
        assert_eq!(odd.amzn_header(), "Root=1-00000000-000000000000000000000abc;Parent=53995c3f42cd8ad8;Sampled=1");
        assert_eq!(TraceParent::parse_amzn("Root=1-5759e988-bd862e3fe1be46a994272793"), None);
        assert_eq!(TraceParent::parse_amzn("Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"), None);
    }

    #[test]
    fn the_lineage_rides_in_both_header_forms() {
        let function = crate::FunctionName::new("loop").unwrap();
        let mut trace = TraceParent::new("5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8");
        assert_eq!(trace.tracestate(), None);
        trace.lineage = Lineage::default().with(&function).with(&function);
        let amzn = trace.amzn_header();
        assert!(amzn.ends_with(&format!(";Lineage={}", trace.lineage)), "{amzn}");
        assert_eq!(TraceParent::parse_amzn(&amzn), Some(trace.clone()));
        let state = format!("other=x,{},more=y", trace.tracestate().unwrap());
        assert_eq!(TraceParent::lineage_in_tracestate(&state), Some(trace.lineage.clone()));
        assert_eq!(TraceParent::lineage_in_tracestate("other=x"), None);
        // Handing it on keeps the other vendors' members, ours first and only once.
        let ours = trace.tracestate().unwrap();
        assert_eq!(trace.tracestate_over(Some("updraft=00000001:1, vendor=x")), Some(format!("{ours},vendor=x")));
        assert_eq!(TraceParent::tracestate_with(&ours, Some("vendor=x")), format!("{ours},vendor=x"));
        assert_eq!(TraceParent::tracestate_with(&ours, Some("updraft=00000001:1")), "updraft=00000001:1");
        assert_eq!(TraceParent::tracestate_with(&ours, None), ours);
        // A malformed lineage is dropped; the trace context still counts.
        let bad =
            TraceParent::parse_amzn("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Lineage=zz");
        assert_eq!(bad.map(|t| t.lineage.is_empty()), Some(true));
    }

    #[test]
    fn span_ids_come_from_the_request_id_and_phases_differ() {
        let span = span_id_of("0190c5a2-7f7e-7cc0-8d3e-9a9197af755a");
        assert_eq!(span, "8d3e9a9197af755a");
        assert_eq!(span_id_of("bench-7"), "000000000000bec7");
        assert_eq!(span_id_of("x"), "0000000000000001");
        let phases = [InvocationPhase::Queued, InvocationPhase::Init, InvocationPhase::Run];
        let ids: std::collections::HashSet<String> = phases.iter().map(|p| p.span_id(&span)).collect();
        assert_eq!(ids.len(), 3);
        assert!(!ids.contains(&span));
    }
}
