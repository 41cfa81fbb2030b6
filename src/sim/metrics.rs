//! The engine's Prometheus `/metrics`, in vLLM's or SGLang's metric names, so a client that
//! scrapes a real engine (AIPerf's server-metrics collector, InferenceX's aggregation
//! adapters) reads the simulated one unchanged.
//!
//! Counters and gauges are atomics updated where the work happens (once per admitted
//! request, once per finished request, once per scheduler step), never per token; the text
//! is rendered only when scraped. Counters are exposed as `prometheus_client` does: a
//! `# TYPE <family> counter` line and a `<family>_total` sample.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Whose metric names `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    /// `vllm:*` (vLLM v1: prefix-cache queries/hits, prompt tokens by source, KV usage).
    #[default]
    Vllm,
    /// `sglang:*` (cached tokens by cache source, token usage, HiCache host pool).
    Sglang,
}

impl Flavor {
    /// The name used in configs and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Vllm => "vllm",
            Flavor::Sglang => "sglang",
        }
    }
}

/// Everything `/metrics` reports. Token counts are in tokens, times in nanoseconds.
#[derive(Default)]
pub struct Metrics {
    /// Prompt tokens of admitted requests (cached ones included, as both engines count).
    pub prompt_tokens: AtomicU64,
    /// Tokens generated (added when a response ends).
    pub generation_tokens: AtomicU64,
    /// Prompt tokens found on the GPU level.
    pub gpu_hit_tokens: AtomicU64,
    /// Prompt tokens found on the CPU offload level.
    pub cpu_hit_tokens: AtomicU64,
    /// Prompt tokens prefilled.
    pub computed_tokens: AtomicU64,
    /// Requests that ended with EOS.
    pub finished_stop: AtomicU64,
    /// Requests that ended at their token limit.
    pub finished_length: AtomicU64,
    /// Requests the client dropped before their end.
    pub aborted: AtomicU64,
    /// Requests admitted and not finished.
    pub running: AtomicU64,
    /// Requests queued for admission.
    pub waiting: AtomicU64,
    /// KV tokens held by running requests (prompt + output so far).
    pub kv_used_tokens: AtomicU64,
    /// Tokens on the CPU offload level.
    pub cpu_used_tokens: AtomicU64,
    /// Bytes written GPU → CPU (write-through of computed blocks).
    pub offload_bytes_gpu_to_cpu: AtomicU64,
    /// Bytes loaded CPU → GPU (CPU hits).
    pub offload_bytes_cpu_to_gpu: AtomicU64,
    /// Time spent writing GPU → CPU.
    pub offload_ns_gpu_to_cpu: AtomicU64,
    /// Time spent loading CPU → GPU.
    pub offload_ns_cpu_to_gpu: AtomicU64,
}

/// The fixed facts `/metrics` reports beside the counters.
#[derive(Debug, Clone)]
pub struct Static {
    /// Names the metrics follow.
    pub flavor: Flavor,
    /// Served model name (the `model_name` label).
    pub model: String,
    /// GPU KV pool in tokens (0 = not modelled).
    pub gpu_tokens: u64,
    /// CPU offload pool in tokens, if there is one.
    pub cpu_tokens: Option<u64>,
}

