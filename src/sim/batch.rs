//! The continuous-batching latency model: one scheduler task runs engine steps like vLLM's
//! (decode first, then chunked prefill within the step's token budget, FIFO admission up to
//! the batch size and the KV pool) and tells each request's response body when its next
//! token exists.
//!
//! Admission consults the prefix cache (`sim::kvcache`): only the uncached part of a prompt
//! is prefilled, so a conversation's next turn reaches its first token sooner when its
//! prefix is still cached. Tokens found on the CPU offload tier are loaded first: the
//! request waits its load time without taking part in steps (the load runs beside them, as
//! an offloading connector's does).

use super::config::BatchTiming;
use super::kvcache::KvModel;
use super::metrics::Metrics;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A request handed to the scheduler.
pub(crate) struct Job {
    /// Tokens in the prompt.
    pub prompt_len: u32,
    /// Chained hashes of the prompt's full blocks (empty when the cache is off).
    pub blocks: Vec<u64>,
    /// Tokens to generate (known in advance: the output is deterministic).
    pub n_out: u32,
    /// One message per generated token; a closed receiver cancels the job.
    pub tx: mpsc::UnboundedSender<()>,
}

struct Seq {
    prompt_len: u32,
    blocks: Vec<u64>,
    prefill_left: u32,
    out_left: u32,
    /// Tokens generated so far.
    generated: u32,
    /// KV tokens reserved at admission (prompt + output).
    reserved: u64,
    /// Loading its CPU-tier hits until then.
    ready_at: Option<Instant>,
    chunk: u32,
    tx: mpsc::UnboundedSender<()>,
}

impl Seq {
    fn new(j: Job) -> Seq {
        Seq {
            prompt_len: j.prompt_len,
            blocks: j.blocks,
            prefill_left: j.prompt_len.max(1),
            out_left: j.n_out,
            generated: 0,
            reserved: u64::from(j.prompt_len) + u64::from(j.n_out),
            ready_at: None,
            chunk: 0,
            tx: j.tx,
        }
    }

    fn live(&self) -> bool {
        self.out_left > 0 && !self.tx.is_closed()
    }
}

/// Start the scheduler task on the current runtime; it ends when every sender is dropped.
pub(crate) fn spawn(
    t: BatchTiming,
    kv: KvModel,
    metrics: Arc<Metrics>,
) -> mpsc::UnboundedSender<Job> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(rx, t, kv, metrics));
    tx
}

/// Duration of one engine step.
pub fn step_time(t: &BatchTiming, seqs: u32, prefill_tokens: u32) -> Duration {
    let ms = t.step_base_ms
        + t.step_per_sqrt_seq_ms * f64::from(seqs).sqrt()
        + t.step_per_prefill_token_ms * f64::from(prefill_tokens);
    Duration::from_secs_f64(ms / 1000.0)
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Job>,
    t: BatchTiming,
    mut kv: KvModel,
    m: Arc<Metrics>,
) {
    let mut waiting: VecDeque<Seq> = VecDeque::new();
    let mut running: Vec<Seq> = Vec::new();
    let mut clock = Instant::now();
    // KV tokens reserved by running requests; admission keeps it within the pool.
    let mut reserved: u64 = 0;
    // KV tokens running requests hold now (prompt + output so far), for the usage gauges.
    let mut held: u64 = 0;
    let pool = kv.gpu_tokens;
    loop {
        if running.is_empty() && waiting.is_empty() {
            m.running.store(0, Relaxed);
            m.waiting.store(0, Relaxed);
            m.kv_used_tokens.store(0, Relaxed);
            match rx.recv().await {
                Some(j) => waiting.push_back(Seq::new(j)),
                None => return,
            }
            // The engine was idle: steps start now, not at the last step's end.
            clock = Instant::now();
        }
        while let Ok(j) = rx.try_recv() {
            waiting.push_back(Seq::new(j));
        }
        while running.len() < t.max_batch as usize {
            let Some(s) = waiting.front() else { break };
            if !s.live() {
                waiting.pop_front();
                continue;
            }
            // Wait for memory, unless nothing runs (a prompt larger than the pool still runs
            // alone rather than never).
            if pool > 0 && reserved + s.reserved > pool && !running.is_empty() {
                break;
            }
            let mut s = waiting.pop_front().expect("front exists");
            let a = kv.admit(&s.blocks, s.prompt_len);
            s.prefill_left = a.hit.computed.max(1);
            if !a.load.is_zero() {
                s.ready_at = Some(clock + a.load);
            }
            reserved += s.reserved;
            held += u64::from(s.prompt_len);
            running.push(s);
        }
        m.running.store(running.len() as u64, Relaxed);
        m.waiting.store(waiting.len() as u64, Relaxed);
        m.kv_used_tokens.store(held, Relaxed);
        let mut budget = t.max_batched_tokens;
        let mut seqs = 0;
        for s in running.iter_mut() {
            s.chunk = 0;
            if s.ready_at.is_some_and(|r| r > clock) {
                continue;
            }
            s.ready_at = None;
            if s.prefill_left == 0 {
                budget -= 1;
                seqs += 1;
            }
        }
        let mut prefill = 0;
        for s in running
            .iter_mut()
            .filter(|s| s.prefill_left > 0 && s.ready_at.is_none())
        {
            s.chunk = s.prefill_left.min(budget);
            budget -= s.chunk;
            prefill += s.chunk;
            if s.chunk > 0 {
                seqs += 1;
            }
        }
        if seqs == 0 {
            // Only loads in progress: the next step starts when the first one ends.
            match running.iter().filter_map(|s| s.ready_at).min() {
                Some(r) => {
                    clock = r;
                    tokio::time::sleep_until(clock).await;
                }
                // Nothing admitted (every waiting request was gone).
                None => running.retain(Seq::live),
            }
            continue;
        }
        clock += step_time(&t, seqs, prefill);
        tokio::time::sleep_until(clock).await;
        for s in running.iter_mut() {
            if s.ready_at.is_some() {
                continue;
            }
            let emits = if s.prefill_left == 0 {
                true
            } else {
                s.prefill_left -= s.chunk;
                let done = s.chunk > 0 && s.prefill_left == 0;
                if done {
                    kv.prefilled(&s.blocks);
                    s.blocks = Vec::new();
                }
                done
            };
            if emits {
                if s.tx.send(()).is_err() {
                    s.out_left = 0;
                } else {
                    s.out_left -= 1;
                    s.generated += 1;
                    held += 1;
                }
            }
        }
        running.retain(|s| {
            let keep = s.live();
            if !keep {
                reserved -= s.reserved;
                held -= u64::from(s.prompt_len) + u64::from(s.generated);
            }
            keep
        });
    }
}
