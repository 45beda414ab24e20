//! Platform defaults and limits (DESIGN.md, "Defaults and limits").

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The most a function's environment may hold, names and values together (Lambda's
/// limit): a larger one cannot be handed to a process's `execve` on every host.
pub const MAX_ENVIRONMENT_BYTES: usize = 4096;

/// How much of [`MAX_ENVIRONMENT_BYTES`] these variables take.
pub fn environment_size<'a>(variables: impl IntoIterator<Item = (&'a str, &'a str)>) -> usize {
    variables.into_iter().map(|(name, value)| name.len() + value.len()).sum()
}

/// A size in bytes, written in manifests as `"128MiB"`, `"1GiB"`, `"512KiB"` or a plain
/// number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const KIB: u64 = 1024;
    pub const MIB: u64 = 1024 * 1024;
    pub const GIB: u64 = 1024 * 1024 * 1024;

    pub const fn mib(n: u64) -> Self {
        Self(n * Self::MIB)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Parses a size as a manifest writes it: a whole number and a unit, where `KiB`,
    /// `MiB` and `GiB` are powers of 1024, `KB`, `MB` and `GB` are powers of 1000, and
    /// `B` is bytes. Units are case-insensitive and may follow a space (`"128 mib"`).
    ///
    /// The error is a sentence that quotes `text` and says how to write it instead.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        Self::parse_with(text, false)
    }

    /// Parses a function's memory: as [`parse`](Self::parse), except that `KB`, `MB` and
    /// `GB` are read as KiB, MiB and GiB, as Lambda means them (its `MemorySize` of
    /// "128 MB" is 128 MiB), so `memory = "64MB"` is the 64 MiB a Lambda user asks for.
    pub fn parse_memory(text: &str) -> Result<ByteSize, String> {
        Self::parse_with(text, true)
    }

    fn parse_with(text: &str, decimal_as_binary: bool) -> Result<ByteSize, String> {
        let trimmed = text.trim();
        let digits_end = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(digits_end);
        let unit = unit.trim_start();
        if digits.is_empty() || unit.starts_with(['.', ',']) {
            return Err(format!(
                "{text:?} is not a size; write a whole number and a unit, like \"128MiB\" or \"1GiB\""
            ));
        }
        if unit.is_empty() {
            return Err(format!("{text:?} has no unit; write \"{digits}MiB\", or {digits} without quotes for bytes"));
        }
        let multiplier = match unit.to_ascii_lowercase().as_str() {
            "b" => 1,
            "kib" => Self::KIB,
            "mib" => Self::MIB,
            "gib" => Self::GIB,
            "kb" if decimal_as_binary => Self::KIB,
            "mb" if decimal_as_binary => Self::MIB,
            "gb" if decimal_as_binary => Self::GIB,
            "kb" => 1000,
            "mb" => 1000 * 1000,
            "gb" => 1000 * 1000 * 1000,
            _ => {
                return Err(format!(
                    "{text:?} has the unknown unit {unit:?}; use KiB, MiB or GiB (powers of 1024), \
                     KB, MB or GB (powers of 1000), or B"
                ));
            }
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
            .map(ByteSize)
            .ok_or_else(|| format!("{text:?} is too large; write a smaller size, like \"1GiB\""))
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n >= Self::GIB && n.is_multiple_of(Self::GIB) {
            write!(f, "{}GiB", n / Self::GIB)
        } else if n >= Self::MIB && n.is_multiple_of(Self::MIB) {
            write!(f, "{}MiB", n / Self::MIB)
        } else if n >= Self::KIB && n.is_multiple_of(Self::KIB) {
            write!(f, "{}KiB", n / Self::KIB)
        } else {
            write!(f, "{n}B")
        }
    }
}

/// The limits a server enforces on every function, with the defaults a manifest gets
/// when it says nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub default_timeout: Duration,
    pub min_timeout: Duration,
    pub max_timeout: Duration,
    pub default_memory: ByteSize,
    pub min_memory: ByteSize,
    pub max_memory: ByteSize,
    /// The most concurrent invocations a single function may ask for.
    pub max_concurrency: u32,
    /// How long an idle instance is kept when the manifest does not say.
    pub default_idle_timeout: Duration,
    pub max_idle_timeout: Duration,
    /// The largest sync request or response body.
    pub max_sync_payload: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(3),
            min_timeout: Duration::from_millis(1),
            max_timeout: Duration::from_secs(900),
            default_memory: ByteSize::mib(128),
            min_memory: ByteSize::mib(16),
            max_memory: ByteSize(10 * ByteSize::GIB),
            max_concurrency: 1000,
            default_idle_timeout: Duration::from_secs(600),
            max_idle_timeout: Duration::from_secs(24 * 3600),
            max_sync_payload: 6 * ByteSize::MIB,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        let cases = [
            ("128MiB", 128 * ByteSize::MIB),
            ("1GiB", ByteSize::GIB),
            ("512KiB", 512 * ByteSize::KIB),
            ("128MB", 128_000_000),
            ("2GB", 2_000_000_000),
            ("10KB", 10_000),
            ("100B", 100),
            ("128 mib", 128 * ByteSize::MIB),
            (" 64MiB ", 64 * ByteSize::MIB),
        ];
        for (text, bytes) in cases {
            assert_eq!(ByteSize::parse(text), Ok(ByteSize(bytes)), "{text}");
        }
    }

    #[test]
    fn memory_in_mb_means_mib_as_on_lambda() {
        assert_eq!(ByteSize::parse_memory("64MB"), Ok(ByteSize::mib(64)));
        assert_eq!(ByteSize::parse_memory("1 GB"), Ok(ByteSize(ByteSize::GIB)));
        assert_eq!(ByteSize::parse_memory("128MiB"), Ok(ByteSize::mib(128)));
        assert_eq!(ByteSize::parse("64MB"), Ok(ByteSize(64_000_000)), "other sizes keep powers of 1000");
    }

    #[test]
    fn bad_sizes_say_how_to_write_them() {
        assert!(ByteSize::parse("128").unwrap_err().contains("write \"128MiB\""));
        assert!(ByteSize::parse("1.5GiB").unwrap_err().contains("whole number"));
        assert!(ByteSize::parse("MiB").unwrap_err().contains("whole number"));
        assert!(ByteSize::parse("").unwrap_err().contains("whole number"));
        assert!(ByteSize::parse("12TiB").unwrap_err().contains("unknown unit \"TiB\""));
        assert!(ByteSize::parse("99999999999999999999GiB").unwrap_err().contains("too large"));
        assert!(ByteSize::parse("99999999999GiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn sizes_display_in_the_largest_whole_unit() {
        assert_eq!(ByteSize::mib(128).to_string(), "128MiB");
        assert_eq!(ByteSize(10 * ByteSize::GIB).to_string(), "10GiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }
}
