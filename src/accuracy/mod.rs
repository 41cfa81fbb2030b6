//! The accuracy gate: evaluate the served model the way lm-evaluation-harness 0.4.x does
//! (`local-completions` / `local-chat-completions`) and hold the metrics to the thresholds of
//! `baselines/accuracy.yaml`.
//!
//! A fast engine that serves a broken model must not produce a leaderboard row, so a job can
//! run the gate before its performance phase (a failure aborts it, exit 14) or after it (a
//! failure is recorded and fails the job). Every number must equal lm-eval's on the same
//! engine and documents, which is why each step (detokenizer, word count, rolling windows,
//! request slicing, answer filters) is a documented copy of lm-eval's and tested on its own.
//!
//! * [`wikitext`] — `wikitext` (document level, lm-eval's task) and `wikitext-tokens` (the
//!   bounty's 2047-token chunks): word/byte perplexity and bits per byte.
//! * [`gsm8k`] — few-shot math word problems, strict and flexible answer extraction.
//! * [`pyrandom`] — CPython's `random.Random`, for lm-eval's few-shot draws.
//! * [`engine`] — the HTTP requests, concurrency, retries and echo detection.
//! * [`data`] — hub-cache parquet, local parquet or JSONL.
//! * [`cli`] — `runner eval` and the gate flags of `runner exec` / `runner batch`.

pub mod cli;
pub mod data;
pub mod engine;
pub mod gsm8k;
pub mod pyrandom;
pub mod wikitext;

use crate::report::baseline::{Bound, Thresholds};
use crate::report::{AccuracyRecord, AccuracyStatus};
use crate::tokenizer::{HfTokenizer, TokenizerError};
use data::{HubSplit, Source};
use engine::{Engine, GenPrompt};
use indexmap::IndexMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Why an evaluation produced no metrics.
#[derive(Debug, thiserror::Error)]
pub enum AccuracyError {
    /// A data file could not be read.
    #[error("{file}: {message}")]
    Data { file: String, message: String },
    /// A hub dataset is neither cached nor downloadable.
    #[error("dataset {dataset} is not in the Hugging Face cache ({cache}): {why}; fetch it with `{fetch}` or pass --data PATH (parquet or JSONL)")]
    DatasetMissing {
        dataset: String,
        cache: String,
        why: String,
        fetch: String,
    },
    /// A request failed (after its retries).
    #[error("{url}: {message}")]
    Engine { url: String, message: String },
    /// The engine answered something lm-eval could not score either.
    #[error("{url}: unexpected answer: {message}")]
    Protocol { url: String, message: String },
    /// The engine ignores `echo`: scoring it would compute garbage.
    #[error("the engine at {url} ignores `echo`: it returned {got} token logprobs for a prompt of {prompt} tokens (expected {prompt} + 1 generated). Prompt loglikelihoods cannot be computed against it — llama.cpp's llama-server behaves like this; serve the model with vLLM or SGLang for loglikelihood tasks")]
    EchoUnsupported {
        url: String,
        got: usize,
        prompt: usize,
    },
    /// The engine echoes the prompt, but its logprobs do not line up with the prompt's
    /// tokens: summing `token_logprobs[ctxlen:-1]` would score the wrong tokens.
    #[error("the engine at {url} echoed {got} token logprobs for a prompt of {prompt} tokens sent as {form} (expected {prompt} + 1: one per prompt token, the first null, then the generated token). Its entries cannot be aligned with the tokens lm-eval scores — llama-cpp-python's server drops the BOS entry like this; serve the model with vLLM or SGLang for loglikelihood tasks")]
    EchoMisaligned {
        url: String,
        got: usize,
        prompt: usize,
        form: &'static str,
    },
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The evaluation was asked for something inconsistent.
    #[error("{0}")]
    Config(String),
}

