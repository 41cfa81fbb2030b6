//! Tokenizers as Hugging Face `transformers` uses them, for every stage that counts tokens.
//!
//! The load client must build the same prompts as benchmark_serving.py, which calls
//! `AutoTokenizer.from_pretrained(…)` and then `encode(…, add_special_tokens=False)`,
//! `decode(ids)` and `vocab_size`. Those are thin layers over the HF `tokenizers` library,
//! which this module wraps with the same defaults: special tokens kept on decode,
//! `clean_up_tokenization_spaces` honoured from `tokenizer_config.json`, vocabulary size
//! without added tokens, and the model's chat template. A small tokenizer ships inside the
//! binary (`assets/tokenizer/`) so everything works offline with no model at all.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `tokenizer.json` of the embedded tokenizer (see `assets/tokenizer/README.md`).
pub const EMBEDDED_TOKENIZER_JSON: &str = include_str!("../assets/tokenizer/tokenizer.json");
/// `tokenizer_config.json` of the embedded tokenizer (special tokens, ChatML template).
pub const EMBEDDED_TOKENIZER_CONFIG: &str =
    include_str!("../assets/tokenizer/tokenizer_config.json");
/// Name the embedded tokenizer goes by in results and on the command line.
pub const EMBEDDED_NAME: &str = "infmax/embedded";

/// A tokenizer could not be found, read or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer `{id}` is not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE is set; fetch it with `huggingface-cli download {id} tokenizer.json tokenizer_config.json` or pass a local path")]
    NotCached { id: String, cache: String },
    #[error("tokenizer `{id}`: download failed: {message}; fetch it with `huggingface-cli download {id} tokenizer.json tokenizer_config.json` or pass a local path")]
    Download { id: String, message: String },
    #[error("{file}: {message}")]
    Load { file: String, message: String },
    #[error("tokenizer path `{path}` does not exist (a hub id is `org/name`; a path is taken for one only when it exists)")]
    MissingPath { path: String },
    #[error("tokenizer `{id}`: {message}")]
    Use { id: String, message: String },
}

/// The parts of `tokenizer_config.json` that change what `transformers` returns.
#[derive(Debug, Default, Deserialize)]
struct TokenizerConfig {
    #[serde(default)]
    clean_up_tokenization_spaces: Option<bool>,
    #[serde(default)]
    chat_template: Option<ChatTemplate>,
    #[serde(default)]
    bos_token: Option<SpecialToken>,
    #[serde(default)]
    eos_token: Option<SpecialToken>,
}

/// `chat_template` is a string, or a list of named templates (`default` is used).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ChatTemplate {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Debug, Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

/// Special tokens are a string or an `AddedToken` object with `content`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SpecialToken {
    Text(String),
    Object { content: String },
}

impl SpecialToken {
    fn text(&self) -> &str {
        match self {
            SpecialToken::Text(s) => s,
            SpecialToken::Object { content } => content,
        }
    }
}

/// A tokenizer with `transformers`' fast-tokenizer semantics. Cheap to clone.
#[derive(Clone)]
pub struct HfTokenizer {
    /// What the user named (repo id, path or [`EMBEDDED_NAME`]): `tokenizer_id` in results.
    pub id: String,
    /// The HF tokenizer that does the work.
    inner: Arc<tokenizers::Tokenizer>,
    /// `clean_up_tokenization_spaces` from the config (transformers' default is false).
    clean_up: bool,
    /// The Jinja chat template, when the model has one.
    chat_template: Option<Arc<str>>,
    /// `bos_token` / `eos_token` text, passed to chat templates.
    bos: String,
    eos: String,
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTokenizer").field("id", &self.id).finish()
    }
}

/// The tokenizer shipped inside the binary, parsed once per process and shared by the
/// simulated engine and the client.
pub fn embedded() -> &'static HfTokenizer {
    static T: std::sync::OnceLock<HfTokenizer> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        HfTokenizer::from_parts(
            EMBEDDED_NAME,
            EMBEDDED_TOKENIZER_JSON.as_bytes(),
            Some(EMBEDDED_TOKENIZER_CONFIG),
            EMBEDDED_NAME,
        )
        .expect("the embedded tokenizer loads")
    })
}

impl HfTokenizer {
    /// The tokenizer shipped inside the binary (a cheap clone of the parsed one).
    pub fn embedded() -> Self {
        embedded().clone()
    }

