//! `runner`: run one matrix row end to end on a GPU runner or a user's box.
use clap::Parser;

fn main() -> std::process::ExitCode {
    infmax::cli::init_logging();
    infmax::cli::runner::run(infmax::cli::runner::Cli::parse())
}
