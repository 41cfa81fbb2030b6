//! The durable outbox: every row bound for a sink is a file here before anything is sent,
//! and it leaves `pending/` only after the sink confirmed it.
//!
//! Layout of an outbox directory:
//! ```text
//! pending/<sink>~<key>.json   rows not yet confirmed, with their state
//! done/<sink>~<key>.json      confirmed rows (the ledger that stops a second submission)
//! lock                        flock-ed by whoever drains, so two publishers never race
//! ```
//! Every write is atomic (temporary file, fsync, rename, directory fsync): a crash leaves
//! the old state or the new one.
//!
//! An entry's state moves `pending → submitting → submitted{event_id} → done`. `submitting`
//! is written *before* the request goes out and `submitted` (with the event id) as soon as
//! the Space answers, so after a crash we know exactly how far we got:
//! * `pending`: nothing reached the sink — submit.
//! * `submitted{event_id}`: the sink has the row — confirm that event, never resubmit.
//! * `submitting`: the request may or may not have reached the sink and we never learned
//!   its event id. This window (and a Space that forgot an event, or a timeout after
//!   sending) is the one place exactly-once cannot be guaranteed by the client alone: the
//!   entry becomes `unconfirmed` and, under the default `hold` policy, waits for a person
//!   to check the board (`runner publish --mark-delivered KEY`, or
//!   `--resubmit-unconfirmed`). Sinks that deduplicate by the idempotency key (our webhook
//!   sends it as `Idempotency-Key`) can use `resubmit` and get exactly-once end to end.
//!
//! So delivery is at-least-once with duplicate suppression everywhere except that window,
//! where we choose "hold" (no duplicate, a person decides) over guessing.

use super::config::OnUnconfirmed;
use super::transport::{self, Confirm, ConfirmTimeouts, SendError};
use super::PublishError;
use crate::report::fsio::{create_atomic, sync_dir, write_atomic};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What to send, fixed when the row is enqueued (so later config edits cannot change a
/// half-sent row). Never contains a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Gradio call API.
    Gradio {
        /// Space base URL.
        space: String,
        /// API name.
        api_name: String,
        /// Positional values.
        data: Vec<Value>,
    },
    /// JSON webhook.
    Webhook {
        /// Endpoint.
        url: String,
        /// The body.
        body: Value,
    },
}

/// Where an entry is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum State {
    /// Not sent (or certainly not taken).
    Pending,
    /// A submission was started at `since_unix`; its answer was never recorded.
    Submitting {
        /// When the request went out.
        since_unix: u64,
    },
    /// The Space took the row as `event_id`; waiting for `complete`.
    Submitted {
        /// Gradio event id.
        event_id: String,
        /// When the Space answered.
        since_unix: u64,
    },
    /// The row may or may not be on the board; held for a person (policy `hold`).
    Unconfirmed {
        /// Why we cannot tell.
        reason: String,
        /// The event id, when one was known.
        event_id: Option<String>,
    },
    /// Confirmed (only in `done/`).
    Delivered {
        /// When.
        confirmed_unix: u64,
        /// The sink's answer (`complete` data, webhook body, or a note for manual marks).
        result: Value,
    },
}

impl State {
    /// One word for status lines.
    pub fn word(&self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Submitting { .. } => "submitting",
            State::Submitted { .. } => "submitted",
            State::Unconfirmed { .. } => "unconfirmed",
            State::Delivered { .. } => "delivered",
        }
    }
}

/// One line of an entry's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLine {
    /// Unix time.
    pub unix: u64,
    /// What happened.
    pub what: String,
}

/// One row bound for one sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// File format version.
    pub version: u32,
    /// Idempotency key (run id + recipe fingerprint + scenario + conc).
    pub key: String,
    /// Sink name.
    pub sink: String,
    /// Run the row belongs to.
    pub run_id: String,
    /// When it was enqueued.
    pub created_unix: u64,
    /// What to send.
    pub request: Request,
    /// Name of the environment variable with the bearer token (read at send time).
    pub token_env: Option<String>,
    /// Policy for unconfirmed submissions.
    pub on_unconfirmed: OnUnconfirmed,
    /// Current state.
    pub state: State,
    /// Submission and confirmation attempts so far, over all runs.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// History (last 50 lines).
    pub log: Vec<LogLine>,
}

