//! Full-sweep expansion and filters: the Nov-2025 (schema A) generator here, and the
//! dispatch to [`super::ix2026`] for 2026 (schema B) files.

use super::SweepError;
use crate::config::master::{Concurrency, Entry, MasterConfig, Schema, SearchSpace};
pub use crate::config::row::seq_name;
use crate::config::row::{JobRow, KeyOrder, MatrixRow};
use crate::config::runners::Runners;
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::fmt::Write as _;

/// The named sequence-length scenarios of the sweep (ISL/OSL pairs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeqLenName {
    #[value(name = "1k1k")]
    K1K1,
    #[value(name = "1k8k")]
    K1K8,
    #[value(name = "8k1k")]
    K8K1,
}

impl SeqLenName {
    /// (isl, osl) of the scenario.
    pub fn lens(self) -> (u32, u32) {
        match self {
            SeqLenName::K1K1 => (1024, 1024),
            SeqLenName::K1K8 => (1024, 8192),
            SeqLenName::K8K1 => (8192, 1024),
        }
    }
}

/// Which keys rows carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowShape {
    /// Exactly the reference generator's keys.
    #[default]
    Reference,
    /// Reference keys plus ours (`model-prefix`, `config-key`).
    Extended,
}

/// Everything that narrows or shapes a sweep. Empty lists mean "no filter"; all filters
/// combine with AND, and within one filter any value matches (OR).
#[derive(Debug, Clone)]
pub struct Filters {
    /// Entry keys starting with any of these.
    pub model_prefix: Vec<String>,
    pub precision: Vec<String>,
    pub framework: Vec<String>,
    /// Runner types (validated against `runners`).
    pub runner_type: Vec<String>,
    pub seq_lens: Vec<SeqLenName>,
    /// Concurrency multiplier.
    pub step_size: u32,
    /// One row per seq-len config: its highest-tp item at conc-start.
    pub test_mode: bool,
    pub min_conc: Option<u32>,
    pub max_conc: Option<u32>,
    pub max_tp: Option<u32>,
    /// Globs over entry keys.
    pub config_keys: Vec<String>,
    pub shape: RowShape,
    /// Accuracy-evaluation marking of schema-B rows.
    pub evals: Evals,
    /// Schema B: only these scenario types (empty: all).
    pub scenario_types: Vec<super::ix2026::ScenarioType>,
    /// Schema B: single-node entries only (with `multi_node`, or neither: both).
    pub single_node: bool,
    /// Schema B: multinode entries only.
    pub multi_node: bool,
    /// Schema B `--all-evals`: evaluate every 8k1k fixed row and every agentic row.
    pub all_evals: bool,
    /// Schema B: expand each entry to the nodes of its label whose name contains this.
    pub runner_node_filter: Option<String>,
    /// Schema B: cap single-node fixed-seq-len `ep` at this.
    pub max_ep: Option<u32>,
    /// Add `recipe-fingerprint` to every row.
    pub fingerprint: bool,
}

/// How schema-B rows get their `run-eval` flag (the 2026 generator's `--no-evals` /
/// `--evals-only`). Schema-A rows have no such key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Evals {
    /// Mark the rows the eval policy picks.
    #[default]
    Mark,
    /// `run-eval: false` everywhere.
    Off,
    /// Keep only the marked rows, with `eval-only: true`.
    Only,
}

impl Default for Filters {
    fn default() -> Self {
        Filters {
            model_prefix: vec![],
            precision: vec![],
            framework: vec![],
            runner_type: vec![],
            seq_lens: vec![],
            step_size: 2,
            test_mode: false,
            min_conc: None,
            max_conc: None,
            max_tp: None,
            config_keys: vec![],
            shape: RowShape::Reference,
            evals: Evals::Mark,
            scenario_types: vec![],
            single_node: false,
            multi_node: false,
            all_evals: false,
            runner_node_filter: None,
            max_ep: None,
            fingerprint: false,
        }
    }
}

