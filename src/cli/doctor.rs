//! `runner doctor`: one line per thing a launch profile needs on this machine (see
//! [`crate::launch::doctor`]); exit 1 when a required check fails.

use crate::config::row::MatrixRow;
use crate::launch::doctor::{self, DoctorOptions, Status};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `runner doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Launch profile in runners/ to check for (default: chosen by runners/map.yaml from
    /// RUNNER_NAME or the row's runner; none: the machine's basics only).
    #[arg(long)]
    pub profile: Option<String>,
    /// A fixed-seq-len job row: also check its launch template, image and GPU count.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Folder of the launch profiles and map.yaml.
    #[arg(long, default_value = "runners")]
    pub runners: PathBuf,
    /// Folder of the launch templates.
    #[arg(long, default_value = "benchmarks")]
    pub benchmarks: PathBuf,
    /// The engine port a run would use (default: check that a free one exists).
    #[arg(long)]
    pub port: Option<u16>,
    /// Where results would be written (its free space is checked).
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// GitHub runner name the profile map chooses by.
    #[arg(long, env = "RUNNER_NAME")]
    pub runner_name: Option<String>,
    /// Seconds a tool (docker info, sinfo, nvidia-smi) may take to answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    pub tool_timeout: u64,
    /// Print the checks as a JSON array (what, status, detail) instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Run `runner doctor`.
pub fn run(a: DoctorArgs) -> ExitCode {
    let row = match &a.config {
        None => None,
        Some(p) => match MatrixRow::load(p) {
            Ok(MatrixRow::Single(r)) => Some(r),
            Ok(r) => {
                crate::errln!(
                    "error: {}: doctor checks fixed-seq-len single-node rows; this is a {} row (use --profile)",
                    p.display(),
                    r.kind()
                );
                return ExitCode::from(crate::exec::Stage::Config.exit_code());
            }
            Err(e) => {
                crate::errln!("error: {e}");
                return ExitCode::from(crate::exec::Stage::Config.exit_code());
            }
        },
    };
    let o = DoctorOptions {
        runners_dir: a.runners,
        benchmarks_dir: a.benchmarks,
        profile: a.profile,
        runner_name: a.runner_name.filter(|n| !n.is_empty()),
        row,
        port: a.port,
        out: a.out,
        tool_timeout: Duration::from_secs(a.tool_timeout.max(1)),
    };
    let (_, checks) = doctor::run(&o);
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if a.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&checks).expect("checks serialise")
        );
    } else {
        let width = checks.iter().map(|c| c.what.len()).max().unwrap_or(0);
        for c in &checks {
            let mark = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            crate::outln!("{mark}  {:<width$}  {}", c.what, c.detail);
        }
        let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
        match failed {
            0 => crate::outln!("ready: no required check failed ({warned} warnings)"),
            n => crate::outln!("not ready: {n} required check(s) failed ({warned} warnings)"),
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
