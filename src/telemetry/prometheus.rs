//! The Prometheus text exposition format (version 0.0.4), parsed into metric families the
//! way `prometheus_client.parser.text_string_to_metric_families` names them — because
//! AIPerf, whose `server_metrics_export.json` InferenceX's aggregation reads, keys its export
//! by those family names (`vllm:prompt_tokens`, not `vllm:prompt_tokens_total`).
//!
//! Family naming, as the Python parser does it:
//! * a `# TYPE x counter` whose name ends in `_total` names the family without it; the
//!   samples `x_total` (and `x`) belong to it, `x_created` is dropped;
//! * a histogram family `h` owns `h_bucket{le=…}`, `h_sum`, `h_count` (`h_created` dropped);
//! * summaries are skipped whole (AIPerf ignores them: lifetime quantiles say nothing about
//!   a window);
//! * a sample with no `# TYPE` is its own `unknown` family (AIPerf treats it as a gauge).
//!
//! The parser never allocates per character and keeps label order as written; a malformed
//! line is an error naming its line number, so a scraper can tell a non-Prometheus body
//! (e.g. TRT-LLM's JSON at `/metrics`) from an empty one.

use indexmap::IndexMap;

/// What a family measures, as its `# TYPE` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotone total; the export reports its increase over a window.
    Counter,
    /// Point-in-time value; the export reports its distribution over a window.
    Gauge,
    /// Cumulative buckets, sum and count; the export reports their increase.
    Histogram,
    /// No `# TYPE` (or `untyped`): handled as a gauge, labelled `unknown`.
    Unknown,
}

impl Kind {
    /// The name AIPerf writes in the export's `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Unknown => "unknown",
        }
    }
}

/// A sample's labels, in written order.
pub type Labels = Vec<(String, String)>;

/// One sample line, attributed to its family.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Labels in written order (`le` included for histogram buckets).
    pub labels: Labels,
    /// Which part of the family this sample is (value, bucket, sum or count).
    pub part: Part,
    /// The sample's value (`NaN`, `+Inf`, `-Inf` allowed).
    pub value: f64,
}

/// The role of a sample inside its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Counter, gauge or unknown value.
    Value,
    /// Histogram `_bucket` (its `le` label is in `labels`).
    Bucket,
    /// Histogram `_sum`.
    Sum,
    /// Histogram `_count`.
    Count,
}

/// One family: its kind, help text and samples in written order.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// From `# TYPE`; [`Kind::Unknown`] without one.
    pub kind: Kind,
    /// From `# HELP`, unescaped; empty without one.
    pub help: String,
    /// Every sample attributed to the family.
    pub samples: Vec<Sample>,
}

/// A malformed exposition line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Prometheus text line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number in the scraped body.
    pub line: usize,
    /// What was wrong with it.
    pub message: String,
}

/// Parse a whole exposition body into families keyed by family name, in first-seen order.
pub fn parse(text: &str) -> Result<IndexMap<String, Family>, ParseError> {
    let mut families: IndexMap<String, Family> = IndexMap::new();
    // Declared families by their declared (TYPE-line) name → family name and kind.
    let mut declared: IndexMap<String, (String, Kind)> = IndexMap::new();
    let mut helps: IndexMap<String, String> = IndexMap::new();
    let mut skipped: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let err = |message: String| ParseError {
            line: i + 1,
            message,
        };
        let line = raw.trim_end_matches('\r').trim_start();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix("TYPE") {
                let mut it = r.split_whitespace();
                let (Some(name), Some(ty)) = (it.next(), it.next()) else {
                    return Err(err(format!("bad TYPE line {line:?}")));
                };
                let kind = match ty {
                    "counter" => Some(Kind::Counter),
                    "gauge" => Some(Kind::Gauge),
                    "histogram" | "gaugehistogram" => Some(Kind::Histogram),
                    "untyped" | "unknown" => Some(Kind::Unknown),
                    "summary" | "info" | "stateset" => None,
                    other => return Err(err(format!("unknown metric type {other:?}"))),
                };
                let Some(kind) = kind else {
                    skipped.push(name.to_string());
                    continue;
                };
                let family = match kind {
                    Kind::Counter => name.strip_suffix("_total").unwrap_or(name),
                    _ => name,
                }
                .to_string();
                let help = helps.get(name).cloned().unwrap_or_default();
                let entry = families.entry(family.clone()).or_insert(Family {
                    kind,
                    help: String::new(),
                    samples: Vec::new(),
                });
                entry.kind = kind;
                if entry.help.is_empty() {
                    entry.help = help;
                }
                declared.insert(name.to_string(), (family, kind));
            } else if let Some(r) = rest.strip_prefix("HELP") {
                let r = r.trim_start();
                let (name, text) = r.split_once([' ', '\t']).unwrap_or((r, ""));
                let text = unescape_help(text.trim_start());
                if let Some((fam, _)) = declared.get(name) {
                    if let Some(f) = families.get_mut(fam) {
                        f.help = text.clone();
                    }
                }
                helps.insert(name.to_string(), text);
            }
            continue;
        }
        let (name, labels, value) = parse_sample(line).map_err(err)?;
        if skipped
            .iter()
            .any(|s| &name == s || name.strip_prefix(s.as_str()).is_some_and(is_summary_suffix))
        {
            continue;
        }
        let Some((family, part)) = attribute(&name, &declared) else {
            continue; // `_created` samples.
        };
        let entry = families.entry(family).or_insert_with(|| Family {
            kind: Kind::Unknown,
            help: helps.get(&name).cloned().unwrap_or_default(),
            samples: Vec::new(),
        });
        entry.samples.push(Sample {
            labels,
            part,
            value,
        });
    }
    families.retain(|_, f| !f.samples.is_empty());
    Ok(families)
}

