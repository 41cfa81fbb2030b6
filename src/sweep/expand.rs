//! Full-sweep expansion and filters.

use super::SweepError;
use crate::config::master::{Concurrency, Entry, MasterConfig, SearchSpace};
use crate::config::row::JobRow;
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

/// `1k1k`, `1k8k`, `8k1k` for the three standard scenarios, else `<isl>_<osl>`.
pub fn seq_name(isl: u32, osl: u32) -> String {
    match (isl, osl) {
        (1024, 1024) => "1k1k".into(),
        (1024, 8192) => "1k8k".into(),
        (8192, 1024) => "8k1k".into(),
        _ => format!("{isl}_{osl}"),
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
        if self.config_keys.is_empty() {
            return Ok(None);
        }
        let mut b = GlobSetBuilder::new();
        for p in &self.config_keys {
            b.add(Glob::new(p).map_err(|e| SweepError::BadGlob {
                pattern: p.clone(),
                message: e.kind().to_string(),
            })?);
        }
        b.build().map(Some).map_err(|e| SweepError::BadGlob {
            pattern: self.config_keys.join(" "),
            message: e.to_string(),
        })
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

/// Expand master configs (in argument order) into job rows.
///
/// `runners` (and the file name it came from, for messages) is needed only for the
/// runner-type filter. An empty result is an error naming the filters.
pub fn expand(
    configs: &[MasterConfig],
    f: &Filters,
    runners: Option<(&Runners, &str)>,
) -> Result<Vec<JobRow>, SweepError> {
    let keys = f.validate(runners.map(|r| r.0), runners.map_or("", |r| r.1))?;
    let runners = runners.map(|r| r.0);
    let mut rows = vec![];
    for cfg in configs {
        for e in &cfg.entries {
            if !f.entry_matches(e, runners, keys.as_ref()) {
                continue;
            }
            expand_entry(e, f, &mut rows);
        }
    }
    if rows.is_empty() {
        return Err(SweepError::NoRows(f.describe()));
    }
    Ok(rows)
}

fn expand_entry(e: &Entry, f: &Filters, rows: &mut Vec<JobRow>) {
    for s in &e.seq_lens {
        if !f.seq_lens.is_empty() && !f.seq_lens.iter().any(|n| n.lens() == (s.isl, s.osl)) {
            continue;
        }
        let items: Vec<&SearchSpace> = s
            .search_space
            .iter()
            .filter(|i| f.max_tp.is_none_or(|m| i.tp <= m))
            .collect();
        if f.test_mode {
            // The highest tp; the first such item on ties.
            let Some(best) = items
                .iter()
                .copied()
                .reduce(|a, b| if b.tp > a.tp { b } else { a })
            else {
                continue;
            };
            let c = first_conc(&best.conc);
            if conc_ok(f, c) {
                rows.push(row(e, s.isl, s.osl, best, c, f.shape));
            }
            continue;
        }
        for item in items {
            for c in concurrencies(&item.conc, f.step_size) {
                if conc_ok(f, c) {
                    rows.push(row(e, s.isl, s.osl, item, c, f.shape));
                }
            }
        }
    }
}

fn conc_ok(f: &Filters, c: u32) -> bool {
    f.min_conc.is_none_or(|m| c >= m) && f.max_conc.is_none_or(|m| c <= m)
}

fn row(e: &Entry, isl: u32, osl: u32, s: &SearchSpace, conc: u32, shape: RowShape) -> JobRow {
    use crate::config::master::Schema;
    let b = e.schema == Schema::B;
    let ext = shape == RowShape::Extended;
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
        pp: if b { Some(s.pp.unwrap_or(1)) } else { None },
        spec_decoding: if b {
            Some(s.spec_decoding.clone().unwrap_or_else(|| "none".into()))
        } else {
            None
        },
        dcp_size: if b {
            Some(s.dcp_size.unwrap_or(1))
        } else {
            None
        },
        pcp_size: if b {
            Some(s.pcp_size.unwrap_or(1))
        } else {
            None
        },
        multinode: if b { Some(e.multinode) } else { None },
        prefill: s.pools.as_ref().map(|p| p.prefill.clone()),
        decode: s.pools.as_ref().map(|p| p.decode.clone()),
        model_prefix: ext.then(|| e.model_prefix.clone()),
        config_key: ext.then(|| e.key.clone()),
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
