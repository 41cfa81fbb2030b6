//! The agentic (AgentX) side of `runner exec`: the environment contract of InferenceX's
//! workflow for an agentic point (agentic.md §5.1), its result file name (§4.4), and the
//! post-replay stage — the 10 % error gate, the v3 aggregate `<RESULT_FILENAME>.json`, the
//! job summary and the throughput-per-GPU vs interactivity chart.
//!
//! The replay itself (the load client) writes AIPerf-shaped artifacts into
//! `<job dir>/aiperf_artifacts/`; [`finish_point`] turns them into what InferenceX's
//! `benchmark-tmpl.yml` uploads: `bmk_agentic_<RF>` is `<RF>.json`, `agentic_<RF>` the
//! artifacts, `server_logs_<RF>` the engine log.

use super::{copy_log, fail, ExecError, ExecOptions, Stage, Tracker};
use crate::client::request::Timeouts;
use crate::config::row::AgenticRow;
use crate::launch::engine::{self, Engine, LaunchSpec};
use crate::launch::profile::{self, NamedProfile, Profile};
use crate::recipe::{self, agentic::AgenticJob, Recipe, TemplateSource};
use crate::report::agentic::{self as agg, gate, ExpectedOutputs, RunShape};
use crate::report::plot::{self, AgenticPoint, Formats};
use crate::tokenizer::{HfTokenizer, EMBEDDED_NAME};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why the post-replay stage failed.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    /// The 10 % error gate (or a missing/invalid AIPerf aggregate).
    #[error("agentic error gate: {}", .0.join("; "))]
    Gate(Vec<String>),
    /// The aggregate could not be computed.
    #[error(transparent)]
    Aggregate(#[from] agg::AgenticAggError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A chart could not be drawn.
    #[error(transparent)]
    Plot(#[from] crate::report::ReportError),
}

/// What a finished point produced.
#[derive(Debug, Clone)]
pub struct PointOutcome {
    /// The rounded v3 aggregate.
    pub aggregate: Value,
    /// `<dir>/<RESULT_FILENAME>.json`.
    pub aggregate_path: PathBuf,
    /// The gate's message (`Validated aiperf request error rate: …`).
    pub gate: String,
    /// The job summary (Markdown), also written as `summary.md`.
    pub summary: String,
    /// Charts written.
    pub plots: Vec<PathBuf>,
}

/// After the replay: gate the point, aggregate it into `<dir>/<RESULT_FILENAME>.json`,
/// write `summary.md` and the chart. The aggregate is written even when the gate fails
/// (partial results stay on disk), then the gate's failure is returned.
pub fn finish_point(
    dir: &Path,
    spec: &AgenticJob,
    expected: &dyn ExpectedOutputs,
    server_logs: &[String],
) -> Result<PointOutcome, FinishError> {
    let artifacts = agg::resolve_artifact_dir(dir);
    // The point's environment is the one the template got: the gate reads its threshold
    // there (`AIPERF_FAILED_REQUEST_THRESHOLD`), the aggregation its run shape.
    let env = spec.env();
    let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let threshold = get("AIPERF_FAILED_REQUEST_THRESHOLD")
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or(gate::FAILED_REQUEST_THRESHOLD);
    let gate_result = gate::validate_result(&artifacts, threshold);
    let shape = RunShape::from_env(get)?;
    let (aggregate, text) = agg::process_artifacts(&artifacts, &shape, expected, server_logs)?;
    let aggregate_path = dir.join(format!("{}.json", spec.result_filename()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FinishError::Io { path, source }
    };
    crate::fsutil::write_atomic(&aggregate_path, text.as_bytes()).map_err(io(&aggregate_path))?;
    let mut summary = agg::summary::markdown(
        &format!("{} · agentic coding", spec.result_filename()),
        std::slice::from_ref(&aggregate),
    );
    if !spec.submission_valid_duration() {
        summary.push_str(&format!(
            "\n_Not submission-valid: a {} s window is shorter than {} s._\n",
            spec.duration,
            recipe::agentic::MIN_VALID_DURATION_S
        ));
    }
    match &gate_result {
        Ok(m) => summary.push_str(&format!("\n{m}\n")),
        Err(e) => summary.push_str(&format!("\n**Error gate failed:** {}\n", e.join("; "))),
    }
    let summary_path = dir.join("summary.md");
    crate::fsutil::write_atomic(&summary_path, summary.as_bytes()).map_err(io(&summary_path))?;
    let plots = match AgenticPoint::from_aggregate(&spec.series_label(), &aggregate) {
        Some(p) => plot::write_agentic_plot(dir, &spec.row.model, &[p], Formats::default())?,
        None => vec![],
    };
    let gate = gate_result.map_err(FinishError::Gate)?;
    Ok(PointOutcome {
        aggregate,
        aggregate_path,
        gate,
        summary,
        plots,
    })
}

/// The chart series of an aggregate: hardware, framework, TP and KV offload, as
/// [`AgenticJob::series_label`] names it.
pub fn series_label_of(agg: &Value) -> String {
    let s = |k: &str| agg[k].as_str().unwrap_or("").to_string();
    let kv = match agg["kv_offload_backend"]["name"].as_str() {
        Some(b) => format!("kv{}-{b}", s("kv_offloading")),
        None => format!("kv{}", s("kv_offloading")),
    };
    format!(
        "{} {} TP{} {kv}",
        s("hw").to_uppercase(),
        s("framework"),
        agg["tp"]
    )
}

/// A batch's own files in `out`: `summary.md` with every point and one chart per model
/// (`<model>_agentic_tput_vs_intvty.{svg,png}`, points labelled with their users); the
/// summary is also printed on stdout when `print`.
pub fn write_batch_outputs(
    out: &Path,
    points: &[PointOutcome],
    print: bool,
) -> Result<Vec<PathBuf>, FinishError> {
    let aggs: Vec<Value> = points.iter().map(|p| p.aggregate.clone()).collect();
    let md = agg::summary::markdown("Agentic batch summary", &aggs);
    let path = out.join("summary.md");
    crate::fsutil::write_atomic(&path, md.as_bytes()).map_err(|source| FinishError::Io {
        path: path.clone(),
        source,
    })?;
    if print {
        crate::outln!("{md}");
    }
    let _ = crate::report::gha::append_step_summary(&md);
    let mut by_model: std::collections::BTreeMap<String, Vec<AgenticPoint>> = Default::default();
    for a in &aggs {
        if let Some(p) = AgenticPoint::from_aggregate(&series_label_of(a), a) {
            by_model
                .entry(a["model"].as_str().unwrap_or("").to_string())
                .or_default()
                .push(p);
        }
    }
    let mut files = vec![path];
    for (model, pts) in by_model {
        files.extend(plot::write_agentic_plot(
            out,
            &model,
            &pts,
            Formats::default(),
        )?);
    }
    Ok(files)
}

/// Settings of an agentic run that are not in the row (beside [`ExecOptions`]).
#[derive(Debug, Clone, Default)]
pub struct AgenticExecOptions {
    /// `--duration`: the profiling window instead of the row's (below 900 s the point is
    /// marked not submission-valid, as the reference's `--unsafe-override` does).
    pub duration: Option<u64>,
    /// `--traces`: a local `traces.jsonl`/parquet or a hub dataset; default: on the `sim`
    /// profile the synthetic `small` corpus written into the output directory, else
    /// InferenceX's corpus for the model prefix (§3.1).
    pub traces: Option<String>,
}

/// The simulated engine for an agentic point: the `sim` profile's engine speaking the
/// framework's metric names on `/metrics` (and its KV-pool line in the log), so the
/// aggregate reads it through the same adapter as the real engine.
///
/// It is the `sim` profile's template ([`recipe::SIM_TEMPLATE`]), which for `IS_AGENTIC=1`
/// also serves the model's native (1M-token) context, picks the metric names from
/// `FRAMEWORK` (the same rule as [`sim_metrics_flavor`]) and maps `KV_OFFLOADING=dram` onto
/// an offload tier of `TOTAL_CPU_DRAM_GB`.
pub const SIM_AGENTIC_TEMPLATE: &str = recipe::SIM_TEMPLATE;

/// Whose metric names the sim speaks for `framework`: SGLang's for SGLang (and
/// dynamo-sglang) rows, vLLM's otherwise.
pub fn sim_metrics_flavor(framework: &str) -> &'static str {
    if framework.contains("sglang") {
        "sglang"
    } else {
        "vllm"
    }
}

/// InferenceX's `resolve_trace_source`: the 1M-context corpus for the families that serve
/// it, the 256k variant for everyone else.
pub fn default_trace_source(model_prefix: &str) -> &'static str {
    let full = ["dsv4", "glm5.2", "minimaxm3", "kimik3"]
        .iter()
        .any(|p| model_prefix.starts_with(p));
    if full {
        "semianalysis_cc_traces_weka_062126"
    } else {
        "semianalysis_cc_traces_weka_062126_256k"
    }
}

