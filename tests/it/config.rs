//! Config model: both master schemas, runners.yaml and job rows, and the error each bad
//! input produces (file:line:col for parser errors, entry and path for rule violations).

use crate::util::{fixture, imax, scheduler_err, scheduler_json, write};
use infmax::config::master::{Concurrency, MasterConfig, Schema};
use infmax::config::row::JobRow;
use infmax::config::runners::Runners;

const ENTRY: &str = "e1:
  image: img:1
  model: org/m
  model-prefix: dsr1
  runner: mi355x
  precision: fp4
  framework: sglang
  seq-len-configs:
  - isl: 1024
    osl: 1024
    search-space:
    - { tp: 8, conc-start: 4, conc-end: 16 }
";

/// Expand a config text written to a temp file; returns the error message.
fn expand_err(text: &str) -> (String, String) {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "m.yaml", text);
    (scheduler_err(&["expand", "--config-files", &f]), f)
}

#[test]
fn shipped_configs_parse() {
    for f in ["amd-master.yaml", "nvidia-master.yaml"] {
        let m = MasterConfig::load(imax(f).as_ref()).unwrap();
        assert!(m.entries.iter().all(|e| e.schema == Schema::A));
        assert!(!m.entries.is_empty());
    }
    let r = Runners::load(imax("runners.yaml").as_ref()).unwrap();
    assert_eq!(r.type_of("mi355x-amd_4"), Some("mi355x"));
    // Commented-out nodes are not nodes.
    assert_eq!(r.type_of("mi355x-amd_0"), None);
}

#[test]
fn project_default_sweep_equals_fixtures() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["amd-master.yaml", "nvidia-master.yaml", "runners.yaml"] {
        let shipped = std::fs::read(root.join(".github/configs").join(f)).unwrap();
        let fixture = std::fs::read(imax(f)).unwrap();
        assert_eq!(
            shipped, fixture,
            "{f}: .github/configs and tests/fixtures differ"
        );
    }
}

/// The project's second sweep, `configs/2026/`, is InferenceX's `configs/` at 843c6254f: the
/// files the 2026 goldens were recorded from.
#[test]
fn second_sweep_equals_2026_fixtures() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["amd-master.yaml", "nvidia-master.yaml", "runners.yaml"] {
        let shipped = std::fs::read(root.join("configs/2026").join(f)).unwrap();
        let fixture = std::fs::read(fixture("inferencex-2026-08").join(f)).unwrap();
        assert_eq!(
            shipped, fixture,
            "{f}: configs/2026 and tests/fixtures differ"
        );
    }
    for f in ["amd-master.yaml", "nvidia-master.yaml"] {
        let m = MasterConfig::load(&root.join("configs/2026").join(f)).unwrap();
        assert!(m.entries.iter().all(|e| e.schema == Schema::B));
    }
}

#[test]
fn schema_b_parses_all_shapes() {
    let m = MasterConfig::load(&fixture("schema-b/master.yaml")).unwrap();
    let e = &m.entries[0];
    assert_eq!(e.schema, Schema::B);
    let s = &e.seq_lens[0].search_space[0];
    assert_eq!(s.conc, Concurrency::List(vec![4, 32, 128]));
    assert_eq!(s.spec_decoding.as_deref(), Some("mtp"));
    let d = &m.entries[1];
    assert!(d.multinode && d.disagg);
    let p = d.seq_lens[0].search_space[0].pools.as_ref().unwrap();
    assert_eq!((p.prefill.tp, p.decode.num_worker, p.decode.ep), (8, 2, 8));
}

#[test]
fn type_error_has_file_line_col_entry_and_path() {
    let (e, f) = expand_err(&ENTRY.replace("tp: 8,", "tp: eight,"));
    assert_eq!(
        e.trim(),
        format!("error: {f}:12:13: e1.seq-len-configs[0].search-space[0].tp: invalid type: string \"eight\", expected u32")
    );
}

