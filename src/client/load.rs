//! The load driver: warmups, then every request released on the reference's schedule under
//! its concurrency cap.
//!
//! Each request runs as its own task and returns its [`Outcome`] through its join handle;
//! the only shared state is a pair of atomic counters for progress. Results are merged once,
//! in request order, after the last response (oha's per-task statistics, nothing locked per
//! event).

pub use super::request::Prepared;
use super::request::{send, Outcome, Target};
use super::rng::NumpyRandom;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How requests are released.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Where requests go.
    pub target: Target,
    /// At most this many requests in flight (`--max-concurrency`).
    pub max_concurrency: Option<usize>,
    /// Requests per second; infinity releases all at once.
    pub request_rate: f64,
    /// Gamma shape of the arrival gaps (1 = Poisson).
    pub burstiness: f64,
    /// Copies of request 0 sent before the timed phase.
    pub num_warmups: usize,
}

/// Counters the progress display reads.
#[derive(Debug, Default)]
pub struct Progress {
    /// Timed requests finished (successful or not).
    pub done: AtomicU64,
    /// Timed requests that failed.
    pub failed: AtomicU64,
    /// Warmup requests finished.
    pub warmups_done: AtomicU64,
    /// Warmup requests that failed (a run whose every warmup failed is going nowhere).
    pub warmups_failed: AtomicU64,
    /// A compact record of every timed request that finished, in finishing order, so a run
    /// cut short (a signal, a job already failed) still leaves per-request results. One
    /// lock per request, never per token; no text, no token times.
    pub finished: std::sync::Mutex<Vec<RequestRecord>>,
}

/// What a finished request leaves in [`Progress::finished`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestRecord {
    /// Its index in the dataset (request order).
    pub index: usize,
    pub success: bool,
    /// Client-side prompt length (tokens).
    pub prompt_len: u32,
    /// Output tokens the engine reported (`usage.completion_tokens`).
    pub output_tokens: Option<u64>,
    /// Seconds from send to the first token.
    pub ttft: f64,
    /// Seconds from send to the last token.
    pub latency: f64,
    /// Seconds spent waiting for a concurrency slot.
    pub queue: f64,
    /// Why it failed (empty on success).
    pub error: String,
}

impl Progress {
    /// Count a finished timed request and keep its record.
    fn finish(&self, index: usize, o: &Outcome) {
        if !o.success {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let rec = RequestRecord {
            index,
            success: o.success,
            prompt_len: o.prompt_len,
            output_tokens: o.output_tokens,
            ttft: o.ttft,
            latency: o.latency,
            queue: o.queue,
            error: o.error.clone(),
        };
        if let Ok(mut v) = self.finished.lock() {
            v.push(rec);
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything the timed phase produced.
pub struct LoadResult {
    /// One per request, in request order.
    pub outcomes: Vec<Outcome>,
    /// Seconds from the first release to the last response.
    pub duration: f64,
    /// Warmup requests that failed, with a sample of their errors.
    pub warmup_failed: usize,
    pub warmup_errors: Vec<String>,
}

/// The load client's HTTP client for `https://` targets (`http://` ones use the client's own
/// transport, [`super::http1`]): HTTP/1.1, no Nagle delay and, like the reference (a new
/// aiohttp session per request), a new connection for every request. Reusing pooled
/// connections races servers that close idle keep-alive connections (llama.cpp does: the
/// request then fails with "connection closed before message completed").
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client builds")
}

async fn one(client: &reqwest::Client, plan: &LoadPlan, r: &Prepared) -> Outcome {
    send(client, &plan.target, r).await
}

/// Run warmups and the timed phase. `rng` continues numpy's global generator after dataset
/// sampling; arrival gaps are drawn from it exactly as the reference draws them.
pub async fn run(
    client: reqwest::Client,
    reqs: Arc<Vec<Prepared>>,
    plan: Arc<LoadPlan>,
    mut rng: NumpyRandom,
    progress: Arc<Progress>,
) -> LoadResult {
    let cap = |n: usize| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)));
    let (mut warmup_failed, mut warmup_errors) = (0, vec![]);
    if plan.num_warmups > 0 && !reqs.is_empty() {
        let sem = cap(plan.max_concurrency.unwrap_or(Semaphore::MAX_PERMITS));
        let handles: Vec<_> = (0..plan.num_warmups)
            .map(|_| {
                let (client, reqs, plan, sem, progress) = (
                    client.clone(),
                    reqs.clone(),
                    plan.clone(),
                    sem.clone(),
                    progress.clone(),
                );
                tokio::spawn(async move {
                    let _permit = sem.acquire_owned().await.expect("semaphore open");
                    let o = one(&client, &plan, &reqs[0]).await;
                    if !o.success {
                        progress.warmups_failed.fetch_add(1, Ordering::Relaxed);
                    }
                    progress.warmups_done.fetch_add(1, Ordering::Relaxed);
                    o
                })
            })
            .collect();
        for h in handles {
            let o = h.await.expect("warmup task");
            if !o.success {
                warmup_failed += 1;
                if warmup_errors.len() < 5 {
                    warmup_errors.push(o.error);
                }
            }
        }
    }

    let sem = plan.max_concurrency.map(cap);
    let theta = 1.0 / (plan.request_rate * plan.burstiness);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(reqs.len());
    for i in 0..reqs.len() {
        let (c, r, p, sem, progress) = (
            client.clone(),
            reqs.clone(),
            plan.clone(),
            sem.clone(),
            progress.clone(),
        );
        handles.push(tokio::spawn(async move {
            let released = Instant::now();
            let _permit = match &sem {
                Some(s) => Some(s.clone().acquire_owned().await.expect("semaphore open")),
                None => None,
            };
            let queue = released.elapsed().as_secs_f64();
            let mut o = one(&c, &p, &r[i]).await;
            o.queue = queue;
            progress.finish(i, &o);
            o
        }));
        if plan.request_rate.is_finite() {
            let gap = rng.gamma(plan.burstiness, theta);
            tokio::time::sleep(Duration::from_secs_f64(gap)).await;
        }
    }
    let mut outcomes = Vec::with_capacity(handles.len());
    for h in handles {
        outcomes.push(h.await.expect("request task"));
    }
    LoadResult {
        outcomes,
        duration: start.elapsed().as_secs_f64(),
        warmup_failed,
        warmup_errors,
    }
}
