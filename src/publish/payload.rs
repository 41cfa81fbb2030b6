//! Payload fields: the names a sinks file may list and where each value comes from.
//!
//! The bounty's Space takes positional values per conc row — `team, conc, median_e2e_ms,
//! tput_per_gpu, baseline_e2e, baseline_tput, e2e_ratio, tput_ratio`, then accuracy metrics
//! (older rounds: `bits_per_byte, byte_perplexity, word_perplexity`; newer:
//! `interactivity, baseline_interactivity, interactivity_ratio, gsm8k`). A value that does
//! not exist (no baseline point at this conc, no accuracy metric) is an error for that row,
//! never a made-up number: the row stays unsent and the reason is printed.

use crate::report::{AggRow, BaselineRecord};
use indexmap::IndexMap;
use serde_json::{json, Value};

/// Built-in field names (besides `values` keys, `agg.<key>` and `accuracy.<metric>`).
pub const FIELD_NAMES: &[&str] = &[
    "conc",
    "median_e2e_ms",
    "tput_per_gpu",
    "baseline_e2e",
    "baseline_tput",
    "e2e_ratio",
    "tput_ratio",
    "interactivity",
    "baseline_interactivity",
    "interactivity_ratio",
    "gsm8k",
    "bits_per_byte",
    "byte_perplexity",
    "word_perplexity",
    "model",
    "hw",
    "framework",
    "precision",
    "tp",
    "isl",
    "osl",
    "run_id",
    "idempotency_key",
];

fn num(v: Option<f64>, what: &str) -> Result<Value, String> {
    v.map(|v| json!(v))
        .ok_or_else(|| format!("{what} is missing"))
}

/// The value of field `name` for `row`.
pub fn field_value(
    name: &str,
    row: &AggRow,
    values: &IndexMap<String, Value>,
    run_id: &str,
    key: &str,
) -> Result<Value, String> {
    if let Some(v) = values.get(name) {
        return Ok(v.clone());
    }
    let base = match &row.baseline {
        BaselineRecord::Found {
            point,
            tput_per_gpu_ratio,
            median_e2e_ratio,
            interactivity_ratio,
            ..
        } => Ok((
            point,
            *tput_per_gpu_ratio,
            *median_e2e_ratio,
            *interactivity_ratio,
        )),
        BaselineRecord::Missing { reason, .. } => Err(format!("baseline missing: {reason}")),
    };
    let acc = |metric: &str| -> Result<Value, String> {
        let a = row
            .accuracy
            .as_ref()
            .ok_or_else(|| "no accuracy result in the agg row".to_string())?;
        a.metrics
            .get(metric)
            .map(|v| json!(v))
            .ok_or_else(|| format!("accuracy task `{}` has no metric `{metric}`", a.task))
    };
    match name {
        "conc" => Ok(json!(row.conc)),
        "median_e2e_ms" => num(row.median_e2el_ms(), "median E2E latency"),
        "tput_per_gpu" => Ok(json!(row.tput_per_gpu)),
        "baseline_e2e" => base.map(|b| json!(b.0.median_e2e_ms)),
        "baseline_tput" => base.map(|b| json!(b.0.tput_per_gpu)),
        "baseline_interactivity" => base.map(|b| json!(b.0.median_intvty)),
        "tput_ratio" => base.map(|b| json!(b.1)),
        "e2e_ratio" => base.and_then(|b| num(b.2, "median E2E ratio")),
        "interactivity_ratio" => base.and_then(|b| num(b.3, "interactivity ratio")),
        "interactivity" => num(row.median_intvty(), "median interactivity"),
        "gsm8k" => {
            let a = row
                .accuracy
                .as_ref()
                .ok_or_else(|| "no accuracy result in the agg row".to_string())?;
            if a.task != "gsm8k" {
                return Err(format!("accuracy task is `{}`, not gsm8k", a.task));
            }
            a.metrics
                .get("exact_match")
                .or_else(|| a.metrics.values().next())
                .map(|v| json!(v))
                .ok_or_else(|| "gsm8k result has no metrics".into())
        }
        "bits_per_byte" | "byte_perplexity" | "word_perplexity" => acc(name),
        "model" => Ok(json!(row.model)),
        "hw" => Ok(json!(row.hw)),
        "framework" => Ok(json!(row.framework)),
        "precision" => Ok(json!(row.precision)),
        "tp" => Ok(json!(row.tp)),
        "isl" => Ok(json!(row.isl)),
        "osl" => Ok(json!(row.osl)),
        "run_id" => Ok(json!(run_id)),
        "idempotency_key" => Ok(json!(key)),
        _ => {
            if let Some(k) = name.strip_prefix("accuracy.") {
                return acc(k);
            }
            if let Some(k) = name.strip_prefix("agg.") {
                let v = serde_json::to_value(row).expect("agg row serialises");
                return v
                    .get(k)
                    .filter(|v| !v.is_null())
                    .cloned()
                    .ok_or_else(|| format!("agg row has no `{k}`"));
            }
            Err(format!("unknown field `{name}`"))
        }
    }
}

