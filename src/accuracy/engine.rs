//! The engine side of an evaluation: the same requests lm-eval's `local-completions` and
//! `local-chat-completions` models send, run with bounded concurrency, retries with backoff,
//! per-request timeouts and progress lines on stderr.
//!
//! Loglikelihoods come from `echo` + `logprobs` on `/v1/completions`; an engine that
//! ignores `echo` (llama.cpp's `llama-server`) returns logprobs for the generated token only,
//! which would silently score as a perfect model — it is detected and refused.

use super::AccuracyError;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
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

/// An OpenAI-compatible engine as an evaluation target.
pub struct Engine {
    /// Settings.
    pub opts: EngineOptions,
    /// Shared HTTP client.
    http: reqwest::Client,
    /// Set once the engine refused a token-id prompt: later prompts go as text.
    text_prompts: AtomicBool,
}

/// One failed attempt: whether trying again may help.
struct Attempt {
    retry: bool,
    message: String,
}

/// The first model `GET /v1/models` lists (what lm-eval users pass as `model=`).
pub async fn served_model(base_url: &str) -> Result<String, AccuracyError> {
    let url = format!("{}/v1/models", base_url.trim_end_matches('/'));
    let err = |m: String| AccuracyError::Engine {
        url: url.clone(),
        message: m,
    };
    let v: Value = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| err(e.to_string()))?
        .json()
        .await
        .map_err(|e| err(e.to_string()))?;
    v["data"][0]["id"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| err(format!("no model listed: {v}")))
}

impl Engine {
    /// A client for `opts`.
    pub fn new(opts: EngineOptions) -> Self {
        Engine {
            opts,
            http: reqwest::Client::new(),
            text_prompts: AtomicBool::new(false),
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
            message: if e.is_timeout() {
                format!("no answer within {:?}", self.opts.timeout)
            } else {
                format!("{e}")
            },
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| Attempt {
            retry: true,
            message: format!("reading the answer: {e}"),
        })?;
        if !status.is_success() {
            let mut t = text;
            t.truncate(500);
            return Err(Attempt {
                retry: status.as_u16() == 429 || status.is_server_error(),
                message: format!("HTTP {status}: {t}"),
            });
        }
        serde_json::from_str(&text).map_err(|e| Attempt {
            retry: false,
            message: format!("answer is not JSON ({e}): {}", &text[..text.len().min(200)]),
        })
    }

    /// POST with retries; the error names the URL.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, AccuracyError> {
        let mut delay = self.opts.backoff;
        let mut attempt = 0;
        loop {
            match self.post_once(path, body).await {
                Ok(v) => return Ok(v),
                Err(a) if a.retry && attempt < self.opts.max_retries => {
                    tracing::warn!(
                        "{path}: {} — retry {} of {} in {:?}",
                        a.message,
                        attempt + 1,
                        self.opts.max_retries,
                        delay
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                    attempt += 1;
                }
                Err(a) => {
                    return Err(AccuracyError::Engine {
                        url: format!("{}{path}", self.opts.base_url),
                        message: if attempt > 0 {
                            format!("{} (after {attempt} retries)", a.message)
                        } else {
                            a.message
                        },
                    })
                }
            }
        }
    }

    /// Loglikelihood of `tokens[ctxlen..]` given `tokens[..ctxlen]`, as lm-eval's
    /// `local-completions` computes it: `Σ token_logprobs[ctxlen:-1]` of an echoed prompt
    /// with one generated token. `text` is the decoded prompt, used when the engine does
    /// not take token ids.
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
        let v = if self.text_prompts.load(Ordering::Relaxed) {
            self.post("/v1/completions", &body(json!(text()?))).await?
        } else {
            match self.post("/v1/completions", &body(json!(tokens))).await {
                Ok(v) => v,
                Err(AccuracyError::Engine { url, message })
                    if message.starts_with("HTTP 400") || message.starts_with("HTTP 422") =>
                {
                    let t = text()?;
                    match self.post("/v1/completions", &body(json!(t))).await {
                        Ok(v) => {
                            tracing::warn!(
                                "the engine refused token-id prompts ({message}); sending text"
                            );
                            self.text_prompts.store(true, Ordering::Relaxed);
                            v
                        }
                        Err(_) => return Err(AccuracyError::Engine { url, message }),
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let lp = &v["choices"][0]["logprobs"];
        let Some(lps) = lp["token_logprobs"].as_array() else {
            // llama-server answers in the chat-style `content` form, generated token only.
            if let Some(c) = lp["content"]
                .as_array()
                .filter(|c| c.len() != tokens.len() + 1)
            {
                return Err(AccuracyError::EchoUnsupported {
                    url: self.opts.base_url.clone(),
                    got: c.len(),
                    prompt: tokens.len(),
                });
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
            return Err(AccuracyError::EchoUnsupported {
                url: self.opts.base_url.clone(),
                got: lps.len(),
                prompt: tokens.len(),
            });
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

    /// Greedy generation until a stop sequence, on `/v1/completions` (`prompt` = token ids
    /// when given, else text) or on `/v1/chat/completions` (one user message).
    pub async fn generate(
        &self,
        prompt: GenPrompt,
        stop: &[String],
        max_tokens: u32,
    ) -> Result<String, AccuracyError> {
        let (path, body) = match prompt {
            GenPrompt::Ids(ids) => (
                "/v1/completions",
                json!({"model": self.opts.model, "prompt": ids, "max_tokens": max_tokens,
                       "temperature": 0, "stop": stop, "seed": self.opts.seed}),
            ),
            GenPrompt::Text(t) => (
                "/v1/completions",
                json!({"model": self.opts.model, "prompt": t, "max_tokens": max_tokens,
                       "temperature": 0, "stop": stop, "seed": self.opts.seed}),
            ),
            GenPrompt::Chat(t) => (
                "/v1/chat/completions",
                json!({"model": self.opts.model, "messages": [{"role": "user", "content": t}],
                       "max_tokens": max_tokens, "temperature": 0, "stop": &stop[..stop.len().min(4)],
                       "seed": self.opts.seed}),
            ),
        };
        let v = self.post(path, &body).await?;
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

/// The prompt of a generation request.
#[derive(Debug, Clone)]
pub enum GenPrompt {
    /// Token ids on `/v1/completions` (lm-eval's `tokenized_requests=True`).
    Ids(Vec<u32>),
    /// Text on `/v1/completions`.
    Text(String),
    /// One user message on `/v1/chat/completions`.
    Chat(String),
}

fn excerpt(v: &Value) -> String {
    let mut s = v.to_string();
    s.truncate(300);
    s
}

/// Run `f` over `items` with at most `n` in flight; results in item order. The first error
/// stops the rest. With `label`, progress lines go to stderr every 10%.
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
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let (f, sem, done) = (f.clone(), sem.clone(), done.clone());
        let label = label.map(String::from);
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let r = f(item).await;
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(l) = label {
                if d == total || (d * 10 / total) != ((d - 1) * 10 / total) {
                    eprintln!(
                        "accuracy: {l}: {d}/{total} requests ({:.1} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
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
    Ok(out
        .into_iter()
        .map(|x| x.expect("every item ran"))
        .collect())
}
