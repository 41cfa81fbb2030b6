//! The GitHub side of a sweep: `scheduler dispatch` starts `dispatch.yml`, `scheduler collect`
//! turns a run's `bmk_*` artifacts into one sweep table, plots and verdict, and `scheduler
//! runners` checks that every runner label a matrix targets has an online self-hosted runner.
//!
//! It exists so that what the workflows do can be done, and tested, from a terminal: the
//! workflows stay thin (build, call `scheduler`/`runner`, upload), and everything that talks
//! to the REST API lives here, behind an API base URL that tests point at a local server.
//! Aggregation reuses `report` unchanged, so a collected sweep reads exactly like
//! `runner report` over the same directories; jobs that left no `agg.json` are listed as
//! failed rather than dropped.

pub mod api;
pub mod cli;
pub mod collect;

pub use api::{Artifact, Client, Job, Runner, WorkflowRun};

/// Why a GitHub operation failed. Messages say what to check.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    /// Neither `GITHUB_TOKEN` nor `GH_TOKEN` is set.
    #[error("no GitHub token: set GITHUB_TOKEN or GH_TOKEN")]
    NoToken,
    /// Neither `--repo` nor `$GITHUB_REPOSITORY` names the repository.
    #[error("no repository: pass --repo owner/name or set GITHUB_REPOSITORY")]
    NoRepo,
    /// The repository is not `owner/name`.
    #[error("repository `{0}` is not of the form owner/name")]
    BadRepo(String),
    /// 401: the token is missing, expired or wrong.
    #[error("{what}: GitHub rejected the token (401 {message}); check GITHUB_TOKEN / GH_TOKEN")]
    Unauthorized {
        /// The request, in words.
        what: String,
        /// GitHub's message.
        message: String,
    },
    /// 404: wrong repository, run id or workflow, or a token that cannot see them.
    #[error("{what}: not found (404 {message}); check the repository, the id and that the token may read Actions")]
    NotFound {
        /// The request, in words.
        what: String,
        /// GitHub's message.
        message: String,
    },
    /// 403/429 with `x-ratelimit-remaining: 0`.
    #[error(
        "{what}: GitHub API rate limit exceeded{reset}; wait, or use a token with a higher limit"
    )]
    RateLimited {
        /// The request, in words.
        what: String,
        /// `, resets at <epoch s>` when GitHub said when.
        reset: String,
    },
    /// Any other unsuccessful answer.
    #[error("{what}: GitHub answered {status}: {message}")]
    Api {
        /// The request, in words.
        what: String,
        /// HTTP status code.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// The request did not get an answer (connection, TLS, timeout, bad URL) or the answer
    /// was not what the endpoint documents.
    #[error("{what}: {message}")]
    Http {
        /// The request, in words.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// The dispatched run did not show up in the runs list in time.
    #[error("dispatched {workflow} on {git_ref}, but no new run appeared within {secs} s; look at the Actions tab")]
    RunNotFound {
        /// Workflow file.
        workflow: String,
        /// Branch or tag.
        git_ref: String,
        /// How long we looked.
        secs: u64,
    },
    /// An artifact is not a valid zip, or holds a path outside its directory.
    #[error("artifact {name}: {message}")]
    Zip {
        /// Artifact name.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A matrix file could not be read as expand output.
    #[error("{file}: not a matrix (a list of rows, {{\"include\": [...]}} or chunked expand output): {message}")]
    Matrix {
        /// The file.
        file: String,
        /// What is wrong with it.
        message: String,
    },
}

impl GithubError {
    pub(crate) fn io(file: &std::path::Path, source: std::io::Error) -> Self {
        GithubError::Io {
            file: file.display().to_string(),
            source,
        }
    }
}

/// `owner/name` from `--repo`, else `$GITHUB_REPOSITORY`.
pub fn repo_from(flag: Option<&str>) -> Result<(String, String), GithubError> {
    let s = match flag {
        Some(s) => s.to_string(),
        None => std::env::var("GITHUB_REPOSITORY")
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or(GithubError::NoRepo)?,
    };
    match s.split_once('/') {
        Some((o, n)) if !o.is_empty() && !n.is_empty() && !n.contains('/') => {
            Ok((o.to_string(), n.to_string()))
        }
        _ => Err(GithubError::BadRepo(s)),
    }
}

/// The token from `GITHUB_TOKEN`, else `GH_TOKEN`.
pub fn token_from_env() -> Result<String, GithubError> {
    ["GITHUB_TOKEN", "GH_TOKEN"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .ok_or(GithubError::NoToken)
}
