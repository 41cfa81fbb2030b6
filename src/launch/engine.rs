//! One running engine: spawn, readiness, teardown.

use super::profile::{Gpus, Profile};
use std::io::{BufRead, Seek};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why an engine could not be started or did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("port {port} is already in use{holder}; free it or pick another with --port")]
    PortInUse {
        port: u16,
        /// Who holds it, when this machine can tell (`by pid N (…)`), else a guess.
        holder: String,
    },
    #[error("cannot start the engine ({what}): {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the engine exited with {status} after {secs:.1} s before becoming ready; last lines of {log}:\n{tail}")]
    ExitedEarly {
        status: String,
        secs: f64,
        log: String,
        tail: String,
    },
    #[error("the engine did not become ready within {secs:.0} s (/health then /v1/models at {url}); last lines of {log}:\n{tail}")]
    NotReady {
        secs: f64,
        url: String,
        log: String,
        tail: String,
    },
    #[error("slurm: {0}")]
    Slurm(String),
}

/// What to launch and where its files go.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The materialised script (already written to `script_path`).
    pub script_path: PathBuf,
    /// Engine output goes here.
    pub log_path: PathBuf,
    /// Port the engine listens on.
    pub port: u16,
    /// The row's image (docker, pyxis).
    pub image: String,
    /// GPUs the engine uses (Slurm `--gres`).
    pub gpus: u32,
    /// Used for container and Slurm job names.
    pub job_name: String,
    /// Extra environment for the script (never secrets from files; those are inherited).
    pub env: Vec<(String, String)>,
    /// The `runner` executable, whose hidden `supervise` subcommand owns the engine's
    /// process group and kills it when the runner dies ([`super::supervise`]).
    pub supervisor: PathBuf,
}

/// How the engine must be torn down besides killing its process group.
#[derive(Debug, Clone, PartialEq)]
enum Teardown {
    Process,
    Docker { name: String },
    Slurm { job_id: String },
}

/// A launched engine. Dropping it stops it.
pub struct Engine {
    /// The supervisor running the engine command (bash running the recipe, or the docker /
    /// srun client), leader of the engine's own process group.
    handle: duct::Handle,
    /// Our end of the supervisor's lifeline: closed (by us, or by the kernel when we die),
    /// the supervisor tears the engine down.
    lifeline: Option<std::os::fd::OwnedFd>,
    /// Its process group, killed as a whole.
    pgid: i32,
    teardown: Teardown,
    /// `http://host:port` of the engine's API.
    pub base_url: String,
    /// The engine's output.
    pub log_path: PathBuf,
    /// When it was launched.
    pub started: Instant,
    stopped: bool,
}

/// Fail before launching when the port is taken (an engine binds all interfaces), saying
/// who holds it: a stale engine of an earlier run of ours (its pid, its group, its runner)
/// or another process.
pub fn check_port_free(port: u16) -> Result<(), LaunchError> {
    match std::net::TcpListener::bind(("0.0.0.0", port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(LaunchError::PortInUse {
            port,
            holder: port_holder(port)
                .map(|h| h.describe())
                .unwrap_or_else(|| " (another engine still running?)".into()),
        }),
        Err(_) => Ok(()),
    }
}

/// The process listening on a TCP port of this machine.
#[derive(Debug, Clone, PartialEq)]
pub struct PortHolder {
    pub pid: i32,
    /// Its process group (kill it whole with `kill -- -PGID`).
    pub pgid: i32,
    /// Its command line.
    pub cmdline: String,
    /// `<runner pid>:<job name>` when an infmax runner started it ([`super::supervise::OWNER_ENV`]).
    pub owner: Option<String>,
}

impl PortHolder {
    fn describe(&self) -> String {
        match &self.owner {
            Some(o) => {
                let (runner, job) = o.split_once(':').unwrap_or((o.as_str(), ""));
                let alive = runner
                    .parse::<i32>()
                    .is_ok_and(|p| unsafe { libc::kill(p, 0) } == 0);
                format!(
                    " by pid {} (`{}`), a stale engine of infmax job `{job}` started by runner pid {runner} ({}); stop it with `kill -- -{}`",
                    self.pid,
                    self.cmdline,
                    if alive { "still running" } else { "no longer running" },
                    self.pgid
                )
            }
            None => format!(
                " by pid {} (`{}`), not an engine of ours",
                self.pid, self.cmdline
            ),
        }
    }
}

/// Who listens on `port` (from `/proc/net/tcp{,6}` and `/proc/*/fd`); `None` when it cannot
/// be told (another user's process, another network namespace).
pub fn port_holder(port: u16) -> Option<PortHolder> {
    let mut inodes = vec![];
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            // sl local_address rem_address st … inode (10th column); 0A = LISTEN.
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let p = f[1]
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if p == Some(port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()))
        });
        if !holds {
            continue;
        }
        let read = |f: &str| std::fs::read(e.path().join(f)).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&read("cmdline"))
            .split('\0')
            .filter(|a| !a.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let owner = read("environ").split(|&b| b == 0).find_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.strip_prefix(&format!("{}=", super::supervise::OWNER_ENV))
                .map(str::to_string)
        });
        // SAFETY: getpgid only reads.
        let pgid = unsafe { libc::getpgid(pid) };
        return Some(PortHolder {
            pid,
            pgid,
            cmdline,
            owner,
        });
    }
    None
}

