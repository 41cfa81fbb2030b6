//! The HTML report: `runner report` writes one self-contained page whose every value is
//! escaped, and a real headless Chromium (Debian's package; `scripts/test` installs it and
//! exports `INFMAX_CHROMIUM`) loads it without a script error, sorts its table, and
//! renders charts and tables into a screenshot.

use crate::report::{point, shipped};
use infmax::report::AggRow;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

const RUNNER: &str = env!("CARGO_BIN_EXE_runner");

/// A payload that, were it ever not escaped (or escaped and then unescaped into a script),
/// would mark the page; the CSP would also refuse to run it.
const INJECT: &str = "<script>document.body.setAttribute('data-pwned','1')</script>";

/// Result directories for a few points of two lines, one of them with hostile strings in
/// every config-derived field; returns the parent directory.
fn results(root: &Path) -> PathBuf {
    let b = shipped();
    let dir = root.join("results");
    let mut rows: Vec<AggRow> = vec![];
    for (conc, x, y) in [(4, 60.0, 900.0), (8, 50.0, 1300.0), (16, 40.0, 1900.0)] {
        let mut r = point("dsr1", conc, x, y, &b);
        // ±8 % on throughput, ±5 % on interactivity and E2E: error bars on both charts.
        let iv = |v: f64, f: f64| json!({"estimate": v, "lo": v * (1.0 - f), "hi": v * (1.0 + f)});
        r.confidence = Some(
            serde_json::from_value(json!({
                "level": 0.95, "method": "bootstrap", "resamples": 2000, "seed": 1,
                "trials": 1, "requests": [conc * 10],
                "median_ttft_ms": null, "median_tpot_ms": iv(1000.0 / x, 0.05),
                "median_intvty": iv(x, 0.05), "median_e2el_ms": iv(5000.0, 0.05),
                "output_throughput": null, "output_tput_per_gpu": null,
                "tput_per_gpu": iv(y, 0.08),
                "warnings": [format!("p99 TTFT rests on {} requests (< 100)", conc * 10)]
            }))
            .unwrap(),
        );
        if conc == 4 {
            // Valid power schema v2: 750 W per GPU → 900 / 750e-6 = 1.2e6 tok/s per MW.
            r.power_metric_schema_version = Some(2);
            r.power_valid = Some(1);
            r.avg_power_w = Some(750.0);
            r.joules_per_output_token = Some(1.5);
        } else if conc == 8 {
            r.power_metric_schema_version = Some(2);
            r.power_valid = Some(0);
        }
        rows.push(r);
    }
    let mut evil = point("gptoss", 4, 90.0, 2000.0, &b);
    evil.framework = format!("vllm{INJECT}");
    evil.image = format!("img\"><img src=x onerror=alert(1)>{INJECT}");
    evil.hw = format!("mi355x{INJECT}");
    rows.push(evil);
    rows.push(point("gptoss", 8, 70.0, 3000.0, &b));
    // The first point combines two trials, each in its own directory.
    rows[0].trials = (1..=2)
        .map(|t| {
            serde_json::from_value(json!({
                "trial": t, "seed": t, "dir": format!("trial-{t}"), "requests": 40,
                "tput_per_gpu": 900.0, "output_tput_per_gpu": 450.0,
                "median_ttft_ms": null, "median_tpot_ms": null, "median_e2el_ms": null
            }))
            .unwrap()
        })
        .collect();
    for (i, r) in rows.iter().enumerate() {
        let d = dir.join(format!("job {i}"));
        for t in &r.trials {
            std::fs::create_dir_all(d.join(&t.dir)).unwrap();
            std::fs::write(d.join(&t.dir).join("bench.json"), "{}").unwrap();
        }
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("agg.json"), serde_json::to_string(r).unwrap()).unwrap();
        std::fs::write(d.join("server.log"), "log\n").unwrap();
    }
    dir
}