    /// Load what the user named: [`EMBEDDED_NAME`], a `tokenizer.json` file, a directory
    /// holding one, or a Hugging Face repo id (from the hub cache, downloading it unless
    /// `HF_HUB_OFFLINE` is set).
    pub async fn load(spec: &str) -> Result<Self, TokenizerError> {
        if spec == EMBEDDED_NAME {
            return Ok(Self::embedded());
        }
        let p = Path::new(spec);
        if p.is_file() {
            return Self::from_file(spec, p, p.parent().map(|d| d.join("tokenizer_config.json")));
        }
        if p.is_dir() {
            let f = p.join("tokenizer.json");
            return Self::from_file(spec, &f, Some(p.join("tokenizer_config.json")));
        }
        if looks_like_path(spec) {
            return Err(TokenizerError::MissingPath { path: spec.into() });
        }
        let (json, config) = hub_files(spec).await?;
        Self::from_file(spec, &json, config)
    }

    fn from_file(id: &str, json: &Path, config: Option<PathBuf>) -> Result<Self, TokenizerError> {
        let bytes = std::fs::read(json).map_err(|e| TokenizerError::Load {
            file: json.display().to_string(),
            message: e.to_string(),
        })?;
        let cfg_text = match config {
            Some(c) if c.is_file() => {
                Some(
                    std::fs::read_to_string(&c).map_err(|e| TokenizerError::Load {
                        file: c.display().to_string(),
                        message: e.to_string(),
                    })?,
                )
            }
            _ => None,
        };
        Self::from_parts(id, &bytes, cfg_text.as_deref(), &json.display().to_string())
    }

    /// Build from the contents of `tokenizer.json` and (optionally) `tokenizer_config.json`.
    pub fn from_parts(
        id: &str,
        json: &[u8],
        config: Option<&str>,
        file: &str,
    ) -> Result<Self, TokenizerError> {
        let load_err = |e: tokenizers::Error| TokenizerError::Load {
            file: file.to_string(),
            message: e.to_string(),
        };
        let mut inner = tokenizers::Tokenizer::from_bytes(json).map_err(load_err)?;
        // transformers' `encode(text)` switches off any truncation or padding stored in
        // tokenizer.json (it sets both from its own arguments, which default to none); the
        // raw tokenizer would apply them and shorten long prompts.
        inner
            .with_truncation(None)
            .map(|t| t.with_padding(None))
            .map_err(load_err)?;
        let cfg: TokenizerConfig = match config {
            Some(t) => serde_json::from_str(t).map_err(|e| TokenizerError::Load {
                file: format!("{file} (tokenizer_config.json)"),
                message: e.to_string(),
            })?,
            None => TokenizerConfig::default(),
        };
        let chat_template = cfg.chat_template.and_then(|t| match t {
            ChatTemplate::One(s) => Some(s),
            ChatTemplate::Named(v) => v
                .into_iter()
                .find(|t| t.name == "default")
                .map(|t| t.template),
        });
        Ok(HfTokenizer {
            id: id.to_string(),
            inner: Arc::new(inner),
            clean_up: cfg.clean_up_tokenization_spaces.unwrap_or(false),
            chat_template: chat_template.map(Arc::from),
            bos: cfg
                .bos_token
                .map(|t| t.text().to_string())
                .unwrap_or_default(),
            eos: cfg
                .eos_token
                .map(|t| t.text().to_string())
                .unwrap_or_default(),
        })
    }

    /// `tokenizer.vocab_size`: the model vocabulary without added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(false)
    }

    /// `tokenizer.encode(text, add_special_tokens=False)`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.inner
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| self.err(e))
    }

    /// `tokenizer(text).input_ids`: with the special tokens the tokenizer's post-processor
    /// adds (a BOS, for most models), as benchmark_serving.py's file datasets count tokens.
    pub fn encode_with_special_tokens(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.inner
            .encode_fast(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| self.err(e))
    }

    /// Whether the model has a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    /// `tokenizer.decode(ids)`: special tokens kept, clean-up as configured.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let s = self.inner.decode(ids, false).map_err(|e| self.err(e))?;
        Ok(if self.clean_up {
            clean_up_tokenization(&s)
        } else {
            s
        })
    }

    /// Render one user message with the model's chat template and the generation prompt, as
    /// `apply_chat_template([{"role": "user", "content": …}], add_generation_prompt=True,
    /// tokenize=False)` does.
    pub fn apply_chat_template(&self, content: &str) -> Result<String, TokenizerError> {
        let Some(tpl) = &self.chat_template else {
            return Err(TokenizerError::Use {
                id: self.id.clone(),
                message: "has no chat_template in tokenizer_config.json".into(),
            });
        };
        let mut env = minijinja::Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<(), minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        let render = env.render_str(
            tpl,
            minijinja::context! {
                messages => vec![minijinja::context! { role => "user", content => content }],
                add_generation_prompt => true,
                bos_token => &self.bos,
                eos_token => &self.eos,
            },
        );
        render.map_err(|e| TokenizerError::Use {
            id: self.id.clone(),
            message: format!("chat template: {e}"),
        })
    }

    /// The underlying HF tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    fn err(&self, e: impl std::fmt::Display) -> TokenizerError {
        TokenizerError::Use {
            id: self.id.clone(),
            message: e.to_string(),
        }
    }
}

