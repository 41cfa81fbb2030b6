//! Changed-config sweeps: which entries (and which of their seq-len configs) differ between
//! two git revisions, compared on the parsed entries so reformatting a file schedules nothing.

use super::SweepError;
use crate::config::master::{Entry, MasterConfig};
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

fn git(repo: &Path, args: &[&str]) -> Result<std::process::Output, SweepError> {
    Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| SweepError::Git(format!("cannot run git: {e}")))
}

/// Fail with "unknown revision" unless `rev` names a commit.
fn verify_rev(repo: &Path, rev: &str) -> Result<(), SweepError> {
    if rev.starts_with('-') {
        return Err(SweepError::Git(format!("invalid revision `{rev}`")));
    }
    let commit = format!("{rev}^{{commit}}");
    let out = git(repo, &["rev-parse", "--verify", "--quiet", &commit])?;
    if !out.status.success() {
        return Err(SweepError::Git(format!("unknown revision `{rev}`")));
    }
    Ok(())
}

/// Load a master file as it was at `rev`; `Ok(None)` when the file did not exist there.
/// `path` is relative to the current directory, as on the command line.
pub fn load_at_rev(repo: &Path, rev: &str, path: &str) -> Result<Option<MasterConfig>, SweepError> {
    verify_rev(repo, rev)?;
    let spec = format!("{rev}:./{}", path.trim_start_matches("./"));
    let out = git(repo, &["cat-file", "-e", &spec])?;
    if !out.status.success() {
        return Ok(None);
    }
    let out = git(repo, &["show", &spec])?;
    if !out.status.success() {
        return Err(SweepError::Git(format!(
            "git show {spec}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| SweepError::Git(format!("{spec} is not UTF-8")))?;
    Ok(Some(MasterConfig::parse(&format!("{rev}:{path}"), &text)?))
}

/// Entries of `head` that are new or changed relative to `base`. With `narrow`, an entry whose
/// top-level fields are unchanged keeps only the seq-len configs (and, in schema B, the
/// agentic-coding blocks) that are new or changed.
/// Entries removed in `head` produce nothing.
pub fn changed_configs(
    base: Option<&MasterConfig>,
    head: &MasterConfig,
    narrow: bool,
) -> MasterConfig {
    let mut entries = vec![];
    for e in &head.entries {
        let old = base.and_then(|b| b.entries.iter().find(|o| o.key == e.key));
        match old {
            None => entries.push(e.clone()),
            Some(o) if o == e => {}
            Some(o) if narrow && same_header(o, e) => {
                let mut n = e.clone();
                n.seq_lens.retain(|s| !o.seq_lens.contains(s));
                n.agentic.retain(|a| !o.agentic.contains(a));
                if !n.seq_lens.is_empty() || !n.agentic.is_empty() {
                    entries.push(n);
                }
            }
            Some(_) => entries.push(e.clone()),
        }
    }
    MasterConfig {
        file: head.file.clone(),
        entries,
    }
}

/// File names (not paths) under `dir` that changed between `base` and `head`.
pub fn changed_files(
    repo: &Path,
    base: &str,
    head: &str,
    dir: &str,
) -> Result<HashSet<String>, SweepError> {
    verify_rev(repo, base)?;
    verify_rev(repo, head)?;
    let out = git(repo, &["diff", "--name-only", base, head, "--", dir])?;
    if !out.status.success() {
        return Err(SweepError::Git(format!(
            "git diff {base} {head} -- {dir}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            Path::new(l)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .collect())
}

/// Add to `changed` (the result of [`changed_configs`] for `head`) every entry of `head`
/// whose launch template is in `templates`, whole: a new engine command affects every
/// seq-len config. Entries already there narrowed are widened.
pub fn with_changed_templates(
    mut changed: MasterConfig,
    head: &MasterConfig,
    templates: &HashSet<String>,
) -> MasterConfig {
    if templates.is_empty() {
        return changed;
    }
    let mut entries = vec![];
    for e in &head.entries {
        if e.template_names().iter().any(|t| templates.contains(t)) {
            entries.push(e.clone());
        } else if let Some(c) = changed.entries.iter().find(|c| c.key == e.key) {
            entries.push(c.clone());
        }
    }
    changed.entries = entries;
    changed
}

fn same_header(a: &Entry, b: &Entry) -> bool {
    a.image == b.image
        && a.model == b.model
        && a.model_prefix == b.model_prefix
        && a.runner == b.runner
        && a.precision == b.precision
        && a.framework == b.framework
        && a.schema == b.schema
        && a.multinode == b.multinode
        && a.disagg == b.disagg
        && a.router == b.router
        && a.kv_p2p_transfer == b.kv_p2p_transfer
}
