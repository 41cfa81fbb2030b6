//! Schema-B expansion: the rows InferenceX's 2026 generator
//! (`utils/matrix_logic/generate_sweep_configs.py` at 843c6254f) prints for `full-sweep` and
//! `test-config`, with its filters, its eval marking (`mark_eval_entries`,
//! `mark_all_eval_entries`) and its agentic DRAM arithmetic, byte for byte.
//!
//! The 2026 generator's filters differ from the Nov-2025 one's: `--max-conc` below a range
//! substitutes itself, `--min-conc` raises `conc-start`, `--max-ep` caps rather than drops,
//! only `1k1k`/`8k1k` have names, and `--runner-type` compares the entry's label verbatim.
//! Each is reproduced here rather than reusing the schema-A code paths.

use super::expand::{Evals, Filters, RowShape, SeqLenName};
use super::SweepError;
use crate::config::master::{
    Agentic, AgenticItem, Component, Concurrency, Entry, MasterConfig, Pool,
};
use crate::config::row::{
    AgenticMultinodeRow, AgenticRow, JobRow, KeyOrder, MatrixRow, MultinodeRow,
};
use crate::config::runners::Runners;
use std::collections::HashMap;

/// `DEFAULT_AGENTIC_DURATION_SECONDS`: every agentic row replays for one hour.
pub const AGENTIC_DURATION_S: u64 = 3600;
/// Lowest concurrency at which an evaluation is scheduled.
const MIN_EVAL_CONC: u32 = 16;
/// `MAX_AGENTIC_AVAILABLE_CPU_DRAM_MIB`: node DRAM is capped at 3 TB (decimal) before
/// the utilization share is taken.
const MAX_DRAM_MIB: u64 = 2_861_022;
/// Multinode agentic concurrencies per allocation (one: one job per concurrency).
const MULTINODE_AGENTIC_CHUNK: usize = 1;

/// The scenario types of schema B (`--scenario-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioType {
    #[value(name = "fixed-seq-len")]
    FixedSeqLen,
    #[value(name = "agentic-coding")]
    AgenticCoding,
}

/// What the 2026 generator is asked for.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `full-sweep`: every entry the filters keep.
    Full,
    /// `test-config`: these entries (exact keys or `*`/`?` globs, in this order), every
    /// concurrency at step 2, optionally only `conc`.
    TestConfig {
        /// Keys or patterns.
        keys: Vec<String>,
        /// Only these concurrencies (empty: all).
        conc: Vec<u32>,
    },
}

/// `1k1k` and `8k1k` are the 2026 generator's only named scenarios; anything else is
/// `<isl>_<osl>` (1024/8192 included).
pub fn seq_name(isl: u32, osl: u32) -> String {
    match (isl, osl) {
        (1024, 1024) => "1k1k".into(),
        (8192, 1024) => "8k1k".into(),
        _ => format!("{isl}_{osl}"),
    }
}

fn runners_needed<'a>(runners: Option<&'a Runners>, why: &str) -> Result<&'a Runners, SweepError> {
    runners.ok_or_else(|| {
        SweepError::Schema2026(format!(
            "{why} needs --runner-config (the runners.yaml with `labels:` and `hardware:`)"
        ))
    })
}

/// Expand schema-B configs as the 2026 generator does.
pub fn expand(
    configs: &[MasterConfig],
    f: &Filters,
    runners: Option<(&Runners, &str)>,
    mode: &Mode,
) -> Result<Vec<MatrixRow>, SweepError> {
    let runners_file = runners.map_or("", |r| r.1);
    let runners = runners.map(|r| r.0);
    if f.test_mode {
        return Err(SweepError::Schema2026(
            "--test-mode belongs to the Nov-2025 generator; for 2026 configs use `scheduler test-config --config-keys …`".into(),
        ));
    }
    if let Some(s) = f.seq_lens.iter().find(|s| **s == SeqLenName::K1K8) {
        let _ = s;
        return Err(SweepError::Schema2026(
            "--seq-lens: invalid choice '1k8k' for 2026 configs (choose from '1k1k', '8k1k')"
                .into(),
        ));
    }
    if f.all_evals && f.evals == Evals::Off {
        return Err(SweepError::Schema2026(
            "--all-evals cannot be combined with --no-evals".into(),
        ));
    }
    let entries: Vec<&Entry> = configs.iter().flat_map(|c| &c.entries).collect();
    let mut rows = match mode {
        Mode::Full => full_sweep(&entries, f, runners, runners_file)?,
        Mode::TestConfig { keys, conc } => test_config(&entries, f, runners, keys, conc)?,
    };
    if f.evals != Evals::Off {
        mark_evals(&mut rows, f.evals == Evals::Only || f.all_evals);
        if f.all_evals {
            rows = mark_all_evals(rows);
        }
    }
    if f.evals == Evals::Only || f.all_evals {
        rows.retain(MatrixRow::run_eval);
        for r in &mut rows {
            match r {
                MatrixRow::Single(r) => r.eval_only = Some(true),
                MatrixRow::Multinode(r) => r.eval_only = Some(true),
                MatrixRow::Agentic(r) => r.eval_only = Some(true),
                MatrixRow::AgenticMultinode(r) => r.eval_only = Some(true),
            }
        }
    }
    if f.fingerprint {
        rows.iter_mut().for_each(MatrixRow::set_fingerprint);
    }
    if rows.is_empty() {
        tracing::warn!("no rows match the filters: {}", f.describe());
    }
    Ok(rows)
}

