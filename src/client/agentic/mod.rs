//! AgentX: replay of recorded coding-agent sessions (agentic.md §3), the second workload of
//! the load client beside fixed-length random prompts.
//!
//! It runs on the same load driver as the fixed-length workload ([`super::driver`]: event
//! loop, transport, SSE timing, progress counters, cancellation); what differs is the
//! workload: which request is due when. [`trace`] holds the corpus compactly, [`prompt`]
//! builds each request's message list lazily from 64-token blocks, [`replay`] is the
//! driver's agentic workload (lanes of session trees), and [`export`] writes AIPerf's
//! artifacts that InferenceX's aggregation reads.

pub mod export;
pub mod headers;
pub mod prompt;
pub mod replay;
pub mod synth;
pub mod topology;
pub mod trace;

use crate::client::request::{Target, Timeouts};
use crate::tokenizer::HfTokenizer;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A replay could not run or its artifacts could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AgenticError {
    #[error(transparent)]
    Trace(#[from] trace::TraceError),
    #[error(transparent)]
    Prompt(#[from] prompt::PromptError),
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
    #[error("{path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Everything one replay needs (AIPerf's flags, resolved).
#[derive(Debug, Clone)]
pub struct AgenticConfig {
    /// Server base URL (`http://host:port[/prefix]`).
    pub base_url: String,
    /// Appended to the base URL (`/v1/chat/completions`).
    pub endpoint: String,
    /// `model` of every request (`--model`; recorded model names are rewritten to it).
    pub model: String,
    /// The run's tokenizer: blocks are made of its single-token words.
    pub tokenizer: HfTokenizer,
    /// `--public-dataset` / `--input-file`.
    pub source: trace::TraceSource,
    /// `--num-dataset-entries`: use the first N traces (all when `None`).
    pub num_dataset_entries: Option<usize>,
    /// Scheduling, timing and body settings.
    pub replay: ReplayOptions,
    /// `--scenario` written into the aggregate's metadata.
    pub scenario: String,
    /// `--output-artifact-dir`.
    pub out_dir: PathBuf,
    /// `--server-metrics URL…` scraped during the profiling window.
    pub server_metrics: Vec<String>,
    /// `OPENAI_API_KEY`.
    pub api_key: Option<String>,
    /// Per-request timeouts (`--request-timeout`).
    pub timeouts: Timeouts,
    /// Below this TTFT/ITL coverage of the window the run fails.
    pub min_coverage: f64,
    /// Above this context-overflow rate the run is not submission-valid.
    pub overflow_limit: f64,
    /// Flattened-agent detection (`AIPERF_DATASET_WEKA_*`, `--no-split-flattened-agents`).
    pub topology: topology::Knobs,
}

/// The replay's own settings (see [`replay::ReplayConfig`]).
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub concurrency: usize,
    pub duration: Duration,
    pub grace: Duration,
    pub warmup_grace: Duration,
    pub warmup_per_lane: usize,
    pub start_min: f64,
    pub start_max: f64,
    pub start_basis: replay::StartBasis,
    pub system_idle_cap: Duration,
    pub tree_idle_cap: Option<Duration>,
    pub failed_threshold: f64,
    pub seed: u64,
    pub sampler: replay::Sampler,
    pub max_context: Option<u64>,
    pub cache_scope: replay::CacheScope,
    pub legacy_max_tokens: bool,
    pub ignore_eos: bool,
    pub record_cancelled: bool,
    /// Optional routing headers beside `X-Correlation-ID` (off by default).
    pub routing: headers::RoutingHeaders,
}

impl Default for ReplayOptions {
    /// InferenceX's command line (agentic.md §5.3) with a one-hour window.
    fn default() -> Self {
        ReplayOptions {
            concurrency: 1,
            duration: Duration::from_secs(3600),
            grace: Duration::from_secs(30),
            warmup_grace: Duration::from_secs(1800),
            warmup_per_lane: 10,
            start_min: 0.25,
            start_max: 0.75,
            start_basis: replay::StartBasis::Turns,
            system_idle_cap: Duration::from_secs(10),
            tree_idle_cap: Some(Duration::from_secs(300)),
            failed_threshold: 0.10,
            seed: 42,
            sampler: replay::Sampler::Sequential,
            max_context: None,
            cache_scope: replay::CacheScope::Play,
            legacy_max_tokens: false,
            ignore_eos: true,
            record_cancelled: true,
            routing: headers::RoutingHeaders::default(),
        }
    }
}

/// What a replay produced (its artifacts are in `dir`).
#[derive(Debug)]
pub struct AgenticRun {
    /// The artifacts directory.
    pub dir: PathBuf,
    pub counts: export::Counts,
    /// Empty when submission-valid.
    pub invalid_reasons: Vec<String>,
    /// Set when the run was stopped early (it exits non-zero).
    pub aborted: Option<String>,
    /// How far into the profiling window the last TTFT or ITL observation reaches (the
    /// larger of the two fractions, AIPerf's duration coverage).
    pub coverage: f64,
    /// The coverage floor the run was held to.
    pub min_coverage: f64,
    /// Seconds to load the corpus and pick the block words.
    pub load_seconds: f64,
    /// Traces and requests in the corpus.
    pub traces: usize,
    pub requests: usize,
    /// Dispatch lateness of profiling requests (seconds, sorted).
    pub lateness: Vec<f64>,
    /// Theoretical prefix-cache hit rate (0–1).
    pub theoretical_hit_rate: f64,
}

impl AgenticRun {
    /// Why the run must exit non-zero (AIPerf's live abort and coverage watchdog), if so.
    pub fn failure(&self) -> Option<String> {
        if let Some(a) = &self.aborted {
            return Some(a.clone());
        }
        if self.coverage < self.min_coverage {
            return Some(format!(
                "insufficient_profile_metric_coverage: the last TTFT/ITL observation reaches {:.1} % of the profile window (< {:.0} %): the server stopped answering before the window's end",
                self.coverage * 100.0,
                self.min_coverage * 100.0
            ));
        }
        None
    }
}

/// A fresh run id (cache-bust keyspace): time and process id.
fn run_id() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 40)
}

