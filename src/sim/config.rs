//! What a simulated engine does: its timing (continuous-batching latency model or exact
//! schedule), output rules and injected faults. Named presets give complete configs; a YAML
//! file may start from one and override any field, parsed strictly (unknown keys and bad
//! types are errors with file:line:col) like every other config in infmax.

use super::metrics::Flavor;
use crate::config::{parse_yaml, ConfigError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Model name the simulated engine serves unless configured otherwise.
pub const DEFAULT_MODEL: &str = "infmax/sim";

/// Preset used when neither `--preset` nor a config file's `preset:` names one.
pub const DEFAULT_PRESET: &str = "b200-dsr1";

/// Names of the built-in presets, for help texts and errors.
pub const PRESETS: &[&str] = &["b200-dsr1", "agentic", "tiny", "exact"];

/// A complete simulated-engine configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SimConfig {
    /// Model id served on `/v1/models` and echoed in every response.
    pub model: String,
    /// Seed of the deterministic output: text and logprobs are a pure function of
    /// (seed, prompt tokens, position).
    pub seed: u64,
    /// Time after start before `/health` answers 200 (and generation is accepted).
    pub startup_delay_ms: u64,
    /// Longest prompt + `max_tokens` accepted; longer requests get a 400, as vLLM does.
    pub max_model_len: u32,
    /// With `ignore_eos: false`, generation stops early with probability
    /// 1/`mean-output-tokens` per token (a deterministic rule, see `sim::model`).
    pub mean_output_tokens: u32,
    /// A `tokenizer.json` to use instead of the one shipped in `assets/tokenizer/`.
    pub tokenizer: Option<PathBuf>,
    /// Record the true send time of every token (retrievable with `GET /sim/schedule`).
    pub record_schedule: bool,
    /// Exact-schedule mode: when set, every request gets this fixed timing and the
    /// batching model below is not used.
    pub exact: Option<ExactTiming>,
    /// The continuous-batching latency model used when `exact` is not set.
    pub batching: BatchTiming,
    /// The KV cache: prefix caching, the memory that limits admission, the offload tier.
    pub kv_cache: KvCacheConfig,
    /// Whose metric names `GET /metrics` uses (and which KV-capacity line the startup log
    /// prints).
    pub metrics_flavor: Flavor,
    /// Injected faults; all off by default.
    pub faults: Faults,
}

/// The KV cache model (see `sim::kvcache`): a block-level prefix cache with LRU eviction on
/// the GPU KV pool, and optionally a CPU offload tier behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct KvCacheConfig {
    /// GPU KV pool in tokens (what vLLM logs as "GPU KV cache size", SGLang as
    /// `max_total_num_tokens`): the prefix cache's capacity, and admission waits while the
    /// running requests' prompts and outputs would not fit. 0 = not modelled (no prefix
    /// caching, no memory limit).
    pub gpu_tokens: u64,
    /// Tokens per cache block; only full blocks are cached (vLLM's `--block-size`,
    /// SGLang's `--page-size`).
    pub block_tokens: u32,
    /// The CPU offload tier, if any.
    pub offload: Option<OffloadConfig>,
}

/// A second, larger LRU level behind the GPU pool (vLLM's CPU offloading connectors,
/// SGLang's HiCache host pool). Computed blocks are written through to it; a prompt's blocks
/// found there after its GPU hit are loaded back instead of prefilled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OffloadConfig {
    /// Capacity in tokens.
    pub cpu_tokens: u64,
    /// Time to load one token's KV back onto the GPU (cheaper than prefilling it). The
    /// request waits for its load without holding up the other requests' steps.
    #[serde(default = "default_load_ms")]
    pub load_ms_per_token: f64,
    /// KV bytes per token, for the offload byte counters and for sizing the tier from a
    /// DRAM budget in GB.
    #[serde(default = "default_kv_bytes")]
    pub bytes_per_token: u64,
}

/// Load cost of the offload tier unless configured: 1 µs per token (about 35 KB of KV at
/// 35 GB/s), 18× cheaper than the b200 preset's prefill.
fn default_load_ms() -> f64 {
    0.001
}

/// KV bytes per token unless configured: DeepSeek-R1's MLA cache in FP8
/// (61 layers × (512 + 64) bytes).
pub const DEFAULT_KV_BYTES_PER_TOKEN: u64 = 35_136;

fn default_kv_bytes() -> u64 {
    DEFAULT_KV_BYTES_PER_TOKEN
}

impl OffloadConfig {
    /// A tier of `gb` gigabytes (10⁹ bytes) at this config's bytes per token.
    pub fn tokens_for_gb(gb: f64, bytes_per_token: u64) -> u64 {
        (gb * 1e9 / bytes_per_token.max(1) as f64) as u64
    }
}

