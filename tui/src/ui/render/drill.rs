//! The drill-down: the group broken down under another key, and its newest exchanges.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Style},
    text::Line,
    widgets::{Block, Borders, Paragraph},
};

use super::{fmt_bytes, fmt_us, group_table, hms, latency, selection, slowest};
use crate::{
    stats::metric::Period,
    text::{ellipsize, printable},
    ui::{App, Panel},
};

/// The drill-down's breakdown table (top) and what is under it (bottom).
pub(super) fn split(area: Rect) -> (Rect, Rect) {
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    (top, bottom)
}

/// The drill-down; under the breakdown, its newest exchanges, or the `l`/`o` panel of the
/// selected breakdown group when `panel_fits`.
pub(super) fn drill(f: &mut Frame<'_>, app: &App, area: Rect, panel_fits: bool) {
    let Some(d) = app.drill() else {
        return;
    };
    let (top, bottom) = split(area);
    let by = &d.stats.keys()[d.by];
    let title = format!(
        " {} = {} by {} ({} requests) ",
        d.key,
        ellipsize(&d.group, 40),
        by,
        d.stats.total().requests,
    );
    let no_ticks = Period {
        tick_s: 0.0,
        elapsed_s: 0.0,
    };
    let t = group_table(app, app.view(), by, None, top.width, no_ticks, title);
    f.render_stateful_widget(t, top, &mut selection(app, top));
    match app.panel {
        Panel::Latency if panel_fits => return latency::panel(f, app, bottom),
        Panel::Slowest if panel_fits => return slowest::panel(f, app, bottom),
        _ => {}
    }
    let lines: Vec<Line<'_>> = d
        .log
        .iter()
        .take(usize::from(bottom.height.saturating_sub(2)))
        .map(|e| {
            let t = if e.req_first_ns > 0 {
                e.req_first_ns
            } else {
                e.resp_first_ns
            };
            let secs = t / 1_000_000_000 % 86_400;
            let s = |b: Option<&[u8]>| b.map_or_else(|| "-".to_owned(), printable);
            let status = e.status.map_or_else(|| "---".to_owned(), |s| s.to_string());
            let lat = e.latency_ns().map_or_else(
                || "-".to_owned(),
                |n| fmt_us(n as f64 / 1000.0, app.units.into()),
            );
            let text = format!(
                "{} {:<21} {:<7} {} {} {} {}",
                hms(secs),
                e.client.to_string(),
                s(e.method()),
                status,
                fmt_bytes((e.req_bytes + e.resp_bytes) as f64, app.units.into()),
                lat,
                s(e.target()),
            );
            let style = match e.status {
                Some(500..) | None => Style::new().fg(Color::Red),
                Some(400..) => Style::new().fg(Color::Yellow),
                _ => Style::new(),
            };
            Line::styled(
                ellipsize(&text, usize::from(bottom.width.saturating_sub(2))),
                style,
            )
        })
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::ALL)
                .title(" recent exchanges "),
        ),
        bottom,
    );
}
