//! Token events per second the simulated engine sustains on one core in exact-schedule mode.
//!
//! The engine runs alone on a single-threaded runtime (one core); a raw-socket client on
//! another thread opens `STREAMS` streaming completions (TTFT 50 ms, ITL 2 ms: 512k token
//! events/s offered at 1,024 streams) and drains them. Printed: token events/s achieved, the
//! socket writes they took (an engine behind schedule writes several due tokens at once, so
//! tokens/s alone would flatter it), the engine thread's CPU time per event and per write,
//! and how late tokens left relative to the nominal schedule. Also the in-memory rendering
//! cost.
//!
//! `cargo bench --bench sim_events` (env: STREAMS, TOKENS, ITL_MS; DIAG=1 adds lateness by
//! token position and the spread of request arrivals).

// Benchmarks and tests print their own diagnostics; the redacting macros are for the
// product (clippy.toml).
#![allow(clippy::disallowed_macros)]

use infmax::sim::{Server, SimConfig};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into our timespec; the clock exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p / 100.0).round() as usize]
}

/// One streaming request over a fresh connection; returns bytes read.
async fn stream(addr: SocketAddr, tokens: u64) -> usize {
    let body = format!(
        r#"{{"model":"infmax/sim","prompt":[1,2,3,4,5,6,7,8],"max_tokens":{tokens},"stream":true,"ignore_eos":true,"stream_options":{{"include_usage":true}}}}"#
    );
    let req = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0;
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n,
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` asks harness-less benches to list their tests.
        return;
    }
    let streams = env("STREAMS", 1024);
    let tokens = env("TOKENS", 2000);
    let itl_ms = env("ITL_MS", 2) as f64;

    let n = 2_000_000;
    let d = infmax::sim::render_cost(n);
    println!(
        "render only: {:.0} ns/event ({:.1} M events/s on one core)",
        d.as_nanos() as f64 / f64::from(n),
        f64::from(n) / d.as_secs_f64() / 1e6
    );

    // Per request, not per token: text prompts are tokenized on arrival.
    let vocab = infmax::sim::tokenizer::Vocab::load(None).unwrap();
    let ids: Vec<u32> = (0..1024u32).map(|j| (j * 7919 + 13) % 8000 + 3).collect();
    let text = vocab.decode(&ids);
    let t = Instant::now();
    let reps = 200;
    let mut n = 0;
    for _ in 0..reps {
        n += vocab.encode(&text).unwrap().len();
    }
    println!(
        "prompt tokenization: {:.0} µs per request with a {}-token text prompt",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(reps),
        n / reps as usize
    );

    let mut cfg = SimConfig::preset("exact").unwrap();
    cfg.exact.as_mut().unwrap().itl_ms = itl_ms;
    cfg.max_model_len = 1 << 20;
    let ttft_ms = cfg.exact.as_ref().unwrap().ttft_ms;
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let h = Server::start_local(cfg).await.unwrap();
            tx.send(h.addr()).unwrap();
            let cpu0 = thread_cpu();
            let _ = done_rx.await;
            let cpu = thread_cpu() - cpu0;
            (cpu, h.take_schedule())
        })
    });
    let addr = rx.recv().unwrap();
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t0 = Instant::now();
    let ccpu0 = thread_cpu();
    let bytes: usize = client.block_on(async {
        let tasks: Vec<_> = (0..streams)
            .map(|_| tokio::spawn(stream(addr, tokens)))
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    let wall = t0.elapsed();
    let client_cpu = thread_cpu() - ccpu0;
    done_tx.send(()).unwrap();
    let (cpu, sched) = server.join().unwrap();

    let events: usize = sched.requests.iter().map(|r| r.send_ns.len()).sum();
    let finished = sched.requests.iter().filter(|r| r.finished).count();
    let mut late: Vec<u64> = Vec::with_capacity(events);
    let (mut first, mut last) = (u64::MAX, 0);
    for r in &sched.requests {
        for (k, &t) in r.send_ns.iter().enumerate() {
            let nominal = r.arrival_ns as f64 + (ttft_ms + k as f64 * itl_ms) * 1e6;
            late.push((t as f64 - nominal).max(0.0) as u64);
            first = first.min(t);
            last = last.max(t);
        }
    }
    if std::env::var("DIAG").is_ok() {
        for k in [0usize, 1, 10, 100, 500, 1000, 1500, 1999]
            .into_iter()
            .filter(|&k| k < tokens as usize)
        {
            let mut l: Vec<u64> = sched
                .requests
                .iter()
                .map(|r| {
                    let nominal = r.arrival_ns as f64 + (ttft_ms + k as f64 * itl_ms) * 1e6;
                    (r.send_ns[k] as f64 - nominal).max(0.0) as u64
                })
                .collect();
            println!(
                "k={k}: p50 {:.3} ms p99 {:.3} ms",
                pct(&mut l, 50.0) as f64 / 1e6,
                pct(&mut l, 99.0) as f64 / 1e6
            );
        }
        let mut arr: Vec<u64> = sched.requests.iter().map(|r| r.arrival_ns).collect();
        arr.sort();
        println!(
            "arrival spread {:.3} ms",
            (arr[arr.len() - 1] - arr[0]) as f64 / 1e6
        );
    }
    assert_eq!(finished as u64, streams, "every stream must finish");
    assert_eq!(
        events as u64,
        streams * tokens,
        "every token must be recorded"
    );
    let span = Duration::from_nanos(last - first);
    // Steady state: the window in which every stream is between its first and last token.
    let w0 = sched.requests.iter().map(|r| r.send_ns[0]).max().unwrap();
    let w1 = sched
        .requests
        .iter()
        .map(|r| *r.send_ns.last().unwrap())
        .min()
        .unwrap();
    let in_window = sched
        .requests
        .iter()
        .flat_map(|r| r.send_ns.iter())
        .filter(|&&t| t >= w0 && t <= w1)
        .count();
    let (p50, p99, max) = (
        pct(&mut late, 50.0),
        pct(&mut late, 99.0),
        *late.iter().max().unwrap(),
    );
    println!(
        "exact schedule, {streams} streams × {tokens} tokens, TTFT {ttft_ms} ms, ITL {itl_ms} ms \
         (offered {:.0} events/s)",
        streams as f64 * 1000.0 / itl_ms
    );
    if w1 > w0 {
        println!(
            "  sustained with all {streams} streams active: {:.0} token events/s ({:.2} s window)",
            in_window as f64 / ((w1 - w0) as f64 / 1e9),
            (w1 - w0) as f64 / 1e9
        );
    }
    println!(
        "  overall: {events} token events in {:.2} s from first to last ({:.0}/s; {:.1} MB read by the client)",
        span.as_secs_f64(),
        events as f64 / span.as_secs_f64(),
        bytes as f64 / 1e6,
    );
    // A late engine writes every due token at once: those tokens share one send time.
    let writes: usize = sched
        .requests
        .iter()
        .map(|r| 1 + r.send_ns.windows(2).filter(|w| w[1] != w[0]).count())
        .sum();
    println!(
        "  socket writes: {writes} ({:.0}/s); {:.1} % of tokens went out together with an earlier one (engine behind schedule)",
        writes as f64 / span.as_secs_f64(),
        100.0 * (events - writes) as f64 / events as f64
    );
    println!(
        "  engine thread CPU: {:.2} s = {:.0} ns/event, {:.0} ns/write",
        cpu.as_secs_f64(),
        cpu.as_nanos() as f64 / events as f64,
        cpu.as_nanos() as f64 / writes as f64
    );
    println!(
        "  client thread CPU: {:.2} s ({:.0}% of the wall time)",
        client_cpu.as_secs_f64(),
        100.0 * client_cpu.as_secs_f64() / wall.as_secs_f64()
    );
    println!(
        "  send time − nominal schedule: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        p50 as f64 / 1e6,
        p99 as f64 / 1e6,
        max as f64 / 1e6
    );
}
