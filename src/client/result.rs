//! Metrics and the result JSON, as benchmark_serving.py computes and writes them.
//!
//! Every reference key keeps its name (including `request_goodput:` with its colon) and its
//! arithmetic: successful requests only, TPOT over requests with more than one output token,
//! ITL pooled over all gaps, numpy statistics. Our additions live under new keys.

use super::request::Outcome;
use super::stats;
use crate::tokenizer::HfTokenizer;
use serde_json::{json, Map, Value};

/// The four latency metrics, by the names `--percentile-metrics` uses.
pub const METRICS: [(&str, &str, &str); 4] = [
    ("ttft", "TTFT", "Time to First Token"),
    ("tpot", "TPOT", "Time per Output Token (excl. 1st token)"),
    ("itl", "ITL", "Inter-token Latency"),
    ("e2el", "E2EL", "End-to-end Latency"),
];

/// What the user asked to be reported.
#[derive(Debug, Clone)]
pub struct Selection {
    /// `--percentile-metrics` (subset of ttft, tpot, itl, e2el).
    pub metrics: Vec<String>,
    /// `--metric-percentiles`.
    pub percentiles: Vec<f64>,
    /// `--goodput` SLOs in ms, by metric name.
    pub goodput: Vec<(String, f64)>,
}

/// Per-metric samples in seconds, and the totals.
pub struct Metrics {
    pub completed: usize,
    pub failed: usize,
    pub total_input: u64,
    pub total_output: u64,
    /// Output tokens per request (0 for failed ones), the reference's `output_lens`.
    pub output_lens: Vec<u64>,
    pub good_completed: usize,
    pub duration: f64,
    samples: [Vec<f64>; 4],
    queue: Vec<f64>,
}

/// Output tokens of a request: the engine's usage count, else the generated text
/// re-tokenised (after the run, never on the hot path).
fn output_len(o: &Outcome, tok: &HfTokenizer) -> u64 {
    match o.output_tokens {
        Some(n) => n,
        None => tok
            .encode(&o.generated_text)
            .map(|v| v.len() as u64)
            .unwrap_or(0),
    }
}

/// One successful timed request's figures, as the confidence intervals need them
/// (`crate::report::confidence`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestSample {
    /// Time to first token (s).
    pub ttft_s: f64,
    /// End-to-end latency (s).
    pub e2el_s: f64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

impl RequestSample {
    /// Time per output token after the first (s); `None` for one-token outputs (the client
    /// leaves those out of its TPOT statistics).
    pub fn tpot_s(&self) -> Option<f64> {
        (self.output_tokens > 1)
            .then(|| (self.e2el_s - self.ttft_s) / (self.output_tokens - 1) as f64)
    }
}

/// The successful requests of `outcomes` with their output lengths from `m` (the same
/// order as the reference's `output_lens`).
pub fn request_samples(outcomes: &[Outcome], m: &Metrics) -> Vec<RequestSample> {
    outcomes
        .iter()
        .zip(&m.output_lens)
        .filter(|(o, _)| o.success)
        .map(|(o, &n)| RequestSample {
            ttft_s: o.ttft,
            e2el_s: o.latency,
            input_tokens: u64::from(o.prompt_len),
            output_tokens: n,
        })
        .collect()
}

/// `calculate_metrics` of the reference.
pub fn compute(outcomes: &[Outcome], duration: f64, tok: &HfTokenizer, sel: &Selection) -> Metrics {
    let mut m = Metrics {
        completed: 0,
        failed: 0,
        total_input: 0,
        total_output: 0,
        output_lens: Vec::with_capacity(outcomes.len()),
        good_completed: 0,
        duration,
        samples: Default::default(),
        queue: vec![],
    };
    let mut all_tpots = vec![];
    let [ttfts, tpots, itls, e2els] = &mut m.samples;
    for o in outcomes {
        if !o.success {
            m.output_lens.push(0);
            m.failed += 1;
            continue;
        }
        let n = output_len(o, tok);
        m.output_lens.push(n);
        m.total_input += u64::from(o.prompt_len);
        let mut tpot = 0.0;
        if n > 1 {
            tpot = (o.latency - o.ttft) / (n - 1) as f64;
            tpots.push(tpot);
        }
        all_tpots.push(tpot);
        itls.extend_from_slice(&o.itl);
        ttfts.push(o.ttft);
        e2els.push(o.latency);
        m.queue.push(o.queue);
        m.completed += 1;
    }
    m.total_output = m.output_lens.iter().sum();
    if !sel.goodput.is_empty() {
        let mut cols: Vec<(&[f64], f64)> = vec![];
        for (name, slo_ms) in &sel.goodput {
            let col: &[f64] = match name.as_str() {
                "ttft" => ttfts,
                "tpot" => &all_tpots,
                "e2el" => e2els,
                _ => continue,
            };
            cols.push((col, slo_ms / 1000.0));
        }
        m.good_completed = (0..m.completed)
            .filter(|&i| cols.iter().all(|(c, slo)| *slo >= c[i]))
            .count();
    }
    m
}

