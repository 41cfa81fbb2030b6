//! Byte-level rendering of vLLM-shaped responses. Streaming chunks are assembled from
//! pre-rendered pieces (a per-request prefix, each token's JSON-escaped text from the
//! vocabulary table, a fixed suffix) straight into a reusable buffer: no JSON tree per token.

use super::model::{prompt_logprobs, Generator};
use super::tokenizer::Vocab;
use bytes::{BufMut, BytesMut};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

/// Which OpenAI endpoint a response belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `/v1/completions`.
    Completion,
    /// `/v1/chat/completions`.
    Chat,
}

/// Everything about a response that is fixed when the request arrives.
pub(crate) struct Shape {
    pub kind: Kind,
    /// `cmpl-…` / `chatcmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    pub model: String,
    /// The prompt's ids, kept only where the response repeats them (completions' echo).
    pub prompt: Vec<u32>,
    /// Tokens in the prompt (the usage's `prompt_tokens`).
    pub prompt_len: u32,
    /// Tokens generated in total.
    pub n_out: u32,
    /// `"stop"` (EOS rule) or `"length"`.
    pub finish_reason: &'static str,
    /// Final `choices: []` chunk with usage (streaming).
    pub include_usage: bool,
    /// Legacy completions `logprobs`: top-k alternatives per token.
    pub logprobs: Option<u32>,
    /// Completions `echo`: the prompt is returned before the output (non-streaming only).
    pub echo: bool,
    pub seed: u64,
    /// `data: {…"text":"` / `…"delta":{"content":"` for this request.
    pub chunk_prefix: Vec<u8>,
}

impl Shape {
    /// Fill in `chunk_prefix`.
    pub fn prepare(&mut self) {
        let mut p = String::with_capacity(160);
        match self.kind {
            Kind::Completion => write!(
                p,
                r#"data: {{"id":"{}","object":"text_completion","created":{},"model":{},"choices":[{{"index":0,"text":""#,
                self.id,
                self.created,
                jstr(&self.model)
            ),
            Kind::Chat => write!(
                p,
                r#"data: {{"id":"{}","object":"chat.completion.chunk","created":{},"model":{},"choices":[{{"index":0,"delta":{{"content":""#,
                self.id,
                self.created,
                jstr(&self.model)
            ),
        }
        .expect("write to String");
        self.chunk_prefix = p.into_bytes();
    }

    fn usage(&self) -> Value {
        let p = u64::from(self.prompt_len);
        let c = u64::from(self.n_out);
        json!({"prompt_tokens": p, "total_tokens": p + c, "completion_tokens": c, "prompt_tokens_details": null})
    }

    /// Append the SSE chunk(s) of output token `pos` (the chat role chunk before the first).
    #[inline]
    pub fn token_chunk(&self, buf: &mut BytesMut, vocab: &Vocab, gen: &Generator, pos: u32) {
        if self.kind == Kind::Chat && pos == 0 {
            self.role_chunk(buf);
        }
        let tok = gen.token(pos);
        buf.put_slice(&self.chunk_prefix);
        buf.put_slice(vocab.json[tok as usize].as_bytes());
        let last = pos + 1 == self.n_out;
        match self.kind {
            Kind::Completion => {
                buf.put_slice(b"\",\"logprobs\":");
                match self.logprobs {
                    None => buf.put_slice(b"null"),
                    Some(k) => {
                        let offset = self.output_offset(vocab, gen, pos);
                        let v = completion_logprobs(
                            vocab,
                            &[(tok, Some(gen.logprob(pos)), gen.top(pos, k))],
                            offset,
                        );
                        buf.put_slice(v.to_string().as_bytes());
                    }
                }
                if last {
                    buf.put_slice(b",\"finish_reason\":\"");
                    buf.put_slice(self.finish_reason.as_bytes());
                    buf.put_slice(b"\",\"stop_reason\":null}],\"usage\":null}\n\n");
                } else {
                    buf.put_slice(
                        b",\"finish_reason\":null,\"stop_reason\":null}],\"usage\":null}\n\n",
                    );
                }
            }
            Kind::Chat => {
                buf.put_slice(b"\"},\"logprobs\":null,\"finish_reason\":");
                if last {
                    buf.put_u8(b'"');
                    buf.put_slice(self.finish_reason.as_bytes());
                    buf.put_slice(b"\",\"stop_reason\":null}]");
                } else {
                    buf.put_slice(b"null}]");
                }
                if self.include_usage {
                    buf.put_slice(b",\"usage\":null");
                }
                buf.put_slice(b"}\n\n");
            }
        }
    }

    /// Text offset of output token `pos` in the returned text (slow path, logprobs only).
    fn output_offset(&self, vocab: &Vocab, gen: &Generator, pos: u32) -> usize {
        (0..pos)
            .map(|p| vocab.text[gen.token(p) as usize].chars().count())
            .sum()
    }