/// The runner name of an agentic row: --runner-name, else the row's label without
/// InferenceX's `cluster:` prefix.
fn runner_name(row: &AgenticRow, o: &ExecOptions) -> String {
    o.runner_name.clone().unwrap_or_else(|| {
        let label = row.runner.as_str();
        label.strip_prefix("cluster:").unwrap_or(label).to_string()
    })
}

/// The point `runner exec` makes of an agentic row (what `--dry-run` prints, `runner
/// check` names and the run uses): the runner name above, `hw` = `sim` on the simulator
/// else the row's runner label, over `duration` seconds.
pub fn job_for(row: &AgenticRow, o: &ExecOptions, sim: bool, duration: u64) -> AgenticJob {
    let hw = if sim { "sim" } else { row.runner.as_str() };
    AgenticJob::new(row, &runner_name(row, o), hw, duration)
}

/// The checks [`run_row`] makes before it launches anything, for `runner check`: the
/// launch profile, shell-safe row values and (off the simulator) the launch template.
/// Returns a line naming the job, profile and template.
pub fn check_row(row: &AgenticRow, o: &ExecOptions) -> Result<String, ExecError> {
    let runner_name = runner_name(row, o);
    let profile = match &o.profile {
        Some(p) => profile::load(&o.runners_dir, p),
        None => profile::resolve(&o.runners_dir, &[&runner_name, &row.runner]),
    }
    .map_err(|e| fail(Stage::Config, e))?;
    recipe::agentic::validate(row, &runner_name).map_err(|e| fail(Stage::Config, e))?;
    let sim = matches!(profile.profile, Profile::Sim { .. });
    let template = if sim {
        "built-in sim-agentic".to_string()
    } else {
        let p = recipe::agentic::find_template(&o.benchmarks_dir, row)
            .map_err(|e| fail(Stage::Config, e))?;
        recipe::agentic::read_template(&o.benchmarks_dir, &p)
            .map_err(|e| fail(Stage::Config, e))?;
        p.display().to_string()
    };
    let spec = job_for(row, o, sim, row.duration);
    Ok(format!(
        "{}: profile {}, template {template}",
        spec.result_filename(),
        profile.name
    ))
}

