//! The `random` dataset of benchmark_serving.py, prompt for prompt.
//!
//! With the same seed and tokenizer the reference sends exactly these prompts, so our
//! throughput and latency are measured on the same work. The draw order is the reference's:
//! prefix ids, input lengths, output lengths, offsets, then per prompt (in order) the padding
//! ids of its retry loop. Only those padding draws depend on earlier prompts, so generation
//! runs in three passes and only the middle one is sequential:
//!
//! 1. in parallel, every prompt's retry loop up to its first padding draw (most prompts never
//!    need one and finish here);
//! 2. in prompt order, the retry loops that stopped for padding, resumed where they stopped:
//!    only the draws and the decode/encode that decide how many draws come next;
//! 3. in parallel, the chat template and the final `encode` that gives `prompt_len`.
//!
//! Encoding dominates (with the embedded tokenizer about 15 ms of one core per 8k-token
//! prompt, several times a decode), so no text is encoded twice: when the loop ended on an
//! encode of the final text, pass 3 reuses its length, and a loop that reached a fixed point
//! (the truncated encoding decodes back to the same text) stops there instead of repeating
//! that round until it runs out of rounds. Both rely on `encode` being deterministic, as it
//! is for every tokenizer without BPE dropout (with dropout the reference's own prompts
//! would not be reproducible either).
//!
//! Which generator draws the padding depends on the client version ([`Compat`]): the
//! bounty-era client draws it from the global generator (so it also moves the arrival gaps
//! drawn later); InferenceX's 2026 client from a local generator seeded with the first four
//! words of the global state, or, split over worker processes, from one generator per
//! worker's chunk of prompts seeded from that local one. The other datasets
//! (`sharegpt`, `sonnet`, `burstgpt`, `hf`) are in [`super::sources`].

use super::rng::NumpyRandom;
use crate::accuracy::pyrandom::PyRandom;
use crate::tokenizer::{HfTokenizer, TokenizerError};
use std::cmp::Ordering;

/// Parameters of the random dataset (the reference's `--random-*` flags).
#[derive(Debug, Clone)]
pub struct RandomParams {
    /// `--random-input-len`.
    pub input_len: u32,
    /// `--random-output-len`.
    pub output_len: u32,
    /// `--random-range-ratio`: lengths are drawn from `[int(len·r), len]`.
    pub range_ratio: f64,
    /// `--random-prefix-len`: random ids shared by every prompt.
    pub prefix_len: u32,
    /// `--num-prompts`.
    pub num_prompts: usize,
    /// `--use-chat-template`.
    pub use_chat_template: bool,
    /// Which client's padding generator to reproduce.
    pub compat: Compat,
    /// `--random-num-workers` resolved (≥ 1; InferenceX 2026 only): how many chunks the
    /// prompts are split into, each with its own padding generator. Their number changes
    /// the prompts, so the reference's default (`min(cpu_count, 8)`) is resolved by the
    /// caller, where the machine is known.
    pub workers: usize,
}

/// The benchmark_serving.py whose prompts and result keys are reproduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compat {
    /// kimbochen/bench_serving as the bounty ran it (InferenceX `d053ae24e`).
    #[default]
    #[value(name = "bounty-2025")]
    Bounty2025,
    /// InferenceX `utils/bench_serving` at `843c6254f` (local padding generators,
    /// `benchmark_start_time_unix`, e2el and 90/99/99.9 percentiles by default).
    #[value(name = "inferencex-2026")]
    Inferencex2026,
}

impl Compat {
    /// The name users type.
    pub fn name(self) -> &'static str {
        match self {
            Compat::Bounty2025 => "bounty-2025",
            Compat::Inferencex2026 => "inferencex-2026",
        }
    }
}

/// InferenceX 2026's default `--random-num-workers`: `min(os.cpu_count(), 8)`, counting
/// online CPUs as Python does (not the affinity mask).
pub fn default_workers() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    (n.max(1) as usize).min(8)
}

/// One generated request.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The prompt text sent to the engine.
    pub text: String,
    /// `len(encode(text))`: what the client counts as this request's input tokens.
    pub prompt_len: u32,
    /// `max_tokens` of the request.
    pub output_len: u32,
}

/// The dataset plus the generator states after it: request-arrival gaps are drawn from
/// numpy's global generator and `--lora-modules` picks from Python's, as the reference
/// draws them after sampling.
pub struct Dataset {
    pub prompts: Vec<Prompt>,
    /// numpy's global generator after sampling.
    pub rng: NumpyRandom,
    /// Python's global `random` after sampling.
    pub py: PyRandom,
    /// `prompt_len − target` per prompt (the reference prints their mean); empty for
    /// datasets without a target length.
    pub mismatches: Vec<i64>,
}

