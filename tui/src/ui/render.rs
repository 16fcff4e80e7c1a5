//! Drawing. Reads [`App`], never changes it. Every area is allowed to be tiny, down to 0x0.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{
        Block, Borders, Cell, Clear, Paragraph, Row as TableRow, Sparkline, Table, TableState,
    },
};

use super::{App, Column, Units};
use crate::{
    stats::{Agg, GroupKey, Row},
    text::{ellipsize, printable},
    units,
};

const WARN: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
const HEADER: Style = Style::new()
    .add_modifier(Modifier::BOLD)
    .add_modifier(Modifier::REVERSED);

/// Width each column needs (the group column takes what is left).
fn width(c: Column) -> u16 {
    match c {
        Column::Group => 0,
        Column::Requests | Column::Rate => 7,
        Column::In | Column::Out => 10,
        Column::Success => 6,
        Column::Status4xx | Column::Status5xx => 5,
        Column::Min | Column::Avg | Column::Max | Column::P99 | Column::Ttfb => 7,
    }
}

/// Columns dropped first when the terminal is narrow.
const DROP_ORDER: [Column; 8] = [
    Column::Min,
    Column::Max,
    Column::Ttfb,
    Column::Status4xx,
    Column::Rate,
    Column::In,
    Column::P99,
    Column::Success,
];

/// Least width the group column keeps before other columns are dropped.
const MIN_GROUP: u16 = 16;

/// The columns that fit in `avail` cells, and the group column's width.
pub fn fit_columns(mut cols: Vec<Column>, avail: u16) -> (Vec<Column>, u16) {
    let need = |cols: &[Column]| cols.iter().map(|c| width(*c) + 1).sum::<u16>();
    for drop in DROP_ORDER {
        if avail.saturating_sub(need(&cols)) >= MIN_GROUP {
            break;
        }
        cols.retain(|c| *c != drop);
    }
    let group = avail.saturating_sub(need(&cols)).max(1);
    (cols, group)
}

fn fmt_bytes(n: f64, u: Units, rate: bool) -> String {
    let s = match u {
        Units::Human => units::bytes(n as u64),
        Units::Raw => format!("{n:.0}"),
    };
    if rate { format!("{s}/s") } else { s }
}

fn fmt_us(us: f64, u: Units) -> String {
    match u {
        Units::Human => units::micros(us),
        Units::Raw => format!("{us:.0}"),
    }
}

fn fmt_count(n: u64, u: Units) -> String {
    match u {
        Units::Human => units::count(n),
        Units::Raw => n.to_string(),
    }
}

/// The text of one cell.
pub fn cell(app: &App, c: Column, group: &str, a: &Agg, tick_s: f64, group_w: u16) -> String {
    let per = |n: u64| if tick_s > 0.0 { n as f64 / tick_s } else { 0.0 };
    let lat = |f: &dyn Fn() -> f64| {
        if a.latency.is_empty() {
            "-".to_owned()
        } else {
            fmt_us(f(), app.units)
        }
    };
    match c {
        Column::Group => ellipsize(group, usize::from(group_w)),
        Column::Requests => fmt_count(a.requests, app.units),
        Column::Rate => format!("{:.1}", per(a.last_tick_requests)),
        Column::In if app.rates => fmt_bytes(per(a.last_tick_bytes[0]), app.units, true),
        Column::Out if app.rates => fmt_bytes(per(a.last_tick_bytes[1]), app.units, true),
        Column::In => fmt_bytes(a.bytes_in as f64, app.units, false),
        Column::Out => fmt_bytes(a.bytes_out as f64, app.units, false),
        Column::Success => a
            .success_rate()
            .map_or_else(|| "-".into(), |s| format!("{s:.1}")),
        Column::Status4xx => fmt_count(a.status[3], app.units),
        Column::Status5xx => fmt_count(a.status[4], app.units),
        Column::Min => lat(&|| a.latency.min() as f64),
        Column::Avg => lat(&|| a.latency.mean()),
        Column::Max => lat(&|| a.latency.max() as f64),
        Column::P99 => lat(&|| a.latency.value_at_quantile(0.99) as f64),
        Column::Ttfb => {
            if a.ttfb.is_empty() {
                "-".into()
            } else {
                fmt_us(a.ttfb.mean(), app.units)
            }
        }
    }
}

