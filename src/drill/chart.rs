//! The SVG chart: success rate, latency and traffic per backend over time.

use plotters::prelude::*;

use std::ops::Range;

use plotters::coord::Shift;

use super::report::{Report, SecondReport};

const WIDTH: u32 = 1100;

/// Colours for the stacks: red, orange, green, blue, purple (the last stack, usually
/// the recommended one, is drawn last, on top).
const STACKS: [RGBColor; 5] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(31, 119, 180),
    RGBColor(148, 103, 189),
];

/// Colours for the backends: none of them is a stack's colour, so a colour means one
/// thing in the whole chart.
const BACKENDS: [RGBColor; 8] = [
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(0, 0, 128),
    RGBColor(127, 127, 127),
    RGBColor(0, 128, 128),
    RGBColor(128, 64, 0),
];

/// The narrowest a state band is drawn, in seconds: a half-open spell lasts a few
/// milliseconds, which at a second per few pixels would not show at all.
pub(crate) const MIN_BAND_S: f64 = 0.5;

/// The height of one row of the states lane, in pixels.
const LANE_ROW: u32 = 22;

/// The last stack is drawn in the third colour whatever the number of stacks, so the
/// recommended stack of the demo is always green.
fn stack_color(i: usize, n: usize) -> RGBColor {
    if n <= 3 {
        STACKS[i + 3 - n]
    } else {
        STACKS[i % STACKS.len()]
    }
}
const PANEL: u32 = 300;

