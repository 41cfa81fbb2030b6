//! Shared helpers: locating fixtures and running the built binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of a file under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The InferenceMAX Nov-2025 config files shipped as fixtures.
pub fn imax(name: &str) -> String {
    fixture(&format!("inferencemax-2025-11/{name}"))
        .display()
        .to_string()
}

/// Run the `scheduler` binary with `args` in `dir` (or the crate root).
pub fn scheduler(args: &[&str], dir: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scheduler"));
    c.args(args).env_remove("GITHUB_OUTPUT");
    if let Some(d) = dir {
        c.current_dir(d);
    }
    c.output().expect("scheduler runs")
}

/// Run and expect success; returns stdout parsed as JSON.
pub fn scheduler_json(args: &[&str]) -> serde_json::Value {
    let out = scheduler(args, None);
    assert!(
        out.status.success(),
        "scheduler {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// Run and expect failure (exit 1, no panic); returns stderr.
pub fn scheduler_err(args: &[&str]) -> String {
    let out = scheduler(args, None);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1 for {args:?}; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "panic for {args:?}: {err}");
    assert!(out.stdout.is_empty(), "no rows may be printed on error");
    err
}

/// Write `text` to `dir/name` and return the path as a string.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}
