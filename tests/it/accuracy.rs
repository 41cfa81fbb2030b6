//! The accuracy gate: lm-eval's text processing, window arithmetic and answer filters (the
//! expected strings were produced by lm-eval 0.4.13's own functions), perplexities against
//! the simulated engine recomputed independently from its logprob model, engines that
//! ignore `echo`, retries, thresholds and the `runner eval` command line.

use crate::util::{fixture, read_json, root};
use indexmap::IndexMap;
use infmax::accuracy::engine::{self, EngineOptions};
use infmax::accuracy::wikitext::{self, Window};
use infmax::accuracy::{self, gsm8k, AccuracyError, EvalConfig, GateSpec, Mode, Task};
use infmax::report::baseline::AccuracyBaselines;
use infmax::report::AccuracyStatus;
use infmax::sim::model::{hash_push, hash_start, logprob_of, Generator};
use infmax::sim::{Server, SimConfig};
use infmax::tokenizer::HfTokenizer;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

// ---- wikitext text processing ----

#[test]
fn detokenizer_matches_lm_eval() {
    let cases = [
        (
            " = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : Unrecorded Chronicles ( Japanese : 戦場のヴァルキュリア3 , lit . Valkyria of the Battlefield 3 ) is a tactical role @-@ playing video game developed by Sega and Media.Vision for the PlayStation Portable . \n",
            " = Valkyria Chronicles III =\n\nSenjō no Valkyria 3: Unrecorded Chronicles (Japanese: 戦場のヴァルキュリア3, lit. Valkyria of the Battlefield 3) is a tactical role-playing video game developed by Sega and Media.Vision for the PlayStation Portable.\n",
        ),
        (
            " = = Gameplay = = \n \n The game 's battle system , the BliTZ system , is carried over directly from Valkyira Chronicles . During missions , players select each unit using a top @-@ down perspective of the battlefield map . It sold 1 @,@ 000 copies at 3 @.@ 5 dollars in \" the first week \" ; a N times record ! \n \n",
            " == Gameplay ==\n\nThe game's battle system, the BliTZ system, is carried over directly from Valkyira Chronicles. During missions, players select each unit using a top-down perspective of the battlefield map. It sold 1,000 copies at 3.5 dollars in \"the first week\"; a 1 times record!\n\n",
        ),
        (
            "Short page with a temperature of 20 ° C and [ brackets ] .",
            "Short page with a temperature of 20°C and [brackets] .",
        ),
        ("( a )", "(a)"),
        ("He said \" hi there \" ok", "He said \"hi there\" ok"),
        ("' quoted '", "'quoted'"),
        ("{ x }", "{x}"),
        ("= = = = H = = = =", "==== H ===="),
        ("\u{1c} a\u{a0}b\u{3000}c ", "\u{1c} a\u{a0}b\u{3000}c "),
    ];
    for (page, want) in cases {
        assert_eq!(wikitext::wikitext_detokenizer(page), want, "page {page:?}");
    }
}

#[test]
fn words_count_like_python_re_split() {
    // len(re.split(r"\s+", s)) in Python.
    for (s, n) in [
        ("", 1),
        ("one", 1),
        ("a b", 2),
        (" a b ", 4),
        ("\t Leading tab and trailing spaces   ", 7),
        ("a\n\n \tb", 2),
        ("\u{1c} a\u{a0}b\u{3000}c ", 5),
    ] {
        assert_eq!(wikitext::count_words(s), n, "{s:?}");
    }
    let d = wikitext::page_document(" a @-@ b ");
    assert_eq!((d.target.as_str(), d.words, d.bytes), (" a-b ", 5, 9));
}

fn w(context: &[u32], continuation: &[u32]) -> Window {
    Window {
        context: context.to_vec(),
        continuation: continuation.to_vec(),
    }
}

#[test]
fn rolling_windows_at_the_boundaries() {
    const P: u32 = 999;
    let t: Vec<u32> = (0..10).collect();
    // max_seq_len 4 (lm-eval max_length 6): one token, exactly one window, one over.
    assert_eq!(wikitext::rolling_windows(&[], P, 4), vec![]);
    assert_eq!(
        wikitext::rolling_windows(&t[..1], P, 4),
        vec![w(&[P], &[0])]
    );
    assert_eq!(
        wikitext::rolling_windows(&t[..4], P, 4),
        vec![w(&[P], &[0, 1, 2, 3])]
    );
    assert_eq!(
        wikitext::rolling_windows(&t[..5], P, 4),
        vec![w(&[P], &[0, 1, 2, 3]), w(&[0, 1, 2, 3], &[4])]
    );
    assert_eq!(
        wikitext::rolling_windows(&t[..9], P, 4),
        vec![
            w(&[P], &[0, 1, 2, 3]),
            w(&[3], &[4, 5, 6, 7]),
            w(&[4, 5, 6, 7], &[8])
        ]
    );
    // Every later window is max_seq_len + 1 long; the request keeps the last
    // max_length − 1 tokens and the context shrinks with it.
    let (api, msl) = accuracy::window_lengths(6);
    assert_eq!((api, msl), (5, 4));
    assert_eq!(accuracy::window_lengths(2048), (2047, 2046));
    for n in 1..=10 {
        let ws = wikitext::rolling_windows(&t[..n], P, msl);
        let predicted: Vec<u32> = ws.iter().flat_map(|w| w.continuation.clone()).collect();
        assert_eq!(predicted, t[..n].to_vec(), "every token predicted once");
        for win in &ws {
            let (inp, ctxlen) = wikitext::request_tokens(win, api);
            assert!(inp.len() <= api && ctxlen >= 1);
            assert_eq!(&inp[ctxlen..], &win.continuation[..]);
        }
    }
    // A window longer than the request limit loses context from the left.
    let (inp, ctxlen) = wikitext::request_tokens(&w(&[1, 2, 3], &[4, 5]), 4);
    assert_eq!((inp, ctxlen), (vec![2, 3, 4, 5], 2));
}

