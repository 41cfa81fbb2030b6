//! The simulated engine: an OpenAI-compatible HTTP server shaped like vLLM's, with a
//! continuous-batching latency model, deterministic output, an exact-schedule mode and fault
//! injection.
//!
//! It exists for two reasons. A user without GPUs must still be able to run the whole
//! pipeline (it is the default launch profile, `sim`); and the load client needs an engine
//! whose timing is known exactly — in exact-schedule mode every token's true send time is
//! recorded — so the client's measurement error and overhead can be computed. It is never a
//! substitute for testing against a real engine.
//!
//! Start it with `runner sim`, or in-process with [`Server::start`], which returns a
//! [`Handle`] (address, schedule, shutdown).

mod batch;
mod body;
pub mod config;
mod http;
pub mod kvcache;
pub mod metrics;
pub mod model;
mod pacer;
mod render;
pub mod schedule;
pub mod tokenizer;

pub use config::SimConfig;
pub use schedule::{RequestRecord, Schedule};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Why a simulated engine stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// [`Handle::shutdown`] was called.
    Shutdown,
    /// A fault knob (`exit-after-secs`, `exit-after-requests`) crashed it on purpose.
    Crashed(String),
}

/// The engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The tokenizer could not be loaded.
    #[error(transparent)]
    Tokenizer(#[from] tokenizer::TokenizerError),
    /// The configuration breaks a rule.
    #[error("invalid sim config: {0}: {1}")]
    Config(String, String),
    /// The exact schedule's pacer thread could not start.
    #[error("cannot start the pacer thread: {0}")]
    Pacer(#[source] std::io::Error),
}

/// Starts simulated engines.
pub struct Server;

impl Server {
    /// Listen on `addr` (port 0 = an ephemeral port) and serve on the current tokio
    /// runtime until shut down or crashed by a fault.
    pub async fn start(cfg: SimConfig, addr: SocketAddr) -> Result<Handle, SimError> {
        cfg.validate().map_err(|(p, m)| SimError::Config(p, m))?;
        let vocab = tokenizer::Vocab::load(cfg.tokenizer.as_deref())?;
        let listener = listen(addr).map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let (stop, stopped) = watch::channel(None);
        let exit_after = cfg.faults.exit_after_secs;
        let engine =
            Arc::new(http::Engine::new(cfg, vocab, stop.clone()).map_err(SimError::Pacer)?);
        if let Some(secs) = exit_after {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                let _ = stop.send(Some(Exit::Crashed(format!(
                    "fault injection: exit after {secs} s"
                ))));
            });
        }
        let router = http::router(engine.clone());
        tokio::spawn(accept_loop(listener, router, stopped.clone()));
        Ok(Handle {
            addr: local,
            engine,
            stopped,
        })
    }

    /// Start on an ephemeral loopback port (tests, the load client's self-test).
    pub async fn start_local(cfg: SimConfig) -> Result<Handle, SimError> {
        Self::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }
}

/// Bind with a deep accept queue: a load client opening 1,000+ connections at once must not
/// overflow it (an overflow drops the SYN and the client retries a second later).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    mut stopped: watch::Receiver<Option<Exit>>,
) {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    loop {
        let (sock, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!("sim: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stopping(&mut stopped) => return,
        };
        let _ = sock.set_nodelay(true);
        let svc = TowerToHyperService::new(router.clone());
        let mut stop = stopped.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(sock), svc);
            tokio::select! {
                _ = conn => {}
                // Stopping drops the connection mid-response, like a crashed process.
                _ = stopping(&mut stop) => {}
            }
        });
    }
}

/// Resolves once the engine is told to stop.
async fn stopping(rx: &mut watch::Receiver<Option<Exit>>) {
    let _ = rx.wait_for(|s| s.is_some()).await.map(|_| ());
}

/// A running simulated engine.
pub struct Handle {
    addr: SocketAddr,
    engine: Arc<http::Engine>,
    stopped: watch::Receiver<Option<Exit>>,
}

