//! infmax: benchmark LLM serving engines on GPU fleets the way InferenceMAX does.
//!
//! The modules follow the pipeline, and data flows one way through them:
//!
//! ```text
//! config → sweep → (recipe → launch → client → accuracy → report → publish)
//! ```
//!
//! * [`config`] — strict, located parsing of master configs, runners.yaml and job rows.
//! * [`sweep`] — master configs → job rows, filters, GitHub matrix chunks, git diffs.
//! * [`github`] — the workflows' GitHub side: `scheduler dispatch`, `scheduler collect`
//!   (run artifacts → sweep table, plots, verdict; failed jobs listed) and `scheduler runners`.
//! * [`recipe`] — the shell-safe launch script for a row, from `benchmarks/`, and its
//!   fingerprint.
//! * [`launch`] — launch profiles (`runners/`), engine spawn, readiness and teardown.
//! * [`exec`] — `runner exec` / `runner batch`: one row end to end, exit code per stage.
//! * [`client`] — the load client: benchmark_serving.py's prompts, request stream and
//!   metrics, reproduced exactly and measured without client-side bottlenecks.
//! * [`tokenizer`] — HF tokenizers with `transformers` semantics; one ships embedded.
//! * [`pyjson`] — JSON formatted as Python writes it, for byte-comparable outputs.
//! * [`fsutil`] — atomic file writes: no stage ever leaves half a file.
//! * [`csv`] — one CSV record split with RFC 4180 quoting (datasets, amd-smi).
//! * [`sim`] — the simulated engine (`runner sim`): OpenAI-compatible, continuous-batching
//!   latency model, exact-schedule mode, fault injection, the embedded tokenizer.
//! * [`accuracy`] — the accuracy gate: wikitext perplexities and gsm8k exact match with
//!   lm-eval's exact semantics, held to `baselines/accuracy.yaml` before or after the load.
//! * [`report`] — agg rows (`agg.json`), baselines and ratios, the eligibility verdict,
//!   plots (SVG/PNG) and Markdown summaries, GitHub Actions annotations.
//! * [`telemetry`] — GPU power, clocks, temperature and memory from `nvidia-smi` /
//!   `amd-smi` during the timed phase, and the energy per token they imply; the engine's
//!   Prometheus `/metrics` scraped into AIPerf's `server_metrics_export.json`.
//! * [`term`] — colour only on a terminal (and never under `NO_COLOR`); ANSI escapes
//!   stripped from engine logs copied to files.
//! * [`publish`] — leaderboard sinks (HF Space Gradio call API, JSON webhook) behind a
//!   durable outbox that retries with backoff and never submits a row twice.
//!
//! The binaries in `src/bin/` are thin: they parse flags, call into these modules and turn
//! errors into exit codes.

pub mod accuracy;
pub mod cli;
pub mod client;
pub mod config;
pub mod csv;
pub mod exec;
pub mod fsutil;
pub mod github;
pub mod launch;
pub mod progress;
pub mod publish;
pub mod pyjson;
pub mod recipe;
pub mod report;
pub mod secrets;
pub mod sim;
pub mod sweep;
pub mod telemetry;
pub mod term;
pub mod tokenizer;
