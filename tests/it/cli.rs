//! The command-line surface itself: help text on every flag, examples on every command,
//! quiet ends on a closed pipe, colour only on a terminal, completions and `runner doctor`.

use clap::{CommandFactory, Parser};

/// Every argument (hidden ones aside) of every subcommand, as `(command path, arg id)`,
/// that has no help text.
fn args_without_help(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        if a.is_hide_set() || matches!(a.get_id().as_str(), "help" | "version") {
            continue;
        }
        if a.get_help().is_none() && a.get_long_help().is_none() {
            missing.push(format!("{path} {}", a.get_id()));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        args_without_help(sub, &format!("{path} {}", sub.get_name()), missing);
    }
}

#[test]
fn every_flag_of_every_command_has_help_text() {
    let mut missing = vec![];
    args_without_help(&infmax::cli::runner::Cli::command(), "runner", &mut missing);
    args_without_help(
        &infmax::cli::scheduler::Cli::command(),
        "scheduler",
        &mut missing,
    );
    assert!(
        missing.is_empty(),
        "flags without help text:\n{}",
        missing.join("\n")
    );
}

/// `bin` with `args`, stdout piped, stderr collected by a thread.
fn spawn(bin: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut c = std::process::Command::new(bin);
    c.args(args)
        .current_dir(super::util::root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("binary starts")
}

/// Read a little of `child`'s stdout, close the pipe, and return its exit code and stderr:
/// the writer is left writing into a pipe nobody reads (EPIPE), as `… | head` does.
fn close_early(mut child: std::process::Child) -> (Option<i32>, String) {
    use std::io::Read;
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).expect("some output first");
    drop(stdout);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code(), err)
}

#[test]
fn a_closed_stdout_ends_every_printing_command_quietly() {
    let root = super::util::root();
    let files = [
        root.join("configs/2026/amd-master.yaml"),
        root.join("configs/2026/nvidia-master.yaml"),
    ];
    let (a, n, r) = (
        files[0].display().to_string(),
        files[1].display().to_string(),
        root.join("configs/2026/runners.yaml").display().to_string(),
    );
    // About 1 MB of rows: far more than a pipe holds, so the writer meets the closed pipe.
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            env!("CARGO_BIN_EXE_scheduler"),
            vec!["expand", "--config-files", &a, &n, "--runner-config", &r],
        ),
        (
            env!("CARGO_BIN_EXE_scheduler"),
            vec!["list", "--config-files", &a, &n],
        ),
        (env!("CARGO_BIN_EXE_runner"), vec!["completions", "bash"]),
        (env!("CARGO_BIN_EXE_runner"), vec!["bench", "--help"]),
    ];
    for (bin, args) in runs {
        let (code, err) = close_early(spawn(bin, &args, &[]));
        assert_eq!(code, Some(0), "{args:?} after a closed pipe: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe") && !err.contains("error"),
            "{args:?} must end quietly on a closed pipe, stderr: {err}"
        );
    }
}

