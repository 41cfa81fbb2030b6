//! Lanes of session trees: the agentic [`Workload`] of the load driver (agentic.md
//! §3.5–§3.8).
//!
//! A lane is one live session tree: the root conversation of a trace and the subagents it
//! spawns. The scheduler is a state machine on [`crate::client::driver`]'s loop: it owns
//! every lane's state and one timer heap; the driver wakes it at the heap's next due
//! instant (a precise wait on its completion channel) and hands it every completion. A
//! request is armed when its turn is planned ([`Ctx::arm`]: its task renders the body and
//! waits) and fired at the due instant ([`Ctx::fire`]), so dispatch lateness is one futex
//! wake-up, not a scan of all lanes, and a 990k-token prompt costs its lane no lateness
//! unless its think time is shorter than the render.
//!
//! Timers are kept in "raw" time; the global idle cap shifts all of them at once (a single
//! offset), the per-tree idle cap re-arms one tree's timers earlier.

use super::prompt::{self, BodySpec, ConvPrompt, Plan, Words};
use super::synth::SplitMix;
use super::trace::{Conv, Corpus, Trace};
use crate::client::driver::{self, Counted, Ctx, Drive, ReqId, Request, Workload};
use crate::client::load::Progress;
use crate::client::request::{Outcome, Target};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How `t*` (the trajectory start) is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartBasis {
    /// A fraction of the root's turns (the fork's CLI doc).
    Turns,
    /// A fraction of the root's recorded wall-clock span (the FAQ).
    Time,
}

/// Which trace a lane replays after its tree drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sampler {
    /// Walk a seeded permutation of the corpus, continuing after the initial lanes.
    Sequential,
    /// Like sequential, with a fresh permutation each time the corpus is exhausted.
    Shuffle,
    /// Uniformly at random, with replacement.
    Random,
}

/// Scope of the theoretical prefix-cache seen-set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheScope {
    /// Reset on every play (a new cache-bust marker makes the content new to the server).
    Play,
    /// Kept per trace across plays.
    Trace,
}

/// Everything the replay needs.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Where requests go (`/v1/chat/completions`).
    pub target: Target,
    /// Live session trees (`--concurrency`).
    pub lanes: usize,
    /// Profiling window (`--benchmark-duration`).
    pub duration: Duration,
    /// In-flight requests may finish this long after the window (`--benchmark-grace-period`);
    /// later ones are cancelled.
    pub grace: Duration,
    /// Longest wait for all lanes to finish warmup (`--warmup-grace-period`).
    pub warmup_grace: Duration,
    /// One-token requests per lane after the primer (`--warmup-requests-per-lane`).
    pub warmup_per_lane: usize,
    /// `--trajectory-start-min-ratio` / `--trajectory-start-max-ratio`.
    pub start_min: f64,
    pub start_max: f64,
    pub start_basis: StartBasis,
    /// When nothing is in flight, the next request fires within this (`--system-idle-gap-cap`).
    pub system_idle_cap: Duration,
    /// When a tree has had nothing in flight this long, its timers advance
    /// (`--trace-idle-gap-cap`; `None` = off).
    pub tree_idle_cap: Option<Duration>,
    /// Abort when failed/total profiling requests exceeds this (`--failed-request-threshold`).
    pub failed_threshold: f64,
    /// `--random-seed`: t*, sampling and content.
    pub seed: u64,
    pub sampler: Sampler,
    /// Requests with `in + out` above this are not sent and end their conversation as a
    /// context overflow (`--max-context-length`).
    pub max_context: Option<u64>,
    pub cache_scope: CacheScope,
    /// Body fields.
    pub body: BodySpec,
    /// Seeds the cache-bust markers and correlation ids (a fresh one per run).
    pub run_id: u64,
    /// Record cancelled requests (error `RequestCancellationError`) or leave them out.
    pub record_cancelled: bool,
    /// Optional routing headers beside `X-Correlation-ID`.
    pub routing: super::headers::RoutingHeaders,
}

/// Why a record is in the warmup or profiling phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Warmup,
    Profiling,
}

/// What went wrong with one request.
#[derive(Debug, Clone)]
pub struct RecError {
    /// `type` of the error object: `HTTPError`, `ContextOverflow`, `StreamError`,
    /// `RequestCancellationError`.
    pub kind: &'static str,
    /// HTTP status, when there was one.
    pub code: Option<u16>,
    pub message: String,
}

/// One request as AIPerf records it.
#[derive(Debug, Clone)]
pub struct Record {
    /// `<trace>[::sa:<agent>]`.
    pub conversation_id: Arc<str>,
    pub turn_index: u32,
    /// Stable for all turns of one conversation (and sent as `X-Correlation-ID`).
    pub x_correlation_id: Arc<str>,
    pub lane: u32,
    pub phase: Phase,
    /// Send, response head and body end (monotonic clock).
    pub start: Instant,
    pub ack: Option<Instant>,
    pub end: Option<Instant>,
    /// When the scheduler meant it to be sent.
    pub due: Instant,
    pub cancelled: bool,
    /// First content chunk − start, seconds.
    pub ttft: Option<f64>,
    /// Last content chunk − start, seconds.
    pub latency: Option<f64>,
    /// Server's prompt tokens (else the client's count).
    pub isl: u64,
    /// Server's completion tokens (else token events).
    pub osl: Option<u64>,
    /// The trace's `out` (what was asked for).
    pub expected_osl: u32,
    pub error: Option<RecError>,
}

