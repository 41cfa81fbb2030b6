//! `runners.yaml`: which self-hosted runner nodes exist for each runner type.
//!
//! The scheduler validates `--runner-type` against it, and a master entry may name either a
//! type (`mi355x`) or one concrete node (`mi355x-amd_4`); this file is how the two relate.

use super::{parse_yaml, ConfigError, UniqueMap};
use indexmap::IndexMap;
use std::path::Path;

/// Runner type → node labels, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Runners {
    /// Insertion-ordered so error messages list valid types in the order the file has them.
    types: IndexMap<String, Vec<String>>,
}

impl Runners {
    /// Read and validate a runners file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (file, text) = super::read_file(path)?;
        Self::parse(&file, &text)
    }

    /// Parse runners YAML; `file` names the source in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let UniqueMap(types) = parse_yaml::<UniqueMap<Vec<String>>>(file, text)?;
        for (ty, nodes) in &types {
            if nodes.is_empty() {
                return Err(ConfigError::invalid(file, ty, ".", "node list is empty"));
            }
            if let Some(n) = nodes.iter().find(|n| n.trim().is_empty()) {
                return Err(ConfigError::invalid(
                    file,
                    ty,
                    ".",
                    format!("empty node label {n:?}"),
                ));
            }
        }
        Ok(Runners { types })
    }

    /// Runner types in file order.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// Whether `ty` is a runner type of this file.
    pub fn has_type(&self, ty: &str) -> bool {
        self.types.contains_key(ty)
    }

    /// Node labels of one type.
    pub fn nodes(&self, ty: &str) -> Option<&[String]> {
        self.types.get(ty).map(Vec::as_slice)
    }

    /// The runner type a label belongs to: the label itself when it is a type, else the type
    /// whose node list contains it.
    pub fn type_of<'a>(&'a self, label: &'a str) -> Option<&'a str> {
        if let Some((k, _)) = self.types.get_key_value(label) {
            return Some(k);
        }
        self.types
            .iter()
            .find(|(_, nodes)| nodes.iter().any(|n| n == label))
            .map(|(k, _)| k.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_nodes() {
        let r = Runners::parse(
            "r.yaml",
            "b200:\n- b200-nvd_0\n- b200-nvd_1\nmi355x:\n- mi355x-amd_4\n",
        )
        .unwrap();
        assert_eq!(r.types().collect::<Vec<_>>(), ["b200", "mi355x"]);
        assert_eq!(r.type_of("b200-nvd_1"), Some("b200"));
        assert_eq!(r.type_of("mi355x"), Some("mi355x"));
        assert_eq!(r.type_of("h100"), None);
    }

    #[test]
    fn empty_and_duplicate_types_are_errors() {
        let e = Runners::parse("r.yaml", "b200: []\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "r.yaml: entry `b200`: .: node list is empty");
        let e = Runners::parse("r.yaml", "b200: [a]\nb200: [b]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate key `b200`"), "{e}");
        assert!(e.starts_with("r.yaml:2:1:"), "{e}");
    }
}
