//! The simulated engine over real HTTP on loopback: protocol conformance of every endpoint
//! (SSE framing, `[DONE]`, usage chunks, errors), determinism, the latency models, every
//! fault knob, the `runner sim` process, and 1,000 concurrent streams.

use futures_util::StreamExt;
use infmax::sim::model::{hash_start, logprob_of, Generator};
use infmax::sim::tokenizer::{embedded, Vocab};
use infmax::sim::{Exit, Handle, Server, SimConfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Exact-schedule engine with short, test-friendly timing.
fn exact(ttft_ms: f64, itl_ms: f64) -> SimConfig {
    let mut c = SimConfig::preset("exact").unwrap();
    let x = c.exact.as_mut().unwrap();
    x.ttft_ms = ttft_ms;
    x.itl_ms = itl_ms;
    c
}

fn tiny() -> SimConfig {
    SimConfig::preset("tiny").unwrap()
}

async fn start(cfg: SimConfig) -> Handle {
    Server::start_local(cfg).await.expect("sim starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn post(h: &Handle, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", h.url()))
        .json(&body)
        .send()
        .await
        .expect("request is answered")
}

/// A streamed body split into SSE events, checking the framing: every event is exactly one
/// `data: …` line followed by a blank line, and the stream ends with `data: [DONE]`.
fn sse(text: &str) -> Vec<Value> {
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "no [DONE] at the end: {text:?}"
    );
    let mut out = Vec::new();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    let (done, chunks) = events.split_last().unwrap();
    assert_eq!(*done, "data: [DONE]");
    for e in chunks {
        let payload = e
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("event without `data: `: {e:?}"));
        assert!(!payload.contains('\n'), "one line per event: {e:?}");
        out.push(serde_json::from_str(payload).expect("event payload is JSON"));
    }
    out
}

/// POST `body` to `path` and parse the answer as JSON, whatever its status.
async fn post_json(h: &Handle, path: &str, body: Value) -> Value {
    post(h, path, body).await.json().await.unwrap()
}

