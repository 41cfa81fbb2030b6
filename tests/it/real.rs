//! Real engines nobody here wrote: llama.cpp's `llama-server` and llama-cpp-python's server
//! (`python -m llama_cpp.server`) on the tiny random-weight model whose vocabulary is our
//! tokenizer (all prepared by `scripts/llama-server.sh`, which `scripts/test` runs). The
//! checks are the behaviour the client and the accuracy gate rely on: health, model listing,
//! identical tokenisation, streamed completions with usage, token-id prompts, the chat
//! template and concurrent streams; for llama-cpp-python the two ways it differs from vLLM
//! (token-id prompts refused, echoed logprobs without the BOS entry).
//!
//! The HTTP client is a few lines of blocking HTTP/1.1 over `TcpStream`, so the tests see the
//! bytes as the server sends them; every socket has a read timeout and every server is killed
//! when its test ends.

use crate::util::{http_status, kill_with_parent, llama_paths, llama_server};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A response whose body is read incrementally (chunked transfer coding undone).
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Box<dyn BufRead + Send>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(mut self) -> String {
        let mut s = String::new();
        self.body.read_to_string(&mut s).expect("body is UTF-8");
        s
    }

    fn json(self) -> Value {
        let status = self.status;
        let text = self.text();
        assert_eq!(status, 200, "HTTP {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

/// One request on a fresh connection (`Connection: close`).
fn request(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Response {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if body.is_some() {
        head += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            payload.len()
        );
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(payload.as_bytes()).unwrap();

    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header line");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').expect("header has a colon");
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body: Box<dyn BufRead + Send> =
        if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            Box::new(BufReader::new(Chunked {
                inner: r,
                left: 0,
                done: false,
            }))
        } else if let Some(n) = find("content-length") {
            Box::new(r.take(n.parse().expect("numeric content-length")))
        } else {
            Box::new(r)
        };
    Response {
        status,
        headers,
        body,
    }
}

fn get(addr: &str, path: &str) -> Response {
    request(addr, "GET", path, None)
}

fn post(addr: &str, path: &str, body: &Value) -> Response {
    request(addr, "POST", path, Some(body))
}

/// The chunked transfer coding, undone.
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or_default();
            self.left = usize::from_str_radix(size, 16)
                .map_err(|_| bad(format!("bad chunk size line {line:?}")))?;
            if self.left == 0 {
                loop {
                    // trailers, up to the empty line
                    line.clear();
                    if self.inner.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(bad(format!("chunk not followed by CRLF: {crlf:?}")));
            }
        }
        Ok(n)
    }
}

/// A streamed response's events with their arrival times, checking the SSE framing: each
/// event is one `data: …` line and the stream ends with `data: [DONE]`.
struct Stream {
    start: Instant,
    events: Vec<(Instant, Value)>,
}

fn stream(addr: &str, path: &str, body: &Value) -> Stream {
    let start = Instant::now();
    let r = post(addr, path, body);
    assert_eq!(r.status, 200);
    let ct = r.header("content-type").unwrap_or_default().to_string();
    assert!(ct.starts_with("text/event-stream"), "content-type {ct:?}");
    let mut events = Vec::new();
    let mut done = false;
    for line in r.body.lines() {
        let line = line.expect("stream line");
        if line.is_empty() {
            continue;
        }
        assert!(!done, "data after [DONE]: {line:?}");
        let payload = line
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("not a data line: {line:?}"));
        if payload == "[DONE]" {
            done = true;
            continue;
        }
        let v: Value = serde_json::from_str(payload)
            .unwrap_or_else(|e| panic!("event is not JSON ({e}): {payload}"));
        assert!(v.get("error").is_none(), "error event: {v}");
        events.push((Instant::now(), v));
    }
    assert!(done, "stream ended without [DONE]");
    Stream { start, events }
}

impl Stream {
    /// Events carrying generated text (completions `text`, chat `delta.content`).
    fn token_events(&self) -> Vec<(Instant, String)> {
        self.events
            .iter()
            .filter_map(|(t, v)| {
                let c = v["choices"].get(0)?;
                let text = c["text"].as_str().or(c["delta"]["content"].as_str())?;
                (!text.is_empty()).then(|| (*t, text.to_string()))
            })
            .collect()
    }

