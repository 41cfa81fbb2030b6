//! The agg row (`agg.json`): one job's result in the shape InferenceMAX's
//! `utils/process_result.py` writes, so its tooling (summaries, collection, plots) reads ours
//! unchanged, plus the fields the bounty needs (accuracy, baseline ratios, provenance).
//!
//! Arithmetic follows the reference exactly: throughputs are divided by the job's GPU count
//! (tp × pp × pcp), every `*_ms` key of the bench result also appears in seconds under the
//! name without `_ms`, and every key containing `tpot` yields an interactivity
//! `1000 / value` under the name with `tpot` → `intvty` (`median_tpot_ms` →
//! `median_intvty`, tokens/s/user). Two deliberate differences, both additive: the original
//! `*_ms` keys are kept next to their seconds (summaries print milliseconds without a round
//! trip through floating point), and a zero TPOT (one-token outputs) gives a `null`
//! interactivity where the reference would crash dividing by zero.

use super::baseline::{BaselineRecord, Baselines};
use super::confidence::Confidence;
use super::ReportError;
use crate::config::row::JobRow;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One job's aggregated result (`agg.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggRow {
    /// Runner type the job ran on (`RUNNER_TYPE` in the reference), e.g. `mi355x`.
    pub hw: String,
    /// Client concurrency (the bench result's `max_concurrency`).
    pub conc: u32,
    /// Engine container image.
    pub image: String,
    /// HF model id as the client reported it (`model_id`).
    pub model: String,
    /// Model family, e.g. `dsr1`.
    pub infmax_model_prefix: String,
    /// Serving engine: `vllm`, `sglang`, `trt`, `atom`…
    pub framework: String,
    /// Weight precision: `fp4`, `fp8`…
    pub precision: String,
    /// Speculative decoding method (`none`, `mtp`, `draft_model`).
    #[serde(default = "none")]
    pub spec_decoding: String,
    /// Prefill/decode disaggregation (always false for single-node jobs).
    #[serde(default)]
    pub disagg: bool,
    /// Fingerprint of the rendered launch recipe: equal fingerprints ran the same engine.
    #[serde(default)]
    pub recipe_fingerprint: String,
    /// Input sequence length of the scenario.
    pub isl: u32,
    /// Output sequence length of the scenario.
    pub osl: u32,
    /// Multinode deployment (always false here: `runner exec` runs single-node rows).
    #[serde(default)]
    pub is_multinode: bool,
    /// Tensor parallel size.
    pub tp: u32,
    /// Pipeline parallel size.
    #[serde(default = "one")]
    pub pp: u32,
    /// Decode context parallel size.
    #[serde(default = "one")]
    pub dcp_size: u32,
    /// Prefill context parallel size.
    #[serde(default = "one")]
    pub pcp_size: u32,
    /// Expert parallel size.
    pub ep: u32,
    /// Data-parallel attention, as the reference writes it: the string `"true"`/`"false"`.
    pub dp_attention: String,
    /// Total token throughput per GPU (tokens/s/GPU): `total_token_throughput / num_gpus`.
    pub tput_per_gpu: f64,
    /// Output token throughput per GPU: `output_throughput / num_gpus`.
    pub output_tput_per_gpu: f64,
    /// Input token throughput per GPU: `(total_token_throughput − output_throughput) / num_gpus`.
    pub input_tput_per_gpu: f64,
    /// Latency statistics in bench-result order: each `*_ms` key, its seconds twin without
    /// the suffix and, for TPOT statistics, the `*_intvty` interactivity (`null` for a zero
    /// TPOT). Also any other keys an older or newer writer put into the row.
    #[serde(flatten)]
    pub metrics: IndexMap<String, Value>,
    /// The accuracy gate's outcome; `null` when no gate ran for this job.
    #[serde(default)]
    pub accuracy: Option<AccuracyRecord>,
    /// The matching reference point and our ratios to it, or why there is none.
    #[serde(default)]
    pub baseline: BaselineRecord,
    /// Seconds from engine launch to ready.
    #[serde(default)]
    pub engine_start_s: Option<f64>,
    /// Which load client produced the numbers.
    #[serde(default)]
    pub client: Option<ClientInfo>,
    /// InferenceX's power schema version of the energy fields below (`2`): their meaning
    /// changed between versions (v2's `avg_power_w` is per GPU, energy is integrated over
    /// the benchmark window), so a consumer ignores energy fields of an unversioned row.
    /// Absent when no telemetry ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_metric_schema_version: Option<u32>,
    /// `1` when the telemetry passed every validity rule of the schema (every expected GPU
    /// seen, the window bracketed, no sampling gap over 3 s, …), else `0` and no energy
    /// fields; the reasons are in `power_validation.json`. Absent when no telemetry ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_valid: Option<u8>,
    /// Mean power of one GPU over the benchmark window (W): `avg_total_gpu_power_w` / GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_power_w: Option<f64>,
    /// Mean power of all the job's GPUs together over the window (W): energy / duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_total_gpu_power_w: Option<f64>,
    /// GPU energy over the benchmark window (J): per-GPU trapezoidal integrals, summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_gpu_energy_j: Option<f64>,
    /// `total_gpu_energy_j` / successful requests (J).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_successful_query: Option<f64>,
    /// `total_gpu_energy_j` / input tokens (J).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_input_token: Option<f64>,
    /// `total_gpu_energy_j` / output tokens (J).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_output_token: Option<f64>,
    /// `total_gpu_energy_j` / (input + output tokens) (J).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_total_token: Option<f64>,
    /// Why the job failed although its numbers were written (the engine died during the
    /// load phase, too many requests failed): such a point is never eligible, and a reader
    /// of the row alone must see that. Absent for a job that passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
    /// 95 % confidence intervals of the point's medians and throughputs (bootstrap over
    /// requests, across trials with `--repeat`; see [`super::confidence`]). An addition under
    /// a key InferenceX does not use; absent on rows written without per-request data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
    /// The trials this point combines (`runner batch --repeat N`, N > 1): each trial's
    /// seed, directory and figures. The row's own InferenceX keys then hold the mean over
    /// the trials. Absent for a single run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<TrialRecord>,
}

