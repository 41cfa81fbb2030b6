//! InferenceX's power schema v2: validate GPU-board power telemetry and integrate it over
//! the benchmark window into the agg row's energy fields, with the reasons a measurement is
//! not valid written to a `power_validation.json` sidecar.
//!
//! Why a port and not our own rule: energy per token is only comparable across submissions
//! when everyone integrates the same way and rejects the same bad streams. The reference is
//! InferenceX's `utils/aggregate_power.py` at 843c6254f; `tests/fixtures/power/` holds its
//! outputs recorded on our inputs, and `tests/it/power.rs` checks we reproduce them to the
//! last bit. In short:
//!
//! * columns by name: the first header containing `time` is the timestamp, the first
//!   containing `power` but not `limit|cap|max|min` the power, `index|gpu|gpu_id|…` the GPU;
//! * rows more than `max_sample_gap_s` (3 s) outside the window are ignored; inside, an
//!   unparseable timestamp or power, a negative power, or a row without a GPU id makes the
//!   measurement invalid (with its reason code);
//! * per GPU, readings at the same timestamp are averaged (exactly, as `statistics.mean`),
//!   the window must be bracketed by samples at or before its start and at or after its
//!   end, and no gap between consecutive samples around the window may exceed 3 s;
//! * each GPU is integrated with the trapezoid rule, its power linearly interpolated at the
//!   window's two ends; energies are summed over GPUs in GPU order;
//! * `avg_total_gpu_power_w = energy / (end − start)`, `avg_power_w` that over the GPUs
//!   seen, `joules_per_{successful_query,input_token,output_token,total_token}` energy over
//!   the benchmark's counts; written rounded to 3 decimals (`_w`, `_j`) or 6, beside
//!   `power_metric_schema_version: 2` and `power_valid: 1`, or `power_valid: 0` alone.
//!
//! Not ported: the optional cross-check against AMD's energy-accumulator snapshots
//! (`*_energy_start.csv`), which we never record (`accumulator_check: null`), and reading
//! timestamps in the naive `YYYY/MM/DD hh:mm:ss` form is done in the process's local time
//! zone as Python does. Sums of per-GPU energies are plain left-to-right additions, as
//! Python up to 3.11 computes `sum()` (3.12 compensates, which can move the last bit before
//! rounding).

use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive, Zero};
use serde_json::{json, Map, Value};

/// The schema version stamped on every row this module writes.
pub const POWER_METRIC_SCHEMA_VERSION: u32 = 2;
/// Largest allowed gap between consecutive samples around the window (s).
pub const DEFAULT_MAX_SAMPLE_GAP_S: f64 = 3.0;
/// How the energy is computed, as the sidecar names it.
pub const INTEGRATION_METHOD: &str = "per_device_trapezoidal_with_linear_boundary_interpolation";

/// The benchmark's window and counts (from the client's result JSON).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchmarkData {
    /// `benchmark_start_time_unix`.
    pub start_unix: f64,
    /// `benchmark_end_time_unix`.
    pub end_unix: f64,
    /// `duration` as the client reported it.
    pub reported_duration_s: f64,
    /// Successful requests (`completed`; 0 when invalid).
    pub completed: u64,
    /// `total_input_tokens` (0 when invalid).
    pub total_input_tokens: u64,
    /// `total_output_tokens` (0 when invalid).
    pub total_output_tokens: u64,
}

/// What integrating one telemetry stream found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PowerIntegration {
    /// Reason codes of the stream, in discovery order (empty: valid).
    pub invalid_reasons: Vec<String>,
    /// GPUs the job should have (tp × pp × pcp).
    pub expected_num_gpus: Option<i64>,
    /// GPU ids seen in the window, numeric ids first.
    pub observed_gpu_ids: Vec<String>,
    /// Samples per GPU (after averaging equal timestamps).
    pub per_gpu_sample_counts: Vec<(String, usize)>,
    /// Largest gap between consecutive samples around the window, per GPU.
    pub per_gpu_max_sample_gap_s: Vec<(String, f64)>,
    /// Energy per GPU over the window (J).
    pub per_gpu_energy_j: Vec<(String, f64)>,
    /// Per-GPU problems.
    pub device_issues: Vec<(String, Vec<String>)>,
    /// Mean power of one GPU (W), when every GPU integrated.
    pub avg_power_w: Option<f64>,
    /// Mean power of all GPUs together (W).
    pub avg_total_gpu_power_w: Option<f64>,
    /// Energy of all GPUs (J).
    pub total_gpu_energy_j: Option<f64>,
}