/// Everything a replay produced.
#[derive(Debug, Default)]
pub struct ReplayResult {
    pub records: Vec<Record>,
    /// Profiling window start and the last instant anything was accepted.
    pub t0: Option<Instant>,
    pub window_end: Option<Instant>,
    /// When the replay stopped waiting (window end plus the grace it used).
    pub ended: Option<Instant>,
    /// The monotonic instant that corresponds to `wall_epoch_ns`.
    pub epoch: Option<Instant>,
    pub wall_epoch_ns: u64,
    /// Theoretical prefix-cache hit blocks and total blocks (profiling only).
    pub cache_hits: u64,
    pub cache_blocks: u64,
    /// Requests not sent because `in + out` exceeded `--max-context-length`.
    pub overflow_skipped: u64,
    /// Profiling requests the server refused for their context length.
    pub overflow_errors: u64,
    /// AIPerf's profile-metric duration coverage: how far into the window the last
    /// profiling TTFT observation (send + TTFT) reaches, as a fraction of the configured
    /// duration (capped at 1).
    pub coverage_ttft: f64,
    /// The same for inter-token latency: the end of the last successful profiling request
    /// that had an inter-token interval (two or more token events).
    pub coverage_itl: f64,
    /// The larger of the two: either signal proves the server was live (agentx-v1.0.4+).
    pub coverage: f64,
    /// Set when the run was stopped early (live failure gate, warmup root failure).
    pub aborted: Option<String>,
    /// Profiling dispatch lateness (actual send − due), seconds.
    pub lateness: Vec<f64>,
    /// Plays started (initial lanes plus recycles).
    pub plays: u64,
}

/// Errors that stop a replay before it starts.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the trace corpus is empty")]
    Empty,
    #[error("--concurrency must be at least 1")]
    NoLanes,
}

/// Conversation context-length errors, by the messages engines use.
pub fn is_context_overflow(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "context length",
        "maximum context",
        "context window",
        "exceeds the available context",
        "too many tokens",
        "prompt is too long",
        "exceed_context_size",
        "input is too long",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// A heap entry: (raw due ns, arm sequence, lane, play generation, conversation).
type Timer = (u64, u64, u32, u64, u32);

/// Phase changes for the operator (warmup, profiling); counts go through the [`Progress`]
/// counters, which a ticker reads.
pub type ProgressFn = Arc<dyn Fn(&str) + Send + Sync>;

/// Requests in flight or waiting to be sent, by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ReqKey {
    lane: u32,
    gen: u64,
    conv: u32,
    turn: u32,
}

/// A completion from a request task.
struct Done {
    key: ReqKey,
    outcome: Outcome,
}

/// A request whose body is being (or has been) rendered and that waits for its due time.
struct Armed {
    /// The driver's armed request (its task renders the body and waits for the go).
    req: driver::Armed,
    /// Its id with the driver.
    id: ReqId,
    phase: Phase,
    expected_osl: u32,
    tokens: u32,
    /// Raw due (ns since the scheduler epoch, before the global shift).
    raw_due: u64,
    seq: u64,
}

/// A sent request.
struct Flight {
    phase: Phase,
    expected_osl: u32,
    tokens: u32,
    due: Instant,
    sent: Instant,
}

/// One conversation of a live play.
struct ConvRun {
    /// Branch indices from the root (empty for the root).
    path: Vec<usize>,
    /// Index of the parent conversation in the play.
    parent: Option<usize>,
    /// The branch index in the parent (for joins).
    branch: Option<usize>,
    id: Arc<str>,
    xcorr: Arc<str>,
    hash: u64,
    prompt: ConvPrompt,
    /// Next turn to dispatch.
    next: usize,
    /// Turns that stay warmup (dispatched before profiling), exclusive bound.
    warmup_until: usize,
    /// Completion time of its last turn.
    prev_done: Option<Instant>,
    /// Waiting for children to join before `next`.
    waiting: bool,
    /// Latest completion among joined children, and their latest recorded end.
    join_done: Option<Instant>,
    join_rec_end: f64,
    finished: bool,
    armed: Option<Armed>,
    in_flight: bool,
    /// Branches of this conversation that were started (others are skipped).
    started: Vec<bool>,
    /// Children still running, per branch index.
    live_children: Vec<bool>,
}

/// One play of a trace on a lane.
struct Play {
    trace: usize,
    gen: u64,
    marker: Arc<str>,
    convs: Vec<ConvRun>,
    in_flight: u32,
    /// Seen-set for the theoretical prefix cache (scope `play`).
    seen: Vec<u64>,
    /// Still in its warmup sequence.
    warming: bool,
    /// Root turn profiling resumes from.
    profile_from: usize,
}

fn conv_at<'a>(tr: &'a Trace, path: &[usize]) -> &'a Conv {
    let mut c = &tr.root;
    for &b in path {
        c = &c.branches[b].child;
    }
    c
}

fn gap(c: &Conv, i: usize) -> f64 {
    if i == 0 {
        return 0.0;
    }
    let p = &c.turns[i - 1];
    (c.turns[i].t - (p.t + f64::from(p.api_time))).max(0.0)
}

