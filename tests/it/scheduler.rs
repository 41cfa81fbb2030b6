//! `scheduler expand` and `scheduler diff` on the real InferenceMAX configs: every flag,
//! every error, chunking, $GITHUB_OUTPUT, and diffs over a git repository built in a temp dir.

use crate::util::{commit, git, imax, scheduler, scheduler_err, scheduler_json, write};
use serde_json::Value;
use std::process::Command;

fn both() -> Vec<String> {
    vec![imax("amd-master.yaml"), imax("nvidia-master.yaml")]
}

/// `expand` on both shipped configs with extra args: its whole JSON output.
fn expand_json(extra: &[&str]) -> Value {
    let files = both();
    let mut args = vec!["expand", "--config-files", &files[0], &files[1]];
    args.extend_from_slice(extra);
    scheduler_json(&args)
}

/// `expand` on both shipped configs with extra args: the rows.
fn expand(extra: &[&str]) -> Vec<Value> {
    expand_json(extra).as_array().unwrap().clone()
}

/// `expand --config-files <amd-master.yaml>` followed by `extra`.
fn amd_args<'a>(amd: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["expand", "--config-files", amd];
    args.extend_from_slice(extra);
    args
}

/// `expand` on the AMD config alone with extra args: its whole JSON output.
fn expand_amd(extra: &[&str]) -> Value {
    scheduler_json(&amd_args(&imax("amd-master.yaml"), extra))
}

/// `expand` on the AMD config alone with extra args, expected to fail: its stderr.
fn expand_amd_err(extra: &[&str]) -> String {
    scheduler_err(&amd_args(&imax("amd-master.yaml"), extra))
}

fn field<'a>(rows: &'a [Value], k: &str) -> Vec<&'a Value> {
    rows.iter().map(|r| &r[k]).collect()
}

#[test]
fn full_sweep_has_reference_shape() {
    let rows = expand(&[]);
    assert_eq!(rows.len(), 570);
    let keys: Vec<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "image",
            "model",
            "precision",
            "framework",
            "runner",
            "isl",
            "osl",
            "tp",
            "conc",
            "max-model-len",
            "ep",
            "dp-attn",
            "exp-name"
        ]
    );
    for r in &rows {
        assert_eq!(
            r["max-model-len"],
            r["isl"].as_u64().unwrap() + r["osl"].as_u64().unwrap() + 200
        );
    }
    // First entry of amd-master: dsr1-fp4-mi355x-sglang, 1k1k, tp 4 then tp 8, conc 4..64.
    let c: Vec<u64> = rows[..10]
        .iter()
        .map(|r| r["conc"].as_u64().unwrap())
        .collect();
    assert_eq!(c, [4, 8, 16, 32, 64, 4, 8, 16, 32, 64]);
    assert_eq!(rows[0]["exp-name"], "dsr1_1k1k");
    assert_eq!(rows[0]["dp-attn"], false);
}

#[test]
fn extra_fields_add_our_keys_only() {
    let plain = expand(&["--test-mode"]);
    let ext = expand(&["--test-mode", "--extra-fields"]);
    assert_eq!(plain.len(), ext.len());
    for (p, e) in plain.iter().zip(&ext) {
        let mut e = e.clone();
        let o = e.as_object_mut().unwrap();
        assert!(o["config-key"]
            .as_str()
            .unwrap()
            .starts_with(o["model-prefix"].as_str().unwrap()));
        o.remove("config-key");
        o.remove("model-prefix");
        assert_eq!(&e, p);
    }
}

