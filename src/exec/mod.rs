//! `runner exec` and `runner batch`: one matrix row (or several CONC values) end to end.
//!
//! recipe → launch → ready → load client → report, with every file written atomically into
//! `<out>/<RESULT_FILENAME>/` and the engine stopped on every path. The exit code says which
//! stage failed, so a workflow can tell a broken config from a dead engine from a slow one.
//! In a batch the engine is kept up while the next row's recipe fingerprint is unchanged.
//! GPU telemetry ([`crate::telemetry`]) is sampled from the start of each job's load phase
//! until a sample after its end (so the stream brackets the benchmark window) and becomes
//! `gpu_metrics.csv`, `power_validation.json` and the agg row's energy fields (InferenceX's
//! power schema v2, integrated over the benchmark window only).

pub mod agentic;

use crate::accuracy::cli::GateOptions;
use crate::accuracy::Mode;
use crate::client::load::Progress;
use crate::client::request::{Backend, Timeouts};
use crate::client::result::Selection;
use crate::client::{self, BenchConfig};
use crate::config::row::JobRow;
use crate::launch::engine::{self, Engine, LaunchSpec};
use crate::launch::profile::{self, NamedProfile, Profile};
use crate::recipe::{self, Recipe, TemplateSource};
use crate::report::{
    self, AccuracyRecord, AccuracyStatus, AggInputs, AggRow, Baselines, ClientInfo, JobFailure,
};
use crate::telemetry::{Sample, Sampler, Tool};
use crate::tokenizer::{HfTokenizer, EMBEDDED_NAME};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Which stage failed; each has its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Config,
    Launch,
    Readiness,
    Load,
    Accuracy,
    Report,
    Interrupted,
}

impl Stage {
    /// The process exit code for a failure in this stage.
    pub fn exit_code(self) -> u8 {
        match self {
            Stage::Config => 10,
            Stage::Launch => 11,
            Stage::Readiness => 12,
            Stage::Load => 13,
            Stage::Accuracy => 14,
            Stage::Report => 15,
            Stage::Interrupted => 130,
        }
    }

    /// The stage's name in `status.json` and messages.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Config => "config",
            Stage::Launch => "launch",
            Stage::Readiness => "readiness",
            Stage::Load => "load",
            Stage::Accuracy => "accuracy",
            Stage::Report => "report",
            Stage::Interrupted => "interrupted",
        }
    }
}

/// A failed job: the stage and a message that says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{} failed: {message}", stage.name())]
pub struct ExecError {
    pub stage: Stage,
    pub message: String,
}

fn fail(stage: Stage, e: impl std::fmt::Display) -> ExecError {
    ExecError {
        stage,
        message: format!("{e:#}"),
    }
}

/// Settings of a run that are not in the row.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Result directories go under here.
    pub out: PathBuf,
    /// Launch templates.
    pub benchmarks_dir: PathBuf,
    /// Launch profiles and `map.yaml`.
    pub runners_dir: PathBuf,
    /// Reference points; `None` = `./baselines` if present.
    pub baselines_dir: Option<PathBuf>,
    /// Profile name (else chosen by `runners/map.yaml` from the runner name and row).
    pub profile: Option<String>,
    /// Engine port (else a free one).
    pub port: Option<u16>,
    /// The GitHub runner's name (`RUNNER_NAME`), else the row's runner label.
    pub runner_name: Option<String>,
    /// Tokenizer for real engines (default: the row's model).
    pub tokenizer: Option<String>,
    /// NUM_PROMPTS = CONC × this.
    pub prompts_multiplier: usize,
    /// `--random-range-ratio`.
    pub range_ratio: f64,
    /// Warmup requests (default 2 × CONC).
    pub num_warmups: Option<usize>,
    pub seed: u32,
    /// Readiness timeout.
    pub ready_timeout: Duration,
    /// Per-request total timeout of the client.
    pub request_timeout: Duration,
    /// Per-request stall timeout of the client.
    pub stall_timeout: Duration,
    /// The accuracy gate, when asked for (`--accuracy`).
    pub accuracy: Option<crate::accuracy::cli::GateOptions>,
    /// Trials per point (`--repeat`): above 1 each trial runs into `<point>/trial<k>/` and
    /// the point's `agg.json` combines them ([`report::trials`]).
    pub repeat: u32,
    /// Trial k uses dataset seed `seed + k − 1` (fresh prompts per trial, the default) rather
    /// than `seed` for every trial (`--repeat-seeds same`: the identical request stream, so
    /// the spread is the engine's alone).
    pub fresh_seeds: bool,
    /// Print each job's (and a batch's) Markdown summary on stdout; off when the caller
    /// prints a JSON summary there instead (`--json`).
    pub markdown_summary: bool,
}

impl ExecOptions {
    /// The dataset seed of trial `k` (1-based).
    pub fn trial_seed(&self, k: u32) -> u32 {
        if self.fresh_seeds {
            self.seed.wrapping_add(k - 1)
        } else {
            self.seed
        }
    }
}

/// Most prompts one job may send (NUM_PROMPTS = CONC × `--prompts-multiplier`) or warm up.
pub const MAX_NUM_PROMPTS: usize = 1_000_000;
/// Most prompt tokens one job may generate (NUM_PROMPTS × ISL): the dataset is held in
/// memory as text before the first request.
pub const MAX_PROMPT_TOKENS: u64 = 1 << 28;

