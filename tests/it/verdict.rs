//! The eligibility verdict's rule choices, each on hand-computed cases against the shipped
//! data (B200 `nv1126` curve, AMD's MI355X InferenceMAX points): interpolation, the ends of
//! the curve, equality, AMD's point per conc and its 8-GPU basis, missing accuracy,
//! simulated rows, and judging with confidence intervals.

use crate::report::{bench, gsm8k, job_row, point, shipped};
use infmax::report::confidence::{Confidence, Interval};
use infmax::report::verdict::{curve_max_y, verdict_markdown};
use infmax::report::{agg_row, verdict, AccuracyStatus, AggInputs, AggRow, LineKey};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-6 * b.abs().max(1.0), "{a} != {b}");
}

const DSR1_1K1K: (&str, &str, &str, u32, u32) = ("dsr1", "fp4", "none", 1024, 1024);

fn dsr1_line() -> LineKey {
    let (f, p, s, i, o) = DSR1_1K1K;
    LineKey::new(f, p, s, i, o)
}

#[test]
fn amd_points_per_conc_are_the_best_on_the_8_gpu_basis() {
    let b = shipped();
    // Hand-computed from the shipped rows: tput_per_gpu × tp / 8, the best per conc (the
    // TP8 row everywhere; e.g. DSR1 1k/1k conc 4: TP4 127.121 × 4 / 8 = 63.56 < TP8 75.33).
    let want: [(&str, u32, u32, [f64; 5]); 6] = [
        ("dsr1", 1024, 1024, [75.33, 139.86, 244.65, 404.95, 623.25]),
        ("dsr1", 1024, 8192, [42.32, 79.99, 142.85, 231.87, 366.26]),
        (
            "dsr1",
            8192,
            1024,
            [294.72, 513.50, 794.80, 1096.39, 1470.90],
        ),
        (
            "gptoss",
            1024,
            1024,
            [266.11, 508.37, 919.78, 1565.92, 2585.74],
        ),
        (
            "gptoss",
            1024,
            8192,
            [156.46, 299.14, 539.60, 948.87, 1605.73],
        ),
        (
            "gptoss",
            8192,
            1024,
            [1155.11, 2089.53, 3466.55, 5278.11, 7861.21],
        ),
    ];
    for (fam, isl, osl, ys) in want {
        let line = LineKey::new(fam, "fp4", "none", isl, osl);
        for (conc, y) in [4, 8, 16, 32, 64].into_iter().zip(ys) {
            let (set, p) = b.amd_point(&line, conc).unwrap();
            assert_eq!(set.label, "mi355x-inferencemax-2511");
            assert_eq!(set.node_gpus, Some(8));
            assert!(
                (p.basis_tput(set.node_gpus) - y).abs() < 0.006,
                "{line} c{conc}"
            );
            assert_eq!(p.gpus, Some(8), "{line} c{conc}");
            assert!(p.detail.as_deref().unwrap().ends_with("tp8"));
        }
    }
    // Every row is kept for the plots; the TP4 conc-4 row is there as published.
    let set = b
        .sets
        .iter()
        .find(|s| s.label == "mi355x-inferencemax-2511")
        .unwrap();
    let line = dsr1_line();
    let rows: Vec<_> = set
        .rows
        .iter()
        .filter(|p| p.model == line.model && p.isl == 1024 && p.osl == 1024)
        .collect();
    assert_eq!(rows.len(), 10);
    let tp4 = rows
        .iter()
        .find(|p| p.conc == 4 && p.gpus == Some(4))
        .unwrap();
    close(tp4.tput_per_gpu, 127.12127879606574);
    close(tp4.basis_tput(Some(8)), 127.12127879606574 / 2.0);
    // Without AMD data for a line the second half does not apply.
    assert!(b
        .amd_point(&LineKey::new("dsr1", "fp8", "none", 1024, 1024), 4)
        .is_none());
}

