//! The load client: its dataset against an independently computed fixture, and real runs of
//! `runner bench` against the simulated engine (clean and with each fault) and against a
//! hand-written HTTP server that checks exactly what goes over the wire.

use crate::util::{fixture, llama_server};
use infmax::client::dataset::{sample_random, RandomParams};
use infmax::client::rng::NumpyRandom;
use infmax::sim::config::{CutFault, FailFault, Faults, StallFault};
use infmax::sim::{Handle, Server, SimConfig};
use infmax::tokenizer::HfTokenizer;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

#[test]
fn dataset_matches_independent_fixture() {
    let text = std::fs::read_to_string(fixture("client/random-dataset.json")).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    let tok = HfTokenizer::embedded();
    for c in cases {
        let p = RandomParams {
            input_len: c["isl"].as_u64().unwrap() as u32,
            output_len: c["osl"].as_u64().unwrap() as u32,
            range_ratio: c["range_ratio"].as_f64().unwrap(),
            prefix_len: c["prefix_len"].as_u64().unwrap() as u32,
            num_prompts: c["num_prompts"].as_u64().unwrap() as usize,
            use_chat_template: false,
            compat: Default::default(),
            workers: 1,
        };
        assert_eq!(tok.vocab_size() as u64, c["vocab_size"].as_u64().unwrap());
        let mut ds = sample_random(&tok, &p, c["seed"].as_u64().unwrap() as u32).unwrap();
        let want = c["prompts"].as_array().unwrap();
        assert_eq!(ds.prompts.len(), want.len());
        for (i, (got, want)) in ds.prompts.iter().zip(want).enumerate() {
            assert_eq!(got.text, want["text"].as_str().unwrap(), "prompt {i} text");
            assert_eq!(
                u64::from(got.prompt_len),
                want["prompt_len"].as_u64().unwrap(),
                "prompt {i} len"
            );
            assert_eq!(
                u64::from(got.output_len),
                want["output_len"].as_u64().unwrap(),
                "prompt {i} output len"
            );
        }
        // The generator continues into the arrival process exactly where numpy's would.
        assert_eq!(
            ds.rng.gamma(1.0, 0.1),
            c["next_gamma_1_0.1"].as_f64().unwrap()
        );
    }
}

/// What the reference computes for the `random` dataset, transcribed step by step and one
/// prompt after another (as `make_expected.py` does), plus how often its retry loop drew
/// padding and how often it used up all its rounds.
struct Sequential {
    prompts: Vec<(String, u32, u32)>,
    mismatches: Vec<i64>,
    rng: NumpyRandom,
    padded: usize,
    exhausted: usize,
}

fn sequential_random(tok: &HfTokenizer, p: &RandomParams, seed: u32) -> Sequential {
    let v = tok.vocab_size() as i64;
    let mut rs = NumpyRandom::new(seed);
    let prefix: Vec<u32> = rs
        .randint_n(0, v, p.prefix_len as usize)
        .into_iter()
        .map(|x| x as u32)
        .collect();
    let mut isl = i64::from(p.input_len);
    if p.use_chat_template {
        let template = tok.encode(&tok.apply_chat_template("a").unwrap()).unwrap();
        isl -= template.len() as i64 - 1;
    }
    let n = p.num_prompts;
    let osl = i64::from(p.output_len);
    let in_lens = rs.randint_n((isl as f64 * p.range_ratio) as i64, isl + 1, n);
    let out_lens = rs.randint_n((osl as f64 * p.range_ratio) as i64, osl + 1, n);
    let offsets = rs.randint_n(0, v, n);
    let (mut prompts, mut mismatches, mut padded, mut exhausted) = (vec![], vec![], 0, 0);
    for i in 0..n {
        let target = prefix.len() + in_lens[i] as usize;
        let mut ids = prefix.clone();
        ids.extend((0..in_lens[i]).map(|j| ((offsets[i] + i as i64 + j) % v) as u32));
        let mut text = tok.decode(&ids).unwrap();
        let (mut drew, mut converged) = (false, false);
        for _ in 0..10 {
            let mut ids = tok.encode(&text).unwrap();
            if ids.len() < target {
                drew = true;
                let extra = rs.randint_n(0, v, target - ids.len());
                ids.extend(extra.into_iter().map(|x| x as u32));
            } else if ids.len() > target {
                ids.truncate(target);
            } else {
                converged = true;
                break;
            }
            text = tok.decode(&ids).unwrap();
        }
        padded += usize::from(drew);
        exhausted += usize::from(!converged);
        if p.use_chat_template {
            text = tok.apply_chat_template(&text).unwrap();
        }
        let len = tok.encode(&text).unwrap().len();
        mismatches.push(len as i64 - target as i64);
        prompts.push((text, len as u32, out_lens[i] as u32));
    }
    Sequential {
        prompts,
        mismatches,
        rng: rs,
        padded,
        exhausted,
    }
}