/// The positional `data` array for `fields`, or every field that has no value.
pub fn gradio_data(
    fields: &[String],
    row: &AggRow,
    values: &IndexMap<String, Value>,
    run_id: &str,
    key: &str,
) -> Result<Vec<Value>, String> {
    positional(fields, |f| field_value(f, row, values, run_id, key))
}

/// The values of `fields` in order, or every field that has no value (`value` says why).
fn positional(
    fields: &[String],
    value: impl Fn(&str) -> Result<Value, String>,
) -> Result<Vec<Value>, String> {
    let mut data = Vec::with_capacity(fields.len());
    let mut missing = Vec::new();
    for f in fields {
        match value(f) {
            Ok(v) => data.push(v),
            Err(why) => missing.push(format!("`{f}`: {why}")),
        }
    }
    if missing.is_empty() {
        Ok(data)
    } else {
        Err(missing.join("; "))
    }
}

/// Stat names of a v3 stat block and the flat names the dashboard stores them under (`p50`
/// becomes `median`).
const AGENTIC_STATS: [(&str, &str); 9] = [
    ("mean", "mean"),
    ("p50", "median"),
    ("median", "median"),
    ("p75", "p75"),
    ("p90", "p90"),
    ("p95", "p95"),
    ("p99", "p99"),
    ("p99.9", "p99.9"),
    ("std", "std"),
];

/// Scalars of a v3 aggregate and their flat dashboard names.
const AGENTIC_SCALARS: [(&[&str], &str); 15] = [
    (
        &[
            "request_metrics",
            "throughput",
            "input",
            "tokens_per_second",
        ],
        "input_tput_tps",
    ),
    (
        &[
            "request_metrics",
            "throughput",
            "output",
            "tokens_per_second",
        ],
        "output_tput_tps",
    ),
    (
        &[
            "request_metrics",
            "throughput",
            "total",
            "tokens_per_second",
        ],
        "total_tput_tps",
    ),
    (
        &["request_metrics", "throughput", "duration_seconds"],
        "duration_seconds",
    ),
    (
        &["request_metrics", "throughput", "per_gpu", "total_tput_tps"],
        "tput_per_gpu",
    ),
    (
        &[
            "request_metrics",
            "throughput",
            "per_gpu",
            "output_tput_tps",
        ],
        "output_tput_per_gpu",
    ),
    (
        &["request_metrics", "throughput", "per_gpu", "input_tput_tps"],
        "input_tput_per_gpu",
    ),
    (
        &["request_metrics", "cache", "theoretical_cache_hit_rate"],
        "theoretical_cache_hit_rate",
    ),
    (
        &["server_metrics", "cache", "gpu_cache_hit_rate"],
        "server_gpu_cache_hit_rate",
    ),
    (
        &["server_metrics", "cache", "cpu_cache_hit_rate"],
        "server_cpu_cache_hit_rate",
    ),
    (
        &["server_metrics", "cache", "external_cache_hit_rate"],
        "server_external_cache_hit_rate",
    ),
    (
        &["server_metrics", "kv_cache", "gpu_usage_pct"],
        "gpu_kv_cache_usage_pct",
    ),
    (
        &["server_metrics", "tokens", "prompt_total"],
        "total_prompt_tokens",
    ),
    (
        &["server_metrics", "tokens", "generation_total"],
        "total_generation_tokens",
    ),
    (
        &["server_metrics", "tokens", "requests_completed"],
        "total_requests_completed",
    ),
];

