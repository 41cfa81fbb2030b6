//! The agentic (AgentX) aggregate: InferenceX's `process_agentic_result` (the "v3" agg JSON
//! its dashboard ingests), reimplemented natively and held to the reference's bytes.
//!
//! # Contract with the replay client (its artifacts directory)
//! The trace-replay load client writes AIPerf-shaped files; this module reads exactly
//! these fields and nothing else:
//! * `profile_export.jsonl` — one JSON object per request, warmup included:
//!   - `metadata`: `conversation_id` (`<trace id>` or `<trace id>::sa:<agent>` /
//!     `::fa:`/`::wg:`/`::aux:` children), `turn_index` (int, the turn within that
//!     conversation), `x_correlation_id`, `request_start_ns`, `request_ack_ns`,
//!     `request_end_ns` (epoch ns ints), `benchmark_phase` (`"warmup"` | `"profiling"`),
//!     `was_cancelled` (bool), `worker_id`;
//!   - `metrics.<name>` = `{"value": v, "unit": u}` for `time_to_first_token`,
//!     `request_latency`, `inter_token_latency`, `full_response_inter_token_latency` (ms)
//!     and `input_sequence_length`, `output_sequence_length` (tokens, ints); a metric the
//!     request has no value for is left out;
//!   - `error`: `null`, or `{"type": <category>, "code": <HTTP status or null>,
//!     "message": <text>}` (the category is `type`, else `code`, else the message's first
//!     line before `:`).
//! * `profile_export_aiperf.json` — `request_count.avg`, `error_request_count.avg`,
//!   `completed_request_count.avg`, `theoretical_prefix_cache_hit` `{sum, count, avg,
//!   unit: "%"}` (hit blocks, total blocks, percent), and `metadata` `{scenario,
//!   submission_valid, submission_invalid_reasons, dataset {source_type, loader,
//!   hf_dataset_name, hf_split, num_dataset_entries}}` (the `dataset` object is copied into
//!   the aggregate as is).
//! * `server_metrics_export.json` — written by [`crate::telemetry::server_metrics`]:
//!   `metrics.<family>.series[] {endpoint_url, labels, stats, timeslices}`, profiling
//!   window only. Missing means "no server metrics" (a warning in the aggregate).
//!
//! These shapes are those of InferenceX's own tests (`_make_record` in
//! `test_process_agentic_result.py`: it also carries `session_num` and
//! `cancellation_time_ns`, which nothing reads) and of the AIPerf fork's docs.
//!
//! # What is reproduced, and the deliberate differences
//! Everything `process_agentic_result.py` at `843c6254f` computes: the record filter and
//! error categories, `stats_for` (linear-interpolation percentiles, population std computed
//! exactly as CPython's `statistics` does — see [`pystats`]), the eight latency blocks,
//! 1 s QPS windows, throughput and per-GPU throughput, token distributions including the
//! recorded output lengths, the theoretical cache hit rate, the server-metrics adapters
//! (dynamo-vllm, atom, sglang, vllm, in that detection order) and the GPU KV pool parsed
//! from server logs, rounding to 5 decimals, and the key order. The run's shape comes from
//! the same environment variables the reference reads ([`RunShape::from_env`]), so a job
//! passes one environment to both.
//!
//! Two inputs the reference finds by itself are passed in instead: the expected output
//! lengths (the reference reads whichever `cc-traces-weka*` snapshot in the HF cache is
//! newest; the caller passes the corpus it actually replayed, see [`ExpectedOutputs`]) and
//! the server log texts (the reference globs `server.log` and `watchtower-*.out`).
//! InferenceX's optional power patch (`aggregate_power.py`) is a separate step and not
//! part of this aggregate.

pub mod gate;
pub mod pystats;
pub mod server;
pub mod summary;

use indexmap::IndexMap;
use pystats::{mean, mean_ints, percentile, pstdev, round5, MeanOfInts};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Why an aggregate could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum AgenticAggError {
    /// An artifact could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An artifact is not the JSON it should be.
    #[error("{path}:{line}: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The run environment is inconsistent (the reference's `SystemExit` messages).
    #[error("{0}")]
    Env(String),
    /// Server metrics from an engine no adapter knows.
    #[error("{0}")]
    UnknownBackend(String),
}

/// Expected (recorded) output length of a request, by the record's trace id (its
/// `conversation_id` before any `::`) and its `turn_index`.
///
/// The reference looks the turn index up among the trace's **top-level** `n`/`s`
/// requests only, also for subagent conversations (whose turn indices count their own
/// requests); this quirk is reproduced by the map implementation below, which holds,
/// per trace id, the `out` (or `output_length`) of its top-level `n`/`s` requests in order.
pub trait ExpectedOutputs {
    /// The recorded output length, if the trace and turn are known.
    fn expected_output(&self, trace_id: &str, turn_index: usize) -> Option<i64>;
}

