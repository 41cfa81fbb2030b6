//! GitHub Actions output: split rows into matrices of at most 256 jobs and hand them to a
//! workflow through `$GITHUB_OUTPUT`.

use super::SweepError;
use crate::config::row::MatrixRow;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// GitHub's hard limit of jobs per matrix.
pub const MAX_MATRIX_JOBS: usize = 256;

/// One `strategy.matrix` value: `fromJSON` of it is a valid matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub include: Vec<MatrixRow>,
}

/// Rows split into numbered matrices, for workflows with one fan-out job per chunk.
#[derive(Debug, Clone, Serialize)]
pub struct Chunked {
    /// Number of chunks, so a workflow can skip fan-out jobs beyond it.
    pub count: usize,
    pub chunks: Vec<Matrix>,
}

/// Split rows into chunks of at most `max_rows` (1..=256), keeping order.
pub fn chunk(rows: Vec<MatrixRow>, max_rows: usize) -> Result<Chunked, SweepError> {
    if max_rows == 0 || max_rows > MAX_MATRIX_JOBS {
        return Err(SweepError::BadMaxRows(max_rows));
    }
    let mut chunks = vec![];
    let mut it = rows.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(Matrix {
            include: it.by_ref().take(max_rows).collect(),
        });
    }
    Ok(Chunked {
        count: chunks.len(),
        chunks,
    })
}

/// Rows sorted into the buckets InferenceX's `process_changelog.py` hands to its
/// `run-sweep.yml` (one workflow job per bucket, each with the input block of its row kind):
/// benchmark rows under `single_node`/`multi_node`, keyed by scenario (`1k1k`, `8k1k`,
/// `<isl>_<osl>`, or `agentic`), and eval-only rows in `evals`, `agentic_evals`,
/// `multinode_evals` and `multinode_agentic_evals`. Keys appear in first-seen order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Buckets {
    /// Single-node benchmark rows by scenario.
    pub single_node: indexmap::IndexMap<String, Vec<MatrixRow>>,
    /// Multinode benchmark rows by scenario.
    pub multi_node: indexmap::IndexMap<String, Vec<MatrixRow>>,
    /// Single-node fixed-seq-len eval rows (lm-eval).
    pub evals: Vec<MatrixRow>,
    /// Single-node agentic eval rows.
    pub agentic_evals: Vec<MatrixRow>,
    /// Multinode fixed-seq-len eval rows.
    pub multinode_evals: Vec<MatrixRow>,
    /// Multinode agentic eval rows (SWE-bench).
    pub multinode_agentic_evals: Vec<MatrixRow>,
}

/// Sort rows into [`Buckets`]; rows with `eval-only: true` are eval rows.
pub fn buckets(rows: Vec<MatrixRow>) -> Buckets {
    let mut b = Buckets::default();
    for r in rows {
        let eval_only = match &r {
            MatrixRow::Single(j) => j.eval_only == Some(true),
            MatrixRow::Multinode(m) => m.eval_only == Some(true),
            MatrixRow::Agentic(a) => a.eval_only == Some(true),
            MatrixRow::AgenticMultinode(m) => m.eval_only == Some(true),
        };
        let scenario = match &r {
            MatrixRow::Single(j) => super::ix2026::seq_name(j.isl, j.osl),
            MatrixRow::Multinode(m) => super::ix2026::seq_name(m.isl, m.osl),
            MatrixRow::Agentic(_) | MatrixRow::AgenticMultinode(_) => "agentic".into(),
        };
        match (eval_only, r.is_multinode(), r.is_agentic()) {
            (true, false, false) => b.evals.push(r),
            (true, false, true) => b.agentic_evals.push(r),
            (true, true, false) => b.multinode_evals.push(r),
            (true, true, true) => b.multinode_agentic_evals.push(r),
            (false, false, _) => b.single_node.entry(scenario).or_default().push(r),
            (false, true, _) => b.multi_node.entry(scenario).or_default().push(r),
        }
    }
    b
}

/// Append `key=value` pairs to the `$GITHUB_OUTPUT` file, each in the multiline
/// `key<<DELIM` form (values are JSON and may be large), with a delimiter that does not
/// occur in the value.
pub fn write_github_output(file: &Path, pairs: &[(String, String)]) -> Result<(), SweepError> {
    let mut buf = String::new();
    for (k, v) in pairs {
        let mut n = 0u32;
        let delim = loop {
            let d = format!("INFMAX_EOF_{n}");
            if !v.contains(&d) {
                break d;
            }
            n += 1;
        };
        buf.push_str(&format!("{k}<<{delim}\n{v}\n{delim}\n"));
    }
    let err = |source| SweepError::Output {
        file: file.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(err)?;
    f.write_all(crate::secrets::redact(&buf).as_bytes())
        .map_err(err)?;
    f.flush().map_err(err)
}
