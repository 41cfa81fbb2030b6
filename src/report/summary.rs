//! Markdown summaries — one job, one batch, or a whole sweep — for stdout, `summary.md` and
//! `$GITHUB_STEP_SUMMARY`. One table per model × ISL/OSL line, so every column means the
//! same thing down the table; a missing baseline is a `missing` cell with the reason below
//! the table.

use super::agg::{AccuracyStatus, AggRow};
use super::baseline::{BaselineRecord, LineKey};
use super::confidence::{Confidence, Interval};
use std::collections::BTreeMap;

/// The figures of one summary line.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// The model × ISL/OSL line.
    pub line: LineKey,
    /// Hardware (runner type).
    pub hw: String,
    /// Serving engine.
    pub framework: String,
    /// Precision.
    pub precision: String,
    /// Tensor parallel size.
    pub tp: u32,
    /// Expert parallel size.
    pub ep: u32,
    /// Client concurrency.
    pub conc: u32,
    /// Median TTFT (ms).
    pub ttft_ms: Option<f64>,
    /// Median TPOT (ms).
    pub tpot_ms: Option<f64>,
    /// Median interactivity (tok/s/user).
    pub intvty: Option<f64>,
    /// Median end-to-end latency (s).
    pub e2el_s: Option<f64>,
    /// Throughput per GPU (tok/s/GPU).
    pub tput_per_gpu: f64,
    /// Baseline record of the job.
    pub baseline: BaselineRecord,
    /// Accuracy cell text.
    pub accuracy: String,
    /// 95 % intervals of the point, listed under the table when present.
    pub confidence: Option<Confidence>,
}

impl From<&AggRow> for SummaryRow {
    fn from(r: &AggRow) -> Self {
        SummaryRow {
            line: r.line(),
            hw: r.hw.clone(),
            framework: r.framework.clone(),
            precision: r.precision.clone(),
            tp: r.tp,
            ep: r.ep,
            conc: r.conc,
            ttft_ms: r.median_ttft_ms(),
            tpot_ms: r.median_tpot_ms(),
            intvty: r.median_intvty(),
            e2el_s: r.median_e2el_ms().map(|v| v / 1000.0),
            tput_per_gpu: r.tput_per_gpu,
            baseline: r.baseline.clone(),
            accuracy: accuracy_cell(r),
            confidence: r.confidence.clone(),
        }
    }
}

fn accuracy_cell(r: &AggRow) -> String {
    let Some(a) = &r.accuracy else {
        return "—".into();
    };
    let mut parts = Vec::new();
    for (k, v) in &a.metrics {
        match a.threshold.get(k) {
            Some(t) => parts.push(format!("{k} {v:.4} (thr {t:.4})")),
            None => parts.push(format!("{k} {v:.4}")),
        }
    }
    let status = match a.status {
        AccuracyStatus::Fail => "**FAIL**",
        s => s.as_str(),
    };
    if parts.is_empty() {
        format!("{status} ({})", a.task)
    } else {
        format!("{status} ({}: {})", a.task, parts.join(", "))
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "—".into())
}

/// A Markdown summary under `title`: one table per line, rows sorted by hardware,
/// framework, tp, ep, conc; missing-baseline reasons listed under each table.
pub fn summary_markdown(title: &str, rows: &[SummaryRow]) -> String {
    let mut by_line: BTreeMap<&LineKey, Vec<&SummaryRow>> = BTreeMap::new();
    for r in rows {
        by_line.entry(&r.line).or_default().push(r);
    }
    let mut s = format!("## {title}\n\n");
    if rows.is_empty() {
        s.push_str("No results.\n\n");
    }
    for (line, mut rs) in by_line {
        rs.sort_by(|a, b| {
            (&a.hw, &a.framework, a.tp, a.ep, a.conc).cmp(&(
                &b.hw,
                &b.framework,
                b.tp,
                b.ep,
                b.conc,
            ))
        });
        s.push_str(&format!("### {line}\n\n"));
        s.push_str("| Hardware | Framework | Precision | TP | EP | Conc | TTFT median (ms) | TPOT median (ms) | Intvty (tok/s/user) | E2EL median (s) | Tput/GPU (tok/s) | Ratio vs baseline | Accuracy |\n");
        s.push_str("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|\n");
        let mut notes: Vec<String> = Vec::new();
        let mut intervals: Vec<String> = Vec::new();
        for r in rs {
            if let Some(c) = &r.confidence {
                intervals.push(interval_line(r, c));
            }
            let ratio = match &r.baseline {
                BaselineRecord::Found {
                    label,
                    tput_per_gpu_ratio,
                    ..
                } => format!("{tput_per_gpu_ratio:.3}× {label}"),
                BaselineRecord::Missing { reason, .. } => {
                    if !notes.contains(reason) {
                        notes.push(reason.clone());
                    }
                    "missing".into()
                }
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} |\n",
                r.hw.to_uppercase(),
                r.framework.to_uppercase(),
                r.precision.to_uppercase(),
                r.tp,
                r.ep,
                r.conc,
                opt(r.ttft_ms, 2),
                opt(r.tpot_ms, 2),
                opt(r.intvty, 2),
                opt(r.e2el_s, 3),
                r.tput_per_gpu,
                ratio,
                r.accuracy
            ));
        }
        s.push('\n');
        for n in notes {
            s.push_str(&format!("- baseline missing: {n}\n"));
        }
        if !intervals.is_empty() {
            s.push_str("\n95 % confidence intervals (estimate, then low–high):\n\n");
            for i in intervals {
                s.push_str(&i);
            }
        }
        s.push('\n');
    }
    s
}

fn interval_cell(name: &str, i: Option<Interval>, digits: usize, unit: &str) -> Option<String> {
    i.map(|i| {
        format!(
            "{name} {:.digits$} ({:.digits$}–{:.digits$}){unit}",
            i.estimate, i.lo, i.hi
        )
    })
}

/// One bullet per point: every interval, what it rests on, and its warnings.
fn interval_line(r: &SummaryRow, c: &Confidence) -> String {
    let s = |i: Option<Interval>| i.map(|i| i.scaled(1e-3));
    let cells: Vec<String> = [
        interval_cell("TTFT median", c.median_ttft_ms, 2, " ms"),
        interval_cell("TPOT median", c.median_tpot_ms, 2, " ms"),
        interval_cell("intvty", c.median_intvty, 2, " tok/s/user"),
        interval_cell("E2EL median", s(c.median_e2el_ms), 3, " s"),
        interval_cell("output tput", c.output_throughput, 1, " tok/s"),
        interval_cell("tput/GPU", c.tput_per_gpu, 2, ""),
    ]
    .into_iter()
    .flatten()
    .collect();
    let basis = if c.trials > 1 {
        format!(
            "{} trials of {} requests",
            c.trials,
            c.requests
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join("/")
        )
    } else {
        format!("{} requests", c.requests.first().copied().unwrap_or(0))
    };
    let mut line = format!(
        "- conc {} ({} {} tp{}; {basis}): {}\n",
        r.conc,
        r.hw.to_uppercase(),
        r.framework.to_uppercase(),
        r.tp,
        cells.join(", ")
    );
    for w in &c.warnings {
        line.push_str(&format!("  - warning: {w}\n"));
    }
    line
}
