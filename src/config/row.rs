//! The job row: one matrix entry, the unit of work one GPU runner executes.
//!
//! `scheduler expand` writes these (InferenceMAX's row shape by default, so existing
//! workflows consume them unchanged) and `runner exec --config` reads exactly one of them
//! back from JSON or YAML. Keeping producer and consumer on one type means a row the
//! scheduler can emit is always a row the runner can read.

use super::{parse_json, parse_yaml, ConfigError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One matrix row. Field order is the reference generator's key order; optional fields are
/// omitted when absent so schema-A rows serialise to exactly the reference shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobRow {
    /// Container image of the engine.
    pub image: String,
    /// HF model id.
    pub model: String,
    pub precision: String,
    pub framework: String,
    /// Runner label: a runner type or one node; GitHub's `runs-on` and the launch-profile key.
    pub runner: String,
    pub isl: u32,
    pub osl: u32,
    pub tp: u32,
    /// Client concurrency for this job.
    pub conc: u32,
    /// `isl + osl + 200`: the context the engine is started with.
    pub max_model_len: u32,
    pub ep: u32,
    pub dp_attn: bool,
    /// `<model-prefix>_<seq>`: names the result files and identifies the scenario.
    pub exp_name: String,
    /// Schema B: pipeline parallel size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pp: Option<u32>,
    /// Schema B: speculative decoding method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_decoding: Option<String>,
    /// Schema B: decode context parallel size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dcp_size: Option<u32>,
    /// Schema B: prefill context parallel size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcp_size: Option<u32>,
    /// Schema B: the entry spans several nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multinode: Option<bool>,
    /// Schema B disagg: prefill pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill: Option<crate::config::master::Pool>,
    /// Schema B disagg: decode pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode: Option<crate::config::master::Pool>,
    /// Ours (`--extra-fields`): the model family, so template lookup need not parse exp-name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_prefix: Option<String>,
    /// Ours (`--extra-fields`): the master-config entry key the row came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_key: Option<String>,
}

impl JobRow {
    /// Read one row from a `.json`, `.yaml` or `.yml` file (by extension; anything else is
    /// tried as JSON first, then YAML).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let row: JobRow = match ext {
            "json" => parse_json(&file, &text)?,
            "yaml" | "yml" => parse_yaml(&file, &text)?,
            _ if text.trim_start().starts_with('{') => parse_json(&file, &text)?,
            _ => parse_yaml(&file, &text)?,
        };
        row.validate(&file)?;
        Ok(row)
    }

    /// The model family: `model-prefix` when present, else `exp-name` up to its last `_`
    /// (exp-name is `<model-prefix>_<seq>` and model prefixes may themselves contain `_`).
    pub fn model_prefix(&self) -> &str {
        if let Some(p) = &self.model_prefix {
            return p;
        }
        self.exp_name
            .rsplit_once('_')
            .map(|(p, _)| p)
            .unwrap_or(&self.exp_name)
    }

    /// Rules a type cannot express: positive sizes and lengths, non-empty names,
    /// `max-model-len` large enough for the scenario.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let bad = |path: &str, msg: String| ConfigError::invalid(file, "row", path, msg);
        for (name, v) in [
            ("image", &self.image),
            ("model", &self.model),
            ("precision", &self.precision),
            ("framework", &self.framework),
            ("runner", &self.runner),
            ("exp-name", &self.exp_name),
        ] {
            if v.trim().is_empty() {
                return Err(bad(name, "must not be empty".into()));
            }
        }
        for (name, v) in [
            ("isl", self.isl),
            ("osl", self.osl),
            ("tp", self.tp),
            ("conc", self.conc),
            ("ep", self.ep),
        ] {
            if v == 0 {
                return Err(bad(name, "must be at least 1".into()));
            }
        }
        if u64::from(self.max_model_len) < u64::from(self.isl) + u64::from(self.osl) {
            return Err(bad(
                "max-model-len",
                format!(
                    "{} is below isl + osl = {}",
                    self.max_model_len,
                    u64::from(self.isl) + u64::from(self.osl)
                ),
            ));
        }
        Ok(())
    }
}
