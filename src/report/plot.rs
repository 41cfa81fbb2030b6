//! Plots per model × ISL/OSL line: throughput per GPU against interactivity (the bounty's
//! plane) and against median end-to-end latency, one series per (hardware, framework, tp),
//! reference curves dashed, targets as crosses, every point labelled with its conc, and
//! 95 % confidence intervals (the agg row's `confidence`) as error bars along both axes.
//!
//! SVG and PNG both work offline: text is laid out with DejaVu Sans embedded in the binary
//! (the `dejavu` crate through plotters' `ab_glyph` backend), so neither a system font nor
//! fontconfig is needed. The SVG names the font family `sans-serif` for viewers.

use super::agg::AggRow;
use super::baseline::{Baselines, LineKey, RefPoint, Role};
use super::ReportError;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the x axis shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Median interactivity (tokens/s/user).
    Interactivity,
    /// Median end-to-end latency (s).
    E2e,
}

impl XAxis {
    fn slug(self) -> &'static str {
        match self {
            XAxis::Interactivity => "tput_vs_intvty",
            XAxis::E2e => "tput_vs_e2e",
        }
    }
    fn desc(self) -> &'static str {
        match self {
            XAxis::Interactivity => "Interactivity, median (tok/s/user)",
            XAxis::E2e => "End-to-end latency, median (s)",
        }
    }
    /// What the chart plots against, in words.
    pub fn what(self) -> &'static str {
        match self {
            XAxis::Interactivity => "vs interactivity",
            XAxis::E2e => "vs median E2E latency",
        }
    }
}

/// Image formats to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    /// Write `.svg`.
    pub svg: bool,
    /// Write `.png`.
    pub png: bool,
}

impl Default for Formats {
    fn default() -> Self {
        Formats {
            svg: true,
            png: true,
        }
    }
}

const W: u32 = 1280;
const H: u32 = 800;
const FONT: &str = "sans-serif";

/// Our series colours (Tableau 10 without black/grey, which the baselines use).
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
const REF_COLOR: RGBColor = RGBColor(0, 0, 0);
const AMD_COLOR: RGBColor = RGBColor(150, 0, 24);
const TARGET_COLOR: RGBColor = RGBColor(0, 110, 60);

fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let ok = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok();
        assert!(ok, "the embedded DejaVu Sans font parses");
    });
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Ours(usize),
    Reference,
    Amd,
    Target,
}

/// A point's 95 % confidence interval along each axis, drawn as error bars.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bars {
    /// (low, high) along x.
    x: Option<(f64, f64)>,
    /// (low, high) along y.
    y: Option<(f64, f64)>,
}

fn bars_of_row(r: &AggRow, axis: XAxis) -> Option<Bars> {
    let c = r.confidence.as_ref()?;
    let x = match axis {
        XAxis::Interactivity => c.median_intvty,
        XAxis::E2e => c.median_e2el_ms.map(|i| i.scaled(1e-3)),
    };
    let b = Bars {
        x: x.map(|i| (i.lo, i.hi)),
        y: c.tput_per_gpu.map(|i| (i.lo, i.hi)),
    };
    (b.x.is_some() || b.y.is_some()).then_some(b)
}

#[derive(Debug, Clone)]
struct Series {
    label: String,
    kind: Kind,
    /// (x, y, conc), sorted by x.
    points: Vec<(f64, f64, u32)>,
    /// 95 % interval bars of each point (aligned with `points`; `None`: no interval).
    bars: Vec<Option<Bars>>,
    /// What a point's label calls its concurrency: `c` (requests) or `u` (agentic users).
    conc_prefix: &'static str,
}

fn x_of_row(r: &AggRow, axis: XAxis) -> Option<f64> {
    match axis {
        XAxis::Interactivity => r.median_intvty(),
        XAxis::E2e => r.median_e2el_ms().map(|v| v / 1000.0),
    }
}

fn x_of_ref(p: &RefPoint, axis: XAxis) -> f64 {
    match axis {
        XAxis::Interactivity => p.median_intvty,
        XAxis::E2e => p.median_e2e_ms / 1000.0,
    }
}

