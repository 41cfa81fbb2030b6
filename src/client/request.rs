//! One streamed request: the body the reference sends, and the timing of what comes back.
//!
//! Bodies are serialised before the run starts; during the run a request costs one POST and,
//! per arriving network chunk, one clock read and a borrowed parse of its lines. Times are
//! taken on a monotonic clock when a chunk arrives, not after it is parsed.

use super::http1::{self, Endpoint};
use super::sse::{parse_line, Event, LineSplitter};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Request API, by the reference's `--backend` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// POST /v1/completions (also `openai`, `sglang`, `lmdeploy`, `scalellm` in the reference).
    Vllm,
    Openai,
    Sglang,
    Lmdeploy,
    Scalellm,
    /// POST /v1/chat/completions.
    #[value(name = "openai-chat")]
    OpenaiChat,
}

impl Backend {
    /// The reference's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Vllm => "vllm",
            Backend::Openai => "openai",
            Backend::Sglang => "sglang",
            Backend::Lmdeploy => "lmdeploy",
            Backend::Scalellm => "scalellm",
            Backend::OpenaiChat => "openai-chat",
        }
    }

    /// Whether it speaks /v1/chat/completions.
    pub fn is_chat(self) -> bool {
        self == Backend::OpenaiChat
    }

    /// Default `--endpoint`.
    pub fn default_endpoint(self) -> &'static str {
        if self.is_chat() {
            "/v1/chat/completions"
        } else {
            "/v1/completions"
        }
    }
}

/// Everything that shapes request bodies.
#[derive(Debug, Clone)]
pub struct BodyOptions {
    pub backend: Backend,
    /// `model` field (`--served-model-name`, else `--model`).
    pub model: String,
    pub best_of: u32,
    /// `logprobs` (null unless `--logprobs`).
    pub logprobs: Option<u32>,
    pub ignore_eos: bool,
}

