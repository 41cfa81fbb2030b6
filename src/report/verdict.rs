//! The bounty's eligibility verdict, per model × ISL/OSL line, with every rule's outcome in
//! words per point.
//!
//! The bounty (`danielhua23/amdgpu_inferencemax_bounty`, Nov 2025): "≥ 50 % of your curve
//! data points above B200 AND all curve data points must not be lower than AMD's existing
//! performance points on InferenceMAX". Throughput per GPU (y) is plotted against
//! interactivity (x). Where the rule leaves room, the choices below are the ones a judge
//! holding the plot would make, and each is stated in the point's reasons:
//!
//! * **Above the curve.** A point beats the reference line when its y is strictly above the
//!   curve at its x (equal is not above). The curve interpolates linearly between reference
//!   points sorted by x. Left of the lowest reference x it is that point's y. *Right of the
//!   highest reference x it is that point's y too* (flat, not "the point wins whatever its
//!   y"): a point with more interactivity but less throughput than the reference's own
//!   best-interactivity point is a trade-off, not a win — at 0.974× that point's throughput
//!   nobody would call it above the B200 line. Throughput falls as interactivity rises along
//!   a serving curve, so the flat extension is the conservative reading.
//! * **AMD's points.** AMD's point at a conc is, of AMD's existing rows at that conc, the
//!   one with the highest throughput per GPU on the comparison basis ("all points must not be
//!   lower than AMD's existing points": the highest binds). The basis is the bounty
//!   harness's: total throughput over the 8 GPUs of the node (`node_gpus` of the AMD set,
//!   see [`super::baseline::node_basis`]), for AMD's rows and ours alike; a TP8 row's
//!   figure is its `tput_per_gpu` unchanged. Equal is not below.
//! * **Simulated points** (`hw: sim`) are never eligible: they exercise the pipeline.
//! * **Accuracy.** The bounty's harness runs its gsm8k gate before every performance run;
//!   a point without a passing accuracy result (failed, errored, or not run) does not count
//!   and the line is not eligible.
//! * **Failed jobs** are listed with their numbers but make the line not eligible.
//! * **Confidence.** With a 95 % interval for the point ([`super::confidence`]), a point
//!   beats the line *with confidence* when the interval's lower throughput bound is above the
//!   highest curve y across the point's interactivity interval, and clears AMD with
//!   confidence when that lower bound (on the AMD basis) is not below AMD's figure. The line
//!   is eligible with confidence when both halves hold on those bounds. Eligibility itself
//!   is judged at the point estimates, as the bounty does.
//!
//! Ties between submissions are broken by more points above, then by the larger sum of
//! same-conc throughput ratios.

use super::agg::{AccuracyStatus, AggRow};
use super::baseline::{node_basis, BaselineSet, Baselines, LineKey, RefPoint, Role};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// How one point compares with a reference curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurveCmp {
    /// The point beats the curve: its y is strictly above the curve's y at its x.
    pub above: bool,
    /// The curve's y at the point's x; `None` without a curve or an x.
    pub curve_y: Option<f64>,
    /// y / curve y (> 1 above, 1 on the curve).
    pub ratio: Option<f64>,
    /// Why, in words.
    pub reason: String,
}

impl CurveCmp {
    fn not_judged(reason: String) -> Self {
        CurveCmp {
            above: false,
            curve_y: None,
            ratio: None,
            reason,
        }
    }
}

