//! The OpenAI-compatible HTTP surface (vLLM's shapes): request parsing, validation with
//! JSON 400s, and wiring each generation request to its timing source and faults.

use super::batch::{self, Job};
use super::body::{Clock, GenBody, Live, RequestFaults};
use super::config::{selected, ExactTiming, SimConfig};
use super::kvcache::{block_hashes, KvModel};
use super::metrics::{Metrics, Static};
use super::model::{prompt_hash, Generator};
use super::pacer::Pacer;
use super::render::{error_body, Kind, Shape};
use super::schedule::Recorder;
use super::tokenizer::{ChatEncoder, Vocab};
use super::Exit;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Request bodies up to this size are parsed (and their prompts tokenized) inline.
const TOKENIZE_INLINE_MAX: usize = 2048;

/// Tokens of chat messages the engine remembers the tokenization of (about 32 MiB of ids):
/// enough for every live conversation of a high-concurrency agentic replay to cost only its
/// newest messages.
const MESSAGE_CACHE_TOKENS: usize = 8 << 20;

/// State shared by every request.
pub(crate) struct Engine {
    pub cfg: SimConfig,
    pub vocab: Arc<Vocab>,
    pub recorder: Arc<Recorder>,
    /// When `/health` turns 200.
    pub ready_at: Instant,
    /// Generation requests seen (their arrival order numbers requests for faults).
    pub requests: AtomicU64,
    /// Where tokens come from.
    pub source: Source,
    /// Set to stop the server.
    pub stop: watch::Sender<Option<Exit>>,
    /// Distinguishes this engine's response ids.
    pub nonce: u64,
    /// Chat conversations to token ids, message by message.
    pub chat: ChatEncoder,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
    /// The fixed part of `/metrics`.
    pub metrics_static: Static,
    /// Whether prompts are cut into cache blocks (the KV cache is modelled), and their size.
    pub block: Option<u32>,
}

/// The engine's timing mode, with what runs it.
pub(crate) enum Source {
    /// Every token on a fixed schedule; the pacer wakes each stream on time. The KV cache is
    /// consulted for `/metrics` only: the schedule does not depend on it.
    Exact {
        timing: ExactTiming,
        pacer: Pacer,
        kv: Box<Mutex<KvModel>>,
    },
    /// The continuous-batching scheduler sends one message per token.
    Batched(mpsc::UnboundedSender<Job>),
}

impl Engine {
    /// Build the engine and start its timing source (the pacer thread, or the batching
    /// scheduler on the current runtime).
    pub fn new(
        cfg: SimConfig,
        vocab: Arc<Vocab>,
        stop: watch::Sender<Option<Exit>>,
    ) -> std::io::Result<Self> {
        let recorder = Arc::new(Recorder::new(cfg.record_schedule));
        let metrics = Arc::new(Metrics::default());
        let kv = KvModel::new(&cfg.kv_cache, metrics.clone());
        let block = kv.caching().then(|| kv.block());
        let source = match &cfg.exact {
            Some(timing) => Source::Exact {
                timing: timing.clone(),
                pacer: Pacer::start()?,
                kv: Box::new(Mutex::new(kv)),
            },
            None => Source::Batched(batch::spawn(cfg.batching.clone(), kv, metrics.clone())),
        };
        let metrics_static = Static {
            flavor: cfg.metrics_flavor,
            model: cfg.model.clone(),
            gpu_tokens: cfg.kv_cache.gpu_tokens,
            cpu_tokens: cfg.kv_cache.offload.as_ref().map(|o| o.cpu_tokens),
        };
        Ok(Engine {
            chat: ChatEncoder::new(vocab.clone(), MESSAGE_CACHE_TOKENS),
            metrics,
            metrics_static,
            block,
            ready_at: Instant::now() + Duration::from_millis(cfg.startup_delay_ms),
            nonce: super::model::mix(cfg.seed ^ recorder.epoch_monotonic_ns),
            cfg,
            vocab,
            recorder,
            requests: AtomicU64::new(0),
            source,
            stop,
        })
    }

