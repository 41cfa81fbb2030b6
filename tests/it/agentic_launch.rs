//! Launch templates for agentic rows: InferenceX's lookup rule, the environment contract
//! (benchmarks/agentic/lib.sh, inlined before every template) and the per-backend offload
//! flags derived from TOTAL_CPU_DRAM_GB, checked by running the materialised scripts with
//! stand-in engine binaries that print their command line; and the `sim` profile's template,
//! which maps an agentic row's offload settings onto a real `runner sim`'s offload tier.

use infmax::config::row::AgenticRow;
use infmax::recipe::{self, agentic, TemplateSource};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The single-node agentic row InferenceX's generator writes (agentic.md §2.2), with edits.
fn row(edit: Value) -> AgenticRow {
    let mut v = json!({"image":"lmsysorg/sglang:dev-nightly-0820","model":"deepseek-ai/DeepSeek-V4-Pro",
        "model-prefix":"dsv4","precision":"fp4","framework":"sglang","runner":"cluster:b200-dgxc",
        "tp":8,"pp":1,"dcp-size":1,"pcp-size":1,"ep":8,"dp-attn":true,"spec-decoding":"mtp",
        "conc":96,"kv-offloading":"dram","total-cpu-dram-gb":2399,"duration":3600,
        "exp-name":"dsv4_tp8_conc96_kvdram-hicache_spec-mtp","scenario-type":"agentic-coding",
        "kv-offload-backend":{"name":"hicache"},"router":{"name":"sglang-router","version":"0.3.2"},
        "run-eval":false});
    for (k, x) in edit.as_object().unwrap() {
        if x.is_null() {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = x.clone();
        }
    }
    serde_json::from_value(v).unwrap()
}

fn benchmarks() -> PathBuf {
    crate::util::root().join("benchmarks")
}

/// Materialise the row's template with its agentic inputs, as the runner does.
fn script(r: &AgenticRow, dir: &Path) -> PathBuf {
    agentic::validate(r, "b200-dgxc_0").unwrap();
    let path = agentic::find_template(&benchmarks(), r).unwrap();
    let text = agentic::read_template(&benchmarks(), &path).unwrap();
    let inputs = agentic::AgenticJob::new(r, "b200-dgxc_0", "b200", r.duration).inputs(8123);
    let rec = recipe::materialise(
        TemplateSource::File(path),
        &text,
        inputs,
        &["bash".into()],
        &r.image,
    );
    let out = dir.join("launch.sh");
    std::fs::write(&out, rec.script).unwrap();
    out
}

/// Run a materialised script with `python3` and `vllm` replaced by stand-ins that print
/// their arguments one per line (and `extra` environment); (exit code, stdout, stderr).
fn run(script: &Path, extra: &[(&str, &str)]) -> (i32, Vec<String>, String) {
    let bin = script.parent().unwrap().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["python3", "vllm"] {
        let p = bin.join(name);
        std::fs::write(
            &p,
            "#!/usr/bin/env bash\necho \"seen: PYTHONHASHSEED=${PYTHONHASHSEED:-} MAX_MODEL_LEN=${MAX_MODEL_LEN:-}\" >&2\nprintf '%s\\n' \"$@\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash")
        .arg(script)
        .env("PATH", path)
        .env("MAX_MODEL_LEN", "9472")
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value after `flag` in an argument list.
fn after<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} not in {args:?}"));
    &args[i + 1]
}

#[test]
fn lookup_follows_inferencex_with_the_frameworkless_fallback() {
    let r = row(json!({}));
    assert_eq!(agentic::hw("cluster:b200-dgxc"), "b200");
    assert_eq!(
        agentic::template_names(&r),
        ["dsv4_fp4_b200_sglang_mtp.sh", "dsv4_fp4_b200_mtp.sh"]
    );
    assert!(agentic::find_template(&benchmarks(), &r)
        .unwrap()
        .ends_with("agentic/dsv4_fp4_b200_sglang_mtp.sh"));
    let e = agentic::find_template(&benchmarks(), &row(json!({"runner": "cluster:h100-x"})))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dsv4_fp4_h100_sglang_mtp.sh or dsv4_fp4_h100_mtp.sh"),
        "{e}"
    );
    assert!(
        e.contains("dsv4_fp4_b200_sglang_mtp.sh"),
        "lists what exists: {e}"
    );
}