/// The curve's y at `x` (`curve`: reference points sorted by x) and how it was found:
/// interpolated between the neighbouring points, else the y of the nearest end point (left
/// of the curve and right of it alike; see the module doc). `None` for an empty curve.
pub fn curve_y_at(curve: &[&RefPoint], x: f64) -> Option<(f64, String)> {
    let (lo, hi) = (curve.first()?, curve.last()?);
    if x > hi.median_intvty {
        return Some((
            hi.tput_per_gpu,
            format!(
                "x {x:.2} is right of the curve (its highest x is {:.2}, conc {}); the curve is not extrapolated, so its y there is that point's",
                hi.median_intvty, hi.conc
            ),
        ));
    }
    if x < lo.median_intvty {
        return Some((
            lo.tput_per_gpu,
            format!(
                "x {x:.2} is left of the curve (its lowest x is {:.2}, conc {}), so its y there is that point's",
                lo.median_intvty, lo.conc
            ),
        ));
    }
    for w in curve.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.median_intvty <= x && x <= b.median_intvty {
            if b.median_intvty == a.median_intvty {
                return Some((
                    a.tput_per_gpu.max(b.tput_per_gpu),
                    format!("at x {x:.2}, conc {}/{}", a.conc, b.conc),
                ));
            }
            let t = (x - a.median_intvty) / (b.median_intvty - a.median_intvty);
            return Some((
                a.tput_per_gpu + t * (b.tput_per_gpu - a.tput_per_gpu),
                format!(
                    "at x {x:.2}, between conc {} ({:.2}, {:.2}) and conc {} ({:.2}, {:.2})",
                    a.conc,
                    a.median_intvty,
                    a.tput_per_gpu,
                    b.conc,
                    b.median_intvty,
                    b.tput_per_gpu
                ),
            ));
        }
    }
    // A one-point curve and x equal to its x.
    Some((
        lo.tput_per_gpu,
        format!("at the reference point's own x {x:.2} (conc {})", lo.conc),
    ))
}

/// The highest curve y over the interactivity interval `[x_lo, x_hi]` (the curve is piecewise
/// linear, so at an end of the interval or at a reference point inside it).
pub fn curve_max_y(curve: &[&RefPoint], x_lo: f64, x_hi: f64) -> Option<f64> {
    let mut best = curve_y_at(curve, x_lo)?.0.max(curve_y_at(curve, x_hi)?.0);
    for p in curve {
        if x_lo <= p.median_intvty && p.median_intvty <= x_hi {
            best = best.max(p.tput_per_gpu);
        }
    }
    Some(best)
}

/// Compare (x, y) with the curve through `curve` (reference points sorted by x).
pub fn compare_to_curve(curve: &[&RefPoint], x: f64, y: f64) -> CurveCmp {
    let Some((cy, how)) = curve_y_at(curve, x) else {
        return CurveCmp::not_judged("no reference curve".into());
    };
    let above = y > cy;
    let word = if above {
        "above"
    } else if y == cy {
        "not above (equal to the curve; the rule asks for above)"
    } else {
        "not above"
    };
    let ratio = (cy > 0.0).then(|| y / cy);
    CurveCmp {
        above,
        curve_y: Some(cy),
        ratio,
        reason: format!(
            "{word}: y {y:.2} vs curve {cy:.2}{}; {how}",
            ratio.map(|r| format!(" ({r:.3}×)")).unwrap_or_default()
        ),
    }
}

/// The check against AMD's existing point at the same conc.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AmdCheck {
    /// Label of the AMD set the point came from.
    pub label: String,
    /// AMD's throughput per GPU at this conc as published (per GPU of its own TP).
    pub tput_per_gpu: f64,
    /// Which configuration that was, when the source says (`mi355x sglang tp8`).
    pub detail: Option<String>,
    /// GPUs AMD's configuration used, when known.
    pub gpus: Option<u32>,
    /// The comparison basis in words (`per GPU of an 8-GPU node`, `as published`).
    pub basis: String,
    /// AMD's figure on that basis.
    pub amd_figure: f64,
    /// Our figure on that basis.
    pub our_figure: f64,
    /// ours / AMD's, on that basis (≥ 1 passes).
    pub ratio: f64,
    /// Our point is not below AMD's (equal passes).
    pub ok: bool,
    /// The outcome in words.
    pub reason: String,
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

/// The point judged on its 95 % interval instead of its estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfidenceCmp {
    /// Lower bound of throughput per GPU.
    pub tput_lo: f64,
    /// Upper bound of throughput per GPU.
    pub tput_hi: f64,
    /// Lower bound of median interactivity, when known.
    pub intvty_lo: Option<f64>,
    /// Upper bound of median interactivity, when known.
    pub intvty_hi: Option<f64>,
    /// The highest curve y across the interactivity interval (at the point's x without
    /// one); `None` without a curve.
    pub curve_y_max: Option<f64>,
    /// `tput_lo` is above `curve_y_max`: the point beats the line with 95 % confidence.
    pub above: bool,
    /// The lower bound on AMD's basis is not below AMD's figure (`None`: no AMD point).
    pub amd_ok: Option<bool>,
    /// Trials behind the interval.
    pub trials: u32,
    /// In words.
    pub reason: String,
}

