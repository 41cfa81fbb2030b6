//! Reports: the agg row's arithmetic against hand-computed numbers, baselines (shipped data,
//! the AMD agg-rows format from a fixture), the eligibility verdict on hand-checked cases,
//! summaries, plots, and `runner report` end to end.

use crate::util::fixture;
use infmax::config::row::JobRow;
use infmax::report::verdict::{compare_to_curve, verdict_markdown};
use infmax::report::{
    agg_row, summary_markdown, verdict, AccuracyRecord, AccuracyStatus, AggInputs, AggRow,
    BaselineRecord, Baselines, LineKey, SummaryRow,
};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

/// A benchmark_serving.py-shaped result (keys in the reference's order).
pub fn bench(conc: u32, total_tput: f64, output_tput: f64, tpot_ms: f64, e2el_ms: f64) -> Value {
    json!({
        "date": "20251126-120000", "backend": "vllm",
        "model_id": "amd/DeepSeek-R1-0528-MXFP4-Preview",
        "tokenizer_id": "amd/DeepSeek-R1-0528-MXFP4-Preview", "best_of": 1,
        "num_prompts": conc * 10, "request_rate": "inf", "burstiness": 1.0,
        "max_concurrency": conc, "duration": 100.0, "completed": conc * 10,
        "total_input_tokens": 163840, "total_output_tokens": 163840,
        "request_throughput": 1.6, "request_goodput:": null,
        "output_throughput": output_tput, "total_token_throughput": total_tput,
        "mean_ttft_ms": 300.0, "median_ttft_ms": 250.0, "std_ttft_ms": 50.0, "p99_ttft_ms": 900.0,
        "mean_tpot_ms": 10.0, "median_tpot_ms": tpot_ms, "std_tpot_ms": 0.0, "p99_tpot_ms": 20.0,
        "mean_itl_ms": 10.0, "median_itl_ms": 8.0, "std_itl_ms": 1.0, "p99.9_itl_ms": 40.0,
        "mean_e2el_ms": 13500.0, "median_e2el_ms": e2el_ms, "std_e2el_ms": 100.0, "p99_e2el_ms": 15000.0
    })
}

/// A schema-B job row.
pub fn job_row(prefix: &str, runner: &str, framework: &str, tp: u32, pp: u32, conc: u32) -> JobRow {
    let text = json!({
        "image": "rocm/sgl-dev:fixture", "model": "amd/DeepSeek-R1-0528-MXFP4-Preview",
        "model-prefix": prefix, "precision": "fp4", "framework": framework, "runner": runner,
        "isl": 1024, "osl": 1024, "tp": tp, "pp": pp, "dcp-size": 1, "pcp-size": 1,
        "conc": conc, "max-model-len": 2304, "ep": 1, "dp-attn": false,
        "spec-decoding": "none", "exp-name": format!("{prefix}_1k1k"), "disagg": false,
        "run-eval": false
    })
    .to_string();
    JobRow::parse("row.json", &text).unwrap()
}

/// The shipped baselines.
pub fn shipped() -> Baselines {
    Baselines::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("baselines")).unwrap()
}

/// An agg row placed at (x = interactivity, y = tput/GPU) on tp 8 (the bounty's node, so
/// its figure on AMD's basis is y too), with a passing gsm8k gate.
pub fn point(prefix: &str, conc: u32, x: f64, y: f64, b: &Baselines) -> AggRow {
    let row = job_row(prefix, "mi355x", "sglang", 8, 1, conc);
    let inputs = AggInputs {
        recipe_fingerprint: format!("fp-{prefix}-c{conc}"),
        accuracy: Some(gsm8k(0.95, None, AccuracyStatus::Pass)),
        ..AggInputs::default()
    };
    agg_row(
        &bench(conc, 8.0 * y, 4.0 * y, 1000.0 / x, 5000.0),
        &row,
        &inputs,
        b,
    )
    .unwrap()
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} != {b}");
}

