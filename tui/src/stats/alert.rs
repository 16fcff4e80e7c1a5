//! Threshold alerts (`--alert 'p99>250ms'`, `'success<99%'`, `'5xx>1/s'`): each rule is checked for
//! every group at every tick, over a sliding window of the last ticks, and a group whose check
//! changes starts or stops an alert.
//!
//! Latency quantiles are decided exactly, by counting, not estimated from a histogram: `p99>250ms`
//! holds when more than 1% of the window's exchanges took longer than 250 ms (the statistics count,
//! per tick, the exchanges slower than each rule's threshold, in ns:
//! [`super::tick::TickCounts::over`]), in integers, so a share exactly at the quantile does not
//! fire. Its value is that share.
//!
//! A window of up to [`SLOTS`] ticks slides tick by tick; a longer one is kept in [`SLOTS`] slots
//! of several ticks each (memory per group stays small under every key) and slides a slot at a
//! time. Its sums are kept running: a tick costs the same for any window.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    str::FromStr,
};

use super::{
    Row,
    tick::{MAX_THRESHOLDS, TickDetail},
};

/// What a rule measures over its window.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Measure {
    /// A latency quantile in parts per million (990 000 for p99) against a threshold counted in
    /// [`Rule::slot`].
    Quantile(u32),
    /// Average latency, µs.
    Avg,
    /// Success rate, percent (as the SUCC% column).
    Success,
    /// Final responses of a status class (1..=5) per second.
    ClassRate(u8),
    /// Final responses of a status class, percent of all final responses.
    ClassShare(u8),
    /// Requests per second.
    Rate,
}

/// One `--alert` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// As written (spaces removed), for messages and JSON.
    pub text: String,
    measure: Measure,
    /// `>` (else `<`).
    above: bool,
    /// µs for latencies, percent for shares and success, per second for rates.
    threshold: f64,
    /// For a quantile: the index of its threshold among the statistics' counted ones.
    slot: usize,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn latency_us(s: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix("us").or_else(|| s.strip_suffix("µs")) {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v * scale)
}

fn number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let lower = text.to_lowercase();
        let bad = |why: &str| {
            format!(
                "{text:?}: {why} (e.g. p99>250ms, avg>100ms, success<99%, 5xx>1/s, 5xx>2%, rate<10/s)"
            )
        };
        let at = lower.find(['>', '<']).ok_or_else(|| bad("no > or <"))?;
        let (what, rest) = lower.split_at(at);
        let above = rest.starts_with('>');
        let value = &rest[1..];
        let (measure, threshold) = match what {
            "avg" => (
                Measure::Avg,
                latency_us(value).ok_or_else(|| bad("a latency needs a unit: us, ms, s"))?,
            ),
            "success" => (
                Measure::Success,
                number(value.trim_end_matches('%')).ok_or_else(|| bad("a percentage"))?,
            ),
            "rate" => (
                Measure::Rate,
                number(value.trim_end_matches("/s")).ok_or_else(|| bad("a rate per second"))?,
            ),
            c if c.len() == 3 && c.ends_with("xx") && (b'1'..=b'5').contains(&c.as_bytes()[0]) => {
                let class = c.as_bytes()[0] - b'0';
                if let Some(p) = value.strip_suffix('%') {
                    (
                        Measure::ClassShare(class),
                        number(p).ok_or_else(|| bad("a percentage"))?,
                    )
                } else {
                    (
                        Measure::ClassRate(class),
                        number(value.trim_end_matches("/s"))
                            .ok_or_else(|| bad("a rate per second or a percentage"))?,
                    )
                }
            }
            p if p.starts_with('p') => {
                let q = number(&p[1..])
                    .filter(|q| *q > 0.0 && *q < 100.0)
                    .ok_or_else(|| bad("a quantile is p1 .. p99.9999"))?;
                (
                    Measure::Quantile((q * 10_000.0).round() as u32),
                    latency_us(value).ok_or_else(|| bad("a latency needs a unit: us, ms, s"))?,
                )
            }
            _ => return Err(bad("unknown measure")),
        };
        Ok(Self {
            text,
            measure,
            above,
            threshold,
            slot: 0,
        })
    }
}

/// Every `--alert` rule, with the latency thresholds the statistics must count for them.
#[derive(Debug, Clone, Default)]
pub struct Rules(Vec<Rule>);

impl Rules {
    /// Numbers the quantile rules' thresholds; an error past [`MAX_THRESHOLDS`] of them.
    pub fn new(mut rules: Vec<Rule>) -> Result<Self, String> {
        let mut slot = 0;
        for r in &mut rules {
            if matches!(r.measure, Measure::Quantile(_)) {
                r.slot = slot;
                slot += 1;
            }
        }
        if slot > MAX_THRESHOLDS {
            return Err(format!(
                "at most {MAX_THRESHOLDS} latency quantile alerts (got {slot})"
            ));
        }
        Ok(Self(rules))
    }

