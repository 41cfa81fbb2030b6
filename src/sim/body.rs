//! The response body of a generation request: it waits for each token (on the exact
//! schedule or on the batching scheduler), renders it, records when it went out, and plays
//! the per-request faults (cut, stall, slow-loris). One `Sleep` per stream, one reusable
//! buffer per stream, one record handed over at the end.

use super::metrics::Metrics;
use super::model::Generator;
use super::pacer::Pacer;
use super::render::Shape;
use super::schedule::{Recorder, RequestRecord};
use super::tokenizer::Vocab;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

/// When tokens become available.
pub(crate) enum Clock {
    /// Token `k` exists at `first + k·itl`; the pacer wakes the stream on time.
    Exact {
        first: Instant,
        itl: Duration,
        pacer: Pacer,
        /// The deadline a wake-up is registered for (one registration per token).
        armed: Option<Instant>,
    },
    /// The batching scheduler sends one message per token.
    Batched(mpsc::UnboundedReceiver<()>),
}

/// Faults chosen for this request.
#[derive(Default, Clone, Copy)]
pub(crate) struct RequestFaults {
    /// Abort the connection after this many tokens.
    pub cut_after: Option<u32>,
    /// Stop after this many tokens, for this long (`None` = forever).
    pub stall_after: Option<(u32, Option<Duration>)>,
    /// Trickle the response one byte per interval.
    pub slow_loris: Option<Duration>,
}

/// A request the exact schedule serves, counted in the running gauges while it lives (the
/// batching scheduler keeps its own).
pub(crate) struct Live {
    metrics: Arc<Metrics>,
    kv_tokens: u64,
}

impl Live {
    /// Count a request holding `kv_tokens` as running.
    pub fn new(metrics: Arc<Metrics>, kv_tokens: u64) -> Self {
        Metrics::add(&metrics.running, 1);
        Metrics::add(&metrics.kv_used_tokens, kv_tokens);
        Live { metrics, kv_tokens }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics.running.fetch_sub(1, Relaxed);
        self.metrics
            .kv_used_tokens
            .fetch_sub(self.kv_tokens, Relaxed);
    }
}

/// The stream was cut on purpose (fault injection).
#[derive(Debug, thiserror::Error)]
#[error("stream cut by fault injection")]
pub struct Cut;

enum Phase {
    Tokens,
    Stalled,
    Trickle(Bytes),
    Done,
}

/// A generation response body (streamed SSE or one JSON document).
pub(crate) struct GenBody {
    shape: Shape,
    vocab: Arc<Vocab>,
    gen: Generator,
    stream: bool,
    clock: Clock,
    faults: RequestFaults,
    /// Tokens available so far (batched clock) — may run ahead of `sent`.
    available: u32,
    /// Tokens emitted so far.
    sent: u32,
    /// Delay added to the exact schedule by a finite stall.
    shift: Duration,
    phase: Phase,
    /// The cut is due; it happens at the next poll, after a flush.
    cut_armed: bool,
    sleep: Pin<Box<Sleep>>,
    buf: BytesMut,
    recorder: Arc<Recorder>,
    record: Option<RequestRecord>,
    /// Where the response's end is counted (tokens generated, finish reason).
    metrics: Arc<Metrics>,
    /// Whether EOS ends the output (else the token limit does).
    stopped: bool,
    /// The end is counted already.
    counted: bool,
    /// Held while the response lives (exact schedule only).
    _live: Option<Live>,
}

