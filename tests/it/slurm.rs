//! The `slurm` launch profile on a real Slurm cluster (`scripts/slurm-cluster.sh`: one node,
//! 8 fake GPUs): allocation, the simulated engine as a step, readiness on the node's address,
//! release; an allocation that is never granted, a step that dies, SIGTERM to the runner, a
//! stale allocation from a crashed run, a batch on one allocation, telemetry through `srun`.
//!
//! The cluster reaches the tests as `SLURM_CONF` (scripts/test starts it). Without it the
//! tests skip with a note, except under CI (`CI` set), where they fail. They take a file
//! lock so that, whatever the harness runs in parallel, one holds the cluster at a time
//! (2 CPUs, 8 GPUs).

use crate::telemetry::{assert_tool_stopped, fake_nvidia_smi, row, stderr, Work};
use crate::util::{read_json, sigterm, spawn_collecting_stderr};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Holds the cluster lock for one test.
struct Cluster {
    _lock: std::fs::File,
}

/// The cluster, or `None` (skip) when `SLURM_CONF` is not set outside CI.
fn cluster() -> Option<Cluster> {
    let conf = std::env::var_os("SLURM_CONF").filter(|c| !c.is_empty());
    let Some(conf) = conf else {
        let why = "SLURM_CONF is not set (scripts/test starts a cluster with \
                   scripts/slurm-cluster.sh; INFMAX_SKIP_SLURM=1 skips it)";
        if std::env::var_os("CI").is_some() {
            panic!("Slurm test under CI, but {why}");
        }
        eprintln!("note: skipping a Slurm test: {why}");
        return None;
    };
    assert!(
        PathBuf::from(&conf).is_file(),
        "SLURM_CONF={conf:?} is not a file"
    );
    use std::os::fd::AsRawFd;
    let f = std::fs::File::create(std::env::temp_dir().join("infmax-slurm-tests.lock")).unwrap();
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    Some(Cluster { _lock: f })
}

/// Our jobs named `name` in the queue.
fn squeue(name: &str) -> Vec<String> {
    let o = Command::new("squeue")
        .args(["--me", "-h", "-o", "%A %T", &format!("--name={name}")])
        .output()
        .expect("squeue runs");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Within a few seconds, no job named `name` is left.
fn assert_no_job(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && !squeue(name).is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(squeue(name), Vec::<String>::new(), "jobs left for {name}");
}

/// A work dir with a `slurm` profile (short limits) and a unique runner name, so the job
/// name `infmax-<runner>` is ours alone.
fn work(tag: &str, profile_extra: &str) -> (Work, String) {
    let w = Work::new();
    crate::util::write(
        &w.path().join("runners"),
        "slurm.yaml",
        &format!("kind: slurm\ntime-minutes: 5\nalloc-wait-s: 5\n{profile_extra}"),
    );
    let runner = format!("slurmtest-{tag}-{}", std::process::id());
    (w, runner)
}

fn args<'a>(runner: &'a str, cfg: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--config",
        cfg,
        "--profile",
        "slurm",
        "--runner-name",
        runner,
    ];
    a.extend_from_slice(more);
    if !more.contains(&"--prompts-multiplier") {
        a.extend_from_slice(&["--prompts-multiplier", "1"]);
    }
    a
}

/// `runner <sub>` on the `slurm` profile (see `args`), run to the end: its output and stderr.
fn run(w: &Work, sub: &str, runner: &str, cfg: &str, more: &[&str]) -> (Output, String) {
    let o = w.run(sub, &args(runner, cfg, more), None);
    let e = stderr(&o);
    (o, e)
}

/// Our allocation of `gpus` GPUs for `minutes`, named `name`, holding no step; asserts it
/// was granted and returns salloc's stderr.
fn hold_gpus(name: &str, minutes: u32, gpus: u32) -> String {
    let o = Command::new("salloc")
        .args([
            "--no-shell",
            &format!("--job-name={name}"),
            "-N1",
            &format!("--time={minutes}"),
        ])
        .args(["--immediate=5", &format!("--gres=gpu:{gpus}")])
        .output()
        .unwrap();
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    e
}

/// The agg rows written under `out/`.
fn aggs(w: &Work) -> Vec<Value> {
    let mut v = vec![];
    for e in std::fs::read_dir(w.path().join("out")).unwrap().flatten() {
        let p = e.path().join("agg.json");
        if p.is_file() {
            v.push(read_json(&p));
        }
    }
    v
}

fn small_row(tp: u32, conc: u32) -> Value {
    let mut r = row(conc);
    r["tp"] = tp.into();
    r
}

