//! Drawing. Reads [`App`], never changes it. Every area is allowed to be tiny, down to 0x0.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Margin, Position, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Paragraph, Row as TableRow, Sparkline, Table, TableState},
};

mod drill;
mod help;
mod latency;
mod slowest;

use std::time::Instant;

pub use self::help::HELP;
use self::{drill::drill, help::help};

use super::{App, Column, Hit, Mode, Panel};
use crate::{
    stats::{
        GroupKey, Row,
        metric::{Metric, Period, Style as Format},
    },
    text::{ellipsize, printable},
};

const WARN: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
/// A group with a firing alert.
const ALERT: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
/// A group whose p99 is above `--slow`.
const SLOW: Style = Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD);
/// Least terminal the latency and slowest panels are drawn in; below it they hide.
pub const PANEL_MIN: (u16, u16) = (80, 24);
/// From this height on, the latency panel has a place of its own under the sparkline, without `l`.
pub const TALL: u16 = 50;
const HEADER: Style = Style::new()
    .add_modifier(Modifier::BOLD)
    .add_modifier(Modifier::REVERSED);

/// Width each column needs (the group column takes what is left).
fn width(c: Column) -> u16 {
    match c {
        Column::Group => 0,
        Column::Metric(Metric::BytesIn | Metric::BytesOut) => 10,
        Column::Metric(Metric::Success) => 6,
        Column::Metric(Metric::Status(_)) => 5,
        Column::Metric(_) => 7,
    }
}