/// Concurrencies from `start` by ×`step`, the last clamped to `end` (the 2026 loop).
fn range(start: u32, end: u32, step: u32) -> Vec<u32> {
    let mut v = vec![];
    let mut c = start;
    while c <= end {
        v.push(c);
        if c == end {
            break;
        }
        c = c.saturating_mul(step).min(end);
    }
    v
}

fn concs(c: &Concurrency, step: u32) -> Vec<u32> {
    match c {
        Concurrency::List(l) => l.clone(),
        Concurrency::Range { start, end } => range(*start, *end, step),
    }
}

fn scenario_on(f: &Filters, s: ScenarioType) -> bool {
    f.scenario_types.is_empty() || f.scenario_types.contains(&s)
}

fn full_sweep(
    entries: &[&Entry],
    f: &Filters,
    runners: Option<&Runners>,
    runners_file: &str,
) -> Result<Vec<MatrixRow>, SweepError> {
    if f.step_size < 2 {
        return Err(SweepError::BadStep(f.step_size));
    }
    if let (Some(min), Some(max)) = (f.min_conc, f.max_conc) {
        if min > max {
            return Err(SweepError::ConcBounds { min, max });
        }
    }
    if !f.runner_type.is_empty() {
        let r = runners.ok_or(SweepError::RunnerTypeNeedsConfig)?;
        if let Some(t) = f.runner_type.iter().find(|t| !r.has_type(t)) {
            let mut valid: Vec<String> = r.types().map(str::to_string).collect();
            valid.sort();
            return Err(SweepError::UnknownRunnerType {
                given: t.clone(),
                file: runners_file.to_string(),
                valid,
            });
        }
    }
    let keys = super::expand::key_globs(&f.config_keys)?;
    // Both unset means both on.
    let (single_on, multi_on) = if !f.single_node && !f.multi_node {
        (true, true)
    } else {
        (f.single_node, f.multi_node)
    };
    let mut rows = vec![];
    for e in entries {
        let any = |vals: &[String], ok: &dyn Fn(&str) -> bool| {
            vals.is_empty() || vals.iter().any(|v| ok(v))
        };
        if !(any(&f.model_prefix, &|p| e.key.starts_with(p))
            && any(&f.precision, &|p| e.precision == p)
            && any(&f.framework, &|p| e.framework == p)
            && any(&f.runner_type, &|t| e.runner == t)
            && keys.as_ref().is_none_or(|g| g.is_match(&e.key)))
        {
            continue;
        }
        let node_runners = match &f.runner_node_filter {
            Some(s) if !s.is_empty() => {
                let r = runners_needed(runners, "--runner-node-filter")?;
                let v: Vec<String> = r
                    .nodes(&e.runner)
                    .unwrap_or_default()
                    .iter()
                    .filter(|n| n.contains(s.as_str()))
                    .cloned()
                    .collect();
                if v.is_empty() {
                    continue;
                }
                v
            }
            _ => vec![e.runner.clone()],
        };
        if scenario_on(f, ScenarioType::FixedSeqLen) {
            fixed_full(e, f, &node_runners, single_on, multi_on, &mut rows);
        }
        if (e.multinode && !multi_on) || (!e.multinode && !single_on) {
            continue;
        }
        if scenario_on(f, ScenarioType::AgenticCoding) {
            for a in &e.agentic {
                for item in &a.search_space {
                    let dram = dram_gb(e, a, item, runners)?;
                    let mut c = concs(&item.conc, f.step_size);
                    if let Some(m) = f.min_conc {
                        c.retain(|v| *v >= m);
                    }
                    if let Some(m) = f.max_conc {
                        c.retain(|v| *v <= m);
                    }
                    if c.is_empty() {
                        continue;
                    }
                    agentic_rows(e, item, dram, &c, &node_runners, f.shape, &mut rows);
                }
            }
        }
    }
    Ok(rows)
}