#[test]
fn filters_combine_with_and() {
    let rows = expand(&["--model-prefix", "dsr1", "--precision", "fp4"]);
    assert!(!rows.is_empty());
    assert!(rows
        .iter()
        .all(|r| r["exp-name"].as_str().unwrap().starts_with("dsr1_") && r["precision"] == "fp4"));
    let vllm = expand(&["--framework", "vllm"]);
    assert!(vllm.iter().all(|r| r["framework"] == "vllm"));
    let two = expand(&["--framework", "vllm", "sglang"]);
    assert!(
        two.len() > vllm.len()
            && two
                .iter()
                .all(|r| r["framework"] == "vllm" || r["framework"] == "sglang")
    );
    let rc = imax("runners.yaml");
    let mi = expand(&["--runner-type", "mi355x", "--runner-config", &rc]);
    assert!(!mi.is_empty() && mi.iter().all(|r| r["runner"] == "mi355x"));
    let k18 = expand(&["--seq-lens", "1k8k"]);
    assert!(k18.iter().all(|r| r["isl"] == 1024 && r["osl"] == 8192));
    let c = expand(&["--min-conc", "8", "--max-conc", "32"]);
    assert!(c
        .iter()
        .all(|r| (8..=32).contains(&r["conc"].as_u64().unwrap())));
    let tp = expand(&["--max-tp", "4"]);
    assert!(!tp.is_empty() && tp.iter().all(|r| r["tp"].as_u64().unwrap() <= 4));
    let keys = expand(&["--config-keys", "gptoss-*-mi355x-*", "dsr1-fp4-b200-*"]);
    assert!(!keys.is_empty());
    assert!(keys
        .iter()
        .all(|r| (r["exp-name"].as_str().unwrap().starts_with("gptoss_")
            && r["runner"] == "mi355x")
            || (r["exp-name"].as_str().unwrap().starts_with("dsr1_") && r["precision"] == "fp4")));
}

#[test]
fn step_size_changes_the_ladder() {
    let rows = expand(&[
        "--config-keys",
        "dsr1-fp4-mi355x-sglang",
        "--seq-lens",
        "1k8k",
        "--step-size",
        "4",
    ]);
    assert_eq!(
        field(&rows, "conc"),
        [&Value::from(4), &Value::from(16), &Value::from(64)]
    );
    let e = expand_amd_err(&["--step-size", "1"]);
    assert!(e.contains("--step-size must be at least 2"), "{e}");
}

#[test]
fn test_mode_takes_highest_tp_at_conc_start() {
    let rows = expand(&["--test-mode", "--config-keys", "dsr1-fp4-mi355x-sglang"]);
    // One row per seq-len config; 1k1k has tp 4 and tp 8 items: tp 8 wins.
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["tp"] == 8 && r["conc"] == 4));
}

#[test]
fn filter_errors() {
    let e = expand_amd_err(&["--runner-type", "mi355x"]);
    assert!(e.contains("--runner-type needs --runner-config"), "{e}");
    let rc = imax("runners.yaml");
    let e = expand_amd_err(&["--runner-type", "tpu", "--runner-config", &rc]);
    assert!(e.contains("unknown runner type `tpu`"), "{e}");
    assert!(
        e.contains("h100, h200, b200-trt, b200, mi300x, mi325x, mi355x, gb200"),
        "{e}"
    );
    let e = expand_amd_err(&["--model-prefix", "llama", "--precision", "fp4"]);
    assert!(
        e.contains("no rows match the filters: --model-prefix llama --precision fp4"),
        "{e}"
    );
    let e = expand_amd_err(&["--min-conc", "64", "--max-conc", "8"]);
    assert!(e.contains("--min-conc 64 is above --max-conc 8"), "{e}");
    let e = expand_amd_err(&["--config-keys", "a[b"]);
    assert!(e.contains("invalid --config-keys pattern `a[b`"), "{e}");
    let e = expand_amd_err(&["--max-rows", "257"]);
    assert!(e.contains("--max-rows must be between 1 and 256"), "{e}");
    // Unknown seq-len names are rejected by the flag parser (exit 2) with the valid ones.
    let amd = imax("amd-master.yaml");
    let out = scheduler(&amd_args(&amd, &["--seq-lens", "2k2k"]), None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1k1k, 1k8k, 8k1k"));
}

#[test]
fn chunking_at_256_and_small() {
    let c = expand_json(&["--max-rows", "256"]);
    assert_eq!(c["count"], 3);
    let chunks: Vec<Vec<Value>> = c["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["include"].as_array().unwrap().clone())
        .collect();
    let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
    assert_eq!(sizes, [256, 256, 58]);
    assert_eq!(
        chunks.concat(),
        expand(&[]),
        "chunks keep order and lose nothing"
    );
    let small = expand_amd(&["--test-mode", "--max-rows", "4"]);
    let n = expand(&["--test-mode"]).len();
    let amd_n = expand_amd(&["--test-mode"]).as_array().unwrap().len();
    assert!(amd_n < n);
    assert_eq!(small["count"].as_u64().unwrap() as usize, amd_n.div_ceil(4));
}

#[test]
fn github_output_multiline_form() {
    let d = tempfile::tempdir().unwrap();
    let out_file = d.path().join("gh_out");
    std::fs::write(&out_file, "earlier=1\n").unwrap();
    let files = both();
    let out = Command::new(env!("CARGO_BIN_EXE_scheduler"))
        .args([
            "expand",
            "--config-files",
            &files[0],
            &files[1],
            "--max-rows",
            "256",
            "--github-output",
            "matrix",
        ])
        .env("GITHUB_OUTPUT", &out_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(text.starts_with("earlier=1\n"), "appends, never truncates");
    let parsed = parse_github_output(&text);
    assert_eq!(parsed["matrix_count"], "3");
    let stdout: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&parsed["matrix"]).unwrap(),
        stdout
    );
    for i in 0..3 {
        let m: Value = serde_json::from_str(&parsed[&format!("matrix_{i}")]).unwrap();
        assert_eq!(m, stdout["chunks"][i]);
    }
    // Without $GITHUB_OUTPUT the flag is an error, not silently ignored.
    let e = expand_amd_err(&["--github-output", "m"]);
    assert!(e.contains("$GITHUB_OUTPUT") && e.contains("not set"), "{e}");
}

/// Parse the `$GITHUB_OUTPUT` file format (single-line `k=v` and multiline `k<<D`).
fn parse_github_output(text: &str) -> std::collections::HashMap<String, String> {
    let mut m = std::collections::HashMap::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if let Some((k, delim)) = l.split_once("<<") {
            let mut v = vec![];
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                v.push(l);
            }
            m.insert(k.to_string(), v.join("\n"));
        } else if let Some((k, v)) = l.split_once('=') {
            m.insert(k.to_string(), v.to_string());
        }
    }
    m
}

