//! The 2026 schema (InferenceX `configs/` at 843c6254f): every rule of its `validation.py`
//! and of its generator's run-time checks, each with a bad file and the error we print
//! (entry key and field path, or `file:line:col` for what the parser rejects); rows of every
//! kind through `runner check`; flag combinations the reference refuses.

use crate::util::{fixture, scheduler, write};
use std::path::Path;

const BASE: &str = "sn:
  image: img:1
  model: org/m
  model-prefix: m
  precision: fp8
  framework: sglang
  runner: cluster:h200-dgxc
  multinode: false
  scenarios:
    fixed-seq-len:
    - isl: 1024
      osl: 1024
      search-space:
      - { tp: 8, conc-start: 4, conc-end: 16 }
    agentic-coding:
    - dram-utilization: 0.8
      search-space:
      - { tp: 8, kv-offloading: none, conc-list: [1, 2] }
      - { tp: 4, kv-offloading: dram, kv-offload-backend: { name: hicache }, conc-list: [8] }
mn:
  image: img:2
  model: org/m
  model-prefix: m
  precision: fp4
  framework: dynamo-sglang
  runner: cluster:gb200-nv
  multinode: true
  disagg: true
  kv-p2p-transfer: nixl
  scenarios:
    fixed-seq-len:
    - isl: 8192
      osl: 1024
      search-space:
      - conc-list: [16, 32]
        prefill: { num-worker: 1, tp: 4, ep: 4, dp-attn: true }
        decode: { num-worker: 1, tp: 8, ep: 8, dp-attn: false }
    agentic-coding:
    - dram-utilization: 0.8
      search-space:
      - conc-list: [32, 64]
        kv-offloading: dram
        kv-offload-backend: { name: hicache }
        prefill: { num-worker: 1, tp: 4, ep: 1, dp-attn: false }
        decode: { num-worker: 1, tp: 4, ep: 1, dp-attn: false }
";

fn runners() -> String {
    fixture("inferencex-2026-08/runners.yaml")
        .display()
        .to_string()
}

/// Run `scheduler <cmd> --config-files <text> --runner-config <2026 runners> <extra>` in a
/// temp dir: (success, stdout, stderr, file name).
fn run(text: &str, cmd: &[&str], extra: &[&str]) -> (bool, String, String, String) {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "m.yaml", text);
    let r = runners();
    let mut args: Vec<&str> = cmd.to_vec();
    args.extend(["--config-files", &f, "--runner-config", &r]);
    args.extend(extra);
    let out = scheduler(&args, None);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        f,
    )
}

fn expand_err(text: &str) -> (String, String) {
    let (ok, _, err, f) = run(text, &["expand"], &[]);
    assert!(!ok, "expected an error for:\n{text}");
    (err.trim().to_string(), f)
}

/// Apply each (from, to) edit to BASE and expect `error: <file>: entry `<entry>`: <tail>`.
fn rule_cases(cases: &[(&str, &str, &str, &str)]) {
    for (from, to, entry, tail) in cases {
        assert!(BASE.contains(from), "BASE lacks {from:?}");
        let (e, f) = expand_err(&BASE.replacen(from, to, 1));
        let want = format!("error: {f}: entry `{entry}`: {tail}");
        assert_eq!(e, want, "{from:?} -> {to:?}");
    }
}

