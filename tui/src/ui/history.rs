//! Per-group history, one point per tick: the sparkline's request counts and the heatmap's latency
//! columns, for every key, so switching keys shows history at once.

use std::collections::{HashMap, VecDeque};

use crate::stats::{Row, Stats, tick::Buckets};

/// Ticks of history kept per group (two minutes at the default 1 s tick).
pub const HISTORY: usize = 120;

/// One tick of one group: 24 bytes, and nothing on the heap unless its exchanges fell in more
/// than one latency bucket (measured: with a boxed slice per tick, 6 000 groups' two minutes took
/// 45 MiB).
#[derive(Debug, Clone, Default)]
pub struct Point {
    /// Requests (saturating).
    pub requests: u32,
    pub latency: Column,
}

/// A tick's exchanges per latency bucket ([`crate::stats::tick`]), the non-empty buckets, each
/// packed as `bucket << 24 | count` (a count saturates at 2^24 - 1 in a tick).
#[derive(Debug, Clone, Default)]
pub enum Column {
    #[default]
    Empty,
    One(u32),
    Many(Box<Vec<u32>>),
}

const COUNT_BITS: u32 = 24;

impl Column {
    fn of(b: &Buckets) -> Self {
        let mut packed =
            b.0.iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (i as u32) << COUNT_BITS | (*n).min((1 << COUNT_BITS) - 1));
        match (packed.next(), packed.next()) {
            (None, _) => Self::Empty,
            (Some(one), None) => Self::One(one),
            (Some(a), Some(b)) => Self::Many(Box::new([a, b].into_iter().chain(packed).collect())),
        }
    }

    /// (bucket, exchanges) of the non-empty buckets.
    pub fn iter(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        let packed: &[u32] = match self {
            Self::Empty => &[],
            Self::One(p) => std::slice::from_ref(p),
            Self::Many(v) => v,
        };
        packed
            .iter()
            .map(|p| ((p >> COUNT_BITS) as usize, p & ((1 << COUNT_BITS) - 1)))
    }
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
                requests: u32::try_from(r.agg.last_tick.requests).unwrap_or(u32::MAX),
                latency: r
                    .agg
                    .last_tick
                    .detail
                    .as_deref()
                    .map(|d| Column::of(&d.latency))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_packs_buckets_and_saturates_counts() {
        let mut b = Buckets::default();
        assert!(matches!(Column::of(&b), Column::Empty));
        b.0[7] = 3;
        assert!(matches!(Column::of(&b), Column::One(_)));
        b.0[47] = u32::MAX;
        let c = Column::of(&b);
        assert_eq!(c.iter().collect::<Vec<_>>(), [(7, 3), (47, (1 << 24) - 1)]);
        assert_eq!(std::mem::size_of::<Point>(), 24);
    }
}
