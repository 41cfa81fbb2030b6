//! `runner` subcommands.

use crate::config::row::JobRow;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Run one matrix row end to end: launch the engine, drive it, report.
#[derive(Debug, Parser)]
#[command(name = "runner", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Validate a job row (JSON or YAML) and print it as the runner reads it.
    Check {
        /// The row file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.cmd {
        Cmd::Check { config } => match JobRow::load(&config) {
            Ok(row) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&row).expect("row serialises")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
