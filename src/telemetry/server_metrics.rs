//! Server metrics during a benchmark window: the engine's Prometheus `/metrics` scraped
//! every 333 ms and reduced to AIPerf's `server_metrics_export.json`, the file InferenceX's
//! agentic aggregation reads its server-side cache hit rates, KV usage and token totals from.
//!
//! # Contract with the load client
//! The replay client calls [`start`] with the endpoints (the engine's `/metrics`, plus any
//! `--server-metrics` URLs) before its warmup, so a reference sample exists before the
//! profiling window opens; when the window has closed it calls [`Scraper::finish`] with the
//! window (epoch nanoseconds, the clock of `request_start_ns`/`request_end_ns` in the
//! per-request records) and writes the returned [`Export`] as
//! `server_metrics_export.json` with [`Export::write`].
//!
//! # What the export holds (AIPerf's JSON export, profiling window only)
//! `metrics.<family>` = `{type, description, unit?, series: [{endpoint_url, labels, stats,
//! buckets?, timeslices?}]}`, one series per endpoint × label set; families are named as
//! `prometheus_client`'s parser names them (see [`super::prometheus`]).
//! * **counter** `stats`: `total` = increase over the window, `rate` = total / window
//!   seconds, and `rate_avg/min/max/std` over the complete 1 s timeslices. The increase is
//!   counted from the last sample at or before the window start (the first sample when
//!   there is none) through the first sample after the window end, pairwise and
//!   **reset-safe** like Prometheus' `increase()`: a decrease means the counter restarted
//!   from zero, so the new value is the increase. (AIPerf instead clamps a negative
//!   end − reference to 0; the two agree whenever no restart happens.)
//! * **gauge** / **unknown** `stats`: `avg, min, max, std` (ddof 1) and `p1…p99` (numpy
//!   linear) over the samples taken inside the window.
//! * **histogram** `stats`: `count, sum, avg, count_rate, sum_rate, p*_estimate` from the
//!   bucket increases, and `buckets` (per-`le` increases). The estimates interpolate
//!   linearly inside a bucket (Prometheus' `histogram_quantile`), not AIPerf's polynomial
//!   estimator; InferenceX reads no histogram estimate.
//! * `timeslices`: consecutive windows of `slice` (1 s, `--slice-duration 1.0`) from the
//!   window start; the last one carries `is_complete: false` when shorter.
//!
//! An endpoint that answers with JSON or with a body that is not Prometheus text is
//! dropped after its first answer with one warning (AIPerf does the same), never retried
//! at 3 Hz; an endpoint that never answers simply has no series.

use super::prometheus::{self, Kind, Part};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// AIPerf's `AIPERF_SERVER_METRICS_COLLECTION_INTERVAL` (333 ms, ~3 Hz).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(333);
/// InferenceX passes `--slice-duration 1.0`.
pub const DEFAULT_SLICE: Duration = Duration::from_secs(1);

/// Percentiles a gauge reports, as AIPerf names them.
const GAUGE_PERCENTILES: [u32; 9] = [1, 5, 10, 25, 50, 75, 90, 95, 99];

/// Wall-clock nanoseconds since the Unix epoch: the clock of the per-request records.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The profiling window, in [`now_ns`] nanoseconds (start inclusive, end inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// When the first profiling request was due.
    pub start_ns: u64,
    /// When the window closed (duration plus any grace the client waited).
    pub end_ns: u64,
}

impl Window {
    fn seconds(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }
}

/// One sample stream: a family part with one label set at one endpoint.
#[derive(Debug, Clone, Default)]
struct Points {
    /// `(scrape time, value)` in scrape order.
    values: Vec<(u64, f64)>,
}

/// Identity of a point stream inside one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PointKey {
    family: String,
    /// Labels without `le`.
    labels: Vec<(String, String)>,
    part: PartKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PartKey {
    Value,
    Bucket(String),
    Sum,
    Count,
}