/// transformers' `clean_up_tokenization`: drop the space before punctuation and English
/// contractions, in this order.
pub fn clean_up_tokenization(s: &str) -> String {
    s.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

/// Whether a tokenizer value can only be a path: absolute, `./`, `../` or `~` relative,
/// more than one `/` (hub ids are `name` or `org/name`), or a file name ending in `.json`.
pub fn looks_like_path(spec: &str) -> bool {
    spec.starts_with('/')
        || spec.starts_with("./")
        || spec.starts_with("../")
        || spec.starts_with('~')
        || spec == "."
        || spec == ".."
        || spec.matches('/').count() > 1
        || spec.ends_with(".json")
}

/// The hub cache directory: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `~/.cache/huggingface/hub` (huggingface_hub's order).
pub fn hub_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
        return p.into();
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/tmp".into());
    home.join(".cache/huggingface/hub")
}

/// Whether `HF_HUB_OFFLINE` forbids downloads (huggingface_hub's truthy values).
pub fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// The hub client every download shares (tokenizers, accuracy datasets, agentic traces):
/// files land in [`hub_cache_dir`], `HF_TOKEN` authenticates when set, no progress bars.
pub fn hub_api() -> Result<hf_hub::api::tokio::Api, hf_hub::api::tokio::ApiError> {
    hf_hub::api::tokio::ApiBuilder::from_cache(hf_hub::Cache::new(hub_cache_dir()))
        .with_token(std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()))
        .with_progress(false)
        .build()
}

/// `tokenizer.json` (and `tokenizer_config.json` when the repo has one) of a hub repo.
async fn hub_files(id: &str) -> Result<(PathBuf, Option<PathBuf>), TokenizerError> {
    let cache = hf_hub::Cache::new(hub_cache_dir());
    let repo = cache.model(id.to_string());
    if let Some(json) = repo.get("tokenizer.json") {
        return Ok((json, repo.get("tokenizer_config.json")));
    }
    if hub_offline() {
        return Err(TokenizerError::NotCached {
            id: id.to_string(),
            cache: hub_cache_dir().display().to_string(),
        });
    }
    let api = hub_api().map_err(|e| TokenizerError::Download {
        id: id.to_string(),
        message: e.to_string(),
    })?;
    let r = api.model(id.to_string());
    let json = r
        .get("tokenizer.json")
        .await
        .map_err(|e| TokenizerError::Download {
            id: id.to_string(),
            message: e.to_string(),
        })?;
    let config = r.get("tokenizer_config.json").await.ok();
    Ok((json, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_told_from_hub_ids() {
        for p in ["/abs", "./rel", "../up", "~/t", "a/b/c", "tok.json", "."] {
            assert!(looks_like_path(p), "{p}");
        }
        for id in ["gpt2", "deepseek-ai/DeepSeek-R1", "openai/gpt-oss-120b"] {
            assert!(!looks_like_path(id), "{id}");
        }
    }

    #[test]
    fn embedded_round_trip_and_sizes() {
        let t = HfTokenizer::embedded();
        assert_eq!(t.vocab_size(), 8192);
        let ids = t.encode("Hello world, in the beginning").unwrap();
        assert_eq!(t.decode(&ids).unwrap(), "Hello world, in the beginning");
        assert!(ids.iter().all(|&i| (i as usize) < t.vocab_size()));
    }

    #[test]
    fn truncation_and_padding_in_tokenizer_json_are_ignored_like_transformers() {
        let mut j: serde_json::Value = serde_json::from_str(EMBEDDED_TOKENIZER_JSON).unwrap();
        j["truncation"] = serde_json::json!({"direction": "Right", "max_length": 4,
            "strategy": "LongestFirst", "stride": 0});
        j["padding"] = serde_json::json!({"strategy": {"Fixed": 64}, "direction": "Right",
            "pad_to_multiple_of": null, "pad_id": 0, "pad_type_id": 0, "pad_token": "<pad>"});
        let bytes = serde_json::to_vec(&j).unwrap();
        let t = HfTokenizer::from_parts("t", &bytes, None, "t").unwrap();
        let text = "in the beginning god created the heaven and the earth";
        let want = HfTokenizer::embedded().encode(text).unwrap();
        assert!(want.len() > 4 && want.len() < 64);
        assert_eq!(t.encode(text).unwrap(), want);
    }

    #[test]
    fn chat_template_renders_chatml() {
        let t = HfTokenizer::embedded();
        assert_eq!(
            t.apply_chat_template("a").unwrap(),
            "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn clean_up_matches_transformers() {
        assert_eq!(
            clean_up_tokenization("Hello , world ! I 'm sure it 's done ."),
            "Hello, world! I'm sure it's done."
        );
    }
}
