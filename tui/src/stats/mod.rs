//! Grouping and aggregation of exchanges.
//!
//! Every grouping key the user can switch to is aggregated at once, as exchanges arrive, so switching
//! is instant and loses no history. Each key's table is capped: groups beyond the cap go to
//! `_other` (counted). Rates use capture time, so a file read at any speed shows the rates it had
//! when it was captured.

pub mod alert;
pub mod key;
pub mod metric;
pub mod route;
pub mod slowest;
pub mod tick;

use std::{collections::HashMap, sync::Arc};

use hdrhistogram::Histogram;

pub use self::key::GroupKey;
use self::{
    slowest::{SlowExchange, Slowest},
    tick::{TickCounts, Timing},
};
use crate::{owner::Owner, proto::Exchange};

/// Label of the overflow group.
pub const OTHER: &str = "_other";

/// When rate ticks fall, in capture time: the first one `every` after the first time seen, then
/// `every` after each. Shared by every loop that ticks [`Stats`], so their rates mean the same.
#[derive(Debug, Clone, Copy)]
pub struct Ticker {
    every_ns: u64,
    next_ns: Option<u64>,
}

impl Ticker {
    pub fn new(every: std::time::Duration) -> Self {
        Self {
            every_ns: u64::try_from(every.as_nanos()).unwrap_or(u64::MAX).max(1),
            next_ns: None,
        }
    }

    /// Whether a tick falls at capture time `now_ns`; if so the next one is `every` later.
    pub fn due(&mut self, now_ns: u64) -> bool {
        let next = *self
            .next_ns
            .get_or_insert(now_ns.saturating_add(self.every_ns));
        if now_ns < next {
            return false;
        }
        self.next_ns = Some(now_ns.saturating_add(self.every_ns));
        true
    }
}

/// Aggregates of one group.
#[derive(Debug, Clone)]
pub struct Agg {
    /// Exchanges whose request was seen.
    pub requests: u64,
    /// Final responses (paired or not).
    pub responses: u64,
    /// Requests that got no response.
    pub no_response: u64,
    /// Request message bytes.
    pub bytes_in: u64,
    /// Response message bytes.
    pub bytes_out: u64,
    /// Final responses by class: 1xx .. 5xx.
    pub status: [u64; 5],
    /// Final responses that are failures: 5xx, or a gRPC call whose status is a server error
    /// (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS: the
    /// OpenTelemetry set).
    pub failed: u64,
    /// First request byte to last response byte, µs.
    pub latency: Histogram<u32>,
    /// First request byte to first byte of the final response, µs.
    pub ttfb: Histogram<u32>,
    /// Exchanges that capture loss touched (their numbers are incomplete).
    pub gap_affected: u64,
    /// What the current tick has counted, and what the last complete one did.
    pub tick: TickCounts,
    pub last_tick: TickCounts,
}

impl Default for Agg {
    fn default() -> Self {
        Self {
            requests: 0,
            responses: 0,
            no_response: 0,
            bytes_in: 0,
            bytes_out: 0,
            status: [0; 5],
            failed: 0,
            gap_affected: 0,
            // Two significant digits (1% resolution) and auto-resize keep an idle group small.
            latency: Histogram::new(2).expect("valid sigfig"),
            ttfb: Histogram::new(2).expect("valid sigfig"),
            tick: TickCounts::default(),
            last_tick: TickCounts::default(),
        }
    }
}

impl Agg {
    fn add(&mut self, e: &Exchange, t: &Timing, detail: bool) {
        if e.request_seen {
            self.requests += 1;
            if e.status.is_none() {
                self.no_response += 1;
            }
        }
        self.bytes_in += e.req_bytes;
        self.bytes_out += e.resp_bytes;
        self.gap_affected += u64::from(e.gap);
        if let Some(c) = t.class {
            self.responses += 1;
            self.status[c] += 1;
            self.failed += u64::from(t.failed);
        }
        self.tick.add(e, t, detail);
        // Decided once per exchange (`Timing`), not once per key.
        if let Some(l) = t.latency_us {
            record(&mut self.latency, l);
        }
        if let Some(f) = e.ttfb_ns() {
            record(&mut self.ttfb, f / 1_000);
        }
    }

