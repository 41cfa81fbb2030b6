//! Request bodies built lazily from 64-token blocks (agentic.md §3.3).
//!
//! Every hash id of a trace stands for 64 tokens of deterministic content, the same wherever
//! the id appears in that trace (root and subagents share the namespace), different across
//! traces. Content is made of "words": vocabulary entries that are a space plus letters and
//! that the run's tokenizer encodes back to exactly themselves, so a block's text is 64
//! tokens and a message of n blocks is 64·n tokens; only the chat template (server side) and
//! the cache-bust marker add tokens. Text exists only while a body is being written: the
//! corpus holds ids, a conversation holds its segment plan (roles over id positions), and a
//! body is rendered just before its request is due.

use super::synth::SplitMix;
use super::trace::{Conv, Trace, Turn, BLOCK};
use crate::tokenizer::HfTokenizer;
use bytes::Bytes;

/// The tokenizer cannot make token-exact blocks.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("tokenizer {0}: only {1} vocabulary entries are single-token words (need 64); token-exact prompts need a tokenizer with whole-word entries")]
    TooFewWords(String, usize),
    #[error("tokenizer {tokenizer}: a {expect}-token block re-encodes to {got} tokens")]
    NotExact {
        tokenizer: String,
        expect: usize,
        got: usize,
    },
}

/// The words blocks are made of.
#[derive(Debug, Clone)]
pub struct Words {
    /// Each encodes to exactly one token and starts with a space.
    words: Vec<Box<str>>,
    /// Seed mixed into every block (the run's `--random-seed`).
    seed: u64,
}

impl Words {
    /// Pick the words from `tok`'s vocabulary and check that a block round-trips.
    pub fn new(tok: &HfTokenizer, seed: u64) -> Result<Words, PromptError> {
        let mut words: Vec<Box<str>> = vec![];
        let vocab = tok.vocab_size() as u32;
        for id in 0..vocab {
            let Ok(s) = tok.decode(&[id]) else { continue };
            let s = if s.starts_with(' ') {
                s
            } else {
                format!(" {s}")
            };
            let body = &s[1..];
            if !(2..=12).contains(&body.len()) || !body.bytes().all(|b| b.is_ascii_lowercase()) {
                continue;
            }
            if tok.encode(&s).map(|v| v.len() == 1).unwrap_or(false) {
                words.push(s.into_boxed_str());
            }
            if words.len() >= 8192 {
                break;
            }
        }
        if words.len() < 64 {
            return Err(PromptError::TooFewWords(tok.id.clone(), words.len()));
        }
        let w = Words { words, seed };
        // A few blocks must re-encode to exactly their size.
        for k in 0..8u32 {
            let mut text = String::new();
            w.block(&mut text, 0xfeed, k);
            let got = tok.encode(&text).map(|v| v.len()).unwrap_or(0);
            if got != BLOCK as usize {
                return Err(PromptError::NotExact {
                    tokenizer: tok.id.clone(),
                    expect: BLOCK as usize,
                    got,
                });
            }
        }
        Ok(w)
    }

    /// Append `n` words drawn from `rng`.
    fn words(&self, out: &mut String, rng: &mut SplitMix, n: u32) {
        let len = self.words.len() as u64;
        for _ in 0..n {
            out.push_str(&self.words[(rng.next_u64() % len) as usize]);
        }
    }

    /// Append block `id` of trace namespace `ns`.
    pub fn block(&self, out: &mut String, ns: u64, id: u32) {
        let mut rng = SplitMix(self.seed ^ ns ^ u64::from(id).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        self.words(out, &mut rng, BLOCK);
    }

    /// Append `n` tail tokens of (conversation, turn).
    pub fn tail(&self, out: &mut String, conv: u64, turn: u32, n: u32) {
        let mut rng = SplitMix(
            self.seed ^ conv.rotate_left(17) ^ u64::from(turn).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        self.words(out, &mut rng, n);
    }
}

/// A 64-bit name hash (FNV-1a): trace namespaces and conversation seeds.
pub fn name_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A message role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// A message over block positions `from..to` of the current id list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub role: Role,
    pub from: u32,
    pub to: u32,
}

/// One conversation's growing message list, as a plan over its current ids.
#[derive(Debug, Clone, Default)]
pub struct ConvPrompt {
    /// Hash ids of the last turn planned.
    pub ids: Vec<u32>,
    /// Messages over `ids` positions; the last is a user message.
    pub segs: Vec<Segment>,
    /// Tail tokens appended to the last (user) message.
    pub tail: u32,
    /// Index of the next turn to plan.
    pub next: usize,
}

/// What a rendered request needs besides the ids.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Messages over `ids` positions.
    pub segs: Vec<Segment>,
    /// Ids of this turn (positions index into it).
    pub ids: Vec<u32>,
    /// Tail tokens and their seed (conversation hash, turn index).
    pub tail: u32,
    pub conv_hash: u64,
    pub turn: u32,
    /// Content tokens (`in`, exactly: blocks·64 + tail).
    pub tokens: u32,
}

