//! The two wire protocols: the Gradio call API of a Hugging Face Space and a JSON webhook.
//!
//! Every failure is classified by what it tells us about the row:
//! * definite — the sink certainly did not take the row (connection refused, an HTTP error
//!   status): submitting again cannot duplicate it;
//! * ambiguous — the request may have been processed (timeout after sending, connection
//!   lost mid-response, a gateway timeout, a 2xx without an event id): submitting again
//!   might duplicate it.
//!
//! Gradio confirmation reads the SSE stream of `GET …/call/{api}/{event_id}` to
//! `event: complete` (data = result) or `event: error`. A real Gradio server answers an event
//! id it does not know (already streamed, or cleaned up after the reader disconnected) with
//! `event: error` and `data: "404: Session not found."`; that is "unknown", not "failed".

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// Why a submission did not go through.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    /// The sink certainly did not take the row.
    Definite(String),
    /// The sink may have taken the row.
    Ambiguous(String),
}

/// What the confirmation stream said about an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirm {
    /// `event: complete`: the row is on the board; the data is the function's result.
    Complete(Value),
    /// `event: error` from the Space function: the row was not taken.
    Failed(String),
    /// The Space does not know this event (any more): whether the row was taken is unknown.
    Unknown(String),
    /// No answer this time (network, timeout, stream cut): ask again later.
    Transient(String),
}

/// Timeouts of one confirmation.
#[derive(Debug, Clone, Copy)]
pub struct ConfirmTimeouts {
    /// Longest silence on the stream (Gradio sends a heartbeat every 15 s).
    pub idle: Duration,
    /// Longest wait for the outcome overall.
    pub total: Duration,
}

/// An HTTP client for sinks: rustls, bounded connect and request times.
pub fn client() -> Client {
    Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("infmax/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

/// Replace every occurrence of the token in a message (belt and braces: nothing we build
/// contains it, but a server might echo a header back in an error body).
pub fn redact(msg: &str, token: Option<&str>) -> String {
    match token {
        Some(t) if !t.is_empty() => msg.replace(t, "[redacted]"),
        _ => msg.to_string(),
    }
}

fn excerpt(body: &str) -> String {
    let b = body.trim();
    let mut s: String = b.chars().take(200).collect();
    if b.chars().count() > 200 {
        s.push('…');
    }
    s
}

fn classify(e: &reqwest::Error) -> SendError {
    // The whole cause chain: the root ("Connection refused") is what a person needs.
    let mut msg = format!("{e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let part = s.to_string();
        if !msg.contains(&part) {
            msg.push_str(": ");
            msg.push_str(&part);
        }
        src = s.source();
    }
    if e.is_connect() || e.is_builder() {
        SendError::Definite(msg)
    } else {
        SendError::Ambiguous(msg)
    }
}

async fn status_error(resp: reqwest::Response, what: &str) -> SendError {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let msg = format!("{what}: HTTP {status}: {}", excerpt(&body));
    if status == StatusCode::GATEWAY_TIMEOUT {
        SendError::Ambiguous(msg)
    } else {
        SendError::Definite(msg)
    }
}

/// `{space}/gradio_api/call/{api_name}`.
pub fn call_url(space: &str, api_name: &str) -> String {
    format!("{}/gradio_api/call/{api_name}", space.trim_end_matches('/'))
}

/// Submit `data`; returns the event id.
pub async fn gradio_submit(
    client: &Client,
    space: &str,
    api_name: &str,
    data: &[Value],
    token: Option<&str>,
    timeout: Duration,
) -> Result<String, SendError> {
    let mut req = client
        .post(call_url(space, api_name))
        .timeout(timeout)
        .json(&json!({ "data": data }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| classify(&e))?;
    if !resp.status().is_success() {
        return Err(status_error(resp, "submit").await);
    }
    let body = resp
        .text()
        .await
        .map_err(|e| SendError::Ambiguous(format!("submit: reading the answer: {e}")))?;
    let v: Value = serde_json::from_str(&body).map_err(|_| {
        SendError::Ambiguous(format!("submit: answer is not JSON: {}", excerpt(&body)))
    })?;
    match v.get("event_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Err(SendError::Ambiguous(format!(
            "submit: answer has no event_id: {}",
            excerpt(&body)
        ))),
    }
}

/// One parsed server-sent event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SseEvent {
    /// `event:` field (empty when absent).
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE parser: feed bytes, take complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: String,
    pending: Vec<u8>,
}

