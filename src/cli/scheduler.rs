//! `scheduler` subcommands: `expand` and `diff`; `dispatch`, `collect` and `runners` talk to
//! GitHub (see [`crate::github`]).

use crate::config::master::MasterConfig;
use crate::config::row::MatrixRow;
use crate::config::runners::Runners;
use crate::sweep::{self, Evals, Filters, Mode, RowShape, ScenarioType, SeqLenName, SweepError};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Turn InferenceMAX master configs into benchmark matrix rows, and run sweeps on GitHub.
///
/// `expand`, `test-config` and `diff` print the rows InferenceMAX's generator prints (one
/// per engine configuration and concurrency); `runner exec` runs one of them. `list` shows
/// what a config file holds. `dispatch`, `collect` and `runners` drive the GitHub Actions
/// side of a sweep.
#[derive(Debug, Parser)]
#[command(name = "scheduler", version = super::VERSION, after_help = super::examples(&[
    "scheduler list --config-files configs/2026/nvidia-master.yaml",
    "scheduler expand --config-files .github/configs/amd-master.yaml --model-prefix dsr1",
    "scheduler collect --dir results --out sweep",
]))]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Every row of the given master configs (after filters): the reference's `full-sweep`.
    #[command(after_help = super::examples(&[
        "scheduler expand --config-files .github/configs/amd-master.yaml --model-prefix dsr1",
        "scheduler expand --config-files configs/2026/amd-master.yaml --model-prefix dsr1 --buckets",
        "scheduler expand --config-files .github/configs/nvidia-master.yaml --test-mode --max-rows 256",
    ]))]
    Expand(ExpandArgs),
    /// 2026 configs: every row of the named entries (keys or globs), as InferenceX's
    /// `generate_sweep_configs.py test-config` emits them.
    #[command(after_help = super::examples(&[
        "scheduler test-config --config-files configs/2026/nvidia-master.yaml --config-keys '*b200-sglang'",
        "scheduler test-config --config-files configs/2026/amd-master.yaml --config-keys 'dsr1-*'",
    ]))]
    TestConfig(TestConfigArgs),
    /// Rows only for entries that are new or changed between two git revisions.
    #[command(after_help = super::examples(&[
        "scheduler diff --base HEAD~1 --head HEAD",
        "scheduler diff --base origin/main --head HEAD --whole-entries --max-rows 256",
    ]))]
    Diff(DiffArgs),
    /// Start the dispatch.yml workflow with inputs and print the run's URL.
    #[command(after_help = super::examples(&[
        "scheduler dispatch --isl-osl 8k1k --model-prefix dsr1 --runner-type mi355x",
        "scheduler dispatch --isl-osl 1k1k --model-prefix gptoss --runner-type b200 --conc 4,8",
    ]))]
    Dispatch(crate::github::cli::DispatchArgs),
    /// A run's bmk_* artifacts (or local result dirs) → sweep table, plots and verdict.
    #[command(after_help = super::examples(&[
        "scheduler collect --run-id 123456789 --out sweep",
        "scheduler collect --dir results --out sweep --no-png",
    ]))]
    Collect(crate::github::cli::CollectArgs),
    /// List self-hosted runners; warn about matrix labels no online runner has.
    #[command(after_help = super::examples(&[
        "scheduler runners",
        "scheduler runners --matrix matrix.json --strict",
    ]))]
    Runners(crate::github::cli::RunnersArgs),
    /// What master configs hold: one line per entry with its model, hardware, framework,
    /// precision, scenarios and file (the keys `--config-keys` and `--model-prefix` select).
    #[command(after_help = super::examples(&[
        "scheduler list",
        "scheduler list --config-files configs/2026/nvidia-master.yaml",
        "scheduler list --config-files .github/configs/amd-master.yaml --json",
    ]))]
    List(ListArgs),
    /// Print a shell completion script for `scheduler` (bash, zsh, fish, elvish, powershell).
    #[command(after_help = super::examples(&[
        "scheduler completions bash > ~/.local/share/bash-completion/completions/scheduler",
        "scheduler completions zsh > ~/.zfunc/_scheduler",
        "scheduler completions fish > ~/.config/fish/completions/scheduler.fish",
    ]))]
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
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
    #[command(flatten)]
    pub b: SchemaB,
    /// Schema B: cap single-node fixed-seq-len `ep` at N.
    #[arg(long, value_name = "N")]
    pub max_ep: Option<u32>,
    /// Schema B: single-node entries only (neither this nor --multi-node: both).
    #[arg(long)]
    pub single_node: bool,
    /// Schema B: multinode entries only.
    #[arg(long)]
    pub multi_node: bool,
}