impl Metrics {
    fn samples(&self, metric: &str) -> &[f64] {
        let i = METRICS
            .iter()
            .position(|(n, _, _)| *n == metric)
            .expect("known metric");
        &self.samples[i]
    }

    pub fn request_throughput(&self) -> f64 {
        self.completed as f64 / self.duration
    }
    pub fn output_throughput(&self) -> f64 {
        self.total_output as f64 / self.duration
    }
    pub fn total_token_throughput(&self) -> f64 {
        (self.total_input + self.total_output) as f64 / self.duration
    }
}

/// `99` for 99.0, `99.9` for 99.9: how the reference names percentile keys.
pub fn percentile_word(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

/// Setup fields written before the metrics (`date` … `max_concurrency`).
#[derive(Debug, Clone)]
pub struct Header {
    pub date: String,
    pub backend: String,
    pub model_id: String,
    pub tokenizer_id: String,
    pub best_of: u32,
    pub num_prompts: usize,
    /// `--metadata KEY=VALUE` pairs, in order.
    pub metadata: Vec<(String, String)>,
    pub request_rate: f64,
    pub burstiness: f64,
    pub max_concurrency: Option<usize>,
}

/// Our additions to the result, under keys the reference does not use.
#[derive(Debug, Clone)]
pub struct Extras {
    pub seed: u32,
    pub warmups: usize,
    pub warmup_failed: usize,
    /// Wall-clock (Unix seconds) start and end of the timed phase: InferenceX 2026 writes
    /// them as `benchmark_start_time_unix`/`benchmark_end_time_unix` and its power
    /// aggregation needs them; written under the same names in every mode.
    pub window_unix: (f64, f64),
    /// Lay the result out as InferenceX 2026 does: the window keys after `duration`, and
    /// `input_lens`/`output_lens` kept without `--save-detailed`.
    pub inferencex_2026: bool,
}

/// The result JSON in the reference's key order, then our keys. `detailed` adds the
/// per-request lists (`--save-detailed`).
pub fn result_json(
    h: &Header,
    m: &Metrics,
    sel: &Selection,
    outcomes: &[Outcome],
    detailed: bool,
    x: &Extras,
) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("date".into(), json!(h.date));
    r.insert("backend".into(), json!(h.backend));
    r.insert("model_id".into(), json!(h.model_id));
    r.insert("tokenizer_id".into(), json!(h.tokenizer_id));
    r.insert("best_of".into(), json!(h.best_of));
    r.insert("num_prompts".into(), json!(h.num_prompts));
    for (k, v) in &h.metadata {
        r.insert(k.clone(), json!(v));
    }
    r.insert(
        "request_rate".into(),
        if h.request_rate.is_finite() {
            json!(h.request_rate)
        } else {
            json!("inf")
        },
    );
    r.insert("burstiness".into(), json!(h.burstiness));
    r.insert("max_concurrency".into(), json!(h.max_concurrency));
    r.insert("duration".into(), json!(m.duration));
    let window = |r: &mut Map<String, Value>| {
        r.insert("benchmark_start_time_unix".into(), json!(x.window_unix.0));
        r.insert("benchmark_end_time_unix".into(), json!(x.window_unix.1));
    };
    if x.inferencex_2026 {
        window(&mut r);
    }
    r.insert("completed".into(), json!(m.completed));
    r.insert("total_input_tokens".into(), json!(m.total_input));
    r.insert("total_output_tokens".into(), json!(m.total_output));
    r.insert("request_throughput".into(), json!(m.request_throughput()));
    r.insert(
        "request_goodput:".into(),
        if sel.goodput.is_empty() {
            Value::Null
        } else {
            json!(m.good_completed as f64 / m.duration)
        },
    );
    r.insert("output_throughput".into(), json!(m.output_throughput()));
    r.insert(
        "total_token_throughput".into(),
        json!(m.total_token_throughput()),
    );
    if detailed || x.inferencex_2026 {
        r.insert(
            "input_lens".into(),
            json!(outcomes.iter().map(|o| o.prompt_len).collect::<Vec<_>>()),
        );
        r.insert("output_lens".into(), json!(m.output_lens));
    }
    if detailed {
        r.insert(
            "ttfts".into(),
            json!(outcomes.iter().map(|o| o.ttft).collect::<Vec<_>>()),
        );
        r.insert(
            "itls".into(),
            json!(outcomes.iter().map(|o| &o.itl).collect::<Vec<_>>()),
        );
        r.insert(
            "generated_texts".into(),
            json!(outcomes
                .iter()
                .map(|o| &o.generated_text)
                .collect::<Vec<_>>()),
        );
        r.insert(
            "errors".into(),
            json!(outcomes.iter().map(|o| &o.error).collect::<Vec<_>>()),
        );
    }
    for (name, _, _) in METRICS {
        if !sel.metrics.iter().any(|s| s == name) {
            continue;
        }
        let s = m.samples(name);
        let sorted = stats::sorted(s);
        r.insert(format!("mean_{name}_ms"), json!(stats::mean(s) * 1000.0));
        r.insert(
            format!("median_{name}_ms"),
            json!(stats::median_sorted(&sorted) * 1000.0),
        );
        r.insert(format!("std_{name}_ms"), json!(stats::std(s) * 1000.0));
        for p in &sel.percentiles {
            r.insert(
                format!("p{}_{name}_ms", percentile_word(*p)),
                json!(stats::percentile_sorted(&sorted, *p) * 1000.0),
            );
        }
    }
    // Additions.
    if !x.inferencex_2026 {
        window(&mut r);
    }
    r.insert("failed".into(), json!(m.failed));
    let q = stats::sorted(&m.queue);
    r.insert(
        "mean_queue_ms".into(),
        json!(stats::mean(&m.queue) * 1000.0),
    );
    r.insert(
        "median_queue_ms".into(),
        json!(stats::median_sorted(&q) * 1000.0),
    );
    r.insert(
        "p99_queue_ms".into(),
        json!(stats::percentile_sorted(&q, 99.0) * 1000.0),
    );
    let mut samples: Vec<&str> = vec![];
    for o in outcomes.iter().filter(|o| !o.success) {
        if samples.len() >= 10 {
            break;
        }
        if !samples.contains(&o.error.as_str()) {
            samples.push(&o.error);
        }
    }
    r.insert("error_samples".into(), json!(samples));
    r.insert("seed".into(), json!(x.seed));
    r.insert("num_warmups".into(), json!(x.warmups));
    r.insert("warmup_failed".into(), json!(x.warmup_failed));
    r.insert(
        "client".into(),
        json!({"name": "infmax", "version": env!("CARGO_PKG_VERSION")}),
    );
    r
}

