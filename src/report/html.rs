//! The HTML report (`report.html`): one self-contained page per `runner report`,
//! `scheduler collect`, batch and job, that a person opens rather than reads.
//!
//! Why one file with everything inline: the page is an artifact that travels (a CI
//! artifact, an attachment, a directory copied off a cluster) and must work offline
//! forever, so the plots are inline SVG, the styles and the little sorting script are
//! inline, and nothing is fetched. A Content-Security-Policy forbids every load and every
//! script but the page's own (pinned by its SHA-256), so even markup that slipped through
//! could not run. It never does slip through: every value from a result file or a config
//! (model names, images, reasons, …) goes through [`esc`] before it reaches the page, and
//! plotters escapes the text it draws into the SVG.
//!
//! What it shows, per model × ISL/OSL line: the verdict with its reasons, the two charts
//! (throughput/GPU against interactivity and against median E2E, reference and AMD points
//! included) and the per-point verdict table; then sortable tables of every point, of
//! accuracy, and of energy and cost, each row linking (relative paths) to its result files;
//! then the jobs that failed. Tables sort on a click on their header (numbers numerically,
//! empty cells last); `#selftest` in the URL makes the page sort its points table itself
//! and record whether the result is ordered, which is how the headless-browser test checks
//! the script.

use super::agg::{AccuracyStatus, AggRow};
use super::baseline::Baselines;
use super::cost::{cost, efficiency, Pricing};
use super::plot::{line_svg, XAxis};
use super::status::JobStatus;
use super::verdict::LineVerdict;
use super::{LoadedRow, ReportError};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

/// Everything one page shows.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    /// Heading and `<title>`.
    pub title: &'a str,
    /// The directory the page will be written to: links to result files are relative to it.
    pub out_dir: &'a Path,
    /// Every point, with the `agg.json` it was read from (its directory holds the files
    /// the row links to).
    pub rows: &'a [LoadedRow],
    /// The verdict of every line the rows cover.
    pub verdicts: &'a [LineVerdict],
    /// Reference, AMD and target points drawn into the charts.
    pub baselines: &'a Baselines,
    /// Prices for the cost columns; `None` leaves them empty and says so.
    pub pricing: Option<&'a Pricing>,
    /// Jobs that failed or were interrupted (directory and record).
    pub failures: &'a [(PathBuf, JobStatus)],
    /// Anything else not in the tables (a collected run's failed jobs without results,
    /// expired artifacts), listed as is.
    pub notes: &'a [Note],
}

/// One thing a report lists besides its points, e.g. an artifact that expired.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Note {
    /// What kind of thing (`failed job`, `expired artifact`, …).
    pub what: String,
    /// Its name.
    pub name: String,
    /// What happened.
    pub detail: String,
    /// A local directory to link (relative to the page).
    pub dir: Option<PathBuf>,
    /// A web page to link (e.g. the job on GitHub).
    pub url: Option<String>,
}

