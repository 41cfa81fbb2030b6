//! `scheduler dispatch`, `scheduler collect` and `scheduler runners`: flags and the
//! command-line edge (errors become `anyhow` here, exit codes in `cli::scheduler`).

use super::collect::{self, Collected, FailedJob};
use super::{repo_from, token_from_env, Client, GithubError};
use crate::report::cli::ReportArgs;
use crate::report::gha;
use anyhow::Context;
use clap::Args;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Where the API is and which repository; shared by the GitHub subcommands.
#[derive(Debug, Clone, Args)]
pub struct GithubFlags {
    /// Repository as owner/name (default: $GITHUB_REPOSITORY).
    #[arg(long)]
    pub repo: Option<String>,
    /// REST API base URL (GHES: https://HOST/api/v3).
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub api_url: String,
}

impl GithubFlags {
    fn client(&self) -> Result<Client, GithubError> {
        let (owner, repo) = repo_from(self.repo.as_deref())?;
        Client::new(&self.api_url, &owner, &repo, token_from_env()?)
    }
}

/// `scheduler dispatch`: start `dispatch.yml` with inputs and print the run's URL.
#[derive(Debug, Clone, Args)]
pub struct DispatchArgs {
    #[command(flatten)]
    pub gh: GithubFlags,
    /// Workflow file (or id) to dispatch.
    #[arg(long, default_value = "dispatch.yml")]
    pub workflow: String,
    /// Branch or tag to run the workflow from.
    #[arg(long = "ref", default_value = "main")]
    pub git_ref: String,
    /// Scenario.
    #[arg(long, default_value = "1k1k", value_parser = ["1k1k", "1k8k", "8k1k"])]
    pub isl_osl: String,
    /// Entry key prefixes.
    #[arg(long, num_args = 1..)]
    pub model_prefix: Vec<String>,
    /// Runner types.
    #[arg(long, num_args = 1..)]
    pub runner_type: Vec<String>,
    /// Concurrencies (default: all).
    #[arg(long, value_delimiter = ',')]
    pub conc: Vec<u32>,
    /// One row per seq-len config.
    #[arg(long)]
    pub test_mode: bool,
    /// Which sweep: the Nov-2025 bounty set (`.github/configs`) or the 2026 InferenceX set
    /// (`configs/2026`).
    #[arg(long, default_value = "2025-11", value_parser = ["2025-11", "2026"])]
    pub config_set: String,
    /// 2026 set: which scenario type to run.
    #[arg(long, default_value = "fixed-seq-len", value_parser = ["fixed-seq-len", "agentic-coding"])]
    pub scenario_type: String,
    /// Publish the rows when the sweep is done.
    #[arg(long)]
    pub publish: bool,
    /// Team name for the leaderboard.
    #[arg(long, default_value = "")]
    pub team: String,
    /// Seconds to wait for the run to appear in the runs list.
    #[arg(
        long = "wait-timeout",
        alias = "wait-s",
        value_name = "SECONDS",
        default_value_t = 60
    )]
    pub wait_s: u64,
    /// Seconds between looks at the runs list.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub poll_interval: f64,
    /// The old spelling of --poll-interval, in milliseconds.
    #[arg(long, hide = true, conflicts_with = "poll_interval")]
    pub poll_ms: Option<u64>,
}

impl DispatchArgs {
    /// The time between looks at the runs list (at least 10 ms).
    fn poll(&self) -> Duration {
        let d = match self.poll_ms {
            Some(ms) => Duration::from_millis(ms),
            None => Duration::try_from_secs_f64(self.poll_interval).unwrap_or(Duration::ZERO),
        };
        d.max(Duration::from_millis(10))
    }
}

/// `scheduler collect`: a run's (or local) results → sweep table, plots, verdict.
#[derive(Debug, Clone, Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub gh: GithubFlags,
    /// Workflow run whose `bmk_*` artifacts to collect.
    #[arg(long, required_unless_present = "dirs")]
    pub run_id: Option<u64>,
    /// Local result directories instead of (or besides) a run's artifacts.
    #[arg(long = "dir", num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// Where to write summary.md, verdict.*, plots, collect.json (artifacts go to OUT/artifacts).
    #[arg(long, default_value = "sweep")]
    pub out: PathBuf,
    /// Title of the sweep summary.
    #[arg(long, default_value = "infmax sweep")]
    pub title: String,
    /// Baselines directory: reference points and accuracy.yaml (default:
    /// $INFMAX_BASELINES, else ./baselines, else the one shipped with the source).
    #[arg(long, env = "INFMAX_BASELINES", value_name = "DIR")]
    pub baselines: Option<PathBuf>,
    /// Write SVG plots only.
    #[arg(long)]
    pub no_png: bool,
    /// Pricing file ($/GPU-hour per hardware) for the report's costs (default:
    /// `./pricing.yaml`, else the one shipped with the source).
    #[arg(long, env = "INFMAX_PRICING")]
    pub pricing: Option<PathBuf>,
    /// Exit 1 when any job failed or an artifact expired (after writing everything).
    #[arg(long)]
    pub strict: bool,
}

