//! Reference points as data (`baselines/`): what a job is compared with, and the accuracy
//! thresholds it is held to.
//!
//! Three kinds of point files, told apart by their keys (see `baselines/README.md`):
//! * `points:` — reference curves such as the B200 points of the MI355X bounty
//!   (`b200-nv1126.yaml`), keyed by model, `"isl/osl"` and conc; `role: amd` marks AMD's
//!   own existing points in the same shape;
//! * `agg_rows:` — AMD's existing InferenceMAX points straight from InferenceMAX's own
//!   aggregated result files (`agg_<exp>.json`, a JSON list of `process_result.py` rows);
//!   with `node_gpus: N` their throughputs are compared per GPU of an N-GPU node
//!   ([`node_basis`]), which is how the MI355X bounty's harness counts (total / 8);
//! * `targets:` — per-conc targets of a later bounty round (`bounty-2026-targets.yaml`).
//!
//! `accuracy.yaml` holds accuracy baselines and pass rules per task and model.
//!
//! A lookup that finds nothing says so and why; nothing here interpolates or extrapolates a
//! missing point for a ratio (only the verdict's curve comparison interpolates, as the
//! bounty rule prescribes).

use super::agg::{model_key, AggRow};
use super::ReportError;
use crate::config::{parse_json, parse_yaml, ConfigError, UniqueMap};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// A model × ISL/OSL line: the unit plots and verdicts are drawn for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LineKey {
    /// Model key as in `baselines/`: `<family>-<precision>[-<spec>]`, e.g. `dsr1-fp4`.
    pub model: String,
    /// Input sequence length.
    pub isl: u32,
    /// Output sequence length.
    pub osl: u32,
}

impl LineKey {
    /// The line of (model family, precision, speculative decoding, isl, osl).
    pub fn new(family: &str, precision: &str, spec_decoding: &str, isl: u32, osl: u32) -> Self {
        LineKey {
            model: model_key(family, precision, spec_decoding),
            isl,
            osl,
        }
    }
}

impl fmt::Display for LineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ISL {} / OSL {}", self.model, self.isl, self.osl)
    }
}

/// What a set of points is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The curve a submission must beat (e.g. B200 `nv1126`); ratios are taken against it.
    Reference,
    /// AMD's own existing points: no submitted point may fall below one at the same conc.
    Amd,
    /// Per-conc targets (median E2E ≤, interactivity ≥, throughput/GPU ≥).
    Target,
}

/// One reference point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefPoint {
    /// Model key, e.g. `dsr1-fp4`.
    pub model: String,
    /// Input sequence length.
    pub isl: u32,
    /// Output sequence length.
    pub osl: u32,
    /// Client concurrency.
    pub conc: u32,
    /// Median end-to-end latency (ms).
    pub median_e2e_ms: f64,
    /// Median interactivity (tokens/s/user = 1000 / median TPOT ms).
    pub median_intvty: f64,
    /// Total token throughput per GPU (tokens/s/GPU).
    pub tput_per_gpu: f64,
    /// Where within the source the point came from (e.g. `sglang tp8` for agg rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// GPUs the point's configuration used (an agg row's tp × pp), when the source says:
    /// with the set's `node_gpus` it gives the figure on the bounty's basis
    /// ([`node_basis`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
}

impl RefPoint {
    /// Throughput per GPU on the comparison basis of a set with `node_gpus` (see
    /// [`node_basis`]); as published when either is unknown.
    pub fn basis_tput(&self, node_gpus: Option<u32>) -> f64 {
        match self.gpus {
            Some(g) => node_basis(self.tput_per_gpu, g, node_gpus),
            None => self.tput_per_gpu,
        }
    }
}

