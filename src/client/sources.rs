//! The file datasets of benchmark_serving.py: `sharegpt`, `sonnet`, `burstgpt` and `hf`.
//!
//! The bounty-era client kept their flags but dropped their samplers; both it and InferenceX's
//! copy descend from vLLM's v0.7-era `benchmark_serving.py`, whose samplers these reproduce
//! draw for draw, so that a reference command line naming one of them sends the same
//! prompts: `sharegpt` shuffles with Python's `random.shuffle`, `sonnet` picks lines with
//! `random.choices`, `burstgpt` samples rows as pandas' `DataFrame.sample(random_state=seed)`
//! does (numpy's legacy `permutation`, or `randint` with replacement), and `hf` shuffles as
//! the `datasets` library's streaming `shuffle(seed)` does ([`super::hfshuffle`]). Token
//! counts use `tokenizer(text).input_ids`, special tokens included, as the reference does.

use super::dataset::{Dataset, DatasetError, Prompt};
use super::rng::NumpyRandom;
use crate::accuracy::pyrandom::PyRandom;
use crate::tokenizer::HfTokenizer;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Which file dataset, with its own flags.
#[derive(Debug, Clone)]
pub enum FileKind {
    /// `--dataset-name sharegpt`; `--sharegpt-output-len` overrides the completion's length.
    ShareGpt { output_len: Option<u32> },
    /// `--dataset-name sonnet` with `--sonnet-{input,output,prefix}-len`. `raw`: send the
    /// prompt without the chat template (the reference does so for `openai-chat`).
    Sonnet {
        input_len: u32,
        output_len: u32,
        prefix_len: u32,
        raw: bool,
    },
    /// `--dataset-name burstgpt` (a BurstGPT CSV; GPT-4 rows with a response).
    BurstGpt,
    /// `--dataset-name hf`: a dataset with a `conversations` column, from a local file or
    /// folder or the hub cache, `--hf-subset`/`--hf-split`, `--hf-output-len`.
    Hf {
        subset: Option<String>,
        split: String,
        output_len: Option<u32>,
    },
}

/// A file dataset to sample.
#[derive(Debug, Clone)]
pub struct FileParams {
    pub kind: FileKind,
    /// `--dataset-path` (for `hf` also a hub dataset id).
    pub path: String,
    /// `--num-prompts`.
    pub num_prompts: usize,
}

fn read_err(path: &str, message: impl std::fmt::Display) -> DatasetError {
    DatasetError::File {
        path: path.to_string(),
        message: message.to_string(),
    }
}

/// Sample as the reference's `main()` does after `random.seed(seed)` and
/// `np.random.seed(seed)`.
pub fn sample_file(tok: &HfTokenizer, p: &FileParams, seed: u32) -> Result<Dataset, DatasetError> {
    let mut py = PyRandom::new(u64::from(seed));
    let prompts = match &p.kind {
        FileKind::ShareGpt { output_len } => {
            sharegpt(tok, &p.path, p.num_prompts, *output_len, &mut py)?
        }
        FileKind::Sonnet {
            input_len,
            output_len,
            prefix_len,
            raw,
        } => sonnet(
            tok,
            &p.path,
            p.num_prompts,
            [*input_len, *output_len, *prefix_len],
            *raw,
            &mut py,
        )?,
        FileKind::BurstGpt => burstgpt(tok, &p.path, p.num_prompts, seed)?,
        FileKind::Hf {
            subset,
            split,
            output_len,
        } => {
            let files = super::hfshuffle::data_files(&p.path, subset.as_deref(), split)?;
            let rows = super::hfshuffle::shuffled_conversations(&files, u64::from(seed))?;
            hf(tok, rows, p.num_prompts, *output_len)?
        }
    };
    Ok(Dataset {
        prompts,
        rng: NumpyRandom::new(seed),
        py,
        mismatches: vec![],
    })
}

/// `len(tokenizer(text).input_ids)`.
fn count(tok: &HfTokenizer, text: &str) -> Result<u32, DatasetError> {
    Ok(tok.encode_with_special_tokens(text)?.len() as u32)
}

