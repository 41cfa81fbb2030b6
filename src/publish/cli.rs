//! `runner publish`: enqueue result rows for the leaderboard sinks and drain the outbox.
//! Command-line edge: errors become `anyhow` here and exit codes in `cli::runner`.
//!
//! Exit codes: 0 — everything handled is confirmed; 2 — rows remain in the outbox (pending,
//! submitted-but-unconfirmed, or held); 1 — an error (bad flags or config, a row whose
//! payload cannot be built).

use super::outbox::entry_line;
use super::transport::ConfirmTimeouts;
use super::{enqueue_agentic, enqueue_rows, DrainOptions, Enqueued, Outbox, SinksConfig};
use crate::report::gha;
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit code when rows remain queued.
pub const EXIT_REMAINING: u8 = 2;

/// Flags of `runner publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// Result directories whose agg rows to enqueue (needs --sinks and a run id).
    #[arg(long = "dir", num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// The sinks file (YAML).
    #[arg(long)]
    pub sinks: Option<PathBuf>,
    /// Run id for idempotency keys (default: $INFMAX_RUN_ID, else $GITHUB_RUN_ID).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Baselines directory for the ratio fields (default as for `runner report`; when none
    /// is found the rows' own baseline records are used).
    #[arg(long, env = "INFMAX_BASELINES", value_name = "DIR")]
    pub baselines: Option<PathBuf>,
    /// Outbox directory (default: $INFMAX_OUTBOX, else ~/.local/state/infmax/outbox).
    #[arg(long)]
    pub outbox: Option<PathBuf>,
    /// Drain rows already in the outbox.
    #[arg(long)]
    pub pending: bool,
    /// Print the outbox status and exit.
    #[arg(long, conflicts_with_all = ["pending", "dirs", "mark_delivered"])]
    pub status: bool,
    /// Resubmit rows held as unconfirmed (a duplicate on the board is possible).
    #[arg(long)]
    pub resubmit_unconfirmed: bool,
    /// After checking the board by hand: mark the row with this idempotency key delivered.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["pending", "dirs"])]
    pub mark_delivered: Option<String>,
    /// Attempts per row in this run before leaving it queued.
    #[arg(long, default_value_t = 6)]
    pub max_attempts: u32,
    /// First retry delay in seconds (doubles per attempt).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub backoff: f64,
    /// Largest retry delay in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub backoff_cap: f64,
    /// The old spelling of --backoff, in milliseconds.
    #[arg(long, hide = true, conflicts_with = "backoff")]
    pub backoff_ms: Option<u64>,
    /// The old spelling of --backoff-cap, in milliseconds.
    #[arg(long, hide = true, conflicts_with = "backoff_cap")]
    pub backoff_cap_ms: Option<u64>,
    /// Timeout of one submission, seconds.
    #[arg(long = "request-timeout", value_name = "SECONDS", default_value_t = 60)]
    pub request_timeout_s: u64,
    /// Longest wait for a confirmation, seconds.
    #[arg(
        long = "confirm-timeout",
        value_name = "SECONDS",
        default_value_t = 600
    )]
    pub confirm_timeout_s: u64,
    /// Longest silence on a confirmation stream, seconds.
    #[arg(
        long = "confirm-idle-timeout",
        value_name = "SECONDS",
        default_value_t = 60
    )]
    pub confirm_idle_s: u64,
    /// Also publish rows of the simulated engine (`hw: sim`), which are refused otherwise:
    /// their figures measure no hardware (for testing a sink end to end).
    #[arg(long)]
    pub allow_sim: bool,
}

/// Simulated rows (`hw: sim`) are refused unless `allow`: an error line per row, and `true`
/// when any was refused.
fn refuse_simulated(descr: &[String], allow: bool) -> bool {
    if allow {
        return false;
    }
    for d in descr {
        gha::error(
            "simulated row not published",
            &format!("{d}: hw is `sim` (the simulated engine measures no hardware); pass --allow-sim to publish it anyway"),
        );
    }
    !descr.is_empty()
}

/// The points to publish: the measured ones, then the simulated ones only when allowed
/// (else each is named and refused); `true` when something was refused.
fn admit<T>(
    measured: Vec<(PathBuf, T)>,
    simulated: Vec<(PathBuf, T)>,
    allow_sim: bool,
) -> (Vec<T>, bool) {
    let names: Vec<String> = simulated
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    let refused = refuse_simulated(&names, allow_sim);
    let mut out: Vec<T> = measured.into_iter().map(|(_, v)| v).collect();
    if !refused {
        out.extend(simulated.into_iter().map(|(_, v)| v));
    }
    (out, refused)
}

/// Print what was enqueued; each point whose payload could not be built is an error
/// annotation titled `not_published`. `true` when any was.
fn report_enqueued(outcomes: Vec<crate::publish::EnqueueOutcome>, not_published: &str) -> bool {
    let mut failed = false;
    for r in outcomes {
        match r {
            Ok((e, how)) => {
                crate::outln!("{}: sink={} key={}", enqueued_word(how), e.sink, e.key);
            }
            Err(err) => {
                failed = true;
                gha::error(not_published, &err.to_string());
            }
        }
    }
    failed
}

