//! The engine's supervisor: a small process between the runner and the engine, so that no
//! engine outlives its runner however the runner ends — a clean exit, a panic, an abort, an
//! allocation failure or `kill -9`.
//!
//! The runner starts `runner supervise [--docker-rm NAME] [--scancel JOB] -- ARGV…` as the
//! leader of a new process group, with the read end of a pipe as its stdin (the *lifeline*).
//! The runner alone holds the write end (close-on-exec, so no other child inherits it). The
//! supervisor starts the engine command in its own group and waits. When the runner dies in
//! any way the kernel closes the write end; the supervisor sees end-of-file, removes the
//! container or cancels the allocation the engine runs in, and kills the whole group
//! (SIGTERM, then SIGKILL after the grace period). A pipe is used rather than
//! `PR_SET_PDEATHSIG`: the death signal fires when the *thread* that forked exits, which a
//! multi-threaded runner cannot promise, while a pipe's end closes only with the process.
//!
//! Otherwise the supervisor is transparent: the engine's output goes where its own goes
//! (`server.log`), and it ends the way the engine ended (same exit code, or the same signal
//! re-raised), so the runner's "the engine exited with …" messages name the engine's status.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Name of the environment variable that marks an engine as ours: `<runner pid>:<job name>`.
/// The supervisor's environment carries it and the engine inherits it, so a later run that
/// finds a port taken can tell a stale engine of ours (and its runner) from a stranger.
pub const OWNER_ENV: &str = "INFMAX_ENGINE_OF";

/// Flags of `runner supervise` (hidden: only the runner starts it).
#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    /// When the runner is gone: `docker rm -f` this container first.
    #[arg(long, value_name = "NAME")]
    pub docker_rm: Option<String>,
    /// When the runner is gone: `scancel` this Slurm job first.
    #[arg(long, value_name = "JOBID")]
    pub scancel: Option<String>,
    /// Seconds between SIGTERM and SIGKILL to the group when the runner is gone.
    #[arg(long, default_value_t = 10)]
    pub grace: u64,
    /// The engine command.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub argv: Vec<String>,
}

/// A stop signal to the group (the runner stopping the engine) reaches the engine too; the
/// supervisor outlives it so that the engine's exit is mirrored. Handlers, unlike ignored
/// signals, reset to the default action in the engine.
extern "C" fn on_signal(_: libc::c_int) {}

/// Run the supervisor; returns (or re-raises) the engine's exit.
pub fn run(a: SuperviseArgs) -> ExitCode {
    // SAFETY: getpgrp has no preconditions; the handler does nothing.
    let pgid = unsafe { libc::getpgrp() };
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    let mut child = match Command::new(&a.argv[0])
        .args(&a.argv[1..])
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            crate::errln!("supervise: cannot start `{}`: {e}", a.argv.join(" "));
            return ExitCode::from(127);
        }
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if lifeline_gone(Duration::ZERO) {
                    orphaned(&a, pgid, &mut child);
                }
                return mirror(status);
            }
            Ok(None) => {}
            Err(e) => {
                crate::errln!("supervise: cannot wait for the engine: {e}");
                orphaned(&a, pgid, &mut child);
            }
        }
        if lifeline_gone(Duration::from_millis(100)) {
            orphaned(&a, pgid, &mut child);
        }
    }
}

/// Whether the runner's end of the lifeline (our stdin) is closed; waits up to `wait`.
fn lifeline_gone(wait: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; read into a local buffer of the given size.
    let n = unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) };
    if n <= 0 {
        return false;
    }
    if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        return true;
    }
    let mut buf = [0u8; 64];
    let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
    r == 0
}

/// The runner is gone: release what the engine runs in, then kill the group (ourselves
/// included). Never returns.
fn orphaned(a: &SuperviseArgs, pgid: i32, child: &mut std::process::Child) -> ! {
    crate::errln!("supervise: the runner is gone; stopping the engine (process group {pgid})");
    let quiet = |argv: &[&str]| {
        let _ = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    };
    if let Some(name) = &a.docker_rm {
        quiet(&["docker", "rm", "-f", name]);
    }
    if let Some(job) = &a.scancel {
        quiet(&["scancel", job]);
    }
    // SAFETY: signalling our own process group.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(a.grace);
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above; this ends us too.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    std::process::exit(137)
}

/// End the way the engine ended.
fn mirror(status: std::process::ExitStatus) -> ExitCode {
    if let Some(sig) = status.signal() {
        // SAFETY: restoring the default action and raising the signal on ourselves.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        return ExitCode::from(128u8.wrapping_add(sig as u8));
    }
    ExitCode::from(status.code().unwrap_or(1) as u8)
}