#[test]
fn amd_half_below_equal_and_smaller_tp() {
    let b = shipped();
    let amd8 = 139.86221075217122; // TP8 conc 8, as shipped
                                   // x 100: the B200 curve is at 305.65 there (see the interpolation test); these points
                                   // are all below it, so only the AMD half differs.
    let below = point("dsr1", 8, 100.0, 139.0, &b);
    let equal = point("dsr1", 8, 100.0, amd8, &b);
    let v = &verdict(&[below], &b)[0];
    let a = v.points[0].amd.as_ref().unwrap();
    assert!(!a.ok && !v.amd_rule && !v.eligible);
    close(a.amd_figure, amd8);
    close(a.ratio, 139.0 / amd8);
    assert_eq!(a.basis, "per GPU of a node of 8 GPUs");
    assert!(
        a.reason.starts_with("BELOW AMD: ours 139.00 vs AMD's 139.86 tok/s/GPU at conc 8 (mi355x sglang tp8, mi355x-inferencemax-2511; per GPU of a node of 8 GPUs), 0.994×"),
        "{}",
        a.reason
    );
    let v = &verdict(&[equal], &b)[0];
    assert!(v.points[0].amd.as_ref().unwrap().ok, "equal is not below");
    assert!(v.amd_rule);
    // A TP4 point of 250 tok/s/GPU is 125 per GPU of the 8-GPU node: below AMD's 139.86.
    let row = job_row("dsr1", "mi355x", "sglang", 4, 1, 8);
    let inputs = AggInputs {
        accuracy: Some(gsm8k(0.95, None, AccuracyStatus::Pass)),
        ..AggInputs::default()
    };
    let tp4 = agg_row(&bench(8, 1000.0, 500.0, 10.0, 5000.0), &row, &inputs, &b).unwrap();
    close(tp4.tput_per_gpu, 250.0);
    let v = &verdict(&[tp4], &b)[0];
    let a = v.points[0].amd.as_ref().unwrap();
    close(a.our_figure, 125.0);
    assert!(!a.ok);
    assert!(
        a.reason
            .contains("ours 125.00 (250.00 per GPU of our 4 GPUs over the node)"),
        "{}",
        a.reason
    );
}

#[test]
fn curve_half_interpolation_ends_and_equality_on_the_b200_curve() {
    let b = shipped();
    // B200 dsr1 1k/1k by x: c64 (55.476, 794.151), c32 (71.142, 525.082),
    // c16 (83.567, 344.564), c8 (114.603, 271.064), c4 (135.46, 131.424).
    // x 100: t = (100 − 83.567) / (114.603 − 83.567) = 0.529482;
    // y = 344.564 − 0.529482 × 73.5 = 305.6471.
    let cases: [(u32, f64, f64, bool, f64); 7] = [
        (8, 100.0, 310.0, true, 305.6470809),
        (8, 100.0, 300.0, false, 305.6470809),
        // Left of the curve: its leftmost y.
        (64, 50.0, 794.152, true, 794.151),
        (64, 50.0, 794.151, false, 794.151),
        // Right of the curve: its rightmost y (not "always above"): 0.974 × 131.424.
        (4, 150.0, 128.006976, false, 131.424),
        (4, 150.0, 131.424, false, 131.424),
        (4, 150.0, 131.5, true, 131.424),
    ];
    for (conc, x, y, above, cy) in cases {
        let v = &verdict(&[point("dsr1", conc, x, y, &b)], &b)[0];
        let c = &v.points[0].curve;
        assert_eq!(c.above, above, "x {x} y {y}: {}", c.reason);
        close(c.curve_y.unwrap(), cy);
        close(c.ratio.unwrap(), y / cy);
    }
    let v = &verdict(&[point("dsr1", 4, 150.0, 128.006976, &b)], &b)[0];
    assert_eq!(
        v.points[0].curve.reason,
        "not above: y 128.01 vs curve 131.42 (0.974×); x 150.00 is right of the curve (its highest x is 135.46, conc 4); the curve is not extrapolated, so its y there is that point's"
    );
    let v = &verdict(&[point("dsr1", 4, 150.0, 131.424, &b)], &b)[0];
    assert!(v.points[0]
        .curve
        .reason
        .starts_with("not above (equal to the curve; the rule asks for above)"));
    let v = &verdict(&[point("dsr1", 8, 100.0, 310.0, &b)], &b)[0];
    assert!(v.eligible, "{:?}", v.reasons);
    assert!(v.points[0].verdict.starts_with(
        "beats the b200-nv1126 line (1.014× its 305.65 tok/s/GPU at this interactivity); not below AMD's existing point (2.216× its 139.86, mi355x sglang tp8)"
    ), "{}", v.points[0].verdict);
}