/// A retry delay: the old milliseconds flag when given, else the seconds one.
fn delay(ms: Option<u64>, secs: f64, flag: &str) -> anyhow::Result<Duration> {
    match ms {
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Duration::try_from_secs_f64(secs)
            .map_err(|_| anyhow::anyhow!("{flag} must be a number of seconds ≥ 0, got {secs}")),
    }
}

fn run_id(flag: Option<String>) -> Option<String> {
    flag.or_else(|| std::env::var("INFMAX_RUN_ID").ok())
        .or_else(|| std::env::var("GITHUB_RUN_ID").ok())
        .filter(|s| !s.trim().is_empty())
}

fn enqueued_word(how: Enqueued) -> &'static str {
    match how {
        Enqueued::Added => "queued",
        Enqueued::AlreadyQueued => "already queued",
        Enqueued::AlreadyDelivered => "already delivered",
    }
}

/// Run `runner publish`.
pub fn run(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let dir = args.outbox.clone().unwrap_or_else(Outbox::default_dir);
    let outbox = Outbox::open(&dir)?;
    if args.status {
        crate::out!("{}", outbox.status_text()?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(key) = &args.mark_delivered {
        let n = outbox.mark_delivered(key)?;
        if n == 0 {
            bail!("no pending row has key `{key}` (see `runner publish --status`)");
        }
        crate::outln!("marked {n} row(s) with key {key} delivered");
        return Ok(ExitCode::SUCCESS);
    }
    if args.dirs.is_empty() && !args.pending {
        bail!("nothing to do: give --dir DIR... (with --sinks) to publish results, or --pending to drain the outbox");
    }
    let mut failed = false;
    if !args.dirs.is_empty() {
        let Some(sinks) = &args.sinks else {
            bail!("--dir needs --sinks FILE");
        };
        let cfg = SinksConfig::load(sinks)?;
        let Some(run_id) = run_id(args.run_id.clone()) else {
            bail!("--dir needs a run id: --run-id, $INFMAX_RUN_ID or $GITHUB_RUN_ID (it keeps a retry from publishing a row twice)");
        };
        let baselines = crate::report::cli::load_baselines(args.baselines.as_deref(), None)?;
        // Agentic points (`<RESULT_FILENAME>.json`, v3 aggregates) are published as they are;
        // a directory holding only those has no fixed-length agg rows to load.
        let agentic = crate::report::agentic::find_aggregates(&args.dirs)?;
        let fixed_dirs: Vec<PathBuf> = args
            .dirs
            .iter()
            .filter(|d| {
                !agentic.iter().any(|(p, _)| p.starts_with(d))
                    || crate::report::load_agg_rows(std::slice::from_ref(*d)).is_ok()
            })
            .cloned()
            .collect();
        let (sim_aggs, aggs): (Vec<_>, Vec<_>) = agentic
            .into_iter()
            .partition(|(_, v)| v.get("hw").and_then(|h| h.as_str()) == Some("sim"));
        let (aggs, refused) = admit(aggs, sim_aggs, args.allow_sim);
        failed |= refused;
        let outcomes = enqueue_agentic(&outbox, &cfg, &aggs, &run_id)?;
        failed |= report_enqueued(outcomes, "agentic point not published");
        let (sim_rows, rows): (Vec<_>, Vec<_>) = crate::report::load_agg_rows(&fixed_dirs)?
            .into_iter()
            .map(|l| {
                let mut r = l.row;
                // Same ratios as `runner report` prints, from the baselines in force.
                if !baselines.sets.is_empty() {
                    r.baseline = baselines.record_for(&r);
                }
                (l.path, r)
            })
            .partition(|(_, r)| r.is_simulated());
        let (rows, refused) = admit(rows, sim_rows, args.allow_sim);
        failed |= refused;
        let outcomes = enqueue_rows(&outbox, &cfg, &rows, &run_id)?;
        failed |= report_enqueued(outcomes, "row not published");
    }
    let opts = DrainOptions {
        max_attempts: args.max_attempts.max(1),
        backoff: delay(args.backoff_ms, args.backoff, "--backoff")?,
        backoff_cap: delay(args.backoff_cap_ms, args.backoff_cap, "--backoff-cap")?,
        request_timeout: Duration::from_secs(args.request_timeout_s),
        confirm: ConfirmTimeouts {
            idle: Duration::from_secs(args.confirm_idle_s),
            total: Duration::from_secs(args.confirm_timeout_s),
        },
        resubmit_unconfirmed: args.resubmit_unconfirmed,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = rt.block_on(outbox.drain(&opts))?;
    if report.busy {
        gha::warning("another publisher is draining this outbox; rows stay queued for it");
    }
    gha::group("publish status", || {
        for (sink, key) in &report.delivered {
            crate::outln!("delivered: sink={sink} key={key}");
        }
        for e in &report.remaining {
            crate::outln!("{}", entry_line(e));
        }
        crate::outln!(
            "outbox {}: {} delivered now, {} remaining",
            outbox.dir().display(),
            report.delivered.len(),
            report.remaining.len()
        );
    });
    for e in &report.remaining {
        if matches!(e.state, super::State::Unconfirmed { .. }) {
            gha::warning(&format!(
                "leaderboard row {} ({}) is unconfirmed: check the board",
                e.key, e.sink
            ));
        }
    }
    if failed {
        return Ok(ExitCode::FAILURE);
    }
    if !report.remaining.is_empty() {
        return Ok(ExitCode::from(EXIT_REMAINING));
    }
    Ok(ExitCode::SUCCESS)
}