/// HTML-escape text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The sorting script (and the `#selftest` hook). Its hash goes into the page's CSP.
const SCRIPT: &str = r#"(function () {
  'use strict';
  var errors = [];
  window.addEventListener('error', function (e) {
    errors.push(String(e.message));
    document.body.setAttribute('data-js-errors', errors.join(' | '));
  });
  function key(td) {
    var v = td.getAttribute('data-v');
    if (v === null) { v = td.textContent.trim(); }
    if (v === '') { return null; }
    var n = Number(v);
    return isNaN(n) ? v : n;
  }
  function sortTable(table, col, dir) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (x === null && y === null) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var c = (typeof x === 'number' && typeof y === 'number') ? x - y
        : String(x).localeCompare(String(y), undefined, { numeric: true });
      return dir * c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.setAttribute('aria-sort', i === col ? (dir > 0 ? 'ascending' : 'descending') : 'none');
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.tabIndex = 0;
      th.title = 'sort';
      th.addEventListener('click', function () {
        sortTable(table, i, th.getAttribute('aria-sort') === 'ascending' ? -1 : 1);
      });
      th.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); th.click(); }
      });
    });
  });
  if (location.hash === '#selftest') {
    var out = 'fail: no points table';
    var table = document.getElementById('points');
    if (table) {
      var ths = table.tHead.rows[0].cells, col = -1;
      for (var i = 0; i < ths.length; i++) {
        if (ths[i].getAttribute('data-key') === 'tput_per_gpu') { col = i; }
      }
      if (col >= 0) {
        ths[col].click();
        ths[col].click();
        var vals = Array.prototype.map.call(table.tBodies[0].rows, function (r) {
          return key(r.cells[col]);
        });
        var ok = ths[col].getAttribute('aria-sort') === 'descending';
        for (var j = 1; j < vals.length; j++) {
          if (vals[j] !== null && (vals[j - 1] === null || vals[j - 1] < vals[j])) { ok = false; }
        }
        out = (ok ? 'pass: ' : 'fail: ') + vals.join(',');
      }
    }
    var o = document.getElementById('selftest');
    o.textContent = out;
    document.body.setAttribute('data-selftest', out.slice(0, 4));
  }
  document.body.setAttribute('data-js', 'ok');
})();
"#;

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  margin: 0 auto; max-width: 1400px; padding: 16px 24px 48px; color: #1d1d1f; background: #fff; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; padding-top: 8px; border-top: 2px solid #e4e4e7; }
h3 { font-size: 16px; margin: 20px 0 6px; }
.meta { color: #55555c; margin: 0 0 12px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600;
  font-size: 13px; vertical-align: middle; margin-left: 8px; }
