//! GPU telemetry during the timed phase: power, SM clock, temperature and memory, sampled
//! once a second by the vendor's own tool, so a result can say what it cost in energy.
//!
//! Why a module of its own: the numbers come from a child process (`nvidia-smi … -lms 1000`
//! or `amd-smi metric … --watch 1 --csv`) whose output formats differ, and from which we must
//! never invent a value. The parsers here turn either format into [`Sample`]s (a cell the
//! tool reports as `N/A` stays `None`), [`Sampler`] runs the tool for exactly the window it
//! is told to, and [`power`] validates them and integrates them over the benchmark window
//! into the agg row's energy fields (InferenceX's power schema v2). A missing or failing tool
//! means no telemetry, never a failed run.
//!
//! Every sample carries its Unix receipt time (`timestamp` in `gpu_metrics.csv`): the
//! benchmark window is in Unix time too, and InferenceX's `aggregate_power.py` reads our CSV
//! unchanged (it finds the timestamp, power and GPU columns by name).
//!
//! Engine-side telemetry lives beside it: [`prometheus`] parses the text exposition format
//! and [`server_metrics`] scrapes an engine's `/metrics` during a benchmark window into
//! AIPerf's `server_metrics_export.json` (the agentic workload's server-side numbers).

pub mod power;
pub mod prometheus;
pub mod server_metrics;

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

/// Which vendor tool produced the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `nvidia-smi --query-gpu=… --format=csv,noheader,nounits -lms <ms>`.
    NvidiaSmi,
    /// `amd-smi metric --power --clock --temperature --mem-usage --watch <s> --csv`.
    AmdSmi,
}

impl Tool {
    /// The executable's name.
    pub fn program(self) -> &'static str {
        match self {
            Tool::NvidiaSmi => "nvidia-smi",
            Tool::AmdSmi => "amd-smi",
        }
    }

    /// Arguments for one sample every `interval` (amd-smi: whole seconds, at least 1).
    pub fn args(self, interval: Duration) -> Vec<String> {
        match self {
            Tool::NvidiaSmi => vec![
                "--query-gpu=index,power.draw,clocks.sm,temperature.gpu,memory.used".into(),
                "--format=csv,noheader,nounits".into(),
                "-lms".into(),
                interval.as_millis().max(1).to_string(),
            ],
            Tool::AmdSmi => vec![
                "metric".into(),
                "--power".into(),
                "--clock".into(),
                "--temperature".into(),
                "--mem-usage".into(),
                "--watch".into(),
                interval.as_secs().max(1).to_string(),
                "--csv".into(),
            ],
        }
    }

    /// The first of `candidates` found on `PATH`.
    pub fn detect(candidates: &[Tool]) -> Option<Tool> {
        candidates
            .iter()
            .copied()
            .find(|t| which(t.program()).is_some())
    }
}

/// Full path of `program` on `PATH`, if it is an executable file there.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// One GPU's reading at one instant. A field the tool did not report is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the sampler started (receipt time of the line).
    pub t_s: f64,
    /// Receipt time of the line, Unix seconds (the clock of the benchmark window).
    pub t_unix: f64,
    /// GPU index as the tool numbers it.
    pub gpu: u32,
    /// Power draw (W); AMD: `socket_power`.
    pub power_w: Option<f64>,
    /// SM / graphics clock (MHz); AMD: `gfx_0_clk`, else `gfx_clk`.
    pub sm_clock_mhz: Option<f64>,
    /// Temperature (°C); NVIDIA: `temperature.gpu`; AMD: `hotspot`, else `edge`.
    pub temp_c: Option<f64>,
    /// Device memory in use (MiB); AMD: `used_vram`.
    pub mem_used_mib: Option<f64>,
}