/// Draws the reports of one scenario as an SVG chart with three panels over time:
/// the success rate of each stack, the p99 latency of each stack, and the calls each
/// backend received under the last stack (usually the recommended one). The
/// scenario's faults are shaded red; the states the last stack reported (see
/// [`Drill::states`](super::Drill::states)) are drawn in a lane of their own below,
/// one labelled row per source, each band at least half a second wide so that a
/// brief half-open spell shows. Each backend keeps one colour, distinct from the
/// stacks' colours.
///
/// Drawn with [plotters](https://docs.rs/plotters)' SVG backend, with no font files:
/// text is left to the SVG viewer.
pub fn svg_chart(reports: &[Report]) -> String {
    let mut svg = String::new();
    if let Err(e) = draw(&mut svg, reports) {
        return format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"40\"><text x=\"10\" y=\"25\">chart failed: {}</text></svg>",
            e.to_string().replace(['<', '>', '&'], " ")
        );
    }
    svg
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(svg: &mut String, reports: &[Report]) -> DrawResult {
    let Some(last) = reports.last() else {
        return Err("no report to draw".into());
    };
    let duration = last.duration_s.max(1.0);
    let faults: Vec<(f64, f64)> = last.faults.iter().map(|f| (f.start_s, f.end_s)).collect();
    let band = RGBColor(250, 215, 215).filled();
    let mut sources: Vec<&str> = Vec::new();
    for span in last.states.iter().filter(|s| !is_normal(&s.state)) {
        if !sources.contains(&span.source.as_str()) {
            sources.push(&span.source);
        }
    }
    let lane = if sources.is_empty() {
        0
    } else {
        LANE_ROW * sources.len() as u32 + 60
    };
    let root = SVGBackend::with_string(svg, (WIDTH, PANEL * 3 + 40 + lane)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, rest) = root.split_vertically(40);
    let (body, states) = rest.split_vertically(PANEL * 3);
    title.draw(&Text::new(
        format!(
            "drill `{}` (seed {}): shaded = fault injected",
            last.scenario, last.seed
        ),
        (20, 12),
        ("sans-serif", 20).into_font(),
    ))?;
    let panels = body.split_evenly((3, 1));

    // 1. Success rate per stack.
    let lowest = reports
        .iter()
        .flat_map(|r| r.timeline.iter().map(|s| s.availability))
        .fold(1.0f64, f64::min);
    let lo = ((lowest * 100.0) - 2.0).clamp(0.0, 98.0).floor();
    stack_panel(
        &panels[0],
        reports,
        (
            "success rate per second (%)",
            SeriesLabelPosition::LowerLeft,
        ),
        (duration, lo..100.5),
        (&faults, band),
        |s| s.availability * 100.0,
    )?;

    // 2. p99 latency per stack.
    let top = reports
        .iter()
        .flat_map(|r| r.timeline.iter().map(|s| s.p99_ms))
        .fold(1.0f64, f64::max)
        * 1.1;
    stack_panel(
        &panels[1],
        reports,
        (
            "p99 latency per second (ms)",
            SeriesLabelPosition::UpperLeft,
        ),
        (duration, 0.0..top),
        (&faults, band),
        |s| s.p99_ms,
    )?;

    // 3. Calls per backend under the last stack.
    let top = last
        .timeline
        .iter()
        .flat_map(|s| s.attempts.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.15;
    let mut chart = ChartBuilder::on(&panels[2])
        .caption(
            format!("calls per second to each backend, stack `{}`", last.stack),
            ("sans-serif", 16),
        )
        .margin(8)
        .margin_right(24)
        .x_label_area_size(24)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..duration, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(0)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc("seconds")
        .draw()?;
    chart.draw_series(
        faults
            .iter()
            .map(|&(s, e)| Rectangle::new([(s, 0.0), (e, top)], band)),
    )?;
    for (b, backend) in last.backends.iter().enumerate() {
        let color = BACKENDS[b % BACKENDS.len()];
        chart
            .draw_series(LineSeries::new(
                last.timeline
                    .iter()
                    .map(|s| (s.t as f64 + 0.5, s.attempts[b] as f64)),
                color.stroke_width(2),
            ))?
            .label(backend.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    if !sources.is_empty() {
        states_lane(&states, last, &sources, duration)?;
    }
    root.present()?;
    Ok(())
}

/// The states lane: one labelled row per source, a band per state that is not the
/// normal one, a tick at every transition.
fn states_lane(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    last: &Report,
    sources: &[&str],
    duration: f64,
) -> DrawResult {
    let rows = sources.len();
    let names: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption("states reported by the stack", ("sans-serif", 14))
        .margin(8)
        .margin_right(24)
        .x_label_area_size(20)
        .y_label_area_size(150)
        .build_cartesian_2d(0f64..duration, 0f64..rows as f64)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_labels(rows * 2 + 1)
        .y_label_formatter(&|y| {
            // Label each row at its middle.
            let i = y.floor() as usize;
            if (y - y.floor() - 0.5).abs() < 1e-6 && i < names.len() {
                names[rows - 1 - i].clone()
            } else {
                String::new()
            }
        })
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    let mut labelled: Vec<&str> = Vec::new();
    for span in last.states.iter().filter(|s| !is_normal(&s.state)) {
        let i = sources.iter().position(|s| *s == span.source).unwrap_or(0);
        let y = (rows - 1 - i) as f64;
        let end = span.end_s.max(span.start_s + MIN_BAND_S).min(duration);
        let color = state_color(&span.state);
        let series = chart.draw_series(std::iter::once(Rectangle::new(
            [(span.start_s, y + 0.15), (end, y + 0.85)],
            color.filled(),
        )))?;
        if !labelled.contains(&span.state.as_str()) {
            labelled.push(&span.state);
            series.label(span.state.clone()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 4), (x + 20, y + 4)], color.filled())
            });
        }
    }
    chart.draw_series(last.transitions.iter().filter_map(|t| {
        let i = sources.iter().position(|s| *s == t.source)?;
        let y = (rows - 1 - i) as f64;
        Some(PathElement::new(
            vec![(t.at_s, y + 0.05), (t.at_s, y + 0.15)],
            BLACK.stroke_width(1),
        ))
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// A half-open breaker's band (amber), and an open one's (dark grey): neither is a
/// stack's or a backend's colour.
pub(crate) const HALF_OPEN: RGBColor = RGBColor(240, 200, 0);
pub(crate) const OPEN: RGBColor = RGBColor(70, 70, 70);

fn is_normal(state: &str) -> bool {
    matches!(
        state.to_ascii_lowercase().as_str(),
        "closed" | "healthy" | "up"
    )
}

fn state_color(state: &str) -> RGBColor {
    let s = state.to_ascii_lowercase();
    if s.contains("half") {
        HALF_OPEN
    } else if s.contains("open") || s.contains("down") {
        OPEN
    } else if s.contains("eject") {
        RGBColor(120, 60, 170)
    } else {
        RGBColor(110, 110, 110)
    }
}

/// One panel with a line per stack: `value` of each second, over the scenario's
/// faults shaded with `band` (drawn from the bottom of `y` to its top).
fn stack_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    reports: &[Report],
    (caption, legend): (&str, SeriesLabelPosition),
    (duration, y): (f64, Range<f64>),
    (faults, band): (&[(f64, f64)], ShapeStyle),
    value: impl Fn(&SecondReport) -> f64,
) -> DrawResult {
    let (lo, hi) = (y.start, y.end);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .margin_right(24)
        .x_label_area_size(24)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..duration, y)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(0)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    chart.draw_series(
        faults
            .iter()
            .map(|&(s, e)| Rectangle::new([(s, lo), (e, hi)], band)),
    )?;
    for (i, r) in reports.iter().enumerate() {
        let color = stack_color(i, reports.len());
        chart
            .draw_series(LineSeries::new(
                r.timeline.iter().map(|s| (s.t as f64 + 0.5, value(s))),
                color.stroke_width(2),
            ))?
            .label(r.stack.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