/// One trial of a repeated point, as the combined agg row lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// 1-based trial number.
    pub trial: u32,
    /// Dataset seed the trial's requests were generated with.
    pub seed: u64,
    /// The trial's result directory, relative to the point's directory (it holds the
    /// trial's own `agg.json`, `bench.json`, …).
    pub dir: String,
    /// Successful requests.
    pub requests: usize,
    /// Total token throughput per GPU.
    pub tput_per_gpu: f64,
    /// Output token throughput per GPU.
    pub output_tput_per_gpu: f64,
    /// Median TTFT (ms).
    pub median_ttft_ms: Option<f64>,
    /// Median TPOT (ms).
    pub median_tpot_ms: Option<f64>,
    /// Median E2E latency (ms).
    pub median_e2el_ms: Option<f64>,
}

/// A failed job's stage, exit code and message, as `status.json` records them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFailure {
    /// The stage that failed (`load`, `accuracy`, …).
    pub stage: String,
    /// `runner exec`'s exit code for it.
    pub exit_code: u8,
    /// What happened, as the runner printed it.
    pub error: String,
}

fn none() -> String {
    "none".into()
}
fn one() -> u32 {
    1
}

/// The accuracy gate's result as recorded in the agg row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccuracyRecord {
    /// Evaluation task, e.g. `gsm8k` or `wikitext-tokens`.
    pub task: String,
    /// Measured metrics by name (`exact_match`, `bits_per_byte`, …).
    pub metrics: IndexMap<String, f64>,
    /// The threshold each metric was held to.
    #[serde(default)]
    pub threshold: IndexMap<String, f64>,
    /// The pass rule in words, e.g. `exact_match >= threshold`.
    #[serde(default)]
    pub rule: Option<String>,
    /// Outcome.
    pub status: AccuracyStatus,
}

