//! The load driver: one event loop for every workload, with a [`Workload`] seam.
//!
//! A benchmark run is two things: *which request is due when* (the workload) and *getting
//! it onto the wire and timing it* (the driver). The driver owns everything the workloads
//! share: the event loop, the request tasks and their transport ([`super::http1`] /
//! reqwest) and SSE timing ([`super::request::send_with`], [`super::sse`]), the per-request
//! [`Outcome`] records, the progress counters ([`Progress`]: warmups, timed requests, failures,
//! output tokens, one compact record per finished timed request), cancellation (an external
//! stop flag, and every request still in flight aborted when the loop ends), and the
//! hand-off of failures to the workload's own policy. A workload is a state machine that
//! only decides: it is told when it is due ([`Workload::next_due`] / [`Workload::wake`]) and
//! when a request ended ([`Workload::completed`]), and it answers by handing requests to
//! the driver ([`Ctx::send`], or [`Ctx::arm`] + [`Ctx::fire`] to render a body ahead of its
//! due time). Two workloads implement it: fixed-length prompts released on the reference's
//! schedule under a concurrency cap ([`super::load`]) and agentic trace replay, lanes of
//! session trees with think times, subagents, warmup and a duration window
//! ([`super::agentic::replay`]).
//!
//! The loop runs on an OS thread of its own and waits for completions on a channel with a
//! precise timeout until the workload's next due instant (a futex wait, not the runtime's
//! millisecond timer wheel): dispatch lateness is one wake-up. Request tasks run on a tokio
//! runtime: the caller's ([`Tasks::Current`]; the agentic replay renders its long bodies on
//! the caller's worker threads), or one event loop on a thread of its own
//! ([`Tasks::OneThread`], the reference's single asyncio loop: requests handed out together
//! are polled, and so written, in the order they were handed out). Nothing is shared with a
//! request task but its go signal and the completion message; counters are atomics bumped
//! once per request, never per token.

use super::load::Progress;
use super::request::{send_with, Outcome, Target};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// A request's id, chosen by the workload and unique among its live requests.
pub type ReqId = u64;

/// Which counters a request's end moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// A warmup: `warmups_done` / `warmups_failed`.
    Warmup,
    /// A timed (profiling) request: `done`, `failed`, `output_tokens` and a compact record
    /// under this index (the request order; `None`: the order requests finish in).
    Timed(Option<usize>),
}