#[test]
fn agg_row_matches_hand_computed_numbers() {
    let b = shipped();
    let row = job_row("dsr1", "mi355x-amd_3", "sglang", 4, 2, 16);
    let inputs = AggInputs {
        hw: Some("mi355x".into()),
        recipe_fingerprint: "abc123".into(),
        engine_start_s: Some(42.5),
        ..AggInputs::default()
    };
    let a = agg_row(&bench(16, 8000.0, 3000.0, 12.5, 13000.0), &row, &inputs, &b).unwrap();
    // num_gpus = tp 4 × pp 2 = 8.
    close(a.tput_per_gpu, 1000.0);
    close(a.output_tput_per_gpu, 375.0);
    close(a.input_tput_per_gpu, 625.0);
    assert_eq!(a.hw, "mi355x");
    assert_eq!(a.conc, 16);
    assert_eq!(a.dp_attention, "false");
    assert_eq!(a.model_key(), "dsr1-fp4");
    let v = serde_json::to_value(&a).unwrap();
    // Seconds twins and interactivities, as process_result.py computes them.
    close(v["median_ttft"].as_f64().unwrap(), 0.25);
    close(v["median_ttft_ms"].as_f64().unwrap(), 250.0);
    close(v["median_tpot"].as_f64().unwrap(), 0.0125);
    close(v["median_intvty"].as_f64().unwrap(), 80.0);
    close(v["mean_intvty"].as_f64().unwrap(), 100.0);
    close(v["p99_intvty"].as_f64().unwrap(), 50.0);
    assert!(v["std_intvty"].is_null(), "1000/0 is recorded as null");
    close(v["p99.9_itl"].as_f64().unwrap(), 0.04);
    close(v["median_e2el"].as_f64().unwrap(), 13.0);
    assert!(v.get("duration").is_none() && v.get("request_goodput:").is_none());
    // Key order of the reference's single-node row.
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        &keys[..25],
        &[
            "hw",
            "conc",
            "image",
            "model",
            "infmax_model_prefix",
            "framework",
            "precision",
            "spec_decoding",
            "disagg",
            "recipe_fingerprint",
            "isl",
            "osl",
            "is_multinode",
            "tp",
            "pp",
            "dcp_size",
            "pcp_size",
            "ep",
            "dp_attention",
            "tput_per_gpu",
            "output_tput_per_gpu",
            "input_tput_per_gpu",
            "mean_ttft_ms",
            "mean_ttft",
            "median_ttft_ms"
        ]
    );
    assert_eq!(
        keys[keys.len() - 4..],
        ["accuracy", "baseline", "engine_start_s", "client"]
    );
    // B200 dsr1-fp4 1k/1k conc 16: 10407 ms, 83.567 tok/s/user, 344.564 tok/s/GPU.
    match &a.baseline {
        BaselineRecord::Found {
            label,
            tput_per_gpu_ratio,
            median_e2e_ratio,
            interactivity_ratio,
            point,
            ..
        } => {
            assert_eq!(label, "b200-nv1126");
            assert_eq!(point.conc, 16);
            close(*tput_per_gpu_ratio, 1000.0 / 344.564);
            close(median_e2e_ratio.unwrap(), 13000.0 / 10407.0);
            close(interactivity_ratio.unwrap(), 80.0 / 83.567);
        }
        m => panic!("expected a baseline, got {m:?}"),
    }
    // Round trip through agg.json.
    let back: AggRow = serde_json::from_value(v).unwrap();
    assert_eq!(back, a);
}