fn uuid_like(h: u64, h2: u64) -> String {
    let a = format!("{h:016x}{h2:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &a[0..8],
        &a[8..12],
        &a[12..16],
        &a[16..20],
        &a[20..32]
    )
}

fn secs(d: f64) -> Duration {
    Duration::from_secs_f64(d.clamp(0.0, 1e9))
}

/// The scheduler's state.
struct Sched {
    cfg: Arc<ReplayConfig>,
    corpus: Arc<Corpus>,
    words: Arc<Words>,
    epoch: Instant,
    lanes: Vec<Option<Play>>,
    passes: Vec<u64>,
    heap: BinaryHeap<Reverse<Timer>>,
    seq: u64,
    global_shift: u64,
    in_flight: HashMap<ReqKey, Flight>,
    /// Driver request ids of the armed and sent requests.
    ids: HashMap<ReqId, ReqKey>,
    next_id: ReqId,
    gen: u64,
    rng: SplitMix,
    order: Vec<usize>,
    order_pos: usize,
    /// Seen-sets per trace (scope `trace`).
    trace_seen: HashMap<usize, Vec<u64>>,
    t0: Option<Instant>,
    stop_at: Option<Instant>,
    stopping: bool,
    res: ReplayResult,
    prof_total: u64,
    prof_failed: u64,
    /// The latest profiling TTFT observation and the latest end of a profiling request with
    /// an inter-token interval (the coverage watchdog's two signals).
    last_ttft: Option<Instant>,
    last_itl: Option<Instant>,
    /// The counters the progress ticker and an interrupted run's record read (atomics and
    /// one compact record per finished profiling request, never anything per token).
    counters: Arc<Progress>,
    /// Until when the phase start waits for lanes still warming (`--warmup-grace-period`).
    warm_deadline: Instant,
    /// Phase changes for the operator.
    say: Option<ProgressFn>,
}