impl ConvPrompt {
    /// Advance to `turn` (the conversation's `next` turn) and return its plan.
    /// `prev_out` is the previous turn's recorded output (its blocks become the assistant
    /// message), `system_blocks` the trace's system size.
    pub fn plan(&mut self, trace: &Trace, conv: &Conv, system_blocks: u32, conv_hash: u64) -> Plan {
        let k = self.next;
        let turn: &Turn = &conv.turns[k];
        trace.advance(&mut self.ids, turn);
        let blocks = turn.blocks;
        let used = blocks.min(turn.input / BLOCK);
        let mut tail = turn.input - used * BLOCK;
        // Kept: the shared prefix, as far as the previous messages covered it (a partial last
        // block of the previous turn was not sent as a block).
        let covered = self.segs.iter().map(|s| s.to).max().unwrap_or(0);
        let keep = if k == 0 {
            0
        } else {
            turn.lcp.min(used).min(covered)
        };
        self.segs.retain_mut(|s| {
            s.to = s.to.min(keep);
            s.from < s.to
        });
        if self.segs.is_empty() {
            // Turn 0, or a context reset: system blocks, then the user message.
            let mut sys = system_blocks.min(used);
            if sys == used && tail == 0 && sys > 0 {
                sys -= 1;
            }
            if sys > 0 {
                self.segs.push(Segment {
                    role: Role::System,
                    from: 0,
                    to: sys,
                });
            }
            self.push(Role::User, sys, used);
        } else {
            let prev_out = conv.turns[k - 1].output;
            let mut a = prev_out.div_ceil(BLOCK).min(used - keep);
            if keep + a == used && tail == 0 && a > 0 {
                a -= 1;
            }
            self.push(Role::Assistant, keep, keep + a);
            if keep + a == used && tail == 0 {
                // Nothing left for the user message: it gets one tail token.
                tail = 1;
            }
            self.push(Role::User, keep + a, used);
        }
        if self.segs.last().map(|s| s.role) != Some(Role::User) {
            self.segs.push(Segment {
                role: Role::User,
                from: used,
                to: used,
            });
            tail = tail.max(1);
        }
        self.tail = tail;
        self.next = k + 1;
        Plan {
            segs: self.segs.clone(),
            ids: self.ids[..used as usize].to_vec(),
            tail,
            conv_hash,
            turn: k as u32,
            tokens: used * BLOCK + tail,
        }
    }

    /// Append a segment, merging into the last one when the role repeats (chat templates
    /// that require alternating roles refuse two messages of one role in a row).
    fn push(&mut self, role: Role, from: u32, to: u32) {
        if from >= to {
            return;
        }
        match self.segs.last_mut() {
            Some(s) if s.role == role && s.to == from => s.to = to,
            _ => self.segs.push(Segment { role, from, to }),
        }
    }
}

/// Fixed parts of every body.
#[derive(Debug, Clone)]
pub struct BodySpec {
    /// `model` field.
    pub model: String,
    /// `max_completion_tokens` (AIPerf default) or, with the legacy flag, `max_tokens`.
    pub legacy_max_tokens: bool,
    /// `ignore_eos: true` (the scenario injects it).
    pub ignore_eos: bool,
}