fn fixed_full(
    e: &Entry,
    f: &Filters,
    node_runners: &[String],
    single_on: bool,
    multi_on: bool,
    rows: &mut Vec<MatrixRow>,
) {
    for s in &e.seq_lens {
        if !f.seq_lens.is_empty() && !f.seq_lens.iter().any(|n| n.lens() == (s.isl, s.osl)) {
            continue;
        }
        for item in &s.search_space {
            if (e.multinode && !multi_on) || (!e.multinode && !single_on) {
                continue;
            }
            if e.multinode {
                let mut c = concs(&item.conc, f.step_size);
                if let Some(m) = f.min_conc {
                    if m == 0 {
                        continue;
                    }
                    c.retain(|v| *v >= m);
                    if c.is_empty() {
                        continue;
                    }
                }
                if let Some(m) = f.max_conc {
                    let kept: Vec<u32> = c.iter().copied().filter(|v| *v <= m).collect();
                    c = if !kept.is_empty() {
                        kept
                    } else if m > 0 {
                        vec![m]
                    } else {
                        continue;
                    };
                }
                for r in node_runners {
                    rows.push(MatrixRow::Multinode(multinode_row(
                        e,
                        s.isl,
                        s.osl,
                        item,
                        c.clone(),
                        r,
                        f.shape,
                    )));
                }
                continue;
            }
            if let Some(m) = f.max_tp {
                if m == 0 || item.tp > m {
                    continue;
                }
            }
            let mut ep = item.ep;
            if let Some(m) = f.max_ep {
                if m == 0 {
                    continue;
                }
                ep = ep.min(m);
            }
            let c = match &item.conc {
                Concurrency::List(l) => {
                    let mut c = l.clone();
                    if let Some(m) = f.min_conc {
                        if m == 0 {
                            continue;
                        }
                        c.retain(|v| *v >= m);
                        if c.is_empty() {
                            continue;
                        }
                    }
                    if let Some(m) = f.max_conc {
                        if m == 0 {
                            continue;
                        }
                        let kept: Vec<u32> = c.iter().copied().filter(|v| *v <= m).collect();
                        c = if kept.is_empty() { vec![m] } else { kept };
                    }
                    c
                }
                Concurrency::Range { start, end } => {
                    let (mut start, mut end) = (*start, *end);
                    if let Some(m) = f.min_conc {
                        if m == 0 || end < m {
                            continue;
                        }
                        start = start.max(m);
                    }
                    if let Some(m) = f.max_conc {
                        if m == 0 {
                            continue;
                        }
                        if start > m {
                            (start, end) = (m, m);
                        } else {
                            end = end.min(m);
                        }
                    }
                    range(start, end, f.step_size)
                }
            };
            for conc in c {
                for r in node_runners {
                    let mut row = single_row(e, s.isl, s.osl, item, conc, r, f.shape);
                    row.ep = ep;
                    rows.push(MatrixRow::Single(row));
                }
            }
        }
    }
}

/// `fnmatch`-style expansion of `--config-keys`: globs (with `*` or `?`) in file order,
/// exact keys must exist; first occurrence wins.
fn resolve_keys<'a>(
    patterns: &[String],
    entries: &[&'a Entry],
) -> Result<Vec<&'a Entry>, SweepError> {
    let mut sorted: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    sorted.sort_unstable();
    let available = sorted.join(", ");
    let mut out: Vec<&Entry> = vec![];
    let push = |e: &'a Entry, out: &mut Vec<&'a Entry>| {
        if !out.iter().any(|o| o.key == e.key) {
            out.push(e);
        }
    };
    for p in patterns {
        if p.contains('*') || p.contains('?') {
            let g = globset::GlobBuilder::new(p)
                .literal_separator(false)
                .backslash_escape(false)
                .build()
                .map_err(|e| SweepError::BadGlob {
                    pattern: p.clone(),
                    message: e.kind().to_string(),
                })?
                .compile_matcher();
            let hits: Vec<&&Entry> = entries.iter().filter(|e| g.is_match(&e.key)).collect();
            if hits.is_empty() {
                return Err(SweepError::Schema2026(format!(
                    "pattern '{p}' matched no config keys. Available keys: {available}"
                )));
            }
            for e in hits {
                push(e, &mut out);
            }
        } else {
            let e = entries.iter().find(|e| &e.key == p).ok_or_else(|| {
                SweepError::Schema2026(format!(
                    "config key(s) not found: {p}. Available keys: {available}"
                ))
            })?;
            push(e, &mut out);
        }
    }
    Ok(out)
}

