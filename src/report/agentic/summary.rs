//! Human-readable lines for agentic aggregates: the console summary InferenceX's processor
//! prints after writing the aggregate, and a Markdown table (one row per point) for the
//! job summary.

use serde_json::Value;

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".to_string(), |x| format!("{x:.digits$}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |x| format!("{:.1}%", x * 100.0))
}

/// The processor's console lines (`Requests: …`, `QPS: …`, cache and KV lines,
/// `Throughput per GPU: …`), for an aggregate already written to `path`.
pub fn console_lines(agg: &Value, path: &str) -> Vec<String> {
    let acc = &agg["request_accounting"];
    let rm = &agg["request_metrics"];
    let mut out = vec![
        format!("Saved aggregated agentic result to {path}"),
        format!(
            "  Requests: {} successful / {} total ({} warmup, {} error dropped)",
            agg["num_requests_successful"],
            acc["records_total"],
            acc["records_warmup_dropped"],
            acc["records_error_dropped"]
        ),
    ];
    let qps = &rm["qps"];
    if let Some(m) = num(&qps["mean"]) {
        out.push(format!(
            "  QPS: mean={m:.2} p75={:.2} p95={:.2}",
            num(&qps["p75"]).unwrap_or(0.0),
            num(&qps["p95"]).unwrap_or(0.0)
        ));
    }
    let sc = &agg["server_metrics"]["cache"];
    let kv = &agg["server_metrics"]["kv_cache"];
    for (key, what) in [
        ("gpu_cache_hit_rate", "GPU cache hit rate"),
        ("cpu_cache_hit_rate", "CPU/offload cache hit rate"),
        ("external_cache_hit_rate", "External cache hit rate"),
    ] {
        if let Some(v) = num(&sc[key]) {
            out.push(format!("  {what}: {}", pct(Some(v))));
        }
    }
    if let Some(v) = num(&kv["gpu_usage_pct"]) {
        out.push(format!("  GPU KV cache usage:  {}", pct(Some(v))));
    }
    if !kv["gpu_total_tokens"].is_null() {
        out.push(format!(
            "  GPU KV cache capacity: {} tokens",
            kv["gpu_total_tokens"]
        ));
    }
    if let Some(v) = num(&rm["cache"]["theoretical_cache_hit_rate"]) {
        out.push(format!("  Theoretical cache hit rate: {}", pct(Some(v))));
    }
    if let Some(v) = num(&rm["throughput"]["per_gpu"]["total_tput_tps"]) {
        out.push(format!("  Throughput per GPU: {v:.0} tok/s"));
    }
    out
}

/// A Markdown table with one row per aggregate: users, throughput per GPU, interactivity,
/// latencies, QPS, cache hit rates and request accounting.
pub fn markdown(title: &str, aggs: &[Value]) -> String {
    let mut s = format!("## {title}\n\n");
    s.push_str(
        "| users | tok/s/GPU | out tok/s/GPU | intvty p50 (tok/s/user) | TTFT p50 / p90 (s) | E2EL p50 (s) | QPS mean | theoretical hit | server GPU hit | requests ok / total | errors |\n",
    );
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for a in aggs {
        let rm = &a["request_metrics"];
        let lat = &rm["latency"];
        let intvty = num(&lat["full_response_intvty"]["p50"]).or(num(&lat["intvty"]["p50"]));
        let per_gpu = &rm["throughput"]["per_gpu"];
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} / {} | {} |\n",
            a["conc"],
            fmt(num(&per_gpu["total_tput_tps"]), 1),
            fmt(num(&per_gpu["output_tput_tps"]), 1),
            fmt(intvty, 2),
            fmt(num(&lat["ttft"]["p50"]), 3),
            fmt(num(&lat["ttft"]["p90"]), 3),
            fmt(num(&lat["e2el"]["p50"]), 3),
            fmt(num(&rm["qps"]["mean"]), 2),
            pct(num(&rm["cache"]["theoretical_cache_hit_rate"])),
            pct(num(&a["server_metrics"]["cache"]["gpu_cache_hit_rate"])),
            a["num_requests_successful"],
            a["request_accounting"]["records_total"],
            a["request_accounting"]["records_error_dropped"],
        ));
    }
    s
}