#[test]
fn negative_number_is_a_type_error() {
    let (e, f) = expand_err(&ENTRY.replace("conc-start: 4", "conc-start: -4"));
    assert!(e.contains(&format!("{f}:12:28: e1.seq-len-configs[0].search-space[0].conc-start: invalid type: integer `-4`")), "{e}");
}

#[test]
fn unknown_field_is_named_with_location() {
    let (e, f) = expand_err(&ENTRY.replace("conc-end: 16 }", "conc-end: 16, tpp: 2 }"));
    assert!(
        e.contains(&format!(
            "{f}:12:45: e1.seq-len-configs[0].search-space[0].tpp: unknown field `tpp`"
        )),
        "{e}"
    );
    let (e, _) =
        expand_err(&ENTRY.replace("  framework: sglang\n", "  framework: sglang\n  gpu: x\n"));
    assert!(e.contains("e1.gpu: unknown field `gpu`"), "{e}");
}

#[test]
fn missing_field_is_named() {
    let (e, f) = expand_err(&ENTRY.replace("  model: org/m\n", ""));
    assert!(
        e.contains(&format!("{f}:2:3: e1: missing field `model`")),
        "{e}"
    );
    let (e, _) = expand_err(&ENTRY.replace("conc-start: 4, ", ""));
    assert!(
        e.contains("entry `e1`: seq-len-configs[0].search-space[0]: missing field `conc-start`"),
        "{e}"
    );
}

#[test]
fn empty_lists_are_errors() {
    let (e, f) = expand_err(&ENTRY.replace(
        "    search-space:\n    - { tp: 8, conc-start: 4, conc-end: 16 }\n",
        "    search-space: []\n",
    ));
    assert_eq!(
        e.trim(),
        format!("error: {f}: entry `e1`: seq-len-configs[0].search-space: list is empty")
    );
    let head = ENTRY.split("  seq-len-configs:").next().unwrap();
    let (e, _) = expand_err(&format!("{head}  seq-len-configs: []\n"));
    assert!(
        e.contains("entry `e1`: seq-len-configs: list is empty"),
        "{e}"
    );
}

#[test]
fn syntax_error_has_location() {
    let (e, f) = expand_err("e1:\n  image: [unclosed\n  model: x\n");
    assert!(e.starts_with(&format!("error: {f}:")), "{e}");
    let loc: Vec<&str> = e.trim()["error: ".len() + f.len() + 1..]
        .splitn(3, ':')
        .collect();
    assert!(
        loc[0].parse::<usize>().is_ok() && loc[1].parse::<usize>().is_ok(),
        "{e}"
    );
}

#[test]
fn duplicate_entry_keys_are_refused() {
    let (e, f) = expand_err(&format!("{ENTRY}{ENTRY}"));
    assert!(
        e.contains(&format!("{f}:13:1:")) && e.contains("duplicate key `e1`"),
        "{e}"
    );
}

#[test]
fn mixed_schemas_are_refused() {
    let (e, _) = expand_err(&ENTRY.replace("conc-start: 4, conc-end: 16", "conc-list: [4, 8]"));
    assert!(
        e.contains("search-space[0].conc-list: mixes schemas"),
        "{e}"
    );
    let (e, _) = expand_err(&ENTRY.replace(
        "  framework: sglang\n",
        "  framework: sglang\n  multinode: false\n",
    ));
    assert!(e.contains("entry `e1`: multinode: mixes schemas"), "{e}");
    let both = format!("{ENTRY}  scenarios:\n    fixed-seq-len: []\n");
    let (e, _) = expand_err(&both);
    assert!(
        e.contains("has both `seq-len-configs` (schema A) and `scenarios` (schema B)"),
        "{e}"
    );
}