impl GenBody {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shape: Shape,
        vocab: Arc<Vocab>,
        gen: Generator,
        stream: bool,
        clock: Clock,
        faults: RequestFaults,
        recorder: Arc<Recorder>,
        id: u64,
        arrival: Instant,
        record_hash: u64,
        metrics: Arc<Metrics>,
        stopped: bool,
        live: Option<Live>,
    ) -> Self {
        let record = recorder.enabled.then(|| RequestRecord {
            id,
            prompt_hash: record_hash,
            stream,
            arrival_ns: recorder.ns(arrival.into_std()),
            send_ns: Vec::with_capacity(if stream { shape.n_out as usize } else { 1 }),
            finished: false,
        });
        let phase = match faults.slow_loris {
            Some(_) => {
                let b = if stream {
                    shape.all_chunks(&vocab, &gen).freeze()
                } else {
                    Bytes::from(shape.full(&vocab, &gen))
                };
                Phase::Trickle(b)
            }
            None => Phase::Tokens,
        };
        GenBody {
            shape,
            vocab,
            gen,
            stream,
            clock,
            faults,
            available: 0,
            sent: 0,
            shift: Duration::ZERO,
            phase,
            cut_armed: false,
            sleep: Box::pin(tokio::time::sleep_until(arrival)),
            buf: BytesMut::with_capacity(512),
            recorder,
            record,
            metrics,
            stopped,
            counted: false,
            _live: live,
        }
    }

    /// How many tokens exist now, up to `want`; `Pending` until the next one does (with
    /// `all`, until all `want` do).
    fn poll_available(&mut self, cx: &mut Context<'_>, want: u32, all: bool) -> Poll<u32> {
        match &mut self.clock {
            Clock::Exact {
                first,
                itl,
                pacer,
                armed,
            } => {
                let at = |k: u32| *first + self.shift + *itl * k;
                let next = at(if all { want - 1 } else { self.sent });
                if Instant::now() < next {
                    if *armed != Some(next) {
                        pacer.wake_at(next.into_std(), cx.waker().clone());
                        *armed = Some(next);
                    }
                    return Poll::Pending;
                }
                if all {
                    return Poll::Ready(want);
                }
                // Tokens whose time has come (at least the one waited for) go out together.
                let now = Instant::now();
                let mut n = self.sent + 1;
                while n < want && at(n) <= now {
                    n += 1;
                }
                Poll::Ready(n)
            }
            Clock::Batched(rx) => {
                while self.available < want {
                    match rx.poll_recv(cx) {
                        Poll::Ready(Some(())) => self.available += 1,
                        // The scheduler is gone (engine stopping): nothing more will come.
                        Poll::Ready(None) => return Poll::Ready(want),
                        Poll::Pending if !all && self.available > self.sent => break,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Poll::Ready(self.available.min(want))
            }
        }
    }

    fn stamp(&mut self, count: usize) {
        if let Some(r) = &mut self.record {
            let t = self.recorder.ns(std::time::Instant::now());
            r.send_ns.extend(std::iter::repeat_n(t, count));
        }
    }

    fn finish(&mut self, finished: bool) {
        if !self.counted {
            self.counted = true;
            let m = &self.metrics;
            let n = if finished {
                self.shape.n_out
            } else {
                self.sent
            };
            Metrics::add(&m.generation_tokens, u64::from(n));
            let c = match (finished, self.stopped) {
                (false, _) => &m.aborted,
                (true, true) => &m.finished_stop,
                (true, false) => &m.finished_length,
            };
            Metrics::add(c, 1);
        }
        if let Some(mut r) = self.record.take() {
            r.finished = finished;
            self.recorder.push(r);
        }
    }
}

impl Drop for GenBody {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl Body for GenBody {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Trickle(b) => {
                    if b.is_empty() {
                        this.phase = Phase::Done;
                        this.finish(true);
                        continue;
                    }
                    let gap = this.faults.slow_loris.unwrap_or_default();
                    ready!(this.sleep.as_mut().poll(cx));
                    let byte = b.split_to(1);
                    let next = Instant::now() + gap;
                    this.sleep.as_mut().reset(next);
                    return Poll::Ready(Some(Ok(Frame::data(byte))));
                }
                Phase::Stalled => {
                    ready!(this.sleep.as_mut().poll(cx));
                    this.phase = Phase::Tokens;
                }
                Phase::Tokens => {
                    let n_out = this.shape.n_out;
                    if this.faults.cut_after == Some(this.sent) && this.sent < n_out {
                        // Die when the next token would have gone out; waiting also lets
                        // the tokens before it be flushed (an error drops unflushed data).
                        ready!(this.poll_available(cx, this.sent + 1, true));
                        if !this.cut_armed {
                            // One more turn so the connection flushes what it holds.
                            this.cut_armed = true;
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        this.phase = Phase::Done;
                        return Poll::Ready(Some(Err(Cut)));
                    }
                    if let Some((k, d)) = this.faults.stall_after {
                        if k == this.sent && this.sent < n_out {
                            this.faults.stall_after = None;
                            this.phase = Phase::Stalled;
                            let d = d.unwrap_or(Duration::from_secs(86_400 * 365));
                            this.shift += d;
                            let until = Instant::now() + d;
                            this.sleep.as_mut().reset(until);
                            continue;
                        }
                    }
                    // Emit up to the next fault boundary or the end.
                    let mut want = n_out;
                    if let Some(c) = this.faults.cut_after {
                        want = want.min(c.max(this.sent + 1));
                    }
                    if let Some((k, _)) = this.faults.stall_after {
                        want = want.min(k.max(this.sent + 1));
                    }
                    if n_out == 0 {
                        // Echo with max_tokens 0: the prompt alone, right away.
                        want = 0;
                    }
                    if !this.stream {
                        // One body once every token exists; a cut or stall still happens at
                        // its token's time.
                        if want > this.sent {
                            this.sent = ready!(this.poll_available(cx, want, true));
                            if this.sent < want {
                                continue;
                            }
                        }
                        if this.sent < n_out {
                            continue;
                        }
                        let body = this.shape.full(&this.vocab, &this.gen);
                        this.stamp(1);
                        this.phase = Phase::Done;
                        this.finish(true);
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(body)))));
                    }
                    if this.sent >= n_out {
                        this.shape.tail(&mut this.buf);
                        this.phase = Phase::Done;
                        this.finish(true);
                        return Poll::Ready(Some(Ok(Frame::data(this.buf.split().freeze()))));
                    }
                    let avail = ready!(this.poll_available(cx, want, false));
                    let from = this.sent;
                    for pos in from..avail {
                        this.shape
                            .token_chunk(&mut this.buf, &this.vocab, &this.gen, pos);
                    }
                    this.sent = avail;
                    this.stamp((avail - from) as usize);
                    if this.sent == n_out {
                        this.shape.tail(&mut this.buf);
                        this.phase = Phase::Done;
                        this.finish(true);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(this.buf.split().freeze()))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
