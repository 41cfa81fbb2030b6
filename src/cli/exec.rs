//! `runner exec` and `runner batch` command lines.

use crate::config::row::{AgenticRow, JobRow, MatrixRow};
use crate::exec::{self, ExecError, ExecOptions, Planned, Stage};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Flags shared by `exec` and `batch`.
#[derive(Debug, Clone, Args)]
pub struct ExecFlags {
    /// Result directories go here (one per job, named like InferenceMAX's RESULT_FILENAME).
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Launch profile in runners/ (default: chosen by runners/map.yaml from RUNNER_NAME and
    /// the row's runner).
    #[arg(long)]
    pub profile: Option<String>,
    /// Engine port (default: a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Print the materialised script and launch command; start nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print a JSON summary on stdout (`{"jobs": [agg rows], "error": null | {stage,
    /// exit_code, message}, "out": DIR}`) instead of the Markdown tables.
    #[arg(long)]
    pub json: bool,
    /// Folder of the launch templates (`<model-prefix>_<precision>_<gpu>_<framework>.sh`).
    #[arg(long, default_value = "benchmarks")]
    pub benchmarks: PathBuf,
    /// Folder of the launch profiles (`*.yaml`) and `map.yaml`.
    #[arg(long, default_value = "runners")]
    pub runners: PathBuf,
    /// Baselines directory: reference points and accuracy.yaml (default:
    /// $INFMAX_BASELINES, else ./baselines, else the one shipped with the source).
    #[arg(long, env = "INFMAX_BASELINES", value_name = "DIR")]
    pub baselines: Option<PathBuf>,
    /// Tokenizer for the client (default: the row's model; the embedded one on `sim`).
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// NUM_PROMPTS = CONC × this.
    #[arg(long, default_value_t = 10)]
    pub prompts_multiplier: usize,
    /// Prompt and output lengths are drawn uniformly from [ISL × this, ISL] and
    /// [OSL × this, OSL], as InferenceMAX runs them.
    #[arg(long, default_value_t = 0.8)]
    pub random_range_ratio: f64,
    /// Warmup requests (default 2 × CONC).
    #[arg(long)]
    pub num_warmups: Option<usize>,
    /// Seed of the client's dataset and arrival times.
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Seconds to wait for the engine to become ready (first starts compile for a while).
    #[arg(long, default_value_t = 3600.0, value_name = "SECONDS")]
    pub ready_timeout: f64,
    /// Fail a request that takes longer than this many seconds in total (an 8k-token answer
    /// at 100 ms per token takes 820 s). Also bounds a slow-loris engine: once more than 5 %
    /// of requests failed, the load phase stops a request timeout (at most 60 s) later.
    #[arg(long, default_value_t = 1800.0, value_name = "SECONDS")]
    pub request_timeout: f64,
    /// Fail a request whose stream sends nothing for this many seconds.
    #[arg(long, default_value_t = 300.0, value_name = "SECONDS")]
    pub stall_timeout: f64,
    /// GitHub runner name (defaults to $RUNNER_NAME, else the row's runner).
    #[arg(long, env = "RUNNER_NAME")]
    pub runner_name: Option<String>,
    /// Accuracy gate: TASK[:before|after] (wikitext, wikitext-tokens, gsm8k, gsm8k-chat).
    /// `before` (default) stops a failing job ahead of the load phase; `after` records the
    /// result and fails the job. Exit code 14 either way.
    #[arg(long, value_name = "TASK[:MODE]")]
    pub accuracy: Option<String>,
    /// The gate's documents from a local parquet or JSONL file (default: the HF dataset
    /// from the hub cache).
    #[arg(long, value_name = "PATH")]
    pub accuracy_data: Option<PathBuf>,
    /// gsm8k few-shot examples (the train split) from a local parquet or JSONL file.
    #[arg(long, value_name = "PATH")]
    pub accuracy_fewshot_data: Option<PathBuf>,
    /// Evaluate only the first N documents or problems.
    #[arg(long)]
    pub accuracy_limit: Option<usize>,
    /// Evaluation requests in flight.
    #[arg(long, default_value_t = 8)]
    pub accuracy_num_concurrent: usize,
    /// Explicit thresholds (METRIC=VALUE, repeatable) instead of baselines/accuracy.yaml.
    #[arg(long, value_name = "METRIC=VALUE")]
    pub accuracy_threshold: Vec<String>,
    /// Threshold variant in accuracy.yaml (gsm8k: `bounty`, `inferencemax`).
    #[arg(long)]
    pub accuracy_variant: Option<String>,
    /// Agentic rows: the profiling window in seconds instead of the row's `duration`
    /// (below 900 s the point is marked not submission-valid, as InferenceX does).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// Agentic rows: the trace corpus (a local traces.jsonl or parquet, or an HF dataset /
    /// AIPerf loader name). Default: the synthetic `small` corpus on the `sim` profile,
    /// else InferenceX's corpus for the model prefix.
    #[arg(long, value_name = "PATH|DATASET")]
    pub traces: Option<String>,
    /// Seconds between plain progress lines when stderr is not a terminal (default 10;
    /// hidden: tests use a short one).
    #[arg(long, hide = true, value_name = "SECONDS")]
    pub progress_interval: Option<f64>,
    /// Run every point N times (trials in `<point>/trial<k>/`); the point's agg.json holds
    /// the mean and 95 % intervals across the trials.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub repeat: u32,
    /// Dataset seeds of the trials: `fresh` (trial k uses --seed + k − 1: new prompts, so the
    /// interval covers the dataset draw too) or `same` (every trial replays --seed's
    /// requests: the spread is the engine's alone).
    #[arg(long, value_name = "fresh|same", default_value = "fresh")]
    pub repeat_seeds: RepeatSeeds,
}

/// How `--repeat` seeds its trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RepeatSeeds {
    /// Trial k: --seed + k − 1.
    Fresh,
    /// Every trial: --seed.
    Same,
}

