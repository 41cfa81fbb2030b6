//! `runner agentic` (the AgentX trace replay with AIPerf's flags) and `runner agentic-synth`
//! (deterministic synthetic Weka traces).

use crate::client::agentic::headers::RoutingHeaders;
use crate::client::agentic::synth::{write_file, SynthParams};
use crate::client::agentic::trace::TraceSource;
use crate::client::agentic::{AgenticConfig, AgenticRun, ReplayOptions};
use crate::client::request::Timeouts;
use crate::tokenizer::HfTokenizer;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Flags of `runner agentic-synth`.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Shape: `small` (tests: 16 traces, two beyond 256k tokens), `tiny` (contexts under
    /// 2.5k tokens, for small real engines) or `real` (the real corpus' size: 393 traces,
    /// ~99k requests, contexts up to 990k tokens).
    #[arg(long, default_value = "small")]
    pub preset: String,
    /// Override the number of traces.
    #[arg(long)]
    pub traces: Option<usize>,
    /// Seed (same seed, same bytes).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Multiply recorded think and api times (e.g. 0.05 for quick runs).
    #[arg(long)]
    pub time_scale: Option<f64>,
    /// Write the `-256k` variant (requests with in+out > 256000 dropped).
    #[arg(long)]
    pub variant_256k: bool,
    /// Output file (`traces.jsonl`).
    #[arg(long)]
    pub out: PathBuf,
}

