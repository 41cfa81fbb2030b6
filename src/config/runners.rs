//! `runners.yaml`: which self-hosted runner nodes exist for each runner type.
//!
//! The scheduler validates `--runner-type` against it, and a master entry may name either a
//! type (`mi355x`) or one concrete node (`mi355x-amd_4`); this file is how the two relate.
//! Two layouts exist: Nov 2025's `type: [nodes]` mapping, and InferenceX 2026's
//! `labels: {type: [nodes]}` with a `hardware:` section (CPU DRAM and GPUs per node of each
//! `cluster:` label, which sizes the agentic KV offload budget). The layout is detected by a
//! top-level `labels` mapping.

use super::{parse_yaml, ConfigError, UniqueMap};
use indexmap::IndexMap;
use serde::Deserialize;
use std::path::Path;

/// Runner type → node labels, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Runners {
    /// Insertion-ordered so error messages list valid types in the order the file has them.
    types: IndexMap<String, Vec<String>>,
    /// 2026 layout: hardware facts per label.
    hardware: IndexMap<String, Hardware>,
}

/// One `hardware:` entry of a 2026 runners file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Hardware {
    /// CPU DRAM a job may use on one node, in MiB.
    #[serde(deserialize_with = "yaml11_int")]
    pub available_cpu_dram_mib: u64,
    /// GPUs on one node.
    #[serde(deserialize_with = "yaml11_int")]
    pub gpus_per_node: u64,
}

/// An integer as YAML 1.1 (PyYAML) reads it, underscores included (`3_095_781`); YAML 1.2
/// parsers see such a scalar as a string.
fn yaml11_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrText {
        Int(u64),
        Text(String),
    }
    match IntOrText::deserialize(d)? {
        IntOrText::Int(v) => Ok(v),
        IntOrText::Text(t) => {
            let digits = t.replace('_', "");
            if t.starts_with(|c: char| c.is_ascii_digit()) && !digits.is_empty() {
                if let Ok(v) = digits.parse() {
                    return Ok(v);
                }
            }
            Err(serde::de::Error::custom(format!(
                "invalid value `{t}`: expected a positive integer"
            )))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw2026 {
    labels: UniqueMap<Vec<String>>,
    #[serde(default)]
    hardware: Option<UniqueMap<Hardware>>,
}

fn is_2026(text: &str) -> bool {
    matches!(
        serde_yaml::from_str::<serde_yaml::Value>(text),
        Ok(serde_yaml::Value::Mapping(m)) if m.get("labels").is_some_and(|l| l.is_mapping())
    )
}

impl Runners {
    /// Read and validate a runners file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (file, text) = super::read_file(path)?;
        Self::parse(&file, &text)
    }

    /// Parse runners YAML; `file` names the source in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let (types, hardware) = if is_2026(text) {
            let r = parse_yaml::<Raw2026>(file, text)?;
            let hardware = r.hardware.map(|h| h.0).unwrap_or_default();
            for (label, h) in &hardware {
                for (name, v) in [
                    ("available-cpu-dram-mib", h.available_cpu_dram_mib),
                    ("gpus-per-node", h.gpus_per_node),
                ] {
                    if v == 0 {
                        return Err(ConfigError::invalid(
                            file,
                            label,
                            format!("hardware.{label}.{name}"),
                            "must be greater than 0",
                        ));
                    }
                }
            }
            (r.labels.0, hardware)
        } else {
            let UniqueMap(types) = parse_yaml::<UniqueMap<Vec<String>>>(file, text)?;
            (types, IndexMap::new())
        };
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
        Ok(Runners { types, hardware })
    }

    /// Hardware facts of a label (2026 layout), for the agentic DRAM budget.
    pub fn hardware(&self, label: &str) -> Option<&Hardware> {
        self.hardware.get(label)
    }

    /// Labels with hardware facts, sorted (for error messages).
    pub fn hardware_labels(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.hardware.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
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
    fn layout_2026_with_hardware() {
        let r = Runners::parse(
            "r.yaml",
            "labels:\n  b200: [b200-nvd_0]\n  cluster:b200-dgxc: [b200-dgxc_0]\nhardware:\n  cluster:b200-dgxc:\n    available-cpu-dram-mib: 3_095_781\n    gpus-per-node: 8\n",
        )
        .unwrap();
        assert_eq!(r.types().collect::<Vec<_>>(), ["b200", "cluster:b200-dgxc"]);
        let h = r.hardware("cluster:b200-dgxc").unwrap();
        assert_eq!((h.available_cpu_dram_mib, h.gpus_per_node), (3_095_781, 8));
        let e = Runners::parse(
            "r.yaml",
            "labels:\n  b200: [x]\nhardware:\n  b200:\n    gpus-per-node: 8\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("r.yaml:5:5:") && e.contains("missing field `available-cpu-dram-mib`"),
            "{e}"
        );
        let e = Runners::parse("r.yaml", "labels:\n  b200: [x]\nhardware:\n  b200:\n    available-cpu-dram-mib: 0\n    gpus-per-node: 8\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "r.yaml: entry `b200`: hardware.b200.available-cpu-dram-mib: must be greater than 0"
        );
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
