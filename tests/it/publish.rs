//! Publishing through the outbox against an in-process fake HF Space speaking the Gradio
//! call API (`POST …/call/{api}` → `{"event_id"}`, `GET …/call/{api}/{id}` → SSE to
//! `complete`/`error`) and a webhook receiver. The real `runner publish` binary is driven as
//! a child process, killed at the worst moments, and restarted; every test ends by counting
//! rows on the board and grepping every file and log for the token.

use crate::report::{point, shipped};
use infmax::publish::{entries_for, SinksConfig};
use infmax::report::{write_job_outputs, AccuracyRecord, AccuracyStatus};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A token value unique enough to grep for.
const TOKEN: &str = "hf_TESTSECRET_q8Zx3v7Lw2";
const HOOK_TOKEN: &str = "hook_TESTSECRET_m4Kp9";

/// Behaviour switches of the fake Space.
#[derive(Debug, Default)]
struct Knobs {
    /// The next N submissions answer HTTP 500 (nothing recorded).
    fail_posts: usize,
    /// Record the row, then never answer the submission.
    stall_post: bool,
    /// Confirmation streams send one heartbeat, then nothing.
    stall_confirm: bool,
    /// The Space function raises: nothing recorded, the stream says `event: error`.
    function_error: bool,
    /// Gradio's behaviour: an event is gone once its stream ended or its reader left.
    forget_after_stream: bool,
}

#[derive(Debug)]
enum Outcome {
    Complete(Value),
    Error,
}

/// What the fake has seen and holds.
#[derive(Debug, Default)]
struct Board {
    knobs: Knobs,
    /// The leaderboard: rows the Space function recorded.
    rows: Vec<Value>,
    events: HashMap<String, Outcome>,
    posts: usize,
    gets: usize,
    /// Requests currently held open without an answer.
    stalled: usize,
    /// Authorization headers received.
    auth: Vec<String>,
    /// Webhook: idempotency keys received, and rows kept (first of each key).
    hook_keys: Vec<String>,
    hook_rows: Vec<Value>,
    next_id: u64,
}

type Shared = Arc<(Mutex<Board>, Condvar)>;

struct Fake {
    url: String,
    state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fake {
    /// Serve on 127.0.0.1:`port` (0: any free port).
    fn start(port: u16, knobs: Knobs) -> Fake {
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let state: Shared = Arc::new((
            Mutex::new(Board {
                knobs,
                ..Board::default()
            }),
            Condvar::new(),
        ));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    tokio::select! {
                        a = l.accept() => {
                            if let Ok((s, _)) = a {
                                tokio::spawn(handle(s, st.clone()));
                            }
                        }
                        _ = &mut rx => break,
                    }
                }
            });
        });
        Fake {
            url: format!("http://{addr}"),
            state,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// A fake Space on a free port, with the knobs `set` switches.
    fn with_knobs(set: impl FnOnce(&mut Knobs)) -> Fake {
        let mut knobs = Knobs::default();
        set(&mut knobs);
        Fake::start(0, knobs)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Board) -> R) -> R {
        let mut b = self.state.0.lock().unwrap();
        f(&mut b)
    }

    /// (rows on the board, submissions received).
    fn rows_posts(&self) -> (usize, usize) {
        self.with(|b| (b.rows.len(), b.posts))
    }

    fn wait_until(&self, what: &str, pred: impl Fn(&Board) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut b = self.state.0.lock().unwrap();
        while !pred(&b) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; board: {b:?}"
            );
            b = self.state.1.wait_timeout(b, left).unwrap().0;
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Req {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

async fn read_request(s: &mut TcpStream) -> Option<Req> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Req {
        method,
        path,
        headers,
        body,
    })
}

async fn respond(s: &mut TcpStream, status: &str, ctype: &str, body: &str) {
    let msg = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(msg.as_bytes()).await;
    let _ = s.shutdown().await;
}

async fn sse_head(s: &mut TcpStream) {
    let _ = s
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n")
        .await;
}