/// Outcome of the accuracy gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccuracyStatus {
    /// Every metric within its threshold.
    Pass,
    /// At least one metric outside its threshold: the performance numbers do not count.
    Fail,
    /// No evaluation was configured for this job.
    NotRun,
    /// The evaluation itself failed to produce metrics.
    Error,
}

impl AccuracyStatus {
    /// Lower-case word used in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            AccuracyStatus::Pass => "pass",
            AccuracyStatus::Fail => "fail",
            AccuracyStatus::NotRun => "not run",
            AccuracyStatus::Error => "error",
        }
    }
}

/// Provenance of the load client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInfo {
    /// Client name and version, e.g. `infmax 0.1.0`.
    pub version: String,
    /// Seed of the request generator.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Host the client ran on.
    #[serde(default)]
    pub host: Option<String>,
}

/// What the agg row needs beyond the bench result and the job row; other stages supply it.
#[derive(Debug, Clone, Default)]
pub struct AggInputs {
    /// Runner type for `hw`; defaults to the row's `runner` (pass the type when the row names
    /// one node, as InferenceMAX records `RUNNER_TYPE`).
    pub hw: Option<String>,
    /// Fingerprint of the rendered recipe.
    pub recipe_fingerprint: String,
    /// Seconds from engine launch to ready.
    pub engine_start_s: Option<f64>,
    /// The accuracy gate's result, when one ran.
    pub accuracy: Option<AccuracyRecord>,
    /// Client provenance.
    pub client: Option<ClientInfo>,
}

/// Build the agg row from the client's result JSON (benchmark_serving.py keys) and the job
/// row, then attach the matching reference point from `baselines` (or the reason there is
/// none). Pure: no I/O.
pub fn agg_row(
    bench: &Value,
    row: &JobRow,
    inputs: &AggInputs,
    baselines: &Baselines,
) -> Result<AggRow, ReportError> {
    let obj = bench.as_object().ok_or_else(|| ReportError::Bench {
        key: ".".into(),
        problem: "is not a JSON object".into(),
    })?;
    let num = |key: &str| -> Result<f64, ReportError> {
        match obj.get(key) {
            Some(v) => v.as_f64().ok_or_else(|| ReportError::Bench {
                key: key.into(),
                problem: format!("is not a number: {v}"),
            }),
            None => Err(ReportError::Bench {
                key: key.into(),
                problem: "is missing".into(),
            }),
        }
    };
    let total = num("total_token_throughput")?;
    let output = num("output_throughput")?;

    let conc = match obj.get("max_concurrency") {
        None | Some(Value::Null) => row.conc,
        Some(v) => {
            let c = v.as_u64().ok_or_else(|| ReportError::Bench {
                key: "max_concurrency".into(),
                problem: format!("is not a positive integer: {v}"),
            })?;
            if c != u64::from(row.conc) {
                return Err(ReportError::Mismatch(format!(
                    "max_concurrency {c} but the row's conc is {}",
                    row.conc
                )));
            }
            row.conc
        }
    };
    let model = match obj.get("model_id") {
        Some(Value::String(s)) => s.clone(),
        _ => row.model.clone(),
    };

    let pp = row.pp.unwrap_or(1);
    let pcp = row.pcp_size.unwrap_or(1);
    let num_gpus = f64::from(row.tp) * f64::from(pp) * f64::from(pcp);

    let mut metrics = IndexMap::new();
    for (key, value) in obj {
        let Some(v) = value.as_f64() else { continue };
        if key.ends_with("ms") {
            metrics.insert(key.clone(), value.clone());
            metrics.insert(key.replace("_ms", ""), json_f64(v / 1000.0));
        }
        if key.contains("tpot") {
            let name = key.replace("_ms", "").replace("tpot", "intvty");
            let intvty = if v == 0.0 {
                Value::Null
            } else {
                json_f64(1000.0 / v)
            };
            metrics.insert(name, intvty);
        }
    }

    let mut agg = AggRow {
        hw: inputs.hw.clone().unwrap_or_else(|| row.runner.clone()),
        conc,
        image: row.image.clone(),
        model,
        infmax_model_prefix: row.model_prefix().to_string(),
        framework: row.framework.clone(),
        precision: row.precision.clone(),
        spec_decoding: row
            .spec_decoding
            .clone()
            .unwrap_or_else(|| "none".to_string()),
        disagg: row.disagg.unwrap_or(false),
        recipe_fingerprint: inputs.recipe_fingerprint.clone(),
        isl: row.isl,
        osl: row.osl,
        is_multinode: false,
        tp: row.tp,
        pp,
        dcp_size: row.dcp_size.unwrap_or(1),
        pcp_size: pcp,
        ep: row.ep,
        dp_attention: row.dp_attn.to_string(),
        tput_per_gpu: total / num_gpus,
        output_tput_per_gpu: output / num_gpus,
        input_tput_per_gpu: (total - output) / num_gpus,
        metrics,
        accuracy: inputs.accuracy.clone(),
        baseline: BaselineRecord::default(),
        engine_start_s: inputs.engine_start_s,
        client: inputs.client.clone(),
        power_metric_schema_version: None,
        power_valid: None,
        avg_power_w: None,
        avg_total_gpu_power_w: None,
        total_gpu_energy_j: None,
        joules_per_successful_query: None,
        joules_per_input_token: None,
        joules_per_output_token: None,
        joules_per_total_token: None,
        failure: None,
        confidence: None,
        trials: vec![],
    };
    agg.baseline = baselines.record_for(&agg);
    Ok(agg)
}

