//! Server-sent-event parsing for streamed completions, built for the hot path.
//!
//! Every streamed token passes through here, at up to hundreds of thousands of events per
//! second, so lines are split in place (a partial line is the only thing ever copied) and
//! each `data:` payload is parsed into a borrowed view that keeps just the first choice's
//! text and the usage count; no JSON tree is built and nothing is allocated per event.
//! Accepts vLLM's and SGLang's shapes (usage in a trailing `choices: []` chunk) and
//! llama.cpp's (usage on the last choices chunk).

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// Splits a byte stream into lines across chunk boundaries.
#[derive(Default)]
pub struct LineSplitter {
    /// Bytes of a line that started in an earlier chunk and has not ended yet.
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feed one network chunk; `on_line` gets every complete line (without `\n`).
    pub fn feed(&mut self, mut chunk: &[u8], mut on_line: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.partial.extend_from_slice(&chunk[..i]);
                    on_line(&self.partial);
                    self.partial.clear();
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.partial.extend_from_slice(chunk);
                    return;
                }
            }
        }
        while let Some(i) = chunk.iter().position(|&b| b == b'\n') {
            on_line(&chunk[..i]);
            chunk = &chunk[i + 1..];
        }
        self.partial.extend_from_slice(chunk);
    }

    /// The unterminated last line, if the stream ended without a newline.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.partial.is_empty()).then(|| std::mem::take(&mut self.partial))
    }
}

/// What one SSE line means for a completion stream.
#[derive(Debug, PartialEq)]
pub enum Event<'a> {
    /// A chunk with at least one choice: one token event (its text may be empty). `usage`
    /// is set when the same chunk carries the usage count (llama.cpp).
    Token {
        text: Cow<'a, str>,
        usage: Option<u64>,
    },
    /// A chunk without choices that carries `usage.completion_tokens`.
    Usage(u64),
    /// An error object sent inside the stream.
    Error(String),
    /// `data: [DONE]`.
    Done,
    /// Blank lines, comments, other SSE fields, chunks with nothing we use.
    Ignore,
    /// A `data:` line that is not valid JSON.
    Malformed(String),
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Option<FirstChoice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<ErrorField>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    completion_tokens: Option<u64>,
}

/// `error` is an object with `message` (OpenAI style) or a plain string.
#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorField {
    Object {
        #[serde(default)]
        message: Option<String>,
    },
    Text(String),
}

/// Whether `choices` was non-empty, and the first choice's text (`text` or `delta.content`).
struct FirstChoice<'a> {
    any: bool,
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<DeltaView<'a>>,
}

#[derive(Deserialize)]
struct DeltaView<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for FirstChoice<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = FirstChoice<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of choices")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                let Some(first) = s.next_element::<ChoiceView<'a>>()? else {
                    return Ok(FirstChoice {
                        any: false,
                        text: None,
                    });
                };
                while s.next_element::<IgnoredAny>()?.is_some() {}
                let text = first.text.or(first.delta.and_then(|d| d.content));
                Ok(FirstChoice { any: true, text })
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(FirstChoice {
                    any: false,
                    text: None,
                })
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Classify one line of a completion stream (leading/trailing whitespace ignored).
pub fn parse_line(line: &[u8]) -> Event<'_> {
    let line = line.trim_ascii();
    if line.is_empty() || line[0] == b':' {
        return Event::Ignore;
    }
    let Some(data) = line.strip_prefix(b"data:") else {
        return Event::Ignore;
    };
    let data = data.trim_ascii_start();
    if data == b"[DONE]" {
        return Event::Done;
    }
    match serde_json::from_slice::<Chunk>(data) {
        Ok(c) => {
            let usage = c.usage.and_then(|u| u.completion_tokens);
            if let Some(FirstChoice { any: true, text }) = c.choices {
                return Event::Token {
                    text: text.unwrap_or(Cow::Borrowed("")),
                    usage,
                };
            }
            if let Some(e) = c.error {
                return Event::Error(match e {
                    ErrorField::Object { message } => message.unwrap_or_else(|| "error".into()),
                    ErrorField::Text(t) => t,
                });
            }
            match usage {
                Some(u) => Event::Usage(u),
                None => Event::Ignore,
            }
        }
        Err(e) => Event::Malformed(format!(
            "{e}: {}",
            String::from_utf8_lossy(&data[..data.len().min(200)])
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(t: &str) -> Event<'_> {
        Event::Token {
            text: Cow::Borrowed(t),
            usage: None,
        }
    }

    #[test]
    fn vllm_completion_stream() {
        let l = br#"data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" the","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}"#;
        assert_eq!(parse_line(l), tok(" the"));
        let u = br#"data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"total_tokens":12,"completion_tokens":7}}"#;
        assert_eq!(parse_line(u), Event::Usage(7));
        assert_eq!(parse_line(b"data: [DONE]"), Event::Done);
        assert_eq!(parse_line(b"  data: [DONE]\r"), Event::Done);
    }

    #[test]
    fn llama_cpp_usage_on_last_choice_and_chat_deltas() {
        let l = br#"data: {"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}],"created":1,"model":"m","object":"text_completion","usage":{"completion_tokens":16,"prompt_tokens":3,"total_tokens":19},"id":"x"}"#;
        assert_eq!(
            parse_line(l),
            Event::Token {
                text: Cow::Borrowed(""),
                usage: Some(16)
            }
        );
        let c = br#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi \"there\""}}]}"#;
        assert_eq!(parse_line(c), tok("Hi \"there\""));
        let role = br#"data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#;
        assert_eq!(parse_line(role), tok(""));
    }

    #[test]
    fn other_lines() {
        assert_eq!(parse_line(b""), Event::Ignore);
        assert_eq!(parse_line(b": ping"), Event::Ignore);
        assert_eq!(parse_line(b"event: message"), Event::Ignore);
        assert_eq!(
            parse_line(br#"data: {"error":{"message":"boom","code":500}}"#),
            Event::Error("boom".into())
        );
        assert_eq!(
            parse_line(br#"data: {"error":"bad"}"#),
            Event::Error("bad".into())
        );
        assert!(matches!(
            parse_line(b"data: {\"choices\": [{"),
            Event::Malformed(_)
        ));
    }

    #[test]
    fn splitter_joins_lines_across_chunks() {
        let mut s = LineSplitter::default();
        let mut lines = vec![];
        for part in [&b"data: a"[..], b"bc\n\nda", b"ta: x\ndata: y", b"\n"] {
            s.feed(part, |l| lines.push(String::from_utf8(l.to_vec()).unwrap()));
        }
        assert_eq!(lines, ["data: abc", "", "data: x", "data: y"]);
        assert!(s.finish().is_none());
        s.feed(b"tail", |_| panic!("no complete line"));
        assert_eq!(s.finish().unwrap(), b"tail");
    }
}
