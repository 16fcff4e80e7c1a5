//! The dashboard's state and behaviour, without a terminal: keys map to typed [`Action`]s in one
//! function ([`map_key`]), [`App::apply`] changes state, and [`App::view`] derives what the screen
//! shows. Rendering (`render.rs`) only reads; the terminal loop (`run.rs`) only feeds.
//!
//! ```text
//! ┌ http-top ─ veth0 ─ 00:12:31 ─ group: server ─ 1.2k req/s ─ 98.5% ok ─ drops 0 gaps 0 ─────┐
//! │ SERVER ▼REQS  REQ/S  IN  OUT  SUCC%  4XX  5XX  MIN  AVG  MAX  P99                          │  table
//! │ 10.0.0.1:80  ...                                                                          │
//! ├ requests/s, 10.0.0.1:80, last minute ─────────────────────────────────────────────────────┤
//! │ ▂▃▅▇█▇▅▃                                                                                   │  sparkline
//! └ q quit  g group  s sort  / filter  space pause  e export  ? help ──────────────────────────┘  footer
//! ```

mod columns;
mod drill;
pub mod history;
pub mod keys;
pub mod render;
pub mod run;

use std::{
    collections::VecDeque,
    path::PathBuf,
    time::{Duration, Instant},
};

use self::{columns::COLUMNS, history::History};
pub use self::{
    columns::Column,
    drill::Drill,
    keys::{Action, Hit, Mode, map_key, map_mouse},
};
pub use crate::stats::metric::Units;
use crate::{
    proto::Exchange,
    session::Health,
    stats::{
        GroupKey, Row, Stats,
        alert::{Rules, Watch},
        metric::{Metric, Period},
    },
};

/// Exchanges the drill-down starts from (it keeps counting while open).
pub const RECENT: usize = 10_000;
/// Exchanges of the drilled group listed in its log.
pub const DRILL_LOG: usize = 200;
/// Slowest exchanges kept per group (the `o` panel).
pub const SLOWEST: usize = 20;
/// How long a message stays in the footer.
const MESSAGE_FOR: Duration = Duration::from_secs(5);

/// What the dashboard shows, and which keys mean what.
#[derive(Clone)]
pub enum Screen {
    Table,
    /// Typing a filter over the table.
    Filter,
    Drill(Box<Drill>),
    /// The help overlay, over the table or a drill-down.
    Help(Option<Box<Drill>>),
}

/// What the panel under the table shows about the selected group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    /// Requests per tick (a sparkline); in the drill-down, its newest exchanges.
    Rates,
    /// The latency distribution and its heatmap over time (`l`).
    Latency,
    /// The slowest exchanges (`o`).
    Slowest,
}

/// What an action asks of the loop that runs the dashboard: the state changes, the I/O is the
/// loop's.
#[derive(Debug)]
pub enum Effect {
    Quit,
    /// Write these rows (the view on screen) as CSV.
    Export(Vec<Row>, Period),
    /// Show this in the footer.
    Say(&'static str),
}

/// Everything the dashboard knows. One owner: the UI thread.
pub struct App {
    pub stats: Stats,
    /// A copy of `stats` taken when the view was paused.
    pub frozen: Option<Stats>,
    pub key_idx: usize,
    pub sort: Column,
    pub descending: bool,
    pub filter: String,
    pub rates: bool,
    pub ttfb: bool,
    pub units: Units,
    pub selected: usize,
    pub screen: Screen,
    /// The most recent exchanges, newest last: where a drill-down starts.
    recent: VecDeque<Exchange>,
    /// A point per tick, per (key index, group), oldest first.
    pub history: History,
    pub panel: Panel,
    /// `--slow`: groups whose p99 is above this (µs) are marked.
    pub slow_us: Option<u64>,
    /// `--alert`: every group's alert states, under every key.
    pub watch: Watch,
    pub health: Health,
    /// What is being captured (interfaces or file).
    pub source: String,
    pub started: Instant,
    message: Option<(String, Instant)>,
    pub export_dir: PathBuf,
    /// Rows per page, for PgUp/PgDn (set from the terminal's size).
    pub page: usize,
    /// The rows on screen (the table's, or the drill-down's), rebuilt by [`App::refresh`] when
    /// data, a tick or a key changed them.
    view: Vec<Row>,
    stale: bool,
}

impl App {
    pub fn new(mut stats: Stats, source: String, units: Units, export_dir: PathBuf) -> Self {
        stats.keep_slowest(SLOWEST);
        stats.count_latency_buckets();
        Self {
            stats,
            frozen: None,
            key_idx: 0,
            sort: Column::Metric(Metric::Requests),
            descending: true,
            filter: String::new(),
            rates: false,
            ttfb: false,
            units,
            selected: 0,
            screen: Screen::Table,
            recent: VecDeque::new(),
            history: History::default(),
            panel: Panel::Rates,
            slow_us: None,
            watch: Watch::new(Rules::default(), 1),
            health: Health::default(),
            source,
            started: Instant::now(),
            message: None,
            export_dir,
            page: 10,
            view: Vec::new(),
            stale: true,
        }
    }

