//! The bounty's eligibility verdict, per model × ISL/OSL line.
//!
//! Throughput per GPU (y) is plotted against interactivity (x). A point beats the reference
//! line when its y is strictly above the reference curve at its x: the curve interpolates
//! linearly between reference points sorted by x; left of the lowest reference x it is that
//! point's y; right of the highest reference x every point beats it. A line is eligible when
//! at least half of its points beat the reference AND no point is below AMD's existing point
//! at the same conc (where AMD has one). Ties between submissions are broken by more points
//! above, then by the larger sum of same-conc throughput ratios. Every point gets a sentence
//! saying why it counts or not.

use super::agg::{AccuracyStatus, AggRow};
use super::baseline::{BaselineSet, Baselines, LineKey, RefPoint, Role};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// How one point compares with a reference curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurveCmp {
    /// The point beats the curve.
    pub above: bool,
    /// The curve's y at the point's x; `None` right of the curve (the point beats it).
    pub curve_y: Option<f64>,
    /// Why, in words.
    pub reason: String,
}

/// Compare (x, y) with the curve through `curve` (reference points sorted by x).
pub fn compare_to_curve(curve: &[&RefPoint], x: f64, y: f64) -> CurveCmp {
    let (Some(lo), Some(hi)) = (curve.first(), curve.last()) else {
        return CurveCmp {
            above: false,
            curve_y: None,
            reason: "no reference curve".into(),
        };
    };
    let verdict = |cy: f64| if y > cy { "above" } else { "not above" };
    if x > hi.median_intvty {
        return CurveCmp {
            above: true,
            curve_y: None,
            reason: format!(
                "above: x {x:.2} is beyond the highest reference x {:.2} (conc {})",
                hi.median_intvty, hi.conc
            ),
        };
    }
    if x < lo.median_intvty {
        let cy = lo.tput_per_gpu;
        return CurveCmp {
            above: y > cy,
            curve_y: Some(cy),
            reason: format!(
                "{}: x {x:.2} is below the lowest reference x {:.2} (conc {}), so y {y:.2} is compared with its y {cy:.2}",
                verdict(cy),
                lo.median_intvty,
                lo.conc
            ),
        };
    }
    // lo.x <= x <= hi.x: find the segment.
    for w in curve.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.median_intvty <= x && x <= b.median_intvty {
            let (cy, how) = if b.median_intvty == a.median_intvty {
                (
                    a.tput_per_gpu.max(b.tput_per_gpu),
                    format!("at conc {}/{}", a.conc, b.conc),
                )
            } else {
                let t = (x - a.median_intvty) / (b.median_intvty - a.median_intvty);
                (
                    a.tput_per_gpu + t * (b.tput_per_gpu - a.tput_per_gpu),
                    format!(
                        "between conc {} ({:.2}, {:.2}) and conc {} ({:.2}, {:.2})",
                        a.conc,
                        a.median_intvty,
                        a.tput_per_gpu,
                        b.conc,
                        b.median_intvty,
                        b.tput_per_gpu
                    ),
                )
            };
            return CurveCmp {
                above: y > cy,
                curve_y: Some(cy),
                reason: format!(
                    "{}: y {y:.2} vs curve {cy:.2} at x {x:.2}, {how}",
                    verdict(cy)
                ),
            };
        }
    }
    // One reference point and x equal to its x.
    let cy = lo.tput_per_gpu;
    CurveCmp {
        above: y > cy,
        curve_y: Some(cy),
        reason: format!(
            "{}: y {y:.2} vs the reference point at the same x {x:.2} (conc {}), y {cy:.2}",
            verdict(cy),
            lo.conc
        ),
    }
}

/// The check against AMD's existing point at the same conc.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AmdCheck {
    /// Label of the AMD set the point came from.
    pub label: String,
    /// AMD's throughput per GPU at this conc.
    pub tput_per_gpu: f64,
    /// Which configuration that was, when the source says.
    pub detail: Option<String>,
    /// Our point is not below it.
    pub ok: bool,
}

/// The check against a per-conc target (median E2E ≤, interactivity ≥, throughput/GPU ≥).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetCheck {
    /// Label of the target set.
    pub label: String,
    /// All three targets met.
    pub ok: bool,
    /// What was missed, or `met`.
    pub reason: String,
}

