//! The fixed-length workload: warmups, then every request released on the reference's
//! schedule under its concurrency cap, driven by [`super::driver`].
//!
//! The slots are handed out strictly in request order, as the reference's single asyncio
//! loop does: request `i` waits for its release time, then for a free slot, then is sent,
//! holding the slot until its response has ended. (Tasks that each took a slot when first
//! polled took them in whatever order the multi-threaded runtime polled them: with 16
//! warmups, up to half of all request pairs reached the engine inverted.) A request whose
//! release time passes while an earlier one waits for a slot keeps its release time: its
//! wait counts as queue time.
//!
//! The workload orders when requests take their slots; what reaches the engine first is
//! then decided by which task writes first. On a multi-threaded runtime, requests handed out
//! together (a burst at the start, several slots freed by one batch step) are written from
//! several threads at once: with 64 released together, up to a third of all pairs arrived
//! inverted. [`run_on_one_thread`] runs the request tasks as the reference runs its
//! requests, on one event loop of their own, where they are polled and written in order;
//! `runner bench` and `runner exec` use it.
//!
//! Each finished request's [`Outcome`] comes back to the workload through the driver; the
//! only shared state is [`Progress`]: atomic counters and one compact record per finished
//! request (a lock per request, never per token). Results are kept in request order and
//! returned once, after the last response.

use super::driver::{self, Counted, Ctx, ReqId, Request, Workload};
pub use super::request::Prepared;
use super::request::{Outcome, Target};
use super::rng::NumpyRandom;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// CPU seconds of the driver's loop thread (the self-test counts them as the client's).
    pub driver_cpu_seconds: f64,
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

/// Ids of warmup requests (timed requests use their index).
const WARMUP_ID: u64 = 1 << 62;

/// The fixed-length workload: the reference's warmups (copies of request 0, all released at
/// once under their own cap), then request `i` released at its due time on the reference's
/// schedule and handed a slot strictly in index order.
struct FixedLength {
    reqs: Arc<Vec<Prepared>>,
    plan: Arc<LoadPlan>,
    /// numpy's global generator, continuing after dataset sampling: the arrival gaps.
    rng: NumpyRandom,
    /// Free concurrency slots (`usize::MAX` without a cap).
    free: usize,
    /// Warmups handed out and ended.
    warm_sent: usize,
    warm_ended: usize,
    /// When the timed phase started (after the last warmup ended).
    start: Option<Instant>,
    /// The next timed request to hand out, and its release time on the schedule.
    next: usize,
    release: Option<Instant>,
    outcomes: Vec<Option<Outcome>>,
    warmup_failed: usize,
    warmup_errors: Vec<String>,
}

impl FixedLength {
    fn new(reqs: Arc<Vec<Prepared>>, plan: Arc<LoadPlan>, rng: NumpyRandom) -> Self {
        let n = reqs.len();
        let free = plan.max_concurrency.unwrap_or(usize::MAX);
        FixedLength {
            reqs,
            plan,
            rng,
            free,
            warm_sent: 0,
            warm_ended: 0,
            start: None,
            next: 0,
            release: None,
            outcomes: (0..n).map(|_| None).collect(),
            warmup_failed: 0,
            warmup_errors: vec![],
        }
    }

    fn warmups(&self) -> usize {
        if self.reqs.is_empty() {
            0
        } else {
            self.plan.num_warmups
        }
    }

    fn request(&self, i: usize) -> Request {
        let r = &self.reqs[i];
        Request {
            body: r.body.clone(),
            headers: vec![],
            prompt_len: r.prompt_len,
            output_len: r.output_len,
        }
    }
}

impl Workload for FixedLength {
    type Output = LoadResult;

    fn start(&mut self, cx: &mut Ctx<'_>, now: Instant) {
        self.wake(cx, now);
    }

    fn next_due(&self) -> Option<Instant> {
        // Woken by completions otherwise: a slot freed, the last warmup ended.
        self.release
            .filter(|_| self.free > 0 && self.next < self.reqs.len())
    }

    fn wake(&mut self, cx: &mut Ctx<'_>, now: Instant) {
        if self.warm_sent < self.warmups() {
            while self.warm_sent < self.warmups() && self.free > 0 {
                cx.send(
                    WARMUP_ID + self.warm_sent as u64,
                    Counted::Warmup,
                    None,
                    self.request(0),
                );
                self.warm_sent += 1;
                self.free -= 1;
            }
            return;
        }
        if self.warm_ended < self.warmups() {
            return;
        }
        let start = *self.start.get_or_insert_with(|| {
            // The timed phase has a cap of its own, all slots free.
            self.free = self.plan.max_concurrency.unwrap_or(usize::MAX);
            now
        });
        let finite = self.plan.request_rate.is_finite();
        while self.next < self.reqs.len() {
            // The reference's release times: request 0 at the start, each next one a
            // gamma-drawn gap after the previous one (all at once when the rate is infinite:
            // released when the previous one got its slot).
            let released = *self.release.get_or_insert(start);
            if finite && released > Instant::now() {
                return;
            }
            if self.free == 0 {
                return;
            }
            let i = self.next;
            let at = Instant::now();
            cx.send(
                i as u64,
                Counted::Timed(Some(i)),
                Some(released),
                self.request(i),
            );
            self.free -= 1;
            self.next += 1;
            self.release = Some(if finite {
                if self.next < self.reqs.len() {
                    let theta = 1.0 / (self.plan.request_rate * self.plan.burstiness);
                    released + Duration::from_secs_f64(self.rng.gamma(self.plan.burstiness, theta))
                } else {
                    released
                }
            } else {
                at
            });
        }
    }