#[test]
fn exec_on_slurm_allocates_runs_the_step_and_releases() {
    let Some(_c) = cluster() else { return };
    let (w, runner) = work("ok", "");
    // A timed phase of a few seconds (2 rounds of 16 tokens at 100 ms), so the sampler,
    // itself an srun step that takes a moment to start on a loaded machine, gets readings.
    w.sim_template(
        "preset: exact\nexact:\n  ttft-ms: 50\n  itl-ms: 100\n",
        "0.0.0.0",
    );
    // The step reports what Slurm gave it.
    let t = std::fs::read_to_string(w.path().join("benchmarks/dsr1_fp4_mi355x_sglang.sh"))
        .unwrap()
        .replace(
            "exec ",
            "echo \"step job=$SLURM_JOB_ID gpus=$CUDA_VISIBLE_DEVICES\"\nexec ",
        );
    crate::util::write(
        &w.path().join("benchmarks"),
        "dsr1_fp4_mi355x_sglang.sh",
        &t,
    );
    let log = w.path().join("nvidia-smi.log");
    fake_nvidia_smi(&w, &log, "300");
    let cfg = w.row(&small_row(2, 2));
    let t0 = Instant::now();
    let more = ["--prompts-multiplier", "2", "--num-warmups", "0"];
    let (o, e) = run(&w, "exec", &runner, &cfg, &more);
    assert!(o.status.success(), "{e}");
    eprintln!("slurm exec took {:.1} s", t0.elapsed().as_secs_f64());
    let job = format!("infmax-{runner}");
    assert!(
        e.contains("salloc --no-shell") || e.contains("Slurm allocation"),
        "{e}"
    );
    assert!(
        e.contains("srun --jobid=") && e.contains("--overlap"),
        "{e}"
    );
    let a = aggs(&w);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["tp"], 2);
    let dir = w.path().join("out").join(
        std::fs::read_dir(w.path().join("out"))
            .unwrap()
            .flatten()
            .find(|d| d.path().join("agg.json").is_file())
            .unwrap()
            .file_name(),
    );
    let server = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(
        server.contains("gpus=0,1"),
        "two GPUs granted to the step: {server}"
    );
    // Telemetry ran as a step of the same allocation, through srun.
    assert!(dir.join("gpu_metrics.csv").is_file(), "{e}");
    // Power schema v2: the fake reports 2 GPUs at 300 W each (tp 2), 300 W per GPU.
    let v = std::fs::read_to_string(dir.join("power_validation.json")).unwrap();
    assert_eq!(a[0]["power_valid"], 1, "{v}");
    assert!((a[0]["avg_power_w"].as_f64().unwrap() - 300.0).abs() < 1e-9);
    assert_tool_stopped(&log);
    assert_no_job(&job);
}

#[test]
fn dry_run_renders_gres_and_pyxis_flags() {
    // No cluster needed: nothing is started.
    let (w, runner) = work(
        "dry",
        "partition: gpu\nexclusive: true\npyxis:\n  mounts: [/data:/data]\n  workdir: /w\n",
    );
    w.sim_template("preset: tiny\n", "0.0.0.0");
    let cfg = w.row(&small_row(4, 2));
    let (o, e) = run(&w, "exec", &runner, &cfg, &["--dry-run"]);
    assert!(o.status.success(), "{e}");
    let out = String::from_utf8_lossy(&o.stdout);
    let cmd = out
        .lines()
        .find_map(|l| l.strip_prefix("# launch command: "))
        .unwrap();
    assert!(
        cmd.starts_with(
            "salloc --no-shell --job-name=JOB -N1 --time=5 --immediate=5 --partition=gpu \
             --gres=gpu:4 --exclusive && srun --jobid=JOBID --overlap --container-image=img:1 \
             --container-mounts="
        ),
        "{cmd}"
    );
    assert!(
        cmd.ends_with(",/data:/data --container-workdir=/w bash launch.sh"),
        "{cmd}"
    );
}

#[test]
fn allocation_never_granted_is_a_bounded_launch_failure() {
    let Some(_c) = cluster() else { return };
    for (tag, extra, tp) in [
        ("nopart", "partition: nonexistent\n", 2),
        ("toobig", "", 16),
    ] {
        let (w, runner) = work(tag, extra);
        w.sim_template("preset: tiny\n", "0.0.0.0");
        let cfg = w.row(&small_row(tp, 1));
        let t0 = Instant::now();
        let (o, e) = run(&w, "exec", &runner, &cfg, &[]);
        assert_eq!(o.status.code(), Some(11), "{e}");
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "bounded: {:?}",
            t0.elapsed()
        );
        assert!(e.contains("not granted within 5 s"), "{e}");
        assert!(
            e.contains(if tp == 16 {
                "node configuration is not available"
            } else {
                "nvalid partition"
            }),
            "{e}"
        );
        assert_no_job(&format!("infmax-{runner}"));
    }
}

#[test]
fn allocation_busy_past_the_wait_is_given_up() {
    let Some(_c) = cluster() else { return };
    let (w, runner) = work("busy", "");
    w.sim_template("preset: tiny\n", "0.0.0.0");
    // Someone else holds 7 of the 8 GPUs: an 8-GPU job can only pend.
    let hold = format!("infmax-hold-{}", std::process::id());
    hold_gpus(&hold, 2, 7);
    let cfg = w.row(&small_row(8, 1));
    let t0 = Instant::now();
    let (o, e) = run(&w, "exec", &runner, &cfg, &[]);
    let took = t0.elapsed();
    let _ = Command::new("scancel")
        .arg(format!("--name={hold}"))
        .status();
    assert_eq!(o.status.code(), Some(11), "{e}");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(40),
        "{took:?}"
    );
    assert!(e.contains("not granted within 5 s"), "{e}");
    assert_no_job(&format!("infmax-{runner}"));
    assert_no_job(&hold);
}

