//! Telemetry: Prometheus metrics, Lambda-style log lines and metering prices.
//!
//! Pure functions and in-memory metric families; the platform feeds them invocation
//! records off the request path and renders them on scrape.

#![forbid(unsafe_code)]

mod metrics;
mod prices;
mod report;

pub use metrics::{InstanceCounts, Metrics};
pub use prices::{PriceTable, Usage};
pub use report::{end_line, report_line, start_line, timeout_line};