/// One point of a line, with every figure the verdict used and every rule's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointRow {
    /// Hardware (runner type).
    pub hw: String,
    /// Serving engine.
    pub framework: String,
    /// Tensor parallel size.
    pub tp: u32,
    /// GPUs the throughput is divided by (tp × pp × pcp).
    pub gpus: u32,
    /// Client concurrency.
    pub conc: u32,
    /// Median interactivity (x), tokens/s/user.
    pub intvty: Option<f64>,
    /// Throughput per GPU (y).
    pub tput_per_gpu: f64,
    /// Median end-to-end latency (ms).
    pub median_e2e_ms: Option<f64>,
    /// Trials the point combines (1 for a single run).
    pub trials: u32,
    /// Ran on the simulated engine (`hw: sim`).
    pub simulated: bool,
    /// Comparison with the reference curve (first half of the rule).
    pub curve: CurveCmp,
    /// Throughput ratio to the reference point at the same conc, when there is one.
    pub tput_ratio: Option<f64>,
    /// AMD's existing point at the same conc, when known (second half of the rule).
    pub amd: Option<AmdCheck>,
    /// Targets at the same conc, when a target set has this line.
    pub target: Option<TargetCheck>,
    /// Accuracy gate outcome of the job (`None`: no accuracy result).
    pub accuracy: Option<AccuracyStatus>,
    /// The point judged on its 95 % interval, when the row has one.
    pub confidence: Option<ConfidenceCmp>,
    /// The point may count towards eligibility: the job passed, it is not simulated, and
    /// its accuracy gate passed.
    pub counts: bool,
    /// The point's verdict in one sentence.
    pub verdict: String,
    /// Every rule's outcome for this point, one sentence each.
    pub reasons: Vec<String>,
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
    /// AMD's point per conc of this line (the chosen ones, sorted by conc), for plots.
    pub amd_points: Vec<RefPoint>,
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
    /// Every point has a passing accuracy result.
    pub accuracy_rule: bool,
    /// Points that ran on the simulated engine.
    pub simulated: usize,
    /// Both halves of the rule hold, every point counts (accuracy passed, job passed, not
    /// simulated) and a reference curve exists.
    pub eligible: bool,
    /// Points beating the curve with 95 % confidence; `None` when a point has no interval.
    pub above_with_confidence: Option<usize>,
    /// `eligible`, and both halves also hold on the intervals' lower bounds; `None` when a
    /// point has no interval.
    pub eligible_with_confidence: Option<bool>,
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

fn basis_words(node_gpus: Option<u32>) -> String {
    match node_gpus {
        Some(n) => format!("per GPU of a node of {n} GPUs"),
        None => "per GPU as published".into(),
    }
}

fn amd_check(set: &BaselineSet, p: &RefPoint, r: &AggRow) -> AmdCheck {
    let amd_figure = p.basis_tput(set.node_gpus);
    let our_figure = node_basis(r.tput_per_gpu, r.num_gpus(), set.node_gpus);
    let ok = our_figure >= amd_figure;
    let ratio = if amd_figure > 0.0 {
        our_figure / amd_figure
    } else {
        f64::INFINITY
    };
    let basis = basis_words(set.node_gpus);
    let what = p.detail.as_deref().unwrap_or("AMD");
    let published = match (p.gpus, set.node_gpus) {
        (Some(g), Some(n)) if g < n => format!(
            " ({:.2} per GPU of its {g} GPUs as published, over {n} GPUs {amd_figure:.2})",
            p.tput_per_gpu
        ),
        _ => String::new(),
    };
    let ours = if (our_figure - r.tput_per_gpu).abs() > 1e-9 * r.tput_per_gpu.abs() {
        format!(
            "{our_figure:.2} ({:.2} per GPU of our {} GPUs over the node)",
            r.tput_per_gpu,
            r.num_gpus()
        )
    } else {
        format!("{our_figure:.2}")
    };
    let reason = format!(
        "{}: ours {ours} vs AMD's {amd_figure:.2} tok/s/GPU{published} at conc {} ({what}, {}; {basis}), {ratio:.3}×",
        if ok { "not below AMD" } else { "BELOW AMD" },
        r.conc,
        set.label
    );
    AmdCheck {
        label: set.label.clone(),
        tput_per_gpu: p.tput_per_gpu,
        detail: p.detail.clone(),
        gpus: p.gpus,
        basis,
        amd_figure,
        our_figure,
        ratio,
        ok,
        reason,
    }
}

