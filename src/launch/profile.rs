//! Launch profiles (`runners/*.yaml`): how a cluster starts an engine.
//!
//! The same recipe runs on a developer box (`local`), a docker host (`docker`, AMD or NVIDIA
//! devices), a Slurm cluster (`slurm`) or nowhere at all (`sim`, the built-in engine).
//! Profiles are data so a new cluster needs a YAML file, not code. `runners/map.yaml` maps
//! runner labels (types like `mi355x`, node names like `mi355x-amd_4`, globs) to profiles.

use crate::config::{parse_yaml, ConfigError, UniqueMap};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// GPU vendor of a docker host: decides the device flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gpus {
    /// `--device /dev/kfd --device /dev/dri --group-add video --security-opt seccomp=unconfined`.
    Amd,
    /// `--gpus all`.
    Nvidia,
    /// No device flags (CPU engines).
    None,
}

/// Container flags for Slurm's pyxis plugin.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Pyxis {
    /// `--container-image` (defaults to the row's image).
    #[serde(default)]
    pub image: Option<String>,
    /// `--container-mounts SRC:DST` entries (the HF cache and the recipe dir are added).
    #[serde(default)]
    pub mounts: Vec<String>,
    /// `--container-workdir`.
    #[serde(default)]
    pub workdir: Option<String>,
}

/// How to start an engine.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Profile {
    /// Run the recipe with bash on this machine.
    Local {},
    /// `docker run` the row's image with the recipe mounted.
    Docker {
        gpus: Gpus,
        /// `--shm-size`.
        #[serde(default = "default_shm", rename = "shm-size")]
        shm_size: String,
        /// Mount `$HF_HUB_CACHE` (or `~/.cache/huggingface/hub`) into the container.
        #[serde(default = "yes", rename = "hf-cache")]
        hf_cache: bool,
        /// More `docker run` arguments (validated: no shell is involved).
        #[serde(default, rename = "extra-args")]
        extra_args: Vec<String>,
    },
    /// Allocate with `salloc`, run with `srun`, release with `scancel`.
    Slurm {
        #[serde(default)]
        partition: Option<String>,
        /// Wall-clock limit in minutes.
        #[serde(default = "default_minutes", rename = "time-minutes")]
        time_minutes: u32,
        /// Request `--gres=gpu:<tp>`.
        #[serde(default = "yes", rename = "gres-gpus")]
        gres_gpus: bool,
        /// `--exclusive` node allocation.
        #[serde(default)]
        exclusive: bool,
        /// Seconds to wait for the allocation (`--immediate`).
        #[serde(default = "default_alloc_wait", rename = "alloc-wait-s")]
        alloc_wait_s: u32,
        #[serde(default)]
        pyxis: Option<Pyxis>,
    },
    /// The built-in simulated engine, with one of its presets.
    Sim {
        #[serde(default = "default_preset")]
        preset: String,
    },
}

fn default_shm() -> String {
    "16g".into()
}
fn yes() -> bool {
    true
}
fn default_minutes() -> u32 {
    180
}
fn default_alloc_wait() -> u32 {
    600
}
fn default_preset() -> String {
    "b200-dsr1".into()
}

impl Profile {
    /// Short name of the kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Profile::Local {} => "local",
            Profile::Docker { .. } => "docker",
            Profile::Slurm { .. } => "slurm",
            Profile::Sim { .. } => "sim",
        }
    }
}

/// A profile loaded from `runners/<name>.yaml`.
#[derive(Debug, Clone)]
pub struct NamedProfile {
    pub name: String,
    pub file: PathBuf,
    pub profile: Profile,
}

/// Why a profile could not be chosen or read.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no launch profile `{name}` in {dir}; available: {available}")]
    Unknown {
        name: String,
        dir: String,
        available: String,
    },
    #[error("no launch profile for runner `{label}`: add it to {map} or pass --profile (available: {available})")]
    Unmapped {
        label: String,
        map: String,
        available: String,
    },
    #[error("{0}")]
    Invalid(String),
}

fn available(dir: &Path) -> String {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".yaml").map(str::to_string)
                })
                .filter(|n| n != "map")
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.join(", ")
}

/// Load `runners/<name>.yaml`.
pub fn load(dir: &Path, name: &str) -> Result<NamedProfile, ProfileError> {
    let ok_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let file = dir.join(format!("{name}.yaml"));
    if !ok_name || !file.is_file() {
        return Err(ProfileError::Unknown {
            name: name.into(),
            dir: dir.display().to_string(),
            available: available(dir),
        });
    }
    let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
        file: file.display().to_string(),
        source,
    })?;
    let profile: Profile = parse_yaml(&file.display().to_string(), &text)?;
    if let Profile::Docker { extra_args, .. } = &profile {
        if let Some(a) = extra_args.iter().find(|a| a.contains('\n') || a.is_empty()) {
            return Err(ProfileError::Invalid(format!(
                "{}: extra-args entry {a:?} is empty or has a newline",
                file.display()
            )));
        }
    }
    Ok(NamedProfile {
        name: name.into(),
        file,
        profile,
    })
}

/// Pick the profile for a runner: the first `runners/map.yaml` pattern (in file order)
/// matching any of `labels` (the GitHub runner name first, then the row's runner).
pub fn resolve(dir: &Path, labels: &[&str]) -> Result<NamedProfile, ProfileError> {
    let map_file = dir.join("map.yaml");
    let text = std::fs::read_to_string(&map_file).map_err(|source| ConfigError::Read {
        file: map_file.display().to_string(),
        source,
    })?;
    let UniqueMap(map) = parse_yaml::<UniqueMap<String>>(&map_file.display().to_string(), &text)?;
    for label in labels.iter().filter(|l| !l.is_empty()) {
        for (pattern, profile) in &map {
            let g = globset::Glob::new(pattern)
                .map_err(|e| {
                    ProfileError::Invalid(format!(
                        "{}: pattern `{pattern}`: {e}",
                        map_file.display()
                    ))
                })?
                .compile_matcher();
            if g.is_match(label) {
                return load(dir, profile);
            }
        }
    }
    Err(ProfileError::Unmapped {
        label: labels.join(" / "),
        map: map_file.display().to_string(),
        available: available(dir),
    })
}
