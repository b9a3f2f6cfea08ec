//! Results: latency histograms and their percentiles, per-second timelines, the JSON file,
//! the one-line summary, and the PNG plot (latency CDF and latency over time).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Context};
use clap::Args;
use plotters::prelude::*;
use serde::Serialize;

/// Latencies in microseconds, 1 µs to one hour, 3 significant digits.
pub type Histogram = hdrhistogram::Histogram<u64>;

const MAX_MICROS: u64 = 3_600_000_000;

pub fn histogram() -> Histogram {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant, valid histogram bounds")
}

/// Records `micros`, clamped into the histogram's range.
pub fn record(h: &mut Histogram, micros: u64) {
    h.saturating_record(micros.clamp(1, MAX_MICROS));
}

/// Adds `from` into `into` (both come from [`histogram`], so the bounds match).
pub fn merge(into: &mut Histogram, from: &Histogram) {
    let _ = into.add(from);
}

/// A histogram as (value, count) pairs, to send between processes.
pub fn histogram_pairs(h: &Histogram) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

pub fn histogram_from_pairs(pairs: &[(u64, u64)]) -> Histogram {
    let mut h = histogram();
    for &(value, count) in pairs {
        let _ = h.record_n(value.clamp(1, MAX_MICROS), count);
    }
    h
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl LatencySummary {
    pub fn of(h: &Histogram) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    /// `p50=1.2ms p90=… p99=… p99.9=… max=…`
    pub fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "p50={} p90={} p99={} p99.9={} max={}",
            fmt_ms(self.p50_ms),
            fmt_ms(self.p90_ms),
            fmt_ms(self.p99_ms),
            fmt_ms(self.p999_ms),
            fmt_ms(self.max_ms)
        )
    }
}

pub fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}ms")
    } else if ms >= 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.2}ms")
    }
}

/// `n/a` for an unknown number, else the number formatted by `f`.
pub fn or_na(value: Option<f64>, f: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "n/a".to_string(), f)
}

pub fn fmt_bytes(bytes: f64) -> String {
    let abs = bytes.abs();
    if abs >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", bytes / (1024.0 * 1024.0 * 1024.0))
    } else if abs >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    } else if abs >= 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{bytes:.0} B")
    }
}

/// Latencies by the second they were observed in.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    seconds: Vec<Histogram>,
}

impl Timeline {
    pub fn record(&mut self, second: usize, micros: u64) {
        // A run is bounded; a bogus second far away is not worth the memory.
        let second = second.min(24 * 3600);
        while self.seconds.len() <= second {
            self.seconds.push(histogram());
        }
        record(&mut self.seconds[second], micros);
    }

    pub fn merge(&mut self, other: &Timeline) {
        while self.seconds.len() < other.seconds.len() {
            self.seconds.push(histogram());
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            merge(mine, theirs);
        }
    }

    /// (second, latency in ms at `quantile`) for every second with samples; the point
    /// sits in the middle of its second.
    pub fn quantile_points(&self, quantile: f64) -> Vec<(f64, f64)> {
        self.seconds
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .map(|(s, h)| (s as f64 + 0.5, ms(h.value_at_quantile(quantile))))
            .collect()
    }

    /// (second, samples in it).
    pub fn count_points(&self) -> Vec<(f64, f64)> {
        self.seconds
            .iter()
            .enumerate()
            .map(|(s, h)| (s as f64 + 0.5, h.len() as f64))
            .collect()
    }
}

/// Counts by key (error kinds, close codes, ...), sorted for stable JSON.
pub type Counts = BTreeMap<String, u64>;

pub fn bump(counts: &mut Counts, key: impl Into<String>) {
    *counts.entry(key.into()).or_insert(0) += 1;
}

pub fn add_counts(into: &mut Counts, from: &Counts) {
    for (key, n) in from {
        *into.entry(key.clone()).or_insert(0) += n;
    }
}

/// What every scenario's result can say about itself.
pub trait ScenarioReport: Serialize {
    fn scenario(&self) -> &'static str;
    /// One line for stdout.
    fn summary(&self) -> String;
    /// Whether the run met its criteria (the exit code follows).
    fn passed(&self) -> bool;
}

/// Where results go; shared by every scenario.
#[derive(Debug, Clone, Default, Args)]
pub struct OutputArgs {
    /// JSON result file (default: `loadtest-<scenario>-<timestamp>.json` here).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw the latency CDF and latency over time to this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress output (the summary line is still printed).
    #[arg(long)]
    pub quiet: bool,
}

pub fn default_out(scenario: &str) -> PathBuf {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    PathBuf::from(format!("loadtest-{scenario}-{stamp}.json"))
}

pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("serialising the result")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// Writes the JSON (and the plot, when asked for and there is one) and prints the
/// summary line on stdout.
pub fn finish(
    report: &impl ScenarioReport,
    output: &OutputArgs,
    plot_data: Option<&PlotData>,
) -> anyhow::Result<()> {
    let path = output
        .out
        .clone()
        .unwrap_or_else(|| default_out(report.scenario()));
    write_json(&path, report)?;
    eprintln!("result written to {}", path.display());
    if let Some(plot_path) = &output.plot {
        match plot_data {
            Some(data) => {
                let labelled = plot(plot_path, data)?;
                eprintln!(
                    "plot written to {}{}",
                    plot_path.display(),
                    if labelled {
                        ""
                    } else {
                        " (no font found: drawn without text)"
                    }
                );
            }
            None => eprintln!("this scenario has nothing to plot"),
        }
    }
    println!("{}", report.summary());
    Ok(())
}

/// What a plot shows.
#[derive(Debug, Clone, Default)]
pub struct PlotData {
    pub title: String,
    /// Latency distributions, one line each.
    pub cdf: Vec<(String, Histogram)>,
    /// Series over time: (name, [(seconds, ms)]).
    pub timeline: Vec<(String, Vec<(f64, f64)>)>,
    pub timeline_caption: String,
}

/// Registers a font with plotters, once: `TASKSTREAM_LOAD_FONT` (a .ttf path, or `none`),
/// else the first of a few usual system paths. Nothing is ever downloaded.
fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let configured = std::env::var("TASKSTREAM_LOAD_FONT").ok();
        if configured.as_deref() == Some("none") {
            return false;
        }
        let candidates = configured.into_iter().chain(
            [
                "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/TTF/DejaVuSans.ttf",
                "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
                "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
                "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
                "/System/Library/Fonts/Supplemental/Arial.ttf",
            ]
            .map(String::from),
        );
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                // plotters keeps fonts for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 900;
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn plot_err(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the plot: {err}")
}

/// Draws the plot to a PNG; returns whether text (titles, labels) could be drawn.
pub fn plot(path: &Path, data: &PlotData) -> anyhow::Result<bool> {
    let text = font_available();
    let mut buffer = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (top, bottom) = root.split_vertically(HEIGHT / 2);
        draw_cdf(&top, data, text)?;
        draw_timeline(&bottom, data, text)?;
        root.present().map_err(plot_err)?;
    }
    image::save_buffer_with_format(
        path,
        &buffer,
        WIDTH,
        HEIGHT,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(text)
}

/// Cumulative share (in %) of samples at or below each recorded value (ms).
fn cdf_points(h: &Histogram) -> Vec<(f64, f64)> {
    let total = h.len().max(1) as f64;
    let mut seen = 0u64;
    let mut points = Vec::new();
    for v in h.iter_recorded() {
        seen += v.count_at_value();
        let at = ms(h.highest_equivalent(v.value_iterated_to())).max(0.001);
        points.push((at, 100.0 * seen as f64 / total));
    }
    points
}

/// The largest of 1, 2, 5 × 10^k at or below `x`.
fn nice_floor(x: f64) -> f64 {
    let decade = 10f64.powf(x.max(1e-6).log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|v| *v <= x)
        .unwrap_or(decade)
}

/// The smallest of 1, 2, 5 × 10^k at or above `x`.
fn nice_ceil(x: f64) -> f64 {
    let decade = 10f64.powf(x.max(1e-6).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * decade)
}

/// Ticks of a log axis: labelled at 1, 2, 5 × 10^k, light lines at 1..9 × 10^k.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut bold, mut light) = (Vec::new(), Vec::new());
    let first = lo.max(1e-6).log10().floor() as i32;
    let last = hi.max(1e-6).log10().ceil() as i32;
    for exponent in first..=last {
        let decade = 10f64.powi(exponent);
        for m in 1..10 {
            let v = f64::from(m) * decade;
            if v < lo * 0.999 || v > hi * 1.001 {
                continue;
            }
            if matches!(m, 1 | 2 | 5) {
                bold.push(v);
            } else {
                light.push(v);
            }
        }
    }
    (bold, light)
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_cdf(area: &Area<'_>, data: &PlotData, text: bool) -> anyhow::Result<()> {
    let series: Vec<(&str, Vec<(f64, f64)>)> = data
        .cdf
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| (name.as_str(), cdf_points(h)))
        .collect();
    let lo = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(f64::INFINITY, f64::min);
    let hi = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(0.0, f64::max);
    let (lo, hi) = if series.is_empty() {
        (0.1, 10.0)
    } else {
        (nice_floor(lo), nice_ceil(hi * 1.05))
    };
    let mut builder = ChartBuilder::on(area);
    builder.margin(20).margin_right(35);
    if text {
        builder
            .caption(format!("{}: latency CDF", data.title), ("sans-serif", 22))
            .x_label_area_size(45)
            .y_label_area_size(60);
    }
    let (bold, light) = log_ticks(lo, hi);
    let mut chart = builder
        .build_cartesian_2d(
            (lo..hi)
                .log_scale()
                .with_key_points(bold)
                .with_light_points(light),
            0f64..100.5f64,
        )
        .map_err(plot_err)?;
    let tick = |v: &f64| format!("{}", (v * 1e6).round() / 1e6);
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_label_formatter(&tick)
            .x_desc("latency (ms, log scale)")
            .y_desc("% of samples at or below")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(plot_err)?;
    if !text {
        // No labels: a line at 0, 25, 50, 75, 90, 99 and 100 % and at every decade.
        let mut lines: Vec<PathElement<(f64, f64)>> = [0.0, 25.0, 50.0, 75.0, 90.0, 99.0, 100.0]
            .into_iter()
            .map(|y| PathElement::new(vec![(lo, y), (hi, y)], BLACK.mix(0.15)))
            .collect();
        let mut decade = 10f64.powf(lo.log10().ceil());
        while decade < hi {
            lines.push(PathElement::new(
                vec![(decade, 0.0), (decade, 100.5)],
                BLACK.mix(0.3),
            ));
            decade *= 10.0;
        }
        chart.draw_series(lines).map_err(plot_err)?;
    }
    for (i, (name, points)) in series.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let drawn = chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_err)?;
        if text {
            drawn.label(name.to_string()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    if text && !data.cdf.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(plot_err)?;
    }
    Ok(())
}

