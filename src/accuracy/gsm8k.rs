//! gsm8k as lm-evaluation-harness's `tasks/gsm8k/gsm8k.yaml` defines it: the few-shot
//! prompt (plain text, or chat turns as `--apply_chat_template` builds them), the stop sequences, both answer filters (`strict-match`, `flexible-extract`) and
//! `exact_match` with the yaml's `regexes_to_ignore` and `ignore_case`.

use super::engine::ChatMessage;
use regex::Regex;
use std::sync::OnceLock;

/// One problem: the question and the reference answer (reasoning, then `#### N`).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The word problem.
    pub question: String,
    /// The reference solution ending in `#### <number>`.
    pub answer: String,
}

/// `generation_kwargs.until` of gsm8k.yaml.
pub const STOP: [&str; 3] = ["Question:", "</s>", "<|im_end|>"];

/// lm-eval's `max_gen_toks` default for generate_until (gsm8k.yaml sets none).
pub const MAX_GEN_TOKS: u32 = 256;

/// What a filter yields when its regex finds nothing (lm-eval's `RegexFilter` fallback).
pub const INVALID: &str = "[invalid]";

/// `doc_to_text` of one problem: `Question: {q}\nAnswer:`.
fn question(p: &Problem) -> String {
    format!("Question: {}\nAnswer:", p.question)
}

/// The chat messages of `--apply_chat_template` with `fewshot_as_multiturn` (its default in
/// lm-eval 0.4): each shot a user turn (`doc_to_text`) answered by an assistant turn
/// (`doc_to_target`, the whole reference solution; the target delimiter belongs to plain
/// text only), then the question as the last user turn. No system message.
pub fn chat_messages(shots: &[Problem], p: &Problem) -> Vec<ChatMessage> {
    let mut m = Vec::with_capacity(2 * shots.len() + 1);
    for x in shots {
        m.push(ChatMessage {
            role: "user",
            content: question(x),
        });
        m.push(ChatMessage {
            role: "assistant",
            content: x.answer.clone(),
        });
    }
    m.push(ChatMessage {
        role: "user",
        content: question(p),
    });
    m
}

/// `doc_to_text`, preceded by the shots: `Question: {q}\nAnswer: {a}\n\n` each
/// (`target_delimiter` " ", `fewshot_delimiter` "\n\n").
pub fn prompt(shots: &[Problem], p: &Problem) -> String {
    let mut s = String::new();
    for x in shots {
        s.push_str(&format!("{} {}\n\n", question(x), x.answer));
    }
    s.push_str(&question(p));
    s
}

struct Rx {
    strict: Regex,
    flexible: Regex,
    ignore: [Regex; 4],
}

fn rx() -> &'static Rx {
    static RX: OnceLock<Rx> = OnceLock::new();
    RX.get_or_init(|| Rx {
        strict: Regex::new(r"#### (\-?[0-9\.\,]+)").expect("valid regex"),
        flexible: Regex::new(r"(-?[$0-9.,]{2,})|(-?[0-9]+)").expect("valid regex"),
        ignore: [
            Regex::new(",").expect("valid regex"),
            Regex::new(r"\$").expect("valid regex"),
            Regex::new(r"(?s).*#### ").expect("valid regex"),
            // Python's `$` also matches before a final newline.
            Regex::new(r"\.(\n?)\z").expect("valid regex"),
        ],
    })
}

/// Python's `str.strip()`.
fn py_strip(s: &str) -> &str {
    s.trim_matches(super::wikitext::is_py_space)
}

/// `strict-match`: the first `#### N`, else [`INVALID`].
pub fn strict_match(response: &str) -> String {
    match rx().strict.captures(response) {
        Some(c) => py_strip(c.get(1).map_or("", |m| m.as_str())).to_string(),
        None => INVALID.to_string(),
    }
}

/// `flexible-extract`: the last number-like match (`group_select: -1`), its first non-empty
/// group, else [`INVALID`].
pub fn flexible_extract(response: &str) -> String {
    match rx().flexible.captures_iter(response).last() {
        Some(c) => {
            let g = c
                .iter()
                .skip(1)
                .flatten()
                .map(|m| m.as_str())
                .find(|s| !s.is_empty());
            match g {
                Some(s) => py_strip(s).to_string(),
                None => INVALID.to_string(),
            }
        }
        None => INVALID.to_string(),
    }
}

/// Apply `regexes_to_ignore` in order, then `ignore_case`.
pub fn normalise(s: &str) -> String {
    let r = rx();
    let mut s = s.to_string();
    for (i, re) in r.ignore.iter().enumerate() {
        s = if i == 3 {
            re.replace(&s, "${1}").into_owned()
        } else {
            re.replace_all(&s, "").into_owned()
        };
    }
    s.to_lowercase()
}

/// `exact_match` of one filtered prediction against the reference answer.
pub fn exact_match(prediction: &str, reference: &str) -> bool {
    normalise(prediction) == normalise(reference)
}

/// Per-problem result of both filters.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// `strict-match` extraction.
    pub strict: String,
    /// `flexible-extract` extraction.
    pub flexible: String,
    /// Whether the strict extraction matches the reference.
    pub strict_ok: bool,
    /// Whether the flexible extraction matches the reference.
    pub flexible_ok: bool,
}

/// Score one response against its problem.
pub fn score(response: &str, p: &Problem) -> Scored {
    let strict = strict_match(response);
    let flexible = flexible_extract(response);
    Scored {
        strict_ok: exact_match(&strict, &p.answer),
        flexible_ok: exact_match(&flexible, &p.answer),
        strict,
        flexible,
    }
}