impl SseParser {
    /// Add bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(bytes);
        // Only decode up to the last complete UTF-8 sequence.
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) => e.valid_up_to(),
        };
        let chunk: Vec<u8> = self.pending.drain(..valid).collect();
        self.buf.push_str(
            &String::from_utf8(chunk)
                .expect("validated")
                .replace("\r\n", "\n"),
        );
        let mut out = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let block: String = self.buf.drain(..end + 2).collect();
            let mut ev = SseEvent::default();
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    ev.event = v.trim_start().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            ev.data = data.join("\n");
            if !ev.event.is_empty() || !ev.data.is_empty() {
                out.push(ev);
            }
        }
        out
    }
}

fn unknown_event(data: &str) -> bool {
    let d = data.trim().trim_matches('"');
    d.contains("Session not found") || d.starts_with("404")
}

/// Read the event's SSE stream to its outcome.
pub async fn gradio_confirm(
    client: &Client,
    space: &str,
    api_name: &str,
    event_id: &str,
    token: Option<&str>,
    t: ConfirmTimeouts,
) -> Confirm {
    let url = format!("{}/{event_id}", call_url(space, api_name));
    let deadline = Instant::now() + t.total;
    let mut req = client.get(url);
    if let Some(tok) = token {
        req = req.bearer_auth(tok);
    }
    let resp = match tokio::time::timeout_at(deadline, req.send()).await {
        Err(_) => return Confirm::Transient("confirm: no answer in time".into()),
        Ok(Err(e)) => {
            let m = match classify(&e) {
                SendError::Definite(m) | SendError::Ambiguous(m) => m,
            };
            return Confirm::Transient(format!("confirm: {m}"));
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status == StatusCode::NOT_FOUND {
        return Confirm::Unknown(format!("confirm: HTTP 404 for event {event_id}"));
    }
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Confirm::Transient(format!("confirm: HTTP {status}: {}", excerpt(&body)));
    }
    let mut resp = resp;
    let mut parser = SseParser::default();
    loop {
        let wait = (Instant::now() + t.idle).min(deadline);
        let chunk = match tokio::time::timeout_at(wait, resp.chunk()).await {
            Err(_) => {
                return Confirm::Transient(format!(
                    "confirm: event {event_id} not complete yet (stream silent or too long)"
                ))
            }
            Ok(Err(e)) => return Confirm::Transient(format!("confirm: stream broke: {e}")),
            Ok(Ok(None)) => {
                return Confirm::Transient(format!(
                    "confirm: stream of event {event_id} ended before `complete`"
                ))
            }
            Ok(Ok(Some(c))) => c,
        };
        for ev in parser.feed(&chunk) {
            match ev.event.as_str() {
                "complete" => {
                    let data = serde_json::from_str(&ev.data).unwrap_or(Value::String(ev.data));
                    return Confirm::Complete(data);
                }
                "error" => {
                    return if unknown_event(&ev.data) {
                        Confirm::Unknown(format!("event {event_id}: {}", excerpt(&ev.data)))
                    } else {
                        Confirm::Failed(format!(
                            "the Space reported an error for event {event_id}: {}",
                            excerpt(&ev.data)
                        ))
                    };
                }
                _ => {} // heartbeat, generating, close_stream…
            }
        }
    }
}

/// POST a webhook body with the idempotency key; returns the answer (JSON or text).
pub async fn webhook_post(
    client: &Client,
    url: &str,
    body: &Value,
    key: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Value, SendError> {
    let mut req = client
        .post(url)
        .timeout(timeout)
        .header("Idempotency-Key", key)
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| classify(&e))?;
    if !resp.status().is_success() {
        return Err(status_error(resp, "webhook").await);
    }
    let text = resp.text().await.unwrap_or_default();
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(excerpt(&text))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parser_handles_split_events_and_crlf() {
        let mut p = SseParser::default();
        assert!(p.feed(b"event: heartbeat\ndata: null\n\nevent: comp").len() == 1);
        let evs = p.feed(b"lete\r\ndata: [1, \"a\"]\r\n\r\n");
        assert_eq!(
            evs,
            vec![SseEvent {
                event: "complete".into(),
                data: "[1, \"a\"]".into()
            }]
        );
        // A multi-byte character split across chunks.
        let s = "event: error\ndata: \"é\"\n\n".as_bytes();
        let (a, b) = s.split_at(21);
        assert!(p.feed(a).is_empty());
        assert_eq!(p.feed(b)[0].data, "\"é\"");
    }

    #[test]
    fn unknown_event_is_recognised() {
        assert!(unknown_event("\"404: Session not found.\""));
        assert!(!unknown_event("null"));
        assert!(!unknown_event("\"bad team name\""));
    }
}
