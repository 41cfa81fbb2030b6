//! What a point costs: dollars per million tokens from a pricing file, and tokens per second
//! per megawatt from measured GPU power.
//!
//! Prices are data, not code (`pricing.yaml`, overridable with `--pricing FILE`): a figure of
//! `$/GPU-hour` per hardware, each with the source and date it was taken from, because a
//! cost is only as good as the price a reader can check. A point's cost per million tokens
//! is `price / (tokens per second per GPU × 3600) × 10⁶`, once for each token class with
//! that class's own per-GPU throughput (input, output, total): each figure charges the whole
//! GPU-hour to that class, the way cost per million tokens is usually quoted, so the three
//! do not add up. A hardware without a price gets no cost, never a guessed one.
//!
//! Tokens per second per MW use the GPU-board power measured during the benchmark window
//! (InferenceX power schema v2, [`crate::telemetry::power`]): `tput_per_gpu / (avg_power_w /
//! 10⁶)` where v2's `avg_power_w` is the mean power of one GPU. Only rows stamped
//! `power_metric_schema_version: 2` with `power_valid: 1` count: an unversioned row's
//! `avg_power_w` may be a whole-node sum (our rows before v2 were), so such rows fail closed,
//! as the reference asks its consumers to. This is board power only, not the "all-in
//! provisioned MW" (cooling, hosts, network) of SemiAnalysis' dashboards.

