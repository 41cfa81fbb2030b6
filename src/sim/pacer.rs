//! Sub-millisecond wake-ups for the exact schedule.
//!
//! tokio's timers tick in whole milliseconds: a token due every 2 ms fires a fraction of a
//! millisecond late each time until the lateness crosses a tick, then early, so the engine's
//! true gaps come out as 2.2 ms with every few a 1.2 ms one. A schedule the engine does not
//! keep cannot be the truth a client's ITL is judged against. The pacer is one thread that
//! sleeps on a high-resolution timer (timer slack 1 µs) until the earliest registered
//! deadline and wakes every task that is due; a stream's gaps then carry only the wake-up
//! latency, which is nearly the same for every token.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

/// A registered wake-up.
struct Due {
    at: Instant,
    /// Breaks ties so entries never compare wakers.
    seq: u64,
    waker: Waker,
}

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Due>>,
    seq: u64,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a deadline earlier than every other one arrives, or on close.
    changed: Condvar,
}

/// A handle to the pacer thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct Pacer(Arc<Owner>);

/// The handles' share of the pacer state (the thread holds the state directly), so the last
/// handle dropped closes the pacer.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.state.lock().expect("pacer lock").closed = true;
        self.0.changed.notify_one();
    }
}

impl Pacer {
    /// Start the pacer thread.
    pub fn start() -> std::io::Result<Pacer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("sim-pacer".into())
            .spawn(move || run(&s))?;
        Ok(Pacer(Arc::new(Owner(shared))))
    }

    /// Wake `waker` at `at` (at once if that has passed).
    pub fn wake_at(&self, at: Instant, waker: Waker) {
        let shared = &self.0 .0;
        let mut st = shared.state.lock().expect("pacer lock");
        let earliest = st.heap.peek().is_none_or(|Reverse(d)| at < d.at);
        st.seq += 1;
        let seq = st.seq;
        st.heap.push(Reverse(Due { at, seq, waker }));
        drop(st);
        if earliest {
            shared.changed.notify_one();
        }
    }
}

fn run(s: &Shared) {
    // Ask for hrtimer precision: the default 50 µs slack would be 2.5 % of a 2 ms gap.
    // SAFETY: prctl with PR_SET_TIMERSLACK only changes this thread's timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000u64, 0u64, 0u64, 0u64) };
    let mut due: Vec<Waker> = Vec::new();
    let mut st = s.state.lock().expect("pacer lock");
    loop {
        if st.closed {
            return;
        }
        let now = Instant::now();
        while st.heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
            let Reverse(d) = st.heap.pop().expect("peeked");
            due.push(d.waker);
        }
        if !due.is_empty() {
            drop(st);
            for w in due.drain(..) {
                w.wake();
            }
            st = s.state.lock().expect("pacer lock");
            continue;
        }
        let wait = st
            .heap
            .peek()
            .map_or(Duration::from_secs(3600), |Reverse(d)| d.at - now);
        st = s.changed.wait_timeout(st, wait).expect("pacer lock").0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Flag(AtomicUsize, Mutex<Option<Instant>>);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            *self.1.lock().unwrap() = Some(Instant::now());
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_in_deadline_order_never_early() {
        let p = Pacer::start().unwrap();
        let t0 = Instant::now();
        let flags: Vec<Arc<Flag>> = (0..5)
            .map(|_| Arc::new(Flag(AtomicUsize::new(0), Mutex::new(None))))
            .collect();
        // Registered out of order; the latest first.
        for (i, f) in flags.iter().enumerate().rev() {
            p.wake_at(
                t0 + Duration::from_millis(2 * (i as u64 + 1)),
                Waker::from(f.clone()),
            );
        }
        while flags.iter().any(|f| f.0.load(Ordering::SeqCst) == 0) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut prev = t0;
        for (i, f) in flags.iter().enumerate() {
            assert_eq!(f.0.load(Ordering::SeqCst), 1);
            let woke = f.1.lock().unwrap().unwrap();
            assert!(
                woke >= t0 + Duration::from_millis(2 * (i as u64 + 1)),
                "woke early"
            );
            assert!(woke >= prev, "out of order");
            prev = woke;
        }
    }
}