/// Everything scraped from one endpoint.
#[derive(Debug, Default)]
pub struct Endpoint {
    /// The URL scraped (the export's `endpoint_url`).
    url: String,
    /// HTTP fetches attempted, for `summary.endpoint_info`.
    fetches: u64,
    /// Fetches that returned Prometheus text.
    successes: u64,
    /// First and last successful scrape times.
    first_ns: Option<u64>,
    last_ns: Option<u64>,
    /// Sum of fetch round trips, for the average latency.
    latency_total: Duration,
    /// Family kind and help text by family name, in first-seen order.
    families: IndexMap<String, (Kind, String)>,
    /// Sample streams in first-seen order.
    points: IndexMap<PointKey, Points>,
    /// Set when the endpoint answered with something that is not Prometheus text.
    disabled: Option<String>,
}

impl Endpoint {
    /// A store for `url` with nothing scraped yet.
    pub fn new(url: &str) -> Self {
        Endpoint {
            url: url.to_string(),
            ..Default::default()
        }
    }

    /// Record one parsed scrape body taken at `ts_ns`.
    pub fn record(&mut self, ts_ns: u64, body: &str) -> Result<(), prometheus::ParseError> {
        let families = prometheus::parse(body)?;
        self.successes += 1;
        self.first_ns.get_or_insert(ts_ns);
        self.last_ns = Some(ts_ns);
        for (name, fam) in families {
            let entry = self
                .families
                .entry(name.clone())
                .or_insert((fam.kind, fam.help.clone()));
            entry.0 = fam.kind;
            for s in fam.samples {
                let mut labels = s.labels;
                let part = match s.part {
                    Part::Value => PartKey::Value,
                    Part::Sum => PartKey::Sum,
                    Part::Count => PartKey::Count,
                    Part::Bucket => {
                        let le = labels
                            .iter()
                            .position(|(k, _)| k == "le")
                            .map(|i| labels.remove(i).1)
                            .unwrap_or_else(|| "+Inf".into());
                        PartKey::Bucket(le)
                    }
                };
                let key = PointKey {
                    family: name.clone(),
                    labels,
                    part,
                };
                self.points
                    .entry(key)
                    .or_default()
                    .values
                    .push((ts_ns, s.value));
            }
        }
        Ok(())
    }
}

/// A running scraper; dropping it without [`Scraper::finish`] stops the scrape tasks.
pub struct Scraper {
    /// One store per endpoint, shared with its scrape task.
    endpoints: Vec<Arc<Mutex<Endpoint>>>,
    /// Tells the tasks to take their final scrape and stop.
    stop: tokio::sync::watch::Sender<bool>,
    /// The scrape tasks.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Timeslice length for the export.
    slice: Duration,
}

impl Drop for Scraper {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Start scraping every URL in `urls` each `interval` (call inside a tokio runtime).
pub fn start(urls: &[String], interval: Duration) -> Scraper {
    start_with_slice(urls, interval, DEFAULT_SLICE)
}

/// [`start`] with a timeslice length other than 1 s.
pub fn start_with_slice(urls: &[String], interval: Duration, slice: Duration) -> Scraper {
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a plain HTTP client builds");
    let mut endpoints = Vec::new();
    let mut tasks = Vec::new();
    for url in urls {
        let store = Arc::new(Mutex::new(Endpoint::new(url)));
        endpoints.push(store.clone());
        let (client, url, mut stop_rx) = (client.clone(), url.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop_rx.changed() => {
                        scrape_once(&client, &url, &store).await;
                        return;
                    }
                }
                if !scrape_once(&client, &url, &store).await {
                    // Disabled: wait for the stop signal only.
                    let _ = stop_rx.changed().await;
                    return;
                }
            }
        }));
    }
    Scraper {
        endpoints,
        stop,
        tasks,
        slice,
    }
}

/// One scrape of `url` into `store`; false once the endpoint is disabled.
async fn scrape_once(client: &reqwest::Client, url: &str, store: &Mutex<Endpoint>) -> bool {
    if store.lock().expect("store lock").disabled.is_some() {
        return false;
    }
    let sent = Instant::now();
    let answer = async {
        let resp = client.get(url).send().await?.error_for_status()?;
        let json = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body = if json { None } else { Some(resp.text().await?) };
        Ok::<_, reqwest::Error>(body)
    }
    .await;
    let ts = now_ns();
    let mut ep = store.lock().expect("store lock");
    ep.fetches += 1;
    ep.latency_total += sent.elapsed();
    let why = match answer {
        Err(e) => {
            tracing::debug!(url, error = %e, "server metrics scrape failed");
            return true;
        }
        Ok(None) => "returned application/json, not Prometheus text".to_string(),
        Ok(Some(body)) => match ep.record(ts, &body) {
            Ok(()) => return true,
            Err(e) => e.to_string(),
        },
    };
    tracing::warn!(url, "disabling server metrics collection: {why}");
    ep.disabled = Some(why);
    false
}