/// The fixture's prompts never pad or run out of rounds; short prompts often do. The
/// generator computes those loops out of order (padding in a sequential pass, fixed points
/// cut short), so check it against the plain sequential algorithm where both happen.
#[test]
fn dataset_padding_and_exhausted_loops_match_sequential_algorithm() {
    let tok = HfTokenizer::embedded();
    // (seed, ISL, prefix, chat template, prompts that draw padding, loops that run out)
    let cases = [
        (1, 48, 0, false, 7, 5),
        (2, 64, 0, true, 7, 6),
        (0, 64, 4, true, 13, 1),
    ];
    for (seed, isl, prefix_len, use_chat_template, padded, exhausted) in cases {
        let p = RandomParams {
            input_len: isl,
            output_len: 16,
            range_ratio: 0.5,
            prefix_len,
            num_prompts: 300,
            use_chat_template,
            compat: Default::default(),
            workers: 1,
        };
        let want = sequential_random(&tok, &p, seed);
        assert_eq!(
            (want.padded, want.exhausted),
            (padded, exhausted),
            "seed {seed}"
        );
        let mut got = sample_random(&tok, &p, seed).unwrap();
        assert_eq!(got.prompts.len(), want.prompts.len());
        for (i, (got, want)) in got.prompts.iter().zip(&want.prompts).enumerate() {
            assert_eq!(
                (&got.text, got.prompt_len, got.output_len),
                (&want.0, want.1, want.2),
                "seed {seed}: prompt {i}"
            );
        }
        assert_eq!(got.mismatches, want.mismatches, "seed {seed}");
        assert!(got.mismatches.iter().any(|&m| m != 0));
        // Same number of padding draws, in the same order: the generator continues alike.
        let mut want_rng = want.rng;
        let next = |r: &mut NumpyRandom| (0..16).map(|_| r.next_u32()).collect::<Vec<_>>();
        assert_eq!(next(&mut got.rng), next(&mut want_rng), "seed {seed}");
    }
}

/// A sim engine on its own runtime, kept alive while the test runs `runner bench`.
struct Sim {
    handle: Handle,
    _rt: tokio::runtime::Runtime,
}

fn sim(cfg: SimConfig) -> Sim {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.block_on(Server::start_local(cfg)).unwrap();
    Sim { handle, _rt: rt }
}

fn exact(ttft_ms: f64, itl_ms: f64) -> SimConfig {
    let mut c = SimConfig::preset("exact").unwrap();
    let x = c.exact.as_mut().unwrap();
    x.ttft_ms = ttft_ms;
    x.itl_ms = itl_ms;
    c
}

/// Run `runner bench` against `url` writing `out/r.json`; returns the process output and the
/// result file (if written).
fn bench(url: &str, out: &std::path::Path, extra: &[&str]) -> (Output, Option<Value>) {
    let mut args = vec![
        "bench",
        "--base-url",
        url,
        "--random-input-len",
        "64",
        "--random-output-len",
        "16",
        "--num-prompts",
        "20",
        "--max-concurrency",
        "4",
        "--ignore-eos",
        "--disable-tqdm",
        "--save-result",
        "--result-filename",
        "r.json",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        "90,99,99.9",
    ];
    let dir = out.display().to_string();
    args.extend(["--result-dir", &dir]);
    args.extend_from_slice(extra);
    let o = Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(&args)
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let r = std::fs::read_to_string(out.join("r.json"))
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    (o, r)
}

