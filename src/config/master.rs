//! InferenceMAX master configs: `entry-name -> entry` mappings that describe what to sweep.
//!
//! Two schemas exist in the wild. Schema A (Nov 2025, the bounty's era) puts
//! `seq-len-configs` on each entry; schema B (2026) moves them under
//! `scenarios.fixed-seq-len` and adds `multinode`, `disagg`, `conc-list`, `pp`,
//! `spec-decoding`, `dcp-size`, `pcp-size` and disaggregated prefill/decode pools. Both parse
//! into one normalised [`Entry`] so the sweep stage never sees the difference; an entry that
//! mixes the two is refused.

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
    /// Sequence-length scenarios, in file order.
    pub seq_lens: Vec<SeqLen>,
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
        let items = self.seq_lens.iter().flat_map(|s| &s.search_space);
        let uses_mtp = items
            .clone()
            .any(|i| i.spec_decoding.as_deref() == Some("mtp"));
        let uses_plain = items
            .clone()
            .any(|i| i.spec_decoding.as_deref() != Some("mtp"));
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
    /// `scenarios.fixed-seq-len` (2026).
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
    /// Disaggregated prefill/decode pools (schema B, `disagg: true`).
    pub pools: Option<Pools>,
    /// Which concurrencies to run.
    pub conc: Concurrency,
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

/// One worker pool. Serialises in the 2026 generator's order: the written keys, then the
/// parallelism defaults it appends (`pp`, `dcp-size`, `pcp-size`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Pool {
    /// Number of engine workers in the pool (0 allowed: aggregated serving).
    pub num_worker: u32,
    pub tp: u32,
    pub ep: u32,
    pub dp_attn: bool,
    /// Hardware of the pool when prefill and decode differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<String>,
    /// `KEY=VALUE` settings passed to the launcher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_settings: Option<Vec<String>>,
    #[serde(default = "one")]
    pub pp: u32,
    #[serde(default = "one")]
    pub dcp_size: u32,
    #[serde(default = "one")]
    pub pcp_size: u32,
}

fn one() -> u32 {
    1
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawScenarios {
    fixed_seq_len: Vec<RawSeqLen>,
}

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

    /// Parse master YAML; `file` names the source in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
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
            (None, Some(s)) => (Schema::B, s.fixed_seq_len, "scenarios.fixed-seq-len"),
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