/// GET `path` and parse the answer as JSON.
async fn get_json(h: &Handle, path: &str) -> Value {
    client()
        .get(format!("{}{path}", h.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Stream a completion of `max_tokens` tokens for `prompt` (with a usage chunk if `usage`)
/// and return its events, checking the status, content type and SSE framing.
async fn stream_events(h: &Handle, prompt: Value, max_tokens: u32, usage: bool) -> Vec<Value> {
    let body = streamed(completion(prompt, max_tokens), usage);
    sse(&stream_text(h, "/v1/completions", body).await)
}

/// POST a streamed completion of `max_tokens` tokens for the prompt "x", usage included.
async fn post_stream(h: &Handle, max_tokens: u32) -> reqwest::Response {
    post(
        h,
        "/v1/completions",
        streamed(completion(json!("x"), max_tokens), true),
    )
    .await
}

/// The engine exits within five seconds; how.
async fn wait_exit(h: &Handle) -> Exit {
    tokio::time::timeout(Duration::from_secs(5), h.wait())
        .await
        .unwrap()
}

/// Nothing answers on the engine's address any more.
async fn assert_gone(h: &Handle) {
    assert!(client()
        .get(format!("{}/health", h.url()))
        .send()
        .await
        .is_err());
}

async fn stream_text(h: &Handle, path: &str, body: Value) -> String {
    let r = post(h, path, body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    r.text().await.unwrap()
}

fn completion(prompt: Value, max_tokens: u32) -> Value {
    json!({"model": "infmax/sim", "prompt": prompt, "max_tokens": max_tokens,
           "ignore_eos": true, "temperature": 0.0})
}

fn streamed(mut body: Value, usage: bool) -> Value {
    body["stream"] = json!(true);
    if usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// Concatenated text of completion chunks.
fn chunk_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"].get(0))
        .map(|c| c["text"].as_str().unwrap_or(""))
        .collect()
}

#[tokio::test]
async fn health_models_tokenize_and_unknown_routes() {
    let h = start(tiny()).await;
    let c = client();
    let r = c.get(format!("{}/health", h.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let m = get_json(&h, "/v1/models").await;
    assert_eq!(m["object"], "list");
    assert_eq!(m["data"][0]["id"], "infmax/sim");
    assert_eq!(m["data"][0]["max_model_len"], 16384);

    let text = "In the beginning God created the heaven and the earth.";
    let t = post_json(&h, "/tokenize", json!({"prompt": text})).await;
    let ids = embedded().encode(text, false).unwrap().get_ids().to_vec();
    assert_eq!(t["tokens"], json!(ids));
    assert_eq!(t["count"], ids.len());
    // Chat messages are tokenized through the ChatML template, special tokens intact.
    let t = post_json(
        &h,
        "/tokenize",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(t["tokens"][0], 1, "<|im_start|> is one token (id 1)");

    let r = c.get(format!("{}/nope", h.url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["object"], "error");
}

#[tokio::test]
async fn completions_stream_is_vllm_shaped() {
    let h = start(exact(5.0, 1.0)).await;
    let ev = stream_events(&h, json!("Hello world"), 6, true).await;
    assert_eq!(ev.len(), 7, "6 tokens + usage chunk");
    let id = ev[0]["id"].as_str().unwrap();
    assert!(id.starts_with("cmpl-"));
    for (i, e) in ev[..6].iter().enumerate() {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            ["id", "object", "created", "model", "choices", "usage"]
        );
        assert_eq!(e["id"], id);
        assert_eq!(e["object"], "text_completion");
        assert_eq!(e["model"], "infmax/sim");
        assert!(e["usage"].is_null());
        let c = &e["choices"][0];
        assert_eq!(c["index"], 0);
        assert!(!c["text"].as_str().unwrap().is_empty());
        assert!(c["logprobs"].is_null());
        assert!(c["stop_reason"].is_null());
        let fr = if i == 5 { json!("length") } else { Value::Null };
        assert_eq!(c["finish_reason"], fr);
    }
    let u = &ev[6];
    assert_eq!(u["choices"], json!([]));
    assert_eq!(u["id"], id);
    let prompt_tokens = embedded().encode("Hello world", false).unwrap().len();
    assert_eq!(u["usage"]["prompt_tokens"], prompt_tokens);
    assert_eq!(u["usage"]["completion_tokens"], 6);
    assert_eq!(u["usage"]["total_tokens"], prompt_tokens + 6);

    // Without include_usage: tokens then [DONE], no usage chunk.
    let ev2 = stream_events(&h, json!("Hello world"), 6, false).await;
    assert_eq!(ev2.len(), 6);
    assert_eq!(chunk_text(&ev2), chunk_text(&ev));

    // Non-streamed: the same text, usage, finish_reason.
    let r = post(&h, "/v1/completions", completion(json!("Hello world"), 6)).await;
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], chunk_text(&ev).as_str());
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 6);
}

#[tokio::test]
async fn prompt_as_token_ids_equals_text() {
    let h = start(exact(0.0, 0.0)).await;
    let text = "And God said, Let there be light: and there was light.";
    let ids = embedded().encode(text, false).unwrap().get_ids().to_vec();
    let a = post_json(&h, "/v1/completions", completion(json!(text), 12)).await;
    let b = post_json(&h, "/v1/completions", completion(json!(ids), 12)).await;
    let c = post_json(&h, "/v1/completions", completion(json!([ids]), 12)).await;
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    assert_eq!(a["choices"][0]["text"], c["choices"][0]["text"]);
    assert_eq!(a["usage"], b["usage"]);
    // Long bodies are parsed off the event loop; same result.
    let long = text.repeat(60);
    let ids = embedded()
        .encode(long.as_str(), false)
        .unwrap()
        .get_ids()
        .to_vec();
    let a = post_json(&h, "/v1/completions", completion(json!(long), 12)).await;
    let b = post_json(&h, "/v1/completions", completion(json!(ids), 12)).await;
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    assert_eq!(a["usage"]["prompt_tokens"], ids.len());
}

#[tokio::test]
async fn chat_stream_and_non_stream() {
    let h = start(exact(2.0, 1.0)).await;
    let body = json!({"model": "infmax/sim", "messages": [{"role": "user", "content": "Hi"}],
        "max_completion_tokens": 4, "ignore_eos": true, "stream": true,
        "stream_options": {"include_usage": true}});
    let ev = sse(&stream_text(&h, "/v1/chat/completions", body.clone()).await);
    assert_eq!(ev.len(), 1 + 4 + 1, "role chunk, 4 tokens, usage");
    assert_eq!(ev[0]["object"], "chat.completion.chunk");
    assert_eq!(ev[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(ev[0]["choices"][0]["delta"]["content"], "");
    let mut content = String::new();
    for (i, e) in ev[1..5].iter().enumerate() {
        let c = &e["choices"][0];
        assert!(c["delta"].get("role").is_none());
        content.push_str(c["delta"]["content"].as_str().unwrap());
        let fr = if i == 3 { json!("length") } else { Value::Null };
        assert_eq!(c["finish_reason"], fr);
    }
    assert_eq!(ev[5]["choices"], json!([]));
    assert_eq!(ev[5]["usage"]["completion_tokens"], 4);
    let prompt = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    let n = embedded().encode(prompt, false).unwrap().len();
    assert_eq!(ev[5]["usage"]["prompt_tokens"], n);

    let mut plain = body;
    plain["stream"] = json!(false);
    plain.as_object_mut().unwrap().remove("stream_options");
    let v = post_json(&h, "/v1/chat/completions", plain).await;
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], content.as_str());
    assert_eq!(v["usage"]["total_tokens"], n + 4);
}

#[tokio::test]
async fn echo_returns_prompt_logprobs_in_legacy_format() {
    let h = start(exact(0.0, 0.0)).await;
    let prompt = "Blessed are the meek: for they shall inherit the earth.";
    let ids = embedded().encode(prompt, false).unwrap().get_ids().to_vec();
    let mut body = completion(json!(prompt), 1);
    body["echo"] = json!(true);
    body["logprobs"] = json!(1);
    let v = post_json(&h, "/v1/completions", body).await;
    let c = &v["choices"][0];
    assert!(c["text"].as_str().unwrap().starts_with(prompt));
    let lp = &c["logprobs"];
    let tokens = lp["tokens"].as_array().unwrap();
    assert_eq!(
        tokens.len(),
        ids.len() + 1,
        "prompt tokens + the generated one"
    );
    let joined: String = tokens[..ids.len()]
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(joined, prompt);
    let tl = lp["token_logprobs"].as_array().unwrap();
    assert!(tl[0].is_null(), "the first prompt token has no logprob");
    assert!(lp["top_logprobs"][0].is_null());
    for x in &tl[1..] {
        let x = x.as_f64().unwrap();
        assert!(x <= 0.0 && x.is_finite());
    }
    let offsets: Vec<u64> = lp["text_offset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(offsets[0], 0);
    assert!(offsets.windows(2).all(|w| w[0] < w[1]));
    // Echo with max_tokens 0 returns the prompt alone (lm-eval's loglikelihood path).
    let mut body = completion(json!(prompt), 0);
    body["echo"] = json!(true);
    body["logprobs"] = json!(0);
    let v = post_json(&h, "/v1/completions", body).await;
    assert_eq!(v["choices"][0]["text"], prompt);
    assert_eq!(
        v["choices"][0]["logprobs"]["token_logprobs"]
            .as_array()
            .unwrap()
            .len(),
        ids.len()
    );
    assert_eq!(v["usage"]["completion_tokens"], 0);
}

#[test]
fn logprobs_come_from_a_normalised_distribution() {
    let vocab = Vocab::load(None).unwrap();
    let v = vocab.len() as f64;
    for pos in 0..200u32 {
        let h = hash_start(u64::from(pos) * 7919);
        let pred = Generator::predict(&vocab, h, pos);
        let chosen = logprob_of(&vocab, pred, pred.token);
        let other = logprob_of(&vocab, pred, pred.token ^ 1);
        assert!(chosen <= 0.0 && other <= 0.0);
        let total = chosen.exp() + (v - 1.0) * other.exp();
        assert!((total - 1.0).abs() < 1e-9, "mass {total} at {pos}");
        assert!(vocab.generable.contains(&pred.token));
    }
}

#[tokio::test]
async fn output_is_a_pure_function_of_seed_prompt_and_position() {
    let a = start(exact(0.0, 0.0)).await;
    let b = start(tiny()).await; // different timing model, same seed
    let mut other = tiny();
    other.seed = 7;
    let c = start(other).await;
    let body = completion(json!("The LORD is my shepherd; I shall not want."), 40);
    let ta = post_json(&a, "/v1/completions", body.clone()).await;
    let tb = post_json(&b, "/v1/completions", body.clone()).await;
    let tc = post_json(&c, "/v1/completions", body.clone()).await;
    assert_eq!(ta["choices"][0]["text"], tb["choices"][0]["text"]);
    assert_ne!(ta["choices"][0]["text"], tc["choices"][0]["text"]);
    // A longer request extends the shorter one: position k does not depend on max_tokens.
    let long: Value = post(
        &a,
        "/v1/completions",
        completion(json!("The LORD is my shepherd; I shall not want."), 80),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(long["choices"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with(ta["choices"][0]["text"].as_str().unwrap()));

    // ignore_eos: false stops early by the deterministic rule, identically every time.
    let mut cfg = exact(0.0, 0.0);
    cfg.mean_output_tokens = 8;
    let e = start(cfg).await;
    let mut body = completion(json!("Jesus wept."), 500);
    body["ignore_eos"] = json!(false);
    let first = post_json(&e, "/v1/completions", body.clone()).await;
    let second = post_json(&e, "/v1/completions", body.clone()).await;
    assert_eq!(first["choices"][0]["finish_reason"], "stop");
    let n = first["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(n < 500, "stopped early at {n}");
    assert_eq!(first["choices"][0]["text"], second["choices"][0]["text"]);
    let ev = sse(&stream_text(&e, "/v1/completions", streamed(body, true)).await);
    assert_eq!(ev.len() as u64, n + 1);
    assert_eq!(ev[n as usize - 1]["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        chunk_text(&ev),
        first["choices"][0]["text"].as_str().unwrap()
    );
}

#[tokio::test]
async fn unsupported_and_invalid_requests_get_json_errors() {
    let h = start(tiny()).await;
    let long: Vec<u32> = vec![5; 16380];
    let cases = [
        ("/v1/completions", json!("{not json"), 400),
        ("/v1/completions", json!({"max_tokens": 3}), 400),
        ("/v1/completions", json!({"prompt": "x", "n": 2}), 400),
        ("/v1/completions", json!({"prompt": "x", "best_of": 3}), 400),
        ("/v1/completions", json!({"prompt": ["a", "b"]}), 400),
        ("/v1/completions", json!({"prompt": ""}), 400),
        ("/v1/completions", json!({"prompt": [999999]}), 400),
        (
            "/v1/completions",
            json!({"prompt": long, "max_tokens": 10}),
            400,
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "stream": true, "echo": true}),
            400,
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "max_tokens": 0}),
            400,
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "model": "gpt-4"}),
            404,
        ),
        ("/v1/chat/completions", json!({"messages": []}), 400),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "x"}], "logprobs": true}),
            400,
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
            400,
        ),
        ("/tokenize", json!({}), 400),
    ];
    let c = client();
    for (path, body, status) in cases {
        let req = c.post(format!("{}{path}", h.url()));
        let req = match &body {
            Value::String(s) => req.body(s.clone()),
            b => req.json(b),
        };
        let t0 = Instant::now();
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path} {body}");
        let e: Value = r.json().await.expect("error body is JSON");
        assert_eq!(e["object"], "error", "{body}");
        assert_eq!(e["code"], status);
        assert!(!e["message"].as_str().unwrap().is_empty());
        assert!(t0.elapsed() < Duration::from_secs(2), "answered at once");
    }
}

