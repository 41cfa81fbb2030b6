//! The row order of `load_dataset(path, streaming=True).shuffle(seed=seed)`, which the
//! reference's `hf` dataset samples from, and the data files it reads.
//!
//! The `datasets` library shuffles a stream with a buffer of 1,000 rows and numpy's
//! `default_rng(seed)` (PCG64 seeded through `SeedSequence`): once the buffer is full each new
//! row evicts a random buffered one (indices drawn 1,000 at a time with
//! `integers(0, 1000, size=1000)`), and at the end the buffer is shuffled with
//! `Generator.shuffle` and emitted. Shard (file) order is shuffled first with a copy of the
//! same generator. All of it is reproduced here so the same seed picks the same rows.

use super::dataset::DatasetError;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Rows held by the shuffle buffer (`datasets`' default `buffer_size`).
const BUFFER: usize = 1000;

/// numpy's `SeedSequence(seed).generate_state(4, uint64)`.
fn seed_sequence_u64x4(seed: u64) -> [u64; 4] {
    const INIT_A: u32 = 0x43b0_d7e5;
    const MULT_A: u32 = 0x931e_8875;
    const INIT_B: u32 = 0x8b51_f9dd;
    const MULT_B: u32 = 0x58f3_8ded;
    const MIX_L: u32 = 0xca01_f9dd;
    const MIX_R: u32 = 0x4973_f715;
    let mut entropy = vec![seed as u32];
    if seed >> 32 != 0 {
        entropy.push((seed >> 32) as u32);
    }
    let mut hash_const = INIT_A;
    let mut hashmix = |mut v: u32| {
        v ^= hash_const;
        hash_const = hash_const.wrapping_mul(MULT_A);
        v = v.wrapping_mul(hash_const);
        v ^ (v >> 16)
    };
    let mix = |x: u32, y: u32| {
        let r = MIX_L.wrapping_mul(x).wrapping_sub(MIX_R.wrapping_mul(y));
        r ^ (r >> 16)
    };
    let mut pool = [0u32; 4];
    for (i, p) in pool.iter_mut().enumerate() {
        *p = hashmix(entropy.get(i).copied().unwrap_or(0));
    }
    for src in 0..4 {
        for dst in 0..4 {
            if src != dst {
                let h = hashmix(pool[src]);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }
    for &e in entropy.iter().skip(4) {
        for p in pool.iter_mut() {
            let h = hashmix(e);
            *p = mix(*p, h);
        }
    }
    let mut hash_const = INIT_B;
    let mut words = [0u32; 8];
    for (i, w) in words.iter_mut().enumerate() {
        let mut v = pool[i % 4] ^ hash_const;
        hash_const = hash_const.wrapping_mul(MULT_B);
        v = v.wrapping_mul(hash_const);
        *w = v ^ (v >> 16);
    }
    std::array::from_fn(|i| u64::from(words[2 * i]) | (u64::from(words[2 * i + 1]) << 32))
}

/// numpy's PCG64 (XSL-RR 128/64, output after the step) with its buffered 32-bit draws.
#[derive(Clone)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
    /// The upper half of the last 64-bit output, not yet handed out by `next_u32`.
    half: Option<u32>,
}

impl Pcg64 {
    const MULT: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

    /// `np.random.default_rng(seed)`.
    pub fn new(seed: u64) -> Self {
        let v = seed_sequence_u64x4(seed);
        let init_state = (u128::from(v[0]) << 64) | u128::from(v[1]);
        let init_seq = (u128::from(v[2]) << 64) | u128::from(v[3]);
        let mut r = Pcg64 {
            state: 0,
            inc: (init_seq << 1) | 1,
            half: None,
        };
        r.step();
        r.state = r.state.wrapping_add(init_state);
        r.step();
        r
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(Self::MULT).wrapping_add(self.inc);
    }

    /// One 64-bit output.
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let x = ((self.state >> 64) as u64) ^ (self.state as u64);
        x.rotate_right((self.state >> 122) as u32)
    }

    /// One 32-bit output: the low half of a fresh 64-bit output, then its high half.
    pub fn next_u32(&mut self) -> u32 {
        if let Some(h) = self.half.take() {
            return h;
        }
        let v = self.next_u64();
        self.half = Some((v >> 32) as u32);
        v as u32
    }

    /// `integers(0, high)` for `high ≤ 2³²` (Lemire's method on 32-bit draws).
    pub fn below(&mut self, high: u32) -> u32 {
        let mut m = u64::from(self.next_u32()) * u64::from(high);
        if (m as u32) < high {
            let threshold = high.wrapping_neg() % high;
            while (m as u32) < threshold {
                m = u64::from(self.next_u32()) * u64::from(high);
            }
        }
        (m >> 32) as u32
    }

    /// `random_interval(max)`: masked rejection, the draw of `Generator.shuffle`.
    fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mask = u64::MAX >> max.leading_zeros();
        loop {
            let v = if max <= 0xffff_ffff {
                u64::from(self.next_u32()) & mask
            } else {
                self.next_u64() & mask
            };
            if v <= max {
                return v;
            }
        }
    }

    /// `Generator.shuffle(list)`.
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.interval(i as u64) as usize;
            x.swap(i, j);
        }
    }
}

