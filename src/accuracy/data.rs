//! Evaluation data: Hugging Face datasets from the hub cache (downloaded with hf-hub when
//! allowed) read straight from their parquet files, or a local parquet/JSONL file. Only
//! string columns are needed, so rows are read without arrow.

use super::AccuracyError;
use std::path::{Path, PathBuf};

/// A dataset split on the Hugging Face Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSplit {
    /// Repo id, e.g. `EleutherAI/wikitext_document_level`.
    pub repo: &'static str,
    /// Config (subset), e.g. `wikitext-2-raw-v1`.
    pub config: &'static str,
    /// Split, e.g. `test`.
    pub split: &'static str,
}

impl HubSplit {
    /// The command that puts this split into the cache.
    pub fn fetch_command(&self) -> String {
        format!(
            "huggingface-cli download --repo-type dataset {} --include '{}/*'",
            self.repo, self.config
        )
    }
}

/// Where rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A split of a hub dataset.
    Hub(HubSplit),
    /// A local `.parquet` file, or JSONL (one object per line) otherwise.
    Local(PathBuf),
}

/// Read string `columns` of every row, in file order.
pub async fn load(src: &Source, columns: &[&str]) -> Result<Vec<Vec<String>>, AccuracyError> {
    match src {
        Source::Local(p) => read_file(p, columns),
        Source::Hub(h) => {
            let files = hub_files(h).await?;
            let mut rows = vec![];
            for f in files {
                rows.extend(read_file(&f, columns)?);
            }
            Ok(rows)
        }
    }
}

fn read_file(p: &Path, columns: &[&str]) -> Result<Vec<Vec<String>>, AccuracyError> {
    if p.extension().is_some_and(|e| e == "parquet") {
        read_parquet(p, columns)
    } else {
        read_jsonl(p, columns)
    }
}

fn data_err(p: &Path, message: impl std::fmt::Display) -> AccuracyError {
    AccuracyError::Data {
        file: p.display().to_string(),
        message: message.to_string(),
    }
}

/// JSONL: every non-blank line an object holding each of `columns` as a string.
pub fn read_jsonl(p: &Path, columns: &[&str]) -> Result<Vec<Vec<String>>, AccuracyError> {
    let text = std::fs::read_to_string(p).map_err(|e| data_err(p, e))?;
    let mut rows = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| data_err(p, format!("line {}: {e}", i + 1)))?;
        let mut row = Vec::with_capacity(columns.len());
        for c in columns {
            match v.get(c).and_then(|x| x.as_str()) {
                Some(s) => row.push(s.to_string()),
                None => {
                    return Err(data_err(
                        p,
                        format!("line {}: no string field `{c}`", i + 1),
                    ))
                }
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Parquet: string columns by name, row by row (no arrow).
pub fn read_parquet(p: &Path, columns: &[&str]) -> Result<Vec<Vec<String>>, AccuracyError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let f = std::fs::File::open(p).map_err(|e| data_err(p, e))?;
    let reader = SerializedFileReader::new(f).map_err(|e| data_err(p, e))?;
    let iter = reader.get_row_iter(None).map_err(|e| data_err(p, e))?;
    let mut rows = vec![];
    for (i, r) in iter.enumerate() {
        let r = r.map_err(|e| data_err(p, e))?;
        let mut row = Vec::with_capacity(columns.len());
        for c in columns {
            let v = r.get_column_iter().find(|(name, _)| name.as_str() == *c);
            match v {
                Some((_, Field::Str(s))) => row.push(s.clone()),
                _ => return Err(data_err(p, format!("row {i}: no string column `{c}`"))),
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Whether a repo-relative path holds `split` of `config`: under `config/`, with the split
/// as a directory or as a `-`/`_`/`.`-separated part of the file name.
fn matches_split(rel: &str, h: &HubSplit) -> bool {
    if !rel.ends_with(".parquet") {
        return false;
    }
    let Some(rest) = rel.strip_prefix(&format!("{}/", h.config)) else {
        return false;
    };
    let rest = rest.trim_end_matches(".parquet");
    rest.split(['/', '-', '_', '.']).any(|part| part == h.split)
}

fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, base, out);
        } else if let Ok(rel) = p.strip_prefix(base) {
            out.push((rel.to_string_lossy().replace('\\', "/"), p));
        }
    }
}

/// Parquet files of a split already in the hub cache (any snapshot, `main` first).
pub fn cached_files(h: &HubSplit) -> Vec<PathBuf> {
    let root =
        crate::tokenizer::hub_cache_dir().join(format!("datasets--{}", h.repo.replace('/', "--")));
    let main = std::fs::read_to_string(root.join("refs/main"))
        .map(|s| s.trim().to_string())
        .ok();
    let mut snaps: Vec<PathBuf> = std::fs::read_dir(root.join("snapshots"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    snaps.sort_by_key(|p| {
        (
            p.file_name().and_then(|n| n.to_str()) != main.as_deref(),
            p.clone(),
        )
    });
    for s in snaps {
        let mut files = vec![];
        walk(&s, &s, &mut files);
        let mut hit: Vec<(String, PathBuf)> = files
            .into_iter()
            .filter(|(rel, _)| matches_split(rel, h))
            .collect();
        if !hit.is_empty() {
            hit.sort();
            return hit.into_iter().map(|x| x.1).collect();
        }
    }
    vec![]
}

async fn hub_files(h: &HubSplit) -> Result<Vec<PathBuf>, AccuracyError> {
    let cached = cached_files(h);
    if !cached.is_empty() {
        return Ok(cached);
    }
    let missing = |why: String| AccuracyError::DatasetMissing {
        dataset: format!("{} ({}, split {})", h.repo, h.config, h.split),
        cache: crate::tokenizer::hub_cache_dir().display().to_string(),
        why,
        fetch: h.fetch_command(),
    };
    if crate::tokenizer::hub_offline() {
        return Err(missing("HF_HUB_OFFLINE is set".into()));
    }
    use hf_hub::{Repo, RepoType};
    let api = crate::tokenizer::hub_api().map_err(|e| missing(e.to_string()))?;
    // Script-based datasets keep their parquet conversion on a separate ref.
    for rev in ["main", "refs/convert/parquet"] {
        let repo = api.repo(Repo::with_revision(
            h.repo.to_string(),
            RepoType::Dataset,
            rev.to_string(),
        ));
        let info = match repo.info().await {
            Ok(i) => i,
            Err(e) => return Err(missing(format!("download failed: {e}"))),
        };
        let mut names: Vec<String> = info
            .siblings
            .into_iter()
            .map(|s| s.rfilename)
            .filter(|n| matches_split(n, h))
            .collect();
        names.sort();
        if names.is_empty() {
            continue;
        }
        let mut out = vec![];
        for n in names {
            out.push(
                repo.get(&n)
                    .await
                    .map_err(|e| missing(format!("download of {n} failed: {e}")))?,
            );
        }
        return Ok(out);
    }
    Err(missing(
        "the repo has no parquet files for this split".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_matching() {
        let h = HubSplit {
            repo: "x/y",
            config: "main",
            split: "test",
        };
        assert!(matches_split("main/test-00000-of-00001.parquet", &h));
        assert!(matches_split("main/test/0000.parquet", &h));
        assert!(!matches_split("main/train-00000-of-00001.parquet", &h));
        assert!(!matches_split("other/test-00000-of-00001.parquet", &h));
        assert!(!matches_split("main/test.jsonl", &h));
    }
}
