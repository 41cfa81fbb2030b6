//! `runner eval` (one evaluation against any OpenAI-compatible endpoint, metrics as JSON) and
//! the gate flags `runner exec` / `runner batch` share, so both paths run the same code.

use super::engine::{self, EngineOptions};
use super::{AccuracyError, EvalConfig, GateSpec, Task};
use crate::report::baseline::{AccuracyBaselines, Thresholds};
use crate::report::AccuracyRecord;
use crate::tokenizer::{HfTokenizer, EMBEDDED_NAME};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Settings of an evaluation that are not the engine's address or model.
#[derive(Debug, Clone, Args)]
pub struct EvalFlags {
    /// Evaluated documents from a local parquet or JSONL file (default: the HF dataset from
    /// the hub cache).
    #[arg(long = "data", value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// gsm8k few-shot examples (the train split) from a local parquet or JSONL file.
    #[arg(long = "fewshot-data", value_name = "PATH")]
    pub fewshot_data: Option<PathBuf>,
    /// Evaluate only the first N documents or problems.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Requests in flight (lm-eval's num_concurrent).
    #[arg(long, default_value_t = 1)]
    pub num_concurrent: usize,
    /// lm-eval's model max_length: requests hold at most max_length − 1 tokens.
    #[arg(long, default_value_t = super::DEFAULT_MAX_LENGTH)]
    pub max_length: usize,
    /// gsm8k shots (default: the threshold's variant, else 5).
    #[arg(long)]
    pub num_fewshot: Option<u32>,
    /// gsm8k generation budget (default 256; 2048 for gsm8k-chat).
    #[arg(long)]
    pub max_gen_toks: Option<u32>,
    /// Token that starts the first window (default: the tokenizer's BOS, else EOS).
    #[arg(long)]
    pub prefix_token_id: Option<u32>,
    /// Seconds one request may take.
    #[arg(
        long = "request-timeout",
        value_name = "SECONDS",
        default_value_t = 300
    )]
    pub request_timeout_s: u64,
    /// Retries of a request after a connection error, timeout, 429 or 5xx.
    #[arg(long, default_value_t = 3)]
    pub max_retries: u32,
    /// Explicit thresholds (METRIC=VALUE, repeatable); override baselines/accuracy.yaml.
    #[arg(long = "threshold", value_name = "METRIC=VALUE")]
    pub thresholds: Vec<String>,
    /// Variant of a task's thresholds in accuracy.yaml (gsm8k: `bounty`, `inferencemax`).
    #[arg(long)]
    pub variant: Option<String>,
}

/// `runner eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// Engine root URL, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    pub base_url: String,
    /// wikitext, wikitext-tokens, gsm8k or gsm8k-chat.
    #[arg(long)]
    pub task: String,
    /// Served model name (default: the first of GET /v1/models).
    #[arg(long)]
    pub model: Option<String>,
    /// Tokenizer: HF repo id, tokenizer.json, a directory or infmax/embedded (default: the
    /// served model; the embedded one for the simulated engine).
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// Model key for thresholds from accuracy.yaml, e.g. dsr1-fp4 (no gate without it or
    /// --threshold).
    #[arg(long)]
    pub model_key: Option<String>,
    /// Baselines directory holding accuracy.yaml (default: $INFMAX_BASELINES, else
    /// ./baselines, else the one shipped with the source).
    #[arg(long, env = "INFMAX_BASELINES", value_name = "DIR")]
    pub baselines: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Write each gsm8k problem's prompt, response and extractions here (JSONL).
    #[arg(long, value_name = "PATH")]
    pub log_samples: Option<PathBuf>,
    #[command(flatten)]
    pub flags: EvalFlags,
}

impl EvalFlags {
    /// The evaluation these flags describe against `base_url` / `model`.
    pub fn config(
        &self,
        task: Task,
        base_url: &str,
        model: &str,
        tokenizer: HfTokenizer,
        shots: Option<u32>,
    ) -> Result<EvalConfig, AccuracyError> {
        if self.max_length < 3 {
            return Err(AccuracyError::Config(
                "--max-length must be at least 3".into(),
            ));
        }
        let mut e = EngineOptions::new(base_url, model);
        e.num_concurrent = self.num_concurrent.max(1);
        e.timeout = Duration::from_secs(self.request_timeout_s.max(1));
        e.max_retries = self.max_retries;
        e.api_key = std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.is_empty());
        Ok(EvalConfig {
            task,
            data: self.data.clone(),
            fewshot_data: self.fewshot_data.clone(),
            limit: self.limit,
            max_length: self.max_length,
            num_fewshot: self.num_fewshot.or(shots),
            max_gen_toks: self.max_gen_toks,
            prefix_token: self.prefix_token_id,
            tokenizer,
            engine: e,
        })
    }

    /// Thresholds for `task` and `model_key`: explicit ones, else accuracy.yaml's. `None`
    /// when neither has any.
    pub fn thresholds(
        &self,
        task: Task,
        accuracy: Option<&AccuracyBaselines>,
        model_key: Option<&str>,
    ) -> Result<Option<Thresholds>, AccuracyError> {
        if !self.thresholds.is_empty() {
            return super::explicit_thresholds(task, &self.thresholds).map(Some);
        }
        Ok(match (accuracy, model_key) {
            (Some(a), Some(k)) => a.thresholds(task.baseline_task(), self.variant.as_deref(), k),
            _ => None,
        })
    }
}

