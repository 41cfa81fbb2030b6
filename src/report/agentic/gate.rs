//! The post-run error gate InferenceX applies to every agentic point
//! (`utils/agentic/validation/validate_agentic_result.py`): errors / completed ≤ the
//! threshold (0.10, inclusive), read from AIPerf's `profile_export_aiperf.json`, with the
//! reference's messages, so a failed gate reads the same in our logs as in theirs.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The workflow's `AIPERF_FAILED_REQUEST_THRESHOLD`.
pub const FAILED_REQUEST_THRESHOLD: f64 = 0.10;

/// `profile_export_aiperf.json` in `artifact_dir`, or in its first child dir holding one.
fn aggregate_path(artifact_dir: &Path) -> PathBuf {
    let direct = artifact_dir.join("profile_export_aiperf.json");
    if direct.is_file() {
        return direct;
    }
    if let Ok(rd) = std::fs::read_dir(artifact_dir) {
        let mut kids: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        kids.sort();
        for k in kids {
            let c = k.join("profile_export_aiperf.json");
            if k.is_dir() && c.is_file() {
                return c;
            }
        }
    }
    direct
}

fn metric_avg(agg: &Value, name: &str) -> Result<Option<f64>, String> {
    let Some(m) = agg.get(name).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Value::Object(m) = m else {
        return Err(format!("{name} must be an object"));
    };
    let Some(v) = m.get("avg").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Some(x) = v.as_f64() else {
        return Err(format!("{name}.avg must be numeric"));
    };
    if !x.is_finite() || x < 0.0 {
        return Err(format!("{name}.avg must be a finite non-negative number"));
    }
    Ok(Some(x))
}

/// Python's `format(x, "g")` (6 significant digits, trailing zeros dropped).
pub fn py_g(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if !x.is_finite() {
        return if x.is_nan() {
            "nan"
        } else if x > 0.0 {
            "inf"
        } else {
            "-inf"
        }
        .into();
    }
    let sci = format!("{x:.5e}");
    let (mant, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("int exponent");
    if !(-4..6).contains(&exp) {
        let mant = mant.trim_end_matches('0').trim_end_matches('.');
        format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        let decimals = (5 - exp).max(0) as usize;
        let s = format!("{x:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

/// `validate_result(artifact_dir, threshold)`: `Ok(message)` when the point passes,
/// `Err(errors)` with the reference's wording otherwise.
pub fn validate_result(artifact_dir: &Path, threshold: f64) -> Result<String, Vec<String>> {
    let path = aggregate_path(artifact_dir);
    if !path.is_file() {
        return Err(vec![format!("{} not found", path.display())]);
    }
    let read = || -> Result<(Option<f64>, f64, Option<f64>), String> {
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let agg: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if !agg.is_object() {
            return Err("must contain a JSON object".into());
        }
        Ok((
            metric_avg(&agg, "request_count")?,
            metric_avg(&agg, "error_request_count")?.unwrap_or(0.0),
            metric_avg(&agg, "completed_request_count")?,
        ))
    };
    let (successes, errors, completed) = match read() {
        Ok(v) => v,
        Err(e) if e == "must contain a JSON object" => {
            return Err(vec![format!(
                "{} must contain a JSON object",
                path.display()
            )])
        }
        Err(e) => return Err(vec![format!("failed to read {}: {e}", path.display())]),
    };
    let Some(successes) = successes else {
        return Err(vec!["request_count.avg is missing".into()]);
    };
    let completed = completed.unwrap_or(successes + errors);
    if completed <= 0.0 {
        return Err(vec!["aiperf completed zero requests".into()]);
    }
    let rate = errors / completed;
    let pct = |x: f64| format!("{:.3}%", x * 100.0);
    if rate > threshold {
        return Err(vec![format!(
            "aiperf request error rate exceeded the benchmark limit: {}/{} = {} > {}",
            py_g(errors),
            py_g(completed),
            pct(rate),
            pct(threshold)
        )]);
    }
    Ok(format!(
        "Validated aiperf request error rate: {}/{} = {} <= {}",
        py_g(errors),
        py_g(completed),
        pct(rate),
        pct(threshold)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_like_the_reference() {
        assert_eq!(py_g(9.0), "9");
        assert_eq!(py_g(160.0), "160");
        assert_eq!(py_g(1234567.0), "1.23457e+06");
        assert_eq!(py_g(0.0001234), "0.0001234");
        assert_eq!(py_g(2.5), "2.5");
        let dir = tempfile::tempdir().unwrap();
        let write = |v: Value| {
            std::fs::write(dir.path().join("profile_export_aiperf.json"), v.to_string()).unwrap()
        };
        write(
            serde_json::json!({"request_count": {"avg": 90}, "error_request_count": {"avg": 10}}),
        );
        assert_eq!(
            validate_result(dir.path(), 0.10).unwrap(),
            "Validated aiperf request error rate: 10/100 = 10.000% <= 10.000%"
        );
        write(
            serde_json::json!({"request_count": {"avg": 89}, "error_request_count": {"avg": 11}}),
        );
        assert_eq!(
            validate_result(dir.path(), 0.10).unwrap_err(),
            ["aiperf request error rate exceeded the benchmark limit: 11/100 = 11.000% > 10.000%"]
        );
        write(serde_json::json!({"error_request_count": {"avg": 1}}));
        assert_eq!(
            validate_result(dir.path(), 0.1).unwrap_err(),
            ["request_count.avg is missing"]
        );
        write(serde_json::json!({"request_count": {"avg": -1}}));
        assert!(validate_result(dir.path(), 0.1).unwrap_err()[0].contains("finite non-negative"));
        write(serde_json::json!({"request_count": {"avg": 0}}));
        assert_eq!(
            validate_result(dir.path(), 0.1).unwrap_err(),
            ["aiperf completed zero requests"]
        );
    }
}
