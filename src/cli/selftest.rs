//! `runner bench --self-test`: how fast and how accurate the load client is.
//!
//! The simulated engine runs in exact-schedule mode on one thread and records when it
//! handed every token to the socket; the client runs on another thread whose CPU time is
//! measured. For 1, 64 and 1024 concurrent streams this prints client CPU per million
//! streamed tokens, sustained token events per second, and the client's TTFT and ITL
//! (median and p99) next to the engine's true values. Numbers, not a pass/fail test: the
//! machine decides them, and the README records what one machine measured.
//!
//! Client and engine share the monotonic clock, so beyond comparing distributions the
//! self-test pairs every token the client timed with the engine's send time of the same
//! token (requests matched by prompt hash): the delivery delay (client arrival − engine
//! send; for the first token, the TTFT error) and the per-gap ITL error |measured − true|
//! are the client's timing error itself.
//!
//! The client's error can only be judged where the engine kept its schedule (true median
//! ITL at the nominal ITL): an engine that falls behind writes several due tokens at once,
//! and then there is no 2 ms truth to compare with. So each point says whether the engine
//! kept the schedule, and the run first measures the machine's transport ceiling: how many
//! small writes per second its kernel moves across that many loopback TCP connections with
//! one writer and one reader thread and no HTTP at all. An offered load above that ceiling
//! cannot be delivered on schedule by any engine on this machine.
//!
//! `--self-test-dispatch` measures the load driver's dispatch order instead: requests of
//! varied length after warmups, the engine's arrival order compared with the request order
//! (inverted pairs, matched by prompt hash), and the duration next to that of the in-order
//! schedule, which the exact engine's known per-request times make computable.

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
    /// Per token, client arrival time minus engine send time (same clock), ms: median, p99.
    pub delay_ms: [f64; 2],
    /// Per request, the first token's delay: the client's TTFT error against the engine's
    /// first send, ms: median, p99.
    pub ttft_err_ms: [f64; 2],
    /// Per token, |measured ITL − true ITL|, µs: median, p99.
    pub itl_err_us: [f64; 2],
    /// Requests whose tokens could be paired with the engine's record one for one.
    pub paired: usize,
    pub failed: usize,
}

/// Seconds on CPU clock `clock` (this thread's, or another thread's from
/// `pthread_getcpuclockid`).
fn cpu_seconds(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only to `ts`; the clocks passed here are this thread's or
    // those of live runtime threads.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn thread_cpu_seconds() -> f64 {
    cpu_seconds(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU clocks of a runtime's threads, so a multi-threaded client's CPU time can be summed.
type Clocks = Arc<std::sync::Mutex<Vec<libc::clockid_t>>>;

/// CPU seconds used so far by the threads behind `clocks`.
fn clocks_cpu_seconds(clocks: &Clocks) -> f64 {
    clocks
        .lock()
        .expect("clock list")
        .iter()
        .map(|&c| cpu_seconds(c))
        .sum()
}

/// A runtime on the calling thread (`threads` ≤ 1) or with `threads` workers whose CPU
/// clocks are collected in `clocks`.
fn runtime(
    threads: usize,
    name: &str,
    clocks: &Clocks,
) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
    }
    let clocks = clocks.clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .on_thread_start(move || {
            let mut id: libc::clockid_t = 0;
            // SAFETY: asks for the CPU clock of the calling thread, written into `id`.
            if unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) } == 0 {
                clocks.lock().expect("clock list").push(id);
            }
        })
        .enable_all()
        .build()
}

fn med_p99(v: &[f64]) -> [f64; 2] {
    let s = stats::sorted(v);
    [
        stats::median_sorted(&s) * 1e3,
        stats::percentile_sorted(&s, 99.0) * 1e3,
    ]
}

