//! `scheduler collect`: from a run's artifacts (or local result directories) to the list of
//! jobs with their outcome. Every result directory counts: one with `agg.json` finished, one
//! with only `status.json` failed at the stage it names, and artifacts past retention and
//! jobs the jobs API reports failed are listed too, so a sweep never silently shrinks.

use super::{Artifact, GithubError, Job};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Prefix of the artifacts `benchmark-tmpl.yml` uploads.
pub const ARTIFACT_PREFIX: &str = "bmk_";

/// One job's result directory.
#[derive(Debug, Clone, Serialize)]
pub struct JobResult {
    /// The directory's name (InferenceMAX's RESULT_FILENAME).
    pub name: String,
    /// Where it is.
    pub dir: PathBuf,
    /// How the job ended.
    pub outcome: Outcome,
}

/// How a job ended, as its result directory tells.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// `agg.json` is there.
    Finished,
    /// `status.json` says failed: the stage that failed, its exit code and message
    /// (`agg.json` may be there too: numbers written before the failure was known).
    Failed {
        /// Stage name (`config`, `launch`, `readiness`, `load`, …, or `workflow`).
        stage: String,
        /// `runner exec`'s exit code, when it got that far.
        exit_code: Option<i64>,
        /// The error message.
        error: String,
    },
    /// `status.json` says a signal stopped the job.
    Interrupted {
        /// The stage that was running.
        stage: String,
        /// `SIGTERM`, `SIGINT` or `SIGHUP`.
        signal: String,
        /// 143, 130 or 129.
        exit_code: Option<i64>,
        /// The error message.
        error: String,
    },
}

/// Everything collected about a sweep, for `collect.json` and the summary's failure list.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Collected {
    /// The workflow run, when collected from GitHub.
    pub run_id: Option<u64>,
    /// Every result directory found, sorted by name.
    pub results: Vec<JobResult>,
    /// `bmk_*` artifacts past their retention period (listed, not downloaded).
    pub expired: Vec<String>,
    /// Jobs the jobs API reports as failed, cancelled or timed out.
    pub failed_jobs: Vec<FailedJob>,
}

/// A job the jobs API reports as not successful.
#[derive(Debug, Clone, Serialize)]
pub struct FailedJob {
    /// Job name.
    pub name: String,
    /// `failure`, `cancelled`, `timed_out`, …
    pub conclusion: String,
    /// Its page.
    pub url: Option<String>,
}

impl From<&Job> for FailedJob {
    fn from(j: &Job) -> Self {
        FailedJob {
            name: j.name.clone(),
            conclusion: j.conclusion.clone().unwrap_or_default(),
            url: j.html_url.clone(),
        }
    }
}

impl Collected {
    /// Directories holding an `agg.json`, for the report (a failed job's row there carries
    /// its failure, and the verdict never counts it).
    pub fn finished_dirs(&self) -> Vec<PathBuf> {
        self.results
            .iter()
            .filter(|r| r.dir.join("agg.json").is_file())
            .map(|r| r.dir.clone())
            .collect()
    }

    /// Result directories of jobs that failed or were interrupted.
    pub fn failed(&self) -> impl Iterator<Item = &JobResult> {
        self.results
            .iter()
            .filter(|r| !matches!(r.outcome, Outcome::Finished))
    }

    /// What `report.html` lists besides the points: failed and interrupted results (with
    /// their directories), jobs the jobs API reports as not successful, expired artifacts.
    pub fn notes(&self) -> Vec<crate::report::html::Note> {
        use crate::report::html::Note;
        let mut out = vec![];
        for r in self.failed() {
            let detail = match &r.outcome {
                Outcome::Failed {
                    stage,
                    exit_code,
                    error,
                } => format!(
                    "failed at {stage}{}: {error}",
                    exit_code
                        .map(|c| format!(" (exit {c})"))
                        .unwrap_or_default()
                ),
                Outcome::Interrupted {
                    stage,
                    signal,
                    error,
                    ..
                } => format!("interrupted by {signal} during {stage}: {error}"),
                Outcome::Finished => continue,
            };
            out.push(Note {
                what: "failed result".into(),
                name: r.name.clone(),
                detail,
                dir: Some(r.dir.clone()),
                url: None,
            });
        }
        for j in &self.failed_jobs {
            out.push(Note {
                what: "GitHub job".into(),
                name: j.name.clone(),
                detail: j.conclusion.clone(),
                dir: None,
                url: j.url.clone(),
            });
        }
        for a in &self.expired {
            out.push(Note {
                what: "expired artifact".into(),
                name: a.clone(),
                detail: "past its retention period: not downloaded".into(),
                ..Note::default()
            });
        }
        out
    }

    /// Anything to report besides finished rows.
    pub fn has_problems(&self) -> bool {
        self.failed().next().is_some() || !self.expired.is_empty() || !self.failed_jobs.is_empty()
    }

