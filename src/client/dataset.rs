//! The `random` dataset of benchmark_serving.py, prompt for prompt.
//!
//! With the same seed and tokenizer the reference sends exactly these prompts, so our
//! throughput and latency are measured on the same work. The draw order is the reference's:
//! prefix ids, input lengths, output lengths, offsets, then per prompt (in order) the padding
//! ids of its retry loop. Only those padding draws depend on earlier prompts, so the first
//! decode/encode pass of every prompt runs in parallel and only prompts whose retry loop
//! needs random padding are finished sequentially.

use super::rng::NumpyRandom;
use crate::tokenizer::{HfTokenizer, TokenizerError};

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

/// Where the parallel first pass left a prompt.
enum Partial {
    /// Finished without needing a random draw.
    Done(String),
    /// Retry loop stopped at `iteration` with `ids` shorter than the target: the next step
    /// draws padding from the global generator, so it must run in prompt order.
    NeedsPadding { ids: Vec<u32>, iteration: u32 },
}

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

    let first_pass = |i: usize| -> Result<Partial, TokenizerError> {
        let target = prefix.len() + input_lens[i] as usize;
        let mut ids = prefix.clone();
        ids.extend((0..input_lens[i]).map(|j| ((offsets[i] + i as i64 + j) % v) as u32));
        let mut text = tok.decode(&ids)?;
        for iteration in 0..MAX_RETRIES {
            let mut enc = tok.encode(&text)?;
            match enc.len().cmp(&target) {
                std::cmp::Ordering::Less => {
                    return Ok(Partial::NeedsPadding {
                        ids: enc,
                        iteration,
                    })
                }
                std::cmp::Ordering::Greater => enc.truncate(target),
                std::cmp::Ordering::Equal => break,
            }
            text = tok.decode(&enc)?;
        }
        Ok(Partial::Done(text))
    };
    let partials = parallel_map(n, first_pass)?;

    let mut prompts = Vec::with_capacity(n);
    let mut mismatches = Vec::with_capacity(n);
    for (i, partial) in partials.into_iter().enumerate() {
        let target = prefix.len() + input_lens[i] as usize;
        let mut text = match partial {
            Partial::Done(t) => t,
            Partial::NeedsPadding { mut ids, iteration } => {
                // Resume the reference's loop at the padding step of `iteration`; here
                // `ids.len() != target` always holds at the top of the loop.
                let mut text;
                let mut it = iteration;
                loop {
                    if ids.len() < target {
                        let extra = target - ids.len();
                        ids.extend(rng.randint_n(0, v, extra).into_iter().map(|x| x as u32));
                    } else {
                        ids.truncate(target);
                    }
                    text = tok.decode(&ids)?;
                    it += 1;
                    if it >= MAX_RETRIES {
                        break;
                    }
                    ids = tok.encode(&text)?;
                    if ids.len() == target {
                        break;
                    }
                }
                text
            }
        };
        if p.use_chat_template {
            text = tok.apply_chat_template(&text)?;
        }
        let prompt_len = tok.encode(&text)?.len();
        mismatches.push(prompt_len as i64 - target as i64);
        prompts.push(Prompt {
            text,
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

/// Map `f` over `0..n` on all cores, keeping order.
fn parallel_map<T: Send, E: Send>(
    n: usize,
    f: impl Fn(usize) -> Result<T, E> + Sync,
) -> Result<Vec<T>, E> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |c| c.get())
        .min(n.max(1));
    let per = n.div_ceil(threads.max(1)).max(1);
    let f = &f;
    let chunks: Vec<Result<Vec<T>, E>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(per)
            .map(|start| s.spawn(move || (start..(start + per).min(n)).map(f).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    let mut out = Vec::with_capacity(n);
    for c in chunks {
        out.extend(c?);
    }
    Ok(out)
}