#[test]
fn agg_row_refuses_inconsistent_input() {
    let b = Baselines::default();
    let row = job_row("dsr1", "mi355x", "sglang", 8, 1, 4);
    // The agg row of `j` for the conc-4 row, with default inputs and no baselines.
    let agg = |j: &Value| agg_row(j, &row, &AggInputs::default(), &b);
    let e = agg(&bench(8, 1.0, 1.0, 10.0, 10.0)).unwrap_err();
    assert!(
        e.to_string()
            .contains("max_concurrency 8 but the row's conc is 4"),
        "{e}"
    );
    let mut j = bench(4, 1.0, 1.0, 10.0, 10.0);
    j.as_object_mut().unwrap().remove("total_token_throughput");
    let e = agg(&j).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bench result: `total_token_throughput` is missing"
    );
    // No baselines: stated as missing.
    let a = agg(&bench(4, 1.0, 1.0, 10.0, 10.0)).unwrap();
    assert!(matches!(a.baseline, BaselineRecord::Missing { .. }));
}

#[test]
fn shipped_baselines_load_and_missing_points_are_stated() {
    let b = shipped();
    let labels: Vec<&str> = b.sets.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels,
        ["b200-nv1126", "bounty-2026", "mi355x-inferencemax-2511"]
    );
    assert_eq!(b.sets[0].points.len(), 15 + 7);
    assert_eq!(b.sets[1].points.len(), 6);
    let line = LineKey::new("gptoss", "fp4", "none", 1024, 1024);
    let p = b.sets[0].lookup(&line, 8).unwrap();
    close(p.tput_per_gpu, 690.565);
    assert_eq!(
        b.sets[0].lookup(&line, 16).unwrap_err(),
        "b200-nv1126 has no gptoss-fp4 ISL 1024 / OSL 1024 point at conc 16 (it has conc 8, 4)"
    );
    let fp8 = LineKey::new("dsr1", "fp8", "none", 1024, 1024);
    assert_eq!(
        b.sets[0].lookup(&fp8, 4).unwrap_err(),
        "b200-nv1126 has no dsr1-fp8 ISL 1024 / OSL 1024 points"
    );
    // A job at a conc the reference lacks gets a stated-missing record, no invented ratio.
    let a = point("gptoss", 16, 300.0, 900.0, &b);
    match a.baseline {
        BaselineRecord::Missing { reason, label } => {
            assert_eq!(label.as_deref(), Some("b200-nv1126"));
            assert!(reason.contains("no gptoss-fp4 ISL 1024 / OSL 1024 point at conc 16"));
        }
        f => panic!("{f:?}"),
    }
    // Targets and accuracy thresholds.
    let t = LineKey::new("dsr1", "fp4", "mtp", 8192, 1024);
    close(b.sets[1].point(&t, 32).unwrap().tput_per_gpu, 3900.0);
    let acc = b.accuracy.as_ref().unwrap();
    let w = acc.thresholds("wikitext-tokens", None, "dsr1-fp4").unwrap();
    close(w.metrics["bits_per_byte"], 0.4485 * 1.03);
    close(w.metrics["word_perplexity"], 3.2522 * 1.03);
    let g = acc
        .thresholds("wikitext-tokens", None, "gptoss-fp4")
        .unwrap();
    close(g.metrics["word_perplexity"], 222.7893);
    let q = acc.thresholds("gsm8k", Some("bounty"), "dsr1-fp4").unwrap();
    assert_eq!((q.metrics["exact_match"], q.shots), (0.93, Some(3)));
    let q = acc
        .thresholds("gsm8k", Some("inferencemax"), "dsr1-fp8")
        .unwrap();
    assert_eq!((q.metrics["exact_match"], q.shots), (0.91, Some(5)));
    assert_eq!(q.metrics["exact_match_strict"], 0.91);
    assert_eq!(q.rule, "exact_match and exact_match_strict >= threshold");
    let q = acc
        .thresholds("gsm8k", Some("inferencemax"), "llama-fp8")
        .unwrap();
    assert_eq!(q.metrics["exact_match"], 0.90);
    assert!(acc
        .thresholds("wikitext-tokens", None, "llama-fp8")
        .is_none());
}