#[tokio::test]
async fn exact_schedule_records_true_send_times() {
    let h = start(exact(30.0, 5.0)).await;
    let epoch = h.epoch();
    let r = post(
        &h,
        "/v1/completions",
        streamed(completion(json!([1, 2, 3]), 20), true),
    )
    .await;
    let mut arrivals = Vec::new();
    let mut body = r.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        let at = epoch.elapsed().as_nanos() as u64;
        let n = chunk.windows(8).filter(|w| w == b"\"text\":\"").count();
        arrivals.extend(std::iter::repeat_n(at, n));
    }
    assert_eq!(arrivals.len(), 20);
    let s = h.schedule();
    assert_eq!(s.requests.len(), 1);
    let rec = &s.requests[0];
    assert!(rec.stream && rec.finished);
    assert_eq!(rec.send_ns.len(), 20);
    for (k, (&sent, &got)) in rec.send_ns.iter().zip(&arrivals).enumerate() {
        let nominal = rec.arrival_ns + 30_000_000 + k as u64 * 5_000_000;
        assert!(sent >= nominal, "token {k} sent early");
        // Timers fire on a 1 ms wheel; the margin covers a loaded CI machine.
        assert!(
            sent - nominal < 25_000_000,
            "token {k} late by {} ns",
            sent - nominal
        );
        assert!(got >= sent, "token {k} arrived before it was sent");
    }
    // The same record over HTTP; draining empties it.
    let v = get_json(&h, "/sim/schedule?drain=true").await;
    assert_eq!(v["requests"][0]["send_ns"], json!(rec.send_ns));
    assert!(v["epoch_monotonic_ns"].as_u64().unwrap() > 0);
    assert!(h.schedule().requests.is_empty());
}

