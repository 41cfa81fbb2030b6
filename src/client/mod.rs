//! The load client: benchmark_serving.py's request stream and metrics, without its limits.
//!
//! Published InferenceMAX and bounty numbers were all measured with benchmark_serving.py, so
//! this client reproduces its dataset ([`dataset`], on numpy's generator in [`rng`]), request
//! bodies ([`request`]), arrival process and concurrency cap ([`load`]) and arithmetic
//! ([`result`], [`stats`]) exactly. One load driver ([`driver`]) runs every workload:
//! fixed-length prompts ([`load`]) and agentic trace replay ([`agentic`]). Where the Python client becomes the bottleneck at high
//! concurrency, this one stays accurate: each request's task owns its socket and takes the
//! time as bytes arrive ([`http1`]), streams are parsed without building JSON trees
//! ([`sse`]), and nothing is locked per token.

pub mod agentic;
pub mod dataset;
pub mod driver;
pub mod hfshuffle;
pub mod http1;
pub mod load;
pub mod request;
pub mod result;
pub mod rng;
pub mod sources;
pub mod sse;
pub mod stats;

use crate::tokenizer::HfTokenizer;
use dataset::{Compat, DatasetSpec};
use load::{LoadPlan, Prepared, Progress};
use request::{Backend, BodyOptions, Target, Timeouts};
use result::{Extras, Header, Selection};
use serde_json::{Map, Value};
use std::sync::Arc;

/// A benchmark run could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Dataset(#[from] dataset::DatasetError),
    #[error("{0}")]
    Config(String),
}

/// Everything one run needs (the reference's flags, resolved).
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Server base URL, path prefix included (`http://host:port[/prefix]`).
    pub base_url: String,
    /// Appended to the base URL (`/v1/completions` by default).
    pub endpoint: String,
    pub backend: Backend,
    /// `--model`: `model_id` in results and the request's `model` unless served name given.
    pub model: String,
    /// `--served-model-name`.
    pub served_model_name: Option<String>,
    pub tokenizer: HfTokenizer,
    pub dataset: DatasetSpec,
    /// Which reference client the prompts and result keys follow.
    pub compat: Compat,
    /// `--lora-modules`: each request names one of these (picked with Python's
    /// `random.choice`, as the reference does) instead of the model.
    pub lora_modules: Vec<String>,
    pub seed: u32,
    pub best_of: u32,
    pub logprobs: Option<u32>,
    pub ignore_eos: bool,
    pub max_concurrency: Option<usize>,
    pub request_rate: f64,
    pub burstiness: f64,
    pub num_warmups: usize,
    pub timeouts: Timeouts,
    pub selection: Selection,
    /// `--metadata KEY=VALUE`.
    pub metadata: Vec<(String, String)>,
    /// `--save-detailed`.
    pub detailed: bool,
    /// `OPENAI_API_KEY`.
    pub api_key: Option<String>,
    /// Worker threads reading the streams (`--client-threads`; 0: [`client_threads`]
    /// chooses). One is the reference's single event loop; requests are written in request
    /// order with any number.
    pub client_threads: usize,
}

/// The client threads a run uses: `cfg.client_threads`, or, when 0, one unless the most
/// streams at once need more ([`load::auto_client_threads`] over the cores present).
pub fn client_threads(cfg: &BenchConfig) -> usize {
    if cfg.client_threads > 0 {
        return cfg.client_threads;
    }
    let streams = cfg
        .max_concurrency
        .unwrap_or_else(|| cfg.dataset.num_prompts())
        .min(cfg.dataset.num_prompts().max(cfg.num_warmups));
    load::auto_client_threads(streams, load::cores())
}

/// What a run produced.
pub struct BenchOutput {
    /// The result JSON (reference keys, then ours).
    pub result: Map<String, Value>,
    /// The reference's closing table.
    pub table: String,
    /// The reference's input/output length statistics block.
    pub dataset_stats: String,
    /// Seconds spent generating prompts (off the request path).
    pub dataset_seconds: f64,
    pub completed: usize,
    pub failed: usize,
    /// Every successful timed request's TTFT, latency and token counts, for the point's
    /// confidence intervals.
    pub requests: Vec<result::RequestSample>,
}

impl BenchOutput {
    /// More than 5 % of requests failed (InferenceX fails the job then).
    pub fn too_many_failures(&self) -> bool {
        let total = self.completed + self.failed;
        total == 0 || self.failed as f64 > 0.05 * total as f64
    }
}

/// `YYYYmmdd-HHMMSS` in local time, as the reference stamps results.
pub fn local_timestamp() -> String {
    // SAFETY: `time` and `localtime_r` only write to the provided out-parameters.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    }
}