impl Filters {
    /// A one-line description of the active filters, for "no rows" errors.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let mut add = |name: &str, vals: Vec<String>| {
            if !vals.is_empty() {
                let _ = write!(
                    s,
                    "{}--{name} {}",
                    if s.is_empty() { "" } else { " " },
                    vals.join(" ")
                );
            }
        };
        add("model-prefix", self.model_prefix.clone());
        add("precision", self.precision.clone());
        add("framework", self.framework.clone());
        add("runner-type", self.runner_type.clone());
        add(
            "seq-lens",
            self.seq_lens
                .iter()
                .map(|s| {
                    let (i, o) = s.lens();
                    seq_name(i, o)
                })
                .collect(),
        );
        add("config-keys", self.config_keys.clone());
        add(
            "min-conc",
            self.min_conc.iter().map(u32::to_string).collect(),
        );
        add(
            "max-conc",
            self.max_conc.iter().map(u32::to_string).collect(),
        );
        add("max-tp", self.max_tp.iter().map(u32::to_string).collect());
        if self.step_size != 2 {
            add("step-size", vec![self.step_size.to_string()]);
        }
        if self.test_mode {
            add("test-mode", vec![String::new()]);
        }
        if self.evals == Evals::Only {
            add("evals-only", vec![String::new()]);
        }
        if s.is_empty() {
            "(none)".into()
        } else {
            s.trim_end().into()
        }
    }

    fn validate(
        &self,
        runners: Option<&Runners>,
        runners_file: &str,
    ) -> Result<Option<GlobSet>, SweepError> {
        if self.step_size < 2 {
            return Err(SweepError::BadStep(self.step_size));
        }
        if let (Some(min), Some(max)) = (self.min_conc, self.max_conc) {
            if min > max {
                return Err(SweepError::ConcBounds { min, max });
            }
        }
        if !self.runner_type.is_empty() {
            let r = runners.ok_or(SweepError::RunnerTypeNeedsConfig)?;
            for t in &self.runner_type {
                if !r.has_type(t) {
                    return Err(SweepError::UnknownRunnerType {
                        given: t.clone(),
                        file: runners_file.to_string(),
                        valid: r.types().map(str::to_string).collect(),
                    });
                }
            }
        }
        key_globs(&self.config_keys)
    }

    /// The schema-B-only options that are set, by flag name.
    fn schema_b_only(&self) -> Vec<&'static str> {
        [
            ("--scenario-type", !self.scenario_types.is_empty()),
            ("--single-node", self.single_node),
            ("--multi-node", self.multi_node),
            ("--all-evals", self.all_evals),
            ("--runner-node-filter", self.runner_node_filter.is_some()),
            ("--max-ep", self.max_ep.is_some()),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| n)
        .collect()
    }

    fn entry_matches(&self, e: &Entry, runners: Option<&Runners>, keys: Option<&GlobSet>) -> bool {
        let any = |vals: &[String], f: &dyn Fn(&str) -> bool| {
            vals.is_empty() || vals.iter().any(|v| f(v))
        };
        any(&self.model_prefix, &|p| e.key.starts_with(p))
            && any(&self.precision, &|p| e.precision == p)
            && any(&self.framework, &|f| e.framework == f)
            && any(&self.runner_type, &|t| {
                runners
                    .and_then(|r| r.type_of(&e.runner))
                    .unwrap_or(&e.runner)
                    == t
            })
            && keys.is_none_or(|g| g.is_match(&e.key))
    }
}

/// `--config-keys` globs as one matcher (`None` when there are none).
pub(super) fn key_globs(patterns: &[String]) -> Result<Option<GlobSet>, SweepError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| SweepError::BadGlob {
            pattern: p.clone(),
            message: e.kind().to_string(),
        })?);
    }
    b.build().map(Some).map_err(|e| SweepError::BadGlob {
        pattern: patterns.join(" "),
        message: e.to_string(),
    })
}

/// Concurrencies of one search-space item: start, ×step while ≤ end, and `end` itself when
/// the last multiplication overshoots it (4→100 by 2: 4 8 16 32 64 100).
pub fn concurrencies(c: &Concurrency, step: u32) -> Vec<u32> {
    match c {
        Concurrency::List(l) => l.clone(),
        Concurrency::Range { start, end } => {
            let mut out = vec![];
            let mut v = *start;
            loop {
                out.push(v);
                if v >= *end {
                    break;
                }
                v = v.saturating_mul(step).min(*end);
            }
            out
        }
    }
}

fn first_conc(c: &Concurrency) -> u32 {
    match c {
        Concurrency::Range { start, .. } => *start,
        Concurrency::List(l) => l[0],
    }
}

