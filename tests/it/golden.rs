//! Byte-for-byte comparison with InferenceMAX's own generator.
//!
//! `tests/fixtures/golden/*.json` is what the reference generator
//! (`utils/matrix-logic/generate_sweep_configs.py` at the commit whose configs equal our
//! fixtures, 2025-11-29) printed for the command in the matching `.cmd` file, run in a
//! directory holding the fixture configs. `schema-b/` holds the 2026 generator's output for a
//! schema-B example. Our `expand` must print the same bytes.

use crate::util::{fixture, scheduler};
use std::path::Path;

/// Translate a reference `full-sweep …` command line into ours and compare outputs.
fn check(name: &str, cwd: &Path, expected_dir: &Path, extra: &[&str]) {
    let cmd = std::fs::read_to_string(expected_dir.join(format!("{name}.cmd"))).unwrap();
    let mut words: Vec<&str> = cmd.split_whitespace().collect();
    assert_eq!(
        words[0], "full-sweep",
        "{name}: only full-sweep commands are translated"
    );
    words[0] = "expand";
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

#[test]
fn matches_reference_generator_2026_schema_b() {
    let dir = fixture("golden/schema-b");
    for (name, extra) in [
        ("full_noevals", &["--no-evals"][..]),
        ("full_evals", &[][..]),
    ] {
        let want = std::fs::read(dir.join(format!("{name}.json"))).unwrap();
        let out = scheduler(
            &["expand", "--config-files", "schemaB-example.yaml"]
                .iter()
                .chain(extra)
                .copied()
                .collect::<Vec<_>>(),
            Some(&dir),
        );
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&want),
            "{name}"
        );
    }
}