    fn completed(&mut self, _cx: &mut Ctx<'_>, id: ReqId, o: Outcome, _now: Instant) {
        self.free = self.free.saturating_add(1);
        if id >= WARMUP_ID {
            self.warm_ended += 1;
            if !o.success {
                self.warmup_failed += 1;
                if self.warmup_errors.len() < 5 {
                    self.warmup_errors.push(o.error);
                }
            }
            return;
        }
        // (The driver has set its queue time and dispatch instant.)
        self.outcomes[id as usize] = Some(o);
    }

    fn done(&self, cx: &Ctx<'_>) -> bool {
        self.start.is_some() && self.next >= self.reqs.len() && cx.in_flight() == 0
    }

    fn finish(self, now: Instant) -> LoadResult {
        LoadResult {
            outcomes: self
                .outcomes
                .into_iter()
                .map(|o| {
                    o.unwrap_or_else(|| Outcome {
                        error: "cancelled: the run was stopped".into(),
                        ..Outcome::default()
                    })
                })
                .collect(),
            duration: self.start.map_or(0.0, |s| (now - s).as_secs_f64()),
            warmup_failed: self.warmup_failed,
            warmup_errors: self.warmup_errors,
            driver_cpu_seconds: 0.0,
        }
    }
}

fn drive(client: reqwest::Client, plan: &LoadPlan, progress: Arc<Progress>) -> driver::Drive {
    driver::Drive::new(Arc::new(plan.target.clone()), client, progress)
}

/// [`run`] with the request tasks on one event loop of their own thread (the reference's
/// one event loop), so requests dispatched together are also written in request order.
/// Dropping the returned future cancels every request.
pub async fn run_on_one_thread(
    client: reqwest::Client,
    reqs: Arc<Vec<Prepared>>,
    plan: Arc<LoadPlan>,
    rng: NumpyRandom,
    progress: Arc<Progress>,
) -> std::io::Result<LoadResult> {
    run_ordered(client, reqs, plan, rng, progress, 1).await
}

/// [`run_on_one_thread`] with the streams read by `threads` worker threads of the load's
/// own loop: requests are still written in request order ([`driver::Tasks::Threads`]).
pub async fn run_ordered(
    client: reqwest::Client,
    reqs: Arc<Vec<Prepared>>,
    plan: Arc<LoadPlan>,
    rng: NumpyRandom,
    progress: Arc<Progress>,
    threads: usize,
) -> std::io::Result<LoadResult> {
    let d = drive(client, &plan, progress);
    let (mut r, cpu) = driver::run_async(
        FixedLength::new(reqs, plan, rng),
        d,
        driver::Tasks::Threads(threads),
    )
    .await?;
    r.driver_cpu_seconds = cpu;
    Ok(r)
}

/// Worker threads for the load's own loop when the user did not choose (`runner bench
/// --client-threads 0`): one — the reference's single event loop — unless the most streams
/// at once could offer more token events than one thread times with headroom. A stream of
/// the fastest engines we know (2 ms a token) offers 500 events/s and a client thread
/// carries about 150k (`runner bench --self-test` on 16 cores: 1,024 × 2 ms timed within
/// 0.05 % with 4 threads, off with 1), so one thread a 300 streams, at most half the cores.
pub fn auto_client_threads(max_streams: usize, cores: usize) -> usize {
    client_threads_for(max_streams as f64 * 500.0, cores)
}

/// Token events per second one client worker thread reads and times with headroom
/// (measured on the 16-core H200 host: 1,024 × 2 ms = 512k events/s saturated 2 client
/// threads and was timed within 0.05 % by 4; budgeted at 150k so the client keeps idle time).
pub const CLIENT_EVENTS_PER_THREAD: f64 = 150_000.0;

/// Client worker threads for an offered rate of `events_per_s` token events: one per
/// [`CLIENT_EVENTS_PER_THREAD`], at least one, at most half of `cores`.
pub fn client_threads_for(events_per_s: f64, cores: usize) -> usize {
    let need = ((events_per_s / CLIENT_EVENTS_PER_THREAD).ceil() as usize).max(1);
    need.min((cores / 2).max(1))
}

/// Cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Run warmups and the timed phase, the request tasks on the caller's runtime. `rng`
/// continues numpy's global generator after dataset sampling; arrival gaps are drawn from it
/// exactly as the reference draws them.
pub async fn run(
    client: reqwest::Client,
    reqs: Arc<Vec<Prepared>>,
    plan: Arc<LoadPlan>,
    rng: NumpyRandom,
    progress: Arc<Progress>,
) -> LoadResult {
    let d = drive(client, &plan, progress);
    let (mut r, cpu) =
        driver::run_async(FixedLength::new(reqs, plan, rng), d, driver::Tasks::Current)
            .await
            .expect("the load driver's thread starts");
    r.driver_cpu_seconds = cpu;
    r
}

#[cfg(test)]
mod thread_choice {
    use super::auto_client_threads;

    /// Hand-computed: ⌈streams × 500 / 150,000⌉, at least one, at most half the cores.
    #[test]
    fn one_thread_unless_the_streams_need_more() {
        assert_eq!(auto_client_threads(1, 16), 1);
        assert_eq!(auto_client_threads(300, 16), 1);
        assert_eq!(auto_client_threads(301, 16), 2);
        assert_eq!(auto_client_threads(1024, 16), 4);
        assert_eq!(auto_client_threads(2048, 16), 7);
        assert_eq!(auto_client_threads(16384, 16), 8);
        assert_eq!(auto_client_threads(1024, 2), 1);
    }
}