/// Hold the connection until the peer goes away (or a minute passes).
async fn stall(s: &mut TcpStream) {
    let mut b = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

fn update<R>(st: &Shared, f: impl FnOnce(&mut Board) -> R) -> R {
    let r = f(&mut st.0.lock().unwrap());
    st.1.notify_all();
    r
}

enum PostDo {
    Fail,
    Answer(String),
    Stall,
}

enum GetDo {
    Unknown,
    Deliver(String),
    Stall,
}

async fn handle(mut s: TcpStream, st: Shared) {
    let Some(req) = read_request(&mut s).await else {
        return;
    };
    if let Some(a) = req.headers.get("authorization") {
        update(&st, |b| b.auth.push(a.clone()));
    }
    let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), parts.as_slice()) {
        ("POST", ["gradio_api", "call", _api]) => {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let what = update(&st, |b| {
                b.posts += 1;
                if b.knobs.fail_posts > 0 {
                    b.knobs.fail_posts -= 1;
                    return PostDo::Fail;
                }
                b.next_id += 1;
                let id = format!("ev{:04}", b.next_id);
                if b.knobs.function_error {
                    b.events.insert(id.clone(), Outcome::Error);
                } else {
                    b.rows.push(body["data"].clone());
                    b.events
                        .insert(id.clone(), Outcome::Complete(json!(["recorded"])));
                }
                if b.knobs.stall_post {
                    b.stalled += 1;
                    PostDo::Stall
                } else {
                    PostDo::Answer(id)
                }
            });
            match what {
                PostDo::Fail => {
                    respond(&mut s, "500 Internal Server Error", "text/plain", "boom").await
                }
                PostDo::Answer(id) => {
                    respond(
                        &mut s,
                        "200 OK",
                        "application/json",
                        &json!({ "event_id": id }).to_string(),
                    )
                    .await
                }
                PostDo::Stall => {
                    stall(&mut s).await;
                    update(&st, |b| b.stalled -= 1);
                }
            }
        }
        ("GET", ["gradio_api", "call", _api, id]) => {
            let id = id.to_string();
            let what = update(&st, |b| {
                b.gets += 1;
                let msg = match b.events.get(&id) {
                    None => return GetDo::Unknown,
                    Some(Outcome::Complete(v)) => format!("event: complete\ndata: {v}\n\n"),
                    Some(Outcome::Error) => "event: error\ndata: null\n\n".to_string(),
                };
                if b.knobs.stall_confirm {
                    b.stalled += 1;
                    GetDo::Stall
                } else {
                    if b.knobs.forget_after_stream {
                        b.events.remove(&id);
                    }
                    GetDo::Deliver(msg)
                }
            });
            sse_head(&mut s).await;
            match what {
                GetDo::Unknown => {
                    let _ = s
                        .write_all(b"event: error\ndata: \"404: Session not found.\"\n\n")
                        .await;
                }
                GetDo::Deliver(msg) => {
                    let _ = s
                        .write_all(format!("event: heartbeat\ndata: null\n\n{msg}").as_bytes())
                        .await;
                }
                GetDo::Stall => {
                    let _ = s.write_all(b"event: heartbeat\ndata: null\n\n").await;
                    stall(&mut s).await;
                    update(&st, |b| {
                        b.stalled -= 1;
                        if b.knobs.forget_after_stream {
                            // Gradio cleans a session's events when its reader disconnects.
                            b.events.remove(&id);
                        }
                    });
                }
            }
            let _ = s.shutdown().await;
        }
        ("POST", ["hook"]) => {
            let key = req
                .headers
                .get("idempotency-key")
                .cloned()
                .unwrap_or_default();
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let what = update(&st, |b| {
                b.posts += 1;
                if b.knobs.fail_posts > 0 {
                    b.knobs.fail_posts -= 1;
                    return PostDo::Fail;
                }
                let dup = b.hook_keys.contains(&key);
                b.hook_keys.push(key.clone());
                if !dup {
                    b.hook_rows.push(body);
                }
                if b.knobs.stall_post {
                    b.stalled += 1;
                    PostDo::Stall
                } else {
                    PostDo::Answer(json!({ "ok": true, "duplicate": dup }).to_string())
                }
            });
            match what {
                PostDo::Fail => {
                    respond(&mut s, "500 Internal Server Error", "text/plain", "boom").await
                }
                PostDo::Answer(a) => respond(&mut s, "200 OK", "application/json", &a).await,
                PostDo::Stall => {
                    stall(&mut s).await;
                    update(&st, |b| b.stalled -= 1);
                }
            }
        }
        _ => respond(&mut s, "404 Not Found", "text/plain", "no such route").await,
    }
}

