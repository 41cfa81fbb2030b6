//! Typed, strict views of every file a user hands us: InferenceMAX master configs
//! (both schemas), `runners.yaml`, and the single job row `runner exec` reads.
//!
//! Configs are written by hand and read by machines with GPUs that cost money per hour, so a
//! mistake must be caught here, before anything is scheduled, with a message that says where
//! it is: `file:line:col` for syntax and type errors (from the parser), and the entry key and
//! field path for rule violations found after parsing.

mod error;
mod ix2026;
pub mod master;
pub mod row;
pub mod runners;

pub(crate) use error::{parse_json, parse_yaml, UniqueMap};
pub use error::{read_file, ConfigError};

/// The launch template an entry or row runs: `<model-prefix>_<precision>_<gpu>_<framework>`
/// with `_mtp` for MTP speculative decoding, where the GPU is the runner label up to its
/// first `-` (`b200-trt` and `b200-nvd_1` are both `b200`). Shared by the recipe stage, which
/// looks the file up, and `scheduler diff`, which reruns entries whose template changed.
pub fn template_file_name(
    model_prefix: &str,
    precision: &str,
    runner: &str,
    framework: &str,
    mtp: bool,
) -> String {
    // InferenceX's cluster labels (`cluster:h200-dgxc`) name the same GPU.
    let runner = runner.strip_prefix("cluster:").unwrap_or(runner);
    let gpu = runner.split('-').next().unwrap_or(runner);
    let mtp = if mtp { "_mtp" } else { "" };
    format!("{model_prefix}_{precision}_{gpu}_{framework}{mtp}.sh")
}
