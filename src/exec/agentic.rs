//! The agentic (AgentX) side of `runner exec`: the environment contract of InferenceX's
//! workflow for an agentic point (agentic.md §5.1), its result file name (§4.4), and the
//! post-replay stage — the 10 % error gate, the v3 aggregate `<RESULT_FILENAME>.json`, the
//! job summary and the throughput-per-GPU vs interactivity chart.
//!
//! The replay itself (the load client) writes AIPerf-shaped artifacts into
//! `<job dir>/aiperf_artifacts/`; [`finish_point`] turns them into what InferenceX's
//! `benchmark-tmpl.yml` uploads: `bmk_agentic_<RF>` is `<RF>.json`, `agentic_<RF>` the
//! artifacts, `server_logs_<RF>` the engine log.

use crate::report::agentic::{self as agg, gate, ExpectedOutputs, RunShape};
use crate::report::plot::{self, AgenticPoint, Formats};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// InferenceX's default agentic duration (`DEFAULT_AGENTIC_DURATION_SECONDS`).
pub const DEFAULT_DURATION_S: u64 = 3600;
/// Below this the reference passes `--unsafe-override` and the run is not submission-valid.
pub const MIN_VALID_DURATION_S: u64 = 900;

/// A named component with an optional version (`kv-offload-backend`, `router`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Implementation name (`hicache`, `vllm-simple`, `sglang-router`, …).
    pub name: String,
    /// Its version, when the config pins one.
    pub version: Option<String>,
}

impl Component {
    fn json(&self) -> String {
        match &self.version {
            Some(v) => json!({"name": self.name, "version": v}).to_string(),
            None => json!({"name": self.name}).to_string(),
        }
    }
}

/// One single-node agentic point: what the workflow knows about it, from the matrix row
/// plus the runner.
#[derive(Debug, Clone)]
pub struct AgenticPointSpec {
    /// `exp-name` (`<prefix>_tp<tp>_conc<conc>_<kv>[_spec-…]`).
    pub exp_name: String,
    /// HF model id.
    pub model: String,
    /// Model family (`model-prefix`).
    pub model_prefix: String,
    /// Engine image.
    pub image: String,
    /// Weight precision.
    pub precision: String,
    /// Serving framework.
    pub framework: String,
    /// Parallelism.
    pub tp: u32,
    /// Pipeline parallel size.
    pub pp: u32,
    /// Decode context parallel size.
    pub dcp: u32,
    /// Prefill context parallel size.
    pub pcp: u32,
    /// Expert parallel size.
    pub ep: u32,
    /// Data-parallel attention.
    pub dp_attn: bool,
    /// `mtp`, `draft_model` or `none`.
    pub spec_decoding: String,
    /// Concurrent users (live session trees).
    pub conc: u32,
    /// `none` or `dram`.
    pub kv_offloading: String,
    /// The offload backend, when offloading.
    pub kv_offload_backend: Option<Component>,
    /// DRAM budget for the offload pool, decimal GB.
    pub total_cpu_dram_gb: u64,
    /// Profiling window in seconds.
    pub duration: u64,
    /// The router, when the row names one.
    pub router: Option<Component>,
    /// The row's recipe fingerprint (its first 16 hex digits end the result name).
    pub recipe_fingerprint: Option<String>,
    /// The GitHub runner's name (`runner.name`).
    pub runner_name: String,
    /// What the aggregate records as `hw` (`RUNNER_TYPE`; `sim` on the simulator).
    pub hw: String,
}

impl AgenticPointSpec {
    /// GPUs the point uses (`GPU_COUNT = TP·PP·PCP`).
    pub fn gpu_count(&self) -> u32 {
        self.tp * self.pp * self.pcp
    }

    /// Whether the window is long enough to be submission-valid (≥ 900 s).
    pub fn submission_valid_duration(&self) -> bool {
        self.duration >= MIN_VALID_DURATION_S
    }

    /// `RESULT_FILENAME` as `benchmark-tmpl.yml` builds it for an agentic single-node job.
    pub fn result_filename(&self) -> String {
        let mut s = format!(
            "{}_{}_{}_tp{}-pp{}-dcp{}-pcp{}-ep{}-dpa{}_disagg-false_spec-{}_conc{}_{}",
            self.exp_name,
            self.precision,
            self.framework,
            self.tp,
            self.pp,
            self.dcp,
            self.pcp,
            self.ep,
            self.dp_attn,
            self.spec_decoding,
            self.conc,
            self.runner_name
        );
        if let Some(fp) = self.recipe_fingerprint.as_deref().filter(|f| !f.is_empty()) {
            s.push_str("_recipe-");
            s.push_str(&fp[..fp.len().min(16)]);
        }
        s
    }

