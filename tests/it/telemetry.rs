//! GPU telemetry: the `nvidia-smi` and `amd-smi` parsers on recorded outputs
//! (`tests/fixtures/telemetry/`), and the sampler end to end in `runner exec` with a fake
//! `nvidia-smi` on `PATH` — plus a missing and a broken tool, which must cost the run
//! nothing but the energy fields.

use crate::util::{fixture, read_json, root, write, QUICK_BATCH};
use infmax::telemetry::{self, Tool};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const RUNNER: &str = env!("CARGO_BIN_EXE_runner");

/// A small row the tiny sim preset serves in well under a second.
pub fn row(conc: u32) -> Value {
    json!({"image": "img:1", "model": "infmax/sim", "precision": "fp4", "framework": "sglang",
           "runner": "mi355x", "isl": 64, "osl": 16, "tp": 8, "conc": conc, "max-model-len": 280,
           "ep": 1, "dp-attn": false, "exp-name": "dsr1_64_16"})
}

/// A work dir with `runners/`, `benchmarks/` and a fake-tools dir put first on `PATH`.
pub struct Work {
    /// The directory.
    pub dir: tempfile::TempDir,
}

impl Work {
    pub fn new() -> Work {
        let dir = tempfile::tempdir().unwrap();
        for d in ["runners", "benchmarks", "bin"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let w = Work { dir };
        write(&w.path().join("runners"), "local.yaml", "kind: local\n");
        write(&w.path().join("runners"), "map.yaml", "\"*\": local\n");
        w
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// The row file for `v`.
    pub fn row(&self, v: &Value) -> String {
        write(self.path(), "row.json", &v.to_string())
    }
    /// The template for `row()` that serves the simulated engine with `sim_yaml` on
    /// `host` (all interfaces for Slurm, whose readiness check uses the node's name).
    pub fn sim_template(&self, sim_yaml: &str, host: &str) {
        let cfg = write(self.path(), "sim.yaml", sim_yaml);
        write(
            &self.path().join("benchmarks"),
            "dsr1_fp4_mi355x_sglang.sh",
            &format!(
                "#!/usr/bin/env bash\nset -euo pipefail\n\
                 exec {RUNNER} sim --host {host} --port \"$PORT\" --config {cfg}\n"
            ),
        );
    }
    /// An executable `bin/<name>` (first on the runner's `PATH`).
    pub fn tool(&self, name: &str, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path().join("bin").join(name);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
    /// `runner <sub>` in the work dir with `bin/` first on `PATH` (or `path` as `PATH`).
    pub fn cmd(&self, sub: &str, args: &[&str], path: Option<&str>) -> Command {
        let mut c = Command::new(RUNNER);
        let default_path = format!(
            "{}:{}",
            self.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.current_dir(self.path())
            .arg(sub)
            .args(["--out", "out", "--runners", "runners"])
            .args([
                "--benchmarks",
                "benchmarks",
                "--tokenizer",
                "infmax/embedded",
            ])
            .args([
                "--baselines",
                &root().join("baselines").display().to_string(),
            ])
            .args(args)
            .env("PATH", path.unwrap_or(&default_path))
            .env_remove("RUNNER_NAME")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("GITHUB_ACTIONS");
        c
    }
    /// Run `runner <sub>` (see `cmd`) to the end.
    pub fn run(&self, sub: &str, args: &[&str], path: Option<&str>) -> Output {
        self.cmd(sub, args, path).output().unwrap()
    }
    pub fn job_dir(&self, conc: u32) -> PathBuf {
        self.path().join(format!(
            "out/dsr1_64_16_fp4_sglang_tp8_ep1_dpa_false_conc{conc}_mi355x"
        ))
    }
    pub fn json(&self, conc: u32, file: &str) -> Value {
        read_json(&self.job_dir(conc).join(file))
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} != {b}");
}

#[test]
fn nvidia_smi_recording_parses_every_gpu_and_keeps_na_empty() {
    let text = std::fs::read_to_string(fixture("telemetry/nvidia-smi-b200x8.csv")).unwrap();
    let s = telemetry::parse(Tool::NvidiaSmi, &text);
    assert_eq!(s.len(), 32, "4 samples × 8 GPUs");
    assert_eq!(s[0].gpu, 0);
    assert_eq!(s[0].power_w, Some(612.45));
    assert_eq!(s[0].sm_clock_mhz, Some(1965.0));
    assert_eq!(s[0].temp_c, Some(41.0));
    assert_eq!(s[0].mem_used_mib, Some(171234.0));
    let na = s.iter().find(|x| x.gpu == 5 && x.t_s == 21.0).unwrap();
    assert_eq!(na.power_w, None, "[N/A] is no reading, not zero");
    assert_eq!(na.temp_c, Some(52.0));
    // Error output (no driver) and a header line are no samples.
    assert!(telemetry::parse(
        Tool::NvidiaSmi,
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n\
         index, power.draw [W], clocks.current.sm [MHz], temperature.gpu, memory.used [MiB]\n"
    )
    .is_empty());
}

#[test]
fn amd_smi_recording_parses_by_column_name() {
    let text =
        std::fs::read_to_string(fixture("telemetry/amd-smi-metric-watch-mi355x.csv")).unwrap();
    let s = telemetry::parse(Tool::AmdSmi, &text);
    assert_eq!(s.len(), 24, "3 samples × 8 GPUs");
    let first = &s[0];
    assert_eq!(first.gpu, 0);
    assert_eq!(first.power_w, Some(238.0));
    assert_eq!(first.sm_clock_mhz, Some(132.0), "gfx_0_clk");
    assert_eq!(first.temp_c, Some(44.0), "hotspot");
    assert_eq!(first.mem_used_mib, Some(250112.0), "used_vram");
    // GPU 3's hotspot is N/A in the first sample: the edge is N/A too, so no temperature.
    let g3 = s.iter().find(|x| x.gpu == 3).unwrap();
    assert_eq!(g3.temp_c, None);
    let last = s.last().unwrap();
    assert_eq!(
        (last.gpu, last.power_w, last.sm_clock_mhz),
        (7, Some(1218.0), Some(2398.0))
    );
    // An older tool without per-XCC clocks or hotspot, whose watch mode repeats the header.
    let old = "gpu,socket_power,gfx_clk,mem_clk,edge,used_vram\n\
               0,300,1700,900,51,1024\n\
               gpu,socket_power,gfx_clk,mem_clk,edge,used_vram\n\
               0,N/A,1710,900,52,1030\n";
    let s = telemetry::parse(Tool::AmdSmi, old);
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0].sm_clock_mhz, s[0].temp_c, s[1].power_w),
        (Some(1700.0), Some(51.0), None)
    );
}

/// A fake `nvidia-smi`: logs its pid and arguments to `log`, then prints `watts` for two
/// GPUs every 0.2 s until stopped.
pub fn fake_nvidia_smi(w: &Work, log: &Path, watts: &str) -> PathBuf {
    w.tool(
        "nvidia-smi",
        &format!(
            "#!/usr/bin/env bash\necho \"$$ $*\" >>'{}'\nwhile true; do\n  \
             echo \"0, {watts}, 1965, 50, 1024\"\n  echo \"1, {watts}, 1965, 51, 2048\"\n  \
             sleep 0.2\ndone\n",
            log.display()
        ),
    )
}

/// The sampler's pids the fake tool logged are all gone.
pub fn assert_tool_stopped(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap();
    for pid in text
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse::<i32>().ok())
    {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // SAFETY: signal 0 only checks for existence.
        while std::time::Instant::now() < deadline && unsafe { libc::kill(pid, 0) } == 0 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "sampler {pid} still runs");
    }
}

