//! The tokenizer shipped in `assets/tokenizer/` (a small byte-level BPE, see its README),
//! compiled into the binary so the simulated engine and the load client work offline with
//! no model tokenizer, plus the per-token tables the engine's hot path renders from.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use tokenizers::Tokenizer;

pub use crate::tokenizer::{EMBEDDED_TOKENIZER_CONFIG, EMBEDDED_TOKENIZER_JSON};

/// The end-of-text token of the embedded tokenizer (BOS and EOS).
pub const EOS: &str = "<|endoftext|>";

/// A tokenizer could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("tokenizer {what}: {message}")]
pub struct TokenizerError {
    /// The file (or "embedded").
    pub what: String,
    /// What went wrong.
    pub message: String,
}

/// The embedded tokenizer, parsed once per process (shared with the client).
pub fn embedded() -> &'static Tokenizer {
    crate::tokenizer::embedded().inner()
}

/// A tokenizer with the tables the engine needs: each token's text, JSON-escaped once, and
/// the tokens it may generate (no special tokens, none that decode to broken UTF-8 alone).
pub struct Vocab {
    /// The tokenizer itself (encode prompts, `/tokenize`).
    pub tokenizer: Tokenizer,
    /// Decoded text of every token id on its own (lossy for partial UTF-8 byte tokens).
    pub text: Vec<Box<str>>,
    /// `text`, escaped for a JSON string literal (no quotes).
    pub json: Vec<Box<str>>,
    /// Ids the engine generates from.
    pub generable: Vec<u32>,
}

impl Vocab {
    /// Build the tables for the embedded tokenizer (cached) or a `tokenizer.json` file.
    pub fn load(path: Option<&Path>) -> Result<Arc<Vocab>, TokenizerError> {
        static EMBEDDED: OnceLock<Arc<Vocab>> = OnceLock::new();
        match path {
            None => Ok(EMBEDDED
                .get_or_init(|| Arc::new(Vocab::new(embedded().clone())))
                .clone()),
            Some(p) => {
                let t = Tokenizer::from_file(p).map_err(|e| TokenizerError {
                    what: p.display().to_string(),
                    message: e.to_string(),
                })?;
                let v = Vocab::new(t);
                if v.generable.is_empty() {
                    return Err(TokenizerError {
                        what: p.display().to_string(),
                        message: "no token decodes to text on its own".into(),
                    });
                }
                Ok(Arc::new(v))
            }
        }
    }

    fn new(tokenizer: Tokenizer) -> Vocab {
        let n = tokenizer.get_vocab_size(true) as u32;
        let special: std::collections::HashSet<u32> = tokenizer
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .collect();
        let mut text = Vec::with_capacity(n as usize);
        let mut json = Vec::with_capacity(n as usize);
        let mut generable = Vec::new();
        for id in 0..n {
            let s = tokenizer.decode(&[id], false).unwrap_or_default();
            if !special.contains(&id) && !s.is_empty() && !s.contains('\u{FFFD}') {
                generable.push(id);
            }
            let esc = serde_json::to_string(&s).expect("a string serialises");
            json.push(esc[1..esc.len() - 1].into());
            text.push(s.into_boxed_str());
        }
        Vocab {
            tokenizer,
            text,
            json,
            generable,
        }
    }

    /// Number of token ids (including added tokens).
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// Whether the vocabulary is empty (never, for a loaded tokenizer).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Encode text as the engine sees a prompt (special tokens in the text are recognised,
    /// nothing is added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| e.to_string())
    }

    /// Decode ids to text, special tokens kept.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, false).unwrap_or_default()
    }
}

/// Render chat messages with the embedded tokenizer's ChatML template, ending with the
/// assistant's turn opened (`add_generation_prompt`).
pub fn chatml(messages: &[(String, String)]) -> String {
    let mut s = String::new();
    for (role, content) in messages {
        s.push_str("<|im_start|>");
        s.push_str(role);
        s.push('\n');
        s.push_str(content);
        s.push_str("<|im_end|>\n");
    }
    s.push_str("<|im_start|>assistant\n");
    s
}

