//! The engine side of an evaluation: the same requests lm-eval's `local-completions` and
//! `local-chat-completions` models send, run with bounded concurrency, retries with backoff,
//! per-request timeouts and progress lines on stderr.
//!
//! Loglikelihoods come from `echo` + `logprobs` on `/v1/completions`; an engine that
//! ignores `echo` (llama.cpp's `llama-server`) returns logprobs for the generated token only,
//! which would silently score as a perfect model, and one whose echoed entries do not line up
//! with the prompt's tokens (llama-cpp-python's server drops the BOS entry) would shift every
//! logprob onto the wrong token — both are detected and refused.
//!
//! Prompts go as token ids (lm-eval's `tokenized_requests=True`). Some engines refuse ids
//! (llama-cpp-python's server answers HTTP 500), so the first request of an evaluation is a
//! probe: sent once as ids, and if the engine refuses it (an HTTP error that is not one of the
//! transient 408/429/502/503/504), once more as text. Whichever form the engine took is used
//! for every later request — text as lm-eval's `tokenized_requests=False` sends it: the
//! decoded window for loglikelihoods, the whole untruncated context for generations. A refusal
//! is never retried as if it were a transient error.

use super::AccuracyError;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How requests are sent.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Server root, e.g. `http://127.0.0.1:8000`.
    pub base_url: String,
    /// `model` of every request (the served model name).
    pub model: String,
    /// Requests in flight at once (lm-eval's `num_concurrent`).
    pub num_concurrent: usize,
    /// Retries of a request after a connection error, timeout, 429 or 5xx.
    pub max_retries: u32,
    /// First retry delay; doubles per retry, capped at 30 s.
    pub backoff: Duration,
    /// Time limit of one request.
    pub timeout: Duration,
    /// `seed` sent with every request (lm-eval's default 1234).
    pub seed: u64,
    /// Bearer token, when the engine wants one.
    pub api_key: Option<String>,
    /// Print progress lines on stderr.
    pub progress: bool,
}

impl EngineOptions {
    /// lm-eval's defaults against `base_url`.
    pub fn new(base_url: &str, model: &str) -> Self {
        EngineOptions {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            num_concurrent: 1,
            max_retries: 3,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(300),
            seed: 1234,
            api_key: None,
            progress: true,
        }
    }
}

/// The path of every prompt-form-negotiated request.
const COMPLETIONS: &str = "/v1/completions";

/// An OpenAI-compatible engine as an evaluation target.
pub struct Engine {
    /// Settings.
    pub opts: EngineOptions,
    /// Shared HTTP client.
    http: reqwest::Client,
    /// How `/v1/completions` prompts are sent, settled by the first request (the probe).
    form: OnceLock<PromptForm>,
    /// Held by the one request that probes, so that the others wait for its answer instead
    /// of probing (and being refused) too.
    probe: tokio::sync::Mutex<()>,
}

/// How an engine takes `/v1/completions` prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptForm {
    /// Token ids (lm-eval's `tokenized_requests=True`, its default).
    Ids,
    /// Text (lm-eval's `tokenized_requests=False`), for engines that refuse ids.
    Text,
}

impl PromptForm {
    fn name(self) -> &'static str {
        match self {
            PromptForm::Ids => "token ids",
            PromptForm::Text => "text",
        }
    }
}

/// One failed attempt.
struct Attempt {
    /// Whether trying the same request again may help (connection errors, timeouts, 429, 5xx).
    retry: bool,
    /// The HTTP status, when the engine answered: a refusal of the prompt's form is told
    /// from a transient failure by it.
    status: Option<u16>,
    /// What went wrong, for the error message.
    message: String,
}

impl Attempt {
    /// Whether the engine answered the request with an error that says something about the
    /// request rather than the engine's state: every 4xx and 5xx except 408, 429, 502, 503
    /// and 504 (llama-cpp-python's server answers a token-id prompt with 500).
    fn refused(&self) -> bool {
        self.status
            .is_some_and(|s| (400..600).contains(&s) && ![408, 429, 502, 503, 504].contains(&s))
    }
}

