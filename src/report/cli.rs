//! `runner report`: summary, verdict and plots for any set of result directories.
//! Command-line edge: errors become `anyhow` here and exit codes in `cli::runner`.

use super::cost::Pricing;
use super::gha;
use super::plot::{write_plots, Formats};
use super::verdict::verdict_markdown;
use super::{
    load_agg_rows, summary_markdown, verdict, AccuracyStatus, AggRow, Baselines, LoadedRow,
    SummaryRow,
};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags of `runner report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Result directories: each holds an `agg.json`, or has them somewhere below.
    #[arg(long = "dir", required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// Baselines directory: reference points and accuracy.yaml (default:
    /// $INFMAX_BASELINES, else ./baselines, else the one shipped with the source).
    #[arg(long, env = "INFMAX_BASELINES", value_name = "DIR")]
    pub baselines: Option<PathBuf>,
    /// Label of the reference set to compare with (default: the only `reference` set).
    #[arg(long)]
    pub baseline: Option<String>,
    /// Where to write summary.md, verdict.md, verdict.json and the plots.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// Title of the summary.
    #[arg(long, default_value = "infmax results")]
    pub title: String,
    /// Write SVG plots only.
    #[arg(long)]
    pub no_png: bool,
    /// Pricing file ($/GPU-hour per hardware) for the report's costs (default:
    /// `./pricing.yaml`, else the one shipped with the source).
    #[arg(long, env = "INFMAX_PRICING")]
    pub pricing: Option<PathBuf>,
    /// What `report.html` lists besides the points (filled by `scheduler collect`).
    #[arg(skip)]
    pub notes: Vec<super::html::Note>,
    /// Print `{"rows": [agg rows], "verdicts": [...], "failed": [{"dir", "status"}],
    /// "out": DIR}` on stdout instead of the Markdown summary and verdict.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 unless every line is eligible.
    #[arg(long)]
    pub require_eligible: bool,
}

/// The baselines directory in force: the flag, else `./baselines`, else the source tree's.
pub fn baselines_dir(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    let local = PathBuf::from("baselines");
    if local.is_dir() {
        return Some(local);
    }
    let shipped = Baselines::default_dir();
    shipped.is_dir().then_some(shipped)
}

/// Load baselines per the flags (none found is not an error: every point is then missing).
pub fn load_baselines(dir: Option<&Path>, label: Option<&str>) -> anyhow::Result<Baselines> {
    let b = match baselines_dir(dir) {
        Some(d) => Baselines::load_dir(&d)
            .with_context(|| format!("loading baselines from {}", d.display()))?,
        None => Baselines::default(),
    };
    Ok(match label {
        Some(l) => b.with_primary(l)?,
        None => b,
    })
}

/// The pricing file in force: the flag, else `./pricing.yaml`, else the source tree's; a
/// named file that does not load is an error, a default that is missing is no pricing.
pub fn load_pricing(flag: Option<&Path>) -> anyhow::Result<Option<Pricing>> {
    if let Some(p) = flag {
        return Ok(Some(Pricing::load(p)?));
    }
    for p in [PathBuf::from("pricing.yaml"), Pricing::default_file()] {
        if p.is_file() {
            return Ok(Some(Pricing::load(&p)?));
        }
    }
    Ok(None)
}

/// Run `runner report`.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let baselines = load_baselines(args.baselines.as_deref(), args.baseline.as_deref())?;
    let pricing = load_pricing(args.pricing.as_deref())?;
    // Failed and interrupted jobs are listed, never dropped: a sweep of failures alone
    // still gets its report.
    let statuses = super::status::find(&args.dirs);
    let loaded = match load_agg_rows(&args.dirs) {
        Err(super::ReportError::NoResults(_)) if !statuses.is_empty() => vec![],
        r => r?,
    };
    // Re-attach baselines: the set in force now may differ from the one at job time.
    let loaded: Vec<LoadedRow> = loaded
        .into_iter()
        .map(|mut l| {
            l.row.baseline = baselines.record_for(&l.row);
            l
        })
        .collect();
    let rows: Vec<AggRow> = loaded.iter().map(|l| l.row.clone()).collect();
    let mut summary = summary_markdown(
        &args.title,
        &rows.iter().map(SummaryRow::from).collect::<Vec<_>>(),
    );
    let costs = super::cost::cost_markdown(&rows, pricing.as_ref());
    if !costs.is_empty() {
        summary.push('\n');
        summary.push_str(&costs);
    }
    let failures = super::status::markdown(&statuses);
    if !failures.is_empty() {
        summary.push('\n');
        summary.push_str(&failures);
    }
    let verdicts = verdict(&rows, &baselines);
    let mut vmd = String::from("## Eligibility verdict\n\n");
    for v in &verdicts {
        vmd.push_str(&verdict_markdown(v));
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    super::write_atomic(&args.out.join("summary.md"), summary.as_bytes())?;
    super::write_atomic(&args.out.join("verdict.md"), vmd.as_bytes())?;
    let vjson = serde_json::to_string_pretty(&verdicts).expect("verdicts serialise");
    super::write_atomic(
        &args.out.join("verdict.json"),
        format!("{vjson}\n").as_bytes(),
    )?;
    let plots = write_plots(
        &args.out,
        &rows,
        &baselines,
        Formats {
            svg: true,
            png: !args.no_png,
        },
    )?;
    let html = super::html::write_report(&super::html::Page {
        title: &args.title,
        out_dir: &args.out,
        rows: &loaded,
        verdicts: &verdicts,
        baselines: &baselines,
        pricing: pricing.as_ref(),
        failures: &statuses,
        notes: &args.notes,
    })?;

    if args.json {
        let failed: Vec<serde_json::Value> = statuses
            .iter()
            .map(|(dir, st)| serde_json::json!({"dir": dir, "status": st}))
            .collect();
        let v = serde_json::json!({
            "rows": rows,
            "verdicts": verdicts,
            "failed": failed,
            "out": args.out,
        });
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&v).expect("JSON values serialise")
        );
    } else {
        gha::group("summary", || crate::out!("{summary}"));
        gha::group("verdict", || crate::out!("{vmd}"));
    }
    for r in &rows {
        if let Some(a) = &r.accuracy {
            if a.status == AccuracyStatus::Fail {
                gha::error(
                    "accuracy gate failed",
                    &format!(
                        "{} {} {} tp{} conc {}: {} {:?}",
                        r.hw,
                        r.model_key(),
                        r.framework,
                        r.tp,
                        r.conc,
                        a.task,
                        a.metrics
                    ),
                );
            }
        }
    }
    for (dir, st) in &statuses {
        gha::error(
            &format!("job {}", st.describe()),
            &format!("{}: {}", dir.display(), st.error),
        );
    }
    for v in &verdicts {
        if !v.eligible {
            gha::warning(&format!(
                "{}: not eligible: {}",
                v.line,
                v.reasons.join("; ")
            ));
        }
    }
    gha::append_step_summary(&format!("{summary}\n{vmd}"))
        .context("appending to $GITHUB_STEP_SUMMARY")?;
    crate::errln!(
        "report: {} rows, {} lines, {} failed or interrupted jobs; wrote {} (summary.md, verdict.md, verdict.json, {} plot files, {})",
        rows.len(),
        verdicts.len(),
        statuses.len(),
        args.out.display(),
        plots.len(),
        html.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    );
    if args.require_eligible && verdicts.iter().any(|v| !v.eligible) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
