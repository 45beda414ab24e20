//! Recursive loop detection: how often each function has run in one chain of
//! invocations, carried with the chain's trace context.
//!
//! A chain is what one request sets off: a function publishes to a topic, the topic's
//! subscriber sends to a queue, the queue's consumer invokes the first function again,
//! and so on. Every hop hands on the trace context, and with it the lineage: a count per
//! function of the invocations before it in the chain. An invocation that would make a
//! function's count pass [`MAX_RECURSION`] is stopped, as Lambda stops a loop after 16
//! invocations of one function (its `RecursiveInvocationException`), unless the function
//! opted out.
//!
//! On the wire the lineage rides where trace context already goes, so the AWS SDKs and
//! the wasm host carry it without the function's help: as a `Lineage=` field of AWS's
//! `X-Amzn-Trace-Id` (which the SDKs copy from `_X_AMZN_TRACE_ID` inside a function)
//! and as the `updraft` member of W3C `tracestate` (which the wasm host puts on a
//! guest's outbound requests). Both use one text form: `hash:count` entries joined by
//! `.`, the hash being 8 hex digits of the function's name, e.g. `1f2e3d4c:3.a0b1c2d3:1`.

use std::fmt;

use crate::FunctionName;

/// How many invocations of one function a chain may hold; the next is stopped.
pub const MAX_RECURSION: u16 = 16;

/// At most this many functions are counted in one chain, the most-invoked kept, so a
/// header stays small whatever a chain goes through.
const MAX_ENTRIES: usize = 32;

/// The count per function of one chain's invocations so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Lineage {
    /// By function-name hash, ascending; counts are at least 1.
    entries: Vec<(u32, u16)>,
}

impl Lineage {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many times `function` has run in the chain so far.
    pub fn count(&self, function: &FunctionName) -> u16 {
        let key = name_hash(function);
        self.entries.iter().find(|(hash, _)| *hash == key).map_or(0, |(_, count)| *count)
    }

    /// The lineage an invocation of `function` hands on: this one with `function`
    /// counted once more.
    pub fn with(&self, function: &FunctionName) -> Lineage {
        let key = name_hash(function);
        let mut entries = self.entries.clone();
        match entries.binary_search_by_key(&key, |(hash, _)| *hash) {
            Ok(at) => entries[at].1 = entries[at].1.saturating_add(1),
            Err(at) => entries.insert(at, (key, 1)),
        }
        Lineage::bounded(entries, Some(key))
    }

    /// The lineage of an invocation that several chains lead to (a batch of queue
    /// messages): each function's highest count among them.
    pub fn merge<'a>(lineages: impl IntoIterator<Item = &'a Lineage>) -> Lineage {
        let mut entries: Vec<(u32, u16)> = Vec::new();
        for lineage in lineages {
            for &(hash, count) in &lineage.entries {
                match entries.binary_search_by_key(&hash, |(h, _)| *h) {
                    Ok(at) => entries[at].1 = entries[at].1.max(count),
                    Err(at) => entries.insert(at, (hash, count)),
                }
            }
        }
        Lineage::bounded(entries, None)
    }

    /// Reads the text form; `None` when it is malformed (a caller's bad header is
    /// ignored, as a bad trace header is).
    pub fn parse(text: &str) -> Option<Lineage> {
        let text = text.trim();
        if text.is_empty() {
            return Some(Lineage::default());
        }
        let mut entries = Vec::new();
        for entry in text.split('.') {
            let (hash, count) = entry.split_once(':')?;
            if hash.len() != 8 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let hash = u32::from_str_radix(hash, 16).ok()?;
            let count: u16 = count.parse().ok().filter(|count| *count > 0)?;
            entries.push((hash, count));
        }
        if entries.len() > MAX_ENTRIES {
            return None;
        }
        // A hash given twice keeps its highest count.
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        entries.dedup_by_key(|(hash, _)| *hash);
        Some(Lineage { entries })
    }

    /// Keeps the `MAX_ENTRIES` highest counts, and `keep` (the function just counted,
    /// so that a loop's function is never dropped before its count can grow).
    fn bounded(mut entries: Vec<(u32, u16)>, keep: Option<u32>) -> Lineage {
        if entries.len() > MAX_ENTRIES {
            let rank = |(hash, count): &(u32, u16)| (Some(*hash) == keep, *count);
            entries.sort_unstable_by(|a, b| rank(b).cmp(&rank(a)).then(a.0.cmp(&b.0)));
            entries.truncate(MAX_ENTRIES);
            entries.sort_unstable();
        }
        Lineage { entries }
    }
}

impl fmt::Display for Lineage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (hash, count)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{hash:08x}:{count}")?;
        }
        Ok(())
    }
}

/// FNV-1a of the function's name: stable across processes, versions and nodes.
fn name_hash(function: &FunctionName) -> u32 {
    function.as_str().bytes().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> FunctionName {
        FunctionName::new(text).unwrap()
    }

    #[test]
    fn each_invocation_counts_its_function_once_more() {
        let (a, b) = (name("a"), name("b"));
        let lineage = Lineage::default().with(&a).with(&b).with(&a);
        assert_eq!((lineage.count(&a), lineage.count(&b), lineage.count(&name("c"))), (2, 1, 0));
        let text = lineage.to_string();
        assert_eq!(Lineage::parse(&text), Some(lineage.clone()), "{text}");
        // The text form passes the AWS SDKs' quoting of X-Amzn-Trace-Id and W3C's
        // tracestate value rules unchanged.
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'), "{text}");
    }

    #[test]
    fn a_batch_takes_the_highest_count_of_each_function() {
        let (a, b) = (name("a"), name("b"));
        let one = Lineage::default().with(&a).with(&a);
        let two = Lineage::default().with(&a).with(&b);
        let merged = Lineage::merge([&one, &two]);
        assert_eq!((merged.count(&a), merged.count(&b)), (2, 1));
        assert!(Lineage::merge([]).is_empty());
    }

    #[test]
    fn a_malformed_lineage_is_ignored_and_a_long_one_is_bounded() {
        for bad in ["x", "1234567:1", "1234567g:1", "12345678:0", "12345678:-1", "12345678:1.", "12345678"] {
            assert_eq!(Lineage::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Lineage::parse(""), Some(Lineage::default()));
        assert_eq!(Lineage::parse("0000000a:2.0000000a:5").map(|l| l.entries), Some(vec![(10, 5)]));
        let mut lineage = Lineage::default().with(&name("hot")).with(&name("hot"));
        for i in 0..100 {
            lineage = lineage.with(&name(&format!("f{i}")));
        }
        assert_eq!(lineage.entries.len(), MAX_ENTRIES);
        assert_eq!(lineage.count(&name("hot")), 2, "the most-invoked function is kept");
        let last = name("f99");
        assert_eq!(lineage.count(&last), 1, "so is the one just counted");
    }
}