    /// Checks `rules` at every tick over windows of `window_ticks` ticks.
    pub fn watch_alerts(&mut self, rules: Rules, window_ticks: usize) {
        self.stats.count_for_alerts(rules.thresholds_ns());
        self.watch = Watch::new(rules, window_ticks);
    }

    pub fn mode(&self) -> Mode {
        match self.screen {
            Screen::Table => Mode::Table,
            Screen::Filter => Mode::Filter,
            Screen::Drill(_) => Mode::Drill,
            Screen::Help(_) => Mode::Help,
        }
    }

    /// The drill-down shown, or under the help overlay.
    pub fn drill(&self) -> Option<&Drill> {
        match &self.screen {
            Screen::Drill(d) | Screen::Help(Some(d)) => Some(d),
            _ => None,
        }
    }

    fn drill_mut(&mut self) -> Option<&mut Drill> {
        match &mut self.screen {
            Screen::Drill(d) | Screen::Help(Some(d)) => Some(d),
            _ => None,
        }
    }

    /// The statistics on screen: frozen while paused.
    pub fn shown(&self) -> &Stats {
        self.frozen.as_ref().unwrap_or(&self.stats)
    }

    pub fn key(&self) -> &GroupKey {
        &self.stats.keys()[self.key_idx]
    }

    /// The visible columns, in order.
    pub fn columns(&self) -> Vec<Column> {
        std::iter::once(Column::Group)
            .chain(
                COLUMNS
                    .iter()
                    .filter(|m| self.ttfb || **m != Metric::TtfbAvg)
                    .map(|m| Column::Metric(*m)),
            )
            .collect()
    }

    /// The rows on screen, as of the last [`App::refresh`].
    pub fn view(&self) -> &[Row] {
        &self.view
    }

    /// The selected row on screen, and its history: of the table, or of the drill-down's
    /// breakdown.
    pub fn selected_row(&self) -> Option<(&Row, Option<&VecDeque<history::Point>>)> {
        let row = self.view.get(self.selected)?;
        let history = match self.drill() {
            Some(d) => d.history.get(d.by, &row.group),
            None => self.history.get(self.key_idx, &row.group),
        };
        Some((row, history))
    }

    /// Rebuilds the rows on screen if anything changed them, and keeps the selection on a row.
    pub fn refresh(&mut self) {
        if !self.stale {
            return;
        }
        self.stale = false;
        let (mut rows, span) = match self.drill() {
            Some(d) => (
                d.stats.rows(d.by),
                Period {
                    tick_s: 0.0,
                    elapsed_s: 0.0,
                },
            ),
            None => {
                let stats = self.shown();
                let needle = self.filter.to_lowercase();
                let rows = stats
                    .rows(self.key_idx)
                    .into_iter()
                    .filter(|r| needle.is_empty() || r.title().to_lowercase().contains(&needle))
                    .collect();
                (rows, stats.span())
            }
        };
        self.sort_rows(&mut rows, span);
        self.view = rows;
        self.selected = self.selected.min(self.view.len().saturating_sub(1));
    }

    fn sort_rows(&self, rows: &mut [Row], span: Period) {
        let col = self.sort;
        rows.sort_by(|a, b| {
            let ord = if col == Column::Group {
                a.group.cmp(&b.group)
            } else {
                let (x, y) = (
                    col.value(a, span, self.rates),
                    col.value(b, span, self.rates),
                );
                x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
            };
            // Ties by name, so the order is stable from frame to frame.
            let ord = if self.descending { ord.reverse() } else { ord };
            ord.then_with(|| a.group.cmp(&b.group))
        });
    }

    /// Exchanges from the capture side.
    pub fn ingest(&mut self, exchanges: impl IntoIterator<Item = Exchange>) {
        for e in exchanges {
            self.stats.add(&e);
            if let Some(d) = self.drill_mut() {
                d.add(&e);
            }
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(e);
            self.stale = true;
        }
    }

    /// Closes a tick at capture time `now_ns`: rates roll, and each group's history gets a point.
    pub fn tick(&mut self, now_ns: u64) {
        self.stats.tick(now_ns);
        let tick_s = self.stats.last_tick_s();
        for k in 0..self.stats.keys().len() {
            let rows = self.stats.rows(k);
            self.history.record_rows(k, &rows);
            // The dashboard marks alerts rather than printing them.
            let _ = self.watch.observe(k, &rows, tick_s);
        }
        if let Some(d) = self.drill_mut() {
            d.stats.tick(now_ns);
            d.history.record(&d.stats);
        }
        self.stale = true;
    }

    /// Shows `msg` in the footer from `at` on, for a few seconds.
    pub fn say(&mut self, msg: impl Into<String>, at: Instant) {
        self.message = Some((msg.into(), at));
    }

    /// The footer's message, if still fresh at `now`.
    pub fn message(&self, now: Instant) -> Option<&str> {
        self.message
            .as_ref()
            .filter(|(_, at)| now.saturating_duration_since(*at) < MESSAGE_FOR)
            .map(|(m, _)| m.as_str())
    }

