//! Sweep expansion: master-config entries → job rows, with the reference generator's order
//! and arithmetic, the filters users narrow a sweep with, chunking into GitHub Actions
//! matrices, and change detection between two git revisions.

mod diff;
mod expand;
mod ix2026;
mod matrix;

pub use crate::pyjson::to_python_json;
pub use diff::{changed_configs, changed_files, load_at_rev, with_changed_templates};
pub use expand::{concurrencies, expand, seq_name, Evals, Filters, RowShape, SeqLenName};
pub use ix2026::{seq_name as seq_name_2026, Mode, ScenarioType};
pub use matrix::{buckets, chunk, write_github_output, Buckets, Chunked};

use crate::config::ConfigError;

/// Why a sweep could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--runner-type needs --runner-config (the runners.yaml that defines the types)")]
    RunnerTypeNeedsConfig,
    #[error("unknown runner type `{given}`; valid types in {file}: {}", valid.join(", "))]
    UnknownRunnerType {
        given: String,
        file: String,
        valid: Vec<String>,
    },
    #[error("--step-size must be at least 2 (got {0}): concurrencies are multiplied by it")]
    BadStep(u32),
    #[error("--max-rows must be between 1 and 256 (got {0}): GitHub Actions runs at most 256 jobs per matrix")]
    BadMaxRows(usize),
    #[error("--min-conc {min} is above --max-conc {max}")]
    ConcBounds { min: u32, max: u32 },
    #[error("invalid --config-keys pattern `{pattern}`: {message}")]
    BadGlob { pattern: String, message: String },
    #[error("entry key `{key}` is defined in both {first} and {second}; keys must be unique across config files")]
    DuplicateKey {
        key: String,
        first: String,
        second: String,
    },
    /// A 2026-schema rule or flag combination its generator refuses.
    #[error("{0}")]
    Schema2026(String),
    #[error("no rows match the filters: {0}")]
    NoRows(String),
    /// `--github-output` outside GitHub Actions: a usage error, not a failed write.
    #[error("cannot write $GITHUB_OUTPUT: variable is not set (--github-output is for a GitHub Actions step)")]
    GithubOutputUnset,
    #[error("git: {0}")]
    Git(String),
    #[error("cannot write {file}: {source}")]
    Output {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

impl SweepError {
    /// The process exit code: 10 for an error in the configs or flags (the same code every
    /// `runner` command gives a config error), 1 when git or the output file failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            SweepError::Git(_) | SweepError::Output { .. } => 1,
            _ => 10,
        }
    }
}