/// The load the options make of a row fits in memory: checked before anything starts, so
/// no allocation failure can happen with an engine up.
fn check_load_size(row: &JobRow, o: &ExecOptions) -> Result<(), ExecError> {
    let n = (row.conc as usize).saturating_mul(o.prompts_multiplier);
    if n > MAX_NUM_PROMPTS {
        return Err(fail(
            Stage::Config,
            format!(
                "num-prompts = conc {} × --prompts-multiplier {} = {n} is above the limit of {MAX_NUM_PROMPTS}",
                row.conc, o.prompts_multiplier
            ),
        ));
    }
    if let Some(w) = o.num_warmups.filter(|&w| w > MAX_NUM_PROMPTS) {
        return Err(fail(
            Stage::Config,
            format!("--num-warmups {w} is above the limit of {MAX_NUM_PROMPTS}"),
        ));
    }
    let tokens = n as u64 * u64::from(row.isl);
    if tokens > MAX_PROMPT_TOKENS {
        return Err(fail(
            Stage::Config,
            format!(
                "num-prompts {n} × isl {} = {tokens} prompt tokens is above the limit of {MAX_PROMPT_TOKENS}",
                row.isl
            ),
        ));
    }
    Ok(())
}

/// A row with its profile and recipe, ready to run.
pub struct Planned {
    pub row: JobRow,
    pub runner_name: String,
    pub profile: NamedProfile,
    pub recipe: Recipe,
    /// The profile's launch command (symbolic), shown by `--dry-run`.
    pub launch_command: Vec<String>,
    pub result_name: String,
    pub port: u16,
}

/// Validate the row, pick the profile and materialise the recipe. No side effects.
pub fn plan(row: &JobRow, o: &ExecOptions, port: u16) -> Result<Planned, ExecError> {
    // Without --runner-name the row's label stands in, minus a `cluster:` prefix (runner
    // names go into file and artifact names, where ':' is refused), as for agentic rows.
    let runner_name = o.runner_name.clone().unwrap_or_else(|| {
        let label = row.runner.as_str();
        label.strip_prefix("cluster:").unwrap_or(label).to_string()
    });
    // Again here: `runner batch --conc` makes rows that no file validated.
    row.validate("row").map_err(|e| fail(Stage::Config, e))?;
    check_load_size(row, o)?;
    recipe::validate(row, &runner_name).map_err(|e| fail(Stage::Config, e))?;
    let profile = match &o.profile {
        Some(p) => profile::load(&o.runners_dir, p),
        None => profile::resolve(&o.runners_dir, &[&runner_name, &row.runner]),
    }
    .map_err(|e| fail(Stage::Config, e))?;
    let launch_command = engine::describe(&profile.profile, &row.image, row.tp);
    let mut inputs = recipe::inputs(row, port, &runner_name);
    let (source, text) = match &profile.profile {
        Profile::Sim { preset } => {
            if crate::sim::SimConfig::preset(preset).is_none() {
                return Err(fail(
                    Stage::Config,
                    format!(
                        "{}: unknown sim preset `{preset}` (have: {})",
                        profile.file.display(),
                        crate::sim::config::PRESETS.join(", ")
                    ),
                ));
            }
            inputs.push(("SIM_PRESET".into(), preset.clone()));
            (
                TemplateSource::Builtin("sim"),
                recipe::SIM_TEMPLATE.to_string(),
            )
        }
        _ => {
            let p = recipe::find_template(&o.benchmarks_dir, row)
                .map_err(|e| fail(Stage::Config, e))?;
            let t = recipe::read_template(&p).map_err(|e| fail(Stage::Config, e))?;
            (TemplateSource::File(p), t)
        }
    };
    let recipe = recipe::materialise(source, &text, inputs, &launch_command, &row.image);
    Ok(Planned {
        result_name: recipe::result_filename(row, &runner_name),
        row: row.clone(),
        runner_name,
        profile,
        recipe,
        launch_command,
        port,
    })
}

/// The running engine of a batch and the fingerprint it was started for.
struct Running {
    engine: Engine,
    fingerprint: String,
    started_s: f64,
    /// The gate's record for this engine (an engine reused in a batch is evaluated once).
    accuracy: Option<AccuracyRecord>,
}

/// Write `status.json` for a job that did not finish, so collectors list it as failed.
fn write_status(dir: &Path, e: &ExecError) {
    let v = serde_json::json!({"status": "failed", "stage": e.stage.name(), "exit_code": e.stage.exit_code(), "error": e.message});
    let _ = crate::fsutil::write_atomic(&dir.join("status.json"), format!("{v:#}\n").as_bytes());
}

/// What the job in progress has so far, for the record a signal leaves
/// ([`write_interrupted`]). `run_jobs` updates it as the job moves through its stages; the
/// signal handler reads it once the run has been dropped (and its engine stopped).
#[derive(Debug, Clone, Default)]
pub struct Tracker(Arc<std::sync::Mutex<Option<Current>>>);

/// The job in progress.
#[derive(Debug, Clone)]
struct Current {
    /// Its result directory.
    dir: PathBuf,
    /// The stage it is in.
    stage: Stage,
    /// Its engine's log, once an engine serves it.
    log: Option<PathBuf>,
    /// The load client's counters and per-request records, once the load phase started.
    progress: Option<Arc<Progress>>,
    /// The records as they were when the signal arrived ([`Tracker::freeze`]): stopping
    /// the engine afterwards fails every request still waiting, and those are no results.
    frozen: Option<Vec<crate::client::load::RequestRecord>>,
}