/// `runner exec`.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// The job row (JSON or YAML): one row, or a list of rows as `scheduler expand` prints
    /// it (then pick one with --row).
    #[arg(long)]
    pub config: PathBuf,
    /// Which row of a row list to run, counted from 0 as in `jq '.[N]'`.
    #[arg(long, value_name = "N")]
    pub row: Option<usize>,
    /// Run the row at this concurrency instead of its own `conc`.
    #[arg(long, value_name = "N")]
    pub conc: Option<u32>,
    #[command(flatten)]
    pub flags: ExecFlags,
}

/// `runner check`: the row checks `runner exec` makes before it starts anything.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The job row (JSON or YAML), or a row list with --row.
    #[arg(long)]
    pub config: PathBuf,
    /// Which row of a row list to check, counted from 0 (default: every row).
    #[arg(long, value_name = "N")]
    pub row: Option<usize>,
    #[command(flatten)]
    pub flags: ExecFlags,
}

/// `runner batch`.
#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    /// Job rows (JSON or YAML), run in order; a row list (`scheduler expand` output) runs
    /// every row in it, or the one --row picks.
    #[arg(long, required = true, num_args = 1..)]
    pub config: Vec<PathBuf>,
    /// Of each row list, only this row (counted from 0).
    #[arg(long, value_name = "N")]
    pub row: Option<usize>,
    /// Run every row at each of these concurrencies instead of its own.
    #[arg(long, value_delimiter = ',')]
    pub conc: Vec<u32>,
    #[command(flatten)]
    pub flags: ExecFlags,
}