    /// The workflow's environment for the point (§5.1), which launch templates and the
    /// aggregation both read.
    pub fn env(&self) -> Vec<(String, String)> {
        let v: Vec<(&str, String)> = vec![
            ("MODEL", self.model.clone()),
            ("MODEL_PREFIX", self.model_prefix.clone()),
            ("IMAGE", self.image.clone()),
            ("FRAMEWORK", self.framework.clone()),
            ("PRECISION", self.precision.clone()),
            ("TP", self.tp.to_string()),
            ("PP_SIZE", self.pp.to_string()),
            ("DCP_SIZE", self.dcp.to_string()),
            ("PCP_SIZE", self.pcp.to_string()),
            ("EP_SIZE", self.ep.to_string()),
            ("DP_ATTENTION", self.dp_attn.to_string()),
            ("CONC", self.conc.to_string()),
            ("SPEC_DECODING", self.spec_decoding.clone()),
            ("DISAGG", "false".into()),
            ("IS_MULTINODE", "false".into()),
            ("EXP_NAME", self.exp_name.clone()),
            (
                "RECIPE_FINGERPRINT",
                self.recipe_fingerprint.clone().unwrap_or_default(),
            ),
            ("RUNNER_TYPE", self.hw.clone()),
            ("RESULT_FILENAME", self.result_filename()),
            ("GPU_COUNT", self.gpu_count().to_string()),
            ("ISL", "0".into()),
            ("OSL", "0".into()),
            ("MAX_MODEL_LEN", "0".into()),
            ("SCENARIO_TYPE", "agentic-coding".into()),
            ("IS_AGENTIC", "1".into()),
            ("SCENARIO_SUBDIR", "agentic/".into()),
            ("KV_OFFLOADING", self.kv_offloading.clone()),
            (
                "KV_OFFLOAD_BACKEND",
                self.kv_offload_backend
                    .as_ref()
                    .map(|b| b.name.clone())
                    .unwrap_or_default(),
            ),
            (
                "KV_OFFLOAD_BACKEND_METADATA",
                self.kv_offload_backend
                    .as_ref()
                    .map(Component::json)
                    .unwrap_or_default(),
            ),
            (
                "ROUTER_METADATA",
                self.router
                    .as_ref()
                    .map(Component::json)
                    .unwrap_or_default(),
            ),
            ("TOTAL_CPU_DRAM_GB", self.total_cpu_dram_gb.to_string()),
            ("DURATION", self.duration.to_string()),
            (
                "AIPERF_FAILED_REQUEST_THRESHOLD",
                gate::FAILED_REQUEST_THRESHOLD.to_string(),
            ),
        ];
        v.into_iter().map(|(k, val)| (k.to_string(), val)).collect()
    }

    /// The series a point is plotted in.
    pub fn series_label(&self) -> String {
        let kv = match &self.kv_offload_backend {
            Some(b) => format!("kv{}-{}", self.kv_offloading, b.name),
            None => format!("kv{}", self.kv_offloading),
        };
        format!(
            "{} {} TP{} {kv}",
            self.hw.to_uppercase(),
            self.framework,
            self.tp
        )
    }
}

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
    spec: &AgenticPointSpec,
    expected: &dyn ExpectedOutputs,
    server_logs: &[String],
) -> Result<PointOutcome, FinishError> {
    let artifacts = agg::resolve_artifact_dir(dir);
    let gate_result = gate::validate_result(&artifacts, gate::FAILED_REQUEST_THRESHOLD);
    let env = spec.env();
    let shape =
        RunShape::from_env(|k| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()))?;
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
            "\n_Not submission-valid: a {} s window is shorter than {MIN_VALID_DURATION_S} s._\n",
            spec.duration
        ));
    }
    match &gate_result {
        Ok(m) => summary.push_str(&format!("\n{m}\n")),
        Err(e) => summary.push_str(&format!("\n**Error gate failed:** {}\n", e.join("; "))),
    }
    let summary_path = dir.join("summary.md");
    crate::fsutil::write_atomic(&summary_path, summary.as_bytes()).map_err(io(&summary_path))?;
    let plots = match AgenticPoint::from_aggregate(&spec.series_label(), &aggregate) {
        Some(p) => plot::write_agentic_plot(dir, &spec.model, &[p], Formats::default())?,
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
/// [`AgenticPointSpec::series_label`] names it.
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
/// (`<model>_agentic_tput_vs_intvty.{svg,png}`, points labelled with their users).
pub fn write_batch_outputs(
    out: &Path,
    points: &[PointOutcome],
) -> Result<Vec<PathBuf>, FinishError> {
    let aggs: Vec<Value> = points.iter().map(|p| p.aggregate.clone()).collect();
    let md = agg::summary::markdown("Agentic batch summary", &aggs);
    let path = out.join("summary.md");
    crate::fsutil::write_atomic(&path, md.as_bytes()).map_err(|source| FinishError::Io {
        path: path.clone(),
        source,
    })?;
    println!("{md}");
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
