//! The dashboard's columns: the group, then metrics of the catalogue.

use crate::stats::{
    GroupKey, Row,
    metric::{Metric, Period},
};

/// A column of the dashboard's tables: the group, or a metric of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Group,
    Metric(Metric),
}

/// The columns shown, in order (TTFB on `T`).
pub(super) const COLUMNS: [Metric; 12] = [
    Metric::Requests,
    Metric::Rate,
    Metric::BytesIn,
    Metric::BytesOut,
    Metric::Success,
    Metric::Status(4),
    Metric::Status(5),
    Metric::LatencyMin,
    Metric::LatencyAvg,
    Metric::LatencyMax,
    Metric::LatencyP99,
    Metric::TtfbAvg,
];

impl Column {
    /// The metric as shown: byte totals become rates with `t`.
    pub fn metric(self, rates: bool) -> Option<Metric> {
        match self {
            Self::Group => None,
            Self::Metric(m) if rates => Some(m.per_second()),
            Self::Metric(m) => Some(m),
        }
    }

    pub fn title(self, key: &GroupKey, rates: bool) -> String {
        self.metric(rates)
            .map_or_else(|| key.to_string().to_uppercase(), |m| m.title().to_owned())
    }

    /// Sort key: larger is "more"; no value sorts below every value. Groups sort by name.
    pub fn value(self, r: &Row, span: Period, rates: bool) -> f64 {
        self.metric(rates)
            .and_then(|m| m.value(&r.agg, span))
            .unwrap_or(-1.0)
    }
}
