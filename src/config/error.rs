//! The one error type for config files and the parsing helpers that produce it with
//! locations attached, so every loader reports problems the same way.

use indexmap::IndexMap;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::marker::PhantomData;

/// A problem with a config file. Every variant names the file; parse errors also carry the
/// line and column the parser stopped at, and rule violations the entry key and field path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// Syntax or type error reported by the YAML/JSON parser.
    #[error("{file}:{line}:{col}: {}{message}", fmt_path(path))]
    Parse {
        file: String,
        line: usize,
        col: usize,
        /// Field path inside the document (`entry.seq-len-configs[0].search-space[1].tp`).
        path: String,
        message: String,
    },
    /// A value that parses but breaks a rule (empty list, conc-start > conc-end, …).
    #[error("{file}: entry `{entry}`: {path}: {message}")]
    Invalid {
        file: String,
        entry: String,
        path: String,
        message: String,
    },
}

fn fmt_path(path: &str) -> String {
    if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("{path}: ")
    }
}

impl ConfigError {
    pub(crate) fn invalid(
        file: &str,
        entry: &str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            file: file.to_string(),
            entry: entry.to_string(),
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Read a config file, naming it in the error: `(display name, text)` for the parsers.
pub fn read_file(path: &std::path::Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((file, text)),
        Err(source) => Err(ConfigError::Read { file, source }),
    }
}

/// Parse YAML into `T`, attaching file, line, column and field path to any failure.
pub(crate) fn parse_yaml<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, ConfigError> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = bare_message(&inner.to_string(), &path);
        let (line, col) = duplicate_top_level_key(&message, text)
            .or_else(|| inner.location().map(|l| (l.line(), l.column())))
            .unwrap_or((1, 1));
        ConfigError::Parse {
            file: file.to_string(),
            line,
            col,
            message,
            path,
        }
    })
}

/// Parse JSON into `T`, attaching file, line, column and field path to any failure.
pub(crate) fn parse_json<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ConfigError::Parse {
            file: file.to_string(),
            line: inner.line(),
            col: inner.column(),
            message: bare_message(&inner.to_string(), &path),
            path,
        }
    })
}

/// serde_yaml reports errors raised inside a map visitor at the map's start; for a duplicate
/// top-level key (the only place [`UniqueMap`] is used) point at the second occurrence.
fn duplicate_top_level_key(message: &str, text: &str) -> Option<(usize, usize)> {
    let key = message.strip_prefix("duplicate key `")?.strip_suffix('`')?;
    let is_key_line = |l: &str| {
        let l = l.trim_end();
        [key.to_string(), format!("'{key}'"), format!("\"{key}\"")]
            .iter()
            .any(|k| {
                l.strip_prefix(k.as_str())
                    .is_some_and(|rest| rest.starts_with(':'))
            })
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| is_key_line(l))
        .nth(1)
        .map(|(i, _)| (i + 1, 1))
}

/// The parsers decorate their messages with their own path prefix and an
/// ` at line L column C` suffix; we report both separately, so strip them.
fn bare_message(msg: &str, path: &str) -> String {
    let mut m = msg;
    if let Some(i) = m.rfind(" at line ") {
        let tail = &m[i + " at line ".len()..];
        let looks_like_loc = tail
            .split_once(" column ")
            .is_some_and(|(l, c)| l.parse::<usize>().is_ok() && c.parse::<usize>().is_ok());
        if looks_like_loc {
            m = &m[..i];
        }
    }
    if let Some((head, rest)) = m.split_once(": ") {
        if !head.is_empty() && !head.contains(' ') && path.starts_with(head) {
            m = rest;
        }
    }
    m.to_string()
}

/// An insertion-ordered map that rejects duplicate keys. YAML loaders (PyYAML included)
/// silently keep the last of two equal keys; in a sweep config that silently drops an
/// entry, so we refuse it instead.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UniqueMap<V>(pub IndexMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping with unique keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut m = IndexMap::new();
                while let Some(k) = a.next_key::<String>()? {
                    if m.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("duplicate key `{k}`")));
                    }
                    let v = a.next_value()?;
                    m.insert(k, v);
                }
                Ok(UniqueMap(m))
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_parser_decorations() {
        assert_eq!(
            bare_message(
                "a.ss[0].tp: invalid type: string \"x\", expected u32 at line 4 column 11",
                "a.ss[0].tp"
            ),
            "invalid type: string \"x\", expected u32"
        );
        assert_eq!(
            bare_message(
                "a.ss[0]: unknown field `foo` at line 4 column 29",
                "a.ss[0].foo"
            ),
            "unknown field `foo`"
        );
        // A message that merely mentions "at line" in prose keeps it.
        assert_eq!(bare_message("bad at line end", "x"), "bad at line end");
    }
}