impl Entry {
    /// A new pending entry.
    pub fn new(
        key: String,
        sink: String,
        run_id: String,
        request: Request,
        token_env: Option<String>,
        on_unconfirmed: OnUnconfirmed,
    ) -> Self {
        let mut e = Entry {
            version: 1,
            key,
            sink,
            run_id,
            created_unix: now(),
            request,
            token_env,
            on_unconfirmed,
            state: State::Pending,
            attempts: 0,
            last_error: None,
            log: Vec::new(),
        };
        e.note("enqueued");
        e
    }

    /// The entry's file name: `<sink>~<key>.json`, both percent-encoded (injective, so two
    /// keys never share a file).
    pub fn file_name(&self) -> String {
        file_name(&self.sink, &self.key)
    }

    fn note(&mut self, what: impl Into<String>) {
        self.log.push(LogLine {
            unix: now(),
            what: what.into(),
        });
        if self.log.len() > 50 {
            let cut = self.log.len() - 50;
            self.log.drain(..cut);
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `<sink>~<key>.json` with both parts percent-encoded.
pub fn file_name(sink: &str, key: &str) -> String {
    format!("{}~{}.json", encode(sink), encode(key))
}

/// Result of [`Outbox::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new pending entry was written.
    Added,
    /// The same key is already waiting in `pending/`.
    AlreadyQueued,
    /// The same key was already delivered: nothing to do.
    AlreadyDelivered,
}

/// Knobs of a drain.
#[derive(Debug, Clone)]
pub struct DrainOptions {
    /// Submissions per entry in this run (and, separately, confirmations), then leave it
    /// queued for the next drain.
    pub max_attempts: u32,
    /// First backoff delay; doubles per attempt.
    pub backoff: Duration,
    /// Largest backoff delay.
    pub backoff_cap: Duration,
    /// Timeout of one submission request.
    pub request_timeout: Duration,
    /// Confirmation stream timeouts.
    pub confirm: ConfirmTimeouts,
    /// Resubmit entries held as `unconfirmed` (accepting a possible duplicate).
    pub resubmit_unconfirmed: bool,
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            max_attempts: 6,
            backoff: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            confirm: ConfirmTimeouts {
                idle: Duration::from_secs(60),
                total: Duration::from_secs(600),
            },
            resubmit_unconfirmed: false,
        }
    }
}

impl DrainOptions {
    /// Delay before attempt `n` (1-based) of this run: `backoff × 2^(n−1)`, capped.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(30));
        self.backoff.saturating_mul(factor).min(self.backoff_cap)
    }
}

/// What a drain did.
#[derive(Debug, Clone, Default)]
pub struct DrainReport {
    /// Keys confirmed in this run, with their sink.
    pub delivered: Vec<(String, String)>,
    /// Entries still in `pending/` afterwards.
    pub remaining: Vec<Entry>,
    /// Another publisher held the lock; nothing was done.
    pub busy: bool,
}

/// An outbox directory.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

/// Holds the outbox lock until dropped.
#[derive(Debug)]
pub struct LockGuard {
    _file: std::fs::File,
}

impl Outbox {
    /// Default location: `$INFMAX_OUTBOX`, else `$XDG_STATE_HOME/infmax/outbox`, else
    /// `~/.local/state/infmax/outbox` (it must outlive the job's workspace).
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("INFMAX_OUTBOX").filter(|d| !d.is_empty()) {
            return PathBuf::from(d);
        }
        let state = std::env::var_os("XDG_STATE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(|| PathBuf::from("."));
        state.join("infmax/outbox")
    }