impl Scraper {
    /// Take a final scrape of every endpoint, stop, and reduce the samples to the export
    /// for `window`.
    pub async fn finish(mut self, window: Window) -> Export {
        let _ = self.stop.send(true);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        let eps: Vec<Endpoint> = self
            .endpoints
            .iter()
            .map(|e| std::mem::take(&mut *e.lock().expect("store lock")))
            .collect();
        export(&eps, window, self.slice)
    }
}

/// AIPerf's `server_metrics_export.json` body.
#[derive(Debug, Clone, Serialize)]
pub struct Export {
    /// `"1.0"`, AIPerf's export schema version.
    pub schema_version: &'static str,
    /// Collection summary (endpoints and fetch statistics).
    pub summary: Value,
    /// Families by name, in first-seen order across endpoints.
    pub metrics: IndexMap<String, Value>,
}

impl Export {
    /// Write as indented JSON, atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        crate::fsutil::write_atomic(path, &bytes)
    }
}

/// Reduce scraped endpoints to the export for `window` with timeslices of `slice`.
pub fn export(endpoints: &[Endpoint], window: Window, slice: Duration) -> Export {
    let mut metrics: IndexMap<String, Value> = IndexMap::new();
    let mut info = Map::new();
    for ep in endpoints {
        let mut i = Map::new();
        i.insert("total_fetches".into(), json!(ep.fetches));
        i.insert("successful_fetches".into(), json!(ep.successes));
        i.insert("first_fetch_ns".into(), json!(ep.first_ns));
        i.insert("last_fetch_ns".into(), json!(ep.last_ns));
        let avg_ms = if ep.fetches > 0 {
            ep.latency_total.as_secs_f64() * 1e3 / ep.fetches as f64
        } else {
            0.0
        };
        i.insert("avg_fetch_latency_ms".into(), json!(avg_ms));
        if let Some(why) = &ep.disabled {
            i.insert("disabled".into(), json!(why));
        }
        info.insert(ep.url.clone(), Value::Object(i));
        for (family, (kind, help)) in &ep.families {
            let series = family_series(ep, family, *kind, window, slice);
            if series.is_empty() {
                continue;
            }
            let entry = metrics.entry(family.clone()).or_insert_with(|| {
                let mut m = Map::new();
                m.insert("type".into(), json!(kind.as_str()));
                m.insert("description".into(), json!(help));
                if let Some(unit) = infer_unit(family) {
                    m.insert("unit".into(), json!(unit));
                }
                m.insert("series".into(), json!([]));
                Value::Object(m)
            });
            if let Some(Value::Array(all)) = entry.get_mut("series") {
                all.extend(series);
            }
        }
    }
    let summary = json!({
        "endpoints_configured": endpoints.iter().map(|e| e.url.clone()).collect::<Vec<_>>(),
        "endpoints_successful": endpoints
            .iter()
            .filter(|e| e.successes > 0 && e.disabled.is_none())
            .map(|e| e.url.clone())
            .collect::<Vec<_>>(),
        "window_start_ns": window.start_ns,
        "window_end_ns": window.end_ns,
        "slice_duration_seconds": slice.as_secs_f64(),
        "endpoint_info": info,
    });
    Export {
        schema_version: "1.0",
        summary,
        metrics,
    }
}