    /// The latencies (ns) the statistics count exceedances of, by slot.
    pub fn thresholds_ns(&self) -> Vec<u64> {
        self.0
            .iter()
            .filter(|r| matches!(r.measure, Measure::Quantile(_)))
            .map(|r| (r.threshold * 1e3).round() as u64)
            .collect()
    }

    pub fn list(&self) -> &[Rule] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Ticks (or slots of ticks) a window keeps at most.
pub const SLOTS: usize = 30;

/// What a tick, a slot or a window counted for a group.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    ns: u64,
    requests: u64,
    responses: u64,
    failed: u64,
    no_response: u64,
    status: [u64; 5],
    timed: u64,
    latency_sum_us: u64,
    over: [u64; MAX_THRESHOLDS],
}

impl Sample {
    fn of(r: &Row, ns: u64) -> Self {
        let t = &r.agg.last_tick;
        let none = TickDetail::default();
        let d = t.detail.as_deref().unwrap_or(&none);
        Self {
            ns,
            requests: t.requests,
            responses: d.responses,
            failed: d.failed,
            no_response: d.no_response,
            status: d.status,
            timed: d.timed,
            latency_sum_us: d.latency_sum_us,
            over: d.over.map(u64::from),
        }
    }

    /// Adds `o` to this (`sign` 1), or takes it away (`sign` -1: a slot leaving the window).
    fn add(&mut self, o: &Self, sign: i8) {
        let f = |a: &mut u64, b: u64| {
            *a = if sign > 0 {
                a.saturating_add(b)
            } else {
                a.saturating_sub(b)
            }
        };
        f(&mut self.ns, o.ns);
        f(&mut self.requests, o.requests);
        f(&mut self.responses, o.responses);
        f(&mut self.failed, o.failed);
        f(&mut self.no_response, o.no_response);
        f(&mut self.timed, o.timed);
        f(&mut self.latency_sum_us, o.latency_sum_us);
        for (a, b) in self.status.iter_mut().zip(o.status) {
            f(a, b);
        }
        for (a, b) in self.over.iter_mut().zip(o.over) {
            f(a, b);
        }
    }
}

impl Rule {
    /// The rule's value over a window: `None` when there is nothing to measure (no timed exchange
    /// for a latency, no response for a share).
    fn value(&self, w: &Sample) -> Option<f64> {
        let pct = |n: u64, d: u64| (d > 0).then(|| n as f64 * 100.0 / d as f64);
        let secs = w.ns as f64 / 1e9;
        let per_s = |n: u64| (secs > 0.0).then(|| n as f64 / secs);
        match self.measure {
            Measure::Quantile(_) => pct(w.over[self.slot], w.timed),
            Measure::Avg => (w.timed > 0).then(|| w.latency_sum_us as f64 / w.timed as f64),
            Measure::Success => pct(w.responses - w.failed, w.responses + w.no_response),
            Measure::ClassRate(c) => per_s(w.status[usize::from(c - 1)]),
            Measure::ClassShare(c) => pct(w.status[usize::from(c - 1)], w.responses),
            Measure::Rate => per_s(w.requests),
        }
    }

    /// Whether the rule holds for window `w`, whose value is `v`.
    fn holds(&self, w: &Sample, v: Option<f64>) -> bool {
        let Some(v) = v else { return false };
        match self.measure {
            // p99 > T: more than 1% slower than T, in integers (over/timed > (1 - q));
            // p99 < T: no more than that.
            Measure::Quantile(ppm) => {
                let over = u128::from(w.over[self.slot]) * 1_000_000;
                let allowed = u128::from(1_000_000 - ppm) * u128::from(w.timed);
                (over > allowed) == self.above
            }
            _ if self.above => v > self.threshold,
            _ => v < self.threshold,
        }
    }

    /// A value of this rule as people read it: `3.1% slower`, `120ms`, `97.5%`, `4.0/s`.
    pub fn describe(&self, v: Option<f64>) -> String {
        let Some(v) = v else { return "-".into() };
        match self.measure {
            Measure::Quantile(_) => format!("{v:.1}% slower"),
            Measure::Avg => crate::units::micros(v),
            Measure::Success | Measure::ClassShare(_) => format!("{v:.1}%"),
            Measure::ClassRate(_) | Measure::Rate => format!("{v:.1}/s"),
        }
    }

    /// The value for machines, and its unit: quantiles as the percent of exchanges slower than
    /// the threshold, latencies in ms, shares in percent, rates per second.
    pub fn machine_value(&self, v: f64) -> (f64, &'static str) {
        match self.measure {
            Measure::Quantile(_) => (v, "percent_slower"),
            Measure::Avg => (v / 1000.0, "ms"),
            Measure::Success | Measure::ClassShare(_) => (v, "percent"),
            Measure::ClassRate(_) | Measure::Rate => (v, "per_second"),
        }
    }
}

