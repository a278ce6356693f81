//! Reading typed values out of a parsed configuration tree while recording, for every value, its
//! key path: invalid values become [`Problem`]s (all of them are collected, not just the first),
//! unknown keys become warnings.
//!
//! TOML and JSON both arrive here as `serde_json::Value` (TOML dates become strings), so one
//! reader serves both formats.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use serde_json::{Map, Value};

use crate::error::Problem;

/// Problems and warnings collected while reading one file.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    pub(crate) problems: Vec<Problem>,
    /// Warnings without the file name; the loader prefixes it.
    pub(crate) warnings: Vec<String>,
    /// Binding name → the key path that first defined it.
    bindings: BTreeMap<String, String>,
}

impl Diagnostics {
    pub(crate) fn problem(&mut self, key: &str, detail: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_owned(),
            detail: detail.into(),
        });
    }

    pub(crate) fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// Records a binding name defined at `path`; a name defined twice (by bindings of any kinds,
    /// or a binding and a var) is a problem. Returns whether the name was new.
    pub(crate) fn register_binding(&mut self, name: &str, path: &str) -> bool {
        if let Some(first) = self.bindings.get(name) {
            let detail = format!(
                "= \"{name}\" duplicates the binding name at {first} (allowed: each binding name once)"
            );
            self.problem(path, detail);
            return false;
        }
        self.bindings.insert(name.to_owned(), path.to_owned());
        true
    }

    /// A value of the wrong type.
    pub(crate) fn wrong_type(&mut self, key: &str, value: &Value, expected: &str) {
        self.problem(
            key,
            format!(
                "= {} has the wrong type: {} (allowed {expected})",
                show(value),
                kind(value)
            ),
        );
    }
}

/// A short rendering of a value for messages: strings quoted, long values cut.
pub(crate) fn show(value: &Value) -> String {
    const LIMIT: usize = 60;
    let text = value.to_string();
    if text.chars().count() <= LIMIT {
        return text;
    }
    let cut: String = text.chars().take(LIMIT).collect();
    format!("{cut}…")
}

/// The kind of a value with its article, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// A table being read. Keys that no accessor asked for, and that are not explicitly ignored, are
/// reported as unknown by [`Table::finish`].
pub(crate) struct Table<'a> {
    path: String,
    map: &'a Map<String, Value>,
    /// Keys whose path differs from `path.key` (values taken from `env.NAME`).
    key_paths: BTreeMap<String, String>,
    read: BTreeSet<String>,
}

impl<'a> Table<'a> {
    /// A table at `path` (`""` for the root).
    pub(crate) fn new(path: impl Into<String>, map: &'a Map<String, Value>) -> Self {
        Table {
            path: path.into(),
            map,
            key_paths: BTreeMap::new(),
            read: BTreeSet::new(),
        }
    }