/// Fixed per-request timing, independent of load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExactTiming {
    /// Time from request arrival to the first token.
    pub ttft_ms: f64,
    /// Time between consecutive tokens.
    pub itl_ms: f64,
}

/// Parameters of the continuous-batching scheduler: one engine step decodes one token for
/// every running sequence and spends the rest of the step's token budget on (chunked)
/// prefill; its duration is
/// `step-base-ms + step-per-sqrt-seq-ms·√(sequences in step) + step-per-prefill-token-ms·(prefill tokens)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BatchTiming {
    /// Most sequences running at once; the rest wait in a FIFO queue.
    pub max_batch: u32,
    /// Tokens one step may process (decode tokens + prefill chunk), vLLM's
    /// `max_num_batched_tokens`.
    pub max_batched_tokens: u32,
    /// Fixed cost of a step.
    pub step_base_ms: f64,
    /// Cost growing with the square root of the number of sequences in the step.
    pub step_per_sqrt_seq_ms: f64,
    /// Cost of each prefill token in the step.
    pub step_per_prefill_token_ms: f64,
    /// Tensor-parallel size the preset imitates; informational (reports divide by it).
    pub tp: u32,
}

/// Fault injection knobs, used by reliability tests. Per-request faults pick their victims
/// by arrival order with an exact rate (request n is hit when ⌊(n+1)·rate⌋ > ⌊n·rate⌋), so a
/// run reproduces the same pattern.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Faults {
    /// `/health` never turns 200 and generation is refused with 503.
    pub never_ready: bool,
    /// Crash (stop serving, drop every connection; the `runner sim` process exits non-zero)
    /// this long after start.
    pub exit_after_secs: Option<f64>,
    /// Crash when this many generation requests have arrived: the requests before stay in
    /// flight until the crash cuts them, the one that triggers it gets no response.
    pub exit_after_requests: Option<u64>,
    /// Answer a share of generation requests with an error status at once.
    pub fail: Option<FailFault>,
    /// Cut the connection (no terminating chunk, no `[DONE]`) after some tokens.
    pub cut: Option<CutFault>,
    /// Stop sending after some tokens, for a while or forever, keeping the connection open.
    pub stall: Option<StallFault>,
    /// Send the whole response one byte at a time.
    pub slow_loris: Option<SlowLorisFault>,
}

/// Fail requests with an HTTP error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FailFault {
    /// Share of requests failed, 0–1.
    pub rate: f64,
    /// Status returned: 500, 429 (with `Retry-After: 1`), 503…
    #[serde(default = "default_fail_status")]
    pub status: u16,
}

fn default_fail_status() -> u16 {
    500
}

fn one() -> f64 {
    1.0
}

/// Cut streams after some tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CutFault {
    /// Tokens sent before the cut.
    pub after_tokens: u32,
    /// Share of requests affected, 0–1.
    #[serde(default = "one")]
    pub rate: f64,
}

/// Stall streams after some tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StallFault {
    /// Tokens sent before the stall.
    pub after_tokens: u32,
    /// How long the stall lasts; absent = forever.
    pub for_ms: Option<u64>,
    /// Share of requests affected, 0–1.
    #[serde(default = "one")]
    pub rate: f64,
}

/// Trickle responses byte by byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SlowLorisFault {
    /// Pause between two bytes.
    pub byte_interval_ms: u64,
    /// Share of requests affected, 0–1.
    #[serde(default = "one")]
    pub rate: f64,
}

/// A config file as written: every field optional, applied over a preset.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SimConfigFile {
    preset: Option<String>,
    model: Option<String>,
    seed: Option<u64>,
    startup_delay_ms: Option<u64>,
    max_model_len: Option<u32>,
    mean_output_tokens: Option<u32>,
    tokenizer: Option<PathBuf>,
    record_schedule: Option<bool>,
    exact: Option<ExactTiming>,
    batching: Option<BatchTimingFile>,
    kv_cache: Option<KvCacheFile>,
    metrics_flavor: Option<Flavor>,
    faults: Option<Faults>,
}

/// KV cache overrides: fields left out keep the preset's value; `offload` replaces the
/// preset's tier (`offload: null` removes it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct KvCacheFile {
    gpu_tokens: Option<u64>,
    block_tokens: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    offload: Option<Option<OffloadConfig>>,
}

/// A field that may be given as `null` (Some(None)) apart from left out (None).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Batching overrides: fields left out keep the preset's value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BatchTimingFile {
    max_batch: Option<u32>,
    max_batched_tokens: Option<u32>,
    step_base_ms: Option<f64>,
    step_per_sqrt_seq_ms: Option<f64>,
    step_per_prefill_token_ms: Option<f64>,
    tp: Option<u32>,
}

