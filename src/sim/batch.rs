//! The continuous-batching latency model: one scheduler task runs engine steps like vLLM's
//! (decode first, then chunked prefill within the step's token budget, FIFO admission up to
//! the batch size) and tells each request's response body when its next token exists.

use super::config::BatchTiming;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A request handed to the scheduler.
pub(crate) struct Job {
    /// Tokens to prefill.
    pub prompt_len: u32,
    /// Tokens to generate (known in advance: the output is deterministic).
    pub n_out: u32,
    /// One message per generated token; a closed receiver cancels the job.
    pub tx: mpsc::UnboundedSender<()>,
}

struct Seq {
    prefill_left: u32,
    out_left: u32,
    chunk: u32,
    tx: mpsc::UnboundedSender<()>,
}

/// Start the scheduler task on the current runtime; it ends when every sender is dropped.
pub(crate) fn spawn(t: BatchTiming) -> mpsc::UnboundedSender<Job> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(rx, t));
    tx
}

/// Duration of one engine step.
pub fn step_time(t: &BatchTiming, seqs: u32, prefill_tokens: u32) -> Duration {
    let ms = t.step_base_ms
        + t.step_per_sqrt_seq_ms * f64::from(seqs).sqrt()
        + t.step_per_prefill_token_ms * f64::from(prefill_tokens);
    Duration::from_secs_f64(ms / 1000.0)
}

async fn run(mut rx: mpsc::UnboundedReceiver<Job>, t: BatchTiming) {
    let mut waiting: VecDeque<Seq> = VecDeque::new();
    let mut running: Vec<Seq> = Vec::new();
    let mut clock = Instant::now();
    let seq = |j: Job| Seq {
        prefill_left: j.prompt_len.max(1),
        out_left: j.n_out,
        chunk: 0,
        tx: j.tx,
    };
    loop {
        if running.is_empty() && waiting.is_empty() {
            match rx.recv().await {
                Some(j) => waiting.push_back(seq(j)),
                None => return,
            }
            // The engine was idle: steps start now, not at the last step's end.
            clock = Instant::now();
        }
        while let Ok(j) = rx.try_recv() {
            waiting.push_back(seq(j));
        }
        while running.len() < t.max_batch as usize {
            match waiting.pop_front() {
                Some(s) if s.out_left > 0 && !s.tx.is_closed() => running.push(s),
                Some(_) => {}
                None => break,
            }
        }
        let mut budget = t.max_batched_tokens;
        let mut seqs = 0;
        for s in running.iter_mut().filter(|s| s.prefill_left == 0) {
            s.chunk = 0;
            budget -= 1;
            seqs += 1;
        }
        let mut prefill = 0;
        for s in running.iter_mut().filter(|s| s.prefill_left > 0) {
            s.chunk = s.prefill_left.min(budget);
            budget -= s.chunk;
            prefill += s.chunk;
            if s.chunk > 0 {
                seqs += 1;
            }
        }
        clock += step_time(&t, seqs, prefill);
        tokio::time::sleep_until(clock).await;
        for s in running.iter_mut() {
            let emits = if s.prefill_left == 0 {
                true
            } else {
                s.prefill_left -= s.chunk;
                s.chunk > 0 && s.prefill_left == 0
            };
            if emits {
                if s.tx.send(()).is_err() {
                    s.out_left = 0;
                } else {
                    s.out_left -= 1;
                }
            }
        }
        running.retain(|s| s.out_left > 0 && !s.tx.is_closed());
    }
}
