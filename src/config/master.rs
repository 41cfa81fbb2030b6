//! InferenceMAX/InferenceX master configs: `entry-name -> entry` mappings that describe what
//! to sweep.
//!
//! Two schemas exist in the wild. Schema A (Nov 2025, the bounty's era) puts
//! `seq-len-configs` on each entry; schema B (InferenceX's `configs/` of 2026, pinned at
//! 843c6254f) moves them under `scenarios.fixed-seq-len`, adds `scenarios.agentic-coding`,
//! `multinode`, `disagg`, `conc-list`, `pp`, `spec-decoding`, `dcp-size`, `pcp-size`,
//! prefill/decode worker blocks, `router`, `kv-p2p-transfer` and KV offloading. The schema is
//! detected per file from its first entry (the two generators that read them differ in flags
//! and arithmetic, so a file is one or the other); schema B is parsed and checked by
//! [`super::ix2026`] against every rule of InferenceX's `validation.py`. Both land in one
//! normalised [`Entry`].

use super::{parse_yaml, ConfigError, UniqueMap};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One normalised master-config entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The mapping key (`dsr1-fp4-mi355x-sglang`): what `--config-keys` and
    /// `--model-prefix` match, and what `scheduler diff` compares by.
    pub key: String,
    /// Container image the engine runs in.
    pub image: String,
    /// HF model id served by the engine.
    pub model: String,
    /// Short model family (`dsr1`, `gptoss`): first part of `exp-name` and template names.
    pub model_prefix: String,
    /// Runner type (a key of runners.yaml) or a single node label.
    pub runner: String,
    /// Weight precision (`fp4`, `fp8`, …).
    pub precision: String,
    /// Serving framework (`sglang`, `vllm`, `trt`, …).
    pub framework: String,
    /// Which schema the entry was written in; kept so rows can carry schema-B fields only
    /// when the source had them.
    pub schema: Schema,
    /// Schema B: the engine spans several nodes (prefill/decode pools, one row per item).
    pub multinode: bool,
    /// Schema B: prefill and decode run on separate worker pools.
    pub disagg: bool,
    /// Sequence-length scenarios (`scenarios.fixed-seq-len` in schema B), in file order.
    pub seq_lens: Vec<SeqLen>,
    /// Schema B: `scenarios.agentic-coding` blocks, in file order.
    pub agentic: Vec<Agentic>,
    /// Schema B: top-level router metadata, copied into rows whose item sets none.
    pub router: Option<Component>,
    /// Schema B (multinode): top-level KV transfer library between prefill and decode.
    pub kv_p2p_transfer: Option<String>,
}

impl Entry {
    /// File names of the launch templates this entry's rows run.
    pub fn template_names(&self) -> Vec<String> {
        let mtp = |m: bool| {
            super::template_file_name(
                &self.model_prefix,
                &self.precision,
                &self.runner,
                &self.framework,
                m,
            )
        };
        let specs = self
            .seq_lens
            .iter()
            .flat_map(|s| &s.search_space)
            .map(|i| i.spec_decoding.as_deref())
            .chain(
                self.agentic
                    .iter()
                    .flat_map(|a| &a.search_space)
                    .map(|i| Some(i.spec_decoding.as_str())),
            );
        let uses_mtp = specs.clone().any(|s| s == Some("mtp"));
        let uses_plain = specs.clone().any(|s| s != Some("mtp"));
        let mut v = vec![];
        if uses_plain {
            v.push(mtp(false));
        }
        if uses_mtp {
            v.push(mtp(true));
        }
        v
    }
}

/// The schema an entry was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// `seq-len-configs` (Nov 2025).
    A,
    /// `scenarios: {fixed-seq-len, agentic-coding}` (InferenceX 2026, `configs/`).
    B,
}

/// One (ISL, OSL) scenario with its search space.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqLen {
    pub isl: u32,
    pub osl: u32,
    /// Search-space items in file order.
    pub search_space: Vec<SearchSpace>,
}

