//! Command-line front ends of the two binaries. They live in the library so the binaries stay
//! a few lines and so tests can drive the same code paths.

pub mod agentic;
pub mod bench;
pub mod exec;
pub mod runner;
pub mod scheduler;
pub mod selftest;

/// Set up `tracing` output on stderr, filtered by `RUST_LOG` (default `info`), and the secret
/// registry with the redacting log writer and panic hook (see [`crate::secrets`]).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    crate::secrets::init();
    crate::secrets::install_panic_hook();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| crate::secrets::LogWriter)
        .with_target(false)
        .try_init();
}