#[test]
fn aggregates_are_lm_eval_formulas() {
    let p = wikitext::aggregate(&[(-10.0, 4, 20), (-5.0, 6, 30)]);
    assert!((p.word_perplexity - (15.0f64 / 10.0).exp()).abs() < 1e-12);
    assert!((p.byte_perplexity - (15.0f64 / 50.0).exp()).abs() < 1e-12);
    assert!((p.bits_per_byte - 15.0 / 50.0 / std::f64::consts::LN_2).abs() < 1e-12);
}

// ---- gsm8k ----

#[test]
fn gsm8k_filters_match_lm_eval() {
    // (response, strict-match, flexible-extract) from lm-eval's RegexFilter.
    for (r, strict, flex) in [
        ("The answer is 5.\n#### 5", "5", "5"),
        ("#### -1,234.", "-1,234.", "-1,234."),
        ("So she pays $1,200.50.", "[invalid]", "$1,200.50."),
        ("no number here", "[invalid]", "[invalid]"),
        ("x = -7", "[invalid]", "-7"),
        ("First 3 then 42.", "[invalid]", "42."),
        ("#### 12\nlater 13", "12", "13"),
        ("Total: $5", "[invalid]", "$5"),
        ("it is 7.\n", "[invalid]", "7."),
    ] {
        assert_eq!(gsm8k::strict_match(r), strict, "strict {r:?}");
        assert_eq!(gsm8k::flexible_extract(r), flex, "flexible {r:?}");
    }
    // exact_match with regexes_to_ignore and ignore_case (lm-eval's values).
    for (pred, reference, ok) in [
        ("1,200", "blah\n#### 1200", true),
        ("$5", "#### 5", true),
        ("5.", "#### 5", true),
        ("-3", "x\n#### -3", true),
        ("[invalid]", "#### 3", false),
        ("12.0", "#### 12", false),
        ("Five", "#### five", true),
    ] {
        assert_eq!(
            gsm8k::exact_match(pred, reference),
            ok,
            "{pred:?} vs {reference:?}"
        );
    }
    let shot = gsm8k::Problem {
        question: "Q1".into(),
        answer: "A1\n#### 1".into(),
    };
    let p = gsm8k::Problem {
        question: "Q2".into(),
        answer: "#### 2".into(),
    };
    assert_eq!(
        gsm8k::prompt(&[shot], &p),
        "Question: Q1\nAnswer: A1\n#### 1\n\nQuestion: Q2\nAnswer:"
    );
}

// ---- against engines ----

async fn sim() -> infmax::sim::Handle {
    Server::start_local(SimConfig::preset("tiny").unwrap())
        .await
        .expect("sim starts")
}

fn config(task: Task, data: &str, url: &str, max_length: usize) -> EvalConfig {
    let mut e = EngineOptions::new(url, infmax::sim::config::DEFAULT_MODEL);
    e.num_concurrent = 4;
    e.progress = false;
    e.backoff = Duration::from_millis(10);
    EvalConfig {
        task,
        data: Some(fixture(&format!("accuracy/{data}"))),
        fewshot_data: None,
        limit: None,
        max_length,
        num_fewshot: None,
        max_gen_toks: None,
        prefix_token: None,
        tokenizer: HfTokenizer::embedded(),
        engine: e,
    }
}

/// The sim's loglikelihood of `tokens[ctxlen..]`, straight from its model.
fn sim_ll(seed: u64, tokens: &[u32], ctxlen: usize) -> f64 {
    let vocab = infmax::sim::tokenizer::Vocab::load(None).unwrap();
    let mut h = hash_start(seed);
    let mut ll = 0.0;
    for (i, &t) in tokens.iter().enumerate() {
        if i >= ctxlen {
            ll += logprob_of(&vocab, Generator::predict(&vocab, h, i as u32), t);
        }
        h = hash_push(h, t);
    }
    ll
}

/// Expected metrics for the fixture pages with hand-built windows.
fn expected(docs: &[wikitext::Document], max_length: usize, seed: u64) -> wikitext::Perplexity {
    let tok = HfTokenizer::embedded();
    let prefix = tok.inner().token_to_id("<|endoftext|>").unwrap();
    let (api, msl) = (max_length - 1, max_length - 2);
    let mut items = vec![];
    for d in docs {
        let toks = tok.encode(&d.target).unwrap();
        let mut ll = 0.0;
        // first window: [prefix] + toks[..first], then chunks of msl after one token of
        // context (a shorter last chunk keeps more context: the request is api tokens).
        let first = msl.min(toks.len());
        let mut req = vec![prefix];
        req.extend(&toks[..first]);
        ll += sim_ll(seed, &req, 1);
        let mut done = first;
        while done < toks.len() {
            let n = (toks.len() - done).min(msl);
            let end = done + n;
            let start = end - api;
            ll += sim_ll(seed, &toks[start..end], end - n - start);
            done = end;
        }
        items.push((ll, d.words, d.bytes));
    }
    wikitext::aggregate(&items)
}