#[test]
fn inputs_carry_the_workflow_contract() {
    let r = row(json!({"recipe-fingerprint": "ab".repeat(32)}));
    let env: std::collections::HashMap<String, String> =
        agentic::AgenticJob::new(&r, "b200-dgxc_0", "b200", r.duration)
            .inputs(8000)
            .into_iter()
            .collect();
    for (k, v) in [
        ("SCENARIO_TYPE", "agentic-coding"),
        ("IS_AGENTIC", "1"),
        ("SCENARIO_SUBDIR", "agentic/"),
        ("KV_OFFLOADING", "dram"),
        ("KV_OFFLOAD_BACKEND", "hicache"),
        ("KV_OFFLOAD_BACKEND_METADATA", r#"{"name":"hicache"}"#),
        ("ROUTER_METADATA", r#"{"name":"sglang-router","version":"0.3.2"}"#),
        ("TOTAL_CPU_DRAM_GB", "2399"),
        ("DURATION", "3600"),
        ("GPU_COUNT", "8"),
        ("PP_SIZE", "1"),
        ("RUNNER_TYPE", "b200"),
        ("RUNNER_NAME", "b200-dgxc_0"),
        ("PORT", "8000"),
        ("IS_MULTINODE", "false"),
        ("AIPERF_FAILED_REQUEST_THRESHOLD", "0.10"),
        (
            "RESULT_FILENAME",
            "dsv4_tp8_conc96_kvdram-hicache_spec-mtp_fp4_sglang_tp8-pp1-dcp1-pcp1-ep8-dpatrue_disagg-false_spec-mtp_conc96_b200-dgxc_0_recipe-abababababababab",
        ),
    ] {
        assert_eq!(env[k], v, "{k}");
    }
    // The workflow's zeros for the fixed-length inputs; the contract unsets MAX_MODEL_LEN
    // before the engine starts (the stand-in engines below see it empty).
    for k in ["ISL", "OSL", "MAX_MODEL_LEN"] {
        assert_eq!(env[k], "0", "{k}");
    }
    // Values that break the offload rules are refused before any script exists.
    let e = agentic::validate(&row(json!({"kv-offload-backend": null})), "r").unwrap_err();
    assert!(
        e.to_string()
            .contains("required when kv-offloading is dram"),
        "{e}"
    );
    let e = agentic::validate(&row(json!({"kv-offloading": "none"})), "r").unwrap_err();
    assert!(e.to_string().contains("must be absent"), "{e}");
    let e = agentic::validate(&row(json!({"model": "a;rm -rf /"})), "r").unwrap_err();
    assert!(e.to_string().contains("outside"), "{e}");
}

#[test]
fn sglang_hicache_and_vllm_simple_pools_come_from_the_dram_budget() {
    let d = tempfile::tempdir().unwrap();
    // DSv4 SGLang: HiCache by host/device ratio; DP attention; metrics on; MTP simulated AL.
    let (code, args, err) = run(&script(&row(json!({})), d.path()), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(after(&args, "--hicache-ratio"), "8");
    assert!(args.contains(&"--enable-hierarchical-cache".to_string()));
    assert!(
        args.contains(&"--enable-metrics".to_string())
            && args.contains(&"--enable-cache-report".to_string())
    );
    assert_eq!(after(&args, "--max-running-requests"), "192");
    assert_eq!(after(&args, "--dp"), "8");
    // Qwen3.5 SGLang: --hicache-size = (2399 − 8)·15/8/31 GB per rank.
    let d = tempfile::tempdir().unwrap();
    let q = row(
        json!({"model": "Qwen/Qwen3.5-397B-A17B-FP8", "model-prefix": "qwen3.5",
        "precision": "fp8", "dp-attn": false, "ep": 1, "conc": 16,
        "exp-name": "qwen3.5_tp8_conc16_kvdram-hicache_spec-mtp", "router": null}),
    );
    let (code, args, err) = run(&script(&q, d.path()), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        after(&args, "--hicache-size"),
        ((2399 - 8) * 15 / 8 / 31).to_string()
    );
    assert_eq!(after(&args, "--page-size"), "64");
    assert_eq!(
        after(&args, "--hicache-write-policy"),
        "write_through_selective"
    );
    assert_eq!(after(&args, "--cuda-graph-max-bs"), "16");
    // Without offloading: no cache flags.
    let d = tempfile::tempdir().unwrap();
    let none = row(
        json!({"kv-offloading": "none", "kv-offload-backend": null, "total-cpu-dram-gb": 0,
        "exp-name": "dsv4_tp8_conc96_kvnone_spec-mtp"}),
    );
    let (code, args, err) = run(&script(&none, d.path()), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!args.iter().any(|a| a.contains("hicache")), "{args:?}");
    // DSv4 vLLM: SimpleCPUOffloadConnector with 2399·10⁹/8 bytes per rank, PYTHONHASHSEED=42.
    let d = tempfile::tempdir().unwrap();
    let v = row(
        json!({"framework": "vllm", "dp-attn": false, "ep": 1, "conc": 4,
        "kv-offload-backend": {"name": "vllm-simple"}, "router": null,
        "exp-name": "dsv4_tp8_conc4_kvdram-vllm-simple_spec-mtp"}),
    );
    let (code, args, err) = run(&script(&v, d.path()), &[]);
    assert_eq!(code, 0, "{err}");
    let cfg: Value = serde_json::from_str(after(&args, "--kv-transfer-config")).unwrap();
    assert_eq!(cfg["kv_connector"], "SimpleCPUOffloadConnector");
    assert_eq!(
        cfg["kv_connector_extra_config"]["cpu_bytes_to_use_per_rank"],
        299_875_000_000u64
    );
    assert_eq!(after(&args, "--max-model-len"), "1048576");
    assert_eq!(after(&args, "--max-num-seqs"), "8");
    let spec: Value = serde_json::from_str(after(&args, "--speculative-config")).unwrap();
    assert_eq!(spec["synthetic_acceptance_length"], 2.49);
    assert!(
        err.contains("seen: PYTHONHASHSEED=42 MAX_MODEL_LEN=\n"),
        "{err}"
    );
}

#[test]
fn the_contract_stops_a_broken_environment() {
    let d = tempfile::tempdir().unwrap();
    let s = script(&row(json!({})), d.path());
    for (env, msg) in [
        (
            vec![("KV_OFFLOAD_BACKEND", "")],
            "KV_OFFLOAD_BACKEND is required",
        ),
        (
            vec![("TOTAL_CPU_DRAM_GB", "0")],
            "requires a positive TOTAL_CPU_DRAM_GB",
        ),
        (vec![("GPU_COUNT", "4")], "is not TP·PP·PCP"),
        (vec![("KV_OFFLOADING", "ssd")], "must be none or dram"),
        (vec![("IS_AGENTIC", "0")], "IS_AGENTIC must be 1"),
        (
            vec![("KV_OFFLOAD_BACKEND", "lmcache")],
            "KV_OFFLOAD_BACKEND=lmcache is not supported here",
        ),
    ] {
        // The header exports the row's values; these overrides come after it.
        let text = std::fs::read_to_string(&s).unwrap();
        let mut over = String::new();
        for (k, v) in &env {
            over.push_str(&format!("export {k}='{v}'\n"));
        }
        let patched = text.replacen(
            "# ---- template ----\n",
            &format!("{over}# ---- template ----\n"),
            1,
        );
        let p = d.path().join("patched.sh");
        std::fs::write(&p, patched).unwrap();
        let (code, args, err) = run(&p, &[]);
        assert_eq!(code, 2, "{env:?}: {err}");
        assert!(err.contains(msg), "{env:?}: {err}");
        assert!(args.is_empty(), "no engine started: {args:?}");
    }
}

#[test]
fn sim_profile_maps_the_offload_budget_onto_the_sim_tier() {
    use std::io::Read;
    let r = row(json!({"total-cpu-dram-gb": 2}));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut inputs = agentic::AgenticJob::new(&r, "sim_0", "sim", r.duration).inputs(port);
    inputs.push(("SIM_PRESET".into(), "tiny".into()));
    let rec = recipe::materialise(
        TemplateSource::Builtin("sim"),
        recipe::SIM_TEMPLATE,
        inputs,
        &["bash".into()],
        &r.image,
    );
    for k in [
        "KV_OFFLOADING",
        "TOTAL_CPU_DRAM_GB",
        "FRAMEWORK",
        "IS_AGENTIC",
    ] {
        assert!(
            rec.inputs_read.iter().any(|x| x == k),
            "{k} enters the fingerprint"
        );
    }
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("launch.sh");
    std::fs::write(&s, &rec.script).unwrap();
    let log = d.path().join("server.log");
    let mut child = Command::new("bash")
        .arg(&s)
        .env("INFMAX_RUNNER", env!("CARGO_BIN_EXE_runner"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut first = [0u8; 7];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let text = rt.block_on(async {
        reqwest::get(format!("{url}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let _ = child.kill();
    let _ = child.wait();
    // 2 GB at 35,136 bytes per token; SGLang's names for an sglang row.
    let tokens = 2_000_000_000u64 / 35_136;
    assert!(
        text.contains(&format!(
            "sglang:hicache_host_total_tokens{{model_name=\"infmax/sim\"}} {tokens}.0"
        )),
        "{text}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("max_total_num_tokens=1000000,"), "{log}");
    assert!(log.contains("context_len=1048576"), "{log}");
}

#[test]
fn dry_run_and_check_show_the_job_the_run_makes() {
    let r = row(json!({}));
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("row.json");
    std::fs::write(&f, serde_json::to_string(&r).unwrap()).unwrap();
    let runner = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(args)
            .arg("--config")
            .arg(&f)
            .args(["--benchmarks", &benchmarks().display().to_string()])
            .args([
                "--runners",
                &crate::util::root().join("runners").display().to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Without --runner-name the runner name is the label minus `cluster:` (a ':' has no
    // place in file and artifact names), the same for --dry-run, check and the run.
    let job = agentic::AgenticJob::new(&r, "b200-dgxc", "cluster:b200-dgxc", 3600);
    let rf = job.result_filename();
    assert!(rf.ends_with("_conc96_b200-dgxc"), "{rf}");
    let (dry, _) = runner(&["exec", "--dry-run"]);
    let mut want = format!("# agentic job: {rf}\n");
    for (k, v) in job.env() {
        want.push_str(&format!("{k}={}\n", recipe::shell_quote(&v)));
    }
    assert_eq!(dry, want);
    // `runner check` prints the row on stdout and its verdict on stderr.
    let (_, check) = runner(&["check", "--profile", "docker-nvidia"]);
    assert!(
        check.contains(&rf) && check.contains("agentic/dsv4_fp4_b200_sglang_mtp.sh"),
        "{check}"
    );
}