/// The first model `GET /v1/models` lists (what lm-eval users pass as `model=`).
pub async fn served_model(base_url: &str) -> Result<String, AccuracyError> {
    let url = format!("{}/v1/models", base_url.trim_end_matches('/'));
    let err = |m: String| AccuracyError::Engine {
        url: url.clone(),
        message: m,
    };
    const NOT_OPENAI: &str = "runner eval needs an OpenAI-compatible server (vLLM, SGLang, llama.cpp's llama-server…) answering GET /v1/models and POST /v1/completions; check --base-url, or pass --model to skip the model lookup";
    let resp = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| err(format!("cannot reach the server: {}", reqwest_cause(&e))))?;
    let status = resp.status();
    let kind = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type")
        .to_string();
    let body = resp
        .bytes()
        .await
        .map_err(|e| err(format!("the answer broke off: {}", reqwest_cause(&e))))?;
    let excerpt = || one_line(&String::from_utf8_lossy(&body), 160);
    if !status.is_success() {
        return Err(err(format!(
            "got HTTP {status} ({kind}): {:?}; {NOT_OPENAI}",
            excerpt()
        )));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|_| {
        err(format!(
            "got HTTP {status} with {kind} that is not JSON: {:?}; {NOT_OPENAI}",
            excerpt()
        ))
    })?;
    v["data"][0]["id"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| {
            err(format!(
            "got JSON without a model, expected {{\"data\": [{{\"id\": …}}]}}: {:?}; {NOT_OPENAI}",
            excerpt()
        ))
        })
}

/// `text` with whitespace runs folded to one space (an HTML error page on one line), cut
/// at `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let t = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match t.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t,
    }
}

/// A reqwest error with its causes ("error sending request" alone does not say that the
/// connection was refused).
fn reqwest_cause(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        let t = c.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = c.source();
    }
    out
}

impl Engine {
    /// A client for `opts`.
    pub fn new(opts: EngineOptions) -> Self {
        Engine {
            opts,
            http: reqwest::Client::new(),
            form: OnceLock::new(),
            probe: tokio::sync::Mutex::new(()),
        }
    }

    async fn post_once(&self, path: &str, body: &Value) -> Result<Value, Attempt> {
        let url = format!("{}{path}", self.opts.base_url);
        let mut rq = self.http.post(&url).timeout(self.opts.timeout).json(body);
        if let Some(k) = &self.opts.api_key {
            rq = rq.bearer_auth(k);
        }
        let resp = rq.send().await.map_err(|e| Attempt {
            retry: true,
            status: None,
            message: if e.is_timeout() {
                format!("no answer within {:?}", self.opts.timeout)
            } else {
                reqwest_cause(&e)
            },
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| Attempt {
            retry: true,
            status: None,
            message: format!("reading the answer: {e}"),
        })?;
        if !status.is_success() {
            // 404/405/501: nothing serves this path; the server is not OpenAI-compatible.
            let hint = if matches!(status.as_u16(), 404 | 405 | 501) {
                format!("; the server has no {path}: runner eval needs an OpenAI-compatible server (vLLM, SGLang, llama.cpp's llama-server…); check --base-url")
            } else {
                String::new()
            };
            return Err(Attempt {
                // 501 Not Implemented will not change by asking again.
                retry: status.as_u16() == 429
                    || (status.is_server_error() && status.as_u16() != 501),
                status: Some(status.as_u16()),
                message: format!("HTTP {status}: {}{hint}", one_line(&text, 300)),
            });
        }
        // serde_json's `float_roundtrip` feature (Cargo.toml) makes this parse every number
        // exactly, as Python's json module does; the default fast path is off by one ulp for
        // about a quarter of the logprobs engines print.
        serde_json::from_str(&text).map_err(|e| Attempt {
            retry: false,
            status: None,
            message: format!("answer is not JSON ({e}): {}", &text[..text.len().min(200)]),
        })
    }

    /// POST with retries; the error names the URL.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, AccuracyError> {
        match self.post_once(path, body).await {
            Ok(v) => Ok(v),
            Err(a) => self.retry(path, body, a).await,
        }
    }