/// An evaluation task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// lm-eval's `wikitext`: document-level pages, detokenized, rolling loglikelihood.
    Wikitext,
    /// The bounty's variant: test lines joined, 2047-token chunks decoded back to text.
    WikitextTokens,
    /// lm-eval's `gsm8k` on `/v1/completions`.
    Gsm8k,
    /// gsm8k on `/v1/chat/completions` (the engine's chat template).
    Gsm8kChat,
}

/// Task names accepted on the command line.
pub const TASKS: &[&str] = &["wikitext", "wikitext-tokens", "gsm8k", "gsm8k-chat"];

impl std::str::FromStr for Task {
    type Err = AccuracyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "wikitext" => Task::Wikitext,
            "wikitext-tokens" => Task::WikitextTokens,
            "gsm8k" => Task::Gsm8k,
            "gsm8k-chat" => Task::Gsm8kChat,
            _ => {
                return Err(AccuracyError::Config(format!(
                    "unknown accuracy task `{s}` (have: {})",
                    TASKS.join(", ")
                )))
            }
        })
    }
}

impl Task {
    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Task::Wikitext => "wikitext",
            Task::WikitextTokens => "wikitext-tokens",
            Task::Gsm8k => "gsm8k",
            Task::Gsm8kChat => "gsm8k-chat",
        }
    }

    /// The task's entry in `baselines/accuracy.yaml`.
    pub fn baseline_task(self) -> &'static str {
        match self {
            Task::Gsm8k | Task::Gsm8kChat => "gsm8k",
            t => t.name(),
        }
    }

    /// Which way its metrics are better.
    pub fn bound(self) -> Bound {
        match self {
            Task::Wikitext | Task::WikitextTokens => Bound::AtMost,
            Task::Gsm8k | Task::Gsm8kChat => Bound::AtLeast,
        }
    }

    /// The hub split of the evaluated documents.
    pub fn hub_split(self) -> HubSplit {
        match self {
            Task::Wikitext => HubSplit {
                repo: "EleutherAI/wikitext_document_level",
                config: "wikitext-2-raw-v1",
                split: "test",
            },
            Task::WikitextTokens => HubSplit {
                repo: "Salesforce/wikitext",
                config: "wikitext-2-raw-v1",
                split: "test",
            },
            Task::Gsm8k | Task::Gsm8kChat => HubSplit {
                repo: "openai/gsm8k",
                config: "main",
                split: "test",
            },
        }
    }
}

/// lm-eval's API-model default `max_length`.
pub const DEFAULT_MAX_LENGTH: usize = 2048;

/// lm-eval's `fewshot_random_seed` default.
pub const FEWSHOT_SEED: u64 = 1234;

/// Chunk length of the bounty's `wikitext-tokens` documents.
pub const TOKEN_CHUNK: usize = 2047;

/// Everything one evaluation needs.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// What to evaluate.
    pub task: Task,
    /// Evaluated documents from a local parquet/JSONL file instead of the hub.
    pub data: Option<PathBuf>,
    /// gsm8k few-shot examples from a local file instead of the hub's `train` split.
    pub fewshot_data: Option<PathBuf>,
    /// Evaluate only the first N documents (lm-eval's `--limit`).
    pub limit: Option<usize>,
    /// lm-eval's model `max_length` (the rolling windows derive from it).
    pub max_length: usize,
    /// gsm8k shots (default 5, lm-eval's).
    pub num_fewshot: Option<u32>,
    /// gsm8k generation budget (default 256; the chat variant's default is 2048).
    pub max_gen_toks: Option<u32>,
    /// Prefix token of the first window (default BOS, else EOS of the tokenizer).
    pub prefix_token: Option<u32>,
    /// The model's tokenizer.
    pub tokenizer: HfTokenizer,
    /// The engine and how to talk to it.
    pub engine: engine::EngineOptions,
}