/// The table the reference prints at the end of a run.
pub fn summary_table(m: &Metrics, sel: &Selection) -> String {
    let mut s = String::new();
    let line = |s: &mut String, k: &str, v: String| s.push_str(&format!("{k:<40} {v:<10}\n"));
    s.push_str(&format!("{:=^50}\n", " Serving Benchmark Result "));
    line(&mut s, "Successful requests:", m.completed.to_string());
    if m.failed > 0 {
        line(&mut s, "Failed requests:", m.failed.to_string());
    }
    line(
        &mut s,
        "Benchmark duration (s):",
        format!("{:.2}", m.duration),
    );
    line(&mut s, "Total input tokens:", m.total_input.to_string());
    line(
        &mut s,
        "Total generated tokens:",
        m.total_output.to_string(),
    );
    line(
        &mut s,
        "Request throughput (req/s):",
        format!("{:.2}", m.request_throughput()),
    );
    if !sel.goodput.is_empty() {
        line(
            &mut s,
            "Request goodput (req/s):",
            format!("{:.2}", m.good_completed as f64 / m.duration),
        );
    }
    line(
        &mut s,
        "Output token throughput (tok/s):",
        format!("{:.2}", m.output_throughput()),
    );
    line(
        &mut s,
        "Total Token throughput (tok/s):",
        format!("{:.2}", m.total_token_throughput()),
    );
    for (name, label, header) in METRICS {
        if !sel.metrics.iter().any(|x| x == name) {
            continue;
        }
        let v = m.samples(name);
        let sorted = stats::sorted(v);
        s.push_str(&format!("{header:-^50}\n"));
        line(
            &mut s,
            &format!("Mean {label} (ms):"),
            format!("{:.2}", stats::mean(v) * 1000.0),
        );
        line(
            &mut s,
            &format!("Median {label} (ms):"),
            format!("{:.2}", stats::median_sorted(&sorted) * 1000.0),
        );
        for p in &sel.percentiles {
            line(
                &mut s,
                &format!("P{} {label} (ms):", percentile_word(*p)),
                format!("{:.2}", stats::percentile_sorted(&sorted, *p) * 1000.0),
            );
        }
    }
    s.push_str(&"=".repeat(50));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ttft: f64, itl: Vec<f64>, out: u64, prompt: u32, latency: f64) -> Outcome {
        Outcome {
            success: true,
            ttft,
            itl,
            latency,
            output_tokens: Some(out),
            prompt_len: prompt,
            ..Outcome::default()
        }
    }

    /// Hand-computed: two successes, one failure, 2 s run.
    #[test]
    fn reference_arithmetic() {
        let tok = HfTokenizer::embedded();
        let outcomes = vec![
            ok(0.1, vec![0.02, 0.03, 0.05], 4, 10, 0.2),
            ok(0.3, vec![], 1, 20, 0.3),
            Outcome {
                prompt_len: 30,
                error: "HTTP 500".into(),
                ..Outcome::default()
            },
        ];
        let sel = Selection {
            metrics: vec!["ttft".into(), "tpot".into(), "itl".into(), "e2el".into()],
            percentiles: vec![50.0, 99.9],
            goodput: vec![("ttft".into(), 200.0), ("tpot".into(), 40.0)],
        };
        let m = compute(&outcomes, 2.0, &tok, &sel);
        assert_eq!(
            (m.completed, m.failed, m.total_input, m.total_output),
            (2, 1, 30, 5)
        );
        assert_eq!(m.output_lens, [4, 1, 0]);
        // tpot only for the 4-token request: (0.2 - 0.1) / 3.
        assert_eq!(m.samples("tpot"), [(0.2 - 0.1) / 3.0]);
        // goodput: request 1 ttft 100 ms <= 200, tpot 33.3 ms <= 40: good; request 2 ttft
        // 300 ms > 200: not good.
        assert_eq!(m.good_completed, 1);
        let h = Header {
            date: "20260101-000000".into(),
            backend: "vllm".into(),
            model_id: "m".into(),
            tokenizer_id: "t".into(),
            best_of: 1,
            num_prompts: 3,
            metadata: vec![],
            request_rate: f64::INFINITY,
            burstiness: 1.0,
            max_concurrency: Some(2),
        };
        let mut x = Extras {
            seed: 0,
            warmups: 0,
            warmup_failed: 0,
            window_unix: (1_767_225_600.25, 1_767_225_602.25),
            inferencex_2026: false,
        };
        let r = result_json(&h, &m, &sel, &outcomes, false, &x);
        assert_eq!(r["benchmark_start_time_unix"], 1_767_225_600.25);
        assert_eq!(r["benchmark_end_time_unix"], 1_767_225_602.25);
        assert!(!r.contains_key("input_lens"));
        // InferenceX 2026: the window right after `duration`, the length lists always.
        x.inferencex_2026 = true;
        let r26 = result_json(&h, &m, &sel, &outcomes, false, &x);
        let keys: Vec<&String> = r26.keys().skip(9).take(4).collect();
        assert_eq!(
            keys,
            [
                "duration",
                "benchmark_start_time_unix",
                "benchmark_end_time_unix",
                "completed"
            ]
        );
        assert!(r26.contains_key("input_lens") && r26.contains_key("output_lens"));
        assert!(!r26.contains_key("ttfts"));
        assert_eq!(r["request_rate"], "inf");
        assert_eq!(r["request_goodput:"], 0.5);
        assert_eq!(r["request_throughput"], 1.0);
        assert_eq!(r["output_throughput"], 2.5);
        assert_eq!(r["total_token_throughput"], 17.5);
        assert_eq!(r["mean_ttft_ms"], 200.0);
        assert_eq!(r["median_e2el_ms"], 250.0);
        assert!(r.contains_key("p99.9_itl_ms") && r.contains_key("p50_ttft_ms"));
        assert_eq!(r["failed"], 1);
        assert_eq!(r["error_samples"], json!(["HTTP 500"]));
        let keys: Vec<&String> = r.keys().take(17).collect();
        assert_eq!(
            keys,
            [
                "date",
                "backend",
                "model_id",
                "tokenizer_id",
                "best_of",
                "num_prompts",
                "request_rate",
                "burstiness",
                "max_concurrency",
                "duration",
                "completed",
                "total_input_tokens",
                "total_output_tokens",
                "request_throughput",
                "request_goodput:",
                "output_throughput",
                "total_token_throughput"
            ]
        );
    }

    #[test]
    fn percentile_words() {
        assert_eq!(percentile_word(99.0), "99");
        assert_eq!(percentile_word(99.9), "99.9");
        assert_eq!(percentile_word(90.0), "90");
    }
}