fn test_config(
    entries: &[&Entry],
    f: &Filters,
    runners: Option<&Runners>,
    keys: &[String],
    only: &[u32],
) -> Result<Vec<MatrixRow>, SweepError> {
    let chosen = resolve_keys(keys, entries)?;
    let mut rows = vec![];
    let pick = |mut c: Vec<u32>| {
        if !only.is_empty() {
            c.retain(|v| only.contains(v));
        }
        c
    };
    for e in chosen {
        let node_runners = match &f.runner_node_filter {
            Some(s) if !s.is_empty() => {
                let r = runners_needed(runners, "--runner-node-filter")?;
                let mut cands: Vec<&str> = vec![];
                if e.runner.contains(s.as_str()) {
                    cands.push(&e.runner);
                }
                cands.extend(
                    r.nodes(&e.runner)
                        .unwrap_or_default()
                        .iter()
                        .map(String::as_str),
                );
                let mut v: Vec<String> = vec![];
                for n in cands {
                    if n.contains(s.as_str()) && !v.iter().any(|x| x == n) {
                        v.push(n.to_string());
                    }
                }
                if v.is_empty() {
                    continue;
                }
                v
            }
            _ => vec![e.runner.clone()],
        };
        if scenario_on(f, ScenarioType::FixedSeqLen) {
            for s in &e.seq_lens {
                if !f.seq_lens.is_empty() && !f.seq_lens.iter().any(|n| n.lens() == (s.isl, s.osl))
                {
                    continue;
                }
                for item in &s.search_space {
                    // test-config reads `conc-list` whenever the key is there, even empty.
                    let base = if item.empty_conc_list {
                        vec![]
                    } else {
                        concs(&item.conc, 2)
                    };
                    let c = pick(base);
                    if c.is_empty() && !only.is_empty() {
                        continue;
                    }
                    if e.multinode {
                        for r in &node_runners {
                            rows.push(MatrixRow::Multinode(multinode_row(
                                e,
                                s.isl,
                                s.osl,
                                item,
                                c.clone(),
                                r,
                                f.shape,
                            )));
                        }
                    } else {
                        for conc in c {
                            for r in &node_runners {
                                rows.push(MatrixRow::Single(single_row(
                                    e, s.isl, s.osl, item, conc, r, f.shape,
                                )));
                            }
                        }
                    }
                }
            }
        }
        if scenario_on(f, ScenarioType::AgenticCoding) {
            for a in &e.agentic {
                for item in &a.search_space {
                    let dram = dram_gb(e, a, item, runners)?;
                    let c = pick(concs(&item.conc, 2));
                    if c.is_empty() {
                        continue;
                    }
                    agentic_rows(e, item, dram, &c, &node_runners, f.shape, &mut rows);
                }
            }
        }
    }
    Ok(rows)
}

fn ext(e: &Entry, shape: RowShape) -> Option<String> {
    (shape == RowShape::Extended).then(|| e.key.clone())
}

fn single_row(
    e: &Entry,
    isl: u32,
    osl: u32,
    s: &crate::config::master::SearchSpace,
    conc: u32,
    runner: &str,
    shape: RowShape,
) -> JobRow {
    JobRow {
        image: e.image.clone(),
        model: e.model.clone(),
        precision: e.precision.clone(),
        framework: e.framework.clone(),
        runner: runner.to_string(),
        isl,
        osl,
        tp: s.tp,
        conc,
        max_model_len: isl + osl + 256,
        ep: s.ep,
        dp_attn: s.dp_attn,
        exp_name: format!("{}_{}", e.model_prefix, seq_name(isl, osl)),
        model_prefix: Some(e.model_prefix.clone()),
        pp: Some(s.pp.unwrap_or(1)),
        dcp_size: Some(s.dcp_size.unwrap_or(1)),
        pcp_size: Some(s.pcp_size.unwrap_or(1)),
        spec_decoding: Some(s.spec_decoding.clone().unwrap_or_else(|| "none".into())),
        disagg: Some(false),
        run_eval: Some(false),
        eval_only: None,
        router: s.router.clone().or_else(|| e.router.clone()),
        recipe_fingerprint: None,
        config_key: ext(e, shape),
        key_order: KeyOrder::Sweep,
    }
}