impl ExecFlags {
    fn options(&self) -> anyhow::Result<ExecOptions> {
        if let Some(s) = self.progress_interval {
            if !(s.is_finite() && s > 0.0) {
                anyhow::bail!("--progress-interval must be a positive number of seconds");
            }
            crate::progress::set_interval(std::time::Duration::from_secs_f64(s));
        }
        if self.prompts_multiplier == 0 {
            anyhow::bail!("--prompts-multiplier must be at least 1");
        }
        if !(1..=100).contains(&self.repeat) {
            anyhow::bail!("--repeat must be within 1..=100, got {}", self.repeat);
        }
        if !(0.0..=1.0).contains(&self.random_range_ratio) {
            anyhow::bail!("--random-range-ratio must be within [0, 1]");
        }
        let accuracy = match &self.accuracy {
            None => None,
            Some(spec) => Some(crate::accuracy::cli::GateOptions {
                spec: spec.parse()?,
                flags: crate::accuracy::cli::EvalFlags {
                    data: self.accuracy_data.clone(),
                    fewshot_data: self.accuracy_fewshot_data.clone(),
                    limit: self.accuracy_limit,
                    num_concurrent: self.accuracy_num_concurrent.max(1),
                    max_length: crate::accuracy::DEFAULT_MAX_LENGTH,
                    num_fewshot: None,
                    max_gen_toks: None,
                    prefix_token_id: None,
                    request_timeout_s: 300,
                    max_retries: 3,
                    thresholds: self.accuracy_threshold.clone(),
                    variant: self.accuracy_variant.clone(),
                },
            }),
        };
        Ok(ExecOptions {
            accuracy,
            markdown_summary: !self.json,
            out: self.out.clone(),
            benchmarks_dir: self.benchmarks.clone(),
            runners_dir: self.runners.clone(),
            baselines_dir: self.baselines.clone(),
            profile: self.profile.clone(),
            port: self.port,
            runner_name: self.runner_name.clone().filter(|n| !n.is_empty()),
            tokenizer: self.tokenizer.clone(),
            prompts_multiplier: self.prompts_multiplier,
            range_ratio: self.random_range_ratio,
            num_warmups: self.num_warmups,
            seed: self.seed,
            ready_timeout: seconds("--ready-timeout", self.ready_timeout)?,
            request_timeout: seconds("--request-timeout", self.request_timeout)?,
            stall_timeout: seconds("--stall-timeout", self.stall_timeout)?,
            repeat: self.repeat,
            fresh_seeds: self.repeat_seeds == RepeatSeeds::Fresh,
        })
    }
}