/// Run `runner agentic-synth`.
pub fn run_synth(a: SynthArgs) -> ExitCode {
    let Some(mut p) = SynthParams::preset(&a.preset) else {
        crate::errln!(
            "error: --preset: unknown preset `{}` (small, tiny, real)",
            a.preset
        );
        return ExitCode::from(2);
    };
    if let Some(n) = a.traces {
        p.traces = n;
    }
    if let Some(s) = a.seed {
        p.seed = s;
    }
    if let Some(s) = a.time_scale {
        p.time_scale = s;
    }
    match write_file(&p, &a.out, a.variant_256k) {
        Ok(()) => {
            crate::outln!("wrote {} traces to {}", p.traces, a.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            crate::errln!("error: {}: {e}", a.out.display());
            ExitCode::FAILURE
        }
    }
}

/// Flags of `runner agentic`: AIPerf's names where InferenceX passes them (agentic.md §5.3).
#[derive(Debug, clap::Args)]
pub struct AgenticArgs {
    /// Server base URL (a path prefix is kept).
    #[arg(long, default_value = "http://localhost:8000")]
    pub url: String,
    /// Endpoint path.
    #[arg(long, default_value = "/v1/chat/completions")]
    pub endpoint: String,
    /// Only `chat` is supported (accepted for AIPerf compatibility).
    #[arg(long, default_value = "chat")]
    pub endpoint_type: String,
    /// Always on (accepted for AIPerf compatibility; the scenario forbids --no-streaming).
    #[arg(long)]
    pub streaming: bool,
    /// `model` of every request.
    #[arg(long)]
    pub model: String,
    /// Tokenizer the blocks are built with: a tokenizer.json, a directory, an HF repo id, or
    /// `infmax/embedded` (default: the model name).
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// Accepted for AIPerf compatibility (tokenizers here never run remote code).
    #[arg(long)]
    pub tokenizer_trust_remote_code: bool,
    /// Live session trees (lanes).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Profiling window in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600.0)]
    pub benchmark_duration: f64,
    /// Seconds in-flight requests may finish after the window; later ones are cancelled.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub benchmark_grace_period: f64,
    /// Required for windows under 900 s (such runs are not submission-valid).
    #[arg(long)]
    pub unsafe_override: bool,
    /// Seed of t*, sampling, block content.
    #[arg(long, default_value_t = 42)]
    pub random_seed: u64,
    /// Abort when more than this fraction of profiling requests fails.
    #[arg(long, default_value_t = 0.10)]
    pub failed_request_threshold: f64,
    /// Earliest point a lane may start inside a trace, as a fraction of its
    /// --trajectory-start-basis.
    #[arg(long, default_value_t = 0.25)]
    pub trajectory_start_min_ratio: f64,
    /// Latest point a lane may start inside a trace, as a fraction of its
    /// --trajectory-start-basis.
    #[arg(long, default_value_t = 0.75)]
    pub trajectory_start_max_ratio: f64,
    /// What the ratios are a fraction of: the root's turns, or its recorded time span.
    #[arg(long, value_enum, default_value = "turns")]
    pub trajectory_start_basis: crate::client::agentic::replay::StartBasis,
    /// One-token requests per lane after the primer.
    #[arg(long, default_value_t = 10)]
    pub warmup_requests_per_lane: usize,
    /// Longest wait for every lane to finish warmup (seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 1800.0)]
    pub warmup_grace_period: f64,
    /// Per-tree idle cap in seconds (0 = off). AIPerf's `--trace-idle-gap-cap-seconds` is
    /// accepted too.
    #[arg(
        long = "trace-idle-gap-cap",
        alias = "trace-idle-gap-cap-seconds",
        value_name = "SECONDS",
        default_value_t = 300.0
    )]
    pub trace_idle_gap_cap_seconds: f64,
    /// When nothing is in flight, the next request fires within this many seconds. AIPerf's
    /// `--system-idle-gap-cap-seconds` is accepted too.
    #[arg(
        long = "system-idle-gap-cap",
        alias = "system-idle-gap-cap-seconds",
        value_name = "SECONDS",
        default_value_t = 10.0
    )]
    pub system_idle_gap_cap_seconds: f64,
    /// Always on: ISL/OSL come from the server's usage (accepted for AIPerf compatibility).
    #[arg(long)]
    pub use_server_token_count: bool,
    /// Requests whose in+out exceeds this are not sent (a context overflow ends their
    /// conversation).
    #[arg(long)]
    pub max_context_length: Option<u64>,
    /// Use the first N traces.
    #[arg(long)]
    pub num_dataset_entries: Option<usize>,
    /// AIPerf loader name or HF dataset (`semianalysis_cc_traces_weka_062126`,
    /// `semianalysisai/cc-traces-weka-062126-256k`).
    #[arg(long, conflicts_with = "input_file")]
    pub public_dataset: Option<String>,
    /// A local traces.jsonl (or parquet).
    #[arg(long)]
    pub input_file: Option<PathBuf>,
    /// How a lane picks its next trace after a tree drains.
    #[arg(long, value_enum, default_value = "sequential")]
    pub trace_sampler: crate::client::agentic::replay::Sampler,
    /// Theoretical prefix-cache seen-set: reset per play (cache-bust) or kept per trace.
    #[arg(long, value_enum, default_value = "play")]
    pub theoretical_cache_scope: crate::client::agentic::replay::CacheScope,
    /// Send `max_tokens` instead of `max_completion_tokens`.
    #[arg(long)]
    pub use_legacy_max_tokens: bool,
    /// Leave requests cancelled at the end of the grace period out of the records.
    #[arg(long)]
    pub drop_cancelled: bool,
    /// Fail a request that takes longer than this many seconds in total (AIPerf's
    /// `--request-timeout-seconds` is accepted too).
    #[arg(
        long = "request-timeout",
        alias = "request-timeout-seconds",
        value_name = "SECONDS",
        default_value_t = 21600.0
    )]
    pub request_timeout_seconds: f64,
    /// Fail a request whose stream sends nothing for this many seconds.
    #[arg(
        long = "stall-timeout",
        alias = "stall-timeout-seconds",
        value_name = "SECONDS",
        default_value_t = 1800.0
    )]
    pub stall_timeout_seconds: f64,
    /// Fail unless the last TTFT or ITL observation reaches this fraction of the profiling window.
    #[arg(long, default_value_t = 0.95)]
    pub min_metric_coverage: f64,
    /// A context-overflow rate above this makes the run not submission-valid.
    #[arg(long, default_value_t = 0.01)]
    pub context_overflow_rate_limit: f64,
    /// Written into the aggregate's metadata.
    #[arg(long, default_value = "inferencex-agentx-mvp")]
    pub scenario: String,
    /// Prometheus endpoints scraped during the window.
    #[arg(long, num_args = 1..)]
    pub server_metrics: Vec<String>,
    /// Accepted for AIPerf compatibility.
    #[arg(long)]
    pub stats_interval: Option<f64>,
    /// Accepted for AIPerf compatibility (profiling slices are 1 s).
    #[arg(long)]
    pub slice_duration: Option<f64>,
    /// Accepted for AIPerf compatibility (telemetry is collected by `runner exec`).
    #[arg(long)]
    pub no_gpu_telemetry: bool,
    /// Where the artifacts go.
    #[arg(long, default_value = "aiperf_artifacts")]
    pub output_artifact_dir: PathBuf,
    /// Do not split interleaved request streams into sibling agents (`::fa:`, `::wg:`,
    /// `::aux:`) by hash-id LCP chains; same as
    /// `AIPERF_DATASET_WEKA_SPLIT_FLATTENED_AGENTS=false`. The other
    /// `AIPERF_DATASET_WEKA_*` detection knobs are read from the environment.
    #[arg(long)]
    pub no_split_flattened_agents: bool,
    /// Also send `X-SMG-Routing-Key` = the correlation id (SGLang Model Gateway; or
    /// `AIPERF_HTTP_X_SMG_ROUTING_KEY_FROM_CORRELATION_ID=true`).
    #[arg(long)]
    pub x_smg_routing_key: bool,
    /// Also send `X-Session-ID` = the correlation id (vLLM router; or
    /// `AIPERF_HTTP_X_SESSION_ID_FROM_CORRELATION_ID=true`).
    #[arg(long)]
    pub x_session_id: bool,
    /// Also send `X-Dynamo-Session-ID` = the correlation id and, on child conversations,
    /// `X-Dynamo-Parent-Session-ID` = the parent's (Dynamo frontends; or
    /// `AIPERF_HTTP_X_DYNAMO_SESSION_ID_FROM_CORRELATION_ID=true`).
    #[arg(long)]
    pub x_dynamo_session_id: bool,
}

