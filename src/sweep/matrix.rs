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
    f.write_all(buf.as_bytes()).map_err(err)?;
    f.flush().map_err(err)
}
