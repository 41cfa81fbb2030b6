//! The aggregate's `server_metrics` block: InferenceX's server-metric adapters
//! (`backends/{dynamo_vllm,atom,sglang,vllm}.py`) over AIPerf's `server_metrics_export.json`,
//! and the GPU KV pool size parsed from the engine's log.
//!
//! Detection order is the reference's: dynamo-vllm (framework `dynamo*` or any `dynamo_`
//! metric — so a `dynamo-sglang` run is read by it too), atom, sglang, vllm. Each adapter
//! fills the same fixed key set; what an engine does not report stays `null`.

use super::{py_splitlines, py_str, to_float, to_int, AgenticAggError};
use indexmap::IndexMap;
use regex::Regex;
use serde_json::{json, Map, Value};
use std::sync::LazyLock;

type Metrics = Map<String, Value>;
type Filter<'a> = Option<&'a dyn Fn(&Map<String, Value>) -> bool>;

const TOTAL_FIRST: &[&str] = &["total", "sum", "max", "avg"];
const MAX_FIRST: &[&str] = &["max", "avg", "total"];
const AVG_FIRST: &[&str] = &["avg", "max", "total"];

/// Series of the named metrics, in name then series order.
fn series<'a>(metrics: &'a Metrics, names: &[&str]) -> Vec<&'a Map<String, Value>> {
    let mut out = Vec::new();
    for name in names {
        if let Some(Value::Array(s)) = metrics.get(*name).and_then(|e| e.get("series")) {
            out.extend(s.iter().filter_map(Value::as_object));
        }
    }
    out
}

fn series_stat(s: &Map<String, Value>, keys: &[&str]) -> Option<f64> {
    let Some(Value::Object(stats)) = s.get("stats") else {
        return None;
    };
    keys.iter().find_map(|k| to_float(stats.get(*k)))
}

fn sum_stat(metrics: &Metrics, names: &[&str], keys: &[&str], filter: Filter) -> Option<f64> {
    let mut total = 0.0;
    let mut found = false;
    for s in series(metrics, names) {
        if filter.is_some_and(|f| !f(s)) {
            continue;
        }
        if let Some(v) = series_stat(s, keys) {
            total += v;
            found = true;
        }
    }
    found.then_some(total)
}

#[derive(Clone, Copy)]
enum Combine {
    Max,
    Avg,
}

fn gauge_stat(
    metrics: &Metrics,
    names: &[&str],
    keys: &[&str],
    combine: Combine,
    filter: Filter,
) -> Option<f64> {
    let values: Vec<f64> = series(metrics, names)
        .into_iter()
        .filter(|s| filter.is_none_or(|f| f(s)))
        .filter_map(|s| series_stat(s, keys))
        .collect();
    if values.is_empty() {
        return None;
    }
    Some(match combine {
        Combine::Avg => super::pystats::mean(&values),
        // Python's max(): the first of equal maxima; NaN never replaces a value.
        Combine::Max => values[1..]
            .iter()
            .fold(values[0], |m, &v| if v > m { v } else { m }),
    })
}

fn label_value(s: &Map<String, Value>, key: &str) -> Option<String> {
    match s.get("labels")?.as_object()?.get(key)? {
        Value::Null => None,
        v => Some(py_str(v)),
    }
}

fn sum_by_label(
    metrics: &Metrics,
    names: &[&str],
    label_keys: &[&str],
    keys: &[&str],
) -> IndexMap<String, f64> {
    let mut out: IndexMap<String, f64> = IndexMap::new();
    for s in series(metrics, names) {
        let Some(Value::Object(labels)) = s.get("labels") else {
            continue;
        };
        let Some(label) = label_keys
            .iter()
            .find_map(|k| labels.get(*k).filter(|v| !v.is_null()).map(py_str))
        else {
            continue;
        };
        let Some(v) = series_stat(s, keys) else {
            continue;
        };
        *out.entry(label).or_insert(0.0) += v;
    }
    out
}