/// Load the corpus (first `n` traces).
pub async fn load_corpus(
    src: &trace::TraceSource,
    n: Option<usize>,
    knobs: &topology::Knobs,
) -> Result<trace::Corpus, AgenticError> {
    let mut c = trace::load(src, knobs).await?;
    if let Some(n) = n {
        c.traces.truncate(n);
    }
    Ok(c)
}

/// Load the traces, replay them against the server, and write the artifacts.
///
/// `counters` are the run's live counters (requests done and failed, output tokens, live
/// sessions, the window's start, a compact record per finished profiling request): a
/// progress ticker and the record an interrupted run leaves read them.
pub async fn run(
    cfg: &AgenticConfig,
    progress: Option<replay::ProgressFn>,
    counters: Arc<crate::client::load::Progress>,
) -> Result<AgenticRun, AgenticError> {
    let t = Instant::now();
    let corpus = load_corpus(&cfg.source, cfg.num_dataset_entries, &cfg.topology).await?;
    let tok = cfg.tokenizer.clone();
    let seed = cfg.replay.seed;
    let words = tokio::task::spawn_blocking(move || prompt::Words::new(&tok, seed))
        .await
        .expect("word picker")?;
    let load_seconds = t.elapsed().as_secs_f64();
    let (traces, requests) = (corpus.traces.len(), corpus.request_count());
    let o = &cfg.replay;
    let rc = replay::ReplayConfig {
        target: Target::new(
            format!("{}{}", cfg.base_url.trim_end_matches('/'), cfg.endpoint),
            cfg.api_key.clone(),
            true,
            cfg.timeouts,
        ),
        lanes: o.concurrency,
        duration: o.duration,
        grace: o.grace,
        warmup_grace: o.warmup_grace,
        warmup_per_lane: o.warmup_per_lane,
        start_min: o.start_min,
        start_max: o.start_max,
        start_basis: o.start_basis,
        system_idle_cap: o.system_idle_cap,
        tree_idle_cap: o.tree_idle_cap,
        failed_threshold: o.failed_threshold,
        seed: o.seed,
        sampler: o.sampler,
        max_context: o.max_context,
        cache_scope: o.cache_scope,
        body: prompt::BodySpec {
            model: cfg.model.clone(),
            legacy_max_tokens: o.legacy_max_tokens,
            ignore_eos: o.ignore_eos,
        },
        run_id: run_id(),
        record_cancelled: o.record_cancelled,
        routing: o.routing,
    };
    let corpus = Arc::new(corpus);
    let words = Arc::new(words);
    let rt = tokio::runtime::Handle::current();
    // Server metrics are scraped every 333 ms (AIPerf's rate) for the whole run and reduced
    // to the profiling window.
    // Dropping this future (a signal ends the job) stops the replay and its requests.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _stop = crate::client::driver::StopOnDrop(stop.clone());
    let scraper = (!cfg.server_metrics.is_empty()).then(|| {
        crate::telemetry::server_metrics::start(&cfg.server_metrics, Duration::from_millis(333))
    });
    let res = tokio::task::spawn_blocking(move || {
        replay::run(rc, corpus, words, rt, progress, counters, stop)
    })
    .await
    .expect("replay scheduler thread")?;
    if let Some(sc) = scraper {
        let now = Instant::now();
        let window = crate::telemetry::server_metrics::Window {
            start_ns: export::wall_ns(&res, res.t0.unwrap_or(now)),
            end_ns: export::wall_ns(&res, res.ended.unwrap_or(now)),
        };
        let path = cfg.out_dir.join("server_metrics_export.json");
        let export = sc.finish(window).await;
        std::fs::create_dir_all(&cfg.out_dir)
            .and_then(|()| export.write(&path))
            .map_err(|source| AgenticError::Write {
                path: path.display().to_string(),
                source,
            })?;
    }
    let (source_type, name) = cfg.source.describe();
    let loader = match &cfg.source {
        trace::TraceSource::Hub(h) => h
            .repo
            .trim_start_matches("semianalysisai/")
            .replace("cc-traces-weka-", "semianalysis_cc_traces_weka_")
            .replace('-', "_"),
        trace::TraceSource::Local(_) => "weka_trace_file".into(),
    };
    let meta = export::RunMeta {
        scenario: cfg.scenario.clone(),
        source_type,
        loader,
        dataset_name: name,
        num_dataset_entries: traces,
        duration_s: o.duration.as_secs_f64(),
        concurrency: o.concurrency,
        min_coverage: cfg.min_coverage,
        overflow_limit: cfg.overflow_limit,
    };
    export::write_all(&cfg.out_dir, &res, &meta).map_err(|source| AgenticError::Write {
        path: cfg.out_dir.display().to_string(),
        source,
    })?;
    let mut lateness = res.lateness.clone();
    lateness.sort_by(f64::total_cmp);
    Ok(AgenticRun {
        dir: cfg.out_dir.clone(),
        counts: export::counts(&res),
        invalid_reasons: export::invalid_reasons(&res, &meta),
        aborted: res.aborted.clone(),
        coverage: res.coverage,
        min_coverage: cfg.min_coverage,
        load_seconds,
        traces,
        requests,
        lateness,
        theoretical_hit_rate: if res.cache_blocks > 0 {
            res.cache_hits as f64 / res.cache_blocks as f64
        } else {
            0.0
        },
    })
}