impl Sched {
    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }
    fn at(&self, raw: u64) -> Instant {
        self.epoch + Duration::from_nanos(raw.saturating_sub(self.global_shift))
    }

    fn next_trace(&mut self) -> usize {
        let n = self.corpus.traces.len();
        match self.cfg.sampler {
            Sampler::Random => (self.rng.next_u64() % n as u64) as usize,
            Sampler::Sequential | Sampler::Shuffle => {
                if self.order_pos >= n {
                    self.order_pos = 0;
                    if self.cfg.sampler == Sampler::Shuffle {
                        shuffle(&mut self.order, &mut self.rng);
                    }
                }
                self.order_pos += 1;
                self.order[self.order_pos - 1]
            }
        }
    }

    fn new_conv(
        &self,
        lane: usize,
        gen: u64,
        tr: &Trace,
        path: Vec<usize>,
        parent: Option<usize>,
        branch: Option<usize>,
    ) -> ConvRun {
        let c = conv_at(tr, &path);
        let id: Arc<str> = format!("{}{}", tr.id, c.suffix).into();
        let hash = prompt::name_hash(&id) ^ gen.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let x = uuid_like(
            self.cfg.run_id ^ hash,
            (lane as u64) << 32 ^ self.passes[lane] ^ prompt::name_hash(&c.suffix),
        );
        ConvRun {
            path,
            parent,
            branch,
            id,
            xcorr: x.into(),
            hash,
            prompt: ConvPrompt::default(),
            next: 0,
            warmup_until: 0,
            prev_done: None,
            waiting: false,
            join_done: None,
            join_rec_end: 0.0,
            finished: false,
            armed: None,
            in_flight: false,
            started: vec![false; c.branches.len()],
            live_children: vec![false; c.branches.len()],
        }
    }

    /// Start a play of `trace` on `lane`. `initial`: the trajectory start and warmup apply.
    fn start_play(
        &mut self,
        cx: &mut Ctx<'_>,
        lane: usize,
        trace: usize,
        initial: bool,
        now: Instant,
    ) {
        self.gen += 1;
        let gen = self.gen;
        let corpus = self.corpus.clone();
        let tr = &corpus.traces[trace];
        let marker: Arc<str> =
            prompt::marker(self.cfg.run_id, self.passes[lane], lane, &tr.id).into();
        let root = self.new_conv(lane, gen, tr, vec![], None, None);
        let mut play = Play {
            trace,
            gen,
            marker,
            convs: vec![root],
            in_flight: 0,
            seen: vec![0; (tr.id_space as usize).div_ceil(64)],
            warming: false,
            profile_from: 0,
        };
        self.res.plays += 1;
        let n = tr.root.turns.len();
        if initial && (self.cfg.warmup_per_lane > 0 || self.cfg.start_max > 0.0) {
            let mut r = SplitMix(self.cfg.seed ^ (lane as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
            let ratio = self.cfg.start_min + (self.cfg.start_max - self.cfg.start_min) * r.unit();
            let hi = ((self.cfg.start_max * n as f64) as usize).min(n.saturating_sub(2));
            let s = match self.cfg.start_basis {
                StartBasis::Turns => (ratio * n as f64) as usize,
                StartBasis::Time => {
                    let span = tr.root.turns[n - 1].t;
                    tr.root
                        .turns
                        .iter()
                        .position(|t| t.t >= ratio * span)
                        .unwrap_or(n - 1)
                }
            }
            .min(hi);
            let w = self.cfg.warmup_per_lane.min(n.saturating_sub(s + 1));
            // Advance the prompt through the turns before the primer without sending.
            let primer = s.checked_sub(1);
            {
                let root = &mut play.convs[0];
                let upto = primer.unwrap_or(0);
                for _ in 0..upto {
                    root.prompt
                        .plan(tr, &tr.root, tr.root.system_blocks, root.hash);
                }
                root.next = upto;
                root.warmup_until = s + w;
                // Subagents spawned before the profiling start are skipped.
                for (b, br) in tr.root.branches.iter().enumerate() {
                    if br.anchor + 1 < s + w {
                        root.started[b] = true;
                    }
                }
            }
            play.warming = root_next_is_warmup(&play);
            play.profile_from = s + w;
        }
        let go = play.warming || self.t0.is_some();
        if self.lanes[lane].is_none() {
            self.counters.live_sessions.fetch_add(1, Relaxed);
        }
        self.lanes[lane] = Some(play);
        if go {
            self.arm(cx, lane, 0, now);
        }
    }

    /// Plan the conversation's next turn, render its body in a task, and set its timer.
    fn arm(&mut self, cx: &mut Ctx<'_>, lane: usize, ci: usize, due: Instant) {
        if self.stopping {
            return;
        }
        let raw_due = self.ns(due) + self.global_shift;
        let corpus = self.corpus.clone();
        let play = self.lanes[lane].as_mut().expect("live play");
        let tr = &corpus.traces[play.trace];
        let parent_xcorr = play.convs[ci].parent.map(|p| play.convs[p].xcorr.clone());
        let c = &mut play.convs[ci];
        let conv = conv_at(tr, &c.path);
        let turn = c.next;
        c.next = turn + 1;
        let t = &conv.turns[turn];
        let phase = if turn < c.warmup_until && ci == 0 {
            Phase::Warmup
        } else {
            Phase::Profiling
        };
        let plan: Plan = c.prompt.plan(tr, conv, conv.system_blocks, c.hash);
        let plan_tokens = plan.tokens;
        // The theoretical prefix cache: ids seen before in this play (or trace).
        let seen = match self.cfg.cache_scope {
            CacheScope::Play => &mut play.seen,
            CacheScope::Trace => self
                .trace_seen
                .entry(play.trace)
                .or_insert_with(|| vec![0; (tr.id_space as usize).div_ceil(64)]),
        };
        let mut hits = 0u64;
        for &id in &plan.ids {
            let (w, b) = (id as usize / 64, id % 64);
            if seen[w] >> b & 1 == 1 {
                hits += 1;
            }
            seen[w] |= 1 << b;
        }
        if phase == Phase::Profiling {
            self.res.cache_hits += hits;
            self.res.cache_blocks += plan.ids.len() as u64;
        }
        let max_tokens = if phase == Phase::Warmup { 1 } else { t.output };
        if let Some(cap) = self.cfg.max_context {
            if u64::from(plan.tokens) + u64::from(max_tokens) > cap {
                // Not sent: a context overflow that ends this conversation.
                if phase == Phase::Profiling {
                    self.res.overflow_skipped += 1;
                }
                c.next = conv.turns.len();
                self.finish_conv(cx, lane, ci, Instant::now());
                return;
            }
        }
        let key = ReqKey {
            lane: lane as u32,
            gen: play.gen,
            conv: ci as u32,
            turn: turn as u32,
        };
        let words = self.words.clone();
        let body_spec = self.cfg.body.clone();
        let marker = play.marker.clone();
        let ns = prompt::name_hash(&tr.id);
        let headers = self.cfg.routing.build(&c.xcorr, parent_xcorr.as_ref());
        self.next_id += 1;
        let id = self.next_id;
        self.ids.insert(id, key);
        let counted = match phase {
            Phase::Warmup => Counted::Warmup,
            Phase::Profiling => Counted::Timed(None),
        };
        let req = cx.arm(id, counted, move || Request {
            body: prompt::render(&words, &body_spec, ns, &plan, &marker, max_tokens),
            headers,
            prompt_len: plan.tokens,
            output_len: max_tokens,
        });
        self.seq += 1;
        c.armed = Some(Armed {
            req,
            id,
            phase,
            expected_osl: max_tokens,
            tokens: plan_tokens,
            raw_due,
            seq: self.seq,
        });
        self.heap.push(Reverse((
            raw_due,
            self.seq,
            lane as u32,
            play.gen,
            ci as u32,
        )));
    }

    /// A timer fired: send the armed request.
    fn fire(&mut self, cx: &mut Ctx<'_>, lane: usize, gen: u64, ci: usize, seq: u64) {
        if self.stopping {
            return;
        }
        let Some(play) = self.lanes[lane].as_mut() else {
            return;
        };
        if play.gen != gen {
            return;
        }
        let c = &mut play.convs[ci];
        if c.armed.as_ref().map(|a| a.seq) != Some(seq) {
            return;
        }
        let a = c.armed.take().expect("armed");
        let due = self.epoch + Duration::from_nanos(a.raw_due.saturating_sub(self.global_shift));
        let key = ReqKey {
            lane: lane as u32,
            gen,
            conv: ci as u32,
            turn: c.next as u32 - 1,
        };
        cx.fire(a.req);
        c.in_flight = true;
        play.in_flight += 1;
        self.in_flight.insert(
            key,
            Flight {
                phase: a.phase,
                expected_osl: a.expected_osl,
                tokens: a.tokens,
                due,
                sent: Instant::now(),
            },
        );
    }

    fn finish_conv(&mut self, cx: &mut Ctx<'_>, lane: usize, ci: usize, now: Instant) {
        let corpus = self.corpus.clone();
        let play = self.lanes[lane].as_mut().expect("live play");
        let tr = &corpus.traces[play.trace];
        play.convs[ci].finished = true;
        if let (Some(p), Some(b)) = (play.convs[ci].parent, play.convs[ci].branch) {
            play.convs[p].live_children[b] = false;
            let rec_end = {
                let c = conv_at(tr, &play.convs[ci].path);
                c.turns.last().map_or(0.0, |t| t.t + f64::from(t.api_time))
            };
            let pc = &mut play.convs[p];
            pc.join_done = Some(pc.join_done.map_or(now, |d| d.max(now)));
            pc.join_rec_end = pc.join_rec_end.max(rec_end);
            if pc.waiting {
                self.try_next(cx, lane, p, now);
            }
        }
        self.maybe_drained(cx, lane, now);
    }

    /// Schedule the conversation's next turn unless it waits for joins.
    fn try_next(&mut self, cx: &mut Ctx<'_>, lane: usize, ci: usize, now: Instant) {
        let corpus = self.corpus.clone();
        let play = self.lanes[lane].as_mut().expect("live play");
        let tr = &corpus.traces[play.trace];
        let c = &mut play.convs[ci];
        let conv = conv_at(tr, &c.path);
        if c.next >= conv.turns.len() {
            if !c.finished && !c.in_flight {
                self.finish_conv(cx, lane, ci, now);
            }
            return;
        }
        let j = c.next;
        let pending = conv
            .branches
            .iter()
            .enumerate()
            .any(|(b, br)| br.join == Some(j) && c.live_children[b]);
        if pending {
            c.waiting = true;
            return;
        }
        c.waiting = false;
        let warm = j < c.warmup_until && ci == 0;
        let due = if warm {
            now
        } else {
            let base = c.prev_done.unwrap_or(now) + secs(gap(conv, j));
            match c.join_done.take() {
                Some(jd) => {
                    let after = (conv.turns[j].t - c.join_rec_end).max(0.0);
                    base.max(jd + secs(after))
                }
                None => base,
            }
        };
        let due = if !warm && j == play.profile_from && ci == 0 {
            // The first profiling turn waits its recorded gap after the phase start.
            match self.t0 {
                Some(t0) => t0 + secs(gap(conv, j)),
                None => due,
            }
        } else {
            due
        };
        self.arm(cx, lane, ci, due.max(now));
    }

    /// Spawn the branches anchored at `turn` of conversation `ci`.
    fn spawn_children(
        &mut self,
        cx: &mut Ctx<'_>,
        lane: usize,
        ci: usize,
        turn: usize,
        now: Instant,
    ) {
        let corpus = self.corpus.clone();
        let tr = &corpus.traces[self.lanes[lane].as_ref().unwrap().trace];
        let path = self.lanes[lane].as_ref().unwrap().convs[ci].path.clone();
        let conv = conv_at(tr, &path);
        for (b, br) in conv.branches.iter().enumerate() {
            if br.anchor != turn || self.lanes[lane].as_ref().unwrap().convs[ci].started[b] {
                continue;
            }
            let gen = self.lanes[lane].as_ref().unwrap().gen;
            let mut p = path.clone();
            p.push(b);
            let child = self.new_conv(lane, gen, tr, p, Some(ci), Some(b));
            let play = self.lanes[lane].as_mut().unwrap();
            play.convs[ci].started[b] = true;
            play.convs[ci].live_children[b] = true;
            play.convs.push(child);
            let idx = play.convs.len() - 1;
            // AIPerf: the child's recorded offset from its spawn group's start.
            let off = (br.child.turns[0].t - br.start).max(0.0);
            self.arm(cx, lane, idx, now + secs(off));
        }
    }

    fn maybe_drained(&mut self, cx: &mut Ctx<'_>, lane: usize, now: Instant) {
        let Some(play) = self.lanes[lane].as_ref() else {
            return;
        };
        if play.in_flight > 0 || play.convs.iter().any(|c| !c.finished) {
            return;
        }
        self.lanes[lane] = None;
        self.counters.live_sessions.fetch_sub(1, Relaxed);
        if self.t0.is_some() && !self.stopping {
            // Recycle: the next trace from turn 0 with a fresh marker.
            self.passes[lane] += 1;
            let t = self.next_trace();
            self.start_play(cx, lane, t, false, now);
        }
    }

    /// A request finished.
    fn complete(&mut self, cx: &mut Ctx<'_>, d: Done, now: Instant) {
        let Some(f) = self.in_flight.remove(&d.key) else {
            return;
        };
        let lane = d.key.lane as usize;
        let o = d.outcome;
        let overflow = !o.success && is_context_overflow(&o.error);
        let rec = self.record(&d.key, &f, &o, overflow);
        if self.t0.is_some() && rec.phase == Phase::Profiling && rec.error.is_none() {
            self.mark_coverage(&o);
        }
        let phase = rec.phase;
        let failed = rec.error.is_some();
        self.res.records.push(rec);
        let Some(play) = self.lanes[lane].as_mut() else {
            return;
        };
        if play.gen != d.key.gen {
            return;
        }
        play.in_flight -= 1;
        let ci = d.key.conv as usize;
        let is_root = ci == 0;
        play.convs[ci].in_flight = false;
        play.convs[ci].prev_done = Some(now);
        if phase == Phase::Profiling {
            self.prof_total += 1;
            if failed {
                self.prof_failed += 1;
            }
            if overflow {
                self.res.overflow_errors += 1;
            }
            let armed_after = self.cfg.lanes.max(10) as u64;
            if self.prof_total >= armed_after
                && self.prof_failed as f64 > self.cfg.failed_threshold * self.prof_total as f64
            {
                self.res.aborted = Some(format!(
                    "failed-request threshold exceeded: {} of {} profiling requests failed (> {:.0} %)",
                    self.prof_failed,
                    self.prof_total,
                    self.cfg.failed_threshold * 100.0
                ));
                return;
            }
        } else if failed && is_root && !overflow {
            // (A context overflow in warmup ends the conversation like in profiling: it is
            // a property of the trace against this engine's window, not a broken engine.)
            self.res.aborted = Some(format!(
                "warmup request of root conversation {} (turn {}) failed: {}",
                play.convs[ci].id, d.key.turn, o.error
            ));
            return;
        }
        if overflow {
            // A context overflow ends the conversation.
            let corpus = self.corpus.clone();
            let tr = &corpus.traces[play.trace];
            let n = conv_at(tr, &play.convs[ci].path).turns.len();
            play.convs[ci].next = n;
        }
        if is_root && play.warming && play.convs[0].next >= play.profile_from {
            // Warmup done.
            play.warming = false;
            if self.t0.is_none() {
                // The phase start arms the next turn and the subagents of this one.
                return;
            }
        }
        self.spawn_children(cx, lane, ci, d.key.turn as usize, now);
        self.try_next(cx, lane, ci, now);
        self.cap_tree(lane, now);
    }

    /// The per-tree idle cap: when a tree has nothing in flight, its timers fire within the cap.
    fn cap_tree(&mut self, lane: usize, now: Instant) {
        let Some(cap) = self.cfg.tree_idle_cap else {
            return;
        };
        let limit = self.ns(now) + cap.as_nanos() as u64 + self.global_shift;
        let Some(play) = self.lanes[lane].as_mut() else {
            return;
        };
        if play.in_flight > 0 {
            return;
        }
        let earliest = play
            .convs
            .iter()
            .filter_map(|c| c.armed.as_ref().map(|a| a.raw_due))
            .min();
        let Some(e) = earliest else { return };
        if e <= limit {
            return;
        }
        let delta = e - limit;
        for (ci, c) in play.convs.iter_mut().enumerate() {
            if let Some(a) = c.armed.as_mut() {
                self.seq += 1;
                a.raw_due -= delta;
                a.seq = self.seq;
                self.heap.push(Reverse((
                    a.raw_due,
                    a.seq,
                    lane as u32,
                    play.gen,
                    ci as u32,
                )));
            }
        }
    }

    /// Note a successful profiling request's observations for the coverage watchdog: its
    /// first token (TTFT) and, when it had an inter-token interval, its end (AIPerf times an
    /// ITL observation at `request_end_ns`).
    fn mark_coverage(&mut self, o: &Outcome) {
        let Some(sent) = o.sent else { return };
        let ttft_at = sent + secs(o.ttft);
        self.last_ttft = Some(self.last_ttft.map_or(ttft_at, |t| t.max(ttft_at)));
        if !o.itl.is_empty() {
            let end = o.end.unwrap_or(sent + secs(o.latency));
            self.last_itl = Some(self.last_itl.map_or(end, |t| t.max(end)));
        }
    }

    fn record(&self, key: &ReqKey, f: &Flight, o: &Outcome, overflow: bool) -> Record {
        let play = self.lanes[key.lane as usize]
            .as_ref()
            .filter(|p| p.gen == key.gen);
        let (cid, xc) = match play {
            Some(p) => (
                p.convs[key.conv as usize].id.clone(),
                p.convs[key.conv as usize].xcorr.clone(),
            ),
            None => ("".into(), "".into()),
        };
        let error = (!o.success).then(|| {
            let code = o
                .error
                .strip_prefix("HTTP ")
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse().ok());
            RecError {
                kind: if overflow {
                    "ContextOverflow"
                } else if code.is_some() {
                    "HTTPError"
                } else {
                    "StreamError"
                },
                code,
                message: o.error.clone(),
            }
        });
        Record {
            conversation_id: cid,
            turn_index: key.turn,
            x_correlation_id: xc,
            lane: key.lane,
            phase: f.phase,
            start: o.sent.unwrap_or(f.sent),
            ack: o.ack,
            end: o.end,
            due: f.due,
            cancelled: false,
            ttft: o.success.then_some(o.ttft),
            latency: o.success.then_some(o.latency),
            isl: o.prompt_tokens.unwrap_or(u64::from(f.tokens)),
            osl: o
                .success
                .then(|| o.output_tokens.unwrap_or((o.itl.len() + 1) as u64)),
            expected_osl: f.expected_osl,
            error,
        }
    }

    /// Start profiling: every lane's first profiling turn is due its gap after now, and the
    /// subagents spawned by its last warmup turn start at their offsets.
    fn begin_profiling(&mut self, cx: &mut Ctx<'_>, now: Instant) {
        self.t0 = Some(now);
        let _ = self.counters.window_start.set(now);
        self.stop_at = Some(now + self.cfg.duration);
        for lane in 0..self.lanes.len() {
            if self.lanes[lane].is_none() {
                // Its tree drained during warmup: the next trace, from turn 0.
                self.passes[lane] += 1;
                let t = self.next_trace();
                self.start_play(cx, lane, t, false, now);
                continue;
            }
            let Some(play) = self.lanes[lane].as_mut() else {
                continue;
            };
            if play.warming {
                // Still warming after the warmup grace: it continues from its own end.
                continue;
            }
            let root = &play.convs[0];
            if root.in_flight || root.finished || root.armed.is_some() {
                continue;
            }
            let anchor = play.profile_from.checked_sub(1);
            if let Some(a) = anchor {
                self.spawn_children(cx, lane, 0, a, now);
            }
            self.try_next(cx, lane, 0, now);
            self.cap_tree(lane, now);
        }
    }

    fn next_timer(&self) -> Option<Timer> {
        self.heap.peek().map(|r| r.0)
    }
}