#[test]
fn base_file_is_valid_and_expands_every_kind() {
    let (ok, out, err, _) = run(BASE, &["expand"], &[]);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kinds: Vec<(bool, bool)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r.get("scenario-type").is_some(), r.get("prefill").is_some()))
        .collect();
    // 3 fixed single (4, 8, 16), 3 agentic single (1, 2, 8), 1 fixed multinode, 2 agentic
    // multinode (one per concurrency).
    assert_eq!(
        kinds,
        [
            (false, false),
            (false, false),
            (false, false),
            (true, false),
            (true, false),
            (true, false),
            (false, true),
            (true, true),
            (true, true)
        ]
    );
    let r = rows.as_array().unwrap();
    // h200-dgxc: 1_471_356 MiB × 2^20 × 0.8 × 4/8 / 1e9 = 617.
    assert_eq!(r[5]["total-cpu-dram-gb"], 617);
    assert_eq!(r[5]["exp-name"], "m_tp4_conc8_kvdram-hicache");
    assert_eq!(r[3]["exp-name"], "m_tp8_conc1_kvnone");
    // gb200-nv: 860_160 MiB, 4 GPUs/node, prefill tp4 fills a node: 860160·2^20·0.8/1e9.
    assert_eq!(r[7]["total-cpu-dram-gb"], 721);
    assert_eq!(r[7]["exp-name"], "m_p1x4_d1x4_conc32_kvdram-hicache");
    assert_eq!(r[7]["conc"], serde_json::json!([32]));
    assert_eq!(r[6]["kv-p2p-transfer"], "nixl");
    assert_eq!(r[6]["eval-conc"], 32);
    assert!(r[3..6]
        .iter()
        .all(|a| a["run-eval"] == false && a["duration"] == 3600));
}

#[test]
fn entry_level_rules() {
    rule_cases(&[
        ("sn:\n", "sn*x:\n", "sn*x", ".: wildcard `*` is not allowed in master config keys (reserved for changelog patterns)"),
        ("  multinode: false\n", "", "sn", ".: missing field `multinode` (true or false)"),
        ("  multinode: false\n", "  multinode: false\n  disagg: true\n", "sn", "disagg: must be false for a single-node entry (`multinode: false`)"),
        ("  multinode: false\n", "  multinode: false\n  kv-p2p-transfer: nixl\n", "sn", "kv-p2p-transfer: extra field for a single-node entry: kv-p2p-transfer is only valid when multinode=true"),
        ("  multinode: false\n", "  multinode: false\n  router: { name: r, version: \"image:x\" }\n", "sn", "router.version: component version must be a release, package version, or source commit, not an image reference"),
        ("  multinode: false\n", "  multinode: false\n  router: { name: r }\n", "sn", "router: missing field `version`"),
        ("  multinode: false\n", "  multinode: false\n  router: { name: \"\", version: \"1\" }\n", "sn", "router.name: must be at least 1 character long"),
        ("  image: img:1\n", "  image: \" \"\n", "sn", "image: must not be empty"),
        ("  runner: cluster:h200-dgxc\n", "  runner: h200\n", "sn", "runner: agentic master configs must use a `cluster:<name>` runner so every point runs on one exact hardware fleet (got `h200`)"),
        ("  kv-p2p-transfer: nixl\n", "", "mn", "kv-p2p-transfer: disagg=true requires kv-p2p-transfer at the top level or in every search-space entry"),
        ("  kv-p2p-transfer: nixl\n", "  kv-p2p-transfer: \"\"\n", "mn", "kv-p2p-transfer: must be at least 1 character long"),
        ("      - conc-list: [16, 32]\n", "      - conc-list: [16, 32]\n        kv-p2p-transfer: nixl\n", "mn", "kv-p2p-transfer: kv-p2p-transfer must be declared either at the top level or in search-space entries, not both"),
    ]);
    // Router at both levels.
    let t = BASE
        .replacen(
            "  kv-p2p-transfer: nixl\n",
            "  kv-p2p-transfer: nixl\n  router: { name: r, version: \"1\" }\n",
            1,
        )
        .replacen(
            "      - conc-list: [16, 32]\n",
            "      - conc-list: [16, 32]\n        router: { name: r, version: \"2\" }\n",
            1,
        );
    let (e, f) = expand_err(&t);
    assert_eq!(e, format!("error: {f}: entry `mn`: router: router must be declared either at the top level or in search-space entries, not both"));
    // No scenario at all.
    let t = BASE.replacen(
        "  scenarios:\n    fixed-seq-len:\n    - isl: 1024\n",
        "  scenarios:\n    x-fixed:\n    - isl: 1024\n",
        1,
    );
    let (e, f) = expand_err(&t);
    assert!(
        e.starts_with(&format!(
            "error: {f}:10:5: sn.scenarios.x-fixed: unknown field `x-fixed`"
        )),
        "{e}"
    );
    let only = "e:\n  image: i\n  model: m\n  model-prefix: p\n  precision: fp8\n  framework: f\n  runner: r\n  multinode: false\n  scenarios: { fixed-seq-len: [] }\n";
    let (e, f) = expand_err(only);
    assert_eq!(e, format!("error: {f}: entry `e`: scenarios: at least one scenario type (fixed-seq-len or agentic-coding) must be specified"));
    // A single-node entry's agentic item may not name a KV transfer.
    let t = BASE.replacen(
        "kv-offloading: none, conc-list: [1, 2] }",
        "kv-offloading: none, conc-list: [1, 2], kv-p2p-transfer: nixl }",
        1,
    );
    let (e, f) = expand_err(&t);
    assert_eq!(
        e,
        format!(
            "error: {f}: entry `sn`: scenarios: kv-p2p-transfer is only valid when multinode=true"
        )
    );
}