impl Tracker {
    fn update(&self, f: impl FnOnce(&mut Option<Current>)) {
        if let Ok(mut g) = self.0.lock() {
            f(&mut g);
        }
    }
    fn begin(&self, dir: &Path) {
        self.update(|c| {
            *c = Some(Current {
                dir: dir.to_path_buf(),
                stage: Stage::Config,
                log: None,
                progress: None,
                frozen: None,
            })
        });
    }
    fn stage(&self, stage: Stage) {
        self.update(|c| {
            if let Some(c) = c {
                c.stage = stage;
            }
        });
    }
    fn engine_log(&self, log: &Path) {
        self.update(|c| {
            if let Some(c) = c {
                c.log = Some(log.to_path_buf());
            }
        });
    }
    fn load(&self, p: &Arc<Progress>) {
        self.update(|c| {
            if let Some(c) = c {
                c.stage = Stage::Load;
                c.progress = Some(p.clone());
            }
        });
    }
    fn end(&self) {
        self.update(|c| *c = None);
    }
    /// Keep the per-request records as they are now: call when the signal arrives, before
    /// the run (and with it its engine) is dropped.
    pub fn freeze(&self) {
        self.update(|c| {
            if let Some(c) = c {
                c.frozen = c
                    .progress
                    .as_ref()
                    .and_then(|p| p.finished.lock().ok().map(|v| v.clone()));
            }
        });
    }
}

/// The record an interrupted job leaves (call after the run was dropped, so its engine is
/// stopped and its log complete): `server.log` copied into the job's directory, the
/// per-request results of the requests that finished (`requests.jsonl`) when the load
/// phase had started, and `status.json` with stage `interrupted`, the stage that was
/// running, the signal and the exit code. Returns the job's directory, if one was running.
pub fn write_interrupted(t: &Tracker, signal: &str, exit_code: u8) -> Option<PathBuf> {
    let cur = t.0.lock().ok()?.clone()?;
    let _ = std::fs::create_dir_all(&cur.dir);
    if let Some(log) = &cur.log {
        if let Ok(bytes) = std::fs::read(log) {
            let plain = crate::term::strip_ansi(&bytes);
            let _ = crate::fsutil::write_atomic(&cur.dir.join("server.log"), &plain);
        }
    }
    let finished = cur.progress.as_ref().map(|p| {
        let recs = cur
            .frozen
            .clone()
            .unwrap_or_else(|| p.finished.lock().map(|v| v.clone()).unwrap_or_default());
        write_requests(&cur.dir, recs).unwrap_or(0)
    });
    let what = match finished {
        Some(n) => format!("; {n} requests had finished (requests.jsonl)"),
        None => String::new(),
    };
    let v = serde_json::json!({
        "status": "interrupted",
        "stage": Stage::Interrupted.name(),
        "running_stage": cur.stage.name(),
        "signal": signal,
        "exit_code": exit_code,
        "error": format!("interrupted by {signal} during the {} stage{what}", cur.stage.name()),
    });
    let _ =
        crate::fsutil::write_atomic(&cur.dir.join("status.json"), format!("{v:#}\n").as_bytes());
    Some(cur.dir)
}

/// `requests.jsonl`: one JSON line per finished timed request, in request order. Returns
/// how many.
fn write_requests(
    dir: &Path,
    mut recs: Vec<crate::client::load::RequestRecord>,
) -> std::io::Result<usize> {
    recs.sort_by_key(|r| r.index);
    let mut text = String::new();
    for r in &recs {
        text.push_str(&serde_json::to_string(r).expect("record serialises"));
        text.push('\n');
    }
    crate::fsutil::write_atomic(&dir.join("requests.jsonl"), text.as_bytes())?;
    Ok(recs.len())
}

/// Resolves when the load phase is lost and has gone on for `grace` since: more than 5 % of
/// the timed requests failed, or every warmup did and no timed request succeeded. A fast failure (a dead
/// engine refuses connections at once) finishes within the grace and keeps its full
/// results; a slow one (a slow-loris or hung engine, each request running into its
/// timeout) is cut here instead of holding the job for hours.
async fn doomed(progress: Arc<Progress>, total: usize, warmups: usize, grace: Duration) -> String {
    let mut since: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let failed = progress.failed.load(Ordering::Relaxed) as usize;
        let succeeded = (progress.done.load(Ordering::Relaxed) as usize).saturating_sub(failed);
        let warm_failed = progress.warmups_failed.load(Ordering::Relaxed) as usize;
        // Failed warmups alone condemn a run only until a timed request succeeds.
        let why = if warmups > 0 && warm_failed == warmups && succeeded == 0 {
            Some(format!(
                "all {warmups} warmup requests failed and no timed request succeeded"
            ))
        } else if failed as f64 > 0.05 * total as f64 {
            Some(format!(
                "{failed} of {total} requests failed (more than 5 %)"
            ))
        } else {
            None
        };
        match (why, since) {
            (Some(why), Some(t)) if t.elapsed() >= grace => {
                return format!(
                    "{why} and requests were still running {:.0} s later",
                    grace.as_secs_f64()
                )
            }
            (Some(_), None) => since = Some(std::time::Instant::now()),
            (None, _) => since = None,
            _ => {}
        }
    }
}

