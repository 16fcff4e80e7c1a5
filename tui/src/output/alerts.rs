//! `--alert` headless: one JSON line when an alert starts and one when it stops, per group of the
//! `-g` key, checked at every tick over the alert window (`stats::alert`).

use std::io::Write;

use serde::Serialize;

use super::Sink;
use crate::{
    proto::Exchange,
    session::{Health, Output},
    stats::{
        GroupKey, Stats,
        alert::{Change, Rules, Watch},
    },
};

#[derive(Serialize)]
struct AlertLine<'a> {
    /// Capture time of the tick that decided it, s.
    ts: f64,
    /// The rule as written, e.g. `p99>250ms`.
    alert: &'a str,
    /// `firing` or `resolved`.
    state: &'static str,
    key: String,
    /// The group, escaped as in every output.
    group: &'a str,
    /// The window's value, in `unit`; absent when there was nothing to measure.
    value: Option<f64>,
    unit: &'static str,
    /// Requests in the window, and its length.
    requests: u64,
    window_s: f64,
}

/// Writes one alert change as a JSON line.
pub fn write_alert_line<W: Write>(
    mut out: W,
    rules: &Rules,
    key: &GroupKey,
    c: &Change,
    now_ns: u64,
) -> std::io::Result<()> {
    let rule = &rules.list()[c.rule];
    let (value, unit) = match c.value.map(|v| rule.machine_value(v)) {
        Some((v, u)) => (Some((v * 1000.0).round() / 1000.0), u),
        None => (None, rule.machine_value(0.0).1),
    };
    let line = AlertLine {
        ts: now_ns as f64 / 1e9,
        alert: &rule.text,
        state: if c.firing { "firing" } else { "resolved" },
        key: key.to_string(),
        group: &c.group,
        value,
        unit,
        requests: c.requests,
        window_s: (c.window_s * 1000.0).round() / 1000.0,
    };
    serde_json::to_writer(&mut out, &line)?;
    out.write_all(b"\n")
}

/// The alert output: its own statistics of the one key it watches.
pub struct AlertLines<W: Write> {
    sink: Sink<W>,
    stats: Stats,
    watch: Watch,
}

impl<W: Write> AlertLines<W> {
    /// Watches `rules` on the groups of `key` (at most `max_groups`), over windows of
    /// `window_ticks` ticks.
    pub fn new(
        out: W,
        key: GroupKey,
        max_groups: usize,
        rules: Rules,
        window_ticks: usize,
    ) -> Self {
        let mut stats = Stats::new(vec![key], max_groups);
        stats.count_for_alerts(rules.thresholds_ns());
        Self {
            sink: Sink::new(out),
            stats,
            watch: Watch::new(rules, window_ticks),
        }
    }
}

impl<W: Write> Output for AlertLines<W> {
    fn wants_routes(&self) -> bool {
        self.stats.reads_routes()
    }
    fn exchange(&mut self, e: &Exchange) -> anyhow::Result<()> {
        self.stats.add(e);
        Ok(())
    }
    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        self.stats.tick(now_ns);
        let changes = self
            .watch
            .observe(0, &self.stats.rows(0), self.stats.last_tick_s());
        let key = &self.stats.keys()[0];
        for c in &changes {
            self.sink
                .line(|w| write_alert_line(w, self.watch.rules(), key, c, now_ns))?;
        }
        if !changes.is_empty() {
            self.sink.flush()?;
        }
        Ok(())
    }
    fn idle(&mut self) -> anyhow::Result<()> {
        self.sink.flush()
    }
    fn end(&mut self, _h: &Health) -> anyhow::Result<()> {
        self.sink.flush()
    }
    fn done(&self) -> bool {
        self.sink.closed()
    }
}