/// `scheduler runners`: self-hosted runners and labels; warns about labels a matrix needs
/// that no online runner has.
#[derive(Debug, Clone, Args)]
pub struct RunnersArgs {
    #[command(flatten)]
    pub gh: GithubFlags,
    /// `scheduler expand` output (plain rows or chunked) whose runner labels must be served.
    #[arg(long)]
    pub matrix: Option<PathBuf>,
    /// Exit 1 when a label of the matrix has no online runner.
    #[arg(long)]
    pub strict: bool,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The workflow inputs `dispatch.yml` declares, from the flags.
pub fn dispatch_inputs(a: &DispatchArgs) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.into(), serde_json::Value::String(v));
    };
    put("isl-osl", a.isl_osl.clone());
    put("model-prefix", a.model_prefix.join(" "));
    put("runner-type", a.runner_type.join(" "));
    put(
        "conc",
        a.conc
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    put("test-mode", a.test_mode.to_string());
    put("publish", a.publish.to_string());
    put("team", a.team.clone());
    // Only sent for the 2026 set, so a dispatch of the default set names the same inputs
    // as before these existed.
    if a.config_set == "2026" {
        put("config-set", a.config_set.clone());
        put("scenario-type", a.scenario_type.clone());
    }
    m
}

/// Run `scheduler dispatch`.
pub fn dispatch(a: DispatchArgs) -> anyhow::Result<ExitCode> {
    runtime().block_on(async {
        let c = a.gh.client()?;
        let before: BTreeSet<u64> = c
            .runs(&a.workflow, "workflow_dispatch", &a.git_ref)
            .await?
            .iter()
            .map(|r| r.id)
            .collect();
        c.dispatch(&a.workflow, &a.git_ref, &dispatch_inputs(&a))
            .await?;
        crate::errln!(
            "dispatched {} on {} in {}/{}",
            a.workflow,
            a.git_ref,
            c.owner,
            c.repo
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(a.wait_s);
        loop {
            let runs = c.runs(&a.workflow, "workflow_dispatch", &a.git_ref).await?;
            if let Some(r) = runs.iter().find(|r| !before.contains(&r.id)) {
                crate::outln!("{}", r.html_url);
                return Ok(ExitCode::SUCCESS);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(GithubError::RunNotFound {
                    workflow: a.workflow.clone(),
                    git_ref: a.git_ref.clone(),
                    secs: a.wait_s,
                }
                .into());
            }
            tokio::time::sleep(a.poll()).await;
        }
    })
}

/// Download and unpack a run's `bmk_*` artifacts into `dest`; returns the expired ones and
/// the jobs the jobs API reports failed.
async fn fetch_run(
    c: &Client,
    run_id: u64,
    dest: &Path,
) -> Result<(Vec<String>, Vec<FailedJob>), GithubError> {
    let artifacts = c.artifacts(run_id).await?;
    let mut expired = vec![];
    let mut n = 0;
    for a in artifacts.iter().filter(|a| collect::is_result_artifact(a)) {
        if a.expired {
            crate::errln!(
                "collect: artifact {} has expired; listed, not downloaded",
                a.name
            );
            expired.push(a.name.clone());
            continue;
        }
        let bytes = c.download(a).await?;
        collect::unzip(&a.name, &bytes, &dest.join(&a.name))?;
        n += 1;
    }
    crate::errln!(
        "collect: run {run_id}: {} artifacts, {n} result artifacts downloaded, {} expired",
        artifacts.len(),
        expired.len()
    );
    let failed_jobs = c
        .jobs(run_id)
        .await?
        .iter()
        .filter(|j| j.failed())
        .map(FailedJob::from)
        .collect();
    Ok((expired, failed_jobs))
}

/// Run `scheduler collect`.
pub fn collect(a: CollectArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut collected = Collected {
        run_id: a.run_id,
        ..Collected::default()
    };
    let mut dirs = a.dirs.clone();
    if let Some(run_id) = a.run_id {
        let dest = a.out.join("artifacts");
        if dest.exists() {
            std::fs::remove_dir_all(&dest)
                .with_context(|| format!("clearing {}", dest.display()))?;
        }
        std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
        let (expired, failed_jobs) = runtime().block_on(async {
            let c = a.gh.client()?;
            fetch_run(&c, run_id, &dest).await
        })?;
        collected.expired = expired;
        collected.failed_jobs = failed_jobs;
        dirs.push(dest);
    }
    collected.results = collect::scan(&dirs)?;

    let code = crate::report::cli::run(ReportArgs {
        dirs: collected.finished_dirs(),
        baselines: a.baselines.clone(),
        baseline: None,
        out: a.out.clone(),
        title: a.title.clone(),
        no_png: a.no_png,
        pricing: a.pricing.clone(),
        notes: collected.notes(),
        require_eligible: false,
        json: false,
    })?;

    let problems = collected.problems_markdown();
    if !problems.is_empty() {
        let summary = a.out.join("summary.md");
        let mut text = std::fs::read_to_string(&summary)
            .with_context(|| format!("reading {}", summary.display()))?;
        text.push_str(&problems);
        crate::fsutil::write_atomic(&summary, text.as_bytes())
            .with_context(|| format!("writing {}", summary.display()))?;
        gha::group("not in the table", || crate::out!("{problems}"));
        gha::append_step_summary(&problems).context("appending to $GITHUB_STEP_SUMMARY")?;
        for r in collected.failed() {
            match &r.outcome {
                collect::Outcome::Failed { stage, error, .. } => {
                    gha::error(&format!("{} {stage}", r.name), error)
                }
                collect::Outcome::Interrupted { signal, error, .. } => {
                    gha::error(&format!("{} interrupted by {signal}", r.name), error)
                }
                collect::Outcome::Finished => {}
            }
        }
    }
    let json = serde_json::to_string_pretty(&collected).expect("collected serialises");
    crate::fsutil::write_atomic(&a.out.join("collect.json"), format!("{json}\n").as_bytes())
        .context("writing collect.json")?;
    let failed = collected.failed().count();
    crate::errln!(
        "collect: {} results ({} finished, {failed} failed or interrupted), {} failed jobs, {} expired artifacts",
        collected.results.len(),
        collected.results.len() - failed,
        collected.failed_jobs.len(),
        collected.expired.len()
    );
    if a.strict && collected.has_problems() {
        return Ok(ExitCode::FAILURE);
    }
    Ok(code)
}

/// Runner labels a matrix file targets (`runner` of every row).
pub fn matrix_labels(path: &Path) -> Result<BTreeSet<String>, GithubError> {
    let text = std::fs::read_to_string(path).map_err(|e| GithubError::io(path, e))?;
    let bad = |message: String| GithubError::Matrix {
        file: path.display().to_string(),
        message,
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut rows: Vec<&serde_json::Value> = vec![];
    match &v {
        serde_json::Value::Array(a) => rows.extend(a),
        serde_json::Value::Object(o) if o.contains_key("include") => {
            rows.extend(o["include"].as_array().into_iter().flatten())
        }
        serde_json::Value::Object(o) if o.contains_key("chunks") => {
            for c in o["chunks"].as_array().into_iter().flatten() {
                rows.extend(
                    c.get("include")
                        .and_then(|i| i.as_array())
                        .into_iter()
                        .flatten(),
                );
            }
        }
        _ => return Err(bad("unexpected top level".into())),
    }
    rows.iter()
        .map(|r| {
            r.get("runner")
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| bad(format!("a row without a `runner`: {r}")))
        })
        .collect()
}

/// Run `scheduler runners`.
pub fn runners(a: RunnersArgs) -> anyhow::Result<ExitCode> {
    let needed = match &a.matrix {
        Some(p) => Some(matrix_labels(p)?),
        None => None,
    };
    let runners = runtime().block_on(async {
        let c = a.gh.client()?;
        c.runners().await
    })?;
    crate::outln!("{:<32} {:<8} {:<5} labels", "name", "status", "busy");
    for r in &runners {
        let labels: Vec<&str> = r.labels.iter().map(|l| l.name.as_str()).collect();
        crate::outln!(
            "{:<32} {:<8} {:<5} {}",
            r.name,
            r.status,
            if r.busy { "yes" } else { "no" },
            labels.join(",")
        );
    }
    let Some(needed) = needed else {
        return Ok(ExitCode::SUCCESS);
    };
    let online: BTreeSet<&str> = runners
        .iter()
        .filter(|r| r.status == "online")
        .flat_map(|r| r.labels.iter().map(|l| l.name.as_str()))
        .collect();
    let missing: Vec<&String> = needed
        .iter()
        .filter(|l| !online.contains(l.as_str()))
        .collect();
    for l in &missing {
        let msg = format!("no online self-hosted runner has label `{l}`; its rows will queue");
        crate::errln!("warning: {msg}");
        if gha::in_actions() {
            gha::warning(&msg);
        }
    }
    if missing.is_empty() {
        crate::errln!(
            "runners: every label of the matrix ({}) has an online runner",
            needed.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(if a.strict && !missing.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        a: DispatchArgs,
    }

    #[test]
    fn the_2026_set_adds_its_inputs() {
        let w = Wrap::parse_from([
            "x",
            "--config-set",
            "2026",
            "--scenario-type",
            "agentic-coding",
        ]);
        let m = dispatch_inputs(&w.a);
        assert_eq!(m["config-set"], "2026");
        assert_eq!(m["scenario-type"], "agentic-coding");
        let w = Wrap::parse_from(["x"]);
        let m = dispatch_inputs(&w.a);
        assert!(!m.contains_key("config-set") && !m.contains_key("scenario-type"));
    }
}