impl Metrics {
    /// Add `v` to a counter.
    #[inline]
    pub fn add(c: &AtomicU64, v: u64) {
        c.fetch_add(v, Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, s: &Static) -> String {
        let g = |c: &AtomicU64| c.load(Relaxed);
        let mut out = String::with_capacity(4096);
        let model = escape(&s.model);
        let kv_frac = if s.gpu_tokens > 0 {
            (g(&self.kv_used_tokens) as f64 / s.gpu_tokens as f64).min(1.0)
        } else {
            0.0
        };
        let secs = |c: &AtomicU64| g(c) as f64 / 1e9;
        match s.flavor {
            Flavor::Vllm => {
                let l = format!("engine=\"0\",model_name=\"{model}\"");
                let mut m = Writer {
                    out: &mut out,
                    labels: &l,
                };
                m.gauge(
                    "vllm:num_requests_running",
                    "Number of requests in model execution batches.",
                    g(&self.running) as f64,
                );
                m.gauge(
                    "vllm:num_requests_waiting",
                    "Number of requests waiting to be processed.",
                    g(&self.waiting) as f64,
                );
                m.gauge(
                    "vllm:kv_cache_usage_perc",
                    "KV-cache usage. 1 means 100 percent usage.",
                    kv_frac,
                );
                let prompt = g(&self.prompt_tokens);
                m.counter(
                    "vllm:prefix_cache_queries",
                    "Prefix cache queries, in terms of number of queried tokens.",
                    &[("", prompt as f64)],
                );
                m.counter(
                    "vllm:prefix_cache_hits",
                    "Prefix cache hits, in terms of number of cached tokens.",
                    &[("", g(&self.gpu_hit_tokens) as f64)],
                );
                if s.cpu_tokens.is_some() {
                    m.counter(
                        "vllm:external_prefix_cache_queries",
                        "External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.",
                        &[("", prompt as f64)],
                    );
                    m.counter(
                        "vllm:external_prefix_cache_hits",
                        "External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.",
                        &[("", g(&self.cpu_hit_tokens) as f64)],
                    );
                }
                m.counter(
                    "vllm:prompt_tokens",
                    "Number of prefill tokens processed.",
                    &[("", prompt as f64)],
                );
                m.counter(
                    "vllm:prompt_tokens_by_source",
                    "Number of prompt tokens by source.",
                    &[
                        ("source=\"local_compute\"", g(&self.computed_tokens) as f64),
                        ("source=\"local_cache_hit\"", g(&self.gpu_hit_tokens) as f64),
                        (
                            "source=\"external_kv_transfer\"",
                            g(&self.cpu_hit_tokens) as f64,
                        ),
                    ],
                );
                m.counter(
                    "vllm:generation_tokens",
                    "Number of generation tokens processed.",
                    &[("", g(&self.generation_tokens) as f64)],
                );
                m.counter(
                    "vllm:request_success",
                    "Count of successfully processed requests.",
                    &[
                        ("finished_reason=\"stop\"", g(&self.finished_stop) as f64),
                        (
                            "finished_reason=\"length\"",
                            g(&self.finished_length) as f64,
                        ),
                        ("finished_reason=\"abort\"", g(&self.aborted) as f64),
                    ],
                );
                if let Some(cpu) = s.cpu_tokens {
                    let cpu_frac = if cpu > 0 {
                        g(&self.cpu_used_tokens) as f64 / cpu as f64
                    } else {
                        0.0
                    };
                    m.gauge(
                        "vllm:cpu_kv_cache_usage_perc",
                        "CPU KV-cache (offload tier) usage. 1 means 100 percent usage.",
                        cpu_frac,
                    );
                    for (name, help, v) in [
                        (
                            "vllm:kv_offload_bytes_gpu_to_cpu",
                            "Bytes offloaded from GPU to CPU.",
                            g(&self.offload_bytes_gpu_to_cpu) as f64,
                        ),
                        (
                            "vllm:kv_offload_bytes_cpu_to_gpu",
                            "Bytes loaded from CPU to GPU.",
                            g(&self.offload_bytes_cpu_to_gpu) as f64,
                        ),
                        (
                            "vllm:kv_offload_time_gpu_to_cpu",
                            "Seconds spent offloading from GPU to CPU.",
                            secs(&self.offload_ns_gpu_to_cpu),
                        ),
                        (
                            "vllm:kv_offload_time_cpu_to_gpu",
                            "Seconds spent loading from CPU to GPU.",
                            secs(&self.offload_ns_cpu_to_gpu),
                        ),
                    ] {
                        m.counter(name, help, &[("", v)]);
                    }
                }
            }
            Flavor::Sglang => {
                let l = format!("model_name=\"{model}\"");
                let mut m = Writer {
                    out: &mut out,
                    labels: &l,
                };
                let prompt = g(&self.prompt_tokens);
                let cached = g(&self.gpu_hit_tokens) + g(&self.cpu_hit_tokens);
                m.counter(
                    "sglang:prompt_tokens",
                    "Number of prefill tokens processed.",
                    &[("", prompt as f64)],
                );
                m.counter(
                    "sglang:generation_tokens",
                    "Number of generation tokens processed.",
                    &[("", g(&self.generation_tokens) as f64)],
                );
                m.counter(
                    "sglang:cached_tokens",
                    "Number of cached prompt tokens.",
                    &[
                        ("cache_source=\"device\"", g(&self.gpu_hit_tokens) as f64),
                        ("cache_source=\"host\"", g(&self.cpu_hit_tokens) as f64),
                    ],
                );
                m.counter(
                    "sglang:realtime_tokens",
                    "Total number of tokens processed. mode: prefill_compute, prefill_cache, decode.",
                    &[
                        ("mode=\"prefill_compute\"", g(&self.computed_tokens) as f64),
                        ("mode=\"prefill_cache\"", cached as f64),
                        ("mode=\"decode\"", g(&self.generation_tokens) as f64),
                    ],
                );
                m.counter(
                    "sglang:num_requests",
                    "Number of requests processed.",
                    &[(
                        "",
                        (g(&self.finished_stop) + g(&self.finished_length)) as f64,
                    )],
                );
                m.counter(
                    "sglang:num_aborted_requests",
                    "Number of requests aborted.",
                    &[("", g(&self.aborted) as f64)],
                );
                m.gauge(
                    "sglang:num_running_reqs",
                    "The number of running requests.",
                    g(&self.running) as f64,
                );
                m.gauge(
                    "sglang:num_queue_reqs",
                    "The number of requests in the waiting queue.",
                    g(&self.waiting) as f64,
                );
                m.gauge(
                    "sglang:num_used_tokens",
                    "The number of used tokens.",
                    g(&self.kv_used_tokens).min(s.gpu_tokens) as f64,
                );
                m.gauge("sglang:token_usage", "The token usage.", kv_frac);
                m.gauge(
                    "sglang:max_total_num_tokens",
                    "Maximum total number of tokens in the KV cache pool.",
                    s.gpu_tokens as f64,
                );
                m.gauge(
                    "sglang:cache_hit_rate",
                    "The prefix cache hit rate.",
                    if prompt > 0 {
                        cached as f64 / prompt as f64
                    } else {
                        0.0
                    },
                );
                if let Some(cpu) = s.cpu_tokens {
                    m.gauge(
                        "sglang:hicache_host_used_tokens",
                        "Tokens held in the HiCache host memory pool.",
                        g(&self.cpu_used_tokens) as f64,
                    );
                    m.gauge(
                        "sglang:hicache_host_total_tokens",
                        "Capacity of the HiCache host memory pool in tokens.",
                        cpu as f64,
                    );
                }
            }
        }
        out
    }
}

/// Appends metric families with the common labels.
struct Writer<'a> {
    out: &'a mut String,
    labels: &'a str,
}