#[test]
fn fixed_seq_len_item_rules() {
    let item = "{ tp: 8, conc-start: 4, conc-end: 16 }";
    let p = "scenarios.fixed-seq-len[0].search-space[0]";
    let cases: Vec<(String, String)> = vec![
        ("{ conc-start: 4, conc-end: 16 }".into(), format!("{p}: missing field `tp`")),
        ("{ tp: 8, pp: 0, conc-start: 4, conc-end: 16 }".into(), format!("{p}.pp: must be greater than 0")),
        ("{ tp: 8, dcp-size: 0, conc-start: 4, conc-end: 16 }".into(), format!("{p}.dcp-size: must be greater than 0")),
        ("{ tp: 8, pcp-size: 0, conc-start: 4, conc-end: 16 }".into(), format!("{p}.pcp-size: must be greater than 0")),
        ("{ tp: 8, dcp-size: 3, conc-start: 4, conc-end: 16 }".into(), format!("{p}.dcp-size: 'tp' (8) must be divisible by 'dcp-size' (3)")),
        ("{ tp: 8, spec-decoding: eagle, conc-start: 4, conc-end: 16 }".into(), format!("{p}.spec-decoding: `eagle` is not one of 'mtp', 'draft_model', 'none'")),
        ("{ tp: 8, conc-start: 4, conc-end: 16, conc-list: [4] }".into(), format!("{p}.conc-list: cannot specify both 'conc-list' list and 'conc-start'/'conc-end'. Use either a list or a range, not both.")),
        ("{ tp: 8 }".into(), format!("{p}: must specify either 'conc-list' list or both 'conc-start' and 'conc-end'.")),
        ("{ tp: 8, conc-start: 4 }".into(), format!("{p}: must specify either 'conc-list' list or both 'conc-start' and 'conc-end'.")),
        ("{ tp: 8, conc-list: [] }".into(), format!("{p}: must specify either 'conc-list' list or both 'conc-start' and 'conc-end'.")),
        ("{ tp: 8, conc-start: 0, conc-end: 16 }".into(), format!("{p}.conc-start: 'conc-start' and 'conc-end' must be greater than 0.")),
        ("{ tp: 8, conc-start: 32, conc-end: 16 }".into(), format!("{p}.conc-end: 'conc-start' (32) must be <= 'conc-end' (16).")),
        ("{ tp: 8, conc-list: [4, 0] }".into(), format!("{p}.conc-list: 'conc-list' entries must be greater than 0.")),
        ("{ tp: 8, kv-p2p-transfer: nixl, conc-list: [4] }".into(), format!("{p}.kv-p2p-transfer: extra field not permitted in a single-node fixed-seq-len search-space entry")),
        ("{ tp: 8, kv-offloading: none, conc-list: [4] }".into(), format!("{p}.kv-offloading: extra field not permitted in a fixed-seq-len search-space entry")),
        ("{ tp: 8, prefill: { num-worker: 1, tp: 4, ep: 1, dp-attn: false }, conc-list: [4] }".into(), format!("{p}.prefill: extra field not permitted in a single-node fixed-seq-len search-space entry")),
        ("{ tp: 0, conc-list: [4] }".into(), format!("{p}.tp: must be at least 1")),
        ("{ tp: 8, router: { name: r, version: \"image:v1\" }, conc-list: [4] }".into(), format!("{p}.router.version: component version must be a release, package version, or source commit, not an image reference")),
    ];
    for (to, tail) in cases {
        let (e, f) = expand_err(&BASE.replacen(item, &to, 1));
        assert_eq!(e, format!("error: {f}: entry `sn`: {tail}"), "{to}");
    }
    // A string where a number belongs: the parser's location and path.
    let (e, f) = expand_err(&BASE.replacen("{ tp: 8, conc-start", "{ tp: x, conc-start", 1));
    assert_eq!(e, format!("error: {f}:14:15: sn.scenarios.fixed-seq-len[0].search-space[0].tp: invalid type: string \"x\", expected u32"));
    let (e, f) =
        expand_err(&BASE.replacen("{ tp: 8, conc-start", "{ tp: 8, foo: 1, conc-start", 1));
    assert!(
        e.starts_with(&format!("error: {f}:14:")) && e.contains("unknown field `foo`"),
        "{e}"
    );
}

