//! Recipes: the concrete, shell-safe launch script for one job row.
//!
//! A template in `benchmarks/` only starts the engine; the recipe is that template preceded
//! by a header exporting the row's inputs. Every value is validated against a strict
//! character set and single-quoted, so a config value can never become shell code; secrets
//! (`HF_TOKEN`, API keys) are never written, they reach the engine through the environment.
//! The recipe's fingerprint covers what decides the engine's behaviour — the template text,
//! the launch command, the image and the inputs the template actually mentions — so rows
//! that differ only in client-side values (CONC, usually) can share one running engine.

pub mod agentic;

use crate::config::row::JobRow;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Why a recipe could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("no launch template for this row: looked for {wanted} in {dir}; templates there for `{prefix}`: {candidates}")]
    NoTemplate {
        wanted: String,
        dir: String,
        prefix: String,
        candidates: String,
    },
    #[error("row field `{field}` = {value:?} is not allowed: {why}")]
    BadValue {
        field: &'static str,
        value: String,
        why: String,
    },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where a template came from.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateSource {
    /// A file under `benchmarks/`.
    File(PathBuf),
    /// A template built into the runner (the simulated engine's).
    Builtin(&'static str),
}

impl std::fmt::Display for TemplateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateSource::File(p) => write!(f, "{}", p.display()),
            TemplateSource::Builtin(n) => write!(f, "builtin:{n}"),
        }
    }
}

/// A materialised launch script.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The template it was made from.
    pub source: TemplateSource,
    /// Header + template: what `launch.sh` contains and what runs.
    pub script: String,
    /// Inputs (name, value) exported by the header, in order.
    pub inputs: Vec<(String, String)>,
    /// Names of the inputs the template mentions (these enter the fingerprint).
    pub inputs_read: Vec<String>,
    /// Hex SHA-256 over template, launch command, image and the inputs read.
    pub fingerprint: String,
}

/// The simulated engine's template: the runner binary serves the sim on `$PORT`. For an
/// agentic row (`IS_AGENTIC=1`) it runs like the real engines do under InferenceX's contract:
/// at a 1M-token native context, with `/metrics` in the framework's names, and with
/// `KV_OFFLOADING=dram` mapped onto the sim's CPU offload tier sized from
/// `TOTAL_CPU_DRAM_GB`.
pub const SIM_TEMPLATE: &str = r#"#!/usr/bin/env bash
# The built-in simulated engine (launch profile `sim`): an OpenAI-compatible server with a
# continuous-batching latency model. INFMAX_RUNNER is the runner binary itself.
set -euo pipefail
: "${PORT:?}" "${SIM_PRESET:?}" "${INFMAX_RUNNER:?}"
args=(--preset "$SIM_PRESET")
if [[ ${IS_AGENTIC:-0} == 1 ]]; then
  args+=(--max-model-len 1048576)
  case ${FRAMEWORK:-} in
    *sglang*) args+=(--metrics-flavor sglang) ;;
    *) args+=(--metrics-flavor vllm) ;;
  esac
  case ${KV_OFFLOADING:-none} in
    none) ;;
    dram)
      [[ ${TOTAL_CPU_DRAM_GB:-} =~ ^[1-9][0-9]*$ ]] ||
        { echo "sim: KV_OFFLOADING=dram needs a positive integer TOTAL_CPU_DRAM_GB, got '${TOTAL_CPU_DRAM_GB:-}'" >&2; exit 2; }
      args+=(--offload-cpu-gb "$TOTAL_CPU_DRAM_GB") ;;
    *) echo "sim: KV_OFFLOADING must be none or dram, got '$KV_OFFLOADING'" >&2; exit 2 ;;
  esac
fi
exec "$INFMAX_RUNNER" sim --host 127.0.0.1 --port "$PORT" "${args[@]}"
"#;

/// `<model-prefix>_<precision>_<gpu>_<framework>[_mtp].sh` (see
/// [`crate::config::template_file_name`]).
pub fn template_name(row: &JobRow) -> String {
    crate::config::template_file_name(
        row.model_prefix(),
        &row.precision,
        &row.runner,
        &row.framework,
        row.spec_decoding.as_deref() == Some("mtp"),
    )
}

