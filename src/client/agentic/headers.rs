//! Optional routing headers sent beside `X-Correlation-ID` (agentic.md §3.4).
//!
//! AIPerf always sends `X-Correlation-ID`, stable for every turn of one conversation. Routers
//! that pin a session to the replica (or DP rank) holding its KV prefix read other names,
//! which AIPerf sends, with the same value, when its transport settings ask for them:
//! `X-SMG-Routing-Key` (SGLang Model Gateway; InferenceX's DP-attention SGLang recipes set
//! `AIPERF_HTTP_X_SMG_ROUTING_KEY_FROM_CORRELATION_ID=true`), `X-Session-ID` (vLLM router;
//! `AIPERF_HTTP_X_SESSION_ID_FROM_CORRELATION_ID`), and for Dynamo frontends
//! `X-Dynamo-Session-ID` plus, on child conversations (subagents, split-off agents),
//! `X-Dynamo-Parent-Session-ID` = the spawning conversation's correlation id
//! (`AIPERF_HTTP_X_DYNAMO_SESSION_ID_FROM_CORRELATION_ID`). All are off by default, as in
//! AIPerf and InferenceX's single-node recipes, which send to the engine port directly.

use std::sync::Arc;

/// Which optional headers to send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoutingHeaders {
    /// `X-SMG-Routing-Key: <correlation id>`.
    pub smg_routing_key: bool,
    /// `X-Session-ID: <correlation id>`.
    pub session_id: bool,
    /// `X-Dynamo-Session-ID: <correlation id>` and, on children,
    /// `X-Dynamo-Parent-Session-ID: <parent's correlation id>`.
    pub dynamo: bool,
}

/// AIPerf's environment switches, in [`RoutingHeaders`] field order.
pub const ENV: [&str; 3] = [
    "AIPERF_HTTP_X_SMG_ROUTING_KEY_FROM_CORRELATION_ID",
    "AIPERF_HTTP_X_SESSION_ID_FROM_CORRELATION_ID",
    "AIPERF_HTTP_X_DYNAMO_SESSION_ID_FROM_CORRELATION_ID",
];

impl RoutingHeaders {
    /// The switches set in the environment (`1/true/yes/on` or `0/false/no/off`, any case);
    /// another value is an error naming the variable.
    pub fn from_env() -> Result<RoutingHeaders, String> {
        RoutingHeaders::from_vars(|k| std::env::var(k).ok())
    }

    /// As [`RoutingHeaders::from_env`], reading variables through `get`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<RoutingHeaders, String> {
        let flag = |name: &str| -> Result<bool, String> {
            let Some(v) = get(name) else { return Ok(false) };
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "" | "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(format!("{name}={v:?}: expected true or false")),
            }
        };
        Ok(RoutingHeaders {
            smg_routing_key: flag(ENV[0])?,
            session_id: flag(ENV[1])?,
            dynamo: flag(ENV[2])?,
        })
    }

    /// Either source turns a header on.
    pub fn or(self, o: RoutingHeaders) -> RoutingHeaders {
        RoutingHeaders {
            smg_routing_key: self.smg_routing_key || o.smg_routing_key,
            session_id: self.session_id || o.session_id,
            dynamo: self.dynamo || o.dynamo,
        }
    }

    /// The headers of one request of a conversation with correlation id `xcorr`, spawned
    /// by the conversation with correlation id `parent` (`None` for a root).
    pub fn build(
        &self,
        xcorr: &Arc<str>,
        parent: Option<&Arc<str>>,
    ) -> Vec<(&'static str, Arc<str>)> {
        let mut h = vec![("X-Correlation-ID", xcorr.clone())];
        if self.smg_routing_key {
            h.push(("X-SMG-Routing-Key", xcorr.clone()));
        }
        if self.session_id {
            h.push(("X-Session-ID", xcorr.clone()));
        }
        if self.dynamo {
            h.push(("X-Dynamo-Session-ID", xcorr.clone()));
            if let Some(p) = parent {
                h.push(("X-Dynamo-Parent-Session-ID", p.clone()));
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_the_switches() {
        let (x, p): (Arc<str>, Arc<str>) = ("child".into(), "root".into());
        let names = |r: RoutingHeaders, parent: Option<&Arc<str>>| {
            r.build(&x, parent)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(RoutingHeaders::default(), Some(&p)),
            ["X-Correlation-ID=child"]
        );
        let all = RoutingHeaders::from_vars(|k| ENV.contains(&k).then(|| "TRUE".into())).unwrap();
        assert_eq!(
            names(all, Some(&p)),
            [
                "X-Correlation-ID=child",
                "X-SMG-Routing-Key=child",
                "X-Session-ID=child",
                "X-Dynamo-Session-ID=child",
                "X-Dynamo-Parent-Session-ID=root"
            ]
        );
        assert_eq!(names(all, None).len(), 4, "a root has no parent header");
        let e = RoutingHeaders::from_vars(|k| (k == ENV[1]).then(|| "maybe".into())).unwrap_err();
        assert!(e.contains(ENV[1]), "{e}");
    }
}
