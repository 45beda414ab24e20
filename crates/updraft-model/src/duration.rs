//! The one way durations are written, in `updraft.toml` and on the command line alike:
//! whole numbers with a unit, `ms`, `s`, `m`, `h` or `d`, summed when several follow
//! each other (`500ms`, `5s`, `2m`, `1m30s`, `7d`). A number without a unit is not a
//! duration in text (the manifest takes a bare TOML integer as seconds).

use std::time::Duration;

/// Parses a duration; the error says how to write one.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("{text:?} is not a duration; write it like \"500ms\", \"5s\", \"2m\", \"1m30s\", \"1h\" or \"7d\"");
    let too_long = || format!("{text:?} is far too long; write a duration like \"5m\"");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        let unit_end = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if digits.is_empty() {
            return Err(invalid());
        }
        if unit.is_empty() {
            if after.is_empty() && total_ms == 0 {
                return Err(format!("{text:?} has no unit; write \"{digits}s\" (units: ms, s, m, h, d)"));
            }
            return Err(invalid());
        }
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(invalid()),
        };
        let amount: u64 = digits.parse().map_err(|_| too_long())?;
        total_ms = amount.checked_mul(unit_ms).and_then(|ms| total_ms.checked_add(ms)).ok_or_else(too_long)?;
        rest = after;
    }
    Ok(Duration::from_millis(total_ms))
}

/// `900s`, or `1500ms` when not a whole number of seconds.
pub fn format_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_and_sum() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1m30s500ms"), Ok(Duration::from_millis(90_500)));
        assert_eq!(parse_duration(" 5s "), Ok(Duration::from_secs(5)));
    }

    #[test]
    fn anything_else_says_how_to_write_a_duration() {
        for bad in ["", "s", "1.5s", "5w", "-5s", "5s5", "5 s"] {
            assert!(parse_duration(bad).unwrap_err().contains("not a duration"), "{bad}");
        }
        assert!(parse_duration("30").unwrap_err().contains("has no unit; write \"30s\""));
        assert!(parse_duration("99999999999999999999h").unwrap_err().contains("too long"));
        assert!(parse_duration("9999999999999999h").unwrap_err().contains("too long"));
    }

    #[test]
    fn durations_print_in_seconds_or_milliseconds() {
        assert_eq!(format_duration(Duration::from_secs(900)), "900s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }
}
