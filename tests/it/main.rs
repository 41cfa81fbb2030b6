//! One integration-test binary, a module per area (ripgrep's layout): every test drives the
//! real binaries or the library against real files.

// Benchmarks and tests print their own diagnostics; the redacting macros are for the
// product (clippy.toml).
#![allow(clippy::disallowed_macros)]

mod accuracy;
mod agentic;
mod agentic_agg;
mod agentic_launch;
mod agentic_templates;
mod cli;
mod client;
mod config;
mod datasets;
mod exec;
mod github;
mod golden;
mod html_report;
mod power;
mod publish;
mod real;
mod report;
mod scheduler;
mod schema2026;
mod sim;
mod slurm;
mod telemetry;
mod util;
mod verdict;
mod workflows;
