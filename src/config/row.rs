//! Matrix rows: the unit of work one GPU runner executes.
//!
//! `scheduler expand` writes these and `runner exec --config` reads one back from JSON or
//! YAML. Keeping producer and consumer on one type means a row the scheduler can emit is a
//! row the runner can read. Rows serialise with the key order of InferenceMAX's own generator
//! for the schema they came from, so its users see the same matrix they always did.

use super::master::{Component, Pool};
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
    /// Schema B: router metadata of the deployment.
    #[serde(default)]
    pub router: Option<Component>,
    /// Schema B: sha256 of the row's recipe (see [`recipe_fingerprint`]).
    #[serde(default)]
    pub recipe_fingerprint: Option<String>,
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
            if let Some(r) = &self.router {
                m.serialize_entry("router", r)?;
            }
            if let Some(e) = self.eval_only {
                m.serialize_entry("eval-only", &e)?;
            }
            if let Some(f) = &self.recipe_fingerprint {
                m.serialize_entry("recipe-fingerprint", f)?;
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
    /// Router metadata of the deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<Component>,
    /// KV transfer library between prefill and decode (required when `disagg`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_p2p_transfer: Option<String>,
    /// The concurrency the evaluation runs at (set when `run-eval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_conc: Option<u32>,
    /// `--all-evals`: the evaluation runs at every concurrency of the row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_all_concs: Option<bool>,
    /// Schema B `--evals-only`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_only: Option<bool>,
    /// sha256 of the row's recipe (see [`recipe_fingerprint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe_fingerprint: Option<String>,
    /// Ours (`--extra-fields`): the entry key the row came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_key: Option<String>,
}

fn none_str() -> String {
    "none".into()
}

/// One single-node `agentic-coding` job (schema B): one engine, one concurrency, a trace
/// replay of `duration` seconds. No isl/osl/max-model-len: the engine runs at the model's
/// native context. Keys serialise in the 2026 generator's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AgenticRow {
    /// Container image of the engine.
    pub image: String,
    /// HF model id.
    pub model: String,
    /// Model family: first part of `exp-name` and of the launch template's name.
    pub model_prefix: String,
    /// Weight precision.
    pub precision: String,
    /// Serving framework.
    pub framework: String,
    /// Runner label (`cluster:<fleet>` for agentic configs).
    pub runner: String,
    /// Tensor parallel size.
    pub tp: u32,
    /// Pipeline parallel size.
    pub pp: u32,
    /// Decode context parallel size.
    pub dcp_size: u32,
    /// Prefill context parallel size.
    pub pcp_size: u32,
    /// Expert parallel size.
    pub ep: u32,
    /// Data-parallel attention.
    pub dp_attn: bool,
    /// `mtp`, `draft_model` or `none`.
    #[serde(default = "none_str")]
    pub spec_decoding: String,
    /// Concurrent replay sessions.
    pub conc: u32,
    /// `none` or `dram`.
    pub kv_offloading: String,
    /// CPU DRAM budget for KV offloading on this node, decimal GB (0 without offloading).
    pub total_cpu_dram_gb: u64,
    /// Replay duration in seconds.
    pub duration: u64,
    /// `<prefix>_tp<tp>_conc<conc>_<kv suffix>[_spec-<method>]`: names the results.
    pub exp_name: String,
    /// Always `agentic-coding`; how consumers tell these rows from fixed-seq-len ones.
    pub scenario_type: String,
    /// The offload implementation (present exactly when offloading is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_offload_backend: Option<Component>,
    /// Router metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<Component>,
    /// Run the accuracy evaluation (set on every row unless `--no-evals`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_eval: Option<bool>,
    /// `--evals-only`/`--all-evals`: run only the evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_only: Option<bool>,
    /// sha256 of the row's recipe (see [`recipe_fingerprint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe_fingerprint: Option<String>,
    /// Ours (`--extra-fields`): the entry key the row came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_key: Option<String>,
}