/// One test's files: result dirs, sinks file, outbox; plus every log collected.
struct Setup {
    tmp: tempfile::TempDir,
    logs: Vec<String>,
}

const FIELDS: &str = "[team, conc, median_e2e_ms, tput_per_gpu, baseline_e2e, baseline_tput, e2e_ratio, tput_ratio, bits_per_byte, byte_perplexity, word_perplexity]";

impl Setup {
    /// Result dirs for dsr1-fp4 1k/1k at `concs`, and a sinks file pointing at `url`.
    fn new(url: &str, concs: &[u32], webhook: bool) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let b = shipped();
        for &c in concs {
            let mut a = point("dsr1", c, 120.0, 300.0 + f64::from(c), &b);
            a.accuracy = Some(AccuracyRecord {
                task: "wikitext-tokens".into(),
                metrics: [
                    ("bits_per_byte".to_string(), 0.45),
                    ("byte_perplexity".to_string(), 1.366),
                    ("word_perplexity".to_string(), 3.26),
                ]
                .into_iter()
                .collect(),
                threshold: Default::default(),
                rule: None,
                status: AccuracyStatus::Pass,
            });
            write_job_outputs(&tmp.path().join(format!("results/job_c{c}")), &a).unwrap();
        }
        let sinks = if webhook {
            format!(
                "sinks:\n  - name: hook\n    kind: webhook\n    url: {url}/hook\n    token_env: HOOK_TOKEN\n"
            )
        } else {
            format!(
                "values: {{team: infmax-test}}\nsinks:\n  - name: board\n    kind: gradio\n    routes:\n      - match: {{model: dsr1-fp4, isl: 1024, osl: 1024}}\n        space: {url}\n        api_name: submit\n        fields: {FIELDS}\n"
            )
        };
        std::fs::write(tmp.path().join("sinks.yaml"), sinks).unwrap();
        Setup {
            tmp,
            logs: Vec::new(),
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_runner"));
        c.arg("publish")
            .args(args)
            .arg("--outbox")
            .arg(self.p("outbox"))
            .args([
                "--backoff-ms",
                "20",
                "--backoff-cap-ms",
                "80",
                "--max-attempts",
                "4",
            ])
            .env("HF_TOKEN", TOKEN)
            .env("HOOK_TOKEN", HOOK_TOKEN)
            .env("RUST_LOG", "debug")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("INFMAX_OUTBOX")
            .env_remove("INFMAX_RUN_ID")
            .env_remove("GITHUB_RUN_ID")
            .current_dir(self.tmp.path());
        c
    }

    /// `runner publish --dir results --sinks sinks.yaml --run-id 777 …`
    fn publish_args(&self) -> Vec<String> {
        vec![
            "--dir".into(),
            self.p("results").display().to_string(),
            "--sinks".into(),
            self.p("sinks.yaml").display().to_string(),
            "--run-id".into(),
            "777".into(),
        ]
    }