/// The whole outcome: validity, reasons, the derived metrics and what they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerOutcome {
    /// Every rule held.
    pub power_valid: bool,
    /// Reason codes (benchmark's first, then the stream's).
    pub reasons: Vec<String>,
    /// The benchmark data, when the result JSON had a valid window.
    pub benchmark: Option<BenchmarkData>,
    /// The stream's integration.
    pub integration: PowerIntegration,
    /// Derived metrics, unrounded, in the reference's order (empty when invalid).
    pub metrics: Vec<(&'static str, f64)>,
}

fn push_reason(reasons: &mut Vec<String>, r: &str) {
    if !reasons.iter().any(|x| x == r) {
        reasons.push(r.to_string());
    }
}

/// `-?\d+(?:\.\d+)?` at the start of `s`: the matched length.
fn number_at(s: &[u8]) -> Option<usize> {
    let mut i = usize::from(s.first() == Some(&b'-'));
    let d0 = i;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    if i == d0 {
        return None;
    }
    if i + 1 < s.len() && s[i] == b'.' && s[i + 1].is_ascii_digit() {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
    }
    Some(i)
}

/// A power cell: the first number in it (`412.34 W` → 412.34); `[N/A]`, `N/A`, `NA` and
/// empty cells are `None`.
pub fn parse_power(value: &str) -> Option<f64> {
    let v = value.trim();
    if v.is_empty() || ["[n/a]", "n/a", "na"].contains(&v.to_lowercase().as_str()) {
        return None;
    }
    let b = v.as_bytes();
    (0..b.len()).find_map(|i| number_at(&b[i..]).map(|n| v[i..i + n].parse::<f64>().ok()))?
}

/// A timestamp cell in Unix seconds: a number (milliseconds when above 10¹²), nvidia-smi's
/// `YYYY/MM/DD hh:mm:ss[.ffffff]` (local time), or ISO 8601 (`Z`/`±hh:mm` offsets; local
/// time without one).
pub fn parse_timestamp(value: &str) -> Option<f64> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if number_at(v.as_bytes()) == Some(v.len()) {
        let n: f64 = v.parse().ok()?;
        return Some(if n > 1e12 { n / 1000.0 } else { n });
    }
    if let Some(t) = parse_slash(v) {
        return local_timestamp(&t);
    }
    let iso = if v.contains(' ') && !v.contains('T') {
        v.replacen(' ', "T", 1)
    } else {
        v.to_string()
    };
    let t = parse_iso(&iso)?;
    match t.offset_s {
        None => local_timestamp(&t),
        Some(off) => {
            let days = days_from_civil(t.year, t.month, t.day);
            let secs = days * 86_400 + t.hour * 3600 + t.minute * 60 + t.second - off;
            let micros = secs as i128 * 1_000_000 + t.micro as i128;
            // Python: timedelta.total_seconds(), integer microseconds / 10⁶ (one rounding).
            Some(micros as f64 / 1e6)
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    micro: i64,
    /// Seconds east of UTC; `None` for a naive time.
    offset_s: Option<i64>,
}

fn digits(s: &str, n: usize) -> Option<i64> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `.ffffff` (1–6 digits) as microseconds.
fn micros(f: &str) -> Option<i64> {
    if f.is_empty() || f.len() > 6 || !f.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(f.parse::<i64>().ok()? * 10i64.pow(6 - f.len() as u32))
}

fn valid(c: Civil) -> Option<Civil> {
    let leap = (c.year % 4 == 0 && c.year % 100 != 0) || c.year % 400 == 0;
    let mdays = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    ((1..=9999).contains(&c.year)
        && (1..=12).contains(&c.month)
        && c.day >= 1
        && c.day <= mdays[(c.month - 1) as usize]
        && c.hour < 24
        && c.minute < 60
        && c.second < 60)
        .then_some(c)
}

fn parse_slash(v: &str) -> Option<Civil> {
    let (date, time) = v.split_once(' ')?;
    let d: Vec<&str> = date.split('/').collect();
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (time, None),
    };
    let t: Vec<&str> = hms.split(':').collect();
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    // strptime's numeric fields take 1–2 digits (4 for the year).
    let f = |s: &str, max: usize| {
        (!s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i64>().ok())
            .flatten()
    };
    valid(Civil {
        year: f(d[0], 4)?,
        month: f(d[1], 2)?,
        day: f(d[2], 2)?,
        hour: f(t[0], 2)?,
        minute: f(t[1], 2)?,
        second: f(t[2], 2)?,
        micro: match frac {
            Some(x) => micros(x)?,
            None => 0,
        },
        offset_s: None,
    })
}