/// The export series of one family at one endpoint, one per label set.
fn family_series(
    ep: &Endpoint,
    family: &str,
    kind: Kind,
    window: Window,
    slice: Duration,
) -> Vec<Value> {
    // Group the family's streams by label set, in first-seen order.
    type Parts<'a> = Vec<(&'a PartKey, &'a Points)>;
    let mut groups: IndexMap<&[(String, String)], Parts> = IndexMap::new();
    for (k, p) in &ep.points {
        if k.family == family {
            groups
                .entry(k.labels.as_slice())
                .or_default()
                .push((&k.part, p));
        }
    }
    let mut out = Vec::new();
    for (labels, parts) in groups {
        let body = match kind {
            Kind::Counter => parts
                .iter()
                .find(|(p, _)| **p == PartKey::Value)
                .and_then(|(_, pts)| counter(pts, window, slice)),
            Kind::Gauge | Kind::Unknown => parts
                .iter()
                .find(|(p, _)| **p == PartKey::Value)
                .and_then(|(_, pts)| gauge(pts, window, slice)),
            Kind::Histogram => histogram(&parts, window, slice),
        };
        let Some(mut body) = body else { continue };
        let mut s = Map::new();
        s.insert("endpoint_url".into(), json!(ep.url));
        let labels: Map<String, Value> =
            labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        s.insert(
            "labels".into(),
            if labels.is_empty() {
                Value::Null
            } else {
                Value::Object(labels)
            },
        );
        s.append(&mut body);
        out.push(Value::Object(s));
    }
    out
}

/// The samples a counter's increase is taken over: the reference (last at or before the
/// start, else the first in the window), those inside, and the first after the end.
fn counter_span(values: &[(u64, f64)], window: Window) -> &[(u64, f64)] {
    let first_in = values.partition_point(|(t, _)| *t <= window.start_ns);
    let from = first_in.saturating_sub(1);
    let after_end = values.partition_point(|(t, _)| *t <= window.end_ns);
    let to = (after_end + 1).min(values.len());
    if from >= to {
        return &[];
    }
    &values[from..to]
}

/// Reset-safe increase across consecutive samples (Prometheus `increase()` semantics).
fn increase(values: &[(u64, f64)]) -> f64 {
    values
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0].1, w[1].1);
            if b >= a {
                b - a
            } else {
                b
            }
        })
        .sum()
}

/// Increase between the last sample at or before `from` and the last at or before `to`.
fn increase_between(values: &[(u64, f64)], from: u64, to: u64) -> f64 {
    let a = values
        .partition_point(|(t, _)| *t <= from)
        .saturating_sub(1);
    let b = values.partition_point(|(t, _)| *t <= to);
    if b <= a {
        return 0.0;
    }
    increase(&values[a..b])
}

/// Slice bounds `[start, end)` covering the window; the flag says "complete".
fn slices(window: Window, slice: Duration) -> Vec<(u64, u64, bool)> {
    let step = slice.as_nanos() as u64;
    let mut out = Vec::new();
    if step == 0 {
        return out;
    }
    let mut s = window.start_ns;
    while s < window.end_ns {
        let e = (s + step).min(window.end_ns);
        out.push((s, e, e - s == step));
        s += step;
    }
    out
}

fn slice_head(s: u64, e: u64, complete: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("start_ns".into(), json!(s));
    m.insert("end_ns".into(), json!(e));
    if !complete {
        m.insert("is_complete".into(), json!(false));
    }
    m
}

fn counter(points: &Points, window: Window, slice: Duration) -> Option<Map<String, Value>> {
    let span = counter_span(&points.values, window);
    if span.is_empty() {
        return None;
    }
    let total = increase(span);
    let secs = window.seconds();
    let mut stats = Map::new();
    stats.insert("total".into(), json!(total));
    stats.insert(
        "rate".into(),
        json!(if secs > 0.0 { total / secs } else { 0.0 }),
    );
    let mut ts = Vec::new();
    let mut rates = Vec::new();
    for (s, e, complete) in slices(window, slice) {
        let t = increase_between(span, s, e);
        let r = t / ((e - s) as f64 / 1e9);
        if complete {
            rates.push(r);
        }
        let mut m = slice_head(s, e, complete);
        m.insert("total".into(), json!(t));
        m.insert("rate".into(), json!(r));
        ts.push(Value::Object(m));
    }
    if !rates.is_empty() {
        let n = rates.len() as f64;
        let avg = rates.iter().sum::<f64>() / n;
        let var = rates.iter().map(|r| (r - avg) * (r - avg)).sum::<f64>() / n;
        stats.insert("rate_avg".into(), json!(avg));
        stats.insert(
            "rate_min".into(),
            json!(rates.iter().copied().fold(f64::INFINITY, f64::min)),
        );
        stats.insert(
            "rate_max".into(),
            json!(rates.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        );
        stats.insert("rate_std".into(), json!(var.sqrt()));
    }
    let mut out = Map::new();
    out.insert("stats".into(), Value::Object(stats));
    if !ts.is_empty() {
        out.insert("timeslices".into(), Value::Array(ts));
    }
    Some(out)
}

/// numpy's `percentile(…, method="linear")` of sorted data.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    crate::client::stats::percentile_sorted(sorted, p)
}

