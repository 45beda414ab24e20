//! Metering: what usage costs under a price table.

/// Prices per unit, in US dollars. The default is AWS Lambda's published x86 price in
/// us-east-1 (without the free tier), so a bill can be compared with Lambda's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceTable {
    pub per_million_requests: f64,
    pub per_gb_second: f64,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self { per_million_requests: 0.20, per_gb_second: 0.000_016_666_7 }
    }
}

/// Usage over some period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Invocations that ran (throttled ones are not billed).
    pub requests: u64,
    /// Billed milliseconds times memory in MiB.
    pub billed_mib_ms: u64,
    pub cold_starts: u64,
    pub throttles: u64,
    pub errors: u64,
}

impl Usage {
    /// GB-seconds: memory in GiB (Lambda's "GB" is 1024 MB) times billed seconds.
    pub fn gb_seconds(&self) -> f64 {
        self.billed_mib_ms as f64 / 1024.0 / 1000.0
    }

    pub fn cost(&self, prices: &PriceTable) -> f64 {
        self.requests as f64 / 1e6 * prices.per_million_requests + self.gb_seconds() * prices.per_gb_second
    }

    pub fn add(&mut self, other: &Usage) {
        self.requests += other.requests;
        self.billed_mib_ms += other.billed_mib_ms;
        self.cold_starts += other.cold_starts;
        self.throttles += other.throttles;
        self.errors += other.errors;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_one_second_128_mib_invocations_cost_what_lambda_charges() {
        let usage = Usage { requests: 1_000_000, billed_mib_ms: 1_000_000 * 1000 * 128, ..Usage::default() };
        assert_eq!(usage.gb_seconds(), 125_000.0);
        let cost = usage.cost(&PriceTable::default());
        assert!((cost - (0.20 + 125_000.0 * 0.000_016_666_7)).abs() < 1e-9, "{cost}");
    }
}