/// Metrics of one evaluation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvalResult {
    /// Task name.
    pub task: String,
    /// Metric → value, in lm-eval's order.
    pub metrics: IndexMap<String, f64>,
    /// Documents (or problems) evaluated.
    pub documents: usize,
    /// Requests sent.
    pub requests: usize,
    /// Per-problem prompts, responses and extractions (gsm8k), for `--log-samples`.
    #[serde(skip)]
    pub samples: Vec<serde_json::Value>,
}

/// The special token text a tokenizer config names (`bos_token` / `eos_token`).
fn special_token(config: &serde_json::Value, key: &str) -> Option<String> {
    match &config[key] {
        serde_json::Value::String(s) => Some(s.clone()),
        v => v["content"].as_str().map(String::from),
    }
}

/// `tokenizer_config.json` of a tokenizer spec, when one can be found locally.
fn tokenizer_config(spec: &str) -> Option<serde_json::Value> {
    let text = if spec == crate::tokenizer::EMBEDDED_NAME {
        crate::tokenizer::EMBEDDED_TOKENIZER_CONFIG.to_string()
    } else {
        let p = std::path::Path::new(spec);
        let f = if p.is_dir() {
            p.join("tokenizer_config.json")
        } else if p.is_file() {
            p.with_file_name("tokenizer_config.json")
        } else {
            hf_hub::Cache::new(crate::tokenizer::hub_cache_dir())
                .model(spec.to_string())
                .get("tokenizer_config.json")?
        };
        std::fs::read_to_string(f).ok()?
    };
    serde_json::from_str(&text).ok()
}

/// lm-eval's `prefix_token_id` for a Hugging Face tokenizer: BOS, else EOS.
pub fn prefix_token(t: &HfTokenizer) -> Result<u32, AccuracyError> {
    let cfg = tokenizer_config(&t.id).unwrap_or_default();
    for key in ["bos_token", "eos_token"] {
        if let Some(id) = special_token(&cfg, key).and_then(|s| t.inner().token_to_id(&s)) {
            return Ok(id);
        }
    }
    Err(AccuracyError::Config(format!(
        "tokenizer `{}` names no BOS or EOS token; pass --prefix-token-id",
        t.id
    )))
}

/// The documents of a wikitext task (after `--limit`).
pub async fn wikitext_documents(
    cfg: &EvalConfig,
) -> Result<Vec<wikitext::Document>, AccuracyError> {
    let src = match &cfg.data {
        Some(p) => Source::Local(p.clone()),
        None => Source::Hub(cfg.task.hub_split()),
    };
    let limit = cfg.limit.unwrap_or(usize::MAX);
    match cfg.task {
        Task::Wikitext => Ok(data::load(&src, &["page"])
            .await?
            .into_iter()
            .take(limit)
            .map(|r| wikitext::page_document(&r[0]))
            .collect()),
        Task::WikitextTokens => {
            let lines: Vec<String> = data::load(&src, &["text"])
                .await?
                .into_iter()
                .map(|mut r| r.remove(0))
                .collect();
            let ids = cfg.tokenizer.encode(&lines.join("\n\n"))?;
            let mut docs = vec![];
            for chunk in ids.chunks(TOKEN_CHUNK).take(limit) {
                let text = cfg.tokenizer.decode(chunk)?;
                let words = cfg
                    .tokenizer
                    .inner()
                    .encode(text.as_str(), true)
                    .map_err(|e| TokenizerError::Use {
                        id: cfg.tokenizer.id.clone(),
                        message: e.to_string(),
                    })?
                    .len();
                docs.push(wikitext::Document {
                    bytes: text.len(),
                    words,
                    target: text,
                });
            }
            Ok(docs)
        }
        _ => Err(AccuracyError::Config(format!(
            "{} is not a wikitext task",
            cfg.task.name()
        ))),
    }
}

/// Run the evaluation against the engine.
pub async fn evaluate(cfg: &EvalConfig) -> Result<EvalResult, AccuracyError> {
    match cfg.task {
        Task::Wikitext | Task::WikitextTokens => eval_wikitext(cfg).await,
        Task::Gsm8k | Task::Gsm8kChat => eval_gsm8k(cfg).await,
    }
}