    /// Final responses that did not fail (status < 500, and no gRPC server error) over final
    /// responses plus requests never answered, in percent; `None` when there is neither.
    pub fn success_rate(&self) -> Option<f64> {
        let denom = self.responses + self.no_response;
        let ok = self.responses - self.failed;
        (denom > 0).then(|| ok as f64 * 100.0 / denom as f64)
    }

    #[cfg(test)]
    fn merge(&mut self, o: &Self) {
        self.requests += o.requests;
        self.responses += o.responses;
        self.no_response += o.no_response;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.gap_affected += o.gap_affected;
        self.failed += o.failed;
        for (a, b) in self.status.iter_mut().zip(o.status) {
            *a += b;
        }
        let _ = self.latency.add(&o.latency);
        let _ = self.ttfb.add(&o.ttfb);
        self.tick.requests += o.tick.requests;
        self.last_tick.requests += o.last_tick.requests;
    }
}

/// Longest time a histogram records, µs (an hour); longer ones count as an hour. Bounds how far an
/// auto-resizing histogram can grow.
const MAX_US: u64 = 3_600_000_000;

fn record(h: &mut Histogram<u32>, us: u64) {
    // Recording within MAX_US cannot fail: the histogram grows to fit.
    let _ = h.record(us.clamp(1, MAX_US));
}

/// All groups of one key.
#[derive(Debug, Default, Clone)]
struct Table {
    /// Index in `aggs` by the group's raw form ([`GroupKey::write_raw`]); foldhash, as in the flow
    /// table.
    groups: HashMap<Box<[u8]>, usize, foldhash::fast::RandomState>,
    aggs: Vec<Agg>,
    /// Per group of the `server` and `client` keys: who was behind it in its latest exchange (the
    /// name shown next to the address); empty for other keys.
    owners: Vec<Option<Arc<Owner>>>,
    /// Per group: its slowest exchanges, when the statistics keep them ([`Stats::keep_slowest`]);
    /// empty otherwise (beside the groups, not in them: a headless table pays nothing).
    slowest: Vec<Slowest>,
    /// The last group added to, by raw form: consecutive exchanges mostly share a server, a
    /// port, a host, a status, and then no hash is needed (lookups were a tenth of a run).
    last: Option<(Vec<u8>, usize)>,
    /// Exchanges that went to `_other` because the table was full.
    overflowed: u64,
}

impl Table {
    /// The index of the group `raw` belongs to, made if new; `_other` once `max` groups exist.
    fn index(&mut self, raw: &[u8], max: usize) -> usize {
        if let Some((last, i)) = &self.last
            && last.as_slice() == raw
        {
            return *i;
        }
        if let Some(&i) = self.groups.get(raw) {
            self.remember(raw, i);
            return i;
        }
        if self.groups.len() >= max {
            // Not remembered: every overflowing exchange is counted as one.
            self.overflowed += 1;
            return self.slot(key::RAW_OTHER);
        }
        let i = self.slot(raw);
        self.remember(raw, i);
        i
    }

    fn slot(&mut self, raw: &[u8]) -> usize {
        if let Some(&i) = self.groups.get(raw) {
            return i;
        }
        self.aggs.push(Agg::default());
        self.groups.insert(raw.into(), self.aggs.len() - 1);
        self.aggs.len() - 1
    }

    /// Records who stood behind group `i`, unless it is the same one (most often: one pointer
    /// compared per exchange).
    fn note_owner(&mut self, i: usize, owner: &Option<Arc<Owner>>) {
        if self.owners.len() <= i {
            self.owners.resize(i + 1, None);
        }
        if let Some(o) = owner
            && !self.owners[i].as_ref().is_some_and(|a| Arc::ptr_eq(a, o))
        {
            self.owners[i] = Some(Arc::clone(o));
        }
    }

    fn remember(&mut self, raw: &[u8], i: usize) {
        let last = self.last.get_or_insert_with(|| (Vec::new(), 0));
        last.0.clear();
        last.0.extend_from_slice(raw);
        last.1 = i;
    }
}