impl ExpectedOutputs for HashMap<String, Vec<i64>> {
    fn expected_output(&self, trace_id: &str, turn_index: usize) -> Option<i64> {
        self.get(trace_id)?.get(turn_index).copied()
    }
}

/// No corpus at hand: `tokens.output_expected` stays `{}` (as when the reference finds
/// no HF cache).
pub struct NoExpectedOutputs;

impl ExpectedOutputs for NoExpectedOutputs {
    fn expected_output(&self, _: &str, _: usize) -> Option<i64> {
        None
    }
}

/// `request_accounting`: what happened to every record line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accounting {
    /// Non-blank lines.
    pub records_total: u64,
    /// Profiling records without an error (the ones measured).
    pub records_profiled: u64,
    /// `records_total − records_profiled`.
    pub records_dropped_total: u64,
    /// Records whose phase is present and not `profiling`.
    pub records_warmup_dropped: u64,
    /// Records with a truthy `error` (warmup ones included).
    pub records_error_dropped: u64,
    /// Error count per category, in first-seen order.
    pub error_categories: IndexMap<String, u64>,
}

impl Accounting {
    fn to_json(&self) -> Value {
        json!({
            "records_total": self.records_total,
            "records_profiled": self.records_profiled,
            "records_dropped_total": self.records_dropped_total,
            "records_warmup_dropped": self.records_warmup_dropped,
            "records_error_dropped": self.records_error_dropped,
            "error_categories": self.error_categories,
        })
    }
}

/// Read `profile_export.jsonl`: the kept (profiling, error-free) records and the accounting.
pub fn load_records(path: &Path) -> Result<(Vec<Value>, Accounting), AgenticAggError> {
    let io = |source| AgenticAggError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut records = Vec::new();
    let mut acc = Accounting::default();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let obj: Value = crate::pyjson::loads(line).map_err(|e| AgenticAggError::Json {
            path: path.to_path_buf(),
            line: i + 1,
            message: e.to_string(),
        })?;
        acc.records_total += 1;
        let phase = obj.get("metadata").and_then(|m| m.get("benchmark_phase"));
        let is_warmup = phase.is_some_and(|p| !p.is_null() && p != "profiling");
        let error = obj.get("error").filter(|e| truthy(e));
        if is_warmup {
            acc.records_warmup_dropped += 1;
        }
        if let Some(e) = error {
            acc.records_error_dropped += 1;
            *acc.error_categories.entry(error_category(e)).or_insert(0) += 1;
        }
        if error.is_some() || is_warmup {
            continue;
        }
        records.push(obj);
    }
    acc.records_profiled = records.len() as u64;
    acc.records_dropped_total = acc.records_total - acc.records_profiled;
    Ok((records, acc))
}

/// The reference's `_error_category`.
pub fn error_category(error: &Value) -> String {
    let message = if let Value::Object(m) = error {
        for key in ["type", "error_type", "code", "class", "status"] {
            match m.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.is_empty() => {}
                Some(v) => return py_str(v),
            }
        }
        m.get("message")
            .filter(|v| truthy(v))
            .or_else(|| m.get("error"))
            .cloned()
    } else {
        Some(error.clone())
    };
    let Some(message) = message.filter(truthy) else {
        return "unknown".into();
    };
    let text = py_str(&message);
    let first = py_splitlines(text.trim()).into_iter().next().unwrap_or("");
    let head = first.split(':').next().unwrap_or("");
    let head = if head.is_empty() { "unknown" } else { head };
    head.chars().take(120).collect()
}

/// Python truthiness of a JSON value.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python's `str()` of a JSON-decoded value (strings, numbers, booleans, None).
pub(crate) fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) if n.is_f64() => crate::pyjson::py_float_repr(n.as_f64().unwrap_or(0.0)),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Python's `str.splitlines()` line boundaries.
pub(crate) fn py_splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let brk = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if brk {
            out.push(&s[start..i]);
            let mut next = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = it.peek() {
                    it.next();
                    next = j + 1;
                }
            }
            start = next;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Python's `float(value)` for a JSON value, `None` where it would raise.
pub(crate) fn to_float(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => {
            let t = s.trim().replace('_', "");
            match t.to_ascii_lowercase().trim_start_matches(['+', '-']) {
                "inf" | "infinity" => Some(if t.starts_with('-') {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }),
                "nan" => Some(f64::NAN),
                _ => t.parse().ok(),
            }
        }
        _ => None,
    }
}

/// Python's `int(value)` for a JSON value, `None` where it would raise.
pub(crate) fn to_int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|x| x.is_finite())
                .map(|x| x.trunc() as i64)
        }),
        Value::Bool(b) => Some(*b as i64),
        Value::String(s) => s.trim().replace('_', "").parse().ok(),
        _ => None,
    }
}