/// AIPerf's profile-metric duration coverage of one signal: how far into the configured
/// window (`duration` from `t0`) its last observation reaches, capped at 1; 0 without one.
/// It measures reach, not occupancy: idle stretches inside the window (every lane thinking)
/// cost nothing, a server that stopped answering before the end does.
fn duration_coverage(t0: Option<Instant>, last: Option<Instant>, duration: Duration) -> f64 {
    match (t0, last) {
        (Some(t0), Some(t)) if !duration.is_zero() => {
            (t.saturating_duration_since(t0).as_secs_f64() / duration.as_secs_f64()).min(1.0)
        }
        (Some(_), Some(_)) => 1.0,
        _ => 0.0,
    }
}

fn root_next_is_warmup(p: &Play) -> bool {
    p.convs[0].next < p.convs[0].warmup_until
}

fn shuffle(v: &mut [usize], rng: &mut SplitMix) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Run the replay to the end of its window (blocking: call from a blocking thread). Request
/// tasks run on `rt`.
pub fn run(
    cfg: ReplayConfig,
    corpus: Arc<Corpus>,
    words: Arc<Words>,
    rt: tokio::runtime::Handle,
    progress: Option<ProgressFn>,
    counters: Arc<Progress>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<ReplayResult, ReplayError> {
    if corpus.traces.is_empty() {
        return Err(ReplayError::Empty);
    }
    if cfg.lanes == 0 {
        return Err(ReplayError::NoLanes);
    }
    let epoch = Instant::now();
    let wall_epoch_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = corpus.traces.len();
    let mut rng = SplitMix(cfg.seed ^ 0x5EED);
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, &mut rng);
    let lanes = cfg.lanes;
    let mut drive = Drive::new(
        Arc::new(cfg.target.clone()),
        crate::client::load::http_client(),
        counters.clone(),
    );
    drive.stop = stop;
    let s = Sched {
        warm_deadline: epoch + cfg.warmup_grace,
        cfg: Arc::new(cfg),
        corpus,
        words,
        epoch,
        lanes: (0..lanes).map(|_| None).collect(),
        passes: vec![0; lanes],
        heap: BinaryHeap::new(),
        seq: 0,
        global_shift: 0,
        in_flight: HashMap::new(),
        ids: HashMap::new(),
        next_id: 0,
        gen: 0,
        rng,
        order,
        order_pos: 0,
        trace_seen: HashMap::new(),
        t0: None,
        stop_at: None,
        stopping: false,
        res: ReplayResult {
            epoch: Some(epoch),
            wall_epoch_ns,
            ..ReplayResult::default()
        },
        prof_total: 0,
        prof_failed: 0,
        last_ttft: None,
        last_itl: None,
        counters,
        say: progress,
    };
    Ok(driver::run(s, &drive, &rt).0)
}