/// Run `runner bench` (see `bench`) against an exact sim (5 ms TTFT, `itl_ms` ITL) whose
/// faults `set` switches on; returns the process output and the result file (if written).
fn bench_faulty(
    itl_ms: f64,
    set: impl FnOnce(&mut Faults),
    extra: &[&str],
) -> (Output, Option<Value>) {
    let mut c = exact(5.0, itl_ms);
    set(&mut c.faults);
    let s = sim(c);
    let d = tempfile::tempdir().unwrap();
    bench(&s.handle.url(), d.path(), extra)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bench_against_exact_sim() {
    let s = sim(exact(20.0, 1.0));
    let d = tempfile::tempdir().unwrap();
    let (o, r) = bench(
        &s.handle.url(),
        d.path(),
        &[
            "--num-warmups",
            "3",
            "--random-range-ratio",
            "0.5",
            "--save-detailed",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r = r.expect("result written");
    assert_eq!(r["completed"], 20);
    assert_eq!(r["failed"], 0);
    assert_eq!(r["request_rate"], "inf");
    assert_eq!(r["max_concurrency"], 4);
    assert_eq!(r["num_warmups"], 3);
    assert!(r["request_goodput:"].is_null());
    // Physical lower bound: nothing arrives before the engine sends it. (ITL gaps may be 0
    // on a loaded machine, when the engine writes several late tokens at once.)
    assert!(
        r["median_ttft_ms"].as_f64().unwrap() >= 20.0,
        "{}",
        r["median_ttft_ms"]
    );
    // One gap per token after the first, for every request.
    let itls = r["itls"].as_array().unwrap();
    let outs = r["output_lens"].as_array().unwrap();
    assert_eq!(itls.len(), 20);
    for (gaps, n) in itls.iter().zip(outs) {
        assert_eq!(
            gaps.as_array().unwrap().len() as u64,
            n.as_u64().unwrap() - 1
        );
    }
    let ttfts = r["ttfts"].as_array().unwrap();
    assert!(ttfts.iter().all(|t| t.as_f64().unwrap() >= 0.02));
    for p in ["90", "99", "99.9"] {
        for m in ["ttft", "tpot", "itl", "e2el"] {
            assert!(r[format!("p{p}_{m}_ms")].is_number(), "p{p}_{m}_ms");
        }
    }
    // Output lengths drawn in [8, 16]; with ignore_eos every request returns exactly that
    // many tokens, counted from the engine's usage chunks.
    let total = r["total_output_tokens"].as_u64().unwrap();
    assert!((20 * 8..=20 * 16).contains(&total), "{total}");
    // The engine saw 3 warmups + 20 timed requests.
    assert_eq!(s.handle.schedule().requests.len(), 23);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("Serving Benchmark Result") && table.contains("P99.9 ITL (ms):"),
        "{table}"
    );
}

#[test]
fn too_many_failures_exit_nonzero_after_writing() {
    let fail = FailFault {
        rate: 0.25,
        status: 500,
    };
    let (o, r) = bench_faulty(1.0, |f| f.fail = Some(fail), &[]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let r = r.expect("result written before exiting");
    assert_eq!(r["failed"], 5);
    assert_eq!(r["completed"], 15);
    assert!(
        r["error_samples"][0]
            .as_str()
            .unwrap()
            .starts_with("HTTP 500"),
        "{}",
        r["error_samples"]
    );
    assert!(
        stderr(&o).contains("5 of 20 requests failed"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn cut_and_stalled_streams_are_clear_errors() {
    let cut = CutFault {
        after_tokens: 3,
        rate: 1.0,
    };
    let (o, r) = bench_faulty(1.0, |f| f.cut = Some(cut), &[]);
    assert_eq!(o.status.code(), Some(4));
    let e = r.unwrap()["error_samples"][0].as_str().unwrap().to_string();
    assert!(e.contains("after 3 tokens"), "{e}");

    let stall = StallFault {
        after_tokens: 2,
        for_ms: None,
        rate: 1.0,
    };
    let t = std::time::Instant::now();
    let (o, r) = bench_faulty(
        1.0,
        |f| f.stall = Some(stall),
        &["--stall-timeout", "1", "--num-prompts", "4"],
    );
    assert_eq!(o.status.code(), Some(4));
    assert!(
        t.elapsed().as_secs() < 60,
        "stalls end at the stall timeout"
    );
    let e = r.unwrap()["error_samples"][0].as_str().unwrap().to_string();
    assert!(
        e.contains("stream stalled: no data for 1 s after 2 tokens"),
        "{e}"
    );
}

#[test]
fn engine_that_dies_mid_run_fails_requests_not_the_client() {
    let (o, r) = bench_faulty(
        2.0,
        |f| f.exit_after_requests = Some(8),
        &["--stall-timeout", "5"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let r = r.expect("partial result written");
    assert_eq!(
        r["completed"].as_u64().unwrap() + r["failed"].as_u64().unwrap(),
        20
    );
    assert!(r["failed"].as_u64().unwrap() >= 12);
}

/// Read one HTTP/1.1 request (head lines, then a Content-Length body) off `s`.
/// One request's head and body; `None` when the peer closed without sending one (`runner
/// bench`'s reachability probe only connects).
fn try_read_request(s: &std::net::TcpStream) -> Option<(String, String)> {
    let mut r = BufReader::new(s);
    let mut head = String::new();
    let mut len = 0;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            return None;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    Some((head, String::from_utf8(body).unwrap()))
}

/// A one-shot HTTP/1.1 server that records each request head and body, and answers with a
/// vLLM-style stream written in awkward pieces (lines split across TCP writes).
fn fake_vllm(requests: usize) -> (String, std::thread::JoinHandle<Vec<(String, String)>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/prefix", l.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let mut seen = vec![];
        while seen.len() < requests {
            let (mut s, _) = l.accept().unwrap();
            let Some(req) = try_read_request(&s) else {
                continue; // a connection that sent nothing: the reachability probe
            };
            seen.push(req);
            let chunks = [
                "data: {\"choices\":[{\"index\":0,\"text\":\"Hel\",\"finish_reason\":null}],\"usage\":null}\n\n",
                "data: {\"choices\":[{\"index\":0,\"text\":\"lo\",\"finish_reason\":null}],\"usage\":null}\n\ndata: {\"choices\":[{\"index\":0,\"te",
                "xt\":\" w\\u00f6rld\",\"finish_reason\":\"length\"}],\"usage\":null}\n\n",
                "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":3,\"total_tokens\":6}}\n\ndata: [DONE]\n\n",
            ];
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n").unwrap();
            for c in chunks {
                write!(s, "{:x}\r\n{c}\r\n", c.len()).unwrap();
                s.flush().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            s.write_all(b"0\r\n\r\n").unwrap();
        }
        seen
    });
    (url, h)
}

#[test]
fn wire_format_prefix_auth_and_split_lines() {
    let (url, server) = fake_vllm(1);
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_runner"))
        .args([
            "bench",
            "--base-url",
            &url,
            "--model",
            "org/model",
            "--tokenizer",
            "infmax/embedded",
            "--random-input-len",
            "32",
            "--random-output-len",
            "3",
            "--num-prompts",
            "1",
            "--ignore-eos",
            "--save-result",
            "--save-detailed",
            "--result-dir",
            &d.path().display().to_string(),
            "--result-filename",
            "r.json",
            "--disable-tqdm",
        ])
        .env("OPENAI_API_KEY", "sk-test-123")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let seen = server.join().unwrap();
    let (head, body) = &seen[0];
    assert!(
        head.starts_with("POST /prefix/v1/completions HTTP/1.1"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer sk-test-123"),
        "{head}"
    );
    let b: Value = serde_json::from_str(body).unwrap();
    let keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "model",
            "prompt",
            "temperature",
            "best_of",
            "max_tokens",
            "logprobs",
            "stream",
            "stream_options",
            "ignore_eos"
        ]
    );
    assert_eq!(b["model"], "org/model");
    assert_eq!(b["temperature"], 0.0);
    assert_eq!(b["max_tokens"], 3);
    assert!(b["logprobs"].is_null());
    assert_eq!(b["stream_options"]["include_usage"], true);
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(r["generated_texts"][0], "Hello wörld");
    assert_eq!(r["output_lens"][0], 3);
    assert_eq!(r["itls"][0].as_array().unwrap().len(), 2);
    assert_eq!(r["model_id"], "org/model");
    assert_eq!(r["tokenizer_id"], "infmax/embedded");
    // The API key never reaches the result.
    assert!(!std::fs::read_to_string(d.path().join("r.json"))
        .unwrap()
        .contains("sk-test-123"));
}

#[test]
fn bad_flags_are_clear_errors() {
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_runner"))
            .arg("bench")
            .args(args)
            .output()
            .unwrap();
        (o.status.code(), stderr(&o))
    };
    let (c, e) = run(&["--goodput", "ttft=5"]);
    assert_eq!(c, Some(1));
    assert!(e.contains("KEY:VALUE"), "{e}");
    let (_, e) = run(&["--percentile-metrics", "ttft,latency"]);
    assert!(e.contains("unknown metric `latency`"), "{e}");
    let (_, e) = run(&["--dataset-name", "sharegpt"]);
    assert!(
        e.contains("--dataset-name sharegpt needs --dataset-path"),
        "{e}"
    );
    let (_, e) = run(&["--tokenizer", "/nonexistent/tok.json"]);
    assert!(e.contains("tokenizer"), "{e}");
    // Nothing listening: refused before the load phase (exit 1) with one line naming the
    // address, no table of zeros and no result file.
    let d = tempfile::tempdir().unwrap();
    let (o, r) = bench("http://127.0.0.1:9", d.path(), &["--num-prompts", "3"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("cannot reach the server at http://127.0.0.1:9"),
        "{e}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).trim().is_empty());
    assert!(r.is_none(), "no result file");
}

#[test]
fn bench_against_real_llama_server() {
    let Some(server) = llama_server() else { return };
    let d = tempfile::tempdir().unwrap();
    let url = format!("http://{}", server.addr);
    let (o, r) = bench(
        &url,
        d.path(),
        &[
            "--max-concurrency",
            "8",
            "--num-prompts",
            "24",
            "--random-range-ratio",
            "1.0",
            "--model",
            "tiny",
            "--tokenizer",
            "infmax/embedded",
            "--save-detailed",
        ],
    );
    assert!(o.status.success(), "{}\n{}", stderr(&o), server.log_text());
    let r = r.expect("result written");
    assert_eq!(r["completed"], 24);
    // ignore_eos: exactly max_tokens each, counted from llama.cpp's usage (which rides on
    // the final choices chunk, not a separate one).
    assert_eq!(r["total_output_tokens"], 24 * 16);
    assert!(r["output_lens"].as_array().unwrap().iter().all(|n| n == 16));
    // llama.cpp ends with a chunk holding an empty choice plus the usage; like the reference,
    // any chunk with choices is a token event: 16 tokens + that chunk = 17 events, 16 gaps.
    assert!(r["itls"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g.as_array().unwrap().len() == 16));
    assert_eq!(
        r["total_input_tokens"],
        r["input_lens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>()
    );
}

/// A server that answers one request with `pieces`, written with pauses between them, then
/// closes the connection.
fn raw_server(pieces: Vec<Vec<u8>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/completions", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut s = loop {
            let (s, _) = l.accept().unwrap();
            if try_read_request(&s).is_some() {
                break s;
            }
        };
        for p in pieces {
            s.write_all(&p).unwrap();
            s.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
    });
    url
}

fn send_one(url: String) -> infmax::client::request::Outcome {
    send_via(url, true)
}

/// Send one request through the client's own transport (`own`) or through reqwest (what
/// `https://` targets use).
fn send_via(url: String, own: bool) -> infmax::client::request::Outcome {
    use infmax::client::request::{send, Prepared, Target, Timeouts};
    let mut target = Target::new(
        url,
        None,
        false,
        Timeouts {
            total: std::time::Duration::from_secs(20),
            stall: std::time::Duration::from_secs(5),
        },
    );
    assert!(
        target.endpoint.is_some(),
        "http:// uses the client's own transport"
    );
    if !own {
        target.endpoint = None;
    }
    let r = Prepared {
        body: bytes::Bytes::from_static(b"{}"),
        prompt_len: 1,
        output_len: 2,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = infmax::client::load::http_client();
    rt.block_on(send(&client, &target, &r))
}

const SSE: &str = "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: {\"choices\":[{\"text\":\"b\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";

/// Every way HTTP/1.1 frames a body reaches the same timing, and every way it can break
/// ends in a named error.
#[test]
fn own_transport_reads_every_framing_and_names_every_break() {
    let ok = |o: &infmax::client::request::Outcome| {
        assert!(o.success, "{}", o.error);
        assert_eq!(o.generated_text, "ab");
        assert_eq!(o.output_tokens, Some(2));
        assert_eq!(o.itl.len(), 1);
    };
    let head = |framing: &str| {
        format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n{framing}\r\n").into_bytes()
    };
    // Content-Length, the head and body split mid-line.
    let mut wire = head(&format!("content-length: {}\r\n", SSE.len()));
    wire.extend_from_slice(SSE.as_bytes());
    let (a, b) = wire.split_at(wire.len() / 2);
    ok(&send_one(raw_server(vec![a.to_vec(), b.to_vec()])));
    // Until the connection closes, after an interim 100 Continue.
    let mut wire = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    wire.extend(head("connection: close\r\n"));
    ok(&send_one(raw_server(vec![wire, SSE.as_bytes().to_vec()])));
    // Chunked, one byte per chunk.
    let mut pieces = vec![head("transfer-encoding: chunked\r\n")];
    pieces.push(
        SSE.bytes()
            .flat_map(|c| format!("1\r\n{}\r\n", c as char).into_bytes())
            .chain(*b"0\r\n\r\n")
            .collect(),
    );
    ok(&send_one(raw_server(pieces.clone())));
    // The reqwest path (https:// targets) reads the same stream the same way.
    ok(&send_via(raw_server(pieces), false));

    // Cut inside a chunk.
    let cut = vec![
        head("transfer-encoding: chunked\r\n"),
        format!("{:x}\r\n{}", SSE.len(), &SSE[..40]).into_bytes(),
    ];
    let o = send_one(raw_server(cut));
    assert!(!o.success);
    assert!(
        o.error.contains("stream broken after 1 tokens")
            && o.error
                .contains("connection closed before message completed"),
        "{}",
        o.error
    );
    // Shorter than its Content-Length.
    let mut short = head("content-length: 9999\r\n");
    short.extend_from_slice(SSE.as_bytes());
    let o = send_one(raw_server(vec![short]));
    assert!(
        o.error
            .contains("connection closed before message completed"),
        "{}",
        o.error
    );
    // A 5xx with its body.
    let o = send_one(raw_server(vec![
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 8\r\n\r\noverload".to_vec(),
    ]));
    assert_eq!(o.error, "HTTP 503 Service Unavailable: overload");
    let o = send_via(
        raw_server(vec![
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 8\r\n\r\noverload".to_vec(),
        ]),
        false,
    );
    assert_eq!(o.error, "HTTP 503 Service Unavailable: overload");
    // Not HTTP at all; nothing at all.
    let o = send_one(raw_server(vec![b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()]));
    assert!(
        o.error.starts_with("request failed: invalid HTTP response"),
        "{}",
        o.error
    );
    let o = send_one(raw_server(vec![]));
    assert_eq!(
        o.error,
        "request failed: connection closed before message completed"
    );
}

/// Run `n` distinct requests (1–24 tokens) after `warmups` copies of request 0 at concurrency
/// `conc` through the load driver against the batching sim `s`: as `runner bench` runs it (on
/// its own thread, `one_thread`) or directly on a 4-worker runtime; returns the driver's
/// result and each request's arrival at the engine (warmups count: they come first).
fn ordered_run(
    s: &Handle,
    n: usize,
    conc: usize,
    warmups: usize,
    // 0: the driver on the caller's 4-worker runtime; n: the load's own ordered loop of n
    // threads (`runner bench`: one, or more with --client-threads).
    threads: usize,
) -> (
    infmax::client::load::LoadResult,
    Vec<infmax::cli::selftest::Arrival>,
) {
    use infmax::client::load::{self, LoadPlan, Prepared, Progress};
    use infmax::client::request::{body, Backend, BodyOptions, Target, Timeouts};
    use std::sync::Arc;
    let opts = BodyOptions {
        backend: Backend::Vllm,
        model: s.config().model.clone(),
        best_of: 1,
        logprobs: None,
        ignore_eos: true,
    };
    let prompts: Vec<String> = (0..n).map(|i| format!("ordered request {i}")).collect();
    let reqs: Vec<Prepared> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let out = 1 + (i as u32 * 7) % 24;
            Prepared {
                body: body(&opts, p, out),
                prompt_len: 3,
                output_len: out,
            }
        })
        .collect();
    let plan = LoadPlan {
        target: Target::new(
            format!("{}/v1/completions", s.url()),
            None,
            false,
            Timeouts {
                total: std::time::Duration::from_secs(60),
                stall: std::time::Duration::from_secs(30),
            },
        ),
        max_concurrency: Some(conc),
        request_rate: f64::INFINITY,
        burstiness: 1.0,
        num_warmups: warmups,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    s.take_schedule();
    let (client, reqs, plan) = (load::http_client(), Arc::new(reqs), Arc::new(plan));
    let (rng, progress) = (NumpyRandom::new(0), Arc::new(Progress::default()));
    let r = if threads > 0 {
        rt.block_on(load::run_ordered(
            client, reqs, plan, rng, progress, threads,
        ))
        .unwrap()
    } else {
        rt.block_on(load::run(client, reqs, plan, rng, progress))
    };
    let sched = s.take_schedule();
    assert_eq!(sched.requests.len(), n + warmups, "every request recorded");
    let pos = infmax::cli::selftest::arrivals(&prompts, &sched).unwrap();
    let pos: Vec<_> = pos.into_iter().map(|p| p.expect("paired")).collect();
    assert!(
        r.outcomes.iter().all(|o| o.success),
        "{:?}",
        r.outcomes.iter().find(|o| !o.success).map(|o| &o.error)
    );
    (r, pos)
}

/// A sim engine on one event loop of its own thread, so that it records arrivals in the order
/// the kernel delivers them (a multi-threaded server runtime would itself serve the newest of
/// several accepted connections first: the spawning worker's LIFO slot). It stops when the
/// returned sender is dropped.
fn sim_on_one_loop(c: SimConfig) -> (Handle, tokio::sync::oneshot::Sender<()>) {
    let (htx, hrx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            htx.send(Server::start_local(c).await.unwrap()).unwrap();
            let _ = stopped.await;
        });
    });
    (hrx.recv().unwrap(), stop)
}

/// Requests take concurrency slots in request-index order, warmups and timed requests alike,
/// as the reference's single asyncio loop does; a batching engine records the arrivals.
#[test]
fn requests_reach_the_engine_in_index_order() {
    let mut c = SimConfig::preset("tiny").unwrap();
    c.record_schedule = true;
    let (s, _stop) = sim_on_one_loop(c);
    // One slot: each request is sent after the previous one ended, so the engine sees the
    // 16 warmups, then request 0, 1, 2, … with nothing in between to race.
    for _ in 0..3 {
        let (_, arr) = ordered_run(&s, 40, 1, 16, 0);
        let pos: Vec<usize> = arr.iter().map(|a| a.position).collect();
        let want: Vec<usize> = (16..56).collect();
        assert_eq!(
            pos, want,
            "arrival position of each request at concurrency 1"
        );
    }
    // Eight slots on a batching engine, which ends several requests in one step and so frees
    // several slots at once, the driver straight on a multi-threaded runtime: the slots still
    // go out in index order.
    for _ in 0..3 {
        let (r, arr) = ordered_run(&s, 64, 8, 16, 0);
        let at: Vec<std::time::Instant> = r
            .outcomes
            .iter()
            .map(|o| o.dispatched.expect("dispatched"))
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] <= w[1]),
            "slots taken out of request order"
        );
        assert!(
            arr.iter().all(|a| a.position >= 16),
            "warmups first: {arr:?}"
        );
        eprintln!(
            "4 workers, concurrency 8: {} of 2016 pairs reached the engine inverted",
            inverted(&arr)
        );
    }
    // As `runner bench` runs it, on one event loop like the reference's, requests released
    // together are also written in order, so the engine receives them in order.
    // With --client-threads 4 the streams are read by four workers, and each request task
    // starts once the previous one has written its request: still in order.
    for (threads, conc) in [(1, 8), (1, 64), (4, 8), (4, 64)] {
        let (r, arr) = ordered_run(&s, 64, conc, 16, threads);
        let at: Vec<_> = r.outcomes.iter().map(|o| o.dispatched.unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] <= w[1]));
        assert!(r.outcomes.iter().all(|o| o.success), "every request served");
        let inv = inverted(&arr);
        eprintln!(
            "{threads} thread(s), concurrency {conc}: {inv} of 2016 pairs reached the engine inverted"
        );
        assert_eq!(inv, 0, "{arr:?}");
    }
}

