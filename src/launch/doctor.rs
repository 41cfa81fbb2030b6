//! `runner doctor`: is this machine ready for what a launch profile needs?
//!
//! A GPU runner that lacks docker, a Slurm controller, its GPU tool or disk space fails a
//! job hours into a sweep, after the image pull and the model download. The doctor checks
//! each need in a second or two, one line per check, before anything is queued: the launch
//! profile itself, the tools its kind runs (`docker` and its daemon, `salloc`/`srun`/
//! `scancel`/`sinfo` and the controller, `bash`), the GPU tool its vendor has (`nvidia-smi`,
//! `amd-smi`/`rocm-smi`), with a row also its launch template, image and GPU count, the
//! Hugging Face cache and whether `HF_TOKEN` is set (never its value), the engine port and
//! free disk space. Required checks that fail make the exit status nonzero; warnings are
//! things a run may survive (a missing token for an ungated model).

use super::engine;
use super::profile::{self, Gpus, NamedProfile, Profile};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Present and working.
    Ok,
    /// Not needed, or a run may survive it; said so the user can judge.
    Warn,
    /// Required and missing or broken: the profile cannot run here.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// What was checked (`docker`, `GPU tool`, `port`…).
    pub what: String,
    /// The outcome.
    pub status: Status,
    /// What was found, or what to do about it.
    pub detail: String,
}

/// What to check.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// Launch profiles and `map.yaml`.
    pub runners_dir: PathBuf,
    /// Launch templates (checked for a row).
    pub benchmarks_dir: PathBuf,
    /// The profile by name; else chosen by `map.yaml` from the runner name or the row.
    pub profile: Option<String>,
    /// The runner name (`$RUNNER_NAME`) the map chooses by.
    pub runner_name: Option<String>,
    /// A row to check the template, image and GPU count of.
    pub row: Option<crate::config::row::JobRow>,
    /// The engine port a run would use (else: any free one will do).
    pub port: Option<u16>,
    /// Where results would be written (free space).
    pub out: PathBuf,
    /// How long a tool may take to answer (`docker info`, `sinfo`, `nvidia-smi`).
    pub tool_timeout: Duration,
}

/// Run every check for the options' profile, in report order.
pub fn run(o: &DoctorOptions) -> (Option<NamedProfile>, Vec<Check>) {
    let mut c = Checks(vec![]);
    let labels: Vec<&str> = o
        .runner_name
        .iter()
        .map(String::as_str)
        .chain(o.row.as_ref().map(|r| r.runner.as_str()))
        .collect();
    let named = match (&o.profile, labels.is_empty()) {
        (Some(p), _) => Some(profile::load(&o.runners_dir, p)),
        (None, false) => Some(profile::resolve(&o.runners_dir, &labels)),
        (None, true) => None,
    };
    let named = match named {
        Some(Ok(p)) => {
            c.ok(
                "profile",
                format!(
                    "{} ({}, {})",
                    p.name,
                    p.file.display(),
                    describe(&p.profile)
                ),
            );
            Some(p)
        }
        Some(Err(e)) => {
            c.fail("profile", e.to_string());
            None
        }
        None => {
            c.warn(
                "profile",
                "none chosen (pass --profile NAME, --config ROW or set RUNNER_NAME): checking the machine only".to_string(),
            );
            None
        }
    };
    match named.as_ref().map(|p| &p.profile) {
        Some(Profile::Sim { .. }) => c.ok("engine", "the built-in simulated engine".into()),
        Some(Profile::Local {}) => {
            c.tool("bash", true);
            gpu_tools(&mut c, None, o);
        }
        Some(Profile::Docker { gpus, .. }) => {
            if c.tool("docker", true).is_some()
                && c.answers(
                    "docker daemon",
                    "docker",
                    &["info", "--format", "{{.ServerVersion}}"],
                    true,
                    o,
                )
            {
                if let Some(r) = &o.row {
                    image(&mut c, &r.image, o);
                }
            }
            gpu_tools(&mut c, Some(*gpus), o);
        }
        Some(Profile::Slurm { .. }) => {
            let all = ["salloc", "srun", "scancel", "sinfo"]
                .iter()
                .all(|t| c.tool(t, true).is_some());
            if all {
                c.answers(
                    "slurm controller",
                    "sinfo",
                    &["-h", "-o", "%P %a %D %T"],
                    true,
                    o,
                );
            }
            c.ok(
                "GPU tool",
                "not checked: the GPUs are on the allocated node (--gres=gpu:<tp>)".into(),
            );
        }
        None => gpu_tools(&mut c, None, o),
    }
    if let (Some(r), Some(p)) = (&o.row, &named) {
        if !matches!(p.profile, Profile::Sim { .. }) {
            match crate::recipe::find_template(&o.benchmarks_dir, r) {
                Ok(t) => c.ok("launch template", t.display().to_string()),
                Err(e) => c.fail("launch template", e.to_string()),
            }
        }
    }
    hf(
        &mut c,
        named
            .as_ref()
            .is_some_and(|p| !matches!(p.profile, Profile::Sim { .. })),
    );
    port(&mut c, o.port);
    disk(&mut c, &o.out, named.as_ref());
    (named, c.0)
}