#[test]
fn amd_points_load_from_inferencemax_agg_rows() {
    let mut b = Baselines::default();
    b.add_file(&fixture("report/amd/amd-existing.yaml"))
        .unwrap();
    let s = &b.sets[0];
    assert_eq!(s.role, infmax::report::Role::Amd);
    // Rows of other hardware are ignored; of two configs at conc 8 the better one counts.
    assert_eq!(s.points.len(), 1);
    let p = &s.points[0];
    assert_eq!((p.model.as_str(), p.conc), ("tst-fp4", 8));
    close(p.tput_per_gpu, 250.0);
    close(p.median_e2e_ms, 2500.0);
    assert_eq!(p.detail.as_deref(), Some("mi355x sglang tp8"));
}

#[test]
fn bad_baseline_files_are_located() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("x.yaml");
    std::fs::write(
        &f,
        "label: x\npoints:\n  m-fp4:\n    \"1024/1024\":\n      4: {median_e2e_ms: 1, median_intvty: 2, tput_per_gpu: 3, extra: 4}\n",
    )
    .unwrap();
    let e = Baselines::default().add_file(&f).unwrap_err().to_string();
    assert!(
        e.contains("x.yaml") && e.contains("unknown field `extra`"),
        "{e}"
    );
    std::fs::write(&f, "label: x\npoints:\n  m-fp4:\n    \"1k1k\":\n      4: {median_e2e_ms: 1, median_intvty: 2, tput_per_gpu: 3}\n").unwrap();
    let e = Baselines::default().add_file(&f).unwrap_err().to_string();
    assert!(
        e.contains("points.m-fp4.1k1k") && e.contains("\"isl/osl\""),
        "{e}"
    );
    std::fs::write(&f, "label: x\npoints:\n  m-fp4:\n    \"1024/1024\":\n      4: {median_e2e_ms: 1, median_intvty: 2, tput_per_gpu: 3}\n      4: {median_e2e_ms: 1, median_intvty: 2, tput_per_gpu: 3}\n").unwrap();
    let e = Baselines::default().add_file(&f).unwrap_err().to_string();
    assert!(e.contains("duplicate key `4`"), "{e}");
}

fn ref_baselines(with_amd: bool) -> Baselines {
    let mut b = Baselines::load_dir(&fixture("report/ref")).unwrap();
    if with_amd {
        b.add_file(&fixture("report/amd/amd-existing.yaml"))
            .unwrap();
    }
    b
}

/// (conc, x, y) points of the test model's 1k/1k line.
fn rows(pts: &[(u32, f64, f64)], b: &Baselines) -> Vec<AggRow> {
    pts.iter()
        .map(|&(c, x, y)| point("tst", c, x, y, b))
        .collect()
}

/// The test model's points at conc 4, 8, 16, 32 (x 120, 90, 60, 40) with tput/GPU `ys`.
fn rows_at_4_8_16_32(ys: [f64; 4], b: &Baselines) -> Vec<AggRow> {
    let xs = [(4, 120.0), (8, 90.0), (16, 60.0), (32, 40.0)];
    let pts: Vec<(u32, f64, f64)> = xs.iter().zip(ys).map(|(&(c, x), y)| (c, x, y)).collect();
    rows(&pts, b)
}

/// A gsm8k accuracy record scoring `exact_match` against the threshold 0.93.
pub fn gsm8k(exact_match: f64, rule: Option<&str>, status: AccuracyStatus) -> AccuracyRecord {
    AccuracyRecord {
        task: "gsm8k".into(),
        metrics: [("exact_match".to_string(), exact_match)]
            .into_iter()
            .collect(),
        threshold: [("exact_match".to_string(), 0.93)].into_iter().collect(),
        rule: rule.map(Into::into),
        status,
    }
}

/// `runner report --dir <dir> --out <out>`, with GitHub Actions' variables unset.
fn runner_report(dir: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_runner"));
    c.args(["report", "--dir"])
        .arg(dir)
        .arg("--out")
        .arg(out)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY");
    c
}

