//! The report's charts, drawn by plotters into SVG strings.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{ReportError, Result};

const SIZE: (u32, u32) = (900, 440);

fn err(plot: &str) -> impl Fn(String) -> ReportError + '_ {
    move |detail| ReportError::Plot { plot: plot.to_string(), detail }
}

fn color(i: usize) -> RGBColor {
    // Distinguishable on white: Tableau 10, then black and darker tones (11 topics per taxonomy).
    const C: [(u8, u8, u8); 14] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
        (0, 0, 0),
        (0, 70, 120),
        (120, 60, 0),
        (0, 100, 60),
    ];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

/// A range around `lo..hi` with a margin, never empty.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let span = (hi - lo).abs().max(1e-9 * hi.abs().max(1.0));
    (lo - 0.05 * span, hi + 0.05 * span)
}

fn draw<F>(title: &str, f: F) -> Result<String>
where
    F: FnOnce(&DrawingArea<SVGBackend, Shift>) -> std::result::Result<(), String>,
{
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(title)(e.to_string()))?;
        f(&root).map_err(err(title))?;
        root.present().map_err(|e| err(title)(e.to_string()))?;
    }
    Ok(svg)
}

/// Lines over a shared x axis, one per named series, with a legend.
pub fn lines(title: &str, x_desc: &str, y_desc: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<String> {
    lines_with_ticks(title, x_desc, y_desc, series, None)
}

/// [`lines`] over the positions 0..=`last` of a categorical axis (one tick each).
pub fn category_lines(title: &str, x_desc: &str, y_desc: &str, series: &[(String, Vec<(f64, f64)>)], last: usize) -> Result<String> {
    lines_with_ticks(title, x_desc, y_desc, series, Some(last))
}

fn lines_with_ticks(title: &str, x_desc: &str, y_desc: &str, series: &[(String, Vec<(f64, f64)>)], categories: Option<usize>) -> Result<String> {
    let points = series.iter().flat_map(|s| s.1.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points.filter(|p| p.0.is_finite() && p.1.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let (x0, x1) = match categories {
        Some(last) => (-0.25, last as f64 + 0.25),
        None => padded(x0, x1),
    };
    let (y0, y1) = padded(y0, y1);
    draw(title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(categories.map_or(10, |n| n + 1))
            .x_label_formatter(&|x| crate::fmt_tokens(*x))
            .y_label_formatter(&|y| format!("{y:.3}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            if pts.len() <= 40 {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled()))).map_err(|e| e.to_string())?;
            }
        }
        if series.len() > 1 || series.first().is_some_and(|s| !s.0.is_empty()) {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// Horizontal bars, two per category: planned (light) and consumed (dark).
pub fn planned_consumed(title: &str, bars: &[(String, f64, f64)]) -> Result<String> {
    let max = bars.iter().map(|b| b.1.max(b.2)).fold(1.0, f64::max);
    let n = bars.len().max(1);
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    draw(title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(260)
            .build_cartesian_2d(0.0..max * 1.08, -0.5..(n as f64 - 0.5))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("tokens")
            .y_labels(n)
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_label_formatter(&|x| crate::fmt_tokens(*x))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        let planned = color(0).mix(0.35);
        let consumed = color(0);
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| Rectangle::new([(0.0, i as f64 - 0.4), (b.1, i as f64)], planned.filled())))
            .map_err(|e| e.to_string())?
            .label("planned")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], planned.filled()));
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| Rectangle::new([(0.0, i as f64), (b.2, i as f64 + 0.4)], consumed.filled())))
            .map_err(|e| e.to_string())?
            .label("consumed")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], consumed.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// A sorted profile (x: percentile of documents, y: perplexity, log scale) with dashed
/// horizontal lines at the bucket edges.
pub fn profile(title: &str, points: &[(f64, f64)], edges: &[f64]) -> Result<String> {
    let lo = points.iter().map(|p| p.1).filter(|y| *y > 0.0).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo { (lo * 0.9, hi * 1.1) } else { (1.0, 10.0) };
    draw(title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..100.0, (lo..hi).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("documents, easiest to hardest (percentile)")
            .y_desc("perplexity (log scale)")
            .y_label_formatter(&|y| format!("{y:.1}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        chart.draw_series(LineSeries::new(points.iter().copied(), color(0).stroke_width(2))).map_err(|e| e.to_string())?;
        for &e in edges.iter().take(edges.len().saturating_sub(1)) {
            let dashes = (0..50).map(|k| (k as f64 * 2.0, e));
            chart.draw_series(dashes.map(|(x, y)| PathElement::new(vec![(x, y), (x + 1.0, y)], color(3).stroke_width(1)))).map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}
