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

pub mod render;
pub mod run;

use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    time::{Duration, Instant},
};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::{
    http::Exchange,
    session::Health,
    stats::{Agg, GroupKey, Row, Stats},
};

/// Exchanges kept for the drill-down's breakdown and live log.
pub const RECENT: usize = 10_000;
/// Ticks of request-rate history per group (a minute at the default 1 s tick).
pub const HISTORY: usize = 60;

/// What a key does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Quit,
    NextGroupKey,
    PrevGroupKey,
    SortNext,
    SortPrev,
    /// Sort by visible column N (1-based); again reverses.
    SortBy(usize),
    Reverse,
    FilterStart,
    FilterChar(char),
    FilterBackspace,
    FilterDone,
    FilterClear,
    Pause,
    ToggleRates,
    ToggleTtfb,
    Clear,
    Export,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Enter,
    Back,
    Help,
}

/// What keys mean depends on where the user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Table,
    /// Typing a filter.
    Filter,
    Help,
    Drill,
}

/// The one keymap: htop, top and k9s conventions.
pub fn map_key(key: KeyEvent, mode: Mode) -> Option<Action> {
    use Action as A;
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(A::Quit);
    }
    if mode == Mode::Filter {
        return match key.code {
            KeyCode::Enter => Some(A::FilterDone),
            KeyCode::Esc => Some(A::FilterClear),
            KeyCode::Backspace => Some(A::FilterBackspace),
            KeyCode::Char(c) if !c.is_control() => Some(A::FilterChar(c)),
            _ => None,
        };
    }
    if mode == Mode::Help {
        return match key.code {
            KeyCode::Char('q') => Some(A::Quit),
            _ => Some(A::Help),
        };
    }
    Some(match key.code {
        KeyCode::Char('q') => A::Quit,
        KeyCode::Char('g') => A::NextGroupKey,
        KeyCode::Char('G') => A::PrevGroupKey,
        KeyCode::Char('s' | '>') => A::SortNext,
        KeyCode::Char('S' | '<') => A::SortPrev,
        KeyCode::Char('r' | 'I') => A::Reverse,
        KeyCode::Char(c @ '1'..='9') => A::SortBy(c as usize - '0' as usize),
        KeyCode::Char('/') => A::FilterStart,
        KeyCode::Char(' ' | 'p') => A::Pause,
        KeyCode::Char('t') => A::ToggleRates,
        KeyCode::Char('T') => A::ToggleTtfb,
        KeyCode::Char('c') => A::Clear,
        KeyCode::Char('e') => A::Export,
        KeyCode::Char('j') | KeyCode::Down => A::Down,
        KeyCode::Char('k') | KeyCode::Up => A::Up,
        KeyCode::PageDown => A::PageDown,
        KeyCode::PageUp => A::PageUp,
        KeyCode::Home => A::Home,
        KeyCode::End => A::End,
        KeyCode::Enter => A::Enter,
        KeyCode::Esc => A::Back,
        KeyCode::Char('?') => A::Help,
        _ => return None,
    })
}

/// A column of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Group,
    Requests,
    Rate,
    In,
    Out,
    Success,
    Status4xx,
    Status5xx,
    Min,
    Avg,
    Max,
    P99,
    Ttfb,
}

impl Column {
    pub fn title(self, key: &GroupKey, rates: bool) -> String {
        match self {
            Self::Group => key.to_string().to_uppercase(),
            Self::Requests => "REQS".into(),
            Self::Rate => "REQ/S".into(),
            Self::In => if rates { "IN/S" } else { "IN" }.into(),
            Self::Out => if rates { "OUT/S" } else { "OUT" }.into(),
            Self::Success => "SUCC%".into(),
            Self::Status4xx => "4XX".into(),
            Self::Status5xx => "5XX".into(),
            Self::Min => "MIN".into(),
            Self::Avg => "AVG".into(),
            Self::Max => "MAX".into(),
            Self::P99 => "P99".into(),
            Self::Ttfb => "TTFB".into(),
        }
    }