/// Generate the dataset, run warmups and the timed phase, compute the result.
pub async fn run(cfg: &BenchConfig, progress: Arc<Progress>) -> Result<BenchOutput, ClientError> {
    let t0 = std::time::Instant::now();
    let (tok, spec, seed) = (cfg.tokenizer.clone(), cfg.dataset.clone(), cfg.seed);
    let ds = tokio::task::spawn_blocking(move || spec.sample(&tok, seed))
        .await
        .map_err(|e| ClientError::Config(format!("dataset generation panicked: {e}")))??;
    let dataset_seconds = t0.elapsed().as_secs_f64();
    let dataset_stats = dataset_stats(&ds);
    let body_opts = BodyOptions {
        backend: cfg.backend,
        model: cfg
            .served_model_name
            .clone()
            .unwrap_or_else(|| cfg.model.clone()),
        best_of: cfg.best_of,
        logprobs: cfg.logprobs,
        ignore_eos: cfg.ignore_eos,
    };
    let mut py = ds.py.clone();
    let reqs: Vec<Prepared> = ds
        .prompts
        .iter()
        .map(|p| {
            let body = if cfg.lora_modules.is_empty() {
                request::body(&body_opts, &p.text, p.output_len)
            } else {
                let lora = &cfg.lora_modules[py.randbelow(cfg.lora_modules.len())];
                let opts = BodyOptions {
                    model: lora.clone(),
                    ..body_opts.clone()
                };
                request::body(&opts, &p.text, p.output_len)
            };
            Prepared {
                body,
                prompt_len: p.prompt_len,
                output_len: p.output_len,
            }
        })
        .collect();
    let plan = LoadPlan {
        target: Target::new(
            format!("{}{}", cfg.base_url.trim_end_matches('/'), cfg.endpoint),
            cfg.api_key.clone(),
            cfg.backend.is_chat(),
            cfg.timeouts,
        ),
        max_concurrency: cfg.max_concurrency,
        request_rate: cfg.request_rate,
        burstiness: cfg.burstiness,
        num_warmups: cfg.num_warmups,
    };
    let date = local_timestamp();
    let lr = load::run_ordered(
        load::http_client(),
        Arc::new(reqs),
        Arc::new(plan),
        ds.rng,
        progress,
        client_threads(cfg),
    )
    .await
    .map_err(|e| ClientError::Config(format!("load phase: {e}")))?;
    // The timed phase ended now and lasted `duration` (monotonic): its wall-clock window.
    let end_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let window_unix = (end_unix - lr.duration, end_unix);
    let tok = cfg.tokenizer.clone();
    let sel = cfg.selection.clone();
    let outcomes = lr.outcomes;
    let duration = lr.duration;
    let (m, outcomes) = tokio::task::spawn_blocking(move || {
        let m = result::compute(&outcomes, duration, &tok, &sel);
        (m, outcomes)
    })
    .await
    .map_err(|e| ClientError::Config(format!("metrics panicked: {e}")))?;
    let header = Header {
        date,
        backend: cfg.backend.name().into(),
        model_id: cfg.model.clone(),
        tokenizer_id: cfg.tokenizer.id.clone(),
        best_of: cfg.best_of,
        num_prompts: cfg.dataset.num_prompts(),
        metadata: cfg.metadata.clone(),
        request_rate: cfg.request_rate,
        burstiness: cfg.burstiness,
        max_concurrency: cfg.max_concurrency,
    };
    let extras = Extras {
        seed: cfg.seed,
        warmups: cfg.num_warmups,
        warmup_failed: lr.warmup_failed,
        window_unix,
        inferencex_2026: cfg.compat == Compat::Inferencex2026,
    };
    let result = result::result_json(
        &header,
        &m,
        &cfg.selection,
        &outcomes,
        cfg.detailed,
        &extras,
    );
    Ok(BenchOutput {
        result,
        table: result::summary_table(&m, &cfg.selection),
        dataset_stats,
        dataset_seconds,
        completed: m.completed,
        failed: m.failed,
        requests: result::request_samples(&outcomes, &m),
    })
}

fn dataset_stats(ds: &dataset::Dataset) -> String {
    let n = ds.prompts.len().max(1) as f64;
    let ins: Vec<u32> = ds.prompts.iter().map(|p| p.prompt_len).collect();
    let outs: Vec<u32> = ds.prompts.iter().map(|p| p.output_len).collect();
    let mean = |v: &[u32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let mism = if ds.mismatches.is_empty() {
        String::new()
    } else {
        format!(
            "  avg_token_mismatch={:<5.2}",
            ds.mismatches.iter().sum::<i64>() as f64 / n
        )
    };
    let header = format!(
        "{}  Input/Output Length Statistics  {}",
        "-".repeat(19),
        "-".repeat(19)
    );
    format!(
        "{header}\n input_lens : min={:<4}  max={:<4}  mean={:<7.2}{} \n output_lens: min={:<4}  max={:<4}  mean={:<7.2} \n{}\n",
        ins.iter().min().unwrap_or(&0),
        ins.iter().max().unwrap_or(&0),
        mean(&ins),
        mism,
        outs.iter().min().unwrap_or(&0),
        outs.iter().max().unwrap_or(&0),
        mean(&outs),
        "-".repeat(header.len())
    )
}