#[test]
fn multinode_worker_rules() {
    let pre = "prefill: { num-worker: 1, tp: 4, ep: 4, dp-attn: true }";
    let p = "scenarios.fixed-seq-len[0].search-space[0]";
    for (to, tail) in [
        (
            "prefill: { num-worker: 1, tp: 4, ep: 4, dp-attn: true, pp: 0 }",
            format!("{p}.prefill.pp: must be greater than 0"),
        ),
        (
            "prefill: { num-worker: 1, tp: 4, ep: 4, dp-attn: true, dcp-size: 3 }",
            format!("{p}.prefill.dcp-size: 'tp' (4) must be divisible by 'dcp-size' (3)"),
        ),
        (
            "prefill: { num-worker: 1, tp: 4, ep: 4, dp-attn: true, hardware: gb200 }",
            format!(
                "{p}: 'hardware' must be specified for both 'prefill' and 'decode', or neither"
            ),
        ),
        (
            "prefill: { num-worker: 1, tp: 4, ep: 4, dp-attn: true, hardware: \"\" }",
            format!("{p}.prefill.hardware: must be at least 1 character long"),
        ),
        (
            "tp: 4\n        prefill: { num-worker: 1, tp: 4, ep: 4, dp-attn: true }",
            format!(
                "{p}.tp: extra field not permitted in a multinode fixed-seq-len search-space entry"
            ),
        ),
    ] {
        let (e, f) = expand_err(&BASE.replacen(pre, to, 1));
        assert_eq!(e, format!("error: {f}: entry `mn`: {tail}"), "{to}");
    }
    let (e, f) = expand_err(&BASE.replacen(&format!("        {pre}\n"), "", 1));
    assert_eq!(e, format!("error: {f}: entry `mn`: {p}: missing field `prefill`/`decode`: multinode entries run prefill and decode workers"));
    let (e, f) =
        expand_err(&BASE.replacen(pre, "prefill: { num-worker: 1, tp: 4, dp-attn: true }", 1));
    assert!(e.starts_with(&format!("error: {f}:36:18: mn.scenarios.fixed-seq-len[0].search-space[0].prefill: missing field `ep`")), "{e}");
    let (e, f) = expand_err(&BASE.replacen(
        pre,
        "prefill: { num-worker: 1, tp: 4, ep: 4, dp-attn: true, batch: 2 }",
        1,
    ));
    assert!(
        e.starts_with(&format!("error: {f}:36:")) && e.contains("prefill: unknown field `batch`"),
        "{e}"
    );
}

