//! The tokenizer shipped in `assets/tokenizer/` (a small byte-level BPE, see its README),
//! compiled into the binary so the simulated engine and the load client work offline with
//! no model tokenizer, plus the per-token tables the engine's hot path renders from.

use std::path::Path;
use std::sync::{Arc, OnceLock};
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