fn report(root: &Path) -> (PathBuf, String) {
    let dir = results(root);
    let out = root.join("report");
    let o = Command::new(RUNNER)
        .current_dir(root)
        .args(["report", "--no-png", "--title", "HTML <b>test</b>", "--dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .arg("--baselines")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("baselines"))
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("INFMAX_PRICING")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let path = out.join("report.html");
    let html = std::fs::read_to_string(&path).unwrap();
    (path, html)
}

#[test]
fn html_report_is_self_contained_and_escaped() {
    let t = tempfile::tempdir().unwrap();
    let (_, html) = report(t.path());
    // Exactly one script, ours; the hostile strings only as text.
    assert_eq!(html.matches("<script").count(), 1, "one script element");
    assert!(!html.contains("data-pwned','1')</script>"));
    assert!(!html.contains("<img src=x"));
    assert!(html.contains("vllm&lt;script&gt;document.body.setAttribute(&#39;data-pwned&#39;"));
    assert!(html.contains("<title>HTML &lt;b&gt;test&lt;/b&gt;</title>"));
    // In the SVG, plotters' own escaping.
    assert!(html.contains("MI355X&lt;SCRIPT&gt;") || html.contains("mi355x&lt;script&gt;"));
    // Nothing to fetch: no external URL in any src/href, the CSP forbids loads.
    for attr in [
        "src=\"http",
        "href=\"http",
        "href=\"//",
        "src=\"//",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(attr), "external reference {attr}");
    }
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    // Both lines, their inline charts, the tables, costs from the shipped pricing file
    // ($2.00/GPU-h for mi355x at 900 tok/s/GPU total: 2/(900·3600)·1e6 = 0.6172839…).
    assert!(html.contains("dsr1-fp4 ISL 1024 / OSL 1024"));
    assert!(html.contains("gptoss-fp4 ISL 1024 / OSL 1024"));
    assert_eq!(html.matches("<svg").count(), 4, "two charts per line");
    for id in ["points", "accuracy", "cost"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "table {id}");
    }
    // The throughput interval of conc 4 (900 ± 8 %) in the verdict table.
    assert!(html.contains("<td class=\"n\" data-v=\"828\">828.00 – 972.00</td>"));
    let per_m = 2.0 / (900.0 * 3600.0) * 1e6;
    assert!(
        html.contains(&format!("data-v=\"{per_m}\">{per_m:.4}<")),
        "cost cell for $2.00/GPU-h at 900 tok/s/GPU"
    );
    // Energy: 1.2e6 tok/s/MW from 750 W/GPU at 900 tok/s/GPU; an invalid v2 row and a row
    // without telemetry say why they have none.
    assert!(html.contains("<td class=\"n\" data-v=\"1200000\">1200000</td>"));
    assert!(html.contains("<td>telemetry invalid (see power_validation.json)</td>"));
    assert!(html.contains("<td>no telemetry</td>"));
    // Relative links to each job's files (the space percent-encoded).
    assert!(html.contains("href=\"../results/job%200/agg.json\""));
    assert!(html.contains("href=\"../results/job%200/server.log\""));
    assert!(html.contains("<a href=\"../results/job%200/trial-2\">trial 2</a>"));
    assert!(html.contains("p99 TTFT rests on 40 requests (&lt; 100)"));
}

/// Chromium to drive: `INFMAX_CHROMIUM`, else `chromium` on PATH. Without one the test is
/// skipped with a note, except under CI (`CI` set), where it fails.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("INFMAX_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .flat_map(|b| std::env::split_paths(&path).map(move |d| d.join(b)))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let why = "no chromium (scripts/test installs Debian's and exports INFMAX_CHROMIUM)";
        if std::env::var_os("CI").is_some() {
            panic!("browser test under CI, but {why}");
        }
        eprintln!("note: skipping the headless-browser test: {why}");
    }
    found
}

fn headless(bin: &Path, profile: &Path, args: &[&str], url: &str) -> (String, String) {
    let o = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .env("HOME", profile)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "chromium failed: {stderr}");
    (String::from_utf8_lossy(&o.stdout).into_owned(), stderr)
}

