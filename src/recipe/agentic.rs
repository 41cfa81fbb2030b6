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

/// `RESULT_FILENAME` of a single-node agentic point, as `benchmark-tmpl.yml` builds it.
pub fn result_filename(row: &AgenticRow, runner_name: &str) -> String {
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
        runner_name
    );
    if let Some(fp) = row.recipe_fingerprint.as_deref().filter(|f| !f.is_empty()) {
        s.push_str("_recipe-");
        s.push_str(&fp[..fp.len().min(16)]);
    }
    s
}

/// The environment an agentic template receives, in header order: the workflow's standard
/// and agentic variables (§5.1) plus `PORT`. `MAX_MODEL_LEN` is not among them: the
/// contract runs the engine at the model's native context. `hw` is what the results record
/// as `RUNNER_TYPE` (`sim` on the simulator).
pub fn inputs(row: &AgenticRow, port: u16, runner_name: &str, hw: &str) -> Vec<(String, String)> {
    let json = |c: &Option<crate::config::master::Component>| {
        c.as_ref()
            .map(|c| serde_json::to_string(c).expect("a component serialises"))
            .unwrap_or_default()
    };
    let v: Vec<(&str, String)> = vec![
        ("MODEL", row.model.clone()),
        ("MODEL_PREFIX", row.model_prefix.clone()),
        ("IMAGE", row.image.clone()),
        ("FRAMEWORK", row.framework.clone()),
        ("PRECISION", row.precision.clone()),
        ("PORT", port.to_string()),
        ("TP", row.tp.to_string()),
        ("PP_SIZE", row.pp.to_string()),
        ("DCP_SIZE", row.dcp_size.to_string()),
        ("PCP_SIZE", row.pcp_size.to_string()),
        ("EP_SIZE", row.ep.to_string()),
        ("DP_ATTENTION", row.dp_attn.to_string()),
        ("CONC", row.conc.to_string()),
        ("SPEC_DECODING", row.spec_decoding.clone()),
        ("DISAGG", "false".into()),
        ("EXP_NAME", row.exp_name.clone()),
        (
            "RECIPE_FINGERPRINT",
            row.recipe_fingerprint.clone().unwrap_or_default(),
        ),
        ("RUN_EVAL", row.run_eval.unwrap_or(false).to_string()),
        ("EVAL_ONLY", row.eval_only.unwrap_or(false).to_string()),
        ("RUNNER_TYPE", hw.to_string()),
        ("RUNNER_NAME", runner_name.to_string()),
        ("RESULT_FILENAME", result_filename(row, runner_name)),
        ("GPU_COUNT", (row.tp * row.pp * row.pcp_size).to_string()),
        ("SCENARIO_TYPE", "agentic-coding".into()),
        ("IS_AGENTIC", "1".into()),
        ("SCENARIO_SUBDIR", format!("{SUBDIR}/")),
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
        ("DURATION", row.duration.to_string()),
    ];
    v.into_iter().map(|(k, val)| (k.to_string(), val)).collect()
}