/// One search-space item: a parallelism layout and the concurrencies to run it at.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    /// Tensor parallel size (for disagg entries: the prefill pool's).
    pub tp: u32,
    /// Expert parallel size, default 1.
    pub ep: u32,
    /// Data-parallel attention, default false.
    pub dp_attn: bool,
    /// Pipeline parallel size (schema B only; `None` when not written).
    pub pp: Option<u32>,
    /// Speculative decoding method (schema B; `none` when not written).
    pub spec_decoding: Option<String>,
    /// Decode context parallel size (schema B).
    pub dcp_size: Option<u32>,
    /// Prefill context parallel size (schema B).
    pub pcp_size: Option<u32>,
    /// Prefill/decode worker pools (schema B, `multinode: true` entries).
    pub pools: Option<Pools>,
    /// Which concurrencies to run.
    pub conc: Concurrency,
    /// Schema B: `conc-list: []` was written beside a range. The 2026 full sweep then uses
    /// the range, but its `test-config` takes the (empty) list and emits nothing.
    pub empty_conc_list: bool,
    /// Schema B: router metadata of this item (never together with a top-level one).
    pub router: Option<Component>,
    /// Schema B (multinode): KV transfer library of this item.
    pub kv_p2p_transfer: Option<String>,
}

/// A schema-B `scenarios.agentic-coding` block: trace-replay runs of a fixed duration.
#[derive(Debug, Clone, PartialEq)]
pub struct Agentic {
    /// Share (0, 1] of the node's CPU DRAM given to KV offloading; required when any item
    /// offloads to DRAM.
    pub dram_utilization: Option<f64>,
    /// Search-space items in file order.
    pub search_space: Vec<AgenticItem>,
}

/// One agentic search-space item: a single-node layout (`tp` …) or prefill/decode workers.
#[derive(Debug, Clone, PartialEq)]
pub struct AgenticItem {
    /// Single-node tensor parallel size (`None` for multinode items).
    pub tp: Option<u32>,
    /// Pipeline parallel size (default 1).
    pub pp: u32,
    /// Decode context parallel size (default 1).
    pub dcp_size: u32,
    /// Prefill context parallel size (default 1).
    pub pcp_size: u32,
    /// Expert parallel size as written (rows default to 1).
    pub ep: Option<u32>,
    /// Data-parallel attention as written (rows default to false).
    pub dp_attn: Option<bool>,
    /// `mtp`, `draft_model` or `none` (default).
    pub spec_decoding: String,
    /// Multinode workers.
    pub pools: Option<Pools>,
    /// `none` or `dram`; required for single-node items, multinode rows default to `none`.
    pub kv_offloading: Option<String>,
    /// The offload implementation; present exactly when offloading is not `none`.
    pub kv_offload_backend: Option<Component>,
    /// Router metadata of this item.
    pub router: Option<Component>,
    /// KV transfer library of this item (multinode).
    pub kv_p2p_transfer: Option<String>,
    /// Which concurrencies to run (no `max-conc` substitution for agentic items).
    pub conc: Concurrency,
}

/// `{name, version}` metadata of an optional component (router, KV offload backend), kept
/// with the key order it was written in: rows copy the mapping verbatim, as the reference
/// generator does, so the order is part of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Component name (`sglang-router`, `hicache`, …).
    pub name: String,
    /// Its own release or commit (required for routers, optional for offload backends).
    pub version: Option<String>,
    /// `version` came before `name` in the source mapping.
    pub version_first: bool,
}