/// A 128-bit hash of byte strings (two splitmix lanes over 8-byte words): names a chat
/// message in [`ChatEncoder`]'s cache at memory speed.
fn hash128(parts: &[&[u8]]) -> u128 {
    use super::model::mix;
    let (mut a, mut b) = (0x243F_6A88_85A3_08D3u64, 0x1319_8A2E_0370_7344u64);
    for p in parts {
        let mut words = p.chunks_exact(8);
        for w in &mut words {
            let x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            a = mix(a ^ x);
            b = mix(b.rotate_left(29) ^ x ^ 0x9E37_79B9_7F4A_7C15);
        }
        let mut tail = [0u8; 8];
        let rest = words.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        let x = u64::from_le_bytes(tail) ^ ((p.len() as u64) << 56);
        a = mix(a ^ x ^ p.len() as u64);
        b = mix(b.rotate_left(29) ^ x);
    }
    (u128::from(a) << 64) | u128::from(b)
}

/// Token ids of recently seen messages, bounded in tokens: two generations of a map (a hit
/// in the old one moves to the current one; when the current one is full it becomes the
/// old one), an LRU approximation with O(1) work per message.
struct MessageCache {
    cur: HashMap<u128, Arc<[u32]>>,
    old: HashMap<u128, Arc<[u32]>>,
    /// Tokens held in `cur`.
    cur_tokens: usize,
    /// Tokens one generation may hold.
    gen_tokens: usize,
}

impl MessageCache {
    fn get(&mut self, k: u128) -> Option<Arc<[u32]>> {
        if let Some(v) = self.cur.get(&k) {
            return Some(v.clone());
        }
        let v = self.old.remove(&k)?;
        self.put(k, v.clone());
        Some(v)
    }

    fn put(&mut self, k: u128, v: Arc<[u32]>) {
        if v.len() > self.gen_tokens {
            return;
        }
        if self.cur_tokens + v.len() > self.gen_tokens {
            self.old = std::mem::take(&mut self.cur);
            self.cur_tokens = 0;
        }
        self.cur_tokens += v.len();
        self.cur.insert(k, v);
    }
}

/// Encodes chat conversations message by message, remembering each message's tokens, so a
/// conversation re-sent with one more turn costs a hash of the old messages plus the
/// tokenization of the new one — not a re-tokenization of the whole (growing) context.
///
/// With ChatML's `<|im_start|>`/`<|im_end|>` as special tokens, the tokenizer splits the
/// rendered text at them before anything else, so the ids of `role\ncontent` between them
/// do not depend on their neighbours and the per-message result equals encoding the whole
/// rendered text. That is checked when the encoder is built; a tokenizer for which it does
/// not hold is served by whole-text encoding.
pub struct ChatEncoder {
    vocab: Arc<Vocab>,
    /// `(<|im_start|>, <|im_end|>, ids of "\n")` when per-message encoding is exact.
    split: Option<(u32, u32, Vec<u32>)>,
    cache: Mutex<MessageCache>,
}

impl ChatEncoder {
    /// An encoder over `vocab` remembering up to about `cache_tokens` tokens of messages.
    pub fn new(vocab: Arc<Vocab>, cache_tokens: usize) -> Self {
        let special = |s: &str| {
            vocab
                .tokenizer
                .get_added_tokens_decoder()
                .iter()
                .find(|(_, t)| t.content == s && t.special)
                .map(|(id, _)| *id)
        };
        let split = match (
            special("<|im_start|>"),
            special("<|im_end|>"),
            vocab.encode("\n"),
        ) {
            (Some(s), Some(e), Ok(nl)) => Some((s, e, nl)),
            _ => None,
        };
        let mut enc = ChatEncoder {
            vocab,
            split,
            cache: Mutex::new(MessageCache {
                cur: HashMap::new(),
                old: HashMap::new(),
                cur_tokens: 0,
                gen_tokens: cache_tokens / 2,
            }),
        };
        if enc.split.is_some() {
            // Probe the exactness claim on text that would merge across boundaries if the
            // special tokens did not split it.
            let probe: Vec<(String, String)> = [
                ("system", " leading space\n\n"),
                ("user", "ends with newline\n"),
                ("assistant", "a<|im_end|>b  "),
                ("user", "\n\n\tx"),
            ]
            .iter()
            .map(|(r, c)| (r.to_string(), c.to_string()))
            .collect();
            let whole = enc.vocab.encode(&chatml(&probe));
            let refs: Vec<(&str, &str)> = probe
                .iter()
                .map(|(r, c)| (r.as_str(), c.as_str()))
                .collect();
            if whole.is_err() || enc.encode(&refs).ok() != whole.ok() {
                enc.split = None;
            }
            enc.cache.lock().expect("cache lock").cur.clear();
        }
        enc
    }

