//! Getting rows onto leaderboards without losing or duplicating one.
//!
//! A leaderboard submission crosses a network we do not control, to a service (an HF Space)
//! that may be asleep, restarting or rate-limiting. So publishing is two steps: every row is
//! first written to a durable [`outbox::Outbox`] (result files are already on disk by then),
//! then the outbox is drained: submit, confirm, and only then move the row to `done/`.
//! Anything not confirmed stays and is retried with exponential backoff — in this run up
//! to a cap, later by `runner publish --pending`. The outbox module documents the
//! idempotency scheme and where exactly-once ends and at-least-once begins.
//!
//! Sinks: an HF Space through the Gradio call API (payload fields and Space per model ×
//! ISL/OSL[× conc] for fixed-length rows, per model [× users] for agentic points, from a
//! config file, `HF_TOKEN` bearer) and a generic JSON webhook.
//! Tokens are read from the environment when a request is sent; they are never written to
//! the outbox, logged, or put into any result file.

pub mod cli;
pub mod config;
pub mod outbox;
pub mod payload;
pub mod transport;

pub use config::{OnUnconfirmed, RouteScenario, SinkKind, SinksConfig};
pub use outbox::{DrainOptions, DrainReport, Enqueued, Entry, Outbox, Request, State};

use crate::config::ConfigError;
use crate::report::{AggRow, ReportError};
use std::path::Path;

/// Why publishing could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A sinks file or an outbox entry is malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Writing an outbox file failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Reading the outbox failed.
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A row cannot be turned into the sink's payload (a field has no value).
    #[error("sink `{sink}`, row {key}: {reason}")]
    Payload {
        sink: String,
        key: String,
        reason: String,
    },
    /// Another publisher is draining this outbox.
    #[error("another publisher holds the outbox lock; try again when it is done")]
    Busy,
}

impl PublishError {
    pub(crate) fn io(file: &Path, source: std::io::Error) -> Self {
        PublishError::Io {
            file: file.display().to_string(),
            source,
        }
    }
}

/// The idempotency key of a row: run id + recipe fingerprint + ISL×OSL + conc. The
/// scenario is part of it because one recipe (same engine, same context length) can serve
/// two scenarios, and two different rows must never share a key. Without a fingerprint the
/// row's model, hardware, framework and parallelism stand in for it.
pub fn idempotency_key(run_id: &str, row: &AggRow) -> String {
    let recipe = if row.recipe_fingerprint.is_empty() {
        format!(
            "{}:{}:{}:tp{}:ep{}",
            row.model_key(),
            row.hw,
            row.framework,
            row.tp,
            row.ep
        )
    } else {
        row.recipe_fingerprint.clone()
    };
    format!("{run_id}:{recipe}:{}x{}:c{}", row.isl, row.osl, row.conc)
}

/// The outbox entries for `row`: one per sink that takes it (a Gradio sink takes rows
/// matching one of its routes; a webhook takes every row). A route whose fields have no
/// value for this row yields an error for that sink — the row is not sent with made-up
/// values.
pub fn entries_for(
    cfg: &SinksConfig,
    row: &AggRow,
    run_id: &str,
) -> Vec<Result<Entry, PublishError>> {
    let key = idempotency_key(run_id, row);
    let line = row.line();
    sink_entries(
        cfg,
        &key,
        run_id,
        |r| {
            r.matches.scenario == RouteScenario::FixedSeqLen
                && r.matches.model == line.model
                && r.matches.isl == Some(line.isl)
                && r.matches.osl == Some(line.osl)
                && r.matches
                    .conc
                    .as_ref()
                    .is_none_or(|c| c.contains(&row.conc))
        },
        |route| payload::gradio_data(&route.fields, row, &cfg.values, run_id, &key),
        |sink| {
            serde_json::json!({
                "idempotency_key": key,
                "sink": sink,
                "run_id": run_id,
                "row": row,
            })
        },
    )
}

/// The outbox entries of one point: a Gradio sink takes it through its first route that
/// `takes` it, with `gradio_data`'s values (a field with no value is an error for that sink:
/// nothing is sent with made-up values); a webhook takes every point with
/// `webhook_body(sink name)`.
fn sink_entries(
    cfg: &SinksConfig,
    key: &str,
    run_id: &str,
    takes: impl Fn(&config::Route) -> bool,
    gradio_data: impl Fn(&config::Route) -> Result<Vec<serde_json::Value>, String>,
    webhook_body: impl Fn(&str) -> serde_json::Value,
) -> Vec<Result<Entry, PublishError>> {
    let mut out = Vec::new();
    for sink in &cfg.sinks {
        let request = match &sink.kind {
            SinkKind::Gradio { routes } => {
                let Some(route) = routes.iter().find(|r| takes(r)) else {
                    continue;
                };
                match gradio_data(route) {
                    Ok(data) => Ok(Request::Gradio {
                        space: route.space.clone(),
                        api_name: route.api_name.clone(),
                        data,
                    }),
                    Err(reason) => Err(PublishError::Payload {
                        sink: sink.name.clone(),
                        key: key.to_string(),
                        reason,
                    }),
                }
            }
            SinkKind::Webhook { url } => Ok(Request::Webhook {
                url: url.clone(),
                body: webhook_body(&sink.name),
            }),
        };
        out.push(request.map(|request| {
            Entry::new(
                key.to_string(),
                sink.name.clone(),
                run_id.to_string(),
                request,
                sink.token_env().map(str::to_string),
                sink.on_unconfirmed(),
            )
        }));
    }
    out
}