    fn ready(&self) -> bool {
        !self.cfg.faults.never_ready && Instant::now() >= self.ready_at
    }
}

/// The router of every endpoint.
pub(crate) fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/tokenize", post(tokenize))
        .route("/metrics", get(metrics))
        .route("/sim/schedule", get(schedule))
        .fallback(|| async { error(404, "no such endpoint") })
        .layer(DefaultBodyLimit::max(256 << 20))
        .with_state(engine)
}

fn error(status: u16, message: &str) -> Response {
    let mut r = Response::new(Body::from(error_body(status, message)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn json_response(v: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&v).expect("serialises"),
    )
        .into_response()
}

async fn health(State(e): State<Arc<Engine>>) -> Response {
    if e.ready() {
        StatusCode::OK.into_response()
    } else {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}

async fn models(State(e): State<Arc<Engine>>) -> Response {
    json_response(json!({"object": "list", "data": [{
        "id": e.cfg.model, "object": "model", "created": unix_now(), "owned_by": "infmax",
        "root": e.cfg.model, "parent": null, "max_model_len": e.cfg.max_model_len,
    }]}))
}

async fn metrics(State(e): State<Arc<Engine>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        e.metrics.render(&e.metrics_static),
    )
        .into_response()
}

async fn schedule(
    State(e): State<Arc<Engine>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let drain = q.get("drain").is_some_and(|v| v == "true" || v == "1");
    json_response(serde_json::to_value(e.recorder.snapshot(drain)).expect("serialises"))
}

/// A prompt as the completions API accepts it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Prompt {
    Text(String),
    Ids(Vec<u32>),
    Texts(Vec<String>),
    IdLists(Vec<Vec<u32>>),
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
    #[serde(default)]
    continuous_usage_stats: bool,
}

#[derive(Deserialize)]
struct CompletionRequest {
    model: Option<String>,
    prompt: Prompt,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    #[serde(default)]
    ignore_eos: bool,
    #[serde(default)]
    echo: bool,
    logprobs: Option<u32>,
    n: Option<u32>,
    best_of: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: Option<Content>,
}

#[derive(Deserialize)]
struct ChatRequest {
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    ignore_eos: bool,
    #[serde(default)]
    logprobs: bool,
    n: Option<u32>,
}

#[derive(Deserialize)]
struct TokenizeRequest {
    model: Option<String>,
    prompt: Option<String>,
    messages: Option<Vec<Message>>,
}

/// An early answer (an error) to a request, boxed to keep `Result`s small.
type Reject = Box<Response>;

/// `stream_options` as vLLM accepts them: only with `stream: true`, and without the
/// per-chunk usage this engine does not send.
fn stream_options(stream: bool, o: Option<StreamOptions>) -> Result<StreamOptions, Reject> {
    if o.is_some() && !stream {
        return Err(reject(
            400,
            "stream_options can only be given with stream: true",
        ));
    }
    let opts = o.unwrap_or_default();
    if opts.continuous_usage_stats {
        return Err(reject(
            400,
            "continuous_usage_stats is not supported by the simulated engine",
        ));
    }
    Ok(opts)
}