    /// Whether conversations are encoded message by message (else as one text).
    pub fn per_message(&self) -> bool {
        self.split.is_some()
    }

    /// Token ids of the ChatML rendering of `(role, content)` messages with the assistant's
    /// turn opened — equal to `vocab.encode(&chatml(messages))`.
    pub fn encode(&self, messages: &[(&str, &str)]) -> Result<Vec<u32>, String> {
        let Some((start, end, nl)) = &self.split else {
            let owned: Vec<(String, String)> = messages
                .iter()
                .map(|(r, c)| (r.to_string(), c.to_string()))
                .collect();
            return self.vocab.encode(&chatml(&owned));
        };
        let mut parts = Vec::with_capacity(messages.len());
        let mut total = 0;
        for (role, content) in messages {
            let ids = self.segment(role, content)?;
            total += ids.len() + 2 + nl.len();
            parts.push(ids);
        }
        let tail = self.segment("assistant", "")?;
        let mut out = Vec::with_capacity(total + 1 + tail.len());
        for ids in parts {
            out.push(*start);
            out.extend_from_slice(&ids);
            out.push(*end);
            out.extend_from_slice(nl);
        }
        out.push(*start);
        out.extend_from_slice(&tail);
        Ok(out)
    }

    /// Ids of `role\ncontent`, from the cache or the tokenizer.
    fn segment(&self, role: &str, content: &str) -> Result<Arc<[u32]>, String> {
        let key = hash128(&[role.as_bytes(), content.as_bytes()]);
        if let Some(v) = self.cache.lock().expect("cache lock").get(key) {
            return Ok(v);
        }
        // Tokenize outside the lock: other requests' lookups do not wait for it.
        let mut text = String::with_capacity(role.len() + 1 + content.len());
        text.push_str(role);
        text.push('\n');
        text.push_str(content);
        let ids: Arc<[u32]> = self.vocab.encode(&text)?.into();
        self.cache.lock().expect("cache lock").put(key, ids.clone());
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_message_encoding_equals_whole_text_encoding() {
        let vocab = Vocab::load(None).unwrap();
        let enc = ChatEncoder::new(vocab.clone(), 1 << 20);
        assert!(
            enc.per_message(),
            "the embedded tokenizer splits at ChatML markers"
        );
        let msgs = [
            ("system", "You are terse.  "),
            ("user", "[rid:0123456789ab]\n\nhello  world\n"),
            ("assistant", " ok\n\n"),
            ("user", "<|im_end|> inside text, ünïcode, 12345\t\n"),
        ];
        let owned: Vec<(String, String)> = msgs
            .iter()
            .map(|(r, c)| (r.to_string(), c.to_string()))
            .collect();
        let whole = vocab.encode(&chatml(&owned)).unwrap();
        assert_eq!(enc.encode(&msgs).unwrap(), whole);
        // Second time from the cache, same answer.
        assert_eq!(enc.encode(&msgs).unwrap(), whole);
        assert!(enc.encode(&msgs[..2]).unwrap().len() < whole.len());
    }

    #[test]
    fn message_cache_is_bounded() {
        let mut c = MessageCache {
            cur: HashMap::new(),
            old: HashMap::new(),
            cur_tokens: 0,
            gen_tokens: 10,
        };
        for k in 0..100u128 {
            c.put(k, vec![0u32; 4].into());
        }
        assert!(c.cur.len() + c.old.len() <= 5);
        assert!(c.get(99).is_some());
        assert!(c.get(0).is_none());
    }
}
