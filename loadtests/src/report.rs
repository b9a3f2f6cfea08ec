//! Results: latency histograms and their percentiles, per-second timelines, the JSON file,
//! the one-line summary, and what the PNG plot shows (drawn by `plot`, with the `plot`
//! feature).

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

pub(crate) fn ms(micros: u64) -> f64 {
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
    /// JSON result file (default: loadtest-SCENARIO-TIMESTAMP.json here).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw the latency CDF and latency over time to this PNG (needs a build with the
    /// `plot` feature).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress output (the summary line is still printed).
    #[arg(long)]
    pub quiet: bool,
}

impl OutputArgs {
    /// Refuses, before a scenario runs, what this build cannot do: plotting needs the
    /// `plot` feature.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.plot.is_some() && !cfg!(feature = "plot") {
            bail!(
                "--plot needs a build with the `plot` feature \
                 (cargo build --release -p taskstream-load --features plot)"
            );
        }
        Ok(())
    }
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
            Some(data) => write_plot(plot_path, data)?,
            None => eprintln!("this scenario has nothing to plot"),
        }
    }
    println!("{}", report.summary());
    Ok(())
}

/// Draws the plot and says where it went.
#[cfg(feature = "plot")]
fn write_plot(path: &Path, data: &PlotData) -> anyhow::Result<()> {
    let labelled = crate::plot::draw(path, data)?;
    eprintln!(
        "plot written to {}{}",
        path.display(),
        if labelled {
            ""
        } else {
            " (no font found: drawn without text)"
        }
    );
    Ok(())
}

/// Without the `plot` feature [`OutputArgs::check`] refuses `--plot` before the run.
#[cfg(not(feature = "plot"))]
fn write_plot(_: &Path, _: &PlotData) -> anyhow::Result<()> {
    bail!("this build cannot plot: it lacks the `plot` feature")
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
    fn timelines_merge_by_second() {
        let mut a = Timeline::default();
        a.record(0, 1000);
        let mut b = Timeline::default();
        b.record(2, 3000);
        a.merge(&b);
        assert_eq!(a.count_points().len(), 3);
        assert_eq!(a.quantile_points(0.5).len(), 2);
    }
}