/// Lines of Chromium's log that report a page problem: a console message at warning level
/// or above, an uncaught exception, a CSP refusal, a failed load.
fn page_problems(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains(":CONSOLE")
                || l.contains("Uncaught")
                || l.contains("Refused to")
                || l.contains("net::ERR_")
        })
        .collect()
}

#[test]
fn html_report_in_headless_chromium() {
    let Some(bin) = chromium() else { return };
    let t = tempfile::tempdir().unwrap();
    let (path, _) = report(t.path());
    let profile = t.path().join("profile");
    let url = format!("file://{}", path.display());

    // The DOM after the page's script ran its self-test: sort the points table by
    // throughput twice (ascending, then descending) and check the order.
    let (dom, log) = headless(&bin, &profile, &["--dump-dom"], &format!("{url}#selftest"));
    let problems = page_problems(&log);
    assert!(problems.is_empty(), "page problems: {problems:#?}");
    let body = &dom[dom.find("<body").expect("a body")..];
    let body_tag = &body[..body.find('>').unwrap()];
    assert!(
        body_tag.contains("data-js=\"ok\""),
        "script ran: {body_tag}"
    );
    assert!(!body_tag.contains("data-js-errors"), "{body_tag}");
    assert!(!body_tag.contains("data-pwned"), "injected markup ran");
    assert!(body_tag.contains("data-selftest=\"pass\""), "{body_tag}");
    // Independently of the page's own check: the dumped points table is in descending
    // throughput order (the fixture's throughputs are 900…3000).
    let table = &dom[dom.find("id=\"points\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    let header = &table[..table.find("</thead>").unwrap()];
    let col = header
        .match_indices("<th ")
        .position(|(i, _)| header[i..].starts_with("<th data-key=\"tput_per_gpu\""))
        .expect("tput column");
    let mut tputs = vec![];
    for tr in table.split("<tr>").skip(2) {
        let td = tr.split("<td").nth(col + 1).unwrap();
        let v = td.split("data-v=\"").nth(1).unwrap();
        tputs.push(v[..v.find('"').unwrap()].parse::<f64>().unwrap());
    }
    assert_eq!(tputs, vec![3000.0, 2000.0, 1900.0, 1300.0, 900.0]);

    // The screenshot: the charts are drawn (our first series' blue, the reference's black
    // dashes) and the tables rendered (plenty of distinct colours, not a blank page).
    let shot = t.path().join("shot.png");
    let (_, log) = headless(
        &bin,
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,2400",
            "--hide-scrollbars",
        ],
        &url,
    );
    let problems = page_problems(&log);
    assert!(problems.is_empty(), "page problems: {problems:#?}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    assert!(ch >= 3, "{:?}", info.color_type);
    let (w, h) = (info.width as usize, info.height as usize);
    assert_eq!((w, h), (1400, 2400));
    let px = |x: usize, y: usize| {
        let i = (y * w + x) * ch;
        (buf[i], buf[i + 1], buf[i + 2])
    };
    let near = |a: (u8, u8, u8), b: (u8, u8, u8)| {
        a.0.abs_diff(b.0) < 24 && a.1.abs_diff(b.1) < 24 && a.2.abs_diff(b.2) < 24
    };
    // The first chart sits in the upper part of the page.
    let mut blue = 0;
    let mut colours = std::collections::HashSet::new();
    for y in 0..h / 2 {
        for x in 0..w {
            let p = px(x, y);
            if near(p, (31, 119, 180)) {
                blue += 1;
            }
            colours.insert(p);
        }
    }
    assert!(
        blue > 200,
        "our series drawn in the charts: {blue} blue pixels"
    );
    assert!(
        colours.len() > 50,
        "a rendered page: {} colours",
        colours.len()
    );
    eprintln!(
        "screenshot {}: {blue} series pixels, {} colours in the upper half",
        shot.display(),
        colours.len()
    );
    if let Some(keep) = std::env::var_os("INFMAX_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