fn gauge(points: &Points, window: Window, slice: Duration) -> Option<Map<String, Value>> {
    let inside: Vec<(u64, f64)> = points
        .values
        .iter()
        .copied()
        .filter(|(t, v)| *t >= window.start_ns && *t <= window.end_ns && v.is_finite())
        .collect();
    if inside.is_empty() {
        return None;
    }
    let vals: Vec<f64> = inside.iter().map(|(_, v)| *v).collect();
    let n = vals.len() as f64;
    let avg = vals.iter().sum::<f64>() / n;
    let std = if vals.len() > 1 {
        (vals.iter().map(|v| (v - avg) * (v - avg)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    let mut sorted = vals.clone();
    sorted.sort_by(f64::total_cmp);
    let mut stats = Map::new();
    stats.insert("avg".into(), json!(avg));
    stats.insert("min".into(), json!(sorted[0]));
    stats.insert("max".into(), json!(sorted[sorted.len() - 1]));
    stats.insert("std".into(), json!(std));
    for p in GAUGE_PERCENTILES {
        stats.insert(format!("p{p}"), json!(percentile(&sorted, p as f64)));
    }
    let mut ts = Vec::new();
    for (s, e, complete) in slices(window, slice) {
        let lo = inside.partition_point(|(t, _)| *t < s);
        let hi = inside.partition_point(|(t, _)| *t < e || (!complete && *t <= e));
        let v = &inside[lo..hi];
        if v.is_empty() {
            continue;
        }
        let mut m = slice_head(s, e, complete);
        m.insert(
            "avg".into(),
            json!(v.iter().map(|x| x.1).sum::<f64>() / v.len() as f64),
        );
        m.insert(
            "min".into(),
            json!(v.iter().map(|x| x.1).fold(f64::INFINITY, f64::min)),
        );
        m.insert(
            "max".into(),
            json!(v.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max)),
        );
        ts.push(Value::Object(m));
    }
    let mut out = Map::new();
    out.insert("stats".into(), Value::Object(stats));
    if !ts.is_empty() {
        out.insert("timeslices".into(), Value::Array(ts));
    }
    Some(out)
}

/// Upper bound of a bucket label (`+Inf` → infinity).
fn le_value(le: &str) -> f64 {
    match le {
        "+Inf" | "Inf" | "inf" => f64::INFINITY,
        _ => le.parse().unwrap_or(f64::INFINITY),
    }
}

/// Quantile `q` (0..1) of cumulative bucket counts, interpolating inside the bucket.
fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev_le = 0.0;
    let mut prev_count = 0.0;
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev_le);
            }
            let in_bucket = count - prev_count;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            return Some(prev_le + (le - prev_le) * (rank - prev_count) / in_bucket);
        }
        prev_le = le;
        prev_count = count;
    }
    Some(prev_le)
}

/// Per-`le` increases, sorted by bound, as cumulative counts over `[from, to]` samples.
fn bucket_increases(
    parts: &[(&PartKey, &Points)],
    f: impl Fn(&[(u64, f64)]) -> f64,
) -> Vec<(String, f64, f64)> {
    let mut b: Vec<(String, f64, f64)> = parts
        .iter()
        .filter_map(|(p, pts)| match p {
            PartKey::Bucket(le) => Some((le.clone(), le_value(le), f(&pts.values))),
            _ => None,
        })
        .collect();
    b.sort_by(|x, y| x.1.total_cmp(&y.1));
    b
}

