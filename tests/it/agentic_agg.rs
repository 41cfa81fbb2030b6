//! The agentic aggregate against InferenceX's own: every case in
//! `tests/fixtures/agentic/cases/` holds AIPerf-shaped artifacts (written by
//! `gen_fixture.py`), the run environment (`env.json`) and `reference.json`, the output of
//! InferenceX's `process_agentic_result` at 843c6254f on exactly those inputs (recorded by
//! `record_reference.py`, see the fixture's README). Ours must be byte-identical. One case,
//! `sim-run`, holds the artifacts of a real `runner exec` of the shipped agentic example on
//! the sim (replay records, scraped server metrics, engine log).

use crate::util::fixture;
use infmax::report::agentic::{self, ExpectedOutputs, NoExpectedOutputs, RunShape};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// Per trace id, the `out` of its top-level `n`/`s` requests: the lookup the caller passes.
fn expected_outputs(traces: &Path) -> HashMap<String, Vec<i64>> {
    let mut out = HashMap::new();
    for line in std::fs::read_to_string(traces).unwrap().lines() {
        let t: Value = serde_json::from_str(line).unwrap();
        let outs: Vec<i64> = t["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["type"] == "n" || r["type"] == "s")
            .map(|r| {
                r.get("output_length")
                    .or(r.get("out"))
                    .and_then(Value::as_i64)
                    .unwrap()
            })
            .collect();
        out.insert(t["id"].as_str().unwrap().to_string(), outs);
    }
    out
}

fn run_case(case: &Path) -> (String, String) {
    let env: HashMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(case.join("env.json")).unwrap()).unwrap();
    let shape = RunShape::from_env(|k| env.get(k).cloned()).unwrap();
    let traces = match env["HF_HUB_CACHE"].as_str() {
        "@HF@" => Some("agentic/hf/datasets--semianalysisai--cc-traces-weka-062126/snapshots/0123abcd/traces.jsonl"),
        "@HF_SIM@" => Some("agentic/hf-sim/datasets--semianalysisai--cc-traces-weka-synthetic-small/snapshots/0/traces.jsonl"),
        _ => None,
    };
    let map = traces.map(|t| expected_outputs(&fixture(t)));
    let expected: &dyn ExpectedOutputs = match &map {
        Some(m) => m,
        None => &NoExpectedOutputs,
    };
    let logs: Vec<String> = agentic::read_server_log_head(&case.join("server.log"))
        .into_iter()
        .collect();
    let dir = agentic::resolve_artifact_dir(case);
    let (agg, ours) = agentic::process_artifacts(&dir, &shape, expected, &logs).unwrap();
    // The console summary printed after writing matches the processor's too.
    let mut console = agentic::summary::console_lines(&agg, "<case>/reference.json").join("\n");
    console.push('\n');
    assert_eq!(
        console,
        std::fs::read_to_string(case.join("reference.stdout")).unwrap(),
        "{}",
        case.display()
    );
    let reference = std::fs::read_to_string(case.join("reference.json")).unwrap();
    (ours, reference)
}

#[test]
fn aggregate_is_byte_identical_to_inferencex() {
    let cases = fixture("agentic/cases");
    let mut names: Vec<_> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert_eq!(names.len(), 6);
    for case in names {
        let (ours, reference) = run_case(&case);
        if ours != reference {
            let diff: Vec<String> = ours
                .lines()
                .zip(reference.lines())
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .take(10)
                .map(|(i, (a, b))| format!("line {}: ours {a:?} reference {b:?}", i + 1))
                .collect();
            panic!(
                "{}: aggregate differs from InferenceX's ({} vs {} bytes)\n{}",
                case.display(),
                ours.len(),
                reference.len(),
                diff.join("\n")
            );
        }
    }
}