/// Throughput per GPU of a whole node: a configuration on `gpus` GPUs with `tput_per_gpu`
/// per GPU it used, spread over a node of `node_gpus` (`tput_per_gpu × gpus / max(gpus,
/// node_gpus)`). The bounty's harness divides total throughput by 8 whatever the TP, so a
/// TP4 point of 127 tok/s/GPU scores 63.5 there; comparing it as published with a TP8
/// submission would count the four idle GPUs for AMD and against the submission. With
/// `node_gpus` `None` the figure is left as published.
pub fn node_basis(tput_per_gpu: f64, gpus: u32, node_gpus: Option<u32>) -> f64 {
    match node_gpus {
        Some(n) if gpus > 0 => tput_per_gpu * f64::from(gpus) / f64::from(gpus.max(n)),
        _ => tput_per_gpu,
    }
}

/// One file's worth of points.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineSet {
    /// Source/date label, e.g. `b200-nv1126`.
    pub label: String,
    /// Hardware the points were measured on, when the file says.
    pub hardware: Option<String>,
    /// What the points are for.
    pub role: Role,
    /// The file they were read from.
    pub file: String,
    /// Free-text provenance from the file (`source:`).
    pub source: Option<String>,
    /// Compare throughputs per GPU of a node of this many GPUs (`node_gpus:`; the MI355X
    /// bounty's harness: 8), see [`node_basis`]. `None`: as published.
    pub node_gpus: Option<u32>,
    /// The points, in file order (for `agg_rows` sets: AMD's point per conc, see
    /// [`BaselineSet::rows`] for every row read).
    pub points: Vec<RefPoint>,
    /// Every row an `agg_rows` set read (all configurations at every conc), in file order;
    /// empty for other sets. The plots and the verdict's reasons show the alternatives.
    pub rows: Vec<RefPoint>,
}

impl BaselineSet {
    /// The point at exactly (line, conc), if the set has one.
    pub fn point(&self, line: &LineKey, conc: u32) -> Option<&RefPoint> {
        self.points.iter().find(|p| {
            p.model == line.model && p.isl == line.isl && p.osl == line.osl && p.conc == conc
        })
    }

    /// The point at (line, conc), or a sentence saying what the set has instead.
    pub fn lookup(&self, line: &LineKey, conc: u32) -> Result<&RefPoint, String> {
        if let Some(p) = self.point(line, conc) {
            return Ok(p);
        }
        let concs: Vec<String> = self
            .curve(line)
            .iter()
            .map(|p| p.conc.to_string())
            .collect();
        if concs.is_empty() {
            Err(format!("{} has no {line} points", self.label))
        } else {
            Err(format!(
                "{} has no {line} point at conc {conc} (it has conc {})",
                self.label,
                concs.join(", ")
            ))
        }
    }

    /// The line's points sorted by interactivity (x of the bounty plot), ties by conc.
    pub fn curve(&self, line: &LineKey) -> Vec<&RefPoint> {
        let mut v: Vec<&RefPoint> = self
            .points
            .iter()
            .filter(|p| p.model == line.model && p.isl == line.isl && p.osl == line.osl)
            .collect();
        v.sort_by(|a, b| {
            a.median_intvty
                .total_cmp(&b.median_intvty)
                .then(a.conc.cmp(&b.conc))
        });
        v
    }
}

/// The matching reference point and our ratios to it, as stored in the agg row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BaselineRecord {
    /// A reference point exists at this job's (model, isl, osl, conc).
    Found {
        /// Label of the reference set, e.g. `b200-nv1126`.
        label: String,
        /// Hardware of the reference set.
        hardware: Option<String>,
        /// The point itself.
        point: RefPoint,
        /// ours / baseline throughput per GPU (> 1 is better).
        tput_per_gpu_ratio: f64,
        /// ours / baseline median end-to-end latency (< 1 is better); `null` if we have no
        /// median E2E.
        median_e2e_ratio: Option<f64>,
        /// ours / baseline median interactivity (> 1 is better); `null` if we have none.
        interactivity_ratio: Option<f64>,
    },
    /// No reference point: the sentence says which set was asked and what it has.
    Missing {
        /// Label of the set that was asked, when there was one.
        label: Option<String>,
        /// Why there is no point.
        reason: String,
    },
}

