//! `runner bench`: the load client alone against any OpenAI-compatible endpoint, taking
//! benchmark_serving.py's flags so a reference command line runs unchanged after the
//! program name.

use crate::client::dataset::{Compat, DatasetSpec, RandomParams};
use crate::client::load::Progress;
use crate::client::request::{Backend, Timeouts};
use crate::client::result::{Selection, METRICS};
use crate::client::sources::{FileKind, FileParams};
use crate::client::{self, BenchConfig};
use crate::tokenizer::{HfTokenizer, EMBEDDED_NAME};
use anyhow::{bail, Context};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Exit code when more than 5 % of requests failed (after the result file is written).
pub const FAILED_REQUESTS_EXIT: u8 = 4;

/// `runner bench`'s exit codes, for its `--help` (and the README).
pub const EXIT_CODES: &str =
    "Exit codes: 0 done; 1 error before or during the run (bad flag value, \
tokenizer or dataset missing, server unreachable: nothing is measured); 2 unknown or \
malformed flag; 4 more than 5 % of requests failed (the result file is written first).";

/// Flags of `runner bench` (benchmark_serving.py's names and defaults).
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Request API by the reference's names: `openai-chat` posts to /v1/chat/completions,
    /// every other name to /v1/completions.
    #[arg(long, value_enum, default_value = "vllm")]
    pub backend: Backend,
    /// Server base URL (path prefix kept); overrides --host/--port.
    #[arg(long)]
    pub base_url: Option<String>,
    /// Server host (with --port; ignored when --base-url is given).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Server port (with --host; ignored when --base-url is given).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// API endpoint (default: /v1/completions, or /v1/chat/completions for openai-chat).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// `random`, `sharegpt`, `sonnet`, `burstgpt` or `hf` (the reference's default is
    /// `sharegpt`; here `random`, what every InferenceX command line names).
    #[arg(long, default_value = "random")]
    pub dataset_name: String,
    /// The sharegpt JSON, sonnet text or BurstGPT CSV; for `hf` a local file or folder or
    /// a hub dataset id already in the hub cache.
    #[arg(long)]
    pub dataset_path: Option<String>,
    /// Which reference client's prompts and result layout to reproduce: `bounty-2025` (the
    /// bounty's kimbochen/bench_serving, InferenceX d053ae24e) or `inferencex-2026`
    /// (InferenceX 843c6254f: other padding draws, e2el and 90/99/99.9 percentiles by
    /// default, `input_lens`/`output_lens` always).
    #[arg(long, value_enum, default_value_t = Compat::Bounty2025)]
    pub compat: Compat,
    /// inferencex-2026: worker processes the random prompts are split over, each chunk
    /// with its own padding generator (0: `min(cpu_count, 8)` of this machine, as the
    /// reference). Changes the prompts; pass the reference machine's count to match it.
    #[arg(long, default_value_t = 0)]
    pub random_num_workers: usize,
    /// inferencex-2026: DeepSeek-V4's chat encoder (refused: not implemented).
    #[arg(long)]
    pub dsv4: bool,
    /// sharegpt: fixed output length instead of the completion's.
    #[arg(long)]
    pub sharegpt_output_len: Option<u32>,
    /// sonnet: prompt length in tokens.
    #[arg(long, default_value_t = 550)]
    pub sonnet_input_len: u32,
    /// sonnet: output length in tokens.
    #[arg(long, default_value_t = 150)]
    pub sonnet_output_len: u32,
    /// sonnet: tokens of the shared prefix every prompt starts with.
    #[arg(long, default_value_t = 200)]
    pub sonnet_prefix_len: u32,
    /// hf: the dataset's config (subset).
    #[arg(long)]
    pub hf_subset: Option<String>,
    /// hf: the split to read (required, as the reference fails without one).
    #[arg(long)]
    pub hf_split: Option<String>,
    /// hf: fixed output length instead of the completion's (also disables the filter).
    #[arg(long)]
    pub hf_output_len: Option<u32>,
    /// `auto` (the fast tokenizer) only; `slow`, `mistral`, `custom`, `deepseek_v4` are
    /// refused.
    #[arg(long, default_value = "auto")]
    pub tokenizer_mode: String,
    /// Accepted and ignored, as the reference ignores it.
    #[arg(long)]
    pub use_beam_search: bool,
    /// vLLM's torch profiler via /start_profile and /stop_profile (refused: not supported).
    #[arg(long)]
    pub profile: bool,
    /// LoRA adapters: each request names one, picked with Python's `random.choice`.
    #[arg(long, num_args = 1..)]
    pub lora_modules: Vec<String>,
    /// Model name sent in requests and recorded as model_id.
    #[arg(long, default_value = crate::sim::config::DEFAULT_MODEL)]
    pub model: String,
    /// Tokenizer: a tokenizer.json, a directory, an HF repo id, or `infmax/embedded`
    /// (default: the model; the embedded one for the simulated engine's model).
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// Name the server knows the model by, if different from --model.
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// `best_of` sent with every request.
    #[arg(long, default_value_t = 1)]
    pub best_of: u32,
    /// Prompts in the timed phase.
    #[arg(long, default_value_t = 1000)]
    pub num_prompts: usize,
    /// `logprobs` sent with every request (none by default).
    #[arg(long)]
    pub logprobs: Option<u32>,
    /// Requests per second (`inf` releases all at once).
    #[arg(long, default_value = "inf")]
    pub request_rate: f64,
    /// Gamma shape of arrival gaps (1 = Poisson).
    #[arg(long, default_value_t = 1.0)]
    pub burstiness: f64,
    /// Seed of the dataset sampling and arrival times (same seed, same prompts).
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// At most this many requests in flight.
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    /// Copies of the first request sent before the timed phase.
    #[arg(long, default_value_t = 0)]
    pub num_warmups: usize,
    /// Worker threads reading the streams; 0 (default) chooses: one (the reference's single
    /// event loop) unless --max-concurrency could offer more token events than one thread
    /// times (one thread per 300 streams, at most half the cores). Requests are written in
    /// request order with any number.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub client_threads: usize,
    /// Ask the engine to ignore EOS so every answer is exactly its output length.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Default `ttft,tpot,itl` (inferencex-2026: `ttft,tpot,itl,e2el`).
    #[arg(long)]
    pub percentile_metrics: Option<String>,
    /// Default `99` (inferencex-2026: `90,99,99.9`).
    #[arg(long)]
    pub metric_percentiles: Option<String>,
    /// SLOs `KEY:MS` (ttft, tpot, e2el) for request goodput.
    #[arg(long, num_args = 1..)]
    pub goodput: Vec<String>,
    /// Write the result JSON (to --result-dir/--result-filename, default a name
    /// with backend, rate, model and time as the reference names it).
    #[arg(long)]
    pub save_result: bool,
    /// Include per-request lists in the result file.
    #[arg(long)]
    pub save_detailed: bool,
    /// `KEY=VALUE` pairs added to the result.
    #[arg(long, num_args = 0..)]
    pub metadata: Vec<String>,
    /// Folder of the result file (default: the current directory).
    #[arg(long)]
    pub result_dir: Option<PathBuf>,
    /// Name of the result file (default: the reference's generated name).
    #[arg(long)]
    pub result_filename: Option<String>,
    /// random: prompt length in tokens (the top of its range).
    #[arg(long, default_value_t = 1024)]
    pub random_input_len: u32,
    /// random: output length in tokens (the top of its range).
    #[arg(long, default_value_t = 128)]
    pub random_output_len: u32,
    /// random: lengths are drawn uniformly from [length × this, length] (1 = fixed lengths).
    #[arg(long, default_value_t = 1.0)]
    pub random_range_ratio: f64,
    /// random: tokens of a fixed prefix before every prompt.
    #[arg(long, default_value_t = 0)]
    pub random_prefix_len: u32,
    /// Wrap each prompt in the tokenizer's chat template.
    #[arg(long)]
    pub use_chat_template: bool,
    /// Accepted for compatibility; tokenizers here never run remote code.
    #[arg(long)]
    pub trust_remote_code: bool,
    /// No progress bar.
    #[arg(long)]
    pub disable_tqdm: bool,
    /// Write the generated prompts as JSON lines (`prompt`, `prompt_len`, `output_len`), to
    /// compare with another client's dataset.
    #[arg(long, value_name = "FILE")]
    pub save_prompts: Option<PathBuf>,
    /// Generate (and save) the prompts, print their statistics, send nothing.
    #[arg(long)]
    pub dataset_only: bool,
    /// Measure the client itself against the built-in exact-schedule engine (CPU per token,
    /// events/s, TTFT/ITL error) instead of benchmarking a server.
    #[arg(long)]
    pub self_test: bool,
    /// Self-test: concurrent stream counts to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 64, 1024])]
    pub self_test_streams: Vec<usize>,
    /// Self-test: tokens per stream.
    #[arg(long, default_value_t = 400)]
    pub self_test_tokens: u32,
    /// Self-test: the engine's true inter-token latency (ms).
    #[arg(long, default_value_t = 2.0)]
    pub self_test_itl_ms: f64,
    /// Self-test: the engine's true time to first token (ms).
    #[arg(long, default_value_t = 50.0)]
    pub self_test_ttft_ms: f64,
    /// Self-test: worker threads of the engine; 0 (default) chooses from the offered event
    /// rate (one engine thread carries about 80k socket writes/s) and the cores present.
    #[arg(long, default_value_t = 0)]
    pub self_test_engine_threads: usize,
    /// Self-test: worker threads of the client (its CPU time is summed over them); 0
    /// (default) chooses per point from the offered event rate (about 150k events/s a
    /// thread) and the cores present.
    #[arg(long, default_value_t = 0)]
    pub self_test_client_threads: usize,
    /// Measure the load driver's dispatch order instead: 64 requests after 16 warmups at
    /// concurrency 8 and 64 against the exact engine, the engine's arrival order (inverted
    /// pairs) and the duration next to an in-order schedule's.
    #[arg(long)]
    pub self_test_dispatch: bool,
    /// Dispatch self-test: runs per concurrency.
    #[arg(long, default_value_t = 5)]
    pub self_test_dispatch_runs: usize,
    /// Fail a request that takes longer than this many seconds in total.
    #[arg(long, default_value_t = 6.0 * 3600.0)]
    pub request_timeout: f64,
    /// Fail a request whose stream sends nothing for this many seconds.
    #[arg(long, default_value_t = 600.0)]
    pub stall_timeout: f64,
}