    /// The usage object; on llama-server it rides on the final chunk, the one with
    /// `finish_reason` (vLLM sends a separate `choices: []` chunk instead).
    fn final_chunk(&self) -> &Value {
        let (_, last) = self.events.last().expect("at least one event");
        assert!(
            last.get("usage").is_some(),
            "no usage on the last chunk: {last}"
        );
        let with_usage = self
            .events
            .iter()
            .filter(|(_, v)| !v["usage"].is_null())
            .count();
        assert_eq!(with_usage, 1, "usage appears once");
        last
    }
}

fn tokenizer() -> tokenizers::Tokenizer {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tokenizer/tokenizer.json");
    tokenizers::Tokenizer::from_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn ours(tok: &tokenizers::Tokenizer, text: &str) -> Vec<u32> {
    tok.encode(text, false).unwrap().get_ids().to_vec()
}

#[test]
fn health_and_models() {
    let Some(srv) = llama_server() else { return };
    let health = get(&srv.addr, "/health").json();
    assert_eq!(health["status"], "ok", "{health}");

    let models = get(&srv.addr, "/v1/models").json();
    assert_eq!(models["object"], "list", "{models}");
    let id = models["data"][0]["id"].as_str().expect("a model id");
    assert!(id.contains("tiny-"), "model id {id:?} names the tiny GGUF");

    let metrics = get(&srv.addr, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("llamacpp:"), "Prometheus metrics");
}

#[test]
fn tokenize_matches_our_tokenizer() {
    let Some(srv) = llama_server() else { return };
    let tok = tokenizer();
    let texts = [
        "Hello, world!",
        "The quick brown fox jumps over the lazy dog.",
        "naïve café — Ünïcödé, 東京タワー, Привет мир, عربي, 🤖🚀 emoji ✓",
        "numbers 0 7 42 1234567 3.14159 -273.15 1,000,000 2025-11-22 0x1F",
        "   leading, inner   runs    of spaces\n\n\ttabs\t\tand\r\nnewlines \n  ",
        "it's we're they've I'm you'll he'd IT'S",
        "fn main() { println!(\"{}\", a[i] + b * 2); } // code",
        "trailing spaces   ",
        " ",
        "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    ];
    for text in texts {
        let want = ours(&tok, text);
        let got = post(&srv.addr, "/tokenize", &json!({ "content": text })).json();
        let got: Vec<u32> = serde_json::from_value(got["tokens"].clone()).unwrap();
        assert_eq!(got, want, "token ids differ for {text:?}");

        let back = post(&srv.addr, "/detokenize", &json!({ "tokens": want })).json();
        assert_eq!(back["content"], text, "detokenize round trip");
    }
}

#[test]
fn streamed_completion_reports_usage_on_the_final_chunk() {
    let Some(srv) = llama_server() else { return };
    let tok = tokenizer();
    let prompt = "Once upon a time, in a land far away,";
    let s = stream(
        &srv.addr,
        "/v1/completions",
        &json!({
            "prompt": prompt, "max_tokens": 16, "ignore_eos": true, "temperature": 0.0,
            "stream": true, "stream_options": {"include_usage": true},
        }),
    );
    let tokens = s.token_events();
    assert_eq!(tokens.len(), 16, "one event per token: {:?}", s.events);
    let last = s.final_chunk();
    assert_eq!(last["choices"][0]["finish_reason"], "length", "{last}");
    assert_eq!(last["usage"]["completion_tokens"], 16, "{last}");
    assert_eq!(
        last["usage"]["prompt_tokens"],
        ours(&tok, prompt).len(),
        "{last}"
    );
    assert_eq!(last["usage"]["total_tokens"], 16 + ours(&tok, prompt).len());

    // Every chunk before the final one carries text: the model avoids tokens that are
    // incomplete UTF-8, which llama-server would hold back and send as empty chunks.
    for (_, v) in &s.events[..s.events.len() - 1] {
        assert_ne!(v["choices"][0]["text"], "", "empty chunk: {v}");
    }

    // Rates on a warm server (the first generation after start-up pays one-off set-up).
    let body = json!({
        "prompt": prompt, "max_tokens": 256, "ignore_eos": true,
        "stream": true, "stream_options": {"include_usage": true},
    });
    let s = stream(&srv.addr, "/v1/completions", &body);
    let tokens = s.token_events();
    assert_eq!(tokens.len(), 256);
    let ttft = tokens[0].0 - s.start;
    let decode = tokens[255].0 - tokens[0].0;
    eprintln!(
        "llama-server single stream: ttft {:.1} ms, {:.0} tok/s decode seen by the client, \
         {:.0} tok/s by the server's own timings",
        ttft.as_secs_f64() * 1e3,
        255.0 / decode.as_secs_f64(),
        s.final_chunk()["timings"]["predicted_per_second"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );
}

#[test]
fn prompt_as_token_ids() {
    let Some(srv) = llama_server() else { return };
    let tok = tokenizer();
    let ids = ours(&tok, "Token ids are accepted as the prompt, too.");
    let r = post(
        &srv.addr,
        "/v1/completions",
        &json!({"prompt": ids, "max_tokens": 8, "ignore_eos": true, "temperature": 0.0}),
    )
    .json();
    assert_eq!(r["usage"]["prompt_tokens"], ids.len(), "{r}");
    assert_eq!(r["usage"]["completion_tokens"], 8, "{r}");
    assert_eq!(r["choices"][0]["finish_reason"], "length", "{r}");
    assert!(!r["choices"][0]["text"].as_str().unwrap().is_empty(), "{r}");
}

#[test]
fn chat_uses_the_chatml_template() {
    let Some(srv) = llama_server() else { return };
    let tok = tokenizer();
    let s = stream(
        &srv.addr,
        "/v1/chat/completions",
        &json!({
            "messages": [{"role": "user", "content": "Say something."}],
            "max_tokens": 8, "ignore_eos": true, "temperature": 0.0,
            "stream": true, "stream_options": {"include_usage": true},
        }),
    );
    assert_eq!(s.token_events().len(), 8, "{:?}", s.events);
    let usage = &s
        .events
        .iter()
        .find(|(_, v)| !v["usage"].is_null())
        .expect("a usage chunk")
        .1["usage"];
    let rendered = "<|im_start|>user\nSay something.<|im_end|>\n<|im_start|>assistant\n";
    assert_eq!(
        usage["prompt_tokens"],
        ours(&tok, rendered).len(),
        "{usage}"
    );
    assert_eq!(usage["completion_tokens"], 8, "{usage}");
}

#[test]
fn eight_concurrent_streams_complete() {
    let Some(srv) = llama_server() else { return };
    const STREAMS: usize = 8;
    const TOKENS: usize = 64;
    let start = Instant::now();
    let handles: Vec<_> = (0..STREAMS)
        .map(|i| {
            let addr = srv.addr.clone();
            std::thread::spawn(move || {
                let body = json!({
                    "prompt": format!("Stream number {i} says:"), "max_tokens": TOKENS,
                    "ignore_eos": true, "stream": true,
                    "stream_options": {"include_usage": true},
                });
                let s = stream(&addr, "/v1/completions", &body);
                let n = s.token_events().len();
                let usage = s.final_chunk()["usage"].clone();
                let first = s.token_events()[0].0;
                (n, usage, first, s.events.last().unwrap().0)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let wall = start.elapsed();
    for (n, usage, _, _) in &results {
        assert_eq!(*n, TOKENS);
        assert_eq!(usage["completion_tokens"], TOKENS, "{usage}");
    }
    // The streams overlapped (continuous batching over -np 8 slots), not one after another.
    let first_end = results.iter().map(|r| r.3).min().unwrap();
    let last_start = results.iter().map(|r| r.2).max().unwrap();
    assert!(last_start < first_end, "streams ran one at a time");

    let metrics = get(&srv.addr, "/metrics").text();
    let predicted: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("llamacpp:tokens_predicted_total "))
        .expect("tokens_predicted_total in /metrics")
        .trim()
        .parse()
        .unwrap();
    assert!(predicted >= (STREAMS * TOKENS) as f64, "{metrics}");
    eprintln!(
        "llama-server {STREAMS} concurrent streams: {:.0} tok/s aggregate ({:.2} s)",
        (STREAMS * TOKENS) as f64 / wall.as_secs_f64(),
        wall.as_secs_f64()
    );
}

/// The server-metrics scraper on a real engine's `/metrics`: llama-server's counters come
/// out as families without `_total`, their increase over the window is what the requests
/// inside it generated, and nothing before the window counts.
#[test]
fn server_metrics_scraper_on_llama_server() {
    use infmax::telemetry::server_metrics::{self, Window};
    let Some(srv) = llama_server() else { return };
    const TOKENS: usize = 16;
    let complete = |i: usize| {
        let body =
            json!({"prompt": format!("Request {i}:"), "max_tokens": TOKENS, "ignore_eos": true});
        let r = post(&srv.addr, "/v1/completions", &body).json();
        assert_eq!(r["usage"]["completion_tokens"], TOKENS, "{r}");
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let url = format!("http://{}/metrics", srv.addr);
    let scraper = server_metrics::start(std::slice::from_ref(&url), Duration::from_millis(50));
    complete(0); // before the window: must not count
    std::thread::sleep(Duration::from_millis(300));
    let start_ns = server_metrics::now_ns();
    for i in 1..=3 {
        complete(i);
    }
    std::thread::sleep(Duration::from_millis(300));
    let end_ns = server_metrics::now_ns();
    let export = rt.block_on(scraper.finish(Window { start_ns, end_ns }));
    let v = serde_json::to_value(&export).unwrap();
    assert_eq!(v["summary"]["endpoints_successful"], json!([url]));
    let predicted = &v["metrics"]["llamacpp:tokens_predicted"];
    assert_eq!(predicted["type"], "counter", "{v:#}");
    assert_eq!(
        predicted["series"][0]["stats"]["total"].as_f64(),
        Some((3 * TOKENS) as f64),
        "{predicted:#}"
    );
    let prompt = &v["metrics"]["llamacpp:prompt_tokens"]["series"][0]["stats"]["total"];
    assert!(prompt.as_f64().unwrap() > 0.0, "{v:#}");
    assert!(v["metrics"]
        .as_object()
        .unwrap()
        .values()
        .any(|m| m["type"] == "gauge"));
}

/// The agentic replay against llama-server: multi-turn chat with the full growing message
/// list, server-side token counts, subagent conversations, AIPerf's records.
#[test]
fn agentic_replay_against_real_llama_server() {
    let Some(srv) = llama_server() else { return };
    let d = tempfile::tempdir().unwrap();
    let traces = d.path().join("traces.jsonl");
    let t = traces.display().to_string();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["agentic-synth", "--preset", "tiny", "--out", &t])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = d.path().join("art");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args([
            "agentic",
            "--url",
            &format!("http://{}", srv.addr),
            "--model",
            "tiny",
            "--tokenizer",
            "infmax/embedded",
            "--input-file",
            &t,
            "--concurrency",
            "3",
            "--benchmark-duration",
            "8",
            "--unsafe-override",
            "--warmup-requests-per-lane",
            "2",
            "--max-context-length",
            "4000",
            "--min-metric-coverage",
            "0",
            "--output-artifact-dir",
        ])
        .arg(&out)
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let log = format!(
        "{}{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        srv.log_text()
    );
    assert!(o.status.success(), "{log}");
    let recs: Vec<Value> = std::fs::read_to_string(out.join("profile_export.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let prof: Vec<&Value> = recs
        .iter()
        .filter(|r| r["metadata"]["benchmark_phase"] == "profiling")
        .collect();
    assert!(prof.len() >= 5, "{} profiling records\n{log}", prof.len());
    assert!(prof.iter().all(|r| r["error"].is_null()), "{log}");
    // Server-side counts: OSL is exactly the trace's `out` (ignore_eos), ISL is the trace's
    // `in` plus the cache-bust marker and the chat template.
    let corpus = std::fs::read_to_string(&traces).unwrap();
    let mut want: std::collections::HashMap<String, Vec<(u64, u64)>> = Default::default();
    for l in corpus.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let rows = v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["type"] != "subagent")
            .map(|r| (r["in"].as_u64().unwrap(), r["out"].as_u64().unwrap()))
            .collect();
        want.insert(v["id"].as_str().unwrap().to_string(), rows);
    }
    let mut checked = 0;
    for r in &prof {
        let cid = r["metadata"]["conversation_id"].as_str().unwrap();
        if cid.contains("::") {
            continue;
        }
        let (input, out) = want[cid][r["metadata"]["turn_index"].as_u64().unwrap() as usize];
        let m = &r["metrics"];
        assert_eq!(m["output_sequence_length"]["value"], out, "{r}");
        let isl = m["input_sequence_length"]["value"].as_u64().unwrap();
        // The server also counts the marker (about 10 tokens) and the chat template's
        // markup around each message, and re-merges text across message boundaries: measured
        // 36–38 over `in` on first turns (2 messages), up to 90 at turn 4 (up to 10
        // messages). Bound it per message the turn can carry (system + user, then assistant +
        // user per turn); on a first turn a block sent twice (+64) still fails.
        let turn = r["metadata"]["turn_index"].as_u64().unwrap();
        let messages = 2 + 2 * turn;
        assert!(
            isl > input && isl < input + 24 + 16 * messages,
            "ISL {isl} vs in {input} at turn {turn}: {r}"
        );
        checked += 1;
    }
    assert!(checked > 0);
}

// ---- llama-cpp-python's server ----

/// `python -m llama_cpp.server` on the tiny model, on a loopback port; killed and reaped on
/// drop (and by the kernel if the test process dies first).
pub struct PyServer {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// The server's stdout and stderr (uvicorn's access log among them).
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl PyServer {
    /// The server's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many POST requests uvicorn's access log shows answered with `status` (the
    /// readiness polls are GETs).
    pub fn answered(&self, status: u16) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains("\"POST ") && l.contains(&format!("HTTP/1.1\" {status} ")))
            .count()
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The python with llama-cpp-python's server from `INFMAX_LLAMA_CPP_PYTHON`, and the tiny
/// model (both exported by `scripts/test`). Without them: `None` with a note, except under
/// CI (`CI` set), where the test fails.
pub fn llama_cpp_python_paths() -> Option<(PathBuf, PathBuf)> {
    match std::env::var_os("INFMAX_LLAMA_CPP_PYTHON").filter(|p| !p.is_empty()) {
        Some(py) => {
            let (_, model) = llama_paths()?;
            let py = PathBuf::from(py);
            assert!(
                py.is_file(),
                "INFMAX_LLAMA_CPP_PYTHON={} is not a file",
                py.display()
            );
            Some((py, model))
        }
        None => {
            let why = "INFMAX_LLAMA_CPP_PYTHON is not set \
                       (scripts/test sets it; INFMAX_SKIP_REAL=1 skips the setup)";
            if std::env::var_os("CI").is_some() {
                panic!("real-engine test under CI, but {why}");
            }
            eprintln!("note: skipping a real-engine test: {why}");
            None
        }
    }
}

/// Start llama-cpp-python's server on the tiny model and wait until `/v1/models` answers.
/// `--n_ctx 4096`: lm-eval's default windows are 2047 tokens and the server adds a BOS;
/// `--interrupt_requests False`: a new request must not cancel the running one.
pub fn llama_cpp_python() -> Option<PyServer> {
    let (py, model) = llama_cpp_python_paths()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral loopback port")
        .port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("llama-cpp-python.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(&py);
    cmd.args(["-m", "llama_cpp.server", "--model"])
        .arg(&model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--n_ctx", "4096", "--interrupt_requests", "False"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    kill_with_parent(&mut cmd);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", py.display()));
    let mut server = PyServer {
        child,
        addr: format!("127.0.0.1:{port}"),
        log,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!(
                "llama_cpp.server exited ({status}) before it answered:\n{}",
                server.log_text()
            );
        }
        if http_status(&server.addr, "/v1/models") == Some(200) {
            return Some(server);
        }
        assert!(
            Instant::now() < deadline,
            "llama_cpp.server not answering within 120 s:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn llama_cpp_python_refuses_token_ids_and_echoes_without_the_bos_entry() {
    let Some(srv) = llama_cpp_python() else {
        return;
    };
    let tok = tokenizer();
    let ids = ours(&tok, "Token ids are not a prompt here.");
    // A token-id prompt: HTTP 500, the same answer a crash would give.
    let r = post(
        &srv.addr,
        "/v1/completions",
        &json!({"prompt": ids, "max_tokens": 1, "temperature": 0}),
    );
    let status = r.status;
    let text = r.text();
    assert_eq!(status, 500, "{text}\n{}", srv.log_text());

    // Text works, and echo returns prompt logprobs — one entry per prompt token where
    // lm-eval expects one more (the first token's null, then the generated token). With the
    // BOS text first (lm-eval's first rolling window) that entry is dropped and the rest
    // end with the generated token; without it, the generated token has none and each entry
    // is taken from the distribution that follows its token. Neither lines up.
    for prompt in [
        "Echo me back, please.",
        "<|endoftext|>Echo me back, please.",
    ] {
        let n = ours(&tok, prompt).len();
        let v = post(
            &srv.addr,
            "/v1/completions",
            &json!({"prompt": prompt, "max_tokens": 1, "temperature": 0, "logprobs": 1,
                    "echo": true}),
        )
        .json();
        assert_eq!(v["usage"]["prompt_tokens"], n, "no BOS added: {v}");
        let lp = &v["choices"][0]["logprobs"];
        let got = lp["token_logprobs"]
            .as_array()
            .expect("token_logprobs")
            .len();
        eprintln!("llama_cpp.server echo: {prompt:?}: {n} prompt tokens, {got} logprobs");
        assert_eq!(got, n, "one entry per prompt token: {v}");
        assert!(lp["token_logprobs"][0].is_null(), "{v}");
    }
}