#[tokio::test]
async fn batching_model_queues_beyond_capacity() {
    let mut cfg = tiny();
    cfg.record_schedule = true;
    cfg.batching.max_batch = 2;
    cfg.batching.max_batched_tokens = 64;
    cfg.batching.step_base_ms = 5.0;
    cfg.batching.step_per_sqrt_seq_ms = 0.0;
    cfg.batching.step_per_prefill_token_ms = 0.0;
    let h = start(cfg).await;
    let reqs = (0..4).map(|i| {
        let h = &h;
        async move {
            let t0 = Instant::now();
            let ev = stream_events(h, json!([i + 10, 5, 6]), 10, false).await;
            assert_eq!(ev.len(), 10);
            t0.elapsed()
        }
    });
    let mut times = futures_util::future::join_all(reqs).await;
    times.sort();
    // Two run at once: 10 steps of 5 ms (a prefill step that also yields the first token,
    // then 9 decode steps) for the first pair; the second pair waits for free slots.
    assert!(times[1] >= Duration::from_millis(45), "{times:?}");
    assert!(times[3] >= Duration::from_millis(95), "{times:?}");
    let mut recs = h.schedule().requests;
    assert_eq!(recs.len(), 4);
    recs.sort_by_key(|r| r.send_ns[0]);
    let first_pair_end = recs[..2].iter().map(|r| r.send_ns[9]).min().unwrap();
    for r in &recs[2..] {
        assert!(
            r.send_ns[0] > first_pair_end,
            "queued request started early"
        );
    }
    for r in &recs {
        // One token per 5 ms step, steps anchored to their schedule: a late step is followed
        // by a shorter gap, so on a loaded machine the first token can be late while the
        // last is on time. What holds regardless: the 10th token never goes out before the
        // 10th step could have ended after the request arrived.
        let from_arrival = r.send_ns[9] - r.arrival_ns;
        assert!(
            from_arrival >= 9 * 5_000_000,
            "10th token {from_arrival} ns after arrival"
        );
    }
}

#[test]
fn b200_preset_resembles_the_baseline_curve() {
    use infmax::sim::config::BatchTiming;
    let t: BatchTiming = SimConfig::preset("b200-dsr1").unwrap().batching;
    // Decode-only steps at batch 4 and 64 vs the baseline's median TPOT (1k/1k: 135 and 55
    // tok/s/user, i.e. 7.4 ms and 18.0 ms) within 15%.
    let tpot = |conc: f64, prefill_per_step: f64| {
        t.step_base_ms
            + t.step_per_sqrt_seq_ms * conc.sqrt()
            + t.step_per_prefill_token_ms * prefill_per_step
    };
    let i4 = 1000.0 / tpot(4.0, 4.0);
    let i64_ = 1000.0 / tpot(64.0, 64.0);
    assert!((i4 / 135.46 - 1.0).abs() < 0.15, "conc 4: {i4}");
    assert!((i64_ / 55.476 - 1.0).abs() < 0.15, "conc 64: {i64_}");
    assert_eq!(t.tp, 8);
}

#[tokio::test]
async fn startup_delay_and_never_ready() {
    let mut cfg = tiny();
    cfg.startup_delay_ms = 500;
    let h = start(cfg).await;
    let c = client();
    let health = || c.get(format!("{}/health", h.url())).send();
    assert_eq!(health().await.unwrap().status(), 503);
    let r = post(&h, "/v1/completions", completion(json!("x"), 2)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["object"], "error");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(health().await.unwrap().status(), 200);

    let mut cfg = tiny();
    cfg.faults.never_ready = true;
    let h = start(cfg).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = c.get(format!("{}/health", h.url())).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let r = post(&h, "/v1/completions", completion(json!("x"), 2)).await;
    assert_eq!(r.status(), 503);
}

/// A config with one fault knob set from YAML (as users write them).
fn with_faults(base: SimConfig, faults_yaml: &str) -> SimConfig {
    let text = format!("preset: exact\nfaults:\n{faults_yaml}");
    let mut c = SimConfig::from_yaml("faults.yaml", &text).unwrap();
    c.exact = base.exact;
    c.batching = base.batching;
    c
}

#[tokio::test]
async fn fault_fail_rate_is_exact_and_reproducible() {
    for (status, retry_after) in [(500, None), (429, Some("1"))] {
        let cfg = with_faults(
            exact(0.0, 0.0),
            &format!("  fail: {{rate: 0.5, status: {status}}}\n"),
        );
        let h = start(cfg).await;
        let mut seen = Vec::new();
        for _ in 0..6 {
            let r = post(&h, "/v1/completions", completion(json!("x"), 2)).await;
            seen.push(r.status().as_u16());
            if r.status() != 200 {
                assert_eq!(
                    r.headers().get("retry-after").map(|v| v.to_str().unwrap()),
                    retry_after
                );
                assert_eq!(r.json::<Value>().await.unwrap()["code"], status);
            }
        }
        assert_eq!(seen, [200, status, 200, status, 200, status]);
    }
}

#[tokio::test]
async fn fault_cut_after_k_tokens() {
    let h = start(with_faults(exact(0.0, 1.0), "  cut: {after-tokens: 3}\n")).await;
    let r = post_stream(&h, 10).await;
    assert_eq!(r.status(), 200);
    let mut got = Vec::new();
    let mut body = r.bytes_stream();
    let mut failed = false;
    while let Some(c) = body.next().await {
        match c {
            Ok(b) => got.extend_from_slice(&b),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body must end with a transport error");
    let text = String::from_utf8(got).unwrap();
    assert_eq!(text.matches("data: {").count(), 3);
    assert!(!text.contains("[DONE]"));
    let rec = &h.schedule().requests[0];
    assert_eq!((rec.send_ns.len(), rec.finished), (3, false));
}

#[tokio::test]
async fn fault_stall_for_a_while_and_forever() {
    let h = start(with_faults(
        exact(0.0, 1.0),
        "  stall: {after-tokens: 2, for-ms: 300}\n",
    ))
    .await;
    let t0 = Instant::now();
    assert_eq!(stream_events(&h, json!("x"), 5, true).await.len(), 6);
    let rec = &h.schedule().requests[0];
    let gap = rec.send_ns[2] - rec.send_ns[1];
    assert!(gap >= 300_000_000, "gap {gap} ns");
    assert!(t0.elapsed() >= Duration::from_millis(300));

    let h = start(with_faults(exact(0.0, 1.0), "  stall: {after-tokens: 2}\n")).await;
    let r = post_stream(&h, 5).await;
    let mut body = r.bytes_stream();
    let mut got = Vec::new();
    let waited = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(c) = body.next().await {
            got.extend_from_slice(&c.unwrap());
        }
    })
    .await;
    assert!(waited.is_err(), "a stalled stream never ends");
    assert_eq!(
        String::from_utf8(got).unwrap().matches("data: {").count(),
        2
    );
}