/// Find the row's template in `dir`; a clear error lists what is there for its model.
pub fn find_template(dir: &Path, row: &JobRow) -> Result<PathBuf, RecipeError> {
    let name = template_name(row);
    let p = dir.join(&name);
    if p.is_file() {
        return Ok(p);
    }
    let prefix = format!("{}_", row.model_prefix());
    let mut cands: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix) && n.ends_with(".sh"))
                .collect()
        })
        .unwrap_or_default();
    cands.sort();
    Err(RecipeError::NoTemplate {
        wanted: name,
        dir: dir.display().to_string(),
        prefix: row.model_prefix().to_string(),
        candidates: if cands.is_empty() {
            "none".into()
        } else {
            cands.join(", ")
        },
    })
}

/// Strict character sets for row values that reach a shell or a file name.
fn check(field: &'static str, v: &str, extra: &str) -> Result<(), RecipeError> {
    let bad = |why: String| RecipeError::BadValue {
        field,
        value: v.to_string(),
        why,
    };
    if v.is_empty() || v.len() > 256 {
        return Err(bad("must be 1 to 256 characters".into()));
    }
    if !v.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(bad("must start with a letter or digit".into()));
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c) || extra.contains(*c)))
    {
        return Err(bad(format!(
            "character {c:?} is outside [A-Za-z0-9._-{extra}]"
        )));
    }
    if v.contains("..") {
        return Err(bad("must not contain `..`".into()));
    }
    Ok(())
}

/// Validate every row value that reaches the launch script or a file name.
pub fn validate(row: &JobRow, runner_name: &str) -> Result<(), RecipeError> {
    check("model", &row.model, "/")?;
    check("image", &row.image, "/:@+#")?;
    check("precision", &row.precision, "")?;
    check("framework", &row.framework, "")?;
    // `:` for InferenceX's cluster labels (`cluster:h200-dgxc`); quoted like every value.
    check("runner", &row.runner, ":")?;
    check("exp-name", &row.exp_name, "")?;
    check("model-prefix", row.model_prefix(), "")?;
    if let Some(s) = &row.spec_decoding {
        check("spec-decoding", s, "")?;
    }
    check("runner name", runner_name, "")?;
    Ok(())
}

/// InferenceMAX's result name:
/// `<exp>_<precision>_<framework>_tp<tp>_ep<ep>_dpa_<dp-attn>_conc<conc>_<runner name>`.
pub fn result_filename(row: &JobRow, runner_name: &str) -> String {
    format!(
        "{}_{}_{}_tp{}_ep{}_dpa_{}_conc{}_{}",
        row.exp_name,
        row.precision,
        row.framework,
        row.tp,
        row.ep,
        row.dp_attn,
        row.conc,
        runner_name
    )
}

/// The inputs a template receives, in header order.
pub fn inputs(row: &JobRow, port: u16, runner_name: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        ("MODEL".into(), row.model.clone()),
        ("IMAGE".into(), row.image.clone()),
        ("PORT".into(), port.to_string()),
        ("TP".into(), row.tp.to_string()),
        ("EP_SIZE".into(), row.ep.to_string()),
        ("DP_ATTENTION".into(), row.dp_attn.to_string()),
        ("CONC".into(), row.conc.to_string()),
        ("ISL".into(), row.isl.to_string()),
        ("OSL".into(), row.osl.to_string()),
        ("MAX_MODEL_LEN".into(), row.max_model_len.to_string()),
        ("PRECISION".into(), row.precision.clone()),
        ("FRAMEWORK".into(), row.framework.clone()),
        ("EXP_NAME".into(), row.exp_name.clone()),
        ("MODEL_PREFIX".into(), row.model_prefix().to_string()),
        ("RUNNER_NAME".into(), runner_name.to_string()),
        ("RESULT_FILENAME".into(), result_filename(row, runner_name)),
    ];
    for (k, val) in [
        ("PP", row.pp.map(|x| x.to_string())),
        ("DCP_SIZE", row.dcp_size.map(|x| x.to_string())),
        ("PCP_SIZE", row.pcp_size.map(|x| x.to_string())),
        ("SPEC_DECODING", row.spec_decoding.clone()),
    ] {
        if let Some(val) = val {
            v.push((k.into(), val));
        }
    }
    v
}