impl Default for BaselineRecord {
    fn default() -> Self {
        BaselineRecord::Missing {
            label: None,
            reason: "no baselines were loaded".into(),
        }
    }
}

impl BaselineRecord {
    /// Throughput ratio when a point was found.
    pub fn tput_ratio(&self) -> Option<f64> {
        match self {
            BaselineRecord::Found {
                tput_per_gpu_ratio, ..
            } => Some(*tput_per_gpu_ratio),
            BaselineRecord::Missing { .. } => None,
        }
    }
}

/// Every baseline file of a `baselines/` directory.
#[derive(Debug, Clone, Default)]
pub struct Baselines {
    /// Point sets, in file-name order.
    pub sets: Vec<BaselineSet>,
    /// Accuracy baselines, when `accuracy.yaml` is present.
    pub accuracy: Option<AccuracyBaselines>,
    /// Label of the reference set ratios are taken against (default: the only one).
    primary: Option<String>,
}

impl Baselines {
    /// The repository's `baselines/` directory (next to `Cargo.toml`).
    pub fn default_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("baselines")
    }

    /// Load every `*.yaml`/`*.yml` in `dir` (`accuracy.yaml` as accuracy baselines, the rest
    /// as point sets). Labels must be unique.
    pub fn load_dir(dir: &Path) -> Result<Self, ReportError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| ReportError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        let mut out = Baselines::default();
        for f in files {
            out.add_file(&f)?;
        }
        Ok(out)
    }

    /// Add one file (a point set, or accuracy baselines when named `accuracy.y[a]ml`).
    pub fn add_file(&mut self, path: &Path) -> Result<(), ReportError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if stem == "accuracy" {
            self.accuracy = Some(AccuracyBaselines::parse(&name, &text)?);
            return Ok(());
        }
        let set = parse_set(path, &name, &text)?;
        if let Some(other) = self.sets.iter().find(|s| s.label == set.label) {
            return Err(ConfigError::invalid(
                &name,
                &set.label,
                "label",
                format!("label `{}` is already used by {}", set.label, other.file),
            )
            .into());
        }
        self.sets.push(set);
        Ok(())
    }

    /// Compare against the set labelled `label` (must exist and have role `reference`).
    pub fn with_primary(mut self, label: &str) -> Result<Self, ReportError> {
        match self.sets.iter().find(|s| s.label == label) {
            Some(s) if s.role == Role::Reference => {
                self.primary = Some(label.to_string());
                Ok(self)
            }
            Some(s) => Err(ReportError::Mismatch(format!(
                "baseline `{label}` ({}) is not a reference set",
                s.file
            ))),
            None => Err(ReportError::Mismatch(format!(
                "no baseline labelled `{label}`; known: {}",
                self.sets
                    .iter()
                    .map(|s| s.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The reference set: the chosen primary, else the first set with role `reference`.
    pub fn reference(&self) -> Option<&BaselineSet> {
        match &self.primary {
            Some(l) => self.sets.iter().find(|s| &s.label == l),
            None => self.sets.iter().find(|s| s.role == Role::Reference),
        }
    }

    /// Sets of one role.
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &BaselineSet> {
        self.sets.iter().filter(move |s| s.role == role)
    }

    /// AMD's existing point at (line, conc) across all `amd` sets: of every configuration
    /// AMD ran at that conc, the one with the highest throughput per GPU on the set's basis
    /// (per GPU of the `node_gpus` node when the set says, see [`node_basis`]) — the bounty
    /// says no point may be lower than *any* of AMD's points, so the highest binds. `None`
    /// when unknown.
    pub fn amd_point(&self, line: &LineKey, conc: u32) -> Option<(&BaselineSet, &RefPoint)> {
        self.with_role(Role::Amd)
            .filter_map(|s| s.point(line, conc).map(|p| (s, p)))
            .max_by(|a, b| {
                a.1.basis_tput(a.0.node_gpus)
                    .total_cmp(&b.1.basis_tput(b.0.node_gpus))
            })
    }

    /// The baseline record for an agg row: the reference point at its (model, isl, osl,
    /// conc) with our ratios, or why there is none.
    pub fn record_for(&self, row: &AggRow) -> BaselineRecord {
        let Some(set) = self.reference() else {
            return BaselineRecord::Missing {
                label: None,
                reason: "no reference baseline set is loaded".into(),
            };
        };
        match set.lookup(&row.line(), row.conc) {
            Ok(p) => BaselineRecord::Found {
                label: set.label.clone(),
                hardware: set.hardware.clone(),
                point: p.clone(),
                tput_per_gpu_ratio: row.tput_per_gpu / p.tput_per_gpu,
                median_e2e_ratio: row.median_e2el_ms().map(|v| v / p.median_e2e_ms),
                interactivity_ratio: row.median_intvty().map(|v| v / p.median_intvty),
            },
            Err(reason) => BaselineRecord::Missing {
                label: Some(set.label.clone()),
                reason,
            },
        }
    }
}

/// A point as written in YAML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointYaml {
    median_e2e_ms: f64,
    median_intvty: f64,
    tput_per_gpu: f64,
}

/// One model's points in a `points:` file: its HF id and `"isl/osl"` → conc → point.
#[derive(Debug)]
struct ModelPointsYaml {
    /// HF model id (informational).
    #[allow(dead_code)]
    model: Option<String>,
    scenarios: IndexMap<String, UniqueMap<PointYaml>>,
}

// Hand-written rather than `#[serde(flatten)]`: flattening buffers the values, and the
// buffered integer conc keys would no longer deserialise as strings.
impl<'de> Deserialize<'de> for ModelPointsYaml {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ModelPointsYaml;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`model` and \"isl/osl\" keys")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = ModelPointsYaml {
                    model: None,
                    scenarios: IndexMap::new(),
                };
                while let Some(k) = a.next_key::<String>()? {
                    if k == "model" {
                        out.model = Some(a.next_value()?);
                    } else if out.scenarios.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("duplicate key `{k}`")));
                    } else {
                        let v = a.next_value()?;
                        out.scenarios.insert(k, v);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// A reference to InferenceMAX aggregated rows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggRowsRef {
    /// JSON file (relative to the YAML): a list of agg rows, or one row.
    file: String,
    /// Model key for rows lacking `infmax_model_prefix` (older InferenceMAX rows).
    #[serde(default)]
    model: Option<String>,
    /// ISL for rows lacking `isl`.
    #[serde(default)]
    isl: Option<u32>,
    /// OSL for rows lacking `osl`.
    #[serde(default)]
    osl: Option<u32>,
    /// Keep rows whose `hw` is one of these (default: the file's `hardware`).
    #[serde(default)]
    hw: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetYaml {
    label: String,
    #[serde(default)]
    hardware: Option<String>,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    node_gpus: Option<u32>,
    #[serde(default)]
    isl: Option<u32>,
    #[serde(default)]
    osl: Option<u32>,
    #[serde(default)]
    points: Option<UniqueMap<ModelPointsYaml>>,
    #[serde(default)]
    targets: Option<UniqueMap<UniqueMap<PointYaml>>>,
    #[serde(default)]
    agg_rows: Option<Vec<AggRowsRef>>,
}

fn parse_conc(file: &str, label: &str, path: &str, key: &str) -> Result<u32, ConfigError> {
    key.parse::<u32>().ok().filter(|c| *c > 0).ok_or_else(|| {
        ConfigError::invalid(
            file,
            label,
            path,
            format!("conc `{key}` is not a positive integer"),
        )
    })
}

fn parse_seq(file: &str, label: &str, path: &str, key: &str) -> Result<(u32, u32), ConfigError> {
    key.split_once('/')
        .and_then(|(i, o)| Some((i.trim().parse().ok()?, o.trim().parse().ok()?)))
        .ok_or_else(|| {
            ConfigError::invalid(
                file,
                label,
                path,
                format!("`{key}` is not an \"isl/osl\" key such as \"1024/1024\""),
            )
        })
}

fn to_point(model: &str, isl: u32, osl: u32, conc: u32, p: &PointYaml) -> RefPoint {
    RefPoint {
        model: model.to_string(),
        isl,
        osl,
        conc,
        median_e2e_ms: p.median_e2e_ms,
        median_intvty: p.median_intvty,
        tput_per_gpu: p.tput_per_gpu,
        detail: None,
        gpus: None,
    }
}

fn parse_set(path: &Path, file: &str, text: &str) -> Result<BaselineSet, ReportError> {
    let y: SetYaml = parse_yaml(file, text)?;
    let label = y.label.clone();
    let bad = |p: &str, m: String| ConfigError::invalid(file, &label, p, m);
    let kinds = [
        y.points.is_some(),
        y.targets.is_some(),
        y.agg_rows.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if kinds != 1 {
        return Err(bad(
            ".",
            "a baseline file has exactly one of `points`, `targets` or `agg_rows`".into(),
        )
        .into());
    }
    let mut points = Vec::new();
    let mut rows = Vec::new();
    let role;
    if let Some(models) = &y.points {
        role = y.role.unwrap_or(Role::Reference);
        if role == Role::Target {
            return Err(bad("role", "`points` files are `reference` or `amd`".into()).into());
        }
        for (model, mp) in &models.0 {
            for (seq, concs) in &mp.scenarios {
                let at = format!("points.{model}.{seq}");
                let (isl, osl) = parse_seq(file, &label, &at, seq)?;
                for (c, p) in &concs.0 {
                    let conc = parse_conc(file, &label, &format!("{at}.{c}"), c)?;
                    points.push(to_point(model, isl, osl, conc, p));
                }
            }
        }
    } else if let Some(models) = &y.targets {
        role = y.role.unwrap_or(Role::Target);
        if role != Role::Target {
            return Err(bad("role", "`targets` files have role `target`".into()).into());
        }
        let (Some(isl), Some(osl)) = (y.isl, y.osl) else {
            return Err(bad(".", "`targets` files need top-level `isl` and `osl`".into()).into());
        };
        for (model, concs) in &models.0 {
            for (c, p) in &concs.0 {
                let conc = parse_conc(file, &label, &format!("targets.{model}.{c}"), c)?;
                points.push(to_point(model, isl, osl, conc, p));
            }
        }
    } else {
        role = y.role.unwrap_or(Role::Amd);
        if role == Role::Target {
            return Err(bad("role", "`agg_rows` files are `reference` or `amd`".into()).into());
        }
        let hardware = y.hardware.clone();
        for (i, r) in y.agg_rows.iter().flatten().enumerate() {
            let hw: Vec<String> = match (&r.hw, &hardware) {
                (Some(h), _) => h.clone(),
                (None, Some(h)) => vec![h.clone()],
                (None, None) => {
                    return Err(bad(
                        &format!("agg_rows[{i}]"),
                        "set `hw` or the file's `hardware` to pick rows".into(),
                    )
                    .into())
                }
            };
            let base = path.parent().unwrap_or(Path::new("."));
            points.extend(load_agg_points(
                &base.join(&r.file),
                r,
                &hw,
                file,
                &label,
                i,
            )?);
        }
        rows = points.clone();
        points = best_per_conc(points, y.node_gpus);
    }
    Ok(BaselineSet {
        label: y.label,
        hardware: y.hardware,
        role,
        file: file.to_string(),
        source: y.source,
        node_gpus: y.node_gpus,
        points,
        rows,
    })
}

/// Read InferenceMAX agg rows (a JSON list, or one object) and turn the rows on `hw` into
/// points: `median_e2el` (s) × 1000, `median_intvty`, `tput_per_gpu`.
fn load_agg_points(
    json_path: &Path,
    r: &AggRowsRef,
    hw: &[String],
    yaml: &str,
    label: &str,
    idx: usize,
) -> Result<Vec<RefPoint>, ReportError> {
    let jfile = json_path.display().to_string();
    let text = std::fs::read_to_string(json_path).map_err(|e| ReportError::io(json_path, e))?;
    let v: serde_json::Value = parse_json(&jfile, &text)?;
    let rows = match v {
        serde_json::Value::Array(a) => a,
        o @ serde_json::Value::Object(_) => vec![o],
        _ => {
            return Err(ConfigError::invalid(
                &jfile,
                label,
                ".",
                "expected a list of agg rows or one agg row",
            )
            .into())
        }
    };
    let mut out = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let at = format!("[{n}]");
        let bad = |m: String| -> ReportError { ConfigError::invalid(&jfile, label, &at, m).into() };
        let s = |k: &str| row.get(k).and_then(|v| v.as_str());
        let f = |k: &str| row.get(k).and_then(|v| v.as_f64());
        let u = |k: &str| {
            row.get(k).and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        let Some(row_hw) = s("hw") else {
            return Err(bad("row has no `hw`".into()));
        };
        if !hw.iter().any(|h| h == row_hw) {
            continue;
        }
        let model = match (&r.model, s("infmax_model_prefix"), s("precision")) {
            (Some(m), _, _) => m.clone(),
            (None, Some(p), Some(prec)) => model_key(p, prec, s("spec_decoding").unwrap_or("none")),
            _ => {
                return Err(bad(format!(
                    "row has no `infmax_model_prefix`/`precision`; set `model` in {yaml} agg_rows[{idx}]"
                )))
            }
        };
        let isl = u("isl").or(r.isl.map(u64::from));
        let osl = u("osl").or(r.osl.map(u64::from));
        let (Some(isl), Some(osl)) = (isl, osl) else {
            return Err(bad(format!(
                "row has no `isl`/`osl`; set them in {yaml} agg_rows[{idx}]"
            )));
        };
        let conc = u("conc").ok_or_else(|| bad("row has no `conc`".into()))?;
        let e2e_ms = f("median_e2el_ms").or_else(|| f("median_e2el").map(|s| s * 1000.0));
        let (Some(e2e), Some(x), Some(y)) = (e2e_ms, f("median_intvty"), f("tput_per_gpu")) else {
            return Err(bad(
                "row lacks one of `median_e2el`, `median_intvty`, `tput_per_gpu`".into(),
            ));
        };
        let detail = format!(
            "{} {} tp{}",
            row_hw,
            s("framework").unwrap_or("?"),
            u("tp").map(|t| t.to_string()).unwrap_or_else(|| "?".into())
        );
        out.push(RefPoint {
            model,
            isl: isl as u32,
            osl: osl as u32,
            conc: conc as u32,
            median_e2e_ms: e2e,
            median_intvty: x,
            tput_per_gpu: y,
            detail: Some(detail),
            gpus: u("tp").map(|t| (t * u("pp").unwrap_or(1)) as u32),
        });
    }
    Ok(out)
}

/// Several configurations may have run the same conc: keep the best throughput per GPU on
/// the set's basis ([`node_basis`]); of equal ones the first.
fn best_per_conc(points: Vec<RefPoint>, node_gpus: Option<u32>) -> Vec<RefPoint> {
    let mut best: IndexMap<(String, u32, u32, u32), RefPoint> = IndexMap::new();
    for p in points {
        let k = (p.model.clone(), p.isl, p.osl, p.conc);
        match best.get(&k) {
            Some(b) if b.basis_tput(node_gpus) >= p.basis_tput(node_gpus) => {}
            _ => {
                best.insert(k, p);
            }
        }
    }
    best.into_values().collect()
}

/// Accuracy baselines and pass rules per task (`baselines/accuracy.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyBaselines {
    /// Task name → rule and entries, in file order.
    pub tasks: IndexMap<String, AccuracyTask>,
}

/// One task of `accuracy.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AccuracyTask {
    /// The pass rule in words: `every metric <= baseline * 1.03`, `exact_match >= threshold`.
    pub rule: String,
    /// Per model (`dsr1-fp4: {metric: baseline}` or `{thresholds: {...}}`) or per variant
    /// (`bounty: {dsr1-fp4: 0.93, shots: 3}`, optionally `metrics: [...]` held to it).
    #[serde(flatten)]
    pub entries: IndexMap<String, serde_yaml::Value>,
}

/// Direction of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// The metric must be at most the threshold (perplexities, bits per byte).
    AtMost,
    /// The metric must be at least the threshold (exact match).
    AtLeast,
}

/// Thresholds one job is held to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Thresholds {
    /// Metric → threshold.
    pub metrics: IndexMap<String, f64>,
    /// Direction for every metric.
    pub bound: Bound,
    /// Few-shot count when the task says.
    pub shots: Option<u32>,
    /// The rule in words.
    pub rule: String,
}