fn hms(secs: u64) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Draws the whole screen.
pub fn draw(f: &mut Frame<'_>, app: &mut App) {
    let area = f.area();
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    header(f, app, head);
    if app.drill.is_some() {
        drill(f, app, body);
    } else {
        let spark_h = if body.height >= 12 { 4 } else { 0 };
        let [table_area, spark_area] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(spark_h)]).areas(body);
        table(f, app, table_area);
        if spark_h > 0 {
            sparkline(f, app, spark_area);
        }
    }
    footer(f, app, foot);
    if app.help {
        help(f, area);
    }
}

fn header(f: &mut Frame<'_>, app: &App, area: Rect) {
    let s = app.shown();
    let t = s.total();
    let mut l1 = vec![
        Span::styled(" http-top ", HEADER),
        Span::raw(format!(" {} ", printable(app.source.as_bytes()))),
        Span::raw(format!(
            "│ up {} │ capture {} ",
            hms(app.started.elapsed().as_secs()),
            hms(s.elapsed_s() as u64)
        )),
        Span::raw("│ group: "),
        Span::styled(app.key().to_string(), Style::new().bold()),
    ];
    if let Some(p) = app
        .health
        .progress
        .map(|p| (p * 1000.0) as u16)
        .filter(|p| *p < 1000)
    {
        // A file being read as fast as it can be: how far along.
        let done = usize::from(p / 100);
        l1.push(Span::raw(format!(
            " │ reading [{}{}] {:.0}%",
            "█".repeat(done),
            "░".repeat(10 - done.min(10)),
            f64::from(p) / 10.0
        )));
    }
    if app.frozen.is_some() {
        l1.push(Span::raw(" "));
        l1.push(Span::styled(
            " PAUSED ",
            WARN.add_modifier(Modifier::REVERSED),
        ));
    }
    let h = &app.health;
    let warn = |label: &str, n: u64| {
        let text = format!("{label} {n}");
        if n > 0 {
            Span::styled(text, WARN)
        } else {
            Span::raw(text)
        }
    };
    let rate = if s.last_tick_s() > 0.0 {
        t.last_tick_requests as f64 / s.last_tick_s()
    } else {
        0.0
    };
    let l2 = vec![
        Span::raw(format!(
            " {rate:.1} req/s │ {} reqs │ in {} out {} │ ok {} │ ",
            fmt_count(t.requests, app.units),
            fmt_bytes(t.bytes_in as f64, app.units, false),
            fmt_bytes(t.bytes_out as f64, app.units, false),
            t.success_rate()
                .map_or_else(|| "-".into(), |r| format!("{r:.1}%")),
        )),
        warn("drops", h.capture.ring_drops),
        Span::raw(" "),
        warn("gaps", h.totals.flows.gaps),
        Span::raw(" "),
        warn(
            "errors",
            h.totals.http.parse_errors + h.totals.counters.decode_errors,
        ),
        Span::raw(format!(" │ conns {}", h.totals.flows.open)),
    ];
    f.render_widget(Paragraph::new(vec![Line::from(l1), Line::from(l2)]), area);
}

/// A table of group rows under `key`, with the sort marker when `marked`.
fn group_table<'a>(
    app: &App,
    rows: &[Row],
    key: &GroupKey,
    area_w: u16,
    tick_s: f64,
    title: String,
    marked: bool,
) -> Table<'a> {
    let (cols, group_w) = fit_columns(app.columns(), area_w.saturating_sub(2 + 2));
    let right = |text: String, c: Column| {
        if c == Column::Group {
            Cell::from(text)
        } else {
            Cell::from(Line::from(text).right_aligned())
        }
    };
    let header = TableRow::new(cols.iter().map(|c| {
        let mut t = c.title(key, app.rates);
        if marked && *c == app.sort {
            t.push(if app.descending { '▼' } else { '▲' });
        }
        right(t, *c)
    }))
    .style(Style::new().bold().underlined());
    let body: Vec<TableRow<'_>> = rows
        .iter()
        .map(|r| {
            TableRow::new(cols.iter().map(|c| {
                let style = match c {
                    Column::Status5xx if r.agg.status[4] > 0 => Style::new().fg(Color::Red),
                    Column::Success if r.agg.success_rate().is_some_and(|s| s < 99.0) => {
                        Style::new().fg(Color::Red)
                    }
                    _ => Style::new(),
                };
                right(cell(app, *c, &r.group, &r.agg, tick_s, group_w), *c).style(style)
            }))
        })
        .collect();
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|c| {
            Constraint::Length(if *c == Column::Group {
                group_w
            } else {
                width(*c)
            })
        })
        .collect();
    Table::new(body, widths)
        .header(header)
        .column_spacing(1)
        .block(Block::new().borders(Borders::ALL).title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶ ")
}