/// `rows` in the order the shuffle buffer emits them.
pub fn buffer_shuffle<T>(rows: impl IntoIterator<Item = T>, seed: u64) -> Vec<T> {
    let mut rng = Pcg64::new(seed);
    let mut indices: Vec<usize> = vec![];
    let mut next = 0;
    let mut buffer: Vec<T> = Vec::with_capacity(BUFFER);
    let mut out = vec![];
    for x in rows {
        if buffer.len() == BUFFER {
            if next == indices.len() {
                indices = (0..1000)
                    .map(|_| rng.below(BUFFER as u32) as usize)
                    .collect();
                next = 0;
            }
            let i = indices[next];
            next += 1;
            out.push(std::mem::replace(&mut buffer[i], x));
        } else {
            buffer.push(x);
        }
    }
    rng.shuffle(&mut buffer);
    out.extend(buffer);
    out
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> DatasetError {
    DatasetError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn is_data_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("parquet" | "jsonl" | "json")
    )
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        } else if p.is_dir() {
            walk(&p, out);
        } else if is_data_file(&p) {
            out.push(p);
        }
    }
}

/// The files of `split` in a dataset folder, as `datasets` resolves splits by name: a path
/// component or a `-`/`_`/`.`-separated part of a file name equal to the split; a folder
/// with no split names at all is all `train`.
fn split_files(root: &Path, subset: Option<&str>, split: &str) -> Vec<PathBuf> {
    let base = match subset {
        Some(s) if root.join(s).is_dir() => root.join(s),
        _ => root.to_path_buf(),
    };
    let mut all = vec![];
    walk(&base, &mut all);
    all.sort();
    let named = |p: &PathBuf, name: &str| {
        let rel = p.strip_prefix(&base).unwrap_or(p).to_string_lossy();
        let rel = rel.rsplit_once('.').map_or(&*rel, |(stem, _)| stem);
        rel.split(['/', '-', '_', '.', ' '])
            .any(|part| part == name)
    };
    let hits: Vec<PathBuf> = all.iter().filter(|p| named(p, split)).cloned().collect();
    if !hits.is_empty() || split != "train" {
        return hits;
    }
    let any_split = ["train", "test", "validation", "valid", "dev", "eval"];
    if all.iter().any(|p| any_split.iter().any(|s| named(p, s))) {
        return vec![];
    }
    all
}

