//! infmax: benchmark LLM serving engines on GPU fleets the way InferenceMAX does.
//!
//! The modules follow the pipeline, and data flows one way through them:
//!
//! ```text
//! config → sweep → (recipe → launch → client → accuracy → report → publish)
//! ```
//!
//! * [`config`] — strict, located parsing of master configs, runners.yaml and job rows.
//! * [`sweep`] — master configs → job rows, filters, GitHub matrix chunks, git diffs.
//! * [`sim`] — the simulated engine (`runner sim`): OpenAI-compatible, continuous-batching
//!   latency model, exact-schedule mode, fault injection, the embedded tokenizer.
//!
//! The binaries in `src/bin/` are thin: they parse flags, call into these modules and turn
//! errors into exit codes.

pub mod cli;
pub mod config;
pub mod sim;
pub mod sweep;