/// One point of a line, with every figure the verdict used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointRow {
    /// Hardware (runner type).
    pub hw: String,
    /// Serving engine.
    pub framework: String,
    /// Tensor parallel size.
    pub tp: u32,
    /// Client concurrency.
    pub conc: u32,
    /// Median interactivity (x), tokens/s/user.
    pub intvty: Option<f64>,
    /// Throughput per GPU (y).
    pub tput_per_gpu: f64,
    /// Median end-to-end latency (ms).
    pub median_e2e_ms: Option<f64>,
    /// Comparison with the reference curve.
    pub curve: CurveCmp,
    /// Throughput ratio to the reference point at the same conc, when there is one.
    pub tput_ratio: Option<f64>,
    /// AMD's existing point at the same conc, when known.
    pub amd: Option<AmdCheck>,
    /// Targets at the same conc, when a target set has this line.
    pub target: Option<TargetCheck>,
    /// Accuracy gate outcome of the job.
    pub accuracy: Option<AccuracyStatus>,
}

/// The verdict of one model × ISL/OSL line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineVerdict {
    /// The line.
    pub line: LineKey,
    /// Label of the reference set compared with (`None` when none is loaded).
    pub reference: Option<String>,
    /// Reference points of this line (sorted by x) — empty means the line has no baseline.
    pub reference_points: Vec<RefPoint>,
    /// Points, sorted by hardware, framework, tp, conc.
    pub points: Vec<PointRow>,
    /// Points beating the reference curve.
    pub above: usize,
    /// ≥ 50% of the points beat the reference.
    pub half_rule: bool,
    /// Points that have an AMD point at the same conc.
    pub amd_known: usize,
    /// No point is below AMD's existing point at the same conc.
    pub amd_rule: bool,
    /// Both rules hold (and a reference curve exists).
    pub eligible: bool,
    /// Σ same-conc throughput ratios (tie-break figure).
    pub sum_tput_ratio: f64,
    /// Points that contributed to `sum_tput_ratio`.
    pub ratio_points: usize,
    /// Why the line is not eligible (empty when it is).
    pub reasons: Vec<String>,
}

impl LineVerdict {
    /// Order two submissions for the same line: eligible first, then more points above,
    /// then the larger Σ throughput ratios. `Greater` means `self` ranks higher.
    pub fn tie_break(&self, other: &LineVerdict) -> Ordering {
        self.eligible
            .cmp(&other.eligible)
            .then(self.above.cmp(&other.above))
            .then(self.sum_tput_ratio.total_cmp(&other.sum_tput_ratio))
    }
}

/// Verdicts for every line the rows cover, in line order.
pub fn verdict(rows: &[AggRow], baselines: &Baselines) -> Vec<LineVerdict> {
    let mut lines: BTreeMap<LineKey, Vec<&AggRow>> = BTreeMap::new();
    for r in rows {
        lines.entry(r.line()).or_default().push(r);
    }
    lines
        .into_iter()
        .map(|(line, rows)| line_verdict(line, &rows, baselines))
        .collect()
}

