//! The engine's record of when it really sent each token, so a client's timing error can be
//! computed exactly. Each stream keeps its own `Vec<u64>` of send times (no shared lock per
//! token) and hands it over once, when the response ends.

use serde::Serialize;
use std::sync::Mutex;
use std::time::Instant;

/// Every recorded request, with times in nanoseconds since the engine's epoch.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Schedule {
    /// The epoch on `CLOCK_MONOTONIC` (what `std::time::Instant` uses on Linux), so another
    /// process can put its own timestamps on the same axis.
    pub epoch_monotonic_ns: u64,
    /// Requests in the order their responses ended.
    pub requests: Vec<RequestRecord>,
}

/// When one request arrived and when each of its tokens was handed to the connection.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RequestRecord {
    /// Engine-wide request number (arrival order, from 0).
    pub id: u64,
    /// [`super::model::prompt_hash`] of the prompt's token ids with seed 0: lets a client
    /// pair its own requests with these records (arrival order is not send order).
    pub prompt_hash: u64,
    /// Whether the response was streamed (a non-streamed one has one send time: the body).
    pub stream: bool,
    /// Arrival of the complete request, ns since the epoch.
    pub arrival_ns: u64,
    /// Send time of each token event (streamed) or of the body, ns since the epoch.
    pub send_ns: Vec<u64>,
    /// Whether the response ran to its end (not cut, not dropped by the client).
    pub finished: bool,
}

/// Collects finished records.
pub(crate) struct Recorder {
    /// Zero of every timestamp.
    pub epoch: Instant,
    /// `epoch` on `CLOCK_MONOTONIC`.
    pub epoch_monotonic_ns: u64,
    /// Whether anything is recorded at all.
    pub enabled: bool,
    records: Mutex<Vec<RequestRecord>>,
}

impl Recorder {
    pub fn new(enabled: bool) -> Self {
        let epoch = Instant::now();
        Recorder {
            epoch,
            epoch_monotonic_ns: monotonic_ns(),
            enabled,
            records: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the epoch.
    #[inline]
    pub fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    pub fn push(&self, r: RequestRecord) {
        self.records.lock().expect("recorder lock").push(r);
    }

    /// A copy of everything recorded; with `drain`, also forget it.
    pub fn snapshot(&self, drain: bool) -> Schedule {
        let mut g = self.records.lock().expect("recorder lock");
        let requests = if drain {
            std::mem::take(&mut *g)
        } else {
            g.clone()
        };
        Schedule {
            epoch_monotonic_ns: self.epoch_monotonic_ns,
            requests,
        }
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