    /// Reads `value` at `path` as a table, or records a type problem and returns `None`.
    pub(crate) fn from_value(
        diagnostics: &mut Diagnostics,
        path: String,
        value: &'a Value,
    ) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Table::new(path, map)),
            other => {
                diagnostics.wrong_type(&path, other, "a table");
                None
            }
        }
    }

    /// Gives `key` a path of its own (used for values merged in from an environment).
    pub(crate) fn with_key_paths(mut self, key_paths: BTreeMap<String, String>) -> Self {
        self.key_paths = key_paths;
        self
    }

    /// This table's own path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The full path of `key` in this table.
    pub(crate) fn key_path(&self, key: &str) -> String {
        if let Some(path) = self.key_paths.get(key) {
            return path.clone();
        }
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The raw value of `key`, marking it as read.
    pub(crate) fn get(&mut self, key: &str) -> Option<&'a Value> {
        self.read.insert(key.to_owned());
        self.map.get(key)
    }

    /// Marks keys as known without reading them.
    pub(crate) fn ignore(&mut self, keys: &[&str]) {
        for key in keys {
            self.read.insert((*key).to_owned());
        }
    }

    /// The keys present that were not read or ignored, with their paths.
    pub(crate) fn unread(&self) -> Vec<(String, String)> {
        self.map
            .keys()
            .filter(|key| !self.read.contains(*key))
            .map(|key| (key.clone(), self.key_path(key)))
            .collect()
    }

    /// Warns about every key not read or ignored.
    pub(crate) fn finish(self, diagnostics: &mut Diagnostics) {
        for (_, path) in self.unread() {
            diagnostics.warn(format!("unknown key {path} (ignored)"));
        }
    }

    /// An optional string.
    pub(crate) fn string(&mut self, diagnostics: &mut Diagnostics, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(text) => Some(text.clone()),
            other => {
                diagnostics.wrong_type(&self.key_path(key), other, "a string");
                None
            }
        }
    }

    /// A required, non-empty string.
    pub(crate) fn required_string(
        &mut self,
        diagnostics: &mut Diagnostics,
        key: &str,
    ) -> Option<String> {
        let present = self.map.contains_key(key);
        let value = self.string(diagnostics, key);
        match value {
            Some(text) if text.is_empty() => {
                diagnostics.problem(
                    &self.key_path(key),
                    "= \"\" is empty (allowed a non-empty string)",
                );
                None
            }
            None if !present => {
                diagnostics.problem(
                    &self.key_path(key),
                    "is missing (allowed a non-empty string)",
                );
                None
            }
            other => other,
        }
    }

    /// An optional string that must not be empty when given.
    pub(crate) fn non_empty_string(
        &mut self,
        diagnostics: &mut Diagnostics,
        key: &str,
    ) -> Option<String> {
        let value = self.string(diagnostics, key)?;
        if value.is_empty() {
            diagnostics.problem(
                &self.key_path(key),
                "= \"\" is empty (allowed a non-empty string)",
            );
            return None;
        }
        Some(value)
    }

    /// An optional boolean.
    pub(crate) fn boolean(&mut self, diagnostics: &mut Diagnostics, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(flag) => Some(*flag),
            other => {
                diagnostics.wrong_type(&self.key_path(key), other, "true or false");
                None
            }
        }
    }

    /// An optional whole number in `range`. Whole floats (`10.0`) are accepted, as JavaScript
    /// does not tell them apart.
    pub(crate) fn integer(
        &mut self,
        diagnostics: &mut Diagnostics,
        key: &str,
        range: RangeInclusive<i64>,
    ) -> Option<i64> {
        let value = self.get(key)?;
        let allowed = format!("an integer in {}..={}", range.start(), range.end());
        let number = match value {
            Value::Number(number) => number.as_i64().or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0)
                    .map(|f| f as i64)
            }),
            _ => None,
        };
        let Some(number) = number else {
            diagnostics.wrong_type(&self.key_path(key), value, &allowed);
            return None;
        };
        if !range.contains(&number) {
            diagnostics.problem(
                &self.key_path(key),
                format!(
                    "= {} is out of range (allowed {}..={})",
                    show(value),
                    range.start(),
                    range.end()
                ),
            );
            return None;
        }
        Some(number)
    }

    /// An optional number (fractions allowed) in `range`.
    pub(crate) fn number(
        &mut self,
        diagnostics: &mut Diagnostics,
        key: &str,
        range: RangeInclusive<f64>,
    ) -> Option<f64> {
        let value = self.get(key)?;
        let Some(number) = value.as_f64() else {
            diagnostics.wrong_type(
                &self.key_path(key),
                value,
                &format!("a number in {}..={}", range.start(), range.end()),
            );
            return None;
        };
        if !range.contains(&number) {
            diagnostics.problem(
                &self.key_path(key),
                format!(
                    "= {} is out of range (allowed {}..={})",
                    show(value),
                    range.start(),
                    range.end()
                ),
            );
            return None;
        }
        Some(number)
    }

    /// An optional array of strings; each element is checked with `check`, which returns the
    /// detail of a problem.
    pub(crate) fn strings(
        &mut self,
        diagnostics: &mut Diagnostics,
        key: &str,
        check: impl Fn(&str) -> Option<String>,
    ) -> Vec<String> {
        let path = self.key_path(key);
        let Some(value) = self.get(key) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            diagnostics.wrong_type(&path, value, "an array of strings");
            return Vec::new();
        };
        let mut strings = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            match item {
                Value::String(text) => match check(text) {
                    Some(detail) => diagnostics.problem(&item_path, detail),
                    None => strings.push(text.clone()),
                },
                other => diagnostics.wrong_type(&item_path, other, "a string"),
            }
        }
        strings
    }

    /// An optional array of tables, each with its path (`key[i]`).
    pub(crate) fn tables(&mut self, diagnostics: &mut Diagnostics, key: &str) -> Vec<Table<'a>> {
        let path = self.key_path(key);
        let Some(value) = self.get(key) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            diagnostics.wrong_type(&path, value, "an array of tables");
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| {
                Table::from_value(diagnostics, format!("{path}[{index}]"), item)
            })
            .collect()
    }

    /// An optional sub-table.
    pub(crate) fn table(&mut self, diagnostics: &mut Diagnostics, key: &str) -> Option<Table<'a>> {
        let path = self.key_path(key);
        let value = self.get(key)?;
        Table::from_value(diagnostics, path, value)
    }

    /// The underlying map.
    pub(crate) fn map(&self) -> &'a Map<String, Value> {
        self.map
    }
}
