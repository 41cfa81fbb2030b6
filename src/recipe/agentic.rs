//! Recipes for single-node agentic (AgentX) rows: the launch template's name and lookup as
//! InferenceX's runner launchers do it, the environment contract the template receives
//! (agentic.md §5.1), and the contract checker every agentic template starts with.
//!
//! InferenceX's launcher looks for
//! `benchmarks/single_node/agentic/${EXP_NAME%%_*}_${PRECISION}_<hw>_${FRAMEWORK}[_mtp].sh`,
//! falling back to the name without the framework; here the folder is `benchmarks/agentic/`
//! and `<hw>` is the runner label without its `cluster:` scope, up to its first `-`
//! (`cluster:b200-dgxc` → `b200`). Every agentic template is materialised with
//! `benchmarks/agentic/lib.sh` in front of it (the role `benchmark_lib.sh` plays for
//! InferenceX's scripts): it enforces the contract and derives the offload pools from
//! `TOTAL_CPU_DRAM_GB`, so a template cannot run with a broken environment.

use super::{check, RecipeError};
use crate::config::row::AgenticRow;
use std::path::{Path, PathBuf};

/// Folder of the agentic templates inside the templates folder.
pub const SUBDIR: &str = "agentic";

/// The contract checker and offload helpers, inlined before every agentic template.
pub const LIB: &str = "lib.sh";

/// The row's GPU model as template names use it: `cluster:b200-dgxc` → `b200`.
pub fn hw(runner: &str) -> &str {
    let label = runner.strip_prefix("cluster:").unwrap_or(runner);
    label.split('-').next().unwrap_or(label)
}

/// Candidate template names, in lookup order: with the framework, then without it.
pub fn template_names(row: &AgenticRow) -> [String; 2] {
    let mtp = if row.spec_decoding == "mtp" {
        "_mtp"
    } else {
        ""
    };
    let base = format!("{}_{}_{}", row.model_prefix, row.precision, hw(&row.runner));
    [
        format!("{base}_{}{mtp}.sh", row.framework),
        format!("{base}{mtp}.sh"),
    ]
}

/// Find the row's template in `<dir>/agentic/`; a clear error lists what is there for its
/// model.
pub fn find_template(dir: &Path, row: &AgenticRow) -> Result<PathBuf, RecipeError> {
    let sub = dir.join(SUBDIR);
    let names = template_names(row);
    if let Some(p) = names.iter().map(|n| sub.join(n)).find(|p| p.is_file()) {
        return Ok(p);
    }
    let prefix = format!("{}_", row.model_prefix);
    let mut cands: Vec<String> = std::fs::read_dir(&sub)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix) && n.ends_with(".sh"))
                .collect()
        })
        .unwrap_or_default();
    cands.sort();
    Err(RecipeError::NoTemplate {
        wanted: names.join(" or "),
        dir: sub.display().to_string(),
        prefix: row.model_prefix.clone(),
        candidates: if cands.is_empty() {
            "none".into()
        } else {
            cands.join(", ")
        },
    })
}

/// A template's text with the contract checker in front (its own `#!` line kept first).
pub fn read_template(dir: &Path, path: &Path) -> Result<String, RecipeError> {
    let lib = super::read_template(&dir.join(SUBDIR).join(LIB))?;
    let body = super::read_template(path)?;
    let strip = |t: &str| -> String {
        match t.strip_prefix("#!") {
            Some(rest) => rest.split_once('\n').map_or("", |(_, b)| b).to_string(),
            None => t.to_string(),
        }
    };
    Ok(format!(
        "#!/usr/bin/env bash\n# ---- benchmarks/{SUBDIR}/{LIB} ----\n{}# ---- {} ----\n{}",
        strip(&lib),
        path.display(),
        strip(&body)
    ))
}