#[test]
fn bad_values_are_refused() {
    for (from, to, want) in [
        (
            "conc-start: 4",
            "conc-start: 0",
            "conc-start: must be at least 1",
        ),
        ("tp: 8", "tp: 0", "tp: must be at least 1"),
        (
            "conc-end: 16",
            "conc-end: 2",
            "conc-end 2 is below conc-start 4",
        ),
        ("image: img:1", "image: ''", "image: must not be empty"),
        ("isl: 1024", "isl: 0", "isl and osl must be positive"),
        ("isl: 1024", "isl: 4294967295", "isl + osl + 200 exceeds"),
    ] {
        let (e, _) = expand_err(&ENTRY.replace(from, to));
        assert!(e.contains(want), "{from} -> {to}: {e}");
    }
}

#[test]
fn empty_and_unreadable_files() {
    let (e, _) = expand_err("");
    assert!(e.contains("no entries") || e.contains("EOF"), "{e}");
    let e = scheduler_err(&["expand", "--config-files", "/nonexistent/m.yaml"]);
    assert!(e.contains("/nonexistent/m.yaml: cannot read"), "{e}");
}

#[test]
fn schema_b_rows_carry_b_fields() {
    let f = fixture("schema-b/master.yaml").display().to_string();
    let rows = scheduler_json(&["expand", "--config-files", &f]);
    let rows = rows.as_array().unwrap();
    // 3 (conc-list) + 3 (4..16) + 1 single-node rows, then one multinode row for the pools.
    assert_eq!(rows.len(), 8);
    let concs: Vec<&serde_json::Value> = rows.iter().map(|r| &r["conc"]).collect();
    assert_eq!(
        concs[..7],
        [4, 32, 128, 4, 8, 16, 8]
            .map(serde_json::Value::from)
            .iter()
            .collect::<Vec<_>>()[..]
    );
    assert_eq!(rows[7]["conc"], serde_json::json!([64, 128]));
    assert_eq!(rows[0]["spec-decoding"], "mtp");
    assert_eq!(rows[0]["max-model-len"], 8192 + 1024 + 256);
    assert_eq!(rows[0]["model-prefix"], "dsr1");
    assert_eq!(rows[3]["spec-decoding"], "none");
    assert_eq!(rows[3]["dp-attn"], true);
    assert_eq!(rows[6]["pp"], 2);
    assert_eq!(rows[6]["dcp-size"], 2);
    assert_eq!(rows[7]["decode"]["num-worker"], 2);
    assert_eq!(rows[7]["decode"]["pp"], 1);
    assert_eq!(
        rows[7]["prefill"]["additional-settings"][0],
        "CONFIG_FILE=recipes/h200/1k1k/bs128-agg-tp.yaml"
    );
    assert_eq!(rows[7]["disagg"], true);
    // Eval marking: 8k1k single-node rows at conc >= 16, grouped by (…, spec-decoding,
    // dp-attn). Group mtp/no-dp-attn has {32, 128}: max 128 and median sorted[2 / 2] = 128.
    // Group none/dp-attn has {16}: 16. The 1k1k rows are not eligible.
    let evals: Vec<bool> = rows
        .iter()
        .map(|r| r["run-eval"].as_bool().unwrap())
        .collect();
    assert_eq!(
        evals,
        [false, false, true, false, false, true, false, false]
    );
    let only = scheduler_json(&["expand", "--config-files", &f, "--evals-only"]);
    let only = only.as_array().unwrap();
    assert_eq!(only.len(), 2);
    assert!(only
        .iter()
        .all(|r| r["eval-only"] == true && r["run-eval"] == true));
    let off = scheduler_json(&["expand", "--config-files", &f, "--no-evals"]);
    assert!(off
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["run-eval"] == false));
}