impl Serialize for Component {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        if let (true, Some(v)) = (self.version_first, &self.version) {
            m.serialize_entry("version", v)?;
        }
        m.serialize_entry("name", &self.name)?;
        if let (false, Some(v)) = (self.version_first, &self.version) {
            m.serialize_entry("version", v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Component {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Component;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping with `name` and optionally `version`")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Component, A::Error> {
                use serde::de::Error;
                let (mut name, mut version, mut version_first) = (None, None, false);
                while let Some(k) = a.next_key::<String>()? {
                    match k.as_str() {
                        "name" if name.is_none() => name = Some(a.next_value::<String>()?),
                        "version" if version.is_none() => {
                            version_first = name.is_none();
                            version = Some(a.next_value::<String>()?);
                        }
                        "name" | "version" => {
                            return Err(A::Error::custom(format!("duplicate field `{k}`")))
                        }
                        _ => return Err(A::Error::unknown_field(&k, &["name", "version"])),
                    }
                }
                let name = name.ok_or_else(|| A::Error::missing_field("name"))?;
                Ok(Component {
                    name,
                    version,
                    version_first,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// Concurrency selection of a search-space item.
#[derive(Debug, Clone, PartialEq)]
pub enum Concurrency {
    /// `conc-start`..=`conc-end`, multiplied by the step size.
    Range { start: u32, end: u32 },
    /// `conc-list`: exactly these values, in this order.
    List(Vec<u32>),
}

/// Prefill and decode worker pools of a disaggregated deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Pools {
    pub prefill: Pool,
    pub decode: Pool,
}

/// One worker pool. Serialises as the 2026 generator writes it: the keys in the order the
/// config wrote them, then the parallelism defaults it appends (`pp`, `dcp-size`,
/// `pcp-size`) when they were not written.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Number of engine workers in the pool (0 allowed: aggregated serving).
    pub num_worker: u32,
    /// Tensor parallel size of one worker.
    pub tp: u32,
    /// Expert parallel size of one worker.
    pub ep: u32,
    /// Data-parallel attention.
    pub dp_attn: bool,
    /// Hardware of the pool when prefill and decode differ.
    pub hardware: Option<String>,
    /// `KEY=VALUE` settings passed to the launcher.
    pub additional_settings: Option<Vec<String>>,
    /// Pipeline parallel size (default 1).
    pub pp: u32,
    /// Decode context parallel size (default 1).
    pub dcp_size: u32,
    /// Prefill context parallel size (default 1).
    pub pcp_size: u32,
    /// Keys in the order they were written; serialisation replays it.
    pub written: Vec<PoolKey>,
}

/// The keys of a worker pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKey {
    NumWorker,
    Tp,
    Ep,
    DpAttn,
    Hardware,
    AdditionalSettings,
    Pp,
    DcpSize,
    PcpSize,
}

impl PoolKey {
    const ALL: [(&'static str, PoolKey); 9] = [
        ("num-worker", PoolKey::NumWorker),
        ("tp", PoolKey::Tp),
        ("pp", PoolKey::Pp),
        ("dcp-size", PoolKey::DcpSize),
        ("pcp-size", PoolKey::PcpSize),
        ("ep", PoolKey::Ep),
        ("dp-attn", PoolKey::DpAttn),
        ("hardware", PoolKey::Hardware),
        ("additional-settings", PoolKey::AdditionalSettings),
    ];
    const NAMES: [&'static str; 9] = [
        "num-worker",
        "tp",
        "pp",
        "dcp-size",
        "pcp-size",
        "ep",
        "dp-attn",
        "hardware",
        "additional-settings",
    ];
}

impl Pool {
    /// GPUs one worker replica spans: tp × pp × pcp-size.
    pub fn gpus(&self) -> u64 {
        u64::from(self.tp) * u64::from(self.pp) * u64::from(self.pcp_size)
    }
}

impl Serialize for Pool {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        let put = |m: &mut S::SerializeMap, k: PoolKey| -> Result<(), S::Error> {
            match k {
                PoolKey::NumWorker => m.serialize_entry("num-worker", &self.num_worker),
                PoolKey::Tp => m.serialize_entry("tp", &self.tp),
                PoolKey::Ep => m.serialize_entry("ep", &self.ep),
                PoolKey::DpAttn => m.serialize_entry("dp-attn", &self.dp_attn),
                PoolKey::Hardware => m.serialize_entry("hardware", &self.hardware),
                PoolKey::AdditionalSettings => {
                    m.serialize_entry("additional-settings", &self.additional_settings)
                }
                PoolKey::Pp => m.serialize_entry("pp", &self.pp),
                PoolKey::DcpSize => m.serialize_entry("dcp-size", &self.dcp_size),
                PoolKey::PcpSize => m.serialize_entry("pcp-size", &self.pcp_size),
            }
        };
        for k in &self.written {
            put(&mut m, *k)?;
        }
        for k in [PoolKey::Pp, PoolKey::DcpSize, PoolKey::PcpSize] {
            if !self.written.contains(&k) {
                put(&mut m, k)?;
            }
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Pool {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Pool;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a worker mapping (num-worker, tp, ep, dp-attn, …)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Pool, A::Error> {
                use serde::de::Error;
                let mut p = Pool {
                    num_worker: 0,
                    tp: 0,
                    ep: 0,
                    dp_attn: false,
                    hardware: None,
                    additional_settings: None,
                    pp: 1,
                    dcp_size: 1,
                    pcp_size: 1,
                    written: vec![],
                };
                while let Some(k) = a.next_key::<String>()? {
                    let Some(&(_, key)) = PoolKey::ALL.iter().find(|(n, _)| *n == k) else {
                        return Err(A::Error::unknown_field(&k, &PoolKey::NAMES));
                    };
                    if p.written.contains(&key) {
                        return Err(A::Error::custom(format!("duplicate field `{k}`")));
                    }
                    match key {
                        PoolKey::NumWorker => p.num_worker = a.next_value()?,
                        PoolKey::Tp => p.tp = a.next_value()?,
                        PoolKey::Ep => p.ep = a.next_value()?,
                        PoolKey::DpAttn => p.dp_attn = a.next_value()?,
                        PoolKey::Hardware => p.hardware = Some(a.next_value()?),
                        PoolKey::AdditionalSettings => {
                            p.additional_settings = Some(a.next_value()?)
                        }
                        PoolKey::Pp => p.pp = a.next_value()?,
                        PoolKey::DcpSize => p.dcp_size = a.next_value()?,
                        PoolKey::PcpSize => p.pcp_size = a.next_value()?,
                    }
                    p.written.push(key);
                }
                for (key, name) in [
                    (PoolKey::NumWorker, "num-worker"),
                    (PoolKey::Tp, "tp"),
                    (PoolKey::Ep, "ep"),
                    (PoolKey::DpAttn, "dp-attn"),
                ] {
                    if !p.written.contains(&key) {
                        return Err(A::Error::missing_field(name));
                    }
                }
                Ok(p)
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEntry {
    image: String,
    model: String,
    model_prefix: String,
    runner: String,
    precision: String,
    framework: String,
    #[serde(default)]
    seq_len_configs: Option<Vec<RawSeqLen>>,
    #[serde(default)]
    scenarios: Option<RawScenarios>,
    #[serde(default)]
    multinode: Option<bool>,
    #[serde(default)]
    disagg: Option<bool>,
}

/// Only recognised so that a schema-B entry in a schema-A file gets a "mixes schemas"
/// message rather than "unknown field".
#[derive(Deserialize)]
struct RawScenarios {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSeqLen {
    isl: u32,
    osl: u32,
    search_space: Vec<RawSearch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSearch {
    #[serde(default)]
    tp: Option<u32>,
    #[serde(default)]
    ep: Option<u32>,
    #[serde(default)]
    dp_attn: Option<bool>,
    #[serde(default)]
    conc_start: Option<u32>,
    #[serde(default)]
    conc_end: Option<u32>,
    #[serde(default)]
    conc_list: Option<Vec<u32>>,
    #[serde(default)]
    pp: Option<u32>,
    #[serde(default)]
    spec_decoding: Option<String>,
    #[serde(default)]
    dcp_size: Option<u32>,
    #[serde(default)]
    pcp_size: Option<u32>,
    #[serde(default)]
    prefill: Option<Pool>,
    #[serde(default)]
    decode: Option<Pool>,
}

/// A whole master file: its entries in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterConfig {
    /// How the file was named to us (path, or `REV:path` for `scheduler diff`); used in errors.
    pub file: String,
    pub entries: Vec<Entry>,
}

impl MasterConfig {
    /// Read and validate a master file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (file, text) = super::read_file(path)?;
        Self::parse(&file, &text)
    }

    /// Parse master YAML; `file` names the source in errors. The schema is the first
    /// entry's: `scenarios` means schema B, anything else is read as schema A.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        if super::ix2026::is_schema_b(text) {
            return super::ix2026::parse(file, text);
        }
        let UniqueMap(raw) = parse_yaml::<UniqueMap<RawEntry>>(file, text)?;
        if raw.is_empty() {
            return Err(ConfigError::invalid(file, "", ".", "file has no entries"));
        }
        let entries = raw
            .into_iter()
            .map(|(key, e)| normalise(file, key, e))
            .collect::<Result<_, _>>()?;
        Ok(MasterConfig {
            file: file.to_string(),
            entries,
        })
    }
}

fn normalise(file: &str, key: String, e: RawEntry) -> Result<Entry, ConfigError> {
    let bad = |path: String, msg: String| ConfigError::invalid(file, &key, path, msg);
    for (name, v) in [
        ("image", &e.image),
        ("model", &e.model),
        ("model-prefix", &e.model_prefix),
        ("runner", &e.runner),
        ("precision", &e.precision),
        ("framework", &e.framework),
    ] {
        if v.trim().is_empty() {
            return Err(bad(name.into(), "must not be empty".into()));
        }
    }
    let (schema, raw_seq, list_path) =
        match (e.seq_len_configs, e.scenarios) {
            (Some(_), Some(_)) => return Err(bad(
                ".".into(),
                "mixes schemas: has both `seq-len-configs` (schema A) and `scenarios` (schema B)"
                    .into(),
            )),
            (None, None) => {
                return Err(bad(
                    ".".into(),
                    "missing field `seq-len-configs` (schema A) or `scenarios` (schema B)".into(),
                ))
            }
            (Some(s), None) => (Schema::A, s, "seq-len-configs"),
            (None, Some(_)) => return Err(bad(
                "scenarios".into(),
                "mixes schemas: this entry uses `scenarios` (schema B) but the file's first entry uses `seq-len-configs` (schema A); one file holds one schema"
                    .into(),
            )),
        };
    if schema == Schema::A {
        for (name, present) in [
            ("multinode", e.multinode.is_some()),
            ("disagg", e.disagg.is_some()),
        ] {
            if present {
                return Err(bad(
                    name.into(),
                    format!("mixes schemas: `{name}` is a schema-B field but the entry uses `seq-len-configs` (schema A)"),
                ));
            }
        }
    }
    let multinode = match (schema, e.multinode) {
        (Schema::B, None) => {
            return Err(bad(
                ".".into(),
                "missing field `multinode` (schema B requires true or false)".into(),
            ))
        }
        (_, m) => m.unwrap_or(false),
    };
    let disagg = e.disagg.unwrap_or(false);
    if disagg && !multinode {
        return Err(bad(
            "disagg".into(),
            "`disagg: true` needs `multinode: true`".into(),
        ));
    }
    if raw_seq.is_empty() {
        return Err(bad(list_path.into(), "list is empty".into()));
    }
    let mut seq_lens = Vec::with_capacity(raw_seq.len());
    for (i, s) in raw_seq.into_iter().enumerate() {
        let sp = format!("{list_path}[{i}]");
        if s.isl == 0 || s.osl == 0 {
            return Err(bad(sp, "isl and osl must be positive".into()));
        }
        if u64::from(s.isl) + u64::from(s.osl) + 200 > u64::from(u32::MAX) {
            return Err(bad(
                sp,
                "isl + osl + 200 exceeds the largest supported length".into(),
            ));
        }
        if s.search_space.is_empty() {
            return Err(bad(format!("{sp}.search-space"), "list is empty".into()));
        }
        let mut items = Vec::with_capacity(s.search_space.len());
        for (j, r) in s.search_space.into_iter().enumerate() {
            let path = format!("{sp}.search-space[{j}]");
            items.push(search_item(schema, multinode, r).map_err(|(field, msg)| {
                bad(
                    if field.is_empty() {
                        path.clone()
                    } else {
                        format!("{path}.{field}")
                    },
                    msg,
                )
            })?);
        }
        seq_lens.push(SeqLen {
            isl: s.isl,
            osl: s.osl,
            search_space: items,
        });
    }
    Ok(Entry {
        key,
        image: e.image,
        model: e.model,
        model_prefix: e.model_prefix,
        runner: e.runner,
        precision: e.precision,
        framework: e.framework,
        schema,
        multinode,
        disagg,
        seq_lens,
        agentic: vec![],
        router: None,
        kv_p2p_transfer: None,
    })
}

/// Validate one search-space item; errors are (field, message) relative to the item.
fn search_item(
    schema: Schema,
    multinode: bool,
    r: RawSearch,
) -> Result<SearchSpace, (&'static str, String)> {
    if schema == Schema::A {
        for (name, present) in [
            ("conc-list", r.conc_list.is_some()),
            ("pp", r.pp.is_some()),
            ("spec-decoding", r.spec_decoding.is_some()),
            ("dcp-size", r.dcp_size.is_some()),
            ("pcp-size", r.pcp_size.is_some()),
            ("prefill", r.prefill.is_some()),
            ("decode", r.decode.is_some()),
        ] {
            if present {
                return Err((
                    name,
                    format!("mixes schemas: `{name}` is a schema-B field but the entry uses `seq-len-configs` (schema A)"),
                ));
            }
        }
    }
    let conc = match (r.conc_start, r.conc_end, r.conc_list) {
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            return Err((
                "conc-list",
                "give either `conc-list` or `conc-start`/`conc-end`, not both".into(),
            ))
        }
        (None, None, None) => {
            return Err((
                "",
                if schema == Schema::A {
                    "missing field `conc-start` and `conc-end`".into()
                } else {
                    "missing field `conc-start`/`conc-end` or `conc-list`".into()
                },
            ))
        }
        (Some(_), None, None) => return Err(("", "missing field `conc-end`".into())),
        (None, Some(_), None) => return Err(("", "missing field `conc-start`".into())),
        (Some(start), Some(end), None) => {
            if start == 0 {
                return Err(("conc-start", "must be at least 1".into()));
            }
            if start > end {
                return Err((
                    "conc-end",
                    format!("conc-end {end} is below conc-start {start}"),
                ));
            }
            Concurrency::Range { start, end }
        }
        (None, None, Some(list)) => {
            if list.is_empty() {
                return Err(("conc-list", "list is empty".into()));
            }
            if list.contains(&0) {
                return Err(("conc-list", "concurrencies must be at least 1".into()));
            }
            Concurrency::List(list)
        }
    };
    let pools = match (r.prefill, r.decode) {
        (Some(prefill), Some(decode)) => {
            if !multinode {
                return Err((
                    "prefill",
                    "`prefill`/`decode` pools need `multinode: true` on the entry".into(),
                ));
            }
            for (name, p) in [("prefill", &prefill), ("decode", &decode)] {
                if [p.tp, p.ep, p.pp, p.dcp_size, p.pcp_size].contains(&0) {
                    return Err((
                        name,
                        "tp, ep, pp, dcp-size and pcp-size must be at least 1".into(),
                    ));
                }
            }
            Some(Pools { prefill, decode })
        }
        (Some(_), None) => return Err(("decode", "missing: `prefill` needs `decode`".into())),
        (None, Some(_)) => return Err(("prefill", "missing: `decode` needs `prefill`".into())),
        (None, None) => {
            if multinode {
                return Err((
                    "",
                    "a `multinode: true` entry needs `prefill` and `decode` pools".into(),
                ));
            }
            None
        }
    };
    let tp = match (r.tp, &pools) {
        (Some(tp), None) => tp,
        (None, Some(p)) => p.prefill.tp,
        (Some(_), Some(_)) => {
            return Err((
                "tp",
                "disaggregated items set `tp` inside `prefill`/`decode`".into(),
            ))
        }
        (None, None) => return Err(("", "missing field `tp`".into())),
    };
    for (name, v) in [
        ("tp", Some(tp)),
        ("ep", r.ep),
        ("pp", r.pp),
        ("dcp-size", r.dcp_size),
        ("pcp-size", r.pcp_size),
    ] {
        if v == Some(0) {
            return Err((name, "must be at least 1".into()));
        }
    }
    if let Some(s) = &r.spec_decoding {
        if !["mtp", "draft_model", "none"].contains(&s.as_str()) {
            return Err((
                "spec-decoding",
                format!("`{s}` is not one of mtp, draft_model, none"),
            ));
        }
    }
    if pools.is_none() {
        if let Some(d) = r.dcp_size {
            if tp % d != 0 {
                return Err((
                    "dcp-size",
                    format!("tp {tp} is not divisible by dcp-size {d}"),
                ));
            }
        }
    }
    Ok(SearchSpace {
        tp,
        ep: r.ep.unwrap_or(1),
        dp_attn: r.dp_attn.unwrap_or(false),
        pp: r.pp,
        spec_decoding: r.spec_decoding,
        dcp_size: r.dcp_size,
        pcp_size: r.pcp_size,
        pools,
        conc,
        empty_conc_list: false,
        router: None,
        kv_p2p_transfer: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "e1:\n  image: img\n  model: org/m\n  model-prefix: dsr1\n  runner: mi355x\n  precision: fp4\n  framework: sglang\n  seq-len-configs:\n  - isl: 1024\n    osl: 1024\n    search-space:\n    - { tp: 8, conc-start: 4, conc-end: 64 }\n";

    #[test]
    fn schema_a_defaults() {
        let m = MasterConfig::parse("a.yaml", A).unwrap();
        let e = &m.entries[0];
        assert_eq!(e.schema, Schema::A);
        let s = &e.seq_lens[0].search_space[0];
        assert_eq!((s.tp, s.ep, s.dp_attn), (8, 1, false));
        assert_eq!(s.conc, Concurrency::Range { start: 4, end: 64 });
    }

    #[test]
    fn conc_start_above_end() {
        let t = A.replace("conc-start: 4, conc-end: 64", "conc-start: 8, conc-end: 4");
        let e = MasterConfig::parse("a.yaml", &t).unwrap_err().to_string();
        assert_eq!(
            e,
            "a.yaml: entry `e1`: seq-len-configs[0].search-space[0].conc-end: conc-end 4 is below conc-start 8"
        );
    }
}
