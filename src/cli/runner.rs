//! `runner` subcommands.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Run InferenceMAX matrix rows end to end, on a GPU runner or your own machine.
///
/// `exec` and `batch` launch the engine a row names, wait until it is ready, drive it with
/// benchmark_serving.py's load, check its accuracy and write results comparable with
/// InferenceMAX's. The load client (`bench`), the accuracy evaluation (`eval`) and a
/// simulated engine (`sim`) also run on their own; `doctor` checks this machine first.
#[derive(Debug, Parser)]
#[command(name = "runner", version = super::VERSION, after_help = super::examples(&[
    "runner exec --config examples/dsr1-fp4-mi355x-1k1k-conc4.json --profile sim",
    "runner doctor --profile docker-nvidia",
    "runner bench --base-url http://127.0.0.1:8000 --num-prompts 40 --max-concurrency 4",
]))]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Check a job row as `runner exec` would before starting anything (schema, bounds,
    /// shell-safe values, launch profile and template; exit 10 on a config error) and print
    /// it as the runner reads it.
    #[command(after_help = super::examples(&[
        "runner check --config examples/dsr1-fp4-mi355x-1k1k-conc4.json",
        "runner check --config examples/dsv4-fp4-b200-sglang-agentic-conc16.json --profile sim",
        "runner check --config rows.json --row 3",
    ]))]
    Check(super::exec::CheckArgs),
    /// Serve the simulated engine (OpenAI-compatible, vLLM-shaped) until Ctrl-C.
    #[command(after_help = super::examples(&[
        "runner sim --port 8000",
        "runner sim --port 0 --preset exact",
        "runner sim --preset agentic --kv-cache-tokens 3000000 --metrics-flavor sglang",
    ]))]
    Sim(SimArgs),
    /// Summary, eligibility verdict and plots for any set of result directories.
    #[command(after_help = super::examples(&[
        "runner report --dir results",
        "runner report --dir results/run1 results/run2 --out report --no-png",
        "runner report --dir results --require-eligible",
    ]))]
    Report(crate::report::cli::ReportArgs),
    /// Publish result rows to the leaderboard sinks through the durable outbox.
    #[command(after_help = super::examples(&[
        "runner publish --dir results --sinks sinks.yaml --run-id 42",
        "runner publish --pending --sinks sinks.yaml",
        "runner publish --status",
    ]))]
    Publish(crate::publish::cli::PublishArgs),
    /// Run one matrix row end to end: recipe, launch, ready, load, report.
    #[command(after_help = super::examples_and(&[
        "runner exec --config examples/dsr1-fp4-mi355x-1k1k-conc4.json --profile sim",
        "runner exec --config examples/dsr1-fp4-mi355x-1k1k-conc4.json --dry-run",
        "runner exec --config row.json --accuracy gsm8k:after --out results",
    ], super::EXEC_EXIT_CODES))]
    Exec(super::exec::ExecArgs),
    /// Run rows (or one row at several CONC), keeping the engine up while the recipe is equal.
    #[command(after_help = super::examples_and(&[
        "runner batch --config examples/dsr1-fp4-mi355x-1k1k-conc4.json --profile sim --conc 4,8,16",
        "runner batch --config row1.json row2.json --out results",
    ], super::EXEC_EXIT_CODES))]
    Batch(super::exec::BatchArgs),
    /// The load client alone against any endpoint (benchmark_serving.py's flags; as with
    /// argparse, a repeated flag overrides the earlier one).
    #[command(args_override_self = true, after_help = super::examples_and(&[
        "runner bench --base-url http://127.0.0.1:8000 --random-input-len 1024 --num-prompts 40",
        "runner bench --dataset-only --save-prompts prompts.jsonl --num-prompts 640",
        "runner bench --self-test",
    ], super::bench::EXIT_CODES))]
    Bench(Box<super::bench::BenchArgs>),
    /// Evaluate a served model like lm-eval (wikitext perplexities, gsm8k exact match) and
    /// print the metrics as JSON; with thresholds, exit 14 when the gate fails.
    #[command(after_help = super::examples(&[
        "runner eval --base-url http://127.0.0.1:8000 --task wikitext-tokens --model-key dsr1-fp4",
        "runner eval --base-url http://127.0.0.1:8000 --task gsm8k --num-fewshot 3 --num-concurrent 16",
        "runner eval --base-url http://127.0.0.1:8000 --task gsm8k --limit 50 --model-key dsr1-fp4",
    ]))]
    Eval(Box<crate::accuracy::cli::EvalArgs>),
    /// Run an engine command in this process group and kill the group when the runner
    /// that started it dies (started by `exec`/`batch`, never by hand).
    #[command(hide = true)]
    Supervise(crate::launch::supervise::SuperviseArgs),
    /// Replay recorded coding-agent sessions (AgentX) against an endpoint, AIPerf-style, and
    /// write AIPerf's artifacts (profile_export.jsonl, profile_export_aiperf.json).
    #[command(after_help = super::examples(&[
        "runner agentic --url http://127.0.0.1:8000 --model m --input-file traces.jsonl --concurrency 16",
        "runner agentic --model m --input-file traces.jsonl --benchmark-duration 60 --unsafe-override",
    ]))]
    Agentic(Box<super::agentic::AgenticArgs>),
    /// Benchmark the agentic replay: corpus load time and memory, dispatch lateness.
    #[command(after_help = super::examples(&[
        "runner agentic-bench --duration 10",
        "runner agentic-bench --lanes 64 --skip-load",
    ]))]
    AgenticBench(super::agentic::AgenticBenchArgs),
    /// Write deterministic synthetic coding-agent traces in the Weka format (`traces.jsonl`).
    #[command(after_help = super::examples(&[
        "runner agentic-synth --out traces.jsonl",
        "runner agentic-synth --preset tiny --time-scale 0.05 --out traces.jsonl",
    ]))]
    AgenticSynth(super::agentic::SynthArgs),
    /// Check this machine for what a launch profile needs: the engine's tools (docker and
    /// its daemon, Slurm and its controller), the GPU tool, a row's template, image and GPU
    /// count, the HF cache and token (never printed), the port and disk space. Exit 1 when a
    /// required check fails.
    #[command(after_help = super::examples(&[
        "runner doctor --profile docker-nvidia",
        "runner doctor --config examples/dsr1-fp4-mi355x-1k1k-conc4.json --port 8000",
        "runner doctor --profile slurm --json",
    ]))]
    Doctor(super::doctor::DoctorArgs),
    /// Print a shell completion script for `runner` (bash, zsh, fish, elvish, powershell).
    #[command(after_help = super::examples(&[
        "runner completions bash > ~/.local/share/bash-completion/completions/runner",
        "runner completions zsh > ~/.zfunc/_runner",
        "runner completions fish > ~/.config/fish/completions/runner.fish",
    ]))]
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