/// An agentic (v3) aggregate as InferenceX's dashboard stores it: the nested
/// `request_metrics`/`server_metrics` flattened to its metric keys
/// (`{mean,median,p75,p90,p95,std}_{ttft,e2el,itl,tpot,intvty,qps}`, the token
/// distributions as `…_input_tokens`/`…_output_tokens_actual`/`…_output_tokens_expected`,
/// `tput_per_gpu`, `total_tput_tps`, cache hit rates, `gpu_kv_cache_usage_pct`, …; the
/// mapping of InferenceX-app's `agentic-v3-flatten.ts`), with full-response ITL and
/// interactivity replacing ITL and interactivity when the aggregate has them (its
/// `preferFullResponseMetrics`: interactivity is 1/ITL per statistic). Latencies stay in
/// seconds, as in the aggregate.
pub fn flatten_agentic(agg: &Value) -> serde_json::Map<String, Value> {
    let mut flat = serde_json::Map::new();
    let block = |flat: &mut serde_json::Map<String, Value>, b: &Value, suffix: &str| {
        for (stat, name) in AGENTIC_STATS {
            if let Some(n) = b[stat].as_f64() {
                flat.insert(format!("{name}_{suffix}"), json!(n));
            }
        }
    };
    let rm = &agg["request_metrics"];
    for m in ["ttft", "e2el", "itl", "tpot", "intvty"] {
        block(&mut flat, &rm["latency"][m], m);
    }
    block(&mut flat, &rm["qps"], "qps");
    for (src, suffix) in [
        ("input", "input_tokens"),
        ("output_actual", "output_tokens_actual"),
        ("output_expected", "output_tokens_expected"),
    ] {
        block(&mut flat, &rm["tokens"][src], suffix);
    }
    for (path, name) in AGENTIC_SCALARS {
        if let Some(n) = path.iter().fold(agg, |v, k| &v[*k]).as_f64() {
            flat.insert(name.to_string(), json!(n));
        }
    }
    let full = &rm["latency"]["full_response_itl"];
    if AGENTIC_STATS
        .iter()
        .any(|(stat, _)| *stat != "std" && full[*stat].is_number())
    {
        // One timing domain per row: every canonical ITL/interactivity goes, then the
        // full-response ones that exist take their place.
        for (_, name) in AGENTIC_STATS {
            flat.remove(&format!("{name}_itl"));
            flat.remove(&format!("{name}_intvty"));
        }
        for (stat, name) in AGENTIC_STATS {
            if stat == "std" {
                continue;
            }
            if let Some(itl) = full[stat].as_f64().filter(|x| x.is_finite() && *x > 0.0) {
                flat.insert(format!("{name}_itl"), json!(itl));
                flat.insert(format!("{name}_intvty"), json!(1.0 / itl));
            }
        }
        if let Some(s) = full["std"].as_f64() {
            flat.insert("std_itl".into(), json!(s));
        }
        if let Some(s) = rm["latency"]["full_response_intvty"]["std"].as_f64() {
            flat.insert("std_intvty".into(), json!(s));
        }
    }
    flat
}