/// Run one agentic row end to end: launch, replay, gate, aggregate, summary, chart.
pub async fn run_row(
    row: &AgenticRow,
    o: &ExecOptions,
    a: &AgenticExecOptions,
    tracker: &Tracker,
) -> Result<PointOutcome, ExecError> {
    // Without --runner-name the row's label stands in, minus InferenceX's `cluster:` prefix:
    // runner names go into file and artifact names (a ':' is refused by artifact uploads and
    // by the recipe's runner-name check), and InferenceX's own runners are named after the
    // cluster (`b200-dgxc_0` for `cluster:b200-dgxc`).
    let runner_name = runner_name(row, o);
    let profile = match &o.profile {
        Some(p) => profile::load(&o.runners_dir, p),
        None => profile::resolve(&o.runners_dir, &[&runner_name, &row.runner]),
    }
    .map_err(|e| fail(Stage::Config, e))?;
    let sim = matches!(profile.profile, Profile::Sim { .. });
    let duration = a.duration.unwrap_or(row.duration);
    let spec = job_for(row, o, sim, duration);
    let port = match o.port {
        Some(p) => p,
        None => {
            engine::free_port().map_err(|e| fail(Stage::Launch, format!("no free port: {e}")))?
        }
    };
    // Shell-safe values on every profile (the simulator's too), as `runner check` and
    // fixed-seq-len rows have them.
    recipe::agentic::validate(row, &runner_name).map_err(|e| fail(Stage::Config, e))?;
    let launch_command = engine::describe(&profile.profile, &row.image, spec.gpu_count());
    let mut inputs = spec.inputs(port);
    let (source, text) = match &profile.profile {
        Profile::Sim { preset } => {
            inputs.push(("SIM_PRESET".into(), preset.clone()));
            inputs.push((
                "SIM_METRICS_FLAVOR".into(),
                sim_metrics_flavor(&row.framework).into(),
            ));
            (
                TemplateSource::Builtin("sim-agentic"),
                SIM_AGENTIC_TEMPLATE.to_string(),
            )
        }
        _ => {
            // InferenceX's lookup (with its frameworkless fallback); the contract checker
            // (benchmarks/agentic/lib.sh) is inlined in front of the template.
            let p = recipe::agentic::find_template(&o.benchmarks_dir, row)
                .map_err(|e| fail(Stage::Config, e))?;
            let t = recipe::agentic::read_template(&o.benchmarks_dir, &p)
                .map_err(|e| fail(Stage::Config, e))?;
            (TemplateSource::File(p), t)
        }
    };
    let recipe = recipe::materialise(source, &text, inputs, &launch_command, &row.image);
    let dir = o.out.join(spec.result_filename());
    std::fs::create_dir_all(&dir)
        .map_err(|e| fail(Stage::Report, format!("{}: {e}", dir.display())))?;
    let write = |name: &str, bytes: &[u8]| {
        crate::fsutil::write_atomic(&dir.join(name), bytes)
            .map_err(|e| fail(Stage::Report, format!("{}: {e}", dir.join(name).display())))
    };
    write("launch.sh", recipe.script.as_bytes())?;
    write(
        "row.json",
        format!(
            "{}\n",
            serde_json::to_string_pretty(row).expect("row serialises")
        )
        .as_bytes(),
    )?;
    let _ = std::fs::remove_file(dir.join("status.json"));
    tracker.begin(&dir);
    let result = launch_and_replay(
        row, o, a, &spec, &profile, &recipe, port, &dir, sim, tracker,
    )
    .await;
    tracker.end();
    if let Err(e) = &result {
        super::write_status(&dir, e);
    }
    result
}