impl BenchArgs {
    /// Validate and resolve into a run configuration.
    pub async fn resolve(&self) -> anyhow::Result<BenchConfig> {
        if self.tokenizer_mode != "auto" {
            bail!(
                "--tokenizer-mode {}: only `auto` (the fast tokenizer) is supported",
                self.tokenizer_mode
            );
        }
        if self.profile {
            bail!("--profile (vLLM's torch profiler via /start_profile) is not supported; profile the engine directly");
        }
        if self.dsv4 {
            bail!("--dsv4 (DeepSeek-V4's chat encoder) is not supported; use --use-chat-template with the model's own template");
        }
        let ix26 = self.compat == Compat::Inferencex2026;
        let percentile_metrics = self.percentile_metrics.clone().unwrap_or_else(|| {
            if ix26 {
                "ttft,tpot,itl,e2el"
            } else {
                "ttft,tpot,itl"
            }
            .into()
        });
        let metric_percentiles = self
            .metric_percentiles
            .clone()
            .unwrap_or_else(|| if ix26 { "90,99,99.9" } else { "99" }.into());
        let dataset = self.dataset_spec()?;
        if !(self.random_range_ratio >= 0.0 && self.random_range_ratio <= 1.0) {
            bail!("--random-range-ratio must be within [0, 1]");
        }
        if self.request_rate <= 0.0 || self.request_rate.is_nan() {
            bail!("--request-rate must be positive (or inf)");
        }
        if self.burstiness <= 0.0 || !self.burstiness.is_finite() {
            bail!("--burstiness must be a positive number");
        }
        if self.max_concurrency == Some(0) {
            bail!("--max-concurrency must be at least 1");
        }
        let metrics: Vec<String> = percentile_metrics
            .split(',')
            .map(|s| s.trim().to_string())
            .collect();
        for m in &metrics {
            if !METRICS.iter().any(|(n, _, _)| n == m) {
                bail!("--percentile-metrics: unknown metric `{m}` (valid: ttft, tpot, itl, e2el)");
            }
        }
        let percentiles = metric_percentiles
            .split(',')
            .map(|p| {
                let v: f64 = p
                    .trim()
                    .parse()
                    .with_context(|| format!("--metric-percentiles: `{p}` is not a number"))?;
                if !(0.0..=100.0).contains(&v) {
                    bail!("--metric-percentiles: {v} is outside [0, 100]");
                }
                Ok(v)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut goodput = vec![];
        for g in &self.goodput {
            let Some((k, v)) = g.split_once(':') else {
                bail!("--goodput `{g}`: give service level objectives as KEY:VALUE pairs, the key a metric name and the value a number in milliseconds");
            };
            if !["ttft", "tpot", "e2el"].contains(&k) {
                bail!("--goodput: invalid metric name `{k}`; use one of ttft, tpot, e2el");
            }
            let v: f64 = v
                .parse()
                .with_context(|| format!("--goodput `{g}`: `{v}` is not a number"))?;
            if v < 0.0 {
                bail!("--goodput `{g}`: the value must be non-negative");
            }
            goodput.push((k.to_string(), v));
        }
        let metadata = self
            .metadata
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .with_context(|| format!("--metadata `{kv}`: use KEY=VALUE"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let tok_spec = match &self.tokenizer {
            Some(t) => t.clone(),
            None if self.model == crate::sim::config::DEFAULT_MODEL => EMBEDDED_NAME.to_string(),
            None => self.model.clone(),
        };
        let tokenizer = HfTokenizer::load(&tok_spec)
            .await
            .context("loading the tokenizer")?;
        let base_url = self
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}:{}", self.host, self.port));
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            bail!("--base-url `{base_url}` must start with http:// or https://");
        }
        let secs = |v: f64, name: &str| {
            if v > 0.0 && v.is_finite() {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(anyhow::anyhow!(
                    "--{name} must be a positive number of seconds"
                ))
            }
        };
        Ok(BenchConfig {
            base_url,
            endpoint: self
                .endpoint
                .clone()
                .unwrap_or_else(|| self.backend.default_endpoint().into()),
            backend: self.backend,
            model: self.model.clone(),
            served_model_name: self.served_model_name.clone(),
            tokenizer,
            dataset,
            compat: self.compat,
            lora_modules: self.lora_modules.clone(),
            seed: self.seed,
            best_of: self.best_of,
            logprobs: self.logprobs,
            ignore_eos: self.ignore_eos,
            max_concurrency: self.max_concurrency,
            request_rate: self.request_rate,
            burstiness: self.burstiness,
            num_warmups: self.num_warmups,
            timeouts: Timeouts {
                total: secs(self.request_timeout, "request-timeout")?,
                stall: secs(self.stall_timeout, "stall-timeout")?,
            },
            selection: Selection {
                metrics,
                percentiles,
                goodput,
            },
            metadata,
            detailed: self.save_detailed,
            api_key: std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            client_threads: self.client_threads,
        })
    }

    /// `--dataset-name` and its flags.
    fn dataset_spec(&self) -> anyhow::Result<DatasetSpec> {
        let path = || {
            self.dataset_path.clone().with_context(|| {
                format!("--dataset-name {} needs --dataset-path", self.dataset_name)
            })
        };
        let kind = match self.dataset_name.as_str() {
            "random" => {
                return Ok(DatasetSpec::Random(RandomParams {
                    input_len: self.random_input_len,
                    output_len: self.random_output_len,
                    range_ratio: self.random_range_ratio,
                    prefix_len: self.random_prefix_len,
                    num_prompts: self.num_prompts,
                    use_chat_template: self.use_chat_template,
                    compat: self.compat,
                    workers: match self.random_num_workers {
                        0 => crate::client::dataset::default_workers(),
                        n => n,
                    },
                }))
            }
            "sharegpt" => FileKind::ShareGpt {
                output_len: self.sharegpt_output_len,
            },
            "sonnet" => FileKind::Sonnet {
                input_len: self.sonnet_input_len,
                output_len: self.sonnet_output_len,
                prefix_len: self.sonnet_prefix_len,
                raw: self.backend.is_chat(),
            },
            "burstgpt" => FileKind::BurstGpt,
            "hf" => FileKind::Hf {
                subset: self.hf_subset.clone(),
                split: self
                    .hf_split
                    .clone()
                    .context("--dataset-name hf needs --hf-split (e.g. train)")?,
                output_len: self.hf_output_len,
            },
            other => bail!(
                "--dataset-name {other}: unknown dataset (supported: random, sharegpt, sonnet, burstgpt, hf)"
            ),
        };
        Ok(DatasetSpec::File(FileParams {
            kind,
            path: path()?,
            num_prompts: self.num_prompts,
        }))
    }

    /// The result file path the reference would write.
    pub fn result_path(&self, cfg: &BenchConfig, date: &str) -> PathBuf {
        let name = self.result_filename.clone().unwrap_or_else(|| {
            let base = cfg.model.rsplit('/').next().unwrap_or(&cfg.model);
            let conc = cfg
                .max_concurrency
                .map(|c| format!("-concurrency{c}"))
                .unwrap_or_default();
            format!(
                "{}-{}qps{conc}-{base}-{date}.json",
                cfg.backend.name(),
                crate::pyjson::py_float_repr(cfg.request_rate).replace("Infinity", "inf")
            )
        });
        match &self.result_dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        }
    }
}

/// Fail before the load phase, with one clear line, when nothing listens at the server's
/// address: otherwise every request fails and the run prints a table of zeros.
async fn reachable(base_url: &str) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(base_url).with_context(|| format!("--base-url `{base_url}`"))?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(30), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => bail!(
            "cannot reach the server at {base_url} ({host}:{port}: {e}); is it running and is that its address? Nothing was sent"
        ),
        Err(_) => bail!(
            "cannot reach the server at {base_url} ({host}:{port}): no connection within 30 s; nothing was sent"
        ),
    }
}