/// Start the exact-schedule engine on its own OS thread, with a runtime of `threads` workers
/// (one: a single-threaded runtime on that thread).
fn start_engine(
    ttft_ms: f64,
    itl_ms: f64,
    threads: usize,
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
            let rt = match runtime(threads, "sim-engine", &Clocks::default()) {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = htx.send(Err(anyhow::Error::from(e)));
                    return;
                }
            };
            rt.block_on(async move {
                match Server::start_local(cfg).await {
                    Ok(h) => {
                        let _ = htx.send(Ok(h));
                        let _ = stop_rx.await;
                    }
                    Err(e) => {
                        let _ = htx.send(Err(e.into()));
                    }
                }
            });
        })?;
    let h = hrx.recv().context("engine thread")??;
    Ok((h, stop_tx))
}

/// Measure one point: `streams` concurrent requests of `tokens` tokens each.
pub fn measure(
    engine: &Handle,
    streams: usize,
    tokens: u32,
    client_threads: usize,
) -> anyhow::Result<Point> {
    let opts = BodyOptions {
        backend: Backend::Vllm,
        model: engine.config().model.clone(),
        best_of: 1,
        logprobs: None,
        ignore_eos: true,
    };
    let prompts: Vec<String> = (0..streams)
        .map(|i| format!("self-test request {i}"))
        .collect();
    let reqs: Vec<Prepared> = prompts
        .iter()
        .map(|p| Prepared {
            body: request::body(&opts, p, tokens),
            prompt_len: 4,
            output_len: tokens,
        })
        .collect();
    let reqs = Arc::new(reqs);
    let plan = |warmups: usize| LoadPlan {
        target: Target::new(
            format!("{}/v1/completions", engine.url()),
            None,
            false,
            Timeouts {
                total: Duration::from_secs(600),
                stall: Duration::from_secs(60),
            },
        ),
        max_concurrency: Some(streams),
        request_rate: f64::INFINITY,
        burstiness: 1.0,
        num_warmups: warmups,
    };
    // The client: its own thread (and its runtime's workers, if more than one), whose CPU
    // time is the client's alone.
    let (reqs2, plan_w) = (reqs.clone(), plan(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let clocks = Clocks::default();
    let clocks2 = clocks.clone();
    let rt = runtime(client_threads, "client-worker", &clocks)?;
    std::thread::Builder::new()
        .name("client".into())
        .spawn(move || {
            let client = load::http_client();
            // One short request per stream first, outside the timing: the engine's first
            // connections and allocations are not what is measured.
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
            let cpu0 = thread_cpu_seconds() + clocks_cpu_seconds(&clocks2);
            let r = rt.block_on(load::run(
                client,
                reqs2,
                Arc::new(plan_w),
                NumpyRandom::new(0),
                Arc::new(Progress::default()),
            ));
            // The driver's loop thread is the client's too.
            let cpu =
                thread_cpu_seconds() + clocks_cpu_seconds(&clocks2) - cpu0 + r.driver_cpu_seconds;
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
    let Paired {
        delay,
        first,
        itl_err,
        requests: paired,
    } = pair(engine, &prompts, &r.outcomes, &sched)?;
    Ok(Point {
        streams,
        tokens: tokens_seen,
        seconds: r.duration,
        client_cpu_s: cpu,
        ttft_ms: med_p99(&ttft),
        true_ttft_ms: med_p99(&tttft),
        itl_ms: med_p99(&itl),
        true_itl_ms: med_p99(&titl),
        delay_ms: med_p99(&delay),
        ttft_err_ms: med_p99(&first),
        itl_err_us: med_p99(&itl_err).map(|x| x * 1e3),
        paired,
        failed,
    })
}

/// The client's timing error, token by token, in seconds.
#[derive(Default)]
struct Paired {
    /// Every token: client arrival − engine send.
    delay: Vec<f64>,
    /// The first token of each request (the error of its TTFT).
    first: Vec<f64>,
    /// Every gap: |measured − true|.
    itl_err: Vec<f64>,
    /// Requests paired.
    requests: usize,
}

/// Pair every token the client timed with the engine's send time of the same token (both
/// on the monotonic clock; requests matched by prompt hash).
fn pair(
    engine: &Handle,
    prompts: &[String],
    outcomes: &[request::Outcome],
    sched: &crate::sim::Schedule,
) -> anyhow::Result<Paired> {
    let vocab = crate::sim::tokenizer::Vocab::load(None)?;
    let records: std::collections::HashMap<u64, &crate::sim::RequestRecord> =
        sched.requests.iter().map(|r| (r.prompt_hash, r)).collect();
    let mut out = Paired::default();
    let mut arrivals = vec![];
    for (p, o) in prompts.iter().zip(outcomes) {
        let ids = vocab.encode(p).map_err(|e| anyhow::anyhow!("{e}"))?;
        let hash = crate::sim::model::prompt_hash(0, &ids);
        let (Some(rec), Some(sent), true) = (records.get(&hash), o.sent, o.success) else {
            continue;
        };
        if rec.send_ns.len() != o.itl.len() + 1 {
            continue;
        }
        // The client's arrival times, in seconds since the engine's epoch.
        arrivals.clear();
        let mut t = sent.saturating_duration_since(engine.epoch()).as_secs_f64() + o.ttft;
        arrivals.push(t);
        for gap in &o.itl {
            t += gap;
            arrivals.push(t);
        }
        let mut prev = None;
        for (a, &e) in arrivals.iter().zip(&rec.send_ns) {
            let d = a - e as f64 * 1e-9;
            out.delay.push(d);
            match prev {
                Some(p) => out.itl_err.push(f64::abs(d - p)),
                None => out.first.push(d),
            }
            prev = Some(d);
        }
        out.requests += 1;
    }
    Ok(out)
}

/// The most small writes per second this machine's kernel carries across `conns` loopback
/// TCP connections: one thread writes `msg` bytes to each connection in turn, another reads
/// them back through epoll, nothing else runs. Returns events per second.
pub fn transport_ceiling(conns: usize, msg: usize, rounds: usize) -> anyhow::Result<f64> {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut writers = Vec::with_capacity(conns);
    let mut readers = Vec::with_capacity(conns);
    for _ in 0..conns {
        let r = std::net::TcpStream::connect(addr)?;
        let (w, _) = listener.accept()?;
        w.set_nodelay(true)?;
        r.set_nonblocking(true)?;
        writers.push(w);
        readers.push(r);
    }
    let total = (conns * rounds * msg) as u64;
    let reader = std::thread::Builder::new()
        .name("ceiling-reader".into())
        .spawn(move || -> std::io::Result<()> {
            // SAFETY: plain epoll calls on descriptors owned by `readers`, which outlive them.
            let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if ep < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for (i, r) in readers.iter().enumerate() {
                let mut ev = libc::epoll_event {
                    events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                    u64: i as u64,
                };
                // SAFETY: as above.
                if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, r.as_raw_fd(), &mut ev) } < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
            let mut buf = vec![0u8; 64 << 10];
            let mut got = 0u64;
            while got < total {
                // SAFETY: `events` has room for the 1024 entries we allow.
                let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 1024, 10_000) };
                if n <= 0 {
                    // SAFETY: closing our own epoll descriptor.
                    unsafe { libc::close(ep) };
                    return Err(std::io::Error::other("no data within 10 s"));
                }
                for ev in &events[..n as usize] {
                    let r = &mut readers[ev.u64 as usize];
                    loop {
                        match r.read(&mut buf) {
                            Ok(0) => break,
                            Ok(k) => {
                                got += k as u64;
                                if k < buf.len() {
                                    break;
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
            // SAFETY: closing our own epoll descriptor.
            unsafe { libc::close(ep) };
            Ok(())
        })?;
    let payload = vec![b'x'; msg];
    let t0 = std::time::Instant::now();
    for _ in 0..rounds {
        for w in &mut writers {
            w.write_all(&payload)?;
        }
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
    Ok((conns * rounds) as f64 / t0.elapsed().as_secs_f64())
}

/// Whether the engine kept the nominal ITL: its true median within 1 % of it.
pub fn on_schedule(p: &Point, itl_ms: f64) -> bool {
    (p.true_itl_ms[0] - itl_ms).abs() <= 0.01 * itl_ms
}

/// The verdict column: the client's median-ITL error against the engine's truth, or why
/// there is no truth to judge it by.
fn verdict(p: &Point, itl_ms: f64) -> String {
    if p.streams == 0 || p.failed > 0 {
        return "failed requests".into();
    }
    if !on_schedule(p, itl_ms) {
        return "engine off schedule".into();
    }
    let err = (p.itl_ms[0] - p.true_itl_ms[0]) / p.true_itl_ms[0] * 100.0;
    format!(
        "{err:+.2} % {}",
        if err.abs() <= 1.0 {
            "(within 1 %)"
        } else {
            "(over 1 %)"
        }
    )
}

/// Token events per second one engine worker thread writes on schedule (measured: about
/// 80k socket writes/s on the 2-core VM, more on a server core; the bound is the kernel's
/// cost per small write, about 12 µs of CPU each).
const ENGINE_EVENTS_PER_THREAD: f64 = 80_000.0;
/// Worker threads for the engine and the client when the user did not choose (0 = choose):
/// the client's as `runner bench` chooses them ([`load::client_threads_for`]), the engine's
/// enough for the offered event rate `events_per_s`, cut to the cores the client leaves (an
/// engine that falls behind is reported as "engine off schedule", a starved client would be
/// a wrong number).
pub fn auto_threads(events_per_s: f64, cores: usize, chosen: [usize; 2]) -> [usize; 2] {
    let client = if chosen[1] > 0 {
        chosen[1]
    } else {
        load::client_threads_for(events_per_s, cores)
    };
    let engine = if chosen[0] > 0 {
        chosen[0]
    } else {
        ((events_per_s / ENGINE_EVENTS_PER_THREAD).ceil() as usize)
            .max(1)
            .min(cores.max(2).saturating_sub(client).max(1))
    };
    [engine, client]
}

/// Run the self-test and print its table. `threads` of 0 are chosen from the offered event
/// rate and the cores present ([`auto_threads`]); the client's per point, the engine's for
/// the largest point.
pub fn run(
    streams: &[usize],
    tokens: u32,
    ttft_ms: f64,
    itl_ms: f64,
    threads: [usize; 2],
) -> anyhow::Result<Vec<Point>> {
    let rate = |n: usize| n as f64 * 1000.0 / itl_ms;
    let most_rate = rate(streams.iter().copied().max().unwrap_or(1));
    let [engine_threads, _] = auto_threads(most_rate, load::cores(), threads);
    let client_for = |n: usize| auto_threads(rate(n), load::cores(), threads)[1];
    let client_desc = if threads[1] > 0 {
        threads[1].to_string()
    } else {
        let per: Vec<String> = streams.iter().map(|&n| client_for(n).to_string()).collect();
        format!("{} (chosen per point from the offered rate)", per.join("/"))
    };
    crate::outln!(
        "load-client self-test: exact-schedule engine (TTFT {ttft_ms} ms, ITL {itl_ms} ms) on {engine_threads} thread(s), client on {client_desc}; {tokens} tokens per stream; {} cores",
        load::cores()
    );
    if let Some(&most) = streams.iter().max() {
        let ceiling = transport_ceiling(most, 256, 200)?;
        let offered = most as f64 * 1000.0 / itl_ms;
        crate::outln!(
            "transport ceiling: {ceiling:.0} writes/s of 256 B across {most} loopback TCP connections (one writer, one reader, no HTTP); offered at {most} streams: {offered:.0} events/s{}",
            if offered <= ceiling {
                String::new()
            } else if engine_threads <= 1 {
                " — above one writer's ceiling: one engine thread cannot keep that schedule".to_string()
            } else {
                format!(" — above one writer's ceiling: the engine's {engine_threads} threads must share it")
            }
        );
    }
    let (engine, stop) = start_engine(ttft_ms, itl_ms, engine_threads)?;
    crate::outln!(
        "{:>7} {:>7} {:>10} {:>10} {:>8} {:>21} {:>21} {:>19} {:>19} {:>13} {:>15} {:>15} {:>6}  ITL median error",
        "streams",
        "threads",
        "tokens",
        "events/s",
        "cpu/1M",
        "TTFT med (true) ms",
        "TTFT p99 (true) ms",
        "ITL med (true) ms",
        "ITL p99 (true) ms",
        "TTFT err ms",
        "delay med/p99",
        "|ITL err| µs",
        "failed"
    );
    let mut points = vec![];
    for &n in streams {
        let p = measure(&engine, n, tokens, client_for(n))?;
        crate::outln!(
            "{:>7} {:>7} {:>10} {:>10.0} {:>7.3}s {:>21} {:>21} {:>19} {:>19} {:>13} {:>15} {:>15} {:>6}  {}",
            p.streams,
            client_for(n),
            p.tokens,
            p.tokens as f64 / p.seconds,
            p.client_cpu_s / p.tokens as f64 * 1e6,
            format!("{:.3} ({:.3})", p.ttft_ms[0], p.true_ttft_ms[0]),
            format!("{:.3} ({:.3})", p.ttft_ms[1], p.true_ttft_ms[1]),
            format!("{:.4} ({:.4})", p.itl_ms[0], p.true_itl_ms[0]),
            format!("{:.4} ({:.4})", p.itl_ms[1], p.true_itl_ms[1]),
            format!("{:.3}/{:.3}", p.ttft_err_ms[0], p.ttft_err_ms[1]),
            format!("{:.3}/{:.3} ms", p.delay_ms[0], p.delay_ms[1]),
            format!("{:.0}/{:.0}", p.itl_err_us[0], p.itl_err_us[1]),
            p.failed,
            verdict(&p, itl_ms)
        );
        if p.paired + p.failed < p.streams {
            crate::outln!(
                "        ({} of {} requests could not be paired token for token with the engine's record)",
                p.streams - p.paired - p.failed,
                p.streams
            );
        }
        points.push(p);
    }
    let _ = stop.send(());
    Ok(points)
}

/// What one dispatch-order run measured: how far the engine's arrival order strayed from the
/// request order, and what that did to the duration.
#[derive(Debug, Clone)]
pub struct OrderRun {
    /// Timed-request pairs (i < j) that reached the engine as j before i.
    pub inversions: usize,
    /// Pairs compared (n·(n−1)/2 over the requests the engine recorded).
    pub pairs: usize,
    /// The furthest any request arrived from its own position.
    pub max_shift: usize,
    /// Arrival position of request 0 (0 when it was first).
    pub first_at: usize,
    /// The driver's duration of the timed phase, seconds.
    pub duration: f64,
    /// The same requests on the same engine, slots handed out in index order: the exact
    /// engine's per-request time is known, so this duration is computed, not measured.
    pub in_order: f64,
    pub failed: usize,
}

/// Where a request reached the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Its place in the engine's arrival order (warmups included).
    pub position: usize,
    /// When it arrived, ns since the engine's epoch.
    pub at_ns: u64,
}

/// Where each request reached the engine (`None`: not recorded), paired by prompt hash; a
/// prompt sent more than once (warmup copies of request 0) counts by its last arrival.
pub fn arrivals(
    prompts: &[String],
    sched: &crate::sim::Schedule,
) -> anyhow::Result<Vec<Option<Arrival>>> {
    let vocab = crate::sim::tokenizer::Vocab::load(None)?;
    let mut recs: Vec<&crate::sim::RequestRecord> = sched.requests.iter().collect();
    recs.sort_by_key(|r| (r.arrival_ns, r.id));
    let mut last = std::collections::HashMap::new();
    for (position, r) in recs.iter().enumerate() {
        last.insert(
            r.prompt_hash,
            Arrival {
                position,
                at_ns: r.arrival_ns,
            },
        );
    }
    prompts
        .iter()
        .map(|p| {
            let ids = vocab.encode(p).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(last.get(&crate::sim::model::prompt_hash(0, &ids)).copied())
        })
        .collect()
}

/// Pairs (i < j) with `pos[j] < pos[i]`, over the recorded positions.
pub fn inversions(pos: &[Option<usize>]) -> (usize, usize) {
    let p: Vec<usize> = pos.iter().flatten().copied().collect();
    let mut inv = 0;
    for i in 0..p.len() {
        inv += p[i + 1..].iter().filter(|&&q| q < p[i]).count();
    }
    (inv, p.len() * p.len().saturating_sub(1) / 2)
}

/// The duration of an in-order schedule: request `i` takes `service[i]` seconds once it has
/// a slot, `conc` slots, each handed to the next request in index order as soon as it frees.
pub fn in_order_duration(service: &[f64], conc: usize) -> f64 {
    let mut free = vec![0.0f64; conc.max(1)];
    let mut end = 0.0f64;
    for &s in service {
        let (k, _) = free
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("at least one slot");
        free[k] += s;
        end = end.max(free[k]);
    }
    end
}

/// Run `requests` requests of varied length (after `warmups` copies of request 0) at
/// concurrency `conc` against the exact engine, the driver on one event loop of its own (as
/// `runner bench` runs it, and the reference its requests) or, without `single`, straight on
/// a multi-threaded runtime; compare the engine's arrival order and the duration with an
/// in-order schedule.
pub fn dispatch_run(
    engine: &Handle,
    requests: usize,
    conc: usize,
    warmups: usize,
    [ttft_ms, itl_ms]: [f64; 2],
    single: bool,
) -> anyhow::Result<OrderRun> {
    let opts = BodyOptions {
        backend: Backend::Vllm,
        model: engine.config().model.clone(),
        best_of: 1,
        logprobs: None,
        ignore_eos: true,
    };
    // Lengths 1–64, spread so the order decides which requests share the slots.
    let lens: Vec<u32> = (0..requests)
        .map(|i| 1 + (i as u32).wrapping_mul(2_654_435_761) % 64)
        .collect();
    let prompts: Vec<String> = (0..requests)
        .map(|i| format!("dispatch-order request {i}"))
        .collect();
    let reqs: Vec<Prepared> = prompts
        .iter()
        .zip(&lens)
        .map(|(p, &n)| Prepared {
            body: request::body(&opts, p, n),
            prompt_len: 4,
            output_len: n,
        })
        .collect();
    let plan = LoadPlan {
        target: Target::new(
            format!("{}/v1/completions", engine.url()),
            None,
            false,
            Timeouts {
                total: Duration::from_secs(600),
                stall: Duration::from_secs(60),
            },
        ),
        max_concurrency: Some(conc),
        request_rate: f64::INFINITY,
        burstiness: 1.0,
        num_warmups: warmups,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    engine.take_schedule();
    let (client, reqs, plan) = (load::http_client(), Arc::new(reqs), Arc::new(plan));
    let (rng, progress) = (NumpyRandom::new(0), Arc::new(Progress::default()));
    let r = if single {
        rt.block_on(load::run_on_one_thread(client, reqs, plan, rng, progress))?
    } else {
        rt.block_on(load::run(client, reqs, plan, rng, progress))
    };
    let sched = engine.take_schedule();
    let pos: Vec<Option<usize>> = arrivals(&prompts, &sched)?
        .into_iter()
        .map(|a| a.map(|a| a.position))
        .collect();
    let (inv, pairs) = inversions(&pos);
    let mut order: Vec<(usize, usize)> = pos
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|p| (p, i)))
        .collect();
    order.sort_unstable();
    let max_shift = order
        .iter()
        .enumerate()
        .map(|(rank, &(_, i))| rank.abs_diff(i))
        .max()
        .unwrap_or(0);
    let first_at = order.iter().position(|&(_, i)| i == 0).unwrap_or(0);
    let service: Vec<f64> = lens
        .iter()
        .map(|&n| (ttft_ms + f64::from(n - 1) * itl_ms) * 1e-3)
        .collect();
    Ok(OrderRun {
        inversions: inv,
        pairs,
        max_shift,
        first_at,
        duration: r.duration,
        in_order: in_order_duration(&service, conc),
        failed: r.outcomes.iter().filter(|o| !o.success).count(),
    })
}

/// Print the dispatch-order figure: `runs` runs of `requests` requests after `warmups`
/// warmups at concurrency `conc`, the driver straight on a multi-threaded runtime, then on one
/// event loop (as `runner bench` runs it, and the reference's asyncio loop its requests).
pub fn dispatch_order(
    requests: usize,
    conc: usize,
    warmups: usize,
    runs: usize,
) -> anyhow::Result<Vec<OrderRun>> {
    let (ttft_ms, itl_ms) = (20.0, 1.0);
    let (engine, stop) = start_engine(ttft_ms, itl_ms, 1)?;
    let mut out = vec![];
    for single in [false, true] {
        crate::outln!(
            "dispatch order: {requests} requests (1–64 tokens) after {warmups} warmups at concurrency {conc}, exact engine (TTFT {ttft_ms} ms, ITL {itl_ms} ms), client {}",
            if single { "on one event loop (as runner bench runs it)" } else { "straight on a multi-threaded runtime" }
        );
        crate::outln!(
            "{:>4} {:>16} {:>9} {:>8} {:>11} {:>11} {:>9} {:>6}",
            "run",
            "inversions",
            "max shift",
            "req 0 at",
            "duration s",
            "in-order s",
            "vs order",
            "failed"
        );
        for run in 0..runs {
            let o = dispatch_run(&engine, requests, conc, warmups, [ttft_ms, itl_ms], single)?;
            crate::outln!(
                "{:>4} {:>16} {:>9} {:>8} {:>11.4} {:>11.4} {:>8.2}% {:>6}",
                run + 1,
                format!("{}/{}", o.inversions, o.pairs),
                o.max_shift,
                o.first_at,
                o.duration,
                o.in_order,
                (o.duration / o.in_order - 1.0) * 100.0,
                o.failed
            );
            out.push(o);
        }
    }
    let _ = stop.send(());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::auto_threads;

    /// Hand-computed: events/s ÷ 150k (client) and ÷ 80k (engine), rounded up; the client
    /// takes at most half the cores, the engine what is left.
    #[test]
    fn threads_follow_the_offered_rate_and_the_cores() {
        // 1 stream × 2 ms: 500 events/s.
        assert_eq!(auto_threads(500.0, 2, [0, 0]), [1, 1]);
        // 1,024 × 2 ms = 512k events/s on 16 cores: client ⌈3.41⌉ = 4, engine ⌈6.4⌉ = 7.
        assert_eq!(auto_threads(512_000.0, 16, [0, 0]), [7, 4]);
        // 2,048 × 2 ms = 1,024k: client ⌈6.83⌉ = 7, engine ⌈12.8⌉ = 13 cut to 16 − 7 = 9.
        assert_eq!(auto_threads(1_024_000.0, 16, [0, 0]), [9, 7]);
        // The 2-core VM: one each, whatever the rate.
        assert_eq!(auto_threads(512_000.0, 2, [0, 0]), [1, 1]);
        // A user's choice stands; only the other side is chosen.
        assert_eq!(auto_threads(512_000.0, 16, [8, 2]), [8, 2]);
        assert_eq!(auto_threads(512_000.0, 16, [0, 2]), [7, 2]);
        assert_eq!(auto_threads(512_000.0, 16, [3, 0]), [3, 4]);
    }
}