/// Run planned jobs in order, reusing the engine while fingerprints match. Returns the agg
/// rows of the jobs that finished and the first failure (later jobs still run unless the
/// engine itself failed).
pub async fn run_jobs(
    jobs: &[Planned],
    o: &ExecOptions,
    tracker: &Tracker,
) -> (Vec<AggRow>, Option<ExecError>) {
    let baselines = match report::cli::load_baselines(o.baselines_dir.as_deref(), None) {
        Ok(b) => b,
        Err(e) => return (vec![], Some(fail(Stage::Config, e))),
    };
    let mut running: Option<Running> = None;
    let mut rows = vec![];
    let mut first_err = None;
    let mut engines = 0;
    let repeat = o.repeat.max(1);
    for job in jobs {
        let point_dir = o.out.join(&job.result_name);
        let mut trials = vec![];
        let mut failed = vec![];
        for k in 1..=repeat {
            let (dir, topts) = if repeat == 1 {
                (point_dir.clone(), None)
            } else {
                let mut t = o.clone();
                t.seed = o.trial_seed(k);
                (point_dir.join(format!("trial{k}")), Some(t))
            };
            let to = topts.as_ref().unwrap_or(o);
            tracker.begin(&dir);
            let r = run_one(
                job,
                to,
                &dir,
                &mut running,
                &mut engines,
                &baselines,
                tracker,
            )
            .await;
            tracker.end();
            match r {
                Ok((row, bootstrap)) => trials.push(report::trials::Trial {
                    index: k,
                    seed: u64::from(to.seed),
                    dir: format!("trial{k}"),
                    row,
                    bootstrap,
                }),
                Err(e) => {
                    write_status(&dir, &e);
                    let name = if repeat == 1 {
                        job.result_name.clone()
                    } else {
                        format!("{} trial {k}", job.result_name)
                    };
                    crate::errln!("error: {name}: {e}");
                    if crate::report::gha::in_actions() {
                        crate::report::gha::error(
                            &format!("{name} {}", e.stage.name()),
                            &e.message,
                        );
                    }
                    let engine_broken =
                        matches!(e.stage, Stage::Launch | Stage::Readiness | Stage::Load);
                    failed.push(report::trials::FailedTrial {
                        index: k,
                        stage: e.stage.name().to_string(),
                        exit_code: e.stage.exit_code(),
                        error: e.message.clone(),
                    });
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                    if engine_broken {
                        if let Some(mut r) = running.take() {
                            r.engine.stop();
                        }
                    }
                }
            }
        }
        if repeat == 1 {
            rows.extend(trials.into_iter().map(|t| t.row));
            continue;
        }
        let Some(point) = report::trials::combine(
            &trials,
            &failed,
            report::confidence::DEFAULT_RESAMPLES,
            &baselines,
        ) else {
            continue;
        };
        match report::write_job_outputs_judged(&point_dir, &point, Some(&baselines)) {
            Ok(md) => {
                write_job_page(&point_dir, &point, &baselines);
                crate::outln!("{md}");
                let _ = crate::report::gha::append_step_summary(&md);
            }
            Err(e) => {
                let e = fail(Stage::Report, e);
                crate::errln!("error: {}: {e}", job.result_name);
                first_err.get_or_insert(e);
            }
        }
        rows.push(point);
    }
    if let Some(mut r) = running.take() {
        r.engine.stop();
    }
    (rows, first_err)
}

/// The job's (or repeated point's) `report.html` beside its `agg.json`; a page that cannot
/// be written is a warning, never a failed job.
fn write_job_page(dir: &Path, agg: &AggRow, baselines: &Baselines) {
    let page = report::LoadedRow {
        path: dir.join("agg.json"),
        row: agg.clone(),
    };
    let title = format!(
        "Job {} {} ISL {} / OSL {} conc {}{}",
        agg.hw,
        agg.infmax_model_prefix,
        agg.isl,
        agg.osl,
        agg.conc,
        if agg.trials.len() > 1 {
            format!(" ({} trials)", agg.trials.len())
        } else {
            String::new()
        }
    );
    match report::html::write_for_rows(&title, dir, &[page], baselines, &[]) {
        Ok(f) => crate::errln!("report: {}", f.display()),
        Err(e) => tracing::warn!("report.html not written: {e}"),
    }
}

