//! Typed, strict views of every file a user hands us: InferenceMAX master configs
//! (both schemas), `runners.yaml`, and the single job row `runner exec` reads.
//!
//! Configs are written by hand and read by machines with GPUs that cost money per hour, so a
//! mistake must be caught here, before anything is scheduled, with a message that says where
//! it is: `file:line:col` for syntax and type errors (from the parser), and the entry key and
//! field path for rule violations found after parsing.

mod error;
pub mod master;
pub mod row;
pub mod runners;

pub(crate) use error::{parse_json, parse_yaml, UniqueMap};
pub use error::{read_file, ConfigError};