    fn role_chunk(&self, buf: &mut BytesMut) {
        let mut v = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}],
        });
        if self.include_usage {
            v["usage"] = Value::Null;
        }
        sse(buf, &v);
    }

    /// Append the end of a stream: the usage chunk if asked for, then `data: [DONE]`.
    pub fn tail(&self, buf: &mut BytesMut) {
        if self.include_usage {
            let object = match self.kind {
                Kind::Completion => "text_completion",
                Kind::Chat => "chat.completion.chunk",
            };
            let v = json!({
                "id": self.id, "object": object, "created": self.created, "model": self.model,
                "choices": [], "usage": self.usage(),
            });
            sse(buf, &v);
        }
        buf.put_slice(b"data: [DONE]\n\n");
    }

    /// The whole non-streamed response body.
    pub fn full(&self, vocab: &Vocab, gen: &Generator) -> Vec<u8> {
        let out: Vec<u32> = (0..self.n_out).map(|p| gen.token(p)).collect();
        let mut text = String::new();
        for &t in &out {
            text.push_str(&vocab.text[t as usize]);
        }
        let v = match self.kind {
            Kind::Completion => {
                let mut logprobs = Value::Null;
                let prefix = if self.echo {
                    vocab.decode(&self.prompt)
                } else {
                    String::new()
                };
                if let Some(k) = self.logprobs {
                    let mut rows = Vec::new();
                    if self.echo {
                        let pl = prompt_logprobs(vocab, self.seed, &self.prompt, k);
                        for (&t, l) in self.prompt.iter().zip(pl) {
                            match l {
                                None => rows.push((t, None, Vec::new())),
                                Some((lp, top)) => rows.push((t, Some(lp), top)),
                            }
                        }
                    }
                    for (p, &t) in out.iter().enumerate() {
                        rows.push((t, Some(gen.logprob(p as u32)), gen.top(p as u32, k)));
                    }
                    logprobs = completion_logprobs(vocab, &rows, 0);
                }
                json!({
                    "id": self.id, "object": "text_completion", "created": self.created,
                    "model": self.model,
                    "choices": [{"index": 0, "text": prefix + &text, "logprobs": logprobs,
                        "finish_reason": self.finish_reason, "stop_reason": null,
                        "prompt_logprobs": null}],
                    "usage": self.usage(),
                })
            }
            Kind::Chat => json!({
                "id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model,
                "choices": [{"index": 0,
                    "message": {"role": "assistant", "content": text, "tool_calls": []},
                    "logprobs": null, "finish_reason": self.finish_reason, "stop_reason": null}],
                "usage": self.usage(),
            }),
        };
        serde_json::to_vec(&v).expect("response serialises")
    }

    /// The complete streamed response (used when a fault sends it byte by byte).
    pub fn all_chunks(&self, vocab: &Vocab, gen: &Generator) -> BytesMut {
        let mut b = BytesMut::new();
        for p in 0..self.n_out {
            self.token_chunk(&mut b, vocab, gen, p);
        }
        self.tail(&mut b);
        b
    }
}

/// One token of a `logprobs` object: id, its logprob (`None` for the first prompt token),
/// top alternatives.
type LogprobRow = (u32, Option<f64>, Vec<(u32, f64)>);

/// A legacy completions `logprobs` object for rows of (token, logprob, top alternatives);
/// `offset` is the text offset of the first row.
fn completion_logprobs(vocab: &Vocab, rows: &[LogprobRow], offset: usize) -> Value {
    let mut text_offset = Vec::with_capacity(rows.len());
    let mut token_logprobs = Vec::with_capacity(rows.len());
    let mut tokens = Vec::with_capacity(rows.len());
    let mut top_logprobs = Vec::with_capacity(rows.len());
    let mut off = offset;
    for (t, lp, top) in rows {
        let s = &vocab.text[*t as usize];
        text_offset.push(json!(off));
        off += s.chars().count();
        tokens.push(json!(s));
        match lp {
            None => {
                token_logprobs.push(Value::Null);
                top_logprobs.push(Value::Null);
            }
            Some(lp) => {
                token_logprobs.push(json!(lp));
                let mut m = Map::new();
                m.insert(s.to_string(), json!(lp));
                for (a, alp) in top {
                    m.entry(vocab.text[*a as usize].to_string())
                        .or_insert(json!(alp));
                }
                top_logprobs.push(Value::Object(m));
            }
        }
    }
    json!({"text_offset": text_offset, "token_logprobs": token_logprobs, "tokens": tokens, "top_logprobs": top_logprobs})
}

fn sse(buf: &mut BytesMut, v: &Value) {
    buf.put_slice(b"data: ");
    buf.put_slice(&serde_json::to_vec(v).expect("chunk serialises"));
    buf.put_slice(b"\n\n");
}

/// A JSON string literal.
pub(crate) fn jstr(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// The OpenAI/vLLM error body.
pub(crate) fn error_body(status: u16, message: &str) -> Vec<u8> {
    let ty = match status {
        400 => "BadRequestError",
        404 => "NotFoundError",
        429 => "RateLimitError",
        503 => "ServiceUnavailableError",
        _ => "InternalServerError",
    };
    serde_json::to_vec(
        &json!({"object": "error", "message": message, "type": ty, "param": null, "code": status}),
    )
    .expect("error serialises")
}