    /// Open (creating) an outbox directory.
    pub fn open(dir: &Path) -> Result<Self, PublishError> {
        for sub in ["pending", "done"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| PublishError::io(&d, e))?;
        }
        Ok(Outbox {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn pending_path(&self, name: &str) -> PathBuf {
        self.dir.join("pending").join(name)
    }

    fn done_path(&self, name: &str) -> PathBuf {
        self.dir.join("done").join(name)
    }

    /// Put an entry into `pending/` unless its key is already queued or delivered.
    ///
    /// Checks `pending/` before `done/`, and delivery writes `done/` before removing
    /// `pending/`, so a key being delivered concurrently is seen in one of the two.
    pub fn enqueue(&self, entry: &Entry) -> Result<Enqueued, PublishError> {
        let name = entry.file_name();
        let p = self.pending_path(&name);
        if p.exists() {
            return Ok(Enqueued::AlreadyQueued);
        }
        if self.done_path(&name).exists() {
            return Ok(Enqueued::AlreadyDelivered);
        }
        let bytes = to_json(entry);
        if create_atomic(&p, &bytes)? {
            Ok(Enqueued::Added)
        } else {
            Ok(Enqueued::AlreadyQueued)
        }
    }

    fn read_dir_entries(&self, sub: &str) -> Result<Vec<Entry>, PublishError> {
        let d = self.dir.join(sub);
        let mut out = Vec::new();
        for e in std::fs::read_dir(&d).map_err(|e| PublishError::io(&d, e))? {
            let e = e.map_err(|e| PublishError::io(&d, e))?;
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let text = std::fs::read_to_string(&p).map_err(|e| PublishError::io(&p, e))?;
            let entry: Entry = crate::config::parse_json(&p.display().to_string(), &text)?;
            out.push(entry);
        }
        out.sort_by_key(|a| (a.created_unix, a.file_name()));
        Ok(out)
    }

    /// Entries waiting in `pending/`, oldest first.
    pub fn pending(&self) -> Result<Vec<Entry>, PublishError> {
        self.read_dir_entries("pending")
    }

    /// Entries in `done/`, oldest first.
    pub fn delivered(&self) -> Result<Vec<Entry>, PublishError> {
        self.read_dir_entries("done")
    }

    fn save(&self, e: &Entry) -> Result<(), PublishError> {
        Ok(write_atomic(
            &self.pending_path(&e.file_name()),
            &to_json(e),
        )?)
    }

    fn deliver(&self, e: &mut Entry, result: Value, how: &str) -> Result<(), PublishError> {
        e.state = State::Delivered {
            confirmed_unix: now(),
            result,
        };
        e.last_error = None;
        e.note(how.to_string());
        let name = e.file_name();
        write_atomic(&self.done_path(&name), &to_json(e))?;
        let p = self.pending_path(&name);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(PublishError::io(&p, err)),
        }
        sync_dir(&p)?;
        Ok(())
    }

    /// Take the outbox lock without waiting; `None` when another process holds it.
    pub fn try_lock(&self) -> Result<Option<LockGuard>, PublishError> {
        use std::os::unix::io::AsRawFd;
        let p = self.dir.join("lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| PublishError::io(&p, e))?;
        // SAFETY: flock on a file descriptor we own; released when the file is closed
        // (including when the process dies).
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            Ok(Some(LockGuard { _file: f }))
        } else {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Ok(None)
            } else {
                Err(PublishError::io(&p, err))
            }
        }
    }

