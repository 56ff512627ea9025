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

/// Hours as people read them: "5.0 h" below two days, "3.2 d" above.
pub fn duration_label(hours: Option<f64>) -> String {
    match hours {
        None => "—".to_owned(),
        Some(h) if h < 48.0 => format!("{h:.1} h"),
        Some(h) => format!("{:.1} d", h / 24.0),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Horizontal bars: median and 90th percentile per stage.
fn stage_time_chart(insights: &Insights) -> String {
    let rows = &insights.time_in_stage;
    let max = rows.iter().filter_map(|r| r.p90_hours.or(r.median_hours)).fold(0.0_f64, f64::max).max(1.0);
    let (left, width, row_height) = (150.0, 420.0, 34.0);
    let height = rows.len() as f64 * row_height + 30.0;
    let mut svg = format!(
        r##"<svg class="chart" role="img" aria-labelledby="stage-time-title" viewBox="0 0 {w} {height}" width="100%" xmlns="http://www.w3.org/2000/svg"><title id="stage-time-title">Time in each stage: median (dark) and 90th percentile (light), over finished stages</title>"##,
        w = left + width + 140.0
    );
    for (i, row) in rows.iter().enumerate() {
        let y = i as f64 * row_height + 10.0;
        svg.push_str(&format!(
            r##"<text x="{x}" y="{ty}" text-anchor="end" class="label">{label}</text>"##,
            x = left - 8.0,
            ty = y + 16.0,
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
        svg.push_str(&format!(
            r##"<text x="{x:.1}" y="{ty}" class="value">{text}</text>"##,
            x = left + row.p90_hours.or(row.median_hours).map(|h| h / max * width).unwrap_or(0.0) + 6.0,
            ty = y + 16.0,
            text = escape(&format!("{} / {}", duration_label(row.median_hours), duration_label(row.p90_hours)))
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// Grouped columns per week: opened and gone live.
fn weekly_chart(insights: &Insights) -> String {
    let weeks = &insights.weekly;
    let max = weeks.iter().map(|w| w.opened.max(w.went_live)).max().unwrap_or(0).max(1) as f64;
    let (left, bottom, plot_height) = (30.0, 150.0, 120.0);
    let step = 36.0;
    let width = left + weeks.len() as f64 * step + 20.0;
    let mut svg = format!(
        r##"<svg class="chart" role="img" aria-labelledby="weekly-title" viewBox="0 0 {width} 190" width="100%" xmlns="http://www.w3.org/2000/svg"><title id="weekly-title">Onboardings opened (blue) and gone live (green) per week</title><line x1="{left}" y1="{bottom}" x2="{width}" y2="{bottom}" stroke="#666"/>"##
    );
    for (i, week) in weeks.iter().enumerate() {
        let x = left + i as f64 * step + 4.0;
        for (offset, value, fill) in [(0.0, week.opened, "#4e79a7"), (13.0, week.went_live, "#2f8f5b")] {
            let h = f64::from(value) / max * plot_height;
            svg.push_str(&format!(
                r##"<rect x="{x:.1}" y="{y:.1}" width="12" height="{h:.1}" fill="{fill}"/>"##,
                x = x + offset,
                y = bottom - h
            ));
        }
        if i % 2 == 0 || weeks.len() < 10 {
            svg.push_str(&format!(
                r##"<text x="{x:.1}" y="{ty}" class="tick">{label}</text>"##,
                ty = bottom + 16.0,
                label = week.week_start.format("%m-%d")
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Stacked areas: integrations per stage at the end of each day.
fn flow_chart(insights: &Insights) -> String {
    let days = &insights.cumulative_flow;
    let (left, top, plot_width, plot_height) = (30.0, 10.0, 560.0, 180.0);
    let total = days.iter().map(|d| d.counts.iter().map(|(_, n)| *n).sum::<u32>()).max().unwrap_or(0).max(1) as f64;
    let x_of = |i: usize| left + if days.len() > 1 { i as f64 / (days.len() - 1) as f64 * plot_width } else { 0.0 };
    let y_of = |n: f64| top + plot_height - n / total * plot_height;
    let mut svg = format!(
        r##"<svg class="chart" role="img" aria-labelledby="flow-title" viewBox="0 0 {w} 240" width="100%" xmlns="http://www.w3.org/2000/svg"><title id="flow-title">Cumulative flow: integrations in each stage at the end of each day</title>"##,
        w = left + plot_width + 10.0
    );
    let stages: Vec<Stage> = Stage::ORDERED.into_iter().chain([Stage::Cancelled]).collect();
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
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        svg.push_str(&format!(
            r##"<text x="{left}" y="{ty}" class="tick">{}</text><text x="{xr}" y="{ty}" text-anchor="end" class="tick">{}</text>"##,
            first.date,
            last.date,
            ty = top + plot_height + 16.0,
            xr = left + plot_width
        ));
    }
    let mut x = left;
    for stage in &stages {
        svg.push_str(&format!(
            r##"<rect x="{x:.1}" y="222" width="10" height="10" fill="{}"/><text x="{tx:.1}" y="231" class="legend">{}</text>"##,
            colour(*stage),
            stage_label(*stage),
            tx = x + 13.0
        ));
        x += 13.0 + stage_label(*stage).len() as f64 * 5.6 + 10.0;
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
            p { "Over finished stages only (the integration moved on or fell back); stages still running, ended by cancellation, or passed through within one command are not counted." }
            (PreEscaped(stage_svg))
            table id="stage-times" {
                thead { tr { th scope="col" { "Stage" } th scope="col" { "Finished" } th scope="col" { "Median (hours)" } th scope="col" { "90th percentile (hours)" } } }
                tbody {
                    @for row in &insights.time_in_stage {
                        tr data-stage=(row.stage) {
                            th scope="row" { (stage_label(row.stage)) }
                            td class="finished" { (row.finished) }
                            td class="median" { (row.median_hours.map(|h| format!("{h:.2}")).unwrap_or_else(|| "—".into())) }
                            td class="p90" { (row.p90_hours.map(|h| format!("{h:.2}")).unwrap_or_else(|| "—".into())) }
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