fn rate(n: Option<f64>, d: Option<f64>) -> Option<f64> {
    match (n, d) {
        (Some(n), Some(d)) if d > 0.0 => Some(n / d),
        _ => None,
    }
}

fn normalize_fraction(v: Option<f64>) -> Option<f64> {
    v.map(|x| if x > 1.5 { x / 100.0 } else { x })
}

fn counter_int(v: Option<f64>) -> Option<i64> {
    v.map(|x| x.round_ties_even() as i64)
}

fn opt(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |x| json!(x))
}

fn opt_i(v: Option<i64>) -> Value {
    v.map_or(Value::Null, |x| json!(x))
}

fn by_source_json(m: &IndexMap<String, f64>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// `SERVER_CACHE_FLAT_FIELDS`: the adapters' working values.
#[derive(Default)]
struct Flat {
    gpu_hit: Option<f64>,
    cpu_hit: Option<f64>,
    external_hit: Option<f64>,
    overall_hit: Option<f64>,
    gpu_usage: Option<f64>,
    cpu_usage: Option<f64>,
    offload: [Option<f64>; 4],
    bandwidth: [Option<f64>; 2],
    prompt_total: Option<i64>,
    generation_total: Option<i64>,
}

/// `empty_server_metrics(present, metric_count)`.
fn empty(present: bool, count: usize) -> Value {
    json!({
        "present": present,
        "adapter": "none",
        "metric_count": count,
        "cache": {
            "gpu_cache_hit_rate": null,
            "cpu_cache_hit_rate": null,
            "external_cache_hit_rate": null,
            "overall_cache_hit_rate": null,
            "prefix_cache_hits": null,
            "prefix_cache_queries": null,
            "external_prefix_cache_hits": null,
            "external_prefix_cache_queries": null,
            "cached_tokens_by_source": {},
            "frontend_cache_hit_rate": null,
            "router_kv_hit_rate": null,
            "router_shared_cache_hit_rate": null,
            "frontend_cached_tokens": null,
            "frontend_input_tokens": null,
        },
        "kv_cache": {
            "gpu_usage_pct": null,
            "gpu_total_tokens": null,
            "cpu_usage_pct": null,
            "cpu_used_tokens": null,
            "cpu_total_tokens": null,
        },
        "kv_offload": {
            "bytes_gpu_to_cpu": null,
            "bytes_cpu_to_gpu": null,
            "time_gpu_to_cpu": null,
            "time_cpu_to_gpu": null,
            "bandwidth_gpu_to_cpu_bytes_per_second": null,
            "bandwidth_cpu_to_gpu_bytes_per_second": null,
        },
        "tokens": {
            "prompt_total": null,
            "generation_total": null,
            "requests_completed": null,
            "prompt_by_source": {
                "gpu_cache_hit": null,
                "cpu_or_external_cache_hit": null,
                "computed": null,
                "raw": {},
            },
        },
        "sources": [],
    })
}

/// The server-metric adapters, in detection order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Dynamo frontends over vLLM workers (`dynamo_*` metrics or a `dynamo*` framework).
    DynamoVllm,
    /// AMD's ATOM (`atom:`/`atom_` metrics).
    Atom,
    /// SGLang (`sglang:` metrics).
    Sglang,
    /// vLLM (`vllm:` metrics).
    Vllm,
}

