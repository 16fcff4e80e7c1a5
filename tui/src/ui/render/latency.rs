//! The latency panel (`l`) of the selected group: on the left its distribution since the start, as
//! a histogram on log-scaled buckets read from its hdrhistogram, p50/p90/p99 marked; on the right a
//! heatmap of the last ticks (columns = ticks, rows = latency buckets, shade = exchanges).

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Paragraph},
};

use crate::{
    stats::tick::{BUCKETS, bucket_floor_us},
    text::ellipsize,
    ui::{App, history::Column},
    units,
};

/// Bucket bounds per decade, finest first: the histogram takes the finest whose buckets over the
/// group's range fit its rows (Renard's preferred numbers, then 1-2-5, then decades).
const SERIES: &[&[f64]] = &[
    &[1.0, 1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0, 6.3, 8.0],
    &[1.0, 1.6, 2.5, 4.0, 6.3],
    &[1.0, 2.0, 5.0],
    &[1.0, 3.0],
    &[1.0],
];

/// The quantiles marked on the histogram.
const MARKS: [(f64, &str); 3] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")];

/// Shades of the heatmap, from one exchange to the window's most.
const SHADES: [(char, Color); 4] = [
    ('░', Color::Blue),
    ('▒', Color::Cyan),
    ('▓', Color::Yellow),
    ('█', Color::Red),
];

/// A latency for an axis: `500µs`, `2ms`, `1.6ms`, `250ms`, `2.5s` (no trailing `.0`).
fn axis_us(us: f64) -> String {
    let (v, unit) = if us < 1_000.0 {
        (us, "µs")
    } else if us < 1_000_000.0 {
        (us / 1e3, "ms")
    } else {
        (us / 1e6, "s")
    };
    let s = if unit == "µs" || v >= 100.0 || (v - v.round()).abs() < 0.05 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    };
    s + unit
}

/// Bucket bounds (µs) of `series` from the last one at or under `lo` to the first above `hi`.
fn edges(series: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    let mut decade = 10f64.powf(lo.max(1.0).log10().floor());
    let mut out = Vec::new();
    'outer: loop {
        for m in series {
            let e = decade * m;
            if e <= lo {
                out.clear();
            }
            out.push(e);
            if e > hi {
                break 'outer;
            }
        }
        decade *= 10.0;
    }
    out
}

/// The bounds of the histogram of values in [`lo`, `hi`] µs over at most `rows` rows.
fn fit_edges(lo: f64, hi: f64, rows: usize) -> Vec<f64> {
    let mut e = Vec::new();
    for s in SERIES {
        e = edges(s, lo, hi);
        if e.len() - 1 <= rows {
            break;
        }
    }
    e
}

pub(super) fn panel(f: &mut Frame<'_>, app: &App, area: Rect) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area);
    histogram(f, app, left);
    heatmap(f, app, right);
}