#[test]
fn agentic_rules() {
    let sn =
        "{ tp: 4, kv-offloading: dram, kv-offload-backend: { name: hicache }, conc-list: [8] }";
    let p = "scenarios.agentic-coding[0].search-space[1]";
    for (to, tail) in [
        ("{ tp: 4, kv-offloading: disk, kv-offload-backend: { name: hicache }, conc-list: [8] }", format!("{p}.kv-offloading: `disk` is not one of 'none', 'dram'")),
        ("{ tp: 4, kv-offload-backend: { name: hicache }, conc-list: [8] }", format!("{p}.kv-offload-backend: kv-offload-backend requires kv-offloading")),
        ("{ tp: 4, kv-offloading: none, kv-offload-backend: { name: hicache }, conc-list: [8] }", format!("{p}.kv-offload-backend: kv-offload-backend can only be set when kv-offloading is not 'none'")),
        ("{ tp: 4, kv-offloading: dram, conc-list: [8] }", format!("{p}.kv-offload-backend: kv-offload-backend is required when kv-offloading is 'dram'")),
        ("{ tp: 4, kv-offloading: dram, kv-offload-backend: { name: hicache, version: \"image:lmsys\" }, conc-list: [8] }", format!("{p}.kv-offload-backend.version: component version must be a release, package version, or source commit, not an image reference")),
        ("{ tp: 4, kv-offloading: dram, kv-offload-backend: { name: \"\" }, conc-list: [8] }", format!("{p}.kv-offload-backend.name: must be at least 1 character long")),
        ("{ tp: 4, conc-list: [8] }", format!("{p}: single-node agentic search-space entries must specify kv-offloading")),
        ("{ kv-offloading: none, conc-list: [8] }", format!("{p}: agentic search-space entries must specify either tp or both prefill and decode")),
        ("{ tp: 4, kv-offloading: none, prefill: { num-worker: 1, tp: 4, ep: 1, dp-attn: false }, conc-list: [8] }", format!("{p}: agentic search-space entries must specify either tp or both prefill and decode")),
        ("{ tp: 4, dcp-size: 3, kv-offloading: none, conc-list: [8] }", format!("{p}.dcp-size: 'tp' (4) must be divisible by 'dcp-size' (3)")),
        ("{ tp: 4, pp: 0, kv-offloading: none, conc-list: [8] }", format!("{p}.pp: must be greater than 0")),
        ("{ tp: 4, kv-offloading: none, conc-start: 8, conc-end: 4 }", format!("{p}.conc-end: 'conc-start' (8) must be <= 'conc-end' (4).")),
        ("{ tp: 4, kv-offloading: none, spec-decoding: eagle3, conc-list: [8] }", format!("{p}.spec-decoding: `eagle3` is not one of 'mtp', 'draft_model', 'none'")),
        ("{ kv-offloading: none, prefill: { num-worker: 1, tp: 4, ep: 1, dp-attn: false }, decode: { num-worker: 1, tp: 4, ep: 1, dp-attn: false }, conc-list: [8] }", format!("{p}.prefill: `prefill`/`decode` workers need `multinode: true` on the entry")),
    ] {
        let (e, f) = expand_err(&BASE.replacen(sn, to, 1));
        assert_eq!(e, format!("error: {f}: entry `sn`: {tail}"), "{to}");
    }
    let ap = "scenarios.agentic-coding[0]";
    for (from, to, entry, tail) in [
        ("    - dram-utilization: 0.8\n      search-space:\n      - { tp: 8", "    - dram-utilization: 0\n      search-space:\n      - { tp: 8", "sn", format!("{ap}.dram-utilization: must be greater than 0 and at most 1 (got 0)")),
        ("    - dram-utilization: 0.8\n      search-space:\n      - { tp: 8", "    - dram-utilization: 1.5\n      search-space:\n      - { tp: 8", "sn", format!("{ap}.dram-utilization: must be greater than 0 and at most 1 (got 1.5)")),
        ("    - dram-utilization: 0.8\n      search-space:\n      - { tp: 8", "    - search-space:\n      - { tp: 8", "sn", format!("{ap}.dram-utilization: required: search-space[1] has kv-offloading='dram', whose budget is dram-utilization of the runner's CPU DRAM")),
        ("      - conc-list: [32, 64]\n", "      - conc-list: [32, 64]\n        pp: 2\n", "mn", format!("{ap}.search-space[0]: multinode agentic search-space entries cannot specify 'pp', 'dcp-size', 'pcp-size' (found 'pp')")),
        ("      - conc-list: [32, 64]\n", "      - conc-list: [32, 64]\n        tp: 4\n", "mn", format!("{ap}.search-space[0]: agentic search-space entries must specify either tp or both prefill and decode")),
        ("        decode: { num-worker: 1, tp: 4, ep: 1, dp-attn: false }\n", "        decode: { num-worker: 1, tp: 4, ep: 1, dp-attn: false, hardware: gb200 }\n", "mn", format!("{ap}.search-space[0]: 'hardware' must be specified for both 'prefill' and 'decode', or neither")),
    ] {
        assert!(BASE.contains(from), "{from:?}");
        let (e, f) = expand_err(&BASE.replacen(from, to, 1));
        assert_eq!(e, format!("error: {f}: entry `{entry}`: {tail}"), "{to}");
    }
    // `duration` and `trace-source` are not YAML fields (CONFIGS.md documents the latter, the
    // validator refuses it).
    for key in ["duration: 600", "trace-source: x"] {
        let (e, f) = expand_err(&BASE.replacen(
            "    - dram-utilization: 0.8\n",
            &format!("    - dram-utilization: 0.8\n      {key}\n"),
            1,
        ));
        let name = key.split(':').next().unwrap();
        assert!(
            e.starts_with(&format!(
                "error: {f}:17:7: sn.scenarios.agentic-coding[0].{name}: unknown field `{name}`"
            )),
            "{e}"
        );
    }
}