/// Aggregates for every key at once. `Clone` so a paused view can keep a frozen copy.
#[derive(Clone)]
pub struct Stats {
    keys: Vec<GroupKey>,
    tables: Vec<Table>,
    max_groups: usize,
    total: Agg,
    /// Capture time of the first exchange and of the latest tick boundary.
    first_ns: Option<u64>,
    now_ns: u64,
    tick_start_ns: u64,
    last_tick_ns: u64,
    /// Scratch space for raw groups.
    label_buf: Vec<u8>,
    /// Latencies (ns) whose exceedances each tick counts ([`TickCounts::over`]): alert thresholds.
    thresholds_ns: Vec<u64>,
    /// Slowest exchanges kept per group (0: none).
    slowest_cap: usize,
    /// Whether ticks count latency per bucket (the heatmap's columns).
    latency_buckets: bool,
    /// Whether ticks count [`tick::TickDetail`] (for alerts or the heatmap).
    tick_detail: bool,
}

/// One row of a snapshot.
#[derive(Debug, Clone)]
pub struct Row {
    pub group: String,
    pub agg: Agg,
    /// For `server` and `client` groups: the container or process behind the address, when the
    /// names were looked up and it lives on this machine.
    pub name: Option<String>,
    /// Its slowest exchanges, when the statistics keep them.
    pub slowest: Slowest,
}

impl Row {
    /// The group as shown in tables: `orders-api 172.18.0.3:8080` when a name is known.
    pub fn title(&self) -> std::borrow::Cow<'_, str> {
        match &self.name {
            Some(n) => format!("{n} {}", self.group).into(),
            None => self.group.as_str().into(),
        }
    }
}

impl Stats {
    /// Aggregates under each of `keys` (the first is the one shown first), at most `max_groups`
    /// groups per key.
    pub fn new(keys: Vec<GroupKey>, max_groups: usize) -> Self {
        let tables = keys.iter().map(|_| Table::default()).collect();
        Self {
            keys,
            tables,
            max_groups: max_groups.max(1),
            total: Agg::default(),
            first_ns: None,
            now_ns: 0,
            tick_start_ns: 0,
            last_tick_ns: 0,
            label_buf: Vec::new(),
            thresholds_ns: Vec::new(),
            slowest_cap: 0,
            latency_buckets: false,
            tick_detail: false,
        }
    }

    /// Counts per tick and group what alert windows read ([`tick::TickDetail`]: failures, status
    /// classes, latencies) and the exchanges slower than each of these latencies (ns; the first
    /// [`tick::MAX_THRESHOLDS`]).
    pub fn count_for_alerts(&mut self, mut thresholds_ns: Vec<u64>) {
        thresholds_ns.truncate(tick::MAX_THRESHOLDS);
        self.thresholds_ns = thresholds_ns;
        self.tick_detail = true;
    }

    /// Keeps the `n` slowest exchanges of every group.
    pub fn keep_slowest(&mut self, n: usize) {
        self.slowest_cap = n;
    }

    /// Counts each tick's exchanges per latency bucket ([`TickCounts::latency`]).
    pub fn count_latency_buckets(&mut self) {
        self.latency_buckets = true;
        self.tick_detail = true;
    }

    /// Statistics of the same keys, caps and extra counts, with nothing counted.
    pub fn empty_like(&self) -> Self {
        let mut s = Self::new(self.keys.clone(), self.max_groups);
        s.count_for_alerts(self.thresholds_ns.clone());
        s.keep_slowest(self.slowest_cap);
        s.latency_buckets = self.latency_buckets;
        s.tick_detail = self.tick_detail;
        s
    }

    /// Forgets every aggregate, keeping the keys and caps.
    pub fn reset(&mut self) {
        *self = self.empty_like();
    }

    pub fn keys(&self) -> &[GroupKey] {
        &self.keys
    }

    /// Whether a key it groups by reads exchanges' routes ([`Exchange::route`]): outputs that
    /// aggregate say so to the session ([`crate::session::Output::wants_routes`]).
    pub fn reads_routes(&self) -> bool {
        self.keys.contains(&GroupKey::Route)
    }

