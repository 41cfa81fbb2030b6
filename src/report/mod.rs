//! Turning a finished job into numbers people compare: the InferenceMAX-style agg row, the
//! reference points it is measured against, the bounty's eligibility verdict, plots and
//! Markdown summaries.
//!
//! Everything here is a pure function of files already on disk (the client's result JSON,
//! the job row, `baselines/`), so a report can be rebuilt at any time from any set of result
//! directories (`runner report --dir …`), and what a job wrote is what a sweep aggregates.
//! Baselines are data: a point that is not in `baselines/` is reported as missing, never
//! interpolated into existence for a ratio.

pub mod agentic;
pub mod agg;
pub mod baseline;
pub mod cli;
pub mod confidence;
pub mod cost;
pub mod fsio;
pub mod gha;
pub mod html;
pub mod plot;
pub mod status;
pub mod summary;
pub mod trials;
pub mod verdict;

pub use agg::{agg_row, AccuracyRecord, AccuracyStatus, AggInputs, AggRow, ClientInfo, JobFailure};
pub use baseline::{BaselineRecord, Baselines, LineKey, RefPoint, Role};
pub use fsio::write_atomic;
pub use summary::{summary_markdown, SummaryRow};
pub use verdict::{verdict, LineVerdict};

use crate::config::ConfigError;
use std::path::{Path, PathBuf};

/// Why a report could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A baseline or result file is malformed (carries file, line, column and field path).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The client's result JSON lacks a key the agg row needs, or has it with the wrong type.
    #[error("bench result: `{key}` {problem}")]
    Bench { key: String, problem: String },
    /// The bench result and the job row disagree about what was run.
    #[error("bench result and job row disagree: {0}")]
    Mismatch(String),
    /// A file could not be read or written.
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A result directory holds no `agg.json`.
    #[error("{0}: no agg.json in this directory or below it")]
    NoResults(String),
    /// Drawing a plot failed.
    #[error("plot {file}: {message}")]
    Plot { file: String, message: String },
}

impl ReportError {
    pub(crate) fn io(file: &Path, source: std::io::Error) -> Self {
        ReportError::Io {
            file: file.display().to_string(),
            source,
        }
    }
}

/// One agg row read back from disk, with the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedRow {
    /// The `agg.json` it was read from.
    pub path: PathBuf,
    /// Its content.
    pub row: AggRow,
}

/// Read every `agg.json` in `dirs` (a directory's own `agg.json`, else all `agg.json` files
/// below it, sorted by path). A directory with none is an error: a sweep that silently
/// reports fewer jobs than it ran would be worse than one that stops.
pub fn load_agg_rows(dirs: &[PathBuf]) -> Result<Vec<LoadedRow>, ReportError> {
    let mut out = Vec::new();
    for dir in dirs {
        let own = dir.join("agg.json");
        let mut files = if own.is_file() {
            vec![own]
        } else {
            let mut found = Vec::new();
            find_agg_files(dir, &mut found)?;
            found.sort();
            found
        };
        if files.is_empty() {
            return Err(ReportError::NoResults(dir.display().to_string()));
        }
        for path in files.drain(..) {
            let text = std::fs::read_to_string(&path).map_err(|e| ReportError::io(&path, e))?;
            let row: AggRow = crate::config::parse_json(&path.display().to_string(), &text)?;
            out.push(LoadedRow { path, row });
        }
    }
    Ok(out)
}

/// Every `agg.json` below `dir`; a directory holding one is a point and is not searched
/// further (a repeated point keeps its trials' own rows in `trial<k>/` below its combined
/// row, and those must not count twice).
fn find_agg_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    let own = dir.join("agg.json");
    if own.is_file() {
        out.push(own);
        return Ok(());
    }
    let rd = std::fs::read_dir(dir).map_err(|e| ReportError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| ReportError::io(dir, e))?;
        let p = entry.path();
        let ft = entry.file_type().map_err(|e| ReportError::io(&p, e))?;
        if ft.is_dir() {
            find_agg_files(&p, out)?;
        }
    }
    Ok(())
}

/// Everything `runner exec` writes into a job's result directory after the client finished:
/// `agg.json` and `summary.md` (each written atomically), without a verdict. Returns the
/// summary Markdown.
pub fn write_job_outputs(dir: &Path, row: &AggRow) -> Result<String, ReportError> {
    write_job_outputs_judged(dir, row, None)
}

/// [`write_job_outputs`], with the point's verdict in words in `summary.md` when
/// `baselines` are given (both halves of the bounty rule, by which figures). Returns the
/// summary Markdown so the caller can print it and append it to `$GITHUB_STEP_SUMMARY`.
pub fn write_job_outputs_judged(
    dir: &Path,
    row: &AggRow,
    baselines: Option<&Baselines>,
) -> Result<String, ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
    let json = serde_json::to_string_pretty(row).expect("agg row serialises");
    write_atomic(&dir.join("agg.json"), format!("{json}\n").as_bytes())?;
    let mut md = summary_markdown(
        &format!(
            "Job {} {} ISL {} / OSL {} conc {}",
            row.hw, row.infmax_model_prefix, row.isl, row.osl, row.conc
        ),
        &[SummaryRow::from(row)],
    );
    if let Some(b) = baselines {
        for v in verdict(std::slice::from_ref(row), b) {
            md.push_str(&verdict::point_markdown(&v));
        }
    }
    write_atomic(&dir.join("summary.md"), md.as_bytes())?;
    Ok(md)
}
