//! Matrix rows: the unit of work one GPU runner executes.
//!
//! `scheduler expand` writes these and `runner exec --config` reads one back from JSON or
//! YAML. Keeping producer and consumer on one type means a row the scheduler can emit is a
//! row the runner can read. Rows serialise with the key order of InferenceMAX's own generator
//! for the schema they came from, so its users see the same matrix they always did.

use super::master::Pool;
use super::{parse_json, parse_yaml, ConfigError};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use std::path::Path;

/// Largest client concurrency a row may ask for: far above any sweep (InferenceX's reach
/// 1,024), far below what would make the client's per-request state a memory hazard.
pub const MAX_CONC: u32 = 16_384;
/// Largest `isl` / `osl` (tokens): 1 Mi, beyond every served model's context.
pub const MAX_SEQ_LEN: u32 = 1 << 20;
/// Largest `max-model-len` (tokens): 4 Mi.
pub const MAX_MODEL_LEN: u32 = 1 << 22;

/// One single-node job: one engine, one concurrency.
///
/// Schema-A rows carry the 13 keys of the Nov-2025 generator; schema-B rows (recognised by
/// `pp` being present) add `model-prefix`, `pp`, `dcp-size`, `pcp-size`, `spec-decoding`,
/// `disagg` and `run-eval` as the 2026 generator does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// The context the engine is started with (schema A: isl+osl+200, B: isl+osl+256).
    pub max_model_len: u32,
    pub ep: u32,
    pub dp_attn: bool,
    /// `<model-prefix>_<seq>`: names the result files and identifies the scenario.
    pub exp_name: String,
    /// Model family. Reference key in schema B; ours (`--extra-fields`) in schema A.
    #[serde(default)]
    pub model_prefix: Option<String>,
    /// Schema B: pipeline parallel size.
    #[serde(default)]
    pub pp: Option<u32>,
    /// Schema B: decode context parallel size.
    #[serde(default)]
    pub dcp_size: Option<u32>,
    /// Schema B: prefill context parallel size.
    #[serde(default)]
    pub pcp_size: Option<u32>,
    /// Schema B: speculative decoding method (`none`, `mtp`, `draft_model`).
    #[serde(default)]
    pub spec_decoding: Option<String>,
    /// Schema B: always false for single-node rows.
    #[serde(default)]
    pub disagg: Option<bool>,
    /// Schema B: run the accuracy evaluation on this row.
    #[serde(default)]
    pub run_eval: Option<bool>,
    /// Schema B `--evals-only`: run only the evaluation.
    #[serde(default)]
    pub eval_only: Option<bool>,
    /// Ours (`--extra-fields`): the master-config entry key the row came from.
    #[serde(default)]
    pub config_key: Option<String>,
    /// How keys are ordered on output; not part of the row's data.
    #[serde(skip)]
    pub key_order: KeyOrder,
}

/// Key order of a serialised single-node row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyOrder {
    /// The full-sweep order.
    #[default]
    Sweep,
    /// The Nov-2025 generator's `--test-mode` order (`tp, ep, dp-attn, conc, …`).
    TestMode,
}

impl JobRow {
    /// Whether the row has the schema-B shape.
    pub fn is_schema_b(&self) -> bool {
        self.pp.is_some()
    }
}

impl Serialize for JobRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.is_schema_b();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("image", &self.image)?;
        m.serialize_entry("model", &self.model)?;
        if b {
            if let Some(p) = &self.model_prefix {
                m.serialize_entry("model-prefix", p)?;
            }
        }
        m.serialize_entry("precision", &self.precision)?;
        m.serialize_entry("framework", &self.framework)?;
        m.serialize_entry("runner", &self.runner)?;
        m.serialize_entry("isl", &self.isl)?;
        m.serialize_entry("osl", &self.osl)?;
        m.serialize_entry("tp", &self.tp)?;
        if b {
            m.serialize_entry("pp", &self.pp)?;
            m.serialize_entry("dcp-size", &self.dcp_size.unwrap_or(1))?;
            m.serialize_entry("pcp-size", &self.pcp_size.unwrap_or(1))?;
            m.serialize_entry("conc", &self.conc)?;
            m.serialize_entry("max-model-len", &self.max_model_len)?;
            m.serialize_entry("ep", &self.ep)?;
            m.serialize_entry("dp-attn", &self.dp_attn)?;
            m.serialize_entry(
                "spec-decoding",
                self.spec_decoding.as_deref().unwrap_or("none"),
            )?;
            m.serialize_entry("exp-name", &self.exp_name)?;
            m.serialize_entry("disagg", &self.disagg.unwrap_or(false))?;
            m.serialize_entry("run-eval", &self.run_eval.unwrap_or(false))?;
            if let Some(e) = self.eval_only {
                m.serialize_entry("eval-only", &e)?;
            }
        } else {
            if self.key_order == KeyOrder::TestMode {
                m.serialize_entry("ep", &self.ep)?;
                m.serialize_entry("dp-attn", &self.dp_attn)?;
            }
            m.serialize_entry("conc", &self.conc)?;
            m.serialize_entry("max-model-len", &self.max_model_len)?;
            if self.key_order == KeyOrder::Sweep {
                m.serialize_entry("ep", &self.ep)?;
                m.serialize_entry("dp-attn", &self.dp_attn)?;
            }
            m.serialize_entry("exp-name", &self.exp_name)?;
            if let Some(p) = &self.model_prefix {
                m.serialize_entry("model-prefix", p)?;
            }
        }
        if let Some(k) = &self.config_key {
            m.serialize_entry("config-key", k)?;
        }
        m.end()
    }
}