    /// Sort key: larger is "more". Groups sort by name instead (see [`App::view`]).
    pub fn value(self, a: &Agg, tick_s: f64, rates: bool) -> f64 {
        let per = |n: u64| if tick_s > 0.0 { n as f64 / tick_s } else { 0.0 };
        let lat = |f: &dyn Fn() -> f64| if a.latency.is_empty() { -1.0 } else { f() };
        match self {
            Self::Group => 0.0,
            Self::Requests => a.requests as f64,
            Self::Rate => per(a.last_tick_requests),
            Self::In => {
                if rates {
                    per(a.last_tick_bytes[0])
                } else {
                    a.bytes_in as f64
                }
            }
            Self::Out => {
                if rates {
                    per(a.last_tick_bytes[1])
                } else {
                    a.bytes_out as f64
                }
            }
            Self::Success => a.success_rate().unwrap_or(-1.0),
            Self::Status4xx => a.status[3] as f64,
            Self::Status5xx => a.status[4] as f64,
            Self::Min => lat(&|| a.latency.min() as f64),
            Self::Avg => lat(&|| a.latency.mean()),
            Self::Max => lat(&|| a.latency.max() as f64),
            Self::P99 => lat(&|| a.latency.value_at_quantile(0.99) as f64),
            Self::Ttfb => {
                if a.ttfb.is_empty() {
                    -1.0
                } else {
                    a.ttfb.mean()
                }
            }
        }
    }
}

/// How numbers are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Units {
    /// KiB/MiB, µs/ms/s, 12.3k.
    Human,
    /// Plain bytes, microseconds, counts.
    Raw,
}

/// Where the user has drilled into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drill {
    /// The group, under the key that was shown when Enter was pressed.
    pub key: GroupKey,
    pub group: String,
    /// The breakdown key (path by default).
    pub by: GroupKey,
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
    pub filtering: bool,
    pub rates: bool,
    pub ttfb: bool,
    pub units: Units,
    pub selected: usize,
    pub help: bool,
    pub drill: Option<Drill>,
    /// The most recent exchanges, newest last.
    pub recent: VecDeque<Exchange>,
    /// Requests per tick, per (key index, group), oldest first.
    pub history: HashMap<(usize, String), VecDeque<u64>>,
    pub health: Health,
    /// What is being captured (interfaces or file).
    pub source: String,
    pub started: Instant,
    pub message: Option<(String, Instant)>,
    pub export_dir: PathBuf,
    pub quit: bool,
    /// Rows per page, from the last render, for PgUp/PgDn.
    pub page: usize,
}

/// One row as shown: label and aggregates.
pub type ViewRow = Row;

impl App {
    pub fn new(stats: Stats, source: String, units: Units, export_dir: PathBuf) -> Self {
        Self {
            stats,
            frozen: None,
            key_idx: 0,
            sort: Column::Requests,
            descending: true,
            filter: String::new(),
            filtering: false,
            rates: false,
            ttfb: false,
            units,
            selected: 0,
            help: false,
            drill: None,
            recent: VecDeque::new(),
            history: HashMap::new(),
            health: Health::default(),
            source,
            started: Instant::now(),
            message: None,
            export_dir,
            quit: false,
            page: 10,
        }
    }