/// A dataset could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(
        "--random-input-len {input_len} is shorter than the chat template's {template} tokens"
    )]
    TemplateTooLong { input_len: u32, template: usize },
    #[error("tokenizer has an empty vocabulary")]
    EmptyVocab,
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Which dataset to sample (`--dataset-name` and its flags).
#[derive(Debug, Clone)]
pub enum DatasetSpec {
    /// `random`: token ids from numpy's generator.
    Random(RandomParams),
    /// `sharegpt`, `sonnet`, `burstgpt` or `hf`, read from files.
    File(super::sources::FileParams),
}

impl DatasetSpec {
    /// `--num-prompts` (a file dataset may yield fewer).
    pub fn num_prompts(&self) -> usize {
        match self {
            DatasetSpec::Random(p) => p.num_prompts,
            DatasetSpec::File(p) => p.num_prompts,
        }
    }

    /// Generate the prompts as the reference's `main()` does after seeding `random` and
    /// `np.random` with `seed`.
    pub fn sample(&self, tok: &HfTokenizer, seed: u32) -> Result<Dataset, DatasetError> {
        match self {
            DatasetSpec::Random(p) => sample_random(tok, p, seed),
            DatasetSpec::File(p) => super::sources::sample_file(tok, p, seed),
        }
    }
}

/// A prompt's text after its retry loop, before the chat template.
struct Unfinished {
    text: String,
    /// `len(encode(text))` when the loop already computed it, so that the final encode of
    /// the same text can be skipped.
    encoded_len: Option<usize>,
}

/// Where a retry loop stopped.
enum Partial {
    /// The loop is over.
    Done(Unfinished),
    /// Round `iteration` encoded `text` to `ids`, fewer than the target, and the next step
    /// draws padding from the global generator, so it must run in prompt order.
    NeedsPadding {
        text: String,
        ids: Vec<u32>,
        iteration: u32,
    },
}

/// Rounds of the retry loop.
const MAX_RETRIES: u32 = 10;

/// Generate the dataset as `sample_random_requests` does, seeded with `np.random.seed(seed)`.
pub fn sample_random(
    tok: &HfTokenizer,
    p: &RandomParams,
    seed: u32,
) -> Result<Dataset, DatasetError> {
    let v = tok.vocab_size() as i64;
    if v == 0 {
        return Err(DatasetError::EmptyVocab);
    }
    let mut rng = NumpyRandom::new(seed);
    let prefix: Vec<u32> = rng
        .randint_n(0, v, p.prefix_len as usize)
        .into_iter()
        .map(|x| x as u32)
        .collect();
    let mut input_len = i64::from(p.input_len);
    if p.use_chat_template {
        let dummy = tok.apply_chat_template("a")?;
        let template = tok.encode(&dummy)?.len().saturating_sub(1);
        input_len -= template as i64;
        if input_len < 0 {
            return Err(DatasetError::TemplateTooLong {
                input_len: p.input_len,
                template,
            });
        }
    }
    let n = p.num_prompts;
    let uniform = |rng: &mut NumpyRandom, len: i64| {
        let lower = (len as f64 * p.range_ratio) as i64;
        rng.randint_n(lower, len + 1, n)
    };
    let input_lens = uniform(&mut rng, input_len);
    let output_lens = uniform(&mut rng, i64::from(p.output_len));
    let offsets = rng.randint_n(0, v, n);
    let target = |i: usize| prefix.len() + input_lens[i] as usize;
    // The generators padding is drawn from, and which one serves prompt i.
    let (mut streams, chunk) = match p.compat {
        Compat::Bounty2025 => (vec![], n.max(1)),
        Compat::Inferencex2026 => {
            let key = rng.key();
            let mut local = NumpyRandom::from_key(&key[..4]);
            if p.workers > 1 {
                let chunk = n.div_ceil(p.workers).max(1);
                let seeds = (0..n.div_ceil(chunk)).map(|_| local.randint(0, 1 << 31) as u32);
                (seeds.map(NumpyRandom::new).collect(), chunk)
            } else {
                (vec![local], n.max(1))
            }
        }
    };

    // Pass 1 (parallel): each loop up to its first padding draw.
    let partials = parallel_map(n, |i| {
        let mut ids = prefix.clone();
        ids.extend((0..input_lens[i]).map(|j| ((offsets[i] + i as i64 + j) % v) as u32));
        let text = tok.decode(&ids)?;
        retry_loop(tok, target(i), text, 0, None, |_| None)
    })?;

    // Pass 2 (prompt order): the padding draws, and only the work that decides them.
    let mut unfinished = Vec::with_capacity(n);
    for (i, partial) in partials.into_iter().enumerate() {
        unfinished.push(match partial {
            Partial::Done(u) => u,
            Partial::NeedsPadding {
                text,
                ids,
                iteration,
            } => {
                let stream = match streams.get_mut(i / chunk) {
                    Some(local) => local,
                    None => &mut rng,
                };
                let draw = |k: usize| {
                    let ids = stream.randint_n(0, v, k);
                    Some(ids.into_iter().map(|x| x as u32).collect())
                };
                match retry_loop(tok, target(i), text, iteration, Some(ids), draw)? {
                    Partial::Done(u) => u,
                    Partial::NeedsPadding { .. } => unreachable!("pass 2 always draws"),
                }
            }
        });
    }

    // Pass 3 (parallel): chat template and `prompt_len`; the texts are only borrowed here
    // and moved into the prompts afterwards.
    let finished = parallel_map(n, |i| -> Result<(Option<String>, usize), TokenizerError> {
        let u = &unfinished[i];
        if p.use_chat_template {
            let text = tok.apply_chat_template(&u.text)?;
            let len = tok.encode(&text)?.len();
            return Ok((Some(text), len));
        }
        let len = match u.encoded_len {
            Some(len) => len,
            None => tok.encode(&u.text)?.len(),
        };
        Ok((None, len))
    })?;
    let mut prompts = Vec::with_capacity(n);
    let mut mismatches = Vec::with_capacity(n);
    for (i, (u, (templated, prompt_len))) in unfinished.into_iter().zip(finished).enumerate() {
        mismatches.push(prompt_len as i64 - target(i) as i64);
        prompts.push(Prompt {
            text: templated.unwrap_or(u.text),
            prompt_len: prompt_len as u32,
            output_len: output_lens[i] as u32,
        });
    }
    Ok(Dataset {
        prompts,
        rng,
        py: PyRandom::new(u64::from(seed)),
        mismatches,
    })
}

