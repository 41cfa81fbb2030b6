//! The simulated "model": which token comes at each position, its logprob and when
//! generation stops. Everything is a pure function of (seed, prompt tokens, position), so
//! two runs — or two engines — given the same prompt produce byte-identical output.
//!
//! At every position the model's distribution puts probability `q ∈ [0.05, 0.95]` on one
//! token and spreads `1 − q` evenly over the rest of the vocabulary, so logprobs are ≤ 0
//! and come from a normalised distribution.

use super::tokenizer::Vocab;
use std::sync::Arc;

const K_TOKEN: u64 = 0x9E37_79B9_7F4A_7C15;
const K_PROB: u64 = 0xC2B2_AE3D_27D4_EB4F;
const K_STOP: u64 = 0x1656_67B1_9E37_79F9;

/// splitmix64's finaliser: a cheap, well-mixed 64-bit hash step.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash state before any prompt token.
#[inline]
pub fn hash_start(seed: u64) -> u64 {
    mix(seed ^ 0x5EED_0F1A_F3A4)
}

/// Extend a prompt hash by one token.
#[inline]
pub fn hash_push(h: u64, token: u32) -> u64 {
    mix(h ^ (u64::from(token) + 1).wrapping_mul(K_TOKEN))
}

/// Hash of a whole prompt.
pub fn prompt_hash(seed: u64, tokens: &[u32]) -> u64 {
    tokens
        .iter()
        .fold(hash_start(seed), |h, &t| hash_push(h, t))
}

/// The model's prediction given a context hash `h` at position `pos`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Most likely token (the one generated).
    pub token: u32,
    /// Its probability, in [0.05, 0.95].
    pub p: f64,
}

/// The deterministic generator for one prompt.
#[derive(Clone)]
pub struct Generator {
    vocab: Arc<Vocab>,
    h: u64,
}

impl Generator {
    /// Generator for the prompt with hash `h` (see [`prompt_hash`]).
    pub fn new(vocab: Arc<Vocab>, h: u64) -> Self {
        Generator { vocab, h }
    }

    /// Prediction for context hash `h` at position `pos`.
    #[inline]
    pub fn predict(vocab: &Vocab, h: u64, pos: u32) -> Prediction {
        let x = mix(h ^ u64::from(pos).wrapping_mul(K_TOKEN));
        let g = &vocab.generable;
        let token = g[((x >> 11) % g.len() as u64) as usize];
        let u = (mix(h ^ u64::from(pos).wrapping_mul(K_PROB)) >> 11) as f64 / (1u64 << 53) as f64;
        Prediction {
            token,
            p: 0.05 + 0.9 * u,
        }
    }

    /// Token generated at output position `pos`.
    #[inline]
    pub fn token(&self, pos: u32) -> u32 {
        Self::predict(&self.vocab, self.h, pos).token
    }

    /// Logprob of the generated token at output position `pos`.
    pub fn logprob(&self, pos: u32) -> f64 {
        Self::predict(&self.vocab, self.h, pos).p.ln()
    }

    /// Whether the model ends the output with the token at `pos` (EOS after it) when
    /// `ignore_eos` is false: probability 1/`mean` per position.
    #[inline]
    pub fn stops_after(&self, pos: u32, mean: u32) -> bool {
        mix(self.h ^ u64::from(pos).wrapping_mul(K_STOP)).is_multiple_of(u64::from(mean.max(1)))
    }

    /// Number of tokens generated for `max_tokens` and whether EOS ended it early.
    pub fn output_len(&self, max_tokens: u32, ignore_eos: bool, mean: u32) -> (u32, bool) {
        if !ignore_eos {
            for pos in 0..max_tokens {
                if self.stops_after(pos, mean) {
                    return (pos + 1, true);
                }
            }
        }
        (max_tokens, false)
    }

    /// The `k` most likely tokens at output position `pos` with their logprobs (the
    /// generated token first; the rest share the remaining mass equally).
    pub fn top(&self, pos: u32, k: u32) -> Vec<(u32, f64)> {
        top_of(&self.vocab, Self::predict(&self.vocab, self.h, pos), k)
    }
}

/// Logprob under a prediction of an arbitrary token.
pub fn logprob_of(vocab: &Vocab, pred: Prediction, token: u32) -> f64 {
    if token == pred.token {
        pred.p.ln()
    } else {
        ((1.0 - pred.p) / (vocab.len() as f64 - 1.0).max(1.0)).ln()
    }
}

/// Top-`k` alternatives of a prediction.
pub fn top_of(vocab: &Vocab, pred: Prediction, k: u32) -> Vec<(u32, f64)> {
    let mut v = Vec::with_capacity(k as usize);
    if k == 0 {
        return v;
    }
    v.push((pred.token, pred.p.ln()));
    let g = &vocab.generable;
    let start = g.iter().position(|&t| t == pred.token).unwrap_or(0);
    let rest = logprob_of(vocab, pred, u32::MAX);
    for i in 1..g.len() {
        if v.len() == k as usize {
            break;
        }
        v.push((g[(start + i) % g.len()], rest));
    }
    v
}

/// Logprob of one prompt token and its position's top alternatives.
pub type PromptLogprob = (f64, Vec<(u32, f64)>);

/// Logprob of every prompt token given the tokens before it (the first has none: `None`),
/// with that position's top-`k` alternatives.
pub fn prompt_logprobs(
    vocab: &Vocab,
    seed: u64,
    prompt: &[u32],
    k: u32,
) -> Vec<Option<PromptLogprob>> {
    let mut out = Vec::with_capacity(prompt.len());
    let mut h = hash_start(seed);
    for (i, &t) in prompt.iter().enumerate() {
        if i == 0 {
            out.push(None);
        } else {
            let pred = Generator::predict(vocab, h, i as u32);
            out.push(Some((logprob_of(vocab, pred, t), top_of(vocab, pred, k))));
        }
        h = hash_push(h, t);
    }
    out
}
