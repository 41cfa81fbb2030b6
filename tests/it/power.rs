//! Power schema v2 against InferenceX's own `utils/aggregate_power.py` (843c6254f): for every
//! case in `tests/fixtures/power/` (inputs from `runner exec` with a fake `nvidia-smi`, and
//! synthetic ones from `make_cases.py`: a valid 8-GPU stream, an unbracketed window, a
//! sampling gap, a GPU missing, bad cells, duplicate timestamps, an invalid benchmark result,
//! ISO timestamps with units, epoch milliseconds), our agg-row fields and our
//! `power_validation.json` equal what the reference wrote (`record.sh`), value for value.

use crate::util::fixture;
use infmax::telemetry::power;
use serde_json::Value;

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn power_v2_equals_the_reference_on_every_recorded_case() {
    let root = fixture("power");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("expected.agg.json").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "{} cases", cases.len());
    let mut valid = 0;
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy();
        let csv = read(&case.join("gpu_metrics.csv"));
        let bench: Value = serde_json::from_str(&read(&case.join("bench.json"))).unwrap();
        let n: i64 = read(&case.join("expected_num_gpus"))
            .trim()
            .parse()
            .unwrap();
        let out = power::evaluate(Some(&csv), &bench, Some(n));

        let mut want: serde_json::Map<String, Value> =
            serde_json::from_str(&read(&case.join("expected.agg.json"))).unwrap();
        want.remove("hw");
        assert_eq!(out.agg_fields(), want, "{name}: agg fields");

        let want: Value =
            serde_json::from_str(&read(&case.join("expected.power_validation.json"))).unwrap();
        let ours = out.validation_json("gpu_metrics.csv", "bench.json");
        assert_eq!(ours, want, "{name}: power_validation.json");
        valid += usize::from(out.power_valid);
    }
    assert_eq!(
        valid, 5,
        "valid cases: exec, valid-8gpu, duplicates, iso, epoch-ms"
    );
}

#[test]
fn missing_or_empty_telemetry_and_a_bad_window() {
    let bench = serde_json::json!({
        "benchmark_start_time_unix": 10.0, "benchmark_end_time_unix": 20.0, "duration": 10.0,
        "completed": 1, "total_input_tokens": 1, "total_output_tokens": 1
    });
    let o = power::evaluate(None, &bench, Some(1));
    assert_eq!(o.reasons, ["telemetry_file_missing"]);
    let o = power::evaluate(Some(""), &bench, Some(1));
    assert_eq!(o.reasons, ["telemetry_file_empty"]);
    let o = power::evaluate(Some("t,gpu\n"), &bench, Some(1));
    assert_eq!(
        o.reasons,
        ["timestamp_column_missing", "power_column_missing"]
    );
    let mut b = bench.clone();
    b["benchmark_end_time_unix"] = 5.0.into();
    let o = power::evaluate(Some("x"), &b, Some(1));
    assert_eq!(o.reasons, ["invalid_benchmark_window"]);
    assert!(!o.power_valid && o.metrics.is_empty());
    // Counts must be integers: a float count is invalid, as in the reference.
    let mut b = bench.clone();
    b["completed"] = 1.0.into();
    let (_, r) = power::load_benchmark_data(&b);
    assert_eq!(r, ["invalid_successful_query_count"]);
}