/// Single-quote for POSIX shells: the value is never expanded or executed.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Whether `text` mentions `$NAME` or `${NAME…}` as a whole variable name.
fn mentions(text: &str, name: &str) -> bool {
    let b = text.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while let Some(off) = text[i..].find('$') {
        let start = i + off + 1;
        let s = if b.get(start) == Some(&b'{') {
            start + 1
        } else {
            start
        };
        if text[s..].starts_with(name) && !b.get(s + name.len()).copied().is_some_and(is_ident) {
            return true;
        }
        i = start;
    }
    false
}

/// Inputs that never enter the fingerprint: the port and names the runner picks per job.
const NOT_FINGERPRINTED: [&str; 3] = ["PORT", "RESULT_FILENAME", "RUNNER_NAME"];

/// Materialise a template for a row. `launch_command` is the profile's rendered command (it
/// enters the fingerprint); `extra` are profile inputs (e.g. `SIM_PRESET`).
pub fn materialise(
    source: TemplateSource,
    template: &str,
    inputs: Vec<(String, String)>,
    launch_command: &[String],
    image: &str,
) -> Recipe {
    let body = template.strip_prefix("#!").map_or(template, |rest| {
        rest.split_once('\n').map_or("", |(_, after)| after)
    });
    let mut script = String::from("#!/usr/bin/env bash\n");
    script.push_str(&format!(
        "# Materialised by infmax {} from {source}. Inputs are single-quoted; secrets come from the environment.\n",
        env!("CARGO_PKG_VERSION")
    ));
    for (k, v) in &inputs {
        script.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    script.push_str("# ---- template ----\n");
    script.push_str(body);
    if !script.ends_with('\n') {
        script.push('\n');
    }
    let inputs_read: Vec<String> = inputs
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| mentions(body, k))
        .collect();
    let mut h = Sha256::new();
    h.update(b"template\0");
    h.update(body.as_bytes());
    h.update(b"\0command\0");
    for a in launch_command {
        h.update(a.as_bytes());
        h.update(b"\0");
    }
    h.update(b"image\0");
    h.update(image.as_bytes());
    for (k, v) in &inputs {
        if inputs_read.contains(k) && !NOT_FINGERPRINTED.contains(&k.as_str()) {
            h.update(b"\0input\0");
            h.update(k.as_bytes());
            h.update(b"=");
            h.update(v.as_bytes());
        }
    }
    let fingerprint = h
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Recipe {
        source,
        script,
        inputs,
        inputs_read,
        fingerprint,
    }
}

/// Read a template file.
pub fn read_template(path: &Path) -> Result<String, RecipeError> {
    std::fs::read_to_string(path).map_err(|source| RecipeError::Io {
        file: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_never_expands() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("x'; rm -rf /; '"), r"'x'\''; rm -rf /; '\'''");
        assert_eq!(shell_quote("$(touch /tmp/x)"), "'$(touch /tmp/x)'");
    }

    #[test]
    fn mentions_whole_names_only() {
        let t = "exec x --tp \"$TP\" --len ${MAX_MODEL_LEN} $TPX ${CONC:-4}";
        assert!(mentions(t, "TP"));
        assert!(mentions(t, "MAX_MODEL_LEN"));
        assert!(mentions(t, "CONC"));
        assert!(!mentions(t, "ISL"));
        assert!(!mentions("echo $TPX", "TP"));
    }

    #[test]
    fn fingerprint_ignores_unread_inputs() {
        let t = "#!/usr/bin/env bash\nexec engine --tp \"$TP\" --port \"$PORT\"\n";
        let mk = |conc: &str, tp: &str, port: &str| {
            materialise(
                TemplateSource::Builtin("t"),
                t,
                vec![
                    ("TP".into(), tp.into()),
                    ("CONC".into(), conc.into()),
                    ("PORT".into(), port.into()),
                ],
                &["bash".into()],
                "img",
            )
        };
        let a = mk("4", "8", "8000");
        assert_eq!(a.fingerprint, mk("64", "8", "9000").fingerprint);
        assert_ne!(a.fingerprint, mk("4", "4", "8000").fingerprint);
        assert_eq!(a.inputs_read, ["TP", "PORT"]);
        assert!(a.script.starts_with("#!/usr/bin/env bash\n# Materialised"));
        assert!(a.script.contains("export CONC='4'\n"));
        assert_eq!(a.script.matches("#!/usr/bin/env bash").count(), 1);
    }
}
