//! The sinks file (`--sinks sinks.yaml`): where rows go and which fields they carry.
//!
//! Leaderboards change their endpoints and payloads between rounds; that is configuration,
//! not code. A Gradio sink routes each row by (model, isl, osl[, conc]) to a Space URL, an
//! API name and an ordered field list; a webhook sink posts the whole agg row. Tokens are
//! never in this file — only the *name* of the environment variable that holds one.
//!
//! ```yaml
//! values: {team: my-team}            # constants usable as fields
//! sinks:
//!   - name: bounty
//!     kind: gradio
//!     token_env: HF_TOKEN             # default for gradio sinks
//!     routes:
//!       - match: {model: dsr1-fp4, isl: 1024, osl: 1024}
//!         space: https://org-board.hf.space
//!         api_name: submit
//!         fields: [team, conc, median_e2e_ms, tput_per_gpu, baseline_e2e, baseline_tput,
//!                  e2e_ratio, tput_ratio, bits_per_byte, byte_perplexity, word_perplexity]
//!   - name: hook
//!     kind: webhook
//!     url: https://example.org/infmax
//! ```
//!
//! A route with `match: {model: dsv4-fp4-mtp, scenario: agentic-coding}` takes agentic
//! (AgentX) points instead: no ISL/OSL, `conc` are the users, and its fields may name the
//! dashboard's flat metric keys as `agg.<key>` (`agg.median_ttft`, `agg.tput_per_gpu`, …;
//! see [`super::payload::flatten_agentic`]).

use super::payload::FIELD_NAMES;
use crate::config::{parse_yaml, ConfigError};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What to do with a row whose submission may or may not have reached the sink (the
/// publisher stopped between sending and recording the answer, or the Space no longer
/// knows the event): resubmitting risks a duplicate, holding risks nothing but needs a
/// person (or `--resubmit-unconfirmed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnUnconfirmed {
    /// Keep the row in the outbox as `unconfirmed` until someone checks the board.
    #[default]
    Hold,
    /// Submit again (right for sinks that deduplicate by the idempotency key).
    Resubmit,
}

/// The sinks file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    /// Constant values usable as payload fields (e.g. `team`).
    #[serde(default)]
    pub values: IndexMap<String, serde_json::Value>,
    /// The sinks, each row goes to every sink that wants it.
    pub sinks: Vec<Sink>,
}

/// One sink.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "RawSink")]
pub struct Sink {
    /// Unique name; part of every outbox entry's identity.
    pub name: String,
    /// The protocol and its settings.
    pub kind: SinkKind,
    /// Environment variable holding the bearer token (gradio default `HF_TOKEN`).
    pub token_env: Option<String>,
    /// Policy for submissions whose fate is unknown (gradio default `hold`, webhook default
    /// `resubmit`: the webhook receiver gets the idempotency key and can drop repeats).
    pub on_unconfirmed: Option<OnUnconfirmed>,
}

/// Protocol of a sink.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    /// A Hugging Face Space through the Gradio call API.
    Gradio {
        /// Where each row goes, first match wins; rows matching no route are not sent here.
        routes: Vec<Route>,
    },
    /// A JSON webhook: `POST url` with the idempotency key, the run id and the agg row.
    Webhook {
        /// The endpoint.
        url: String,
    },
}

/// A sink as written: `kind` selects the shape, and each shape rejects unknown keys.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum RawSink {
    Gradio(RawGradio),
    Webhook(RawWebhook),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGradio {
    name: String,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    on_unconfirmed: Option<OnUnconfirmed>,
    routes: Vec<Route>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    name: String,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    on_unconfirmed: Option<OnUnconfirmed>,
    url: String,
}

impl From<RawSink> for Sink {
    fn from(r: RawSink) -> Self {
        match r {
            RawSink::Gradio(g) => Sink {
                name: g.name,
                kind: SinkKind::Gradio { routes: g.routes },
                token_env: g.token_env,
                on_unconfirmed: g.on_unconfirmed,
            },
            RawSink::Webhook(w) => Sink {
                name: w.name,
                kind: SinkKind::Webhook { url: w.url },
                token_env: w.token_env,
                on_unconfirmed: w.on_unconfirmed,
            },
        }
    }
}

/// The kind of result a route takes (InferenceX's `scenario-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteScenario {
    /// Fixed-length rows (agg rows), matched by model × ISL/OSL.
    #[default]
    FixedSeqLen,
    /// Agentic (AgentX) points, the v3 aggregates, matched by model (and users): they have
    /// no ISL/OSL, as the dashboard stores them with `isl = osl = null`.
    AgenticCoding,
}

/// Which rows a route takes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Model key (`dsr1-fp4`, `gptoss-fp4`, `dsr1-fp4-mtp`).
    pub model: String,
    /// Which kind of result (default `fixed-seq-len`).
    #[serde(default)]
    pub scenario: RouteScenario,
    /// Input sequence length (fixed-seq-len routes only, required there).
    #[serde(default)]
    pub isl: Option<u32>,
    /// Output sequence length (fixed-seq-len routes only, required there).
    #[serde(default)]
    pub osl: Option<u32>,
    /// Only these concurrencies, or users for agentic points (default: all).
    #[serde(default)]
    pub conc: Option<Vec<u32>>,
}

/// One Gradio route.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Route {
    /// Which rows.
    #[serde(rename = "match")]
    pub matches: RouteMatch,
    /// Space base URL, e.g. `https://org-board.hf.space`.
    pub space: String,
    /// Gradio API name (without the leading slash).
    pub api_name: String,
    /// Payload fields in order (see [`super::payload`] for the vocabulary).
    pub fields: Vec<String>,
}