fn multinode_row(
    e: &Entry,
    isl: u32,
    osl: u32,
    s: &crate::config::master::SearchSpace,
    conc: Vec<u32>,
    runner: &str,
    shape: RowShape,
) -> MultinodeRow {
    let pools = s.pools.as_ref().expect("multinode items have workers");
    MultinodeRow {
        image: e.image.clone(),
        model: e.model.clone(),
        model_prefix: e.model_prefix.clone(),
        precision: e.precision.clone(),
        framework: e.framework.clone(),
        runner: runner.to_string(),
        isl,
        osl,
        spec_decoding: s.spec_decoding.clone().unwrap_or_else(|| "none".into()),
        prefill: pools.prefill.clone(),
        decode: pools.decode.clone(),
        conc,
        max_model_len: isl + osl + 256,
        exp_name: format!("{}_{}", e.model_prefix, seq_name(isl, osl)),
        disagg: e.disagg,
        run_eval: false,
        router: s.router.clone().or_else(|| e.router.clone()),
        kv_p2p_transfer: s
            .kv_p2p_transfer
            .clone()
            .or_else(|| e.kv_p2p_transfer.clone()),
        eval_conc: None,
        eval_all_concs: None,
        eval_only: None,
        recipe_fingerprint: None,
        config_key: ext(e, shape),
    }
}

/// `kvnone` or `kv<mode>-<backend name>`.
fn kv_suffix(mode: &str, backend: Option<&Component>) -> String {
    match (mode, backend) {
        ("none", _) | (_, None) => "kvnone".into(),
        (m, Some(b)) => format!("kv{m}-{}", b.name),
    }
}

fn worker_tag(w: &Pool, role: &str) -> String {
    let mut t = format!("{role}{}x{}", w.num_worker, w.tp);
    if w.ep != 1 {
        t += &format!("ep{}", w.ep);
    }
    if w.dp_attn {
        t += "dpa";
    }
    t
}

fn agentic_rows(
    e: &Entry,
    item: &AgenticItem,
    dram: u64,
    concs: &[u32],
    node_runners: &[String],
    shape: RowShape,
    rows: &mut Vec<MatrixRow>,
) {
    let kv = item.kv_offloading.clone().unwrap_or_else(|| "none".into());
    let router = item.router.clone().or_else(|| e.router.clone());
    match &item.pools {
        Some(p) => {
            let suffix = if kv == "none" {
                String::new()
            } else {
                format!("_{}", kv_suffix(&kv, item.kv_offload_backend.as_ref()))
            };
            for r in node_runners {
                for batch in concs.chunks(MULTINODE_AGENTIC_CHUNK) {
                    let joined: Vec<String> = batch.iter().map(u32::to_string).collect();
                    rows.push(MatrixRow::AgenticMultinode(AgenticMultinodeRow {
                        image: e.image.clone(),
                        model: e.model.clone(),
                        model_prefix: e.model_prefix.clone(),
                        precision: e.precision.clone(),
                        framework: e.framework.clone(),
                        runner: r.clone(),
                        spec_decoding: item.spec_decoding.clone(),
                        prefill: p.prefill.clone(),
                        decode: p.decode.clone(),
                        conc: batch.to_vec(),
                        kv_offloading: kv.clone(),
                        total_cpu_dram_gb: dram,
                        duration: AGENTIC_DURATION_S,
                        exp_name: format!(
                            "{}_{}_{}_conc{}{suffix}",
                            e.model_prefix,
                            worker_tag(&p.prefill, "p"),
                            worker_tag(&p.decode, "d"),
                            joined.join("x")
                        ),
                        disagg: e.disagg,
                        scenario_type: "agentic-coding".into(),
                        kv_offload_backend: item.kv_offload_backend.clone(),
                        router: router.clone(),
                        kv_p2p_transfer: item
                            .kv_p2p_transfer
                            .clone()
                            .or_else(|| e.kv_p2p_transfer.clone()),
                        run_eval: None,
                        eval_conc: None,
                        eval_only: None,
                        recipe_fingerprint: None,
                        config_key: ext(e, shape),
                    }));
                }
            }
        }
        None => {
            let tp = item.tp.expect("single-node agentic items have tp");
            let spec = if item.spec_decoding == "none" {
                String::new()
            } else {
                format!("_spec-{}", item.spec_decoding)
            };
            for &conc in concs {
                for r in node_runners {
                    rows.push(MatrixRow::Agentic(AgenticRow {
                        image: e.image.clone(),
                        model: e.model.clone(),
                        model_prefix: e.model_prefix.clone(),
                        precision: e.precision.clone(),
                        framework: e.framework.clone(),
                        runner: r.clone(),
                        tp,
                        pp: item.pp,
                        dcp_size: item.dcp_size,
                        pcp_size: item.pcp_size,
                        ep: item.ep.unwrap_or(1),
                        dp_attn: item.dp_attn.unwrap_or(false),
                        spec_decoding: item.spec_decoding.clone(),
                        conc,
                        kv_offloading: kv.clone(),
                        total_cpu_dram_gb: dram,
                        duration: AGENTIC_DURATION_S,
                        exp_name: format!(
                            "{}_tp{tp}_conc{conc}_{}{spec}",
                            e.model_prefix,
                            kv_suffix(&kv, item.kv_offload_backend.as_ref())
                        ),
                        scenario_type: "agentic-coding".into(),
                        kv_offload_backend: item.kv_offload_backend.clone(),
                        router: router.clone(),
                        run_eval: None,
                        eval_only: None,
                        recipe_fingerprint: None,
                        config_key: ext(e, shape),
                    }));
                }
            }
        }
    }
}