/// The JSON body the reference sends for one prompt.
pub fn body(o: &BodyOptions, prompt: &str, max_tokens: u32) -> Bytes {
    let mut v = if o.backend.is_chat() {
        serde_json::json!({
            "model": o.model,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
            "temperature": 0.0,
            "max_completion_tokens": max_tokens,
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    } else {
        serde_json::json!({
            "model": o.model,
            "prompt": prompt,
            "temperature": 0.0,
            "best_of": o.best_of,
            "max_tokens": max_tokens,
            "logprobs": o.logprobs,
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    };
    if o.ignore_eos {
        v["ignore_eos"] = serde_json::Value::Bool(true);
    }
    Bytes::from(serde_json::to_vec(&v).expect("body serialises"))
}

/// What happened to one request (the reference's `RequestFuncOutput`, plus queue time).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub success: bool,
    /// Seconds from send to the first token event.
    pub ttft: f64,
    /// Seconds between consecutive token events.
    pub itl: Vec<f64>,
    /// Seconds from send to the last token event (chat: the last data chunk, as the
    /// reference measures it).
    pub latency: f64,
    /// `usage.completion_tokens`, when the engine reported it.
    pub output_tokens: Option<u64>,
    /// Concatenated text of all token events.
    pub generated_text: String,
    /// Client-side prompt length.
    pub prompt_len: u32,
    /// Why it failed (empty on success), at most [`MAX_ERROR_LEN`] bytes.
    pub error: String,
    /// Seconds from the request's release time on the schedule to its concurrency slot (not
    /// part of TTFT).
    pub queue: f64,
    /// When it took its concurrency slot: the load driver hands slots out in request order,
    /// so these rise with the request index.
    pub dispatched: Option<Instant>,
    /// When the request was sent (TTFT counts from here): puts its token times on the
    /// monotonic clock, so the self-test can pair them with an engine's send times.
    pub sent: Option<Instant>,
    /// When the response head arrived (AIPerf's `request_ack_ns`).
    pub ack: Option<Instant>,
    /// When the response body ended (AIPerf's `request_end_ns`; the full-response ITL
    /// counts to here, not to the last content chunk).
    pub end: Option<Instant>,
    /// `usage.prompt_tokens`, when the engine reported it (the agentic workload's ISL).
    pub prompt_tokens: Option<u64>,
}

/// Longest error string kept per request.
pub const MAX_ERROR_LEN: usize = 1000;

/// Limits that turn a hung engine into a failed request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Whole request, send to last byte (the reference: 6 h).
    pub total: Duration,
    /// No bytes at all for this long.
    pub stall: Duration,
}

/// Redact configured secrets (an engine may echo the API key) before cutting, so a cut never
/// leaves part of one behind.
fn truncate(s: String) -> String {
    let mut s = crate::secrets::redact(&s).into_owned();
    if s.len() > MAX_ERROR_LEN {
        let mut cut = MAX_ERROR_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Where and how requests are sent.
#[derive(Clone)]
pub struct Target {
    /// Full endpoint URL (base URL with its path prefix, then the endpoint).
    pub url: String,
    /// `OPENAI_API_KEY`, sent as a bearer token when set.
    pub api_key: Option<String>,
    /// Chat streams time latency to the last data chunk, as the reference does.
    pub chat: bool,
    pub timeouts: Timeouts,
    /// The client's own transport for `http://` URLs (parsed once, resolved once); `None`
    /// sends through reqwest (`https://`).
    pub endpoint: Option<Arc<Endpoint>>,
}

/// Never shows the API key.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("chat", &self.chat)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// A target for `url`; `http://` URLs get the client's own transport.
    pub fn new(url: String, api_key: Option<String>, chat: bool, timeouts: Timeouts) -> Self {
        let endpoint = Endpoint::parse(&url, api_key.as_deref()).map(Arc::new);
        Target {
            url,
            api_key,
            chat,
            timeouts,
            endpoint,
        }
    }
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Serialised JSON body.
    pub body: Bytes,
    pub prompt_len: u32,
    pub output_len: u32,
}

/// Send one request and time its stream.
pub async fn send(client: &reqwest::Client, target: &Target, r: &Prepared) -> Outcome {
    send_with(
        client,
        target,
        r.body.clone(),
        &[],
        r.prompt_len,
        r.output_len,
    )
    .await
}

/// Send a body with extra request headers (the agentic workload's `X-Correlation-ID`) and
/// time its stream: the transport and timing every workload shares.
pub async fn send_with(
    client: &reqwest::Client,
    target: &Target,
    body: Bytes,
    headers: &[(&str, &str)],
    prompt_len: u32,
    output_len: u32,
) -> Outcome {
    let mut out = Outcome {
        prompt_len,
        itl: Vec::with_capacity(output_len as usize),
        ..Outcome::default()
    };
    let t = target.timeouts;
    let st = Instant::now();
    out.sent = Some(st);
    let deadline = tokio::time::Instant::from_std(st + t.total);
    match tokio::time::timeout_at(
        deadline,
        stream(client, target, body, headers, st, &mut out),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            out.success = false;
            out.error = truncate(e);
        }
        Err(_) => {
            out.success = false;
            out.error = format!("request timed out after {:.0} s", t.total.as_secs_f64());
        }
    }
    out
}

/// The response body, on either transport.
enum Wire {
    Own(http1::Response),
    Reqwest {
        resp: reqwest::Response,
        /// The chunk the last `next` returned, until drained.
        chunk: Option<Bytes>,
    },
}

impl Wire {
    /// Wait for the next bytes (cancel-safe); `Ok(false)` once the body has ended.
    async fn next(&mut self) -> Result<bool, String> {
        match self {
            Wire::Own(r) => {
                // Bytes read with the head (or not yet drained) come first.
                if r.has_buffered() {
                    return Ok(true);
                }
                if r.is_done() {
                    return Ok(false);
                }
                r.fill().await.map_err(|e| e.to_string())
            }
            Wire::Reqwest { resp, chunk } => match resp.chunk().await {
                Ok(c) => {
                    *chunk = c;
                    Ok(chunk.is_some())
                }
                Err(e) => Err(error_chain(&e)),
            },
        }
    }

    /// Hand what `next` brought to `f`, decoded.
    fn drain(&mut self, mut f: impl FnMut(&[u8])) -> Result<(), String> {
        match self {
            Wire::Own(r) => r.drain(f).map_err(|e| e.to_string()),
            Wire::Reqwest { chunk, .. } => {
                if let Some(c) = chunk.take() {
                    f(&c);
                }
                Ok(())
            }
        }
    }
}

/// Send the POST and wait for the response head.
async fn open(
    client: &reqwest::Client,
    target: &Target,
    body: Bytes,
    headers: &[(&str, &str)],
) -> Result<(u16, Wire), String> {
    if let Some(ep) = &target.endpoint {
        let r = ep
            .post_with(headers, &body)
            .await
            .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
        return Ok((r.status, Wire::Own(r)));
    }
    let mut req = client
        .post(&target.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(k) = &target.api_key {
        req = req.bearer_auth(k);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    // reqwest (`https://`) gives no hook after the write: on the ordered multi-threaded loop
    // the next request starts as this one is handed over, so over TLS only the hand-over
    // order is kept, not the write order.
    super::driver::request_written();
    let resp = req
        .send()
        .await
        .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
    Ok((resp.status().as_u16(), Wire::Reqwest { resp, chunk: None }))
}

/// Up to this much of an error response's body is kept for the message.
const ERROR_BODY_MAX: usize = 16 << 10;

/// The timing of one stream, fed line by line with each network read's arrival time.
struct Timing<'o> {
    out: &'o mut Outcome,
    st: Instant,
    first: bool,
    last_token: Instant,
    /// The last data chunk of any kind (chat latency ends there).
    last_any: Instant,
    done: bool,
    failure: Option<String>,
}

impl Timing<'_> {
    fn tokens(&self) -> usize {
        self.out.itl.len() + usize::from(!self.first)
    }

    fn line(&mut self, now: Instant, line: &[u8]) {
        let ev = parse_line(line);
        if !matches!(ev, Event::Ignore | Event::Done) {
            self.last_any = now;
        }
        match ev {
            Event::Token { text, usage } => {
                if usage.is_some() {
                    self.out.prompt_tokens = super::sse::prompt_tokens(line);
                }
                if self.first {
                    self.first = false;
                    self.out.ttft = (now - self.st).as_secs_f64();
                } else {
                    self.out.itl.push((now - self.last_token).as_secs_f64());
                }
                self.last_token = now;
                self.out.generated_text.push_str(&text);
                if usage.is_some() {
                    self.out.output_tokens = usage;
                }
            }
            Event::Usage(u) => {
                self.out.output_tokens = Some(u);
                self.out.prompt_tokens = super::sse::prompt_tokens(line);
            }
            Event::Done => self.done = true,
            Event::Error(e) => self.failure = Some(format!("engine error in stream: {e}")),
            Event::Malformed(e) => self.failure = Some(format!("malformed stream chunk: {e}")),
            Event::Ignore => {}
        }
    }
}

async fn stream(
    client: &reqwest::Client,
    target: &Target,
    body: Bytes,
    headers: &[(&str, &str)],
    st: Instant,
    out: &mut Outcome,
) -> Result<(), String> {
    let (t, chat) = (target.timeouts, target.chat);
    let (status, mut wire) = tokio::time::timeout(t.stall, open(client, target, body, headers))
        .await
        .map_err(|_| format!("no response headers within {:.0} s", t.stall.as_secs_f64()))??;
    out.ack = Some(Instant::now());
    if status != 200 {
        let mut text = Vec::new();
        let _ = tokio::time::timeout(t.stall, async {
            while text.len() < ERROR_BODY_MAX && wire.next().await.unwrap_or(false) {
                let _ = wire.drain(|b| text.extend_from_slice(b));
            }
        })
        .await;
        let reason = reqwest::StatusCode::from_u16(status)
            .map(|s| s.to_string())
            .unwrap_or_else(|_| status.to_string());
        return Err(format!(
            "HTTP {reason}: {}",
            String::from_utf8_lossy(&text).trim()
        ));
    }
    let mut lines = LineSplitter::default();
    let mut tm = Timing {
        out,
        st,
        first: true,
        last_token: st,
        last_any: st,
        done: false,
        failure: None,
    };
    // One timer for stall detection, moved only when it fires: re-arming a timer per chunk
    // would cost a timer-wheel insert and removal per token.
    let stall = tokio::time::sleep(t.stall);
    tokio::pin!(stall);
    let mut last_data = st;
    loop {
        let more = tokio::select! {
            biased;
            r = wire.next() => r,
            () = &mut stall => {
                let quiet = last_data.elapsed();
                if quiet >= t.stall {
                    return Err(format!(
                        "stream stalled: no data for {:.0} s after {} tokens",
                        t.stall.as_secs_f64(),
                        tm.tokens()
                    ));
                }
                stall.as_mut().reset((last_data + t.stall).into());
                continue;
            }
        };
        let more = more.map_err(|e| format!("stream broken after {} tokens: {e}", tm.tokens()))?;
        // The arrival time of everything this read returned.
        let now = Instant::now();
        last_data = now;
        wire.drain(|bytes| lines.feed(bytes, |line| tm.line(now, line)))
            .map_err(|e| format!("stream broken after {} tokens: {e}", tm.tokens()))?;
        if let Some(f) = tm.failure.take() {
            return Err(f);
        }
        if !more {
            break;
        }
    }
    if let Some(rest) = lines.finish() {
        if parse_line(&rest) == Event::Done {
            tm.done = true;
        }
    }
    if tm.first {
        return Err("Never received a valid chunk to calculate TTFT. This response will be marked as failed!".into());
    }
    if !tm.done {
        return Err(format!(
            "stream ended without [DONE] after {} tokens",
            tm.tokens()
        ));
    }
    let end = if chat { tm.last_any } else { tm.last_token };
    out.latency = (end - st).as_secs_f64();
    out.end = Some(last_data);
    out.success = true;
    Ok(())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}
