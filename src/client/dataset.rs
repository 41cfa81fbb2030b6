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

use super::rng::NumpyRandom;
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

/// The dataset plus the generator state after it, from which request-arrival gaps are drawn
/// (the reference draws them from the same global generator).
pub struct Dataset {
    pub prompts: Vec<Prompt>,
    /// numpy's global generator after sampling.
    pub rng: NumpyRandom,
    /// `prompt_len − target` per prompt (the reference prints their mean).
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
                let draw = |k: usize| {
                    let ids = rng.randint_n(0, v, k);
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