/// `record["metrics"][key]["value"]` (or the bare value), as the reference reads it.
fn metric_value<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    let m = record.get("metrics")?.get(key)?;
    match m {
        Value::Object(o) => o.get("value"),
        other => Some(other),
    }
}

fn metadata_int(record: &Value, key: &str) -> Option<i64> {
    let v = record.get("metadata")?.get(key)?;
    if !truthy(v) {
        return None;
    }
    to_int(Some(v))
}

fn floats(records: &[Value], key: &str) -> Vec<f64> {
    records
        .iter()
        .filter_map(|r| to_float(metric_value(r, key)))
        .collect()
}

fn ints(records: &[Value], key: &str) -> Vec<i64> {
    records
        .iter()
        .filter_map(|r| to_int(metric_value(r, key)))
        .collect()
}

fn ms_to_s(v: Vec<f64>) -> Vec<f64> {
    v.into_iter()
        .filter(|x| x.is_finite() && *x > 0.0)
        .map(|x| x / 1000.0)
        .collect()
}

fn f(x: f64) -> Value {
    json!(x)
}

/// `stats_for(prefix, values)` as an ordered map with the prefixed keys.
fn stats_for(prefix: &str, values: &[f64]) -> Map<String, Value> {
    let mut m = Map::new();
    if values.is_empty() {
        return m;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    m.insert(format!("mean_{prefix}"), f(mean(values)));
    for p in [50, 75, 90, 95] {
        m.insert(format!("p{p}_{prefix}"), f(percentile(&sorted, p)));
    }
    let std = if values.len() > 1 {
        pstdev(values)
    } else {
        0.0
    };
    m.insert(format!("std_{prefix}"), f(std));
    m
}

/// `_distribution(prefix, ints)`: like `stats_for`, but the mean of ints may be an int.
fn distribution(prefix: &str, values: &[i64]) -> Map<String, Value> {
    let mut m = Map::new();
    if values.is_empty() {
        return m;
    }
    let fl: Vec<f64> = values.iter().map(|&v| v as f64).collect();
    let mut sorted = fl.clone();
    sorted.sort_by(f64::total_cmp);
    m.insert(
        format!("mean_{prefix}"),
        match mean_ints(values) {
            MeanOfInts::Int(i) => json!(i),
            MeanOfInts::Float(x) => f(x),
        },
    );
    for p in [50, 75, 90, 95] {
        m.insert(format!("p{p}_{prefix}"), f(percentile(&sorted, p)));
    }
    let std = if values.len() > 1 { pstdev(&fl) } else { 0.0 };
    m.insert(format!("std_{prefix}"), f(std));
    m
}

/// `_nest_stats(prefix, flat)`: keys ending in `_prefix`, with the suffix cut.
fn nest(prefix: &str, flat: &Map<String, Value>) -> Value {
    let suffix = format!("_{prefix}");
    Value::Object(
        flat.iter()
            .filter_map(|(k, v)| {
                k.strip_suffix(suffix.as_str())
                    .map(|s| (s.to_string(), v.clone()))
            })
            .collect(),
    )
}

/// `_interactivity_stats`: reciprocals of the matching latency statistic, std over
/// per-request reciprocals.
fn interactivity(
    itl_stats: &Map<String, Value>,
    itls: &[f64],
    itl_prefix: &str,
    intvty_prefix: &str,
) -> Map<String, Value> {
    let mut out = Map::new();
    for key in ["mean", "p50", "p75", "p90", "p95"] {
        if let Some(v) = itl_stats
            .get(&format!("{key}_{itl_prefix}"))
            .and_then(Value::as_f64)
        {
            if v > 0.0 {
                out.insert(format!("{key}_{intvty_prefix}"), f(1.0 / v));
            }
        }
    }
    let per_request: Vec<f64> = itls.iter().filter(|v| **v > 0.0).map(|v| 1.0 / v).collect();
    if !per_request.is_empty() {
        let std = if per_request.len() > 1 {
            pstdev(&per_request)
        } else {
            0.0
        };
        out.insert(format!("std_{intvty_prefix}"), f(std));
    }
    out
}

fn latency(records: &[Value]) -> Value {
    let ttfts = ms_to_s(floats(records, "time_to_first_token"));
    let e2els = ms_to_s(floats(records, "request_latency"));
    let itls = ms_to_s(floats(records, "inter_token_latency"));
    let fr_itls = ms_to_s(floats(records, "full_response_inter_token_latency"));
    let ttft = stats_for("ttft", &ttfts);
    let e2el = stats_for("e2el", &e2els);
    let itl = stats_for("itl", &itls);
    let tpot = stats_for("tpot", &itls);
    let intvty = interactivity(&itl, &itls, "itl", "intvty");
    let mut per_osl = Vec::new();
    for r in records {
        let e = to_float(metric_value(r, "request_latency"));
        let o = to_float(metric_value(r, "output_sequence_length"));
        if let (Some(e), Some(o)) = (e, o) {
            if e.is_finite() && o.is_finite() && e > 0.0 && o > 0.0 {
                per_osl.push(e / 1000.0 / o);
            }
        }
    }
    let ratio = stats_for("e2el_per_osl", &per_osl);
    let e2e_norm = interactivity(&ratio, &per_osl, "e2el_per_osl", "e2e_norm_intvty");
    let fr_itl = stats_for("full_response_itl", &fr_itls);
    let fr_intvty = interactivity(
        &fr_itl,
        &fr_itls,
        "full_response_itl",
        "full_response_intvty",
    );
    json!({
        "ttft": nest("ttft", &ttft),
        "e2el": nest("e2el", &e2el),
        "itl": nest("itl", &itl),
        "tpot": nest("tpot", &tpot),
        "intvty": nest("intvty", &intvty),
        "e2e_norm_intvty": nest("e2e_norm_intvty", &e2e_norm),
        "full_response_itl": nest("full_response_itl", &fr_itl),
        "full_response_intvty": nest("full_response_intvty", &fr_intvty),
    })
}

fn qps(records: &[Value]) -> Value {
    let ends_ns: Vec<i64> = records
        .iter()
        .filter_map(|r| metadata_int(r, "request_end_ns"))
        .collect();
    if ends_ns.len() < 2 {
        return json!({});
    }
    let mut ends: Vec<f64> = ends_ns.iter().map(|&t| t as f64 / 1e9).collect();
    ends.sort_by(f64::total_cmp);
    let last = ends[ends.len() - 1];
    let duration = last - ends[0];
    if duration <= 0.0 {
        return json!({});
    }
    let window = 1.0;
    let mut values = Vec::new();
    let mut current = ends[0];
    while current + window <= last {
        let lo = ends.partition_point(|&e| e < current);
        let hi = ends.partition_point(|&e| e < current + window);
        values.push((hi - lo) as f64 / window);
        current += window;
    }
    let mut flat = Map::new();
    if values.is_empty() {
        flat.insert("mean_qps".into(), f(ends.len() as f64 / duration));
    } else {
        flat = stats_for("qps", &values);
    }
    let mut out = Map::new();
    out.insert("window_seconds".into(), f(window));
    out.insert("samples".into(), json!(values.len()));
    if let Value::Object(n) = nest("qps", &flat) {
        out.extend(n);
    }
    Value::Object(out)
}

fn tokens(records: &[Value], expected: &dyn ExpectedOutputs) -> Value {
    let input = distribution("input_tokens", &ints(records, "input_sequence_length"));
    let output = distribution(
        "output_tokens_actual",
        &ints(records, "output_sequence_length"),
    );
    let mut exp = Vec::new();
    for r in records {
        let md = r.get("metadata");
        let conv = md
            .and_then(|m| m.get("conversation_id"))
            .filter(|v| truthy(v));
        let turn = md.and_then(|m| m.get("turn_index")).and_then(Value::as_i64);
        let (Some(conv), Some(turn)) = (conv, turn) else {
            continue;
        };
        let conv = py_str(conv);
        let trace = conv.split("::").next().unwrap_or("");
        if turn < 0 {
            continue;
        }
        if let Some(out) = expected.expected_output(trace, turn as usize) {
            exp.push(out);
        }
    }
    let expected = distribution("output_tokens_expected", &exp);
    json!({
        "input": nest("input_tokens", &input),
        "output_actual": nest("output_tokens_actual", &output),
        "output_expected": nest("output_tokens_expected", &expected),
    })
}

/// Throughput block and the flat total/output/input rates (for per-GPU numbers).
fn throughput(records: &[Value]) -> (Value, Option<[f64; 3]>) {
    let input: i128 = ints(records, "input_sequence_length")
        .iter()
        .map(|&v| v as i128)
        .sum();
    let output: i128 = ints(records, "output_sequence_length")
        .iter()
        .map(|&v| v as i128)
        .sum();
    let starts: Vec<i64> = records
        .iter()
        .filter_map(|r| metadata_int(r, "request_start_ns"))
        .collect();
    let ends: Vec<i64> = records
        .iter()
        .filter_map(|r| metadata_int(r, "request_end_ns"))
        .collect();
    let (Some(&s), Some(&e)) = (starts.iter().min(), ends.iter().max()) else {
        return (json!({}), None);
    };
    let duration = (e as i128 - s as i128) as f64 / 1e9;
    if duration <= 0.0 {
        return (json!({}), None);
    }
    let inp = input as f64 / duration;
    let out = output as f64 / duration;
    let tot = (input + output) as f64 / duration;
    (
        json!({
            "input": {"tokens_per_second": inp},
            "output": {"tokens_per_second": out},
            "total": {"tokens_per_second": tot},
            "duration_seconds": duration,
            "per_gpu": {},
        }),
        Some([tot, out, inp]),
    )
}

/// `_aiperf_percent_metric_as_rate(aggregate, "theoretical_prefix_cache_hit")`.
fn theoretical_cache_hit_rate(aggregate: &Value) -> Value {
    let Some(Value::Object(m)) = aggregate.get("theoretical_prefix_cache_hit") else {
        return Value::Null;
    };
    let (sum, count) = (to_float(m.get("sum")), to_float(m.get("count")));
    if let (Some(s), Some(c)) = (sum, count) {
        if c > 0.0 {
            return f(s / c);
        }
    }
    let Some(avg) = to_float(m.get("avg")) else {
        return Value::Null;
    };
    let unit = m.get("unit").map(py_str).unwrap_or_default();
    f(if unit.trim() == "%" { avg / 100.0 } else { avg })
}

/// The run's identity and GPU shape, from the environment the reference reads.
#[derive(Debug, Clone)]
pub struct RunShape {
    /// `hw` … `allocated_cpu_dram_gb`, in the reference's order.
    head: Map<String, Value>,
    /// `pp`/`dcp_size`/`pcp_size`, or the multinode prefill/decode fields.
    shape_fields: Map<String, Value>,
    /// `ROUTER_METADATA`, when set.
    router: Option<Value>,
    /// `KV_P2P_TRANSFER`, when set.
    kv_p2p_transfer: Option<String>,
    /// Denominator of the per-GPU throughput.
    num_gpus: i64,
    /// `FRAMEWORK`, for adapter detection.
    framework: String,
}

impl RunShape {
    /// Read the shape as `process_agentic_result.py` does from its environment
    /// (`RUNNER_TYPE`, `CONC`, `TP`, `KV_OFFLOADING`, …), with its validation messages.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<RunShape, AgenticAggError> {
        let env_err = |m: String| AgenticAggError::Env(m);
        let raw = |k: &str| get(k).filter(|v| !v.is_empty());
        let env_int = |k: &str, d: i64| -> Result<i64, AgenticAggError> {
            match raw(k) {
                None => Ok(d),
                Some(v) => v.trim().replace('_', "").parse().map_err(|_| {
                    env_err(format!(
                        "invalid literal for int() with base 10: {v:?} ({k})"
                    ))
                }),
            }
        };
        let env_bool = |k: &str| {
            raw(k).is_some_and(|v| matches!(v.to_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        };
        let string = |k: &str, d: &str| get(k).unwrap_or_else(|| d.to_string());

        // _validate_kv_offload_env
        let kv_offloading = raw("KV_OFFLOADING").ok_or_else(|| {
            env_err("Missing required environment variable: KV_OFFLOADING".into())
        })?;
        let backend_name = string("KV_OFFLOAD_BACKEND", "");
        let backend = match get("KV_OFFLOAD_BACKEND_METADATA").as_deref() {
            None | Some("") | Some("null") => None,
            Some(raw_md) => {
                let md: Value = serde_json::from_str(raw_md).map_err(|_| {
                    env_err("KV_OFFLOAD_BACKEND_METADATA must contain valid JSON".into())
                })?;
                let Value::Object(o) = &md else {
                    return Err(env_err(
                        "KV_OFFLOAD_BACKEND_METADATA may contain only 'name' and 'version'".into(),
                    ));
                };
                if o.keys().any(|k| k != "name" && k != "version") {
                    return Err(env_err(
                        "KV_OFFLOAD_BACKEND_METADATA may contain only 'name' and 'version'".into(),
                    ));
                }
                if !o.contains_key("name") {
                    return Err(env_err(
                        "KV_OFFLOAD_BACKEND_METADATA must contain 'name' and optional 'version'"
                            .into(),
                    ));
                }
                if !o
                    .values()
                    .all(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                {
                    return Err(env_err(
                        "KV_OFFLOAD_BACKEND_METADATA values must be non-empty strings".into(),
                    ));
                }
                Some(md)
            }
        };
        if kv_offloading == "none" {
            if !backend_name.is_empty() || backend.is_some() {
                return Err(env_err(
                    "KV_OFFLOAD_BACKEND must be empty when KV_OFFLOADING=none".into(),
                ));
            }
        } else {
            if backend_name.is_empty() || backend_name == "none" || backend.is_none() {
                return Err(env_err(
                    "KV_OFFLOAD_BACKEND is required when KV_OFFLOADING is enabled".into(),
                ));
            }
            if backend
                .as_ref()
                .and_then(|b| b.get("name"))
                .and_then(Value::as_str)
                != Some(backend_name.as_str())
            {
                return Err(env_err(
                    "KV_OFFLOAD_BACKEND must match KV_OFFLOAD_BACKEND_METADATA.name".into(),
                ));
            }
        }

        // _gpu_shape
        let is_multinode = env_bool("IS_MULTINODE");
        let mut tp = env_int("TP", 1)?;
        let mut ep = env_int("EP_SIZE", 1)?;
        let mut dp_attention = string("DP_ATTENTION", "false");
        let mut shape = Map::new();
        let num_gpus;
        if !is_multinode {
            let pp = env_int("PP_SIZE", 1)?;
            let dcp = env_int("DCP_SIZE", 1)?;
            let pcp = env_int("PCP_SIZE", 1)?;
            if pp <= 0 || dcp <= 0 || pcp <= 0 {
                return Err(env_err(
                    "PP_SIZE, DCP_SIZE, and PCP_SIZE must be positive integers.".into(),
                ));
            }
            shape.insert("pp".into(), json!(pp));
            shape.insert("dcp_size".into(), json!(dcp));
            shape.insert("pcp_size".into(), json!(pcp));
            num_gpus = tp * pp * pcp;
        } else {
            let p_nw = env_int("PREFILL_NUM_WORKERS", 0)?;
            let p_tp = env_int("PREFILL_TP", 0)?;
            let p_pp = env_int("PREFILL_PP_SIZE", 1)?;
            let p_dcp = env_int("PREFILL_DCP_SIZE", 1)?;
            let p_pcp = env_int("PREFILL_PCP_SIZE", 1)?;
            let p_ep = env_int("PREFILL_EP", 1)?;
            let p_dpa = string("PREFILL_DP_ATTN", "false");
            let d_nw = env_int("DECODE_NUM_WORKERS", 0)?;
            let mut d_tp = env_int("DECODE_TP", 0)?;
            let mut d_pp = env_int("DECODE_PP_SIZE", 1)?;
            let mut d_dcp = env_int("DECODE_DCP_SIZE", 1)?;
            let mut d_pcp = env_int("DECODE_PCP_SIZE", 1)?;
            let mut d_ep = env_int("DECODE_EP", 1)?;
            let d_dpa = string("DECODE_DP_ATTN", "false");
            if [p_pp, p_dcp, p_pcp, d_pp, d_dcp, d_pcp]
                .iter()
                .any(|v| *v <= 0)
            {
                return Err(env_err(
                    "Multinode PP, DCP, and PCP sizes must be positive integers.".into(),
                ));
            }
            let p_hw = string("PREFILL_HARDWARE", "");
            let d_hw = string("DECODE_HARDWARE", "");
            if p_hw.is_empty() != d_hw.is_empty() {
                return Err(env_err(
                    "PREFILL_HARDWARE and DECODE_HARDWARE must be specified together.".into(),
                ));
            }
            let n_prefill = p_nw * p_tp * p_pp * p_pcp;
            let n_decode = d_nw * d_tp * d_pp * d_pcp;
            num_gpus = n_prefill + n_decode;
            if n_decode <= 0 {
                d_tp = 0;
                d_ep = 0;
                d_pp = 1;
                d_dcp = 1;
                d_pcp = 1;
            }
            tp = p_tp + d_tp;
            ep = p_ep.max(d_ep);
            dp_attention = if env_bool("PREFILL_DP_ATTN") || env_bool("DECODE_DP_ATTN") {
                "true".into()
            } else {
                "false".into()
            };
            for (k, v) in [
                ("prefill_num_workers", json!(p_nw)),
                ("prefill_tp", json!(p_tp)),
                ("prefill_pp", json!(p_pp)),
                ("prefill_dcp_size", json!(p_dcp)),
                ("prefill_pcp_size", json!(p_pcp)),
                ("prefill_ep", json!(p_ep)),
                ("prefill_dp_attention", json!(p_dpa)),
                ("num_prefill_gpu", json!(n_prefill)),
                ("decode_num_workers", json!(d_nw)),
                ("decode_tp", json!(d_tp)),
                ("decode_pp", json!(d_pp)),
                ("decode_dcp_size", json!(d_dcp)),
                ("decode_pcp_size", json!(d_pcp)),
                ("decode_ep", json!(d_ep)),
                ("decode_dp_attention", json!(d_dpa)),
                ("num_decode_gpu", json!(n_decode)),
            ] {
                shape.insert(k.into(), v);
            }
            if !p_hw.is_empty() {
                shape.insert("prefill_hw".into(), json!(p_hw));
                shape.insert("decode_hw".into(), json!(d_hw));
            }
        }
        let framework = string("FRAMEWORK", "");
        let conc = match get("CONC") {
            None => 0,
            Some(v) => v.trim().parse().map_err(|_| {
                env_err(format!(
                    "invalid literal for int() with base 10: {v:?} (CONC)"
                ))
            })?,
        };
        let mut head = Map::new();
        for (k, v) in [
            ("hw", json!(string("RUNNER_TYPE", ""))),
            ("conc", json!(conc)),
            ("image", json!(string("IMAGE", ""))),
            (
                "recipe_fingerprint",
                json!(string("RECIPE_FINGERPRINT", "")),
            ),
            ("model", json!(string("MODEL", ""))),
            ("infmax_model_prefix", json!(string("MODEL_PREFIX", ""))),
            ("framework", json!(framework)),
            ("precision", json!(string("PRECISION", ""))),
            ("spec_decoding", json!(string("SPEC_DECODING", "none"))),
            ("disagg", json!(env_bool("DISAGG"))),
            ("scenario_type", json!("agentic-coding")),
            ("is_multinode", json!(is_multinode)),
            ("tp", json!(tp)),
            ("ep", json!(ep)),
            ("dp_attention", json!(dp_attention)),
            ("kv_offloading", json!(kv_offloading)),
            ("kv_offload_backend", backend.unwrap_or(Value::Null)),
            (
                "allocated_cpu_dram_gb",
                json!(env_int("TOTAL_CPU_DRAM_GB", 0)?),
            ),
        ] {
            head.insert(k.into(), v);
        }
        let router = match get("ROUTER_METADATA").as_deref() {
            None | Some("") | Some("null") => None,
            Some(r) => {
                let md: Value = serde_json::from_str(r)
                    .map_err(|_| env_err("ROUTER_METADATA must contain valid JSON".into()))?;
                let ok_keys = md.as_object().is_some_and(|o| {
                    o.len() == 2 && o.contains_key("name") && o.contains_key("version")
                });
                if !ok_keys {
                    return Err(env_err(
                        "ROUTER_METADATA must contain exactly 'name' and 'version'".into(),
                    ));
                }
                if !md.as_object().is_some_and(|o| {
                    o.values()
                        .all(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                }) {
                    return Err(env_err(
                        "ROUTER_METADATA name and version must be non-empty strings".into(),
                    ));
                }
                Some(md)
            }
        };
        Ok(RunShape {
            head,
            shape_fields: shape,
            router,
            kv_p2p_transfer: raw("KV_P2P_TRANSFER"),
            num_gpus,
            framework,
        })
    }

    /// GPUs the per-GPU throughput divides by.
    pub fn num_gpus(&self) -> i64 {
        self.num_gpus
    }
}

/// Compose the aggregate (unrounded) from the three artifacts: `build_agg`.
pub fn build_agg(
    records: &[Value],
    accounting: &Accounting,
    aggregate: &Value,
    server_metrics: &Value,
    shape: &RunShape,
    expected: &dyn ExpectedOutputs,
    server_logs: &[String],
) -> Result<Value, AgenticAggError> {
    let mut agg = shape.head.clone();
    agg.insert("num_requests_total".into(), json!(accounting.records_total));
    agg.insert("num_requests_successful".into(), json!(records.len()));
    agg.insert("request_accounting".into(), accounting.to_json());
    agg.extend(shape.shape_fields.clone());
    if let Some(r) = &shape.router {
        agg.insert("router".into(), r.clone());
    }
    if let Some(k) = &shape.kv_p2p_transfer {
        agg.insert("kv_p2p_transfer".into(), json!(k));
    }
    if let Some(ds @ Value::Object(_)) = aggregate.get("metadata").and_then(|m| m.get("dataset")) {
        agg.insert("dataset".into(), ds.clone());
    }

    let (mut tput, flat) = throughput(records);
    let request = {
        let mut m = Map::new();
        m.insert("qps".into(), qps(records));
        m.insert("latency".into(), latency(records));
        m.insert("tokens".into(), tokens(records, expected));
        if let (Some([tot, out, inp]), true) = (flat, shape.num_gpus > 0) {
            let n = shape.num_gpus as f64;
            tput["per_gpu"] = json!({
                "total_tput_tps": tot / n,
                "output_tput_tps": out / n,
                "input_tput_tps": inp / n,
            });
        }
        m.insert("throughput".into(), tput);
        m.insert(
            "cache".into(),
            json!({"theoretical_cache_hit_rate": theoretical_cache_hit_rate(aggregate)}),
        );
        Value::Object(m)
    };
    let (server, warnings) =
        server::compute_server_metrics(server_metrics, &shape.framework, records, server_logs)?;
    let pool = server["kv_cache"]["gpu_total_tokens"].clone();
    agg.insert("request_metrics".into(), request);
    agg.insert("server_metrics".into(), server);
    agg.insert("kv_cache_pool_tokens".into(), pool);
    if !warnings.is_empty() {
        agg.insert("warnings".into(), json!(warnings));
    }
    Ok(Value::Object(agg))
}

/// `round_floats`: every finite float to 5 decimals; whole results ≥ 1 become ints.
pub fn round_floats(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(0.0);
            if !x.is_finite() {
                return Value::Number(n);
            }
            let r = round5(x);
            if r.abs() >= 1.0 && r.fract() == 0.0 && r.abs() < 9.2e18 {
                json!(r as i64)
            } else {
                json!(r)
            }
        }
        Value::Array(a) => Value::Array(a.into_iter().map(round_floats).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, round_floats(v))).collect())
        }
        other => other,
    }
}