use super::agg::AggRow;
use super::ReportError;
use crate::config::{parse_yaml, read_file, UniqueMap};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A pricing file (`pricing.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pricing {
    /// Where it was read from (shown in the report so a reader knows which prices were used).
    pub file: String,
    /// Currency of every figure (`USD`).
    pub currency: String,
    /// Price per hardware key, in file order.
    pub hardware: indexmap::IndexMap<String, Price>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PricingYaml {
    #[serde(default = "usd")]
    currency: String,
    hardware: UniqueMap<Price>,
}

fn usd() -> String {
    "USD".into()
}

/// The price of one hardware.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Cost of one GPU for one hour. Absent only with `same_as`.
    #[serde(default)]
    pub per_gpu_hour: Option<f64>,
    /// Price this hardware like another key (e.g. `sim` like the hardware it simulates).
    #[serde(default)]
    pub same_as: Option<String>,
    /// Where the figure comes from (URL or document).
    #[serde(default)]
    pub source: Option<String>,
    /// When the figure was taken.
    #[serde(default)]
    pub date: Option<String>,
    /// What kind of figure it is (on-demand rental, TCO estimate, …).
    #[serde(default)]
    pub note: Option<String>,
}

/// A resolved price: the key that matched and the figure in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedPrice {
    /// The pricing key that matched the row's hardware.
    pub key: String,
    /// The key whose figure was used (differs from `key` through `same_as`).
    pub priced_as: String,
    /// Cost of one GPU for one hour.
    pub per_gpu_hour: f64,
    /// Source of the figure.
    pub source: Option<String>,
    /// Date of the figure.
    pub date: Option<String>,
}

/// The cost figures of one point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    /// The price used.
    pub price: ResolvedPrice,
    /// Cost per million input tokens.
    pub per_m_input: Option<f64>,
    /// Cost per million output tokens.
    pub per_m_output: Option<f64>,
    /// Cost per million input + output tokens.
    pub per_m_total: Option<f64>,
}

impl Pricing {
    /// The pricing file shipped with the source.
    pub fn default_file() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pricing.yaml")
    }

    /// Parse a pricing file's text; errors name file, line, column and field path.
    pub fn parse(file: &str, text: &str) -> Result<Pricing, ReportError> {
        let y: PricingYaml = parse_yaml(file, text)?;
        let bad = |key: &str, field: &str, message: String| {
            ReportError::Config(crate::config::ConfigError::Parse {
                file: file.to_string(),
                line: line_of(text, key),
                col: 3,
                message,
                path: format!("hardware.{key}.{field}"),
            })
        };
        for (key, p) in &y.hardware.0 {
            match (&p.per_gpu_hour, &p.same_as) {
                (Some(v), None) if v.is_finite() && *v >= 0.0 => {}
                (Some(v), None) => {
                    return Err(bad(
                        key,
                        "per_gpu_hour",
                        format!("must be a finite non-negative number, got {v}"),
                    ))
                }
                (None, Some(other)) => match y.hardware.0.get(other) {
                    Some(o) if o.per_gpu_hour.is_some() => {}
                    Some(_) => {
                        return Err(bad(
                            key,
                            "same_as",
                            format!("`{other}` has no per_gpu_hour of its own"),
                        ))
                    }
                    None => {
                        return Err(bad(
                            key,
                            "same_as",
                            format!("no hardware `{other}` in this file"),
                        ))
                    }
                },
                (Some(_), Some(_)) => {
                    return Err(bad(
                        key,
                        "same_as",
                        "give either per_gpu_hour or same_as, not both".into(),
                    ))
                }
                (None, None) => {
                    return Err(bad(
                        key,
                        "per_gpu_hour",
                        "missing (or give same_as: <other hardware>)".into(),
                    ))
                }
            }
        }
        Ok(Pricing {
            file: file.to_string(),
            currency: y.currency,
            hardware: y.hardware.0,
        })
    }

    /// Read a pricing file.
    pub fn load(path: &Path) -> Result<Pricing, ReportError> {
        let (file, text) = read_file(path)?;
        Pricing::parse(&file, &text)
    }

    /// The price for a row's hardware: the exact key, else the longest key `k` such that
    /// the hardware starts with `k-` or `k_` (runner types such as `mi355x-amds` price as
    /// `mi355x`). Case-insensitive.
    pub fn price_for(&self, hw: &str) -> Option<ResolvedPrice> {
        let hw = hw.to_ascii_lowercase();
        let key = self
            .hardware
            .keys()
            .filter(|k| {
                let k = k.to_ascii_lowercase();
                hw == k
                    || hw
                        .strip_prefix(k.as_str())
                        .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('_'))
            })
            .max_by_key(|k| k.len())?;
        let own = &self.hardware[key];
        let (priced_as, p) = match &own.same_as {
            Some(other) => (other.clone(), &self.hardware[other]),
            None => (key.clone(), own),
        };
        Some(ResolvedPrice {
            key: key.clone(),
            priced_as,
            per_gpu_hour: p.per_gpu_hour.expect("validated on load"),
            source: p.source.clone(),
            date: p.date.clone(),
        })
    }
}

fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(&format!("{key}:")))
        .map(|i| i + 1)
        .unwrap_or(1)
}

/// Cost per million tokens at `tokens_per_s_per_gpu` for `per_gpu_hour`; `None` without
/// throughput.
pub fn per_million(per_gpu_hour: f64, tokens_per_s_per_gpu: f64) -> Option<f64> {
    (tokens_per_s_per_gpu.is_finite() && tokens_per_s_per_gpu > 0.0)
        .then(|| per_gpu_hour / (tokens_per_s_per_gpu * 3600.0) * 1e6)
}

/// The cost of one point; `None` when the pricing file has no price for its hardware.
pub fn cost(row: &AggRow, pricing: &Pricing) -> Option<Cost> {
    let price = pricing.price_for(&row.hw)?;
    let p = price.per_gpu_hour;
    Some(Cost {
        per_m_input: per_million(p, row.input_tput_per_gpu),
        per_m_output: per_million(p, row.output_tput_per_gpu),
        per_m_total: per_million(p, row.tput_per_gpu),
        price,
    })
}

/// Energy figures of one point, from a v2 power-valid row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Efficiency {
    /// Mean power of one GPU over the benchmark window (W).
    pub avg_power_w: f64,
    /// Total (input + output) tokens per second per MW of GPU-board power.
    pub tok_s_per_mw: f64,
    /// Output tokens per second per MW of GPU-board power.
    pub output_tok_s_per_mw: f64,
    /// Joules per output token, as the row records it.
    pub joules_per_output_token: Option<f64>,
    /// Joules per input + output token, as the row records it.
    pub joules_per_total_token: Option<f64>,
}

/// Why a row has no energy figures, or its figures.
pub fn efficiency(row: &AggRow) -> Result<Efficiency, &'static str> {
    match (row.power_metric_schema_version, row.power_valid) {
        (None, _) if row.avg_power_w.is_some() => {
            return Err("power recorded without a schema version (not comparable)")
        }
        (None, _) => return Err("no telemetry"),
        (Some(2), Some(1)) => {}
        (Some(2), _) => return Err("telemetry invalid (see power_validation.json)"),
        (Some(_), _) => return Err("unknown power schema version"),
    }
    let w = row
        .avg_power_w
        .filter(|w| w.is_finite() && *w > 0.0)
        .ok_or("no power reading")?;
    let mw = w / 1e6;
    Ok(Efficiency {
        avg_power_w: w,
        tok_s_per_mw: row.tput_per_gpu / mw,
        output_tok_s_per_mw: row.output_tput_per_gpu / mw,
        joules_per_output_token: row.joules_per_output_token,
        joules_per_total_token: row.joules_per_total_token,
    })
}

/// The cost and energy of every row as a Markdown table (for `summary.md` and
/// `$GITHUB_STEP_SUMMARY`); empty when no row has a price or valid telemetry.
pub fn cost_markdown(rows: &[AggRow], pricing: Option<&Pricing>) -> String {
    let f = |v: Option<f64>, d: usize| v.map(|v| format!("{v:.d$}")).unwrap_or("—".into());
    let mut body = String::new();
    let mut any = false;
    for r in rows {
        let c = pricing.and_then(|p| cost(r, p));
        let e = efficiency(r).ok();
        any |= c.is_some() || e.is_some();
        body.push_str(&format!(
            "| {} | {} {} TP{} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.line(),
            r.hw,
            r.framework,
            r.tp,
            r.conc,
            c.as_ref()
                .map(|c| format!("{:.2} ({})", c.price.per_gpu_hour, c.price.priced_as))
                .unwrap_or("—".into()),
            f(c.as_ref().and_then(|c| c.per_m_input), 4),
            f(c.as_ref().and_then(|c| c.per_m_output), 4),
            f(c.as_ref().and_then(|c| c.per_m_total), 4),
            f(e.map(|e| e.avg_power_w), 1),
            f(e.map(|e| e.tok_s_per_mw), 0),
        ));
    }
    if !any {
        return String::new();
    }
    let currency = pricing.map(|p| p.currency.as_str()).unwrap_or("USD");
    format!(
        "## Cost and energy\n\n| Line | Series | Conc | {currency}/GPU-h | {currency}/M input | {currency}/M output | {currency}/M total | Power/GPU (W) | tok/s per MW |\n|---|---|--:|--:|--:|--:|--:|--:|--:|\n{body}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "currency: USD
hardware:
  mi355x:
    per_gpu_hour: 2.5
    source: example
    date: 2026-05
  mi355x-big:
    per_gpu_hour: 4.0
  sim:
    same_as: mi355x
";

    #[test]
    fn price_lookup_exact_prefix_and_alias() {
        let p = Pricing::parse("p.yaml", FILE).unwrap();
        assert_eq!(p.price_for("mi355x").unwrap().per_gpu_hour, 2.5);
        assert_eq!(p.price_for("MI355X_amds").unwrap().key, "mi355x");
        // The longest matching key wins.
        assert_eq!(p.price_for("mi355x-big-1").unwrap().per_gpu_hour, 4.0);
        let sim = p.price_for("sim").unwrap();
        assert_eq!(
            (sim.key.as_str(), sim.priced_as.as_str()),
            ("sim", "mi355x")
        );
        assert_eq!(sim.per_gpu_hour, 2.5);
        assert!(p.price_for("mi355").is_none());
        assert!(p.price_for("b200").is_none());
    }

    #[test]
    fn hand_computed_costs() {
        // $2.50/GPU-h at 1000 tok/s/GPU: 3.6e6 tokens per GPU-hour → $0.694444…/M.
        let v = per_million(2.5, 1000.0).unwrap();
        assert!((v - 0.694_444_444_444_444_4).abs() < 1e-15, "{v}");
        // $3.60/GPU-h at 100 tok/s/GPU: 360 000 tokens/h → $10/M exactly.
        assert_eq!(per_million(3.6, 100.0), Some(10.0));
        assert_eq!(per_million(3.6, 0.0), None);
    }

    #[test]
    fn a_points_costs_and_efficiency_by_hand() {
        let row: AggRow = serde_json::from_value(serde_json::json!({
            "hw": "mi355x-amds_3", "conc": 8, "image": "i", "model": "m",
            "infmax_model_prefix": "dsr1", "framework": "sglang", "precision": "fp4",
            "isl": 1024, "osl": 1024, "tp": 8, "ep": 1, "dp_attention": "false",
            "tput_per_gpu": 1000.0, "output_tput_per_gpu": 250.0, "input_tput_per_gpu": 750.0,
            "power_metric_schema_version": 2, "power_valid": 1, "avg_power_w": 800.0
        }))
        .unwrap();
        let p = Pricing::parse("p.yaml", FILE).unwrap();
        let c = cost(&row, &p).unwrap();
        assert_eq!(c.price.key, "mi355x");
        // $2.50/GPU-h: 3.6e6 total tokens/GPU-h → $0.6944/M; 0.9e6 output → $2.7778/M;
        // 2.7e6 input → $0.9259/M.
        let close = |a: Option<f64>, b: f64| assert!((a.unwrap() - b).abs() < 1e-12, "{a:?}");
        close(c.per_m_total, 2.5 / 3.6);
        close(c.per_m_output, 2.5 / 0.9);
        close(c.per_m_input, 2.5 / 2.7);
        // 1000 tok/s/GPU at 800 W/GPU: 1.25e6 tok/s per MW; output 312 500.
        let e = efficiency(&row).unwrap();
        assert_eq!((e.tok_s_per_mw, e.output_tok_s_per_mw), (1.25e6, 312_500.0));
        let mut old = row.clone();
        old.power_metric_schema_version = None;
        assert!(efficiency(&old)
            .unwrap_err()
            .contains("without a schema version"));
        old.power_metric_schema_version = Some(2);
        old.power_valid = Some(0);
        assert!(efficiency(&old).unwrap_err().contains("invalid"));
        let md = cost_markdown(std::slice::from_ref(&row), Some(&p));
        assert!(
            md.contains("| 8 | 2.50 (mi355x) | 0.9259 | 2.7778 | 0.6944 | 800.0 | 1250000 |"),
            "{md}"
        );
        let mut unpriced = row;
        unpriced.hw = "tpu".into();
        assert!(cost(&unpriced, &p).is_none());
        unpriced.power_valid = Some(0);
        assert_eq!(cost_markdown(&[unpriced], Some(&p)), "");
    }

    #[test]
    fn pricing_errors_name_the_field() {
        let e = Pricing::parse("p.yaml", "hardware:\n  a:\n    per_gpu_hour: -1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.yaml:2") && e.contains("hardware.a.per_gpu_hour"),
            "{e}"
        );
        let e = Pricing::parse("p.yaml", "hardware:\n  a:\n    same_as: b\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hardware.a.same_as") && e.contains("no hardware `b`"),
            "{e}"
        );
        let e = Pricing::parse(
            "p.yaml",
            "hardware:\n  a:\n    per_gpu_hour: 1\n    usd: 2\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("p.yaml:4"), "{e}");
    }

    #[test]
    fn shipped_pricing_parses() {
        let p = Pricing::load(&Pricing::default_file()).unwrap();
        for hw in ["mi355x", "b200", "sim"] {
            let r = p.price_for(hw).unwrap_or_else(|| panic!("{hw} priced"));
            assert!(r.per_gpu_hour > 0.0);
        }
        for (k, v) in &p.hardware {
            if v.same_as.is_none() {
                assert!(
                    v.source.is_some() && v.date.is_some(),
                    "{k} has source and date"
                );
            }
        }
    }
}