impl AgenticArgs {
    /// Flattened-agent detection: the `AIPERF_DATASET_WEKA_*` environment, then the flag.
    pub fn topology(&self) -> Result<crate::client::agentic::topology::Knobs, String> {
        let mut k = crate::client::agentic::topology::Knobs::from_env()?;
        if self.no_split_flattened_agents {
            k.split = false;
        }
        Ok(k)
    }
}

fn dur(v: f64, flag: &str) -> Result<std::time::Duration, String> {
    if v.is_finite() && v >= 0.0 {
        Ok(std::time::Duration::from_secs_f64(v))
    } else {
        Err(format!(
            "--{flag}: must be a non-negative number of seconds, got {v}"
        ))
    }
}

impl AgenticArgs {
    /// Resolve the flags (everything but the tokenizer, which loads asynchronously).
    pub fn options(&self) -> Result<ReplayOptions, String> {
        if self.endpoint_type != "chat" {
            return Err(format!(
                "--endpoint-type: only `chat` is supported by the agentic replay, got `{}`",
                self.endpoint_type
            ));
        }
        if self.benchmark_duration < 900.0 && !self.unsafe_override {
            return Err(format!(
                "--benchmark-duration {} is below 900 s: pass --unsafe-override (the run is then not submission-valid)",
                self.benchmark_duration
            ));
        }
        if !(0.0..=1.0).contains(&self.trajectory_start_min_ratio)
            || !(0.0..=1.0).contains(&self.trajectory_start_max_ratio)
            || self.trajectory_start_min_ratio > self.trajectory_start_max_ratio
        {
            return Err(
                "--trajectory-start-min-ratio/--trajectory-start-max-ratio: need 0 ≤ min ≤ max ≤ 1"
                    .into(),
            );
        }
        if self.concurrency == 0 {
            return Err("--concurrency: must be at least 1".into());
        }
        let cap = dur(self.trace_idle_gap_cap_seconds, "trace-idle-gap-cap")?;
        Ok(ReplayOptions {
            concurrency: self.concurrency,
            duration: dur(self.benchmark_duration, "benchmark-duration")?,
            grace: dur(self.benchmark_grace_period, "benchmark-grace-period")?,
            warmup_grace: dur(self.warmup_grace_period, "warmup-grace-period")?,
            warmup_per_lane: self.warmup_requests_per_lane,
            start_min: self.trajectory_start_min_ratio,
            start_max: self.trajectory_start_max_ratio,
            start_basis: self.trajectory_start_basis,
            system_idle_cap: dur(self.system_idle_gap_cap_seconds, "system-idle-gap-cap")?,
            tree_idle_cap: (!cap.is_zero()).then_some(cap),
            failed_threshold: self.failed_request_threshold,
            seed: self.random_seed,
            sampler: self.trace_sampler,
            max_context: self.max_context_length,
            cache_scope: self.theoretical_cache_scope,
            legacy_max_tokens: self.use_legacy_max_tokens,
            ignore_eos: true,
            record_cancelled: !self.drop_cancelled,
            routing: RoutingHeaders::from_env()?.or(RoutingHeaders {
                smg_routing_key: self.x_smg_routing_key,
                session_id: self.x_session_id,
                dynamo: self.x_dynamo_session_id,
            }),
        })
    }

    /// The trace source the flags name (InferenceX's default corpus when none).
    pub fn source(&self) -> TraceSource {
        match (&self.input_file, &self.public_dataset) {
            (Some(p), _) => TraceSource::Local(p.clone()),
            (None, Some(d)) => TraceSource::parse(d),
            (None, None) => TraceSource::parse("semianalysis_cc_traces_weka_062126"),
        }
    }
}