#[test]
fn step_that_dies_fails_readiness_with_its_log_and_releases() {
    let Some(_c) = cluster() else { return };
    let (w, runner) = work("dies", "");
    crate::util::write(
        &w.path().join("benchmarks"),
        "dsr1_fp4_mi355x_sglang.sh",
        "#!/usr/bin/env bash\necho 'CUDA error: no device on the node' >&2\nexit 3\n",
    );
    let cfg = w.row(&small_row(2, 1));
    let t0 = Instant::now();
    let (o, e) = run(&w, "exec", &runner, &cfg, &[]);
    assert_eq!(o.status.code(), Some(12), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert!(
        e.contains("exited with") && e.contains("CUDA error: no device on the node"),
        "{e}"
    );
    assert_no_job(&format!("infmax-{runner}"));
}

#[test]
fn sigterm_cancels_the_allocation_and_leaves_no_step() {
    let Some(_c) = cluster() else { return };
    let (w, runner) = work("term", "");
    // A slow engine: the load is certainly running when the signal arrives.
    w.sim_template(
        "preset: exact\nexact:\n  ttft-ms: 50\n  itl-ms: 50\n",
        "0.0.0.0",
    );
    let cfg = w.row(&small_row(2, 2));
    let job = format!("infmax-{runner}");
    let mut cmd = w.cmd(
        "exec",
        &args(&runner, &cfg, &["--prompts-multiplier", "10"]),
        None,
    );
    let (child, reader) = spawn_collecting_stderr(&mut cmd);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !squeue(&job).iter().any(|l| l.ends_with("RUNNING")) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let id = squeue(&job)
        .first()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .expect("the allocation runs");
    assert!(
        !steps(&id).is_empty(),
        "the engine step runs before the signal"
    );
    let (code, log) = sigterm(child, reader);
    assert_eq!(code, Some(143), "{log}");
    assert_no_job(&job);
    assert_eq!(steps(&id), "", "{log}");
}

#[test]
fn sigkill_of_the_runner_cancels_the_allocation_and_leaves_no_step() {
    let Some(_c) = cluster() else { return };
    let (w, runner) = work("kill9", "");
    w.sim_template(
        "preset: exact\nexact:\n  ttft-ms: 50\n  itl-ms: 50\n",
        "0.0.0.0",
    );
    let cfg = w.row(&small_row(2, 2));
    let job = format!("infmax-{runner}");
    let mut cmd = w.cmd(
        "exec",
        &args(&runner, &cfg, &["--prompts-multiplier", "10"]),
        None,
    );
    let (mut child, reader) = spawn_collecting_stderr(&mut cmd);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !squeue(&job).iter().any(|l| l.ends_with("RUNNING")) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let id = squeue(&job)
        .first()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .expect("the allocation runs");
    assert!(
        !steps(&id).is_empty(),
        "the engine step runs before the kill"
    );
    // SAFETY: killing our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let log = reader.join().unwrap();
    // The runner had no chance to clean up: its engine's supervisor cancels the allocation.
    assert_no_job(&job);
    assert_eq!(steps(&id), "", "{log}");
}

/// The steps of job `id` (`squeue -s`), empty once the job is gone.
fn steps(id: &str) -> String {
    let o = Command::new("squeue")
        .args(["-h", "-s", "-o", "%i %j", "-j", id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn stale_allocation_of_a_crashed_run_is_cancelled_first() {
    let Some(_c) = cluster() else { return };
    let (w, runner) = work("stale", "");
    w.sim_template("preset: tiny\n", "0.0.0.0");
    let job = format!("infmax-{runner}");
    // A crashed run left its allocation holding all 8 GPUs.
    let text = hold_gpus(&job, 5, 8);
    let stale_id = text.split_whitespace().last().unwrap().to_string();
    let cfg = w.row(&small_row(8, 1));
    let (o, e) = run(&w, "exec", &runner, &cfg, &[]);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains(&format!(
            "cancelling stale Slurm allocation {stale_id} named {job}"
        )),
        "{e}"
    );
    assert_no_job(&job);
}

#[test]
fn batch_on_slurm_keeps_one_allocation() {
    let Some(_c) = cluster() else { return };
    let (w, runner) = work("batch", "");
    w.sim_template("preset: tiny\n", "0.0.0.0");
    let cfg = w.row(&small_row(2, 1));
    let (o, e) = run(
        &w,
        "batch",
        &runner,
        &cfg,
        &["--conc", "1,2,4", "--num-warmups", "1"],
    );
    assert!(o.status.success(), "{e}");
    assert_eq!(
        e.matches("Slurm allocation ").count(),
        1,
        "one allocation: {e}"
    );
    assert_eq!(e.matches("reusing the running engine").count(), 2, "{e}");
    assert_eq!(aggs(&w).len(), 3);
    assert_no_job(&format!("infmax-{runner}"));
}