async fn eval_wikitext(cfg: &EvalConfig) -> Result<EvalResult, AccuracyError> {
    if cfg.max_length < 3 {
        return Err(AccuracyError::Config(
            "--max-length must be at least 3".into(),
        ));
    }
    let docs = wikitext_documents(cfg).await?;
    if docs.is_empty() {
        return Err(AccuracyError::Config("no documents to evaluate".into()));
    }
    let prefix = match cfg.prefix_token {
        Some(p) => p,
        None => prefix_token(&cfg.tokenizer)?,
    };
    let (api_max, max_seq_len) = window_lengths(cfg.max_length);
    // One request per window, remembering its document.
    let mut reqs = vec![];
    for (d, doc) in docs.iter().enumerate() {
        let toks = cfg.tokenizer.encode(&doc.target)?;
        for w in wikitext::rolling_windows(&toks, prefix, max_seq_len) {
            let (inp, ctxlen) = wikitext::request_tokens(&w, api_max);
            reqs.push((d, inp, ctxlen));
        }
    }
    let n_req = reqs.len();
    let engine = Arc::new(Engine::new(cfg.engine.clone()));
    let tok = cfg.tokenizer.clone();
    let label = cfg.engine.progress.then_some(cfg.task.name());
    let lls = engine::run_all(
        reqs,
        cfg.engine.num_concurrent,
        label,
        move |(d, inp, ctxlen)| {
            let engine = engine.clone();
            let tok = tok.clone();
            async move {
                let ll = engine
                    .loglikelihood(&inp, ctxlen, || Ok(tok.decode(&inp)?))
                    .await?;
                Ok((d, ll))
            }
        },
    )
    .await?;
    // Sum windows per document in order, as lm-eval does, then aggregate.
    let mut per_doc = vec![0.0f64; docs.len()];
    for (d, ll) in lls {
        per_doc[d] += ll;
    }
    let items: Vec<(f64, usize, usize)> = docs
        .iter()
        .zip(&per_doc)
        .map(|(doc, &ll)| (ll, doc.words, doc.bytes))
        .collect();
    let p = wikitext::aggregate(&items);
    Ok(EvalResult {
        task: cfg.task.name().into(),
        metrics: [
            ("word_perplexity".to_string(), p.word_perplexity),
            ("byte_perplexity".to_string(), p.byte_perplexity),
            ("bits_per_byte".to_string(), p.bits_per_byte),
        ]
        .into_iter()
        .collect(),
        documents: docs.len(),
        requests: n_req,
        samples: vec![],
    })
}

/// From lm-eval's `max_length` model argument: the longest request and the `max_seq_len`
/// of the rolling windows. `TemplateAPI.__init__` keeps `max_length − 1` (one position is
/// always left for the generated token) and `loglikelihood_rolling` windows with one less
/// again (the context token), so the default 2048 sends at most 2047 tokens per request,
/// 2046 of them predicted.
pub fn window_lengths(max_length: usize) -> (usize, usize) {
    (max_length - 1, max_length - 2)
}

fn problems(rows: Vec<Vec<String>>) -> Vec<gsm8k::Problem> {
    rows.into_iter()
        .map(|mut r| gsm8k::Problem {
            answer: r.pop().unwrap_or_default(),
            question: r.pop().unwrap_or_default(),
        })
        .collect()
}