async fn run_one(
    job: &Planned,
    o: &ExecOptions,
    dir: &Path,
    running: &mut Option<Running>,
    engines: &mut usize,
    baselines: &Baselines,
    tracker: &Tracker,
) -> Result<(AggRow, report::confidence::TrialBootstrap), ExecError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| fail(Stage::Report, format!("{}: {e}", dir.display())))?;
    let write = |name: &str, bytes: &[u8]| {
        crate::fsutil::write_atomic(&dir.join(name), bytes)
            .map_err(|e| fail(Stage::Report, format!("{}: {e}", dir.join(name).display())))
    };
    write("launch.sh", job.recipe.script.as_bytes())?;
    write(
        "row.json",
        format!(
            "{}\n",
            serde_json::to_string_pretty(&job.row).expect("row serialises")
        )
        .as_bytes(),
    )?;
    let _ = std::fs::remove_file(dir.join("status.json"));
    // A gate without thresholds is a configuration error: find out before launching.
    let gate = match &o.accuracy {
        None => None,
        Some(g) => {
            let key = crate::report::agg::model_key(
                job.row.model_prefix(),
                &job.row.precision,
                job.row.spec_decoding.as_deref().unwrap_or("none"),
            );
            let th = g
                .thresholds_for(baselines.accuracy.as_ref(), &key)
                .map_err(|e| fail(Stage::Config, e))?;
            Some((g, th))
        }
    };

    // The client's tokenizer before any engine starts: a wrong path or hub id is a
    // configuration error, not a failure after minutes of engine start-up.
    let tokenizer = client_tokenizer(job, o)
        .await
        .map_err(|e| fail(Stage::Config, e))?;

    // Launch unless the running engine serves this exact recipe.
    let reuse = running
        .as_ref()
        .is_some_and(|r| r.fingerprint == job.recipe.fingerprint && r.engine.exited().is_none());
    if !reuse {
        if let Some(mut r) = running.take() {
            r.engine.stop();
        }
        *engines += 1;
        let script_path = o
            .out
            .join(format!(".engine-{}", *engines))
            .join("launch.sh");
        crate::fsutil::write_atomic(&script_path, job.recipe.script.as_bytes())
            .map_err(|e| fail(Stage::Launch, e))?;
        let log_path = o
            .out
            .join(format!(".engine-{}", *engines))
            .join("server.log");
        let mut env = vec![];
        // This very binary supervises the engine (and serves the simulated one).
        let exe = std::env::current_exe().map_err(|e| fail(Stage::Launch, e))?;
        if matches!(job.profile.profile, Profile::Sim { .. }) {
            env.push(("INFMAX_RUNNER".to_string(), exe.display().to_string()));
        }
        let spec = LaunchSpec {
            script_path,
            log_path,
            port: job.port,
            image: job.row.image.clone(),
            gpus: job.row.tp,
            job_name: format!("infmax-{}", job.runner_name),
            env,
            supervisor: exe,
        };
        tracker.stage(Stage::Launch);
        tracker.engine_log(&spec.log_path);
        let eng =
            Engine::launch(&job.profile.profile, &spec).map_err(|e| fail(Stage::Launch, e))?;
        tracker.stage(Stage::Readiness);
        let started = eng
            .wait_ready(o.ready_timeout, Duration::from_secs(1))
            .await;
        let started = match started {
            Ok(d) => d,
            Err(e) => {
                copy_log(&eng, dir);
                return Err(fail(Stage::Readiness, e));
            }
        };
        tracing::info!("engine ready after {:.1} s", started.as_secs_f64());
        *running = Some(Running {
            engine: eng,
            fingerprint: job.recipe.fingerprint.clone(),
            started_s: started.as_secs_f64(),
            accuracy: None,
        });
    } else {
        tracing::info!("reusing the running engine (same recipe fingerprint)");
        if let Some(r) = running.as_ref() {
            tracker.engine_log(&r.engine.log_path);
        }
    }
    let mut accuracy = None;
    if let Some((g, th)) = gate.as_ref().filter(|(g, _)| g.spec.mode == Mode::Before) {
        let run = running.as_mut().expect("engine running");
        tracker.stage(Stage::Accuracy);
        let rec = accuracy_gate(job, o, g, th, run, dir).await?;
        if rec.status != AccuracyStatus::Pass {
            return Err(fail(
                Stage::Accuracy,
                format!(
                    "accuracy gate failed before the load phase ({}); the performance phase was not run",
                    crate::accuracy::explain(&rec)
                ),
            ));
        }
        accuracy = Some(rec);
    }
    let run = running.as_ref().expect("engine running");
    let progress = Arc::new(Progress::default());
    let warmups = o.num_warmups.unwrap_or(2 * job.row.conc as usize) as u64;
    let telemetry = telemetry_tool(&job.profile.profile).map(|tool| {
        let wrapper = run
            .engine
            .slurm_job_id()
            .map(slurm_step_wrapper)
            .unwrap_or_default();
        start_sampler(tool, wrapper)
    });
    // The load starts once the tool has reported (or could not): the stream must hold a
    // sample at or before the benchmark window's start, and a Slurm step takes a moment.
    let telemetry = match telemetry {
        Some(t) => t.await.ok().flatten(),
        None => None,
    };
    tracker.load(&progress);
    let total = job.row.conc as usize * o.prompts_multiplier;
    let grace = o.request_timeout.min(Duration::from_secs(60));
    let p = progress.clone();
    let ticker = crate::progress::Ticker::start("load", move || p.status(total, warmups as usize));
    let (result, cut) = tokio::select! {
        r = bench(job, o, &run.engine.base_url, progress.clone(), tokenizer) => (Some(r), None),
        why = doomed(progress.clone(), total, warmups as usize, grace) => (None, Some(why)),
    };
    drop(ticker);
    let samples = match telemetry {
        Some(t) => finish_sampler(t).await,
        None => None,
    };
    // An engine that died during the load phase fails the job, however few requests that
    // cost (a crash on the last request at conc 1 costs one).
    let suspicious = !matches!(&result, Some(Ok(o)) if o.failed == 0);
    let died = engine_death(&run.engine, suspicious).await;
    copy_log(&run.engine, dir);
    let Some(result) = result else {
        let recs = progress
            .finished
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        let n = write_requests(dir, recs).map_err(|e| fail(Stage::Report, e))?;
        let why = cut.unwrap_or_default();
        let dead = died
            .map(|s| format!("; the engine had exited with {s}"))
            .unwrap_or_default();
        return Err(fail(
            Stage::Load,
            format!(
                "the load phase was stopped: {why}{dead}; the {n} requests that finished are in {}",
                dir.join("requests.jsonl").display()
            ),
        ));
    };
    let death = |status: &str, what: String| {
        format!(
            "the engine exited with {status} during the load phase ({what}); last lines of {}:\n{}",
            dir.join("server.log").display(),
            engine::tail(&run.engine.log_path, 20)
        )
    };
    let out = match (result, &died) {
        (Ok(out), _) => out,
        (Err(e), Some(status)) => {
            return Err(fail(
                Stage::Load,
                death(status, format!("the client failed: {e}")),
            ))
        }
        (Err(e), None) => return Err(fail(Stage::Load, e)),
    };
    let load_failure = match &died {
        Some(status) => Some(fail(
            Stage::Load,
            death(
                status,
                format!(
                    "{} of {} requests completed, {} failed; results kept in {}",
                    out.completed,
                    out.completed + out.failed,
                    out.failed,
                    dir.display()
                ),
            ),
        )),
        None if out.too_many_failures() => Some(fail(
            Stage::Load,
            format!(
                "{} of {} requests failed (more than 5%); first errors: {}; results kept in {}",
                out.failed,
                out.failed + out.completed,
                out.result["error_samples"],
                dir.display()
            ),
        )),
        None => None,
    };
    if let Some((g, th)) = gate
        .as_ref()
        .filter(|(g, _)| g.spec.mode == Mode::After && died.is_none())
    {
        tracker.stage(Stage::Accuracy);
        let run = running.as_mut().expect("engine running");
        accuracy = Some(accuracy_gate(job, o, g, th, run, dir).await?);
    }
    tracker.stage(Stage::Report);
    let run = running.as_ref().expect("engine running");
    let bench_text = crate::pyjson::to_python_json(&out.result);
    write("bench.json", bench_text.as_bytes())?;
    let bench_json = serde_json::Value::Object(out.result.clone());
    let inputs = AggInputs {
        // A simulated run must never pass for the hardware its row names.
        hw: matches!(job.profile.profile, Profile::Sim { .. }).then(|| "sim".to_string()),
        recipe_fingerprint: job.recipe.fingerprint.clone(),
        engine_start_s: Some(run.started_s),
        accuracy: accuracy.clone(),
        client: Some(ClientInfo {
            version: format!("infmax {}", env!("CARGO_PKG_VERSION")),
            seed: Some(u64::from(o.seed)),
            host: hostname(),
        }),
    };
    let mut agg = report::agg_row(&bench_json, &job.row, &inputs, baselines)
        .map_err(|e| fail(Stage::Report, e))?;
    agg.failure = load_failure.as_ref().map(|e| JobFailure {
        stage: e.stage.name().to_string(),
        exit_code: e.stage.exit_code(),
        error: e.message.clone(),
    });
    // 95 % intervals from this trial's requests (module doc of report::confidence).
    let num = |k: &str| out.result.get(k).and_then(serde_json::Value::as_f64);
    let resamples = report::confidence::DEFAULT_RESAMPLES;
    let bootstrap = report::confidence::trial_bootstrap(
        &out.requests,
        num("output_throughput").unwrap_or(0.0),
        num("total_token_throughput").unwrap_or(0.0),
        resamples,
        u64::from(o.seed),
    );
    let mut ci = report::confidence::confidence(
        std::slice::from_ref(&bootstrap),
        f64::from(agg.num_gpus()),
        resamples,
        u64::from(o.seed),
    );
    ci.warnings = report::confidence::percentile_warnings(
        agg.metrics.keys().map(String::as_str),
        bootstrap.requests,
    );
    agg.confidence = Some(ci);
    if let Some((tool, samples)) = samples {
        crate::telemetry::write_csv(dir, tool, &samples).map_err(|e| {
            fail(
                Stage::Report,
                format!("{}: {e}", dir.join("gpu_metrics.csv").display()),
            )
        })?;
        // InferenceX's power schema v2 on exactly the CSV written: the sidecar says why a
        // measurement is not valid; the row then has power_valid 0 and no energy figures.
        let csv = crate::telemetry::to_csv(tool, &samples);
        let outcome = crate::telemetry::power::evaluate(
            Some(&csv),
            &bench_json,
            Some(i64::from(agg.num_gpus())),
        );
        outcome.apply(&mut agg);
        let sidecar = outcome.validation_json("gpu_metrics.csv", "bench.json");
        write(
            "power_validation.json",
            format!(
                "{}\n",
                serde_json::to_string_pretty(&sidecar).expect("sidecar serialises")
            )
            .as_bytes(),
        )?;
        if !outcome.power_valid {
            tracing::warn!(
                "GPU telemetry not valid ({}): agg.json gets power_valid 0 and no energy fields",
                outcome.reasons.join(", ")
            );
        }
    }
    let md = report::write_job_outputs_judged(dir, &agg, Some(baselines))
        .map_err(|e| fail(Stage::Report, e))?;
    // This job's point against the baseline curves of its line (a batch also plots all of
    // its points together).
    let plots = report::plot::write_plots(
        dir,
        std::slice::from_ref(&agg),
        baselines,
        report::plot::Formats::default(),
    )
    .map_err(|e| fail(Stage::Report, e))?;
    for f in plots {
        crate::errln!("plot: {}", f.display());
    }
    write_job_page(dir, &agg, baselines);
    if o.markdown_summary {
        crate::outln!("{md}");
    }
    let _ = crate::report::gha::append_step_summary(&md);
    if let Some(e) = load_failure {
        return Err(e);
    }
    if let Some(rec) = accuracy.filter(|r| r.status != AccuracyStatus::Pass) {
        return Err(fail(
            Stage::Accuracy,
            format!(
                "accuracy gate failed after the load phase ({}); results kept in {}",
                crate::accuracy::explain(&rec),
                dir.display()
            ),
        ));
    }
    Ok((agg, bootstrap))
}