fn line_verdict(line: LineKey, rows: &[&AggRow], baselines: &Baselines) -> LineVerdict {
    let reference = baselines.reference();
    let curve: Vec<&RefPoint> = reference.map(|s| s.curve(&line)).unwrap_or_default();
    let targets: Vec<&BaselineSet> = baselines.with_role(Role::Target).collect();
    let mut sorted: Vec<&AggRow> = rows.to_vec();
    sorted.sort_by(|a, b| {
        (&a.hw, &a.framework, a.tp, a.conc).cmp(&(&b.hw, &b.framework, b.tp, b.conc))
    });
    let mut points = Vec::new();
    for r in sorted {
        let x = r.median_intvty();
        let curve_cmp = match (x, curve.is_empty()) {
            // A failed job's numbers are kept for diagnosis, never counted.
            _ if r.failure.is_some() => CurveCmp {
                above: false,
                curve_y: None,
                reason: r
                    .failure
                    .as_ref()
                    .map(|f| format!("the job failed ({} stage, exit {})", f.stage, f.exit_code))
                    .unwrap_or_default(),
            },
            (_, true) => CurveCmp {
                above: false,
                curve_y: None,
                reason: match reference {
                    Some(s) => format!("missing: {} has no {line} points", s.label),
                    None => "missing: no reference baseline is loaded".into(),
                },
            },
            (None, false) => CurveCmp {
                above: false,
                curve_y: None,
                reason: "no median interactivity in the agg row (zero or missing TPOT)".into(),
            },
            (Some(x), false) => compare_to_curve(&curve, x, r.tput_per_gpu),
        };
        let tput_ratio = reference
            .and_then(|s| s.point(&line, r.conc))
            .map(|p| r.tput_per_gpu / p.tput_per_gpu);
        let amd = baselines.amd_point(&line, r.conc).map(|(s, p)| AmdCheck {
            label: s.label.clone(),
            tput_per_gpu: p.tput_per_gpu,
            detail: p.detail.clone(),
            ok: r.tput_per_gpu >= p.tput_per_gpu,
        });
        let target = targets
            .iter()
            .find_map(|s| s.point(&line, r.conc).map(|p| (s, p)))
            .map(|(s, p)| target_check(s, p, r));
        points.push(PointRow {
            hw: r.hw.clone(),
            framework: r.framework.clone(),
            tp: r.tp,
            conc: r.conc,
            intvty: x,
            tput_per_gpu: r.tput_per_gpu,
            median_e2e_ms: r.median_e2el_ms(),
            curve: curve_cmp,
            tput_ratio,
            amd,
            target,
            accuracy: r.accuracy.as_ref().map(|a| a.status),
        });
    }
    let n = points.len();
    let above = points.iter().filter(|p| p.curve.above).count();
    let half_rule = !curve.is_empty() && n > 0 && 2 * above >= n;
    let amd_known = points.iter().filter(|p| p.amd.is_some()).count();
    let below_amd: Vec<&PointRow> = points
        .iter()
        .filter(|p| p.amd.as_ref().is_some_and(|a| !a.ok))
        .collect();
    let amd_rule = below_amd.is_empty();
    let ratios: Vec<f64> = points.iter().filter_map(|p| p.tput_ratio).collect();
    let mut reasons = Vec::new();
    let ref_label = reference.map(|s| s.label.as_str()).unwrap_or("reference");
    if curve.is_empty() {
        reasons.push(match reference {
            Some(s) => format!("no reference curve: {} has no {line} points", s.label),
            None => "no reference baseline is loaded".into(),
        });
    } else if !half_rule {
        reasons.push(format!(
            "only {above} of {n} points beat the {ref_label} line (need at least half)"
        ));
    }
    for r in rows.iter().filter(|r| r.failure.is_some()) {
        let f = r.failure.as_ref().expect("filtered on failure");
        reasons.push(format!(
            "conc {} ({} {} tp{}): the job failed ({} stage, exit {})",
            r.conc, r.hw, r.framework, r.tp, f.stage, f.exit_code
        ));
    }
    for p in &below_amd {
        let a = p.amd.as_ref().expect("filtered on amd");
        reasons.push(format!(
            "conc {} ({} {} tp{}): {:.2} tok/s/GPU is below AMD's existing {:.2} ({})",
            p.conc, p.hw, p.framework, p.tp, p.tput_per_gpu, a.tput_per_gpu, a.label
        ));
    }
    LineVerdict {
        reference: reference.map(|s| s.label.clone()),
        reference_points: curve.iter().map(|p| (*p).clone()).collect(),
        line,
        points,
        above,
        half_rule,
        amd_known,
        amd_rule,
        eligible: half_rule && amd_rule && rows.iter().all(|r| r.failure.is_none()),
        // fold from +0.0: an empty f64 sum is -0.0, which prints as "-0.000".
        sum_tput_ratio: ratios.iter().fold(0.0, |a, b| a + b),
        ratio_points: ratios.len(),
        reasons,
    }
}