fn close(a: f64, b: f64) -> bool {
    ((a - b) / b).abs() < 1e-12
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wikitext_perplexity_against_the_sim() {
    let s = sim().await;
    let seed = s.config().seed;
    for max_length in [6usize, 9, 2048] {
        let cfg = config(Task::Wikitext, "wikitext-pages.jsonl", &s.url(), max_length);
        let docs = accuracy::wikitext_documents(&cfg).await.unwrap();
        assert_eq!(docs.len(), 4);
        assert_eq!(
            docs.iter().map(|d| (d.words, d.bytes)).collect::<Vec<_>>(),
            vec![(45, 272), (66, 312), (14, 59), (7, 36)]
        );
        let r = accuracy::evaluate(&cfg).await.unwrap();
        let want = expected(&docs, max_length, seed);
        let m = &r.metrics;
        // To the last bit: the sim prints each logprob's shortest round-trip decimal and
        // the engine client parses it back exactly (serde_json `float_roundtrip`); summed in
        // the same order, nothing is left to differ.
        assert_eq!(
            (
                m["word_perplexity"],
                m["byte_perplexity"],
                m["bits_per_byte"]
            ),
            (
                want.word_perplexity,
                want.byte_perplexity,
                want.bits_per_byte
            ),
            "max_length {max_length}"
        );
        if max_length == 2048 {
            assert_eq!(r.requests, 4, "one window per short document");
        } else {
            assert!(r.requests > 20, "small max_length splits documents");
        }
    }
    // parquet gives the same documents as JSONL.
    let cfg = config(Task::Wikitext, "wikitext-pages.parquet", &s.url(), 9);
    let a = accuracy::evaluate(&cfg).await.unwrap();
    let b = accuracy::evaluate(&config(Task::Wikitext, "wikitext-pages.jsonl", &s.url(), 9))
        .await
        .unwrap();
    assert_eq!(a.metrics, b.metrics);
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wikitext_tokens_chunks_and_counts() {
    let s = sim().await;
    let cfg = config(Task::WikitextTokens, "wikitext-lines.jsonl", &s.url(), 2048);
    let docs = accuracy::wikitext_documents(&cfg).await.unwrap();
    assert_eq!(
        docs.len(),
        1,
        "the fixture is shorter than one 2047-token chunk"
    );
    let tok = HfTokenizer::embedded();
    let joined = " = Robert Boulter = \n\n\n\n\n Robert Boulter is an English film , television and theatre actor . \n\n\n He had a guest @-@ starring role on the television series The Bill in 2000 . \n";
    assert_eq!(docs[0].target, joined, "no detokenizer");
    assert_eq!(docs[0].words, tok.encode(joined).unwrap().len());
    assert_eq!(docs[0].bytes, joined.len());
    let r = accuracy::evaluate(&cfg).await.unwrap();
    let want = expected(&docs, 2048, s.config().seed);
    assert!(close(r.metrics["bits_per_byte"], want.bits_per_byte));
    s.shutdown();
}

/// A fake OpenAI server: `answer(n, body)` gives (status, JSON) for the n-th request.
/// Plain HTTP/1.1 over TCP, one request per connection.
async fn fake(
    answer: impl Fn(usize, serde_json::Value) -> (u16, serde_json::Value) + Send + Sync + 'static,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let answer = Arc::new(answer);
    let n = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = l.accept().await.unwrap();
            let (answer, n) = (answer.clone(), n.clone());
            tokio::spawn(async move {
                let mut buf = vec![];
                let mut chunk = [0u8; 4096];
                let body_start = loop {
                    let k = sock.read(&mut chunk).await.unwrap();
                    if k == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..body_start]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                while buf.len() < body_start + len {
                    let k = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..k]);
                }
                let body = serde_json::from_slice(&buf[body_start..body_start + len]).unwrap();
                let (code, v) = answer(n.fetch_add(1, Ordering::SeqCst), body);
                let out = v.to_string();
                let resp = format!(
                    "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
                    out.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    url
}

/// A 200 answer with `token_logprobs` null (the first prompt token) and then `lp` `k` times.
fn logprobs_answer(k: usize, lp: f64) -> (u16, serde_json::Value) {
    let mut lps = vec![serde_json::Value::Null];
    lps.extend((1..=k).map(|_| serde_json::json!(lp)));
    (
        200,
        serde_json::json!({"choices": [{"index": 0, "logprobs": {"token_logprobs": lps}}]}),
    )
}

/// How many tokens (embedded tokenizer) the target of `cfg`'s first document has.
async fn first_target_tokens(cfg: &EvalConfig) -> f64 {
    let docs = accuracy::wikitext_documents(cfg).await.unwrap();
    HfTokenizer::embedded()
        .encode(&docs[0].target)
        .unwrap()
        .len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_ignores_echo_is_refused() {
    // llama-server: logprobs of the generated token only.
    let url = fake(|_, _| {
        (
            200,
            serde_json::json!({"choices": [{"index": 0, "text": "x",
                "logprobs": {"token_logprobs": [-0.5], "tokens": ["x"], "top_logprobs": [{"x": -0.5}]}}]}),
        )
    })
    .await;
    let cfg = config(Task::Wikitext, "wikitext-pages.jsonl", &url, 2048);
    let e = accuracy::evaluate(&cfg).await.unwrap_err();
    assert!(
        matches!(e, AccuracyError::EchoUnsupported { got: 1, .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("ignores `echo`") && msg.contains("llama-server"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_then_succeeds_and_sends_lm_eval_payloads() {
    let url = fake(|n, body| {
        if n < 2 {
            return (503, serde_json::json!({"error": "busy"}));
        }
        assert_eq!(body["echo"], true);
        assert_eq!(body["max_tokens"], 1);
        assert_eq!(body["logprobs"], 1);
        assert_eq!(body["temperature"], 0);
        logprobs_answer(body["prompt"].as_array().unwrap().len(), -1.0)
    })
    .await;
    let mut cfg = config(Task::Wikitext, "wikitext-pages.jsonl", &url, 2048);
    cfg.limit = Some(1);
    cfg.engine.num_concurrent = 1;
    let r = accuracy::evaluate(&cfg).await.unwrap();
    // every predicted token scores −1: ΣLL = −(number of tokens of the target)
    let n = first_target_tokens(&cfg).await;
    assert!(close(
        r.metrics["bits_per_byte"],
        n / 272.0 / std::f64::consts::LN_2
    ));
    // Out of retries: the error names the URL and the status.
    let url = fake(|_, _| (500, serde_json::json!({"error": "down"}))).await;
    let mut cfg = config(Task::Wikitext, "wikitext-pages.jsonl", &url, 2048);
    cfg.engine.max_retries = 1;
    let e = accuracy::evaluate(&cfg).await.unwrap_err().to_string();
    assert!(
        e.contains(&url) && e.contains("500") && e.contains("after 1 retries"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gsm8k_scores_generations() {
    // Answers: right with ####, right only for flexible, wrong.
    let url = fake(|_, body| {
        let p = body["prompt"].as_array().map(|a| a.len()).unwrap_or(0);
        assert!(p > 0, "token-id prompt");
        assert_eq!(body["stop"][0], "Question:");
        assert_eq!(body["max_tokens"], 256);
        let text = HfTokenizer::embedded()
            .decode(
                &body["prompt"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        let reply = if text.ends_with("How many apples does she have?\nAnswer:") {
            " 3 + 4 = 7\n#### 7"
        } else if text.contains("1,200 pens") {
            " It makes $2,400."
        } else {
            " It is 3 degrees.\n#### 3"
        };
        assert_eq!(
            text.matches("Question:").count(),
            4,
            "3 shots + the question"
        );
        (
            200,
            serde_json::json!({"choices": [{"index": 0, "text": reply}]}),
        )
    })
    .await;
    let mut cfg = config(Task::Gsm8k, "gsm8k-test.jsonl", &url, 2048);
    cfg.fewshot_data = Some(fixture("accuracy/gsm8k-train.jsonl"));
    cfg.num_fewshot = Some(3);
    let r = accuracy::evaluate(&cfg).await.unwrap();
    assert!(
        close(r.metrics["exact_match"], 2.0 / 3.0),
        "{:?}",
        r.metrics
    );
    assert!(close(r.metrics["exact_match_strict"], 1.0 / 3.0));
    // Local data with shots needs the train split too.
    cfg.fewshot_data = None;
    let e = accuracy::evaluate(&cfg).await.unwrap_err().to_string();
    assert!(e.contains("--fewshot-data"), "{e}");
}

/// The records of a JSONL fixture under `accuracy/lm-eval/`.
fn lm_eval_golden(name: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(fixture(&format!("accuracy/lm-eval/{name}")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `gsm8k-chat` as lm-eval's golden run (tests/fixtures/accuracy/lm-eval/record.sh): its
/// data, and lm-eval's default 256 tokens.
fn gsm8k_chat_config(url: &str) -> EvalConfig {
    let mut cfg = config(Task::Gsm8kChat, "gsm8k-test.jsonl", url, 2048);
    cfg.fewshot_data = Some(fixture("accuracy/gsm8k-train-8.jsonl"));
    cfg.max_gen_toks = Some(256);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gsm8k_chat_sends_lm_evals_request_bodies() {
    // lm-eval 0.4.13 `--model local-chat-completions --apply_chat_template`: 5 shots as
    // user/assistant turns (fewshot_as_multiturn), stop strings without an EOS text.
    let bodies = Arc::new(std::sync::Mutex::new(vec![]));
    let b2 = bodies.clone();
    let url = fake(move |_, body| {
        b2.lock().unwrap().push(body);
        (
            200,
            serde_json::json!({"choices": [{"index": 0,
                "message": {"role": "assistant", "content": "#### 1"}}]}),
        )
    })
    .await;
    accuracy::evaluate(&gsm8k_chat_config(&url)).await.unwrap();
    let key = |b: &serde_json::Value| {
        b["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .to_string()
    };
    let mut ours = bodies.lock().unwrap().clone();
    let mut golden: Vec<serde_json::Value> = lm_eval_golden("gsm8k-chat-requests.jsonl")
        .into_iter()
        .map(|r| {
            assert_eq!(r["path"], "/v1/chat/completions");
            r["body"].clone()
        })
        .collect();
    ours.sort_by_key(key);
    golden.sort_by_key(key);
    assert_eq!(ours.len(), 3);
    for (o, g) in ours.iter().zip(&golden) {
        // JSON equality: every key and value, 0.0 is not 0.
        assert_eq!(o, g);
        assert_eq!(
            o.as_object().unwrap().keys().collect::<Vec<_>>(),
            g.as_object().unwrap().keys().collect::<Vec<_>>(),
            "lm-eval's key order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gsm8k_chat_scores_the_sim_as_lm_eval_did() {
    // The same run against the sim lm-eval was recorded on: the same responses and the same
    // extractions of both filters.
    let s = sim().await;
    let r = accuracy::evaluate(&gsm8k_chat_config(&s.url()))
        .await
        .unwrap();
    let golden = lm_eval_golden("gsm8k-chat-samples.jsonl");
    assert_eq!(golden.len(), 2 * r.samples.len(), "a sample per filter");
    for g in &golden {
        let ours = &r.samples[g["doc_id"].as_u64().unwrap() as usize];
        assert_eq!(ours["response"], g["resps"][0][0], "doc {}", g["doc_id"]);
        let filter = g["filter"].as_str().unwrap();
        assert_eq!(
            ours[filter], g["filtered_resps"][0],
            "doc {} {filter}",
            g["doc_id"]
        );
        let messages: serde_json::Value =
            serde_json::from_str(g["arguments"]["gen_args_0"]["arg_0"][0].as_str().unwrap())
                .unwrap();
        assert_eq!(ours["prompt"], messages);
    }
    s.shutdown();
}

// ---- thresholds ----

#[test]
fn gate_specs_and_judgement() {
    let g: GateSpec = "wikitext-tokens".parse().unwrap();
    assert_eq!((g.task, g.mode), (Task::WikitextTokens, Mode::Before));
    let g: GateSpec = "gsm8k:after".parse().unwrap();
    assert_eq!((g.task, g.mode), (Task::Gsm8k, Mode::After));
    assert!("gsm8k:later".parse::<GateSpec>().is_err());
    assert!("mmlu".parse::<GateSpec>().is_err());

    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("baselines/accuracy.yaml"),
    )
    .unwrap();
    let b = AccuracyBaselines::parse("accuracy.yaml", &text).unwrap();
    let th = b.thresholds("wikitext-tokens", None, "dsr1-fp4").unwrap();
    let m = |bpb: f64| -> IndexMap<String, f64> {
        [
            ("word_perplexity".to_string(), 3.0),
            ("byte_perplexity".to_string(), 1.3),
            ("bits_per_byte".to_string(), bpb),
        ]
        .into_iter()
        .collect()
    };
    // baseline 0.4485 × 1.03 = 0.461955
    let r = accuracy::judge(Task::WikitextTokens, &m(0.4619), &th);
    assert_eq!(r.status, AccuracyStatus::Pass);
    assert!(close(r.threshold["bits_per_byte"], 0.4485 * 1.03));
    let r = accuracy::judge(Task::WikitextTokens, &m(0.4620), &th);
    assert_eq!(r.status, AccuracyStatus::Fail);
    assert!(accuracy::explain(&r).contains("bits_per_byte = 0.462000"));

    let th = b
        .thresholds("gsm8k", Some("inferencemax"), "dsr1-fp4")
        .unwrap();
    let em = |v: f64| -> IndexMap<String, f64> {
        [("exact_match".to_string(), v)].into_iter().collect()
    };
    // InferenceX holds both filters to the threshold (flexible-extract, strict-match).
    let both = |flexible: f64, strict: f64| -> IndexMap<String, f64> {
        [
            ("exact_match".to_string(), flexible),
            ("exact_match_strict".to_string(), strict),
        ]
        .into_iter()
        .collect()
    };
    assert_eq!(
        accuracy::judge(Task::Gsm8k, &both(0.91, 0.91), &th).status,
        AccuracyStatus::Pass
    );
    assert_eq!(
        accuracy::judge(Task::Gsm8k, &both(0.9, 0.95), &th).status,
        AccuracyStatus::Fail
    );
    let r = accuracy::judge(Task::Gsm8k, &both(0.95, 0.9), &th);
    assert_eq!(r.status, AccuracyStatus::Fail);
    assert!(
        accuracy::explain(&r).contains("exact_match_strict = 0.900000 (threshold 0.91)"),
        "{}",
        accuracy::explain(&r)
    );
    // A strict score that was never measured is an error, not a pass.
    assert_eq!(
        accuracy::judge(Task::Gsm8k, &em(0.95), &th).status,
        AccuracyStatus::Error
    );
    let th = accuracy::explicit_thresholds(Task::Gsm8k, &["exact_match=0.5".into()]).unwrap();
    assert_eq!(
        accuracy::judge(Task::Gsm8k, &em(0.5), &th).status,
        AccuracyStatus::Pass
    );
    let th = accuracy::explicit_thresholds(Task::Wikitext, &["perplexity=2".into()]).unwrap();
    assert_eq!(
        accuracy::judge(Task::Wikitext, &m(0.1), &th).status,
        AccuracyStatus::Error,
        "a threshold on an unmeasured metric never passes"
    );
}

#[test]
fn engine_options_default_to_lm_eval() {
    let o = EngineOptions::new("http://h:1/", "m");
    assert_eq!(
        (o.base_url.as_str(), o.num_concurrent, o.max_retries, o.seed),
        ("http://h:1", 1, 3, 1234)
    );
}

// ---- the command line: runner eval, runner exec --accuracy ----

const RUNNER: &str = env!("CARGO_BIN_EXE_runner");

/// `runner eval --base-url <url> --task wikitext`.
fn eval_wikitext(url: &str) -> std::process::Command {
    let mut c = std::process::Command::new(RUNNER);
    c.args(["eval", "--base-url", url, "--task", "wikitext"]);
    c
}

/// `runner exec` on the tiny sim with the gate flags `gate`; returns the output and the job
/// directory.
fn exec_with_gate(gate: &[&str]) -> (std::process::Output, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("runners")).unwrap();
    std::fs::create_dir_all(p.join("benchmarks")).unwrap();
    crate::util::write(&p.join("runners"), "sim.yaml", "kind: sim\npreset: tiny\n");
    let row = serde_json::json!({"image": "img:1", "model": "infmax/sim", "precision": "fp4",
        "framework": "sglang", "runner": "mi355x", "isl": 64, "osl": 16, "tp": 8, "conc": 2,
        "max-model-len": 4096, "ep": 1, "dp-attn": false, "exp-name": "dsr1_64_16"});
    let r = crate::util::write(p, "row.json", &row.to_string());
    let data = fixture("accuracy/wikitext-pages.jsonl")
        .display()
        .to_string();
    let out = std::process::Command::new(RUNNER)
        .current_dir(p)
        .args(["exec", "--config", &r, "--profile", "sim", "--out", "out"])
        .args(["--runners", "runners", "--benchmarks", "benchmarks"])
        .args([
            "--baselines",
            &root().join("baselines").display().to_string(),
        ])
        .args(["--prompts-multiplier", "1", "--accuracy-data", &data])
        .args(gate)
        .env_remove("RUNNER_NAME")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    let job = p.join("out/dsr1_64_16_fp4_sglang_tp8_ep1_dpa_false_conc2_mi355x");
    (out, job, dir)
}

#[test]
fn failing_gate_before_the_load_stops_the_job_with_exit_14() {
    let (o, job, _d) = exec_with_gate(&[
        "--accuracy",
        "wikitext:before",
        "--accuracy-threshold",
        "bits_per_byte=1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(14), "{err}");
    assert!(
        err.contains("accuracy gate failed before the load phase") && err.contains("bits_per_byte"),
        "{err}"
    );
    assert!(!job.join("bench.json").exists(), "no load phase ran");
    let acc = read_json(&job.join("accuracy.json"));
    assert_eq!(acc["status"], "fail");
    assert_eq!(acc["threshold"]["bits_per_byte"], 1.0);
    assert_eq!(read_json(&job.join("status.json"))["stage"], "accuracy");
}

#[test]
fn gate_after_the_load_is_recorded_in_agg_json() {
    let (o, job, _d) = exec_with_gate(&[
        "--accuracy",
        "wikitext:after",
        "--accuracy-threshold",
        "bits_per_byte=10",
        "--accuracy-threshold",
        "byte_perplexity=100",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let agg = read_json(&job.join("agg.json"));
    let acc = &agg["accuracy"];
    assert_eq!(acc["task"], "wikitext");
    assert_eq!(acc["status"], "pass");
    // the numbers `runner eval` (and lm-eval 0.4.13) give for these pages at max_length 2048
    assert!((acc["metrics"]["bits_per_byte"].as_f64().unwrap() - 5.633938092018322).abs() < 1e-12);
    assert_eq!(acc["threshold"]["byte_perplexity"], 100.0);

    // A failing gate after the load keeps the results and fails the job.
    let (o, job, _d) = exec_with_gate(&[
        "--accuracy",
        "wikitext:after",
        "--accuracy-threshold",
        "bits_per_byte=1",
    ]);
    assert_eq!(o.status.code(), Some(14));
    assert!(job.join("bench.json").is_file());
    assert_eq!(
        read_json(&job.join("agg.json"))["accuracy"]["status"],
        "fail"
    );
}

#[test]
fn gate_without_thresholds_is_a_config_error() {
    // accuracy.yaml has no `wikitext` (document-level) entry for dsr1-fp4.
    let (o, _job, _d) = exec_with_gate(&["--accuracy", "wikitext"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(10), "{err}");
    assert!(
        err.contains("no wikitext accuracy thresholds for `dsr1-fp4`"),
        "{err}"
    );
    let (o, _job, _d) = exec_with_gate(&["--accuracy", "wikitext:sometime"]);
    assert_eq!(o.status.code(), Some(10));
}

#[test]
fn eval_command_prints_metrics_and_gates() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(sim());
    let data = fixture("accuracy/wikitext-pages.parquet")
        .display()
        .to_string();
    let o = eval_wikitext(&s.url())
        .args(["--data", &data])
        .args(["--max-length", "9", "--num-concurrent", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["documents"], 4);
    assert!((v["metrics"]["word_perplexity"].as_f64().unwrap() - 499887519.222814).abs() < 1e-3);
    assert!(String::from_utf8_lossy(&o.stderr).contains("accuracy: wikitext: 40/40 requests"));
    let o = eval_wikitext(&s.url())
        .args(["--data", &data])
        .args(["--threshold", "bits_per_byte=0.5", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(14));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["accuracy"]["status"], "fail");
    s.shutdown();
}

#[test]
fn missing_dataset_offline_names_the_download() {
    let cache = tempfile::tempdir().unwrap();
    let o = eval_wikitext("http://127.0.0.1:9")
        .args(["--model", "m", "--tokenizer", "infmax/embedded"])
        .env("HF_HUB_CACHE", cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("EleutherAI/wikitext_document_level")
            && err.contains(
                "huggingface-cli download --repo-type dataset EleutherAI/wikitext_document_level"
            )
            && err.contains("--data PATH"),
        "{err}"
    );
}

#[test]
fn real_llama_server_is_refused_for_loglikelihoods() {
    // llama.cpp's llama-server ignores `echo`: it must be detected, never scored.
    let Some(srv) = crate::util::llama_server() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = config(
        Task::Wikitext,
        "wikitext-pages.jsonl",
        &format!("http://{}", srv.addr),
        2048,
    );
    cfg.limit = Some(1);
    let e = rt.block_on(accuracy::evaluate(&cfg)).unwrap_err();
    assert!(
        matches!(e, AccuracyError::EchoUnsupported { .. }),
        "{e}\n{}",
        srv.log_text()
    );
}

#[test]
fn real_llama_cpp_python_server_is_evaluated_on_text() {
    // llama-cpp-python's server refuses token-id prompts (HTTP 500): each evaluation probes
    // once and then sends text. Generation works that way; its echo is off by one, so
    // perplexity is refused — without recommending that very server.
    let Some(srv) = crate::real::llama_cpp_python() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("http://{}", srv.addr);
    let mut cfg = config(Task::Gsm8k, "gsm8k-test.jsonl", &url, 2048);
    cfg.fewshot_data = Some(fixture("accuracy/gsm8k-train.jsonl"));
    cfg.num_fewshot = Some(3);
    cfg.max_gen_toks = Some(32);
    let r = rt
        .block_on(accuracy::evaluate(&cfg))
        .unwrap_or_else(|e| panic!("{e}\n{}", srv.log_text()));
    assert_eq!((r.documents, r.requests), (3, 3));
    assert_eq!(srv.answered(500), 1, "one probe:\n{}", srv.log_text());
    assert_eq!(srv.answered(200), 3, "{}", srv.log_text());
    for sample in &r.samples {
        assert!(sample["response"].is_string(), "{sample}");
    }

    // gsm8k-chat: multi-turn messages through the model's chat template.
    let mut chat = cfg.clone();
    chat.task = Task::Gsm8kChat;
    let r = rt
        .block_on(accuracy::evaluate(&chat))
        .unwrap_or_else(|e| panic!("{e}\n{}", srv.log_text()));
    assert_eq!(r.documents, 3);
    assert_eq!(srv.answered(500), 1, "chat has no token-id form to probe");

    let mut cfg = config(Task::Wikitext, "wikitext-pages.jsonl", &url, 2048);
    cfg.limit = Some(1);
    let e = rt.block_on(accuracy::evaluate(&cfg)).unwrap_err();
    assert!(
        matches!(e, AccuracyError::EchoMisaligned { form: "text", .. }),
        "{e}\n{}",
        srv.log_text()
    );
    assert!(!e
        .to_string()
        .contains("serve the model with vLLM, SGLang or llama-cpp-python"));
    assert!(e
        .to_string()
        .ends_with("serve the model with vLLM or SGLang for loglikelihood tasks"));
    assert_eq!(srv.answered(500), 2, "the new evaluation probed once");
}

#[test]
fn hub_cache_parquet_is_found_offline() {
    // The hub cache layout hf-hub and huggingface_hub share.
    let cache = tempfile::tempdir().unwrap();
    let repo = cache
        .path()
        .join("datasets--EleutherAI--wikitext_document_level");
    let snap = repo.join("snapshots/0123abcd/wikitext-2-raw-v1");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    std::fs::copy(
        fixture("accuracy/wikitext-pages.parquet"),
        snap.join("test-00000-of-00001.parquet"),
    )
    .unwrap();
    // another split and another config must not be read
    std::fs::write(snap.join("train-00000-of-00001.parquet"), "not parquet").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(sim());
    let o = eval_wikitext(&s.url())
        .arg("--quiet")
        .env("HF_HUB_CACHE", cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["documents"], 4);
    assert_eq!(v["metrics"]["bits_per_byte"], 5.633938092018322);
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_that_refuses_token_ids_is_probed_once_then_gets_text() {
    // llama-cpp-python's server answers a token-id prompt with HTTP 500. The first request
    // is sent once as ids, then as text; every later one goes as text straight away, with
    // four in flight — no retries of the refusal, no request that probes again.
    let tok = HfTokenizer::embedded();
    let (ids, texts) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (i2, t2) = (ids.clone(), texts.clone());
    let url = fake(move |_, body| match &body["prompt"] {
        serde_json::Value::String(s) => {
            t2.fetch_add(1, Ordering::SeqCst);
            logprobs_answer(tok.encode(s).unwrap().len(), -2.0)
        }
        _ => {
            i2.fetch_add(1, Ordering::SeqCst);
            (
                500,
                serde_json::json!({"error": {"message": "Internal Server Error"}}),
            )
        }
    })
    .await;
    // Four documents, one window each, four in flight. (Windows that start inside a
    // document would not do: their decoded text does not always re-encode to the same
    // tokens, which the echo check refuses.)
    let mut cfg = config(Task::Wikitext, "wikitext-pages.jsonl", &url, 2048);
    // A prefix whose decoded text re-encodes to itself, so that text and ids line up.
    cfg.prefix_token = Some(HfTokenizer::embedded().encode("Hello").unwrap()[0]);
    cfg.engine.backoff = Duration::from_secs(5); // a retry would show in the test's time
    let started = std::time::Instant::now();
    let r = accuracy::evaluate(&cfg).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a refusal was retried"
    );
    let docs = accuracy::wikitext_documents(&cfg).await.unwrap();
    let tokens: usize = docs
        .iter()
        .map(|d| HfTokenizer::embedded().encode(&d.target).unwrap().len())
        .sum();
    let bytes: usize = docs.iter().map(|d| d.bytes).sum();
    assert!(close(
        r.metrics["bits_per_byte"],
        2.0 * tokens as f64 / bytes as f64 / std::f64::consts::LN_2
    ));
    assert_eq!(r.requests, 4);
    assert_eq!(ids.load(Ordering::SeqCst), 1, "one probe with token ids");
    assert_eq!(
        texts.load(Ordering::SeqCst),
        r.requests,
        "every window as text"
    );

    // Refused in both forms: one error that says so, still without retries.
    let url = fake(|_, _| (500, serde_json::json!({"error": "nope"}))).await;
    let mut cfg = config(Task::Wikitext, "wikitext-pages.jsonl", &url, 2048);
    cfg.engine.max_retries = 1;
    let e = accuracy::evaluate(&cfg).await.unwrap_err().to_string();
    // The same answer to both forms is said once.
    assert!(
        e.contains("the token-id prompt and the same prompt as text were both refused: HTTP 500")
            && e.matches("nope").count() == 1
            && e.contains("after 1 retries"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_on_an_engine_without_token_ids_sends_the_whole_context() {
    // gsm8k on /v1/completions: ids left-truncated to max_length − 1 − max_gen_toks; refused,
    // the context goes as text, whole, as lm-eval's tokenized_requests=False sends it.
    let seen = Arc::new(std::sync::Mutex::new(vec![]));
    let s2 = seen.clone();
    let url = fake(move |_, body| match &body["prompt"] {
        serde_json::Value::String(s) => {
            s2.lock().unwrap().push(s.clone());
            (
                200,
                serde_json::json!({"choices": [{"index": 0, "text": " 7\n#### 7"}]}),
            )
        }
        ids => {
            assert!(
                ids.as_array().unwrap().len() <= 48 - 1 - 16,
                "left-truncated"
            );
            (500, serde_json::json!({"error": "ids"}))
        }
    })
    .await;
    let mut cfg = config(Task::Gsm8k, "gsm8k-test.jsonl", &url, 48);
    cfg.fewshot_data = Some(fixture("accuracy/gsm8k-train.jsonl"));
    cfg.num_fewshot = Some(3);
    cfg.max_gen_toks = Some(16);
    let r = accuracy::evaluate(&cfg).await.unwrap();
    assert!(
        close(r.metrics["exact_match"], 1.0 / 3.0),
        "{:?}",
        r.metrics
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for p in seen.iter() {
        assert!(
            p.starts_with("Question: ") && p.ends_with("\nAnswer:"),
            "{p:?}"
        );
        assert_eq!(
            p.matches("Question:").count(),
            4,
            "3 shots + the question, untruncated"
        );
    }
    for sample in &r.samples {
        assert!(seen.contains(&sample["prompt"].as_str().unwrap().to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_that_does_not_line_up_is_refused_without_recommending_its_server() {
    // llama-cpp-python's server: one logprob per prompt token, the BOS entry dropped.
    let url =
        fake(|_, body| logprobs_answer(body["prompt"].as_array().unwrap().len() - 1, -1.0)).await;
    let cfg = config(Task::Wikitext, "wikitext-pages.jsonl", &url, 2048);
    let e = accuracy::evaluate(&cfg).await.unwrap_err();
    assert!(
        matches!(
            e,
            AccuracyError::EchoMisaligned {
                form: "token ids",
                ..
            }
        ),
        "{e}"
    );
    let msg = e.to_string();
    let advice = &msg[msg.find("serve the model with").expect(&msg)..];
    assert_eq!(
        advice,
        "serve the model with vLLM or SGLang for loglikelihood tasks"
    );
    assert!(
        msg.contains("llama-cpp-python's server drops the BOS entry"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logprobs_parse_to_the_last_bit() {
    // serde_json's default float parser reads -3.4870826754597686 as 0xc00be58b9a0c6214, one
    // ulp off the nearest double 0xc00be58b9a0c6213 that Python's json (and lm-eval) read;
    // about a quarter of the logprobs engines print are such cases. With `float_roundtrip`
    // every one is exact.
    const TEXT: &str = "-3.4870826754597686";
    const EXACT: u64 = 0xc00be58b9a0c6213;
    assert_eq!(TEXT.parse::<f64>().unwrap().to_bits(), EXACT);
    let lp: f64 = TEXT.parse().unwrap();
    assert_eq!(
        serde_json::json!(lp).to_string(),
        TEXT,
        "the answer carries TEXT"
    );
    let url = fake(move |_, _| {
        (
            200,
            serde_json::json!({"choices": [{"index": 0,
                "logprobs": {"token_logprobs": [null, lp, -0.5]}}]}),
        )
    })
    .await;
    let mut o = EngineOptions::new(&url, "m");
    o.progress = false;
    let ll = engine::Engine::new(o)
        .loglikelihood(&[1, 2], 1, || unreachable!("ids are taken"))
        .await
        .unwrap();
    assert_eq!(ll.to_bits(), EXACT, "{ll} is {:#x}", ll.to_bits());
    assert_ne!(ll.to_bits(), 0xc00be58b9a0c6214);
}