#[test]
fn diff_over_real_git_history() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    git(repo, &["init", "-q"]);
    let cfg = repo.join(".github/configs");
    std::fs::create_dir_all(&cfg).unwrap();
    let amd = std::fs::read_to_string(imax("amd-master.yaml")).unwrap();
    let nv = std::fs::read_to_string(imax("nvidia-master.yaml")).unwrap();
    write(&cfg, "amd-master.yaml", &amd);
    write(&cfg, "nvidia-master.yaml", &nv);
    let c0 = commit(repo, "base");

    let diff = |base: &str, head: &str, extra: &[&str]| -> (bool, Vec<Value>, String) {
        let mut args = vec!["diff", "--base", base, "--head", head];
        args.extend_from_slice(extra);
        let out = scheduler(&args, Some(repo));
        let rows = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        (
            out.status.success(),
            rows,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // Reformatting only (comments, flow vs block style) schedules nothing.
    let reformatted = amd.replace(
        "- { tp: 8, conc-start: 4, conc-end: 64 }",
        "- tp: 8\n      conc-start: 4\n      conc-end: 64",
    );
    write(
        &cfg,
        "amd-master.yaml",
        &format!("# reformatted\n{reformatted}"),
    );
    let c1 = commit(repo, "reformat");
    let (ok, rows, err) = diff(&c0, &c1, &[]);
    assert!(ok && rows.is_empty(), "{err}");

    // Change one seq-len config of one entry (conc-end 64 → 128 for dsr1-fp4 8k1k).
    let marker = "  - isl: 8192\n    osl: 1024\n    search-space:\n    - { tp: 8, conc-start: 4, conc-end: 64 }\n\ndsr1-fp8-mi300x-sglang:";
    assert!(amd.contains(marker));
    write(
        &cfg,
        "amd-master.yaml",
        &amd.replacen(
            marker,
            &marker.replacen("conc-end: 64", "conc-end: 128", 1),
            1,
        ),
    );
    let c2 = commit(repo, "change dsr1 fp4 8k1k");
    let (ok, rows, err) = diff(&c0, &c2, &[]);
    assert!(ok, "{err}");
    assert_eq!(rows.len(), 6, "only the changed 8k1k config: conc 4..128");
    assert!(rows.iter().all(|r| r["isl"] == 8192
        && r["model"] == "amd/DeepSeek-R1-0528-MXFP4-Preview"
        && r["precision"] == "fp4"));
    let (_, whole, _) = diff(&c0, &c2, &["--whole-entries"]);
    assert_eq!(
        whole.len(),
        10 + 5 + 6,
        "whole entry: 1k1k (tp4+tp8), 1k8k, 8k1k"
    );
    // Filters apply to diffs too.
    let (ok, none, err) = diff(&c0, &c2, &["--framework", "vllm"]);
    assert!(
        !ok && none.is_empty() && err.contains("no rows match the filters: --framework vllm"),
        "{err}"
    );

    // New entry appears; removed entry gives nothing; header change reruns the whole entry.
    let new_entry = "\nnew-fp4-mi355x-vllm:\n  image: img\n  model: org/new\n  model-prefix: new\n  runner: mi355x\n  precision: fp4\n  framework: vllm\n  seq-len-configs:\n  - isl: 1024\n    osl: 1024\n    search-space:\n    - { tp: 1, conc-start: 1, conc-end: 2 }\n";
    let first_entry_end = amd.find("\ndsr1-fp8-mi300x-sglang:").unwrap();
    let without_first = &amd[first_entry_end + 1..];
    write(
        &cfg,
        "amd-master.yaml",
        &format!("{without_first}{new_entry}"),
    );
    write(
        &cfg,
        "nvidia-master.yaml",
        &nv.replacen("image: ", "image: x", 1),
    );
    write(
        &cfg,
        "extra-master.yaml",
        &new_entry.replace("new-fp4", "extra-fp4"),
    );
    let c3 = commit(repo, "add, remove, change image");
    let (ok, rows, err) = diff(&c0, &c3, &[]);
    assert!(ok, "{err}");
    let news: Vec<&Value> = rows.iter().filter(|r| r["model"] == "org/new").collect();
    assert_eq!(news.len(), 2);
    assert!(rows
        .iter()
        .all(|r| r["model"] != "amd/DeepSeek-R1-0528-MXFP4-Preview"
            || r["precision"] != "fp4"
            || r["runner"] != "mi355x"));
    let changed_nv: Vec<&Value> = rows
        .iter()
        .filter(|r| r["image"].as_str().unwrap().starts_with('x'))
        .collect();
    assert!(!changed_nv.is_empty());
    assert_eq!(rows.len(), 2 + changed_nv.len());

    // A file that did not exist at base: every entry is new.
    let (ok, rows, err) = diff(
        &c0,
        &c3,
        &["--config-files", ".github/configs/extra-master.yaml"],
    );
    assert!(ok && rows.len() == 2, "{err}");

    // A changed launch template reruns, whole, every entry that uses it (and only those).
    let bench = repo.join("benchmarks");
    std::fs::create_dir_all(&bench).unwrap();
    write(&bench, "dsr1_fp8_mi300x_sglang.sh", "exec engine --v1\n");
    let c5 = commit(repo, "add template");
    write(&bench, "dsr1_fp8_mi300x_sglang.sh", "exec engine --v2\n");
    let c6 = commit(repo, "change template");
    let (ok, rows, err) = diff(&c5, &c6, &[]);
    assert!(ok, "{err}");
    assert_eq!(
        rows.len(),
        15,
        "dsr1-fp8-mi300x-sglang: 1k1k, 1k8k, 8k1k × conc 4..64"
    );
    assert!(rows
        .iter()
        .all(|r| r["runner"] == "mi300x" && r["precision"] == "fp8" && r["framework"] == "sglang"));
    let (ok, rows, _) = diff(&c5, &c6, &["--templates", "elsewhere"]);
    assert!(ok && rows.is_empty());

    // Bad revisions and files missing at head are clear errors.
    let (ok, _, err) = diff("nope", &c3, &[]);
    assert!(!ok && err.contains("unknown revision `nope`"), "{err}");
    let (ok, _, err) = diff(&c0, &c3, &["--config-files", "missing.yaml"]);
    assert!(
        !ok && err.contains("missing.yaml does not exist at"),
        "{err}"
    );
    // A broken config at head names the revision and the location.
    write(&cfg, "amd-master.yaml", "e1:\n  image: [\n");
    let c4 = commit(repo, "break");
    let (ok, _, err) = diff(&c0, &c4, &[]);
    assert!(
        !ok && err.contains(&format!("{c4}:.github/configs/amd-master.yaml:")),
        "{err}"
    );
}