    /// Markdown listing failed results, failed jobs and expired artifacts (empty when there
    /// are none).
    pub fn problems_markdown(&self) -> String {
        if !self.has_problems() {
            return String::new();
        }
        let mut s = String::from("## Not in the table\n\n");
        let failed: Vec<_> = self.failed().collect();
        if !failed.is_empty() {
            s.push_str("### Failed and interrupted jobs\n\n");
            s.push_str("| Job | Outcome | Stage | Exit code | Error |\n|---|---|---|--:|---|\n");
            for r in failed {
                let (outcome, stage, exit_code, error) = match &r.outcome {
                    Outcome::Failed {
                        stage,
                        exit_code,
                        error,
                    } => ("failed".to_string(), stage, exit_code, error),
                    Outcome::Interrupted {
                        stage,
                        signal,
                        exit_code,
                        error,
                    } => (format!("interrupted ({signal})"), stage, exit_code, error),
                    Outcome::Finished => continue,
                };
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    cell(&r.name),
                    cell(&outcome),
                    cell(stage),
                    exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "—".into()),
                    cell(error)
                ));
            }
            s.push('\n');
        }
        if !self.failed_jobs.is_empty() {
            s.push_str("### Jobs that did not succeed (GitHub jobs API)\n\n");
            s.push_str("| Job | Conclusion |\n|---|---|\n");
            for j in &self.failed_jobs {
                let name = match &j.url {
                    Some(u) => format!("[{}]({u})", cell(&j.name)),
                    None => cell(&j.name),
                };
                s.push_str(&format!("| {name} | {} |\n", cell(&j.conclusion)));
            }
            s.push('\n');
        }
        if !self.expired.is_empty() {
            s.push_str("### Expired artifacts (past retention, not downloaded)\n\n");
            for a in &self.expired {
                s.push_str(&format!("- {}\n", cell(a)));
            }
            s.push('\n');
        }
        s
    }
}

/// Table-safe text: one line, no pipes.
fn cell(s: &str) -> String {
    let one: String = s.lines().next().unwrap_or("").replace('|', "\\|");
    if one.chars().count() > 200 {
        format!("{}…", one.chars().take(200).collect::<String>())
    } else {
        one
    }
}

/// Whether an artifact holds benchmark results.
pub fn is_result_artifact(a: &Artifact) -> bool {
    a.name.starts_with(ARTIFACT_PREFIX)
}

/// Every result directory in or below `dirs`: directories holding `agg.json` (finished) or
/// `status.json` without `agg.json` (failed). Sorted by name, then path.
pub fn scan(dirs: &[PathBuf]) -> Result<Vec<JobResult>, GithubError> {
    let mut out = Vec::new();
    for d in dirs {
        if !d.is_dir() {
            return Err(GithubError::io(
                d,
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            ));
        }
        walk(d, &mut out)?;
    }
    out.sort_by(|a, b| (&a.name, &a.dir).cmp(&(&b.name, &b.dir)));
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<JobResult>) -> Result<(), GithubError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    // `status.json` first: a job that failed after writing its numbers has both.
    if let Some(st) = crate::report::status::JobStatus::read(dir) {
        let error = if st.error.is_empty() {
            "status.json without an error".to_string()
        } else {
            st.error.clone()
        };
        let outcome = if st.interrupted() {
            Outcome::Interrupted {
                stage: st.running_stage.clone().unwrap_or_else(|| "unknown".into()),
                signal: st.signal.clone().unwrap_or_else(|| "unknown".into()),
                exit_code: st.exit_code,
                error,
            }
        } else {
            Outcome::Failed {
                stage: st.stage.clone(),
                exit_code: st.exit_code,
                error,
            }
        };
        out.push(JobResult {
            name,
            dir: dir.to_path_buf(),
            outcome,
        });
        return Ok(());
    }
    if dir.join("agg.json").is_file() {
        out.push(JobResult {
            name,
            dir: dir.to_path_buf(),
            outcome: Outcome::Finished,
        });
        return Ok(());
    }
    let mut subdirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| GithubError::io(dir, e))? {
        let entry = entry.map_err(|e| GithubError::io(dir, e))?;
        if entry
            .file_type()
            .map_err(|e| GithubError::io(dir, e))?
            .is_dir()
        {
            subdirs.push(entry.path());
        }
    }
    subdirs.sort();
    for s in subdirs {
        walk(&s, out)?;
    }
    Ok(())
}

/// Unpack an artifact zip into `dest`, refusing entries that would land outside it.
pub fn unzip(name: &str, bytes: &[u8], dest: &Path) -> Result<(), GithubError> {
    let zerr = |message: String| GithubError::Zip {
        name: name.to_string(),
        message,
    };
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| zerr(e.to_string()))?;
    std::fs::create_dir_all(dest).map_err(|e| GithubError::io(dest, e))?;
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).map_err(|e| zerr(e.to_string()))?;
        let shown = String::from_utf8_lossy(f.name_raw()).into_owned();
        let rel = f
            .enclosed_name()
            .ok_or_else(|| zerr(format!("entry `{shown}` points outside the artifact")))?;
        let path = dest.join(rel);
        if f.is_dir() {
            std::fs::create_dir_all(&path).map_err(|e| GithubError::io(&path, e))?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| GithubError::io(parent, e))?;
        }
        let mut buf = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut buf)
            .map_err(|e| zerr(format!("{shown}: {e}")))?;
        std::fs::write(&path, crate::secrets::redact_bytes(&buf))
            .map_err(|e| GithubError::io(&path, e))?;
    }
    Ok(())
}