#[tokio::test]
async fn fault_slow_loris_trickles_bytes() {
    let h = start(with_faults(
        exact(0.0, 0.0),
        "  slow-loris: {byte-interval-ms: 1}\n",
    ))
    .await;
    let r = post(&h, "/v1/completions", completion(json!("x"), 1)).await;
    let t0 = Instant::now();
    let mut body = r.bytes_stream();
    let (mut reads, mut bytes) = (0, Vec::new());
    while let Some(c) = body.next().await {
        let c = c.unwrap();
        reads += 1;
        bytes.extend_from_slice(&c);
    }
    let v: Value = serde_json::from_slice(&bytes).expect("the trickled body is whole");
    assert_eq!(v["usage"]["completion_tokens"], 1);
    assert!(
        reads > bytes.len() / 10,
        "{reads} reads for {} bytes",
        bytes.len()
    );
    // One byte per interval at the soonest: the response cannot arrive any faster.
    assert!(t0.elapsed() >= Duration::from_millis(bytes.len() as u64 - 2));
}

#[tokio::test]
async fn fault_exit_after_requests_crashes_in_flight() {
    let h = start(with_faults(exact(0.0, 5.0), "  exit-after-requests: 2\n")).await;
    let body = streamed(completion(json!("x"), 1000), true);
    let r1 = post(&h, "/v1/completions", body.clone()).await;
    let r2 = post(&h, "/v1/completions", body.clone()).await;
    assert_eq!((r1.status().as_u16(), r2.status().as_u16()), (200, 200));
    // The third request triggers the crash and is never answered.
    let third = client()
        .post(format!("{}/v1/completions", h.url()))
        .json(&body)
        .send()
        .await;
    assert!(third.is_err());
    let exit = wait_exit(&h).await;
    assert!(matches!(exit, Exit::Crashed(m) if m.contains("exit after 2 requests")));
    // In-flight streams are cut, not completed.
    for r in [r1, r2] {
        assert!(r.text().await.is_err());
    }
    assert_gone(&h).await;
}

#[tokio::test]
async fn fault_exit_after_secs() {
    let h = start(with_faults(exact(0.0, 0.0), "  exit-after-secs: 0.2\n")).await;
    let t0 = Instant::now();
    let exit = wait_exit(&h).await;
    assert!(matches!(exit, Exit::Crashed(_)));
    assert!(t0.elapsed() >= Duration::from_millis(190));
    assert_gone(&h).await;
}

#[test]
fn runner_sim_process_exits_nonzero_on_crash_fault() {
    let d = tempfile::tempdir().unwrap();
    let f = crate::util::write(
        d.path(),
        "sim.yaml",
        "preset: tiny\nfaults:\n  exit-after-secs: 0.3\n",
    );
    let t0 = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["sim", "--port", "0", "--config", &f])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let url = String::from_utf8(out.stdout).unwrap();
    assert!(url.trim().starts_with("http://127.0.0.1:"), "{url}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("exit after 0.3 s"));
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn sim_config_errors_are_located() {
    // `runner sim` refuses them with the config-error exit code, naming file:line:col.
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("s.yaml");
    std::fs::write(&f, "seed: 1\nbogus: 2\n").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["sim", "--port", "0", "--config"])
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(10), "{err}");
    assert!(err.contains("s.yaml:2:") && err.contains("bogus"), "{err}");
    let e = SimConfig::from_yaml(
        "s.yaml",
        "preset: tiny\nfaults:\n  cut: {after-tokens: x}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("s.yaml:3:"), "{e}");
    assert!(e.contains("faults.cut.after-tokens"), "{e}");
    let e = SimConfig::from_yaml("s.yaml", "seed: 1\nbogus: 2\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("s.yaml:2:") && e.contains("unknown field `bogus`"),
        "{e}"
    );
    let e = SimConfig::from_yaml("s.yaml", "preset: h100\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown preset `h100`"), "{e}");
    let e = SimConfig::from_yaml("s.yaml", "faults:\n  fail: {rate: 2}\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("faults.fail.rate: must be between 0 and 1"),
        "{e}"
    );
    // Overrides apply over the preset, field by field.
    let c = SimConfig::from_yaml("s.yaml", "preset: tiny\nbatching: {max-batch: 3}\n").unwrap();
    assert_eq!(c.batching.max_batch, 3);
    assert_eq!(c.batching.max_batched_tokens, 2048);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_1000_concurrent_streams() {
    const STREAMS: usize = 1000;
    const TOKENS: usize = 50;
    let h = start(exact(20.0, 5.0)).await;
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = format!("{}/v1/completions", h.url());
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..STREAMS)
        .map(|i| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move {
                let body = streamed(
                    completion(json!([i as u32 % 8000 + 3, 7]), TOKENS as u32),
                    true,
                );
                let text = c.post(url).json(&body).send().await?.text().await?;
                Ok::<_, reqwest::Error>(text)
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let text = t.await.unwrap().expect("stream completes");
        let ev = sse(&text);
        assert_eq!(ev.len(), TOKENS + 1);
        assert_eq!(ev[TOKENS]["usage"]["completion_tokens"], TOKENS);
        ok += 1;
    }
    assert_eq!(ok, STREAMS);
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    let s = h.schedule();
    assert_eq!(s.requests.len(), STREAMS);
    assert!(s
        .requests
        .iter()
        .all(|r| r.finished && r.send_ns.len() == TOKENS));
}