/// Columns dropped first when the terminal is narrow.
const DROP_ORDER: [Column; 8] = [
    Column::Metric(Metric::LatencyMin),
    Column::Metric(Metric::LatencyMax),
    Column::Metric(Metric::TtfbAvg),
    Column::Metric(Metric::Status(4)),
    Column::Metric(Metric::Rate),
    Column::Metric(Metric::BytesIn),
    Column::Metric(Metric::LatencyP99),
    Column::Metric(Metric::Success),
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

fn fmt_bytes(n: f64, f: Format) -> String {
    Metric::BytesIn.format(Some(n), f)
}

fn fmt_us(us: f64, f: Format) -> String {
    Metric::LatencyAvg.format(Some(us), f)
}

fn fmt_count(n: u64, f: Format) -> String {
    Metric::Requests.format(Some(n as f64), f)
}

/// The columns of a table `table_w` cells wide (borders and selection marker included), each with
/// the width it is drawn in (the group column takes what is left), and whether they fit (when
/// not, ratatui shrinks them). What the table draws and what a click hits both come from here.
fn layout_columns(app: &App, table_w: u16) -> (Vec<(Column, u16)>, bool) {
    let avail = table_w.saturating_sub(2 + 2);
    let (cols, group_w) = fit_columns(app.columns(), avail);
    let cols: Vec<(Column, u16)> = cols
        .into_iter()
        .map(|c| {
            (
                c,
                if c == Column::Group {
                    group_w
                } else {
                    width(c)
                },
            )
        })
        .collect();
    let need: u16 = cols.iter().map(|(_, w)| w + 1).sum();
    (cols, need <= avail + 1)
}

/// The text of one cell.
pub fn cell(app: &App, c: Column, r: &Row, span: Period, group_w: u16) -> String {
    match c.metric(app.rates) {
        None => ellipsize(&r.title(), usize::from(group_w)),
        Some(m) => m.cell(&r.agg, span, app.units.into()),
    }
}

fn hms(secs: u64) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Whether the latency or slowest panel fits a terminal of this size.
pub fn panel_fits(area: Rect) -> bool {
    area.width >= PANEL_MIN.0 && area.height >= PANEL_MIN.1
}

/// Where things go: the header (a third line lists firing alerts), the table, the panel under it
/// (the sparkline when there is room, or the `l`/`o` panel, half the body), on a tall terminal the
/// latency panel under the sparkline, the footer.
struct Areas {
    head: Rect,
    table: Rect,
    panel: Rect,
    /// The latency panel's own place on a tall terminal (else empty).
    tall: Rect,
    foot: Rect,
}

fn areas(app: &App, area: Rect) -> Areas {
    let head_h = if app.watch.any_firing(app.key_idx) {
        3
    } else {
        2
    };
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(head_h),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    let half = (body.height / 2).clamp(9, 22);
    let panel_h = match app.panel {
        Panel::Latency | Panel::Slowest if panel_fits(area) => half,
        _ if body.height >= 12 => 4,
        _ => 0,
    };
    let tall_h = if app.panel == Panel::Rates && area.height >= TALL && area.width >= PANEL_MIN.0 {
        half - 4
    } else {
        0
    };
    let [table, panel, tall] = Layout::vertical([
        Constraint::Min(0),
        Constraint::Length(panel_h),
        Constraint::Length(tall_h),
    ])
    .areas(body);
    Areas {
        head,
        table,
        panel,
        tall,
        foot,
    }
}

/// The area of the table the user acts on: the main table, or the drill-down's breakdown (the
/// top half of the body).
fn table_rect(app: &App, area: Rect) -> Rect {
    let a = areas(app, area);
    match app.drill() {
        Some(_) => drill::split(a.table.union(a.panel).union(a.tall)).0,
        None => a.table,
    }
}

/// The first row of the view drawn when `visible` rows fit: as ratatui scrolls, just enough to
/// show the selection.
fn scroll_offset(selected: usize, visible: u16) -> usize {
    selected.saturating_sub(usize::from(visible.max(1)) - 1)
}

/// Rows of a table drawn in `area` (inside its borders, under its header).
fn visible_rows(area: Rect) -> u16 {
    area.height.saturating_sub(3)
}

/// Rows a page of the main table holds on a terminal of this size (for PgUp/PgDn).
pub fn page_rows(app: &App, area: Rect) -> usize {
    usize::from(visible_rows(table_rect(app, area)))
}

/// What is under the mouse at (`x`, `y`) on a terminal of size `area`.
pub fn hit(app: &App, area: Rect, x: u16, y: u16) -> Hit {
    let t = table_rect(app, area);
    if !t.contains(Position { x, y }) {
        return Hit::Elsewhere;
    }
    let inner = t.inner(Margin::new(1, 1));
    if y == inner.y {
        let (cols, fits) = layout_columns(app, t.width);
        if !fits {
            // Too narrow even for the fewest columns: ratatui shrinks them, and where each one
            // lands is not worth guessing.
            return Hit::Elsewhere;
        }
        // The selection marker's two cells come first, then each column and one space.
        let mut start = inner.x + if app.view().is_empty() { 0 } else { 2 };
        for (c, w) in cols {
            if x >= start && x < start + w {
                let n = app.columns().iter().position(|k| *k == c).unwrap_or(0);
                return Hit::Column(n + 1);
            }
            start += w + 1;
        }
        return Hit::Elsewhere;
    }
    let visible = visible_rows(t);
    let first = inner.y + 1;
    if y >= first && y < first + visible {
        let i = scroll_offset(app.selected, visible) + usize::from(y - first);
        if i < app.view().len() {
            return Hit::Row(i);
        }
    }
    Hit::Elsewhere
}

/// Draws the whole screen as of `now` (uptime, messages).
pub fn draw(f: &mut Frame<'_>, app: &App, now: Instant) {
    let area = f.area();
    let a = areas(app, area);
    header(f, app, a.head, now);
    if app.drill().is_some() {
        drill(
            f,
            app,
            a.table.union(a.panel).union(a.tall),
            panel_fits(area),
        );
    } else {
        if a.tall.height > 0 {
            latency::panel(f, app, a.tall);
        }
        table(f, app, a.table);
        if a.panel.height > 0 {
            match app.panel {
                Panel::Latency if panel_fits(area) => latency::panel(f, app, a.panel),
                Panel::Slowest if panel_fits(area) => slowest::panel(f, app, a.panel),
                _ => sparkline(f, app, a.panel),
            }
        }
    }
    footer(f, app, a.foot, now);
    if app.mode() == Mode::Help {
        help(f, area);
    }
}

fn header(f: &mut Frame<'_>, app: &App, area: Rect, now: Instant) {
    let s = app.shown();
    let t = s.total();
    let mut l1 = vec![
        Span::styled(" http-top ", HEADER),
        Span::raw(format!(" {} ", printable(app.source.as_bytes()))),
        Span::raw(format!(
            "│ up {} │ capture {} ",
            hms(now.saturating_duration_since(app.started).as_secs()),
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
        t.last_tick.requests as f64 / s.last_tick_s()
    } else {
        0.0
    };
    let mut l2 = vec![
        Span::raw(format!(
            " {rate:.1} req/s │ {} reqs │ in {} out {} │ ok {} │ ",
            fmt_count(t.requests, app.units.into()),
            fmt_bytes(t.bytes_in as f64, app.units.into()),
            fmt_bytes(t.bytes_out as f64, app.units.into()),
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
        Span::raw(" "),
        // Exchanges capture loss touched: their numbers are incomplete.
        warn("incomplete", t.gap_affected),
        Span::raw(format!(" │ conns {}", h.totals.flows.open)),
    ];
    if h.live {
        // Body bytes the kernel filter cut instead of copying (counted all the same).
        l2.push(Span::raw(format!(
            " │ skipped {}",
            fmt_bytes(h.capture.filter_skipped_bytes as f64, app.units.into())
        )));
    }
    let mut lines = vec![Line::from(l1), Line::from(l2)];
    let firing = app.watch.all_firing(app.key_idx);
    if !firing.is_empty() {
        let mut l3 = vec![Span::styled(
            format!(" ALERTS {} ", firing.len()),
            ALERT.add_modifier(Modifier::REVERSED),
        )];
        for (i, (group, rule, v)) in firing.iter().enumerate() {
            l3.push(Span::raw(if i == 0 { " " } else { " · " }));
            l3.push(Span::styled(
                format!("{} {rule} ({})", ellipsize(group, 40), rule.describe(*v)),
                ALERT,
            ));
        }
        lines.push(Line::from(l3));
    }
    f.render_widget(Paragraph::new(lines), area);
}

/// A table of group rows under `key`, with the sort marker. `alerts_of`: the key index whose alert
/// states mark rows (the main table's).
fn group_table<'a>(
    app: &App,
    rows: &[Row],
    key: &GroupKey,
    alerts_of: Option<usize>,
    area_w: u16,
    span: Period,
    title: String,
) -> Table<'a> {
    let (laid, _) = layout_columns(app, area_w);
    let group_w = laid
        .iter()
        .find(|(c, _)| *c == Column::Group)
        .map_or(1, |(_, w)| *w);
    let cols: Vec<Column> = laid.iter().map(|(c, _)| *c).collect();
    let right = |text: String, c: Column| {
        if c == Column::Group {
            Cell::from(text)
        } else {
            Cell::from(Line::from(text).right_aligned())
        }
    };
    let header = TableRow::new(cols.iter().map(|c| {
        let mut t = c.title(key, app.rates);
        if *c == app.sort {
            t.push(if app.descending { '▼' } else { '▲' });
        }
        right(t, *c)
    }))
    .style(Style::new().bold().underlined());
    let body: Vec<TableRow<'_>> = rows
        .iter()
        .map(|r| {
            let alerting = alerts_of.is_some_and(|k| !app.watch.firing(k, &r.group).is_empty());
            let slow = app.slow_us.is_some_and(|s| {
                Metric::LatencyP99
                    .value(&r.agg, span)
                    .is_some_and(|p| p > s as f64)
            });
            TableRow::new(cols.iter().map(|c| {
                let style = match c {
                    Column::Group if alerting => ALERT,
                    Column::Group | Column::Metric(Metric::LatencyP99) if slow => SLOW,
                    Column::Metric(Metric::Status(5)) if r.agg.status[4] > 0 => {
                        Style::new().fg(Color::Red)
                    }
                    Column::Metric(Metric::Success)
                        if r.agg.success_rate().is_some_and(|s| s < 99.0) =>
                    {
                        Style::new().fg(Color::Red)
                    }
                    _ => Style::new(),
                };
                right(cell(app, *c, r, span, group_w), *c).style(style)
            }))
        })
        .collect();
    let widths: Vec<Constraint> = laid.iter().map(|(_, w)| Constraint::Length(*w)).collect();
    Table::new(body, widths)
        .header(header)
        .column_spacing(1)
        .block(Block::new().borders(Borders::ALL).title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶ ")
}

/// The selection of a table drawn in `area`: the selected row when there is one, scrolled as
/// [`hit`] expects.
fn selection(app: &App, area: Rect) -> TableState {
    TableState::default()
        .with_selected((!app.view().is_empty()).then_some(app.selected))
        .with_offset(scroll_offset(app.selected, visible_rows(area)))
}

/// The main table.
fn table(f: &mut Frame<'_>, app: &App, area: Rect) {
    let rows = app.view();
    let filtering = app.mode() == Mode::Filter;
    let title = if app.filter.is_empty() && !filtering {
        format!(" {} groups ", rows.len())
    } else {
        format!(
            " filter: {}{} ({} groups) ",
            app.filter,
            if filtering { "▏" } else { "" },
            rows.len()
        )
    };
    let t = group_table(
        app,
        rows,
        app.key(),
        Some(app.key_idx),
        area.width,
        app.shown().span(),
        title,
    );
    f.render_stateful_widget(t, area, &mut selection(app, area));
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
        .get(app.key_idx, &row.group)
        .map(|h| h.iter().map(|p| u64::from(p.requests)).collect())
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

fn footer(f: &mut Frame<'_>, app: &App, area: Rect, now: Instant) {
    let line = match app.message(now) {
        Some(m) => Line::styled(format!(" {m}"), Style::new().fg(Color::Green)),
        None if app.mode() == Mode::Filter => Line::raw(" type to filter · Enter keep · Esc clear"),
        None if app.panel != Panel::Rates && !panel_fits(f.area()) => Line::styled(
            format!(
                " the {} panel needs a {}x{} terminal · l/o back",
                if app.panel == Panel::Latency {
                    "latency"
                } else {
                    "slowest"
                },
                PANEL_MIN.0,
                PANEL_MIN.1
            ),
            WARN,
        ),
        None if app.drill().is_some() => Line::raw(
            " Esc back · g breakdown key · s sort · l latency · o slowest · e export · q quit",
        ),
        None => Line::raw(
            " q quit · g/G group · s/S sort · / filter · space pause · l latency · o slowest · Enter drill · ? help",
        ),
    };
    f.render_widget(Paragraph::new(line), area);
}
