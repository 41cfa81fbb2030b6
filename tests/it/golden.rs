//! Byte-for-byte comparison with InferenceMAX's own generator.
//!
//! `tests/fixtures/golden/*.json` is what the reference generator
//! (`utils/matrix-logic/generate_sweep_configs.py` at the commit whose configs equal our
//! fixtures, 2025-11-29) printed for the command in the matching `.cmd` file, run in a
//! directory holding the fixture configs. `golden-2026/` holds the 2026 generator's
//! (InferenceX 843c6254f) outputs for the configs of that commit, recorded by its
//! `record.sh`. Our `expand` / `test-config` must print the same bytes.

use crate::util::{fixture, scheduler};
use std::path::Path;

/// Translate a reference `full-sweep …` command line into ours and compare outputs.
fn check(name: &str, cwd: &Path, expected_dir: &Path, extra: &[&str]) {
    let cmd = std::fs::read_to_string(expected_dir.join(format!("{name}.cmd"))).unwrap();
    let mut words: Vec<&str> = cmd.split_whitespace().collect();
    match words[0] {
        "full-sweep" => words[0] = "expand",
        "test-config" => {}
        w => panic!("{name}: cannot translate `{w}`"),
    }
    words.extend_from_slice(extra);
    let out = scheduler(&words, Some(cwd));
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read(expected_dir.join(format!("{name}.json"))).unwrap();
    if out.stdout != want {
        let ours = String::from_utf8_lossy(&out.stdout);
        let theirs = String::from_utf8_lossy(&want);
        let at = ours
            .bytes()
            .zip(theirs.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{name}: output differs from the reference at byte {at}:\n ours:   {}\n theirs: {}",
            &ours[at.saturating_sub(80)..(at + 80).min(ours.len())],
            &theirs[at.saturating_sub(80)..(at + 80).min(theirs.len())]
        );
    }
}

#[test]
fn matches_reference_generator_nov_2025() {
    let cwd = fixture("inferencemax-2025-11");
    let golden = fixture("golden");
    for name in [
        "full",
        "full_amd",
        "full_nvidia",
        "full_nvidia_first",
        "test_mode",
        "filter_dsr1_fp4",
        "filter_vllm",
        "filter_mi355x",
        "filter_1k8k",
        "filter_keyprefix",
        "step3",
        "step4",
        "combined",
        "combined_testmode",
    ] {
        check(name, &cwd, &golden, &[]);
    }
    let full: serde_json::Value =
        serde_json::from_slice(&std::fs::read(golden.join("full.json")).unwrap()).unwrap();
    assert_eq!(full.as_array().unwrap().len(), 570);
}

/// Every `tests/fixtures/golden-2026/<name>.cmd` (a `full-sweep` or `test-config` command
/// line of InferenceX's 2026 generator, recorded by `record.sh` there) against our
/// `expand`/`test-config` run in the 2026 config directory; `fp_*` ones with
/// `--fingerprint`, since their golden passed the rows through process_changelog's
/// `recipe_fingerprint`.
#[test]
fn matches_reference_generator_2026() {
    let cwd = fixture("inferencex-2026-08");
    let golden = fixture("golden-2026");
    let mut names: Vec<String> = std::fs::read_dir(&golden)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "cmd").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 20, "{names:?}");
    for name in &names {
        let extra: &[&str] = if name.starts_with("fp_") {
            &["--fingerprint"]
        } else {
            &[]
        };
        check(name, &cwd, &golden, extra);
    }
    let full: serde_json::Value =
        serde_json::from_slice(&std::fs::read(golden.join("full.json")).unwrap()).unwrap();
    assert_eq!(full.as_array().unwrap().len(), 1820);
}