fn confidence_cmp(
    curve: &[&RefPoint],
    r: &AggRow,
    amd: Option<(&BaselineSet, &AmdCheck)>,
    estimate_above: bool,
) -> Option<ConfidenceCmp> {
    let c = r.confidence.as_ref()?;
    let t = c.tput_per_gpu?;
    let (xl, xh) = match (c.median_intvty, r.median_intvty()) {
        (Some(i), _) => (Some(i.lo), Some(i.hi)),
        (None, Some(x)) => (Some(x), Some(x)),
        (None, None) => (None, None),
    };
    let cy = match (xl, xh) {
        (Some(l), Some(h)) => curve_max_y(curve, l, h),
        _ => None,
    };
    let above = cy.is_some_and(|cy| t.lo > cy);
    let amd_ok = amd.map(|(s, a)| node_basis(t.lo, r.num_gpus(), s.node_gpus) >= a.amd_figure);
    let x_words = match (c.median_intvty, xl) {
        (Some(i), _) => format!("interactivity {:.2}–{:.2}", i.lo, i.hi),
        (None, Some(x)) => format!("interactivity {x:.2}"),
        _ => "no interactivity".into(),
    };
    let curve_words = match cy {
        Some(cy) => format!(
            "lower bound {:.2} {} the highest curve y {cy:.2} across {x_words}",
            t.lo,
            if above { "is above" } else { "is not above" }
        ),
        None => "no curve to compare the bounds with".into(),
    };
    let amd_words = match (amd, amd_ok) {
        (Some((_, a)), Some(ok)) => format!(
            "; lower bound on AMD's basis {} AMD's {:.2}",
            if ok { "is not below" } else { "is below" },
            a.amd_figure
        ),
        _ => String::new(),
    };
    let trials = if c.trials > 1 {
        format!("{} trials", c.trials)
    } else {
        format!("{} requests", c.requests.first().copied().unwrap_or(0))
    };
    Some(ConfidenceCmp {
        tput_lo: t.lo,
        tput_hi: t.hi,
        intvty_lo: c.median_intvty.map(|i| i.lo),
        intvty_hi: c.median_intvty.map(|i| i.hi),
        curve_y_max: cy,
        above,
        amd_ok,
        trials: c.trials,
        reason: format!(
            "95 % interval of tput/GPU {:.2}–{:.2} ({trials}): {curve_words}{amd_words} — {}",
            t.lo,
            t.hi,
            match (above, amd_ok) {
                (true, Some(false)) =>
                    "beats the line with confidence, but not clear of AMD with confidence",
                (true, _) => "beats the line with confidence",
                (false, _) if estimate_above => "beats the line only at the point estimate",
                (false, _) => "does not beat the line",
            }
        ),
    })
}

fn accuracy_sentence(r: &AggRow) -> String {
    const WHY: &str = "the point does not count (the bounty's harness passes its gsm8k gate before every performance run; run with --accuracy gsm8k)";
    let Some(a) = &r.accuracy else {
        return format!("accuracy: no result: {WHY}");
    };
    let figures: Vec<String> = a
        .metrics
        .iter()
        .map(|(k, v)| match a.threshold.get(k) {
            Some(t) => format!("{k} {v:.4} vs threshold {t:.4}"),
            None => format!("{k} {v:.4}"),
        })
        .collect();
    let figures = if figures.is_empty() {
        String::new()
    } else {
        format!(" ({})", figures.join(", "))
    };
    match a.status {
        AccuracyStatus::Pass => format!("accuracy: {} passed{figures}", a.task),
        AccuracyStatus::Fail => format!(
            "accuracy: {} FAILED{figures}: the point does not count",
            a.task
        ),
        AccuracyStatus::Error => format!("accuracy: the {} evaluation errored: {WHY}", a.task),
        AccuracyStatus::NotRun => format!("accuracy: not run: {WHY}"),
    }
}