impl Sink {
    /// Token variable in force (gradio: `HF_TOKEN` unless set).
    pub fn token_env(&self) -> Option<&str> {
        match (&self.token_env, &self.kind) {
            (Some(t), _) => Some(t.as_str()),
            (None, SinkKind::Gradio { .. }) => Some("HF_TOKEN"),
            (None, SinkKind::Webhook { .. }) => None,
        }
    }

    /// Policy in force for unconfirmed submissions.
    pub fn on_unconfirmed(&self) -> OnUnconfirmed {
        match (self.on_unconfirmed, &self.kind) {
            (Some(p), _) => p,
            (None, SinkKind::Gradio { .. }) => OnUnconfirmed::Hold,
            (None, SinkKind::Webhook { .. }) => OnUnconfirmed::Resubmit,
        }
    }
}

impl SinksConfig {
    /// Read and check a sinks file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (file, text) = crate::config::read_file(path)?;
        Self::parse(&file, &text)
    }

    /// Parse and check; `file` names the source in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let cfg: SinksConfig = parse_yaml(file, text)?;
        cfg.validate(file)?;
        // The sinks' tokens are secrets from now on, whatever their variables are called.
        for s in &cfg.sinks {
            if let Some(v) = s.token_env() {
                crate::secrets::register_env(v);
            }
        }
        Ok(cfg)
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        if self.sinks.is_empty() {
            return Err(ConfigError::invalid(
                file,
                "sinks",
                "sinks",
                "no sinks defined",
            ));
        }
        for (i, s) in self.sinks.iter().enumerate() {
            let at = |p: &str| format!("sinks[{i}]{p}");
            if s.name.trim().is_empty() {
                return Err(ConfigError::invalid(
                    file,
                    "sinks",
                    at(".name"),
                    "must not be empty",
                ));
            }
            if !names.insert(s.name.clone()) {
                return Err(ConfigError::invalid(
                    file,
                    &s.name,
                    at(".name"),
                    format!("sink name `{}` is used twice", s.name),
                ));
            }
            if let Some(t) = &s.token_env {
                if t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(ConfigError::invalid(
                        file,
                        &s.name,
                        at(".token_env"),
                        "must be an environment variable name (the token itself never goes in this file)",
                    ));
                }
            }
            match &s.kind {
                SinkKind::Gradio { routes } => {
                    if routes.is_empty() {
                        return Err(ConfigError::invalid(
                            file,
                            &s.name,
                            at(".routes"),
                            "no routes",
                        ));
                    }
                    for (j, r) in routes.iter().enumerate() {
                        let rat = |p: &str| at(&format!(".routes[{j}]{p}"));
                        check_url(file, &s.name, &rat(".space"), &r.space)?;
                        let m = &r.matches;
                        match (m.scenario, m.isl, m.osl) {
                            (RouteScenario::FixedSeqLen, Some(_), Some(_))
                            | (RouteScenario::AgenticCoding, None, None) => {}
                            (RouteScenario::FixedSeqLen, _, _) => {
                                return Err(ConfigError::invalid(
                                    file,
                                    &s.name,
                                    rat(".match"),
                                    "a fixed-seq-len route needs both `isl` and `osl`",
                                ))
                            }
                            (RouteScenario::AgenticCoding, _, _) => {
                                return Err(ConfigError::invalid(
                                    file,
                                    &s.name,
                                    rat(".match"),
                                    "an agentic-coding route takes no `isl`/`osl` (agentic points have none)",
                                ))
                            }
                        }
                        if r.api_name.is_empty() || r.api_name.contains('/') {
                            return Err(ConfigError::invalid(
                                file,
                                &s.name,
                                rat(".api_name"),
                                "an API name without slashes, e.g. `submit`",
                            ));
                        }
                        if r.fields.is_empty() {
                            return Err(ConfigError::invalid(
                                file,
                                &s.name,
                                rat(".fields"),
                                "no fields",
                            ));
                        }
                        for (k, f) in r.fields.iter().enumerate() {
                            if !self.known_field(f) {
                                return Err(ConfigError::invalid(
                                    file,
                                    &s.name,
                                    rat(&format!(".fields[{k}]")),
                                    format!(
                                        "unknown field `{f}`; known: {}, a `values` key, `agg.<key>` or `accuracy.<metric>`",
                                        FIELD_NAMES.join(", ")
                                    ),
                                ));
                            }
                        }
                    }
                }
                SinkKind::Webhook { url } => check_url(file, &s.name, &at(".url"), url)?,
            }
        }
        Ok(())
    }

    fn known_field(&self, f: &str) -> bool {
        FIELD_NAMES.contains(&f)
            || self.values.contains_key(f)
            || f.strip_prefix("agg.").is_some_and(|k| !k.is_empty())
            || f.strip_prefix("accuracy.").is_some_and(|k| !k.is_empty())
    }
}

fn check_url(file: &str, sink: &str, path: &str, url: &str) -> Result<(), ConfigError> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && reqwest::Url::parse(url).is_ok();
    if !ok {
        return Err(ConfigError::invalid(
            file,
            sink,
            path,
            format!("`{url}` is not an http(s) URL"),
        ));
    }
    if reqwest::Url::parse(url).is_ok_and(|u| !u.username().is_empty() || u.password().is_some()) {
        return Err(ConfigError::invalid(
            file,
            sink,
            path,
            "credentials do not belong in URLs; use token_env",
        ));
    }
    Ok(())
}