/// Docker label with the runner's job identity (`infmax-<runner name>`).
const JOB_LABEL: &str = "infmax.job";
/// Docker label with the pid of the runner that started the container.
const RUNNER_LABEL: &str = "infmax.runner";

/// Remove containers of our job identity left by a runner that is gone (killed, crashed):
/// their engines still hold GPUs and the port. Containers of a live runner are left alone.
fn remove_stale_containers(job: &str) {
    let Ok(o) = run_quiet(&[
        "docker",
        "ps",
        "-a",
        "--filter",
        &format!("label={JOB_LABEL}={job}"),
        "--format",
        &format!("{{{{.ID}}}} {{{{.Label \"{RUNNER_LABEL}\"}}}}"),
    ]) else {
        return;
    };
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        let mut w = l.split_whitespace();
        let Some(id) = w.next() else { continue };
        let runner = w.next().and_then(|p| p.parse::<i32>().ok());
        // SAFETY: signal 0 only checks for existence.
        let live = runner
            .is_some_and(|p| p != std::process::id() as i32 && unsafe { libc::kill(p, 0) } == 0);
        if live {
            continue;
        }
        tracing::warn!(
            "removing stale container {id} of job {job} (its runner pid {} is gone)",
            runner.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
        );
        let _ = run_quiet(&["docker", "rm", "-f", id]);
    }
}

/// A port nobody listens on now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// The last `n` lines of a log file (lossy UTF-8), for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return "(no log)".into();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(std::io::SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let lines: Vec<String> = std::io::BufReader::new(f)
        .split(b'\n')
        .map_while(Result::ok)
        .map(|l| String::from_utf8_lossy(&crate::term::strip_ansi(&l)).into_owned())
        .collect();
    let start = lines.len().saturating_sub(n);
    let t = lines[start..].join("\n");
    if t.trim().is_empty() {
        "(log is empty)".into()
    } else {
        t
    }
}

fn hf_cache() -> PathBuf {
    crate::tokenizer::hub_cache_dir()
}

/// Container names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]`.
fn container_name(job: &str) -> String {
    let clean: String = job
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "infmax-{}-{}",
        clean.chars().take(80).collect::<String>(),
        std::process::id()
    )
}

