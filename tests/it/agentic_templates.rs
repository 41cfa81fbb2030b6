//! Every single-node agentic entry the project ships (configs/2026/*-master.yaml) has a
//! launch template, and every row `scheduler expand` makes of those entries renders and runs:
//! the template resolves by InferenceX's lookup, the materialised script (header + contract +
//! template) passes shellcheck, runs to its `exec` with stand-in engines and side services
//! that record their command lines, and those command lines carry what agentic.md §5.2
//! requires for the row's offload backend, with pools inside the row's DRAM budget.
//! Multinode agentic rows are refused by `runner exec` with a message that says why.

use crate::util::{root, scheduler};
use infmax::config::row::AgenticRow;
use infmax::recipe::{self, agentic, TemplateSource};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The programs the templates run, replaced by recorders: engines, side services and the
/// host tools the templates probe (`df` answers with plenty of /dev/shm, `curl` with health).
const STANDINS: [&str; 8] = [
    "python3",
    "python",
    "vllm",
    "mpirun",
    "mooncake_master",
    "lmcache",
    "curl",
    "df",
];

/// Engine environment the checks read, recorded by every stand-in.
const ENV_SEEN: [&str; 5] = [
    "PYTHONHASHSEED",
    "MAX_MODEL_LEN",
    "MOONCAKE_CONFIG_PATH",
    "LMCACHE_MAX_LOCAL_CPU_SIZE",
    "SGLANG_SIMULATE_ACC_LEN",
];