/// The data files of `--dataset-path` (a local file or folder, or a hub dataset id already
/// in the hub cache) for `--hf-subset` and `--hf-split`.
pub fn data_files(
    path: &str,
    subset: Option<&str>,
    split: &str,
) -> Result<Vec<PathBuf>, DatasetError> {
    let p = Path::new(path);
    if p.is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    let roots: Vec<PathBuf> = if p.is_dir() {
        vec![p.to_path_buf()]
    } else {
        let repo = crate::tokenizer::hub_cache_dir()
            .join(format!("datasets--{}", path.replace('/', "--")));
        let main = std::fs::read_to_string(repo.join("refs/main"))
            .map(|s| s.trim().to_string())
            .ok();
        let mut snaps: Vec<PathBuf> = std::fs::read_dir(repo.join("snapshots"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        snaps.sort_by_key(|s| {
            (
                s.file_name().and_then(|n| n.to_str()) != main.as_deref(),
                s.clone(),
            )
        });
        if snaps.is_empty() {
            return Err(DatasetError::Invalid(format!(
                "--dataset-path {path}: not a local file or folder, and not in the hub cache ({}); fetch it with `huggingface-cli download --repo-type dataset {path}`",
                crate::tokenizer::hub_cache_dir().display()
            )));
        }
        snaps
    };
    for root in &roots {
        let files = split_files(root, subset, split);
        if !files.is_empty() {
            return Ok(files);
        }
    }
    Err(DatasetError::Invalid(format!(
        "--dataset-path {path}: no parquet/json/jsonl files for split `{split}`{}",
        subset
            .map(|s| format!(" of subset `{s}`"))
            .unwrap_or_default()
    )))
}

/// The `conversations` of each row (`None` when the row has fewer than two turns), in file
/// order.
fn read_rows(path: &Path) -> Result<Vec<Option<(String, String)>>, DatasetError> {
    let turns = |v: &Value| -> Result<Option<(String, String)>, DatasetError> {
        let conv = v
            .get("conversations")
            .and_then(Value::as_array)
            .ok_or_else(|| file_err(path, "HF dataset must have 'conversations' column"))?;
        if conv.len() < 2 {
            return Ok(None);
        }
        let value = |t: &Value| {
            t.get("value")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| file_err(path, "a turn has no string `value`"))
        };
        Ok(Some((value(&conv[0])?, value(&conv[1])?)))
    };
    if path.extension().is_some_and(|e| e == "parquet") {
        return read_parquet(path);
    }
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    if text.trim_start().starts_with('[') {
        let v: Value = serde_json::from_str(&text).map_err(|e| file_err(path, e))?;
        let rows = v.as_array().map(Vec::as_slice).unwrap_or_default();
        return rows.iter().map(turns).collect();
    }
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| file_err(path, format!("line {}: {e}", i + 1)))?;
        out.push(turns(&v)?);
    }
    Ok(out)
}

/// Parquet rows' `conversations` (a list of structs with a `value` string).
fn read_parquet(path: &Path) -> Result<Vec<Option<(String, String)>>, DatasetError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::{Field, ListAccessor};
    let f = std::fs::File::open(path).map_err(|e| file_err(path, e))?;
    let reader = SerializedFileReader::new(f).map_err(|e| file_err(path, e))?;
    let mut out = vec![];
    for row in reader.get_row_iter(None).map_err(|e| file_err(path, e))? {
        let row = row.map_err(|e| file_err(path, e))?;
        let Some((_, Field::ListInternal(list))) = row
            .get_column_iter()
            .find(|(name, _)| name.as_str() == "conversations")
        else {
            return Err(file_err(
                path,
                "HF dataset must have 'conversations' column",
            ));
        };
        if list.len() < 2 {
            out.push(None);
            continue;
        }
        let value = |i: usize| -> Result<String, DatasetError> {
            let turn = list.get_group(i).map_err(|e| file_err(path, e))?;
            turn.get_column_iter()
                .find_map(|(n, f)| match f {
                    Field::Str(s) if n == "value" => Some(s.clone()),
                    _ => None,
                })
                .ok_or_else(|| file_err(path, "a turn has no string `value`"))
        };
        out.push(Some((value(0)?, value(1)?)));
    }
    Ok(out)
}

/// The rows with two turns or more, in the order `shuffle(seed).filter(…)` yields them.
pub fn shuffled_conversations(
    files: &[PathBuf],
    seed: u64,
) -> Result<Vec<(String, String)>, DatasetError> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    Pcg64::new(seed).shuffle(&mut order);
    let mut rows = vec![];
    for i in order {
        rows.extend(read_rows(&files[i])?);
    }
    Ok(buffer_shuffle(rows, seed).into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by numpy 2.4: `np.random.default_rng(0)` then the calls shown.
    #[test]
    fn matches_numpy_default_rng() {
        assert_eq!(
            seed_sequence_u64x4(0),
            [
                15_793_235_383_387_715_774,
                12_390_638_538_380_655_177,
                2_361_836_109_651_742_017,
                3_188_717_715_514_472_916
            ]
        );
        // rng.bit_generator.random_raw(2)
        let mut r = Pcg64::new(0);
        assert_eq!(
            [r.next_u64(), r.next_u64()],
            [11_749_869_230_777_074_271, 4_976_686_463_289_251_617]
        );
        // rng.integers(0, 1000, size=5)
        let mut r = Pcg64::new(0);
        let ints: Vec<u32> = (0..5).map(|_| r.below(1000)).collect();
        assert_eq!(ints, [850, 636, 511, 269, 307]);
    }
}