.yes { background: #dcfce7; color: #14532d; }
.no { background: #fee2e2; color: #7f1d1d; }
.na { background: #f4f4f5; color: #3f3f46; }
ul.reasons { margin: 6px 0 12px 0; padding-left: 20px; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px; }
.plots figure { margin: 0; border: 1px solid #e4e4e7; border-radius: 6px; overflow: hidden; }
.plots svg { display: block; width: 100%; height: auto; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 16px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #e4e4e7; padding: 4px 8px; text-align: left; vertical-align: top; }
td.n { text-align: right; white-space: nowrap; }
thead th { background: #f4f4f5; position: sticky; top: 0; }
table.sortable thead th { cursor: pointer; user-select: none; }
table.sortable thead th::after { content: " \2195"; color: #a1a1aa; }
table.sortable thead th[aria-sort="ascending"]::after { content: " \2191"; color: #18181b; }
table.sortable thead th[aria-sort="descending"]::after { content: " \2193"; color: #18181b; }
tbody tr:nth-child(even) { background: #fafafa; }
td.ok { color: #166534; font-weight: 600; }
td.bad { color: #991b1b; font-weight: 600; }
td.reason { min-width: 28em; max-width: 56em; }
ul.why { margin: 4px 0 8px; padding-left: 20px; font-size: 13px; }
ul.why ul { margin: 2px 0 6px; padding-left: 18px; color: #3f3f46; }
details summary { cursor: pointer; font-weight: 600; margin: 4px 0; }
td.nw, td.links { white-space: nowrap; }
td.img { min-width: 18em; font-size: 12px; word-break: break-all; }
td.caveat { min-width: 14em; max-width: 28em; font-size: 12px; color: #55555c; }
table { font-size: 13px; }
.links a { margin-right: 6px; }
.note { color: #55555c; font-size: 13px; }
output#selftest { display: none; }
"#;

/// Standard base64 (for the CSP hash).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                o.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

fn script_hash() -> String {
    use sha2::Digest;
    base64(&sha2::Sha256::digest(SCRIPT.as_bytes()))
}

/// A numeric cell: the exact value in `data-v` for sorting, `digits` decimals shown; an
/// absent value is an empty `data-v` (sorted last) shown as `—`.
fn num(v: Option<f64>, digits: usize) -> String {
    match v.filter(|v| v.is_finite()) {
        Some(v) => format!("<td class=\"n\" data-v=\"{v}\">{v:.digits$}</td>"),
        None => "<td class=\"n\" data-v=\"\">—</td>".into(),
    }
}

fn text(s: &str) -> String {
    format!("<td>{}</td>", esc(s))
}

/// A text cell that must not wrap (line and series names).
fn label(s: &str) -> String {
    format!("<td class=\"nw\">{}</td>", esc(s))
}

fn int(v: u32) -> String {
    format!("<td class=\"n\" data-v=\"{v}\">{v}</td>")
}

/// A header row: `(label, key)` pairs; the key names the column for scripts and tests.
fn thead(cols: &[(&str, &str)]) -> String {
    let mut s = String::from("<thead><tr>");
    for (label, key) in cols {
        let _ = write!(
            s,
            "<th data-key=\"{}\" aria-sort=\"none\">{}</th>",
            esc(key),
            esc(label)
        );
    }
    s.push_str("</tr></thead>");
    s
}

/// `to` relative to the directory `from`, as a URL path (segments percent-encoded).
pub fn relative_href(from: &Path, to: &Path) -> String {
    let abs = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                std::env::current_dir().unwrap_or_default().join(p)
            }
        })
    };
    let (from, to) = (abs(from), abs(to));
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); f.len() - common];
    for c in &t[common..] {
        parts.push(pct(&c.as_os_str().to_string_lossy()));
    }
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

fn pct(seg: &str) -> String {
    let mut o = String::new();
    for b in seg.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

/// Files of a job directory worth a link, in this order, when present.
const JOB_FILES: &[&str] = &[
    "agg.json",
    "bench.json",
    "summary.md",
    "report.html",
    "status.json",
    "server.log",
    "launch.sh",
    "gpu_metrics.csv",
    "power_validation.json",
    "requests.jsonl",
];

fn links(page: &Page, loaded: &LoadedRow) -> String {
    let Some(dir) = loaded.path.parent() else {
        return "<td></td>".into();
    };
    let own = page.out_dir.join("report.html");
    let mut s = String::from("<td class=\"links\">");
    for name in JOB_FILES {
        let f = dir.join(name);
        if !f.is_file() || (*name == "report.html" && same_file(&f, &own)) {
            continue;
        }
        let _ = write!(
            s,
            "<a href=\"{}\">{}</a>",
            esc(&relative_href(page.out_dir, &f)),
            esc(name)
        );
    }
    // A repeated point's trials, each with its own files.
    for t in &loaded.row.trials {
        let f = dir.join(&t.dir);
        if f.is_dir() {
            let _ = write!(
                s,
                "<a href=\"{}\">trial {}</a>",
                esc(&relative_href(page.out_dir, &f)),
                t.trial
            );
        }
    }
    s.push_str("</td>");
    s
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn series_name(r: &AggRow) -> String {
    format!("{} {} TP{}", r.hw, r.framework, r.tp)
}

/// Render the page.
pub fn render(page: &Page) -> Result<String, ReportError> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{}'; img-src data:\">\n\
<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body data-js=\"pending\">\n<h1>{}</h1>\n",
        script_hash(),
        esc(page.title),
        esc(page.title)
    );
    let eligible = page.verdicts.iter().filter(|v| v.eligible).count();
    let _ = writeln!(
        h,
        "<p class=\"meta\">{} points on {} lines ({} eligible); {} failed or interrupted jobs. \
Reference: {}. Generated by infmax {}.</p>",
        page.rows.len(),
        page.verdicts.len(),
        eligible,
        page.failures.len(),
        esc(&page
            .baselines
            .reference()
            .map(|s| s.label.clone())
            .unwrap_or_else(|| "none loaded".into())),
        esc(env!("CARGO_PKG_VERSION"))
    );

    // Lines: verdict, reasons, charts, per-point verdict table.
    let mut by_line: BTreeMap<super::LineKey, Vec<&AggRow>> = BTreeMap::new();
    for l in page.rows {
        by_line.entry(l.row.line()).or_default().push(&l.row);
    }
    for v in page.verdicts {
        line_section(&mut h, page, v, by_line.get(&v.line).map(Vec::as_slice))?;
    }

    points_table(&mut h, page);
    accuracy_table(&mut h, page);
    cost_table(&mut h, page);
    failures_table(&mut h, page);
    notes_table(&mut h, page);

    let _ = write!(
        h,
        "<output id=\"selftest\"></output>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    );
    Ok(h)
}

fn line_section(
    h: &mut String,
    page: &Page,
    v: &LineVerdict,
    rows: Option<&[&AggRow]>,
) -> Result<(), ReportError> {
    let ref_label = v.reference.as_deref().unwrap_or("(no reference)");
    let head = match (v.eligible, v.eligible_with_confidence) {
        (true, Some(true)) => "<span class=\"badge yes\">ELIGIBLE with 95 % confidence</span>",
        (true, Some(false)) => {
            "<span class=\"badge na\">ELIGIBLE at the estimates, not with 95 % confidence</span>"
        }
        (true, None) => "<span class=\"badge yes\">ELIGIBLE</span>",
        (false, _) => "<span class=\"badge no\">NOT ELIGIBLE</span>",
    };
    let _ = write!(
        h,
        "<section class=\"line\">\n<h2>{} <span class=\"note\">vs {}</span>{head}</h2>\n",
        esc(&v.line.to_string()),
        esc(ref_label),
    );
    let n = v.points.len();
    h.push_str("<ul class=\"reasons\">");
    if v.reference_points.is_empty() {
        let _ = write!(
            h,
            "<li>reference curve: missing ({} has no points for this line)</li>",
            esc(ref_label)
        );
    } else {
        let _ = write!(
            h,
            "<li>{} of {n} points beat the {} line (need at least half): <b>{}</b></li>",
            v.above,
            esc(ref_label),
            if v.half_rule { "yes" } else { "no" }
        );
    }
    if let (Some(k), false) = (v.above_with_confidence, v.reference_points.is_empty()) {
        let _ = write!(
            h,
            "<li>with 95 % confidence (throughput's lower bound above the curve across the interactivity interval): {k} of {n}</li>"
        );
    }
    if v.amd_known == 0 {
        h.push_str("<li>AMD's existing points: none known for this line</li>");
    } else {
        let _ = write!(
            h,
            "<li>no point below AMD's existing point at the same conc ({} of {n} have one): <b>{}</b></li>",
            v.amd_known,
            if v.amd_rule { "yes" } else { "no" }
        );
    }
    let _ = write!(
        h,
        "<li>every point has a passing accuracy result: <b>{}</b></li>",
        if v.accuracy_rule { "yes" } else { "no" }
    );
    if v.simulated > 0 {
        let _ = write!(
            h,
            "<li>simulated engine: {} of {n} points (never eligible)</li>",
            v.simulated
        );
    }
    let _ = write!(
        h,
        "<li>tie-break: {} points above; Σ throughput ratio {:.3} over {} same-conc points</li>",
        v.above, v.sum_tput_ratio, v.ratio_points
    );
    for r in &v.reasons {
        let _ = write!(h, "<li class=\"bad\">not eligible: {}</li>", esc(r));
    }
    h.push_str("</ul>\n");

    if let Some(rows) = rows {
        h.push_str("<div class=\"plots\">");
        for axis in [XAxis::Interactivity, XAxis::E2e] {
            let svg = line_svg(&v.line, rows, page.baselines, axis)?;
            let _ = write!(
                h,
                "<figure aria-label=\"{}\">{}</figure>",
                esc(&format!("{} throughput per GPU {}", v.line, axis.what())),
                strip_xml_decl(&svg)
            );
        }
        h.push_str("</div>\n");
    }

    let _ = write!(
        h,
        "<h3>Points of this line</h3>\n<div class=\"scroll\"><table class=\"sortable verdict\">{}<tbody>\n",
        thead(&[
            ("Series", "series"),
            ("Conc", "conc"),
            ("Intvty (tok/s/user)", "intvty"),
            ("Tput/GPU (tok/s)", "tput_per_gpu"),
            ("95 % CI", "tput_ci"),
            ("Curve y", "curve_y"),
            ("Beats line", "above"),
            ("With 95 % conf.", "above_ci"),
            ("Ratio same conc", "tput_ratio"),
            ("vs AMD (ours / AMD's)", "amd"),
            ("Accuracy", "accuracy"),
            ("Counts", "counts"),
        ])
    );
    for p in &v.points {
        h.push_str("<tr>");
        h.push_str(&label(&format!("{} {} TP{}", p.hw, p.framework, p.tp)));
        h.push_str(&int(p.conc));
        h.push_str(&num(p.intvty, 2));
        h.push_str(&num(Some(p.tput_per_gpu), 2));
        h.push_str(&match &p.confidence {
            Some(c) => format!(
                "<td class=\"n\" data-v=\"{}\">{:.2} – {:.2}{}</td>",
                c.tput_lo,
                c.tput_lo,
                c.tput_hi,
                if c.trials > 1 {
                    format!(" ({} trials)", c.trials)
                } else {
                    String::new()
                }
            ),
            None => "<td class=\"n\" data-v=\"\">—</td>".into(),
        });
        h.push_str(&match (p.curve.curve_y, p.curve.above) {
            (None, true) => "<td class=\"n\" data-v=\"\">beyond</td>".to_string(),
            (y, _) => num(y, 2),
        });
        h.push_str(&yes_no(p.curve.above));
        h.push_str(&match &p.confidence {
            Some(c) => format!(
                "<td class=\"{}\" title=\"{}\">{}</td>",
                if c.above { "ok" } else { "bad" },
                esc(&c.reason),
                if c.above { "yes" } else { "no" }
            ),
            None => "<td data-v=\"\">—</td>".into(),
        });
        h.push_str(&num(p.tput_ratio, 3));
        h.push_str(&match &p.amd {
            Some(a) => format!(
                "<td class=\"n {}\" data-v=\"{}\" title=\"{}\">{} {:.3}×</td>",
                if a.ok { "ok" } else { "bad" },
                a.ratio,
                esc(&a.reason),
                if a.ok { "not below" } else { "BELOW" },
                a.ratio
            ),
            None => "<td data-v=\"\">unknown</td>".into(),
        });
        h.push_str(&accuracy_cell(p.accuracy));
        h.push_str(&yes_no(p.counts));
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
    // Each point's verdict and every rule's outcome, in words (too long for a table cell).
    h.push_str("<details open><summary>Why, point by point</summary><ul class=\"why\">");
    for p in &v.points {
        let _ = write!(
            h,
            "<li><b>{} conc {}</b>: {}",
            esc(&format!("{} {} TP{}", p.hw, p.framework, p.tp)),
            p.conc,
            esc(&p.verdict)
        );
        if !p.reasons.is_empty() {
            h.push_str("<ul>");
            for r in &p.reasons {
                let _ = write!(h, "<li>{}</li>", esc(r));
            }
            h.push_str("</ul>");
        }
        h.push_str("</li>");
    }
    h.push_str("</ul></details>\n");
    h.push_str("</section>\n");
    Ok(())
}

fn yes_no(b: bool) -> String {
    if b {
        "<td class=\"ok\">yes</td>".into()
    } else {
        "<td class=\"bad\">no</td>".into()
    }
}

fn accuracy_cell(a: Option<AccuracyStatus>) -> String {
    match a {
        Some(AccuracyStatus::Pass) => "<td class=\"ok\">pass</td>".into(),
        Some(s @ (AccuracyStatus::Fail | AccuracyStatus::Error)) => {
            format!("<td class=\"bad\">{}</td>", s.as_str())
        }
        Some(s) => text(s.as_str()),
        None => "<td data-v=\"\">—</td>".into(),
    }
}

fn strip_xml_decl(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

fn points_table(h: &mut String, page: &Page) {
    let _ = write!(
        h,
        "<h2>Every point</h2>\n<div class=\"scroll\"><table class=\"sortable\" id=\"points\">{}<tbody>\n",
        thead(&[
            ("Line", "line"),
            ("Series", "series"),
            ("Precision", "precision"),
            ("EP", "ep"),
            ("Conc", "conc"),
            ("TTFT median (ms)", "ttft_ms"),
            ("TPOT median (ms)", "tpot_ms"),
            ("Intvty (tok/s/user)", "intvty"),
            ("E2E median (s)", "e2el_s"),
            ("Tput/GPU (tok/s)", "tput_per_gpu"),
            ("Output tput/GPU", "output_tput_per_gpu"),
            ("Ratio vs baseline", "tput_ratio"),
            ("Requests", "requests"),
            ("Trials", "trials"),
            ("Caveats", "caveats"),
            ("Image", "image"),
            ("Files", "files"),
        ])
    );
    for l in page.rows {
        let r = &l.row;
        h.push_str("<tr>");
        h.push_str(&label(&r.line().to_string()));
        h.push_str(&label(&series_name(r)));
        h.push_str(&text(&r.precision));
        h.push_str(&int(r.ep));
        h.push_str(&int(r.conc));
        h.push_str(&num(r.median_ttft_ms(), 1));
        h.push_str(&num(r.median_tpot_ms(), 2));
        h.push_str(&num(r.median_intvty(), 2));
        h.push_str(&num(r.median_e2el_ms().map(|v| v / 1000.0), 2));
        h.push_str(&num(Some(r.tput_per_gpu), 2));
        h.push_str(&num(Some(r.output_tput_per_gpu), 2));
        h.push_str(&num(r.baseline.tput_ratio(), 3));
        let c = r.confidence.as_ref();
        h.push_str(&num(c.map(|c| c.requests.iter().sum::<usize>() as f64), 0));
        h.push_str(&int(c.map(|c| c.trials).unwrap_or(1).max(1)));
        let caveats = c.map(|c| c.warnings.join("; ")).unwrap_or_default();
        let _ = write!(h, "<td class=\"caveat\">{}</td>", esc(&caveats));
        let _ = write!(h, "<td class=\"img\">{}</td>", esc(&r.image));
        h.push_str(&links(page, l));
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
}

fn accuracy_table(h: &mut String, page: &Page) {
    let _ = write!(
        h,
        "<h2>Accuracy</h2>\n<div class=\"scroll\"><table class=\"sortable\" id=\"accuracy\">{}<tbody>\n",
        thead(&[
            ("Line", "line"),
            ("Series", "series"),
            ("Conc", "conc"),
            ("Task", "task"),
            ("Metrics", "metrics"),
            ("Thresholds", "threshold"),
            ("Rule", "rule"),
            ("Status", "status"),
        ])
    );
    for l in page.rows {
        let r = &l.row;
        h.push_str("<tr>");
        h.push_str(&label(&r.line().to_string()));
        h.push_str(&label(&series_name(r)));
        h.push_str(&int(r.conc));
        match &r.accuracy {
            Some(a) => {
                let fmt = |m: &indexmap::IndexMap<String, f64>| {
                    m.iter()
                        .map(|(k, v)| format!("{k} {v:.4}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                h.push_str(&text(&a.task));
                h.push_str(&text(&fmt(&a.metrics)));
                h.push_str(&text(&fmt(&a.threshold)));
                h.push_str(&text(a.rule.as_deref().unwrap_or("")));
                h.push_str(&accuracy_cell(Some(a.status)));
            }
            None => {
                h.push_str("<td colspan=\"4\">no accuracy gate ran for this job</td>");
                h.push_str(&accuracy_cell(None));
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
}

fn cost_table(h: &mut String, page: &Page) {
    let _ = write!(h, "<h2>Energy and cost</h2>\n<p class=\"note\">");
    match page.pricing {
        Some(p) => {
            let _ = write!(
                h,
                "Prices ({}) from <code>{}</code>: each cost per million tokens charges the whole GPU-hour to that token class. ",
                esc(&p.currency),
                esc(&p.file)
            );
        }
        None => h.push_str("No pricing file: no costs. "),
    }
    h.push_str(
        "Energy: GPU-board power integrated over the benchmark window (InferenceX power schema v2); \
tokens/s per MW of that board power, not all-in facility power.</p>\n",
    );
    let _ = writeln!(
        h,
        "<div class=\"scroll\"><table class=\"sortable\" id=\"cost\">{}<tbody>",
        thead(&[
            ("Line", "line"),
            ("Series", "series"),
            ("Conc", "conc"),
            ("$/GPU-h", "per_gpu_hour"),
            ("Priced as", "priced_as"),
            ("$/M input", "per_m_input"),
            ("$/M output", "per_m_output"),
            ("$/M total", "per_m_total"),
            ("Power/GPU (W)", "avg_power_w"),
            ("tok/s per MW", "tok_s_per_mw"),
            ("J/output token", "j_per_output"),
            ("J/total token", "j_per_total"),
            ("Telemetry", "telemetry"),
        ])
    );
    for l in page.rows {
        let r = &l.row;
        let c = page.pricing.and_then(|p| cost(r, p));
        let e = efficiency(r);
        h.push_str("<tr>");
        h.push_str(&label(&r.line().to_string()));
        h.push_str(&label(&series_name(r)));
        h.push_str(&int(r.conc));
        h.push_str(&num(c.as_ref().map(|c| c.price.per_gpu_hour), 2));
        h.push_str(&match &c {
            Some(c) => {
                let src = [c.price.source.as_deref(), c.price.date.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "<td title=\"{}\">{}</td>",
                    esc(&src),
                    esc(&c.price.priced_as)
                )
            }
            None => format!(
                "<td data-v=\"\">{}</td>",
                if page.pricing.is_some() {
                    "no price"
                } else {
                    "—"
                }
            ),
        });
        h.push_str(&num(c.as_ref().and_then(|c| c.per_m_input), 4));
        h.push_str(&num(c.as_ref().and_then(|c| c.per_m_output), 4));
        h.push_str(&num(c.as_ref().and_then(|c| c.per_m_total), 4));
        let ok = e.as_ref().ok();
        h.push_str(&num(ok.map(|e| e.avg_power_w), 1));
        h.push_str(&num(ok.map(|e| e.tok_s_per_mw), 0));
        h.push_str(&num(ok.and_then(|e| e.joules_per_output_token), 4));
        h.push_str(&num(ok.and_then(|e| e.joules_per_total_token), 4));
        h.push_str(&match &e {
            Ok(_) => "<td class=\"ok\">valid (v2)</td>".to_string(),
            Err(why) => text(why),
        });
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
    if let Some(p) = page.pricing {
        h.push_str("<details><summary>Price sources</summary><ul>");
        for (k, v) in &p.hardware {
            let fig = match (&v.per_gpu_hour, &v.same_as) {
                (Some(x), _) => format!("{x:.2} {}/GPU-hour", p.currency),
                (None, Some(o)) => format!("as {o}"),
                (None, None) => String::new(),
            };
            let _ = write!(
                h,
                "<li><b>{}</b>: {} — {} {} {}</li>",
                esc(k),
                esc(&fig),
                esc(v.note.as_deref().unwrap_or("")),
                esc(v.source.as_deref().unwrap_or("")),
                esc(v.date.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</ul></details>\n");
    }
}

fn failures_table(h: &mut String, page: &Page) {
    if page.failures.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<h2>Failed or interrupted jobs</h2>\n<div class=\"scroll\"><table class=\"sortable\" id=\"failures\">{}<tbody>\n",
        thead(&[
            ("Job", "job"),
            ("What", "what"),
            ("Exit", "exit"),
            ("Error", "error"),
        ])
    );
    for (dir, st) in page.failures {
        h.push_str("<tr>");
        let _ = write!(
            h,
            "<td><a href=\"{}\">{}</a></td>",
            esc(&relative_href(page.out_dir, dir)),
            esc(&dir.display().to_string())
        );
        h.push_str(&text(&st.describe()));
        h.push_str(&num(st.exit_code.map(|c| c as f64), 0));
        let _ = write!(h, "<td class=\"reason\">{}</td>", esc(&st.error));
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
}

fn notes_table(h: &mut String, page: &Page) {
    if page.notes.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<h2>Not in the tables</h2>\n<div class=\"scroll\"><table class=\"sortable\" id=\"notes\">{}<tbody>\n",
        thead(&[("What", "what"), ("Name", "name"), ("Details", "detail")])
    );
    for n in page.notes {
        h.push_str("<tr>");
        h.push_str(&text(&n.what));
        let href = match (&n.dir, &n.url) {
            (Some(d), _) => Some(relative_href(page.out_dir, d)),
            (None, Some(u)) if u.starts_with("https://") => Some(u.clone()),
            _ => None,
        };
        match href {
            Some(href) => {
                let _ = write!(
                    h,
                    "<td><a href=\"{}\">{}</a></td>",
                    esc(&href),
                    esc(&n.name)
                );
            }
            None => h.push_str(&text(&n.name)),
        }
        let _ = write!(h, "<td class=\"reason\">{}</td>", esc(&n.detail));
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
}

/// Render the page and write it to `<out_dir>/report.html`; returns the path.
pub fn write_report(page: &Page) -> Result<PathBuf, ReportError> {
    let html = render(page)?;
    std::fs::create_dir_all(page.out_dir).map_err(|e| ReportError::io(page.out_dir, e))?;
    let path = page.out_dir.join("report.html");
    super::write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

/// The page of `rows` (verdicts computed here) written to `<out_dir>/report.html`, for
/// callers that have rows rather than a finished report: a job, a batch. Pricing comes from
/// `$INFMAX_PRICING`, else `./pricing.yaml`, else the shipped file; one that does not load
/// is left out with a warning (a job's numbers never fail over its price list).
pub fn write_for_rows(
    title: &str,
    out_dir: &Path,
    rows: &[LoadedRow],
    baselines: &Baselines,
    failures: &[(PathBuf, JobStatus)],
) -> Result<PathBuf, ReportError> {
    let plain: Vec<AggRow> = rows.iter().map(|l| l.row.clone()).collect();
    let verdicts = super::verdict(&plain, baselines);
    let flag = std::env::var_os("INFMAX_PRICING").map(PathBuf::from);
    let pricing = match super::cli::load_pricing(flag.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("report.html without costs: {e:#}");
            None
        }
    };
    write_report(&Page {
        title,
        out_dir,
        rows,
        verdicts: &verdicts,
        baselines,
        pricing: pricing.as_ref(),
        failures,
        notes: &[],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_markup_could_hide_in() {
        assert_eq!(
            esc(r#"<script>alert('x')</script> & "q""#),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn relative_links() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("report");
        let b = t.path().join("res/job 1#x");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("agg.json"), "{}").unwrap();
        assert_eq!(
            relative_href(&a, &b.join("agg.json")),
            "../res/job%201%23x/agg.json"
        );
        assert_eq!(relative_href(&b, &b.join("agg.json")), "agg.json");
    }

    #[test]
    fn numeric_cells_sort_by_exact_value() {
        assert_eq!(
            num(Some(1.23456), 2),
            "<td class=\"n\" data-v=\"1.23456\">1.23</td>"
        );
        assert_eq!(num(None, 2), "<td class=\"n\" data-v=\"\">—</td>");
        assert_eq!(num(Some(f64::NAN), 2), "<td class=\"n\" data-v=\"\">—</td>");
    }
}