fn reject(status: u16, message: &str) -> Reject {
    Box::new(error(status, message))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Reject> {
    serde_json::from_slice(body).map_err(|e| reject(400, &format!("invalid request body: {e}")))
}

fn check_model(e: &Engine, model: &Option<String>) -> Result<(), Reject> {
    match model {
        Some(m) if m != &e.cfg.model => {
            Err(reject(404, &format!("The model `{m}` does not exist.")))
        }
        _ => Ok(()),
    }
}

/// A conversation's token ids (ChatML, assistant turn opened), message by message through
/// the engine's cache.
fn messages_tokens(e: &Engine, messages: &[Message]) -> Result<Vec<u32>, Reject> {
    let mut joined: Vec<Option<String>> = Vec::with_capacity(messages.len());
    for m in messages {
        let content = match &m.content {
            None | Some(Content::Text(_)) => None,
            Some(Content::Parts(parts)) => {
                let mut s = String::new();
                for p in parts {
                    if p.kind != "text" {
                        return Err(reject(
                            400,
                            &format!(
                                "content part type `{}` is not supported by the simulated engine",
                                p.kind
                            ),
                        ));
                    }
                    s.push_str(&p.text);
                }
                Some(s)
            }
        };
        joined.push(content);
    }
    let v: Vec<(&str, &str)> = messages
        .iter()
        .zip(&joined)
        .map(|(m, j)| {
            let c = match (&m.content, j) {
                (_, Some(s)) => s.as_str(),
                (Some(Content::Text(s)), None) => s.as_str(),
                _ => "",
            };
            (m.role.as_str(), c)
        })
        .collect();
    e.chat
        .encode(&v)
        .map_err(|m| reject(400, &format!("cannot tokenize prompt: {m}")))
}

/// What a generation request asks for, once parsed.
struct Ask {
    kind: Kind,
    prompt: Vec<u32>,
    stream: bool,
    include_usage: bool,
    max_tokens: u32,
    ignore_eos: bool,
    echo: bool,
    logprobs: Option<u32>,
}

fn encode(e: &Engine, text: &str) -> Result<Vec<u32>, Reject> {
    e.vocab
        .encode(text)
        .map_err(|m| reject(400, &format!("cannot tokenize prompt: {m}")))
}

fn completion_ask(e: &Engine, body: &[u8]) -> Result<Ask, Reject> {
    let r: CompletionRequest = parse(body)?;
    check_model(e, &r.model)?;
    if r.n.unwrap_or(1) != 1 || r.best_of.unwrap_or(1) != 1 {
        return Err(reject(
            400,
            "n > 1 and best_of > 1 are not supported by the simulated engine",
        ));
    }
    let prompt = match r.prompt {
        Prompt::Text(s) => encode(e, &s)?,
        Prompt::Ids(ids) => ids,
        Prompt::Texts(v) if v.len() == 1 => encode(e, &v[0])?,
        Prompt::IdLists(mut v) if v.len() == 1 => v.remove(0),
        _ => return Err(reject(400, "batched prompts are not supported by the simulated engine: send one prompt per request")),
    };
    if r.stream && r.echo {
        return Err(reject(
            400,
            "echo is not supported with stream by the simulated engine",
        ));
    }
    let opts = stream_options(r.stream, r.stream_options)?;
    let max_tokens = r.max_tokens.unwrap_or(16);
    if max_tokens == 0 && !r.echo {
        return Err(reject(400, "max_tokens must be at least 1, got 0."));
    }
    Ok(Ask {
        kind: Kind::Completion,
        prompt,
        stream: r.stream,
        include_usage: r.stream && opts.include_usage,
        max_tokens,
        ignore_eos: r.ignore_eos,
        echo: r.echo,
        logprobs: r.logprobs,
    })
}

fn chat_ask(e: &Engine, body: &[u8]) -> Result<Ask, Reject> {
    let r: ChatRequest = parse(body)?;
    check_model(e, &r.model)?;
    if r.n.unwrap_or(1) != 1 {
        return Err(reject(
            400,
            "n > 1 is not supported by the simulated engine",
        ));
    }
    if r.logprobs {
        return Err(reject(
            400,
            "logprobs on chat completions are not supported by the simulated engine",
        ));
    }
    if r.messages.is_empty() {
        return Err(reject(400, "messages must not be empty"));
    }
    let prompt = messages_tokens(e, &r.messages)?;
    let opts = stream_options(r.stream, r.stream_options)?;
    let max_tokens = r.max_completion_tokens.or(r.max_tokens).unwrap_or(16);
    if max_tokens == 0 {
        return Err(reject(400, "max_tokens must be at least 1, got 0."));
    }
    Ok(Ask {
        kind: Kind::Chat,
        prompt,
        stream: r.stream,
        include_usage: r.stream && opts.include_usage,
        max_tokens,
        ignore_eos: r.ignore_eos,
        echo: false,
        logprobs: None,
    })
}

/// A parsed, validated request with the hashes its prompt is known by.
struct Prepared {
    ask: Ask,
    /// Chained hashes of the prompt's full cache blocks (empty when the cache is off).
    blocks: Vec<u64>,
    /// The prompt's hash under the engine's seed (the output's generator).
    gen_hash: u64,
    /// The prompt's hash under seed 0 (the schedule record), 0 when not recording.
    record_hash: u64,
}

/// Parse and validate a generation request and hash its prompt: every step whose cost grows
/// with the prompt, so that a long one runs them together off the async threads.
fn prepare(
    e: &Engine,
    body: &[u8],
    ask: fn(&Engine, &[u8]) -> Result<Ask, Reject>,
) -> Result<Prepared, Reject> {
    let a = ask(e, body)?;
    if a.prompt.is_empty() {
        return Err(reject(400, "the prompt must not be empty"));
    }
    let vocab_len = e.vocab.len() as u32;
    if let Some(bad) = a.prompt.iter().find(|&&t| t >= vocab_len) {
        return Err(reject(
            400,
            &format!("token id {bad} is out of vocabulary (size {vocab_len})"),
        ));
    }
    let total = a.prompt.len() as u64 + u64::from(a.max_tokens);
    if total > u64::from(e.cfg.max_model_len) {
        return Err(reject(400, &format!(
            "This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the messages, {} in the completion). Please reduce the length of the messages or completion.",
            e.cfg.max_model_len, total, a.prompt.len(), a.max_tokens
        )));
    }
    Ok(Prepared {
        blocks: e
            .block
            .map_or_else(Vec::new, |b| block_hashes(&a.prompt, b)),
        gen_hash: prompt_hash(e.cfg.seed, &a.prompt),
        record_hash: if e.recorder.enabled {
            prompt_hash(0, &a.prompt)
        } else {
            0
        },
        ask: a,
    })
}

async fn completions(State(e): State<Arc<Engine>>, body: Bytes) -> Response {
    generate(e, body, completion_ask).await
}

async fn chat(State(e): State<Arc<Engine>>, body: Bytes) -> Response {
    generate(e, body, chat_ask).await
}

async fn generate(
    e: Arc<Engine>,
    body: Bytes,
    ask: fn(&Engine, &[u8]) -> Result<Ask, Reject>,
) -> Response {
    let arrival = Instant::now();
    if !e.ready() {
        return error(503, "the engine is not ready yet");
    }
    let n = e.requests.fetch_add(1, Ordering::Relaxed);
    let f = &e.cfg.faults;
    if f.exit_after_requests.is_some_and(|limit| n >= limit) {
        let _ = e.stop.send(Some(Exit::Crashed(format!(
            "fault injection: exit after {} requests",
            n
        ))));
        // The connection is dropped with the server; never answer.
        std::future::pending::<()>().await;
    }
    if let Some(fail) = f.fail.as_ref().filter(|x| selected(x.rate, n)) {
        let mut r = error(fail.status, "fault injection: request failed");
        if fail.status == 429 {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return r;
    }
    // Tokenizing a long text prompt takes milliseconds (BPE on unusual words), hashing a
    // long one's blocks a fraction of one; keep both off the thread that sends tokens on
    // schedule. The schedule counts from `arrival`.
    let parsed = if body.len() > TOKENIZE_INLINE_MAX {
        let e2 = e.clone();
        match tokio::task::spawn_blocking(move || prepare(&e2, &body, ask)).await {
            Ok(r) => r,
            Err(_) => return error(500, "request parsing failed"),
        }
    } else {
        prepare(&e, &body, ask)
    };
    let Prepared {
        ask: mut a,
        blocks,
        gen_hash,
        record_hash,
    } = match parsed {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let prompt_len = a.prompt.len() as u32;
    let gen = Generator::new(e.vocab.clone(), gen_hash);
    let (n_out, stopped) = gen.output_len(a.max_tokens, a.ignore_eos, e.cfg.mean_output_tokens);
    let mut live = None;
    let clock = match &e.source {
        Source::Exact { timing, pacer, kv } => {
            {
                let mut kv = kv.lock().expect("kv lock");
                kv.admit(&blocks, prompt_len);
                kv.prefilled(&blocks);
            }
            live = Some(Live::new(
                e.metrics.clone(),
                u64::from(prompt_len) + u64::from(n_out),
            ));
            Clock::Exact {
                first: arrival + Duration::from_secs_f64(timing.ttft_ms / 1000.0),
                itl: Duration::from_secs_f64(timing.itl_ms / 1000.0),
                pacer: pacer.clone(),
                armed: None,
            }
        }
        Source::Batched(b) => {
            let (tx, rx) = mpsc::unbounded_channel();
            if n_out > 0 {
                let job = Job {
                    prompt_len,
                    blocks,
                    n_out,
                    tx,
                };
                if b.send(job).is_err() {
                    return error(503, "the engine is shutting down");
                }
            }
            Clock::Batched(rx)
        }
    };
    let faults = RequestFaults {
        cut_after: f
            .cut
            .as_ref()
            .filter(|x| selected(x.rate, n))
            .map(|x| x.after_tokens),
        stall_after: f
            .stall
            .as_ref()
            .filter(|x| selected(x.rate, n))
            .map(|x| (x.after_tokens, x.for_ms.map(Duration::from_millis))),
        slow_loris: f
            .slow_loris
            .as_ref()
            .filter(|x| selected(x.rate, n))
            .map(|x| Duration::from_millis(x.byte_interval_ms)),
    };
    let prefix = match a.kind {
        Kind::Completion => "cmpl",
        Kind::Chat => "chatcmpl",
    };
    let mut shape = Shape {
        kind: a.kind,
        id: format!("{prefix}-{:016x}{n:016x}", e.nonce),
        created: unix_now(),
        model: e.cfg.model.clone(),
        // Only the completions API's echo and logprobs read the prompt back; a chat
        // request's (possibly huge) prompt is not kept for the whole response.
        prompt: match a.kind {
            Kind::Completion => std::mem::take(&mut a.prompt),
            Kind::Chat => Vec::new(),
        },
        prompt_len,
        n_out,
        finish_reason: if stopped { "stop" } else { "length" },
        include_usage: a.include_usage,
        logprobs: a.logprobs,
        echo: a.echo,
        seed: e.cfg.seed,
        chunk_prefix: Vec::new(),
    };
    shape.prepare();
    let stream = a.stream;
    let body = GenBody::new(
        shape,
        e.vocab.clone(),
        gen,
        stream,
        clock,
        faults,
        e.recorder.clone(),
        n,
        arrival,
        record_hash,
        e.metrics.clone(),
        stopped,
        live,
    );
    let ct = if stream {
        "text/event-stream; charset=utf-8"
    } else {
        "application/json"
    };
    let mut r = Response::new(Body::new(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

async fn tokenize(State(e): State<Arc<Engine>>, body: Bytes) -> Response {
    let r: TokenizeRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    if let Err(r) = check_model(&e, &r.model) {
        return *r;
    }
    let text = match (r.prompt, r.messages) {
        (Some(p), None) => p,
        (None, Some(m)) => match messages_tokens(&e, &m) {
            Ok(t) => return tokens_response(&e, t),
            Err(r) => return *r,
        },
        _ => return error(400, "give exactly one of `prompt` and `messages`"),
    };
    match encode(&e, &text) {
        Ok(tokens) => tokens_response(&e, tokens),
        Err(r) => *r,
    }
}

fn tokens_response(e: &Engine, tokens: Vec<u32>) -> Response {
    json_response(json!({
        "count": tokens.len(), "max_model_len": e.cfg.max_model_len,
        "tokens": tokens, "token_strs": null,
    }))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
