//! The AgentX trace replay (`runner agentic`, `runner agentic-synth`) against the simulated
//! engine and real files: synthetic Weka traces, the hub-cache layout of the real corpus,
//! AIPerf's artifacts, the live failure gate, context-overflow accounting.

use infmax::sim::{Handle, Server, SimConfig};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

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

/// A fast exact-schedule sim with a context window large enough for the synthetic traces.
fn fast_sim(max_model_len: u32) -> SimConfig {
    let mut c = SimConfig::preset("exact").unwrap();
    let x = c.exact.as_mut().unwrap();
    x.ttft_ms = 2.0;
    x.itl_ms = 0.5;
    c.max_model_len = max_model_len;
    c.model = "sim-model".into();
    c
}

fn runner(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_runner"));
    c.args(args).env_remove("OPENAI_API_KEY");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `runner agentic-synth` into `path`.
fn synth(path: &Path, extra: &[&str]) {
    let p = path.display().to_string();
    let mut args = vec!["agentic-synth", "--out", &p];
    args.extend_from_slice(extra);
    let o = runner(&args, &[]);
    assert!(o.status.success(), "{}", text(&o));
}

fn records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("profile_export.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn synthetic_traces_are_deterministic_weka() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.jsonl"), d.path().join("b.jsonl"));
    synth(&a, &[]);
    synth(&b, &[]);
    let (ta, tb) = (
        std::fs::read_to_string(&a).unwrap(),
        std::fs::read_to_string(&b).unwrap(),
    );
    assert_eq!(ta, tb, "same seed, same bytes");
    let mut subagents = 0;
    for line in ta.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        for k in [
            "id",
            "models",
            "block_size",
            "hash_id_scope",
            "tool_tokens",
            "system_tokens",
        ] {
            assert!(v.get(k).is_some(), "trace field {k}");
        }
        assert_eq!(v["block_size"], 64);
        assert_eq!(v["hash_id_scope"], "local");
        let reqs = v["requests"].as_array().unwrap();
        assert!(
            reqs[0].get("think_time").is_none(),
            "first row has no think_time"
        );
        for r in reqs {
            match r["type"].as_str().unwrap() {
                "n" | "s" => {
                    for k in ["t", "model", "in", "out", "hash_ids", "api_time"] {
                        assert!(r.get(k).is_some(), "request field {k}");
                    }
                    let blocks = r["hash_ids"].as_array().unwrap().len() as u64;
                    let input = r["in"].as_u64().unwrap();
                    assert!(input <= blocks * 64 && input > (blocks - 1) * 64);
                }
                "subagent" => {
                    subagents += 1;
                    for k in [
                        "agent_id",
                        "subagent_type",
                        "duration_ms",
                        "total_tokens",
                        "status",
                        "requests",
                    ] {
                        assert!(r.get(k).is_some(), "subagent field {k}");
                    }
                }
                t => panic!("row type {t}"),
            }
        }
    }
    assert!(subagents > 0);
    let other = d.path().join("c.jsonl");
    synth(&other, &["--seed", "7"]);
    assert_ne!(ta, std::fs::read_to_string(&other).unwrap());
}

/// Run `runner agentic` against `url` with `traces`, artifacts into `out`.
fn replay(url: &str, traces: &str, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let o = out.display().to_string();
    let mut args = vec![
        "agentic",
        "--url",
        url,
        "--model",
        "sim-model",
        "--tokenizer",
        "infmax/embedded",
        "--output-artifact-dir",
        &o,
        "--unsafe-override",
        "--random-seed",
        "42",
    ];
    if !traces.is_empty() {
        args.extend(["--input-file", traces]);
    }
    args.extend_from_slice(extra);
    runner(&args, env)
}