impl Backend {
    /// The adapter's name in the aggregate.
    pub fn name(self) -> &'static str {
        match self {
            Backend::DynamoVllm => "dynamo-vllm",
            Backend::Atom => "atom",
            Backend::Sglang => "sglang",
            Backend::Vllm => "vllm",
        }
    }

    /// `detect_backend(metrics, framework)`.
    pub fn detect(metrics: &Metrics, framework: &str) -> Option<Backend> {
        let fw = framework.to_lowercase();
        let any = |p: &[&str]| metrics.keys().any(|k| p.iter().any(|p| k.starts_with(p)));
        let empty = metrics.is_empty();
        if fw.starts_with("dynamo") || any(&["dynamo_"]) {
            Some(Backend::DynamoVllm)
        } else if any(&["atom:", "atom_"]) || (empty && fw == "atom") {
            Some(Backend::Atom)
        } else if any(&["sglang:"]) || (empty && fw == "sglang") {
            Some(Backend::Sglang)
        } else if any(&["vllm:"]) || (empty && fw == "vllm") {
            Some(Backend::Vllm)
        } else {
            None
        }
    }

    fn gpu_kv_capacity(self, logs: &[String]) -> Option<i64> {
        let parse: fn(&str) -> Option<i64> = match self {
            Backend::DynamoVllm | Backend::Vllm => vllm_kv_pool_tokens,
            Backend::Sglang => sglang_kv_pool_tokens,
            Backend::Atom => return None,
        };
        let mut total = 0;
        let mut found = false;
        for log in logs {
            if let Some(v) = parse(log) {
                total += v;
                found = true;
            }
        }
        found.then_some(total)
    }
}

/// `compute_server_metrics`: the nested block and any warnings.
pub fn compute_server_metrics(
    server_metrics: &Value,
    framework: &str,
    records: &[Value],
    server_logs: &[String],
) -> Result<(Value, Vec<String>), AgenticAggError> {
    let empty_map = Map::new();
    let metrics = match server_metrics.get("metrics") {
        Some(Value::Object(m)) => m,
        _ => &empty_map,
    };
    let mut flat = Flat::default();
    let mut warnings = Vec::new();
    let mut nested = empty(!metrics.is_empty(), metrics.len());
    let adapter = Backend::detect(metrics, framework);
    if metrics.is_empty() {
        warnings.push("server_metrics_export.json missing or empty".to_string());
        if let Some(cap) = adapter.and_then(|a| a.gpu_kv_capacity(server_logs)) {
            nested["kv_cache"]["gpu_total_tokens"] = json!(cap);
        }
        let completed = apply_profile_totals(&mut flat, records);
        nested["tokens"]["prompt_total"] = opt_i(flat.prompt_total);
        nested["tokens"]["generation_total"] = opt_i(flat.generation_total);
        nested["tokens"]["requests_completed"] = json!(completed);
        return Ok((nested, warnings));
    }
    let Some(adapter) = adapter else {
        let mut names: Vec<&String> = metrics.keys().collect();
        names.sort();
        let preview: Vec<&str> = names.iter().take(10).map(|s| s.as_str()).collect();
        return Err(AgenticAggError::UnknownBackend(format!(
            "Unsupported agentic server metrics backend; framework='{}', metric_names=[{}]",
            framework.to_lowercase(),
            preview.join(", ")
        )));
    };
    nested["adapter"] = json!(adapter.name());
    match adapter {
        Backend::Vllm => vllm(metrics, &mut flat, &mut nested, false),
        Backend::DynamoVllm => {
            vllm(metrics, &mut flat, &mut nested, true);
            dynamo(metrics, &mut flat, &mut nested);
        }
        Backend::Sglang => sglang(metrics, &mut flat, &mut nested),
        Backend::Atom => atom(metrics, &mut flat, &mut nested),
    }
    if let Some(cap) = adapter.gpu_kv_capacity(server_logs) {
        nested["kv_cache"]["gpu_total_tokens"] = json!(cap);
    }
    let completed = apply_profile_totals(&mut flat, records);
    if nested["tokens"]["prompt_total"].is_null() {
        nested["tokens"]["prompt_total"] = opt_i(flat.prompt_total);
    }
    if nested["tokens"]["generation_total"].is_null() {
        nested["tokens"]["generation_total"] = opt_i(flat.generation_total);
    }
    nested["tokens"]["requests_completed"] = json!(completed);
    Ok((nested, warnings))
}

