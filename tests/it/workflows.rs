//! The sweep chain the workflows run, locally and end to end: `scheduler diff` on a git
//! history → matrix JSON → `runner exec` per row on the simulated engine → `scheduler
//! collect --dir` → one sweep table and plot.

use crate::util::{commit, git, root, svg_count, write};
use serde_json::Value;
use std::process::Command;

#[test]
fn diff_matrix_exec_collect_chain() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    git(repo, &["init", "-q"]);
    std::fs::create_dir_all(repo.join(".github/configs")).unwrap();
    write(repo, "README", "base\n");
    let base = commit(repo, "base");
    // A new entry: small lengths so the simulated engine serves it in a moment.
    write(
        &repo.join(".github/configs"),
        "amd-master.yaml",
        "dsr1-fp4-mi355x-sglang:\n  image: img:1\n  model: amd/DeepSeek-R1-0528-MXFP4-Preview\n  model-prefix: dsr1\n  runner: mi355x\n  precision: fp4\n  framework: sglang\n  seq-len-configs:\n  - isl: 64\n    osl: 16\n    search-space:\n    - { tp: 8, conc-start: 1, conc-end: 2 }\n",
    );
    let head = commit(repo, "add entry");
    let gh_out = repo.join("gh_output");
    let o = Command::new(env!("CARGO_BIN_EXE_scheduler"))
        .current_dir(repo)
        .args([
            "diff",
            "--base",
            &base,
            "--head",
            &head,
            "--config-files",
            ".github/configs/amd-master.yaml",
        ])
        .args(["--max-rows", "256", "--github-output", "matrix"])
        .env("GITHUB_OUTPUT", &gh_out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["count"], 1);
    let rows = out["chunks"][0]["include"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2);
    assert!(std::fs::read_to_string(&gh_out)
        .unwrap()
        .contains("matrix_0<<"));

    // One `runner exec` per matrix row, as benchmark-tmpl.yml does, on the sim profile.
    let runners = repo.join("runners");
    std::fs::create_dir_all(&runners).unwrap();
    write(&runners, "sim.yaml", "kind: sim\npreset: tiny\n");
    write(&runners, "map.yaml", "\"*\": sim\n");
    let results = repo.join("results");
    for (i, r) in rows.iter().enumerate() {
        let row = write(repo, &format!("row{i}.json"), &r.to_string());
        let o = Command::new(env!("CARGO_BIN_EXE_runner"))
            .current_dir(repo)
            .args([
                "exec",
                "--config",
                &row,
                "--out",
                &results.display().to_string(),
            ])
            .args([
                "--runners",
                &runners.display().to_string(),
                "--prompts-multiplier",
                "1",
                "--num-warmups",
                "0",
            ])
            .args([
                "--baselines",
                &root().join("baselines").display().to_string(),
            ])
            .env("RUNNER_NAME", "mi355x-amd_4")
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "row {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // Collect the local result dirs into one sweep table and plot.
    let sweep = repo.join("sweep");
    let o = Command::new(env!("CARGO_BIN_EXE_scheduler"))
        .current_dir(repo)
        .args([
            "collect",
            "--dir",
            &results.display().to_string(),
            "--out",
            &sweep.display().to_string(),
            "--no-png",
        ])
        .args([
            "--baselines",
            &root().join("baselines").display().to_string(),
        ])
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = std::fs::read_to_string(sweep.join("summary.md")).unwrap();
    let table_rows = summary
        .lines()
        .filter(|l| l.starts_with("| sim ") || l.starts_with("| SIM "))
        .count();
    assert_eq!(table_rows, 2, "{summary}");
    assert!(svg_count(&sweep) >= 1, "a plot per line and axis");
    // The job directories carry the GitHub runner's name, as InferenceMAX's do.
    assert!(results
        .join("dsr1_64_16_fp4_sglang_tp8_ep1_dpa_false_conc2_mi355x-amd_4/agg.json")
        .is_file());
}
