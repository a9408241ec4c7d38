//! `atelier bench --plot FILE.svg`: the runs of one benchmark as a picture, the
//! old service's load-test comparison drawn instead of printed. Left, the latency
//! distribution of every run (the share of jobs finished within a time, one
//! curve per run: sequential against concurrent); right, each run's throughput.
//!
//! plotters with only its SVG backend: text is left to the viewer's fonts, so no
//! font files or font libraries are needed.

use std::path::Path;

use anyhow::{Context, bail};
use plotters::prelude::*;

use super::stats::Report;

/// Size of the picture, in SVG pixels.
const SIZE: (u32, u32) = (960, 420);
/// Share of the width the latency panel takes.
const LATENCY_SHARE: f64 = 0.62;
/// One colour per run, in order.
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];
/// Head-room above the largest value on each axis.
const HEADROOM: f64 = 1.1;

/// Draws `reports` to `path` (an SVG file).
pub fn draw(reports: &[Report], path: &Path) -> anyhow::Result<()> {
    if reports.iter().all(|r| r.latencies.is_empty()) {
        bail!("--plot: no job finished, nothing to draw");
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let split = (f64::from(SIZE.0) * LATENCY_SHARE) as u32;
        let (left, right) = root.split_horizontally(split);
        latency_panel(&left, reports)?;
        throughput_panel(&right, reports)?;
        root.present().map_err(plot_error)?;
    }
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e:?}")
}

fn label(report: &Report) -> String {
    format!("{}, {} at a time", report.label, report.concurrency)
}

/// Empirical distribution of successful latencies: x seconds, y share of jobs
/// finished within x.
fn latency_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    reports: &[Report],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let slowest = reports
        .iter()
        .filter_map(|r| r.latencies.last())
        .map(|d| d.as_secs_f64())
        .fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("Latency distribution", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..slowest * HEADROOM, 0.0..100.0)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds per job")
        .y_desc("% of jobs done")
        .draw()
        .map_err(plot_error)?;
    for (report, colour) in reports.iter().zip(COLOURS.iter().cycle()) {
        let n = report.latencies.len() as f64;
        // A step curve: flat until each sample, then up by one job's share.
        let mut points = vec![(0.0, 0.0)];
        for (i, d) in report.latencies.iter().enumerate() {
            let x = d.as_secs_f64();
            points.push((x, i as f64 * 100.0 / n));
            points.push((x, (i + 1) as f64 * 100.0 / n));
        }
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(plot_error)?
            .label(label(report))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// Finished jobs per minute, one bar per run.
fn throughput_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    reports: &[Report],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let best = reports.iter().map(Report::jobs_per_minute).fold(0.0, f64::max);
    let runs = reports.len() as u32;
    let mut chart = ChartBuilder::on(area)
        .caption("Throughput", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(
            (0..runs).into_segmented(),
            0.0..best.max(f64::MIN_POSITIVE) * HEADROOM,
        )
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("clients at a time")
        .y_desc("jobs per minute")
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => reports
                .get(*i as usize)
                .map_or_else(String::new, |r| r.concurrency.to_string()),
            _ => String::new(),
        })
        .draw()
        .map_err(plot_error)?;
    for (i, (report, colour)) in reports.iter().zip(COLOURS.iter().cycle()).enumerate() {
        let i = i as u32;
        let bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), report.jobs_per_minute()),
            ],
            colour.mix(0.85).filled(),
        );
        chart.draw_series(std::iter::once(bar)).map_err(plot_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::Outcome;
    use std::time::Duration;

    #[test]
    fn draws_both_panels_with_one_curve_per_run() {
        let ms = Duration::from_millis;
        let one = Report::new(
            "embedded",
            1,
            &[(ms(900), Outcome::Ok), (ms(1100), Outcome::Ok)],
            ms(2000),
        );
        let many = Report::new(
            "embedded",
            4,
            &[
                (ms(1500), Outcome::Ok),
                (ms(2500), Outcome::Ok),
                (ms(10), Outcome::Failed("x".into())),
            ],
            ms(2600),
        );
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("bench.svg");
        draw(&[one, many], &path).expect("draw");
        let svg = std::fs::read_to_string(&path).expect("read");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("Latency distribution") && svg.contains("Throughput"));
        // One curve and one legend mark per run, each in its run's colour, and one
        // throughput bar per run.
        for colour in ["#1F77B4", "#FF7F0E"] {
            assert_eq!(
                svg.matches(&format!("stroke=\"{colour}\"")).count(),
                2,
                "{colour}"
            );
            assert_eq!(svg.matches(&format!("fill=\"{colour}\"")).count(), 1, "{colour}");
        }
        assert!(svg.contains("embedded, 4 at a time"));
    }

    #[test]
    fn nothing_finished_is_an_error() {
        let failed = Report::new(
            "x",
            1,
            &[(Duration::from_millis(5), Outcome::Failed("no".into()))],
            Duration::ZERO,
        );
        let dir = tempfile::tempdir().expect("tmp");
        assert!(draw(&[failed], &dir.path().join("x.svg")).is_err());
    }
}