/// `apply_profile_totals`: token totals from the records where the server gave none.
fn apply_profile_totals(flat: &mut Flat, records: &[Value]) -> usize {
    let sum = |key: &str| {
        let mut total: i64 = 0;
        let mut found = false;
        for r in records {
            let m = r.get("metrics").and_then(|m| m.get(key));
            let v = match m {
                Some(Value::Object(o)) => o.get("value"),
                other => other,
            };
            if let Some(i) = v.filter(|v| !v.is_null()).and_then(|v| to_int(Some(v))) {
                total += i;
                found = true;
            }
        }
        found.then_some(total)
    };
    if flat.prompt_total.is_none() {
        flat.prompt_total = sum("input_sequence_length");
    }
    if flat.generation_total.is_none() {
        flat.generation_total = sum("output_sequence_length");
    }
    records.len()
}

fn first_counter_total(metrics: &Metrics, names: &[&str]) -> Option<f64> {
    names
        .iter()
        .find_map(|n| sum_stat(metrics, &[n], TOTAL_FIRST, None))
}

fn vllm(metrics: &Metrics, flat: &mut Flat, nested: &mut Value, dynamo: bool) {
    let (prompt, generation) = if dynamo {
        (
            first_counter_total(
                metrics,
                &[
                    "dynamo_frontend_input_sequence_tokens",
                    "vllm:prompt_tokens",
                ],
            ),
            first_counter_total(
                metrics,
                &["dynamo_frontend_output_tokens", "vllm:generation_tokens"],
            ),
        )
    } else {
        (
            sum_stat(metrics, &["vllm:prompt_tokens"], TOTAL_FIRST, None),
            sum_stat(metrics, &["vllm:generation_tokens"], TOTAL_FIRST, None),
        )
    };
    flat.prompt_total = counter_int(prompt);
    flat.generation_total = counter_int(generation);
    let hits = sum_stat(metrics, &["vllm:prefix_cache_hits"], TOTAL_FIRST, None);
    let queries = sum_stat(metrics, &["vllm:prefix_cache_queries"], TOTAL_FIRST, None);
    let gpu_rate = rate(hits, queries);
    flat.gpu_hit = gpu_rate;
    let ext_hits = sum_stat(
        metrics,
        &["vllm:external_prefix_cache_hits"],
        TOTAL_FIRST,
        None,
    );
    let ext_queries = sum_stat(
        metrics,
        &["vllm:external_prefix_cache_queries"],
        TOTAL_FIRST,
        None,
    );
    let ext_rate = rate(ext_hits, ext_queries);
    flat.external_hit = ext_rate;
    flat.cpu_hit = ext_rate;
    let by_source = sum_by_label(
        metrics,
        &["vllm:prompt_tokens_by_source"],
        &["source"],
        TOTAL_FIRST,
    );
    if !by_source.is_empty() {
        let local = by_source.get("local_cache_hit").copied();
        let external = by_source.get("external_kv_transfer").copied();
        let compute = by_source.get("local_compute").copied();
        let total: f64 = by_source.values().fold(0.0, |a, v| a + v);
        if total > 0.0 {
            if let Some(l) = local {
                flat.gpu_hit = Some(l / total);
            }
            if let Some(x) = external {
                flat.cpu_hit = Some(x / total);
                flat.external_hit = Some(x / total);
            }
            flat.overall_hit = Some((local.unwrap_or(0.0) + external.unwrap_or(0.0)) / total);
        }
        nested["tokens"]["prompt_by_source"] = json!({
            "gpu_cache_hit": opt(local),
            "cpu_or_external_cache_hit": opt(external),
            "computed": opt(compute),
            "raw": by_source_json(&by_source),
        });
    } else if gpu_rate.is_some() {
        flat.overall_hit = gpu_rate;
    }
    flat.gpu_usage = normalize_fraction(gauge_stat(
        metrics,
        &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
        MAX_FIRST,
        Combine::Max,
        None,
    ));
    flat.cpu_usage = normalize_fraction(gauge_stat(
        metrics,
        &["vllm:cpu_kv_cache_usage_perc"],
        MAX_FIRST,
        Combine::Max,
        None,
    ));
    for (i, name) in [
        "vllm:kv_offload_bytes_gpu_to_cpu",
        "vllm:kv_offload_bytes_cpu_to_gpu",
        "vllm:kv_offload_time_gpu_to_cpu",
        "vllm:kv_offload_time_cpu_to_gpu",
    ]
    .iter()
    .enumerate()
    {
        flat.offload[i] = sum_stat(metrics, &[name], TOTAL_FIRST, None);
    }
    flat.bandwidth = [
        rate(flat.offload[0], flat.offload[2]),
        rate(flat.offload[1], flat.offload[3]),
    ];
    let c = &mut nested["cache"];
    c["gpu_cache_hit_rate"] = opt(flat.gpu_hit);
    c["cpu_cache_hit_rate"] = opt(flat.cpu_hit);
    c["external_cache_hit_rate"] = opt(flat.external_hit);
    c["overall_cache_hit_rate"] = opt(flat.overall_hit);
    c["prefix_cache_hits"] = opt(hits);
    c["prefix_cache_queries"] = opt(queries);
    c["external_prefix_cache_hits"] = opt(ext_hits);
    c["external_prefix_cache_queries"] = opt(ext_queries);
    nested["kv_cache"]["gpu_usage_pct"] = opt(flat.gpu_usage);
    nested["kv_cache"]["cpu_usage_pct"] = opt(flat.cpu_usage);
    let o = &mut nested["kv_offload"];
    o["bytes_gpu_to_cpu"] = opt(flat.offload[0]);
    o["bytes_cpu_to_gpu"] = opt(flat.offload[1]);
    o["time_gpu_to_cpu"] = opt(flat.offload[2]);
    o["time_cpu_to_gpu"] = opt(flat.offload[3]);
    o["bandwidth_gpu_to_cpu_bytes_per_second"] = opt(flat.bandwidth[0]);
    o["bandwidth_cpu_to_gpu_bytes_per_second"] = opt(flat.bandwidth[1]);
    nested["tokens"]["prompt_total"] = opt_i(flat.prompt_total);
    nested["tokens"]["generation_total"] = opt_i(flat.generation_total);
    nested["sources"] = vllm_sources(metrics);
}