/// The decimal digits of `v`'s shortest repr as `p / 10^k` (Python's `Decimal(str(v))`).
fn decimal_of(v: f64) -> (u128, u32) {
    let sci = format!("{v:e}");
    let (mant, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    let frac_digits = mant.split_once('.').map_or(0, |(_, f)| f.len()) as i32;
    let p: u128 = mant.replace('.', "").parse().expect("mantissa digits");
    let k = frac_digits - exp;
    if k >= 0 {
        (p, k as u32)
    } else {
        (p * 10u128.pow((-k) as u32), 0)
    }
}

/// `agentic_dram_offload_gb`: the KV offload budget of one server node in decimal GB —
/// `int(min(available MiB, 2_861_022) · 2^20 · utilization · gpus / gpus-per-node / 10^9)`,
/// exact, as InferenceX computes it in `Decimal`. The GPUs are the single-node topology
/// (tp·pp·pcp, which must fit one node) or the prefill worker's footprint on one node.
fn dram_gb(
    e: &Entry,
    a: &Agentic,
    item: &AgenticItem,
    runners: Option<&Runners>,
) -> Result<u64, SweepError> {
    if item.kv_offloading.as_deref() != Some("dram") {
        return Ok(0);
    }
    let r = runners_needed(
        runners,
        "kv-offloading: dram (its budget comes from the runner's `hardware:` entry)",
    )?;
    let missing = |field: &str| {
        SweepError::Schema2026(format!(
            "entry `{}`: runner '{}' requires '{field}' in runner hardware metadata. Available hardware keys: {}",
            e.key,
            e.runner,
            r.hardware_labels().join(", ")
        ))
    };
    let hw = r.hardware(&e.runner);
    let mib = hw
        .ok_or_else(|| missing("available-cpu-dram-mib"))?
        .available_cpu_dram_mib
        .min(MAX_DRAM_MIB);
    let util = a
        .dram_utilization
        .expect("validated: dram offloading has a utilization");
    let gpn = hw.ok_or_else(|| missing("gpus-per-node"))?.gpus_per_node;
    let gpus = match (&item.pools, item.tp) {
        (Some(p), _) => {
            let w = &p.prefill;
            let r = w.gpus();
            if r > gpn {
                if !r.is_multiple_of(gpn) {
                    return Err(SweepError::Schema2026(format!(
                        "entry `{}`: worker tp*pp*pcp-size={r} spans multiple nodes but is not a multiple of gpus-per-node={gpn}",
                        e.key
                    )));
                }
                gpn
            } else {
                if !gpn.is_multiple_of(r) {
                    return Err(SweepError::Schema2026(format!(
                        "entry `{}`: worker tp*pp*pcp-size={r} does not divide gpus-per-node={gpn} evenly",
                        e.key
                    )));
                }
                r
            }
        }
        (None, tp) => {
            let tp = u64::from(tp.unwrap_or(0));
            let g = tp * u64::from(item.pp) * u64::from(item.pcp_size);
            if g > gpn {
                return Err(SweepError::Schema2026(format!(
                    "entry `{}`: tp={tp} with pp={} and pcp-size={} requires {g} GPUs and exceeds gpus-per-node={gpn} for runner '{}'",
                    e.key, item.pp, item.pcp_size, e.runner
                )));
            }
            g
        }
    };
    let (p, k) = decimal_of(util);
    let num = u128::from(mib) * 1_048_576 * p * u128::from(gpus);
    let den = u128::from(gpn) * 10u128.pow(k) * 1_000_000_000;
    Ok((num / den) as u64)
}

/// Identity of a deployment: the row without its concurrency, name and eval fields, as
/// canonical JSON.
fn parallelism_key(r: &MatrixRow) -> String {
    let mut v = serde_json::to_value(r).expect("rows serialise");
    if let Some(m) = v.as_object_mut() {
        for k in [
            "conc",
            "run-eval",
            "eval-only",
            "eval-conc",
            "eval-all-concs",
            "exp-name",
            "config-key",
            "recipe-fingerprint",
        ] {
            m.shift_remove(k);
        }
    }
    crate::pyjson::to_canonical_json(&v)
}

/// `mark_eval_entries`: fixed single-node 8k1k rows at conc ≥ 16 are grouped by (model,
/// runner, framework, precision, isl, osl, spec-decoding, dp-attn) and marked at the group's
/// highest and median concurrency; each multinode 8k1k deployment is marked once, at its
/// highest eligible concurrency (`eval-conc`). With `agentic`, the highest-conc agentic row
/// per (model, runner, framework, precision) and the highest eligible concurrency of each
/// multinode agentic deployment too. Every row then carries `run-eval`.
fn mark_evals(rows: &mut [MatrixRow], agentic: bool) {
    let eight_k = |isl: u32, osl: u32| (isl, osl) == (8192, 1024);
    type SnKey = (String, String, String, String, String, bool);
    let mut sn: HashMap<SnKey, Vec<(usize, u32)>> = HashMap::new();
    let mut sn_order: Vec<SnKey> = vec![];
    // Deployment key → (first index with the highest eligible concurrency, that concurrency).
    let mut mn: HashMap<String, (usize, u32)> = HashMap::new();
    let mut ag_sn: HashMap<(String, String, String, String), (usize, u32)> = HashMap::new();
    let mut ag_mn: HashMap<String, (usize, u32)> = HashMap::new();
    let best = |m: &mut HashMap<String, (usize, u32)>, k: String, i: usize, c: u32| {
        let e = m.entry(k).or_insert((i, c));
        if c > e.1 {
            *e = (i, c);
        }
    };
    for (i, r) in rows.iter().enumerate() {
        match r {
            MatrixRow::Single(j) if eight_k(j.isl, j.osl) && j.conc >= MIN_EVAL_CONC => {
                let k = (
                    j.model.clone(),
                    j.runner.clone(),
                    j.framework.clone(),
                    j.precision.clone(),
                    j.spec_decoding.clone().unwrap_or_default(),
                    j.dp_attn,
                );
                if !sn.contains_key(&k) {
                    sn_order.push(k.clone());
                }
                sn.entry(k).or_default().push((i, j.conc));
            }
            MatrixRow::Multinode(m) if eight_k(m.isl, m.osl) => {
                if let Some(top) = m.conc.iter().copied().filter(|c| *c >= MIN_EVAL_CONC).max() {
                    best(&mut mn, parallelism_key(r), i, top);
                }
            }
            MatrixRow::Agentic(a) if agentic => {
                let k = (
                    a.model.clone(),
                    a.runner.clone(),
                    a.framework.clone(),
                    a.precision.clone(),
                );
                let e = ag_sn.entry(k).or_insert((i, a.conc));
                if a.conc > e.1 {
                    *e = (i, a.conc);
                }
            }
            MatrixRow::AgenticMultinode(m) if agentic => {
                if let Some(top) = m.conc.iter().copied().filter(|c| *c >= MIN_EVAL_CONC).max() {
                    best(&mut ag_mn, parallelism_key(r), i, top);
                }
            }
            _ => {}
        }
    }
    let mut marked = vec![false; rows.len()];
    let mut eval_conc: HashMap<usize, u32> = HashMap::new();
    for k in &sn_order {
        let group = &sn[k];
        let mut cs: Vec<u32> = group.iter().map(|g| g.1).collect();
        cs.sort_unstable();
        cs.dedup();
        let targets = [cs[cs.len() - 1], cs[cs.len() / 2]];
        for (i, c) in group {
            if targets.contains(c) {
                marked[*i] = true;
            }
        }
    }
    for (i, c) in mn.into_values().chain(ag_mn.into_values()) {
        marked[i] = true;
        eval_conc.insert(i, c);
    }
    for (i, _) in ag_sn.into_values() {
        marked[i] = true;
    }
    for (i, r) in rows.iter_mut().enumerate() {
        let on = marked[i];
        match r {
            MatrixRow::Single(j) => j.run_eval = Some(on),
            MatrixRow::Multinode(m) => {
                m.run_eval = on;
                if let Some(c) = eval_conc.get(&i) {
                    m.eval_conc = Some(*c);
                }
            }
            MatrixRow::Agentic(a) => a.run_eval = Some(on),
            MatrixRow::AgenticMultinode(m) => {
                m.run_eval = Some(on);
                if let Some(c) = eval_conc.get(&i) {
                    m.eval_conc = Some(*c);
                }
            }
        }
    }
}

fn merged(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut v: Vec<u32> = a.iter().chain(b).copied().collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// `mark_all_eval_entries`: every 8k1k fixed row and every agentic row is evaluated;
/// multinode rows of one deployment merge into one row with all their concurrencies
/// (fixed: `eval-all-concs`; agentic: `eval-conc` at the highest).
fn mark_all_evals(rows: Vec<MatrixRow>) -> Vec<MatrixRow> {
    let mut out: Vec<MatrixRow> = Vec::with_capacity(rows.len());
    let mut fixed_mn: HashMap<String, usize> = HashMap::new();
    let mut agentic_mn: HashMap<String, usize> = HashMap::new();
    for r in rows {
        match r {
            MatrixRow::Agentic(mut a) => {
                a.run_eval = Some(true);
                out.push(MatrixRow::Agentic(a));
            }
            MatrixRow::AgenticMultinode(ref m) => {
                let k = parallelism_key(&r);
                if let Some(&at) = agentic_mn.get(&k) {
                    if let MatrixRow::AgenticMultinode(x) = &mut out[at] {
                        x.conc = merged(&x.conc, &m.conc);
                        x.eval_conc = x.conc.last().copied();
                    }
                    continue;
                }
                let mut n = m.clone();
                n.conc = merged(&m.conc, &[]);
                n.run_eval = Some(true);
                n.eval_conc = m.conc.iter().max().copied();
                agentic_mn.insert(k, out.len());
                out.push(MatrixRow::AgenticMultinode(n));
            }
            MatrixRow::Single(mut j) => {
                if (j.isl, j.osl) == (8192, 1024) {
                    j.run_eval = Some(true);
                }
                out.push(MatrixRow::Single(j));
            }
            MatrixRow::Multinode(ref m) => {
                if (m.isl, m.osl) != (8192, 1024) {
                    out.push(r);
                    continue;
                }
                let k = parallelism_key(&r);
                if let Some(&at) = fixed_mn.get(&k) {
                    if let MatrixRow::Multinode(x) = &mut out[at] {
                        x.conc = merged(&x.conc, &m.conc);
                    }
                    continue;
                }
                let mut n = m.clone();
                n.conc = merged(&m.conc, &[]);
                n.run_eval = true;
                n.eval_all_concs = Some(true);
                n.eval_conc = None;
                fixed_mn.insert(k, out.len());
                out.push(MatrixRow::Multinode(n));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits_of_floats() {
        assert_eq!(decimal_of(0.8), (8, 1));
        assert_eq!(decimal_of(0.85), (85, 2));
        assert_eq!(decimal_of(1.0), (1, 0));
        assert_eq!(decimal_of(1e-5), (1, 5));
    }

    #[test]
    fn range_clamps_to_end() {
        assert_eq!(range(4, 100, 2), [4, 8, 16, 32, 64, 100]);
        assert_eq!(range(5, 5, 3), [5]);
    }
}