    /// Retry a request whose first attempt failed with `first`, with doubling backoff while
    /// the failure may be transient; the error names the URL.
    async fn retry(
        &self,
        path: &str,
        body: &Value,
        first: Attempt,
    ) -> Result<Value, AccuracyError> {
        let mut delay = self.opts.backoff;
        let mut attempt = 0;
        let mut last = first;
        loop {
            if !last.retry || attempt >= self.opts.max_retries {
                return Err(AccuracyError::Engine {
                    url: format!("{}{path}", self.opts.base_url),
                    message: if attempt > 0 {
                        format!("{} (after {attempt} retries)", last.message)
                    } else {
                        last.message
                    },
                });
            }
            tracing::warn!(
                "{path}: {} — retry {} of {} in {:?}",
                last.message,
                attempt + 1,
                self.opts.max_retries,
                delay
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
            attempt += 1;
            match self.post_once(path, body).await {
                Ok(v) => return Ok(v),
                Err(a) => last = a,
            }
        }
    }

    /// POST a `/v1/completions` request in a settled prompt form.
    async fn complete_as(
        &self,
        form: PromptForm,
        body: &impl Fn(Value) -> Value,
        ids: &[u32],
        text: impl FnOnce() -> Result<String, AccuracyError>,
    ) -> Result<(Value, PromptForm), AccuracyError> {
        let b = match form {
            PromptForm::Ids => body(json!(ids)),
            PromptForm::Text => body(json!(text()?)),
        };
        Ok((self.post(COMPLETIONS, &b).await?, form))
    }

    /// POST a `/v1/completions` request whose prompt is `ids`, or `text()` when the engine
    /// takes text only; `body` builds the request around the prompt. The first call probes
    /// (see the module documentation); the others wait for it and then use its answer.
    async fn complete(
        &self,
        body: impl Fn(Value) -> Value,
        ids: &[u32],
        text: impl FnOnce() -> Result<String, AccuracyError>,
    ) -> Result<(Value, PromptForm), AccuracyError> {
        if let Some(&f) = self.form.get() {
            return self.complete_as(f, &body, ids, text).await;
        }
        let _probing = self.probe.lock().await;
        if let Some(&f) = self.form.get() {
            return self.complete_as(f, &body, ids, text).await;
        }
        let ids_body = body(json!(ids));
        let refusal = match self.post_once(COMPLETIONS, &ids_body).await {
            Ok(v) => {
                let _ = self.form.set(PromptForm::Ids);
                return Ok((v, PromptForm::Ids));
            }
            Err(a) if a.refused() => a,
            Err(a) => {
                // Transient: the probe is retried as any request is.
                let v = self.retry(COMPLETIONS, &ids_body, a).await?;
                let _ = self.form.set(PromptForm::Ids);
                return Ok((v, PromptForm::Ids));
            }
        };
        match self.post(COMPLETIONS, &body(json!(text()?))).await {
            Ok(v) => {
                tracing::warn!(
                    "{}{COMPLETIONS} refused a token-id prompt ({}); sending text prompts, as lm-eval's tokenized_requests=False does",
                    self.opts.base_url,
                    refusal.message
                );
                let _ = self.form.set(PromptForm::Text);
                Ok((v, PromptForm::Text))
            }
            // The same answer twice is said once.
            Err(AccuracyError::Engine { url, message }) if message.contains(&refusal.message) => {
                Err(AccuracyError::Engine {
                    url,
                    message: format!(
                        "the token-id prompt and the same prompt as text were both refused: {message}"
                    ),
                })
            }
            Err(AccuracyError::Engine { url, message }) => Err(AccuracyError::Engine {
                url,
                message: format!(
                    "the token-id prompt was refused ({}) and the same prompt as text failed too: {message}",
                    refusal.message
                ),
            }),
            Err(e) => Err(e),
        }
    }

    /// Loglikelihood of `tokens[ctxlen..]` given `tokens[..ctxlen]`, as lm-eval's
    /// `local-completions` computes it: `Σ token_logprobs[ctxlen:-1]` of an echoed prompt
    /// with one generated token. `text` is the decoded prompt, sent when the engine does not
    /// take token ids.
    pub async fn loglikelihood(
        &self,
        tokens: &[u32],
        ctxlen: usize,
        text: impl FnOnce() -> Result<String, AccuracyError>,
    ) -> Result<f64, AccuracyError> {
        let body = |prompt: Value| {
            json!({"model": self.opts.model, "prompt": prompt, "temperature": 0, "max_tokens": 1,
                   "logprobs": 1, "seed": self.opts.seed, "echo": true})
        };
        let (v, form) = self.complete(body, tokens, text).await?;
        let lp = &v["choices"][0]["logprobs"];
        let Some(lps) = lp["token_logprobs"].as_array() else {
            // llama-server answers in the chat-style `content` form, generated token only.
            if let Some(c) = lp["content"]
                .as_array()
                .filter(|c| c.len() != tokens.len() + 1)
            {
                return Err(self.echo_mismatch(c.len(), tokens.len(), form));
            }
            return Err(AccuracyError::Protocol {
                url: self.opts.base_url.clone(),
                message: format!(
                    "the answer has no choices[0].logprobs.token_logprobs: {}",
                    excerpt(&v)
                ),
            });
        };
        if lps.len() != tokens.len() + 1 {
            return Err(self.echo_mismatch(lps.len(), tokens.len(), form));
        }
        let mut ll = 0.0;
        for (i, x) in lps[ctxlen..lps.len() - 1].iter().enumerate() {
            ll += x.as_f64().ok_or_else(|| AccuracyError::Protocol {
                url: self.opts.base_url.clone(),
                message: format!("token_logprobs[{}] is not a number: {x}", ctxlen + i),
            })?;
        }
        Ok(ll)
    }

    /// The error for an echo answer with `got` logprobs for a prompt of `prompt` tokens: one
    /// entry means `echo` was ignored, any other count entries that do not line up.
    fn echo_mismatch(&self, got: usize, prompt: usize, form: PromptForm) -> AccuracyError {
        let url = self.opts.base_url.clone();
        if got <= 1 {
            AccuracyError::EchoUnsupported { url, got, prompt }
        } else {
            AccuracyError::EchoMisaligned {
                url,
                got,
                prompt,
                form: form.name(),
            }
        }
    }

    /// Greedy generation until a stop sequence: on `/v1/completions` with the prompt's
    /// token ids (or its whole text when the engine refuses ids), or on
    /// `/v1/chat/completions` with the prompt's messages.
    pub async fn generate(
        &self,
        prompt: GenPrompt,
        stop: &[String],
        max_tokens: u32,
    ) -> Result<String, AccuracyError> {
        // Bodies as lm-eval builds them, key order included; `temperature` is gsm8k.yaml's
        // `0.0`, a float (loglikelihood requests send the integer 0).
        let (path, v) = match prompt {
            GenPrompt::Completion { ids, text } => {
                let body = |prompt: Value| {
                    json!({"prompt": prompt, "model": self.opts.model, "max_tokens": max_tokens,
                           "temperature": 0.0, "stop": stop, "seed": self.opts.seed})
                };
                let (v, _) = self.complete(body, &ids, || Ok(text)).await?;
                (COMPLETIONS, v)
            }
            GenPrompt::Chat(messages) => {
                const CHAT: &str = "/v1/chat/completions";
                let body = json!({"messages": messages, "model": self.opts.model,
                       "max_tokens": max_tokens, "temperature": 0.0, "stop": stop,
                       "seed": self.opts.seed});
                (CHAT, self.post(CHAT, &body).await?)
            }
        };
        let c = &v["choices"][0];
        c["text"]
            .as_str()
            .or_else(|| c["message"]["content"].as_str())
            .map(String::from)
            .ok_or_else(|| AccuracyError::Protocol {
                url: format!("{}{path}", self.opts.base_url),
                message: format!("the answer has no generated text: {}", excerpt(&v)),
            })
    }
}

/// One chat message, as `/v1/chat/completions` takes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChatMessage {
    /// `user` or `assistant` (lm-eval's few-shot turns).
    pub role: &'static str,
    /// The message text.
    pub content: String,
}