fn line_verdict(line: LineKey, rows: &[&AggRow], baselines: &Baselines) -> LineVerdict {
    let reference = baselines.reference();
    let ref_label = reference.map(|s| s.label.as_str()).unwrap_or("reference");
    let curve: Vec<&RefPoint> = reference.map(|s| s.curve(&line)).unwrap_or_default();
    let targets: Vec<&BaselineSet> = baselines.with_role(Role::Target).collect();
    let mut sorted: Vec<&AggRow> = rows.to_vec();
    sorted.sort_by(|a, b| {
        (&a.hw, &a.framework, a.tp, a.conc).cmp(&(&b.hw, &b.framework, b.tp, b.conc))
    });
    let mut points = Vec::new();
    for r in sorted {
        let x = r.median_intvty();
        let failed = r
            .failure
            .as_ref()
            .map(|f| format!("the job failed ({} stage, exit {})", f.stage, f.exit_code));
        let curve_cmp = match (&failed, x, curve.is_empty()) {
            // A failed job's numbers are kept for diagnosis, never counted.
            (Some(f), _, _) => CurveCmp::not_judged(f.clone()),
            (None, _, true) => CurveCmp::not_judged(match reference {
                Some(s) => format!("missing: {} has no {line} points", s.label),
                None => "missing: no reference baseline is loaded".into(),
            }),
            (None, None, false) => CurveCmp::not_judged(
                "no median interactivity in the agg row (zero or missing TPOT)".into(),
            ),
            (None, Some(x), false) => compare_to_curve(&curve, x, r.tput_per_gpu),
        };
        let tput_ratio = reference
            .and_then(|s| s.point(&line, r.conc))
            .map(|p| r.tput_per_gpu / p.tput_per_gpu);
        let amd_set = baselines.amd_point(&line, r.conc);
        let amd = amd_set.map(|(s, p)| amd_check(s, p, r));
        let confidence = confidence_cmp(
            &curve,
            r,
            amd_set.map(|(s, _)| s).zip(amd.as_ref()),
            curve_cmp.above,
        );
        let target = targets
            .iter()
            .find_map(|s| s.point(&line, r.conc).map(|p| (s, p)))
            .map(|(s, p)| target_check(s, p, r));
        let simulated = r.is_simulated();
        let accuracy = r.accuracy.as_ref().map(|a| a.status);
        let counts = failed.is_none() && !simulated && accuracy == Some(AccuracyStatus::Pass);

        let mut reasons = vec![format!("{ref_label} line: {}", curve_cmp.reason)];
        reasons.push(match &amd {
            Some(a) => a.reason.clone(),
            None => format!(
                "AMD: no existing point known at conc {} for {line} (this half of the rule does not apply)",
                r.conc
            ),
        });
        reasons.push(accuracy_sentence(r));
        if simulated {
            reasons.push(
                "simulated engine (hw: sim): the figures exercise the pipeline and measure no hardware; never eligible".into(),
            );
        }
        match (&confidence, &r.confidence) {
            (Some(c), _) => reasons.push(c.reason.clone()),
            (None, Some(_)) => reasons
                .push("confidence: the interval has no throughput bound".into()),
            (None, None) => reasons.push(
                "confidence: no interval (the row has no per-request data); judged at the point estimate only".into(),
            ),
        }
        if let Some(c) = &r.confidence {
            reasons.extend(c.warnings.iter().map(|w| format!("warning: {w}")));
        }
        let verdict = point_sentence(
            ref_label,
            &curve_cmp,
            failed.as_deref(),
            amd.as_ref(),
            confidence.as_ref(),
            counts,
        );
        points.push(PointRow {
            hw: r.hw.clone(),
            framework: r.framework.clone(),
            tp: r.tp,
            gpus: r.num_gpus(),
            conc: r.conc,
            intvty: x,
            tput_per_gpu: r.tput_per_gpu,
            median_e2e_ms: r.median_e2el_ms(),
            trials: r.confidence.as_ref().map(|c| c.trials).unwrap_or(1).max(1),
            simulated,
            curve: curve_cmp,
            tput_ratio,
            amd,
            target,
            accuracy,
            confidence,
            counts,
            verdict,
            reasons,
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
    let no_accuracy: Vec<&PointRow> = points
        .iter()
        .filter(|p| p.accuracy != Some(AccuracyStatus::Pass))
        .collect();
    let accuracy_rule = no_accuracy.is_empty();
    let simulated = points.iter().filter(|p| p.simulated).count();
    let ratios: Vec<f64> = points.iter().filter_map(|p| p.tput_ratio).collect();
    let mut reasons = Vec::new();
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
    let who = |p: &PointRow| format!("conc {} ({} {} tp{})", p.conc, p.hw, p.framework, p.tp);
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
            "{}: {:.2} tok/s/GPU is below AMD's existing {:.2} ({}; {})",
            who(p),
            a.our_figure,
            a.amd_figure,
            a.label,
            a.basis
        ));
    }
    if simulated > 0 {
        reasons.push(format!(
            "{simulated} of {n} points ran on the simulated engine (hw: sim): a simulated line is never eligible"
        ));
    }
    if !no_accuracy.is_empty() {
        let list: Vec<String> = no_accuracy
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    who(p),
                    p.accuracy.map(|a| a.as_str()).unwrap_or("no result")
                )
            })
            .collect();
        reasons.push(format!(
            "accuracy: every point needs a passing accuracy result: {}",
            list.join(", ")
        ));
    }
    let eligible = half_rule
        && amd_rule
        && accuracy_rule
        && simulated == 0
        && rows.iter().all(|r| r.failure.is_none());
    let all_ci = n > 0 && points.iter().all(|p| p.confidence.is_some());
    let above_with_confidence = all_ci.then(|| {
        points
            .iter()
            .filter(|p| p.confidence.as_ref().is_some_and(|c| c.above))
            .count()
    });
    let eligible_with_confidence = above_with_confidence.map(|k| {
        eligible
            && 2 * k >= n
            && points
                .iter()
                .all(|p| p.confidence.as_ref().and_then(|c| c.amd_ok) != Some(false))
    });
    let mut amd_points: Vec<RefPoint> = points
        .iter()
        .filter_map(|p| baselines.amd_point(&line, p.conc).map(|(_, a)| a.clone()))
        .collect();
    amd_points.sort_by_key(|p| p.conc);
    amd_points.dedup_by_key(|p| p.conc);
    LineVerdict {
        reference: reference.map(|s| s.label.clone()),
        reference_points: curve.iter().map(|p| (*p).clone()).collect(),
        amd_points,
        line,
        points,
        above,
        half_rule,
        amd_known,
        amd_rule,
        accuracy_rule,
        simulated,
        eligible,
        above_with_confidence,
        eligible_with_confidence,
        // fold from +0.0: an empty f64 sum is -0.0, which prints as "-0.000".
        sum_tput_ratio: ratios.iter().fold(0.0, |a, b| a + b),
        ratio_points: ratios.len(),
        reasons,
    }
}

