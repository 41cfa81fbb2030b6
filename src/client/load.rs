//! The load driver: warmups, then every request released on the reference's schedule under
//! its concurrency cap.
//!
//! One dispatcher hands out the concurrency slots, strictly in request order, as the
//! reference's single asyncio loop does: for each request in turn it waits for the request's
//! release time, then for a free slot, then spawns the request's task, which holds the slot
//! until its response has ended. (Tasks that each took a slot when first polled took them in
//! whatever order the multi-threaded runtime polled them: with 16 warmups, up to half of all
//! request pairs reached the engine inverted.) A request whose release time passes while an
//! earlier one waits for a slot keeps its release time: its wait counts as queue time.
//!
//! The dispatcher orders when requests take their slots; what reaches the engine first is
//! then decided by which task writes first. On a multi-threaded runtime, requests dispatched
//! together (a burst at the start, several slots freed by one batch step) are written from
//! several threads at once: with 64 released together, up to a third of all pairs arrived
//! inverted. [`run_on_one_thread`] runs the driver as the reference runs its requests, on one
//! event loop of its own, where they are written in order; `runner bench` and `runner exec`
//! use it. One thread carries the load: the self-test measures the client on one thread.
//!
//! Each task returns its [`Outcome`] through its join handle; the only shared state is
//! [`Progress`]: atomic counters and one compact record per finished request (a lock per
//! request, never per token). Results are merged once, in request order, after the last
//! response (oha's per-task statistics, nothing locked per event).

pub use super::request::Prepared;
use super::request::{send, Outcome, Target};
use super::rng::NumpyRandom;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    /// Output tokens of the timed requests that finished (added once per request, for the
    /// progress line's tokens/s).
    pub output_tokens: AtomicU64,
    /// Agentic runs: session trees (lanes) with a live play.
    pub live_sessions: AtomicU64,
    /// Agentic runs: when the profiling window opened (unset during warmup).
    pub window_start: std::sync::OnceLock<std::time::Instant>,
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
    /// The fixed-length workload's progress: timed requests done of `total`, failures,
    /// tokens/s, and the warmups while they run.
    pub fn status(&self, total: usize, warmups: usize) -> crate::progress::Status {
        let w = self.warmups_done.load(Ordering::Relaxed) as usize;
        crate::progress::Status {
            done: Some(self.done.load(Ordering::Relaxed)),
            total: Some(total as u64),
            failed: Some(self.failed.load(Ordering::Relaxed)),
            tokens: Some(self.output_tokens.load(Ordering::Relaxed)),
            eta: None,
            note: if w < warmups {
                format!("warmup {w}/{warmups}")
            } else {
                String::new()
            },
        }
    }

    /// The agentic workload's progress: profiling requests done, failures, tokens/s, live
    /// sessions and how much of the `window` has passed (warmup before it opens).
    pub fn agentic_status(&self, window: Duration) -> crate::progress::Status {
        let live = self.live_sessions.load(Ordering::Relaxed);
        let (eta, note) = match self.window_start.get() {
            Some(t) => {
                let e = t.elapsed().min(window);
                (
                    Some(window - e),
                    format!(
                        "{live} live sessions, window {} of {}",
                        crate::progress::clock(e),
                        crate::progress::clock(window)
                    ),
                )
            }
            None => (
                None,
                format!(
                    "warmup ({} warmup requests done), {live} live sessions",
                    self.warmups_done.load(Ordering::Relaxed)
                ),
            ),
        };
        crate::progress::Status {
            done: Some(self.done.load(Ordering::Relaxed)),
            total: None,
            failed: Some(self.failed.load(Ordering::Relaxed)),
            tokens: Some(self.output_tokens.load(Ordering::Relaxed)),
            eta,
            note,
        }
    }

    /// Count a finished timed request and keep its record.
    pub fn finish(&self, index: usize, o: &Outcome) {
        if !o.success {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let tokens = o
            .output_tokens
            .unwrap_or(if o.success { o.itl.len() as u64 + 1 } else { 0 });
        self.output_tokens.fetch_add(tokens, Ordering::Relaxed);
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
    /// Warmup requests that failed.
    pub warmup_failed: usize,
    /// The first few warmup errors, for the message that reports them.
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

/// The concurrency cap: slots granted in the order they are asked for (tokio's semaphore is
/// fair, and only the dispatcher asks).
struct Slots(Option<Arc<Semaphore>>);

impl Slots {
    fn new(cap: Option<usize>) -> Self {
        Slots(cap.map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)))))
    }

    /// Wait for a free slot (none to wait for without a cap).
    async fn take(&self) -> Option<OwnedSemaphorePermit> {
        match &self.0 {
            Some(s) => Some(s.clone().acquire_owned().await.expect("semaphore open")),
            None => None,
        }
    }
}