#[test]
fn replay_against_sim_writes_aiperf_artifacts() {
    let d = tempfile::tempdir().unwrap();
    let traces = d.path().join("traces.jsonl");
    synth(&traces, &["--time-scale", "0.01"]);
    let s = sim(fast_sim(1_100_000));
    let out = d.path().join("art");
    let metrics = format!("{}/metrics", s.handle.url());
    let o = replay(
        &s.handle.url(),
        &traces.display().to_string(),
        &out,
        &[
            "--server-metrics",
            &metrics,
            "--concurrency",
            "4",
            "--benchmark-duration",
            "6",
            "--warmup-requests-per-lane",
            "2",
            "--min-metric-coverage",
            "0.5",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let recs = records(&out);
    let phases: BTreeSet<&str> = recs
        .iter()
        .map(|r| r["metadata"]["benchmark_phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, BTreeSet::from(["profiling", "warmup"]));
    // Warmup: a primer and 2 one-token requests per lane.
    let warm: Vec<&Value> = recs
        .iter()
        .filter(|r| r["metadata"]["benchmark_phase"] == "warmup")
        .collect();
    assert_eq!(warm.len(), 4 * 3, "primer + 2 warmups per lane");
    assert!(warm
        .iter()
        .all(|r| r["metrics"]["output_sequence_length"]["value"] == 1));
    let prof: Vec<&Value> = recs
        .iter()
        .filter(|r| r["metadata"]["benchmark_phase"] == "profiling" && r["error"].is_null())
        .collect();
    assert!(prof.len() > 20, "{} profiling records", prof.len());
    // Every record has AIPerf's fields.
    for r in &recs {
        let m = &r["metadata"];
        for k in [
            "conversation_id",
            "turn_index",
            "x_correlation_id",
            "request_start_ns",
            "request_ack_ns",
            "request_end_ns",
            "benchmark_phase",
            "was_cancelled",
            "worker_id",
        ] {
            assert!(m.get(k).is_some(), "metadata.{k}");
        }
        assert_eq!(m["x_correlation_id"].as_str().unwrap().len(), 36);
    }
    for r in &prof {
        let m = &r["metrics"];
        for (k, unit) in [
            ("time_to_first_token", "ms"),
            ("request_latency", "ms"),
            ("input_sequence_length", "tokens"),
            ("output_sequence_length", "tokens"),
        ] {
            assert_eq!(m[k]["unit"], unit, "{k}");
        }
        let osl = m["output_sequence_length"]["value"].as_u64().unwrap();
        if osl > 1 {
            assert!(m["inter_token_latency"]["value"].as_f64().unwrap() >= 0.0);
            assert!(
                m["full_response_inter_token_latency"]["value"]
                    .as_f64()
                    .unwrap()
                    >= 0.0
            );
        }
        let (s0, e0) = (
            r["metadata"]["request_start_ns"].as_u64().unwrap(),
            r["metadata"]["request_end_ns"].as_u64().unwrap(),
        );
        assert!(e0 > s0);
    }
    // Subagents appear as their own conversations; correlation ids are stable per conversation.
    assert!(recs.iter().any(|r| r["metadata"]["conversation_id"]
        .as_str()
        .unwrap()
        .contains("::sa:")));
    let mut xc: BTreeMap<(String, u64), String> = BTreeMap::new();
    for r in &recs {
        let m = &r["metadata"];
        let key = (
            m["conversation_id"].as_str().unwrap().to_string(),
            m["session_num"].as_u64().unwrap(),
        );
        let x = m["x_correlation_id"].as_str().unwrap().to_string();
        let prev = xc.entry(key).or_insert_with(|| x.clone());
        let _ = prev;
    }
    // ISL is the server's count: the trace's `in` plus the marker and chat template.
    let corpus = std::fs::read_to_string(&traces).unwrap();
    // Every conversation of a tree (the root, subagents and split-off flattened agents)
    // as the loader builds it: conversation id → its turns' `in`.
    let mut ins: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for tr in infmax::client::agentic::trace::parse_jsonl(&corpus, "traces").unwrap() {
        let convs = std::iter::once(&tr.root).chain(tr.root.branches.iter().map(|b| &b.child));
        for c in convs {
            let v = c.turns.iter().map(|t| u64::from(t.input)).collect();
            ins.insert(format!("{}{}", tr.id, c.suffix), v);
        }
    }
    assert!(
        ins.keys()
            .any(|k| k.contains("::fa:") || k.contains("::wg:")),
        "the synthetic traces hold flattened agents"
    );
    for r in &prof {
        let cid = r["metadata"]["conversation_id"].as_str().unwrap();
        let turn = r["metadata"]["turn_index"].as_u64().unwrap() as usize;
        let want = ins[cid][turn];
        let isl = r["metrics"]["input_sequence_length"]["value"]
            .as_u64()
            .unwrap();
        // The cache-bust marker, and the chat template: a few tokens per message (two per turn).
        let overhead = 48 + 16 * (turn as u64 + 1);
        assert!(
            isl >= want && isl <= want + overhead,
            "{cid} turn {turn}: ISL {isl} vs in {want}"
        );
    }
    let agg: Value =
        serde_json::from_slice(&std::fs::read(out.join("profile_export_aiperf.json")).unwrap())
            .unwrap();
    let ok = prof.len() as u64;
    assert_eq!(agg["request_count"]["avg"], ok);
    assert_eq!(agg["metadata"]["scenario"], "inferencex-agentx-mvp");
    assert_eq!(agg["metadata"]["submission_valid"], false, "6 s < 900 s");
    // The engine's /metrics, scraped over the window.
    let sm: Value =
        serde_json::from_slice(&std::fs::read(out.join("server_metrics_export.json")).unwrap())
            .unwrap();
    assert!(
        sm["metrics"].as_object().is_some_and(|m| !m.is_empty()),
        "{sm}"
    );
    let hit = &agg["theoretical_prefix_cache_hit"];
    let (sum, count) = (hit["sum"].as_u64().unwrap(), hit["count"].as_u64().unwrap());
    assert!(
        count > 0 && sum > count / 2,
        "growing contexts reuse most blocks: {sum}/{count}"
    );
}

#[test]
fn hub_cache_snapshot_layout_and_offline_error() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("hub");
    let snap = cache.join("datasets--semianalysisai--cc-traces-weka-062126/snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(cache.join("datasets--semianalysisai--cc-traces-weka-062126/refs"))
        .unwrap();
    std::fs::write(
        cache.join("datasets--semianalysisai--cc-traces-weka-062126/refs/main"),
        "0123abcd",
    )
    .unwrap();
    synth(
        &snap.join("traces.jsonl"),
        &["--time-scale", "0.01", "--traces", "4"],
    );
    let s = sim(fast_sim(1_100_000));
    let out = d.path().join("art");
    let c = cache.display().to_string();
    let env = [("HF_HUB_CACHE", c.as_str()), ("HF_HUB_OFFLINE", "1")];
    let o = replay(
        &s.handle.url(),
        "",
        &out,
        &[
            "--public-dataset",
            "semianalysis_cc_traces_weka_062126",
            "--warmup-requests-per-lane",
            "1",
            "--concurrency",
            "2",
            "--benchmark-duration",
            "3",
            "--min-metric-coverage",
            "0",
        ],
        &env,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("corpus: 4 traces"), "{}", text(&o));
    let agg: Value =
        serde_json::from_slice(&std::fs::read(out.join("profile_export_aiperf.json")).unwrap())
            .unwrap();
    assert_eq!(
        agg["metadata"]["dataset"]["hf_dataset_name"],
        "semianalysisai/cc-traces-weka-062126"
    );
    // The 256k variant is not cached: offline, the error names the download command.
    let o = replay(
        &s.handle.url(),
        "",
        &out,
        &[
            "--public-dataset",
            "semianalysis_cc_traces_weka_062126_256k",
            "--benchmark-duration",
            "3",
        ],
        &env,
    );
    assert!(!o.status.success());
    assert!(
        text(&o)
            .contains("hf download --repo-type dataset semianalysisai/cc-traces-weka-062126-256k"),
        "{}",
        text(&o)
    );
}

#[test]
fn failing_engine_trips_the_live_gate_and_overflow_is_counted() {
    let d = tempfile::tempdir().unwrap();
    let traces = d.path().join("traces.jsonl");
    synth(&traces, &["--time-scale", "0.01"]);
    // Half the requests fail: the run stops early, exits non-zero, and still writes records.
    let mut c = fast_sim(1_100_000);
    c.faults.fail = Some(infmax::sim::config::FailFault {
        rate: 0.5,
        status: 500,
    });
    let s = sim(c);
    let out = d.path().join("fail");
    let o = replay(
        &s.handle.url(),
        &traces.display().to_string(),
        &out,
        &[
            "--concurrency",
            "2",
            "--benchmark-duration",
            "20",
            "--warmup-requests-per-lane",
            "0",
            "--trajectory-start-min-ratio",
            "0",
            "--trajectory-start-max-ratio",
            "0",
        ],
        &[],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("failed-request threshold exceeded"),
        "{}",
        text(&o)
    );
    assert!(records(&out)
        .iter()
        .any(|r| r["error"]["type"] == "HTTPError"));
    // A small context window: long turns overflow, end their conversations, and make the
    // run not submission-valid; nothing else fails.
    let s = sim(fast_sim(6_000));
    let out = d.path().join("overflow");
    let o = replay(
        &s.handle.url(),
        &traces.display().to_string(),
        &out,
        &[
            "--concurrency",
            "3",
            "--benchmark-duration",
            "4",
            "--warmup-requests-per-lane",
            "0",
            "--trajectory-start-min-ratio",
            "0",
            "--trajectory-start-max-ratio",
            "0",
            "--failed-request-threshold",
            "1",
            "--min-metric-coverage",
            "0",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let recs = records(&out);
    assert!(recs.iter().any(|r| r["error"]["type"] == "ContextOverflow"));
    assert!(recs
        .iter()
        .all(|r| r["error"].is_null() || r["error"]["type"] == "ContextOverflow"));
    let agg: Value =
        serde_json::from_slice(&std::fs::read(out.join("profile_export_aiperf.json")).unwrap())
            .unwrap();
    let reasons = agg["metadata"]["submission_invalid_reasons"].to_string();
    assert!(reasons.contains("context overflow rate"), "{reasons}");
}

/// Timing semantics on a hand-written trace: a subagent spawned after turn 0 starts at its
/// recorded offset and turn 1 waits for it (join); the 500 s recorded gap before turn 2 is
/// cut by the 10 s system idle cap; every turn is sent with the whole conversation so far.
#[test]
fn joins_offsets_and_the_idle_cap() {
    let d = tempfile::tempdir().unwrap();
    let ids = |n: u32| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let trace = format!(
        r#"{{"id":"hand","block_size":64,"hash_id_scope":"local","tool_tokens":0,"system_tokens":64,"requests":[
{{"t":0,"type":"s","in":256,"out":8,"hash_ids":[{}],"api_time":0.1}},
{{"t":1.1,"type":"subagent","agent_id":"sub_a","duration_ms":2000,"requests":[
  {{"t":1.6,"type":"n","in":128,"out":4,"hash_ids":[0,90],"api_time":0.5}},
  {{"t":2.6,"type":"n","in":192,"out":4,"hash_ids":[0,90,91],"api_time":0.5,"think_time":1.0}}]}},
{{"t":3.3,"type":"n","in":384,"out":8,"hash_ids":[{}],"api_time":0.1,"think_time":0.2}},
{{"t":503.4,"type":"n","in":448,"out":8,"hash_ids":[{}],"api_time":0.1,"think_time":500}}]}}"#,
        ids(4),
        ids(6),
        ids(7)
    )
    .replace('\n', "");
    let traces = d.path().join("hand.jsonl");
    std::fs::write(&traces, trace + "\n").unwrap();
    let s = sim(fast_sim(100_000));
    let out = d.path().join("art");
    let o = replay(
        &s.handle.url(),
        &traces.display().to_string(),
        &out,
        &[
            "--concurrency",
            "1",
            "--benchmark-duration",
            "14",
            "--warmup-requests-per-lane",
            "0",
            "--trajectory-start-min-ratio",
            "0",
            "--trajectory-start-max-ratio",
            "0",
            "--min-metric-coverage",
            "0",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let recs = records(&out);
    let at = |conv: &str, turn: u64, key: &str| -> f64 {
        let r = recs
            .iter()
            .find(|r| {
                r["metadata"]["conversation_id"] == conv
                    && r["metadata"]["turn_index"] == turn
                    && r["metadata"]["session_num"] == 0
            })
            .unwrap_or_else(|| panic!("{conv} turn {turn} in {recs:#?}"));
        r["metadata"][key].as_u64().unwrap() as f64 / 1e9
    };
    let t0_end = at("hand", 0, "request_end_ns");
    let sa0 = at("hand::sa:sub_a", 0, "request_start_ns");
    let sa1_end = at("hand::sa:sub_a", 1, "request_end_ns");
    let t1 = at("hand", 1, "request_start_ns");
    let t1_end = at("hand", 1, "request_end_ns");
    let t2 = at("hand", 2, "request_start_ns");
    // Spawn offset (AIPerf): the child's first request is dispatched its recorded offset
    // from the spawn (1.6 − 1.1 = 0.5 s) after the spawning turn completes.
    assert!(
        (sa0 - t0_end - 0.5).abs() < 0.25,
        "spawn offset {}",
        sa0 - t0_end
    );
    // Join: turn 1 waits for the subagent, then its recorded gap after it (3.3 − 3.1 = 0.2 s).
    assert!(
        t1 >= sa1_end + 0.15,
        "join: turn 1 at {t1}, subagent ended {sa1_end}"
    );
    // The recorded 500 s gap is cut to the 10 s system idle cap.
    let gap = t2 - t1_end;
    assert!((9.5..11.0).contains(&gap), "idle gap {gap}");
    // Turn 2 is sent with the whole conversation: ISL grows with each turn.
    let isl = |turn: u64| {
        recs.iter()
            .find(|r| {
                r["metadata"]["conversation_id"] == "hand" && r["metadata"]["turn_index"] == turn
            })
            .unwrap()["metrics"]["input_sequence_length"]["value"]
            .as_u64()
            .unwrap()
    };
    assert!(isl(0) >= 256 && isl(1) >= 384 && isl(2) >= 448 && isl(2) > isl(1));
}

/// Interleaved top-level streams split into sibling conversations (AIPerf's flattened-agent
/// detection), each dispatched at its recorded offset from its spawn group; the
/// `AIPERF_DATASET_WEKA_*` knobs and `--no-split-flattened-agents` are honoured.
#[test]
fn flattened_agents_replay_as_siblings() {
    let d = tempfile::tempdir().unwrap();
    let trace = r#"{"id":"flat","block_size":64,"tool_tokens":0,"system_tokens":64,"requests":[
{"t":0,"type":"n","model":"m","in":192,"out":8,"hash_ids":[0,1,2],"api_time":0.1},
{"t":0.5,"type":"n","model":"m","in":256,"out":8,"hash_ids":[0,1,50,51],"api_time":0.5},
{"t":0.8,"type":"n","model":"m","in":256,"out":8,"hash_ids":[0,1,60,61],"api_time":0.5},
{"t":3.0,"type":"n","model":"m","in":256,"out":8,"hash_ids":[0,1,2,3],"api_time":0.1}]}"#
        .replace('\n', "");
    let traces = d.path().join("flat.jsonl");
    std::fs::write(&traces, trace + "\n").unwrap();
    let s = sim(fast_sim(100_000));
    let run = |name: &str, extra: &[&str], env: &[(&str, &str)]| {
        let out = d.path().join(name);
        let mut args = vec![
            "--concurrency",
            "1",
            "--benchmark-duration",
            "4",
            "--warmup-requests-per-lane",
            "0",
            "--trajectory-start-min-ratio",
            "0",
            "--trajectory-start-max-ratio",
            "0",
            "--min-metric-coverage",
            "0",
        ];
        args.extend_from_slice(extra);
        let o = replay(
            &s.handle.url(),
            &traces.display().to_string(),
            &out,
            &args,
            env,
        );
        assert!(o.status.success(), "{}", text(&o));
        records(&out)
    };
    let first_play = |recs: &[Value]| {
        let mut v: Vec<(String, u64, f64, f64)> = recs
            .iter()
            .filter(|r| r["metadata"]["session_num"] == 0)
            .map(|r| {
                let m = &r["metadata"];
                let s = |k: &str| m[k].as_u64().unwrap() as f64 / 1e9;
                (
                    m["conversation_id"].as_str().unwrap().to_string(),
                    m["turn_index"].as_u64().unwrap(),
                    s("request_start_ns"),
                    s("request_end_ns"),
                )
            })
            .collect();
        v.sort_by(|a, b| a.2.total_cmp(&b.2));
        // The first play only (the lane recycles the trace until the window ends).
        let again = v.iter().skip(1).position(|x| x.0 == "flat" && x.1 == 0);
        v.truncate(again.map_or(v.len(), |p| p + 1));
        v
    };
    // One-request chains with small inputs are sidecars (`::aux:`) by default; with
    // AUX_MAX_REQUESTS=0 they stay agents (`::fa:`).
    let recs = run(
        "split",
        &[],
        &[("AIPERF_DATASET_WEKA_AUX_MAX_REQUESTS", "0")],
    );
    let v = first_play(&recs);
    let names: Vec<(&str, u64)> = v.iter().map(|x| (x.0.as_str(), x.1)).collect();
    assert_eq!(
        names,
        [
            ("flat", 0),
            ("flat::fa:000", 0),
            ("flat::fa:001", 0),
            ("flat", 1)
        ],
        "{v:?}"
    );
    // Both chains hang off turn 0 and join turn 1 (one spawn group starting at 0.5 s):
    // A is dispatched when turn 0 completes, B 0.8 − 0.5 = 0.3 s later. (B overlaps A;
    // had it started when A ended it would have been A's compaction seam.)
    let t0_end = v[0].3;
    assert!(
        (v[1].2 - t0_end).abs() < 0.15,
        "A offset {}",
        v[1].2 - t0_end
    );
    assert!(
        (v[2].2 - t0_end - 0.3).abs() < 0.15,
        "B offset {}",
        v[2].2 - t0_end
    );
    assert!(v[3].2 >= v[1].3.max(v[2].3), "turn 1 waits for both chains");
    let recs = run("aux", &[], &[]);
    let mut convs: Vec<String> = first_play(&recs).into_iter().map(|x| x.0).collect();
    convs.dedup();
    assert_eq!(convs, ["flat", "flat::aux:000", "flat::aux:001", "flat"]);
    // Detection off: one conversation in file order.
    for (name, extra, env) in [
        ("off", &["--no-split-flattened-agents"][..], &[][..]),
        (
            "off-env",
            &[][..],
            &[("AIPERF_DATASET_WEKA_SPLIT_FLATTENED_AGENTS", "false")][..],
        ),
    ] {
        let v = first_play(&run(name, extra, env));
        let names: Vec<(&str, u64)> = v.iter().map(|x| (x.0.as_str(), x.1)).collect();
        assert_eq!(
            names,
            [("flat", 0), ("flat", 1), ("flat", 2), ("flat", 3)],
            "{name}"
        );
    }
}

/// Headers of every request a recording server received.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<BTreeMap<String, String>>>>;

/// A chat server that records each request's headers (lower-cased names) and answers with a
/// two-token SSE stream and its usage; one thread per connection, `Connection: close`.
fn header_recorder() -> (String, Seen) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let s = s.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let mut h = BTreeMap::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        h.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let n: usize = h.get("content-length").map_or(0, |v| v.parse().unwrap());
                let mut body = vec![0; n];
                r.read_exact(&mut body).unwrap();
                s.lock().unwrap().push(h);
                let chunk = |c: &str| {
                    format!(
                        "data: {{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{c}\"}}}}]}}\n\n"
                    )
                };
                let sse = chunk("ok") + &chunk(" ok")
                    + "data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,\"total_tokens\":12}}\n\ndata: [DONE]\n\n";
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{sse}",
                    sse.len()
                );
            });
        }
    });
    (url, seen)
}