/// Render a plan as a `/v1/chat/completions` body. `marker` (the cache-bust prefix) goes
/// in front of the first user message.
pub fn render(
    w: &Words,
    spec: &BodySpec,
    trace_ns: u64,
    plan: &Plan,
    marker: &str,
    max_tokens: u32,
) -> Bytes {
    let est = plan.tokens as usize * 8 + 512;
    let mut s = String::with_capacity(est);
    s.push_str("{\"model\":");
    s.push_str(&serde_json::to_string(&spec.model).expect("string serialises"));
    s.push_str(",\"messages\":[");
    let mut first_user = true;
    let last = plan.segs.len().saturating_sub(1);
    for (i, seg) in plan.segs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"role\":\"");
        s.push_str(seg.role.name());
        s.push_str("\",\"content\":\"");
        if seg.role == Role::User && first_user {
            first_user = false;
            for c in marker.chars() {
                match c {
                    '\n' => s.push_str("\\n"),
                    '"' => s.push_str("\\\""),
                    '\\' => s.push_str("\\\\"),
                    c => s.push(c),
                }
            }
        }
        for &id in &plan.ids[seg.from as usize..seg.to as usize] {
            w.block(&mut s, trace_ns, id);
        }
        if i == last && plan.tail > 0 {
            w.tail(&mut s, plan.conv_hash, plan.turn, plan.tail);
        }
        s.push_str("\"}");
    }
    s.push(']');
    if spec.legacy_max_tokens {
        s.push_str(&format!(",\"max_tokens\":{max_tokens}"));
    } else {
        s.push_str(&format!(",\"max_completion_tokens\":{max_tokens}"));
    }
    s.push_str(",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    if spec.ignore_eos {
        s.push_str(",\"ignore_eos\":true");
    }
    s.push('}');
    Bytes::from(s.into_bytes())
}

/// The cache-bust marker of one play: `[rid:<12 hex>]\n\n` from (run id, recycle pass,
/// lane, trace id).
pub fn marker(run_id: u64, pass: u64, lane: usize, trace_id: &str) -> String {
    let mut r = SplitMix(
        run_id
            ^ pass.wrapping_mul(0xA24B_AED4_963E_E407)
            ^ (lane as u64).rotate_left(32)
            ^ name_hash(trace_id),
    );
    format!("[rid:{:012x}]\n\n", r.next_u64() & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::agentic::trace::parse_jsonl;

    fn messages(body: &[u8]) -> Vec<(String, String)> {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["role"].as_str().unwrap().to_string(),
                    m["content"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn token_exact_growing_lists() {
        let tok = HfTokenizer::embedded();
        let w = Words::new(&tok, 42).unwrap();
        let mut text = Vec::new();
        crate::client::agentic::synth::write(
            &crate::client::agentic::synth::SynthParams {
                traces: 3,
                ..crate::client::agentic::synth::SynthParams::small()
            },
            &mut text,
        )
        .unwrap();
        let traces = parse_jsonl(std::str::from_utf8(&text).unwrap(), "t").unwrap();
        let spec = BodySpec {
            model: "m".into(),
            legacy_max_tokens: false,
            ignore_eos: true,
        };
        for tr in &traces {
            let ns = name_hash(&tr.id);
            let mut cp = ConvPrompt::default();
            let mut prev: Vec<(String, String)> = vec![];
            for k in 0..tr.root.turns.len().min(8) {
                let plan = cp.plan(tr, &tr.root, tr.system_blocks, 7);
                let body = render(&w, &spec, ns, &plan, "", 5);
                let msgs = messages(&body);
                assert_eq!(msgs.last().unwrap().0, "user");
                let all: String = msgs.iter().map(|m| m.1.as_str()).collect();
                let n = tok.encode(&all).unwrap().len();
                assert_eq!(n as u32, tr.root.turns[k].input, "turn {k} of {}", tr.id);
                // Earlier messages are kept verbatim while the context grows.
                if k > 0 && tr.root.turns[k].lcp as usize >= tr.root.turns[k - 1].blocks as usize {
                    assert_eq!(msgs[0], prev[0]);
                }
                prev = msgs;
            }
        }
    }

    #[test]
    fn marker_is_per_play() {
        let a = marker(1, 0, 0, "t");
        assert!(a.starts_with("[rid:") && a.ends_with("]\n\n") && a.len() == 20);
        assert_ne!(a, marker(1, 1, 0, "t"));
        assert_ne!(a, marker(2, 0, 0, "t"));
        assert_eq!(a, marker(1, 0, 0, "t"));
    }
}
