//! wikitext perplexity exactly as lm-evaluation-harness computes it (`loglikelihood_rolling`).
//!
//! Everything here is pure so the arithmetic that decides a gate can be checked by hand:
//! the detokenizer's replacement chain, Python's `re.split(r"\s+", …)` word count, the
//! rolling windows of `get_rolling_token_windows` + `make_disjoint_window`, the request
//! truncation of lm-eval's API models and the three corpus-level aggregates.

use regex::Regex;
use std::sync::OnceLock;

/// One document to score: what is sent to the engine and what the metrics divide by.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The text whose loglikelihood is measured (detokenized page, or a decoded chunk).
    pub target: String,
    /// Word count (lm-eval: pieces of `re.split(r"\s+", page)` on the original page).
    pub words: usize,
    /// UTF-8 length of the original page.
    pub bytes: usize,
}

/// Python's `str.isspace()` (what `\s` matches in a `str` pattern): Unicode `White_Space`
/// plus the information separators U+001C..U+001F.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `len(re.split(r"\s+", s))`: one more than the number of whitespace runs, so leading and
/// trailing whitespace count as empty words, as they do in lm-eval.
pub fn count_words(s: &str) -> usize {
    let mut runs = 0;
    let mut in_run = false;
    for c in s.chars() {
        let sp = is_py_space(c);
        if sp && !in_run {
            runs += 1;
        }
        in_run = sp;
    }
    runs + 1
}

/// A document of the `wikitext` task: detokenized target, counts from the original page.
pub fn page_document(page: &str) -> Document {
    Document {
        target: wikitext_detokenizer(page),
        words: count_words(page),
        bytes: page.len(),
    }
}

/// `\s` as Python means it, for the regexes below.
const S: &str = r"[\s\x1C-\x1F]";

struct Rx {
    quote_digit: Regex,
    parens: Regex,
    brackets: Regex,
    braces: Regex,
    dquotes: Regex,
    squotes: Regex,
}

fn rx() -> &'static Rx {
    static RX: OnceLock<Rx> = OnceLock::new();
    RX.get_or_init(|| {
        let r = |p: &str| Regex::new(&p.replace("\\s", S)).expect("valid regex");
        Rx {
            quote_digit: r(r"/' [0-9]/"),
            parens: r(r"\(\s*([^\)]*?)\s*\)"),
            brackets: r(r"\[\s*([^\]]*?)\s*\]"),
            braces: r(r"\{\s*([^}]*?)\s*\}"),
            dquotes: r(r#""\s*([^"]*?)\s*""#),
            squotes: r(r"'\s*([^']*?)\s*'"),
        }
    })
}

/// lm-eval's `wikitext_detokenizer` (`tasks/wikitext/preprocess_wikitext.py`), the same
/// replacements in the same order.
pub fn wikitext_detokenizer(page: &str) -> String {
    let rx = rx();
    // contractions
    let mut s = page.replace("s '", "s'");
    s = rx.quote_digit.replace_all(&s, "/'[0-9]/").into_owned();
    // number separators
    s = s.replace(" @-@ ", "-");
    s = s.replace(" @,@ ", ",");
    s = s.replace(" @.@ ", ".");
    // punctuation
    s = s.replace(" : ", ": ");
    s = s.replace(" ; ", "; ");
    s = s.replace(" . ", ". ");
    s = s.replace(" ! ", "! ");
    s = s.replace(" ? ", "? ");
    s = s.replace(" , ", ", ");
    // double brackets
    s = rx.parens.replace_all(&s, "(${1})").into_owned();
    s = rx.brackets.replace_all(&s, "[${1}]").into_owned();
    s = rx.braces.replace_all(&s, "{${1}}").into_owned();
    s = rx.dquotes.replace_all(&s, "\"${1}\"").into_owned();
    s = rx.squotes.replace_all(&s, "'${1}'").into_owned();
    // miscellaneous
    s = s.replace("= = = =", "====");
    s = s.replace("= = =", "===");
    s = s.replace("= =", "==");
    s = s.replace(" \u{b0} ", "\u{b0}");
    s = s.replace(" \n", "\n");
    s = s.replace("\n ", "\n");
    s = s.replace(" N ", " 1 ");
    s = s.replace(" 's", "'s");
    s
}

/// One scoring request: `context + continuation`, scored over the continuation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Conditioning tokens (at least one).
    pub context: Vec<u32>,
    /// Tokens whose logprobs are summed.
    pub continuation: Vec<u32>,
}

/// `get_rolling_token_windows(tokens, prefix, max_seq_len, context_len=1)` mapped through
/// `make_disjoint_window`: the first window predicts up to `max_seq_len` tokens after the
/// prefix token; each later one predicts the next (up to `max_seq_len`) tokens conditioned
/// on the tokens before them, so that context + continuation is `max_seq_len + 1` long.
pub fn rolling_windows(tokens: &[u32], prefix: u32, max_seq_len: usize) -> Vec<Window> {
    assert!(max_seq_len >= 1, "max_seq_len must be at least 1");
    let mut out = vec![];
    if tokens.is_empty() {
        return out;
    }
    let context_len = 1;
    let pred_len = max_seq_len - context_len + 1;
    let first = max_seq_len.min(tokens.len());
    // first window: ([prefix] + toks[:first-1], toks[:first]) → disjoint context [prefix]
    out.push(Window {
        context: vec![prefix],
        continuation: tokens[..first].to_vec(),
    });
    let mut predicted = first;
    while predicted < tokens.len() {
        let wpl = (tokens.len() - predicted).min(pred_len);
        let end = predicted + wpl;
        // input = toks[end-max_seq_len-1 : end-1]; disjoint keeps len(input) - (wpl-1).
        let start = end - max_seq_len - 1;
        let input = &tokens[start..end - 1];
        let keep = input.len() - (wpl - 1);
        out.push(Window {
            context: input[..keep].to_vec(),
            continuation: tokens[end - wpl..end].to_vec(),
        });
        predicted += wpl;
    }
    out
}

/// What lm-eval's API models send for a window: `(context + continuation)[-max_length:]`
/// and the context length left after that truncation (`batch_loglikelihood_requests`).
pub fn request_tokens(w: &Window, max_length: usize) -> (Vec<u32>, usize) {
    let all: Vec<u32> = w
        .context
        .iter()
        .chain(w.continuation.iter())
        .copied()
        .collect();
    let cut = all.len().saturating_sub(max_length);
    let ctxlen = w.context.len() - cut.min(w.context.len());
    (all[cut..].to_vec(), ctxlen)
}

/// Corpus-level perplexities from per-document loglikelihoods (natural log).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perplexity {
    /// `exp(−ΣLL / Σwords)`.
    pub word_perplexity: f64,
    /// `exp(−ΣLL / Σbytes)`.
    pub byte_perplexity: f64,
    /// `−ΣLL / Σbytes / ln 2`.
    pub bits_per_byte: f64,
}

/// lm-eval's `weighted_perplexity` and `bits_per_byte` over (loglikelihood, words, bytes).
pub fn aggregate(items: &[(f64, usize, usize)]) -> Perplexity {
    let ll: f64 = items.iter().map(|x| x.0).sum();
    let words: f64 = items.iter().map(|x| x.1 as f64).sum();
    let bytes: f64 = items.iter().map(|x| x.2 as f64).sum();
    Perplexity {
        word_perplexity: (-ll / words).exp(),
        byte_perplexity: (-ll / bytes).exp(),
        bits_per_byte: -ll / bytes / std::f64::consts::LN_2,
    }
}