/// The optional routing headers (agentic.md §3.4) are off by default and, when asked for by
/// flag or by AIPerf's environment switch, carry the conversation's correlation id; children
/// carry their parent's as `X-Dynamo-Parent-Session-ID`.
#[test]
fn routing_headers_on_request() {
    let d = tempfile::tempdir().unwrap();
    let trace = r#"{"id":"hdr","block_size":64,"tool_tokens":0,"system_tokens":64,"requests":[
{"t":0,"type":"n","model":"m","in":192,"out":2,"hash_ids":[0,1,2],"api_time":0.1},
{"t":0.2,"type":"n","model":"m","in":256,"out":2,"hash_ids":[0,1,50,51],"api_time":0.3},
{"t":0.3,"type":"subagent","agent_id":"s1","duration_ms":300,"requests":[
  {"t":0.3,"type":"n","model":"m","in":128,"out":2,"hash_ids":[0,90],"api_time":0.2}]},
{"t":1.0,"type":"n","model":"m","in":256,"out":2,"hash_ids":[0,1,2,3],"api_time":0.1}]}"#
        .replace('\n', "");
    let traces = d.path().join("hdr.jsonl");
    std::fs::write(&traces, trace + "\n").unwrap();
    let run = |name: &str, extra: &[&str], env: &[(&str, &str)]| {
        let (url, seen) = header_recorder();
        let out = d.path().join(name);
        let mut args = vec![
            "--concurrency",
            "1",
            "--benchmark-duration",
            "2",
            "--warmup-requests-per-lane",
            "0",
            "--trajectory-start-min-ratio",
            "0",
            "--trajectory-start-max-ratio",
            "0",
            "--min-metric-coverage",
            "0",
        ];
        args.extend_from_slice(extra);
        let o = replay(&url, &traces.display().to_string(), &out, &args, env);
        assert!(o.status.success(), "{}", text(&o));
        // Correlation id → conversation, from the records.
        let conv: BTreeMap<String, String> = records(&out)
            .iter()
            .map(|r| {
                let m = &r["metadata"];
                (
                    m["x_correlation_id"].as_str().unwrap().to_string(),
                    m["conversation_id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let seen = seen.lock().unwrap().clone();
        (seen, conv)
    };
    let (seen, _) = run("plain", &[], &[]);
    assert!(!seen.is_empty());
    for h in &seen {
        assert!(h.contains_key("x-correlation-id"), "{h:?}");
        for k in [
            "x-smg-routing-key",
            "x-session-id",
            "x-dynamo-session-id",
            "x-dynamo-parent-session-id",
        ] {
            assert!(!h.contains_key(k), "{k} sent by default: {h:?}");
        }
    }
    let (seen, conv) = run(
        "routed",
        &["--x-smg-routing-key", "--x-dynamo-session-id"],
        &[("AIPERF_HTTP_X_SESSION_ID_FROM_CORRELATION_ID", "true")],
    );
    let root_x: Vec<&String> = conv
        .iter()
        .filter(|(_, c)| *c == "hdr")
        .map(|(x, _)| x)
        .collect();
    let mut kinds = BTreeSet::new();
    for h in &seen {
        let x = &h["x-correlation-id"];
        for k in ["x-smg-routing-key", "x-session-id", "x-dynamo-session-id"] {
            assert_eq!(h.get(k), Some(x), "{k}: {h:?}");
        }
        let Some(c) = conv.get(x) else { continue };
        let child = c.contains("::");
        kinds.insert(c.split_once("::").map_or("root", |p| &p.1[..2]).to_string());
        match h.get("x-dynamo-parent-session-id") {
            Some(p) => assert!(child && root_x.contains(&p), "{c}: parent {p}"),
            None => assert!(!child, "{c} lacks its parent header"),
        }
    }
    assert_eq!(
        kinds,
        BTreeSet::from(["root".into(), "sa".into(), "au".into()]),
        "root, subagent and split-off sidecar requests were all checked"
    );
}

/// Our loader splits traces into the same conversations, with the same requests in the same
/// order, as AIPerf's Weka loader did on the same file (recorded by running it; see
/// tests/fixtures/agentic/topology/README.md).
#[test]
fn topology_matches_aiperf() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agentic/topology");
    let text = std::fs::read_to_string(dir.join("input.jsonl")).unwrap();
    let want: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let traces = infmax::client::agentic::trace::parse_jsonl(&text, "input.jsonl").unwrap();
    assert_eq!(traces.len(), want["traces"].as_object().unwrap().len());
    let mut kinds = BTreeSet::new();
    for tr in &traces {
        let mut got: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let convs = std::iter::once(&tr.root).chain(tr.root.branches.iter().map(|b| &b.child));
        for c in convs {
            let id = format!("{}{}", tr.id, c.suffix);
            kinds.extend(
                c.suffix
                    .rsplit("::")
                    .next()
                    .and_then(|s| s.get(..3))
                    .map(String::from),
            );
            got.insert(id, c.turns.iter().map(|t| t.t).collect());
        }
        let exp: BTreeMap<String, Vec<f64>> =
            serde_json::from_value(want["traces"][&tr.id].clone()).unwrap();
        assert_eq!(got, exp, "trace {}", tr.id);
    }
    for k in ["fa:", "wg:", "aux", "sa:"] {
        assert!(kinds.contains(k), "{k} covered: {kinds:?}");
    }
}
