//! The slowest exchanges of the selected group (`o`), slowest first. Method and target were escaped
//! when the record was made ([`crate::stats::slowest`]).

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::{Color, Style},
    text::Line,
    widgets::{Block, Borders, Cell, Row as TableRow, Table},
};

use super::{fmt_bytes, fmt_us, hms};
use crate::{text::ellipsize, ui::App};

/// Columns before the target, with their widths.
const HEAD: [(&str, u16); 8] = [
    ("TIME", 12),
    ("CLIENT", 21),
    ("METHOD", 7),
    ("STATUS", 6),
    ("LATENCY", 8),
    ("TTFB", 8),
    ("BYTES", 10),
    ("PROTO", 8),
];

pub(super) fn panel(f: &mut Frame<'_>, app: &App, area: Rect) {
    let Some((row, _)) = app.selected_row() else {
        f.render_widget(
            Block::new()
                .borders(Borders::ALL)
                .title(" slowest exchanges "),
            area,
        );
        return;
    };
    let list = row.slowest.list();
    let units = app.units.into();
    let title = format!(
        " {} slowest of {} ({} timed) ",
        list.len(),
        ellipsize(&row.title(), 40),
        row.agg.latency.len()
    );
    // The client column goes first when narrow, then the protocol: the target keeps 16 cells.
    let inner_w = area.width.saturating_sub(2);
    let mut cols: Vec<usize> = (0..HEAD.len()).collect();
    for drop in [1, 7, 5] {
        let used: u16 = cols.iter().map(|&i| HEAD[i].1 + 1).sum();
        if inner_w.saturating_sub(used) >= 16 {
            break;
        }
        cols.retain(|&i| i != drop);
    }
    let used: u16 = cols.iter().map(|&i| HEAD[i].1 + 1).sum();
    let target_w = inner_w.saturating_sub(used).max(1);
    let header = TableRow::new(
        cols.iter()
            .map(|&i| Cell::from(HEAD[i].0))
            .chain(std::iter::once(Cell::from("TARGET"))),
    )
    .style(Style::new().bold().underlined());
    let body: Vec<TableRow<'_>> = list
        .iter()
        .map(|s| {
            let secs = s.ts_ns / 1_000_000_000;
            let cell = |i: usize| -> String {
                match i {
                    0 => format!("{}.{:03}", hms(secs % 86_400), s.ts_ns / 1_000_000 % 1000),
                    1 => s.client.to_string(),
                    2 => s.method.clone(),
                    3 => s.status.map_or_else(|| "---".into(), |c| c.to_string()),
                    4 => fmt_us(s.latency_us as f64, units),
                    5 => s
                        .ttfb_us
                        .map_or_else(|| "-".into(), |t| fmt_us(t as f64, units)),
                    6 => fmt_bytes((s.bytes[0] + s.bytes[1]) as f64, units),
                    _ => s.protocol.clone(),
                }
            };
            let style = match s.status {
                Some(500..) | None => Style::new().fg(Color::Red),
                Some(400..) => Style::new().fg(Color::Yellow),
                _ => Style::new(),
            };
            TableRow::new(
                cols.iter()
                    .map(|&i| {
                        let text = ellipsize(&cell(i), usize::from(HEAD[i].1));
                        if (3..=6).contains(&i) {
                            Cell::from(Line::from(text).right_aligned())
                        } else {
                            Cell::from(text)
                        }
                    })
                    .chain(std::iter::once(Cell::from(ellipsize(
                        &s.target,
                        usize::from(target_w),
                    )))),
            )
            .style(style)
        })
        .collect();
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|&i| Constraint::Length(HEAD[i].1))
        .chain(std::iter::once(Constraint::Length(target_w)))
        .collect();
    f.render_widget(
        Table::new(body, widths)
            .header(header)
            .column_spacing(1)
            .block(Block::new().borders(Borders::ALL).title(title)),
        area,
    );
}
