//! Schema B: InferenceX's 2026 master configs (`configs/*-master.yaml` at 843c6254f).
//!
//! InferenceX checks these files with pydantic models (`utils/matrix_logic/validation.py`);
//! every rule of those models is enforced here, so a file we accept is one its generator
//! accepts and a file it refuses we refuse too, with the entry key and field path (and
//! `file:line:col` for type errors, unknown keys and missing keys, from the parser). Where the
//! reference would accept a value only to crash or emit nonsense later (a multinode agentic
//! item with `tp`, `tp: 0`, a string where an integer belongs), we refuse it up front; those
//! additions are marked "ours" below.

use super::master::{
    Agentic, AgenticItem, Component, Concurrency, Entry, MasterConfig, Pool, Pools, Schema,
    SearchSpace, SeqLen,
};
use super::{parse_yaml, ConfigError, UniqueMap};
use serde::Deserialize;

/// Whether `text` is a schema-B file: its first entry has `scenarios` (and not also
/// `seq-len-configs`, which the schema-A reader reports as a mix). Only the first entry's
/// top-level keys are looked at, so any other problem is left to the full parse to report
/// with its location.
pub(crate) fn is_schema_b(text: &str) -> bool {
    use serde::de::{IgnoredAny, MapAccess, Visitor};
    #[derive(Deserialize)]
    #[serde(rename_all = "kebab-case")]
    struct Probe {
        #[serde(default)]
        scenarios: Option<IgnoredAny>,
        #[serde(default)]
        seq_len_configs: Option<IgnoredAny>,
    }
    struct First;
    impl<'de> Visitor<'de> for First {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a mapping")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<bool, A::Error> {
            let b = match a.next_entry::<IgnoredAny, Probe>()? {
                Some((_, p)) => p.scenarios.is_some() && p.seq_len_configs.is_none(),
                None => false,
            };
            while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(b)
        }
    }
    serde::Deserializer::deserialize_map(serde_yaml::Deserializer::from_str(text), First)
        .unwrap_or(false)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEntry {
    image: String,
    model: String,
    model_prefix: String,
    precision: String,
    framework: String,
    runner: String,
    #[serde(default)]
    multinode: Option<bool>,
    #[serde(default)]
    disagg: Option<bool>,
    #[serde(default)]
    router: Option<Component>,
    #[serde(default)]
    kv_p2p_transfer: Option<String>,
    scenarios: RawScenarios,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawScenarios {
    #[serde(default)]
    fixed_seq_len: Option<Vec<RawSeqLen>>,
    #[serde(default)]
    agentic_coding: Option<Vec<RawAgentic>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSeqLen {
    isl: u32,
    osl: u32,
    search_space: Vec<RawItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAgentic {
    search_space: Vec<RawItem>,
    #[serde(default)]
    dram_utilization: Option<f64>,
}

/// Every key any search-space item may carry; which ones a given item may use depends on
/// its scenario and on `multinode`, checked after parsing.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawItem {
    #[serde(default)]
    tp: Option<u32>,
    #[serde(default)]
    pp: Option<u32>,
    #[serde(default)]
    dcp_size: Option<u32>,
    #[serde(default)]
    pcp_size: Option<u32>,
    #[serde(default)]
    ep: Option<u32>,
    #[serde(default)]
    dp_attn: Option<bool>,
    #[serde(default)]
    spec_decoding: Option<String>,
    #[serde(default)]
    prefill: Option<Pool>,
    #[serde(default)]
    decode: Option<Pool>,
    #[serde(default)]
    kv_offloading: Option<String>,
    #[serde(default)]
    kv_offload_backend: Option<Component>,
    #[serde(default)]
    router: Option<Component>,
    #[serde(default)]
    kv_p2p_transfer: Option<String>,
    #[serde(default)]
    conc_start: Option<u32>,
    #[serde(default)]
    conc_end: Option<u32>,
    #[serde(default)]
    conc_list: Option<Vec<u32>>,
}

/// A rule violation inside one entry: (path relative to the entry, message).
type Bad = (String, String);

fn bad(path: impl Into<String>, msg: impl Into<String>) -> Bad {
    (path.into(), msg.into())
}

/// Parse and validate a schema-B master file.
pub(crate) fn parse(file: &str, text: &str) -> Result<MasterConfig, ConfigError> {
    let UniqueMap(raw) = parse_yaml::<UniqueMap<RawEntry>>(file, text)?;
    if raw.is_empty() {
        return Err(ConfigError::invalid(file, "", ".", "file has no entries"));
    }
    let entries = raw
        .into_iter()
        .map(|(key, e)| {
            entry(&key, e).map_err(|(path, msg)| {
                ConfigError::invalid(
                    file,
                    &key,
                    if path.is_empty() { ".".into() } else { path },
                    msg,
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(MasterConfig {
        file: file.to_string(),
        entries,
    })
}

fn entry(key: &str, e: RawEntry) -> Result<Entry, Bad> {
    if key.contains('*') {
        return Err(bad(
            "",
            "wildcard `*` is not allowed in master config keys (reserved for changelog patterns)",
        ));
    }
    // Ours: the reference accepts empty strings here and fails at launch.
    for (name, v) in [
        ("image", &e.image),
        ("model", &e.model),
        ("model-prefix", &e.model_prefix),
        ("runner", &e.runner),
        ("precision", &e.precision),
        ("framework", &e.framework),
    ] {
        if v.trim().is_empty() {
            return Err(bad(name, "must not be empty"));
        }
    }
    let multinode = e
        .multinode
        .ok_or_else(|| bad("", "missing field `multinode` (true or false)"))?;
    let disagg = e.disagg.unwrap_or(false);
    if !multinode {
        if disagg {
            return Err(bad(
                "disagg",
                "must be false for a single-node entry (`multinode: false`)",
            ));
        }
        if e.kv_p2p_transfer.is_some() {
            return Err(bad(
                "kv-p2p-transfer",
                "extra field for a single-node entry: kv-p2p-transfer is only valid when multinode=true",
            ));
        }
    }
    if let Some(r) = &e.router {
        router("router", r)?;
    }
    if let Some(t) = &e.kv_p2p_transfer {
        non_empty("kv-p2p-transfer", t)?;
    }
    let fixed = e.scenarios.fixed_seq_len.unwrap_or_default();
    let agentic = e.scenarios.agentic_coding.unwrap_or_default();
    if fixed.is_empty() && agentic.is_empty() {
        return Err(bad(
            "scenarios",
            "at least one scenario type (fixed-seq-len or agentic-coding) must be specified",
        ));
    }
    if !agentic.is_empty() && !e.runner.starts_with("cluster:") {
        return Err(bad(
            "runner",
            format!(
                "agentic master configs must use a `cluster:<name>` runner so every point runs on one exact hardware fleet (got `{}`)",
                e.runner
            ),
        ));
    }
    let mut seq_lens = Vec::with_capacity(fixed.len());
    for (i, s) in fixed.into_iter().enumerate() {
        let sp = format!("scenarios.fixed-seq-len[{i}]");
        // Ours: zero lengths would make a meaningless benchmark.
        if s.isl == 0 || s.osl == 0 {
            return Err(bad(sp, "isl and osl must be positive"));
        }
        let mut items = Vec::with_capacity(s.search_space.len());
        for (j, r) in s.search_space.into_iter().enumerate() {
            let p = format!("{sp}.search-space[{j}]");
            items.push(fixed_item(multinode, r).map_err(|(f, m)| (join(&p, &f), m))?);
        }
        seq_lens.push(SeqLen {
            isl: s.isl,
            osl: s.osl,
            search_space: items,
        });
    }
    let mut agentic_out = Vec::with_capacity(agentic.len());
    for (i, a) in agentic.into_iter().enumerate() {
        let ap = format!("scenarios.agentic-coding[{i}]");
        if let Some(u) = a.dram_utilization {
            if !(u > 0.0 && u <= 1.0) {
                return Err(bad(
                    format!("{ap}.dram-utilization"),
                    format!("must be greater than 0 and at most 1 (got {u})"),
                ));
            }
        }
        let mut items = Vec::with_capacity(a.search_space.len());
        for (j, r) in a.search_space.into_iter().enumerate() {
            let p = format!("{ap}.search-space[{j}]");
            items.push(agentic_item(multinode, r).map_err(|(f, m)| (join(&p, &f), m))?);
        }
        if a.dram_utilization.is_none() {
            if let Some(j) = items
                .iter()
                .position(|i| i.kv_offloading.as_deref() == Some("dram"))
            {
                return Err(bad(
                    format!("{ap}.dram-utilization"),
                    format!("required: search-space[{j}] has kv-offloading='dram', whose budget is dram-utilization of the runner's CPU DRAM"),
                ));
            }
        }
        agentic_out.push(Agentic {
            dram_utilization: a.dram_utilization,
            search_space: items,
        });
    }
    component_scope(
        multinode,
        disagg,
        e.router.is_some(),
        e.kv_p2p_transfer.is_some(),
        &seq_lens,
        &agentic_out,
    )?;
    Ok(Entry {
        key: key.to_string(),
        image: e.image,
        model: e.model,
        model_prefix: e.model_prefix,
        runner: e.runner,
        precision: e.precision,
        framework: e.framework,
        schema: Schema::B,
        multinode,
        disagg,
        seq_lens,
        agentic: agentic_out,
        router: e.router,
        kv_p2p_transfer: e.kv_p2p_transfer,
    })
}

fn join(prefix: &str, field: &str) -> String {
    if field.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

/// `router`/`kv-p2p-transfer` live at one level only; transfer is multinode-only and
/// required (somewhere) for disaggregated serving.
fn component_scope(
    multinode: bool,
    disagg: bool,
    top_router: bool,
    top_transfer: bool,
    fixed: &[SeqLen],
    agentic: &[Agentic],
) -> Result<(), Bad> {
    let items: Vec<(Option<&Component>, Option<&String>)> = fixed
        .iter()
        .flat_map(|s| &s.search_space)
        .map(|i| (i.router.as_ref(), i.kv_p2p_transfer.as_ref()))
        .chain(
            agentic
                .iter()
                .flat_map(|a| &a.search_space)
                .map(|i| (i.router.as_ref(), i.kv_p2p_transfer.as_ref())),
        )
        .collect();
    for (name, top, any) in [
        ("router", top_router, items.iter().any(|i| i.0.is_some())),
        (
            "kv-p2p-transfer",
            top_transfer,
            items.iter().any(|i| i.1.is_some()),
        ),
    ] {
        if top && any {
            return Err(bad(
                name,
                format!("{name} must be declared either at the top level or in search-space entries, not both"),
            ));
        }
    }
    if !multinode && items.iter().any(|i| i.1.is_some()) {
        return Err(bad(
            "scenarios",
            "kv-p2p-transfer is only valid when multinode=true",
        ));
    }
    if disagg && !top_transfer && (items.is_empty() || items.iter().any(|i| i.1.is_none())) {
        return Err(bad(
            "kv-p2p-transfer",
            "disagg=true requires kv-p2p-transfer at the top level or in every search-space entry",
        ));
    }
    Ok(())
}

fn non_empty(path: &str, v: &str) -> Result<(), Bad> {
    if v.is_empty() {
        return Err(bad(path, "must be at least 1 character long"));
    }
    Ok(())
}

fn version_ok(path: &str, v: &str) -> Result<(), Bad> {
    non_empty(path, v)?;
    if v.starts_with("image:") {
        return Err(bad(
            path,
            "component version must be a release, package version, or source commit, not an image reference",
        ));
    }
    Ok(())
}

/// Router metadata: non-empty name and version; the version is the component's own.
fn router(path: &str, c: &Component) -> Result<(), Bad> {
    non_empty(&format!("{path}.name"), &c.name)?;
    match &c.version {
        None => Err(bad(path, "missing field `version`")),
        Some(v) => version_ok(&format!("{path}.version"), v),
    }
}

/// KV offload backend metadata: non-empty name, optional version.
fn backend(path: &str, c: &Component) -> Result<(), Bad> {
    non_empty(&format!("{path}.name"), &c.name)?;
    if let Some(v) = &c.version {
        version_ok(&format!("{path}.version"), v)?;
    }
    Ok(())
}

fn spec(s: Option<String>) -> Result<String, Bad> {
    let s = s.unwrap_or_else(|| "none".into());
    if !["mtp", "draft_model", "none"].contains(&s.as_str()) {
        return Err(bad(
            "spec-decoding",
            format!("`{s}` is not one of 'mtp', 'draft_model', 'none'"),
        ));
    }
    Ok(s)
}

/// `pp`, `dcp-size`, `pcp-size` are strict positive integers.
fn positive(name: &str, v: Option<u32>) -> Result<u32, Bad> {
    match v {
        Some(0) => Err(bad(name, "must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(1),
    }
}

fn tp_dcp(tp: u32, dcp: u32) -> Result<(), Bad> {
    if !tp.is_multiple_of(dcp) {
        return Err(bad(
            "dcp-size",
            format!("'tp' ({tp}) must be divisible by 'dcp-size' ({dcp})"),
        ));
    }
    Ok(())
}

/// Exactly one concurrency form: `conc-start` and `conc-end` (both > 0, start ≤ end) or a
/// non-empty `conc-list` (all > 0).
fn conc(r: &RawItem) -> Result<(Concurrency, bool), Bad> {
    let range = r.conc_start.zip(r.conc_end);
    let list = r.conc_list.as_ref().filter(|l| !l.is_empty());
    let c = match (range, list) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "conc-list",
                "cannot specify both 'conc-list' list and 'conc-start'/'conc-end'. Use either a list or a range, not both.",
            ))
        }
        (None, None) => {
            return Err(bad(
                "",
                "must specify either 'conc-list' list or both 'conc-start' and 'conc-end'.",
            ))
        }
        (Some((start, end)), None) => {
            if start == 0 || end == 0 {
                return Err(bad(
                    "conc-start",
                    "'conc-start' and 'conc-end' must be greater than 0.",
                ));
            }
            if start > end {
                return Err(bad(
                    "conc-end",
                    format!("'conc-start' ({start}) must be <= 'conc-end' ({end})."),
                ));
            }
            Concurrency::Range { start, end }
        }
        (None, Some(l)) => {
            if l.contains(&0) {
                return Err(bad("conc-list", "'conc-list' entries must be greater than 0."));
            }
            Concurrency::List(l.clone())
        }
    };
    Ok((c, r.conc_list.as_ref().is_some_and(Vec::is_empty)))
}

/// Worker checks shared by fixed and agentic multinode items.
fn workers(prefill: &Pool, decode: &Pool) -> Result<(), Bad> {
    for (name, w) in [("prefill", prefill), ("decode", decode)] {
        for (f, v) in [
            ("pp", w.pp),
            ("dcp-size", w.dcp_size),
            ("pcp-size", w.pcp_size),
        ] {
            if v == 0 {
                return Err(bad(format!("{name}.{f}"), "must be greater than 0"));
            }
        }
        // Ours: a zero-GPU worker cannot exist.
        if w.tp == 0 {
            return Err(bad(format!("{name}.tp"), "must be at least 1"));
        }
        tp_dcp(w.tp, w.dcp_size).map_err(|(f, m)| (format!("{name}.{f}"), m))?;
        if let Some(h) = &w.hardware {
            non_empty(&format!("{name}.hardware"), h)?;
        }
    }
    if prefill.hardware.is_some() != decode.hardware.is_some() {
        return Err(bad(
            "",
            "'hardware' must be specified for both 'prefill' and 'decode', or neither",
        ));
    }
    Ok(())
}

/// Keys an item carries that its kind does not allow (pydantic's `extra='forbid'`).
fn extra(present: &[(&str, bool)], kind: &str) -> Result<(), Bad> {
    if let Some((name, _)) = present.iter().find(|(_, p)| *p) {
        return Err(bad(
            *name,
            format!("extra field not permitted in a {kind} search-space entry"),
        ));
    }
    Ok(())
}

fn fixed_item(multinode: bool, r: RawItem) -> Result<SearchSpace, Bad> {
    let common_extra = [
        ("kv-offloading", r.kv_offloading.is_some()),
        ("kv-offload-backend", r.kv_offload_backend.is_some()),
    ];
    extra(&common_extra, "fixed-seq-len")?;
    let (c, empty_conc_list) = conc(&r)?;
    if let Some(rt) = &r.router {
        router("router", rt)?;
    }
    let spec_decoding = spec(r.spec_decoding.clone())?;
    if multinode {
        extra(
            &[
                ("tp", r.tp.is_some()),
                ("pp", r.pp.is_some()),
                ("dcp-size", r.dcp_size.is_some()),
                ("pcp-size", r.pcp_size.is_some()),
                ("ep", r.ep.is_some()),
                ("dp-attn", r.dp_attn.is_some()),
            ],
            "multinode fixed-seq-len",
        )?;
        let (Some(prefill), Some(decode)) = (r.prefill, r.decode) else {
            return Err(bad(
                "",
                "missing field `prefill`/`decode`: multinode entries run prefill and decode workers",
            ));
        };
        workers(&prefill, &decode)?;
        if let Some(t) = &r.kv_p2p_transfer {
            non_empty("kv-p2p-transfer", t)?;
        }
        return Ok(SearchSpace {
            tp: prefill.tp,
            ep: prefill.ep,
            dp_attn: prefill.dp_attn,
            pp: None,
            spec_decoding: Some(spec_decoding),
            dcp_size: None,
            pcp_size: None,
            pools: Some(Pools { prefill, decode }),
            conc: c,
            empty_conc_list,
            router: r.router,
            kv_p2p_transfer: r.kv_p2p_transfer,
        });
    }
    extra(
        &[
            ("prefill", r.prefill.is_some()),
            ("decode", r.decode.is_some()),
            ("kv-p2p-transfer", r.kv_p2p_transfer.is_some()),
        ],
        "single-node fixed-seq-len",
    )?;
    let tp = r.tp.ok_or_else(|| bad("", "missing field `tp`"))?;
    // Ours: tp 0 would launch nothing.
    if tp == 0 {
        return Err(bad("tp", "must be at least 1"));
    }
    let pp = positive("pp", r.pp)?;
    let dcp = positive("dcp-size", r.dcp_size)?;
    let pcp = positive("pcp-size", r.pcp_size)?;
    tp_dcp(tp, dcp)?;
    Ok(SearchSpace {
        tp,
        ep: r.ep.unwrap_or(1),
        dp_attn: r.dp_attn.unwrap_or(false),
        pp: Some(pp),
        spec_decoding: Some(spec_decoding),
        dcp_size: Some(dcp),
        pcp_size: Some(pcp),
        pools: None,
        conc: c,
        empty_conc_list,
        router: r.router,
        kv_p2p_transfer: None,
    })
}

fn agentic_item(multinode: bool, r: RawItem) -> Result<AgenticItem, Bad> {
    let (c, _) = conc(&r)?;
    if let Some(k) = &r.kv_offloading {
        if k != "none" && k != "dram" {
            return Err(bad(
                "kv-offloading",
                format!("`{k}` is not one of 'none', 'dram'"),
            ));
        }
    }
    match (r.kv_offloading.as_deref(), &r.kv_offload_backend) {
        (None, Some(_)) => {
            return Err(bad(
                "kv-offload-backend",
                "kv-offload-backend requires kv-offloading",
            ))
        }
        (Some("none"), Some(_)) => {
            return Err(bad(
                "kv-offload-backend",
                "kv-offload-backend can only be set when kv-offloading is not 'none'",
            ))
        }
        (Some(k), None) if k != "none" => {
            return Err(bad(
                "kv-offload-backend",
                format!("kv-offload-backend is required when kv-offloading is '{k}'"),
            ))
        }
        _ => {}
    }
    if let Some(b) = &r.kv_offload_backend {
        backend("kv-offload-backend", b)?;
    }
    if let Some(rt) = &r.router {
        router("router", rt)?;
    }
    if let Some(t) = &r.kv_p2p_transfer {
        non_empty("kv-p2p-transfer", t)?;
    }
    let spec_decoding = spec(r.spec_decoding.clone())?;
    let pp = positive("pp", r.pp)?;
    let dcp = positive("dcp-size", r.dcp_size)?;
    let pcp = positive("pcp-size", r.pcp_size)?;
    let pools =
        match (r.tp, r.prefill, r.decode) {
            (Some(_), None, None) => None,
            (None, Some(prefill), Some(decode)) => Some(Pools { prefill, decode }),
            _ => return Err(bad(
                "",
                "agentic search-space entries must specify either tp or both prefill and decode",
            )),
        };
    match &pools {
        None => {
            if r.kv_offloading.is_none() {
                return Err(bad(
                    "",
                    "single-node agentic search-space entries must specify kv-offloading",
                ));
            }
            let tp = r.tp.unwrap_or(0);
            // Ours: tp 0 would launch nothing.
            if tp == 0 {
                return Err(bad("tp", "must be at least 1"));
            }
            tp_dcp(tp, dcp)?;
            // Ours: the reference accepts these shapes but its generator cannot expand them.
            if multinode {
                return Err(bad(
                    "tp",
                    "a multinode entry's agentic items need `prefill` and `decode` workers, not `tp`",
                ));
            }
        }
        Some(p) => {
            let set: Vec<&str> = [
                ("'pp'", r.pp.is_some()),
                ("'dcp-size'", r.dcp_size.is_some()),
                ("'pcp-size'", r.pcp_size.is_some()),
            ]
            .iter()
            .filter(|(_, s)| *s)
            .map(|(n, _)| *n)
            .collect();
            if !set.is_empty() {
                return Err(bad(
                    "",
                    format!(
                        "multinode agentic search-space entries cannot specify 'pp', 'dcp-size', 'pcp-size' (found {})",
                        set.join(", ")
                    ),
                ));
            }
            workers(&p.prefill, &p.decode)?;
            if !multinode {
                return Err(bad(
                    "prefill",
                    "`prefill`/`decode` workers need `multinode: true` on the entry",
                ));
            }
        }
    }
    Ok(AgenticItem {
        tp: r.tp,
        pp,
        dcp_size: dcp,
        pcp_size: pcp,
        ep: r.ep,
        dp_attn: r.dp_attn,
        spec_decoding,
        pools,
        kv_offloading: r.kv_offloading,
        kv_offload_backend: r.kv_offload_backend,
        router: r.router,
        kv_p2p_transfer: r.kv_p2p_transfer,
        conc: c,
    })
}