#[tokio::test]
async fn fault_cut_with_the_batching_model() {
    let mut base = tiny();
    base.batching.step_base_ms = 0.2;
    let mut cfg = with_faults(base.clone(), "  cut: {after-tokens: 4, rate: 0.5}\n");
    cfg.exact = None;
    cfg.batching = base.batching;
    let h = start(cfg).await;
    for i in 0..4 {
        let res = post_stream(&h, 50).await.text().await;
        if i % 2 == 1 {
            assert!(res.is_err(), "request {i} must be cut");
        } else {
            assert_eq!(sse(&res.unwrap()).len(), 51, "request {i} is whole");
        }
    }
    let recs = h.schedule().requests;
    let cut: Vec<usize> = recs
        .iter()
        .filter(|r| !r.finished)
        .map(|r| r.send_ns.len())
        .collect();
    assert_eq!(cut, [4, 4]);
}

/// Median gap between consecutive token sends over all recorded requests, in ms.
fn median_itl_ms(s: &infmax::sim::Schedule) -> f64 {
    let mut gaps: Vec<u64> = s
        .requests
        .iter()
        .flat_map(|r| r.send_ns.windows(2).map(|w| w[1] - w[0]))
        .collect();
    gaps.sort_unstable();
    gaps[gaps.len() / 2] as f64 / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b200_preset_serves_the_baseline_interactivity() {
    // 1k-token prompts at conc 4 and 64: the engine's median ITL should be near the B200
    // DSR1 baseline's median TPOT (135.46 and 55.476 tok/s/user at 1k/1k).
    for (conc, baseline) in [(4usize, 135.46), (64, 55.476)] {
        let mut cfg = SimConfig::preset("b200-dsr1").unwrap();
        cfg.startup_delay_ms = 0;
        cfg.record_schedule = true;
        let h = start(cfg).await;
        let reqs = (0..conc).map(|i| {
            let prompt: Vec<u32> = (0..1024)
                .map(|j| (i * 1024 + j) as u32 % 8000 + 3)
                .collect();
            let h = &h;
            async move { stream_events(h, json!(prompt), 48, false).await.len() }
        });
        for n in futures_util::future::join_all(reqs).await {
            assert_eq!(n, 48);
        }
        let intvty = 1000.0 / median_itl_ms(&h.schedule());
        eprintln!("conc {conc}: median {intvty:.1} tok/s/user (baseline {baseline})");
        assert!(
            (intvty / baseline - 1.0).abs() < 0.2,
            "conc {conc}: {intvty:.1} tok/s/user vs baseline {baseline}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Multi-turn chat, the prefix cache, the offload tier and /metrics, on `runner sim`
// processes (the way a launch profile runs the engine).

/// A `runner sim` child process; killed and reaped on drop.
struct SimProcess {
    child: std::process::Child,
    url: String,
    /// Its stderr (the server log).
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SimProcess {
    /// Start `runner sim --port 0` with `config` (YAML) and extra flags; waits for its URL.
    fn start(config: &str, flags: &[&str]) -> SimProcess {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::util::write(dir.path(), "sim.yaml", config);
        let log = dir.path().join("server.log");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["sim", "--port", "0", "--config", &cfg])
            .args(flags)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("http://"),
            "no URL from runner sim: {line:?}; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        SimProcess {
            child,
            url: line.trim().to_string(),
            log,
            _dir: dir,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Samples of `GET /metrics`: `name{labels}` → value, checking the text format (every
    /// sample's family has `# HELP` and `# TYPE`; counters' samples end in `_total`).
    async fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        let r = client()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        parse_prometheus(&r.text().await.unwrap())
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_prometheus(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut types = std::collections::HashMap::new();
    let mut helped = std::collections::HashSet::new();
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            types.insert(name.to_string(), ty.to_string());
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split_once(' ').unwrap().0.to_string());
        } else if !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            let family = match types.get(name) {
                Some(_) => name.to_string(),
                None => name
                    .strip_suffix("_total")
                    .unwrap_or_else(|| panic!("{name} has no # TYPE line"))
                    .to_string(),
            };
            let ty = types
                .get(&family)
                .unwrap_or_else(|| panic!("{family} has no # TYPE line"));
            assert!(helped.contains(&family), "{family} has no # HELP line");
            if ty == "counter" {
                assert!(name.ends_with("_total"), "counter sample {name}");
            }
            out.insert(series.to_string(), value.parse::<f64>().unwrap());
        }
    }
    out
}

/// The one sample of `name` whose labels contain `label` ("" = any).
fn sample(m: &std::collections::BTreeMap<String, f64>, name: &str, label: &str) -> f64 {
    let hits: Vec<f64> = m
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name) && k.contains(label))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(hits.len(), 1, "{name} {label}: {m:?}");
    hits[0]
}

/// About `tokens` tokens of distinct words (each about six tokens), different for each
/// `seed`.
fn words(seed: u32, tokens: u32) -> String {
    (0..tokens / 6).map(|i| format!("w{seed}x{i} ")).collect()
}

/// One streamed chat turn: (TTFT, usage.prompt_tokens, usage.completion_tokens, text).
async fn chat_turn(url: &str, messages: &Value, out: u32) -> (Duration, u64, u64, String) {
    let body = json!({"model": "infmax/sim", "messages": messages, "stream": true,
        "stream_options": {"include_usage": true}, "max_completion_tokens": out,
        "ignore_eos": true});
    let t0 = Instant::now();
    let mut r = client()
        .post(format!("{url}/v1/chat/completions"))
        .header("X-Correlation-ID", "conv-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut text = String::new();
    let mut ttft = None;
    while let Some(c) = r.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&c).unwrap());
        if ttft.is_none() && text.contains("\"content\":\"") && text.matches("data: ").count() >= 2
        {
            ttft = Some(t0.elapsed());
        }
    }
    let events = sse(&text);
    let usage = &events.last().unwrap()["usage"];
    let content: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    (
        ttft.unwrap(),
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
        content,
    )
}