/// Expand master configs (in argument order) into matrix rows, as the generator of their
/// schema does: schema-A files as the Nov-2025 `full-sweep`, schema-B files as the 2026
/// generator's `full-sweep` (`Mode::Full`) or `test-config`. One call takes one schema.
///
/// `runners` (and the file name it came from, for messages) is needed for the runner-type
/// filter and, in schema B, for node filters and agentic DRAM budgets. An empty schema-A
/// result is an error naming the filters; schema B prints `[]` as its generator does.
pub fn expand(
    configs: &[MasterConfig],
    f: &Filters,
    runners: Option<(&Runners, &str)>,
    mode: &super::ix2026::Mode,
) -> Result<Vec<MatrixRow>, SweepError> {
    let schema_of = |c: &MasterConfig| c.entries.first().map_or(Schema::A, |e| e.schema);
    let b_files: Vec<&str> = configs
        .iter()
        .filter(|c| schema_of(c) == Schema::B)
        .map(|c| c.file.as_str())
        .collect();
    if let Some(a) = configs.iter().find(|c| schema_of(c) == Schema::A) {
        if let Some(b) = b_files.first() {
            return Err(SweepError::Schema2026(format!(
                "{} uses the Nov-2025 schema (`seq-len-configs`) but {b} the 2026 one (`scenarios`); their generators differ, so expand them separately",
                a.file
            )));
        }
    }
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for cfg in configs {
        for e in &cfg.entries {
            if let Some(first) = seen.insert(&e.key, &cfg.file) {
                return Err(SweepError::DuplicateKey {
                    key: e.key.clone(),
                    first: first.to_string(),
                    second: cfg.file.clone(),
                });
            }
        }
    }
    if !b_files.is_empty() {
        return super::ix2026::expand(configs, f, runners, mode);
    }
    let only_b = f.schema_b_only();
    if !only_b.is_empty() || matches!(mode, super::ix2026::Mode::TestConfig { .. }) {
        return Err(SweepError::Schema2026(format!(
            "{} only apply to 2026 (schema-B) configs; these files use the Nov-2025 schema",
            if only_b.is_empty() {
                "test-config".to_string()
            } else {
                only_b.join(", ")
            }
        )));
    }
    let keys = f.validate(runners.map(|r| r.0), runners.map_or("", |r| r.1))?;
    let runners = runners.map(|r| r.0);
    let mut rows = vec![];
    for cfg in configs {
        for e in &cfg.entries {
            if f.entry_matches(e, runners, keys.as_ref()) {
                expand_entry(e, f, &mut rows);
            }
        }
    }
    // The Nov-2025 generator marks no row for evaluation: `--evals-only` keeps nothing.
    if f.evals == Evals::Only {
        rows.clear();
    }
    if rows.is_empty() {
        return Err(SweepError::NoRows(f.describe()));
    }
    if f.fingerprint {
        rows.iter_mut().for_each(MatrixRow::set_fingerprint);
    }
    Ok(rows)
}

fn expand_entry(e: &Entry, f: &Filters, rows: &mut Vec<MatrixRow>) {
    for s in &e.seq_lens {
        if !f.seq_lens.is_empty() && !f.seq_lens.iter().any(|n| n.lens() == (s.isl, s.osl)) {
            continue;
        }
        let items: Vec<&SearchSpace> = s
            .search_space
            .iter()
            .filter(|i| f.max_tp.is_none_or(|m| i.tp <= m))
            .collect();
        let selected: Vec<(&SearchSpace, Vec<u32>)> = if f.test_mode {
            // The highest tp; the first such item on ties; at its first concurrency.
            let best = items
                .iter()
                .copied()
                .reduce(|a, b| if b.tp > a.tp { b } else { a });
            best.map(|b| (b, vec![first_conc(&b.conc)]))
                .into_iter()
                .collect()
        } else {
            items
                .into_iter()
                .map(|i| (i, concurrencies(&i.conc, f.step_size)))
                .collect()
        };
        for (item, concs) in selected {
            for c in concs.into_iter().filter(|c| conc_ok(f, *c)) {
                rows.push(MatrixRow::Single(single_row(e, s.isl, s.osl, item, c, f)));
            }
        }
    }
}

fn conc_ok(f: &Filters, c: u32) -> bool {
    f.min_conc.is_none_or(|m| c >= m) && f.max_conc.is_none_or(|m| c <= m)
}

/// A Nov-2025 row: its 13 keys (plus ours with `--extra-fields`); the context is
/// isl + osl + 200, as that generator computes it.
fn single_row(e: &Entry, isl: u32, osl: u32, s: &SearchSpace, conc: u32, f: &Filters) -> JobRow {
    let ext = f.shape == RowShape::Extended;
    JobRow {
        image: e.image.clone(),
        model: e.model.clone(),
        precision: e.precision.clone(),
        framework: e.framework.clone(),
        runner: e.runner.clone(),
        isl,
        osl,
        tp: s.tp,
        conc,
        max_model_len: isl + osl + 200,
        ep: s.ep,
        dp_attn: s.dp_attn,
        exp_name: format!("{}_{}", e.model_prefix, seq_name(isl, osl)),
        model_prefix: ext.then(|| e.model_prefix.clone()),
        pp: None,
        dcp_size: None,
        pcp_size: None,
        spec_decoding: None,
        disagg: None,
        run_eval: None,
        eval_only: None,
        router: None,
        recipe_fingerprint: None,
        config_key: ext.then(|| e.key.clone()),
        key_order: if f.test_mode {
            KeyOrder::TestMode
        } else {
            KeyOrder::Sweep
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_clamps_to_end() {
        let r = |s, e, st| concurrencies(&Concurrency::Range { start: s, end: e }, st);
        assert_eq!(r(4, 100, 2), [4, 8, 16, 32, 64, 100]);
        assert_eq!(r(4, 64, 2), [4, 8, 16, 32, 64]);
        assert_eq!(r(4, 4, 2), [4]);
        assert_eq!(r(1, 10, 4), [1, 4, 10]);
        assert_eq!(r(3, 4, 2), [3, 4]);
        assert_eq!(r(u32::MAX - 1, u32::MAX, 2), [u32::MAX - 1, u32::MAX]);
    }

    #[test]
    fn seq_names() {
        assert_eq!(seq_name(1024, 1024), "1k1k");
        assert_eq!(seq_name(8192, 1024), "8k1k");
        assert_eq!(seq_name(2048, 128), "2048_128");
    }
}