/// A request the dispatcher has handed a slot.
struct Dispatched {
    /// Its place in the request order.
    index: usize,
    /// The slot, held until the request's task ends (`None`: no cap).
    slot: Option<OwnedSemaphorePermit>,
    /// Its release time on the schedule.
    released: Instant,
    /// When it got its slot.
    at: Instant,
}

/// Dispatch `n` requests in index order: request `i` waits for `release(i)` (`None`: now),
/// then for a slot, then `task` spawns it holding the slot. Returns the tasks' outputs in
/// index order, once all have ended.
async fn dispatch<T, Fut>(
    n: usize,
    slots: &Slots,
    mut release: impl FnMut(usize) -> Option<Instant>,
    mut task: impl FnMut(Dispatched) -> Fut,
) -> Vec<T>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut handles = Vec::with_capacity(n);
    for index in 0..n {
        let released = match release(index) {
            Some(t) => {
                tokio::time::sleep_until(t.into()).await;
                t
            }
            None => Instant::now(),
        };
        let slot = slots.take().await;
        let d = Dispatched {
            index,
            slot,
            released,
            at: Instant::now(),
        };
        handles.push(tokio::spawn(task(d)));
        // Let the new task start (open its connection) before the next one is spawned, as
        // each task on the reference's loop does: tasks spawned back to back would start in
        // whatever order the runtime's workers pick them up (the newest first, from the
        // spawning worker's LIFO slot).
        tokio::task::yield_now().await;
    }
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await.expect("request task"));
    }
    out
}

/// Send one dispatched request; its slot is freed when the response has ended.
async fn one(client: reqwest::Client, plan: Arc<LoadPlan>, r: Prepared, d: Dispatched) -> Outcome {
    let mut o = send(&client, &plan.target, &r).await;
    drop(d.slot);
    o.queue = (d.at - d.released).as_secs_f64();
    o.dispatched = Some(d.at);
    o
}

/// [`run`] on a thread of its own with a single-threaded runtime (the reference's one
/// event loop), so requests dispatched together are also written in request order. Dropping
/// the returned future cancels every request.
pub async fn run_on_one_thread(
    client: reqwest::Client,
    reqs: Arc<Vec<Prepared>>,
    plan: Arc<LoadPlan>,
    rng: NumpyRandom,
    progress: Arc<Progress>,
) -> std::io::Result<LoadResult> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    // Dropped with this future: the load thread then drops its requests and ends.
    let (_cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            rt.block_on(async move {
                tokio::select! {
                    r = run(client, reqs, plan, rng, progress) => {
                        let _ = done_tx.send(r);
                    }
                    _ = cancelled => {}
                }
            });
        })?;
    done_rx
        .await
        .map_err(|_| std::io::Error::other("the load thread ended without a result"))
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
    let (mut warmup_failed, mut warmup_errors) = (0, vec![]);
    if plan.num_warmups > 0 && !reqs.is_empty() {
        // The reference's warmups: copies of request 0, all released at once, under their own
        // cap of the same size.
        let slots = Slots::new(plan.max_concurrency);
        let warm = dispatch(
            plan.num_warmups,
            &slots,
            |_| None,
            |d| {
                let (client, plan, r, progress) = (
                    client.clone(),
                    plan.clone(),
                    reqs[0].clone(),
                    progress.clone(),
                );
                async move {
                    let o = one(client, plan, r, d).await;
                    if !o.success {
                        progress.warmups_failed.fetch_add(1, Ordering::Relaxed);
                    }
                    progress.warmups_done.fetch_add(1, Ordering::Relaxed);
                    o
                }
            },
        )
        .await;
        for o in warm.into_iter().filter(|o| !o.success) {
            warmup_failed += 1;
            if warmup_errors.len() < 5 {
                warmup_errors.push(o.error);
            }
        }
    }

    let slots = Slots::new(plan.max_concurrency);
    let theta = 1.0 / (plan.request_rate * plan.burstiness);
    let start = Instant::now();
    // The reference's release times: request 0 at the start, each next one a gamma-drawn gap
    // after the previous one (all at the start when the rate is infinite).
    let mut due = start;
    let release = |i: usize| {
        if !plan.request_rate.is_finite() {
            return None;
        }
        if i > 0 {
            due += Duration::from_secs_f64(rng.gamma(plan.burstiness, theta));
        }
        Some(due)
    };
    let outcomes = dispatch(reqs.len(), &slots, release, |d| {
        let (client, plan, r, progress) = (
            client.clone(),
            plan.clone(),
            reqs[d.index].clone(),
            progress.clone(),
        );
        let d_index = d.index;
        async move {
            let o = one(client, plan, r, d).await;
            progress.finish(d_index, &o);
            o
        }
    })
    .await;
    LoadResult {
        outcomes,
        duration: start.elapsed().as_secs_f64(),
        warmup_failed,
        warmup_errors,
    }
}