fn describe(p: &Profile) -> String {
    match p {
        Profile::Docker { gpus, .. } => format!(
            "docker, {} GPUs",
            match gpus {
                Gpus::Amd => "AMD",
                Gpus::Nvidia => "NVIDIA",
                Gpus::None => "no",
            }
        ),
        p => p.kind().to_string(),
    }
}

struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, what: &str, status: Status, detail: String) {
        self.0.push(Check {
            what: what.to_string(),
            status,
            detail,
        });
    }
    fn ok(&mut self, what: &str, detail: String) {
        self.push(what, Status::Ok, detail)
    }
    fn warn(&mut self, what: &str, detail: String) {
        self.push(what, Status::Warn, detail)
    }
    fn fail(&mut self, what: &str, detail: String) {
        self.push(what, Status::Fail, detail)
    }

    /// `tool` on PATH; a line either way when `required`.
    fn tool(&mut self, tool: &str, required: bool) -> Option<PathBuf> {
        match which(tool) {
            Some(p) => {
                self.ok(tool, p.display().to_string());
                Some(p)
            }
            None if required => {
                self.fail(tool, "not found on PATH".into());
                None
            }
            None => None,
        }
    }

    /// `tool args` exits 0 within the timeout; its first output line is the detail.
    fn answers(
        &mut self,
        what: &str,
        tool: &str,
        args: &[&str],
        required: bool,
        o: &DoctorOptions,
    ) -> bool {
        match run_tool(tool, args, o.tool_timeout) {
            Ok(out) => {
                self.ok(what, first_line(&out, "answers"));
                true
            }
            Err(e) => {
                let line = format!("`{tool} {}`: {e}", args.join(" "));
                if required {
                    self.fail(what, line)
                } else {
                    self.warn(what, line)
                }
                false
            }
        }
    }
}

fn first_line(out: &str, default: &str) -> String {
    out.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(default)
        .to_string()
}

/// The GPU tool of `vendor` (required), or of either vendor (informational) when unknown.
fn gpu_tools(c: &mut Checks, vendor: Option<Gpus>, o: &DoctorOptions) {
    let nvidia = || run_tool("nvidia-smi", &["-L"], o.tool_timeout);
    let amd = || {
        run_tool("amd-smi", &["list"], o.tool_timeout)
            .or_else(|_| run_tool("rocm-smi", &["--showid"], o.tool_timeout))
    };
    let count = |out: &str, marker: &str| {
        out.lines()
            .filter(|l| l.trim_start().starts_with(marker))
            .count()
    };
    let need = o.row.as_ref().map(|r| r.tp);
    let judge = |c: &mut Checks, tool: &str, n: usize| match need {
        Some(tp) if (n as u32) < tp => c.fail(
            "GPUs",
            format!("{tool} lists {n} GPUs; the row needs tp = {tp}"),
        ),
        _ => c.ok("GPUs", format!("{tool} lists {n}")),
    };
    match vendor {
        Some(Gpus::Nvidia) => match nvidia() {
            Ok(out) => judge(c, "nvidia-smi", count(&out, "GPU ")),
            Err(e) => c.fail(
                "GPU tool",
                format!(
                    "nvidia-smi: {e} (`--gpus all` needs the NVIDIA driver and container toolkit)"
                ),
            ),
        },
        Some(Gpus::Amd) => match amd() {
            Ok(out) => judge(c, "amd-smi", count(&out, "GPU").max(1)),
            Err(e) => c.fail(
                "GPU tool",
                format!("amd-smi/rocm-smi: {e} (ROCm engines need the amdgpu driver)"),
            ),
        },
        Some(Gpus::None) => c.ok("GPU tool", "not needed (gpus: none)".into()),
        None => match (nvidia(), amd()) {
            (Ok(out), _) => judge(c, "nvidia-smi", count(&out, "GPU ")),
            (_, Ok(out)) => judge(c, "amd-smi", count(&out, "GPU").max(1)),
            (Err(_), Err(_)) => c.warn(
                "GPU tool",
                "neither nvidia-smi nor amd-smi/rocm-smi answers: no GPU engine can run here"
                    .into(),
            ),
        },
    }
}

