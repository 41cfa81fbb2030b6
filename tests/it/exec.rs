//! `runner exec` and `runner batch` with real processes: the simulated engine through the
//! `sim` profile, engines that die, never get ready or die under load, SIGTERM to the
//! runner, shell injection in row values, a taken port, a missing template, dry runs of every
//! shipped config entry, and a batch that keeps one engine for five concurrencies.

use crate::util::{
    llama_paths, read_json, root, sigterm, spawn_collecting_stderr, svg_count, write, QUICK_BATCH,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const RUNNER: &str = env!("CARGO_BIN_EXE_runner");

/// A small row the tiny sim preset serves in well under a second.
fn row(conc: u32) -> Value {
    json!({"image": "img:1", "model": "infmax/sim", "precision": "fp4", "framework": "sglang",
           "runner": "mi355x", "isl": 64, "osl": 16, "tp": 8, "conc": conc, "max-model-len": 280,
           "ep": 1, "dp-attn": false, "exp-name": "dsr1_64_16"})
}

/// A work dir with a runners/ dir whose `sim` profile uses the fast `tiny` preset and whose
/// `local` profile runs templates from `benchmarks/` in the same dir.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("runners");
        std::fs::create_dir_all(&r).unwrap();
        std::fs::create_dir_all(dir.path().join("benchmarks")).unwrap();
        write(&r, "sim.yaml", "kind: sim\npreset: tiny\n");
        write(&r, "local.yaml", "kind: local\n");
        write(&r, "map.yaml", "\"*\": local\n");
        Work { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn row(&self, v: &Value) -> String {
        write(self.path(), "row.json", &v.to_string())
    }
    /// A template for `row()` (dsr1 fp4 mi355x sglang) that runs `body`.
    fn template(&self, body: &str) {
        write(
            &self.path().join("benchmarks"),
            "dsr1_fp4_mi355x_sglang.sh",
            &format!("#!/usr/bin/env bash\nset -euo pipefail\n{body}\n"),
        );
    }
    /// A template that serves the simulated engine with a config of our own.
    fn sim_template(&self, sim_yaml: &str) {
        let cfg = write(self.path(), "sim.yaml", sim_yaml);
        self.template(&format!(
            "exec {RUNNER} sim --host 127.0.0.1 --port \"$PORT\" --config {cfg}"
        ));
    }
    fn cmd(&self, sub: &str, args: &[&str]) -> Command {
        let mut c = Command::new(RUNNER);
        c.current_dir(self.path())
            .arg(sub)
            .args([
                "--out",
                "out",
                "--runners",
                "runners",
                "--benchmarks",
                "benchmarks",
            ])
            .args([
                "--baselines",
                &root().join("baselines").display().to_string(),
            ])
            // Local templates in these tests serve the simulated engine: its tokenizer.
            .args(["--tokenizer", "infmax/embedded"])
            .args(args)
            .env_remove("RUNNER_NAME")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("GITHUB_ACTIONS");
        c
    }
    fn run(&self, sub: &str, args: &[&str]) -> Output {
        self.cmd(sub, args).output().unwrap()
    }
    /// `runner exec --config <row file> args…` for `row(conc)`.
    fn exec(&self, conc: u32, args: &[&str]) -> Output {
        let r = self.row(&row(conc));
        let mut a = vec!["--config", r.as_str()];
        a.extend_from_slice(args);
        self.run("exec", &a)
    }
    /// `runner batch --config <row file> args…` for `row(1)`.
    fn batch(&self, args: &[&str]) -> Output {
        let r = self.row(&row(1));
        let mut a = vec!["--config", r.as_str()];
        a.extend_from_slice(args);
        self.run("batch", &a)
    }
    /// The JSON file `name` in the result directory of conc `conc`.
    fn json(&self, conc: u32, name: &str) -> Value {
        read_json(&self.job_dir(conc).join(name))
    }
    fn job_dir(&self, conc: u32) -> PathBuf {
        self.path().join(format!(
            "out/dsr1_64_16_fp4_sglang_tp8_ep1_dpa_false_conc{conc}_mi355x"
        ))
    }
}

/// Every file a finished job leaves in its result directory.
fn assert_job_files(d: &Path) {
    for f in [
        "launch.sh",
        "row.json",
        "server.log",
        "bench.json",
        "agg.json",
        "summary.md",
    ] {
        assert!(d.join(f).is_file(), "missing {f}");
    }
    // The job's point on both charts of its line (throughput/GPU against interactivity and
    // against median E2E latency), as SVG and PNG.
    for ext in ["svg", "png"] {
        let plots: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(&format!(".{ext}")))
            .collect();
        assert_eq!(plots.len(), 2, "{ext} plots in {}: {plots:?}", d.display());
        for p in &plots {
            assert!(
                std::fs::metadata(d.join(p)).unwrap().len() > 1000,
                "{p} is empty"
            );
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The run exited with `code`; returns its stderr.
fn assert_exit(o: &Output, code: i32) -> String {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{e}");
    e
}

/// The run succeeded; returns its stderr.
fn assert_success(o: &Output) -> String {
    let e = stderr(o);
    assert!(o.status.success(), "{e}");
    e
}

/// The engine pids the runner logged (`launched engine (…) pid N`).
fn engine_pids(log: &str) -> Vec<i32> {
    log.lines()
        .filter_map(|l| l.split(" pid ").nth(1))
        .filter_map(|r| r.split(':').next()?.trim().parse().ok())
        .collect()
}

/// Nothing is left of any engine the run logged.
fn assert_engines_gone(o: &Output) {
    for pid in engine_pids(&stderr(o)) {
        assert_group_gone(pid);
    }
}

/// Nothing of the engine's process group is left.
fn assert_group_gone(pgid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    // SAFETY: signal 0 only checks for existence.
    while Instant::now() < deadline && unsafe { libc::kill(-pgid, 0) } == 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_ne!(
        unsafe { libc::kill(-pgid, 0) },
        0,
        "process group {pgid} still has processes"
    );
}

#[test]
fn exec_on_sim_writes_every_file() {
    let w = Work::new();
    let o = w.exec(4, &["--profile", "sim", "--prompts-multiplier", "2"]);
    assert_success(&o);
    let d = w.job_dir(4);
    assert_job_files(&d);
    let agg = w.json(4, "agg.json");
    assert_eq!(
        agg["hw"], "sim",
        "a simulated run never passes for the row's hardware"
    );
    assert_eq!(agg["conc"], 4);
    assert_eq!(agg["recipe_fingerprint"].as_str().unwrap().len(), 64);
    assert!(agg["engine_start_s"].as_f64().unwrap() > 0.0);
    let bench = w.json(4, "bench.json");
    assert_eq!(bench["num_prompts"], 8);
    assert_eq!(bench["completed"], 8);
    assert_eq!(bench["max_concurrency"], 4);
    assert!(bench["p99.9_itl_ms"].is_number());
    let script = std::fs::read_to_string(d.join("launch.sh")).unwrap();
    assert!(
        script.contains("export CONC='4'") && script.contains("sim --host 127.0.0.1"),
        "{script}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("| Hardware |"));
    assert_engines_gone(&o);
}

#[test]
fn dry_run_renders_every_shipped_entry() {
    let rows: Value = serde_json::from_slice(
        &Command::new(env!("CARGO_BIN_EXE_scheduler"))
            .current_dir(root())
            .args([
                "expand",
                "--config-files",
                ".github/configs/amd-master.yaml",
                ".github/configs/nvidia-master.yaml",
                "--test-mode",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let d = tempfile::tempdir().unwrap();
    let mut templates = std::collections::BTreeSet::new();
    for (i, r) in rows.as_array().unwrap().iter().enumerate() {
        let f = write(d.path(), &format!("r{i}.json"), &r.to_string());
        let o = Command::new(RUNNER)
            .current_dir(root())
            .args(["exec", "--config", &f, "--dry-run", "--port", "8000"])
            .env_remove("RUNNER_NAME")
            .output()
            .unwrap();
        assert!(o.status.success(), "{r}: {}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let t = out
            .lines()
            .find_map(|l| l.strip_prefix("# template: "))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        assert!(out.contains("# launch command: docker run"), "{out}");
        assert!(out.contains(&format!("export MODEL='{}'", r["model"].as_str().unwrap())));
        templates.insert(t);
    }
    assert_eq!(
        templates.len(),
        18,
        "one template per shipped entry: {templates:?}"
    );
}

#[test]
fn engine_that_exits_at_once_fails_fast_with_its_log() {
    let w = Work::new();
    w.template("echo 'CUDA error: no device' >&2\nexit 3");
    let t = Instant::now();
    let o = w.exec(4, &[]);
    let e = assert_exit(&o, 12);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "fails within seconds"
    );
    assert!(
        e.contains("exited with exit status: 3") && e.contains("CUDA error: no device"),
        "{e}"
    );
    assert_eq!(w.json(4, "status.json")["stage"], "readiness");
    assert!(w.job_dir(4).join("launch.sh").is_file() && w.job_dir(4).join("server.log").is_file());
}

#[test]
fn engine_that_never_gets_ready_times_out_and_is_stopped() {
    let w = Work::new();
    w.sim_template("preset: tiny\nfaults:\n  never-ready: true\n");
    let o = w.exec(4, &["--ready-timeout-s", "2"]);
    let e = assert_exit(&o, 12);
    assert!(e.contains("did not become ready within 2 s"), "{e}");
    assert_engines_gone(&o);
}

#[test]
fn engine_that_dies_under_load_keeps_partial_results() {
    let w = Work::new();
    w.sim_template("preset: tiny\nfaults:\n  exit-after-requests: 12\n");
    let o = w.exec(4, &["--num-warmups", "0", "--stall-timeout-s", "5"]);
    let e = assert_exit(&o, 13);
    let d = w.job_dir(4);
    assert!(w.json(4, "bench.json")["failed"].as_u64().unwrap() > 0);
    assert!(d.join("agg.json").is_file() && d.join("status.json").is_file());
    assert!(e.contains("requests failed"), "{e}");
}

#[test]
fn sigterm_mid_run_stops_the_engine() {
    let w = Work::new();
    // A slow engine so the run is certainly in progress when the signal arrives.
    w.sim_template("preset: exact\nexact:\n  ttft-ms: 50\n  itl-ms: 50\n");
    let r = w.row(&row(2));
    let (child, reader) = spawn_collecting_stderr(&mut w.cmd("exec", &["--config", &r]));
    // Wait until the client phase has started.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !w.path().join("out/.engine-1/server.log").is_file() {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (code, log) = sigterm(child, reader);
    assert_eq!(code, Some(143), "{log}");
    assert!(log.contains("interrupted by SIGTERM"), "{log}");
    let pids = engine_pids(&log);
    assert_eq!(pids.len(), 1, "{log}");
    assert_group_gone(pids[0]);
}

#[test]
fn shell_metacharacters_are_never_executed() {
    let w = Work::new();
    w.template("exec sleep 60");
    let marker = w.path().join("pwned");
    let m = marker.display().to_string();
    for (field, value) in [
        ("model", format!("x\"; touch {m}; \"")),
        ("model", format!("$(touch {m})")),
        ("image", format!("img`touch {m}`")),
        ("exp-name", format!("dsr1_1k1k; touch {m}")),
        ("precision", "fp4\ntouch".to_string()),
    ] {
        let mut v = row(4);
        v[field] = json!(value);
        let r = w.row(&v);
        for dry in [true, false] {
            let args: Vec<&str> = if dry {
                vec!["--config", &r, "--dry-run"]
            } else {
                vec!["--config", &r]
            };
            let o = w.run("exec", &args);
            assert_eq!(
                o.status.code(),
                Some(10),
                "{field}={value:?}: {}",
                stderr(&o)
            );
            assert!(
                stderr(&o).contains(&format!("row field `{field}`")),
                "{}",
                stderr(&o)
            );
        }
        assert!(!marker.exists(), "{field}={value:?} was executed");
    }
}

#[test]
fn taken_port_and_missing_template_are_clear_errors() {
    let w = Work::new();
    w.template("exec sleep 60");
    let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let e = assert_exit(&w.exec(4, &["--port", &port]), 11);
    assert!(e.contains(&format!("port {port} is already in use")), "{e}");
    drop(l);

    std::fs::remove_file(w.path().join("benchmarks/dsr1_fp4_mi355x_sglang.sh")).unwrap();
    write(
        &w.path().join("benchmarks"),
        "dsr1_fp8_mi355x_sglang.sh",
        "exec true\n",
    );
    let e = assert_exit(&w.exec(4, &[]), 10);
    assert!(
        e.contains("looked for dsr1_fp4_mi355x_sglang.sh")
            && e.contains("templates there for `dsr1`: dsr1_fp8_mi355x_sglang.sh"),
        "{e}"
    );
    let e = assert_exit(&w.exec(4, &["--profile", "nope"]), 10);
    assert!(
        e.contains("no launch profile `nope`") && e.contains("available: local, sim"),
        "{e}"
    );
}

#[test]
fn batch_keeps_one_engine_for_five_concurrencies() {
    let w = Work::new();
    let o = w.batch(&[
        "--conc",
        "1,2,4,8,16",
        "--profile",
        "sim",
        "--prompts-multiplier",
        "2",
        "--num-warmups",
        "1",
    ]);
    let e = assert_success(&o);
    assert_eq!(engine_pids(&e).len(), 1, "engine started once: {e}");
    assert!(!w.path().join("out/.engine-2").exists());
    assert_eq!(e.matches("reusing the running engine").count(), 4, "{e}");
    for c in [1, 2, 4, 8, 16] {
        assert!(w.job_dir(c).join("agg.json").is_file(), "conc {c}");
    }
    assert!(w.path().join("out/summary.md").is_file());
    assert!(svg_count(&w.path().join("out")) > 0, "batch writes plots");
    assert_group_gone(engine_pids(&e)[0]);
}

#[test]
fn batch_restarts_the_engine_when_the_recipe_changes() {
    let w = Work::new();
    // The template reads CONC, so each concurrency needs its own engine.
    w.sim_template("preset: tiny\n");
    let t = std::fs::read_to_string(w.path().join("benchmarks/dsr1_fp4_mi355x_sglang.sh")).unwrap();
    w.template(&format!(
        "echo \"conc $CONC\"\n{}",
        t.lines().skip(2).collect::<Vec<_>>().join("\n")
    ));
    let o = w.batch(&QUICK_BATCH);
    assert_eq!(engine_pids(&assert_success(&o)).len(), 2);
}

#[test]
fn exec_on_real_llama_server_writes_every_file() {
    let Some((bin, model)) = llama_paths() else {
        return;
    };
    let w = Work::new();
    w.template(&format!(
        "exec {} -m {} --host 127.0.0.1 --port \"$PORT\" -c 8192 -np 8 --no-webui",
        bin.display(),
        model.display()
    ));
    let o = w.exec(4, &["--prompts-multiplier", "2"]);
    assert_success(&o);
    let d = w.job_dir(4);
    assert_job_files(&d);
    assert_eq!(w.json(4, "bench.json")["completed"], 8);
    assert!(
        std::fs::read_to_string(d.join("server.log"))
            .unwrap()
            .contains("llama"),
        "engine log captured"
    );
    assert_eq!(w.json(4, "agg.json")["hw"], "mi355x");
    assert_engines_gone(&o);
}
