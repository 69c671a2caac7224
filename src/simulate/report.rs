//! A replay's results as a table for the terminal and as an SVG plot of the
//! answered/oracle ratio per round beside the baselines (plotters).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::Report;

/// One line per round, then a summary of the learned state.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "oracle mean RTT {:.1} ms (round 0)", report.oracle_ms);
    let _ = writeln!(
        out,
        "round  time_s   answered/oracle  best_%  within_5ms_%  within_10ms_%  clusters  probes  changed  explored_%  round_robin  geo_nearest  best_per_16"
    );
    for (i, r) in report.rounds.iter().enumerate() {
        let geo = r
            .baselines
            .geo_nearest
            .map_or("-".to_string(), |g| format!("{g:.3}"));
        let _ = writeln!(
            out,
            "{i:>5}  {:>6}  {:>15.3}  {:>6.1}  {:>12.1}  {:>13.1}  {:>8}  {:>6}  {:>7}  {:>10.1}  {:>11.3}  {:>11}  {:>11.3}",
            r.time,
            r.ratio,
            r.best * 100.0,
            r.within_5ms * 100.0,
            r.within_10ms * 100.0,
            r.clusters,
            r.probes,
            r.changed,
            r.explored * 100.0,
            r.baselines.round_robin,
            geo,
            r.baselines.best_per_16
        );
    }
    out
}

/// Answer changes per sub-block and hour of simulated time over `rounds`,
/// counting the changes after the first of them (so that learning, or a
/// route change, just before the range does not count).
pub fn flaps_per_hour(report: &Report, blocks: usize, rounds: std::ops::Range<usize>) -> f64 {
    let rounds = report.rounds.get(rounds).unwrap_or_default();
    let (Some(first), Some(last)) = (rounds.first(), rounds.last()) else {
        return 0.0;
    };
    let hours = (last.time - first.time) as f64 / 3600.0;
    let changes: usize = rounds.iter().skip(1).map(|r| r.changed).sum();
    if hours <= 0.0 || blocks == 0 {
        0.0
    } else {
        changes as f64 / blocks as f64 / hours
    }
}

/// A line of the plot: its name, colour, and value per round.
type Series = (
    &'static str,
    RGBColor,
    Box<dyn Fn(&super::Round) -> Option<f64>>,
);

/// Draws the answered/oracle ratio per round and each baseline as a line.
pub fn svg(report: &Report, title: &str, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let rounds = report.rounds.len().max(2) as f64 - 1.0;
    let top = report
        .rounds
        .iter()
        .flat_map(|r| {
            [
                r.ratio,
                r.baselines.round_robin,
                r.baselines.best_per_16,
                r.baselines.geo_nearest.unwrap_or(1.0),
            ]
        })
        .fold(1.1_f64, f64::max)
        .min(4.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..rounds, 0.9f64..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc("mean RTT / oracle")
        .draw()
        .map_err(|e| e.to_string())?;
    let series: [Series; 4] = [
        (
            "mirrordns",
            RGBColor(200, 30, 30),
            Box::new(|r| Some(r.ratio)),
        ),
        (
            "round robin",
            RGBColor(120, 120, 120),
            Box::new(|r| Some(r.baselines.round_robin)),
        ),
        (
            "geo-nearest",
            RGBColor(30, 110, 200),
            Box::new(|r| r.baselines.geo_nearest),
        ),
        (
            "best mirror per /16",
            RGBColor(30, 160, 80),
            Box::new(|r| Some(r.baselines.best_per_16)),
        ),
    ];
    for (name, color, value) in series {
        let points: Vec<(f64, f64)> = report
            .rounds
            .iter()
            .enumerate()
            .filter_map(|(i, r)| value(r).map(|v| (i as f64, v.min(top))))
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