#[test]
fn exec_samples_a_fake_nvidia_smi_during_the_timed_phase() {
    let w = Work::new();
    let log = w.path().join("nvidia-smi.log");
    fake_nvidia_smi(&w, &log, "250.00");
    // 50 ms per token: the timed phase lasts long enough for several samples.
    w.sim_template(
        "preset: exact\nexact:\n  ttft-ms: 50\n  itl-ms: 50\n",
        "127.0.0.1",
    );
    // Two GPUs, as the fake tool reports: power schema v2 checks the count.
    let mut two = row(2);
    two["tp"] = 2.into();
    let r = w.row(&two);
    let args = [
        "--config",
        &r,
        "--prompts-multiplier",
        "2",
        "--num-warmups",
        "2",
    ];
    let o = w.run("exec", &args, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let args = std::fs::read_to_string(&log).unwrap();
    assert_eq!(args.lines().count(), 1, "one sampler per job: {args}");
    assert!(args.contains(
        "--query-gpu=index,power.draw,clocks.sm,temperature.gpu,memory.used \
         --format=csv,noheader,nounits -lms 1000"
    ));
    assert_tool_stopped(&log);
    let d = w
        .path()
        .join("out/dsr1_64_16_fp4_sglang_tp2_ep1_dpa_false_conc2_mi355x");
    let csv = std::fs::read_to_string(d.join("gpu_metrics.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("timestamp,t_s,tool,gpu,power_w,sm_clock_mhz,temp_c,mem_used_mib")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(rows.len() >= 4, "{csv}");
    assert!(rows[0].ends_with(",nvidia-smi,0,250,1965,50,1024"), "{csv}");
    // Power schema v2: the stream brackets the benchmark window (the sampler starts before
    // the warmups and stops after a sample past the end), both GPUs at a constant 250 W.
    let agg = read_json(&d.join("agg.json"));
    let bench = read_json(&d.join("bench.json"));
    let v = read_json(&d.join("power_validation.json"));
    assert_eq!(v["power_valid"], true, "{v}");
    assert_eq!(agg["power_metric_schema_version"], 2);
    assert_eq!(agg["power_valid"], 1);
    let window = bench["benchmark_end_time_unix"].as_f64().unwrap()
        - bench["benchmark_start_time_unix"].as_f64().unwrap();
    let t_first: f64 = rows[0].split(',').next().unwrap().parse().unwrap();
    assert!(t_first <= bench["benchmark_start_time_unix"].as_f64().unwrap());
    close(agg["avg_power_w"].as_f64().unwrap(), 250.0);
    close(agg["avg_total_gpu_power_w"].as_f64().unwrap(), 500.0);
    let energy = 500.0 * window;
    assert!((agg["total_gpu_energy_j"].as_f64().unwrap() - energy).abs() < 1e-3);
    let out_tokens = bench["total_output_tokens"].as_f64().unwrap();
    let in_tokens = bench["total_input_tokens"].as_f64().unwrap();
    let rel = |a: f64, b: f64| assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-3), "{a} vs {b}");
    rel(
        agg["joules_per_output_token"].as_f64().unwrap(),
        energy / out_tokens,
    );
    rel(
        agg["joules_per_total_token"].as_f64().unwrap(),
        energy / (in_tokens + out_tokens),
    );
    rel(
        agg["joules_per_successful_query"].as_f64().unwrap(),
        energy / bench["completed"].as_f64().unwrap(),
    );
    if let Some(keep) = std::env::var_os("INFMAX_KEEP_POWER_CASE") {
        let keep = std::path::PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        for f in ["gpu_metrics.csv", "bench.json"] {
            std::fs::copy(d.join(f), keep.join(f)).unwrap();
        }
    }
}

#[test]
fn telemetry_for_the_wrong_gpu_count_is_not_valid() {
    // The fake reports 2 GPUs; the row has tp 8: power_valid 0, the reason in the sidecar,
    // no energy figure in the row.
    let w = Work::new();
    let log = w.path().join("nvidia-smi.log");
    fake_nvidia_smi(&w, &log, "250.00");
    w.sim_template("preset: tiny\n", "127.0.0.1");
    let r = w.row(&row(1));
    let o = w.run("exec", &["--config", &r, "--prompts-multiplier", "1"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let agg = w.json(1, "agg.json");
    assert_eq!(agg["power_metric_schema_version"], 2);
    assert_eq!(agg["power_valid"], 0);
    assert!(agg.get("avg_power_w").is_none() && agg.get("total_gpu_energy_j").is_none());
    let v = w.json(1, "power_validation.json");
    assert_eq!(v["power_valid"], false);
    assert!(
        v["reasons"]
            .as_array()
            .unwrap()
            .contains(&"expected_gpu_count_mismatch".into()),
        "{v}"
    );
    assert_eq!(v["expected_gpu_count"], 8);
    assert_eq!(v["observed_gpu_count"], 2);
    assert!(stderr(&o).contains("GPU telemetry not valid (expected_gpu_count_mismatch"));
    assert_tool_stopped(&log);
}

#[test]
fn missing_or_broken_tool_costs_only_the_energy_fields() {
    // No tool at all: PATH without nvidia-smi or amd-smi.
    let w = Work::new();
    w.sim_template("preset: tiny\n", "127.0.0.1");
    let r = w.row(&row(1));
    let args = [&["--config", r.as_str()][..], &QUICK_BATCH].concat();
    let o = w.run("batch", &args, Some("/usr/bin:/bin"));
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(
        e.matches("GPU telemetry skipped").count(),
        1,
        "one warning per run: {e}"
    );
    for c in [1, 2] {
        let agg = w.json(c, "agg.json");
        for k in [
            "avg_power_w",
            "total_gpu_energy_j",
            "joules_per_output_token",
            "joules_per_total_token",
        ] {
            assert!(agg.get(k).is_none(), "{k} invented: {agg}");
        }
        assert!(!w.job_dir(c).join("gpu_metrics.csv").exists());
    }

    // A tool that fails like nvidia-smi without a driver.
    let w = Work::new();
    w.sim_template("preset: tiny\n", "127.0.0.1");
    w.tool(
        "nvidia-smi",
        "#!/usr/bin/env bash\necho 'NVIDIA-SMI has failed because it couldn'\"'\"'t communicate with the NVIDIA driver.' >&2\nexit 9\n",
    );
    let r = w.row(&row(1));
    let o = w.run("exec", &["--config", &r, "--prompts-multiplier", "1"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("nvidia-smi produced no readings") && e.contains("NVIDIA driver"),
        "{e}"
    );
    assert!(w.json(1, "agg.json").get("avg_power_w").is_none());
    assert!(!w.job_dir(1).join("gpu_metrics.csv").exists());
}

/// A Prometheus endpoint (`/metrics`) whose counter grows by 10 per scrape, and one that
/// answers JSON (`/json`, as TRT-LLM does): a bare HTTP/1.1 responder, one request per
/// connection.
async fn prometheus_server() -> (String, String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => len += k,
                }
            }
            let head = String::from_utf8_lossy(&buf[..len]).to_string();
            let (ctype, body) = if head.starts_with("GET /json") {
                ("application/json", "[{\"iter\": 1}]".to_string())
            } else {
                n += 1;
                (
                    "text/plain; version=0.0.4",
                    format!(
                        "# HELP sglang:prompt_tokens_total Prompt tokens.\n\
                         # TYPE sglang:prompt_tokens_total counter\n\
                         sglang:prompt_tokens_total{{model_name=\"m\"}} {}\n\
                         # TYPE sglang:token_usage gauge\n\
                         sglang:token_usage{{model_name=\"m\"}} 0.5\n",
                        n * 10
                    ),
                )
            };
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        }
    });
    (
        format!("http://{addr}/metrics"),
        format!("http://{addr}/json"),
        task,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_metrics_scraper_exports_the_window() {
    use infmax::telemetry::server_metrics::{self, Window};
    use std::time::Duration;
    let (prom, json_url, server) = prometheus_server().await;
    let scraper =
        server_metrics::start(&[prom.clone(), json_url.clone()], Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start_ns = server_metrics::now_ns();
    tokio::time::sleep(Duration::from_millis(450)).await;
    let end_ns = server_metrics::now_ns();
    let export = scraper.finish(Window { start_ns, end_ns }).await;
    server.abort();
    let v = serde_json::to_value(&export).unwrap();
    assert_eq!(
        v["summary"]["endpoints_configured"],
        json!([prom, json_url])
    );
    assert_eq!(v["summary"]["endpoints_successful"], json!([prom]));
    assert!(v["summary"]["endpoint_info"][&json_url]["disabled"]
        .as_str()
        .unwrap()
        .contains("application/json"));
    let c = &v["metrics"]["sglang:prompt_tokens"];
    assert_eq!(c["type"], "counter");
    assert_eq!(c["description"], "Prompt tokens.");
    let s = &c["series"][0];
    assert_eq!(s["endpoint_url"], json!(prom));
    assert_eq!(s["labels"], json!({"model_name": "m"}));
    // ~22 scrapes of +10 in 450 ms at 20 ms; never the warmup's 50-ish, always a multiple of 10.
    let total = s["stats"]["total"].as_f64().unwrap();
    assert!((100.0..=300.0).contains(&total), "{total}");
    assert_eq!(total % 10.0, 0.0);
    let slices = s["timeslices"].as_array().unwrap();
    assert_eq!(slices.len(), 1, "one partial 1 s slice: {slices:?}");
    assert_eq!(slices[0]["is_complete"], false);
    let g = &v["metrics"]["sglang:token_usage"]["series"][0]["stats"];
    assert_eq!(g["max"], 0.5);
    assert_eq!(g["p99"], 0.5);
    assert_eq!(v["metrics"]["sglang:token_usage"]["type"], "gauge");
    // The export is what InferenceX's aggregation reads.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server_metrics_export.json");
    export.write(&path).unwrap();
    assert_eq!(
        read_json(&path)["metrics"]["sglang:prompt_tokens"]["type"],
        "counter"
    );
}