// The reference curve of the fixture, sorted by x: (50, 400) c16, (80, 200) c8, (100, 100) c4.

#[test]
fn verdict_all_points_above() {
    let b = ref_baselines(false);
    // c4 right of the highest x: compared with that point's y 100; c8 at x 90: curve 150;
    // c16 at x 60: curve 333.33; c32 below the lowest x: compared with y 400.
    let r = rows_at_4_8_16_32([101.0, 200.0, 400.0, 401.0], &b);
    let v = &verdict(&r, &b)[0];
    assert_eq!(v.line, LineKey::new("tst", "fp4", "none", 1024, 1024));
    assert_eq!((v.above, v.points.len()), (4, 4));
    assert!(v.half_rule && v.amd_rule && v.eligible, "{:?}", v.reasons);
    assert_eq!(v.amd_known, 0);
    let cy: Vec<Option<f64>> = v.points.iter().map(|p| p.curve.curve_y).collect();
    close(cy[0].unwrap(), 100.0);
    close(cy[1].unwrap(), 150.0);
    close(cy[2].unwrap(), 400.0 - 200.0 / 3.0);
    close(cy[3].unwrap(), 400.0);
    // Tie-break figures: same-conc ratios 101/100 + 200/200 + 400/400; conc 32 has none.
    close(v.sum_tput_ratio, 3.01);
    assert_eq!(v.ratio_points, 3);
    assert!(v.points[0]
        .curve
        .reason
        .contains("x 120.00 is right of the curve (its highest x is 100.00, conc 4)"));
    assert!(v.points[3]
        .curve
        .reason
        .contains("x 40.00 is left of the curve (its lowest x is 50.00, conc 16)"));
    let md = verdict_markdown(v);
    assert!(
        md.contains("tst-fp4 ISL 1024 / OSL 1024 vs ref-test: ELIGIBLE"),
        "{md}"
    );
    assert!(md.contains("- 4 of 4 points beat the ref-test line (100%; need ≥ 50%): yes"));
}

#[test]
fn verdict_exactly_half_is_eligible_and_ties_are_not_above() {
    let b = ref_baselines(false);
    // c8 sits exactly on the curve (150): not above. c16 is below (300 < 333.33).
    let r = rows_at_4_8_16_32([101.0, 150.0, 300.0, 401.0], &b);
    let v = &verdict(&r, &b)[0];
    let above: Vec<bool> = v.points.iter().map(|p| p.curve.above).collect();
    assert_eq!(above, [true, false, false, true]);
    assert!(v.half_rule && v.eligible);
    // One fewer above: 1 of 4 is not enough.
    let r = rows_at_4_8_16_32([101.0, 150.0, 300.0, 399.0], &b);
    let w = &verdict(&r, &b)[0];
    assert!(!w.eligible);
    assert_eq!(
        w.reasons,
        ["only 1 of 4 points beat the ref-test line (need at least half)"]
    );
    assert_eq!(v.tie_break(w), std::cmp::Ordering::Greater);
}

#[test]
fn verdict_one_point_below_amds_point_is_not_eligible() {
    let b = ref_baselines(true);
    // All four beat the reference, but conc 8 (200) is below AMD's existing 250 at conc 8.
    let r = rows_at_4_8_16_32([101.0, 200.0, 400.0, 401.0], &b);
    let v = &verdict(&r, &b)[0];
    assert_eq!(v.above, 4);
    assert!(v.half_rule && !v.amd_rule && !v.eligible);
    assert_eq!(v.amd_known, 1, "AMD has a point at conc 8 only");
    let c8 = &v.points[1];
    let amd = c8.amd.as_ref().unwrap();
    assert_eq!((amd.tput_per_gpu, amd.ok), (250.0, false));
    assert_eq!(
        v.reasons,
        ["conc 8 (mi355x sglang tp8): 200.00 tok/s/GPU is below AMD's existing 250.00 (mi355x-existing-test; per GPU as published)"]
    );
    assert!(verdict_markdown(v).contains("| 250.00 | 0.800× **BELOW** |"));
    // At 250 (not below) the rule holds.
    let r = rows_at_4_8_16_32([101.0, 250.0, 400.0, 401.0], &b);
    assert!(verdict(&r, &b)[0].eligible);
}