#[test]
fn a_point_without_a_passing_accuracy_result_does_not_count() {
    let b = shipped();
    for (acc, words) in [
        (None, "accuracy: no result: the point does not count"),
        (
            Some(gsm8k(0.5, None, AccuracyStatus::NotRun)),
            "accuracy: not run: the point does not count",
        ),
        (
            Some(gsm8k(0.0, None, AccuracyStatus::Error)),
            "accuracy: the gsm8k evaluation errored: the point does not count",
        ),
        (
            Some(gsm8k(0.5, None, AccuracyStatus::Fail)),
            "accuracy: gsm8k FAILED (exact_match 0.5000 vs threshold 0.9300): the point does not count",
        ),
    ] {
        let mut r = point("dsr1", 8, 100.0, 310.0, &b);
        r.accuracy = acc;
        let v = &verdict(&[r], &b)[0];
        let p = &v.points[0];
        assert!(p.curve.above && v.half_rule && v.amd_rule, "figures still judged");
        assert!(!p.counts && !v.accuracy_rule && !v.eligible);
        assert!(p.reasons.iter().any(|s| s.starts_with(words)), "{:?}", p.reasons);
        assert!(v.reasons.iter().any(|s| s.starts_with(
            "accuracy: every point needs a passing accuracy result: conc 8 (mi355x sglang tp8)"
        )));
    }
}

#[test]
fn simulated_points_are_never_eligible() {
    let b = shipped();
    let mut r = point("dsr1", 8, 100.0, 310.0, &b);
    r.hw = "sim".into();
    let v = &verdict(&[r], &b)[0];
    assert!(v.half_rule && v.amd_rule && v.accuracy_rule);
    assert_eq!(v.simulated, 1);
    assert!(!v.eligible && !v.points[0].counts);
    assert!(v.reasons.contains(
        &"1 of 1 points ran on the simulated engine (hw: sim): a simulated line is never eligible"
            .to_string()
    ));
    let md = verdict_markdown(v);
    assert!(md.contains(": NOT ELIGIBLE\n"), "{md}");
    assert!(md.contains("- simulated engine: 1 of 1 points (never eligible)"));
}

fn with_ci(mut r: AggRow, tput: (f64, f64), intvty: (f64, f64), trials: u32) -> AggRow {
    let est = r.tput_per_gpu;
    let x = r.median_intvty().unwrap();
    r.confidence = Some(Confidence {
        level: 0.95,
        method: "test".into(),
        resamples: 2000,
        seed: 0,
        trials,
        requests: vec![80; trials as usize],
        median_ttft_ms: None,
        median_tpot_ms: None,
        median_intvty: Some(Interval {
            estimate: x,
            lo: intvty.0,
            hi: intvty.1,
        }),
        median_e2el_ms: None,
        output_throughput: None,
        output_tput_per_gpu: None,
        tput_per_gpu: Some(Interval {
            estimate: est,
            lo: tput.0,
            hi: tput.1,
        }),
        warnings: vec![],
    });
    r
}