/// Options both 2026 commands (`expand` and `test-config`) share with InferenceX's
/// generator, plus `--fingerprint`.
#[derive(Debug, Args)]
pub struct SchemaB {
    /// Schema B: mark no row for accuracy evaluation (fixed rows `run-eval: false`,
    /// agentic rows without the key).
    #[arg(long, conflicts_with = "evals_only")]
    pub no_evals: bool,
    /// Schema B: keep only rows marked for accuracy evaluation, with `eval-only: true`.
    #[arg(long)]
    pub evals_only: bool,
    /// Schema B: evaluate every 8k1k fixed row and every agentic row (implies eval-only rows).
    #[arg(long, conflicts_with = "no_evals")]
    pub all_evals: bool,
    /// Schema B: only these scenario types.
    #[arg(long, num_args = 1.., value_enum)]
    pub scenario_type: Vec<ScenarioType>,
    /// Schema B: one row per node of the entry's runner label whose name contains S.
    #[arg(long, value_name = "S")]
    pub runner_node_filter: Option<String>,
    /// Print `{"single_node": {…}, "multi_node": {…}, "evals": […], …}`: rows sorted into
    /// the buckets InferenceX's run-sweep.yml dispatches (agentic/fixed × single/multinode,
    /// eval rows apart); with --github-output KEY also `KEY_<bucket>` per non-empty one.
    #[arg(long, conflicts_with = "max_rows")]
    pub buckets: bool,
    /// Add `recipe-fingerprint` (sha256 of the row without conc/exp-name, as InferenceX's
    /// process_changelog.py computes it; its benchmark rows are generated with --no-evals).
    #[arg(long)]
    pub fingerprint: bool,
}

/// `scheduler test-config`.
#[derive(Debug, Args)]
pub struct TestConfigArgs {
    /// Master config files (2026 schema).
    #[arg(long, num_args = 1.., required = true, value_name = "F")]
    pub config_files: Vec<PathBuf>,
    /// Entry keys, or globs with `*`/`?`; each must match.
    #[arg(long, num_args = 1.., required = true, value_name = "KEY")]
    pub config_keys: Vec<String>,
    /// Only these concurrencies.
    #[arg(long, num_args = 1.., value_name = "N")]
    pub conc: Vec<u32>,
    /// Only these scenarios.
    #[arg(long, num_args = 1.., value_enum)]
    pub seq_lens: Vec<SeqLenName>,
    /// runners.yaml (labels and hardware).
    #[arg(long, value_name = "F")]
    pub runner_config: Option<PathBuf>,
    #[command(flatten)]
    pub b: SchemaB,
    /// Emit chunked matrices of at most N rows (1..=256) instead of a plain list.
    #[arg(long, value_name = "N")]
    pub max_rows: Option<usize>,
    /// Also append the output to $GITHUB_OUTPUT under KEY.
    #[arg(long, value_name = "KEY")]
    pub github_output: Option<String>,
    /// Add our own key `config-key` to each row.
    #[arg(long)]
    pub extra_fields: bool,
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

/// `scheduler list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Master config files (either schema; each file is read on its own).
    #[arg(
        long,
        num_args = 1..,
        value_name = "F",
        default_values = [
            ".github/configs/amd-master.yaml",
            ".github/configs/nvidia-master.yaml",
            "configs/2026/amd-master.yaml",
            "configs/2026/nvidia-master.yaml",
        ]
    )]
    pub config_files: Vec<PathBuf>,
    /// Print a JSON array (key, file, model, model-prefix, hardware, framework, precision,
    /// multinode, disagg, scenarios) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A scenario's name as the sweep flags spell it: `1k1k`, `8k1k`, `1024x100` when the