impl SimConfig {
    /// A built-in preset by name: `b200-dsr1` (a latency curve shaped like DeepSeek-R1 FP4
    /// on 8×B200 with vLLM), `agentic` (the same engine at the model's native 1M-token
    /// context, for multi-turn agentic replay), `tiny` (fast batching model for tests and
    /// demos) or `exact` (exact schedule, TTFT 50 ms, ITL 2 ms: the load client's benchmark).
    pub fn preset(name: &str) -> Option<SimConfig> {
        // Fitted to the B200 DSR1 FP4 baseline (tp 8): median TPOT ≈ 4.07 + 1.62·√conc ms
        // (7.4 ms at conc 4, 17 ms at conc 64) and ~0.018 ms per prefill token, which
        // reproduces the 8k/1k points' slower decode.
        let b200 = SimConfig {
            model: DEFAULT_MODEL.to_string(),
            seed: 0,
            startup_delay_ms: 1000,
            max_model_len: 16384,
            mean_output_tokens: 256,
            tokenizer: None,
            record_schedule: false,
            exact: None,
            batching: BatchTiming {
                max_batch: 256,
                max_batched_tokens: 8192,
                step_base_ms: 4.07,
                step_per_sqrt_seq_ms: 1.62,
                step_per_prefill_token_ms: 0.018,
                tp: 8,
            },
            // A B200 node's KV pool for DSR1 FP4 at tp 8 is a few million tokens.
            kv_cache: KvCacheConfig {
                gpu_tokens: 3_000_000,
                block_tokens: 64,
                offload: None,
            },
            metrics_flavor: Flavor::Vllm,
            faults: Faults::default(),
        };
        match name {
            "agentic" => Some(SimConfig {
                max_model_len: 1_048_576,
                ..b200
            }),
            "b200-dsr1" => Some(b200),
            "tiny" => Some(SimConfig {
                startup_delay_ms: 0,
                batching: BatchTiming {
                    max_batch: 64,
                    max_batched_tokens: 2048,
                    step_base_ms: 1.0,
                    step_per_sqrt_seq_ms: 0.1,
                    step_per_prefill_token_ms: 0.0005,
                    tp: 1,
                },
                kv_cache: KvCacheConfig {
                    gpu_tokens: 1_000_000,
                    ..b200.kv_cache
                },
                ..b200
            }),
            "exact" => Some(SimConfig {
                startup_delay_ms: 0,
                record_schedule: true,
                exact: Some(ExactTiming {
                    ttft_ms: 50.0,
                    itl_ms: 2.0,
                }),
                // The client's benchmark: nothing beyond the schedule on its path.
                kv_cache: KvCacheConfig {
                    gpu_tokens: 0,
                    ..b200.kv_cache
                },
                ..b200
            }),
            _ => None,
        }
    }

    /// Load a YAML config file: its `preset:` (default `b200-dsr1`) with the file's fields
    /// applied on top.
    pub fn load(path: &Path) -> Result<SimConfig, ConfigError> {
        let (file, text) = crate::config::read_file(path)?;
        Self::from_yaml(&file, &text)
    }

    /// Parse config text; `file` names it in errors.
    pub fn from_yaml(file: &str, text: &str) -> Result<SimConfig, ConfigError> {
        let f: SimConfigFile = if text.trim().is_empty() {
            SimConfigFile::default()
        } else {
            parse_yaml(file, text)?
        };
        let preset = f.preset.as_deref().unwrap_or(DEFAULT_PRESET);
        let mut c = Self::preset(preset).ok_or_else(|| {
            ConfigError::invalid(
                file,
                "sim",
                "preset",
                format!("unknown preset `{preset}` (known: {})", PRESETS.join(", ")),
            )
        })?;
        macro_rules! set {
            ($dst:expr, $src:expr) => {
                if let Some(v) = $src {
                    $dst = v;
                }
            };
        }
        set!(c.model, f.model);
        set!(c.seed, f.seed);
        set!(c.startup_delay_ms, f.startup_delay_ms);
        set!(c.max_model_len, f.max_model_len);
        set!(c.mean_output_tokens, f.mean_output_tokens);
        set!(c.record_schedule, f.record_schedule);
        if f.tokenizer.is_some() {
            c.tokenizer = f.tokenizer;
        }
        if f.exact.is_some() {
            c.exact = f.exact;
        }
        if let Some(b) = f.batching {
            set!(c.batching.max_batch, b.max_batch);
            set!(c.batching.max_batched_tokens, b.max_batched_tokens);
            set!(c.batching.step_base_ms, b.step_base_ms);
            set!(c.batching.step_per_sqrt_seq_ms, b.step_per_sqrt_seq_ms);
            set!(
                c.batching.step_per_prefill_token_ms,
                b.step_per_prefill_token_ms
            );
            set!(c.batching.tp, b.tp);
        }
        if let Some(k) = f.kv_cache {
            set!(c.kv_cache.gpu_tokens, k.gpu_tokens);
            set!(c.kv_cache.block_tokens, k.block_tokens);
            set!(c.kv_cache.offload, k.offload);
        }
        set!(c.metrics_flavor, f.metrics_flavor);
        set!(c.faults, f.faults);
        c.validate()
            .map_err(|(path, msg)| ConfigError::invalid(file, "sim", path, msg))?;
        Ok(c)
    }