/// Pairs (i < j) that reached the engine as j before i.
fn inverted(arr: &[infmax::cli::selftest::Arrival]) -> usize {
    (0..arr.len())
        .map(|i| {
            (i + 1..arr.len())
                .filter(|&j| arr[j].position < arr[i].position)
                .count()
        })
        .sum()
}

/// A server that answers every request with `status` and, in the body, the request head it
/// received (headers included), as a careless proxy or a debug endpoint does.
fn echoing_server(status: &'static str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let Some((head, _)) = try_read_request(&s) else {
                    return; // a probe that sent nothing
                };
                let body = format!(
                    "{{\"error\": \"you sent: {}\"}}",
                    head.replace("\r\n", " | ")
                );
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    url
}

/// A server that echoes the request's headers in its 401 and 500 answers gets the API key
/// back; it must not reach the terminal, the result file or its error samples.
#[test]
fn echoed_api_key_never_leaves_the_process() {
    const KEY: &str = "sk-echo-test-5f2a9c1e7b3d";
    const HF: &str = "hf_echoTestTokenValue0123";
    for status in ["401 Unauthorized", "500 Internal Server Error"] {
        let url = echoing_server(status);
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().display().to_string();
        let o = Command::new(env!("CARGO_BIN_EXE_runner"))
            .args([
                "bench",
                "--base-url",
                &url,
                "--random-input-len",
                "16",
                "--random-output-len",
                "4",
                "--num-prompts",
                "6",
                "--num-warmups",
                "2",
                "--max-concurrency",
                "2",
                "--disable-tqdm",
                "--save-result",
                "--save-detailed",
                "--result-dir",
                &dir,
                "--result-filename",
                "r.json",
            ])
            .env("OPENAI_API_KEY", KEY)
            .env("HF_TOKEN", HF)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert_eq!(o.status.code(), Some(4), "too many failed requests: {err}");
        let files = crate::util::files_text(d.path());
        assert!(!files.is_empty());
        for (name, text) in files
            .iter()
            .map(|(p, t)| (p.clone(), t.as_str()))
            .chain([("stdout".into(), &*out), ("stderr".into(), &*err)])
        {
            assert!(!text.contains(KEY) && !text.contains(HF), "{name}: {text}");
            assert!(!text.contains("sk-echo-test"), "part of the key in {name}");
        }
        // The echo did happen, and says where the key was.
        let r: Value =
            serde_json::from_str(&std::fs::read_to_string(d.path().join("r.json")).unwrap())
                .unwrap();
        let samples = r["error_samples"].to_string();
        assert!(
            samples.contains("Authorization: Bearer [redacted]"),
            "{samples}"
        );
        assert!(err.contains("Bearer [redacted]"), "{err}");
    }
}
