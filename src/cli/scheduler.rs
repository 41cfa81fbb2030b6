//! `scheduler` subcommands: `expand` and `diff`; `dispatch`, `collect` and `runners` talk to
//! GitHub (see [`crate::github`]).

use crate::config::master::MasterConfig;
use crate::config::row::MatrixRow;
use crate::config::runners::Runners;
use crate::sweep::{self, Evals, Filters, RowShape, SeqLenName, SweepError};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Expand InferenceMAX-style master configs into GitHub Actions matrix rows.
#[derive(Debug, Parser)]
#[command(name = "scheduler", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Every row of the given master configs (after filters).
    Expand(ExpandArgs),
    /// Rows only for entries that are new or changed between two git revisions.
    Diff(DiffArgs),
    /// Start the dispatch.yml workflow with inputs and print the run's URL.
    Dispatch(crate::github::cli::DispatchArgs),
    /// A run's bmk_* artifacts (or local result dirs) → sweep table, plots and verdict.
    Collect(crate::github::cli::CollectArgs),
    /// List self-hosted runners; warn about matrix labels no online runner has.
    Runners(crate::github::cli::RunnersArgs),
}

/// Filters and output options shared by `expand` and `diff`; flag names follow
/// InferenceMAX's generator so its users need not relearn them.
#[derive(Debug, Args)]
pub struct Common {
    /// Keep entries whose key starts with any of these prefixes.
    #[arg(long, num_args = 1.., value_name = "P")]
    pub model_prefix: Vec<String>,
    /// Keep entries with any of these precisions.
    #[arg(long, num_args = 1..)]
    pub precision: Vec<String>,
    /// Keep entries with any of these frameworks.
    #[arg(long, num_args = 1..)]
    pub framework: Vec<String>,
    /// Keep entries for these runner types (needs --runner-config).
    #[arg(long, num_args = 1..)]
    pub runner_type: Vec<String>,
    /// runners.yaml defining the runner types.
    #[arg(long, value_name = "F")]
    pub runner_config: Option<PathBuf>,
    /// Keep these scenarios only.
    #[arg(long, num_args = 1.., value_enum)]
    pub seq_lens: Vec<SeqLenName>,
    /// Concurrency multiplier between conc-start and conc-end.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub step_size: u32,
    /// One row per seq-len config: its highest-tp item at conc-start.
    #[arg(long)]
    pub test_mode: bool,
    /// Drop rows below this concurrency.
    #[arg(long, value_name = "N")]
    pub min_conc: Option<u32>,
    /// Drop rows above this concurrency.
    #[arg(long, value_name = "N")]
    pub max_conc: Option<u32>,
    /// Drop search-space items above this tensor-parallel size.
    #[arg(long, value_name = "N")]
    pub max_tp: Option<u32>,
    /// Keep entries whose key matches any of these globs.
    #[arg(long, num_args = 1.., value_name = "GLOB")]
    pub config_keys: Vec<String>,
    /// Emit chunked matrices of at most N rows (1..=256) instead of a plain list.
    #[arg(long, value_name = "N")]
    pub max_rows: Option<usize>,
    /// Also append the output to $GITHUB_OUTPUT under KEY (with KEY_count and KEY_<i> per
    /// chunk when chunked).
    #[arg(long, value_name = "KEY")]
    pub github_output: Option<String>,
    /// Add our own keys (`model-prefix`, `config-key`) to each row.
    #[arg(long)]
    pub extra_fields: bool,
    /// Schema B: mark no row for accuracy evaluation (`run-eval: false` everywhere).
    #[arg(long, conflicts_with = "evals_only")]
    pub no_evals: bool,
    /// Schema B: keep only rows marked for accuracy evaluation, with `eval-only: true`.
    #[arg(long)]
    pub evals_only: bool,
}

#[derive(Debug, Args)]
pub struct ExpandArgs {
    /// Master config files, expanded in this order.
    #[arg(long, num_args = 1.., required = true, value_name = "F")]
    pub config_files: Vec<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Base revision (e.g. the commit before the push).
    #[arg(long)]
    pub base: String,
    /// Head revision.
    #[arg(long)]
    pub head: String,
    /// Master config files, relative to the current directory inside the repository.
    #[arg(
        long,
        num_args = 1..,
        value_name = "F",
        default_values = [".github/configs/amd-master.yaml", ".github/configs/nvidia-master.yaml"]
    )]
    pub config_files: Vec<String>,
    /// Run every seq-len config of a changed entry, not only the changed ones.
    #[arg(long)]
    pub whole_entries: bool,
    /// Launch templates directory: entries whose template changed run whole.
    #[arg(long, default_value = "benchmarks")]
    pub templates: String,
    #[command(flatten)]
    pub common: Common,
}