    /// Mark entries delivered by hand (after a person checked the board): every pending
    /// entry whose key or file name is `key`. Returns how many.
    pub fn mark_delivered(&self, key: &str) -> Result<usize, PublishError> {
        let _g = self.try_lock()?.ok_or(PublishError::Busy)?;
        let mut n = 0;
        for mut e in self.pending()? {
            if e.key == key || e.file_name() == key {
                self.deliver(
                    &mut e,
                    Value::String("marked delivered by hand".into()),
                    "marked delivered by hand (--mark-delivered)",
                )?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Send every pending entry (oldest first), confirm it, and move it to `done/`; entries
    /// that cannot be confirmed in `opts.max_attempts` stay for the next drain.
    pub async fn drain(&self, opts: &DrainOptions) -> Result<DrainReport, PublishError> {
        let Some(_guard) = self.try_lock()? else {
            return Ok(DrainReport {
                busy: true,
                remaining: self.pending()?,
                ..DrainReport::default()
            });
        };
        let client = transport::client();
        let mut report = DrainReport::default();
        for mut e in self.pending()? {
            if self.drain_one(&client, &mut e, opts).await? {
                report.delivered.push((e.sink.clone(), e.key.clone()));
            }
        }
        report.remaining = self.pending()?;
        Ok(report)
    }

    /// Returns whether the entry was delivered.
    async fn drain_one(
        &self,
        client: &reqwest::Client,
        e: &mut Entry,
        opts: &DrainOptions,
    ) -> Result<bool, PublishError> {
        let token = e
            .token_env
            .as_deref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|t| !t.is_empty());
        if let Some(t) = &token {
            crate::secrets::register(t);
        }
        let tok = token.as_deref();
        // Submissions and confirmations are bounded separately: one submission is normally
        // followed by one confirmation, and neither should eat the other's budget.
        let mut tries = 0u32;
        let mut confirms = 0u32;
        loop {
            match e.state.clone() {
                State::Delivered { result, .. } => {
                    self.deliver(e, result, "already delivered")?;
                    return Ok(true);
                }
                State::Unconfirmed { .. } => {
                    if !opts.resubmit_unconfirmed {
                        return Ok(false);
                    }
                    e.state = State::Pending;
                    e.note("resubmitting an unconfirmed row (--resubmit-unconfirmed)");
                    self.save(e)?;
                }
                State::Submitting { since_unix } => {
                    // We hold the lock, so the process that wrote this died mid-request.
                    let reason = format!(
                        "a publisher stopped after starting the submission at unix {since_unix} and before recording the sink's answer; the row may be on the board"
                    );
                    self.ambiguous(e, reason, None)?;
                }
                State::Pending => {
                    if tries >= opts.max_attempts {
                        return Ok(false);
                    }
                    if tries > 0 {
                        tokio::time::sleep(opts.delay(tries)).await;
                    }
                    tries += 1;
                    e.attempts += 1;
                    e.state = State::Submitting { since_unix: now() };
                    e.note(format!("submission attempt {}", e.attempts));
                    self.save(e)?;
                    match &e.request {
                        Request::Gradio {
                            space,
                            api_name,
                            data,
                        } => {
                            let r = transport::gradio_submit(
                                client,
                                space,
                                api_name,
                                data,
                                tok,
                                opts.request_timeout,
                            )
                            .await;
                            match r {
                                Ok(event_id) => {
                                    e.note(format!("accepted as event {event_id}"));
                                    e.state = State::Submitted {
                                        event_id,
                                        since_unix: now(),
                                    };
                                    self.save(e)?;
                                }
                                Err(err) => self.send_failed(e, err, tok)?,
                            }
                        }
                        Request::Webhook { url, body } => {
                            let r = transport::webhook_post(
                                client,
                                url,
                                body,
                                &e.key,
                                tok,
                                opts.request_timeout,
                            )
                            .await;
                            match r {
                                Ok(answer) => {
                                    self.deliver(e, answer, "webhook answered 2xx")?;
                                    return Ok(true);
                                }
                                Err(err) => self.send_failed(e, err, tok)?,
                            }
                        }
                    }
                }
                State::Submitted { event_id, .. } => {
                    let Request::Gradio {
                        space, api_name, ..
                    } = &e.request
                    else {
                        // Webhooks have no event ids; a hand-edited file.
                        self.ambiguous(
                            e,
                            "submitted webhook entry without an answer".into(),
                            None,
                        )?;
                        continue;
                    };
                    if confirms >= opts.max_attempts {
                        return Ok(false);
                    }
                    if confirms > 0 {
                        tokio::time::sleep(opts.delay(confirms)).await;
                    }
                    confirms += 1;
                    let c = transport::gradio_confirm(
                        client,
                        space,
                        api_name,
                        &event_id,
                        tok,
                        opts.confirm,
                    )
                    .await;
                    match c {
                        Confirm::Complete(result) => {
                            self.deliver(e, result, &format!("event {event_id} complete"))?;
                            return Ok(true);
                        }
                        Confirm::Failed(msg) => {
                            // The Space function raised: the row was not taken.
                            e.attempts += 1;
                            e.last_error = Some(transport::redact(&msg, tok));
                            e.note(format!("event {event_id} failed; will resubmit"));
                            e.state = State::Pending;
                            self.save(e)?;
                        }
                        Confirm::Unknown(msg) => {
                            let reason = format!(
                                "the Space no longer knows event {event_id} ({}); the row may be on the board",
                                transport::redact(&msg, tok)
                            );
                            self.ambiguous(e, reason, Some(event_id.clone()))?;
                        }
                        Confirm::Transient(msg) => {
                            e.attempts += 1;
                            e.last_error = Some(transport::redact(&msg, tok));
                            e.note(format!("confirmation of event {event_id} not received"));
                            self.save(e)?;
                        }
                    }
                }
            }
        }
    }

    fn send_failed(
        &self,
        e: &mut Entry,
        err: SendError,
        tok: Option<&str>,
    ) -> Result<(), PublishError> {
        match err {
            SendError::Definite(msg) => {
                let msg = transport::redact(&msg, tok);
                e.note(format!("not taken: {msg}"));
                e.last_error = Some(msg);
                e.state = State::Pending;
                self.save(e)
            }
            SendError::Ambiguous(msg) => {
                let msg = transport::redact(&msg, tok);
                self.ambiguous(e, format!("the submission's fate is unknown: {msg}"), None)
            }
        }
    }

    /// Apply the entry's policy to a submission whose fate is unknown.
    fn ambiguous(
        &self,
        e: &mut Entry,
        reason: String,
        event_id: Option<String>,
    ) -> Result<(), PublishError> {
        e.last_error = Some(reason.clone());
        match e.on_unconfirmed {
            OnUnconfirmed::Resubmit => {
                e.note(format!("{reason}; resubmitting (policy resubmit)"));
                e.state = State::Pending;
            }
            OnUnconfirmed::Hold => {
                e.note(format!("{reason}; held (policy hold)"));
                e.state = State::Unconfirmed { reason, event_id };
            }
        }
        self.save(e)
    }

    /// A status text: one line per pending entry plus delivered counts.
    pub fn status_text(&self) -> Result<String, PublishError> {
        let pending = self.pending()?;
        let done = self.delivered()?;
        let mut s = format!(
            "outbox {}: {} pending, {} delivered\n",
            self.dir.display(),
            pending.len(),
            done.len()
        );
        for e in &pending {
            s.push_str(&entry_line(e));
            s.push('\n');
        }
        Ok(s)
    }
}

/// One status line for an entry.
pub fn entry_line(e: &Entry) -> String {
    let mut s = format!(
        "  {:<11} sink={} key={} attempts={}",
        e.state.word(),
        e.sink,
        e.key,
        e.attempts
    );
    match &e.state {
        State::Submitted { event_id, .. } => {
            let _ = write!(s, " event={event_id}");
        }
        State::Unconfirmed { reason, event_id } => {
            if let Some(id) = event_id {
                let _ = write!(s, " event={id}");
            }
            let _ = write!(
                s,
                " — {reason}; check the board, then `runner publish --mark-delivered '{}'` or `runner publish --pending --resubmit-unconfirmed`",
                e.key
            );
            return s;
        }
        _ => {}
    }
    if let Some(err) = &e.last_error {
        let _ = write!(s, " — last error: {err}");
    }
    s
}

fn to_json(e: &Entry) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(e).expect("entry serialises");
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_injective() {
        assert_ne!(file_name("a", "x:y"), file_name("a", "x/y"));
        assert_ne!(file_name("a~b", "c"), file_name("a", "b~c"));
        assert_eq!(
            file_name("board", "123:ab:1024x1024:c4"),
            "board~123%3Aab%3A1024x1024%3Ac4.json"
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let o = DrainOptions {
            backoff: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(500),
            ..DrainOptions::default()
        };
        let d: Vec<u128> = (1..=5).map(|n| o.delay(n).as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 500, 500]);
    }
}
