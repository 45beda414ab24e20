//! The TOML plumbing of the manifest checker: typed reads of values and tables that
//! record what was expected, unknown keys with the closest known one, and field paths.

use toml::{Table, Value};

use crate::manifest::parse::Checker;

impl Checker<'_> {
    /// Checks `table[key]` with `check` when present: `Some(None)` when absent,
    /// `Some(Some(value))` when valid, `None` when a problem was recorded.
    pub(super) fn optional<T>(
        &mut self,
        table: &Table,
        path: &str,
        key: &str,
        check: impl FnOnce(&mut Self, &str, &Value) -> Option<T>,
    ) -> Option<Option<T>> {
        match table.get(key) {
            None => Some(None),
            Some(value) => check(self, &join(path, key), value).map(Some),
        }
    }

    /// A list of strings, each checked by `check` (given its path and text);
    /// `quote_fix` says how to write an item that is not a string.
    pub(super) fn strings<T>(
        &mut self,
        path: &str,
        value: &Value,
        example: &str,
        quote_fix: &str,
        check: impl Fn(&mut Self, &str, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let array = self.array(path, value, example)?;
        let mut items = Vec::new();
        let mut all_valid = true;
        for (index, value) in array.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            match self.string(&item_path, value, quote_fix).and_then(|text| check(self, &item_path, text)) {
                Some(item) => items.push(item),
                None => all_valid = false,
            }
        }
        all_valid.then_some(items)
    }

    /// A list of names in quotes, each checked by `check`; no repeats.
    pub(super) fn list<T: PartialEq>(
        &mut self,
        path: &str,
        value: &Value,
        example: &str,
        check: impl Fn(&mut Self, &str, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = self.strings(path, value, example, &format!("write each name in quotes, like {example}"), check)?;
        let mut repeated = false;
        for (index, item) in items.iter().enumerate() {
            if items[..index].contains(item) {
                self.problem(&format!("{path}[{index}]"), "listed twice; keep one");
                repeated = true;
            }
        }
        (!repeated).then_some(items)
    }

    /// Reports keys of `table` outside `known`; `future` keys are promised but not
    /// implemented yet.
    pub(super) fn unknown_keys(&mut self, path: &str, table: &Table, known: &[&str], future: &[&str]) {
        for (key, _) in sorted(table) {
            if known.contains(&key.as_str()) {
                continue;
            }
            let message = if future.contains(&key.as_str()) {
                format!("{key} is not supported yet; remove it")
            } else if let Some(suggestion) = did_you_mean(key, known) {
                format!("unknown key {key:?}; did you mean {suggestion:?}?")
            } else {
                format!("unknown key {key:?}; remove it (the keys allowed here are {})", known.join(", "))
            };
            self.problem(&join(path, key), message);
        }
    }

    pub(super) fn expected(&mut self, path: &str, expected: &str, found: &Value, fix: &str) {
        self.problem(path, format!("expected {expected}, found {}; {fix}", describe(found)));
    }

    pub(super) fn string<'v>(&mut self, path: &str, value: &'v Value, fix: &str) -> Option<&'v str> {
        match value {
            Value::String(text) => Some(text),
            other => {
                self.expected(path, "a string", other, fix);
                None
            }
        }
    }

    pub(super) fn table<'v>(&mut self, path: &str, value: &'v Value, example: &str) -> Option<&'v Table> {
        match value {
            Value::Table(table) => Some(table),
            other => {
                self.expected(path, "a table", other, &format!("write it like {example}"));
                None
            }
        }
    }

    pub(super) fn array<'v>(&mut self, path: &str, value: &'v Value, example: &str) -> Option<&'v [Value]> {
        match value {
            Value::Array(array) => Some(array),
            other => {
                self.expected(path, "a list", other, &format!("write it like {example}"));
                None
            }
        }
    }
}

/// A table's entries sorted by key, so problems come out in the same order whether or
/// not the TOML library preserves the file's order.
pub(super) fn sorted(table: &Table) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// `parent.key`, quoting `key` the way TOML would when it is not a bare key.
pub(super) fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let key = if bare { key.to_owned() } else { format!("{key:?}") };
    if parent.is_empty() { key } else { format!("{parent}.{key}") }
}

pub(super) fn describe(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "a whole number",
        Value::Float(_) => "a decimal number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

/// The candidate closest to `key`, if one is close enough to be a likely typo.
pub(super) fn did_you_mean<'c>(key: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let key_length = key.chars().count();
    candidates
        .iter()
        .map(|candidate| (*candidate, strsim::jaro_winkler(key, candidate)))
        .filter(|(candidate, similarity)| {
            // A short key is a few edits from anything, so edits count only when they
            // leave most of the key in place.
            let edits = strsim::levenshtein(key, candidate);
            *similarity >= 0.8 || (edits <= 2 && edits * 2 < key_length)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(candidate, _)| candidate)
}