    /// Check the rules serde cannot express; returns (field path, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |p: &str, m: &str| Err((p.to_string(), m.to_string()));
        if self.model.is_empty() {
            return err("model", "must not be empty");
        }
        if self.mean_output_tokens == 0 {
            return err("mean-output-tokens", "must be at least 1");
        }
        if self.max_model_len == 0 {
            return err("max-model-len", "must be at least 1");
        }
        if let Some(e) = &self.exact {
            if !(e.ttft_ms >= 0.0 && e.ttft_ms.is_finite()) {
                return err("exact.ttft-ms", "must be a finite number ≥ 0");
            }
            if !(e.itl_ms >= 0.0 && e.itl_ms.is_finite()) {
                return err("exact.itl-ms", "must be a finite number ≥ 0");
            }
        }
        let b = &self.batching;
        if b.max_batch == 0 {
            return err("batching.max-batch", "must be at least 1");
        }
        if b.max_batched_tokens < b.max_batch {
            return err(
                "batching.max-batched-tokens",
                "must be at least max-batch (every running sequence decodes one token per step)",
            );
        }
        for (p, v) in [
            ("batching.step-base-ms", b.step_base_ms),
            ("batching.step-per-sqrt-seq-ms", b.step_per_sqrt_seq_ms),
            (
                "batching.step-per-prefill-token-ms",
                b.step_per_prefill_token_ms,
            ),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return err(p, "must be a finite number ≥ 0");
            }
        }
        let k = &self.kv_cache;
        if k.block_tokens == 0 {
            return err("kv-cache.block-tokens", "must be at least 1");
        }
        if let Some(o) = &k.offload {
            if !(o.load_ms_per_token >= 0.0 && o.load_ms_per_token.is_finite()) {
                return err(
                    "kv-cache.offload.load-ms-per-token",
                    "must be a finite number ≥ 0",
                );
            }
            if o.bytes_per_token == 0 {
                return err("kv-cache.offload.bytes-per-token", "must be at least 1");
            }
        }
        let f = &self.faults;
        let rates = [
            ("faults.fail.rate", f.fail.as_ref().map(|x| x.rate)),
            ("faults.cut.rate", f.cut.as_ref().map(|x| x.rate)),
            ("faults.stall.rate", f.stall.as_ref().map(|x| x.rate)),
            (
                "faults.slow-loris.rate",
                f.slow_loris.as_ref().map(|x| x.rate),
            ),
        ];
        for (p, r) in rates {
            if let Some(r) = r {
                if !(0.0..=1.0).contains(&r) {
                    return err(p, "must be between 0 and 1");
                }
            }
        }
        if let Some(x) = &f.fail {
            if !(400..=599).contains(&x.status) {
                return err(
                    "faults.fail.status",
                    "must be an HTTP error status (400–599)",
                );
            }
        }
        if let Some(s) = f.exit_after_secs {
            if !(s >= 0.0 && s.is_finite()) {
                return err("faults.exit-after-secs", "must be a finite number ≥ 0");
            }
        }
        Ok(())
    }
}

/// Whether request number `n` (0-based arrival order) is hit by a fault of this rate:
/// exactly ⌊N·rate⌋ of the first N requests are, evenly spread.
pub fn selected(rate: f64, n: u64) -> bool {
    ((n + 1) as f64 * rate).floor() > (n as f64 * rate).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_selection_is_exact_and_spread() {
        let hits: Vec<u64> = (0..10).filter(|&n| selected(0.3, n)).collect();
        assert_eq!(hits, [3, 6, 9]);
        assert_eq!((0..1000).filter(|&n| selected(1.0, n)).count(), 1000);
        assert_eq!((0..1000).filter(|&n| selected(0.0, n)).count(), 0);
        assert_eq!((0..1000).filter(|&n| selected(0.25, n)).count(), 250);
    }

    #[test]
    fn presets_are_valid() {
        for p in PRESETS {
            SimConfig::preset(p).unwrap().validate().unwrap();
        }
    }
}