/// The reference's retry loop from round `first` on: encode `text` (whose encoding the
/// caller may already have: `encoded`); stop if it has the target length; otherwise pad it
/// with `draw(missing)` or truncate it, decode that and go to the next round. After the last
/// round the text is whatever the last decode gave. `draw` returns `None` where the global
/// generator is out of reach (pass 1), which stops the loop before its first draw.
fn retry_loop(
    tok: &HfTokenizer,
    target: usize,
    mut text: String,
    first: u32,
    mut encoded: Option<Vec<u32>>,
    mut draw: impl FnMut(usize) -> Option<Vec<u32>>,
) -> Result<Partial, TokenizerError> {
    for iteration in first..MAX_RETRIES {
        let mut ids = match encoded.take() {
            Some(ids) => ids,
            None => tok.encode(&text)?,
        };
        match ids.len().cmp(&target) {
            Ordering::Equal => {
                return Ok(Partial::Done(Unfinished {
                    text,
                    encoded_len: Some(target),
                }))
            }
            Ordering::Less => {
                let Some(padding) = draw(target - ids.len()) else {
                    return Ok(Partial::NeedsPadding {
                        text,
                        ids,
                        iteration,
                    });
                };
                ids.extend(padding);
                text = tok.decode(&ids)?;
            }
            Ordering::Greater => {
                let encoded_len = ids.len();
                ids.truncate(target);
                let truncated = tok.decode(&ids)?;
                if truncated == text {
                    // A fixed point: each remaining round would encode this text to the
                    // same ids and decode their truncation back to it, drawing nothing.
                    return Ok(Partial::Done(Unfinished {
                        text,
                        encoded_len: Some(encoded_len),
                    }));
                }
                text = truncated;
            }
        }
    }
    Ok(Partial::Done(Unfinished {
        text,
        encoded_len: None,
    }))
}

/// Map `f` over `0..n` on all cores, keeping order. Items are handed out one at a time
/// rather than in fixed chunks because their cost varies several-fold (a retry loop ends
/// after one to ten rounds); after an error no new items are started.
fn parallel_map<T: Send, E: Send>(
    n: usize,
    f: impl Fn(usize) -> Result<T, E> + Sync,
) -> Result<Vec<T>, E> {
    use std::sync::atomic::{self, AtomicUsize};
    let threads = std::thread::available_parallelism()
        .map_or(1, |c| c.get())
        .min(n.max(1));
    let next = AtomicUsize::new(0);
    let worker = || -> Result<Vec<(usize, T)>, E> {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, atomic::Ordering::Relaxed);
            if i >= n {
                return Ok(done);
            }
            match f(i) {
                Ok(t) => done.push((i, t)),
                Err(e) => {
                    next.store(n, atomic::Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
    };
    let results: Vec<Result<Vec<(usize, T)>, E>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    let mut slots: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for r in results {
        for (i, t) in r? {
            slots[i] = Some(t);
        }
    }
    Ok(slots
        .into_iter()
        .map(|t| t.expect("every item is mapped"))
        .collect())
}