/// Evaluate and judge: the record of the agg row (status `error` when the evaluation itself
/// failed — the error is returned next to it).
pub async fn run_gate(
    cfg: &EvalConfig,
    th: &Thresholds,
) -> (AccuracyRecord, Option<AccuracyError>) {
    match super::evaluate(cfg).await {
        Ok(r) => (super::judge(cfg.task, &r.metrics, th), None),
        Err(e) => (
            AccuracyRecord {
                task: cfg.task.name().to_string(),
                metrics: Default::default(),
                threshold: th.metrics.clone(),
                rule: Some(th.rule.clone()),
                status: crate::report::AccuracyStatus::Error,
            },
            Some(e),
        ),
    }
}

/// The tokenizer for an evaluation: the named one, else the embedded one for the simulated
/// engine's model, else the served model's.
pub async fn tokenizer_for(spec: Option<&str>, model: &str) -> Result<HfTokenizer, AccuracyError> {
    let spec = match spec {
        Some(s) => s.to_string(),
        None if model == crate::sim::config::DEFAULT_MODEL => EMBEDDED_NAME.to_string(),
        None => model.to_string(),
    };
    Ok(HfTokenizer::load(&spec).await?)
}

/// `runner eval`: exit 0 (metrics printed, gate passed or not asked), 14 (gate failed) or 1.
pub fn run(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let task: Task = a.task.parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let model = match &a.model {
            Some(m) => m.clone(),
            None => engine::served_model(&a.base_url).await?,
        };
        let baselines = crate::report::cli::baselines_dir(a.baselines.as_deref())
            .unwrap_or_else(|| PathBuf::from("baselines"));
        let accuracy = if a.model_key.is_some() && a.flags.thresholds.is_empty() {
            let f = baselines.join("accuracy.yaml");
            let text =
                std::fs::read_to_string(&f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            Some(AccuracyBaselines::parse(&f.display().to_string(), &text)?)
        } else {
            None
        };
        let th = a
            .flags
            .thresholds(task, accuracy.as_ref(), a.model_key.as_deref())?;
        if a.model_key.is_some() && th.is_none() {
            anyhow::bail!(
                "{} has no {} thresholds for `{}`",
                baselines.join("accuracy.yaml").display(),
                task.baseline_task(),
                a.model_key.as_deref().unwrap_or_default()
            );
        }
        let tokenizer = tokenizer_for(a.tokenizer.as_deref(), &model).await?;
        let mut cfg = a.flags.config(
            task,
            &a.base_url,
            &model,
            tokenizer,
            th.as_ref().and_then(|t| t.shots),
        )?;
        cfg.engine.progress = !a.quiet;
        let r = super::evaluate(&cfg).await?;
        if let Some(p) = &a.log_samples {
            let mut text = String::new();
            for s in &r.samples {
                text.push_str(&format!("{s}\n"));
            }
            crate::fsutil::write_atomic(p, text.as_bytes())?;
        }
        let mut out = serde_json::to_value(&r)?;
        let mut code = ExitCode::SUCCESS;
        if let Some(th) = th {
            let rec = super::judge(task, &r.metrics, &th);
            if rec.status != crate::report::AccuracyStatus::Pass {
                crate::errln!("accuracy gate: {}", super::explain(&rec));
                code = ExitCode::from(crate::exec::Stage::Accuracy.exit_code());
            }
            out["accuracy"] = serde_json::to_value(&rec)?;
        }
        crate::outln!("{}", serde_json::to_string_pretty(&out)?);
        Ok(code)
    })
}

/// The gate of `runner exec` / `runner batch`: which task, when, and how to evaluate.
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// Task and mode (`--accuracy TASK[:before|after]`).
    pub spec: GateSpec,
    /// Data, limits, thresholds and request settings.
    pub flags: EvalFlags,
}

impl GateOptions {
    /// Thresholds for a job's model key, or a config error saying how to give some.
    pub fn thresholds_for(
        &self,
        accuracy: Option<&AccuracyBaselines>,
        model_key: &str,
    ) -> Result<Thresholds, AccuracyError> {
        let task = self.spec.task;
        self.flags
            .thresholds(task, accuracy, Some(model_key))?
            .ok_or_else(|| {
                AccuracyError::Config(format!(
                    "no {} accuracy thresholds for `{model_key}` in baselines/accuracy.yaml{}; add them or pass --accuracy-threshold METRIC=VALUE",
                    task.baseline_task(),
                    self.flags
                        .variant
                        .as_deref()
                        .map(|v| format!(" (variant `{v}`)"))
                        .unwrap_or_default()
                ))
            })
    }
}
