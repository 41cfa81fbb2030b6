//! Shared helpers: locating fixtures, running the built binaries and git, reading results.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;

/// The crate root (where `baselines/`, `benchmarks/` and `.github/` live).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of a file under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The InferenceMAX Nov-2025 config files shipped as fixtures.
pub fn imax(name: &str) -> String {
    fixture(&format!("inferencemax-2025-11/{name}"))
        .display()
        .to_string()
}

/// Run the `scheduler` binary with `args` in `dir` (or the crate root).
pub fn scheduler(args: &[&str], dir: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scheduler"));
    c.args(args).env_remove("GITHUB_OUTPUT");
    if let Some(d) = dir {
        c.current_dir(d);
    }
    c.output().expect("scheduler runs")
}

/// Run and expect success; returns stdout parsed as JSON.
pub fn scheduler_json(args: &[&str]) -> serde_json::Value {
    let out = scheduler(args, None);
    assert!(
        out.status.success(),
        "scheduler {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// Run and expect a config error (exit 10, no panic); returns stderr.
pub fn scheduler_err(args: &[&str]) -> String {
    let out = scheduler(args, None);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(10),
        "expected exit 10 (config error) for {args:?}; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "panic for {args:?}: {err}");
    assert!(out.stdout.is_empty(), "no rows may be printed on error");
    err
}

/// `runner batch` arguments after `--config` for a quick batch: conc 1 and 2, one round of
/// prompts, no warm-up.
pub const QUICK_BATCH: [&str; 6] = [
    "--conc",
    "1,2",
    "--prompts-multiplier",
    "1",
    "--num-warmups",
    "0",
];

/// Parse the JSON file at `path`.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is JSON: {e}", path.display()))
}

/// How many `.svg` files (plots) lie directly in `dir`.
pub fn svg_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "svg"))
        .count()
}

/// Run `git args` in `dir`, assert that it succeeded, and return its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Stage everything in `dir`, commit it as `msg`, and return the new commit's hash.
pub fn commit(dir: &Path, msg: &str) -> String {
    git(dir, &["add", "-A"]);
    git(
        dir,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            msg,
        ],
    );
    git(dir, &["rev-parse", "HEAD"])
}

/// Spawn `cmd` (stdout discarded) with a thread collecting its stderr until it exits.
pub fn spawn_collecting_stderr(cmd: &mut Command) -> (Child, JoinHandle<String>) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    (child, reader)
}

/// Send SIGTERM to `child`, wait for it, and return its exit code and collected stderr.
pub fn sigterm(mut child: Child, reader: JoinHandle<String>) -> (Option<i32>, String) {
    // SAFETY: sending SIGTERM to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    (status.code(), reader.join().unwrap())
}

/// Write `text` to `dir/name` and return the path as a string.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A llama-server child process (built by `scripts/llama-server.sh`), serving the tiny model
/// on a loopback port; killed and reaped on drop, so a failing test never leaves it behind.
/// (On Linux the kernel also kills it when the thread that started it ends: keep the guard
/// in the test's own thread.)
pub struct LlamaServer {
    child: std::process::Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// Where the server's stdout and stderr go (printed when it fails to start).
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LlamaServer {
    /// The server's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The llama-server binary and tiny model from `INFMAX_LLAMA_SERVER` / `INFMAX_TINY_GGUF`
/// (exported by `scripts/test`). Without them: `None` with a note, except under CI (`CI`
/// set), where the test fails: CI must really exercise the engine.
pub fn llama_paths() -> Option<(PathBuf, PathBuf)> {
    let (bin, model) = match (
        std::env::var_os("INFMAX_LLAMA_SERVER"),
        std::env::var_os("INFMAX_TINY_GGUF"),
    ) {
        (Some(b), Some(m)) if !b.is_empty() && !m.is_empty() => {
            (PathBuf::from(b), PathBuf::from(m))
        }
        _ => {
            let why = "INFMAX_LLAMA_SERVER / INFMAX_TINY_GGUF are not set \
                       (scripts/test sets them; INFMAX_SKIP_REAL=1 skips the setup)";
            if std::env::var_os("CI").is_some() {
                panic!("real-engine test under CI, but {why}");
            }
            eprintln!("note: skipping a real-engine test: {why}");
            return None;
        }
    };
    assert!(
        bin.is_file(),
        "INFMAX_LLAMA_SERVER={} is not a file",
        bin.display()
    );
    assert!(
        model.is_file(),
        "INFMAX_TINY_GGUF={} is not a file",
        model.display()
    );
    Some((bin, model))
}

/// Start llama-server on the tiny model (`-c 32768 -np 8 --metrics`, an ephemeral loopback
/// port) and wait until `/health` answers 200.
///
/// The binary and model come from `INFMAX_LLAMA_SERVER` and `INFMAX_TINY_GGUF`, which
/// `scripts/test` exports. Without them the test is skipped with a note (returns `None`),
/// except under CI (`CI` set), where it fails: CI must really exercise the engine.
pub fn llama_server() -> Option<LlamaServer> {
    let (bin, model) = llama_paths()?;
    const ATTEMPTS: usize = 5;
    for attempt in 1..=ATTEMPTS {
        // The port is free when we look; another process may take it before the server
        // binds, in which case the server exits and we try another one.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("an ephemeral loopback port")
            .port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("llama-server.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("-m")
            .arg(&model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", "32768", "-np", "8", "--metrics", "--no-webui"])
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        kill_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut server = LlamaServer {
            child,
            addr: format!("127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                let log = server.log_text();
                let bind_failed = log.contains("bind") || log.contains("in use");
                if bind_failed && attempt < ATTEMPTS {
                    break; // port taken meanwhile: another one
                }
                panic!("llama-server exited ({status}) before it was healthy:\n{log}");
            }
            if http_status(&server.addr, "/health") == Some(200) {
                return Some(server);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "llama-server not healthy within 60 s:\n{}",
                server.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Status code of `GET path`, or `None` if nothing answers (yet).
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Have the kernel kill the child if the test process dies without dropping its guard
/// (a harness timeout, SIGKILL).
#[cfg(target_os = "linux")]
pub fn kill_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn kill_with_parent(_: &mut Command) {}

/// Every file under `dir`, recursively: (path, text as lossy UTF-8).
pub fn files_text(dir: &Path) -> Vec<(String, String)> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_text(&p));
        } else {
            let b = std::fs::read(&p).unwrap();
            out.push((
                p.display().to_string(),
                String::from_utf8_lossy(&b).into_owned(),
            ));
        }
    }
    out
}
