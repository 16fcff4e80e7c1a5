//! The help overlay: every key.

use ratatui::{
    Frame,
    layout::Rect,
    style::Style,
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph},
};

/// Every key, as [`crate::ui::map_key`] maps them.
pub const HELP: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    (
        "g / G",
        "next / previous grouping key (in drill-down: breakdown key)",
    ),
    ("s / S, > / <", "sort by next / previous column"),
    ("r, I", "reverse the sort"),
    ("1-9", "sort by that column (again: reverse)"),
    (
        "/",
        "filter rows (substring, any case); Enter keeps, Esc clears",
    ),
    ("space, p", "pause the view (capture keeps counting)"),
    ("t", "rates vs totals for bytes"),
    ("T", "show TTFB"),
    (
        "l",
        "latency panel: distribution (p50/p90/p99) and heatmap over time",
    ),
    ("o", "the slowest exchanges of the selected group"),
    (
        "mouse",
        "click a title to sort, a row to select; wheel scrolls",
    ),
    ("c", "clear all statistics"),
    ("e", "export the view to CSV"),
    ("j k ↑ ↓ PgUp PgDn Home End", "move the selection"),
    ("Enter / Esc", "drill down into the selected group / back"),
    ("?", "this help"),
];

pub(super) fn help(f: &mut Frame<'_>, area: Rect) {
    let w = area.width.min(76);
    let h = area.height.min(HELP.len() as u16 + 2);
    let x = area.x + (area.width - w) / 2;
    let y = area.y + (area.height - h) / 2;
    let popup = Rect::new(x, y, w, h);
    let lines: Vec<Line<'_>> = HELP
        .iter()
        .map(|(k, d)| {
            Line::from(vec![
                Span::styled(format!("{k:>26}  "), Style::new().bold()),
                Span::raw(*d),
            ])
        })
        .collect();
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::ALL)
                .title(" keys (any key closes) "),
        ),
        popup,
    );
}