    pub fn add(&mut self, e: &Exchange) {
        let t = if e.req_first_ns > 0 {
            e.req_first_ns
        } else {
            e.resp_first_ns
        };
        self.first_ns.get_or_insert(t);
        self.now_ns = self.now_ns.max(e.resp_last_ns).max(e.req_last_ns);
        let timing = Timing::of(e, &self.thresholds_ns, self.latency_buckets);
        let detail = self.tick_detail;
        self.total.add(e, &timing, detail);
        // Made once, when a first group keeps it; shared by every group that does.
        let mut slow: Option<std::sync::Arc<SlowExchange>> = None;
        let mut label = std::mem::take(&mut self.label_buf);
        for (key, table) in self.keys.iter().zip(&mut self.tables) {
            label.clear();
            key.write_raw(e, &mut label);
            let i = table.index(&label, self.max_groups);
            table.aggs[i].add(e, &timing, detail);
            if let Some(l) = timing.latency_us
                && self.slowest_cap > 0
            {
                if table.slowest.len() <= i {
                    table.slowest.resize_with(i + 1, Slowest::default);
                }
                let kept = &mut table.slowest[i];
                if kept.admits(l, self.slowest_cap) {
                    let s = slow.get_or_insert_with(|| std::sync::Arc::new(SlowExchange::of(e, l)));
                    kept.insert(s, self.slowest_cap);
                }
            }
            let owner = match key {
                GroupKey::Server => &e.server_owner,
                GroupKey::Client => &e.client_owner,
                _ => continue,
            };
            table.note_owner(i, owner);
        }
        self.label_buf = label;
    }

    /// Closes the current tick at capture time `now_ns`: the per-tick request rate becomes what was
    /// counted since the previous tick.
    pub fn tick(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
        // The first tick began with the first exchange, not at the epoch; a tick with no exchange
        // before it still lasted (its rates are 0/s, not unknown).
        let start = match self.tick_start_ns {
            0 => self
                .first_ns
                .unwrap_or(now_ns)
                .min(now_ns.saturating_sub(1)),
            t => t,
        };
        self.last_tick_ns = now_ns.saturating_sub(start);
        self.tick_start_ns = now_ns;
        let roll = |a: &mut Agg| a.last_tick = std::mem::take(&mut a.tick);
        roll(&mut self.total);
        for t in &mut self.tables {
            t.aggs.iter_mut().for_each(roll);
        }
    }

    /// Seconds of capture time covered so far.
    pub fn elapsed_s(&self) -> f64 {
        self.first_ns
            .map_or(0.0, |f| self.now_ns.saturating_sub(f) as f64 / 1e9)
    }

    /// The clocks rates are computed over.
    pub fn span(&self) -> metric::Period {
        metric::Period {
            tick_s: self.last_tick_s(),
            elapsed_s: self.elapsed_s(),
        }
    }

    /// Length of the last complete tick, seconds.
    pub fn last_tick_s(&self) -> f64 {
        self.last_tick_ns as f64 / 1e9
    }

    pub fn total(&self) -> &Agg {
        &self.total
    }

    /// Groups that overflowed into `_other` for key `k`.
    pub fn overflowed(&self, k: usize) -> u64 {
        self.tables.get(k).map_or(0, |t| t.overflowed)
    }

    /// The rows of key `k`, most requests first (ties by name, so the order is stable).
    pub fn rows(&self, k: usize) -> Vec<Row> {
        let (Some(t), Some(key)) = (self.tables.get(k), self.keys.get(k)) else {
            return Vec::new();
        };
        let mut rows: Vec<Row> = t
            .groups
            .iter()
            .map(|(g, &i)| Row {
                group: key.display(g),
                agg: t.aggs[i].clone(),
                name: t
                    .owners
                    .get(i)
                    .and_then(Option::as_deref)
                    .and_then(Owner::short_name)
                    .map(str::to_owned),
                slowest: t.slowest.get(i).cloned().unwrap_or_default(),
            })
            .collect();
        rows.sort_by(|a, b| {
            b.agg
                .requests
                .cmp(&a.agg.requests)
                .then_with(|| a.group.cmp(&b.group))
        });
        rows
    }

    /// Everything merged (for checks: every key's groups add up to the total).
    #[cfg(test)]
    pub fn merged(&self, k: usize) -> Agg {
        let mut m = Agg::default();
        for a in &self.tables[k].aggs {
            m.merge(a);
        }
        m
    }
}

#[cfg(test)]
mod tests;