impl AccuracyBaselines {
    /// Parse `accuracy.yaml`.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let tasks: UniqueMap<AccuracyTask> = parse_yaml(file, text)?;
        let out = AccuracyBaselines { tasks: tasks.0 };
        for (name, t) in &out.tasks {
            if !(t.rule.contains("<=") || t.rule.contains(">=")) {
                return Err(ConfigError::invalid(
                    file,
                    name,
                    "rule",
                    "a rule compares with `<=` or `>=`",
                ));
            }
        }
        Ok(out)
    }

    /// Thresholds for `task` and a model key (`dsr1-fp4`). Rules with `<=` take per-model
    /// baselines scaled by the rule's `* factor` (or published `thresholds` as they are);
    /// rules with `>=` take the `variant` (default: the task's first) map of model key →
    /// threshold, falling back to the family (`dsr1`) and then `default`. `None` when the
    /// file has nothing for this model.
    pub fn thresholds(&self, task: &str, variant: Option<&str>, model: &str) -> Option<Thresholds> {
        let t = self.tasks.get(task)?;
        if t.rule.contains("<=") {
            let factor = t
                .rule
                .rsplit_once('*')
                .and_then(|(_, f)| f.trim().parse::<f64>().ok())
                .unwrap_or(1.0);
            let entry = t.entries.get(model)?;
            let (map, scale) = match entry.get("thresholds") {
                Some(th) => (th, 1.0),
                None => (entry, factor),
            };
            let metrics = number_map(map)?
                .into_iter()
                .map(|(k, v)| (k, v * scale))
                .collect();
            Some(Thresholds {
                metrics,
                bound: Bound::AtMost,
                shots: None,
                rule: t.rule.clone(),
            })
        } else {
            let metric = t.rule.split(">=").next()?.trim().to_string();
            let v = match variant {
                Some(v) => t.entries.get(v)?,
                None => t.entries.values().next()?,
            };
            let family = model.split('-').next().unwrap_or(model);
            let th = [model, family, "default"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|x| x.as_f64()))?;
            let shots = v.get("shots").and_then(|s| s.as_u64()).map(|s| s as u32);
            // A variant may hold several metrics to the threshold (InferenceX checks every
            // `exact_match,*` filter); by default the rule's one metric.
            let names: Vec<String> = match v.get("metrics").and_then(|m| m.as_sequence()) {
                Some(list) => list
                    .iter()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .collect(),
                None => vec![metric],
            };
            let rule = if names.len() > 1 {
                format!("{} >= threshold", names.join(" and "))
            } else {
                t.rule.clone()
            };
            Some(Thresholds {
                metrics: names.into_iter().map(|m| (m, th)).collect(),
                bound: Bound::AtLeast,
                shots,
                rule,
            })
        }
    }
}

fn number_map(v: &serde_yaml::Value) -> Option<IndexMap<String, f64>> {
    let m = v.as_mapping()?;
    m.iter()
        .map(|(k, v)| Some((k.as_str()?.to_string(), v.as_f64()?)))
        .collect()
}