fn is_summary_suffix(s: &str) -> bool {
    matches!(s, "_sum" | "_count" | "_created" | "_total" | "_info")
}

/// Which family and part a sample name belongs to, given the declared families
/// (declared `# TYPE` name → family name and kind); `None` for samples to drop.
fn attribute(name: &str, declared: &IndexMap<String, (String, Kind)>) -> Option<(String, Part)> {
    if let Some((fam, _)) = declared.get(name) {
        return Some((fam.clone(), Part::Value));
    }
    for (suffix, part) in [
        ("_bucket", Part::Bucket),
        ("_sum", Part::Sum),
        ("_count", Part::Count),
        ("_total", Part::Value),
        ("_created", Part::Value),
    ] {
        let Some(base) = name.strip_suffix(suffix) else {
            continue;
        };
        let found = declared
            .get(base)
            .or_else(|| declared.get(&format!("{base}_total")));
        let Some((fam, kind)) = found else {
            continue;
        };
        if suffix == "_created" {
            return None;
        }
        let fits = match kind {
            Kind::Histogram => suffix != "_total",
            Kind::Counter => suffix == "_total",
            _ => false,
        };
        if fits {
            return Some((fam.clone(), part));
        }
    }
    Some((name.to_string(), Part::Value))
}

/// `name{a="b",…} value [timestamp]`.
fn parse_sample(line: &str) -> Result<(String, Labels, f64), String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or_else(|| format!("sample without a value: {line:?}"))?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(r)?;
        labels = parsed;
        rest = after;
    }
    let mut it = rest.split_whitespace();
    let value = it
        .next()
        .ok_or_else(|| format!("sample without a value: {line:?}"))?;
    let value = parse_value(value).ok_or_else(|| format!("bad sample value {value:?}"))?;
    Ok((name.to_string(), labels, value))
}

/// Labels up to the closing `}`; returns them and the text after it.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = s[..eq].trim();
        if key.is_empty() {
            return Err("empty label name".into());
        }
        s = s[eq + 1..].trim_start();
        s = s.strip_prefix('"').ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        s = s[end + 1..].trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        }
    }
}

/// A sample value as Go's `ParseFloat` (and the Python parser) accept it.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(c) => out.push(c),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VLLM: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 1234.0
vllm:prompt_tokens_created{engine="0",model_name="m"} 1.7e9
# TYPE vllm:prompt_tokens_by_source_total counter
vllm:prompt_tokens_by_source_total{source="local_cache_hit"} 10
vllm:prompt_tokens_by_source_total{source="local_compute"} 5
# HELP vllm:time_to_first_token_seconds TTFT.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 1.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 4.0
vllm:time_to_first_token_seconds_count{model_name="m"} 4.0
vllm:time_to_first_token_seconds_sum{model_name="m"} 2.5
vllm:time_to_first_token_seconds_created{model_name="m"} 1.7e9
# TYPE x_summary summary
x_summary{quantile="0.5"} 1
x_summary_sum 3
x_summary_count 2
bare_metric{a="q\"uote\\d"} NaN 1700000000000
"#;

    #[test]
    fn families_named_like_the_python_parser() {
        let f = parse(VLLM).unwrap();
        let names: Vec<&str> = f.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "vllm:num_requests_running",
                "vllm:prompt_tokens",
                "vllm:prompt_tokens_by_source",
                "vllm:time_to_first_token_seconds",
                "bare_metric"
            ]
        );
        let c = &f["vllm:prompt_tokens"];
        assert_eq!(c.kind, Kind::Counter);
        assert_eq!(c.help, "Number of prefill tokens processed.");
        assert_eq!(c.samples.len(), 1, "{c:?}");
        assert_eq!(c.samples[0].value, 1234.0);
        let h = &f["vllm:time_to_first_token_seconds"];
        assert_eq!(h.kind, Kind::Histogram);
        let parts: Vec<Part> = h.samples.iter().map(|s| s.part).collect();
        assert_eq!(
            parts,
            [Part::Bucket, Part::Bucket, Part::Count, Part::Sum],
            "{h:?}"
        );
        let b = &f["bare_metric"];
        assert_eq!(b.kind, Kind::Unknown);
        assert_eq!(b.samples[0].labels, [("a".into(), "q\"uote\\d".into())]);
        assert!(b.samples[0].value.is_nan());
        assert_eq!(f["vllm:prompt_tokens_by_source"].samples.len(), 2);
    }

    #[test]
    fn counter_declared_without_total_suffix() {
        let f =
            parse("# TYPE sglang:prompt_tokens counter\nsglang:prompt_tokens_total{a=\"b\"} 7\n")
                .unwrap();
        assert_eq!(f["sglang:prompt_tokens"].samples[0].value, 7.0);
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn malformed_lines_are_errors_with_line_numbers() {
        let e = parse("ok 1\n[{\"json\": true}]\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse("x{a=\"b} 1").is_err());
        assert!(parse("x 1 2 3").is_ok());
        assert!(parse("x abc").is_err());
    }
}