fn histogram(
    parts: &[(&PartKey, &Points)],
    window: Window,
    slice: Duration,
) -> Option<Map<String, Value>> {
    let part = |k: PartKey| parts.iter().find(|(p, _)| **p == k).map(|(_, pts)| *pts);
    let count_pts = part(PartKey::Count)?;
    let span = |v: &[(u64, f64)]| increase(counter_span(v, window));
    if counter_span(&count_pts.values, window).is_empty() {
        return None;
    }
    let count = span(&count_pts.values);
    let sum = part(PartKey::Sum).map(|p| span(&p.values)).unwrap_or(0.0);
    let buckets = bucket_increases(parts, span);
    let bucket_map = |b: &[(String, f64, f64)]| -> Map<String, Value> {
        b.iter()
            .map(|(le, _, c)| (le.clone(), json!(c.round() as u64)))
            .collect()
    };
    let mut stats = Map::new();
    stats.insert("count".into(), json!(count.round() as u64));
    if count > 0.0 {
        let secs = window.seconds();
        stats.insert("sum".into(), json!(sum));
        stats.insert("avg".into(), json!(sum / count));
        if secs > 0.0 {
            stats.insert("count_rate".into(), json!(count / secs));
            stats.insert("sum_rate".into(), json!(sum / secs));
        }
        let cum: Vec<(f64, f64)> = buckets.iter().map(|(_, le, c)| (*le, *c)).collect();
        for p in GAUGE_PERCENTILES {
            if let Some(v) = bucket_quantile(&cum, p as f64 / 100.0) {
                stats.insert(format!("p{p}_estimate"), json!(v));
            }
        }
    }
    let mut out = Map::new();
    out.insert("stats".into(), Value::Object(stats));
    out.insert("buckets".into(), Value::Object(bucket_map(&buckets)));
    let mut ts = Vec::new();
    if count > 0.0 {
        for (s, e, complete) in slices(window, slice) {
            let inc = |v: &[(u64, f64)]| increase_between(v, s, e);
            let c = inc(&count_pts.values);
            let su = part(PartKey::Sum).map(|p| inc(&p.values)).unwrap_or(0.0);
            let mut m = slice_head(s, e, complete);
            m.insert("count".into(), json!(c.round() as u64));
            m.insert("sum".into(), json!(su));
            m.insert("avg".into(), json!(if c > 0.0 { su / c } else { 0.0 }));
            m.insert(
                "buckets".into(),
                Value::Object(bucket_map(&bucket_increases(parts, inc))),
            );
            ts.push(Value::Object(m));
        }
    }
    if !ts.is_empty() {
        out.insert("timeslices".into(), Value::Array(ts));
    }
    Some(out)
}