/// The artifacts directory as the reference resolves it under a result dir: the
/// `aiperf_artifacts/` holding `profile_export.jsonl`, else its first child that does.
pub fn resolve_artifact_dir(result_dir: &Path) -> PathBuf {
    let base = result_dir.join("aiperf_artifacts");
    if base.join("profile_export.jsonl").is_file() {
        return base;
    }
    if let Ok(rd) = std::fs::read_dir(&base) {
        let mut kids: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        kids.sort();
        if let Some(k) = kids
            .into_iter()
            .find(|k| k.is_dir() && k.join("profile_export.jsonl").is_file())
        {
            return k;
        }
    }
    base
}

/// Agentic aggregates (JSON files whose `scenario_type` is `agentic-coding`) under `dirs`,
/// recursively, skipping AIPerf's own `aiperf_artifacts/`; sorted by path.
pub fn find_aggregates(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, Value)>, AgenticAggError> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Value)>) -> Result<(), AgenticAggError> {
        let io = |source| AgenticAggError::Io {
            path: dir.to_path_buf(),
            source,
        };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let p = entry.map_err(io)?.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "aiperf_artifacts") {
                    walk(&p, out)?;
                }
            } else if p.extension().is_some_and(|e| e == "json") {
                let Ok(text) = std::fs::read_to_string(&p) else {
                    continue;
                };
                if !text.contains("\"agentic-coding\"") {
                    continue;
                }
                if let Ok(v) = crate::pyjson::loads(&text) {
                    if v.get("scenario_type").and_then(Value::as_str) == Some("agentic-coding")
                        && v.get("request_metrics").is_some()
                    {
                        out.push((p, v));
                    }
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for d in dirs {
        walk(d, &mut out)?;
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A server log's head as the reference reads it: up to 64 MiB, invalid UTF-8 replaced,
/// NULs removed.
pub fn read_server_log_head(path: &Path) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    file.take(64 * 1024 * 1024).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).replace('\0', ""))
}