/// The value of field `name` for an agentic aggregate: `values` keys; `conc` (its users),
/// `model`, `hw`, `framework`, `precision`, `tp`, `run_id`, `idempotency_key`;
/// `tput_per_gpu`, `interactivity` (median, tok/s/user) and `median_e2e_ms` from the
/// dashboard's flat metrics; `agg.<key>` for any flat metric key (see [`flatten_agentic`]),
/// `offload_mode` (`on`/`off`, the dashboard's) or a top-level key of the aggregate.
/// Baselines, ISL/OSL and accuracy do not exist for an agentic point: naming them is an
/// error for that point, never a made-up value.
pub fn agentic_field_value(
    name: &str,
    agg: &Value,
    values: &IndexMap<String, Value>,
    run_id: &str,
    key: &str,
) -> Result<Value, String> {
    if let Some(v) = values.get(name) {
        return Ok(v.clone());
    }
    let flat = flatten_agentic(agg);
    let metric = |k: &str, what: &str| {
        flat.get(k)
            .cloned()
            .ok_or_else(|| format!("{what} is missing from the aggregate"))
    };
    let top = |k: &str| {
        agg.get(k)
            .filter(|v| !v.is_null())
            .cloned()
            .ok_or_else(|| format!("the aggregate has no `{k}`"))
    };
    match name {
        "conc" => top("conc"),
        "model" | "hw" | "framework" | "precision" | "tp" => top(name),
        "run_id" => Ok(json!(run_id)),
        "idempotency_key" => Ok(json!(key)),
        "tput_per_gpu" => metric("tput_per_gpu", "throughput per GPU"),
        "interactivity" => metric("median_intvty", "median interactivity"),
        "median_e2e_ms" => metric("median_e2el", "median E2E latency")
            .map(|v| json!(v.as_f64().unwrap_or(f64::NAN) * 1000.0)),
        "isl" | "osl" => Err("an agentic point has no ISL/OSL".into()),
        "baseline_e2e"
        | "baseline_tput"
        | "baseline_interactivity"
        | "e2e_ratio"
        | "tput_ratio"
        | "interactivity_ratio" => Err("no baseline exists for agentic points".into()),
        "gsm8k" | "bits_per_byte" | "byte_perplexity" | "word_perplexity" => {
            Err("an agentic point carries no accuracy result".into())
        }
        _ => {
            if name.starts_with("accuracy.") {
                return Err("an agentic point carries no accuracy result".into());
            }
            if let Some(k) = name.strip_prefix("agg.") {
                if k == "offload_mode" {
                    let on = agg["kv_offloading"].as_str().is_some_and(|m| m != "none");
                    return Ok(json!(if on { "on" } else { "off" }));
                }
                if let Some(v) = flat.get(k) {
                    return Ok(v.clone());
                }
                return top(k);
            }
            Err(format!("unknown field `{name}`"))
        }
    }
}

/// The positional `data` array of `fields` for an agentic aggregate, or every field that
/// has no value.
pub fn agentic_gradio_data(
    fields: &[String],
    agg: &Value,
    values: &IndexMap<String, Value>,
    run_id: &str,
    key: &str,
) -> Result<Vec<Value>, String> {
    positional(fields, |f| agentic_field_value(f, agg, values, run_id, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_uses_the_dashboard_names_and_prefers_full_response_timing() {
        let mut agg = json!({
            "conc": 8, "kv_offloading": "none",
            "request_metrics": {
                "latency": {
                    "ttft": {"mean": 1.5, "p50": 1.0, "p90": 3.0, "std": 0.5},
                    "itl": {"p50": 0.02, "std": 0.001},
                    "intvty": {"p50": 50.0, "std": 2.0}
                },
                "qps": {"window_seconds": 1, "samples": 9, "mean": 2.0, "p95": 4.0},
                "tokens": {"output_actual": {"p50": 300.0}},
                "throughput": {"per_gpu": {"total_tput_tps": 123.0}},
                "cache": {"theoretical_cache_hit_rate": 0.9}
            },
            "server_metrics": {"kv_cache": {"gpu_usage_pct": 40.0}}
        });
        let f = flatten_agentic(&agg);
        for (k, v) in [
            ("mean_ttft", 1.5),
            ("median_ttft", 1.0),
            ("p90_ttft", 3.0),
            ("std_ttft", 0.5),
            ("median_itl", 0.02),
            ("median_intvty", 50.0),
            ("mean_qps", 2.0),
            ("p95_qps", 4.0),
            ("median_output_tokens_actual", 300.0),
            ("tput_per_gpu", 123.0),
            ("theoretical_cache_hit_rate", 0.9),
            ("gpu_kv_cache_usage_pct", 40.0),
        ] {
            assert_eq!(f[k], json!(v), "{k}");
        }
        assert!(!f.contains_key("window_seconds_qps") && !f.contains_key("samples_qps"));
        let off = agentic_field_value("agg.offload_mode", &agg, &IndexMap::new(), "r", "k");
        assert_eq!(off, Ok(json!("off")));
        // With full-response ITL, it replaces ITL and interactivity (1/ITL per statistic);
        // statistics it lacks are dropped rather than mixed.
        agg["request_metrics"]["latency"]["full_response_itl"] =
            json!({"p50": 0.025, "std": 0.004});
        agg["request_metrics"]["latency"]["full_response_intvty"] = json!({"std": 3.0});
        let f = flatten_agentic(&agg);
        assert_eq!(f["median_itl"], json!(0.025));
        assert_eq!(f["median_intvty"], json!(40.0));
        assert_eq!(
            (f["std_itl"].clone(), f["std_intvty"].clone()),
            (json!(0.004), json!(3.0))
        );
        assert_eq!(f["median_ttft"], json!(1.0));
    }
}