fn json_f64(v: f64) -> Value {
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

impl AggRow {
    /// A numeric metric by its agg-row name (`median_ttft_ms`, `median_e2el`, …).
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.get(key).and_then(Value::as_f64)
    }

    /// A latency statistic in milliseconds (`stat` like `median_ttft`): the `_ms` key when
    /// present, else the seconds key × 1000 (rows written by InferenceMAX itself).
    pub fn latency_ms(&self, stat: &str) -> Option<f64> {
        self.metric(&format!("{stat}_ms"))
            .or_else(|| self.metric(stat).map(|s| s * 1000.0))
    }

    /// Median TTFT (ms).
    pub fn median_ttft_ms(&self) -> Option<f64> {
        self.latency_ms("median_ttft")
    }

    /// Median TPOT (ms).
    pub fn median_tpot_ms(&self) -> Option<f64> {
        self.latency_ms("median_tpot")
    }

    /// Median end-to-end latency (ms).
    pub fn median_e2el_ms(&self) -> Option<f64> {
        self.latency_ms("median_e2el")
    }

    /// Median interactivity (tokens/s/user) = 1000 / median TPOT ms.
    pub fn median_intvty(&self) -> Option<f64> {
        self.metric("median_intvty")
    }

    /// GPUs the throughputs are divided by (tp × pp × pcp), as in [`agg_row`].
    pub fn num_gpus(&self) -> u32 {
        self.tp * self.pp * self.pcp_size
    }

    /// Ran on the simulated engine (`hw: sim`): its figures exercise the pipeline and are no
    /// measurement of any hardware.
    pub fn is_simulated(&self) -> bool {
        self.hw == "sim"
    }

    /// The key the baselines use for this row's model: `<prefix>-<precision>`, plus
    /// `-<method>` with speculative decoding (`dsr1-fp4`, `dsr1-fp4-mtp`).
    pub fn model_key(&self) -> String {
        model_key(
            &self.infmax_model_prefix,
            &self.precision,
            &self.spec_decoding,
        )
    }

    /// The model × ISL/OSL line this row belongs to.
    pub fn line(&self) -> super::LineKey {
        super::LineKey {
            model: self.model_key(),
            isl: self.isl,
            osl: self.osl,
        }
    }
}

/// `<prefix>-<precision>[-<spec>]`, the model key of `baselines/` files.
pub fn model_key(prefix: &str, precision: &str, spec_decoding: &str) -> String {
    let spec = spec_decoding.trim();
    if spec.is_empty() || spec == "none" {
        format!("{prefix}-{precision}")
    } else {
        format!("{prefix}-{precision}-{spec}")
    }
}