fn target_check(set: &BaselineSet, t: &RefPoint, r: &AggRow) -> TargetCheck {
    let mut missed = Vec::new();
    match r.median_e2el_ms() {
        Some(e) if e <= t.median_e2e_ms => {}
        Some(e) => missed.push(format!("median E2E {e:.0} ms > {:.0}", t.median_e2e_ms)),
        None => missed.push("no median E2E".into()),
    }
    match r.median_intvty() {
        Some(x) if x >= t.median_intvty => {}
        Some(x) => missed.push(format!("interactivity {x:.2} < {:.2}", t.median_intvty)),
        None => missed.push("no interactivity".into()),
    }
    if r.tput_per_gpu < t.tput_per_gpu {
        missed.push(format!(
            "tput/GPU {:.2} < {:.2}",
            r.tput_per_gpu, t.tput_per_gpu
        ));
    }
    TargetCheck {
        label: set.label.clone(),
        ok: missed.is_empty(),
        reason: if missed.is_empty() {
            "met".into()
        } else {
            missed.join("; ")
        },
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "—".into())
}

/// The verdict of one line as Markdown: a headline and the per-point table.
pub fn verdict_markdown(v: &LineVerdict) -> String {
    let mut s = String::new();
    let ref_label = v.reference.as_deref().unwrap_or("(none)");
    let n = v.points.len();
    let head = if v.eligible {
        "ELIGIBLE"
    } else {
        "NOT ELIGIBLE"
    };
    s.push_str(&format!("### {} vs {ref_label}: {head}\n\n", v.line));
    if v.reference_points.is_empty() {
        s.push_str(&format!(
            "- reference curve: missing ({ref_label} has no points for this line)\n"
        ));
    } else {
        let pct = if n == 0 {
            0.0
        } else {
            100.0 * v.above as f64 / n as f64
        };
        s.push_str(&format!(
            "- {} of {n} points beat the {ref_label} line ({pct:.0}%; need ≥ 50%): {}\n",
            v.above,
            if v.half_rule { "yes" } else { "no" }
        ));
    }
    if v.amd_known == 0 {
        s.push_str("- AMD's existing points: none known for this line (rule not applicable)\n");
    } else {
        s.push_str(&format!(
            "- no point below AMD's existing point at the same conc ({} of {n} points have one): {}\n",
            v.amd_known,
            if v.amd_rule { "yes" } else { "no" }
        ));
    }
    s.push_str(&format!(
        "- tie-break: {} points above; Σ throughput ratio {:.3} over {} same-conc points\n",
        v.above, v.sum_tput_ratio, v.ratio_points
    ));
    for r in &v.reasons {
        s.push_str(&format!("- not eligible: {r}\n"));
    }
    let has_target = v.points.iter().any(|p| p.target.is_some());
    s.push_str("\n| Hardware | Framework | TP | Conc | Intvty (tok/s/user) | Tput/GPU | Curve y | Beats line | Ratio (same conc) | AMD point | ");
    if has_target {
        s.push_str("Target | ");
    }
    s.push_str("Accuracy | Reason |\n|---|---|--:|--:|--:|--:|--:|:-:|--:|--:|");
    if has_target {
        s.push_str("---|");
    }
    s.push_str("---|---|\n");
    for p in &v.points {
        let amd = match &p.amd {
            Some(a) => format!(
                "{:.2} {}",
                a.tput_per_gpu,
                if a.ok { "ok" } else { "**BELOW**" }
            ),
            None => "unknown".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | ",
            p.hw,
            p.framework,
            p.tp,
            p.conc,
            fmt_opt(p.intvty, 2),
            p.tput_per_gpu,
            match (p.curve.curve_y, p.curve.above) {
                (Some(y), _) => format!("{y:.2}"),
                (None, true) => "beyond".into(),
                (None, false) => "—".into(),
            },
            if p.curve.above { "yes" } else { "no" },
            p.tput_ratio
                .map(|r| format!("{r:.3}×"))
                .unwrap_or_else(|| "missing".into()),
            amd,
        ));
        if has_target {
            s.push_str(&match &p.target {
                Some(t) => format!("{} | ", t.reason),
                None => "— | ".into(),
            });
        }
        s.push_str(&format!(
            "{} | {} |\n",
            p.accuracy.map(|a| a.as_str()).unwrap_or("—"),
            p.curve.reason.replace('|', "\\|")
        ));
    }
    s.push('\n');
    s
}