impl Sched {
    fn say(&self, m: &str) {
        if let Some(p) = &self.say {
            p(m)
        }
    }
}

/// The agentic workload on the load driver: lanes start at their trajectory start, warm up,
/// and replay their session trees on the timer heap until the window (and its grace) ends.
impl Workload for Sched {
    type Output = ReplayResult;

    fn start(&mut self, cx: &mut Ctx<'_>, now: Instant) {
        // Lanes start on distinct traces, wrapping when there are more lanes than traces.
        let epoch = self.epoch.min(now);
        for lane in 0..self.lanes.len() {
            let t = self.next_trace();
            self.start_play(cx, lane, t, true, epoch);
        }
        self.say(&format!("warmup: {} lanes", self.lanes.len()));
    }

    fn next_due(&self) -> Option<Instant> {
        let mut due = self.heap.peek().map(|r| self.at(r.0 .0));
        let mut at = |t: Instant| due = Some(due.map_or(t, |d| d.min(t)));
        match (self.t0, self.stop_at) {
            (None, _) => at(self.warm_deadline),
            (Some(_), Some(stop)) if self.stopping => at(stop + self.cfg.grace),
            (Some(_), Some(stop)) => at(stop),
            _ => {}
        }
        due
    }

    fn wake(&mut self, cx: &mut Ctx<'_>, now: Instant) {
        if self.res.aborted.is_some() {
            return;
        }
        if self.t0.is_none() {
            let warming = self.lanes.iter().flatten().any(|p| p.warming);
            if !warming || now >= self.warm_deadline {
                self.say("profiling");
                self.begin_profiling(cx, now);
            }
        }
        if let Some(stop) = self.stop_at {
            if !self.stopping && now >= stop {
                self.stopping = true;
                self.res.window_end = Some(now);
                // Nothing new is sent; pending bodies are dropped.
                for p in self.lanes.iter_mut().flatten() {
                    for c in &mut p.convs {
                        if let Some(a) = c.armed.take() {
                            self.ids.remove(&a.id);
                        }
                    }
                }
                self.heap.clear();
            }
        }
        // Fire everything due.
        while let Some((raw, seq, lane, gen, ci)) = self.next_timer() {
            if self.at(raw) > now {
                break;
            }
            self.heap.pop();
            self.fire(cx, lane as usize, gen, ci as usize, seq);
        }
        // The global idle cap (profiling only).
        if self.t0.is_some() && self.in_flight.is_empty() && !self.stopping {
            if let Some((raw, ..)) = self.next_timer() {
                let due = self.at(raw);
                let cap = self.cfg.system_idle_cap;
                if due > now + cap {
                    self.global_shift += (due - (now + cap)).as_nanos() as u64;
                }
            }
        }
    }