impl Handle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` — the base URL of the OpenAI API (without `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SimConfig {
        &self.engine.cfg
    }

    /// Zero of the recorded send times.
    pub fn epoch(&self) -> Instant {
        self.engine.recorder.epoch
    }

    /// Every recorded request so far (needs `record-schedule`).
    pub fn schedule(&self) -> Schedule {
        self.engine.recorder.snapshot(false)
    }

    /// Like [`Handle::schedule`], and forget what was returned.
    pub fn take_schedule(&self) -> Schedule {
        self.engine.recorder.snapshot(true)
    }

    /// Stop serving now: the listener closes and open connections are dropped.
    pub fn shutdown(&self) {
        self.engine.stop.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(Exit::Shutdown);
                true
            } else {
                false
            }
        });
    }

    /// Wait until the engine stops (shutdown or a crash fault) and say why.
    pub async fn wait(&self) -> Exit {
        let mut rx = self.stopped.clone();
        let r = rx.wait_for(|s| s.is_some()).await;
        match r {
            Ok(s) => s.clone().expect("waited for Some"),
            Err(_) => Exit::Shutdown,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The startup log line that states the KV pool the way the configured flavor's engine does
/// (vLLM: `GPU KV cache size: N tokens`; SGLang: `max_total_num_tokens=N, …`), or `None`
/// when the KV cache is not modelled.
pub fn capacity_log_line(c: &SimConfig) -> Option<String> {
    let k = &c.kv_cache;
    if k.gpu_tokens == 0 {
        return None;
    }
    let host = k.offload.as_ref().map(|o| o.cpu_tokens);
    Some(match c.metrics_flavor {
        metrics::Flavor::Vllm => {
            let mut s = format!(
                "INFO [kv_cache_utils.py] GPU KV cache size: {} tokens",
                thousands(k.gpu_tokens)
            );
            if let Some(h) = host {
                s.push_str(&format!(
                    "\nINFO [sim] CPU offload tier: {} tokens",
                    thousands(h)
                ));
            }
            s
        }
        metrics::Flavor::Sglang => {
            let mut s = format!(
                "[sim] max_total_num_tokens={}, chunked_prefill_size={}, max_running_requests={}, context_len={}",
                k.gpu_tokens, c.batching.max_batched_tokens, c.batching.max_batch, c.max_model_len
            );
            if let Some(h) = host {
                s.push_str(&format!("\n[sim] HiCache host pool: {h} tokens"));
            }
            s
        }
    })
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let d = n.to_string();
    let mut out = String::with_capacity(d.len() + d.len() / 3);
    for (i, ch) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Render `n` streamed completion chunks the way a response body does (split off a reusable
/// buffer each time) and return how long it took: the engine's per-token cost without I/O.
/// For `benches/sim_events.rs`.
#[doc(hidden)]
pub fn render_cost(n: u32) -> Duration {
    let vocab = tokenizer::Vocab::load(None).expect("embedded tokenizer");
    let prompt: Vec<u32> = (10..1034).collect();
    let gen = model::Generator::new(vocab.clone(), model::prompt_hash(0, &prompt));
    let mut shape = render::Shape {
        kind: render::Kind::Completion,
        id: "cmpl-0".into(),
        created: 0,
        model: config::DEFAULT_MODEL.into(),
        prompt_len: prompt.len() as u32,
        prompt,
        n_out: u32::MAX,
        finish_reason: "length",
        include_usage: true,
        logprobs: None,
        echo: false,
        seed: 0,
        chunk_prefix: Vec::new(),
    };
    shape.prepare();
    let mut buf = bytes::BytesMut::with_capacity(512);
    let mut times = Vec::with_capacity(n as usize);
    let t0 = Instant::now();
    let mut total = 0usize;
    for pos in 0..n {
        shape.token_chunk(&mut buf, &vocab, &gen, pos);
        times.push(t0.elapsed().as_nanos() as u64);
        let b = buf.split().freeze();
        total += b.len();
        drop(b);
    }
    let d = t0.elapsed();
    assert!(total > 0 && times.len() == n as usize);
    d
}