/// Run (or, on a reused engine, recall) the accuracy gate and write `accuracy.json`. An
/// evaluation that cannot run is an accuracy-stage error; a failing one is a record.
async fn accuracy_gate(
    job: &Planned,
    o: &ExecOptions,
    g: &GateOptions,
    th: &crate::report::baseline::Thresholds,
    run: &mut Running,
    dir: &Path,
) -> Result<AccuracyRecord, ExecError> {
    let cached = run
        .accuracy
        .as_ref()
        .filter(|r| r.task == g.spec.task.name() && r.threshold == th.metrics);
    let rec = match cached {
        Some(r) => {
            tracing::info!("accuracy: reusing this engine's {} result", r.task);
            r.clone()
        }
        None => {
            let sim = matches!(job.profile.profile, Profile::Sim { .. });
            let model = if sim {
                crate::sim::config::DEFAULT_MODEL.to_string()
            } else {
                job.row.model.clone()
            };
            let tok_spec = o
                .tokenizer
                .clone()
                .or_else(|| (!sim).then(|| job.row.model.clone()));
            let tokenizer = crate::accuracy::cli::tokenizer_for(tok_spec.as_deref(), &model)
                .await
                .map_err(|e| fail(Stage::Accuracy, e))?;
            let cfg = g
                .flags
                .config(
                    g.spec.task,
                    &run.engine.base_url,
                    &model,
                    tokenizer,
                    th.shots,
                )
                .map_err(|e| fail(Stage::Config, e))?;
            tracing::info!("accuracy: evaluating {} ({})", g.spec.task.name(), th.rule);
            let (rec, err) = crate::accuracy::cli::run_gate(&cfg, th).await;
            write_accuracy(dir, &rec);
            if let Some(e) = err {
                return Err(fail(
                    Stage::Accuracy,
                    format!("accuracy evaluation ({}) failed: {e}", g.spec.task.name()),
                ));
            }
            run.accuracy = Some(rec.clone());
            rec
        }
    };
    write_accuracy(dir, &rec);
    crate::errln!("accuracy: {}", crate::accuracy::explain(&rec));
    Ok(rec)
}