/// The row's image is present locally (else it is pulled at launch, which may take long).
fn image(c: &mut Checks, image: &str, o: &DoctorOptions) {
    match run_tool(
        "docker",
        &["image", "inspect", "--format", "{{.Id}}", image],
        o.tool_timeout,
    ) {
        Ok(_) => c.ok("engine image", format!("{image} is present")),
        Err(_) => c.warn(
            "engine image",
            format!("{image} is not present locally: it is pulled at launch (often tens of GB)"),
        ),
    }
}

/// The Hugging Face cache (models and datasets) and whether a token is set, never its value.
fn hf(c: &mut Checks, real_engine: bool) {
    let dir = crate::tokenizer::hub_cache_dir();
    let free = free_bytes(&dir).map(gib).unwrap_or_default();
    if dir.is_dir() {
        if writable(&dir) {
            c.ok("HF cache", format!("{} (writable{free})", dir.display()));
        } else {
            c.fail(
                "HF cache",
                format!(
                    "{} is not writable: models cannot be downloaded into it",
                    dir.display()
                ),
            );
        }
    } else {
        c.warn(
            "HF cache",
            format!(
                "{} does not exist yet (created on first download{free})",
                dir.display()
            ),
        );
    }
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if set("HF_TOKEN") || set("HUGGING_FACE_HUB_TOKEN") {
        c.ok("HF_TOKEN", "set".into());
    } else if real_engine {
        c.warn(
            "HF_TOKEN",
            "not set: gated models (Llama, …) and rate-limited downloads fail".into(),
        );
    } else {
        c.ok("HF_TOKEN", "not set (not needed on the simulator)".into());
    }
}

fn port(c: &mut Checks, port: Option<u16>) {
    match port {
        Some(p) => match engine::check_port_free(p) {
            Ok(()) => c.ok("port", format!("{p} is free")),
            Err(e) => c.fail("port", e.to_string()),
        },
        None => match engine::free_port() {
            Ok(p) => c.ok("port", format!("a free one is picked at launch (e.g. {p})")),
            Err(e) => c.fail("port", format!("no free port: {e}")),
        },
    }
}

/// Results need little space, an engine image or model a lot.
fn disk(c: &mut Checks, out: &Path, p: Option<&NamedProfile>) {
    let Some(free) = free_bytes(out) else {
        c.warn(
            "disk",
            format!("cannot tell the free space at {}", out.display()),
        );
        return;
    };
    let real = p.is_some_and(|p| !matches!(p.profile, Profile::Sim { .. }));
    let (need, want) = (1u64 << 30, if real { 100u64 << 30 } else { 1u64 << 30 });
    let line = format!("{}{} free", out.display(), gib(free));
    if free < need {
        c.fail("disk", format!("{line}: results need at least 1 GiB"));
    } else if free < want {
        c.warn(
            "disk",
            format!("{line}: engine images and models take 100 GiB and more"),
        );
    } else {
        c.ok("disk", line);
    }
}

fn gib(b: u64) -> String {
    format!(", {:.0} GiB", b as f64 / (1u64 << 30) as f64)
}

/// Free bytes on the file system holding `p` (or its nearest existing ancestor).
fn free_bytes(p: &Path) -> Option<u64> {
    let mut dir = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    while !dir.exists() {
        dir = dir
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
    }
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed statvfs the call fills in.
    (unsafe { libc::statvfs(c.as_ptr(), &mut s) } == 0)
        .then(|| s.f_bavail as u64 * s.f_frsize as u64)
}

fn writable(dir: &Path) -> bool {
    tempfile::tempfile_in(dir).is_ok()
}

/// `tool` found on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(tool))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Run `tool args` with a deadline; its stdout when it exits 0, else what went wrong.
fn run_tool(tool: &str, args: &[&str], timeout: Duration) -> Result<String, String> {
    let path = which(tool).ok_or("not found on PATH")?;
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "exit status {}: {}",
            out.status.code().map_or("signal".into(), |c| c.to_string()),
            first_line(&err, &first_line(&text, "no output"))
        ))
    }
}