/// Clamps the selection to `n` rows and records the page size, for the keys that move it.
fn select(app: &mut App, n: usize, area: Rect) -> TableState {
    app.page = usize::from(area.height.saturating_sub(3));
    app.selected = app.selected.min(n.saturating_sub(1));
    TableState::default().with_selected((n > 0).then_some(app.selected))
}

/// The main table.
fn table(f: &mut Frame<'_>, app: &mut App, area: Rect) {
    let rows = app.view();
    let title = if app.filter.is_empty() && !app.filtering {
        format!(" {} groups ", rows.len())
    } else {
        format!(
            " filter: {}{} ({} groups) ",
            app.filter,
            if app.filtering { "▏" } else { "" },
            rows.len()
        )
    };
    let key = app.key().clone();
    let t = group_table(
        app,
        &rows,
        &key,
        area.width,
        app.shown().last_tick_s(),
        title,
        true,
    );
    let mut state = select(app, rows.len(), area);
    f.render_stateful_widget(t, area, &mut state);
}

fn sparkline(f: &mut Frame<'_>, app: &App, area: Rect) {
    let rows = app.view();
    let Some(row) = rows.get(app.selected) else {
        f.render_widget(
            Block::new()
                .borders(Borders::ALL)
                .title(" requests per tick "),
            area,
        );
        return;
    };
    let data: Vec<u64> = app
        .history
        .get(&(app.key_idx, row.group.clone()))
        .map(|h| h.iter().copied().collect())
        .unwrap_or_default();
    let title = format!(
        " requests per tick, {}, last {} ticks ",
        ellipsize(&row.group, 40),
        data.len()
    );
    // Newest at the right edge: show the last points that fit.
    let w = usize::from(area.width.saturating_sub(2));
    let start = data.len().saturating_sub(w);
    f.render_widget(
        Sparkline::default()
            .block(Block::new().borders(Borders::ALL).title(title))
            .data(&data[start..])
            .style(Style::new().fg(Color::Cyan)),
        area,
    );
}

fn drill(f: &mut Frame<'_>, app: &mut App, area: Rect) {
    let Some((rows, log)) = app.drill_view() else {
        return;
    };
    let d = app.drill.clone().expect("drill_view returned Some");
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let title = format!(
        " {} = {} by {} (last {} exchanges) ",
        d.key,
        ellipsize(&d.group, 40),
        d.by,
        app.recent.len()
    );
    let t = group_table(app, &rows, &d.by, top.width, 0.0, title, true);
    let mut state = select(app, rows.len(), top);
    f.render_stateful_widget(t, top, &mut state);
    let lines: Vec<Line<'_>> = log
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
            let lat = e
                .latency_ns()
                .map_or_else(|| "-".to_owned(), |n| fmt_us(n as f64 / 1000.0, app.units));
            let text = format!(
                "{} {:<21} {:<7} {} {} {} {}",
                hms(secs),
                e.client.to_string(),
                s(e.method()),
                status,
                fmt_bytes((e.req_bytes + e.resp_bytes) as f64, app.units, false),
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

fn footer(f: &mut Frame<'_>, app: &App, area: Rect) {
    let line = match app.message() {
        Some(m) => Line::styled(format!(" {m}"), Style::new().fg(Color::Green)),
        None if app.filtering => Line::raw(" type to filter · Enter keep · Esc clear"),
        None if app.drill.is_some() => {
            Line::raw(" Esc back · g breakdown key · s sort · e export · q quit")
        }
        None => Line::raw(
            " q quit · g/G group · s/S sort · r reverse · / filter · space pause · t rates · e export · Enter drill · ? help",
        ),
    };
    f.render_widget(Paragraph::new(line), area);
}

/// Every key, as [`super::map_key`] maps them.
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
    ("c", "clear all statistics"),
    ("e", "export the view to CSV"),
    ("j k ↑ ↓ PgUp PgDn Home End", "move the selection"),
    ("Enter / Esc", "drill down into the selected group / back"),
    ("?", "this help"),
];

fn help(f: &mut Frame<'_>, area: Rect) {
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