/// One multinode `agentic-coding` job (schema B): prefill/decode workers replaying the trace
/// at one concurrency (the 2026 generator puts one concurrency per allocation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AgenticMultinodeRow {
    /// Container image of the engines.
    pub image: String,
    /// HF model id.
    pub model: String,
    /// Model family.
    pub model_prefix: String,
    /// Weight precision.
    pub precision: String,
    /// Serving framework (`dynamo-sglang`, …).
    pub framework: String,
    /// Runner label.
    pub runner: String,
    /// `mtp`, `draft_model` or `none`.
    pub spec_decoding: String,
    /// Prefill workers.
    pub prefill: Pool,
    /// Decode workers.
    pub decode: Pool,
    /// Concurrencies run against this allocation, in order.
    pub conc: Vec<u32>,
    /// `none` or `dram`.
    pub kv_offloading: String,
    /// CPU DRAM budget per prefill node, decimal GB.
    pub total_cpu_dram_gb: u64,
    /// Replay duration in seconds.
    pub duration: u64,
    /// `<prefix>_p<n>x<tp>…_d<n>x<tp>…_conc<c>[_kvdram-<backend>]`.
    pub exp_name: String,
    /// Prefill and decode on separate workers.
    pub disagg: bool,
    /// Always `agentic-coding`.
    pub scenario_type: String,
    /// The offload implementation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_offload_backend: Option<Component>,
    /// Router metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<Component>,
    /// KV transfer library (required when `disagg`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_p2p_transfer: Option<String>,
    /// Run the evaluation (SWE-bench) for this deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_eval: Option<bool>,
    /// The concurrency the evaluation runs at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_conc: Option<u32>,
    /// Run only the evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_only: Option<bool>,
    /// sha256 of the row's recipe (see [`recipe_fingerprint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe_fingerprint: Option<String>,
    /// Ours (`--extra-fields`): the entry key the row came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_key: Option<String>,
}

/// What a row file holds: one row, or a list of rows as `scheduler expand` / `test-config`
/// print them (a plain list, or `--max-rows` chunks flattened in order).
#[derive(Debug, Clone)]
pub enum RowFile {
    /// A single row (the usual `--config` file).
    One(Box<MatrixRow>),
    /// Rows of a list, unparsed until one is picked (a list may mix kinds).
    List {
        /// The file, for messages.
        file: String,
        /// The rows in file order.
        rows: Vec<serde_json::Value>,
    },
}

impl RowFile {
    /// Read `path`: a row, or a list of rows.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (file, text) = super::read_file(path)?;
        Self::parse(&file, &text)
    }

    /// Parse a row file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let probe: Option<serde_json::Value> =
            if is_json(file, text) || text.trim_start().starts_with('[') {
                serde_json::from_str(text).ok()
            } else {
                serde_yaml::from_str(text).ok()
            };
        let list = match probe {
            Some(serde_json::Value::Array(rows)) => rows,
            // `--max-rows`: {"count": n, "chunks": [{"include": [...]}, ...]}
            Some(serde_json::Value::Object(o)) if o.contains_key("chunks") => o["chunks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("include").and_then(|i| i.as_array()))
                .flatten()
                .cloned()
                .collect(),
            _ => return MatrixRow::parse(file, text).map(|r| RowFile::One(Box::new(r))),
        };
        Ok(RowFile::List {
            file: file.to_string(),
            rows: list,
        })
    }

    /// Row `i` of a list, parsed and validated like a row file (errors name `FILE[i]`).
    pub fn row(file: &str, rows: &[serde_json::Value], i: usize) -> Result<MatrixRow, ConfigError> {
        let text = serde_json::to_string_pretty(&rows[i]).expect("JSON values serialise");
        MatrixRow::parse(&format!("{file}[{i}]"), &text)
    }
}

/// Any row of a matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MatrixRow {
    /// Fixed-seq-len, one node.
    Single(JobRow),
    /// Fixed-seq-len, prefill/decode workers over several nodes.
    Multinode(MultinodeRow),
    /// Agentic coding, one node.
    Agentic(AgenticRow),
    /// Agentic coding, prefill/decode workers over several nodes.
    AgenticMultinode(AgenticMultinodeRow),
}

impl MatrixRow {
    /// Concurrencies the row runs.
    pub fn concs(&self) -> Vec<u32> {
        match self {
            MatrixRow::Single(r) => vec![r.conc],
            MatrixRow::Multinode(r) => r.conc.clone(),
            MatrixRow::Agentic(r) => vec![r.conc],
            MatrixRow::AgenticMultinode(r) => r.conc.clone(),
        }
    }