/// A number from a cell: `N/A`, `[N/A]`, `[Not Supported]` and empty cells are `None`; a
/// trailing unit (`187.80 W`, `1965 MHz`) is ignored.
fn num(cell: &str) -> Option<f64> {
    let c = cell.trim().trim_matches('"').trim();
    let first = c.split_whitespace().next()?;
    first.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// One line of `nvidia-smi --query-gpu=index,power.draw,clocks.sm,temperature.gpu,memory.used
/// --format=csv,noheader,nounits`: `0, 187.80, 1965, 61, 81234`. Other lines (errors, a
/// header) give `None`.
pub fn parse_nvidia_line(line: &str, t_s: f64) -> Option<Sample> {
    let cells: Vec<&str> = line.split(',').collect();
    if cells.len() != 5 {
        return None;
    }
    let gpu = cells[0].trim().parse::<u32>().ok()?;
    Some(Sample {
        t_s,
        t_unix: t_s,
        gpu,
        power_w: num(cells[1]),
        sm_clock_mhz: num(cells[2]),
        temp_c: num(cells[3]),
        mem_used_mib: num(cells[4]),
    })
}

// CSV lines honour double quotes: amd-smi quotes list cells such as `"[0, 0]"`.
use crate::csv::fields as csv_cells;

/// The `amd-smi metric … --csv` reader: the header names the columns (their set and order
/// vary with the tool version and the GPU), every later line is one GPU. A repeated header
/// (watch mode on some versions) replaces the first.
#[derive(Debug, Default)]
pub struct AmdCsv {
    /// Column names of the last header seen.
    header: Vec<String>,
}

impl AmdCsv {
    /// Feed one line; a data line gives a sample.
    pub fn line(&mut self, line: &str, t_s: f64) -> Option<Sample> {
        let cells = csv_cells(line.trim_end_matches(['\r', '\n']));
        let is_header =
            cells.iter().any(|c| c.trim() == "gpu") && cells.iter().all(|c| num(c).is_none());
        if is_header {
            self.header = cells.iter().map(|c| c.trim().to_string()).collect();
            return None;
        }
        if self.header.is_empty() || cells.len() != self.header.len() {
            return None;
        }
        let col = |name: &str| {
            self.header
                .iter()
                .position(|h| h == name)
                .and_then(|i| num(&cells[i]))
        };
        let gpu = col("gpu")?;
        Some(Sample {
            t_s,
            t_unix: t_s,
            gpu: gpu as u32,
            power_w: col("socket_power"),
            sm_clock_mhz: col("gfx_0_clk").or_else(|| col("gfx_clk")),
            temp_c: col("hotspot").or_else(|| col("edge")),
            mem_used_mib: col("used_vram"),
        })
    }
}

/// Parse a whole recorded output of `tool` (each line stamped with its line number in
/// seconds: recorded outputs of `nvidia-smi` carry no time).
pub fn parse(tool: Tool, text: &str) -> Vec<Sample> {
    let mut amd = AmdCsv::default();
    let mut round = 0.0;
    let mut out = vec![];
    for line in text.lines() {
        let s = match tool {
            Tool::NvidiaSmi => parse_nvidia_line(line, round),
            Tool::AmdSmi => amd.line(line, round),
        };
        if let Some(s) = s {
            out.push(s);
        }
        round += 1.0;
    }
    out
}

/// `gpu_metrics.csv`: one line per sample, empty cells where the tool reported nothing.
/// `timestamp` is the Unix receipt time to the microsecond, `t_s` the seconds since the
/// sampler started.
pub fn to_csv(tool: Tool, samples: &[Sample]) -> String {
    let cell = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut s = String::from("timestamp,t_s,tool,gpu,power_w,sm_clock_mhz,temp_c,mem_used_mib\n");
    for x in samples {
        s.push_str(&format!(
            "{:.6},{:.3},{},{},{},{},{},{}\n",
            x.t_unix,
            x.t_s,
            tool.program(),
            x.gpu,
            cell(x.power_w),
            cell(x.sm_clock_mhz),
            cell(x.temp_c),
            cell(x.mem_used_mib)
        ));
    }
    s
}

/// Why a sampler could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The tool (or its wrapper) could not be spawned.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// The command line.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// How long [`Sampler::stop`] waits for a tool that has not said anything yet.
pub const FIRST_WORD_GRACE: Duration = Duration::from_secs(2);

/// A running sampler: the tool as a child in its own process group, and a thread parsing
/// its output as it arrives.
pub struct Sampler {
    /// The tool (or `srun … tool`).
    child: std::process::Child,
    /// Collects the samples until the tool's output closes.
    reader: std::thread::JoinHandle<Vec<Sample>>,
    /// Its stderr, for the warning when nothing came out.
    stderr: std::thread::JoinHandle<String>,
    /// Which tool runs.
    pub tool: Tool,
    /// When it started.
    started: Instant,
    /// Set once the tool has written anything (a reading on stdout or a complaint on stderr):
    /// a sampler stopped before then gives the tool a moment to say it, so a job shorter than
    /// the tool's start-up still gets its failure message instead of an empty one.
    spoke: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Unix receipt time of the latest sample (f64 bits; 0 before the first).
    last_unix: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Sampler {
    /// Start `tool` sampling every `interval`, run through `wrapper` (e.g. `srun --jobid=J
    /// --overlap` so it runs on the allocated node; empty to run it here).
    pub fn start(
        tool: Tool,
        interval: Duration,
        wrapper: &[String],
    ) -> Result<Sampler, TelemetryError> {
        use std::os::unix::process::CommandExt;
        let mut argv: Vec<String> = wrapper.to_vec();
        argv.push(tool.program().into());
        argv.extend(tool.args(interval));
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|source| TelemetryError::Spawn {
            what: argv.join(" "),
            source,
        })?;
        let started = Instant::now();
        let started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let spoke = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spoke_out = spoke.clone();
        let last_unix = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let last_unix_out = last_unix.clone();
        let reader = std::thread::spawn(move || {
            let mut amd = AmdCsv::default();
            let mut samples = vec![];
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                spoke_out.store(true, std::sync::atomic::Ordering::Relaxed);
                let t = started.elapsed().as_secs_f64();
                let s = match tool {
                    Tool::NvidiaSmi => parse_nvidia_line(&line, t),
                    Tool::AmdSmi => amd.line(&line, t),
                };
                if s.is_some() {
                    last_unix_out.store(
                        (started_unix + t).to_bits(),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
                samples.extend(s.map(|s| Sample {
                    t_unix: started_unix + t,
                    ..s
                }));
            }
            samples
        });
        let spoke_err = spoke.clone();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                spoke_err.store(true, std::sync::atomic::Ordering::Relaxed);
                s.push_str(&line);
                s.push('\n');
            }
            s
        });
        Ok(Sampler {
            child,
            reader,
            stderr,
            tool,
            started,
            spoke,
            last_unix,
        })
    }

    /// Wait (at most `limit`) until a sample received at or after `t_unix` has arrived, so
    /// the stream brackets a window that ended at `t_unix` (0: any sample); `false` on
    /// timeout or when the tool has exited.
    pub fn wait_for_sample_after(&mut self, t_unix: f64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let last = f64::from_bits(self.last_unix.load(std::sync::atomic::Ordering::Relaxed));
            if last > 0.0 && last >= t_unix {
                // The tool prints every GPU's line of one round together: let the rest in.
                std::thread::sleep(Duration::from_millis(50));
                return true;
            }
            if Instant::now() >= deadline || !matches!(self.child.try_wait(), Ok(None)) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the tool (SIGTERM to its group, SIGKILL after 3 s) and return its samples and
    /// the tail of its stderr, prefixed with how it ended when it ended by itself. A tool that has not written anything yet first gets up to
    /// [`FIRST_WORD_GRACE`] to do so or exit (a broken driver fails within milliseconds; a
    /// one-request job can end before the tool has even started).
    pub fn stop(mut self) -> (Vec<Sample>, String) {
        let pid = self.child.id() as i32;
        let grace = Instant::now() + FIRST_WORD_GRACE;
        while Instant::now() < grace
            && !self.spoke.load(std::sync::atomic::Ordering::Relaxed)
            && matches!(self.child.try_wait(), Ok(None))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let ended_by_itself = self.child.try_wait().ok().flatten();
        if ended_by_itself.is_none() {
            // SAFETY: signalling the process group we created for the tool.
            unsafe { libc::kill(-pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: as above.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
        let samples = self.reader.join().unwrap_or_default();
        let err = self.stderr.join().unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        let mut tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        if let Some(status) = ended_by_itself.filter(|s| !s.success()) {
            tail = format!(
                "{} ended on its own ({status}){}{tail}",
                self.tool.program(),
                if tail.is_empty() { "" } else { ": " }
            );
        }
        tracing::debug!(
            "{} sampled {} readings in {:.1} s",
            self.tool.program(),
            samples.len(),
            self.started.elapsed().as_secs_f64()
        );
        (samples, tail)
    }
}

/// Write `gpu_metrics.csv` into `dir`.
pub fn write_csv(dir: &Path, tool: Tool, samples: &[Sample]) -> std::io::Result<()> {
    crate::fsutil::write_atomic(
        &dir.join("gpu_metrics.csv"),
        to_csv(tool, samples).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_with_units_and_na() {
        assert_eq!(num(" 187.80 W"), Some(187.8));
        assert_eq!(num("[N/A]"), None);
        assert_eq!(num("N/A"), None);
        assert_eq!(num(""), None);
        assert_eq!(
            csv_cells(r#"1,"[0, 0]",x"#),
            vec!["1".to_string(), "[0, 0]".into(), "x".into()]
        );
    }
}
