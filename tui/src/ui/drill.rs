//! The drill-down's state: one group, counted under every key from the recent exchanges on.

use std::collections::VecDeque;

use super::{DRILL_LOG, history::History};
use crate::{
    proto::Exchange,
    stats::{GroupKey, Stats},
};

/// Where the user has drilled into: one group, broken down under another key, counted from the
/// recent exchanges on and as new ones arrive.
#[derive(Clone)]
pub struct Drill {
    /// The group, under the key that was shown when Enter was pressed.
    pub key: GroupKey,
    pub group: String,
    /// The breakdown key, an index into the keys (path by default).
    pub by: usize,
    /// The group's exchanges under every key.
    pub stats: Stats,
    /// Its newest exchanges, newest first.
    pub log: VecDeque<Exchange>,
    /// A point per tick of each breakdown group, from the drill-down's start on.
    pub history: History,
}

impl Drill {
    pub(super) fn add(&mut self, e: &Exchange) {
        if self.key.label(e) != self.group {
            return;
        }
        self.stats.add(e);
        if self.log.len() == DRILL_LOG {
            self.log.pop_back();
        }
        self.log.push_front(e.clone());
    }
}