fn parse_iso(v: &str) -> Option<Civil> {
    let (date, rest) = match v.split_once('T') {
        Some((d, r)) => (d, Some(r)),
        None => (v, None),
    };
    let dp: Vec<&str> = date.split('-').collect();
    if dp.len() != 3 {
        return None;
    }
    let (year, month, day) = (digits(dp[0], 4)?, digits(dp[1], 2)?, digits(dp[2], 2)?);
    let (mut hour, mut minute, mut second, mut micro, mut offset_s) = (0, 0, 0, 0, None);
    if let Some(r) = rest {
        let (time, off) = if let Some(t) = r.strip_suffix('Z') {
            (t, Some(0))
        } else if let Some(i) = r.rfind(['+', '-']) {
            let (t, o) = r.split_at(i);
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let p: Vec<&str> = o[1..].split(':').collect();
            let secs = match p.as_slice() {
                [h, m] => digits(h, 2)? * 3600 + digits(m, 2)? * 60,
                [h, m, s] => digits(h, 2)? * 3600 + digits(m, 2)? * 60 + digits(s, 2)?,
                _ => return None,
            };
            (t, Some(sign * secs))
        } else {
            (r, None)
        };
        offset_s = off;
        let (hms, frac) = match time.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (time, None),
        };
        let t: Vec<&str> = hms.split(':').collect();
        match t.as_slice() {
            [h, m] => {
                hour = digits(h, 2)?;
                minute = digits(m, 2)?;
            }
            [h, m, s] => {
                hour = digits(h, 2)?;
                minute = digits(m, 2)?;
                second = digits(s, 2)?;
            }
            _ => return None,
        }
        if let Some(f) = frac {
            micro = micros(f)?;
        }
    }
    valid(Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
        micro,
        offset_s,
    })
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A naive time in the local time zone, as Python's `datetime.timestamp()` computes it:
/// whole seconds from `mktime`, plus microseconds / 10⁶.
fn local_timestamp(c: &Civil) -> Option<f64> {
    // SAFETY: a zeroed `tm` is a valid value; mktime only reads and normalises it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = (c.year - 1900) as i32;
    tm.tm_mon = (c.month - 1) as i32;
    tm.tm_mday = c.day as i32;
    tm.tm_hour = c.hour as i32;
    tm.tm_min = c.minute as i32;
    tm.tm_sec = c.second as i32;
    tm.tm_isdst = -1;
    // SAFETY: `tm` is initialised above.
    let secs = unsafe { libc::mktime(&mut tm) };
    (secs != -1).then(|| secs as f64 + c.micro as f64 / 1e6)
}

/// `(timestamp, power, gpu)` column names of a header, as the reference detects them.
pub fn detect_columns(header: &[String]) -> (Option<usize>, Option<usize>, Option<usize>) {
    let lower: Vec<String> = header.iter().map(|h| h.to_lowercase()).collect();
    let ts = lower.iter().position(|h| h.contains("time"));
    let power = lower.iter().position(|h| {
        h.contains("power") && !["limit", "cap", "max", "min"].iter().any(|x| h.contains(x))
    });
    let gpu = lower.iter().position(|h| {
        ["index", "gpu", "gpu_id", "gpu_index", "card", "device"].contains(&h.trim())
    });
    (ts, power, gpu)
}