    pub fn mode(&self) -> Mode {
        if self.filtering {
            Mode::Filter
        } else if self.help {
            Mode::Help
        } else if self.drill.is_some() {
            Mode::Drill
        } else {
            Mode::Table
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
        use Column as C;
        let mut c = vec![
            C::Group,
            C::Requests,
            C::Rate,
            C::In,
            C::Out,
            C::Success,
            C::Status4xx,
            C::Status5xx,
            C::Min,
            C::Avg,
            C::Max,
            C::P99,
        ];
        if self.ttfb {
            c.push(C::Ttfb);
        }
        c
    }

    /// The rows of the current key, filtered and sorted.
    pub fn view(&self) -> Vec<ViewRow> {
        let stats = self.shown();
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<Row> = stats
            .rows(self.key_idx)
            .into_iter()
            .filter(|r| needle.is_empty() || r.group.to_lowercase().contains(&needle))
            .collect();
        self.sort_rows(&mut rows, stats.last_tick_s());
        rows
    }

    fn sort_rows(&self, rows: &mut [Row], tick_s: f64) {
        let col = self.sort;
        rows.sort_by(|a, b| {
            let ord = if col == Column::Group {
                a.group.cmp(&b.group)
            } else {
                let (x, y) = (
                    col.value(&a.agg, tick_s, self.rates),
                    col.value(&b.agg, tick_s, self.rates),
                );
                x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
            };
            // Ties by name, so the order is stable from frame to frame.
            let ord = if self.descending { ord.reverse() } else { ord };
            ord.then_with(|| a.group.cmp(&b.group))
        });
    }

    /// The drill-down: the selected group's recent exchanges broken down by the second key, and
    /// the newest of them.
    pub fn drill_view(&self) -> Option<(Vec<Row>, Vec<Exchange>)> {
        let d = self.drill.as_ref()?;
        let mine: Vec<&Exchange> = self
            .recent
            .iter()
            .filter(|e| d.key.label(e) == d.group)
            .collect();
        let mut sub = Stats::new(vec![d.by.clone()], 1000);
        for e in &mine {
            sub.add(e);
        }
        let mut rows = sub.rows(0);
        self.sort_rows(&mut rows, 0.0);
        Some((rows, mine.into_iter().rev().take(200).cloned().collect()))
    }

    /// Exchanges from the capture side.
    pub fn ingest(&mut self, exchanges: impl IntoIterator<Item = Exchange>) {
        for e in exchanges {
            self.stats.add(&e);
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(e);
        }
    }

    /// Closes a tick at capture time `now_ns`: rates roll, and each group's history gets a point.
    pub fn tick(&mut self, now_ns: u64) {
        self.stats.tick(now_ns);
        for k in 0..self.stats.keys().len() {
            for r in self.stats.rows(k) {
                let h = self.history.entry((k, r.group)).or_default();
                if h.len() == HISTORY {
                    h.pop_front();
                }
                h.push_back(r.agg.last_tick_requests);
            }
        }
    }

    pub fn say(&mut self, msg: impl Into<String>) {
        self.message = Some((msg.into(), Instant::now()));
    }

    /// The transient message, if still fresh.
    pub fn message(&self) -> Option<&str> {
        self.message
            .as_ref()
            .filter(|(_, at)| at.elapsed() < Duration::from_secs(5))
            .map(|(m, _)| m.as_str())
    }

    pub fn apply(&mut self, action: Action) {
        use Action as A;
        let n_keys = self.stats.keys().len();
        let n_cols = self.columns().len();
        let n_rows = match &self.drill {
            Some(_) => self.drill_view().map_or(0, |(r, _)| r.len()),
            None => self.view().len(),
        };
        match action {
            A::Quit => self.quit = true,
            A::NextGroupKey | A::PrevGroupKey => {
                let step = if action == A::NextGroupKey {
                    1
                } else {
                    n_keys - 1
                };
                if let Some(d) = &mut self.drill {
                    let keys = self.stats.keys();
                    let i = keys.iter().position(|k| *k == d.by).unwrap_or(0);
                    d.by = keys[(i + step) % n_keys].clone();
                } else {
                    self.key_idx = (self.key_idx + step) % n_keys;
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
            A::FilterStart => self.filtering = true,
            A::FilterChar(c) => {
                self.filter.push(c);
                self.selected = 0;
            }
            A::FilterBackspace => {
                self.filter.pop();
            }
            A::FilterDone => self.filtering = false,
            A::FilterClear => {
                self.filter.clear();
                self.filtering = false;
            }
            A::Pause => {
                self.frozen = match self.frozen.take() {
                    Some(_) => None,
                    None => Some(self.stats.clone()),
                };
            }
            A::ToggleRates => self.rates = !self.rates,
            A::ToggleTtfb => self.ttfb = !self.ttfb,
            A::Clear => {
                self.stats.reset();
                self.frozen = None;
                self.history.clear();
                self.recent.clear();
                self.selected = 0;
                self.say("statistics cleared");
            }
            A::Export => match self.export() {
                Ok(path) => self.say(format!("snapshot written to {}", path.display())),
                Err(e) => self.say(format!("export failed: {e:#}")),
            },
            A::Up => self.selected = self.selected.saturating_sub(1),
            A::Down => self.selected = (self.selected + 1).min(n_rows.saturating_sub(1)),
            A::PageUp => self.selected = self.selected.saturating_sub(self.page.max(1)),
            A::PageDown => {
                self.selected = (self.selected + self.page.max(1)).min(n_rows.saturating_sub(1))
            }
            A::Home => self.selected = 0,
            A::End => self.selected = n_rows.saturating_sub(1),
            A::Enter => {
                if self.drill.is_none()
                    && let Some(row) = self.view().get(self.selected)
                {
                    let key = self.key().clone();
                    let by = if key == GroupKey::Path {
                        GroupKey::Method
                    } else {
                        GroupKey::Path
                    };
                    self.drill = Some(Drill {
                        key,
                        group: row.group.clone(),
                        by,
                    });
                    self.selected = 0;
                }
            }
            A::Back => {
                if self.help {
                    self.help = false;
                } else if self.drill.take().is_none() && !self.filter.is_empty() {
                    self.filter.clear();
                }
                self.selected = 0;
            }
            A::Help => self.help = !self.help,
        }
    }

    /// Writes the current view (same columns as `--csv`) to a timestamped file.
    fn export(&self) -> anyhow::Result<PathBuf> {
        let name = format!(
            "http-top-{}.csv",
            chrono::Local::now().format("%Y%m%d-%H%M%S")
        );
        let path = self.export_dir.join(name);
        let rows = match self.drill_view() {
            Some((rows, _)) => rows,
            None => self.view(),
        };
        let file = std::fs::File::create(&path)?;
        crate::output::csv::write_csv(std::io::BufWriter::new(file), &rows)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests;
