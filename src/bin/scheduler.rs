//! `scheduler`: expand InferenceMAX-style master configs into GitHub Actions matrix rows.
use clap::Parser;

fn main() -> std::process::ExitCode {
    infmax::cli::init_logging();
    infmax::cli::scheduler::run(infmax::cli::scheduler::Cli::parse())
}