    /// Run to completion; returns (exit code, stdout + stderr).
    fn run(&mut self, args: &[&str]) -> (i32, String) {
        let o = self.cmd(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        self.logs.push(text.clone());
        (o.status.code().unwrap_or(-1), text)
    }

    fn publish(&mut self) -> (i32, String) {
        let a = self.publish_args();
        self.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Publish the results with `--allow-sim`; assert the exit code and return the output.
    fn publish_allow_sim_exits(&mut self, code: i32) -> String {
        let mut a = self.publish_args();
        a.push("--allow-sim".into());
        let (got, out) = self.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(got, code, "{out}");
        out
    }

    /// Publish the results; assert the exit code and return the output.
    fn publish_exits(&mut self, code: i32) -> String {
        let (got, out) = self.publish();
        assert_eq!(got, code, "{out}");
        out
    }

    /// Drain the outbox (`--pending`); assert the exit code and return the output.
    fn drain_exits(&mut self, code: i32) -> String {
        let (got, out) = self.run(&["--pending"]);
        assert_eq!(got, code, "{out}");
        out
    }

    fn spawn_publish(&self) -> Child {
        let a = self.publish_args();
        self.cmd(&a.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Start a publisher in the background and wait until `fake` holds a request of it
    /// stalled (`what` names the request in the timeout message).
    fn spawn_until_stalled(&self, fake: &Fake, what: &str) -> Child {
        let child = self.spawn_publish();
        fake.wait_until(what, |b| b.stalled >= 1);
        child
    }

    fn kill(&mut self, mut child: Child) {
        child.kill().unwrap();
        let o = child.wait_with_output().unwrap();
        self.logs.push(format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ));
    }

    fn entries(&self, sub: &str) -> Vec<Value> {
        let d = self.p("outbox").join(sub);
        let mut v: Vec<Value> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect();
        v.sort_by_key(|e| e["key"].as_str().unwrap().to_string());
        v
    }

    /// No file under the test's directory and no captured log holds a token.
    fn assert_no_secret(&self) {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(self.tmp.path(), &mut files);
        assert!(files.len() >= 3, "{files:?}");
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for t in [TOKEN, HOOK_TOKEN] {
                assert!(!text.contains(t), "token found in {}", f.display());
            }
        }
        for (i, l) in self.logs.iter().enumerate() {
            for t in [TOKEN, HOOK_TOKEN] {
                assert!(!l.contains(t), "token found in log #{i}: {l}");
            }
        }
    }
}

/// A fake Space with the knobs `set` switches, and one result (conc 4) for its gradio sink.
fn space_and_one_row(set: impl FnOnce(&mut Knobs)) -> (Fake, Setup) {
    let fake = Fake::with_knobs(set);
    let s = Setup::new(&fake.url, &[4], false);
    (fake, s)
}

/// A drain of the outbox succeeds, and the board holds exactly one row.
fn assert_drain_leaves_one_row(s: &mut Setup, fake: &Fake) {
    s.drain_exits(0);
    fake.with(|b| assert_eq!(b.rows.len(), 1));
}

fn key(conc: u32) -> String {
    format!("777:fp-dsr1-c{conc}:1024x1024:c{conc}")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn publish_gradio_success_confirms_once_with_the_bounty_fields() {
    let fake = Fake::with_knobs(|k| k.forget_after_stream = true);
    let mut s = Setup::new(&fake.url, &[4, 8], false);
    let out = s.publish_exits(0);
    assert!(
        out.contains(&format!("delivered: sink=board key={}", key(4))),
        "{out}"
    );
    fake.with(|b| {
        assert_eq!(b.rows.len(), 2);
        assert_eq!((b.posts, b.gets), (2, 2));
        assert!(b.auth.iter().all(|a| a == &format!("Bearer {TOKEN}")) && b.auth.len() == 4);
        // team, conc, median E2E ms, tput/GPU, B200 conc-4 point 6854 ms / 131.424, ratios,
        // accuracy metrics.
        let r = &b.rows[0];
        assert_eq!(r[0], "infmax-test");
        assert_eq!(r[1], 4);
        assert_eq!(r[2].as_f64().unwrap(), 5000.0);
        assert_eq!(r[3].as_f64().unwrap(), 304.0);
        assert_eq!(r[4].as_f64().unwrap(), 6854.0);
        assert_eq!(r[5].as_f64().unwrap(), 131.424);
        assert!((r[6].as_f64().unwrap() - 5000.0 / 6854.0).abs() < 1e-12);
        assert!((r[7].as_f64().unwrap() - 304.0 / 131.424).abs() < 1e-12);
        assert_eq!(
            r.as_array().unwrap()[8..],
            [json!(0.45), json!(1.366), json!(3.26)]
        );
    });
    assert!(s.entries("pending").is_empty());
    let done = s.entries("done");
    assert_eq!(done.len(), 2);
    assert_eq!(done[0]["state"]["state"], "delivered");
    assert_eq!(done[0]["state"]["result"], json!(["recorded"]));
    // Publishing the same results again is a no-op: the key was delivered.
    let out = s.publish_exits(0);
    assert!(
        out.contains(&format!("already delivered: sink=board key={}", key(4))),
        "{out}"
    );
    s.drain_exits(0);
    let (code, out) = s.run(&["--status"]);
    assert_eq!(code, 0);
    assert!(out.contains("0 pending, 2 delivered"), "{out}");
    assert_eq!(fake.rows_posts(), (2, 2));
    s.assert_no_secret();
}

#[test]
fn publish_500_then_success_puts_one_row_on_the_board() {
    let (fake, mut s) = space_and_one_row(|k| k.fail_posts = 1);
    s.publish_exits(0);
    fake.with(|b| assert_eq!((b.rows.len(), b.posts, b.gets), (1, 2, 1)));
    let done = s.entries("done");
    assert_eq!(done[0]["attempts"], 2);
    let log = done[0]["log"].to_string();
    assert!(log.contains("HTTP 500"), "{log}");
    s.assert_no_secret();
}

#[test]
fn publish_event_error_keeps_the_row_queued_until_the_space_takes_it() {
    let (fake, mut s) = space_and_one_row(|k| k.function_error = true);
    let out = s.publish_exits(2);
    assert!(
        out.contains("the Space reported an error for event"),
        "{out}"
    );
    assert_eq!(fake.rows_posts(), (0, 4), "max attempts bound retries");
    let p = s.entries("pending");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["state"]["state"], "pending");
    // The Space is fixed; a later drain delivers it, once.
    fake.with(|b| b.knobs.function_error = false);
    assert_drain_leaves_one_row(&mut s, &fake);
    assert!(s.entries("pending").is_empty());
    s.assert_no_secret();
}

#[test]
fn publish_connection_refused_then_pending_later_delivers_once() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut s = Setup::new(&url, &[4], false);
    let out = s.publish_exits(2);
    assert!(out.contains("pending") && out.contains(&key(4)), "{out}");
    let p = s.entries("pending");
    assert_eq!(
        (p[0]["state"]["state"].as_str(), p[0]["attempts"].as_u64()),
        (Some("pending"), Some(4))
    );
    let err = p[0]["last_error"].as_str().unwrap();
    assert!(err.contains("Connection refused"), "{err}");
    // The Space comes up on that address; the outbox drains.
    let fake = Fake::start(port, Knobs::default());
    s.drain_exits(0);
    assert_eq!(fake.rows_posts(), (1, 1));
    assert_drain_leaves_one_row(&mut s, &fake);
    s.assert_no_secret();
}

#[test]
fn publish_killed_between_submit_and_confirm_resumes_without_a_duplicate() {
    // The Space keeps answered events: after the restart the old event confirms.
    let (fake, mut s) = space_and_one_row(|k| k.stall_confirm = true);
    let child = s.spawn_until_stalled(&fake, "a stalled confirmation");
    let p = s.entries("pending");
    assert_eq!(p[0]["state"]["state"], "submitted", "{p:?}");
    assert_eq!(p[0]["state"]["event_id"], "ev0001");
    // A second publisher does not race the first one.
    let out = s.drain_exits(2);
    assert!(
        out.contains("another publisher is draining this outbox"),
        "{out}"
    );
    s.kill(child);
    fake.with(|b| b.knobs.stall_confirm = false);
    s.drain_exits(0);
    assert_eq!(fake.rows_posts(), (1, 1), "confirmed, not resubmitted");
    let done = s.entries("done");
    assert!(done[0]["log"].to_string().contains("event ev0001 complete"));
    s.assert_no_secret();
}

#[test]
fn publish_killed_and_space_forgot_the_event_holds_the_row() {
    // Gradio forgets an event when its reader disconnects: after the restart its fate is
    // unknown. The row is held (not resubmitted) until a person marks it.
    let (fake, mut s) = space_and_one_row(|k| {
        k.stall_confirm = true;
        k.forget_after_stream = true;
    });
    let child = s.spawn_until_stalled(&fake, "a stalled confirmation");
    s.kill(child);
    fake.wait_until("the Space to drop the event", |b| {
        b.stalled == 0 && b.events.is_empty()
    });
    fake.with(|b| b.knobs.stall_confirm = false);
    for _ in 0..2 {
        let out = s.drain_exits(2);
        assert!(
            out.contains("unconfirmed") && out.contains("Session not found"),
            "{out}"
        );
        assert!(out.contains("--mark-delivered"), "{out}");
    }
    assert_eq!(fake.rows_posts(), (1, 1), "no duplicate");
    let p = s.entries("pending");
    assert_eq!(p[0]["state"]["state"], "unconfirmed");
    assert_eq!(p[0]["state"]["event_id"], "ev0001");
    let (code, out) = s.run(&["--mark-delivered", &key(4)]);
    assert_eq!(code, 0, "{out}");
    assert!(s.entries("pending").is_empty());
    assert_eq!(s.entries("done").len(), 1);
    assert_drain_leaves_one_row(&mut s, &fake);
    s.assert_no_secret();
}

#[test]
fn publish_killed_during_submit_is_held_not_resubmitted() {
    // The Space recorded the row but the answer never came: the outbox shows `submitting`.
    let (fake, mut s) = space_and_one_row(|k| k.stall_post = true);
    let child = s.spawn_until_stalled(&fake, "a stalled submission");
    assert_eq!(s.entries("pending")[0]["state"]["state"], "submitting");
    s.kill(child);
    fake.with(|b| b.knobs.stall_post = false);
    let out = s.drain_exits(2);
    assert!(out.contains("unconfirmed"), "{out}");
    assert_eq!(fake.rows_posts(), (1, 1));
    s.assert_no_secret();
}

#[test]
fn publish_webhook_sends_the_key_and_resubmits_into_dedup_after_a_kill() {
    let fake = Fake::with_knobs(|k| k.stall_post = true);
    let mut s = Setup::new(&fake.url, &[8], true);
    let child = s.spawn_until_stalled(&fake, "a stalled webhook");
    s.kill(child);
    fake.with(|b| b.knobs.stall_post = false);
    // Webhooks default to `resubmit`: the receiver sees the same key twice and keeps one.
    s.drain_exits(0);
    fake.with(|b| {
        assert_eq!(b.hook_keys, [key(8), key(8)]);
        assert_eq!(b.hook_rows.len(), 1);
        let body = &b.hook_rows[0];
        assert_eq!(body["idempotency_key"], key(8));
        assert_eq!(body["run_id"], "777");
        assert_eq!(body["row"]["conc"], 8);
        assert_eq!(body["row"]["infmax_model_prefix"], "dsr1");
        assert!(b.auth.iter().all(|a| a == &format!("Bearer {HOOK_TOKEN}")) && !b.auth.is_empty());
    });
    let done = s.entries("done");
    assert_eq!(done[0]["state"]["result"]["duplicate"], true);
    s.assert_no_secret();
}

#[test]
fn publish_refuses_rows_without_values_and_bad_sinks_files() {
    let b = shipped();
    let cfg = SinksConfig::parse(
        "sinks.yaml",
        &format!(
            "values: {{team: t}}\nsinks:\n  - name: board\n    kind: gradio\n    routes:\n      - match: {{model: gptoss-fp4, isl: 1024, osl: 1024}}\n        space: http://127.0.0.1:9\n        api_name: submit\n        fields: {FIELDS}\n"
        ),
    )
    .unwrap();
    // B200 has no gptoss 1k/1k point at conc 16: no baseline values, no submission.
    let row = point("gptoss", 16, 300.0, 900.0, &b);
    let r = entries_for(&cfg, &row, "1");
    assert_eq!(r.len(), 1);
    let e = r[0].as_ref().unwrap_err().to_string();
    assert!(
        e.contains("`baseline_e2e`: baseline missing: b200-nv1126 has no gptoss-fp4"),
        "{e}"
    );
    // A row of another line is simply not for this sink.
    assert!(entries_for(&cfg, &point("dsr1", 4, 100.0, 100.0, &b), "1").is_empty());

    for (text, want) in [
        ("sinks:\n  - name: a\n    kind: gradio\n    routes:\n      - match: {model: m, isl: 1, osl: 1}\n        space: http://x\n        api_name: s\n        fields: [teem]\n", "unknown field `teem`"),
        ("sinks:\n  - name: a\n    kind: webhook\n    url: https://user:pw@example.org/h\n", "credentials do not belong in URLs"),
        ("sinks:\n  - name: a\n    kind: webhook\n    url: https://example.org/h\n    token: abc\n", "unknown field `token`"),
        ("sinks:\n  - name: a\n    kind: webhook\n    url: https://example.org/h\n    token_env: hf_abc-def\n", "must be an environment variable name"),
        ("sinks:\n  - name: a\n    kind: ftp\n", "unknown variant `ftp`"),
    ] {
        let e = SinksConfig::parse("sinks.yaml", text).unwrap_err().to_string();
        assert!(e.starts_with("sinks.yaml") && e.contains(want), "{e}");
    }
}

#[test]
fn publish_needs_a_run_id_and_something_to_do() {
    let mut s = Setup::new("http://127.0.0.1:9", &[4], false);
    let (code, out) = s.run(&[]);
    assert_eq!(code, 1);
    assert!(out.contains("nothing to do"), "{out}");
    let dir = s.p("results").display().to_string();
    let sinks = s.p("sinks.yaml").display().to_string();
    let (code, out) = s.run(&["--dir", &dir, "--sinks", &sinks]);
    assert_eq!(code, 1);
    assert!(out.contains("--dir needs a run id"), "{out}");
}

#[test]
fn publish_webhook_takes_agentic_aggregates_beside_fixed_rows() {
    let fake = Fake::with_knobs(|_| {});
    let mut s = Setup::new(&fake.url, &[8], true);
    // An agentic job dir as `runner exec` leaves it: the v3 aggregate and AIPerf's files.
    let job = s.p("results/agentic_job");
    std::fs::create_dir_all(job.join("aiperf_artifacts")).unwrap();
    let case = crate::util::fixture("agentic/cases/vllm");
    std::fs::copy(
        case.join("reference.json"),
        job.join("dsv4_agentic_conc16_sim.json"),
    )
    .unwrap();
    std::fs::copy(
        case.join("aiperf_artifacts/profile_export_aiperf.json"),
        job.join("aiperf_artifacts/profile_export_aiperf.json"),
    )
    .unwrap();
    // The fixture point ran on the simulated engine: published only with --allow-sim.
    let out = s.publish_allow_sim_exits(0);
    let agentic_key = format!("777:{}:agentic:u16", "ab".repeat(32));
    assert!(
        out.contains(&format!("queued: sink=hook key={agentic_key}")),
        "{out}"
    );
    fake.with(|b| {
        assert_eq!(b.hook_rows.len(), 2, "{:?}", b.hook_keys);
        let agentic = b
            .hook_rows
            .iter()
            .find(|r| r["scenario"] == "agentic-coding")
            .expect("the agentic aggregate was posted");
        assert_eq!(agentic["idempotency_key"], agentic_key);
        assert_eq!(agentic["row"]["conc"], 16);
        assert_eq!(
            agentic["row"]["request_metrics"]["qps"]["window_seconds"],
            1
        );
        assert!(b.hook_rows.iter().any(|r| r["row"]["conc"] == 8));
    });
    // Published once: a second run finds it delivered.
    let again = s.publish_allow_sim_exits(0);
    assert!(
        again.contains(&format!("already delivered: sink=hook key={agentic_key}")),
        "{again}"
    );
    s.assert_no_secret();
}

#[test]
fn publish_gradio_takes_agentic_points_by_model_and_users() {
    let fake = Fake::with_knobs(|k| k.forget_after_stream = true);
    let mut s = Setup::new(&fake.url, &[8], false);
    // An agentic job dir as `runner exec` leaves it, beside the fixed-length rows.
    let job = s.p("results/agentic_job");
    std::fs::create_dir_all(job.join("aiperf_artifacts")).unwrap();
    let case = crate::util::fixture("agentic/cases/vllm");
    std::fs::copy(
        case.join("reference.json"),
        job.join("dsv4_agentic_conc16_sim.json"),
    )
    .unwrap();
    std::fs::copy(
        case.join("aiperf_artifacts/profile_export_aiperf.json"),
        job.join("aiperf_artifacts/profile_export_aiperf.json"),
    )
    .unwrap();
    // The fixed route stays; an agentic route for the point's model key and users takes
    // the dashboard's flat metrics; one for other users takes nothing.
    let sinks = std::fs::read_to_string(s.p("sinks.yaml")).unwrap()
        + &format!(
            "      - match: {{model: dsv4-fp4-mtp, scenario: agentic-coding, conc: [32]}}\n        space: {u}\n        api_name: never\n        fields: [team]\n      - match: {{model: dsv4-fp4-mtp, scenario: agentic-coding, conc: [16]}}\n        space: {u}\n        api_name: submit\n        fields: [team, conc, tput_per_gpu, interactivity, median_e2e_ms, agg.median_ttft, agg.p90_itl, agg.theoretical_cache_hit_rate, agg.offload_mode, hw, idempotency_key]\n",
            u = fake.url
        );
    std::fs::write(s.p("sinks.yaml"), sinks).unwrap();
    // The fixture point ran on the simulated engine: published only with --allow-sim.
    let out = s.publish_allow_sim_exits(0);
    let agentic_key = format!("777:{}:agentic:u16", "ab".repeat(32));
    assert!(
        out.contains(&format!("delivered: sink=board key={agentic_key}")),
        "{out}"
    );
    fake.with(|b| {
        assert_eq!(b.rows.len(), 2, "{:?}", b.rows);
        let r = b
            .rows
            .iter()
            .find(|r| r[10] == agentic_key.as_str())
            .expect("the agentic point is on the board");
        let agg: Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("reference.json")).unwrap())
                .unwrap();
        let lat = &agg["request_metrics"]["latency"];
        assert_eq!(r[0], "infmax-test");
        assert_eq!(r[1], 16);
        assert_eq!(
            r[2],
            agg["request_metrics"]["throughput"]["per_gpu"]["total_tput_tps"]
        );
        // Full-response ITL replaces ITL where the aggregate has it (as the dashboard does):
        // median interactivity = 1 / median full-response ITL, p90 ITL = its p90.
        let full_p50 = lat["full_response_itl"]["p50"].as_f64().unwrap();
        assert_eq!(r[3].as_f64().unwrap(), 1.0 / full_p50);
        assert_eq!(
            r[4].as_f64().unwrap(),
            lat["e2el"]["p50"].as_f64().unwrap() * 1000.0
        );
        assert_eq!(r[5], lat["ttft"]["p50"]);
        assert_eq!(r[6], lat["full_response_itl"]["p90"]);
        assert_eq!(
            r[7],
            agg["request_metrics"]["cache"]["theoretical_cache_hit_rate"]
        );
        assert_eq!(r[8], "on");
        assert_eq!(r[9], "sim");
    });
    // Published once: a second run finds both delivered.
    let again = s.publish_allow_sim_exits(0);
    assert!(
        again.contains(&format!("already delivered: sink=board key={agentic_key}")),
        "{again}"
    );
    s.assert_no_secret();
}