fn build_series(
    line: &LineKey,
    rows: &[&AggRow],
    baselines: &Baselines,
    axis: XAxis,
) -> Vec<Series> {
    type SeriesKey = (String, String, u32);
    type Pt = ((f64, f64, u32), Option<Bars>);
    let mut groups: BTreeMap<SeriesKey, Vec<Pt>> = BTreeMap::new();
    for r in rows {
        if let Some(x) = x_of_row(r, axis) {
            groups
                .entry((r.hw.clone(), r.framework.clone(), r.tp))
                .or_default()
                .push(((x, r.tput_per_gpu, r.conc), bars_of_row(r, axis)));
        }
    }
    let mut out = Vec::new();
    for (i, ((hw, fw, tp), mut pts)) in groups.into_iter().enumerate() {
        pts.sort_by(|a, b| a.0 .0.total_cmp(&b.0 .0));
        let (points, bars) = pts.into_iter().unzip();
        out.push(Series {
            label: format!("{} {} TP{tp}", hw.to_uppercase(), fw),
            kind: Kind::Ours(i),
            points,
            bars,
            conc_prefix: "c",
        });
    }
    for set in &baselines.sets {
        let kind = match set.role {
            Role::Reference => Kind::Reference,
            Role::Amd => Kind::Amd,
            Role::Target => Kind::Target,
        };
        let mut pts: Vec<(f64, f64, u32)> = set
            .curve(line)
            .iter()
            .map(|p| (x_of_ref(p, axis), p.tput_per_gpu, p.conc))
            .collect();
        if pts.is_empty() {
            continue;
        }
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let what = match set.role {
            Role::Reference => "reference",
            Role::Amd => "AMD existing",
            Role::Target => "targets",
        };
        out.push(Series {
            label: format!("{} ({what})", set.label),
            kind,
            bars: vec![None; pts.len()],
            points: pts,
            conc_prefix: "c",
        });
    }
    out
}

fn color(kind: Kind) -> RGBColor {
    match kind {
        Kind::Ours(i) => PALETTE[i % PALETTE.len()],
        Kind::Reference => REF_COLOR,
        Kind::Amd => AMD_COLOR,
        Kind::Target => TARGET_COLOR,
    }
}

fn title(line: &LineKey, axis: XAxis) -> String {
    format!(
        "{} · ISL {} / OSL {} — throughput per GPU {}",
        line.model,
        line.isl,
        line.osl,
        axis.what()
    )
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    axis: XAxis,
    series: &[Series],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    // The axes reach the upper ends of the error bars too.
    let bar_x = series
        .iter()
        .flat_map(|s| s.bars.iter().flatten().filter_map(|b| b.x.map(|x| x.1)));
    let bar_y = series
        .iter()
        .flat_map(|s| s.bars.iter().flatten().filter_map(|b| b.y.map(|y| y.1)));
    let xs = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .chain(bar_x);
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(bar_y);
    let xmax = xs.fold(0.0f64, f64::max).max(1e-9) * 1.12;
    let ymax = ys.fold(0.0f64, f64::max).max(1e-9) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26, FontStyle::Bold).into_font())
        .margin(24)
        .x_label_area_size(64)
        .y_label_area_size(96)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(axis.desc())
        .y_desc("Throughput per GPU (tok/s/GPU)")
        .axis_desc_style((FONT, 20))
        .label_style((FONT, 16))
        .x_label_formatter(&|v| tick(*v, xmax))
        .y_label_formatter(&|v| tick(*v, ymax))
        .max_light_lines(4)
        .light_line_style(RGBColor(236, 236, 236))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()
        .map_err(e)?;
    let label_font = (FONT, 14).into_font().color(&RGBColor(40, 40, 40));
    for s in series {
        let c = color(s.kind);
        let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
        match s.kind {
            Kind::Ours(_) => {
                let style = c.stroke_width(3);
                chart
                    .draw_series(LineSeries::new(pts.clone(), style))
                    .map_err(e)?
                    .label(&s.label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 28, y)], style));
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 6, c.filled())))
                    .map_err(e)?;
                // 95 % intervals: a bar with 5-pixel caps along each axis that has one.
                let bar = c.stroke_width(2);
                for (&(x, y, _), b) in s.points.iter().zip(&s.bars) {
                    let Some(b) = b else { continue };
                    if let Some((lo, hi)) = b.y {
                        chart
                            .draw_series([PathElement::new(vec![(x, lo), (x, hi)], bar)])
                            .map_err(e)?;
                        chart
                            .draw_series([lo, hi].map(|v| {
                                EmptyElement::at((x, v))
                                    + PathElement::new(vec![(-5, 0), (5, 0)], bar)
                            }))
                            .map_err(e)?;
                    }
                    if let Some((lo, hi)) = b.x {
                        chart
                            .draw_series([PathElement::new(vec![(lo, y), (hi, y)], bar)])
                            .map_err(e)?;
                        chart
                            .draw_series([lo, hi].map(|v| {
                                EmptyElement::at((v, y))
                                    + PathElement::new(vec![(0, -5), (0, 5)], bar)
                            }))
                            .map_err(e)?;
                    }
                }
            }
            Kind::Reference | Kind::Amd => {
                let style = c.stroke_width(2);
                chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 9, 6, style))
                    .map_err(e)?
                    .label(&s.label)
                    .legend(move |(x, y)| {
                        DashedPathElement::new(vec![(x, y), (x + 28, y)], 7, 4, style)
                    });
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 5, c.stroke_width(2))))
                    .map_err(e)?;
            }
            Kind::Target => {
                let style = c.stroke_width(3);
                chart
                    .draw_series(pts.iter().map(|&p| Cross::new(p, 7, style)))
                    .map_err(e)?
                    .label(&s.label)
                    .legend(move |(x, y)| Cross::new((x + 14, y), 6, style));
            }
        }
        // Our labels above-right of the point, baseline labels below-right: where a curve
        // crosses a baseline the two sets of labels do not land on each other.
        let offset = match s.kind {
            Kind::Ours(_) => (8, -20),
            _ => (8, 6),
        };
        chart
            .draw_series(s.points.iter().map(|&(x, y, conc)| {
                EmptyElement::at((x, y))
                    + Text::new(
                        format!("{}{conc}", s.conc_prefix),
                        offset,
                        label_font.clone(),
                    )
            }))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        // Throughput falls with interactivity (empty upper right) and rises with latency
        // (empty lower right): put the legend where the curves are not.
        .position(match axis {
            XAxis::Interactivity => SeriesLabelPosition::UpperRight,
            XAxis::E2e => SeriesLabelPosition::LowerRight,
        })
        .margin(12)
        .legend_area_size(36)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(120, 120, 120))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Tick label: no decimals on axes spanning more than ~20 units, one below that.
