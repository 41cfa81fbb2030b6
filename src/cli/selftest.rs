//! `runner bench --self-test`: how fast and how accurate the load client is.
//!
//! The simulated engine runs in exact-schedule mode on one thread and records when it
//! handed every token to the socket; the client runs on another thread whose CPU time is
//! measured. For 1, 64 and 1024 concurrent streams this prints client CPU per million
//! streamed tokens, sustained token events per second, and the client's TTFT and ITL
//! (median and p99) next to the engine's true values. Numbers, not a pass/fail test: the
//! machine decides them, and the README records what one machine measured.

use crate::client::load::{self, LoadPlan, Prepared, Progress};
use crate::client::request::{self, Backend, BodyOptions, Target, Timeouts};
use crate::client::rng::NumpyRandom;
use crate::client::stats;
use crate::sim::{Handle, Server, SimConfig};
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;

/// What one self-test point measured.
#[derive(Debug, Clone)]
pub struct Point {
    pub streams: usize,
    pub tokens: u64,
    pub seconds: f64,
    pub client_cpu_s: f64,
    pub ttft_ms: [f64; 2],
    pub true_ttft_ms: [f64; 2],
    pub itl_ms: [f64; 2],
    pub true_itl_ms: [f64; 2],
    pub failed: usize,
}

fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only to `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn med_p99(v: &[f64]) -> [f64; 2] {
    let s = stats::sorted(v);
    [
        stats::median_sorted(&s) * 1e3,
        stats::percentile_sorted(&s, 99.0) * 1e3,
    ]
}

/// Start the exact-schedule engine on its own OS thread and single-threaded runtime.
fn start_engine(
    ttft_ms: f64,
    itl_ms: f64,
) -> anyhow::Result<(Handle, tokio::sync::oneshot::Sender<()>)> {
    let mut cfg = SimConfig::preset("exact").context("exact preset")?;
    let x = cfg.exact.as_mut().context("exact timing")?;
    x.ttft_ms = ttft_ms;
    x.itl_ms = itl_ms;
    cfg.record_schedule = true;
    cfg.max_model_len = 1 << 20;
    let (htx, hrx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("sim-engine".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                match Server::start_local(cfg).await {
                    Ok(h) => {
                        let _ = htx.send(Ok(h));
                        let _ = stop_rx.await;
                    }
                    Err(e) => {
                        let _ = htx.send(Err(e));
                    }
                }
            });
        })?;
    let h = hrx.recv().context("engine thread")??;
    Ok((h, stop_tx))
}

/// Measure one point: `streams` concurrent requests of `tokens` tokens each.
pub fn measure(engine: &Handle, streams: usize, tokens: u32) -> anyhow::Result<Point> {
    let opts = BodyOptions {
        backend: Backend::Vllm,
        model: engine.config().model.clone(),
        best_of: 1,
        logprobs: None,
        ignore_eos: true,
    };
    let reqs: Vec<Prepared> = (0..streams)
        .map(|i| Prepared {
            body: request::body(&opts, &format!("self-test request {i}"), tokens),
            prompt_len: 4,
            output_len: tokens,
        })
        .collect();
    let reqs = Arc::new(reqs);
    let plan = |warmups: usize| LoadPlan {
        target: Target {
            url: format!("{}/v1/completions", engine.url()),
            api_key: None,
            chat: false,
            timeouts: Timeouts {
                total: Duration::from_secs(600),
                stall: Duration::from_secs(60),
            },
        },
        max_concurrency: Some(streams),
        request_rate: f64::INFINITY,
        burstiness: 1.0,
        num_warmups: warmups,
    };
    // The client: one thread, so its CPU time is exactly the client's.
    let (reqs2, plan_w) = (reqs.clone(), plan(0));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("client".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let client = load::pooled_http_client();
            // Open one pooled connection per stream first (short requests), outside the timing.
            let short: Vec<Prepared> = (0..streams)
                .map(|_| Prepared {
                    body: request::body(&opts, "warm", 1),
                    prompt_len: 1,
                    output_len: 1,
                })
                .collect();
            rt.block_on(load::run(
                client.clone(),
                Arc::new(short),
                Arc::new(plan_w.clone()),
                NumpyRandom::new(0),
                Arc::new(Progress::default()),
            ));
            let _ = tx.send(None);
            let cpu0 = thread_cpu_seconds();
            let r = rt.block_on(load::run(
                client,
                reqs2,
                Arc::new(plan_w),
                NumpyRandom::new(0),
                Arc::new(Progress::default()),
            ));
            let cpu = thread_cpu_seconds() - cpu0;
            let _ = tx.send(Some((r, cpu)));
        })?;
    // Forget the warm-up requests' records once they are done.
    rx.recv().context("client thread")?;
    engine.take_schedule();
    let (r, cpu) = rx
        .recv()
        .context("client thread")?
        .context("client result")?;
    let sched = engine.take_schedule();
    let mut ttft = vec![];
    let mut itl = vec![];
    let mut tokens_seen = 0u64;
    let mut failed = 0;
    for o in &r.outcomes {
        if !o.success {
            failed += 1;
            continue;
        }
        ttft.push(o.ttft);
        itl.extend_from_slice(&o.itl);
        tokens_seen += o.itl.len() as u64 + 1;
    }
    let mut tttft = vec![];
    let mut titl = vec![];
    for rec in &sched.requests {
        if let Some(first) = rec.send_ns.first() {
            tttft.push((first - rec.arrival_ns) as f64 * 1e-9);
            titl.extend(rec.send_ns.windows(2).map(|w| (w[1] - w[0]) as f64 * 1e-9));
        }
    }
    Ok(Point {
        streams,
        tokens: tokens_seen,
        seconds: r.duration,
        client_cpu_s: cpu,
        ttft_ms: med_p99(&ttft),
        true_ttft_ms: med_p99(&tttft),
        itl_ms: med_p99(&itl),
        true_itl_ms: med_p99(&titl),
        failed,
    })
}

/// Run the self-test and print its table.
pub fn run(
    streams: &[usize],
    tokens: u32,
    ttft_ms: f64,
    itl_ms: f64,
) -> anyhow::Result<Vec<Point>> {
    let (engine, stop) = start_engine(ttft_ms, itl_ms)?;
    println!(
        "load-client self-test: exact-schedule engine (TTFT {ttft_ms} ms, ITL {itl_ms} ms) on one thread, client on another; {tokens} tokens per stream"
    );
    println!(
        "{:>7} {:>10} {:>12} {:>14} {:>21} {:>21} {:>21} {:>21} {:>6}",
        "streams",
        "tokens",
        "events/s",
        "cpu s/1M tok",
        "TTFT med (true) ms",
        "TTFT p99 (true) ms",
        "ITL med (true) ms",
        "ITL p99 (true) ms",
        "failed"
    );
    let mut points = vec![];
    for &n in streams {
        let p = measure(&engine, n, tokens)?;
        println!(
            "{:>7} {:>10} {:>12.0} {:>14.3} {:>21} {:>21} {:>21} {:>21} {:>6}",
            p.streams,
            p.tokens,
            p.tokens as f64 / p.seconds,
            p.client_cpu_s / p.tokens as f64 * 1e6,
            format!("{:.3} ({:.3})", p.ttft_ms[0], p.true_ttft_ms[0]),
            format!("{:.3} ({:.3})", p.ttft_ms[1], p.true_ttft_ms[1]),
            format!("{:.4} ({:.4})", p.itl_ms[0], p.true_itl_ms[0]),
            format!("{:.4} ({:.4})", p.itl_ms[1], p.true_itl_ms[1]),
            p.failed
        );
        points.push(p);
    }
    let _ = stop.send(());
    Ok(points)
}