/// Run the parsed command line; errors are printed and become exit code 1.
pub fn run(cli: Cli) -> ExitCode {
    // The GitHub subcommands report through anyhow; the sweep ones through SweepError.
    let github = match cli.cmd {
        Cmd::Dispatch(a) => crate::github::cli::dispatch(a),
        Cmd::Collect(a) => crate::github::cli::collect(a),
        Cmd::Runners(a) => crate::github::cli::runners(a),
        cmd => return run_sweep(Cli { cmd }),
    };
    github.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

fn run_sweep(cli: Cli) -> ExitCode {
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<(), SweepError> {
    match cli.cmd {
        Cmd::Expand(a) => {
            let configs = a
                .config_files
                .iter()
                .map(|p| MasterConfig::load(p))
                .collect::<Result<Vec<_>, _>>()?;
            let rows = expand_with(&configs, &a.common)?;
            emit(rows, &a.common)
        }
        Cmd::Diff(a) => {
            let repo = PathBuf::from(".");
            let templates = sweep::changed_files(&repo, &a.base, &a.head, &a.templates)?;
            let mut changed = vec![];
            for f in &a.config_files {
                let head = sweep::load_at_rev(&repo, &a.head, f)?
                    .ok_or_else(|| SweepError::Git(format!("{f} does not exist at {}", a.head)))?;
                let base = sweep::load_at_rev(&repo, &a.base, f)?;
                let c = sweep::changed_configs(base.as_ref(), &head, !a.whole_entries);
                changed.push(sweep::with_changed_templates(c, &head, &templates));
            }
            if changed.iter().all(|c| c.entries.is_empty()) {
                tracing::info!("no entries changed between {} and {}", a.base, a.head);
                return emit(vec![], &a.common);
            }
            let rows = expand_with(&changed, &a.common)?;
            emit(rows, &a.common)
        }
        Cmd::Dispatch(_) | Cmd::Collect(_) | Cmd::Runners(_) => unreachable!("handled in run"),
    }
}

fn expand_with(configs: &[MasterConfig], c: &Common) -> Result<Vec<MatrixRow>, SweepError> {
    let runners = match &c.runner_config {
        Some(p) => Some((Runners::load(p)?, p.display().to_string())),
        None => None,
    };
    let filters = Filters {
        model_prefix: c.model_prefix.clone(),
        precision: c.precision.clone(),
        framework: c.framework.clone(),
        runner_type: c.runner_type.clone(),
        seq_lens: c.seq_lens.clone(),
        step_size: c.step_size,
        test_mode: c.test_mode,
        min_conc: c.min_conc,
        max_conc: c.max_conc,
        max_tp: c.max_tp,
        config_keys: c.config_keys.clone(),
        shape: if c.extra_fields {
            RowShape::Extended
        } else {
            RowShape::Reference
        },
        evals: if c.no_evals {
            Evals::Off
        } else if c.evals_only {
            Evals::Only
        } else {
            Evals::Mark
        },
    };
    sweep::expand(
        configs,
        &filters,
        runners.as_ref().map(|(r, f)| (r, f.as_str())),
    )
}

fn emit(rows: Vec<MatrixRow>, c: &Common) -> Result<(), SweepError> {
    let (text, mut pairs) = match c.max_rows {
        None => (sweep::to_python_json(&rows), vec![]),
        Some(n) => {
            let chunked = sweep::chunk(rows, n)?;
            let mut pairs = vec![];
            if let Some(k) = &c.github_output {
                pairs.push((format!("{k}_count"), chunked.count.to_string()));
                for (i, m) in chunked.chunks.iter().enumerate() {
                    pairs.push((format!("{k}_{i}"), sweep::to_python_json(m)));
                }
            }
            (sweep::to_python_json(&chunked), pairs)
        }
    };
    if let Some(k) = &c.github_output {
        let file = std::env::var_os("GITHUB_OUTPUT").ok_or_else(|| SweepError::Output {
            file: "$GITHUB_OUTPUT".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "variable is not set"),
        })?;
        pairs.insert(0, (k.clone(), text.clone()));
        sweep::write_github_output(std::path::Path::new(&file), &pairs)?;
    }
    println!("{text}");
    Ok(())
}
