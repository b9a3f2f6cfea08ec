//! The PNG plot of a result: latency CDF on top, latency over time below. Built with the
//! `plot` feature only, so that the tests never build plotters.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context};
use plotters::prelude::*;

use crate::report::{ms, Histogram, PlotData};

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
pub fn draw(path: &Path, data: &PlotData) -> anyhow::Result<bool> {
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
    use crate::report::{histogram, record, Timeline};

    #[test]
    fn plot_bounds_are_round() {
        assert_eq!(nice_floor(0.34), 0.2);
        assert_eq!(nice_floor(7.0), 5.0);
        assert_eq!(nice_ceil(6.5), 10.0);
        assert_eq!(nice_ceil(1.7), 2.0);
        assert!((nice_ceil(0.04) - 0.05).abs() < 1e-12);
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
        draw(&path, &data).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
