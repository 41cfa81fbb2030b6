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
    let mut data = Vec::with_capacity(fields.len());
    let mut missing = Vec::new();
    for f in fields {
        match field_value(f, row, values, run_id, key) {
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