/// One entry's enqueue outcome, or why its payload could not be built.
pub type EnqueueOutcome = Result<(Entry, Enqueued), PublishError>;

/// Enqueue `rows` for every sink of `cfg`. Returns, per entry, its key, sink and outcome;
/// rows whose payload cannot be built come back as errors (nothing is enqueued for them).
pub fn enqueue_rows(
    outbox: &Outbox,
    cfg: &SinksConfig,
    rows: &[AggRow],
    run_id: &str,
) -> Result<Vec<EnqueueOutcome>, PublishError> {
    enqueue_all(
        outbox,
        rows.iter().flat_map(|row| entries_for(cfg, row, run_id)),
    )
}

/// Enqueue every built entry; entries whose payload could not be built pass through as
/// errors. An outbox failure ends it (what was enqueued stays).
fn enqueue_all(
    outbox: &Outbox,
    entries: impl Iterator<Item = Result<Entry, PublishError>>,
) -> Result<Vec<EnqueueOutcome>, PublishError> {
    let mut out = Vec::new();
    for e in entries {
        match e {
            Ok(entry) => {
                let r = outbox.enqueue(&entry)?;
                out.push(Ok((entry, r)));
            }
            Err(err) => out.push(Err(err)),
        }
    }
    Ok(out)
}

/// The idempotency key of an agentic aggregate (the v3 JSON): run id + recipe fingerprint
/// (else model, hardware, framework, TP and KV offloading — InferenceX runs each users
/// count with offload on and off) + `agentic` + users, so a fixed-length row of the same
/// recipe never shares it.
pub fn agentic_idempotency_key(run_id: &str, agg: &serde_json::Value) -> String {
    let s = |k: &str| agg[k].as_str().unwrap_or("").to_string();
    let fp = s("recipe_fingerprint");
    let recipe = if fp.is_empty() {
        format!(
            "{}:{}:{}:tp{}:kv{}",
            s("model"),
            s("hw"),
            s("framework"),
            agg["tp"],
            s("kv_offloading")
        )
    } else {
        fp
    };
    format!("{run_id}:{recipe}:agentic:u{}", agg["conc"])
}

/// The outbox entries for an agentic aggregate. Webhook sinks take it (body
/// `{idempotency_key, sink, run_id, scenario: "agentic-coding", row: <aggregate>}`); a Gradio
/// sink takes it through its first `scenario: agentic-coding` route matching the point's model
/// key (`<prefix>-<precision>[-<spec>]`) and users, with the route's fields (see
/// [`payload::agentic_field_value`]). A field with no value for this point is an error for
/// that sink, as for fixed-length rows.
pub fn agentic_entries_for(
    cfg: &SinksConfig,
    agg: &serde_json::Value,
    run_id: &str,
) -> Vec<Result<Entry, PublishError>> {
    let key = agentic_idempotency_key(run_id, agg);
    let s = |k: &str| agg[k].as_str().unwrap_or("");
    let model =
        crate::report::agg::model_key(s("infmax_model_prefix"), s("precision"), s("spec_decoding"));
    let users = agg["conc"].as_u64().and_then(|c| u32::try_from(c).ok());
    sink_entries(
        cfg,
        &key,
        run_id,
        |r| {
            r.matches.scenario == RouteScenario::AgenticCoding
                && r.matches.model == model
                && r.matches
                    .conc
                    .as_ref()
                    .is_none_or(|c| users.is_some_and(|u| c.contains(&u)))
        },
        |route| payload::agentic_gradio_data(&route.fields, agg, &cfg.values, run_id, &key),
        |sink| {
            serde_json::json!({
                "idempotency_key": key,
                "sink": sink,
                "run_id": run_id,
                "scenario": "agentic-coding",
                "row": agg,
            })
        },
    )
}

/// Enqueue agentic aggregates for every sink that takes them; points whose payload cannot
/// be built come back as errors (nothing is enqueued for them).
pub fn enqueue_agentic(
    outbox: &Outbox,
    cfg: &SinksConfig,
    aggs: &[serde_json::Value],
    run_id: &str,
) -> Result<Vec<EnqueueOutcome>, PublishError> {
    enqueue_all(
        outbox,
        aggs.iter()
            .flat_map(|agg| agentic_entries_for(cfg, agg, run_id)),
    )
}