fn histogram(f: &mut Frame<'_>, app: &App, area: Rect) {
    let Some((row, _)) = app.selected_row() else {
        f.render_widget(Block::new().borders(Borders::ALL).title(" latency "), area);
        return;
    };
    let h = &row.agg.latency;
    let block = Block::new().borders(Borders::ALL);
    if h.is_empty() {
        f.render_widget(
            Paragraph::new(" no exchange with a latency yet")
                .block(block.title(format!(" latency of {} ", ellipsize(&row.title(), 40)))),
            area,
        );
        return;
    }
    let q = |q: f64| units::micros(h.value_at_quantile(q) as f64);
    let quantiles = format!("p50 {} p90 {} p99 {}", q(0.5), q(0.9), q(0.99));
    let full = format!(
        " {}: {} since start, {quantiles} ",
        ellipsize(&row.title(), 24),
        h.len(),
    );
    // Narrow: the quantiles matter most (the group is the one selected above).
    let title = if full.chars().count() + 2 <= usize::from(area.width) {
        full
    } else {
        format!(" {quantiles} ")
    };
    let inner = block.inner(area);
    let rows = usize::from(inner.height);
    if rows == 0 || inner.width < 20 {
        f.render_widget(block.title(title), area);
        return;
    }
    let e = fit_edges(h.min() as f64, h.max() as f64, rows);
    let n = e.len() - 1;
    let bucket = |v: f64| e.partition_point(|x| *x <= v).saturating_sub(1).min(n - 1);
    let mut counts = vec![0u64; n];
    for v in h.iter_recorded() {
        counts[bucket(v.value_iterated_to() as f64)] += u64::from(v.count_at_value());
    }
    let mut marks = vec![Vec::new(); n];
    for (q, name) in MARKS {
        marks[bucket(h.value_at_quantile(q) as f64)].push(name);
    }
    const LABEL: usize = 7;
    const COUNT: usize = 7;
    const MARK: usize = 12;
    let bar_w = usize::from(inner.width).saturating_sub(LABEL + COUNT + MARK + 1);
    let most = counts.iter().copied().max().unwrap_or(1).max(1);
    // Slowest at the top, like the heatmap beside it; only the rows that fit, around the range.
    let lines: Vec<Line<'_>> = (0..n)
        .rev()
        .take(rows)
        .map(|i| {
            let eighths = (counts[i] * bar_w as u64 * 8).div_ceil(most) as usize;
            let mut bar = "█".repeat(eighths / 8);
            if !eighths.is_multiple_of(8) {
                bar.push([' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8]);
            }
            let pad = bar_w.saturating_sub(bar.chars().count());
            let mark = if marks[i].is_empty() {
                String::new()
            } else {
                format!(" ◀ {}", marks[i].join(","))
            };
            Line::from(vec![
                Span::raw(format!("{:>w$} ", axis_us(e[i]), w = LABEL - 1)),
                Span::styled(bar, Style::new().fg(Color::Cyan)),
                Span::raw(" ".repeat(pad)),
                Span::raw(format!("{:>COUNT$}", units::count(counts[i]))),
                Span::styled(mark, Style::new().fg(Color::Yellow).bold()),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block.title(title)), area);
}

fn heatmap(f: &mut Frame<'_>, app: &App, area: Rect) {
    let block = Block::new().borders(Borders::ALL);
    let inner = block.inner(area);
    const LABEL: usize = 7;
    let cols = usize::from(inner.width).saturating_sub(LABEL);
    let points: Vec<&Column> = app
        .selected_row()
        .and_then(|(_, h)| h)
        .map(|h| {
            let skip = h.len().saturating_sub(cols);
            h.iter().skip(skip).map(|p| &p.latency).collect()
        })
        .unwrap_or_default();
    let tick_s = match app.drill() {
        Some(d) => d.stats.last_tick_s(),
        None => app.shown().last_tick_s(),
    };
    let title = format!(
        " over time: {} ticks of {} ",
        points.len(),
        axis_us(tick_s * 1e6)
    );
    let used = || points.iter().flat_map(|p| p.iter().map(|(b, _)| b));
    let (Some(lo), Some(hi)) = (used().min(), used().max()) else {
        f.render_widget(
            Paragraph::new(" no tick with a latency yet").block(block.title(title)),
            area,
        );
        return;
    };
    // The last line is the time axis; buckets share a row when there are more than rows.
    let rows = usize::from(inner.height.saturating_sub(1)).max(1);
    let per_row = (hi - lo + 1).div_ceil(rows);
    let n_rows = (hi - lo + 1).div_ceil(per_row);
    let mut grid = vec![vec![0u64; points.len()]; n_rows];
    for (x, p) in points.iter().enumerate() {
        for (b, c) in p.iter() {
            grid[(b - lo) / per_row][x] += u64::from(c);
        }
    }
    let most = grid.iter().flatten().copied().max().unwrap_or(1);
    let shade = |c: u64| -> Option<(char, Color)> {
        if c == 0 {
            return None;
        }
        // Log-scaled: a tail of a few exchanges still shows beside thousands.
        let level = if most <= 1 {
            3
        } else {
            ((c as f64).ln() / (most as f64).ln() * 3.0).round() as usize
        };
        Some(SHADES[level.min(3)])
    };
    let blank = cols - points.len();
    let mut lines: Vec<Line<'_>> = (0..n_rows)
        .rev()
        .map(|r| {
            let floor = bucket_floor_us((lo + r * per_row).min(BUCKETS - 1));
            let mut spans = vec![
                Span::raw(format!("{:>w$} ", axis_us(floor), w = LABEL - 1)),
                Span::raw(" ".repeat(blank)),
            ];
            spans.extend(grid[r].iter().map(|c| match shade(*c) {
                Some((ch, color)) => Span::styled(ch.to_string(), Style::new().fg(color)),
                None => Span::raw(" "),
            }));
            Line::from(spans)
        })
        .collect();
    let span_s = tick_s * points.len() as f64;
    let left = format!("-{}", axis_us(span_s * 1e6));
    lines.push(Line::raw(format!(
        "{:LABEL$}{}{left}{:>w$}",
        "",
        " ".repeat(blank),
        "now",
        w = points.len().saturating_sub(left.chars().count())
    )));
    f.render_widget(Paragraph::new(lines).block(block.title(title)), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_cover_the_range_with_the_finest_series_that_fits() {
        assert_eq!(
            edges(&[1.0, 2.0, 5.0], 2500.0, 410_000.0),
            [
                2000.0, 5000.0, 10_000.0, 20_000.0, 50_000.0, 100_000.0, 200_000.0, 500_000.0
            ]
        );
        let e = fit_edges(2500.0, 410_000.0, 12);
        assert_eq!(e.len() - 1, 12, "{e:?}"); // R5: 2.5ms .. 630ms
        assert_eq!(fit_edges(1.0, 1e9, 3).len() - 1, 10); // decades: more than fit
        assert_eq!(axis_us(1600.0), "1.6ms");
        assert_eq!(axis_us(250_000.0), "250ms");
        assert_eq!(axis_us(2_500_000.0), "2.5s");
        assert_eq!(axis_us(45.25), "45µs");
    }
}
