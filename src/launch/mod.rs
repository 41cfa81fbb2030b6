//! Launching engines and making sure they stop.
//!
//! A recipe becomes a running engine through a launch profile ([`profile`]); [`engine`]
//! spawns it in its own process group with its output in `server.log`, waits until it is
//! really ready (`/health`, then `/v1/models`), fails within seconds when it dies (quoting
//! its last log lines), and tears it down on every path: success, failure, Ctrl-C, SIGTERM,
//! SIGHUP and a dropped handle — and, through [`supervise`], when the runner itself dies
//! (`kill -9`, a panic that aborts, an allocation failure).

pub mod doctor;
pub mod engine;
pub mod profile;
pub mod supervise;

pub use engine::{Engine, LaunchError, LaunchSpec};
pub use profile::{NamedProfile, Profile, ProfileError};
