//! The insights page: the process figures of [`crate::engine::Insights`] as tables (the exact
//! numbers) and as charts drawn here as SVG, so nothing runs in the browser to see them.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use maud::{html, Markup, PreEscaped};

use super::render::{category_label, stage_label};
use super::{error_page, layout, require_session, Live, Page};
use crate::domain::Stage;
use crate::engine::Insights;
use crate::http::AppState;

/// Fill colours per stage, in board order, cancelled last; chosen to stay distinct for common
/// colour-vision deficiencies.
const STAGE_COLOURS: [&str; 8] =
    ["#4e79a7", "#59a14f", "#9c755f", "#f28e2b", "#edc948", "#b07aa1", "#2f8f5b", "#bab0ac"];

fn colour(stage: Stage) -> &'static str {
    let index = Stage::ORDERED.iter().position(|s| *s == stage).unwrap_or(Stage::ORDERED.len());
    STAGE_COLOURS[index]
}

/// Time in stage, in the one unit the chart and the table share: hours with one decimal.
pub fn hours_label(hours: Option<f64>) -> String {
    match hours {
        None => "—".to_owned(),
        Some(h) => format!("{h:.1} h"),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A "nice" step for about `wanted` ticks over 0..=max: 1, 2 or 5 times a power of ten; whole
/// numbers only when `whole` (counts).
fn tick_step(max: f64, wanted: f64, whole: bool) -> f64 {
    let raw = (max / wanted).max(if whole { 1.0 } else { f64::MIN_POSITIVE });
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power);
    if whole {
        step.max(1.0).round()
    } else {
        step
    }
}

/// The axis maximum: `max` rounded up to a whole number of steps.
fn axis_max(max: f64, step: f64) -> f64 {
    ((max / step).ceil() * step).max(step)
}

/// Approximate width of `text` at the charts' 12px font, for laying out legends and labels.
fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * 6.8
}