/// The first two turns' `value`s of a ShareGPT-style conversation (`None` if it has fewer).
fn first_two_turns(path: &str, conv: &Value) -> Result<Option<(String, String)>, DatasetError> {
    let Some(turns) = conv.as_array() else {
        return Err(read_err(path, "`conversations` is not a list"));
    };
    if turns.len() < 2 {
        return Ok(None);
    }
    let value = |t: &Value| {
        t.get("value")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| read_err(path, "a turn has no string `value`"))
    };
    Ok(Some((value(&turns[0])?, value(&turns[1])?)))
}

/// `sample_sharegpt_requests`: conversations with two turns or more, shuffled, then the
/// first `n` whose lengths pass the filter (prompt ≥ 4 tokens, completion ≥ 4 unless the
/// output length is fixed, prompt ≤ 1024, prompt + output ≤ 2048). May return fewer.
fn sharegpt(
    tok: &HfTokenizer,
    path: &str,
    n: usize,
    fixed: Option<u32>,
    py: &mut PyRandom,
) -> Result<Vec<Prompt>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|e| read_err(path, e))?;
    let data: Value = serde_json::from_str(&text).map_err(|e| read_err(path, e))?;
    let Some(items) = data.as_array() else {
        return Err(read_err(path, "expected a JSON list of conversations"));
    };
    let mut pairs = vec![];
    for item in items {
        let conv = item
            .get("conversations")
            .ok_or_else(|| read_err(path, "an entry has no `conversations`"))?;
        if let Some(pair) = first_two_turns(path, conv)? {
            pairs.push(pair);
        }
    }
    py.shuffle(&mut pairs);
    let mut out = vec![];
    for (prompt, completion) in pairs {
        if out.len() == n {
            break;
        }
        let prompt_len = count(tok, &prompt)?;
        let output_len = match fixed {
            Some(f) => f,
            None => count(tok, &completion)?,
        };
        if prompt_len < 4 || (fixed.is_none() && output_len < 4) {
            continue;
        }
        if prompt_len > 1024 || prompt_len + output_len > 2048 {
            continue;
        }
        out.push(Prompt {
            text: prompt,
            prompt_len,
            output_len,
        });
    }
    Ok(out)
}

/// The instruction every sonnet prompt starts with.
const SONNET_BASE: &str = "Pick as many lines as you can from these poem lines:\n";

