//! AIPerf's artifacts, as InferenceX's aggregation reads them (agentic.md §4.1):
//! `profile_export.jsonl` (one record per request) and `profile_export_aiperf.json` (counts,
//! the theoretical prefix-cache hit, run metadata).

use super::replay::{Phase, Record, ReplayResult};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Wall-clock nanoseconds of a monotonic instant.
pub fn wall_ns(res: &ReplayResult, t: Instant) -> u64 {
    let epoch = res.epoch.expect("replay epoch");
    let d = if t >= epoch {
        t.duration_since(epoch).as_nanos() as i128
    } else {
        -(epoch.duration_since(t).as_nanos() as i128)
    };
    (res.wall_epoch_ns as i128 + d).max(0) as u64
}

fn metric(value: Value, unit: &str) -> Value {
    json!({"value": value, "unit": unit})
}

/// Milliseconds, as AIPerf writes them.
fn ms(s: f64) -> Value {
    json!(s * 1e3)
}

/// One `profile_export.jsonl` record.
pub fn record_json(res: &ReplayResult, r: &Record) -> Value {
    let start_ns = wall_ns(res, r.start);
    let end_ns = r.end.map(|t| wall_ns(res, t));
    let mut metadata = Map::new();
    metadata.insert("session_num".into(), json!(r.lane));
    metadata.insert("x_correlation_id".into(), json!(&*r.x_correlation_id));
    metadata.insert("conversation_id".into(), json!(&*r.conversation_id));
    metadata.insert("turn_index".into(), json!(r.turn_index));
    metadata.insert("request_start_ns".into(), json!(start_ns));
    metadata.insert(
        "request_ack_ns".into(),
        json!(r.ack.map(|t| wall_ns(res, t))),
    );
    metadata.insert("request_end_ns".into(), json!(end_ns));
    metadata.insert("worker_id".into(), json!(format!("worker_{:04}", r.lane)));
    metadata.insert(
        "benchmark_phase".into(),
        json!(match r.phase {
            Phase::Warmup => "warmup",
            Phase::Profiling => "profiling",
        }),
    );
    metadata.insert("was_cancelled".into(), json!(r.cancelled));
    metadata.insert(
        "cancellation_time_ns".into(),
        if r.cancelled {
            json!(end_ns)
        } else {
            Value::Null
        },
    );
    let mut m = Map::new();
    m.insert(
        "input_sequence_length".into(),
        metric(json!(r.isl), "tokens"),
    );
    if let (Some(ttft), Some(lat), Some(osl)) = (r.ttft, r.latency, r.osl) {
        m.insert(
            "output_sequence_length".into(),
            metric(json!(osl), "tokens"),
        );
        m.insert("time_to_first_token".into(), metric(ms(ttft), "ms"));
        m.insert("request_latency".into(), metric(ms(lat), "ms"));
        if osl > 1 {
            let itl = (lat - ttft) / (osl - 1) as f64;
            m.insert("inter_token_latency".into(), metric(ms(itl), "ms"));
            if let Some(end) = r.end {
                let full = end.saturating_duration_since(r.start).as_secs_f64() - ttft;
                m.insert(
                    "full_response_inter_token_latency".into(),
                    metric(ms(full.max(0.0) / (osl - 1) as f64), "ms"),
                );
            }
        }
    }
    let error = match &r.error {
        None => Value::Null,
        Some(e) => json!({"code": e.code, "type": e.kind, "message": e.message}),
    };
    json!({"metadata": metadata, "metrics": m, "error": error})
}