/// Validate every agentic row value that reaches the launch script.
pub fn validate(row: &AgenticRow, runner_name: &str) -> Result<(), RecipeError> {
    check("model", &row.model, "/")?;
    check("image", &row.image, "/:@+#")?;
    check("precision", &row.precision, "")?;
    check("framework", &row.framework, "")?;
    check("runner", &row.runner, ":")?;
    check("exp-name", &row.exp_name, "")?;
    check("model-prefix", &row.model_prefix, "")?;
    check("spec-decoding", &row.spec_decoding, "")?;
    check("kv-offloading", &row.kv_offloading, "")?;
    check("runner name", runner_name, "")?;
    for (field, c) in [
        ("kv-offload-backend", &row.kv_offload_backend),
        ("router", &row.router),
    ] {
        if let Some(c) = c {
            check(field, &c.name, "")?;
            if let Some(v) = &c.version {
                check(field, v, "+")?;
            }
        }
    }
    let bad = |field, value: String, why: &str| RecipeError::BadValue {
        field,
        value,
        why: why.into(),
    };
    match (row.kv_offloading.as_str(), &row.kv_offload_backend) {
        ("none", None) => {}
        ("none", Some(b)) => {
            return Err(bad(
                "kv-offload-backend",
                b.name.clone(),
                "must be absent when kv-offloading is none",
            ))
        }
        ("dram", None) => {
            return Err(bad(
                "kv-offload-backend",
                String::new(),
                "is required when kv-offloading is dram",
            ))
        }
        ("dram", Some(_)) if row.total_cpu_dram_gb == 0 => {
            return Err(bad(
                "total-cpu-dram-gb",
                "0".into(),
                "must be a positive integer when kv-offloading is dram",
            ))
        }
        ("dram", Some(_)) => {}
        (other, _) => {
            return Err(bad(
                "kv-offloading",
                other.into(),
                "must be `none` or `dram`",
            ))
        }
    }
    Ok(())
}

/// InferenceX's default agentic duration (`DEFAULT_AGENTIC_DURATION_SECONDS`).
pub const DEFAULT_DURATION_S: u64 = 3600;
/// Below this the reference passes `--unsafe-override` and the run is not submission-valid.
pub const MIN_VALID_DURATION_S: u64 = 900;
/// The live and post-run error gate InferenceX's workflow sets
/// (`AIPERF_FAILED_REQUEST_THRESHOLD`).
pub const FAILED_REQUEST_THRESHOLD: &str = "0.10";

/// One single-node agentic point (one workflow job) as InferenceX's workflow sees it: the matrix row, the
/// runner that runs it and the profiling window. It is the one place the point's
/// environment (agentic.md §5.1) and `RESULT_FILENAME` (§4.4) are built: the launch
/// template receives [`AgenticJob::inputs`], the aggregation reads the same
/// [`AgenticJob::env`], and every file of the point is named by
/// [`AgenticJob::result_filename`].
#[derive(Debug, Clone)]
pub struct AgenticJob {
    /// The matrix row (`scenario-type: agentic-coding`, single-node).
    pub row: AgenticRow,
    /// The GitHub runner's name (`runner.name`): ends `RESULT_FILENAME`.
    pub runner_name: String,
    /// `RUNNER_TYPE`, what the aggregate records as `hw`: the row's runner label, or `sim`
    /// on the simulated engine.
    pub hw: String,
    /// The profiling window in seconds (`DURATION`): the row's, or a `--duration` override.
    pub duration: u64,
}

impl AgenticJob {
    /// The point of `row` run by `runner_name`, recorded as `hw`, over `duration` seconds.
    pub fn new(row: &AgenticRow, runner_name: &str, hw: &str, duration: u64) -> Self {
        AgenticJob {
            row: row.clone(),
            runner_name: runner_name.to_string(),
            hw: hw.to_string(),
            duration,
        }
    }

    /// GPUs the point uses (`GPU_COUNT = TP·PP·PCP`).
    pub fn gpu_count(&self) -> u32 {
        self.row.tp * self.row.pp * self.row.pcp_size
    }

    /// Whether the window is long enough to be submission-valid (≥ 900 s).
    pub fn submission_valid_duration(&self) -> bool {
        self.duration >= MIN_VALID_DURATION_S
    }

    /// `RESULT_FILENAME` as `benchmark-tmpl.yml` builds it for a single-node job:
    /// `<exp>_<prec>_<fw>_tp…-pp…-dcp…-pcp…-ep…-dpa…_disagg-false_spec-…_conc…_<runner>`
    /// plus `_recipe-<first 16 hex of the fingerprint>` when the row has one.
    pub fn result_filename(&self) -> String {
        let row = &self.row;
        let mut s = format!(
            "{}_{}_{}_tp{}-pp{}-dcp{}-pcp{}-ep{}-dpa{}_disagg-false_spec-{}_conc{}_{}",
            row.exp_name,
            row.precision,
            row.framework,
            row.tp,
            row.pp,
            row.dcp_size,
            row.pcp_size,
            row.ep,
            row.dp_attn,
            row.spec_decoding,
            row.conc,
            self.runner_name
        );
        if let Some(fp) = row.recipe_fingerprint.as_deref().filter(|f| !f.is_empty()) {
            s.push_str("_recipe-");
            s.push_str(&fp[..fp.len().min(16)]);
        }
        s
    }