#[test]
fn generation_time_rules() {
    // DRAM budgets need the runner's hardware, a topology that fits a node, and workers that
    // tile nodes.
    let (e, _) = expand_err(&BASE.replacen("cluster:h200-dgxc", "cluster:nowhere", 1));
    assert!(e.contains("entry `sn`: runner 'cluster:nowhere' requires 'available-cpu-dram-mib' in runner hardware metadata. Available hardware keys: b200-nscale, cluster:b200-dgxc"), "{e}");
    let (e, _) = expand_err(&BASE.replacen(
        "{ tp: 4, kv-offloading: dram",
        "{ tp: 8, pp: 2, kv-offloading: dram",
        1,
    ));
    assert!(e.ends_with("entry `sn`: tp=8 with pp=2 and pcp-size=1 requires 16 GPUs and exceeds gpus-per-node=8 for runner 'cluster:h200-dgxc'"), "{e}");
    let (e, _) = expand_err(&BASE.replacen(
        "        prefill: { num-worker: 1, tp: 4, ep: 1, dp-attn: false }\n",
        "        prefill: { num-worker: 1, tp: 6, ep: 1, dp-attn: false }\n",
        1,
    ));
    assert!(e.ends_with("entry `mn`: worker tp*pp*pcp-size=6 spans multiple nodes but is not a multiple of gpus-per-node=4"), "{e}");
    let (e, _) = expand_err(&BASE.replacen(
        "        prefill: { num-worker: 1, tp: 4, ep: 1, dp-attn: false }\n",
        "        prefill: { num-worker: 1, tp: 3, ep: 1, dp-attn: false }\n",
        1,
    ));
    assert!(
        e.ends_with("entry `mn`: worker tp*pp*pcp-size=3 does not divide gpus-per-node=4 evenly"),
        "{e}"
    );
}