/// A tiny-preset engine whose prefill is slow enough (10 µs per token) for a cached
/// prefix to show plainly in TTFT.
fn slow_prefill(kv_yaml: &str) -> String {
    format!(
        "preset: tiny\nmax-model-len: 100000\nbatching: {{step-per-prefill-token-ms: 0.01}}\n{kv_yaml}"
    )
}

#[tokio::test]
async fn second_turn_is_faster_when_its_prefix_is_cached() {
    let system = words(1, 8000);
    let user1 = words(2, 4000);
    let other = json!([{"role": "user", "content": words(3, 12_000)}]);
    let mut ttfts = Vec::new();
    // Between the two turns another conversation passes through: a pool that holds both
    // keeps the first one's prefix, a pool smaller than the other one loses it.
    for (gpu_tokens, cached) in [(200_000u64, true), (8192, false)] {
        let p = SimProcess::start(
            &slow_prefill(&format!("kv-cache: {{gpu-tokens: {gpu_tokens}}}\n")),
            &[],
        );
        let mut msgs = json!([{"role": "system", "content": system},
                              {"role": "user", "content": user1}]);
        let (t1, p1, c1, reply) = chat_turn(&p.url, &msgs, 12).await;
        assert_eq!(c1, 12, "max_completion_tokens with ignore_eos");
        assert!(p1 > 10_000, "{p1}");
        let (_, p_other, _, _) = chat_turn(&p.url, &other, 2).await;
        msgs.as_array_mut().unwrap().extend([
            json!({"role": "assistant", "content": reply}),
            json!({"role": "user", "content": "and now?"}),
        ]);
        let (t2, p2, _, _) = chat_turn(&p.url, &msgs, 12).await;
        assert!(p2 > p1 + 12);
        let m = p.metrics().await;
        let hits = sample(&m, "vllm:prefix_cache_hits_total", "");
        let expect = if cached { p1 / 64 * 64 } else { 0 };
        assert_eq!(hits, expect as f64, "turn 2 reuses turn 1's full blocks");
        assert_eq!(
            sample(&m, "vllm:prefix_cache_queries_total", ""),
            (p1 + p_other + p2) as f64
        );
        ttfts.push((t1, t2));
    }
    let (cold, hot) = ttfts[0];
    let (cold_small, warm_small) = ttfts[1];
    eprintln!(
        "TTFT turn 1 / turn 2: pool of 200k tokens {cold:?} / {hot:?}; pool of 8k tokens {cold_small:?} / {warm_small:?}"
    );
    // ~12k prompt tokens at 10 µs: ≥ 120 ms of prefill uncached, a few ms cached.
    assert!(cold >= Duration::from_millis(120), "{cold:?}");
    assert!(hot * 3 < cold, "cached turn 2 {hot:?} vs turn 1 {cold:?}");
    assert!(
        warm_small >= Duration::from_millis(120),
        "an evicted prefix saves nothing: {warm_small:?}"
    );
}

/// Send one single-message conversation and return its prompt length.
async fn send_conv(url: &str, seed: u32, n: u32) -> u64 {
    let msgs = json!([{"role": "user", "content": words(seed, n)}]);
    chat_turn(url, &msgs, 2).await.1
}

#[tokio::test]
async fn prefix_cache_evicts_least_recently_used() {
    // A pool of 109 blocks: room for two ~3k-token conversations, not three.
    let p = SimProcess::start(
        "preset: tiny\nkv-cache: {gpu-tokens: 6976, block-tokens: 64}\n",
        &[],
    );
    let hits = |m: &std::collections::BTreeMap<String, f64>| {
        sample(m, "vllm:prefix_cache_hits_total", "") as u64
    };
    let usable = |len: u64| (len - 1) / 64; // blocks a prompt can hit
    let a = send_conv(&p.url, 1, 3000).await;
    assert!((2500..3500).contains(&a), "{a}");
    let b = send_conv(&p.url, 2, 3000).await;
    assert_eq!(hits(&p.metrics().await), 0);
    assert_eq!(send_conv(&p.url, 1, 3000).await, a); // A again: all hit, A most recent
    let h1 = hits(&p.metrics().await);
    assert_eq!(h1, usable(a) * 64);
    // C needs room: the least recently used blocks go, B's (tail first), none of A's.
    let c = send_conv(&p.url, 3, 3000).await;
    let evicted = (a / 64 + b / 64 + c / 64).saturating_sub(109);
    assert!(evicted > 0 && evicted < b / 64, "{a} {b} {c}");
    send_conv(&p.url, 1, 3000).await;
    let h2 = hits(&p.metrics().await);
    assert_eq!(h2 - h1, usable(a) * 64, "A survived whole");
    send_conv(&p.url, 2, 3000).await;
    let h3 = hits(&p.metrics().await);
    assert_eq!(
        h3 - h2,
        usable(b).min(b / 64 - evicted) * 64,
        "B kept only its head"
    );
}