fn tick(v: f64, span: f64) -> String {
    if span >= 20.0 {
        format!("{v:.0}")
    } else if span >= 2.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Draw one chart of `line` (our `rows` of that line plus every baseline set's points for
/// it) to `stem.svg` and/or `stem.png`; returns the files written.
pub fn write_line_plot(
    stem: &Path,
    line: &LineKey,
    rows: &[&AggRow],
    baselines: &Baselines,
    axis: XAxis,
    formats: Formats,
) -> Result<Vec<PathBuf>, ReportError> {
    let series = build_series(line, rows, baselines, axis);
    write_series(stem, &title(line, axis), axis, &series, formats)
}

/// One chart of `line` as an SVG document in a string, for inlining into the HTML report
/// (plotters escapes every text it draws, so config strings cannot inject markup).
pub fn line_svg(
    line: &LineKey,
    rows: &[&AggRow],
    baselines: &Baselines,
    axis: XAxis,
) -> Result<String, ReportError> {
    ensure_font();
    let series = build_series(line, rows, baselines, axis);
    let mut svg = String::new();
    // Smaller than the files' canvas: the page shows two charts side by side, and the same
    // font sizes on a smaller canvas stay readable when the browser scales it down.
    draw(
        SVGBackend::with_string(&mut svg, (960, 620)).into_drawing_area(),
        &title(line, axis),
        axis,
        &series,
    )
    .map_err(|m| plot_err(Path::new(&stem(line, axis)), m))?;
    Ok(svg)
}

/// Draw `series` under `title` to `stem.svg` and/or `stem.png`.
fn write_series(
    stem: &Path,
    title: &str,
    axis: XAxis,
    series: &[Series],
    formats: Formats,
) -> Result<Vec<PathBuf>, ReportError> {
    ensure_font();
    let title = title.to_string();
    let mut out = Vec::new();
    if formats.svg {
        let path = stem.with_extension("svg");
        let mut svg = String::new();
        draw(
            SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area(),
            &title,
            axis,
            series,
        )
        .map_err(|m| plot_err(&path, m))?;
        super::write_atomic(&path, svg.as_bytes())?;
        out.push(path);
    }
    if formats.png {
        let path = stem.with_extension("png");
        // The bitmap backend writes the file itself (format by extension): draw to a
        // temporary `.png` beside the target, flush it, then rename it into place.
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("plot.png");
        let tmp = path.with_file_name(format!(".tmp-{}-{name}", std::process::id()));
        let drawn = draw(
            BitMapBackend::new(&tmp, (W, H)).into_drawing_area(),
            &title,
            axis,
            series,
        );
        let done = drawn.map_err(|m| plot_err(&path, m)).and_then(|()| {
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| ReportError::io(&path, e))
        });
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        done?;
        super::fsio::sync_dir(&path)?;
        out.push(path);
    }
    Ok(out)
}

fn plot_err(path: &Path, message: String) -> ReportError {
    ReportError::Plot {
        file: path.display().to_string(),
        message,
    }
}

/// The file stem of a line's chart: `<model>_<isl>x<osl>_<axis>`.
pub fn stem(line: &LineKey, axis: XAxis) -> String {
    let model: String = line
        .model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{model}_{}x{}_{}", line.isl, line.osl, axis.slug())
}

/// Both charts for every line the rows cover, into `dir`; returns the files written.
pub fn write_plots(
    dir: &Path,
    rows: &[AggRow],
    baselines: &Baselines,
    formats: Formats,
) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
    let mut lines: BTreeMap<LineKey, Vec<&AggRow>> = BTreeMap::new();
    for r in rows {
        lines.entry(r.line()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (line, rs) in &lines {
        for axis in [XAxis::Interactivity, XAxis::E2e] {
            out.extend(write_line_plot(
                &dir.join(stem(line, axis)),
                line,
                rs,
                baselines,
                axis,
                formats,
            )?);
        }
    }
    Ok(out)
}

/// One agentic (AgentX) point for the throughput-per-GPU vs interactivity chart.
#[derive(Debug, Clone, PartialEq)]
pub struct AgenticPoint {
    /// The series it belongs to (hardware, framework, TP, KV offload).
    pub series: String,
    /// Concurrent users (the row's `conc`: live session trees).
    pub users: u32,
    /// Median interactivity (tok/s/user): full-response when the aggregate has it, as the
    /// dashboard shows it.
    pub intvty: f64,
    /// Total (input + output) tokens per second per GPU.
    pub tput_per_gpu: f64,
}

impl AgenticPoint {
    /// The point of an agentic aggregate (the v3 JSON), labelled `series`; `None` when
    /// it has no interactivity or per-GPU throughput (no successful request).
    pub fn from_aggregate(series: &str, agg: &serde_json::Value) -> Option<AgenticPoint> {
        let rm = &agg["request_metrics"];
        let lat = &rm["latency"];
        let intvty = lat["full_response_intvty"]["p50"]
            .as_f64()
            .or_else(|| lat["intvty"]["p50"].as_f64())?;
        Some(AgenticPoint {
            series: series.to_string(),
            users: agg["conc"].as_u64()? as u32,
            intvty,
            tput_per_gpu: rm["throughput"]["per_gpu"]["total_tput_tps"].as_f64()?,
        })
    }
}

/// The agentic chart for `model`: throughput per GPU against median interactivity, one
/// series per label, each point labelled with its users (`u<conc>`), to
/// `dir/<model>_agentic_tput_vs_intvty.{svg,png}`.
pub fn write_agentic_plot(
    dir: &Path,
    model: &str,
    points: &[AgenticPoint],
    formats: Formats,
) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
    let mut groups: BTreeMap<&str, Vec<(f64, f64, u32)>> = BTreeMap::new();
    for p in points {
        groups
            .entry(p.series.as_str())
            .or_default()
            .push((p.intvty, p.tput_per_gpu, p.users));
    }
    let series: Vec<Series> = groups
        .into_iter()
        .enumerate()
        .map(|(i, (label, mut pts))| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                label: label.to_string(),
                kind: Kind::Ours(i),
                bars: vec![None; pts.len()],
                points: pts,
                conc_prefix: "u",
            }
        })
        .collect();
    let slug: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let title = format!("{model} · agentic coding (AgentX) — throughput per GPU vs interactivity");
    write_series(
        &dir.join(format!("{slug}_agentic_tput_vs_intvty")),
        &title,
        XAxis::Interactivity,
        &series,
        formats,
    )
}