/// Read the artifacts in `artifact_dir` and return the rounded aggregate and its JSON text
/// (formatted as the reference's `json.dump(agg, f, indent=2)`).
pub fn process_artifacts(
    artifact_dir: &Path,
    shape: &RunShape,
    expected: &dyn ExpectedOutputs,
    server_logs: &[String],
) -> Result<(Value, String), AgenticAggError> {
    let (records, accounting) = load_records(&artifact_dir.join("profile_export.jsonl"))?;
    let read_json = |name: &str| -> Result<Value, AgenticAggError> {
        let path = artifact_dir.join(name);
        if !path.exists() {
            return Ok(json!({}));
        }
        let text = std::fs::read_to_string(&path).map_err(|source| AgenticAggError::Io {
            path: path.clone(),
            source,
        })?;
        crate::pyjson::loads(&text).map_err(|e| AgenticAggError::Json {
            path,
            line: e.line,
            message: e.to_string(),
        })
    };
    let aggregate = read_json("profile_export_aiperf.json")?;
    let server_metrics = read_json("server_metrics_export.json")?;
    let agg = round_floats(build_agg(
        &records,
        &accounting,
        &aggregate,
        &server_metrics,
        shape,
        expected,
        server_logs,
    )?);
    let text = crate::pyjson::to_python_json_indent2(&agg);
    Ok((agg, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_categories_like_the_reference() {
        assert_eq!(
            error_category(&json!({"type": "HTTPError", "message": "x"})),
            "HTTPError"
        );
        assert_eq!(error_category(&json!({"type": "", "code": 500})), "500");
        assert_eq!(
            error_category(&json!({"message": "Context length exceeded: 300000 > 262144\nmore"})),
            "Context length exceeded"
        );
        assert_eq!(error_category(&json!({"message": ""})), "unknown");
        assert_eq!(
            error_category(&json!({"error": ": leading colon"})),
            "unknown"
        );
        assert_eq!(error_category(&json!("Timeout: 30s")), "Timeout");
        assert_eq!(error_category(&json!({"status": true})), "True");
    }

    #[test]
    fn rounding_like_round_floats() {
        let v = round_floats(
            json!({"a": 2.000001, "b": 0.123456789, "c": 1, "d": 0.0, "e": [1.5, 3.0]}),
        );
        assert_eq!(
            crate::pyjson::to_python_json(&v),
            r#"{"a": 2, "b": 0.12346, "c": 1, "d": 0.0, "e": [1.5, 3]}"#
        );
    }
}