#[test]
fn runners_file_rules() {
    let d = tempfile::tempdir().unwrap();
    let m = write(d.path(), "m.yaml", BASE);
    for (text, want) in [
        ("labels:\n  h200: []\n", "entry `h200`: .: node list is empty"),
        ("labels:\n  h200: nope\n", "r.yaml:2:9: labels.h200: invalid type: string \"nope\", expected a sequence"),
        ("labels:\n  h200: [a]\nhardware:\n  h200: { gpus-per-node: 8 }\n", "r.yaml:4:9: hardware.h200: missing field `available-cpu-dram-mib`"),
        ("labels:\n  h200: [a]\nhardware:\n  h200: { available-cpu-dram-mib: 1, gpus-per-node: 0 }\n", "entry `h200`: hardware.h200.gpus-per-node: must be greater than 0"),
        ("labels:\n  h200: [a]\nhardware:\n  h200: { available-cpu-dram-mib: 1, gpus-per-node: 8, cpus: 2 }\n", "r.yaml:4:56: hardware.h200.cpus: unknown field `cpus`"),
        ("labels:\n  h200: [a]\nextra: 1\n", "r.yaml:3:1: extra: unknown field `extra`"),
    ] {
        let r = write(d.path(), "r.yaml", text);
        let out = scheduler(&["expand", "--config-files", &m, "--runner-config", &r], None);
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && e.contains(want), "{text:?}: {e}");
        let _ = Path::new(&r);
    }
}

#[test]
fn flags_the_reference_refuses() {
    for (cmd, extra, want) in [
        (
            &["expand"][..],
            &["--seq-lens", "1k8k"][..],
            "invalid choice '1k8k' for 2026 configs",
        ),
        (
            &["expand"][..],
            &["--test-mode"][..],
            "--test-mode belongs to the Nov-2025 generator",
        ),
        (
            &["expand"][..],
            &["--step-size", "1"][..],
            "--step-size must be at least 2",
        ),
        (
            &["expand"][..],
            &["--min-conc", "8", "--max-conc", "4"][..],
            "--min-conc 8 is above --max-conc 4",
        ),
        (
            &["expand"][..],
            &["--runner-type", "h999"][..],
            "unknown runner type `h999`",
        ),
        (
            &["expand"][..],
            &["--all-evals", "--no-evals"][..],
            "cannot be used with",
        ),
        (
            &["test-config", "--config-keys", "nope"][..],
            &[][..],
            "config key(s) not found: nope. Available keys: mn, sn",
        ),
        (
            &["test-config", "--config-keys", "x*"][..],
            &[][..],
            "pattern 'x*' matched no config keys. Available keys: mn, sn",
        ),
    ] {
        let (ok, _, err, _) = run(BASE, cmd, extra);
        assert!(!ok && err.contains(want), "{cmd:?} {extra:?}: {err}");
    }
    // Mixing a Nov-2025 file with a 2026 one.
    let d = tempfile::tempdir().unwrap();
    let b = write(d.path(), "b.yaml", BASE);
    let a = crate::util::imax("amd-master.yaml");
    let out = scheduler(&["expand", "--config-files", &a, &b], None);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("uses the Nov-2025 schema (`seq-len-configs`) but")
            && e.contains("expand them separately"),
        "{e}"
    );
    // 2026-only flags on a Nov-2025 file.
    let out = scheduler(
        &[
            "expand",
            "--config-files",
            &a,
            "--scenario-type",
            "agentic-coding",
        ],
        None,
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("--scenario-type only apply to 2026 (schema-B) configs"),
        "{e}"
    );
    // A schema-B entry inside a schema-A file.
    let mixed = format!(
        "{}{}",
        std::fs::read_to_string(crate::util::imax("amd-master.yaml")).unwrap(),
        BASE.split("mn:\n").next().unwrap().replace("sn:", "sn2:")
    );
    let m = write(d.path(), "mixed.yaml", &mixed);
    let out = scheduler(&["expand", "--config-files", &m], None);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("entry `sn2`: scenarios: mixes schemas"), "{e}");
}

