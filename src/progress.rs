//! Progress of long phases on stderr: a bar on a terminal, a plain line every
//! [`interval`] otherwise (10 s unless `--progress-interval` says otherwise).
//!
//! Every long phase (the load phase of fixed-length and agentic runs, the readiness wait,
//! the accuracy gate) reports through one [`Ticker`]: a task that wakes every 200 ms, reads
//! the phase's counters through a closure and draws. The phase itself never prints and
//! never locks anything for progress: it bumps atomic counters once per finished request
//! (never per token), and the ticker reads them. Lines go through [`crate::errln!`] (secrets
//! redacted); the bar is drawn only when stderr is a terminal, so piped output and log files
//! carry no escape sequences, and `NO_COLOR` (or `TERM=dumb`) turns the bar into lines too.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The plain-line interval in milliseconds (0: the 10 s default).
static INTERVAL_MS: AtomicU64 = AtomicU64::new(0);

/// How often a plain progress line is printed.
pub fn interval() -> Duration {
    match INTERVAL_MS.load(Ordering::Relaxed) {
        0 => Duration::from_secs(10),
        ms => Duration::from_millis(ms),
    }
}

/// Set the plain-line interval for this process (`--progress-interval`; tests use a short one).
pub fn set_interval(d: Duration) {
    INTERVAL_MS.store((d.as_millis() as u64).max(1), Ordering::Relaxed);
}

/// Whether progress is drawn as a bar: stderr is a terminal and colour/escapes are welcome.
pub fn use_bar() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// One reading of a phase's counters.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// Requests finished, when the phase counts requests.
    pub done: Option<u64>,
    /// Units expected, when known (the ETA is computed from it).
    pub total: Option<u64>,
    /// Failed units, when the phase counts failures.
    pub failed: Option<u64>,
    /// Output tokens so far, when the phase streams tokens (shown as tokens/s).
    pub tokens: Option<u64>,
    /// The phase's own ETA when it knows better than `done/total` (a fixed window).
    pub eta: Option<Duration>,
    /// Anything else worth a glance (live sessions, what is being polled).
    pub note: String,
}

/// `mm:ss` (or `h:mm:ss`).
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// `s` on one line without escape sequences or control characters, at most `max` chars (a
/// log line quoted in a progress line must not carry an engine's colours into a file).
pub fn plain(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut it = s.trim().chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters… final byte (a letter); other escapes: one char.
            if it.next_if_eq(&'[').is_some() {
                for c in it.by_ref() {
                    if c.is_ascii_alphabetic() || c == '~' {
                        break;
                    }
                }
            } else {
                it.next();
            }
        } else if !c.is_control() {
            if out.chars().count() >= max {
                out.push('…');
                break;
            }
            out.push(c);
        }
    }
    out
}

impl Status {
    /// The status as one line (without the label).
    pub fn line(&self, elapsed: Duration) -> String {
        let mut parts = vec![];
        let done = self.done.unwrap_or(0);
        match (self.done, self.total) {
            (Some(d), Some(t)) => parts.push(format!("{d}/{t} done")),
            (Some(d), None) => parts.push(format!("{d} done")),
            (None, _) => {}
        }
        if let Some(f) = self.failed {
            parts.push(format!("{f} failed"));
        }
        if let Some(t) = self.tokens {
            let s = elapsed.as_secs_f64();
            let rate = if s > 0.0 { t as f64 / s } else { 0.0 };
            parts.push(format!("{rate:.0} tok/s"));
        }
        parts.push(format!("elapsed {}", clock(elapsed)));
        let eta = self.eta.or_else(|| match self.total {
            Some(t) if done > 0 && t >= done => Some(Duration::from_secs_f64(
                elapsed.as_secs_f64() * (t - done) as f64 / done as f64,
            )),
            _ => None,
        });
        if let Some(e) = eta {
            parts.push(format!("ETA {}", clock(e)));
        }
        let mut s = parts.join(", ");
        if !self.note.is_empty() {
            s.push_str(", ");
            s.push_str(&self.note);
        }
        s
    }
}

/// Reports one phase's progress until dropped (or [`Ticker::finish`]ed).
pub struct Ticker {
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    /// Start reporting `label`'s progress; `read` is called every 200 ms on a terminal and
    /// once per [`interval`] otherwise. Needs a tokio runtime.
    pub fn start<F>(label: impl Into<String>, read: F) -> Ticker
    where
        F: Fn() -> Status + Send + 'static,
    {
        let label = label.into();
        let bar = use_bar().then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {prefix}: {wide_msg}")
                    .expect("template parses"),
            );
            b.set_prefix(label.clone());
            b
        });
        let every = interval();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut next_line = started + every;
            loop {
                let tick = match &bar {
                    Some(_) => Duration::from_millis(200),
                    None => next_line.saturating_duration_since(Instant::now()),
                };
                tokio::time::sleep(tick).await;
                let st = read();
                let line = st.line(started.elapsed());
                match &bar {
                    Some(b) => {
                        b.set_message(line);
                        b.tick();
                    }
                    None => {
                        next_line += every;
                        crate::errln!("{label}: {line}");
                    }
                }
            }
        });
        Ticker { task }
    }

    /// Stop reporting (also on drop).
    pub fn finish(self) {}
}

impl Drop for Ticker {
    fn drop(&mut self) {
        // The bar (owned by the task) is dropped with it and leaves its last line.
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_drops_escapes_and_control_characters() {
        assert_eq!(
            plain(
                "\u{1b}[2m12:00\u{1b}[0m \u{1b}[32mINFO\u{1b}[0m ready\r",
                80
            ),
            "12:00 INFO ready"
        );
        assert_eq!(plain("abcdef", 3), "abc…");
    }

    #[test]
    fn a_line_has_counts_rate_elapsed_and_eta() {
        let st = Status {
            done: Some(25),
            total: Some(100),
            failed: Some(1),
            tokens: Some(5000),
            eta: None,
            note: "3 live sessions".into(),
        };
        let l = st.line(Duration::from_secs(10));
        assert_eq!(
            l,
            "25/100 done, 1 failed, 500 tok/s, elapsed 00:10, ETA 00:30, 3 live sessions"
        );
        let st = Status {
            done: Some(4),
            eta: Some(Duration::from_secs(3725)),
            ..Status::default()
        };
        assert_eq!(
            st.line(Duration::from_secs(61)),
            "4 done, elapsed 01:01, ETA 1:02:05"
        );
        let st = Status {
            note: "polling /health".into(),
            ..Status::default()
        };
        assert_eq!(
            st.line(Duration::from_secs(5)),
            "elapsed 00:05, polling /health"
        );
    }
}