fn vllm_sources(metrics: &Metrics) -> Value {
    let mut ids: Vec<String> = Vec::new();
    for name in [
        "vllm:prompt_tokens",
        "vllm:generation_tokens",
        "vllm:prefix_cache_hits",
        "vllm:prefix_cache_queries",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_by_source",
    ] {
        for s in series(metrics, &[name]) {
            ids.push(source_id(s));
        }
    }
    ids.sort();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids.into_iter().filter(|i| !i.is_empty()) {
        let f = |s: &Map<String, Value>| source_id(s) == id;
        let filter: Filter = Some(&f);
        let hits = sum_stat(metrics, &["vllm:prefix_cache_hits"], TOTAL_FIRST, filter);
        let queries = sum_stat(metrics, &["vllm:prefix_cache_queries"], TOTAL_FIRST, filter);
        let usage = normalize_fraction(gauge_stat(
            metrics,
            &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
            MAX_FIRST,
            Combine::Max,
            filter,
        ));
        let role = id.split('|').next().unwrap_or("").to_string();
        out.push(json!({
            "id": id,
            "role": role,
            "prompt_tokens": opt(sum_stat(metrics, &["vllm:prompt_tokens"], TOTAL_FIRST, filter)),
            "generation_tokens": opt(sum_stat(metrics, &["vllm:generation_tokens"], TOTAL_FIRST, filter)),
            "prefix_cache_hit_rate": opt(rate(hits, queries)),
            "gpu_kv_cache_usage_pct": opt(usage),
        }));
    }
    Value::Array(out)
}

fn source_id(s: &Map<String, Value>) -> String {
    let labels = s.get("labels").and_then(Value::as_object);
    let pick = |k: &str| {
        labels
            .and_then(|l| l.get(k))
            .filter(|v| super::truthy(v))
            .map(py_str)
    };
    let component = pick("dynamo_component")
        .or_else(|| pick("component"))
        .unwrap_or_default();
    let role = match component.as_str() {
        "prefill" => "prefill",
        "backend" | "decode" => "decode",
        "frontend" | "router" => "router",
        _ => "combined",
    };
    let mut parts = vec![role.to_string()];
    if let Some(e) = s.get("endpoint_url").filter(|v| super::truthy(v)) {
        parts.push(py_str(e));
    }
    for key in ["worker_id", "dp_rank", "engine"] {
        if let Some(v) = label_value(s, key) {
            parts.push(format!("{key}={v}"));
        }
    }
    parts.join("|")
}