    /// Carries out a key's action on the state; what it asks of the outside world is returned.
    pub fn apply(&mut self, action: Action) -> Option<Effect> {
        use Action as A;
        self.stale = true;
        let n_keys = self.stats.keys().len();
        let n_cols = self.columns().len();
        let n_rows = self.view.len();
        match action {
            A::Quit => return Some(Effect::Quit),
            A::NextGroupKey | A::PrevGroupKey => {
                let step = if action == A::NextGroupKey {
                    1
                } else {
                    n_keys - 1
                };
                match self.drill_mut() {
                    Some(d) => d.by = (d.by + step) % n_keys,
                    None => self.key_idx = (self.key_idx + step) % n_keys,
                }
                self.selected = 0;
            }
            A::SortNext | A::SortPrev => {
                let cols = self.columns();
                let i = cols.iter().position(|c| *c == self.sort).unwrap_or(1);
                let step = if action == A::SortNext { 1 } else { n_cols - 1 };
                self.sort = cols[(i + step) % n_cols];
                self.descending = self.sort != Column::Group;
            }
            A::SortBy(n) => {
                if let Some(&c) = self.columns().get(n - 1) {
                    if c == self.sort {
                        self.descending = !self.descending;
                    } else {
                        self.sort = c;
                        self.descending = c != Column::Group;
                    }
                }
            }
            A::Reverse => self.descending = !self.descending,
            A::FilterStart => {
                if matches!(self.screen, Screen::Table) {
                    self.screen = Screen::Filter;
                }
            }
            A::FilterChar(c) => {
                self.filter.push(c);
                self.selected = 0;
            }
            A::FilterBackspace => {
                self.filter.pop();
            }
            A::FilterDone => self.screen = Screen::Table,
            A::FilterClear => {
                self.filter.clear();
                self.screen = Screen::Table;
            }
            A::Pause => {
                self.frozen = match self.frozen.take() {
                    Some(_) => None,
                    None => Some(self.stats.clone()),
                };
            }
            A::ToggleRates => self.rates = !self.rates,
            A::ToggleLatency | A::ToggleSlowest => {
                let p = if action == A::ToggleLatency {
                    Panel::Latency
                } else {
                    Panel::Slowest
                };
                self.panel = if self.panel == p { Panel::Rates } else { p };
            }
            A::Select(i) => self.selected = i.min(n_rows.saturating_sub(1)),
            A::ToggleTtfb => self.ttfb = !self.ttfb,
            A::Clear => {
                self.stats.reset();
                if let Some(d) = self.drill_mut() {
                    d.stats.reset();
                    d.log.clear();
                }
                self.frozen = None;
                self.history.clear();
                self.watch.reset();
                self.recent.clear();
                self.selected = 0;
                return Some(Effect::Say("statistics cleared"));
            }
            A::Export => {
                let span = match self.drill() {
                    Some(_) => Period {
                        tick_s: 0.0,
                        elapsed_s: 0.0,
                    },
                    None => self.shown().span(),
                };
                return Some(Effect::Export(self.view.clone(), span));
            }
            A::Up => self.selected = self.selected.saturating_sub(1),
            A::Down => self.selected = (self.selected + 1).min(n_rows.saturating_sub(1)),
            A::PageUp => self.selected = self.selected.saturating_sub(self.page.max(1)),
            A::PageDown => {
                self.selected = (self.selected + self.page.max(1)).min(n_rows.saturating_sub(1));
            }
            A::Home => self.selected = 0,
            A::End => self.selected = n_rows.saturating_sub(1),
            A::Enter => {
                if matches!(self.screen, Screen::Table)
                    && let Some(row) = self.view.get(self.selected)
                {
                    self.screen = Screen::Drill(Box::new(self.drill_into(row.group.clone())));
                    self.selected = 0;
                }
            }
            A::Back => {
                self.screen = match std::mem::replace(&mut self.screen, Screen::Table) {
                    Screen::Help(Some(d)) => Screen::Drill(d),
                    Screen::Table => {
                        self.filter.clear();
                        Screen::Table
                    }
                    _ => Screen::Table,
                };
                self.selected = 0;
            }
            A::Help => {
                self.screen = match std::mem::replace(&mut self.screen, Screen::Table) {
                    Screen::Help(Some(d)) => Screen::Drill(d),
                    Screen::Help(None) => Screen::Table,
                    Screen::Drill(d) => Screen::Help(Some(d)),
                    Screen::Table | Screen::Filter => Screen::Help(None),
                };
            }
        }
        None
    }

    /// A drill-down into `group` of the key shown: counted from the recent exchanges on.
    fn drill_into(&self, group: String) -> Drill {
        let key = self.key().clone();
        let by_key = if key == GroupKey::Path {
            GroupKey::Method
        } else {
            GroupKey::Path
        };
        let by = self
            .stats
            .keys()
            .iter()
            .position(|k| *k == by_key)
            .unwrap_or(0);
        let mut d = Drill {
            key,
            group,
            by,
            stats: self.stats.empty_like(),
            log: VecDeque::new(),
            history: History::default(),
        };
        for e in &self.recent {
            d.add(e);
        }
        d
    }
}

#[cfg(test)]
mod tests;