    /// The workflow's environment for the point, in `benchmark-tmpl.yml`'s order: the
    /// standard job variables (with `ISL`/`OSL`/`MAX_MODEL_LEN` = `0`, as `run-sweep.yml`
    /// passes them for agentic rows, and `RUNNER_NAME`/`RUNNER_TYPE`/`RESULT_FILENAME`/
    /// `GPU_COUNT` of the launch step), then the agentic ones. `IS_MULTINODE=false` is what
    /// the single-node workflow leaves unset and the aggregation reads as false.
    /// `RESULT_DIR` is not among them: infmax's own client writes the artifacts.
    pub fn env(&self) -> Vec<(String, String)> {
        let row = &self.row;
        let json = |c: &Option<crate::config::master::Component>| {
            c.as_ref()
                .map(|c| serde_json::to_string(c).expect("a component serialises"))
                .unwrap_or_default()
        };
        let v: Vec<(&str, String)> = vec![
            ("EXP_NAME", row.exp_name.clone()),
            (
                "RECIPE_FINGERPRINT",
                row.recipe_fingerprint.clone().unwrap_or_default(),
            ),
            ("MODEL", row.model.clone()),
            ("MODEL_PREFIX", row.model_prefix.clone()),
            ("ISL", "0".into()),
            ("OSL", "0".into()),
            ("MAX_MODEL_LEN", "0".into()),
            ("IMAGE", row.image.clone()),
            ("FRAMEWORK", row.framework.clone()),
            ("PRECISION", row.precision.clone()),
            ("TP", row.tp.to_string()),
            ("PP_SIZE", row.pp.to_string()),
            ("DCP_SIZE", row.dcp_size.to_string()),
            ("PCP_SIZE", row.pcp_size.to_string()),
            ("EP_SIZE", row.ep.to_string()),
            ("DP_ATTENTION", row.dp_attn.to_string()),
            ("CONC", row.conc.to_string()),
            ("SPEC_DECODING", row.spec_decoding.clone()),
            ("DISAGG", "false".into()),
            ("IS_MULTINODE", "false".into()),
            ("RUN_EVAL", row.run_eval.unwrap_or(false).to_string()),
            ("EVAL_ONLY", row.eval_only.unwrap_or(false).to_string()),
            ("SCENARIO_TYPE", "agentic-coding".into()),
            ("SCENARIO_SUBDIR", format!("{SUBDIR}/")),
            ("IS_AGENTIC", "1".into()),
            ("KV_OFFLOADING", row.kv_offloading.clone()),
            (
                "KV_OFFLOAD_BACKEND",
                row.kv_offload_backend
                    .as_ref()
                    .map(|b| b.name.clone())
                    .unwrap_or_default(),
            ),
            ("KV_OFFLOAD_BACKEND_METADATA", json(&row.kv_offload_backend)),
            ("ROUTER_METADATA", json(&row.router)),
            ("KV_P2P_TRANSFER", String::new()),
            ("TOTAL_CPU_DRAM_GB", row.total_cpu_dram_gb.to_string()),
            ("DURATION", self.duration.to_string()),
            ("REQUIRE_POWER", "0".into()),
            ("AIPERF_EXPERIMENTAL_FAST", "0".into()),
            (
                "AIPERF_FAILED_REQUEST_THRESHOLD",
                FAILED_REQUEST_THRESHOLD.into(),
            ),
            ("RUNNER_NAME", self.runner_name.clone()),
            ("RUNNER_TYPE", self.hw.clone()),
            ("RESULT_FILENAME", self.result_filename()),
            ("GPU_COUNT", self.gpu_count().to_string()),
        ];
        v.into_iter().map(|(k, val)| (k.to_string(), val)).collect()
    }

    /// What the launch template receives: [`AgenticJob::env`] plus `PORT`, the engine's
    /// port (InferenceX's scripts default it themselves; infmax picks a free one).
    pub fn inputs(&self, port: u16) -> Vec<(String, String)> {
        let mut v = self.env();
        v.push(("PORT".into(), port.to_string()));
        v
    }

    /// The series a point is plotted in: hardware, framework, TP and KV offload.
    pub fn series_label(&self) -> String {
        let row = &self.row;
        let kv = match &row.kv_offload_backend {
            Some(b) => format!("kv{}-{}", row.kv_offloading, b.name),
            None => format!("kv{}", row.kv_offloading),
        };
        format!(
            "{} {} TP{} {kv}",
            self.hw.to_uppercase(),
            row.framework,
            row.tp
        )
    }
}