fn dynamo(metrics: &Metrics, flat: &mut Flat, nested: &mut Value) {
    let usage = normalize_fraction(gauge_stat(
        metrics,
        &["dynamo_component_gpu_cache_usage_percent"],
        MAX_FIRST,
        Combine::Max,
        None,
    ));
    if flat.gpu_usage.is_none() {
        flat.gpu_usage = usage;
        nested["kv_cache"]["gpu_usage_pct"] = opt(usage);
    }
    let cached = sum_stat(
        metrics,
        &["dynamo_frontend_cached_tokens"],
        TOTAL_FIRST,
        None,
    );
    let input = sum_stat(
        metrics,
        &["dynamo_frontend_input_sequence_tokens"],
        TOTAL_FIRST,
        None,
    );
    let frontend = rate(cached, input);
    let router_kv = normalize_fraction(gauge_stat(
        metrics,
        &["dynamo_component_router_kv_hit_rate"],
        AVG_FIRST,
        Combine::Avg,
        None,
    ));
    let router_shared = normalize_fraction(gauge_stat(
        metrics,
        &["dynamo_component_router_shared_cache_hit_rate"],
        AVG_FIRST,
        Combine::Avg,
        None,
    ));
    if flat.overall_hit.is_none() {
        // Python's `frontend or router_shared`: a zero rate falls through.
        flat.overall_hit = frontend.filter(|v| *v != 0.0).or(router_shared);
    }
    let c = &mut nested["cache"];
    c["frontend_cache_hit_rate"] = opt(frontend);
    c["router_kv_hit_rate"] = opt(router_kv);
    c["router_shared_cache_hit_rate"] = opt(router_shared);
    c["frontend_cached_tokens"] = opt(cached);
    c["frontend_input_tokens"] = opt(input);
}

fn sglang(metrics: &Metrics, flat: &mut Flat, nested: &mut Value) {
    let prompt = sum_stat(metrics, &["sglang:prompt_tokens"], TOTAL_FIRST, None);
    let generation = sum_stat(metrics, &["sglang:generation_tokens"], TOTAL_FIRST, None);
    flat.prompt_total = counter_int(prompt);
    flat.generation_total = counter_int(generation);
    let cached = sum_by_label(
        metrics,
        &["sglang:cached_tokens"],
        &["cache_source"],
        TOTAL_FIRST,
    );
    let device = cached.get("device").copied();
    let host = cached.get("host").copied();
    let total_cached = (!cached.is_empty()).then(|| cached.values().fold(0.0, |a, v| a + v));
    flat.gpu_hit = rate(device, prompt);
    flat.cpu_hit = rate(host, prompt);
    flat.external_hit = flat.cpu_hit;
    flat.overall_hit = rate(total_cached, prompt);
    if flat.overall_hit.is_none() {
        flat.overall_hit = normalize_fraction(gauge_stat(
            metrics,
            &["sglang:cache_hit_rate"],
            AVG_FIRST,
            Combine::Avg,
            None,
        ));
    }
    flat.gpu_usage = normalize_fraction(gauge_stat(
        metrics,
        &["sglang:token_usage"],
        MAX_FIRST,
        Combine::Max,
        None,
    ));
    let max_total = sum_stat(
        metrics,
        &["sglang:max_total_num_tokens"],
        &["max", "avg", "total", "sum"],
        None,
    );
    let host_used = gauge_stat(
        metrics,
        &["sglang:hicache_host_used_tokens"],
        MAX_FIRST,
        Combine::Max,
        None,
    );
    let host_total = gauge_stat(
        metrics,
        &["sglang:hicache_host_total_tokens"],
        MAX_FIRST,
        Combine::Max,
        None,
    );
    flat.cpu_usage = rate(host_used, host_total);
    let mode =
        |s: &Map<String, Value>| label_value(s, "mode").as_deref() == Some("prefill_compute");
    let prefill_compute = sum_stat(
        metrics,
        &["sglang:realtime_tokens"],
        TOTAL_FIRST,
        Some(&mode),
    );
    let c = &mut nested["cache"];
    c["gpu_cache_hit_rate"] = opt(flat.gpu_hit);
    c["cpu_cache_hit_rate"] = opt(flat.cpu_hit);
    c["external_cache_hit_rate"] = opt(flat.external_hit);
    c["overall_cache_hit_rate"] = opt(flat.overall_hit);
    c["cached_tokens_by_source"] = by_source_json(&cached);
    let k = &mut nested["kv_cache"];
    k["gpu_usage_pct"] = opt(flat.gpu_usage);
    k["gpu_total_tokens"] = opt_i(counter_int(max_total));
    k["cpu_usage_pct"] = opt(flat.cpu_usage);
    k["cpu_used_tokens"] = opt(host_used);
    k["cpu_total_tokens"] = opt(host_total);
    let t = &mut nested["tokens"];
    t["prompt_total"] = opt_i(flat.prompt_total);
    t["generation_total"] = opt_i(flat.generation_total);
    t["prompt_by_source"] = json!({
        "gpu_cache_hit": opt(device),
        "cpu_or_external_cache_hit": opt(host),
        "computed": opt(prefill_compute),
        "raw": by_source_json(&cached),
    });
}