    fn completed(&mut self, cx: &mut Ctx<'_>, id: ReqId, outcome: Outcome, now: Instant) {
        if let Some(key) = self.ids.remove(&id) {
            self.complete(cx, Done { key, outcome }, now);
        }
    }

    fn done(&self, _cx: &Ctx<'_>) -> bool {
        if self.res.aborted.is_some() {
            return true;
        }
        match self.stop_at {
            Some(stop) if self.stopping => {
                self.in_flight.is_empty() || Instant::now() >= stop + self.cfg.grace
            }
            _ => false,
        }
    }

    fn finish(mut self, now: Instant) -> ReplayResult {
        let s = &mut self;
        // Cancel what is left (the driver has aborted the requests in flight).
        for p in s.lanes.iter_mut().flatten() {
            for c in &mut p.convs {
                c.armed.take();
            }
        }
        let left: Vec<(ReqKey, Flight)> = s.in_flight.drain().collect();
        for (key, f) in left {
            if s.cfg.record_cancelled && f.phase == Phase::Profiling {
                let o = Outcome {
                    error: "request cancelled at the end of the grace period".into(),
                    sent: Some(f.sent),
                    ..Outcome::default()
                };
                let mut r = s.record(&key, &f, &o, false);
                r.cancelled = true;
                r.end = Some(now);
                r.error = Some(RecError {
                    kind: "RequestCancellationError",
                    code: Some(499),
                    message: o.error.clone(),
                });
                s.res.records.push(r);
            }
        }
        s.res.t0 = s.t0;
        s.res.ended = Some(now);
        if s.res.window_end.is_none() {
            s.res.window_end = Some(now);
        }
        let d = s.cfg.duration;
        s.res.coverage_ttft = duration_coverage(s.t0, s.last_ttft, d);
        s.res.coverage_itl = duration_coverage(s.t0, s.last_itl, d);
        s.res.coverage = s.res.coverage_ttft.max(s.res.coverage_itl);
        s.res.lateness = s
            .res
            .records
            .iter()
            .filter(|r| r.phase == Phase::Profiling && !r.cancelled)
            .map(|r| r.start.saturating_duration_since(r.due).as_secs_f64())
            .collect();
        s.res.records.sort_by_key(|r| r.start);
        std::mem::take(&mut s.res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AIPerf's own cases (`profile_metric_duration_coverage`, window at 100 s for 100 s):
    /// a TTFT observed at 148 s reaches 0.48, a request ending at 199 s 0.99, one at the
    /// threshold passes, and observations past the window cap at 1.
    #[test]
    fn duration_coverage_is_reach_not_occupancy() {
        let t0 = Instant::now();
        let at = |s: f64| Some(t0 + Duration::from_secs_f64(s));
        let d = Duration::from_secs(100);
        let c = |s| duration_coverage(Some(t0), at(s), d);
        assert!((c(48.0) - 0.48).abs() < 1e-9);
        assert!((c(99.0) - 0.99).abs() < 1e-9);
        assert!(c(98.0) >= 0.98);
        assert_eq!(c(130.0), 1.0);
        assert_eq!(duration_coverage(Some(t0), None, d), 0.0);
        assert_eq!(duration_coverage(None, at(50.0), d), 0.0);
    }
}
