//! Telemetry: metrics (Prometheus and OTLP), traces, Lambda-style log lines and metering prices.
//!
//! Pure functions and in-memory metric families; the platform feeds them invocation
//! records off the request path and renders them on scrape.

#![forbid(unsafe_code)]

mod metrics;
mod otlp;
mod prices;
mod report;
mod trace;

pub use metrics::{AsyncEventMetric, InstanceCounts, Metrics, QueueGauge};
pub use otlp::{ExportCounters, ExportSetupError, MetricExport, OtlpConfig, SpanExport};
pub use prices::{PriceTable, Usage};
pub use report::{end_line, report_line, start_line, timeout_line};
pub use trace::{Attribute, Span, SpanKind, faas_trigger, invocation_spans};