fn atom(metrics: &Metrics, flat: &mut Flat, nested: &mut Value) {
    let counter = |stem: &str| {
        let names = [
            format!("atom:{stem}"),
            format!("atom_{stem}"),
            format!("atom:{stem}_total"),
            format!("atom_{stem}_total"),
        ];
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        sum_stat(metrics, &refs, TOTAL_FIRST, None)
    };
    let prompt = counter("prompt_tokens");
    let generation = counter("generation_tokens");
    flat.prompt_total = counter_int(prompt);
    flat.generation_total = counter_int(generation);
    let cached = counter("prefix_cache_cached_tokens");
    let full = counter("prefix_cache_full_tokens");
    let hit = rate(cached, full);
    let external = counter("lmcache_loaded_tokens");
    let ext_rate = rate(external, full);
    flat.gpu_hit = hit;
    flat.cpu_hit = ext_rate;
    flat.external_hit = ext_rate;
    flat.overall_hit = hit;
    flat.gpu_usage = normalize_fraction(gauge_stat(
        metrics,
        &["atom:kv_cache_usage_ratio", "atom_kv_cache_usage_ratio"],
        MAX_FIRST,
        Combine::Max,
        None,
    ));
    let c = &mut nested["cache"];
    c["gpu_cache_hit_rate"] = opt(hit);
    c["cpu_cache_hit_rate"] = opt(ext_rate);
    c["external_cache_hit_rate"] = opt(ext_rate);
    c["overall_cache_hit_rate"] = opt(hit);
    c["prefix_cache_hits"] = opt(cached);
    c["prefix_cache_queries"] = opt(full);
    c["external_prefix_cache_hits"] = opt(external);
    c["external_prefix_cache_queries"] = opt(full);
    nested["kv_cache"]["gpu_usage_pct"] = opt(flat.gpu_usage);
    nested["tokens"]["prompt_total"] = opt_i(flat.prompt_total);
    nested["tokens"]["generation_total"] = opt_i(flat.generation_total);
}

static VLLM_ENGINE_TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\((?P<tag>EngineCore(?:_DP\d+)?)\s+pid=\d+\)").expect("regex"));
static VLLM_KV_SIZE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"GPU KV cache size:\s*(?P<tokens>[\d,]+)\s*tokens").expect("regex")
});
static SGLANG_RANK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?P<tag>DP\d+\s+TP\d+\s+EP\d+)\b").expect("regex"));
static SGLANG_MAX_TOKENS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bmax_total_num_tokens=(?P<tokens>\d+)\b").expect("regex"));
static SGLANG_DP_SIZE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bdp_size=(?P<dp>\d+)\b").expect("regex"));

