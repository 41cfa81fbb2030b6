//! One point from several trials (`runner exec`/`batch --repeat N`): the combined agg row.
//!
//! Each trial is a full job of its own in `<point>/trial<k>/` (its `agg.json`, `bench.json`,
//! …); the point's `agg.json` in `<point>/` combines them. Its InferenceX keys hold the mean
//! over the trials that finished — throughputs and every numeric latency statistic, with each
//! `*_intvty` recomputed as `1000 / *_tpot_ms` of the mean TPOT so the row stays consistent
//! — its `confidence` the across-trial intervals ([`super::confidence::combine`]) and its
//! `trials` each trial's seed, directory and figures. A trial that failed leaves the point
//! with a `failure` (never eligible) naming it; the others still make up the figures.

use super::agg::{AggRow, JobFailure, TrialRecord};
use super::baseline::Baselines;
use super::confidence::{self, TrialBootstrap};
use serde_json::Value;

/// A finished trial.
#[derive(Debug, Clone)]
pub struct Trial {
    /// 1-based trial number.
    pub index: u32,
    /// Dataset seed of its requests.
    pub seed: u64,
    /// Its directory relative to the point's (`trial1`).
    pub dir: String,
    /// Its agg row.
    pub row: AggRow,
    /// Its request bootstrap.
    pub bootstrap: TrialBootstrap,
}

/// A trial that did not finish: its number and why.
#[derive(Debug, Clone)]
pub struct FailedTrial {
    /// 1-based trial number.
    pub index: u32,
    /// Stage that failed.
    pub stage: String,
    /// Exit code of that stage.
    pub exit_code: u8,
    /// What happened.
    pub error: String,
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn mean_opt(xs: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Option<Vec<f64>> = xs.collect();
    v.filter(|v| !v.is_empty())
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
}

/// The point's agg row from its finished trials (at least one) and the failed ones.
pub fn combine(
    trials: &[Trial],
    failed: &[FailedTrial],
    resamples: u32,
    baselines: &Baselines,
) -> Option<AggRow> {
    let first = trials.first()?;
    let mut row = first.row.clone();
    let rows: Vec<&AggRow> = trials.iter().map(|t| &t.row).collect();
    row.tput_per_gpu = mean(rows.iter().map(|r| r.tput_per_gpu));
    row.output_tput_per_gpu = mean(rows.iter().map(|r| r.output_tput_per_gpu));
    row.input_tput_per_gpu = mean(rows.iter().map(|r| r.input_tput_per_gpu));
    for (key, v) in row.metrics.iter_mut() {
        if !v.is_number() || key.contains("intvty") {
            continue;
        }
        if let Some(m) = mean_opt(rows.iter().map(|r| r.metric(key))) {
            *v = json_f64(m);
        }
    }
    // Interactivity follows the mean TPOT, as in a single row (1000 / tpot ms).
    let keys: Vec<String> = row.metrics.keys().cloned().collect();
    for key in keys
        .iter()
        .filter(|k| k.contains("tpot") && k.ends_with("_ms"))
    {
        let name = key.replace("_ms", "").replace("tpot", "intvty");
        if let Some(t) = row.metric(key) {
            row.metrics.insert(
                name,
                if t == 0.0 {
                    Value::Null
                } else {
                    json_f64(1000.0 / t)
                },
            );
        }
    }
    row.engine_start_s = mean_opt(rows.iter().map(|r| r.engine_start_s));
    row.avg_power_w = mean_opt(rows.iter().map(|r| r.avg_power_w));
    row.total_gpu_energy_j = mean_opt(rows.iter().map(|r| r.total_gpu_energy_j));
    row.joules_per_output_token = mean_opt(rows.iter().map(|r| r.joules_per_output_token));
    row.joules_per_total_token = mean_opt(rows.iter().map(|r| r.joules_per_total_token));
    // The worst accuracy outcome of the trials (they share the engine and its gate).
    if let Some(bad) = rows
        .iter()
        .filter_map(|r| r.accuracy.as_ref())
        .find(|a| a.status != super::AccuracyStatus::Pass)
    {
        row.accuracy = Some(bad.clone());
    }
    let mut why: Vec<String> = rows
        .iter()
        .zip(trials)
        .filter_map(|(r, t)| {
            r.failure
                .as_ref()
                .map(|f| format!("trial {}: {}", t.index, f.error))
        })
        .collect();
    why.extend(
        failed
            .iter()
            .map(|f| format!("trial {} failed ({} stage): {}", f.index, f.stage, f.error)),
    );
    row.failure = if why.is_empty() {
        None
    } else {
        let (stage, exit_code) = failed
            .first()
            .map(|f| (f.stage.clone(), f.exit_code))
            .or_else(|| {
                rows.iter()
                    .find_map(|r| r.failure.as_ref())
                    .map(|f| (f.stage.clone(), f.exit_code))
            })
            .unwrap_or_else(|| ("load".into(), 13));
        Some(JobFailure {
            stage,
            exit_code,
            error: why.join("; "),
        })
    };
    let boots: Vec<TrialBootstrap> = trials.iter().map(|t| t.bootstrap.clone()).collect();
    let mut ci = confidence::confidence(&boots, f64::from(row.num_gpus()), resamples, first.seed);
    // The row's percentiles are means of per-trial percentiles: each rests on one trial.
    ci.warnings = confidence::percentile_warnings(
        row.metrics.keys().map(String::as_str),
        trials
            .iter()
            .map(|t| t.bootstrap.requests)
            .min()
            .unwrap_or(0),
    );
    if trials.len() < 2 {
        ci.warnings.push(format!(
            "only {} trial finished: the interval is the request bootstrap of that trial",
            trials.len()
        ));
    }
    row.confidence = Some(ci);
    row.trials = trials
        .iter()
        .map(|t| TrialRecord {
            trial: t.index,
            seed: t.seed,
            dir: t.dir.clone(),
            requests: t.bootstrap.requests,
            tput_per_gpu: t.row.tput_per_gpu,
            output_tput_per_gpu: t.row.output_tput_per_gpu,
            median_ttft_ms: t.row.median_ttft_ms(),
            median_tpot_ms: t.row.median_tpot_ms(),
            median_e2el_ms: t.row.median_e2el_ms(),
        })
        .collect();
    row.baseline = baselines.record_for(&row);
    Some(row)
}

fn json_f64(v: f64) -> Value {
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}