/// The command a profile runs for a spec (argv, no shell), and its teardown.
/// `container` is the docker container name (per-run in a launch, symbolic in `describe`).
fn command(
    profile: &Profile,
    spec: &LaunchSpec,
    container: &str,
    slurm_job: Option<&str>,
    runner_pid: &str,
) -> (Vec<String>, Teardown) {
    let script = spec.script_path.display().to_string();
    match profile {
        Profile::Local {} | Profile::Sim { .. } => (vec!["bash".into(), script], Teardown::Process),
        Profile::Docker {
            gpus,
            shm_size,
            hf_cache: mount_cache,
            extra_args,
        } => {
            let name = container.to_string();
            let dir = spec
                .script_path
                .parent()
                .unwrap_or(Path::new("."))
                .display()
                .to_string();
            let mut a: Vec<String> = vec![
                "docker".into(),
                "run".into(),
                "--rm".into(),
                "--name".into(),
                name.clone(),
                // The job identity, so the next run finds and removes a container this
                // one leaves behind (see `remove_stale_containers`).
                "--label".into(),
                format!("{JOB_LABEL}={}", spec.job_name),
                "--label".into(),
                format!("{RUNNER_LABEL}={}", runner_pid),
                "--network".into(),
                "host".into(),
                "--ipc".into(),
                "host".into(),
                "--shm-size".into(),
                shm_size.clone(),
            ];
            match gpus {
                Gpus::Amd => a.extend(
                    [
                        "--device",
                        "/dev/kfd",
                        "--device",
                        "/dev/dri",
                        "--group-add",
                        "video",
                        "--security-opt",
                        "seccomp=unconfined",
                    ]
                    .map(String::from),
                ),
                Gpus::Nvidia => a.extend(["--gpus", "all"].map(String::from)),
                Gpus::None => {}
            }
            if *mount_cache {
                a.push("-v".into());
                a.push(format!(
                    "{}:/root/.cache/huggingface/hub",
                    hf_cache().display()
                ));
                a.push("-e".into());
                a.push("HF_HUB_CACHE=/root/.cache/huggingface/hub".into());
            }
            // Secrets by name only: docker copies the value from our environment.
            a.push("-e".into());
            a.push("HF_TOKEN".into());
            a.push("-v".into());
            a.push(format!("{dir}:/infmax:ro"));
            a.extend(extra_args.iter().cloned());
            a.push(spec.image.clone());
            a.push("bash".into());
            a.push(format!(
                "/infmax/{}",
                spec.script_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            (a, Teardown::Docker { name })
        }
        Profile::Slurm { pyxis, .. } => {
            let job = slurm_job.unwrap_or("$SLURM_JOB_ID").to_string();
            let mut a: Vec<String> =
                vec!["srun".into(), format!("--jobid={job}"), "--overlap".into()];
            if let Some(p) = pyxis {
                a.push(format!(
                    "--container-image={}",
                    p.image.clone().unwrap_or_else(|| spec.image.clone())
                ));
                let dir = spec
                    .script_path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .display()
                    .to_string();
                let mut mounts = vec![
                    format!("{}:/root/.cache/huggingface/hub", hf_cache().display()),
                    format!("{dir}:{dir}"),
                ];
                mounts.extend(p.mounts.iter().cloned());
                a.push(format!("--container-mounts={}", mounts.join(",")));
                if let Some(w) = &p.workdir {
                    a.push(format!("--container-workdir={w}"));
                }
            }
            a.push("bash".into());
            a.push(script);
            (a, Teardown::Slurm { job_id: job })
        }
    }
}

/// The launch command a profile would run, for `--dry-run` and the recipe fingerprint
/// (the script path and per-run names are left symbolic so equal recipes hash equally).
pub fn describe(profile: &Profile, image: &str, gpus: u32) -> Vec<String> {
    let spec = LaunchSpec {
        script_path: PathBuf::from("launch.sh"),
        log_path: PathBuf::from("server.log"),
        port: 0,
        image: image.into(),
        gpus,
        job_name: "JOB".into(),
        env: vec![],
        supervisor: PathBuf::from("runner"),
    };
    let (mut argv, _) = command(profile, &spec, "infmax-JOB", Some("JOBID"), "PID");
    if let Some((mut salloc, _)) = salloc_args(profile, gpus, "JOB") {
        salloc.push("&&".into());
        salloc.append(&mut argv);
        argv = salloc;
    }
    argv
}

/// The `salloc` command a Slurm profile allocates with, and how many seconds it may wait
/// for the allocation; `None` for other profiles.
fn salloc_args(profile: &Profile, gpus: u32, name: &str) -> Option<(Vec<String>, u32)> {
    let Profile::Slurm {
        partition,
        time_minutes,
        gres_gpus,
        exclusive,
        alloc_wait_s,
        ..
    } = profile
    else {
        return None;
    };
    let mut a = vec![
        "salloc".to_string(),
        "--no-shell".into(),
        format!("--job-name={name}"),
        "-N1".into(),
        format!("--time={time_minutes}"),
        format!("--immediate={alloc_wait_s}"),
    ];
    if let Some(p) = partition {
        a.push(format!("--partition={p}"));
    }
    if *gres_gpus {
        a.push(format!("--gres=gpu:{gpus}"));
    }
    if *exclusive {
        a.push("--exclusive".into());
    }
    Some((a, *alloc_wait_s))
}

fn run_quiet(argv: &[&str]) -> std::io::Result<std::process::Output> {
    std::process::Command::new(argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
}

/// Like [`run_quiet`], but the command is killed after `limit`: a Slurm client whose
/// controller does not answer retries for minutes, and CI must not hang on it.
fn run_bounded(argv: &[String], limit: Duration) -> std::io::Result<std::process::Output> {
    let mut child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let reader = std::thread::spawn(move || {
        let mut o = vec![];
        if let Some(s) = out.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut o);
        }
        o
    });
    let mut e = vec![];
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let st = child.wait()?;
            e.extend_from_slice(
                format!(
                    "(killed after {:.0} s without an answer)\n",
                    limit.as_secs_f64()
                )
                .as_bytes(),
            );
            break st;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(s) = err.as_mut() {
        let mut buf = vec![];
        let _ = std::io::Read::read_to_end(s, &mut buf);
        buf.extend(e);
        e = buf;
    }
    Ok(std::process::Output {
        status,
        stdout: reader.join().unwrap_or_default(),
        stderr: e,
    })
}

/// The job id in salloc's output: `salloc: Granted job allocation 123` (or `Pending job
/// allocation 123` first when it had to wait).
fn salloc_job_id(text: &str) -> Option<String> {
    text.lines()
        .filter(|l| l.contains("job allocation"))
        .filter_map(|l| l.split_whitespace().last())
        .map(|w| w.trim_end_matches('.'))
        .find(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
}

/// Cancel our own jobs named `name` (left by a run that crashed) and wait until Slurm has
/// released them, so their GPUs are free for the new allocation.
fn cancel_stale(name: &str) {
    let ids = |extra: &[&str]| -> Vec<String> {
        let mut argv = vec!["squeue", "--me", "-h", "-o", "%A"];
        argv.extend_from_slice(extra);
        run_quiet(&argv)
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let stale = ids(&[&format!("--name={name}")]);
    if stale.is_empty() {
        return;
    }
    for id in &stale {
        tracing::warn!("cancelling stale Slurm allocation {id} named {name}");
        let _ = run_quiet(&["scancel", id]);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !ids(&[&format!("--name={name}")]).is_empty() {
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The address of a node: its `NodeAddr` when Slurm has one, else its name.
fn node_addr(node: &str) -> String {
    run_quiet(&["sinfo", "-h", "-N", "-n", node, "-o", "%o"])
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| node.to_string())
}

/// Slurm: cancel stale allocations with our job name, allocate, find the node.
fn slurm_allocate(profile: &Profile, spec: &LaunchSpec) -> Result<(String, String), LaunchError> {
    let err = |m: String| LaunchError::Slurm(m);
    let name = &spec.job_name;
    let (args, alloc_wait_s) = salloc_args(profile, spec.gpus, name).ok_or_else(|| {
        err(format!(
            "profile `{}` is not a Slurm profile",
            profile.kind()
        ))
    })?;
    cancel_stale(name);
    // `--immediate` bounds the wait; the hard limit covers a controller that never answers.
    let limit = Duration::from_secs(u64::from(alloc_wait_s) + 30);
    let o = run_bounded(&args, limit).map_err(|e| err(format!("cannot run salloc: {e}")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let job = salloc_job_id(&text);
    let Some(job) = job.filter(|_| o.status.success()) else {
        // A job salloc gave up on is revoked by Slurm; cancel it anyway in case it was not.
        if let Some(j) = salloc_job_id(&text) {
            let _ = run_quiet(&["scancel", &j]);
        }
        return Err(err(format!(
            "allocation `{}` not granted within {alloc_wait_s} s ({}): {}",
            args.join(" "),
            o.status,
            text.trim()
        )));
    };
    let o = run_quiet(&["squeue", "-h", "-j", &job, "-o", "%N"])
        .map_err(|e| err(format!("squeue: {e}")))?;
    let node = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let host = if node.is_empty() {
        "127.0.0.1".to_string()
    } else {
        node_addr(&node)
    };
    tracing::info!("Slurm allocation {job} ({name}) on {node}, engine address {host}");
    Ok((job, host))
}

impl Engine {
    /// Start the engine for `spec` with `profile`.
    pub fn launch(profile: &Profile, spec: &LaunchSpec) -> Result<Engine, LaunchError> {
        if matches!(profile, Profile::Docker { .. }) {
            remove_stale_containers(&spec.job_name);
        }
        check_port_free(spec.port)?;
        let (slurm_job, host) = match profile {
            Profile::Slurm { .. } => {
                let (j, h) = slurm_allocate(profile, spec)?;
                (Some(j), h)
            }
            _ => (None, "127.0.0.1".to_string()),
        };
        let container = container_name(&spec.job_name);
        let me = std::process::id().to_string();
        let (argv, teardown) = command(profile, spec, &container, slurm_job.as_deref(), &me);
        // The supervisor owns the group and tears it down (and the container or allocation
        // with it) when we die; it reads its lifeline, the pipe we alone can write to.
        let mut sup: Vec<String> = vec!["supervise".into()];
        match &teardown {
            Teardown::Docker { name } => sup.extend(["--docker-rm".into(), name.clone()]),
            Teardown::Slurm { job_id } => sup.extend(["--scancel".into(), job_id.clone()]),
            Teardown::Process => {}
        }
        sup.push("--".into());
        sup.extend(argv.iter().cloned());
        let (lifeline_r, lifeline_w) = lifeline().map_err(|source| LaunchError::Spawn {
            what: "the supervisor's lifeline pipe".into(),
            source,
        })?;
        let mut expr = duct::cmd(&spec.supervisor, &sup)
            .stdin_file(lifeline_r)
            .env(
                super::supervise::OWNER_ENV,
                format!("{me}:{}", spec.job_name),
            )
            // Order matters in duct: stderr joins stdout, then both go to the log.
            .stderr_to_stdout()
            .stdout_path(&spec.log_path)
            .unchecked()
            .before_spawn(|c| {
                c.process_group(0);
                Ok(())
            });
        // Engines write to a file: ask them for plain text (see crate::term).
        expr = expr.env("NO_COLOR", "1");
        for (k, v) in &spec.env {
            expr = expr.env(k, v);
        }
        let handle = expr.start().map_err(|source| {
            if let Some(j) = &slurm_job {
                let _ = run_quiet(&["scancel", j]);
            }
            LaunchError::Spawn {
                what: argv.join(" "),
                source,
            }
        })?;
        let pgid = handle.pids().first().copied().unwrap_or(0) as i32;
        tracing::info!(
            "launched engine ({}) pid {pgid}: {}",
            profile.kind(),
            argv.join(" ")
        );
        Ok(Engine {
            handle,
            lifeline: Some(lifeline_w),
            pgid,
            teardown,
            base_url: format!("http://{host}:{}", spec.port),
            log_path: spec.log_path.clone(),
            started: Instant::now(),
            stopped: false,
        })
    }

    /// The Slurm job the engine runs in, if any (telemetry runs a step there).
    pub fn slurm_job_id(&self) -> Option<&str> {
        match &self.teardown {
            Teardown::Slurm { job_id } => Some(job_id),
            _ => None,
        }
    }

    /// The process-group id (the engine's pid), so callers can check nothing is left.
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// `Some(status)` once the engine process has exited.
    pub fn exited(&self) -> Option<String> {
        match self.handle.try_wait() {
            Ok(Some(o)) => Some(o.status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown status ({e})")),
        }
    }

    /// Poll `/health` then `/v1/models` every `poll` until both answer 200. Fails as soon as
    /// the process exits, or after `timeout`. Prints a progress line every 30 s.
    pub async fn wait_ready(
        &self,
        timeout: Duration,
        poll: Duration,
    ) -> Result<Duration, LaunchError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client builds");
        let t0 = Instant::now();
        let (url, log) = (self.base_url.clone(), self.log_path.clone());
        let _ticker =
            crate::progress::Ticker::start("readiness", move || crate::progress::Status {
                eta: Some(timeout.saturating_sub(t0.elapsed())),
                note: format!(
                    "timeout {}, polling {url}/health and /v1/models; last log line: {}",
                    crate::progress::clock(timeout),
                    crate::progress::plain(&tail(&log, 1), 160)
                ),
                ..crate::progress::Status::default()
            });
        loop {
            if let Some(status) = self.exited() {
                return Err(LaunchError::ExitedEarly {
                    status,
                    secs: self.started.elapsed().as_secs_f64(),
                    log: self.log_path.display().to_string(),
                    tail: tail(&self.log_path, 20),
                });
            }
            let ok = |r: Result<reqwest::Response, reqwest::Error>| {
                r.map(|r| r.status().is_success()).unwrap_or(false)
            };
            if ok(client.get(format!("{}/health", self.base_url)).send().await)
                && ok(client
                    .get(format!("{}/v1/models", self.base_url))
                    .send()
                    .await)
            {
                return Ok(self.started.elapsed());
            }
            if t0.elapsed() >= timeout {
                return Err(LaunchError::NotReady {
                    secs: timeout.as_secs_f64(),
                    url: self.base_url.clone(),
                    log: self.log_path.display().to_string(),
                    tail: tail(&self.log_path, 20),
                });
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Stop the engine and everything it started: `docker rm -f` / `scancel` as the profile
    /// needs, SIGTERM to the process group, SIGKILL after a grace period. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        match &self.teardown {
            Teardown::Docker { name } => {
                let _ = run_quiet(&["docker", "rm", "-f", name]);
            }
            Teardown::Slurm { job_id } => {
                let _ = run_quiet(&["scancel", job_id]);
            }
            Teardown::Process => {}
        }
        if self.pgid > 0 {
            // SAFETY: signalling a process group we created; no memory is touched.
            unsafe { libc::kill(-self.pgid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && group_alive(self.pgid) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if group_alive(self.pgid) {
                // SAFETY: as above.
                unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
            }
        }
        let _ = self.handle.wait();
        self.lifeline = None;
    }
}

/// A pipe (read end, write end), both close-on-exec: the child gets the read end as its
/// stdin (a dup, which does not keep the flag), no other child inherits the write end.
fn lifeline() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just created and are owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// Whether any process of the group is still alive (zombies of our own child count until
/// reaped, so reap first).
fn group_alive(pgid: i32) -> bool {
    // SAFETY: waitpid with WNOHANG on our own child; kill with signal 0 only checks.
    unsafe {
        let mut st = 0;
        libc::waitpid(pgid, &mut st, libc::WNOHANG);
        libc::kill(-pgid, 0) == 0
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_command_has_devices_and_no_secret_values() {
        std::env::set_var("HF_TOKEN", "hf_secret_value");
        let p = Profile::Docker {
            gpus: Gpus::Amd,
            shm_size: "16g".into(),
            hf_cache: true,
            extra_args: vec![],
        };
        let argv = describe(&p, "rocm/img:1", 8);
        let s = argv.join(" ");
        assert!(s.starts_with("docker run --rm --name infmax-JOB --label infmax.job=JOB --label infmax.runner=PID --network host --ipc host --shm-size 16g --device /dev/kfd --device /dev/dri --group-add video --security-opt seccomp=unconfined"), "{s}");
        assert!(
            s.contains(" -e HF_TOKEN ") && !s.contains("hf_secret_value"),
            "{s}"
        );
        assert!(s.ends_with("rocm/img:1 bash /infmax/launch.sh"), "{s}");
        let n = Profile::Docker {
            gpus: Gpus::Nvidia,
            shm_size: "32g".into(),
            hf_cache: false,
            extra_args: vec!["--ulimit".into(), "memlock=-1".into()],
        };
        let s = describe(&n, "nvcr/img", 8).join(" ");
        assert!(
            s.contains("--gpus all")
                && s.contains("--ulimit memlock=-1")
                && !s.contains("huggingface"),
            "{s}"
        );
    }

    #[test]
    fn salloc_output_gives_the_job_id() {
        assert_eq!(
            salloc_job_id("salloc: Granted job allocation 17\n").as_deref(),
            Some("17")
        );
        assert_eq!(
            salloc_job_id("salloc: Pending job allocation 4\nsalloc: job 4 queued and waiting for resources\nsalloc: job 4 has been allocated resources\nsalloc: Granted job allocation 4\n").as_deref(),
            Some("4")
        );
        assert_eq!(
            salloc_job_id("salloc: error: Job submit/allocate failed: Requested node configuration is not available\n"),
            None
        );
    }

    #[test]
    fn slurm_command_renders_allocation_and_pyxis() {
        let p = Profile::Slurm {
            partition: Some("gpu".into()),
            time_minutes: 60,
            gres_gpus: true,
            exclusive: true,
            alloc_wait_s: 30,
            pyxis: Some(super::super::profile::Pyxis {
                image: None,
                mounts: vec!["/data:/data".into()],
                workdir: Some("/work".into()),
            }),
        };
        let s = describe(&p, "lmsysorg/sglang:v0.5", 4).join(" ");
        assert!(s.starts_with("salloc --no-shell --job-name=JOB -N1 --time=60 --immediate=30 --partition=gpu --gres=gpu:4 --exclusive && srun --jobid=JOBID --overlap --container-image=lmsysorg/sglang:v0.5 --container-mounts="), "{s}");
        assert!(
            s.contains(",/data:/data --container-workdir=/work bash launch.sh"),
            "{s}"
        );
    }
}