/// vLLM's GPU KV pool from its log: `GPU KV cache size: N tokens`, the last per
/// `EngineCore[_DPn]` summed, else all untagged lines summed.
pub fn vllm_kv_pool_tokens(log: &str) -> Option<i64> {
    if log.is_empty() {
        return None;
    }
    let mut per_engine: IndexMap<String, i64> = IndexMap::new();
    let mut bare = 0;
    let mut bare_found = false;
    for line in py_splitlines(log) {
        if !line.contains("GPU KV cache size") {
            continue;
        }
        let Some(m) = VLLM_KV_SIZE.captures(line) else {
            continue;
        };
        let Ok(tokens) = m["tokens"].replace(',', "").parse::<i64>() else {
            continue;
        };
        if tokens <= 0 {
            continue;
        }
        if let Some(t) = VLLM_ENGINE_TAG.captures(line) {
            per_engine.insert(t["tag"].to_string(), tokens);
        } else {
            bare += tokens;
            bare_found = true;
        }
    }
    if !per_engine.is_empty() {
        return Some(per_engine.values().sum());
    }
    bare_found.then_some(bare)
}

/// SGLang's GPU KV pool from its log: `max_total_num_tokens=N` per `DPn TPn EPn` rank,
/// scaled by `dp_size` when only one rank logged it.
pub fn sglang_kv_pool_tokens(log: &str) -> Option<i64> {
    if log.is_empty() {
        return None;
    }
    let dp_size = SGLANG_DP_SIZE
        .captures(log)
        .and_then(|c| c["dp"].parse::<i64>().ok())
        .filter(|d| *d > 0);
    let mut per_rank: IndexMap<String, i64> = IndexMap::new();
    let mut bare = 0;
    let mut bare_count = 0;
    for line in py_splitlines(log) {
        if !line.contains("max_total_num_tokens") {
            continue;
        }
        let Some(m) = SGLANG_MAX_TOKENS.captures(line) else {
            continue;
        };
        let Ok(tokens) = m["tokens"].parse::<i64>() else {
            continue;
        };
        if tokens <= 0 {
            continue;
        }
        if let Some(t) = SGLANG_RANK.captures(line) {
            per_rank.insert(t["tag"].to_string(), tokens);
        } else {
            bare += tokens;
            bare_count += 1;
        }
    }
    if !per_rank.is_empty() {
        if let (Some(dp), 1) = (dp_size, per_rank.len()) {
            if dp > 1 {
                return per_rank.values().next().map(|v| v * dp);
            }
        }
        return Some(per_rank.values().sum());
    }
    if bare_count == 1 {
        if let Some(dp) = dp_size.filter(|d| *d > 1) {
            return Some(bare * dp);
        }
    }
    (bare_count > 0).then_some(bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_pool_from_logs() {
        let v = "(EngineCore_DP0 pid=1) INFO GPU KV cache size: 1,000 tokens\n\
                 (EngineCore_DP1 pid=2) INFO GPU KV cache size: 2,000 tokens\n\
                 (EngineCore_DP0 pid=1) INFO GPU KV cache size: 1,500 tokens\n";
        assert_eq!(vllm_kv_pool_tokens(v), Some(3500));
        assert_eq!(
            vllm_kv_pool_tokens("GPU KV cache size: 42 tokens"),
            Some(42)
        );
        assert_eq!(vllm_kv_pool_tokens("nothing"), None);
        let s =
            "server_args dp_size=4 tp_size=8\n[DP0 TP0 EP0] max_total_num_tokens=1000, chunked\n";
        assert_eq!(sglang_kv_pool_tokens(s), Some(4000));
        assert_eq!(sglang_kv_pool_tokens("max_total_num_tokens=7"), Some(7));
    }
}