/// The prompt of a generation request.
#[derive(Debug, Clone)]
pub enum GenPrompt {
    /// `/v1/completions`: the (left-truncated) token ids, sent when the engine takes ids
    /// (lm-eval's `tokenized_requests=True`), and the whole context as text, sent when it
    /// does not (`tokenized_requests=False`, which never truncates).
    Completion {
        /// The context's token ids, left-truncated to leave room for the generation.
        ids: Vec<u32>,
        /// The context as text.
        text: String,
    },
    /// `/v1/chat/completions` with these messages (`local-chat-completions` with
    /// `--apply_chat_template`; the engine applies its chat template).
    Chat(Vec<ChatMessage>),
}

fn excerpt(v: &Value) -> String {
    let mut s = v.to_string();
    s.truncate(300);
    s
}

/// Run `f` over `items` with at most `n` in flight; results in item order. The first error
/// stops the rest. With `label`, its progress goes to stderr ([`crate::progress`]) and one closing line.
pub async fn run_all<I, T, F, Fut>(
    items: Vec<I>,
    n: usize,
    label: Option<&str>,
    f: F,
) -> Result<Vec<T>, AccuracyError>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, AccuracyError>> + Send + 'static,
{
    let total = items.len();
    let f = Arc::new(f);
    let sem = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let _ticker = label.map(|l| {
        let (done, failed) = (done.clone(), failed.clone());
        crate::progress::Ticker::start(format!("accuracy: {l}"), move || crate::progress::Status {
            done: Some(done.load(Ordering::Relaxed) as u64),
            total: Some(total as u64),
            failed: Some(failed.load(Ordering::Relaxed) as u64),
            ..crate::progress::Status::default()
        })
    });
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let (f, sem, done, failed) = (f.clone(), sem.clone(), done.clone(), failed.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let r = f(item).await;
            if r.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            done.fetch_add(1, Ordering::Relaxed);
            (i, r)
        });
    }
    let mut out: Vec<Option<T>> = (0..total).map(|_| None).collect();
    while let Some(j) = set.join_next().await {
        let (i, r) = j.map_err(|e| AccuracyError::Engine {
            url: String::new(),
            message: format!("request task failed: {e}"),
        })?;
        out[i] = Some(r?);
    }
    if let Some(l) = label {
        crate::errln!(
            "accuracy: {l}: {total}/{total} requests ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(out
        .into_iter()
        .map(|x| x.expect("every item ran"))
        .collect())
}