/// One multinode (schema B, `multinode: true`) job: prefill and decode worker pools and all
/// its concurrencies in one row, as the 2026 generator emits them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MultinodeRow {
    pub image: String,
    pub model: String,
    pub model_prefix: String,
    pub precision: String,
    pub framework: String,
    pub runner: String,
    pub isl: u32,
    pub osl: u32,
    pub spec_decoding: String,
    /// Prefill worker pool.
    pub prefill: Pool,
    /// Decode worker pool.
    pub decode: Pool,
    /// Every concurrency, run against one deployment.
    pub conc: Vec<u32>,
    pub max_model_len: u32,
    pub exp_name: String,
    /// Prefill and decode on separate pools.
    pub disagg: bool,
    /// Run the accuracy evaluation for this deployment.
    pub run_eval: bool,
    /// The concurrency the evaluation runs at (set when `run-eval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_conc: Option<u32>,
    /// Schema B `--evals-only`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_only: Option<bool>,
    /// Ours (`--extra-fields`): the entry key the row came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_key: Option<String>,
}

/// Any row of a matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MatrixRow {
    Single(JobRow),
    Multinode(MultinodeRow),
}

impl MatrixRow {
    /// Concurrencies the row runs.
    pub fn concs(&self) -> Vec<u32> {
        match self {
            MatrixRow::Single(r) => vec![r.conc],
            MatrixRow::Multinode(r) => r.conc.clone(),
        }
    }
}

/// `1k1k`, `1k8k`, `8k1k` for the three standard scenarios, else `<isl>_<osl>`: the
/// scenario part of `exp-name`.
pub fn seq_name(isl: u32, osl: u32) -> String {
    match (isl, osl) {
        (1024, 1024) => "1k1k".into(),
        (1024, 8192) => "1k8k".into(),
        (8192, 1024) => "8k1k".into(),
        _ => format!("{isl}_{osl}"),
    }
}

impl JobRow {
    /// Read one row from a `.json`, `.yaml` or `.yml` file (by extension; anything else is
    /// tried as JSON when it starts with `{`, else YAML).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (file, text) = super::read_file(path)?;
        Self::parse(&file, &text)
    }

    /// Parse one row; `file` names the source in errors (extension picks the format).
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let ext = Path::new(file)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("");
        let parsed: Result<JobRow, _> = match ext {
            "json" => parse_json(file, text),
            "yaml" | "yml" => parse_yaml(file, text),
            _ if text.trim_start().starts_with('{') => parse_json(file, text),
            _ => parse_yaml(file, text),
        };
        let row = parsed.map_err(|e| match e {
            ConfigError::Parse { file, line, col, path, message }
                if path == "prefill" || path == "decode" =>
            {
                ConfigError::Parse {
                    file,
                    line,
                    col,
                    path,
                    message: format!("{message}: this is a multinode row (prefill/decode pools); `runner exec` runs single-node rows"),
                }
            }
            e => e,
        })?;
        row.validate(file)?;
        Ok(row)
    }

    /// The model family: `model-prefix` when present, else `exp-name` without its
    /// `_<seq>` suffix (exp-name is `<model-prefix>_<seq_name(isl, osl)>`, and both model
    /// prefixes and non-standard seq names contain `_`).
    pub fn model_prefix(&self) -> &str {
        if let Some(p) = &self.model_prefix {
            return p;
        }
        let suffix = format!("_{}", seq_name(self.isl, self.osl));
        self.exp_name
            .strip_suffix(&suffix)
            .or_else(|| self.exp_name.rsplit_once('_').map(|(p, _)| p))
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
            ("isl", Some(self.isl)),
            ("osl", Some(self.osl)),
            ("tp", Some(self.tp)),
            ("conc", Some(self.conc)),
            ("ep", Some(self.ep)),
            ("pp", self.pp),
            ("dcp-size", self.dcp_size),
            ("pcp-size", self.pcp_size),
        ] {
            if v == Some(0) {
                return Err(bad(name, "must be at least 1".into()));
            }
        }
        for (name, v, max) in [
            ("conc", self.conc, MAX_CONC),
            ("isl", self.isl, MAX_SEQ_LEN),
            ("osl", self.osl, MAX_SEQ_LEN),
            ("max-model-len", self.max_model_len, MAX_MODEL_LEN),
        ] {
            if v > max {
                return Err(bad(name, format!("{v} is above the limit of {max}")));
            }
        }
        let need = u64::from(self.isl) + u64::from(self.osl);
        if u64::from(self.max_model_len) < need {
            return Err(bad(
                "max-model-len",
                format!("{} is below isl + osl = {need}", self.max_model_len),
            ));
        }
        Ok(())
    }
}