/// Horizontal bars in hours: median and 90th percentile per stage, with an hour axis.
fn stage_time_chart(insights: &Insights) -> String {
    let rows = &insights.time_in_stage;
    let longest = rows.iter().filter_map(|r| r.p90_hours.or(r.median_hours)).fold(0.0_f64, f64::max).max(1.0);
    let step = tick_step(longest, 6.0, false);
    let max = axis_max(longest, step);
    let left = rows.iter().map(|r| text_width(stage_label(r.stage))).fold(0.0_f64, f64::max) + 16.0;
    let (width, row_height, top) = (430.0, 34.0, 34.0);
    let value_room = 130.0;
    let bottom = top + rows.len() as f64 * row_height;
    let height = bottom + 44.0;
    let total_width = left + width + value_room;
    let mut svg = format!(
        r##"<svg class="chart" role="img" aria-labelledby="stage-time-title" viewBox="0 0 {total_width:.0} {height:.0}" xmlns="http://www.w3.org/2000/svg"><title id="stage-time-title">Time in each stage, in hours: median (dark bar) and 90th percentile (light bar), over finished stages</title>"##
    );
    // Legend on top, so it is never cut off at the bottom.
    svg.push_str(&format!(
        r##"<g class="legend"><rect x="{left}" y="6" width="12" height="12" fill="#2b5d8a"/><text x="{a:.1}" y="16">Median</text><rect x="{b:.1}" y="6" width="12" height="12" fill="#a9c4e0" stroke="#2b5d8a"/><text x="{c:.1}" y="16">90th percentile</text></g>"##,
        a = left + 16.0,
        b = left + 90.0,
        c = left + 106.0
    ));
    let mut tick = 0.0;
    while tick <= max + step / 2.0 {
        let x = left + tick / max * width;
        svg.push_str(&format!(
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" class="grid"/><line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{b5}" stroke="#444"/><text x="{x:.1}" y="{ty}" text-anchor="middle" class="tick">{label}</text>"##,
            b5 = bottom + 5.0,
            ty = bottom + 18.0,
            label = format_number(tick)
        ));
        tick += step;
    }
    svg.push_str(&format!(
        r##"<line x1="{left}" y1="{bottom}" x2="{r:.1}" y2="{bottom}" stroke="#444"/><line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#444"/><text x="{mid:.1}" y="{ty}" text-anchor="middle" class="axis-label">Hours in stage</text>"##,
        r = left + width,
        mid = left + width / 2.0,
        ty = bottom + 36.0
    ));
    for (i, row) in rows.iter().enumerate() {
        let y = top + i as f64 * row_height + 6.0;
        svg.push_str(&format!(
            r##"<text x="{x}" y="{ty}" text-anchor="end" class="label">{label}</text>"##,
            x = left - 8.0,
            ty = y + 15.0,
            label = stage_label(row.stage)
        ));
        if let Some(p90) = row.p90_hours {
            svg.push_str(&format!(
                r##"<rect x="{left}" y="{y}" width="{w:.1}" height="22" fill="#a9c4e0"/>"##,
                w = p90 / max * width
            ));
        }
        if let Some(median) = row.median_hours {
            svg.push_str(&format!(
                r##"<rect x="{left}" y="{y2}" width="{w:.1}" height="12" fill="#2b5d8a"/>"##,
                y2 = y + 5.0,
                w = median / max * width
            ));
        }
        let text = match (row.median_hours, row.p90_hours) {
            (None, None) => "no finished stage".to_owned(),
            (median, p90) => format!("{} / {}", hours_label(median), hours_label(p90)),
        };
        svg.push_str(&format!(
            r##"<text x="{x:.1}" y="{ty}" class="value">{text}</text>"##,
            x = left + row.p90_hours.or(row.median_hours).map(|h| h / max * width).unwrap_or(0.0) + 6.0,
            ty = y + 15.0,
            text = escape(&text)
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// `12`, `2.5`, `0.25`: a tick's value without trailing zeros.
fn format_number(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Grouped columns per week (opened, gone live) with a count axis; week labels rotated and
/// thinned so they never run into each other.
fn weekly_chart(insights: &Insights) -> String {
    let weeks = &insights.weekly;
    let most = weeks.iter().map(|w| w.opened.max(w.went_live)).max().unwrap_or(0).max(1) as f64;
    let step = tick_step(most, 4.0, true);
    let max = axis_max(most, step);
    let (left, top, plot_height) = (48.0, 30.0, 130.0);
    let bottom = top + plot_height;
    // A fixed plot width, so the chart's text is drawn at one size whatever the number of weeks.
    let plot_width = 600.0;
    let column = plot_width / weeks.len().max(1) as f64;
    let bar = (column * 0.36).min(22.0);
    let width = left + plot_width + 20.0;
    let height = bottom + 78.0;
    // Rotated labels need about 16px each; thin them when the columns are narrower.
    let every = ((16.0 / column).ceil() as usize).max(1);
    let mut svg = format!(
        r##"<svg class="chart" role="img" aria-labelledby="weekly-title" viewBox="0 0 {width:.0} {height:.0}" xmlns="http://www.w3.org/2000/svg"><title id="weekly-title">Onboardings opened and gone live per week (count per ISO week, starting Monday, UTC)</title>"##
    );
    svg.push_str(&format!(
        r##"<g class="legend"><rect x="{left}" y="6" width="12" height="12" fill="#4e79a7"/><text x="{a}" y="16">Opened</text><rect x="{b}" y="6" width="12" height="12" fill="#2f8f5b"/><text x="{c}" y="16">Gone live</text></g>"##,
        a = left + 16.0,
        b = left + 86.0,
        c = left + 102.0
    ));
    let mut tick = 0.0;
    while tick <= max + step / 2.0 {
        let y = bottom - tick / max * plot_height;
        svg.push_str(&format!(
            r##"<line x1="{left}" y1="{y:.1}" x2="{r:.1}" y2="{y:.1}" class="grid"/><line x1="{l5}" y1="{y:.1}" x2="{left}" y2="{y:.1}" stroke="#444"/><text x="{tx}" y="{ty:.1}" text-anchor="end" class="tick">{label}</text>"##,
            r = left + plot_width,
            l5 = left - 5.0,
            tx = left - 8.0,
            ty = y + 4.0,
            label = format_number(tick)
        ));
        tick += step;
    }
    svg.push_str(&format!(
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#444"/><line x1="{left}" y1="{bottom}" x2="{r:.1}" y2="{bottom}" stroke="#444"/><text transform="translate(14 {mid:.1}) rotate(-90)" text-anchor="middle" class="axis-label">Onboardings</text>"##,
        r = left + plot_width,
        mid = top + plot_height / 2.0
    ));
    for (i, week) in weeks.iter().enumerate() {
        let centre = left + (i as f64 + 0.5) * column;
        for (offset, value, fill) in [(-bar - 0.5, week.opened, "#4e79a7"), (0.5, week.went_live, "#2f8f5b")] {
            let h = f64::from(value) / max * plot_height;
            svg.push_str(&format!(
                r##"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{fill}"/>"##,
                x = centre + offset,
                y = bottom - h
            ));
        }
        if i % every == 0 || i + 1 == weeks.len() {
            let cx = centre + 4.0;
            svg.push_str(&format!(
                r##"<text transform="translate({cx:.1} {ty:.1}) rotate(-45)" text-anchor="end" class="tick">{label}</text>"##,
                ty = bottom + 14.0,
                label = week.week_start.format("%Y-%m-%d")
            ));
        }
    }
    svg.push_str(&format!(
        r##"<text x="{mid:.1}" y="{ty}" text-anchor="middle" class="axis-label">Week starting (Monday, UTC)</text>"##,
        mid = left + plot_width / 2.0,
        ty = height - 4.0
    ));
    svg.push_str("</svg>");
    svg
}

/// Stacked areas: integrations per stage at the end of each day, with a count axis, dated
/// ticks and a legend that wraps instead of running off the edge.
fn flow_chart(insights: &Insights) -> String {
    let days = &insights.cumulative_flow;
    let (left, top, plot_width, plot_height) = (48.0, 12.0, 600.0, 180.0);
    let bottom = top + plot_height;
    let most = days.iter().map(|d| d.counts.iter().map(|(_, n)| *n).sum::<u32>()).max().unwrap_or(0).max(1) as f64;
    let step = tick_step(most, 4.0, true);
    let total = axis_max(most, step);
    let width = left + plot_width + 24.0;
    let x_of = |i: usize| left + if days.len() > 1 { i as f64 / (days.len() - 1) as f64 * plot_width } else { 0.0 };
    let y_of = |n: f64| bottom - n / total * plot_height;
    let stages: Vec<Stage> = Stage::ORDERED.into_iter().chain([Stage::Cancelled]).collect();
    // The legend's rows, laid out before the height is known.
    let mut legend_rows: Vec<Vec<(Stage, f64)>> = vec![Vec::new()];
    let mut x = left;
    for stage in &stages {
        let item = 16.0 + text_width(stage_label(*stage)) + 14.0;
        if x + item > width && x > left {
            legend_rows.push(Vec::new());
            x = left;
        }
        legend_rows.last_mut().expect("one row at least").push((*stage, x));
        x += item;
    }
    let legend_top = bottom + 52.0;
    let height = legend_top + legend_rows.len() as f64 * 20.0 + 4.0;
    let mut svg = format!(
        r##"<svg class="chart" role="img" aria-labelledby="flow-title" viewBox="0 0 {width:.0} {height:.0}" xmlns="http://www.w3.org/2000/svg"><title id="flow-title">Cumulative flow: integrations in each stage at the end of each day (UTC)</title>"##
    );
    let mut tick = 0.0;
    while tick <= total + step / 2.0 {
        let y = y_of(tick);
        svg.push_str(&format!(
            r##"<line x1="{l5}" y1="{y:.1}" x2="{left}" y2="{y:.1}" stroke="#444"/><text x="{tx}" y="{ty:.1}" text-anchor="end" class="tick">{label}</text>"##,
            l5 = left - 5.0,
            tx = left - 8.0,
            ty = y + 4.0,
            label = format_number(tick)
        ));
        tick += step;
    }
    // Later stages at the bottom, as cumulative flow diagrams are read.
    let stack: Vec<Stage> = stages.iter().rev().copied().collect();
    for (layer, stage) in stack.iter().enumerate() {
        let below = |d: &crate::engine::FlowDay| -> f64 {
            stack[..layer]
                .iter()
                .map(|s| d.counts.iter().find(|(x, _)| x == s).map(|(_, n)| *n).unwrap_or(0))
                .sum::<u32>() as f64
        };
        let own = |d: &crate::engine::FlowDay| -> f64 {
            d.counts.iter().find(|(x, _)| x == stage).map(|(_, n)| *n).unwrap_or(0) as f64
        };
        if days.iter().all(|d| own(d) == 0.0) {
            continue;
        }
        let mut points: Vec<String> =
            days.iter().enumerate().map(|(i, d)| format!("{:.1},{:.1}", x_of(i), y_of(below(d) + own(d)))).collect();
        points.extend(days.iter().enumerate().rev().map(|(i, d)| format!("{:.1},{:.1}", x_of(i), y_of(below(d)))));
        svg.push_str(&format!(
            r##"<polygon points="{}" fill="{}"><title>{}</title></polygon>"##,
            points.join(" "),
            colour(*stage),
            stage_label(*stage)
        ));
    }
    svg.push_str(&format!(
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#444"/><line x1="{left}" y1="{bottom}" x2="{r:.1}" y2="{bottom}" stroke="#444"/><text transform="translate(14 {mid:.1}) rotate(-90)" text-anchor="middle" class="axis-label">Integrations</text>"##,
        r = left + plot_width,
        mid = top + plot_height / 2.0
    ));
    // Date ticks about every 90px, always the first and the last day.
    if !days.is_empty() {
        let per_tick = ((90.0 / (plot_width / days.len().max(1) as f64)).ceil() as usize).max(1);
        let last = days.len() - 1;
        for (i, day) in days.iter().enumerate() {
            let near_last = i != last && last - i < per_tick / 2 + 1 && i != 0;
            if (i % per_tick == 0 && !near_last) || i == last {
                let anchor = if i == 0 {
                    "start"
                } else if i == last {
                    "end"
                } else {
                    "middle"
                };
                svg.push_str(&format!(
                    r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{b5}" stroke="#444"/><text x="{x:.1}" y="{ty}" text-anchor="{anchor}" class="tick">{date}</text>"##,
                    x = x_of(i),
                    b5 = bottom + 5.0,
                    ty = bottom + 18.0,
                    date = day.date.format("%m-%d")
                ));
            }
        }
        svg.push_str(&format!(
            r##"<text x="{mid:.1}" y="{ty}" text-anchor="middle" class="axis-label">Day (UTC), {first} to {end}</text>"##,
            mid = left + plot_width / 2.0,
            ty = bottom + 36.0,
            first = days[0].date,
            end = days[last].date
        ));
    }
    for (row, items) in legend_rows.iter().enumerate() {
        let y = legend_top + row as f64 * 20.0;
        for (stage, x) in items {
            svg.push_str(&format!(
                r##"<rect x="{x:.1}" y="{y:.1}" width="12" height="12" fill="{}"/><text x="{tx:.1}" y="{ty:.1}" class="legend">{}</text>"##,
                colour(*stage),
                stage_label(*stage),
                tx = x + 16.0,
                ty = y + 10.0
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// All four charts, for embedding elsewhere (one SVG string per chart).
pub fn render_insights_svg(insights: &Insights) -> [String; 3] {
    [stage_time_chart(insights), weekly_chart(insights), flow_chart(insights)]
}

fn content(insights: &Insights) -> Markup {
    let [stage_svg, weekly_svg, flow_svg] = render_insights_svg(insights);
    html! {
        h1 { "Insights" }
        p { "What the event log says about the onboarding process itself: " (insights.integrations) " onboardings, as of log position " (insights.position) "." }
        section aria-labelledby="time-heading" {
            h2 id="time-heading" { "Time in each stage" }
            p { "In hours, with one decimal, in the chart and the table alike. Over finished stages only (the integration moved on or fell back); stages still running, ended by cancellation, or passed through within one command are not counted." }
            (PreEscaped(stage_svg))
            table id="stage-times" {
                thead { tr { th scope="col" { "Stage" } th scope="col" { "Finished" } th scope="col" { "Median (hours)" } th scope="col" { "90th percentile (hours)" } } }
                tbody {
                    @for row in &insights.time_in_stage {
                        tr data-stage=(row.stage) {
                            th scope="row" { (stage_label(row.stage)) }
                            td class="finished" { (row.finished) }
                            td class="median" { (row.median_hours.map(|h| format!("{h:.1}")).unwrap_or_else(|| "—".into())) }
                            td class="p90" { (row.p90_hours.map(|h| format!("{h:.1}")).unwrap_or_else(|| "—".into())) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="weekly-heading" {
            h2 id="weekly-heading" { "Opened and gone live per week" }
            (PreEscaped(weekly_svg))
            table id="weekly" {
                thead { tr { th scope="col" { "Week of" } th scope="col" { "Opened" } th scope="col" { "Gone live" } } }
                tbody {
                    @for week in &insights.weekly {
                        tr { th scope="row" { (week.week_start) } td class="opened" { (week.opened) } td class="went-live" { (week.went_live) } }
                    }
                }
            }
        }
        section aria-labelledby="stall-heading" {
            h2 id="stall-heading" { "Where onboardings stall" }
            table id="stalls" {
                thead { tr { th scope="col" { "Stage" } th scope="col" { "In stage now" } th scope="col" { "Stalled" } th scope="col" { "Blocked" } } }
                tbody {
                    @for row in &insights.stalls {
                        tr data-stage=(row.stage) {
                            th scope="row" { (stage_label(row.stage)) }
                            td class="active" { (row.active) } td class="stalled" { (row.stalled) } td class="blocked" { (row.blocked) }
                        }
                    }
                }
            }
            @if !insights.blocked_by_category.is_empty() {
                h3 { "Blocked, by category" }
                ul id="blocked-categories" {
                    @for (category, n) in &insights.blocked_by_category { li { (category_label(*category)) ": " (n) } }
                }
            }
        }
        section aria-labelledby="flow-heading" {
            h2 id="flow-heading" { "Cumulative flow" }
            (PreEscaped(flow_svg))
        }
    }
}

pub async fn insights_page(State(state): State<AppState>, request: Request) -> Page {
    let (parts, _) = request.into_parts();
    let session = match require_session(&parts, &state).await {
        Ok(session) => session,
        Err(page) => return page,
    };
    let insights = match state.engine.insights().await {
        Ok(insights) => insights,
        Err(error) => return error_page(Some(&session), StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let live = Live { after: insights.position, integration: None };
    Page::Html(StatusCode::OK, layout("Insights", Some(&session), Some(live), content(&insights)))
}
