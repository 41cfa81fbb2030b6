//! Every dataset of `runner bench` against golden prompt sets recorded by running the
//! reference clients' own samplers (`tests/fixtures/client/datasets/record.py`): the
//! `random` dataset of the bounty-era client and of InferenceX's 2026 client (1, 3 and 8
//! workers), and the vLLM-era `sharegpt`, `sonnet`, `burstgpt` and `hf` samplers, on small
//! input files in the same folder and the embedded tokenizer. Prompts are compared byte for
//! byte (or by SHA-256 for the large cases), with their lengths, and so is what both global
//! generators draw next (the arrival gap, the `--lora-modules` picks). Then the flags: every
//! one of the reference's 45 parses, and what is refused says why.

use crate::util::fixture;
use infmax::client::dataset::{Compat, DatasetSpec, RandomParams};
use infmax::client::sources::{FileKind, FileParams};
use infmax::tokenizer::HfTokenizer;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::process::Command;

fn cases(name: &str) -> Vec<Value> {
    let path = fixture(&format!("client/datasets/{name}"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn n(c: &Value, k: &str) -> u32 {
    c[k].as_u64().unwrap_or_else(|| panic!("{k}")) as u32
}

fn opt(c: &Value, k: &str) -> Option<u32> {
    c[k].as_u64().map(|v| v as u32)
}

fn spec(c: &Value) -> DatasetSpec {
    let file = |name: &str| {
        fixture(&format!("client/datasets/{name}"))
            .display()
            .to_string()
    };
    let num_prompts = n(c, "num_prompts") as usize;
    let (kind, path) = match c["dataset"].as_str().unwrap() {
        "random" => {
            return DatasetSpec::Random(RandomParams {
                input_len: n(c, "input_len"),
                output_len: n(c, "output_len"),
                range_ratio: c["range_ratio"].as_f64().unwrap(),
                prefix_len: n(c, "prefix_len"),
                num_prompts,
                use_chat_template: c["chat"].as_bool().unwrap(),
                compat: match c["compat"].as_str().unwrap() {
                    "bounty-2025" => Compat::Bounty2025,
                    _ => Compat::Inferencex2026,
                },
                workers: opt(c, "random_num_workers").unwrap_or(1) as usize,
            })
        }
        "sharegpt" => (
            FileKind::ShareGpt {
                output_len: opt(c, "sharegpt_output_len"),
            },
            file("sharegpt.json"),
        ),
        "sonnet" => (
            FileKind::Sonnet {
                input_len: n(c, "sonnet_input_len"),
                output_len: n(c, "sonnet_output_len"),
                prefix_len: n(c, "sonnet_prefix_len"),
                raw: c["chat"].as_bool().unwrap(),
            },
            file("sonnet.txt"),
        ),
        "burstgpt" => (FileKind::BurstGpt, file("burstgpt.csv")),
        "hf" => (
            FileKind::Hf {
                subset: None,
                split: c["hf_split"].as_str().unwrap().into(),
                output_len: opt(c, "hf_output_len"),
            },
            file("hf"),
        ),
        other => panic!("{other}"),
    };
    DatasetSpec::File(FileParams {
        kind,
        path,
        num_prompts,
    })
}

/// Sample each case and compare it with what the reference returned.
fn check(cases: &[Value]) {
    let tok = HfTokenizer::embedded();
    for c in cases {
        let what = format!(
            "{} {} seed {} ({} prompts, {} workers)",
            c["dataset"], c["compat"], c["seed"], c["num_prompts"], c["random_num_workers"]
        );
        let mut ds = spec(c).sample(&tok, n(c, "seed")).unwrap();
        let want = c["prompts"].as_array().unwrap();
        assert_eq!(ds.prompts.len(), want.len(), "{what}: prompt count");
        for (i, (got, want)) in ds.prompts.iter().zip(want).enumerate() {
            match want.get("prompt_sha256") {
                Some(h) => assert_eq!(
                    format!("{:x}", Sha256::digest(got.text.as_bytes())),
                    h.as_str().unwrap(),
                    "{what}: prompt {i} (sha256)"
                ),
                None => assert_eq!(
                    got.text,
                    want["prompt"].as_str().unwrap(),
                    "{what}: prompt {i}"
                ),
            }
            assert_eq!(
                got.prompt_len,
                n(want, "prompt_len"),
                "{what}: prompt {i} len"
            );
            assert_eq!(
                got.output_len,
                n(want, "output_len"),
                "{what}: prompt {i} output len"
            );
        }
        assert_eq!(
            ds.rng.gamma(1.0, 0.1),
            c["next_gamma_1_0.1"]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap(),
            "{what}: next arrival gap"
        );
        let lora = ["lora-a", "lora-b", "lora-c"];
        let picks: Vec<&str> = (0..ds.prompts.len())
            .map(|_| lora[ds.py.randbelow(lora.len())])
            .collect();
        let want: Vec<&str> = c["lora_choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(picks, want, "{what}: --lora-modules picks");
    }
}

#[test]
fn random_matches_both_reference_clients() {
    let all = cases("golden-random.json");
    // The golden sets themselves show the difference the compat switch exists for: at
    // 100/100 the two clients' prompts differ (14 of 640 with this tokenizer).
    let big: Vec<&Value> = all.iter().filter(|c| c["num_prompts"] == 640).collect();
    let differ = |a: &Value, b: &Value| {
        a["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .zip(b["prompts"].as_array().unwrap())
            .filter(|(x, y)| x["prompt_sha256"] != y["prompt_sha256"])
            .count()
    };
    assert_eq!(big[0]["compat"], "bounty-2025");
    assert_eq!(differ(big[0], big[1]), 14);
    check(&all);
}

#[test]
fn file_datasets_match_vllm_samplers() {
    check(&cases("golden-vllm.json"));
}

fn runner(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("bench")
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

/// All 45 flags of the bounty-era benchmark_serving.py parse (`--dataset-only` stops after
/// the prompts); the ones with nothing to do here are refused by name, never with clap's
/// "unexpected argument".
#[test]
fn every_reference_flag_parses() {
    let dir = tempfile::tempdir().unwrap();
    let sonnet = fixture("client/datasets/sonnet.txt");
    let out = dir.path().join("p.jsonl");
    let o = runner(&[
        "--backend",
        "vllm",
        "--base-url",
        "http://127.0.0.1:9",
        "--host",
        "127.0.0.1",
        "--port",
        "9",
        "--endpoint",
        "/v1/completions",
        "--dataset-name",
        "sonnet",
        "--dataset-path",
        sonnet.to_str().unwrap(),
        "--max-concurrency",
        "4",
        "--model",
        "m",
        "--tokenizer",
        "infmax/embedded",
        "--best-of",
        "1",
        "--use-beam-search",
        "--num-prompts",
        "3",
        "--logprobs",
        "1",
        "--request-rate",
        "inf",
        "--burstiness",
        "1.0",
        "--seed",
        "0",
        "--trust-remote-code",
        "--disable-tqdm",
        "--save-result",
        "--save-detailed",
        "--metadata",
        "a=b",
        "--result-dir",
        dir.path().to_str().unwrap(),
        "--result-filename",
        "r.json",
        "--ignore-eos",
        "--percentile-metrics",
        "ttft,e2el",
        "--metric-percentiles",
        "50,99",
        "--goodput",
        "ttft:100",
        "--sonnet-input-len",
        "120",
        "--sonnet-output-len",
        "10",
        "--sonnet-prefix-len",
        "40",
        "--sharegpt-output-len",
        "5",
        "--random-input-len",
        "8",
        "--random-output-len",
        "8",
        "--random-range-ratio",
        "1.0",
        "--random-prefix-len",
        "0",
        "--use-chat-template",
        "--hf-subset",
        "s",
        "--hf-split",
        "train",
        "--hf-output-len",
        "5",
        "--tokenizer-mode",
        "auto",
        "--served-model-name",
        "m",
        "--lora-modules",
        "x",
        "y",
        "--num-warmups",
        "0",
        "--dataset-only",
        "--save-prompts",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let prompts = std::fs::read_to_string(&out).unwrap();
    assert_eq!(prompts.lines().count(), 3);
    // --profile, the last of the 45, and the other refusals.
    let refusals: [(&[&str], &str); 6] = [
        (&["--profile"], "--profile"),
        (&["--tokenizer-mode", "slow"], "--tokenizer-mode slow"),
        (&["--dsv4"], "--dsv4"),
        (&["--dataset-name", "sharegpt"], "needs --dataset-path"),
        (
            &["--dataset-name", "hf", "--dataset-path", "x"],
            "needs --hf-split",
        ),
        (&["--dataset-name", "mmlu"], "unknown dataset"),
    ];
    for (args, want) in refusals {
        let o = runner(
            &[
                args,
                &[
                    "--model",
                    "m",
                    "--tokenizer",
                    "infmax/embedded",
                    "--dataset-only",
                ],
            ]
            .concat(),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{err}");
    }
}

/// `runner bench` against the simulated engine with a file dataset, in both layouts: the
/// InferenceX 2026 result has the timed phase's wall-clock window right after `duration`,
/// e2el and 90/99/99.9 percentiles by default and the length lists; the bounty layout keeps
/// the window among the additions. The prompt lengths sent are the reference's.
#[test]
fn result_layouts_on_the_sim() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = infmax::sim::SimConfig::preset("exact").unwrap();
    let x = cfg.exact.as_mut().unwrap();
    (x.ttft_ms, x.itl_ms) = (5.0, 1.0);
    let sim = rt.block_on(infmax::sim::Server::start_local(cfg)).unwrap();
    let sharegpt = fixture("client/datasets/sharegpt.json");
    let golden = cases("golden-vllm.json");
    let want = |k: &str| -> Vec<u64> {
        golden[0]["prompts"].as_array().unwrap()[..6]
            .iter()
            .map(|p| p[k].as_u64().unwrap())
            .collect()
    };
    let want_lens = want("prompt_len");
    for compat in ["inferencex-2026", "bounty-2025"] {
        let d = tempfile::tempdir().unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["bench", "--base-url", &sim.url(), "--compat", compat])
            .args(["--dataset-name", "sharegpt", "--dataset-path"])
            .arg(&sharegpt)
            .args(["--ignore-eos", "--num-prompts", "6", "--seed", "0"])
            .args(["--max-concurrency", "2", "--disable-tqdm", "--save-result"])
            .args(["--result-filename", "r.json", "--result-dir"])
            .arg(d.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(d.path().join("r.json")).unwrap();
        let r: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = r.keys().map(String::as_str).collect();
        let at = |k: &str| keys.iter().position(|x| *x == k).unwrap();
        let (start, end) = (
            r["benchmark_start_time_unix"].as_f64().unwrap(),
            r["benchmark_end_time_unix"].as_f64().unwrap(),
        );
        let duration = r["duration"].as_f64().unwrap();
        assert!(
            (end - start - duration).abs() < 1e-3,
            "{start} {end} {duration}"
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(now - end >= 0.0 && now - end < 60.0, "{end} vs {now}");
        assert_eq!(r["completed"], 6);
        if compat == "inferencex-2026" {
            assert_eq!(at("benchmark_start_time_unix"), at("duration") + 1);
            assert_eq!(at("benchmark_end_time_unix"), at("duration") + 2);
            assert!(r.contains_key("p90_e2el_ms") && r.contains_key("p99.9_itl_ms"));
            let lens: Vec<u64> = r["input_lens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(lens, want_lens);
            assert_eq!(r["output_lens"], serde_json::json!(want("output_len")));
        } else {
            // After the last reference key, among the additions.
            assert!(at("benchmark_start_time_unix") > at("p99_itl_ms"));
            assert!(r.contains_key("p99_ttft_ms") && !r.contains_key("p90_ttft_ms"));
            assert!(!r.contains_key("mean_e2el_ms") && !r.contains_key("input_lens"));
            assert_eq!(r["total_input_tokens"], want_lens.iter().sum::<u64>());
        }
    }
}

/// Read one HTTP request's body from `s`.
/// One request's JSON body; `None` when the peer closed without sending a request (`runner
/// bench`'s reachability probe only connects).
fn request_body(s: &mut std::net::TcpStream) -> Option<Value> {
    use std::io::Read;
    let mut buf = vec![];
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).unwrap() == 0 {
            assert!(buf.is_empty(), "connection closed inside a request head");
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap().to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    Some(serde_json::from_slice(&body).unwrap())
}

/// `--lora-modules`: each request names the adapter Python's `random.choice` picks after the
/// dataset, and the prompts on the wire are the reference's, byte for byte (an HTTP server
/// that records what it receives, one request at a time).
#[test]
fn lora_modules_and_prompts_on_the_wire() {
    use std::io::Write;
    let golden = &cases("golden-vllm.json")[0];
    let n = golden["prompts"].as_array().unwrap().len();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let mut seen = vec![];
        while seen.len() < n {
            let (mut s, _) = l.accept().unwrap();
            let Some(body) = request_body(&mut s) else {
                continue; // the reachability probe
            };
            seen.push(body);
            let sse = "data: {\"choices\":[{\"index\":0,\"text\":\"x\"}]}\n\ndata: [DONE]\n\n";
            write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{sse}",
                sse.len()
            )
            .unwrap();
        }
        seen
    });
    let o = Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["bench", "--base-url", &url, "--model", "base"])
        .args([
            "--tokenizer",
            "infmax/embedded",
            "--dataset-name",
            "sharegpt",
        ])
        .arg("--dataset-path")
        .arg(fixture("client/datasets/sharegpt.json"))
        .args(["--num-prompts", &n.to_string(), "--max-concurrency", "1"])
        .args([
            "--disable-tqdm",
            "--lora-modules",
            "lora-a",
            "lora-b",
            "lora-c",
        ])
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen = server.join().unwrap();
    let models: Vec<&str> = seen.iter().map(|b| b["model"].as_str().unwrap()).collect();
    let want: Vec<&str> = golden["lora_choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(models, want);
    for (b, p) in seen.iter().zip(golden["prompts"].as_array().unwrap()) {
        assert_eq!(b["prompt"], p["prompt"]);
        assert_eq!(b["max_tokens"], p["output_len"]);
    }
}