async fn eval_gsm8k(cfg: &EvalConfig) -> Result<EvalResult, AccuracyError> {
    let cols = ["question", "answer"];
    let test = match &cfg.data {
        Some(p) => data::load(&Source::Local(p.clone()), &cols).await?,
        None => data::load(&Source::Hub(cfg.task.hub_split()), &cols).await?,
    };
    let mut test = problems(test);
    test.truncate(cfg.limit.unwrap_or(usize::MAX));
    let shots_n = cfg.num_fewshot.unwrap_or(5) as usize;
    let pool = if shots_n == 0 {
        vec![]
    } else {
        let rows = match (&cfg.fewshot_data, &cfg.data) {
            (Some(p), _) => data::load(&Source::Local(p.clone()), &cols).await?,
            (None, Some(_)) => {
                return Err(AccuracyError::Config(format!(
                    "gsm8k with {shots_n} shots and local --data needs --fewshot-data (the train split), or --num-fewshot 0"
                )))
            }
            (None, None) => {
                let mut h = cfg.task.hub_split();
                h.split = "train";
                data::load(&Source::Hub(h), &cols).await?
            }
        };
        let p = problems(rows);
        if p.len() < shots_n {
            return Err(AccuracyError::Config(format!(
                "{shots_n} shots asked for but the few-shot split has {} examples",
                p.len()
            )));
        }
        p
    };
    // lm-eval's default sampler: one `Random(1234)` drawing `sample(train, n)` per question,
    // in question order.
    let mut rnd = pyrandom::PyRandom::new(FEWSHOT_SEED);
    let shots: Vec<Vec<gsm8k::Problem>> = test
        .iter()
        .map(|_| {
            if shots_n == 0 {
                vec![]
            } else {
                rnd.sample(pool.len(), shots_n)
                    .into_iter()
                    .map(|i| pool[i].clone())
                    .collect()
            }
        })
        .collect();
    let chat = cfg.task == Task::Gsm8kChat;
    let max_gen = cfg
        .max_gen_toks
        .unwrap_or(if chat { 2048 } else { gsm8k::MAX_GEN_TOKS });
    let mut reqs = vec![];
    let mut prompts = vec![];
    for (p, shots) in test.iter().zip(&shots) {
        if chat {
            let m = gsm8k::chat_messages(shots, p);
            prompts.push(serde_json::json!(m));
            reqs.push(GenPrompt::Chat(m));
        } else {
            let text = gsm8k::prompt(shots, p);
            let ids = cfg.tokenizer.encode(&text)?;
            // lm-eval left-truncates token-id prompts to `max_length − 1 − max_gen_toks`
            // tokens; a text prompt goes whole.
            let keep = (cfg.max_length - 1).saturating_sub(max_gen as usize).max(1);
            let ids = ids[ids.len().saturating_sub(keep)..].to_vec();
            prompts.push(serde_json::json!(text));
            reqs.push(GenPrompt::Completion { ids, text });
        }
    }
    // `until`, plus on /v1/completions the tokenizer's EOS text (lm-eval's
    // `handle_stop_sequences` with the `eos_string` of `local-completions`' Hugging Face
    // tokenizer). `local-chat-completions` has no tokenizer, hence no EOS string, and keeps
    // the first four.
    let mut stop: Vec<String> = gsm8k::STOP.iter().map(|s| s.to_string()).collect();
    if !chat {
        if let Some(eos) =
            tokenizer_config(&cfg.tokenizer.id).and_then(|c| special_token(&c, "eos_token"))
        {
            if !stop.contains(&eos) {
                stop.push(eos);
            }
        }
    }
    if chat {
        stop.truncate(4);
    }
    let stop = Arc::new(stop);
    let n_req = reqs.len();
    let engine = Arc::new(Engine::new(cfg.engine.clone()));
    let label = cfg.engine.progress.then_some(cfg.task.name());
    let outs = engine::run_all(reqs, cfg.engine.num_concurrent, label, move |p| {
        let engine = engine.clone();
        let stop = stop.clone();
        async move { engine.generate(p, &stop, max_gen).await }
    })
    .await?;
    let (mut strict, mut flexible) = (0usize, 0usize);
    let mut samples = vec![];
    for (i, (o, p)) in outs.iter().zip(&test).enumerate() {
        // As lm-eval's completions model: the text as returned (the engine applied `stop`).
        let s = gsm8k::score(o, p);
        strict += usize::from(s.strict_ok);
        flexible += usize::from(s.flexible_ok);
        samples.push(
            serde_json::json!({"doc_id": i, "prompt": prompts[i], "response": o,
            "strict-match": s.strict, "flexible-extract": s.flexible,
            "exact_match_strict": s.strict_ok, "exact_match": s.flexible_ok}),
        );
    }
    let n = test.len().max(1) as f64;
    Ok(EvalResult {
        task: cfg.task.name().into(),
        metrics: [
            ("exact_match".to_string(), flexible as f64 / n),
            ("exact_match_strict".to_string(), strict as f64 / n),
        ]
        .into_iter()
        .collect(),
        documents: test.len(),
        requests: n_req,
        samples,
    })
}