fn write_accuracy(dir: &Path, rec: &AccuracyRecord) {
    let text = serde_json::to_string_pretty(rec).expect("record serialises");
    let _ = crate::fsutil::write_atomic(&dir.join("accuracy.json"), format!("{text}\n").as_bytes());
}

/// The engine's exit status when it has exited. After a load phase with failures, waits up
/// to 2 s for it: a crashing engine cuts its connections a moment before its process is gone.
async fn engine_death(engine: &Engine, suspicious: bool) -> Option<String> {
    let tries = if suspicious { 40 } else { 0 };
    for _ in 0..tries {
        if let Some(s) = engine.exited() {
            return Some(s);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.exited()
}

fn copy_log(engine: &Engine, dir: &Path) {
    if let Ok(bytes) = std::fs::read(&engine.log_path) {
        let plain = crate::term::strip_ansi(&bytes);
        let _ = crate::fsutil::write_atomic(&dir.join("server.log"), &plain);
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
}

/// The load client's tokenizer: `--tokenizer`, else the embedded one on `sim`, else the
/// row's model from the hub.
async fn client_tokenizer(
    job: &Planned,
    o: &ExecOptions,
) -> Result<HfTokenizer, crate::tokenizer::TokenizerError> {
    let sim = matches!(job.profile.profile, Profile::Sim { .. });
    let tok_spec = match (&o.tokenizer, sim) {
        (Some(t), _) => t.clone(),
        (None, true) => EMBEDDED_NAME.to_string(),
        (None, false) => job.row.model.clone(),
    };
    HfTokenizer::load(&tok_spec).await
}

/// The load client with InferenceMAX's settings for this row.
async fn bench(
    job: &Planned,
    o: &ExecOptions,
    base_url: &str,
    progress: Arc<Progress>,
    tokenizer: HfTokenizer,
) -> anyhow::Result<client::BenchOutput> {
    let row = &job.row;
    let sim = matches!(job.profile.profile, Profile::Sim { .. });
    let conc = row.conc as usize;
    let cfg = BenchConfig {
        base_url: base_url.to_string(),
        endpoint: "/v1/completions".into(),
        backend: Backend::Vllm,
        model: row.model.clone(),
        served_model_name: sim.then(|| crate::sim::config::DEFAULT_MODEL.to_string()),
        tokenizer,
        dataset: client::dataset::DatasetSpec::Random(client::dataset::RandomParams {
            input_len: row.isl,
            output_len: row.osl,
            range_ratio: o.range_ratio,
            prefix_len: 0,
            num_prompts: conc * o.prompts_multiplier,
            use_chat_template: false,
            compat: client::dataset::Compat::Bounty2025,
            workers: 1,
        }),
        compat: client::dataset::Compat::Bounty2025,
        lora_modules: vec![],
        seed: o.seed,
        best_of: 1,
        logprobs: None,
        ignore_eos: true,
        max_concurrency: Some(conc),
        request_rate: f64::INFINITY,
        burstiness: 1.0,
        num_warmups: o.num_warmups.unwrap_or(2 * conc),
        timeouts: Timeouts {
            total: o.request_timeout,
            stall: o.stall_timeout,
        },
        // One thread (the reference's event loop) unless CONC needs more on this machine.
        client_threads: 0,
        selection: Selection {
            metrics: ["ttft", "tpot", "itl", "e2el"].map(String::from).to_vec(),
            percentiles: vec![90.0, 99.0, 99.9],
            goodput: vec![],
        },
        metadata: vec![],
        detailed: false,
        api_key: std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
    };
    Ok(client::run(&cfg, progress).await?)
}

/// The telemetry tool for a profile: the docker host's vendor, whichever of `nvidia-smi` /
/// `amd-smi` is on `PATH` for bash and Slurm, none for the simulator (it has no GPUs). A
/// missing tool is warned about once per process and never fails the run.
fn telemetry_tool(profile: &Profile) -> Option<Tool> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let candidates: &[Tool] = match profile {
        Profile::Sim { .. } => return None,
        Profile::Docker { gpus, .. } => match gpus {
            crate::launch::profile::Gpus::Nvidia => &[Tool::NvidiaSmi],
            crate::launch::profile::Gpus::Amd => &[Tool::AmdSmi],
            crate::launch::profile::Gpus::None => return None,
        },
        Profile::Local {} | Profile::Slurm { .. } => &[Tool::NvidiaSmi, Tool::AmdSmi],
    };
    let tool = Tool::detect(candidates);
    if tool.is_none() {
        WARNED.call_once(|| {
            let names: Vec<&str> = candidates.iter().map(|t| t.program()).collect();
            tracing::warn!(
                "GPU telemetry skipped: {} not on PATH; agg.json gets no energy fields",
                names.join(" / ")
            );
        });
    }
    tool
}

/// On Slurm the GPUs are on the allocated node: the tool runs there as an extra step.
fn slurm_step_wrapper(job_id: &str) -> Vec<String> {
    [
        "srun",
        &format!("--jobid={job_id}"),
        "--overlap",
        "--ntasks=1",
    ]
    .map(String::from)
    .to_vec()
}

/// Start the sampler before the load phase and wait (at most 10 s) for its first reading:
/// the benchmark window begins after the warmups, and power schema v2 needs a sample at or
/// before its start.
fn start_sampler(tool: Tool, wrapper: Vec<String>) -> tokio::task::JoinHandle<Option<Sampler>> {
    tokio::task::spawn_blocking(move || {
        match Sampler::start(tool, Duration::from_secs(1), &wrapper) {
            Ok(mut s) => {
                if !s.wait_for_sample_after(0.0, Duration::from_secs(10)) {
                    tracing::debug!("{}: no reading within 10 s of its start", tool.program());
                }
                Some(s)
            }
            Err(e) => {
                tracing::warn!("GPU telemetry skipped: {e}");
                None
            }
        }
    })
}

/// Stop the sampler after the timed phase; its samples, or `None` (with a warning) when it
/// never started or produced nothing.
async fn finish_sampler(mut sampler: Sampler) -> Option<(Tool, Vec<Sample>)> {
    let tool = sampler.tool;
    // The window ended before now: one more sample (the tool samples every second) closes
    // it, so the stream brackets the window as power schema v2 requires.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let (samples, err) = tokio::task::spawn_blocking(move || {
        sampler.wait_for_sample_after(now, Duration::from_millis(2500));
        sampler.stop()
    })
    .await
    .ok()?;
    if samples.is_empty() {
        tracing::warn!(
            "GPU telemetry: {} produced no readings; agg.json gets no energy fields{}",
            tool.program(),
            if err.is_empty() {
                String::new()
            } else {
                format!("; its stderr: {err}")
            }
        );
        return None;
    }
    Some((tool, samples))
}