    /// The row's kind in words, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            MatrixRow::Single(_) => "single-node fixed-seq-len",
            MatrixRow::Multinode(_) => "multinode fixed-seq-len",
            MatrixRow::Agentic(_) => "single-node agentic-coding",
            MatrixRow::AgenticMultinode(_) => "multinode agentic-coding",
        }
    }

    /// Whether the row runs on several nodes.
    pub fn is_multinode(&self) -> bool {
        matches!(
            self,
            MatrixRow::Multinode(_) | MatrixRow::AgenticMultinode(_)
        )
    }

    /// Whether the row is an agentic-coding one.
    pub fn is_agentic(&self) -> bool {
        matches!(self, MatrixRow::Agentic(_) | MatrixRow::AgenticMultinode(_))
    }

    /// `run-eval` of the row (absent counts as false).
    pub fn run_eval(&self) -> bool {
        match self {
            MatrixRow::Single(r) => r.run_eval == Some(true),
            MatrixRow::Multinode(r) => r.run_eval,
            MatrixRow::Agentic(r) => r.run_eval == Some(true),
            MatrixRow::AgenticMultinode(r) => r.run_eval == Some(true),
        }
    }

    /// Set `recipe-fingerprint` to [`recipe_fingerprint`] of the row.
    pub fn set_fingerprint(&mut self) {
        let fp = Some(recipe_fingerprint(self));
        match self {
            MatrixRow::Single(r) => r.recipe_fingerprint = fp,
            MatrixRow::Multinode(r) => r.recipe_fingerprint = fp,
            MatrixRow::Agentic(r) => r.recipe_fingerprint = fp,
            MatrixRow::AgenticMultinode(r) => r.recipe_fingerprint = fp,
        }
    }

    /// Read one row of any kind from a `.json`, `.yaml` or `.yml` file, validated.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (file, text) = super::read_file(path)?;
        Self::parse(&file, &text)
    }

    /// Parse one row of any kind; `file` names the source in errors. The kind follows from
    /// the keys, as in InferenceX: `scenario-type: agentic-coding` makes an agentic row,
    /// `prefill` a multinode one.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let json = is_json(file, text);
        let probe: Option<serde_json::Value> = if json {
            serde_json::from_str(text).ok()
        } else {
            serde_yaml::from_str(text).ok()
        };
        let has = |k: &str| probe.as_ref().and_then(|v| v.get(k)).is_some();
        let agentic = probe
            .as_ref()
            .and_then(|v| v.get("scenario-type"))
            .and_then(|v| v.as_str())
            == Some("agentic-coding");
        let row = match (agentic, has("prefill")) {
            (false, false) => MatrixRow::Single(JobRow::parse(file, text)?),
            (false, true) => MatrixRow::Multinode(parse_any(file, text, json)?),
            (true, false) => MatrixRow::Agentic(parse_any(file, text, json)?),
            (true, true) => MatrixRow::AgenticMultinode(parse_any(file, text, json)?),
        };
        row.validate(file)?;
        // A fingerprint names the deployment its row describes; one that disagrees with the
        // row means the row was edited after it was generated, and results filed under it
        // would be attributed to another recipe.
        if let Some(fp) = row.fingerprint() {
            let want = recipe_fingerprint(&row);
            if fp != want {
                return Err(ConfigError::invalid(
                    file,
                    "row",
                    "recipe-fingerprint",
                    format!("{fp} does not match the row's content (sha256 {want}); regenerate the row or drop the key"),
                ));
            }
        }
        Ok(row)
    }

    /// The row's `recipe-fingerprint`, when it carries one.
    pub fn fingerprint(&self) -> Option<&str> {
        match self {
            MatrixRow::Single(r) => r.recipe_fingerprint.as_deref(),
            MatrixRow::Multinode(r) => r.recipe_fingerprint.as_deref(),
            MatrixRow::Agentic(r) => r.recipe_fingerprint.as_deref(),
            MatrixRow::AgenticMultinode(r) => r.recipe_fingerprint.as_deref(),
        }
    }

    /// The rules of InferenceX's matrix-entry models that a type cannot express.
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let bad = |path: &str, msg: String| ConfigError::invalid(file, "row", path, msg);
        let spec_ok = |s: &str| ["mtp", "draft_model", "none"].contains(&s);
        let fp_ok = |f: &Option<String>| {
            f.as_ref().is_none_or(|f| {
                f.len() == 64
                    && f.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
        };
        let kv = |mode: &str, backend: &Option<Component>| -> Result<(), ConfigError> {
            match (mode, backend) {
                ("none", Some(_)) => Err(bad(
                    "kv-offload-backend",
                    "kv-offload-backend can only be set when kv-offloading is not 'none'".into(),
                )),
                ("dram", None) => Err(bad(
                    "kv-offload-backend",
                    "kv-offload-backend is required when kv-offloading is 'dram'".into(),
                )),
                ("none" | "dram", _) => Ok(()),
                (m, _) => Err(bad(
                    "kv-offloading",
                    format!("`{m}` is not one of 'none', 'dram'"),
                )),
            }
        };
        let worker = |name: &str, w: &Pool| -> Result<(), ConfigError> {
            if [w.tp, w.pp, w.dcp_size, w.pcp_size].contains(&0) {
                return Err(bad(
                    name,
                    "tp, pp, dcp-size and pcp-size must be at least 1".into(),
                ));
            }
            if !w.tp.is_multiple_of(w.dcp_size) {
                return Err(bad(
                    name,
                    format!(
                        "'tp' ({}) must be divisible by 'dcp-size' ({})",
                        w.tp, w.dcp_size
                    ),
                ));
            }
            Ok(())
        };
        let pair = |p: &Pool, d: &Pool| {
            if p.hardware.is_some() != d.hardware.is_some() {
                return Err(bad(
                    "prefill",
                    "'hardware' must be specified for both 'prefill' and 'decode', or neither"
                        .into(),
                ));
            }
            Ok(())
        };
        let router_ok = |r: &Option<Component>| {
            if r.as_ref().is_some_and(|r| r.version.is_none()) {
                return Err(bad("router", "missing field `version`".into()));
            }
            Ok(())
        };
        let (spec, fp) = match self {
            MatrixRow::Single(r) => {
                if !fp_ok(&r.recipe_fingerprint) {
                    return Err(bad(
                        "recipe-fingerprint",
                        "must be 64 lowercase hex digits".into(),
                    ));
                }
                return Ok(());
            }
            MatrixRow::Multinode(r) => {
                worker("prefill", &r.prefill)?;
                worker("decode", &r.decode)?;
                pair(&r.prefill, &r.decode)?;
                router_ok(&r.router)?;
                if r.disagg && r.kv_p2p_transfer.is_none() {
                    return Err(bad(
                        "kv-p2p-transfer",
                        "disagg=true requires kv-p2p-transfer".into(),
                    ));
                }
                (&r.spec_decoding, &r.recipe_fingerprint)
            }
            MatrixRow::Agentic(r) => {
                for (name, v) in [
                    ("tp", r.tp),
                    ("pp", r.pp),
                    ("dcp-size", r.dcp_size),
                    ("pcp-size", r.pcp_size),
                    ("conc", r.conc),
                ] {
                    if v == 0 {
                        return Err(bad(name, "must be at least 1".into()));
                    }
                }
                if !r.tp.is_multiple_of(r.dcp_size) {
                    return Err(bad(
                        "dcp-size",
                        format!(
                            "'tp' ({}) must be divisible by 'dcp-size' ({})",
                            r.tp, r.dcp_size
                        ),
                    ));
                }
                kv(&r.kv_offloading, &r.kv_offload_backend)?;
                router_ok(&r.router)?;
                (&r.spec_decoding, &r.recipe_fingerprint)
            }
            MatrixRow::AgenticMultinode(r) => {
                worker("prefill", &r.prefill)?;
                worker("decode", &r.decode)?;
                pair(&r.prefill, &r.decode)?;
                kv(&r.kv_offloading, &r.kv_offload_backend)?;
                router_ok(&r.router)?;
                if r.disagg && r.kv_p2p_transfer.is_none() {
                    return Err(bad(
                        "kv-p2p-transfer",
                        "disagg=true requires kv-p2p-transfer".into(),
                    ));
                }
                if r.conc.is_empty() || r.conc.contains(&0) {
                    return Err(bad(
                        "conc",
                        "needs at least one concurrency, each at least 1".into(),
                    ));
                }
                (&r.spec_decoding, &r.recipe_fingerprint)
            }
        };
        if !spec_ok(spec) {
            return Err(bad(
                "spec-decoding",
                format!("`{spec}` is not one of 'mtp', 'draft_model', 'none'"),
            ));
        }
        if !fp_ok(fp) {
            return Err(bad(
                "recipe-fingerprint",
                "must be 64 lowercase hex digits".into(),
            ));
        }
        Ok(())
    }
}

fn is_json(file: &str, text: &str) -> bool {
    match Path::new(file)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
    {
        "json" => true,
        "yaml" | "yml" => false,
        _ => text.trim_start().starts_with('{'),
    }
}

fn parse_any<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
    json: bool,
) -> Result<T, ConfigError> {
    if json {
        parse_json(file, text)
    } else {
        parse_yaml(file, text)
    }
}

/// InferenceX's `recipe-fingerprint` (`utils/process_changelog.py`): sha256 (lowercase hex)
/// of the row without `conc`, `exp-name` and `recipe-fingerprint`, written as canonical JSON
/// (keys sorted at every level, `","`/`":"` separators, non-ASCII escaped as `json.dumps`
/// does). Rows that differ only in concurrency share it: it names the engine deployment.
pub fn recipe_fingerprint(row: &MatrixRow) -> String {
    use sha2::{Digest, Sha256};
    let mut v = serde_json::to_value(row).expect("rows serialise");
    if let Some(m) = v.as_object_mut() {
        for k in ["conc", "exp-name", "recipe-fingerprint", "config-key"] {
            m.shift_remove(k);
        }
    }
    let text = crate::pyjson::to_canonical_json(&v);
    let d = Sha256::digest(text.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
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