/// Every kind of 2026 row round-trips through `runner check` (parsed, validated, printed).
#[test]
fn rows_of_every_kind_parse_and_validate() {
    let (ok, out, err, _) = run(BASE, &["expand"], &["--fingerprint"]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let d = tempfile::tempdir().unwrap();
    for (i, r) in rows.iter().enumerate() {
        let f = write(d.path(), &format!("row{i}.json"), &r.to_string());
        // On the sim profile: this config's model has no launch template in benchmarks/.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["check", "--config", &f, "--profile", "sim"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "row {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let back: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(&back, r, "row {i}");
    }
    // Bad rows: a broken fingerprint, an offload backend with offloading off, a disaggregated
    // row without a transfer library.
    let agentic = rows
        .iter()
        .find(|r| r["scenario-type"] == "agentic-coding" && r.get("prefill").is_none())
        .unwrap();
    let multi = rows
        .iter()
        .find(|r| r.get("prefill").is_some() && r.get("scenario-type").is_none())
        .unwrap();
    for (row, edit, want) in [
        (agentic, ("recipe-fingerprint", serde_json::json!("XYZ")), "recipe-fingerprint: must be 64 lowercase hex digits"),
        (agentic, ("kv-offload-backend", serde_json::json!({"name": "hicache"})), "kv-offload-backend: kv-offload-backend can only be set when kv-offloading is not 'none'"),
        (multi, ("kv-p2p-transfer", serde_json::Value::Null), "kv-p2p-transfer: disagg=true requires kv-p2p-transfer"),
    ] {
        let mut r = row.clone();
        if edit.1.is_null() {
            r.as_object_mut().unwrap().remove(edit.0);
        } else {
            r[edit.0] = edit.1;
        }
        let f = write(d.path(), "bad.json", &r.to_string());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["check", "--config", &f])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && e.contains(want), "{e}");
    }
    // `runner exec` refuses multinode rows with a clear message (exit 10: config stage).
    let f = write(d.path(), "multi.json", &multi.to_string());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["exec", "--config", &f, "--dry-run"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(10), "{e}");
    assert!(
        e.contains("multinode fixed-seq-len row") && e.contains("no multinode launch yet"),
        "{e}"
    );
}

/// `scheduler diff` on 2026 files: an edited agentic block reruns only that block, in the
/// `single_node.agentic` bucket sweep-2026.yml dispatches; an unchanged file plans nothing.
#[test]
fn diff_buckets_changed_2026_rows() {
    use crate::util::{commit, git};
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    git(repo, &["init", "-q"]);
    write(repo, "m.yaml", BASE);
    let base = commit(repo, "base");
    write(
        repo,
        "m.yaml",
        &BASE.replacen("conc-list: [8] }", "conc-list: [8, 16] }", 1),
    );
    let head = commit(repo, "more agentic points");
    let gh_out = repo.join("gh_output");
    let r = runners();
    let diff = |b: &str, h: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_scheduler"))
            .current_dir(repo)
            .args(["diff", "--base", b, "--head", h, "--config-files", "m.yaml"])
            .args([
                "--runner-config",
                &r,
                "--no-evals",
                "--fingerprint",
                "--buckets",
            ])
            .args(["--github-output", "rows"])
            .env("GITHUB_OUTPUT", &gh_out)
            .output()
            .unwrap()
    };
    let o = diff(&base, &head);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let agentic = b["single_node"]["agentic"].as_array().unwrap();
    // The whole changed block: its three items' points (1, 2, 8, 16), nothing fixed.
    let concs: Vec<u64> = agentic
        .iter()
        .map(|r| r["conc"].as_u64().unwrap())
        .collect();
    assert_eq!(concs, [1, 2, 8, 16]);
    assert!(agentic
        .iter()
        .all(|r| r["recipe-fingerprint"].as_str().unwrap().len() == 64));
    assert_eq!(b["single_node"].as_object().unwrap().len(), 1);
    assert!(b["multi_node"].as_object().unwrap().is_empty());
    let out = std::fs::read_to_string(&gh_out).unwrap();
    assert!(out.contains("rows_single_node_agentic<<"), "{out}");
    assert!(!out.contains("rows_single_node_1k1k"), "{out}");
    // Both points of one deployment share its fingerprint.
    assert_eq!(
        agentic[2]["recipe-fingerprint"],
        agentic[3]["recipe-fingerprint"]
    );
    assert_ne!(
        agentic[0]["recipe-fingerprint"],
        agentic[2]["recipe-fingerprint"]
    );
    let o = diff(&head, &head);
    assert!(o.status.success());
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        b["single_node"].as_object().unwrap().is_empty()
            && b["multi_node"].as_object().unwrap().is_empty()
    );
}