#[test]
fn publish_agentic_route_with_fields_an_agentic_point_lacks_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let bad = |m: &str, fields: &str| {
        let f = d.path().join("sinks.yaml");
        std::fs::write(
            &f,
            format!("sinks:\n  - name: board\n    kind: gradio\n    routes:\n      - match: {m}\n        space: https://x.hf.space\n        api_name: submit\n        fields: {fields}\n"),
        )
        .unwrap();
        infmax::publish::SinksConfig::load(&f)
    };
    // ISL/OSL belong to fixed-length routes only, and are required there.
    let e = bad(
        "{model: m, scenario: agentic-coding, isl: 1024, osl: 1024}",
        "[conc]",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("routes[0].match") && e.contains("takes no `isl`/`osl`"),
        "{e}"
    );
    let e = bad("{model: m, isl: 1024}", "[conc]")
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs both `isl` and `osl`"), "{e}");
    // A point without a baseline is not sent with a made-up ratio.
    let cfg = bad(
        "{model: dsv4-fp4-mtp, scenario: agentic-coding}",
        "[conc, tput_ratio, isl]",
    )
    .unwrap();
    let agg: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::util::fixture("agentic/cases/vllm/reference.json"))
            .unwrap(),
    )
    .unwrap();
    let got = infmax::publish::agentic_entries_for(&cfg, &agg, "1");
    assert_eq!(got.len(), 1);
    let e = got.into_iter().next().unwrap().unwrap_err().to_string();
    assert!(
        e.contains("`tput_ratio`: no baseline exists for agentic points")
            && e.contains("`isl`: an agentic point has no ISL/OSL"),
        "{e}"
    );
}

#[test]
fn publish_refuses_simulated_rows_unless_allowed() {
    let fake = Fake::with_knobs(|_| {});
    let mut s = Setup::new(&fake.url, &[4, 8], false);
    // conc 8 ran on the simulated engine.
    let f = s.p("results/job_c8/agg.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    v["hw"] = json!("sim");
    std::fs::write(&f, v.to_string()).unwrap();
    let out = s.publish_exits(1);
    assert!(
        out.contains("error: simulated row not published: ")
            && out.contains("job_c8/agg.json: hw is `sim`")
            && out.contains("pass --allow-sim"),
        "{out}"
    );
    // The real row still went out; the simulated one never reached the board.
    fake.with(|b| assert_eq!(b.rows.len(), 1));
    fake.with(|b| assert_eq!(b.rows[0][1], 4));
    let mut a = s.publish_args();
    a.push("--allow-sim".into());
    let (code, out) = s.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}");
    fake.with(|b| assert_eq!(b.rows.len(), 2));
}