impl Writer<'_> {
    fn head(&mut self, name: &str, help: &str, ty: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {ty}");
    }

    fn gauge(&mut self, name: &str, help: &str, v: f64) {
        self.head(name, help, "gauge");
        let _ = writeln!(self.out, "{name}{{{}}} {}", self.labels, num(v));
    }

    /// A counter family with one sample per extra label set ("" = common labels only).
    fn counter(&mut self, name: &str, help: &str, samples: &[(&str, f64)]) {
        self.head(name, help, "counter");
        for (extra, v) in samples {
            let sep = if extra.is_empty() { "" } else { "," };
            let _ = writeln!(
                self.out,
                "{name}_total{{{}{sep}{extra}}} {}",
                self.labels,
                num(*v)
            );
        }
    }
}

/// A sample value as `prometheus_client` prints it (floats, `1.0` for integers).
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// A label value escaped for the text format.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_flavors_render_counters_with_total_and_gauges() {
        let m = Metrics::default();
        Metrics::add(&m.prompt_tokens, 1000);
        Metrics::add(&m.gpu_hit_tokens, 640);
        Metrics::add(&m.cpu_hit_tokens, 128);
        Metrics::add(&m.computed_tokens, 232);
        let mut s = Static {
            flavor: Flavor::Vllm,
            model: "m\"x".into(),
            gpu_tokens: 1000,
            cpu_tokens: Some(10_000),
        };
        let v = m.render(&s);
        assert!(v.contains("# TYPE vllm:prefix_cache_hits counter\n"));
        assert!(
            v.contains("vllm:prefix_cache_hits_total{engine=\"0\",model_name=\"m\\\"x\"} 640.0\n")
        );
        assert!(v.contains("source=\"local_compute\"} 232.0"));
        assert!(v.contains("vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\\\"x\"} 0.0"));
        s.flavor = Flavor::Sglang;
        let t = m.render(&s);
        assert!(t.contains(
            "sglang:cached_tokens_total{model_name=\"m\\\"x\",cache_source=\"host\"} 128.0"
        ));
        assert!(t.contains("sglang:hicache_host_total_tokens{model_name=\"m\\\"x\"} 10000.0"));
        assert!(!t.contains("vllm:"));
    }
}