/// A timeout flag's value: positive, finite, at most a week.
fn seconds(flag: &str, v: f64) -> anyhow::Result<Duration> {
    if !(v > 0.0 && v <= 7.0 * 86400.0) {
        anyhow::bail!("{flag} must be a number of seconds in (0, 604800], got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

fn report_error(e: &ExecError) -> ExitCode {
    crate::errln!("error: {e}");
    ExitCode::from(e.stage.exit_code())
}

/// Plan rows (config errors exit 10), then run or print them.
fn go(rows: Vec<JobRow>, flags: &ExecFlags, batch: bool) -> ExitCode {
    let o = match flags.options() {
        Ok(o) => o,
        Err(e) => {
            crate::errln!("error: {}", super::error_text(&e));
            return ExitCode::from(Stage::Config.exit_code());
        }
    };
    let port = match o.port {
        Some(p) => p,
        None => match crate::launch::engine::free_port() {
            Ok(p) => p,
            Err(e) => {
                return report_error(&ExecError {
                    stage: Stage::Launch,
                    message: format!("no free port: {e}"),
                })
            }
        },
    };
    let mut planned: Vec<Planned> = vec![];
    for r in &rows {
        match exec::plan(r, &o, port) {
            Ok(p) => planned.push(p),
            Err(e) => return report_error(&e),
        }
    }
    if flags.dry_run {
        for p in &planned {
            crate::outln!(
                "# job: {}  profile: {} ({})  fingerprint: {}",
                p.result_name,
                p.profile.name,
                p.profile.profile.kind(),
                p.recipe.fingerprint
            );
            crate::outln!(
                "# template: {}  inputs read: {}",
                p.recipe.source,
                p.recipe.inputs_read.join(" ")
            );
            crate::outln!("# launch command: {}", p.launch_command.join(" "));
            crate::outln!("{}", p.recipe.script);
        }
        return ExitCode::SUCCESS;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tracker = exec::Tracker::default();
    let outcome = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        // A closed terminal or SSH session stops the run like SIGTERM does.
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
        tokio::select! {
            r = exec::run_jobs(&planned, &o, &tracker) => Ok(r),
            // Freeze what the run had while it is still alive: select! drops it before its
            // handlers run, and stopping its engine fails every request still waiting.
            _ = async { term.recv().await; tracker.freeze() } => Err(("SIGTERM", 143)),
            _ = async { int.recv().await; tracker.freeze() } => Err(("SIGINT", 130)),
            _ = async { hup.recv().await; tracker.freeze() } => Err(("SIGHUP", 129)),
        }
    });
    // Dropping the run above stopped any engine it had started.
    let (rows, err) = match outcome {
        Ok(r) => r,
        Err((sig, code)) => return interrupted(&tracker, sig, code, &o.out),
    };
    if batch && !rows.is_empty() {
        if let Err(e) = exec::write_batch_outputs(&o, &rows) {
            crate::errln!("error: batch summary: {}", super::error_text(&e));
        }
    }
    if flags.json {
        json_summary(serde_json::json!(rows), err.as_ref(), &o.out);
    }
    match err {
        Some(e) => ExitCode::from(e.stage.exit_code()),
        None => ExitCode::SUCCESS,
    }
}

/// A row `runner exec` can run: fixed-seq-len or agentic, single node.
enum Runnable {
    Fixed(JobRow),
    Agentic(AgenticRow),
}

/// A config error: printed, exit 10.
fn config_error(m: impl std::fmt::Display) -> ExitCode {
    crate::errln!("error: {m}");
    ExitCode::from(Stage::Config.exit_code())
}

/// Which rows of a file to take.
#[derive(Clone, Copy)]
enum Pick {
    /// Exactly one row: the file's only row, or the one --row names.
    One(Option<usize>),
    /// Every row of a list, or the one --row names.
    All(Option<usize>),
}

/// Read the rows of `path` (a row, or a row list as `scheduler expand` prints it), parsed
/// and validated; config errors exit 10 and say what was expected and how to pick a row.
fn load_rows(path: &std::path::Path, pick: Pick, cmd: &str) -> Result<Vec<MatrixRow>, ExitCode> {
    use crate::config::row::RowFile;
    let (file, rows) = match RowFile::load(path) {
        Ok(RowFile::One(r)) => {
            if let Pick::One(Some(n)) | Pick::All(Some(n)) = pick {
                if n != 0 {
                    return Err(config_error(format!(
                        "{}: --row {n}: the file holds one row, not a list (it is row 0)",
                        path.display()
                    )));
                }
            }
            return Ok(vec![*r]);
        }
        Ok(RowFile::List { file, rows }) => (file, rows),
        Err(e) => return Err(config_error(e)),
    };
    let n = rows.len();
    if n == 0 {
        return Err(config_error(format!(
            "{file}: an empty row list: the filters that made it matched nothing"
        )));
    }
    let describe = |i: usize| {
        let r = &rows[i];
        let s = |k: &str| {
            r.get(k)
                .map(|v| v.to_string().trim_matches('"').to_string())
        };
        format!(
            "{}{}",
            s("exp-name").unwrap_or_else(|| "?".into()),
            s("conc").map(|c| format!(" conc {c}")).unwrap_or_default()
        )
    };
    let chosen: Vec<usize> = match pick {
        Pick::One(Some(i)) | Pick::All(Some(i)) if i >= n => {
            return Err(config_error(format!(
                "{file}: --row {i}: the list has {n} rows (0 to {})",
                n - 1
            )))
        }
        Pick::One(Some(i)) | Pick::All(Some(i)) => vec![i],
        Pick::One(None) if n == 1 => vec![0],
        Pick::One(None) => {
            return Err(config_error(format!(
                "{file} is a list of {n} rows (`scheduler expand` output); `runner {cmd}` runs one row: pick it with --row N (0 to {}; row 0 is {}, row {} is {}), or run them all with `runner batch --config {file}`",
                n - 1,
                describe(0),
                n - 1,
                describe(n - 1)
            )))
        }
        Pick::All(None) => (0..n).collect(),
    };
    chosen
        .into_iter()
        .map(|i| RowFile::row(&file, &rows, i).map_err(config_error))
        .collect()
}

/// A row `runner exec` can run (multinode rows need a multinode launch: exit 10).
fn runnable(path: &std::path::Path, r: MatrixRow) -> Result<Runnable, ExitCode> {
    match r {
        MatrixRow::Single(r) => Ok(Runnable::Fixed(r)),
        MatrixRow::Agentic(r) => Ok(Runnable::Agentic(r)),
        r => Err(config_error(multinode_message(path, &r))),
    }
}

fn multinode_message(path: &std::path::Path, r: &MatrixRow) -> String {
    format!(
        "{}: a {} row (prefill/decode workers over several nodes) is valid, but `runner exec` has no multinode launch yet; run it with InferenceX's multinode workflow",
        path.display(),
        r.kind()
    )
}

/// `r` at concurrency `c`: agentic rows are renamed as the generator names them.
fn at_conc(r: &Runnable, c: u32) -> Runnable {
    match r {
        Runnable::Fixed(r) => Runnable::Fixed(JobRow {
            conc: c,
            ..r.clone()
        }),
        Runnable::Agentic(r) => Runnable::Agentic(AgenticRow {
            conc: c,
            exp_name: r
                .exp_name
                .replace(&format!("_conc{}", r.conc), &format!("_conc{c}")),
            ..r.clone()
        }),
    }
}

/// Run agentic rows, one engine per point; a batch also writes the summary of every point
/// and their chart into `--out`.
fn go_agentic(rows: Vec<AgenticRow>, flags: &ExecFlags, batch: bool) -> ExitCode {
    if flags.repeat > 1 {
        crate::errln!("error: --repeat is for fixed-seq-len rows; an agentic point's own duration and session count set its sample");
        return ExitCode::from(Stage::Config.exit_code());
    }
    let o = match flags.options() {
        Ok(o) => o,
        Err(e) => {
            crate::errln!("error: {}", super::error_text(&e));
            return ExitCode::from(Stage::Config.exit_code());
        }
    };
    let a = exec::agentic::AgenticExecOptions {
        duration: flags.duration,
        traces: flags.traces.clone(),
    };
    if flags.dry_run {
        for r in &rows {
            let sim = flags.profile.as_deref() == Some("sim");
            let spec = exec::agentic::job_for(r, &o, sim, a.duration.unwrap_or(r.duration));
            crate::outln!("# agentic job: {}", spec.result_filename());
            for (k, v) in spec.env() {
                crate::outln!("{k}={}", crate::recipe::shell_quote(&v));
            }
        }
        return ExitCode::SUCCESS;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tracker = exec::Tracker::default();
    let outcome = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
        let all = async {
            let mut done = vec![];
            let mut first_err = None;
            for r in &rows {
                match exec::agentic::run_row(r, &o, &a, &tracker).await {
                    Ok(p) => done.push(p),
                    Err(e) => {
                        crate::errln!("error: {e}");
                        first_err.get_or_insert(e);
                    }
                }
            }
            (done, first_err)
        };
        tokio::select! {
            r = all => Ok(r),
            _ = term.recv() => Err(("SIGTERM", 143)),
            _ = int.recv() => Err(("SIGINT", 130)),
            _ = hup.recv() => Err(("SIGHUP", 129)),
        }
    });
    // Dropping the run above stopped any engine it had started.
    let (done, err) = match outcome {
        Ok(r) => r,
        Err((sig, code)) => return interrupted(&tracker, sig, code, &o.out),
    };
    if batch && !done.is_empty() {
        if let Err(e) = exec::agentic::write_batch_outputs(&o.out, &done, !flags.json) {
            crate::errln!("error: batch summary: {}", super::std_error_text(&e));
        }
    }
    if flags.json {
        let aggs: Vec<&serde_json::Value> = done.iter().map(|p| &p.aggregate).collect();
        json_summary(serde_json::json!(aggs), err.as_ref(), &o.out);
    }
    match err {
        Some(e) => ExitCode::from(e.stage.exit_code()),
        None => ExitCode::SUCCESS,
    }
}

/// Split loaded rows by kind; a batch runs one kind.
fn by_kind(rows: Vec<Runnable>) -> Result<(Vec<JobRow>, Vec<AgenticRow>), ExitCode> {
    let (mut fixed, mut agentic) = (vec![], vec![]);
    for r in rows {
        match r {
            Runnable::Fixed(r) => fixed.push(r),
            Runnable::Agentic(r) => agentic.push(r),
        }
    }
    if !fixed.is_empty() && !agentic.is_empty() {
        crate::errln!("error: a batch runs fixed-seq-len or agentic-coding rows, not both; run them as two batches");
        return Err(ExitCode::from(Stage::Config.exit_code()));
    }
    Ok((fixed, agentic))
}

/// `--json`: the jobs that finished (their agg rows / aggregates), the first error and the
/// results folder, as one JSON document on stdout.
fn json_summary(jobs: serde_json::Value, err: Option<&ExecError>, out: &std::path::Path) {
    let error = err.map(|e| {
        serde_json::json!({
            "stage": e.stage.name(),
            "exit_code": e.stage.exit_code(),
            "message": e.message,
        })
    });
    let v = serde_json::json!({"jobs": jobs, "error": error, "out": out});
    crate::outln!(
        "{}",
        serde_json::to_string_pretty(&v).expect("JSON values serialise")
    );
}

/// `runner exec`.
pub fn run_exec(a: ExecArgs) -> ExitCode {
    if a.conc == Some(0) {
        return config_error("--conc must be at least 1");
    }
    let row = match load_rows(&a.config, Pick::One(a.row), "exec")
        .and_then(|mut v| runnable(&a.config, v.remove(0)))
    {
        Ok(r) => r,
        Err(c) => return c,
    };
    let row = match a.conc {
        Some(c) => at_conc(&row, c),
        None => row,
    };
    match row {
        Runnable::Fixed(row) => go(vec![row], &a.flags, false),
        Runnable::Agentic(row) => go_agentic(vec![row], &a.flags, false),
    }
}

/// `runner batch`.
pub fn run_batch(a: BatchArgs) -> ExitCode {
    let mut loaded = vec![];
    for p in &a.config {
        let rows = match load_rows(p, Pick::All(a.row), "batch") {
            Ok(r) => r,
            Err(c) => return c,
        };
        for r in rows {
            match runnable(p, r) {
                Ok(r) => loaded.push(r),
                Err(c) => return c,
            }
        }
    }
    if a.conc.contains(&0) {
        return config_error("--conc values must be at least 1");
    }
    if !a.conc.is_empty() {
        // Each concurrency is its own point.
        loaded = loaded
            .iter()
            .flat_map(|r| a.conc.iter().map(move |&c| at_conc(r, c)))
            .collect();
    }
    let (rows, agentic) = match by_kind(loaded) {
        Ok(k) => k,
        Err(c) => return c,
    };
    if !agentic.is_empty() {
        return go_agentic(agentic, &a.flags, true);
    }
    go(rows, &a.flags, true)
}

/// `runner check`: parse and validate the row(s), then make every check `runner exec`
/// makes before it starts anything (bounds, shell-safe values, launch profile, launch
/// template, client options), with its exit code (10); print the rows as the runner reads
/// them. Multinode rows are valid rows `exec` cannot run yet: printed, with a note.
pub fn run_check(a: CheckArgs) -> ExitCode {
    let rows = match load_rows(&a.config, Pick::All(a.row), "check") {
        Ok(r) => r,
        Err(c) => return c,
    };
    let o = match a.flags.options() {
        Ok(o) => o,
        Err(e) => return config_error(super::error_text(&e)),
    };
    let port = o.port.unwrap_or(8000);
    for r in &rows {
        let checked = match r {
            MatrixRow::Single(row) => exec::plan(row, &o, port).map(|p| {
                format!(
                    "{}: profile {}, template {}",
                    p.result_name, p.profile.name, p.recipe.source
                )
            }),
            MatrixRow::Agentic(row) => exec::agentic::check_row(row, &o),
            r => {
                crate::errln!("note: {}", multinode_message(&a.config, r));
                Ok(String::new())
            }
        };
        match checked {
            Ok(what) if !what.is_empty() => crate::errln!("ok: {what}"),
            Ok(_) => {}
            Err(e) => return report_error(&e),
        }
    }
    let out = if rows.len() == 1 {
        serde_json::to_string_pretty(&rows[0])
    } else {
        serde_json::to_string_pretty(&rows)
    };
    crate::outln!("{}", out.expect("rows serialise"));
    ExitCode::SUCCESS
}

/// A run ended by `sig`: write the job's interrupted record, say where it and the partial
/// results are, and exit with `code` (fixed-length and agentic runs alike).
fn interrupted(tracker: &exec::Tracker, sig: &str, code: u8, out: &std::path::Path) -> ExitCode {
    let job = exec::write_interrupted(tracker, sig, code)
        .map(|d| format!("; the job's record is in {}", d.display()))
        .unwrap_or_default();
    crate::errln!(
        "error: interrupted by {sig}; the engine was stopped and partial results are in {}{job}",
        out.display()
    );
    ExitCode::from(code)
}