fn draw_timeline(area: &Area<'_>, data: &PlotData, text: bool) -> anyhow::Result<()> {
    let x_max = data
        .timeline
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(1.0, f64::max)
        .ceil();
    let y_max = data
        .timeline
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(0.0, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let mut builder = ChartBuilder::on(area);
    builder.margin(20).margin_right(35);
    if text {
        builder
            .caption(&data.timeline_caption, ("sans-serif", 22))
            .x_label_area_size(45)
            .y_label_area_size(60);
    }
    let mut chart = builder
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(plot_err)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("seconds since the start of the load")
            .y_desc("latency (ms)")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(plot_err)?;
    if !text {
        // No labels: a line every second and every tenth of the height.
        let mut lines: Vec<PathElement<(f64, f64)>> = (0..=x_max as usize)
            .map(|s| PathElement::new(vec![(s as f64, 0.0), (s as f64, y_max)], BLACK.mix(0.1)))
            .collect();
        lines.extend((0..=10).map(|i| {
            let y = y_max * f64::from(i) / 10.0;
            PathElement::new(vec![(0.0, y), (x_max, y)], BLACK.mix(0.1))
        }));
        chart.draw_series(lines).map_err(plot_err)?;
    }
    for (i, (name, points)) in data.timeline.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let drawn = chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?;
        if text {
            drawn.label(name.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    if text && !data.timeline.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(plot_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_milliseconds() {
        let mut h = histogram();
        for micros in 1..=1000u64 {
            record(&mut h, micros * 1000);
        }
        let summary = LatencySummary::of(&h);
        assert_eq!(summary.count, 1000);
        assert!((summary.p50_ms - 500.0).abs() < 1.0, "{summary:?}");
        assert!((summary.max_ms - 1000.0).abs() < 1.0, "{summary:?}");
        assert!(summary.line().starts_with("p50="));
        assert_eq!(LatencySummary::of(&histogram()).line(), "no samples");
    }

    #[test]
    fn histograms_survive_a_round_trip() {
        let mut h = histogram();
        for micros in [5, 50, 500, 5000, 5000] {
            record(&mut h, micros);
        }
        let back = histogram_from_pairs(&histogram_pairs(&h));
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
    }

    #[test]
    fn plot_bounds_are_round() {
        assert_eq!(nice_floor(0.34), 0.2);
        assert_eq!(nice_floor(7.0), 5.0);
        assert_eq!(nice_ceil(6.5), 10.0);
        assert_eq!(nice_ceil(1.7), 2.0);
        assert!((nice_ceil(0.04) - 0.05).abs() < 1e-12);
    }

    #[test]
    fn timelines_merge_by_second() {
        let mut a = Timeline::default();
        a.record(0, 1000);
        let mut b = Timeline::default();
        b.record(2, 3000);
        a.merge(&b);
        assert_eq!(a.count_points().len(), 3);
        assert_eq!(a.quantile_points(0.5).len(), 2);
    }

    #[test]
    fn plots_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.png");
        let mut h = histogram();
        let mut timeline = Timeline::default();
        for i in 1..500u64 {
            record(&mut h, i * 37);
            timeline.record((i / 100) as usize, i * 37);
        }
        let data = PlotData {
            title: "test".into(),
            cdf: vec![("all".into(), h)],
            timeline: vec![("p50".into(), timeline.quantile_points(0.5))],
            timeline_caption: "latency over time".into(),
        };
        plot(&path, &data).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