/// A point's verdict in one sentence: both halves of the rule, with the figures.
fn point_sentence(
    ref_label: &str,
    c: &CurveCmp,
    failed: Option<&str>,
    amd: Option<&AmdCheck>,
    conf: Option<&ConfidenceCmp>,
    counts: bool,
) -> String {
    if let Some(f) = failed {
        return format!("{f}: not counted");
    }
    let first = match (c.curve_y, c.ratio) {
        (Some(cy), Some(r)) => format!(
            "{} the {ref_label} line ({r:.3}× its {cy:.2} tok/s/GPU at this interactivity)",
            if c.above { "beats" } else { "does not beat" }
        ),
        _ => format!(
            "cannot be compared with the {ref_label} line ({})",
            c.reason
        ),
    };
    let conf = match conf {
        Some(k) if k.above => ", with 95 % confidence".to_string(),
        Some(_) if c.above => ", but not with 95 % confidence".to_string(),
        _ => String::new(),
    };
    let second = match amd {
        Some(a) => format!(
            "{} AMD's existing point ({:.3}× its {:.2}, {})",
            if a.ok { "not below" } else { "BELOW" },
            a.ratio,
            a.amd_figure,
            a.detail.as_deref().unwrap_or(&a.label)
        ),
        None => "no AMD point known at this conc".into(),
    };
    let counts = if counts {
        ""
    } else {
        " (the point does not count: see the reasons)"
    };
    format!("{first}{conf}; {second}{counts}")
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

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The verdict of one line as Markdown: a headline, one bullet per rule, the per-point
/// table and each point's verdict in words.
pub fn verdict_markdown(v: &LineVerdict) -> String {
    let mut s = String::new();
    let ref_label = v.reference.as_deref().unwrap_or("(none)");
    let n = v.points.len();
    let head = match (v.eligible, v.eligible_with_confidence) {
        (true, Some(true)) => "ELIGIBLE (with 95 % confidence)",
        (true, Some(false)) => "ELIGIBLE at the point estimates, not with 95 % confidence",
        (true, None) => "ELIGIBLE",
        (false, _) => "NOT ELIGIBLE",
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
            yes_no(v.half_rule)
        ));
        if let Some(k) = v.above_with_confidence {
            s.push_str(&format!(
                "- with 95 % confidence (lower throughput bound above the curve across the interactivity interval): {k} of {n}\n"
            ));
        }
    }
    if v.amd_known == 0 {
        s.push_str("- AMD's existing points: none known for this line (rule not applicable)\n");
    } else {
        s.push_str(&format!(
            "- no point below AMD's existing point at the same conc ({} of {n} points have one): {}\n",
            v.amd_known,
            yes_no(v.amd_rule)
        ));
    }
    s.push_str(&format!(
        "- every point has a passing accuracy result: {}\n",
        yes_no(v.accuracy_rule)
    ));
    if v.simulated > 0 {
        s.push_str(&format!(
            "- simulated engine: {} of {n} points (never eligible)\n",
            v.simulated
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
    s.push_str("\n| Hardware | Framework | TP | Conc | Intvty (tok/s/user) | Tput/GPU | Tput/GPU 95 % CI | Curve y | Beats line | With 95 % conf. | Ratio (same conc) | AMD point | vs AMD | ");
    if has_target {
        s.push_str("Target | ");
    }
    s.push_str("Accuracy | Reason |\n|---|---|--:|--:|--:|--:|--:|--:|:-:|:-:|--:|--:|--:|");
    if has_target {
        s.push_str("---|");
    }
    s.push_str("---|---|\n");
    for p in &v.points {
        let (amd, vs) = match &p.amd {
            Some(a) => (
                format!("{:.2}", a.amd_figure),
                format!("{:.3}× {}", a.ratio, if a.ok { "ok" } else { "**BELOW**" }),
            ),
            None => ("unknown".into(), "—".into()),
        };
        let (ci, conf) = match &p.confidence {
            Some(c) => (
                format!("{:.2}–{:.2}", c.tput_lo, c.tput_hi),
                yes_no(c.above).to_string(),
            ),
            None => ("—".into(), "—".into()),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} | {ci} | {} | {} | {conf} | {} | {amd} | {vs} | ",
            p.hw,
            p.framework,
            p.tp,
            p.conc,
            fmt_opt(p.intvty, 2),
            p.tput_per_gpu,
            match p.curve.curve_y {
                Some(y) => format!("{y:.2}"),
                None => "—".into(),
            },
            yes_no(p.curve.above),
            p.tput_ratio
                .map(|r| format!("{r:.3}×"))
                .unwrap_or_else(|| "missing".into()),
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
    for p in &v.points {
        s.push_str(&format!(
            "- **conc {} ({} {} tp{})**: {}\n",
            p.conc, p.hw, p.framework, p.tp, p.verdict
        ));
        for r in &p.reasons {
            s.push_str(&format!("  - {r}\n"));
        }
    }
    s.push('\n');
    s
}

/// One point's verdict in words for a job's `summary.md`: both halves of the rule, by
/// which figures, and whether the point counts.
pub fn point_markdown(v: &LineVerdict) -> String {
    let mut s = String::from("### Verdict\n\n");
    let ref_label = v.reference.as_deref().unwrap_or("(no reference)");
    for p in &v.points {
        s.push_str(&format!(
            "This point (conc {}, {} {} tp{}) {}.\n\n",
            p.conc, p.hw, p.framework, p.tp, p.verdict
        ));
        for r in &p.reasons {
            s.push_str(&format!("- {r}\n"));
        }
    }
    if v.reference_points.is_empty() {
        s.push_str(&format!(
            "- {ref_label} has no points for {}: the first half of the rule cannot be judged\n",
            v.line
        ));
    }
    s.push_str(
        "\nEligibility is judged per line (at least half the points above the reference line, none below AMD's point at the same conc): run the whole line and `runner report`.\n\n",
    );
    s
}