/// lengths are not whole multiples of 1024.
fn scenario_name(isl: u32, osl: u32) -> String {
    let k = |n: u32| {
        if n.is_multiple_of(1024) {
            format!("{}k", n / 1024)
        } else {
            n.to_string()
        }
    };
    if isl.is_multiple_of(1024) && osl.is_multiple_of(1024) {
        format!("{}{}", k(isl), k(osl))
    } else {
        format!("{isl}x{osl}")
    }
}

/// `scheduler list`: one line (or JSON object) per entry.
fn list(a: &ListArgs) -> Result<(), SweepError> {
    let mut rows = vec![];
    for p in &a.config_files {
        let c = MasterConfig::load(p)?;
        for e in &c.entries {
            let mut scenarios: Vec<String> = vec![];
            for s in &e.seq_lens {
                let n = scenario_name(s.isl, s.osl);
                if !scenarios.contains(&n) {
                    scenarios.push(n);
                }
            }
            if !e.agentic.is_empty() {
                scenarios.push("agentic-coding".into());
            }
            rows.push(serde_json::json!({
                "key": e.key,
                "file": p.display().to_string(),
                "model": e.model,
                "model-prefix": e.model_prefix,
                "hardware": e.runner,
                "framework": e.framework,
                "precision": e.precision,
                "multinode": e.multinode,
                "disagg": e.disagg,
                "scenarios": scenarios,
            }));
        }
    }
    if a.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("JSON values serialise")
        );
        return Ok(());
    }
    let cell = |r: &serde_json::Value, k: &str| -> String {
        match &r[k] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(v) => v
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            serde_json::Value::Bool(b) => (if *b { "multi" } else { "single" }).into(),
            v => v.to_string(),
        }
    };
    let cols = [
        ("KEY", "key"),
        ("MODEL", "model"),
        ("HARDWARE", "hardware"),
        ("FRAMEWORK", "framework"),
        ("PRECISION", "precision"),
        ("NODES", "multinode"),
        ("SCENARIOS", "scenarios"),
        ("FILE", "file"),
    ];
    let table: Vec<Vec<String>> = std::iter::once(cols.iter().map(|c| c.0.to_string()).collect())
        .chain(
            rows.iter()
                .map(|r| cols.iter().map(|c| cell(r, c.1)).collect()),
        )
        .collect();
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in &table {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        crate::outln!("{}", line.trim_end());
    }
    Ok(())
}

/// Run the parsed command line; errors are printed and become exit code 10 (a config or
/// flag error, as in `runner`) or 1 (git, an output file, the GitHub API).
pub fn run(cli: Cli) -> ExitCode {
    // The GitHub subcommands report through anyhow; the sweep ones through SweepError.
    let github = match cli.cmd {
        Cmd::Dispatch(a) => crate::github::cli::dispatch(a),
        Cmd::Collect(a) => crate::github::cli::collect(a),
        Cmd::Runners(a) => crate::github::cli::runners(a),
        Cmd::Completions { shell } => return super::completions::<Cli>(shell, "scheduler"),
        cmd => return run_sweep(Cli { cmd }),
    };
    github.unwrap_or_else(|e| {
        crate::errln!("error: {}", super::error_text(&e));
        ExitCode::FAILURE
    })
}

fn run_sweep(cli: Cli) -> ExitCode {
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::errln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn dispatch(cli: Cli) -> Result<(), SweepError> {
    match cli.cmd {
        Cmd::List(a) => list(&a),
        Cmd::Expand(a) => {
            let configs = a
                .config_files
                .iter()
                .map(|p| MasterConfig::load(p))
                .collect::<Result<Vec<_>, _>>()?;
            let rows = expand_with(&configs, &a.common)?;
            emit(
                rows,
                a.common.max_rows,
                &a.common.github_output,
                a.common.b.buckets,
            )
        }
        Cmd::TestConfig(a) => {
            let configs = a
                .config_files
                .iter()
                .map(|p| MasterConfig::load(p))
                .collect::<Result<Vec<_>, _>>()?;
            let runners = load_runners(&a.runner_config)?;
            let filters = Filters {
                seq_lens: a.seq_lens.clone(),
                shape: if a.extra_fields {
                    RowShape::Extended
                } else {
                    RowShape::Reference
                },
                ..schema_b_filters(&a.b)
            };
            let mode = Mode::TestConfig {
                keys: a.config_keys.clone(),
                conc: a.conc.clone(),
            };
            let rows = sweep::expand(
                &configs,
                &filters,
                runners.as_ref().map(|(r, f)| (r, f.as_str())),
                &mode,
            )?;
            emit(rows, a.max_rows, &a.github_output, a.b.buckets)
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
                return emit(
                    vec![],
                    a.common.max_rows,
                    &a.common.github_output,
                    a.common.b.buckets,
                );
            }
            let rows = expand_with(&changed, &a.common)?;
            emit(
                rows,
                a.common.max_rows,
                &a.common.github_output,
                a.common.b.buckets,
            )
        }
        Cmd::Dispatch(_) | Cmd::Collect(_) | Cmd::Runners(_) | Cmd::Completions { .. } => {
            unreachable!("handled in run")
        }
    }
}