/// Per trace id, the `out` of its root conversation's requests: the lookup the aggregate's
/// `tokens.output_expected` uses (the reference's: top-level `n`/`s` requests in order).
fn expected_outputs(corpus: &crate::client::agentic::trace::Corpus) -> HashMap<String, Vec<i64>> {
    corpus
        .traces
        .iter()
        .map(|t| {
            (
                t.id.clone(),
                t.root.turns.iter().map(|u| i64::from(u.output)).collect(),
            )
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn launch_and_replay(
    row: &AgenticRow,
    o: &ExecOptions,
    a: &AgenticExecOptions,
    spec: &AgenticJob,
    profile: &NamedProfile,
    recipe: &Recipe,
    port: u16,
    dir: &Path,
    sim: bool,
    tracker: &Tracker,
) -> Result<PointOutcome, ExecError> {
    use crate::client::agentic::{
        self as replay_client, trace::TraceSource, AgenticConfig, ReplayOptions,
    };
    // The corpus first: a missing dataset is a config error, found before any engine starts.
    let source = match (&a.traces, sim) {
        (Some(t), _) => TraceSource::parse(t),
        (None, true) => {
            let path = o.out.join(".traces").join("synthetic-small.jsonl");
            if !path.is_file() {
                crate::client::agentic::synth::write_file(
                    &crate::client::agentic::synth::SynthParams::small(),
                    &path,
                    false,
                )
                .map_err(|e| fail(Stage::Config, format!("{}: {e}", path.display())))?;
            }
            TraceSource::Local(path)
        }
        (None, false) => TraceSource::parse(default_trace_source(&row.model_prefix)),
    };
    // AIPerf reads its Weka loader knobs from the environment; so does the run.
    let topology =
        crate::client::agentic::topology::Knobs::from_env().map_err(|e| fail(Stage::Config, e))?;
    // So are AIPerf's optional routing headers (`AIPERF_HTTP_X_*_FROM_CORRELATION_ID`).
    let routing = crate::client::agentic::headers::RoutingHeaders::from_env()
        .map_err(|e| fail(Stage::Config, e))?;
    let corpus = replay_client::load_corpus(&source, None, &topology)
        .await
        .map_err(|e| fail(Stage::Config, e))?;
    let expected = expected_outputs(&corpus);
    drop(corpus);

    let engine_dir = o.out.join(format!(".engine-{}", spec.result_filename()));
    let script_path = engine_dir.join("launch.sh");
    crate::fsutil::write_atomic(&script_path, recipe.script.as_bytes())
        .map_err(|e| fail(Stage::Launch, e))?;
    let mut env = vec![];
    // This very binary supervises the engine (and serves the simulated one).
    let exe = std::env::current_exe().map_err(|e| fail(Stage::Launch, e))?;
    if sim {
        env.push(("INFMAX_RUNNER".to_string(), exe.display().to_string()));
    }
    let launch = LaunchSpec {
        script_path,
        log_path: engine_dir.join("server.log"),
        port,
        image: row.image.clone(),
        gpus: spec.gpu_count(),
        job_name: format!("infmax-{}", spec.runner_name),
        env,
        supervisor: exe,
    };
    tracker.stage(Stage::Launch);
    tracker.engine_log(&launch.log_path);
    let mut eng = Engine::launch(&profile.profile, &launch).map_err(|e| fail(Stage::Launch, e))?;
    tracker.stage(Stage::Readiness);
    let ready = eng
        .wait_ready(o.ready_timeout, Duration::from_secs(1))
        .await;
    if let Err(e) = ready {
        copy_log(&eng, dir);
        eng.stop();
        return Err(fail(Stage::Readiness, e));
    }
    let tok_spec = match (&o.tokenizer, sim) {
        (Some(t), _) => t.clone(),
        (None, true) => EMBEDDED_NAME.to_string(),
        (None, false) => row.model.clone(),
    };
    let counters = Arc::new(crate::client::load::Progress::default());
    tracker.load(&counters);
    let replay = async {
        let tokenizer = HfTokenizer::load(&tok_spec)
            .await
            .map_err(|e| fail(Stage::Config, e))?;
        let cfg = AgenticConfig {
            base_url: eng.base_url.clone(),
            endpoint: "/v1/chat/completions".into(),
            model: if sim {
                crate::sim::config::DEFAULT_MODEL.to_string()
            } else {
                row.model.clone()
            },
            tokenizer,
            source,
            num_dataset_entries: None,
            replay: ReplayOptions {
                concurrency: row.conc as usize,
                duration: Duration::from_secs(spec.duration),
                routing,
                ..ReplayOptions::default()
            },
            scenario: "inferencex-agentx-mvp".into(),
            out_dir: dir.join("aiperf_artifacts"),
            server_metrics: vec![format!("{}/metrics", eng.base_url.trim_end_matches('/'))],
            api_key: std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            timeouts: Timeouts {
                total: Duration::from_secs(21_600),
                stall: o.stall_timeout,
            },
            min_coverage: 0.95,
            overflow_limit: 0.01,
            topology,
        };
        let c = counters.clone();
        let window = cfg.replay.duration;
        let _ticker = crate::progress::Ticker::start("agentic", move || c.agentic_status(window));
        replay_client::run(&cfg, None, counters.clone())
            .await
            .map_err(|e| fail(Stage::Load, e))
    }
    .await;
    copy_log(&eng, dir);
    eng.stop();
    let run = replay?;
    tracker.stage(Stage::Report);
    let logs: Vec<String> = crate::report::agentic::read_server_log_head(&dir.join("server.log"))
        .into_iter()
        .collect();
    let outcome = finish_point(dir, spec, &expected, &logs);
    let outcome = match outcome {
        Ok(p) => p,
        Err(FinishError::Gate(e)) => {
            return Err(fail(
                Stage::Load,
                format!("{}; results kept in {}", e.join("; "), dir.display()),
            ))
        }
        Err(e) => return Err(fail(Stage::Report, e)),
    };
    if o.markdown_summary {
        crate::outln!("{}", outcome.summary);
    }
    let _ = crate::report::gha::append_step_summary(&outcome.summary);
    if let Some(why) = run.failure() {
        return Err(fail(
            Stage::Load,
            format!("{why}; results kept in {}", dir.display()),
        ));
    }
    Ok(outcome)
}