/// Every row of the shipped 2026 configs, with `config-key`.
fn shipped_rows() -> Vec<Value> {
    let r = root();
    let file = |f: &str| r.join("configs/2026").join(f).display().to_string();
    let (n, a, run) = (
        file("nvidia-master.yaml"),
        file("amd-master.yaml"),
        file("runners.yaml"),
    );
    let out = scheduler(
        &[
            "expand",
            "--config-files",
            &n,
            &a,
            "--runner-config",
            &run,
            "--extra-fields",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn is_agentic(r: &Value) -> bool {
    r["scenario-type"] == "agentic-coding"
}

/// One recorded invocation of a stand-in.
#[derive(Debug, Default)]
struct Call {
    prog: String,
    args: Vec<String>,
    env: HashMap<String, String>,
}

impl Call {
    fn has(&self, flag: &str) -> bool {
        self.args.iter().any(|a| a == flag)
    }
    fn after(&self, flag: &str) -> Option<&str> {
        let i = self.args.iter().position(|a| a == flag)?;
        self.args.get(i + 1).map(String::as_str)
    }
}

fn parse_calls(log: &str) -> Vec<Call> {
    let mut calls = vec![];
    let mut cur: Option<Call> = None;
    for line in log.lines() {
        if let Some(p) = line.strip_prefix("CALL ") {
            cur = Some(Call {
                prog: p.to_string(),
                ..Call::default()
            });
        } else if let Some(a) = line.strip_prefix("ARG ") {
            cur.as_mut().unwrap().args.push(a.to_string());
        } else if let Some(e) = line.strip_prefix("ENV ") {
            let (k, v) = e.split_once('=').unwrap();
            cur.as_mut().unwrap().env.insert(k.into(), v.into());
        } else if line == "END" {
            calls.push(cur.take().unwrap());
        }
    }
    calls
}

/// A bin folder of recorders that append their name, arguments (newlines folded) and
/// [`ENV_SEEN`] to `$STANDIN_LOG`; side services stay up briefly, as live ones would.
fn standins(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let env: String = ENV_SEEN
        .iter()
        .map(|v| format!("  printf 'ENV %s=%s\\n' {v} \"${{{v}-<unset>}}\"\n"))
        .collect();
    let text = format!(
        "#!/usr/bin/env bash\n{{\n  printf 'CALL %s\\n' \"${{0##*/}}\"\n  for a in \"$@\"; do printf 'ARG %s\\n' \"${{a//$'\\n'/ }}\"; done\n{env}  printf 'END\\n'\n}} >>\"$STANDIN_LOG\"\ncase ${{0##*/}} in\n  mooncake_master | lmcache) exec sleep 1 ;;\n  df) printf 'Avail\\n 100000G\\n' ;;\nesac\n"
    );
    for name in STANDINS {
        let p = bin.join(name);
        std::fs::write(&p, &text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// Materialise the row's template as `runner exec` does (validation, lookup, contract in
/// front, the recipe stage's inputs) into `dir/launch.sh`.
fn materialise(row: &AgenticRow, dir: &Path) -> (PathBuf, PathBuf) {
    let benchmarks = root().join("benchmarks");
    agentic::validate(row, "runner_0").unwrap_or_else(|e| panic!("{}: {e}", row.exp_name));
    let template = agentic::find_template(&benchmarks, row)
        .unwrap_or_else(|e| panic!("{}: {e}", row.exp_name));
    let text = agentic::read_template(&benchmarks, &template).unwrap();
    let job = agentic::AgenticJob::new(row, "runner_0", &row.runner, row.duration);
    let rec = recipe::materialise(
        TemplateSource::File(template.clone()),
        &text,
        job.inputs(8000),
        &["bash".into()],
        &row.image,
    );
    let script = dir.join("launch.sh");
    std::fs::write(&script, rec.script).unwrap();
    (template, script)
}

/// Run a materialised script with the stand-ins first on PATH; (exit code, stderr, calls).
fn run(script: &Path, bin: &Path, scratch: &Path) -> (i32, String, Vec<Call>) {
    let log = scratch.join("calls.log");
    let _ = std::fs::remove_file(&log);
    let out = Command::new("bash")
        .arg(script)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("STANDIN_LOG", &log)
        .env("TMPDIR", scratch)
        .env("MAX_MODEL_LEN", "9472")
        .env("AGENTIC_SERVICE_SETTLE_S", "0.05")
        .env("MOONCAKE_RDMA_DEVICE", "mlx5_0")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        parse_calls(&std::fs::read_to_string(&log).unwrap_or_default()),
    )
}

/// The `--kv-transfer-config` JSON of a command line, if any.
fn kv_transfer(engine: &Call) -> Option<Value> {
    engine
        .after("--kv-transfer-config")
        .map(|j| serde_json::from_str(j).unwrap_or_else(|e| panic!("{j}: {e}")))
}

/// What agentic.md §5.2 requires of the row's command lines; `Err` says what is missing.
fn check_row(row: &AgenticRow, calls: &[Call]) -> Result<(), String> {
    let engines = ["python3", "python", "vllm", "mpirun"];
    let engine = calls
        .iter()
        .rev()
        .find(|c| engines.contains(&c.prog.as_str()))
        .ok_or("no engine started")?;
    let gpus = u64::from(row.tp * row.pp * row.pcp_size);
    let budget = row.total_cpu_dram_gb;
    let fail = |m: String| Err(format!("{m} (engine: {} {:?})", engine.prog, engine.args));
    if engine.env["MAX_MODEL_LEN"] != "<unset>" {
        return fail("MAX_MODEL_LEN reached the engine".into());
    }
    if !engine.args.iter().any(|a| a == "8000") || !engine.args.contains(&row.model) {
        return fail("the engine does not serve $MODEL on $PORT".into());
    }
    let sglang = engine.args.iter().any(|a| a == "sglang.launch_server");
    if sglang && !engine.has("--enable-metrics") {
        return fail("SGLang runs without --enable-metrics".into());
    }
    if (row.framework == "sglang") != sglang {
        return fail(format!(
            "framework {} started another engine",
            row.framework
        ));
    }
    let services = |name: &str| calls.iter().filter(|c| c.prog == name).count();
    let kv = kv_transfer(engine);
    let backend = row.kv_offload_backend.as_ref().map(|b| b.name.as_str());
    match backend {
        None => {
            if engine.has("--enable-hierarchical-cache")
                || kv.is_some()
                || services("mooncake_master") + services("lmcache") > 0
            {
                return fail("kv-offloading none, but an offload tier is configured".into());
            }
        }
        Some("hicache") => {
            if !engine.has("--enable-hierarchical-cache") {
                return fail("hicache without --enable-hierarchical-cache".into());
            }
            match (
                engine.after("--hicache-size"),
                engine.after("--hicache-ratio"),
            ) {
                (Some(gb), _) => {
                    let gb: u64 = gb.parse().unwrap();
                    if gb == 0 || gb * gpus > budget {
                        return fail(format!("--hicache-size {gb} × {gpus} ranks vs {budget} GB"));
                    }
                }
                (None, Some(_)) => {}
                (None, None) => return fail("HiCache without a pool size or ratio".into()),
            }
        }
        Some("vllm-simple") => {
            let kv = kv.ok_or("vllm-simple without --kv-transfer-config")?;
            let extra = &kv["kv_connector_extra_config"];
            let bytes = match (
                extra["cpu_bytes_to_use_per_rank"].as_u64(),
                extra["cpu_bytes_to_use"].as_u64(),
            ) {
                (Some(b), _) => b * gpus,
                (None, Some(b)) => b,
                _ => return fail(format!("no CPU pool size in {kv}")),
            };
            if kv["kv_connector"] != "SimpleCPUOffloadConnector"
                || bytes == 0
                || bytes > budget * 1_000_000_000
            {
                return fail(format!("{kv} vs {budget} GB"));
            }
            if engine.env["PYTHONHASHSEED"] != "42" {
                return fail("vllm-simple without PYTHONHASHSEED=42".into());
            }
        }
        Some("mooncake") => {
            let kv = kv.ok_or("mooncake without --kv-transfer-config")?;
            if kv["kv_connector"] != "MooncakeStoreConnector" || services("mooncake_master") != 1 {
                return fail(format!("{kv}: not the Mooncake store with its master"));
            }
            let cfg: Value = serde_json::from_str(
                &std::fs::read_to_string(&engine.env["MOONCAKE_CONFIG_PATH"]).unwrap(),
            )
            .unwrap();
            let seg: u64 = cfg["global_segment_size"]
                .as_str()
                .and_then(|s| s.strip_suffix("GB"))
                .and_then(|s| s.parse().ok())
                .ok_or(format!("{cfg}"))?;
            if cfg["mode"] != "embedded" || seg == 0 || seg * gpus > budget {
                return fail(format!("{cfg} × {gpus} ranks vs {budget} GB"));
            }
        }
        Some("lmcache") if engine.prog == "vllm" => {
            let kv = kv.ok_or("lmcache without --kv-transfer-config")?;
            let shards: Vec<u64> = calls
                .iter()
                .filter(|c| c.prog == "lmcache")
                .map(|c| c.after("--l1-size-gb").unwrap().parse().unwrap())
                .collect();
            let total: u64 = shards.iter().sum();
            if kv["kv_connector"] != "LMCacheMPConnector" || shards.is_empty() || total > budget {
                return fail(format!("{kv}, L1 shards {shards:?} vs {budget} GB"));
            }
        }
        Some("lmcache") => {
            let kv = kv.ok_or("lmcache without --kv-transfer-config")?;
            let gb: u64 = engine.env["LMCACHE_MAX_LOCAL_CPU_SIZE"].parse().unwrap();
            if kv["kv_connector"] != "lmcache_offload" || gb == 0 || gb > budget {
                return fail(format!("{kv}, local CPU {gb} GB vs {budget} GB"));
            }
        }
        Some("native") => {
            let cfg =
                std::fs::read_to_string(engine.after("--config").ok_or("no --config")?).unwrap();
            let bytes: u64 = cfg
                .lines()
                .find_map(|l| l.trim().strip_prefix("host_cache_size: "))
                .ok_or("no host_cache_size")?
                .parse()
                .unwrap();
            if bytes == 0 || bytes * gpus > budget * 1_000_000_000 {
                return fail(format!("host_cache_size {bytes} × {gpus} vs {budget} GB"));
            }
        }
        Some(other) => return fail(format!("no check for backend {other}")),
    }
    if row.spec_decoding == "mtp" {
        let spec = engine.args.iter().any(|a| {
            a.starts_with("--speculative") || a == "--method" || a.contains("speculative_config")
        }) || engine.after("--config").is_some_and(|c| {
            std::fs::read_to_string(c).is_ok_and(|t| t.contains("speculative_config"))
        });
        // Kimi-K3 on B300 drops its draft above conc 16, as the reference tuned it.
        let draftless = row.model_prefix == "kimik3" && row.conc > 16;
        if !(spec || draftless) {
            return fail("spec-decoding mtp, but no speculative decoding configured".into());
        }
    }
    Ok(())
}

/// shellcheck: `INFMAX_SHELLCHECK`, scripts/lint's venv, or PATH.
fn shellcheck() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("INFMAX_SHELLCHECK") {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var("INFMAX_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/infmax")
        });
    let venv = cache.join("lint-venv/bin/shellcheck");
    if venv.is_file() {
        return Some(venv);
    }
    Command::new("shellcheck")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("shellcheck"))
}

#[test]
fn every_shipped_single_node_agentic_row_renders_and_runs_its_template() {
    let rows: Vec<Value> = shipped_rows()
        .into_iter()
        .filter(|r| is_agentic(r) && r.get("prefill").is_none())
        .collect();
    let keys: BTreeSet<&str> = rows
        .iter()
        .map(|r| r["config-key"].as_str().unwrap())
        .collect();
    // The 2026 configs ship 37 single-node agentic entries; each must have rows here.
    assert_eq!(keys.len(), 37, "{keys:?}");
    let d = tempfile::tempdir().unwrap();
    let bin = standins(d.path());
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut shellchecked = BTreeSet::new();
    let checker = shellcheck();
    let mut jobs = vec![];
    for (i, v) in rows.iter().enumerate() {
        let row: AgenticRow = serde_json::from_value(v.clone()).unwrap();
        let dir = d.path().join(format!("row{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (template, script) = materialise(&row, &dir);
        let name = template.file_name().unwrap().to_string_lossy().into_owned();
        used.entry(name.clone())
            .or_default()
            .push(v["config-key"].as_str().unwrap().into());
        if let (Some(sc), true) = (&checker, shellchecked.insert(name.clone())) {
            let out = Command::new(sc).arg(&script).output().unwrap();
            assert!(
                out.status.success(),
                "shellcheck {name} (as materialised for {}):\n{}",
                row.exp_name,
                String::from_utf8_lossy(&out.stdout)
            );
        }
        jobs.push((row, name, script, dir));
    }
    // The rows run a few at a time: most of a row's time is process start-up and the side
    // services' settle time.
    let per = jobs.len().div_ceil(4);
    let failures: Vec<String> = std::thread::scope(|sc| {
        let handles: Vec<_> = jobs
            .chunks(per)
            .map(|chunk| {
                let bin = &bin;
                sc.spawn(move || {
                    let mut failures = vec![];
                    for (row, name, script, dir) in chunk {
                        let (code, err, calls) = run(script, bin, dir);
                        let what = format!("{} ({name}, conc {})", row.exp_name, row.conc);
                        if code != 0 {
                            failures.push(format!(
                                "{what}: exit {code}: {}",
                                err.lines().last().unwrap_or("")
                            ));
                        } else if let Err(e) = check_row(row, &calls) {
                            failures.push(format!("{what}: {e}"));
                        }
                    }
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} rows:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    if checker.is_none() {
        eprintln!("note: no shellcheck found (run scripts/lint once to install it); the materialised scripts were not linted here");
    }
    // No template is orphaned: each one serves a shipped entry.
    let on_disk: BTreeSet<String> = std::fs::read_dir(root().join("benchmarks/agentic"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sh") && n != agentic::LIB)
        .collect();
    let resolved: BTreeSet<String> = used.keys().cloned().collect();
    assert_eq!(on_disk, resolved, "templates vs the entries that use them");
}

#[test]
fn shipped_multinode_agentic_rows_are_refused_with_a_reason() {
    let mut seen = BTreeSet::new();
    let d = tempfile::tempdir().unwrap();
    for r in shipped_rows()
        .into_iter()
        .filter(|r| is_agentic(r) && r.get("prefill").is_some())
    {
        let key = r["config-key"].as_str().unwrap().to_string();
        if !seen.insert(key.clone()) {
            continue;
        }
        let f = d.path().join(format!("{key}.json"));
        std::fs::write(&f, r.to_string()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["exec", "--config"])
            .arg(&f)
            .args(["--dry-run"])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(10), "{key}: {e}");
        assert!(
            e.contains("multinode agentic-coding row")
                && e.contains("no multinode launch yet")
                && e.contains(&format!("{key}.json")),
            "{key}: {e}"
        );
    }
    assert!(seen.len() >= 20, "{seen:?}");
}