/// When the gate runs relative to the performance phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Before the load phase: a failure stops the job (bounty rule).
    Before,
    /// After the load phase: a failure is recorded and fails the job (InferenceX rule).
    After,
}

/// `--accuracy TASK[:before|after]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSpec {
    /// The task.
    pub task: Task,
    /// When it runs (default before).
    pub mode: Mode,
}

impl std::str::FromStr for GateSpec {
    type Err = AccuracyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (t, m) = s.split_once(':').unwrap_or((s, "before"));
        let mode = match m {
            "before" => Mode::Before,
            "after" => Mode::After,
            _ => {
                return Err(AccuracyError::Config(format!(
                    "accuracy mode `{m}` must be `before` or `after`"
                )))
            }
        };
        Ok(GateSpec {
            task: t.parse()?,
            mode,
        })
    }
}

/// Parse explicit `metric=value` thresholds for `task`.
pub fn explicit_thresholds(task: Task, items: &[String]) -> Result<Thresholds, AccuracyError> {
    let mut metrics = IndexMap::new();
    for it in items {
        let (k, v) = it.split_once('=').ok_or_else(|| {
            AccuracyError::Config(format!("threshold `{it}` is not METRIC=VALUE"))
        })?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| AccuracyError::Config(format!("threshold `{it}`: not a number")))?;
        metrics.insert(k.trim().to_string(), v);
    }
    let bound = task.bound();
    Ok(Thresholds {
        metrics,
        bound,
        shots: None,
        rule: match bound {
            Bound::AtMost => "every metric <= threshold".into(),
            Bound::AtLeast => "every metric >= threshold".into(),
        },
    })
}

/// Hold measured metrics to thresholds: the agg row's accuracy record. A threshold on a
/// metric that was not measured is an error, never a pass.
pub fn judge(task: Task, metrics: &IndexMap<String, f64>, th: &Thresholds) -> AccuracyRecord {
    let mut status = AccuracyStatus::Pass;
    for (k, &limit) in &th.metrics {
        match metrics.get(k) {
            None => status = AccuracyStatus::Error,
            Some(&v) => {
                let ok = match th.bound {
                    Bound::AtMost => v <= limit,
                    Bound::AtLeast => v >= limit,
                };
                if !ok && status == AccuracyStatus::Pass {
                    status = AccuracyStatus::Fail;
                }
            }
        }
    }
    if th.metrics.is_empty() {
        status = AccuracyStatus::Error;
    }
    AccuracyRecord {
        task: task.name().to_string(),
        metrics: metrics.clone(),
        threshold: th.metrics.clone(),
        rule: Some(th.rule.clone()),
        status,
    }
}

/// One line saying why a record failed, for error messages.
pub fn explain(r: &AccuracyRecord) -> String {
    let parts: Vec<String> = r
        .threshold
        .iter()
        .map(|(k, t)| match r.metrics.get(k) {
            Some(v) => format!("{k} = {v:.6} (threshold {t})"),
            None => format!("{k} not measured (threshold {t})"),
        })
        .collect();
    format!(
        "{}: {} — {} [{}]",
        r.task,
        r.status.as_str(),
        parts.join(", "),
        r.rule.as_deref().unwrap_or("")
    )
}