/// Run `runner agentic`.
pub fn run_agentic(a: AgenticArgs) -> ExitCode {
    let opts = match a.options() {
        Ok(o) => o,
        Err(e) => {
            crate::errln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        let tok_spec = a.tokenizer.clone().unwrap_or_else(|| a.model.clone());
        let tokenizer = HfTokenizer::load(&tok_spec)
            .await
            .map_err(|e| format!("--tokenizer {tok_spec}: {e}"))?;
        let cfg = AgenticConfig {
            base_url: a.url.clone(),
            endpoint: a.endpoint.clone(),
            model: a.model.clone(),
            tokenizer,
            source: a.source(),
            num_dataset_entries: a.num_dataset_entries,
            replay: opts,
            scenario: a.scenario.clone(),
            out_dir: a.output_artifact_dir.clone(),
            server_metrics: a.server_metrics.clone(),
            api_key: std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            timeouts: Timeouts {
                total: dur(a.request_timeout_seconds, "request-timeout")?,
                stall: dur(a.stall_timeout_seconds, "stall-timeout")?,
            },
            min_coverage: a.min_metric_coverage,
            overflow_limit: a.context_overflow_rate_limit,
            topology: a.topology()?,
        };
        let say: Arc<dyn Fn(&str) + Send + Sync> =
            Arc::new(|m: &str| crate::errln!("agentic: {m}"));
        let counters = Arc::new(crate::client::load::Progress::default());
        let window = cfg.replay.duration;
        let c = counters.clone();
        let _ticker = crate::progress::Ticker::start("agentic", move || c.agentic_status(window));
        crate::client::agentic::run(&cfg, Some(say), counters)
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(run) => {
            crate::out!("{}", summary(&run));
            match run.failure() {
                Some(why) => {
                    crate::errln!("error: {why} (artifacts in {})", run.dir.display());
                    ExitCode::FAILURE
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            crate::errln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The closing summary.
pub fn summary(r: &AgenticRun) -> String {
    let p = |q: f64| crate::client::agentic::export::percentile(&r.lateness, q) * 1e3;
    format!(
        "corpus: {} traces, {} requests, loaded in {:.2} s\nprofiling: {} ok, {} failed, {} warmup\ncoverage: {:.1} %  theoretical prefix-cache hit: {:.1} %\ndispatch lateness: p50 {:.3} ms  p99 {:.3} ms  (n={})\nsubmission valid: {}{}\nartifacts: {}\n",
        r.traces,
        r.requests,
        r.load_seconds,
        r.counts.ok,
        r.counts.errors,
        r.counts.warmup,
        r.coverage * 100.0,
        r.theoretical_hit_rate * 100.0,
        p(50.0),
        p(99.0),
        r.lateness.len(),
        r.invalid_reasons.is_empty(),
        if r.invalid_reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.invalid_reasons.join("; "))
        },
        r.dir.display()
    )
}

/// Flags of `runner agentic-bench`.
#[derive(Debug, clap::Args)]
pub struct AgenticBenchArgs {
    /// Lane counts for the dispatch-lateness runs against the simulated engine.
    #[arg(long, value_delimiter = ',', default_value = "64,256,1024")]
    pub lanes: Vec<usize>,
    /// Profiling window of each lateness run, in seconds.
    #[arg(
        long = "duration",
        alias = "seconds",
        value_name = "SECONDS",
        default_value_t = 10.0
    )]
    pub seconds: f64,
    /// Corpus for the memory/load measurement (default: the `real` synthetic shape, written
    /// to a temporary file first).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Skip the memory/load measurement.
    #[arg(long)]
    pub skip_load: bool,
    /// Skip the lateness runs.
    #[arg(long)]
    pub skip_lateness: bool,
    /// Internal: load this corpus and print its load figures (run in a child process so its
    /// peak RSS is the load's alone).
    #[arg(long, hide = true)]
    pub load_only: Option<PathBuf>,
}

fn proc_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn load_only(p: &std::path::Path) -> ExitCode {
    let t = std::time::Instant::now();
    let c = match crate::client::agentic::trace::load_file(p, &Default::default()) {
        Ok(c) => c,
        Err(e) => {
            crate::errln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let secs = t.elapsed().as_secs_f64();
    let max_in = c
        .traces
        .iter()
        .flat_map(|t| t.root.turns.iter().map(|x| x.input))
        .max()
        .unwrap_or(0);
    let ids: usize = c.traces.iter().map(|t| t.runs.len()).sum();
    crate::outln!(
        "load: {} traces, {} requests, max context {} tokens, {} id runs: {:.2} s, RSS {:.0} MiB (peak {:.0} MiB)",
        c.traces.len(),
        c.request_count(),
        max_in,
        ids,
        secs,
        proc_status_kib("VmRSS:") as f64 / 1024.0,
        proc_status_kib("VmHWM:") as f64 / 1024.0
    );
    ExitCode::SUCCESS
}

/// Run `runner agentic-bench`: load time and memory of a real-shaped corpus, and dispatch
/// lateness at several lane counts against the simulated engine.
pub fn run_bench(a: AgenticBenchArgs) -> ExitCode {
    if let Some(p) = &a.load_only {
        return load_only(p);
    }
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            crate::errln!("error: temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !a.skip_load {
        let path = match &a.corpus {
            Some(p) => p.clone(),
            None => {
                let p = tmp.path().join("real-shape.jsonl");
                let t = std::time::Instant::now();
                if let Err(e) = write_file(&SynthParams::real(), &p, false) {
                    crate::errln!("error: {}: {e}", p.display());
                    return ExitCode::FAILURE;
                }
                let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                crate::outln!(
                    "synthetic real-shape corpus: {:.0} MiB written in {:.1} s",
                    size as f64 / (1 << 20) as f64,
                    t.elapsed().as_secs_f64()
                );
                p
            }
        };
        let exe = std::env::current_exe().expect("own executable");
        let st = std::process::Command::new(exe)
            .arg("agentic-bench")
            .arg("--load-only")
            .arg(&path)
            .status();
        if !st.map(|s| s.success()).unwrap_or(false) {
            crate::errln!("error: the load measurement failed");
            return ExitCode::FAILURE;
        }
    }
    if a.skip_lateness {
        return ExitCode::SUCCESS;
    }
    let traces = tmp.path().join("bench.jsonl");
    let p = SynthParams {
        traces: 256,
        turns: (20, 60),
        max_context: (2_000, 12_000),
        time_scale: 0.05,
        ..SynthParams::tiny()
    };
    if let Err(e) = write_file(&p, &traces, false) {
        crate::errln!("error: {}: {e}", traces.display());
        return ExitCode::FAILURE;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("sim runtime");
    let mut sc = crate::sim::SimConfig::preset("exact").expect("exact preset");
    if let Some(x) = sc.exact.as_mut() {
        x.ttft_ms = 20.0;
        x.itl_ms = 5.0;
    }
    sc.max_model_len = 1 << 20;
    let model = sc.model.clone();
    let handle = match sim_rt.block_on(crate::sim::Server::start_local(sc)) {
        Ok(h) => h,
        Err(e) => {
            crate::errln!("error: simulated engine: {e}");
            return ExitCode::FAILURE;
        }
    };
    crate::outln!(
        "dispatch lateness (actual send − due) against the simulated engine, {} cores:",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    for &lanes in &a.lanes {
        let cfg = AgenticConfig {
            base_url: handle.url(),
            endpoint: "/v1/chat/completions".into(),
            model: model.clone(),
            tokenizer: HfTokenizer::embedded(),
            source: TraceSource::Local(traces.clone()),
            num_dataset_entries: None,
            replay: ReplayOptions {
                concurrency: lanes,
                duration: std::time::Duration::from_secs_f64(a.seconds),
                grace: std::time::Duration::from_secs(5),
                warmup_per_lane: 1,
                ..ReplayOptions::default()
            },
            scenario: "bench".into(),
            out_dir: tmp.path().join(format!("lanes{lanes}")),
            server_metrics: vec![],
            api_key: None,
            timeouts: Timeouts {
                total: std::time::Duration::from_secs(600),
                stall: std::time::Duration::from_secs(120),
            },
            min_coverage: 0.0,
            overflow_limit: 1.0,
            topology: Default::default(),
        };
        match rt.block_on(crate::client::agentic::run(
            &cfg,
            None,
            Arc::new(crate::client::load::Progress::default()),
        )) {
            Ok(r) => {
                let p = |q: f64| crate::client::agentic::export::percentile(&r.lateness, q) * 1e3;
                crate::outln!(
                    "  {lanes:>5} lanes: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  ({} requests, {} failed)",
                    p(50.0),
                    p(99.0),
                    r.lateness.last().copied().unwrap_or(f64::NAN) * 1e3,
                    r.lateness.len(),
                    r.counts.errors
                );
                if let Some(why) = &r.aborted {
                    crate::outln!("         stopped early: {why}");
                }
                if r.lateness.is_empty() {
                    crate::out!("{}", summary(&r));
                }
            }
            Err(e) => {
                crate::errln!("error: {lanes} lanes: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
