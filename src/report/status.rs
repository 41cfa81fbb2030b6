//! `status.json`: the record of a job that did not pass. `runner exec` writes it for a job
//! that failed (the stage, its exit code, the error; `agg.json` may be there too when the
//! numbers were written before the failure was known) and for a job stopped by a signal
//! (stage `interrupted`, the stage that was running, the signal). `runner report` and
//! `scheduler collect` read it so that a sweep's failures are listed, never dropped.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What `status.json` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// `failed` or `interrupted`.
    #[serde(default = "failed")]
    pub status: String,
    /// The stage that failed (`config`, `launch`, `readiness`, `load`, …), or `interrupted`.
    #[serde(default = "unknown")]
    pub stage: String,
    /// For an interrupted job: the stage that was running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_stage: Option<String>,
    /// For an interrupted job: the signal (`SIGTERM`, `SIGINT`, `SIGHUP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// `runner exec`'s exit code.
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// What happened.
    #[serde(default)]
    pub error: String,
}

fn failed() -> String {
    "failed".into()
}
fn unknown() -> String {
    "unknown".into()
}

impl JobStatus {
    /// The job's `status.json`, if it has one (an unreadable one counts as a failure that
    /// says so).
    pub fn read(dir: &Path) -> Option<JobStatus> {
        let p = dir.join("status.json");
        let text = std::fs::read_to_string(&p).ok()?;
        Some(serde_json::from_str(&text).unwrap_or_else(|e| JobStatus {
            status: failed(),
            stage: unknown(),
            running_stage: None,
            signal: None,
            exit_code: None,
            error: format!("{}: unreadable status.json: {e}", p.display()),
        }))
    }

    /// Whether a signal stopped the job.
    pub fn interrupted(&self) -> bool {
        self.status == "interrupted"
    }

    /// `load` for a failed job, `interrupted (load, SIGTERM)` for an interrupted one.
    pub fn describe(&self) -> String {
        if self.interrupted() {
            format!(
                "interrupted ({}, {})",
                self.running_stage.as_deref().unwrap_or("?"),
                self.signal.as_deref().unwrap_or("?")
            )
        } else {
            format!("failed ({})", self.stage)
        }
    }
}

/// Every job directory in or below `dirs` with a `status.json`, sorted by path.
pub fn find(dirs: &[PathBuf]) -> Vec<(PathBuf, JobStatus)> {
    fn walk(d: &Path, out: &mut Vec<(PathBuf, JobStatus)>) {
        if let Some(s) = JobStatus::read(d) {
            out.push((d.to_path_buf(), s));
            return;
        }
        let Ok(rd) = std::fs::read_dir(d) else {
            return;
        };
        let mut subs: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        subs.sort();
        for s in subs {
            walk(&s, out);
        }
    }
    let mut out = vec![];
    for d in dirs {
        walk(d, &mut out);
    }
    out
}

/// Markdown listing failed and interrupted jobs (empty when there are none).
pub fn markdown(list: &[(PathBuf, JobStatus)]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "## Failed and interrupted jobs\n\n| Job | Outcome | Exit code | Results | Error |\n|---|---|--:|---|---|\n",
    );
    for (dir, st) in list {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        let results = if dir.join("agg.json").is_file() {
            "agg.json (not counted)"
        } else if dir.join("requests.jsonl").is_file() {
            "requests.jsonl"
        } else {
            "—"
        };
        s.push_str(&format!(
            "| {} | {} | {} | {results} | {} |\n",
            cell(&name),
            cell(&st.describe()),
            st.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "—".into()),
            cell(&st.error)
        ));
    }
    s.push('\n');
    s
}

/// Table-safe text: one line, no pipes, at most 200 characters.
fn cell(s: &str) -> String {
    let one: String = s.lines().next().unwrap_or("").replace('|', "\\|");
    if one.chars().count() > 200 {
        format!("{}…", one.chars().take(200).collect::<String>())
    } else {
        one
    }
}