/// One request, ready to send.
pub struct Request {
    /// Serialised JSON body.
    pub body: Bytes,
    /// Extra request headers (the agentic workload's `X-Correlation-ID`).
    pub headers: Vec<(&'static str, Arc<str>)>,
    /// Client-side prompt tokens.
    pub prompt_len: u32,
    /// Output tokens asked for.
    pub output_len: u32,
}

/// What a workload decides; the driver does the rest.
pub trait Workload: Send + 'static {
    /// What the run produced.
    type Output: Send + 'static;
    /// Hand out the first requests.
    fn start(&mut self, cx: &mut Ctx<'_>, now: Instant);
    /// The next instant [`Workload::wake`] must be called at (`None`: only after a
    /// completion; the driver also wakes every 200 ms).
    fn next_due(&self) -> Option<Instant>;
    /// Time passed: hand out what is due.
    fn wake(&mut self, cx: &mut Ctx<'_>, now: Instant);
    /// A request ended (successfully or not).
    fn completed(&mut self, cx: &mut Ctx<'_>, id: ReqId, o: Outcome, now: Instant);
    /// Whether the run is over (the driver then aborts what is still in flight).
    fn done(&self, cx: &Ctx<'_>) -> bool;
    /// The loop ended at `now` (done, or stopped from outside).
    fn finish(self, now: Instant) -> Self::Output;
}

/// Ends a request's task when dropped. Tasks on the one-thread loop have none: they end
/// with that loop, which ends with the driver.
struct Cancel(Option<tokio::task::AbortHandle>);

impl Drop for Cancel {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// A future the request tasks run.
type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A request whose task renders its body and waits for [`Ctx::fire`].
pub struct Armed {
    id: ReqId,
    counted: Counted,
    go: tokio::sync::oneshot::Sender<()>,
    cancel: Cancel,
}

impl Armed {
    /// Drop the request without sending it.
    pub fn cancel(self) {}
}

/// A request in flight.
struct Flight {
    /// Dropped when the request ends, or to cancel it.
    _cancel: Cancel,
    counted: Counted,
    /// When it was handed out, and its release time on the workload's schedule: the wait
    /// between them is its queue time (a concurrency slot), not part of its TTFT.
    at: Instant,
    released: Instant,
}

/// A request's end, from its task.
struct Done {
    id: ReqId,
    outcome: Outcome,
}

/// The driver as a workload sees it.
pub struct Ctx<'a> {
    rt: &'a tokio::runtime::Handle,
    spawner: Option<&'a tokio::sync::mpsc::UnboundedSender<Task>>,
    client: &'a reqwest::Client,
    target: &'a Arc<Target>,
    tx: &'a mpsc::Sender<Done>,
    in_flight: &'a mut HashMap<ReqId, Flight>,
    /// The run's counters (workloads add their own: live sessions, the window's start).
    pub progress: &'a Progress,
}

impl Ctx<'_> {
    /// Requests sent and not yet ended.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Start a request task (in hand-out order on the one-thread loop); on the caller's
    /// runtime it ends early when the returned [`Cancel`] is dropped.
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) -> Cancel {
        match self.spawner {
            Some(s) => {
                let _ = s.send(Box::pin(task));
                Cancel(None)
            }
            None => Cancel(Some(self.rt.spawn(task).abort_handle())),
        }
    }

    /// Spawn a request's task now: it renders its body (`render`, off the loop) and waits
    /// for [`Ctx::fire`].
    pub fn arm<F>(&mut self, id: ReqId, counted: Counted, render: F) -> Armed
    where
        F: FnOnce() -> Request + Send + 'static,
    {
        let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (client, target, tx) = (self.client.clone(), self.target.clone(), self.tx.clone());
        let cancel = self.spawn(async move {
            let r = render();
            if go_rx.await.is_err() {
                return;
            }
            send_task(client, target, tx, id, r).await;
        });
        Armed {
            id,
            counted,
            go,
            cancel,
        }
    }

    /// Send an armed request now.
    pub fn fire(&mut self, a: Armed) {
        let _ = a.go.send(());
        let at = Instant::now();
        self.in_flight.insert(
            a.id,
            Flight {
                _cancel: a.cancel,
                counted: a.counted,
                at,
                released: at,
            },
        );
    }

    /// Send a ready request now; `released` is its release time on the workload's schedule
    /// (now when it has none), so its outcome carries the queue time since then.
    pub fn send(&mut self, id: ReqId, counted: Counted, released: Option<Instant>, r: Request) {
        let (client, target, tx) = (self.client.clone(), self.target.clone(), self.tx.clone());
        let at = Instant::now();
        let cancel = self.spawn(send_task(client, target, tx, id, r));
        self.in_flight.insert(
            id,
            Flight {
                _cancel: cancel,
                counted,
                at,
                released: released.unwrap_or(at).min(at),
            },
        );
    }
}

async fn send_task(
    client: reqwest::Client,
    target: Arc<Target>,
    tx: mpsc::Sender<Done>,
    id: ReqId,
    r: Request,
) {
    let headers: Vec<(&str, &str)> = r.headers.iter().map(|(k, v)| (*k, &**v)).collect();
    let outcome = send_with(
        &client,
        &target,
        r.body,
        &headers,
        r.prompt_len,
        r.output_len,
    )
    .await;
    let _ = tx.send(Done { id, outcome });
}

/// How a run is driven.
pub struct Drive {
    /// Where requests go.
    pub target: Arc<Target>,
    /// The HTTP client for `https://` targets ([`super::load::http_client`]).
    pub client: reqwest::Client,
    /// The run's counters.
    pub progress: Arc<Progress>,
    /// Set from outside to end the loop early (what is in flight is aborted).
    pub stop: Arc<AtomicBool>,
    /// The one-thread loop's spawner: request tasks are spawned there, in hand-out order,
    /// each polled once before the next is spawned ([`run_async`] sets it).
    spawner: Option<tokio::sync::mpsc::UnboundedSender<Task>>,
}

impl Drive {
    /// A run's settings; its request tasks on the runtime [`run`] is given.
    pub fn new(target: Arc<Target>, client: reqwest::Client, progress: Arc<Progress>) -> Self {
        Drive {
            target,
            client,
            progress,
            stop: Arc::new(AtomicBool::new(false)),
            spawner: None,
        }
    }
}

/// Longest wait without a due instant: the stop flag and the workload's own deadlines are
/// looked at this often.
const TICK: Duration = Duration::from_millis(200);

/// Run `w` to its end on the calling thread (blocking: call it from a thread of its own),
/// its requests on `rt`. Returns the workload's output and the CPU seconds the loop's thread
/// used (the self-test counts it as the client's).
pub fn run<W: Workload>(mut w: W, d: &Drive, rt: &tokio::runtime::Handle) -> (W::Output, f64) {
    let (tx, rx) = mpsc::channel::<Done>();
    let mut in_flight: HashMap<ReqId, Flight> = HashMap::new();
    let cpu0 = thread_cpu_seconds();
    macro_rules! cx {
        () => {
            Ctx {
                rt,
                spawner: d.spawner.as_ref(),
                client: &d.client,
                target: &d.target,
                tx: &tx,
                in_flight: &mut in_flight,
                progress: &d.progress,
            }
        };
    }
    w.start(&mut cx!(), Instant::now());
    let mut finished_timed = 0usize;
    loop {
        if d.stop.load(Ordering::Relaxed) || w.done(&cx!()) {
            break;
        }
        // Hand out what is due (after every completion too: a freed slot, a next turn).
        let now = Instant::now();
        w.wake(&mut cx!(), now);
        if w.done(&cx!()) {
            break;
        }
        let mut until = now + TICK;
        if let Some(t) = w.next_due() {
            until = until.min(t);
        }
        let mut next = match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(first) => Some(first),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let now = Instant::now();
        while let Some(mut done) = next {
            if let Some(f) = in_flight.remove(&done.id) {
                done.outcome.dispatched = Some(f.at);
                done.outcome.queue = (f.at - f.released).as_secs_f64();
                let p = &d.progress;
                match f.counted {
                    Counted::Warmup => {
                        if !done.outcome.success {
                            p.warmups_failed.fetch_add(1, Ordering::Relaxed);
                        }
                        p.warmups_done.fetch_add(1, Ordering::Relaxed);
                    }
                    Counted::Timed(index) => {
                        p.finish(index.unwrap_or(finished_timed), &done.outcome);
                        finished_timed += 1;
                    }
                }
                w.completed(&mut cx!(), done.id, done.outcome, now);
            }
            next = rx.try_recv().ok();
        }
    }
    // Whatever is still in flight is cancelled (the workload records what it must).
    in_flight.clear();
    let out = w.finish(Instant::now());
    (out, thread_cpu_seconds() - cpu0)
}

/// CPU seconds the calling thread has used.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes the provided timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Sets the stop flag when dropped: a dropped run (a signal dropping the job's future)
/// stops its loop and cancels its requests.
pub struct StopOnDrop(pub Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

tokio::task_local! {
    /// The ordered spawner's "request written" signal, for the request task it wraps.
    static WRITTEN: std::cell::RefCell<Option<tokio::sync::oneshot::Sender<()>>>;
}

/// Called by the transport once a request's bytes are written (or, over reqwest, once it is
/// about to be handed over): on an ordered multi-threaded loop ([`Tasks::Threads`]) the next
/// request task is started only then, so requests handed out together reach the wire in
/// hand-out order whichever worker thread runs them. A no-op anywhere else.
pub fn request_written() {
    let _ = WRITTEN.try_with(|w| {
        if let Some(tx) = w.borrow_mut().take() {
            let _ = tx.send(());
        }
    });
}

/// Where a run's request tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tasks {
    /// On the runtime of the caller of [`run_async`] (the agentic replay, whose long bodies
    /// render on the caller's workers).
    Current,
    /// On an event loop of their own: one thread (`Threads(1)`, the reference's single
    /// asyncio loop: each task is polled once, and so opens its connection, before the next
    /// is spawned), or `n` worker threads reading the streams, each task started once the
    /// previous one has written its request ([`request_written`]), so the write order is
    /// still the hand-out order. Several threads are for offered event rates one thread
    /// cannot time (hundreds of thousands of tokens a second: `runner bench --self-test`).
    Threads(usize),
}

/// [`run`] on a loop thread of its own, awaited from async code, the request tasks where
/// `tasks` says. Dropping the returned future stops the loop and cancels every request.
pub async fn run_async<W: Workload>(
    w: W,
    mut d: Drive,
    tasks: Tasks,
) -> std::io::Result<(W::Output, f64)> {
    let _stop = StopOnDrop(d.stop.clone());
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let threads = match tasks {
        Tasks::Threads(n) => n.max(1),
        Tasks::Current => 0,
    };
    let handle = if threads == 0 {
        tokio::runtime::Handle::current()
    } else {
        let rt = if threads == 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("load-worker")
                .enable_all()
                .build()?
        };
        let h = rt.handle().clone();
        // The loop's own thread spawns the request tasks in the order they are handed out:
        // tasks spawned back to back from another thread would be polled in batches, and
        // written out of order. On one thread each task is let start (open its connection)
        // before the next; on several, the next starts once this one has written its request
        // (or ended without writing: the signal's sender then drops). The loop ends when the
        // driver drops its sender; dropping the runtime then ends the rest.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Task>();
        d.spawner = Some(tx);
        std::thread::Builder::new()
            .name("load".into())
            .spawn(move || {
                rt.block_on(async move {
                    while let Some(t) = rx.recv().await {
                        if threads == 1 {
                            tokio::spawn(t);
                            tokio::task::yield_now().await;
                        } else {
                            let (written, wait) = tokio::sync::oneshot::channel();
                            let cell = std::cell::RefCell::new(Some(written));
                            tokio::spawn(WRITTEN.scope(cell, t));
                            let _ = wait.await;
                        }
                    }
                });
            })?;
        h
    };
    std::thread::Builder::new()
        .name("driver".into())
        .spawn(move || {
            let r = run(w, &d, &handle);
            drop(d);
            let _ = done_tx.send(r);
        })?;
    done_rx
        .await
        .map_err(|_| std::io::Error::other("the load driver ended without a result"))
}