/// `runner bench`.
pub fn run(args: BenchArgs) -> ExitCode {
    if args.self_test_dispatch {
        let r = [8, 64].into_iter().try_for_each(|conc| {
            super::selftest::dispatch_order(64, conc, 16, args.self_test_dispatch_runs).map(drop)
        });
        return match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                crate::errln!("error: {}", super::error_text(&e));
                ExitCode::FAILURE
            }
        };
    }
    if args.self_test {
        return match super::selftest::run(
            &args.self_test_streams,
            args.self_test_tokens,
            args.self_test_ttft_ms,
            args.self_test_itl_ms,
            [args.self_test_engine_threads, args.self_test_client_threads],
        ) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                crate::errln!("error: {}", super::error_text(&e));
                ExitCode::FAILURE
            }
        };
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run_async(args)) {
        Ok(code) => code,
        Err(e) => {
            crate::errln!("error: {}", super::error_text(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run_async(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.resolve().await?;
    if args.save_prompts.is_some() || args.dataset_only {
        let (tok, spec, seed) = (cfg.tokenizer.clone(), cfg.dataset.clone(), cfg.seed);
        let t0 = std::time::Instant::now();
        let ds = tokio::task::spawn_blocking(move || spec.sample(&tok, seed))
            .await
            .context("dataset generation")??;
        crate::errln!(
            "generated {} prompts in {:.2} s",
            ds.prompts.len(),
            t0.elapsed().as_secs_f64()
        );
        if let Some(path) = &args.save_prompts {
            let mut text = String::new();
            for p in &ds.prompts {
                text.push_str(&serde_json::json!({"prompt": p.text, "prompt_len": p.prompt_len, "output_len": p.output_len}).to_string());
                text.push('\n');
            }
            crate::fsutil::write_atomic(path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if args.dataset_only {
            return Ok(ExitCode::SUCCESS);
        }
    }
    reachable(&cfg.base_url).await?;
    let threads = client::client_threads(&cfg);
    if threads > 1 {
        crate::errln!(
            "client: {threads} worker threads read the streams (requests still go out in order)"
        );
    }
    let progress = Arc::new(Progress::default());
    let (p, total, warmups) = (progress.clone(), cfg.dataset.num_prompts(), cfg.num_warmups);
    let reporter = (!args.disable_tqdm)
        .then(|| crate::progress::Ticker::start("progress", move || p.status(total, warmups)));
    let out = client::run(&cfg, progress).await?;
    drop(reporter);
    crate::err!("{}", out.dataset_stats);
    crate::outln!("{}", out.table.trim_end());
    if args.save_result {
        let date = out.result["date"].as_str().unwrap_or("").to_string();
        let path = args.result_path(&cfg, &date);
        let text = crate::pyjson::to_python_json(&out.result);
        crate::fsutil::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        crate::errln!("result written to {}", path.display());
    }
    if out.too_many_failures() {
        crate::errln!(
            "error: {} of {} requests failed (more than 5%); first errors: {}",
            out.failed,
            out.failed + out.completed,
            out.result["error_samples"]
        );
        return Ok(ExitCode::from(FAILED_REQUESTS_EXIT));
    }
    Ok(ExitCode::SUCCESS)
}