#[test]
fn run_shape_rejects_what_the_reference_rejects() {
    let env = |pairs: &[(&str, &str)]| {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RunShape::from_env(move |k| m.get(k).cloned())
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(
        env(&[]).unwrap(),
        "Missing required environment variable: KV_OFFLOADING"
    );
    assert_eq!(
        env(&[("KV_OFFLOADING", "dram")]).unwrap(),
        "KV_OFFLOAD_BACKEND is required when KV_OFFLOADING is enabled"
    );
    assert_eq!(
        env(&[("KV_OFFLOADING", "none"), ("KV_OFFLOAD_BACKEND", "hicache")]).unwrap(),
        "KV_OFFLOAD_BACKEND must be empty when KV_OFFLOADING=none"
    );
    assert_eq!(
        env(&[
            ("KV_OFFLOADING", "dram"),
            ("KV_OFFLOAD_BACKEND", "hicache"),
            ("KV_OFFLOAD_BACKEND_METADATA", r#"{"name": "lmcache"}"#)
        ])
        .unwrap(),
        "KV_OFFLOAD_BACKEND must match KV_OFFLOAD_BACKEND_METADATA.name"
    );
    assert_eq!(
        env(&[("KV_OFFLOADING", "none"), ("PP_SIZE", "0")]).unwrap(),
        "PP_SIZE, DCP_SIZE, and PCP_SIZE must be positive integers."
    );
    assert_eq!(
        env(&[
            ("KV_OFFLOADING", "none"),
            ("ROUTER_METADATA", r#"{"name": "r"}"#)
        ])
        .unwrap(),
        "ROUTER_METADATA must contain exactly 'name' and 'version'"
    );
    assert!(env(&[("KV_OFFLOADING", "none")]).is_none());
}

/// The `vllm` case as an exec point: the same environment `env.json` holds.
fn vllm_spec() -> infmax::recipe::agentic::AgenticJob {
    let row: infmax::config::row::AgenticRow = serde_json::from_value(json!({
        "image": "lmsysorg/sglang:dev-nightly-0820", "model": "deepseek-ai/DeepSeek-V4-Pro",
        "model-prefix": "dsv4", "precision": "fp4", "framework": "vllm",
        "runner": "cluster:b200-dgxc", "tp": 4, "pp": 2, "dcp-size": 1, "pcp-size": 1, "ep": 4,
        "dp-attn": true, "spec-decoding": "mtp", "conc": 16, "kv-offloading": "dram",
        "total-cpu-dram-gb": 2399, "duration": 3600,
        "exp-name": "dsv4_tp4_conc16_kvdram-vllm-simple_spec-mtp",
        "scenario-type": "agentic-coding", "kv-offload-backend": {"name": "vllm-simple"},
        "recipe-fingerprint": "ab".repeat(32)
    }))
    .unwrap();
    infmax::recipe::agentic::AgenticJob::new(&row, "runner-1", "sim", 60)
}

fn copy_case(case: &Path, to: &Path) {
    let art = to.join("aiperf_artifacts");
    std::fs::create_dir_all(&art).unwrap();
    for f in std::fs::read_dir(case.join("aiperf_artifacts")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, art.join(f.file_name().unwrap())).unwrap();
    }
}

#[test]
fn exec_point_writes_the_reference_aggregate_summary_and_chart() {
    use infmax::exec::agentic::finish_point;
    let case = fixture("agentic/cases/vllm");
    let dir = tempfile::tempdir().unwrap();
    copy_case(&case, dir.path());
    let spec = vllm_spec();
    assert_eq!(
        spec.result_filename(),
        "dsv4_tp4_conc16_kvdram-vllm-simple_spec-mtp_fp4_vllm_tp4-pp2-dcp1-pcp1-ep4-dpatrue_disagg-false_spec-mtp_conc16_runner-1_recipe-abababababababab"
    );
    let map = expected_outputs(&fixture(
        "agentic/hf/datasets--semianalysisai--cc-traces-weka-062126/snapshots/0123abcd/traces.jsonl",
    ));
    let logs: Vec<String> = agentic::read_server_log_head(&case.join("server.log"))
        .into_iter()
        .collect();
    let out = finish_point(dir.path(), &spec, &map, &logs).unwrap();
    assert_eq!(
        std::fs::read_to_string(&out.aggregate_path).unwrap(),
        std::fs::read_to_string(case.join("reference.json")).unwrap()
    );
    assert_eq!(
        out.gate,
        "Validated aiperf request error rate: 9/160 = 5.625% <= 10.000%"
    );
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(summary.contains("| 16 | "), "{summary}");
    assert!(
        summary.contains("Not submission-valid: a 60 s window"),
        "{summary}"
    );
    for ext in ["svg", "png"] {
        let p = dir.path().join(format!(
            "deepseek-ai_DeepSeek-V4-Pro_agentic_tput_vs_intvty.{ext}"
        ));
        assert!(
            std::fs::metadata(&p).unwrap().len() > 1000,
            "{}",
            p.display()
        );
    }
    let svg = std::fs::read_to_string(
        dir.path()
            .join("deepseek-ai_DeepSeek-V4-Pro_agentic_tput_vs_intvty.svg"),
    )
    .unwrap();
    assert!(svg.contains("u16") && svg.contains("SIM vllm TP4 kvdram-vllm-simple"));
    assert_eq!(
        infmax::exec::agentic::series_label_of(&out.aggregate),
        spec.series_label()
    );
    // A batch of points: one summary row each, one chart for the model.
    let batch = tempfile::tempdir().unwrap();
    let mut second = out.clone();
    second.aggregate["conc"] = 32.into();
    let files =
        infmax::exec::agentic::write_batch_outputs(batch.path(), &[out, second], true).unwrap();
    assert_eq!(files.len(), 3, "{files:?}");
    let md = std::fs::read_to_string(batch.path().join("summary.md")).unwrap();
    assert!(md.contains("| 16 | ") && md.contains("| 32 | "), "{md}");
}

#[test]
fn exec_point_over_the_error_gate_fails_but_keeps_its_aggregate() {
    use infmax::exec::agentic::{finish_point, FinishError};
    let case = fixture("agentic/cases/vllm");
    let dir = tempfile::tempdir().unwrap();
    copy_case(&case, dir.path());
    let agg_path = dir
        .path()
        .join("aiperf_artifacts/profile_export_aiperf.json");
    let mut a: Value = serde_json::from_str(&std::fs::read_to_string(&agg_path).unwrap()).unwrap();
    a["error_request_count"]["avg"] = 17.into();
    a["completed_request_count"]["avg"] = 168.into();
    std::fs::write(&agg_path, a.to_string()).unwrap();
    let spec = vllm_spec();
    let err = finish_point(dir.path(), &spec, &NoExpectedOutputs, &[]).unwrap_err();
    match err {
        FinishError::Gate(e) => assert_eq!(
            e,
            ["aiperf request error rate exceeded the benchmark limit: 17/168 = 10.119% > 10.000%"]
        ),
        other => panic!("{other}"),
    }
    assert!(dir
        .path()
        .join(format!("{}.json", spec.result_filename()))
        .is_file());
    assert!(std::fs::read_to_string(dir.path().join("summary.md"))
        .unwrap()
        .contains("Error gate failed"));
}