/// AIPerf's unit inference from the family name's suffix (longest suffix first).
fn infer_unit(name: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("_seconds_total", "seconds"),
        ("_seconds", "seconds"),
        ("_milliseconds", "milliseconds"),
        ("_ms_total", "milliseconds"),
        ("_ms", "milliseconds"),
        ("_nanoseconds", "nanoseconds"),
        ("_ns_total", "nanoseconds"),
        ("_ns", "nanoseconds"),
        ("_bytes_total", "bytes"),
        ("_bytes", "bytes"),
        ("_tokens_total", "tokens"),
        ("_tokens", "tokens"),
        ("_requests_total", "requests"),
        ("_requests", "requests"),
        ("_reqs", "requests"),
        ("request_success", "requests"),
        ("_errors_total", "errors"),
        ("_errors", "errors"),
        ("_blocks_total", "blocks"),
        ("_blocks", "blocks"),
        ("_ratio", "ratio"),
        ("_percent", "percent"),
        ("_perc", "percent"),
        ("_total", "count"),
        ("_count", "count"),
    ];
    TABLE
        .iter()
        .find(|(suffix, _)| name.ends_with(suffix))
        .map(|(_, unit)| *unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn body(prompt: f64, running: f64, ttft: [f64; 3]) -> String {
        format!(
            "# TYPE vllm:prompt_tokens_total counter\n\
             vllm:prompt_tokens_total{{engine=\"0\"}} {prompt}\n\
             # TYPE vllm:num_requests_running gauge\n\
             vllm:num_requests_running{{engine=\"0\"}} {running}\n\
             # TYPE vllm:ttft_seconds histogram\n\
             vllm:ttft_seconds_bucket{{le=\"0.5\"}} {}\n\
             vllm:ttft_seconds_bucket{{le=\"+Inf\"}} {}\n\
             vllm:ttft_seconds_sum {}\n\
             vllm:ttft_seconds_count {}\n",
            ttft[0], ttft[1], ttft[2], ttft[1]
        )
    }

    #[test]
    fn counters_gauges_histograms_over_a_window_with_a_restart() {
        let mut ep = Endpoint::new("http://e/metrics");
        // Warmup sample, then the window [10 s, 13 s]; the engine restarts at 12 s.
        let scrapes = [
            (9 * S, 100.0, 9.0, [0.0, 0.0, 0.0]),
            (10 * S, 150.0, 1.0, [1.0, 2.0, 1.0]),
            (11 * S, 250.0, 3.0, [2.0, 4.0, 2.0]),
            (12 * S, 40.0, 5.0, [3.0, 6.0, 3.0]),
            (13 * S + S / 2, 60.0, 7.0, [5.0, 10.0, 4.0]),
            (20 * S, 1000.0, 100.0, [50.0, 100.0, 40.0]),
        ];
        for (t, p, r, h) in scrapes {
            ep.record(t, &body(p, r, h)).unwrap();
        }
        let w = Window {
            start_ns: 10 * S,
            end_ns: 13 * S,
        };
        let ex = export(&[ep], w, DEFAULT_SLICE);
        let c = &ex.metrics["vllm:prompt_tokens"];
        assert_eq!(c["type"], "counter");
        assert_eq!(c["unit"], "tokens");
        let st = &c["series"][0]["stats"];
        // 150→250 (+100), restart →40 (+40), 40→60 (+20; first sample after the end).
        assert_eq!(st["total"], 160.0);
        assert_eq!(st["rate"], 160.0 / 3.0);
        let ts = c["series"][0]["timeslices"].as_array().unwrap();
        assert_eq!(ts.len(), 3);
        assert_eq!(ts[0]["total"], 100.0);
        assert_eq!(ts[1]["total"], 40.0);
        assert_eq!(ts[2]["total"], 0.0);
        assert_eq!(c["series"][0]["labels"]["engine"], "0");
        let g = &ex.metrics["vllm:num_requests_running"]["series"][0]["stats"];
        assert_eq!(g["avg"], 3.0); // samples at 10, 11, 12 s
        assert_eq!(g["min"], 1.0);
        assert_eq!(g["max"], 5.0);
        assert_eq!(g["std"], 2.0);
        assert_eq!(g["p50"], 3.0);
        assert_eq!(g["p75"], 4.0);
        let h = &ex.metrics["vllm:ttft_seconds"]["series"][0];
        assert_eq!(h["stats"]["count"], 8); // 2 → 10
        assert_eq!(h["stats"]["sum"], 3.0);
        assert_eq!(h["buckets"]["0.5"], 4);
        assert_eq!(h["buckets"]["+Inf"], 8);
        // Half the observations are ≤ 0.5: p25 interpolates inside [0, 0.5].
        assert_eq!(h["stats"]["p25_estimate"], 0.25);
        assert_eq!(h["labels"], Value::Null);
    }

    #[test]
    fn partial_last_slice_and_no_reference() {
        let mut ep = Endpoint::new("u");
        ep.record(10 * S + 1, &body(5.0, 1.0, [0.0; 3])).unwrap();
        ep.record(11 * S + 1, &body(8.0, 1.0, [0.0; 3])).unwrap();
        let w = Window {
            start_ns: 10 * S,
            end_ns: 11 * S + S / 2,
        };
        let ex = export(&[ep], w, DEFAULT_SLICE);
        let c = &ex.metrics["vllm:prompt_tokens"]["series"][0];
        assert_eq!(c["stats"]["total"], 3.0);
        let ts = c["timeslices"].as_array().unwrap();
        assert_eq!(ts[1]["is_complete"], false);
        assert!(ts[0].get("is_complete").is_none());
        assert_eq!(
            ex.metrics["vllm:ttft_seconds"]["series"][0]["stats"],
            json!({"count": 0})
        );
    }
}