#[test]
fn beating_the_line_with_confidence_uses_the_lower_bound_across_the_x_interval() {
    let b = shipped();
    let line = dsr1_line();
    let curve = b.reference().unwrap().curve(&line);
    // The B200 curve falls with x, so its highest y over [70, 72] is at x 70:
    // between c64 (55.476, 794.151) and c32 (71.142, 525.082):
    // 794.151 + (70 − 55.476) / 15.666 × (−269.069) = 544.6962.
    close(curve_max_y(&curve, 70.0, 72.0).unwrap(), 544.6962472871185);
    // x 72: curve 512.6165. Estimate 560 beats it; lower bound 550 > 544.70: with confidence.
    let sure = with_ci(
        point("dsr1", 32, 72.0, 560.0, &b),
        (550.0, 570.0),
        (70.0, 74.0),
        1,
    );
    // Lower bound 530 < 544.70: only at the point estimate.
    let unsure = with_ci(
        point("dsr1", 32, 72.0, 560.0, &b),
        (530.0, 590.0),
        (70.0, 74.0),
        2,
    );
    let v = &verdict(std::slice::from_ref(&sure), &b)[0];
    let c = v.points[0].confidence.as_ref().unwrap();
    assert!(c.above && c.amd_ok == Some(true));
    close(c.curve_y_max.unwrap(), 544.6962472871185);
    assert_eq!(v.above_with_confidence, Some(1));
    assert_eq!(v.eligible_with_confidence, Some(true));
    assert!(verdict_markdown(v).contains(": ELIGIBLE (with 95 % confidence)"));
    assert!(v.points[0].verdict.contains(", with 95 % confidence;"));
    let v = &verdict(&[unsure], &b)[0];
    let c = v.points[0].confidence.as_ref().unwrap();
    assert!(!c.above && v.points[0].curve.above);
    assert!(
        c.reason
            .ends_with("beats the line only at the point estimate"),
        "{}",
        c.reason
    );
    assert!(c.reason.contains("(2 trials)"));
    assert_eq!(v.eligible_with_confidence, Some(false));
    assert!(
        verdict_markdown(v).contains(": ELIGIBLE at the point estimates, not with 95 % confidence")
    );
    // A line where one point has no interval cannot be judged with confidence.
    let plain = point("dsr1", 64, 50.0, 800.0, &b);
    let v = &verdict(&[sure, plain], &b)[0];
    assert_eq!(
        (v.above_with_confidence, v.eligible_with_confidence),
        (None, None)
    );
}

#[test]
fn a_jobs_summary_states_its_points_verdict_in_words() {
    let b = shipped();
    let d = tempfile::tempdir().unwrap();
    let r = point("dsr1", 8, 100.0, 310.0, &b);
    let md = infmax::report::write_job_outputs_judged(d.path(), &r, Some(&b)).unwrap();
    assert_eq!(
        md,
        std::fs::read_to_string(d.path().join("summary.md")).unwrap()
    );
    assert!(
        md.contains("This point (conc 8, mi355x sglang tp8) beats the b200-nv1126 line (1.014× its 305.65 tok/s/GPU at this interactivity); not below AMD's existing point (2.216× its 139.86, mi355x sglang tp8).\n"),
        "{md}"
    );
    assert!(md.contains("- accuracy: gsm8k passed (exact_match 0.9500 vs threshold 0.9300)"));
    assert!(md.contains("- confidence: no interval (the row has no per-request data)"));
    // Below both: said so, with the figures.
    let r = point("dsr1", 8, 100.0, 139.0, &b);
    let md = infmax::report::write_job_outputs_judged(d.path(), &r, Some(&b)).unwrap();
    assert!(
        md.contains("does not beat the b200-nv1126 line (0.455× its 305.65 tok/s/GPU at this interactivity); BELOW AMD's existing point (0.994× its 139.86, mi355x sglang tp8)"),
        "{md}"
    );
}