#[test]
fn schema_b_rules() {
    // The full rule set is in tests/it/schema2026.rs; these check this fixture's shapes.
    let b = std::fs::read_to_string(fixture("schema-b/master.yaml")).unwrap();
    for (from, to, want) in [
        (
            "  multinode: false
",
            "",
            "missing field `multinode`",
        ),
        (
            "spec-decoding: mtp }",
            "spec-decoding: eagle }",
            "`eagle` is not one of 'mtp', 'draft_model', 'none'",
        ),
        (
            "dcp-size: 2,",
            "dcp-size: 3,",
            "'tp' (8) must be divisible by 'dcp-size' (3)",
        ),
        (
            "conc-list: [4, 32, 128]",
            "conc-list: []",
            "must specify either 'conc-list' list or both 'conc-start' and 'conc-end'.",
        ),
        (
            "conc-list: [4, 32, 128]",
            "conc-list: [4], conc-start: 4, conc-end: 8",
            "cannot specify both 'conc-list' list and 'conc-start'/'conc-end'",
        ),
        (
            "  multinode: true\n  disagg: true\n",
            "  multinode: false\n  disagg: true\n",
            "disagg: must be false for a single-node entry",
        ),
        (
            "          num-worker: 2\n",
            "",
            "missing field `num-worker`",
        ),
    ] {
        assert!(b.contains(from), "fixture lacks {from:?}");
        let (e, _) = expand_err(&b.replacen(from, to, 1));
        assert!(e.contains(want), "{from:?} -> {to:?}: {e}");
    }
}

#[test]
fn duplicate_keys_across_files_are_refused() {
    let f = imax("amd-master.yaml");
    let e = scheduler_err(&["expand", "--config-files", &f, &f]);
    assert!(
        e.contains("entry key `dsr1-fp4-mi355x-sglang` is defined in both"),
        "{e}"
    );
}

#[test]
fn job_row_round_trips_through_json_and_yaml() {
    let rows = scheduler_json(&[
        "expand",
        "--config-files",
        &imax("amd-master.yaml"),
        "--test-mode",
    ]);
    let row0 = &rows[0];
    let d = tempfile::tempdir().unwrap();
    let j = write(
        d.path(),
        "row.json",
        &serde_json::to_string_pretty(row0).unwrap(),
    );
    let parsed = JobRow::load(j.as_ref()).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), *row0);
    let y = write(d.path(), "row.yaml", &serde_yaml::to_string(row0).unwrap());
    assert_eq!(JobRow::load(y.as_ref()).unwrap(), parsed);
    assert_eq!(parsed.model_prefix(), "dsr1");
}

#[test]
fn job_row_errors() {
    let d = tempfile::tempdir().unwrap();
    let good = r#"{"image": "i", "model": "m", "precision": "fp4", "framework": "sglang", "runner": "mi355x",
 "isl": 1024, "osl": 1024, "tp": 8, "conc": 4, "max-model-len": 2248, "ep": 1, "dp-attn": false, "exp-name": "dsr1_1k1k"}"#;
    let cases = [
        (
            good.replace("\"tp\": 8", "\"tp\": \"8\""),
            ":2:36: tp: invalid type: string \"8\", expected u32",
        ),
        (
            good.replace("\"ep\": 1,", "\"ep\": 1, \"gpu\": 2,"),
            "gpu: unknown field `gpu`",
        ),
        (good.replace("\"conc\": 4,", ""), "missing field `conc`"),
        (
            good.replace("\"conc\": 4", "\"conc\": 0"),
            "entry `row`: conc: must be at least 1",
        ),
        (
            good.replace("2248", "100"),
            "max-model-len: 100 is below isl + osl = 2048",
        ),
    ];
    for (text, want) in cases {
        let f = write(d.path(), "row.json", &text);
        let e = JobRow::load(f.as_ref()).unwrap_err().to_string();
        assert!(
            e.starts_with(&f) && e.contains(want),
            "want {want:?} in {e}"
        );
    }
    // The runner binary reports the same error and exits non-zero.
    let f = write(d.path(), "bad.yaml", "image: i\nmodel: [\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["check", "--config", &f])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{f}:")));
}