/// Flags of `runner sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Port to listen on (0 = any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// A built-in preset: b200-dsr1 (default), tiny, exact.
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// A sim config YAML (a preset plus overrides, faults…).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Worker threads of the engine's runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Metric names of `GET /metrics` and the KV-capacity line of the startup log
    /// (overrides the config's `metrics-flavor`).
    #[arg(long, value_enum)]
    pub metrics_flavor: Option<crate::sim::metrics::Flavor>,
    /// Longest prompt + completion accepted (overrides `max-model-len`).
    #[arg(long)]
    pub max_model_len: Option<u32>,
    /// GPU KV pool in tokens: prefix-cache capacity and admission limit; 0 turns the KV model
    /// off (overrides `kv-cache.gpu-tokens`).
    #[arg(long)]
    pub kv_cache_tokens: Option<u64>,
    /// Add (or resize) the CPU offload tier, in tokens.
    #[arg(long, conflicts_with = "offload_cpu_gb")]
    pub offload_cpu_tokens: Option<u64>,
    /// Add (or resize) the CPU offload tier, in GB of DRAM (10⁹ bytes; tokens = GB·10⁹ /
    /// `kv-cache.offload.bytes-per-token`), as a launcher passes TOTAL_CPU_DRAM_GB.
    #[arg(long)]
    pub offload_cpu_gb: Option<f64>,
    /// Time to load one token's KV from the offload tier, in ms.
    #[arg(long)]
    pub offload_load_ms_per_token: Option<f64>,
}