/// `runner sim`'s startup log line on stderr, with stderr a terminal (a pseudo-terminal)
/// unless `tty` is false (then a pipe).
fn sim_log(tty: bool, env: &[(&str, &str)]) -> String {
    use std::io::{BufRead, Read};
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_runner"));
    c.args(["sim", "--port", "0", "--preset", "tiny"])
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut master = None;
    if tty {
        let (mut m, mut s) = (0, 0);
        // SAFETY: openpty writes two descriptors we own from here on.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: both descriptors are fresh and owned by these Files only.
        let (m, s) = unsafe {
            use std::os::fd::FromRawFd;
            (std::fs::File::from_raw_fd(m), std::fs::File::from_raw_fd(s))
        };
        c.stderr(s);
        master = Some(m);
    } else {
        c.stderr(std::process::Stdio::piped());
    }
    let mut child = c.spawn().unwrap();
    drop(c); // closes our copy of the terminal's slave side
    let mut url = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    assert!(url.starts_with("http://"), "sim printed {url:?}");
    // SAFETY: stopping our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait().unwrap();
    let mut bytes = vec![];
    match master {
        // Reading a terminal whose other side is closed ends in EIO after the data.
        Some(mut m) => {
            let mut buf = [0u8; 4096];
            while let Ok(n) = m.read(&mut buf) {
                if n == 0 {
                    break;
                }
                bytes.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            child
                .stderr
                .take()
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(text.contains("sim: serving"), "log: {text:?}");
    text
}

#[test]
fn logs_are_coloured_only_on_a_terminal_and_never_under_no_color() {
    const ESC: char = '\u{1b}';
    assert!(sim_log(true, &[]).contains(ESC), "a terminal gets colour");
    let plain = sim_log(true, &[("NO_COLOR", "1")]);
    assert!(!plain.contains(ESC), "NO_COLOR=1 on a terminal: {plain:?}");
    let piped = sim_log(false, &[]);
    assert!(!piped.contains(ESC), "a pipe gets plain text: {piped:?}");
}

/// Every visible command below `cmd` (itself included), with its path.
fn commands(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
    out.push((path.to_string(), cmd.clone()));
    for sub in cmd.get_subcommands() {
        if !sub.is_hide_set() && sub.get_name() != "help" {
            commands(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
}

/// The example command lines at the end of a help text.
fn examples_of(help: &str) -> Vec<String> {
    let (_, tail) = help
        .rsplit_once(infmax::cli::EXAMPLES_HEADING)
        .unwrap_or(("", ""));
    tail.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// An example's words as a shell passes them, up to a redirection (quotes removed).
fn words(line: &str) -> Vec<String> {
    line.split_whitespace()
        .take_while(|w| !w.starts_with('>') && *w != "|")
        .map(|w| w.trim_matches('\'').to_string())
        .collect()
}

#[test]
fn every_command_has_a_description_and_ends_its_help_with_examples_that_parse() {
    for root in [
        infmax::cli::runner::Cli::command(),
        infmax::cli::scheduler::Cli::command(),
    ] {
        let name = root.get_name().to_string();
        let mut all = vec![];
        commands(&root, &name, &mut all);
        assert!(all.len() > 5, "{name} has its subcommands");
        for (path, cmd) in all {
            assert!(
                cmd.get_about()
                    .is_some_and(|a| !a.to_string().trim().is_empty()),
                "`{path}` has no description"
            );
            // Unwrapped, as the source has it; at 100 columns no example may wrap either.
            let help = cmd.clone().term_width(0).render_long_help().to_string();
            let ex = examples_of(&help);
            assert!(
                (2..=3).contains(&ex.len()),
                "`{path} --help` must end with 2–3 examples, has {ex:?}"
            );
            assert!(
                help.trim_end().ends_with(ex.last().unwrap().as_str()),
                "examples come last in `{path} --help`"
            );
            for line in ex {
                assert!(
                    line.len() + 2 < 100,
                    "example `{line}` wraps at 100 columns"
                );
                let w = words(&line);
                assert!(
                    line.starts_with(&format!("{path} ")) || line == path,
                    "example `{line}` runs `{path}`"
                );
                let parsed = if name == "runner" {
                    infmax::cli::runner::Cli::try_parse_from(&w).map(|_| ())
                } else {
                    infmax::cli::scheduler::Cli::try_parse_from(&w).map(|_| ())
                };
                if let Err(e) = parsed {
                    panic!("example `{line}` of `{path}` does not parse:\n{e}");
                }
            }
        }
    }
}

#[test]
fn the_binaries_describe_themselves_and_their_version_names_the_commit() {
    let commit = super::util::git(&super::util::root(), &["rev-parse", "--short=12", "HEAD"]);
    for (bin, about) in [
        (
            env!("CARGO_BIN_EXE_runner"),
            "Run InferenceMAX matrix rows end to end",
        ),
        (
            env!("CARGO_BIN_EXE_scheduler"),
            "Turn InferenceMAX master configs into",
        ),
    ] {
        let out = std::process::Command::new(bin)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.starts_with(about), "{bin} --help: {help}");
        let out = std::process::Command::new(bin)
            .arg("--version")
            .output()
            .unwrap();
        let v = String::from_utf8_lossy(&out.stdout);
        // The binary is built from this checkout, possibly a commit or two behind HEAD
        // while its test binary is current: the version names a commit, 12 hex digits.
        let hash = v.split(['(', ')']).nth(1).unwrap_or_default();
        assert!(
            v.starts_with(&format!("{} 0.", bin.rsplit('/').next().unwrap()))
                && hash.len() == 12
                && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "--version: {v:?} (HEAD is {commit})"
        );
    }
}

#[test]
fn completions_are_scripts_for_each_shell_naming_the_subcommands() {
    for (bin, sub) in [
        (env!("CARGO_BIN_EXE_runner"), "doctor"),
        (env!("CARGO_BIN_EXE_scheduler"), "list"),
    ] {
        for (shell, marker) in [
            ("bash", "complete -F"),
            ("zsh", "#compdef"),
            ("fish", "complete -c"),
        ] {
            let out = std::process::Command::new(bin)
                .args(["completions", shell])
                .output()
                .unwrap();
            assert!(out.status.success());
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(
                text.contains(marker) && text.contains(sub) && text.contains("--help"),
                "{bin} completions {shell}"
            );
        }
        let out = std::process::Command::new(bin)
            .args(["completions", "tcsh"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "an unknown shell is a usage error"
        );
    }
}

#[test]
fn scheduler_list_names_every_entry_with_its_model_hardware_and_scenarios() {
    let f = super::util::root().join("configs/2026/nvidia-master.yaml");
    let f = f.display().to_string();
    let v = super::util::scheduler_json(&["list", "--config-files", &f, "--json"]);
    let rows = v.as_array().unwrap();
    let cfg = infmax::config::master::MasterConfig::load(std::path::Path::new(&f)).unwrap();
    assert_eq!(rows.len(), cfg.entries.len());
    let b200 = rows
        .iter()
        .find(|r| r["key"] == "dsr1-fp4-b200-sglang")
        .expect("a known entry");
    assert_eq!(b200["framework"], "sglang");
    assert_eq!(b200["hardware"], "b200");
    assert_eq!(b200["precision"], "fp4");
    assert!(b200["model"].as_str().unwrap().contains("DeepSeek-R1"));
    let entry = cfg
        .entries
        .iter()
        .find(|e| e.key == "dsr1-fp4-b200-sglang")
        .unwrap();
    let names: Vec<String> = entry
        .seq_lens
        .iter()
        .map(|s| format!("{}k{}k", s.isl / 1024, s.osl / 1024))
        .collect();
    assert!(!names.is_empty());
    assert_eq!(b200["scenarios"], serde_json::json!(names));
    assert!(rows.iter().any(|r| r["scenarios"]
        .as_array()
        .unwrap()
        .contains(&"agentic-coding".into())));
    let out = super::util::scheduler(&["list", "--config-files", &f], None);
    let table = String::from_utf8(out.stdout).unwrap();
    let mut lines = table.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        [
            "KEY",
            "MODEL",
            "HARDWARE",
            "FRAMEWORK",
            "PRECISION",
            "NODES",
            "SCENARIOS",
            "FILE"
        ]
    );
    let line = lines
        .find(|l| l.starts_with("dsr1-fp4-b200-sglang "))
        .expect("the entry's line");
    assert!(
        line.contains(" b200 ") && line.contains(&format!(" {} ", names.join(" "))),
        "{line}"
    );
    assert_eq!(table.lines().count(), rows.len() + 1);
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn bench_against_a_closed_port_fails_before_the_load_with_one_line() {
    let port = closed_port().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args([
            "bench",
            "--port",
            &port,
            "--num-prompts",
            "4",
            "--tokenizer",
            "infmax/embedded",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        out.stdout.is_empty(),
        "no result table: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains(&format!(
            "cannot reach the server at http://127.0.0.1:{port}"
        )) && err.contains("Connection refused")
            && err.contains("Nothing was sent"),
        "{err}"
    );
    // The exit codes are documented where users look.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["bench", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("Exit codes: 0 done; 1 error")
            && help.contains("4 more than 5 % of requests failed"),
        "{help}"
    );
    let readme = std::fs::read_to_string(super::util::root().join("README.md")).unwrap();
    assert!(
        readme.contains("`runner bench` exits"),
        "README documents bench's exit codes"
    );
}

/// A web server that is not an OpenAI one: every request gets an HTML 404 page.
fn html_server() -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 8192];
            let _ = s.read(&mut buf);
            let body = "<!DOCTYPE html>\n<html><head><title>Not Found</title></head>\n<body><h1>404</h1></body></html>\n";
            let _ = write!(
                s,
                "HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, h)
}

#[test]
fn eval_against_a_server_that_is_not_openai_says_what_it_got() {
    let (url, _server) = html_server();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["eval", "--base-url", &url, "--task", "wikitext-tokens"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{url}/v1/models: got HTTP 404 Not Found (text/html)"
        )) && err.contains("<title>Not Found</title>")
            && err.contains("needs an OpenAI-compatible server"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    // Nothing listening: said so, with the cause.
    let url = format!("http://127.0.0.1:{}", closed_port());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["eval", "--base-url", &url, "--task", "wikitext-tokens"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the server") && err.contains("Connection refused"),
        "{err}"
    );
}

#[test]
fn no_error_message_repeats_its_cause() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("missing.yaml").display().to_string();
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            env!("CARGO_BIN_EXE_runner"),
            vec!["sim", "--config", &missing],
        ),
        (
            env!("CARGO_BIN_EXE_runner"),
            vec!["report", "--dir", &missing],
        ),
        (
            env!("CARGO_BIN_EXE_runner"),
            vec!["check", "--config", &missing],
        ),
        (
            env!("CARGO_BIN_EXE_runner"),
            vec![
                "publish", "--dir", ".", "--run-id", "1", "--sinks", &missing,
            ],
        ),
        (
            env!("CARGO_BIN_EXE_scheduler"),
            vec!["expand", "--config-files", &missing],
        ),
        (
            env!("CARGO_BIN_EXE_scheduler"),
            vec!["list", "--config-files", &missing],
        ),
    ];
    for (bin, args) in runs {
        let out = std::process::Command::new(bin)
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(
            err.matches("No such file or directory").count(),
            1,
            "{args:?} says its cause once: {err}"
        );
    }
}

#[test]
fn durations_are_seconds_and_timeouts_are_named_alike_everywhere() {
    let mut bad = vec![];
    for root in [
        infmax::cli::runner::Cli::command(),
        infmax::cli::scheduler::Cli::command(),
    ] {
        let mut all = vec![];
        commands(&root, root.get_name(), &mut all);
        for (path, cmd) in all {
            for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let Some(long) = a.get_long() else { continue };
                // The client self-test's engine parameters are sub-millisecond latencies.
                let exempt = long.starts_with("self-test-") || long.contains("-per-");
                let unit_suffix = ["-s", "-ms", "-secs", "-seconds"]
                    .iter()
                    .any(|u| long.ends_with(u));
                let timeout_named_alike = !long.contains("timeout") || long.ends_with("-timeout");
                if (unit_suffix && !exempt) || !timeout_named_alike {
                    bad.push(format!("{path} --{long}"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "flags outside the naming scheme: {bad:?}");
    // The old spellings still parse, hidden, to the same setting.
    for (new, old) in [
        (
            vec![
                "runner",
                "agentic",
                "--model",
                "m",
                "--request-timeout",
                "5",
            ],
            vec![
                "runner",
                "agentic",
                "--model",
                "m",
                "--request-timeout-seconds",
                "5",
            ],
        ),
        (
            vec![
                "runner",
                "agentic",
                "--model",
                "m",
                "--trace-idle-gap-cap",
                "7",
            ],
            vec![
                "runner",
                "agentic",
                "--model",
                "m",
                "--trace-idle-gap-cap-seconds",
                "7",
            ],
        ),
        (
            vec!["runner", "agentic-bench", "--duration", "3"],
            vec!["runner", "agentic-bench", "--seconds", "3"],
        ),
    ] {
        let a = format!(
            "{:?}",
            infmax::cli::runner::Cli::try_parse_from(&new).unwrap()
        );
        let b = format!(
            "{:?}",
            infmax::cli::runner::Cli::try_parse_from(&old).unwrap()
        );
        assert_eq!(a, b, "{old:?} parses as {new:?}");
    }
    let s =
        |args: &[&str]| infmax::cli::scheduler::Cli::try_parse_from(args).map(|c| format!("{c:?}"));
    assert_eq!(
        s(&[
            "scheduler",
            "dispatch",
            "--isl-osl",
            "1k1k",
            "--wait-timeout",
            "9"
        ])
        .unwrap(),
        s(&[
            "scheduler",
            "dispatch",
            "--isl-osl",
            "1k1k",
            "--wait-s",
            "9"
        ])
        .unwrap()
    );
    let help = infmax::cli::runner::Cli::command()
        .find_subcommand_mut("agentic")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(
        !help.contains("-seconds "),
        "old spellings are hidden: {help}"
    );
}

/// A fake machine for `runner doctor`: a bin/ folder of tool scripts (first on PATH), an HF
/// home, a templates folder and a row.
struct FakeMachine {
    dir: tempfile::TempDir,
}

impl FakeMachine {
    fn new() -> FakeMachine {
        let dir = tempfile::tempdir().unwrap();
        for d in ["bin", "hf/hub", "benchmarks", "out"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let row = serde_json::json!({"image": "lmsysorg/sglang:v0.5.5", "model": "m/m", "precision": "fp4",
            "framework": "sglang", "runner": "b200", "isl": 1024, "osl": 1024, "tp": 8, "conc": 4,
            "max-model-len": 2248, "ep": 1, "dp-attn": false, "exp-name": "dsr1_1k1k"});
        std::fs::write(dir.path().join("row.json"), row.to_string()).unwrap();
        std::fs::write(
            dir.path().join("benchmarks/dsr1_fp4_b200_sglang.sh"),
            "exec true\n",
        )
        .unwrap();
        FakeMachine { dir }
    }
    /// A tool on the fake PATH: a shell script.
    fn tool(&self, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    fn nvidia_gpus(&self, n: usize) {
        let lines: String = (0..n)
            .map(|i| format!("echo 'GPU {i}: NVIDIA B200 (UUID: GPU-{i})'\n"))
            .collect();
        self.tool("nvidia-smi", &lines);
    }
    /// `runner doctor args…` on the fake machine: (exit code, stdout).
    fn doctor(&self, args: &[&str]) -> (Option<i32>, String) {
        let d = self.dir.path();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
            .arg("doctor")
            .args([
                "--runners",
                &super::util::root().join("runners").display().to_string(),
            ])
            .args(["--benchmarks", &d.join("benchmarks").display().to_string()])
            .args(["--out", &d.join("out").display().to_string()])
            .args(args)
            .current_dir(d)
            // Only the fake tools and the basics (no /usr/local/bin, where a real docker
            // may live).
            .env("PATH", format!("{}:/usr/bin:/bin", d.join("bin").display()))
            .env("HF_HOME", d.join("hf"))
            .env_remove("HF_HUB_CACHE")
            .env("HF_TOKEN", "hf_doctor_secret_value_0123456789")
            .env_remove("RUNNER_NAME")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !text.contains("hf_doctor_secret_value"),
            "the token is never printed: {text}"
        );
        (out.status.code(), text)
    }
}

/// The line of check `what`.
fn line<'a>(text: &'a str, what: &str) -> &'a str {
    text.lines()
        .find(|l| l.get(6..).is_some_and(|r| r.starts_with(what)))
        .unwrap_or_else(|| panic!("no `{what}` line in:\n{text}"))
}

#[test]
fn doctor_checks_what_a_profile_needs_on_a_fake_machine() {
    let m = FakeMachine::new();
    m.tool(
        "docker",
        r#"case "$1" in
  info) echo 27.0.3 ;;
  image) [ "$5" = "lmsysorg/sglang:v0.5.5" ] || { echo "No such image: $5" >&2; exit 1; } ;;
  *) exit 2 ;;
esac"#,
    );
    m.nvidia_gpus(8);
    let row = m.dir.path().join("row.json").display().to_string();
    let (code, out) = m.doctor(&["--profile", "docker-nvidia", "--config", &row]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        line(&out, "profile").starts_with("ok") && line(&out, "profile").contains("docker-nvidia"),
        "{out}"
    );
    assert!(
        line(&out, "docker daemon").starts_with("ok") && out.contains("27.0.3"),
        "{out}"
    );
    assert!(line(&out, "engine image").starts_with("ok"), "{out}");
    assert!(line(&out, "GPUs").contains("nvidia-smi lists 8"), "{out}");
    assert!(
        line(&out, "launch template").contains("dsr1_fp4_b200_sglang.sh"),
        "{out}"
    );
    assert!(
        line(&out, "HF cache").starts_with("ok") && line(&out, "HF cache").contains("writable"),
        "{out}"
    );
    assert!(
        line(&out, "HF_TOKEN").starts_with("ok") && line(&out, "HF_TOKEN").ends_with("set"),
        "{out}"
    );
    assert!(out.contains("ready: no required check failed"), "{out}");

    // Too few GPUs for the row's tp, and its port held: two failures, exit 1, each said.
    m.nvidia_gpus(4);
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let (code, out) = m.doctor(&[
        "--profile",
        "docker-nvidia",
        "--config",
        &row,
        "--port",
        &port,
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        line(&out, "GPUs").starts_with("FAIL")
            && out.contains("lists 4 GPUs; the row needs tp = 8"),
        "{out}"
    );
    assert!(
        line(&out, "port").starts_with("FAIL")
            && out.contains(&format!("port {port} is already in use")),
        "{out}"
    );
    assert!(
        out.contains("not ready: 2 required check(s) failed"),
        "{out}"
    );
    drop(held);

    // No docker at all; a daemon that does not answer.
    std::fs::remove_file(m.dir.path().join("bin/docker")).unwrap();
    let (code, out) = m.doctor(&["--profile", "docker-nvidia"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        line(&out, "docker").starts_with("FAIL")
            && line(&out, "docker").contains("not found on PATH"),
        "{out}"
    );
    m.tool(
        "docker",
        "echo 'Cannot connect to the Docker daemon' >&2; exit 1",
    );
    let (code, out) = m.doctor(&["--profile", "docker-nvidia", "--json"]);
    assert_eq!(code, Some(1), "{out}");
    let checks: serde_json::Value = serde_json::from_str(&out).unwrap();
    let daemon = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["what"] == "docker daemon")
        .unwrap();
    assert_eq!(daemon["status"], "fail");
    assert!(daemon["detail"]
        .as_str()
        .unwrap()
        .contains("Cannot connect to the Docker daemon"));

    // Slurm: its four tools and a controller that answers; then one that does not.
    for t in ["salloc", "srun", "scancel"] {
        m.tool(t, "exit 0");
    }
    m.tool("sinfo", "echo 'debug* up 1 idle'");
    let (code, out) = m.doctor(&["--profile", "slurm"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        line(&out, "slurm controller").contains("debug* up 1 idle"),
        "{out}"
    );
    m.tool(
        "sinfo",
        "echo 'sinfo: error: Unable to contact slurm controller' >&2; exit 1",
    );
    let (code, out) = m.doctor(&["--profile", "slurm"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        line(&out, "slurm controller").contains("Unable to contact slurm controller"),
        "{out}"
    );
    // An unknown profile is a failed check, not a crash.
    let (code, out) = m.doctor(&["--profile", "nope"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        line(&out, "profile").starts_with("FAIL") && out.contains("no launch profile `nope`"),
        "{out}"
    );
}

/// `bash -c script` with `scripts/NAME` sourced first (functions only); (status, stdout,
/// stderr).
fn with_script(name: &str, script: &str) -> (Option<i32>, String, String) {
    let path = super::util::root().join("scripts").join(name);
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}'\n{script}", path.display()))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn slurm_packages_install_without_starting_or_enabling_their_services() {
    let d = tempfile::tempdir().unwrap();
    let policy = d.path().join("policy-rc.d").display().to_string();
    let calls = d.path().join("calls").display().to_string();
    // Fake apt tools as shell functions: apt-get records whether a service start would be
    // allowed while it runs (what invoke-rc.d asks policy-rc.d); none of the packages is
    // installed yet except munge.
    let script = format!(
        r#"export INFMAX_POLICY_RC_D='{policy}'
apt-get() {{ echo "apt-get $* | policy-rc.d says $('{policy}' slurmctld start; echo $?)" >>'{calls}'; }}
dpkg-query() {{ [ "$3" = munge ] && echo 'install ok installed'; return 0; }}
deb-systemd-helper() {{ echo "deb-systemd-helper $*" >>'{calls}'; }}
install_debs slurmctld slurmd slurm-client munge
[ -e '{policy}' ] && echo 'policy left behind'
exit 0"#
    );
    let (code, out, err) = with_script("slurm-cluster.sh", &script);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        !out.contains("left behind"),
        "policy-rc.d is removed after the install"
    );
    let calls = std::fs::read_to_string(&calls).unwrap();
    assert!(
        calls.contains("apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge | policy-rc.d says 101"),
        "service starts are forbidden during apt-get: {calls}"
    );
    for p in ["slurmctld", "slurmd"] {
        assert!(
            calls.contains(&format!("deb-systemd-helper disable {p}.service")),
            "{calls}"
        );
    }
    assert!(
        !calls.contains("disable munge"),
        "a munge the machine had keeps its settings: {calls}"
    );
    // A policy-rc.d the machine already has is its owner's: used, never replaced or removed.
    std::fs::write(&policy, "#!/bin/sh\nexit 0\n").unwrap();
    let (code, _, err) = with_script("slurm-cluster.sh", &script.replace("exit 0\"#", ""));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(&policy).unwrap(),
        "#!/bin/sh\nexit 0\n"
    );
}

#[test]
fn build_output_goes_to_a_log_file_and_its_tail_is_shown_on_failure() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("logs/build.log").display().to_string();
    // A build step that prints 5,000 warning lines and succeeds: nothing on the terminal.
    let (code, out, err) = with_script(
        "llama-server.sh",
        &format!(
            "quietly '{log}' bash -c 'for i in $(seq 5000); do echo \"warning: w$i\" >&2; done'"
        ),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.is_empty() && err.is_empty(),
        "quiet on success: {out}{err}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("warning: w")).count(),
        5000
    );
    // One that fails: its last lines and the log's path, and a failing status.
    let (code, _, err) = with_script(
        "llama-server.sh",
        &format!("quietly '{log}' bash -c 'for i in $(seq 100); do echo \"line $i\"; done; echo \"error: boom\" >&2; exit 3'"),
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains("error: boom") && err.contains("line 100") && !err.contains("line 50\n"),
        "{err}"
    );
    assert!(err.contains(&format!("full log: {log}")), "{err}");
}
