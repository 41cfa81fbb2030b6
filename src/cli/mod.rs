//! Command-line front ends of the two binaries. They live in the library so the binaries stay
//! a few lines and so tests can drive the same code paths.

pub mod agentic;
pub mod bench;
pub mod doctor;
pub mod exec;
pub mod runner;
pub mod scheduler;
pub mod selftest;

/// `--version` of both binaries: the package version and the git commit they were built
/// from (see `build.rs`; "commit unknown" outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("INFMAX_GIT_COMMIT"),
    ")"
);

/// The heading every command's `--help` ends with; tests find the examples by it.
pub const EXAMPLES_HEADING: &str = "Examples:";

/// A command's `after_help`: its examples, one command line each.
pub fn examples(lines: &[&str]) -> String {
    let mut s = format!("{EXAMPLES_HEADING}\n");
    for l in lines {
        s.push_str("  ");
        s.push_str(l);
        s.push('\n');
    }
    s.trim_end().to_string()
}

/// [`examples`], then a note (exit codes) after a blank line.
pub fn examples_and(lines: &[&str], note: &str) -> String {
    format!("{note}\n\n{}", examples(lines))
}

/// Exit codes of `runner exec` and `runner batch` (also in the README).
pub const EXEC_EXIT_CODES: &str =
    "Exit codes: 0 done, 10 config, 11 launch, 12 readiness, 13 load (engine died, \
more than 5 % of requests failed, or the load phase was stopped), 14 accuracy, 15 report; \
130 SIGINT, 143 SIGTERM, 129 SIGHUP.";

/// An error and its causes on one line, each cause once: `{:#}` would append a cause that
/// the message above it already quotes (`x: cannot read: No such file: No such file`), as
/// most of our error types put their source into their own message.
pub fn error_text(e: &anyhow::Error) -> String {
    chain_text(e.chain())
}

/// [`error_text`] for any error with a `source()` chain.
pub fn std_error_text(e: &(dyn std::error::Error + 'static)) -> String {
    chain_text(std::iter::successors(Some(e), |e| e.source()))
}

fn chain_text<'a>(chain: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>) -> String {
    let mut out = String::new();
    for e in chain {
        let t = e.to_string();
        if t.is_empty() || out.contains(&t) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&t);
    }
    out
}

/// Print `C`'s completion script for `shell` on stdout.
pub fn completions<C: clap::CommandFactory>(
    shell: clap_complete::Shell,
    bin: &str,
) -> std::process::ExitCode {
    let mut buf = vec![];
    clap_complete::generate(shell, &mut C::command(), bin, &mut buf);
    crate::out!("{}", String::from_utf8_lossy(&buf));
    std::process::ExitCode::SUCCESS
}

/// Set up `tracing` output on stderr, filtered by `RUST_LOG` (default `info`), and the secret
/// registry with the redacting log writer and panic hook (see [`crate::secrets`]). Colour
/// only when stderr is a terminal and `NO_COLOR` is unset ([`crate::term`]).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    crate::secrets::init();
    crate::secrets::install_panic_hook();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| crate::secrets::LogWriter)
        .with_target(false)
        // Colour only on a terminal, never under NO_COLOR: redirected logs stay plain text.
        .with_ansi(crate::term::colour_stderr())
        .try_init();
}