fn load_runners(p: &Option<PathBuf>) -> Result<Option<(Runners, String)>, SweepError> {
    Ok(match p {
        Some(p) => Some((Runners::load(p)?, p.display().to_string())),
        None => None,
    })
}

/// Filters from the schema-B options (the rest default).
fn schema_b_filters(b: &SchemaB) -> Filters {
    Filters {
        evals: if b.no_evals {
            Evals::Off
        } else if b.evals_only {
            Evals::Only
        } else {
            Evals::Mark
        },
        all_evals: b.all_evals,
        scenario_types: b.scenario_type.clone(),
        runner_node_filter: b.runner_node_filter.clone(),
        fingerprint: b.fingerprint,
        ..Filters::default()
    }
}

fn expand_with(configs: &[MasterConfig], c: &Common) -> Result<Vec<MatrixRow>, SweepError> {
    let runners = load_runners(&c.runner_config)?;
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
        single_node: c.single_node,
        multi_node: c.multi_node,
        max_ep: c.max_ep,
        ..schema_b_filters(&c.b)
    };
    sweep::expand(
        configs,
        &filters,
        runners.as_ref().map(|(r, f)| (r, f.as_str())),
        &Mode::Full,
    )
}

fn emit(
    rows: Vec<MatrixRow>,
    max_rows: Option<usize>,
    github_output: &Option<String>,
    buckets: bool,
) -> Result<(), SweepError> {
    let (text, mut pairs) = match max_rows {
        None if buckets => {
            let b = sweep::buckets(rows);
            let mut pairs = vec![];
            if let Some(k) = github_output {
                for (side, map) in [
                    ("single_node", &b.single_node),
                    ("multi_node", &b.multi_node),
                ] {
                    for (scenario, rows) in map {
                        pairs.push((
                            format!("{k}_{side}_{scenario}"),
                            sweep::to_python_json(rows),
                        ));
                    }
                }
                for (name, rows) in [
                    ("evals", &b.evals),
                    ("agentic_evals", &b.agentic_evals),
                    ("multinode_evals", &b.multinode_evals),
                    ("multinode_agentic_evals", &b.multinode_agentic_evals),
                ] {
                    if !rows.is_empty() {
                        pairs.push((format!("{k}_{name}"), sweep::to_python_json(rows)));
                    }
                }
            }
            (sweep::to_python_json(&b), pairs)
        }
        None => (sweep::to_python_json(&rows), vec![]),
        Some(n) => {
            let chunked = sweep::chunk(rows, n)?;
            let mut pairs = vec![];
            if let Some(k) = github_output {
                pairs.push((format!("{k}_count"), chunked.count.to_string()));
                for (i, m) in chunked.chunks.iter().enumerate() {
                    pairs.push((format!("{k}_{i}"), sweep::to_python_json(m)));
                }
            }
            (sweep::to_python_json(&chunked), pairs)
        }
    };
    if let Some(k) = github_output {
        let file = std::env::var_os("GITHUB_OUTPUT").ok_or(SweepError::GithubOutputUnset)?;
        pairs.insert(0, (k.clone(), text.clone()));
        sweep::write_github_output(std::path::Path::new(&file), &pairs)?;
    }
    crate::outln!("{text}");
    Ok(())
}
