//! Per-group history, one point per tick: the sparkline's request counts and the heatmap's latency
//! columns, for every key, so switching keys shows history at once.

use std::collections::{HashMap, VecDeque};

use crate::stats::{Row, Stats};

/// Ticks of history kept per group (two minutes at the default 1 s tick).
pub const HISTORY: usize = 120;

/// One tick of one group.
#[derive(Debug, Clone, Default)]
pub struct Point {
    pub requests: u64,
    /// Exchanges per latency bucket ([`crate::stats::tick`]), the non-empty ones.
    pub latency: Box<[(u8, u32)]>,
}

/// The points of every group of every key, oldest first.
#[derive(Debug, Clone, Default)]
pub struct History(HashMap<(usize, String), VecDeque<Point>>);

impl History {
    /// Takes the tick `stats` just closed: a point for each group of each key.
    pub fn record(&mut self, stats: &Stats) {
        for k in 0..stats.keys().len() {
            self.record_rows(k, &stats.rows(k));
        }
    }

    /// Takes the tick just closed for the rows of key `k`.
    pub fn record_rows(&mut self, k: usize, rows: &[Row]) {
        for r in rows {
            let h = self.0.entry((k, r.group.clone())).or_default();
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(Point {
                requests: r.agg.last_tick.requests,
                latency: r
                    .agg
                    .last_tick
                    .detail
                    .as_deref()
                    .map(|d| d.latency.sparse())
                    .unwrap_or_default(),
            });
        }
    }

    pub fn get(&self, key: usize, group: &str) -> Option<&VecDeque<Point>> {
        self.0.get(&(key, group.to_owned()))
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}