/// Write `profile_export.jsonl` (records in start order).
pub fn write_records(dir: &Path, res: &ReplayResult) -> std::io::Result<()> {
    let f = std::fs::File::create(dir.join("profile_export.jsonl"))?;
    let mut w = std::io::BufWriter::new(f);
    for r in &res.records {
        // Per record, not per token: an engine's error text may echo a configured secret.
        let line = record_json(res, r).to_string();
        w.write_all(crate::secrets::redact(&line).as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// Run facts for `profile_export_aiperf.json`'s metadata.
#[derive(Debug, Clone)]
pub struct RunMeta {
    /// `--scenario` (`inferencex-agentx-mvp`).
    pub scenario: String,
    /// `source_type`, `loader`, `hf_dataset_name` of the dataset block.
    pub source_type: String,
    pub loader: String,
    pub dataset_name: String,
    pub num_dataset_entries: usize,
    pub duration_s: f64,
    pub concurrency: usize,
    /// Below this coverage the run fails (`insufficient_profile_metric_coverage`).
    pub min_coverage: f64,
    /// Above this context-overflow rate the run is not submission-valid.
    pub overflow_limit: f64,
}

/// Counts of the profiling phase.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Successful profiling requests.
    pub ok: u64,
    /// Failed profiling requests (cancelled ones included when recorded).
    pub errors: u64,
    pub warmup: u64,
}

/// Count profiling successes and errors.
pub fn counts(res: &ReplayResult) -> Counts {
    let mut c = Counts::default();
    for r in &res.records {
        match (r.phase, r.error.is_some()) {
            (Phase::Warmup, _) => c.warmup += 1,
            (Phase::Profiling, false) => c.ok += 1,
            (Phase::Profiling, true) => c.errors += 1,
        }
    }
    c
}

/// Why the run is not submission-valid (empty: valid).
pub fn invalid_reasons(res: &ReplayResult, meta: &RunMeta) -> Vec<String> {
    let mut why = vec![];
    if meta.duration_s < 900.0 {
        why.push(format!(
            "benchmark duration {} s is below 900 s (unsafe override)",
            meta.duration_s
        ));
    }
    let c = counts(res);
    let attempted = c.ok + c.errors + res.overflow_skipped;
    let overflow = res.overflow_skipped + res.overflow_errors;
    if attempted > 0 && overflow as f64 > meta.overflow_limit * attempted as f64 {
        why.push(format!(
            "context overflow rate {:.4} exceeds {}",
            overflow as f64 / attempted as f64,
            meta.overflow_limit
        ));
    }
    if res.coverage < meta.min_coverage {
        why.push(format!(
            "insufficient_profile_metric_coverage: {:.4} < {}",
            res.coverage, meta.min_coverage
        ));
    }
    if let Some(a) = &res.aborted {
        why.push(format!("aborted: {a}"));
    }
    why
}

/// Linear-interpolation percentile of sorted values (the load client's statistics).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    crate::client::stats::percentile_sorted(sorted, p)
}

/// The `profile_export_aiperf.json` object.
pub fn aggregate_json(res: &ReplayResult, meta: &RunMeta) -> Value {
    let c = counts(res);
    let reasons = invalid_reasons(res, meta);
    let pct = if res.cache_blocks > 0 {
        100.0 * res.cache_hits as f64 / res.cache_blocks as f64
    } else {
        0.0
    };
    let mut late = res.lateness.clone();
    late.sort_by(f64::total_cmp);
    let mut v = json!({
        "request_count": {"unit": "requests", "avg": c.ok},
        "error_request_count": {"unit": "requests", "avg": c.errors},
        "completed_request_count": {"unit": "requests", "avg": c.ok + c.errors},
        "theoretical_prefix_cache_hit": {
            "unit": "%",
            "sum": res.cache_hits,
            "count": res.cache_blocks,
            "avg": pct,
        },
        "benchmark_duration": {"unit": "sec", "avg": meta.duration_s},
        "metadata": {
            "scenario": meta.scenario,
            "submission_valid": reasons.is_empty(),
            "submission_invalid_reasons": reasons,
            "dataset": {
                "source_type": meta.source_type,
                "loader": meta.loader,
                "hf_dataset_name": meta.dataset_name,
                "hf_split": "train",
                "num_dataset_entries": meta.num_dataset_entries,
            },
            "metric_duration_coverage": [{
                "phase_name": "profiling",
                "expected_duration_seconds": meta.duration_s,
                "required_ratio": meta.min_coverage,
                "ttft_ratio": res.coverage_ttft,
                "inter_token_latency_ratio": res.coverage_itl,
            }],
        },
        "infmax": {
            "concurrency": meta.concurrency,
            "warmup_request_count": c.warmup,
            "plays": res.plays,
            "profile_metric_coverage": res.coverage,
            "context_overflow_skipped": res.overflow_skipped,
            "context_overflow_errors": res.overflow_errors,
            "aborted": res.aborted,
            "dispatch_lateness_ms": {
                "p50": percentile(&late, 50.0) * 1e3,
                "p99": percentile(&late, 99.0) * 1e3,
                "max": late.last().map(|x| x * 1e3),
                "count": late.len(),
            },
        },
    });
    if late.is_empty() {
        v["infmax"]["dispatch_lateness_ms"] = json!({"count": 0});
    }
    v
}

/// Write both request-side artifacts into `dir`.
pub fn write_all(dir: &Path, res: &ReplayResult, meta: &RunMeta) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    write_records(dir, res)?;
    let v = aggregate_json(res, meta);
    crate::fsutil::write_atomic(
        &dir.join("profile_export_aiperf.json"),
        &serde_json::to_vec_pretty(&v)?,
    )
}