/// A batch's own files in `out/`: the summary of every job and the plots of its lines.
pub fn write_batch_outputs(o: &ExecOptions, rows: &[AggRow]) -> anyhow::Result<()> {
    let baselines = report::cli::load_baselines(o.baselines_dir.as_deref(), None)?;
    let summary_rows: Vec<report::SummaryRow> = rows.iter().map(report::SummaryRow::from).collect();
    let mut md = report::summary_markdown("Batch summary", &summary_rows);
    md.push_str("## Verdict\n\n");
    for v in report::verdict(rows, &baselines) {
        md.push_str(&report::verdict::verdict_markdown(&v));
    }
    crate::fsutil::write_atomic(&o.out.join("summary.md"), md.as_bytes())?;
    if o.markdown_summary {
        crate::outln!("{md}");
    }
    let _ = report::gha::append_step_summary(&md);
    let files =
        report::plot::write_plots(&o.out, rows, &baselines, report::plot::Formats::default())?;
    for f in files {
        crate::errln!("plot: {}", f.display());
    }
    // The page links every job's files: find the agg.json each row was written to.
    let loaded: Vec<report::LoadedRow> = report::load_agg_rows(std::slice::from_ref(&o.out))
        .unwrap_or_default()
        .into_iter()
        .filter(|l| rows.contains(&l.row))
        .collect();
    let failures = report::status::find(std::slice::from_ref(&o.out));
    let page =
        report::html::write_for_rows("Batch report", &o.out, &loaded, &baselines, &failures)?;
    crate::errln!("report: {}", page.display());
    Ok(())
}