/// A change of an alert's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Index into the rules.
    pub rule: usize,
    /// Index of the grouping key.
    pub key: usize,
    pub group: String,
    /// Started (else stopped).
    pub firing: bool,
    /// The window's value.
    pub value: Option<f64>,
    /// Requests in the window, and its length in seconds.
    pub requests: u64,
    pub window_s: f64,
}

/// One group's window and alert states.
#[derive(Debug, Clone, Default)]
struct Watched {
    /// The window's slots, oldest first; the last is being filled.
    slots: VecDeque<Sample>,
    /// Ticks in the last slot.
    in_last: usize,
    /// The sum of the slots.
    sum: Sample,
    /// Per rule: whether it is firing, and its latest value.
    firing: Vec<bool>,
    values: Vec<Option<f64>>,
}

/// Alert states of every group, under any number of keys.
#[derive(Debug, Clone)]
pub struct Watch {
    rules: Rules,
    /// Ticks per slot, and slots per window.
    slot_ticks: usize,
    slots: usize,
    groups: HashMap<(usize, String), Watched>,
}

impl Watch {
    /// Checks `rules` over windows of `window_ticks` ticks (past [`SLOTS`] ticks, the nearest
    /// whole number of slots).
    pub fn new(rules: Rules, window_ticks: usize) -> Self {
        let window_ticks = window_ticks.max(1);
        let slot_ticks = window_ticks.div_ceil(SLOTS);
        Self {
            rules,
            slot_ticks,
            slots: window_ticks.div_ceil(slot_ticks),
            groups: HashMap::new(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Takes a tick of `tick_s` seconds of key `key`'s rows (their `last_tick`) and returns the
    /// alerts that started or stopped, in the rows' order.
    pub fn observe(&mut self, key: usize, rows: &[Row], tick_s: f64) -> Vec<Change> {
        let mut changes = Vec::new();
        if self.rules.is_empty() {
            return changes;
        }
        let n = self.rules.list().len();
        let tick_ns = (tick_s.max(0.0) * 1e9) as u64;
        for r in rows {
            let w = self.groups.entry((key, r.group.clone())).or_default();
            if w.slots.is_empty() || w.in_last == self.slot_ticks {
                if w.slots.len() == self.slots
                    && let Some(old) = w.slots.pop_front()
                {
                    w.sum.add(&old, -1);
                }
                w.slots.push_back(Sample::default());
                w.in_last = 0;
            }
            let tick = Sample::of(r, tick_ns);
            if let Some(last) = w.slots.back_mut() {
                last.add(&tick, 1);
            }
            w.in_last += 1;
            w.sum.add(&tick, 1);
            let sum = w.sum;
            w.firing.resize(n, false);
            w.values.resize(n, None);
            for (i, rule) in self.rules.list().iter().enumerate() {
                let v = rule.value(&sum);
                let holds = rule.holds(&sum, v);
                w.values[i] = v;
                if holds != w.firing[i] {
                    w.firing[i] = holds;
                    changes.push(Change {
                        rule: i,
                        key,
                        group: r.group.clone(),
                        firing: holds,
                        value: v,
                        requests: sum.requests,
                        window_s: sum.ns as f64 / 1e9,
                    });
                }
            }
        }
        changes
    }

    /// The rules firing in `w`, with their latest values.
    fn firing_in<'a>(
        &'a self,
        w: &'a Watched,
    ) -> impl Iterator<Item = (&'a Rule, Option<f64>)> + 'a {
        self.rules
            .list()
            .iter()
            .zip(&w.firing)
            .zip(&w.values)
            .filter(|((_, f), _)| **f)
            .map(|((r, _), v)| (r, *v))
    }

    /// The rules firing for a group, with their latest values.
    pub fn firing(&self, key: usize, group: &str) -> Vec<(&Rule, Option<f64>)> {
        self.groups
            .get(&(key, group.to_owned()))
            .map(|w| self.firing_in(w).collect())
            .unwrap_or_default()
    }

    /// Whether any alert of key `key` is firing (the layout asks several times a frame: no list).
    pub fn any_firing(&self, key: usize) -> bool {
        self.groups
            .iter()
            .any(|((k, _), w)| *k == key && w.firing.contains(&true))
    }

    /// Every firing alert of key `key`: (group, rule, latest value), by group.
    pub fn all_firing(&self, key: usize) -> Vec<(&str, &Rule, Option<f64>)> {
        let mut out: Vec<(&str, &Rule, Option<f64>)> = self
            .groups
            .iter()
            .filter(|((k, _), _)| *k == key)
            .flat_map(|((_, g), w)| self.firing_in(w).map(move |(r, v)| (g.as_str(), r, v)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0).then_with(|| a.1.text.cmp(&b.1.text)));
        out
    }

    /// Forgets every window and state (the statistics were cleared).
    pub fn reset(&mut self) {
        self.groups.clear();
    }
}

#[cfg(test)]
mod tests;