/// Records of a CSV text as Python's `csv` reader with `skipinitialspace=True` splits
/// them (blank lines skipped).
fn records(text: &str) -> impl Iterator<Item = Vec<String>> + '_ {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(|l| {
            // skipinitialspace: blanks after a delimiter belong to no field (a quote after
            // them still opens a quoted field).
            let mut cleaned = String::with_capacity(l.len());
            let mut after_comma = true;
            let mut quoted = false;
            for ch in l.chars() {
                if after_comma && ch == ' ' && !quoted {
                    continue;
                }
                after_comma = false;
                if ch == '"' {
                    quoted = !quoted;
                }
                if ch == ',' && !quoted {
                    after_comma = true;
                }
                cleaned.push(ch);
            }
            crate::csv::fields(&cleaned)
        })
}

/// Numeric GPU ids first (by value), then the others (by text); stable.
fn sort_gpu_ids(ids: &mut [String]) {
    ids.sort_by(|a, b| {
        let num = |s: &str| {
            (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| {
                let t = s.trim_start_matches('0');
                (t.len(), t.to_string())
            })
        };
        match (num(a), num(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.cmp(b),
        }
    });
}

/// The exact mean of `values`, correctly rounded (Python's `statistics.mean` on floats).
pub fn exact_mean(values: &[f64]) -> f64 {
    if values.len() == 1 {
        return values[0];
    }
    // v = m · 2^e exactly; sum over a common exponent.
    let parts: Vec<(i64, i32)> = values
        .iter()
        .map(|&v| {
            let bits = v.to_bits();
            let sign = if bits >> 63 == 1 { -1 } else { 1 };
            let exp = ((bits >> 52) & 0x7ff) as i32;
            let frac = (bits & ((1u64 << 52) - 1)) as i64;
            let (m, e) = if exp == 0 {
                (frac, -1074)
            } else {
                (frac | (1i64 << 52), exp - 1075)
            };
            (sign * m, e)
        })
        .collect();
    let emin = parts.iter().map(|p| p.1).min().unwrap_or(0);
    let mut num = BigInt::zero();
    for (m, e) in &parts {
        num += BigInt::from(*m) << ((e - emin) as usize);
    }
    if num.is_zero() {
        return 0.0;
    }
    let neg = num.is_negative();
    let num = num.abs();
    let den = BigInt::from(values.len());
    // Scale so the quotient has at least 55 significant bits, then round to 53 with the
    // remainder as sticky bit.
    let shift = (55 + den.bits() as i64 - num.bits() as i64).max(0);
    let scaled: BigInt = &num << (shift as usize);
    let q = &scaled / &den;
    let sticky = !(&scaled % &den).is_zero();
    let qbits = q.bits() as i64;
    let extra = qbits - 53;
    let mut mant: BigInt = &q >> (extra as usize);
    let rem: BigInt = &q - (&mant << (extra as usize));
    let half = BigInt::from(1) << ((extra - 1) as usize);
    let round_up =
        rem > half || (rem == half && (sticky || (&mant & BigInt::from(1)) == BigInt::from(1)));
    if round_up {
        mant += 1;
    }
    let m = mant.to_f64().expect("53-bit mantissa");
    let e = (emin as i64) - shift + extra;
    let v = m * 2f64.powi(e as i32);
    if neg {
        -v
    } else {
        v
    }
}

fn bisect_left(xs: &[f64], x: f64) -> usize {
    xs.partition_point(|&v| v < x)
}

fn bisect_right(xs: &[f64], x: f64) -> usize {
    xs.partition_point(|&v| v <= x)
}

fn interpolate(samples: &[(f64, f64)], t: f64) -> f64 {
    let times: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let r = bisect_left(&times, t);
    if r < samples.len() && (samples[r].0 - t).abs() <= 1e-9 {
        return samples[r].1;
    }
    let l = r - 1;
    let (lt, lp) = samples[l];
    let (rt, rp) = samples[r];
    let fraction = (t - lt) / (rt - lt);
    lp + fraction * (rp - lp)
}

fn integrate_device(samples: &[(f64, f64)], start: f64, end: f64) -> f64 {
    let mut clipped = vec![(start, interpolate(samples, start))];
    clipped.extend(
        samples
            .iter()
            .copied()
            .filter(|&(t, _)| start < t && t < end),
    );
    clipped.push((end, interpolate(samples, end)));
    let mut e = 0.0;
    for w in clipped.windows(2) {
        let ((lt, lp), (rt, rp)) = (w[0], w[1]);
        e += (rt - lt) * (lp + rp) / 2.0;
    }
    e
}

/// One GPU's readings in first-seen order: its id, `(timestamp, readings)` per distinct
/// timestamp, and an index from timestamp bits to that list.
type GpuReadings = (
    String,
    Vec<(f64, Vec<f64>)>,
    std::collections::HashMap<u64, usize>,
);

fn empty(expected: Option<i64>, reasons: Vec<String>) -> PowerIntegration {
    PowerIntegration {
        invalid_reasons: reasons,
        expected_num_gpus: expected,
        ..PowerIntegration::default()
    }
}

/// Validate and integrate one telemetry CSV (`None`: the file is missing) over
/// `[start_unix, end_unix]`.
pub fn integrate_power(
    csv: Option<&str>,
    start_unix: f64,
    end_unix: f64,
    expected_num_gpus: Option<i64>,
    max_sample_gap_s: f64,
) -> PowerIntegration {
    let mut reasons = vec![];
    if !start_unix.is_finite() || !end_unix.is_finite() || end_unix <= start_unix {
        return empty(expected_num_gpus, vec!["invalid_benchmark_window".into()]);
    }
    if expected_num_gpus.is_some_and(|n| n <= 0) {
        push_reason(&mut reasons, "invalid_expected_gpu_count");
    }
    if !max_sample_gap_s.is_finite() || max_sample_gap_s <= 0.0 {
        return empty(expected_num_gpus, vec!["invalid_max_sample_gap".into()]);
    }
    let Some(text) = csv else {
        push_reason(&mut reasons, "telemetry_file_missing");
        return empty(expected_num_gpus, reasons);
    };
    if text.is_empty() {
        push_reason(&mut reasons, "telemetry_file_empty");
        return empty(expected_num_gpus, reasons);
    }
    let mut recs = records(text);
    let header: Vec<String> = recs
        .next()
        .unwrap_or_default()
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let (ts_col, power_col, gpu_col) = detect_columns(&header);
    let mut missing = false;
    for (col, why) in [
        (ts_col, "timestamp_column_missing"),
        (power_col, "power_column_missing"),
        (gpu_col, "gpu_identity_column_missing"),
    ] {
        if col.is_none() {
            push_reason(&mut reasons, why);
            missing = true;
        }
    }
    let (Some(ts_col), Some(power_col), Some(gpu_col), false) =
        (ts_col, power_col, gpu_col, missing)
    else {
        return empty(expected_num_gpus, reasons);
    };

    // gpu → [(timestamp, readings)] in first-seen order, with an index by timestamp bits.
    let mut raw: Vec<GpuReadings> = vec![];
    let mut saw_missing_gpu = false;
    for rec in recs {
        let cell = |i: usize| rec.get(i).map(|s| s.trim()).unwrap_or("");
        let Some(ts) = parse_timestamp(cell(ts_col)).filter(|t| t.is_finite()) else {
            push_reason(&mut reasons, "invalid_timestamp_sample");
            continue;
        };
        if ts < start_unix - max_sample_gap_s || ts > end_unix + max_sample_gap_s {
            continue;
        }
        let gpu = cell(gpu_col);
        let Some(p) = parse_power(cell(power_col)) else {
            push_reason(&mut reasons, "invalid_power_sample");
            continue;
        };
        if !p.is_finite() || p < 0.0 {
            push_reason(&mut reasons, "invalid_power_sample");
            continue;
        }
        if gpu.is_empty() {
            saw_missing_gpu = true;
            continue;
        }
        let i = match raw.iter().position(|g| g.0 == gpu) {
            Some(i) => i,
            None => {
                raw.push((gpu.to_string(), vec![], Default::default()));
                raw.len() - 1
            }
        };
        let g = &mut raw[i];
        // -0.0 and 0.0 are one dict key in Python.
        let key = if ts == 0.0 { 0 } else { ts.to_bits() };
        match g.2.get(&key) {
            Some(&j) => g.1[j].1.push(p),
            None => {
                g.2.insert(key, g.1.len());
                g.1.push((ts, vec![p]));
            }
        }
    }
    if saw_missing_gpu {
        push_reason(&mut reasons, "gpu_identity_missing");
    }
    if raw.is_empty() {
        push_reason(&mut reasons, "no_usable_power_samples");
        return empty(expected_num_gpus, reasons);
    }
    let mut observed: Vec<String> = raw.iter().map(|g| g.0.clone()).collect();
    sort_gpu_ids(&mut observed);
    if expected_num_gpus.is_some_and(|n| n > 0 && observed.len() as i64 != n) {
        push_reason(&mut reasons, "expected_gpu_count_mismatch");
    }
    let mut out = PowerIntegration {
        expected_num_gpus,
        observed_gpu_ids: observed.clone(),
        ..PowerIntegration::default()
    };
    for id in &observed {
        let g = raw.iter().find(|g| &g.0 == id).expect("observed");
        let mut samples: Vec<(f64, f64)> = g.1.iter().map(|(t, v)| (*t, exact_mean(v))).collect();
        samples.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        out.per_gpu_sample_counts.push((id.clone(), samples.len()));
        let mut issues = vec![];
        if samples.len() < 2 {
            issues.push("insufficient_power_samples".to_string());
            push_reason(&mut reasons, "insufficient_power_samples");
        } else if samples[0].0 > start_unix || samples[samples.len() - 1].0 < end_unix {
            issues.push("benchmark_window_not_bracketed".to_string());
            push_reason(&mut reasons, "benchmark_window_not_bracketed");
        } else {
            let times: Vec<f64> = samples.iter().map(|s| s.0).collect();
            let l = bisect_right(&times, start_unix) - 1;
            let r = bisect_left(&times, end_unix);
            let relevant = &samples[l..=r];
            let max_gap = relevant
                .windows(2)
                .map(|w| w[1].0 - w[0].0)
                .fold(None, |m: Option<f64>, g| {
                    Some(m.map_or(g, |m| if g > m { g } else { m }))
                })
                .unwrap_or(0.0);
            out.per_gpu_max_sample_gap_s.push((id.clone(), max_gap));
            if max_gap > max_sample_gap_s {
                issues.push("sampling_gap_exceeded".to_string());
                push_reason(&mut reasons, "sampling_gap_exceeded");
            }
            out.per_gpu_energy_j
                .push((id.clone(), integrate_device(&samples, start_unix, end_unix)));
        }
        if !issues.is_empty() {
            out.device_issues.push((id.clone(), issues));
        }
    }
    if out.per_gpu_energy_j.len() == observed.len() {
        let total = out.per_gpu_energy_j.iter().fold(0.0, |a, (_, e)| a + e);
        let avg_total = total / (end_unix - start_unix);
        out.total_gpu_energy_j = Some(total);
        out.avg_total_gpu_power_w = Some(avg_total);
        out.avg_power_w = Some(avg_total / observed.len() as f64);
    }
    out.invalid_reasons = reasons;
    out
}

/// The benchmark's window and counts from the client's result JSON, and the reasons they
/// are not usable (`None` when the window itself is not).
pub fn load_benchmark_data(bench: &Value) -> (Option<BenchmarkData>, Vec<String>) {
    let num = |k: &str| {
        bench
            .get(k)
            .filter(|v| v.is_number())
            .and_then(Value::as_f64)
    };
    let (Some(start), Some(end), Some(duration)) = (
        num("benchmark_start_time_unix"),
        num("benchmark_end_time_unix"),
        num("duration"),
    ) else {
        return (None, vec!["invalid_benchmark_window".into()]);
    };
    if !(start.is_finite() && end.is_finite() && duration.is_finite())
        || end <= start
        || duration <= 0.0
    {
        return (None, vec!["invalid_benchmark_window".into()]);
    }
    let mut reasons = vec![];
    let integration = end - start;
    if (duration - integration).abs() > (integration * 0.01).max(0.5) {
        push_reason(&mut reasons, "benchmark_duration_mismatch");
    }
    let mut count = |k: &str, why: &str| {
        // An integer (not a float, not a bool) above zero, as the reference insists.
        let n = bench
            .get(k)
            .filter(|v| v.is_i64() || v.is_u64())
            .and_then(Value::as_u64);
        match n {
            Some(n) if n > 0 => n,
            _ => {
                push_reason(&mut reasons, why);
                0
            }
        }
    };
    let completed = count("completed", "invalid_successful_query_count");
    let total_input_tokens = count("total_input_tokens", "invalid_input_token_count");
    let total_output_tokens = count("total_output_tokens", "invalid_output_token_count");
    (
        Some(BenchmarkData {
            start_unix: start,
            end_unix: end,
            reported_duration_s: duration,
            completed,
            total_input_tokens,
            total_output_tokens,
        }),
        reasons,
    )
}

/// Validate `csv` (`None`: missing) against the benchmark result `bench` and derive the
/// energy metrics.
pub fn evaluate(csv: Option<&str>, bench: &Value, expected_num_gpus: Option<i64>) -> PowerOutcome {
    let (benchmark, bench_reasons) = load_benchmark_data(bench);
    let integration = match &benchmark {
        None => empty(expected_num_gpus, bench_reasons.clone()),
        Some(b) => integrate_power(
            csv,
            b.start_unix,
            b.end_unix,
            expected_num_gpus,
            DEFAULT_MAX_SAMPLE_GAP_S,
        ),
    };
    let mut reasons = bench_reasons;
    for r in &integration.invalid_reasons {
        push_reason(&mut reasons, r);
    }
    let power_valid = reasons.is_empty();
    let mut metrics = vec![];
    if let (true, Some(b)) = (power_valid, &benchmark) {
        let (Some(w), Some(tw), Some(e)) = (
            integration.avg_power_w,
            integration.avg_total_gpu_power_w,
            integration.total_gpu_energy_j,
        ) else {
            unreachable!("a valid integration has every metric")
        };
        let total_tokens = b.total_input_tokens + b.total_output_tokens;
        metrics = vec![
            ("avg_power_w", w),
            ("avg_total_gpu_power_w", tw),
            ("total_gpu_energy_j", e),
            ("joules_per_successful_query", e / b.completed as f64),
            ("joules_per_input_token", e / b.total_input_tokens as f64),
            ("joules_per_output_token", e / b.total_output_tokens as f64),
            ("joules_per_total_token", e / total_tokens as f64),
        ];
    }
    PowerOutcome {
        power_valid,
        reasons,
        benchmark,
        integration,
        metrics,
    }
}

/// Python's `round(v, digits)` for the values written here.
pub fn round_to(v: f64, digits: usize) -> f64 {
    format!("{v:.digits$}")
        .parse()
        .expect("a formatted float parses")
}

fn obj<T: Into<Value> + Clone>(pairs: &[(String, T)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect::<Map<_, _>>(),
    )
}

impl PowerOutcome {
    /// The keys the reference writes into the agg row: the schema version, `power_valid`
    /// (1/0) and, when valid, every metric rounded (3 decimals for `_w`/`_j`, else 6).
    pub fn agg_fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "power_metric_schema_version".into(),
            json!(POWER_METRIC_SCHEMA_VERSION),
        );
        m.insert("power_valid".into(), json!(u8::from(self.power_valid)));
        if self.power_valid {
            for (k, v) in &self.metrics {
                let digits = if k.ends_with("_w") || k.ends_with("_j") {
                    3
                } else {
                    6
                };
                m.insert((*k).into(), json!(round_to(*v, digits)));
            }
        }
        m
    }

    /// Set the agg row's power fields from [`agg_fields`](Self::agg_fields), clearing any
    /// earlier ones.
    pub fn apply(&self, row: &mut crate::report::AggRow) {
        let f = self.agg_fields();
        let get = |k: &str| f.get(k).and_then(Value::as_f64);
        row.power_metric_schema_version = Some(POWER_METRIC_SCHEMA_VERSION);
        row.power_valid = Some(u8::from(self.power_valid));
        row.avg_power_w = get("avg_power_w");
        row.avg_total_gpu_power_w = get("avg_total_gpu_power_w");
        row.total_gpu_energy_j = get("total_gpu_energy_j");
        row.joules_per_successful_query = get("joules_per_successful_query");
        row.joules_per_input_token = get("joules_per_input_token");
        row.joules_per_output_token = get("joules_per_output_token");
        row.joules_per_total_token = get("joules_per_total_token");
    }

    /// The `power_validation.json` sidecar, as the reference writes it (`telemetry_source`
    /// and `benchmark_result` are the names given).
    pub fn validation_json(&self, telemetry_source: &str, benchmark_result: &str) -> Value {
        let i = &self.integration;
        let window = self.benchmark.map(|b| {
            json!({
                "start_time_unix": b.start_unix,
                "end_time_unix": b.end_unix,
                "reported_duration_s": b.reported_duration_s,
                "integration_duration_s": b.end_unix - b.start_unix,
                "completed": b.completed,
                "total_input_tokens": b.total_input_tokens,
                "total_output_tokens": b.total_output_tokens,
            })
        });
        let metrics: Map<String, Value> = self
            .metrics
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| ((*k).to_string(), json!(round_to(*v, 6))))
            .collect();
        json!({
            "schema_version": 1,
            "power_valid": self.power_valid,
            "reasons": self.reasons,
            "telemetry_source": telemetry_source,
            "benchmark_result": benchmark_result,
            "benchmark_window": window,
            "integration_method": INTEGRATION_METHOD,
            "expected_gpu_count": i.expected_num_gpus,
            "observed_gpu_count": i.observed_gpu_ids.len(),
            "observed_gpu_ids": i.observed_gpu_ids,
            "per_gpu_sample_counts": obj(&i.per_gpu_sample_counts),
            "per_gpu_max_sample_gap_s": obj(&i.per_gpu_max_sample_gap_s),
            "per_gpu_energy_j": obj(&i.per_gpu_energy_j),
            "device_issues": obj(&i.device_issues),
            "accumulator_check": null,
            "metrics": metrics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_cells_like_the_reference_regex() {
        assert_eq!(parse_power(" 412.34 W"), Some(412.34));
        assert_eq!(parse_power("[N/A]"), None);
        assert_eq!(parse_power("na"), None);
        assert_eq!(parse_power("abc-5.5x"), Some(-5.5));
        assert_eq!(parse_power("1e3"), Some(1.0));
        assert_eq!(parse_power(".5"), Some(5.0));
        assert_eq!(parse_power("7."), Some(7.0));
        assert_eq!(parse_power("W"), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1767225600.25"), Some(1_767_225_600.25));
        assert_eq!(parse_timestamp("1767225600250"), Some(1_767_225_600.25));
        assert_eq!(
            parse_timestamp("2026-01-01T00:00:00.25Z"),
            Some(1_767_225_600.25)
        );
        assert_eq!(
            parse_timestamp("2026-01-01 01:00:00.25+01:00"),
            Some(1_767_225_600.25)
        );
        assert_eq!(parse_timestamp("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("1e9"), None);
    }

    #[test]
    fn exact_mean_is_correctly_rounded() {
        assert_eq!(exact_mean(&[1.0, 2.0]), 1.5);
        assert_eq!(exact_mean(&[0.1, 0.2, 0.3]), 0.2);
        // Naive (0.1 + 0.2 + 0.3) / 3 is 0.20000000000000004.
        assert_ne!((0.1 + 0.2 + 0.3) / 3.0, 0.2);
        assert_eq!(exact_mean(&[1e16, 1.0, -1e16]), 1.0 / 3.0);
        assert_eq!(exact_mean(&[0.0, 0.0]), 0.0);
        assert_eq!(exact_mean(&[250.5]), 250.5);
    }

    #[test]
    fn gpu_ids_sort_numeric_first() {
        let mut ids: Vec<String> = ["10", "b", "2", "a", "01"].map(String::from).to_vec();
        sort_gpu_ids(&mut ids);
        assert_eq!(ids, ["01", "2", "10", "a", "b"]);
    }
}