/// `sample_sonnet_requests`: a fixed prefix of poem lines plus lines drawn with
/// `random.choices`, sized from the average line length, behind an instruction, wrapped in
/// the chat template (whose length counts; `raw` sends the unwrapped prompt).
fn sonnet(
    tok: &HfTokenizer,
    path: &str,
    n: usize,
    [input_len, output_len, prefix_len]: [u32; 3],
    raw: bool,
    py: &mut PyRandom,
) -> Result<Vec<Prompt>, DatasetError> {
    if input_len <= prefix_len {
        return Err(DatasetError::Invalid(
            "--sonnet-input-len must be greater than --sonnet-prefix-len".into(),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| read_err(path, e))?;
    // Python's text mode: universal newlines, lines keep their "\n".
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.is_empty() {
        return Err(read_err(path, "the file has no lines"));
    }
    let mut total = 0usize;
    for l in &lines {
        total += tok.encode_with_special_tokens(l)?.len();
    }
    let average = total as f64 / lines.len() as f64;
    let offset = count(tok, &tok.apply_chat_template(SONNET_BASE)?)?;
    if input_len <= offset {
        return Err(DatasetError::Invalid(format!(
            "--sonnet-input-len must be higher than {offset} (the instruction's tokens)"
        )));
    }
    if prefix_len <= offset {
        return Err(DatasetError::Invalid(format!(
            "--sonnet-prefix-len must be higher than {offset} (the instruction's tokens)"
        )));
    }
    // Python's round(): half to even.
    let input_lines = ((f64::from(input_len - offset)) / average).round_ties_even() as i64;
    let prefix_lines = ((f64::from(prefix_len - offset)) / average).round_ties_even() as i64;
    let prefix: String = lines[..(prefix_lines as usize).min(lines.len())].concat();
    let needed = (input_lines - prefix_lines).max(0) as usize;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut prompt = format!("{SONNET_BASE}{prefix}");
        for _ in 0..needed {
            prompt.push_str(lines[py.choices_index(lines.len())]);
        }
        let formatted = tok.apply_chat_template(&prompt)?;
        let prompt_len = count(tok, &formatted)?;
        out.push(Prompt {
            text: if raw { prompt } else { formatted },
            prompt_len,
            output_len,
        });
    }
    Ok(out)
}

use crate::csv::fields as csv_fields;

/// `sample_burstgpt_requests`: GPT-4 rows with a non-zero response, sampled as
/// `df.sample(n, random_state=seed)` (with replacement when `n` exceeds them); each prompt
/// is `decode([(i + j) % V for j in range(request_tokens)])` and counts as exactly that
/// many tokens.
fn burstgpt(
    tok: &HfTokenizer,
    path: &str,
    n: usize,
    seed: u32,
) -> Result<Vec<Prompt>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|e| read_err(path, e))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = csv_fields(lines.next().ok_or_else(|| read_err(path, "empty CSV"))?);
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| read_err(path, format!("no `{name}` column")))
    };
    let (model, response) = (col("Model")?, col("Response tokens")?);
    if header.len() < 4 {
        return Err(read_err(
            path,
            "expected BurstGPT's columns (Timestamp, Model, Request tokens, Response tokens, …)",
        ));
    }
    // The reference reads request and response lengths by position (columns 2 and 3).
    let number = |f: &str, line: usize| {
        f.trim()
            .parse::<f64>()
            .map_err(|_| read_err(path, format!("line {line}: `{f}` is not a number")))
    };
    let mut rows = vec![];
    for (i, line) in lines.enumerate() {
        let f = csv_fields(line);
        if f.len() < header.len() {
            return Err(read_err(path, format!("line {}: too few fields", i + 2)));
        }
        if f[model] != "GPT-4" || number(&f[response], i + 2)? <= 0.0 {
            continue;
        }
        rows.push((number(&f[2], i + 2)? as u32, number(&f[3], i + 2)? as u32));
    }
    if rows.is_empty() {
        return Err(read_err(path, "no GPT-4 rows with a response"));
    }
    let mut state = NumpyRandom::new(seed);
    let picks: Vec<usize> = if n <= rows.len() {
        state.permutation(rows.len())[..n].to_vec()
    } else {
        state
            .randint_n(0, rows.len() as i64, n)
            .into_iter()
            .map(|x| x as usize)
            .collect()
    };
    let v = tok.vocab_size();
    let mut out = Vec::with_capacity(n);
    for (i, &r) in picks.iter().enumerate() {
        let (input_len, output_len) = rows[r];
        let ids: Vec<u32> = (0..input_len as usize)
            .map(|j| ((i + j) % v) as u32)
            .collect();
        out.push(Prompt {
            text: tok.decode(&ids)?,
            prompt_len: input_len,
            output_len,
        });
    }
    Ok(out)
}

/// `sample_hf_requests` on rows already shuffled: the first `n` conversations with two
/// turns or more whose lengths pass the sharegpt filter (skipped when the output length is
/// fixed).
fn hf(
    tok: &HfTokenizer,
    rows: Vec<(String, String)>,
    n: usize,
    fixed: Option<u32>,
) -> Result<Vec<Prompt>, DatasetError> {
    let mut out = vec![];
    for (prompt, completion) in rows {
        if out.len() == n {
            break;
        }
        let prompt_len = count(tok, &prompt)?;
        let completion_len = count(tok, &completion)?;
        let output_len = fixed.unwrap_or(completion_len);
        if fixed.is_none()
            && (prompt_len < 4
                || output_len < 4
                || prompt_len > 1024
                || prompt_len + output_len > 2048)
        {
            continue;
        }
        out.push(Prompt {
            text: prompt,
            prompt_len,
            output_len,
        });
    }
    Ok(out)
}

/// A path that names a local file or folder, else `None` (then `hf` takes it for a hub id).
pub fn local(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    p.exists().then(|| p.to_path_buf())
}