#[tokio::test]
async fn offload_tier_serves_what_the_gpu_pool_evicted() {
    let n = 6000;
    let cfg = slow_prefill(
        "kv-cache:\n  gpu-tokens: 4096\n  offload: {cpu-tokens: 1000000, load-ms-per-token: 0.0005, bytes-per-token: 1000}\n",
    );
    let p = SimProcess::start(&cfg, &[]);
    let msgs = |seed| json!([{"role": "user", "content": words(seed, n)}]);
    let (cold, pa, _, _) = chat_turn(&p.url, &msgs(1), 2).await;
    chat_turn(&p.url, &msgs(2), 2).await; // pushes A out of the GPU pool
    let (warm, pa2, _, _) = chat_turn(&p.url, &msgs(1), 2).await;
    assert_eq!(pa, pa2);
    let m = p.metrics().await;
    let from_cpu = sample(
        &m,
        "vllm:prompt_tokens_by_source_total",
        "external_kv_transfer",
    );
    let expect = ((pa - 1) / 64 * 64) as f64;
    // B's head may share nothing with A: everything A had came back from the CPU tier.
    assert_eq!(from_cpu, expect);
    assert_eq!(
        sample(&m, "vllm:external_prefix_cache_hits_total", ""),
        expect
    );
    assert_eq!(sample(&m, "vllm:prefix_cache_hits_total", ""), 0.0);
    assert_eq!(
        sample(&m, "vllm:kv_offload_bytes_cpu_to_gpu_total", ""),
        expect * 1000.0
    );
    assert!(sample(&m, "vllm:kv_offload_bytes_gpu_to_cpu_total", "") > 0.0);
    assert!(sample(&m, "vllm:cpu_kv_cache_usage_perc", "") > 0.0);
    eprintln!(
        "TTFT of a {pa}-token prompt: prefilled {cold:?}, loaded from the offload tier {warm:?}"
    );
    assert!(warm * 3 < cold, "loaded {warm:?} vs prefilled {cold:?}");
    assert!(p.log_text().contains("GPU KV cache size: 4,096 tokens"));
}

#[tokio::test]
async fn metrics_count_what_was_served_in_both_flavors() {
    for flavor in ["vllm", "sglang"] {
        let p = SimProcess::start(
            "preset: tiny\nkv-cache: {gpu-tokens: 100000}\n",
            &["--metrics-flavor", flavor, "--offload-cpu-tokens", "500000"],
        );
        let before = p.metrics().await;
        let mut prompt = 0;
        let mut generated = 0;
        for i in 0..3 {
            // The same conversation thrice (2nd and 3rd hit), with growing outputs.
            let msgs = json!([{"role": "user", "content": words(7, 4000)}]);
            let (_, pt, ct, _) = chat_turn(&p.url, &msgs, 5 + i).await;
            prompt += pt;
            generated += ct;
        }
        let m = p.metrics().await;
        let full = ((prompt / 3 - 1) / 64 * 64) as f64;
        let log = p.log_text();
        if flavor == "vllm" {
            assert_eq!(sample(&before, "vllm:prompt_tokens_total", ""), 0.0);
            assert_eq!(sample(&m, "vllm:prompt_tokens_total", ""), prompt as f64);
            assert_eq!(
                sample(&m, "vllm:generation_tokens_total", ""),
                generated as f64
            );
            assert_eq!(sample(&m, "vllm:request_success_total", "\"length\""), 3.0);
            assert_eq!(sample(&m, "vllm:prefix_cache_hits_total", ""), 2.0 * full);
            let by_source: f64 = ["local_compute", "local_cache_hit", "external_kv_transfer"]
                .iter()
                .map(|s| sample(&m, "vllm:prompt_tokens_by_source_total", s))
                .sum();
            assert_eq!(by_source, prompt as f64);
            assert_eq!(sample(&m, "vllm:num_requests_running", ""), 0.0);
            assert_eq!(sample(&m, "vllm:num_requests_waiting", ""), 0.0);
            assert_eq!(sample(&m, "vllm:kv_cache_usage_perc", ""), 0.0);
            assert!(!m.keys().any(|k| k.starts_with("sglang:")));
            assert!(log.contains("GPU KV cache size: 100,000 tokens"), "{log}");
        } else {
            assert_eq!(sample(&m, "sglang:prompt_tokens_total", ""), prompt as f64);
            assert_eq!(
                sample(&m, "sglang:generation_tokens_total", ""),
                generated as f64
            );
            assert_eq!(sample(&m, "sglang:num_requests_total", ""), 3.0);
            assert_eq!(
                sample(&m, "sglang:cached_tokens_total", "cache_source=\"device\""),
                2.0 * full
            );
            assert_eq!(
                sample(&m, "sglang:cached_tokens_total", "cache_source=\"host\""),
                0.0
            );
            assert_eq!(sample(&m, "sglang:max_total_num_tokens", ""), 100_000.0);
            assert_eq!(
                sample(&m, "sglang:hicache_host_total_tokens", ""),
                500_000.0
            );
            assert!(sample(&m, "sglang:hicache_host_used_tokens", "") > 0.0);
            assert_eq!(sample(&m, "sglang:num_running_reqs", ""), 0.0);
            assert_eq!(sample(&m, "sglang:num_queue_reqs", ""), 0.0);
            assert_eq!(sample(&m, "sglang:token_usage", ""), 0.0);
            assert!(!m.keys().any(|k| k.starts_with("vllm:")));
            assert!(log.contains("max_total_num_tokens=100000,"), "{log}");
        }
    }
}

#[tokio::test]
async fn running_and_waiting_gauges_follow_the_load() {
    // One sequence at a time: the second request waits while the first runs.
    let p = SimProcess::start(
        "preset: tiny\nbatching: {max-batch: 1, max-batched-tokens: 64, step-base-ms: 20}\nkv-cache: {gpu-tokens: 100000}\n",
        &[],
    );
    let url = p.url.clone();
    let long = |u: String| async move {
        let msgs = json!([{"role": "user", "content": "x"}]);
        chat_turn(&u, &msgs, 40).await
    };
    let a = tokio::spawn(long(url.clone()));
    let b = tokio::spawn(long(url.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = p.metrics().await;
    assert_eq!(sample(&m, "vllm:num_requests_running", ""), 1.0);
    assert_eq!(sample(&m, "vllm:num_requests_waiting", ""), 1.0);
    assert!(sample(&m, "vllm:kv_cache_usage_perc", "") > 0.0);
    a.await.unwrap();
    b.await.unwrap();
    let m = p.metrics().await;
    assert_eq!(sample(&m, "vllm:num_requests_running", ""), 0.0);
}