impl SimArgs {
    /// Apply the flags that override the config.
    fn apply(&self, c: &mut crate::sim::SimConfig) -> anyhow::Result<()> {
        use crate::sim::config::{OffloadConfig, DEFAULT_KV_BYTES_PER_TOKEN};
        if let Some(f) = self.metrics_flavor {
            c.metrics_flavor = f;
        }
        if let Some(n) = self.max_model_len {
            c.max_model_len = n;
        }
        if let Some(n) = self.kv_cache_tokens {
            c.kv_cache.gpu_tokens = n;
        }
        let sized = self.offload_cpu_tokens.is_some() || self.offload_cpu_gb.is_some();
        if sized || self.offload_load_ms_per_token.is_some() {
            let o = c.kv_cache.offload.get_or_insert(OffloadConfig {
                cpu_tokens: 0,
                load_ms_per_token: 0.001,
                bytes_per_token: DEFAULT_KV_BYTES_PER_TOKEN,
            });
            if let Some(t) = self.offload_cpu_tokens {
                o.cpu_tokens = t;
            }
            if let Some(gb) = self.offload_cpu_gb {
                anyhow::ensure!(
                    gb.is_finite() && gb >= 0.0,
                    "--offload-cpu-gb must be a finite number ≥ 0"
                );
                o.cpu_tokens = OffloadConfig::tokens_for_gb(gb, o.bytes_per_token);
            }
            if let Some(ms) = self.offload_load_ms_per_token {
                o.load_ms_per_token = ms;
            }
            anyhow::ensure!(
                sized || o.cpu_tokens > 0,
                "--offload-load-ms-per-token needs an offload tier (--offload-cpu-tokens or --offload-cpu-gb, or kv-cache.offload in the config)"
            );
        }
        c.validate()
            .map_err(|(p, m)| anyhow::anyhow!("invalid sim settings: {p}: {m}"))
    }
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.cmd {
        Cmd::Report(args) => edge(crate::report::cli::run(args)),
        Cmd::Publish(args) => edge(crate::publish::cli::run(args)),
        Cmd::Bench(args) => super::bench::run(*args),
        Cmd::Eval(args) => edge(crate::accuracy::cli::run(*args)),
        Cmd::Agentic(args) => super::agentic::run_agentic(*args),
        Cmd::AgenticBench(args) => super::agentic::run_bench(args),
        Cmd::AgenticSynth(args) => super::agentic::run_synth(args),
        Cmd::Exec(args) => super::exec::run_exec(args),
        Cmd::Batch(args) => super::exec::run_batch(args),
        Cmd::Supervise(args) => crate::launch::supervise::run(args),
        Cmd::Doctor(args) => super::doctor::run(args),
        Cmd::Completions { shell } => super::completions::<Cli>(shell, "runner"),
        Cmd::Sim(args) => match run_sim(args) {
            Ok(code) => code,
            Err(e) => {
                crate::errln!("error: {}", super::error_text(&e));
                ExitCode::FAILURE
            }
        },
        Cmd::Check(args) => super::exec::run_check(args),
    }
}

/// Turn a subcommand's result into its exit code; errors print as `error: …` (or an
/// Actions annotation) and exit 1.
fn edge(r: anyhow::Result<ExitCode>) -> ExitCode {
    r.unwrap_or_else(|e| {
        let msg = super::error_text(&e);
        if crate::report::gha::in_actions() {
            crate::report::gha::error("runner", &msg);
        }
        crate::errln!("error: {msg}");
        ExitCode::FAILURE
    })
}

/// Exit code of `runner sim` when a fault knob crashed it on purpose.
pub const SIM_CRASH_EXIT: u8 = 3;

/// The sim's settings from its preset or config file and flags; an error here is a config
/// error (exit 10, as everywhere).
fn sim_config(args: &SimArgs) -> anyhow::Result<crate::sim::SimConfig> {
    use crate::sim::SimConfig;
    use anyhow::Context;
    let mut cfg = match (&args.preset, &args.config) {
        (_, Some(path)) => SimConfig::load(path)?,
        (Some(name), None) => SimConfig::preset(name).with_context(|| {
            format!(
                "unknown preset `{name}` (known: {})",
                crate::sim::config::PRESETS.join(", ")
            )
        })?,
        (None, None) => SimConfig::preset(crate::sim::config::DEFAULT_PRESET)
            .expect("the default preset exists"),
    };
    args.apply(&mut cfg)?;
    Ok(cfg)
}

fn run_sim(args: SimArgs) -> anyhow::Result<ExitCode> {
    use crate::sim::{Exit, Server};
    use anyhow::Context;
    let cfg = match sim_config(&args) {
        Ok(c) => c,
        Err(e) => {
            crate::errln!("error: {}", super::error_text(&e));
            return Ok(ExitCode::from(10));
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let addr = std::net::SocketAddr::new(args.host, args.port);
        let handle = Server::start(cfg, addr).await?;
        let c = handle.config();
        let mode = match &c.exact {
            Some(x) => format!(
                "exact schedule (TTFT {} ms, ITL {} ms)",
                x.ttft_ms, x.itl_ms
            ),
            None => format!("continuous batching (max batch {})", c.batching.max_batch),
        };
        tracing::info!("sim: serving {} on {} — {mode}", c.model, handle.url());
        // The KV capacity line log parsers read (InferenceX's aggregation takes the GPU KV
        // pool from it), in the flavor's words; on stderr, with the rest of the server log.
        if let Some(line) = crate::sim::capacity_log_line(c) {
            crate::errln!("{line}");
        }
        // Scripts read the address from stdout (useful with --port 0).
        crate::outln!("{}", handle.url());
        tokio::select! {
            exit = handle.wait() => match exit {
                Exit::Crashed(why) => {
                    crate::errln!("sim: crashed: {why}");
                    Ok(ExitCode::from(SIM_CRASH_EXIT))
                }
                Exit::Shutdown => Ok(ExitCode::SUCCESS),
            },
            _ = tokio::signal::ctrl_c() => {
                handle.shutdown();
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