#[test]
fn verdict_x_outside_the_reference_range_on_both_sides() {
    let b = ref_baselines(false);
    // Right of x 100: compared with y 100 (conc 4's). Left of x 50: compared with y 400.
    let r = rows(
        &[(4, 500.0, 100.5), (64, 10.0, 399.0), (128, 10.0, 400.5)],
        &b,
    );
    let v = &verdict(&r, &b)[0];
    let got: Vec<(u32, bool, Option<f64>)> = v
        .points
        .iter()
        .map(|p| (p.conc, p.curve.above, p.curve.curve_y))
        .collect();
    assert_eq!(
        got,
        [
            (4, true, Some(100.0)),
            (64, false, Some(400.0)),
            (128, true, Some(400.0))
        ]
    );
    assert!(v.eligible, "2 of 3 above");
}

#[test]
fn curve_comparison_edge_cases() {
    let b = ref_baselines(false);
    let line = LineKey::new("tst", "fp4", "none", 1024, 1024);
    let curve = b.sets[0].curve(&line);
    // Exactly at a reference x: that point's y.
    let c = compare_to_curve(&curve, 80.0, 200.5);
    assert!(c.above);
    close(c.curve_y.unwrap(), 200.0);
    // One-point curve.
    let one = &curve[..1];
    assert!(!compare_to_curve(one, 50.0, 400.0).above);
    assert!(!compare_to_curve(one, 50.1, 0.0).above);
    assert!(compare_to_curve(one, 50.1, 400.5).above);
    // A line without reference points is never eligible, and says why.
    let r = vec![point("other", 4, 100.0, 1e6, &b)];
    let v = &verdict(&r, &b)[0];
    assert!(!v.eligible);
    assert_eq!(
        v.reasons,
        ["no reference curve: ref-test has no other-fp4 ISL 1024 / OSL 1024 points"]
    );
}

#[test]
fn verdict_against_the_b200_curve() {
    let b = shipped();
    // x 100 lies between conc 16 (83.567, 344.564) and conc 8 (114.603, 271.064).
    let r = vec![point("dsr1", 8, 100.0, 310.0, &b)];
    let v = &verdict(&r, &b)[0];
    let t = (100.0 - 83.567) / (114.603 - 83.567);
    let want = 344.564 + t * (271.064 - 344.564);
    close(v.points[0].curve.curve_y.unwrap(), want);
    assert!(v.points[0].curve.above && v.eligible);
    close(v.sum_tput_ratio, 310.0 / 271.064);
}

#[test]
fn summary_table_has_the_columns_and_figures() {
    let b = shipped();
    let row = job_row("dsr1", "mi355x-amd_3", "sglang", 4, 2, 16);
    let inputs = AggInputs {
        hw: Some("mi355x".into()),
        accuracy: Some(gsm8k(
            0.945,
            Some("exact_match >= threshold"),
            AccuracyStatus::Pass,
        )),
        ..AggInputs::default()
    };
    let a = agg_row(&bench(16, 8000.0, 3000.0, 12.5, 13000.0), &row, &inputs, &b).unwrap();
    let missing = point("gptoss", 16, 300.0, 900.0, &b);
    let md = summary_markdown("Sweep", &[SummaryRow::from(&a), SummaryRow::from(&missing)]);
    assert!(
        md.starts_with("## Sweep\n\n### dsr1-fp4 ISL 1024 / OSL 1024\n\n"),
        "{md}"
    );
    assert!(md.contains("| Hardware | Framework | Precision | TP | EP | Conc | TTFT median (ms) | TPOT median (ms) | Intvty (tok/s/user) | E2EL median (s) | Tput/GPU (tok/s) | Ratio vs baseline | Accuracy |"));
    assert!(
        md.contains("| MI355X | SGLANG | FP4 | 4 | 1 | 16 | 250.00 | 12.50 | 80.00 | 13.000 | 1000.00 | 2.902× b200-nv1126 | pass (gsm8k: exact_match 0.9450 (thr 0.9300)) |"),
        "{md}"
    );
    assert!(md.contains("| missing |"));
    assert!(md.contains("- baseline missing: b200-nv1126 has no gptoss-fp4 ISL 1024 / OSL 1024 point at conc 16 (it has conc 8, 4)"));
}

fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is a PNG", path.display());
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn runner_report_writes_summary_verdict_and_plots() {
    let b = shipped();
    let root = tempfile::tempdir().unwrap();
    // Three jobs of one line, one of them with a failed accuracy gate.
    for (conc, x, y) in [(4u32, 150.0, 140.0), (8, 120.0, 300.0), (16, 80.0, 330.0)] {
        let mut a = point("dsr1", conc, x, y, &b);
        if conc == 16 {
            a.accuracy = Some(gsm8k(0.5, None, AccuracyStatus::Fail));
        }
        infmax::report::write_job_outputs(&root.path().join(format!("job_c{conc}")), &a).unwrap();
    }
    assert!(root.path().join("job_c4/summary.md").is_file());
    let out = root.path().join("out");
    let step = root.path().join("step_summary.md");
    let o = runner_report(root.path(), &out)
        .arg("--baselines")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("baselines"))
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &step)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("::group::summary") && stdout.contains("::endgroup::"));
    assert!(
        stdout.contains("::error title=accuracy gate failed::mi355x dsr1-fp4 sglang tp8 conc 16"),
        "{stdout}"
    );
    // c4: x 150 is right of the B200 curve (135.46): compared with conc 4's 131.424 <
    // 140: above. c8: x 120 interpolates between conc 8 and conc 4 to 234.93 < 300: above.
    // c16: x 80 interpolates between conc 32 and conc 16 to 396.39 > 330: below. 2 of 3
    // would do, but conc 16 failed its accuracy gate: not eligible.
    assert!(
        stdout.contains("dsr1-fp4 ISL 1024 / OSL 1024 vs b200-nv1126: NOT ELIGIBLE"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- not eligible: accuracy: every point needs a passing accuracy result: conc 16 (mi355x sglang tp8) fail"),
        "{stdout}"
    );
    let step_text = std::fs::read_to_string(&step).unwrap();
    assert!(
        step_text.contains("## infmax results") && step_text.contains("## Eligibility verdict")
    );
    for f in ["summary.md", "verdict.md", "verdict.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    for axis in ["tput_vs_intvty", "tput_vs_e2e"] {
        let stem = format!("dsr1-fp4_1024x1024_{axis}");
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        for text in [
            "ISL 1024 / OSL 1024",
            "Throughput per GPU (tok/s/GPU)",
            "MI355X sglang TP8",
            "b200-nv1126 (reference)",
            "c4",
            "c64",
        ] {
            assert!(svg.contains(text), "{stem}.svg lacks {text:?}");
        }
        assert!(
            svg.contains("stroke-dasharray")
                || svg.matches("<line").count() > 10
                || svg.contains("<polyline")
        );
        assert_eq!(png_size(&out.join(format!("{stem}.png"))), (1280, 800));
    }
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("verdict.json")).unwrap()).unwrap();
    assert_eq!(v[0]["eligible"], false);
    assert_eq!(v[0]["half_rule"], true);
    assert_eq!(v[0]["amd_rule"], true);
    assert_eq!(v[0]["above"], 2);
}

#[test]
fn runner_report_refuses_a_dir_without_results() {
    let d = tempfile::tempdir().unwrap();
    let o = runner_report(d.path(), &d.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no agg.json in this directory or below it"),
        "{err}"
    );
}
