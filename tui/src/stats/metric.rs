//! The catalogue of metrics: every number a table shows about a group, with its titles, how it is
//! computed from an [`Agg`] and how it is written in each style. The headless table, the CSV
//! file and the dashboard read their columns from here, so a new metric is one variant and one
//! line in each match below (as procps `ps` keeps its columns in one table).

use super::Agg;
use crate::units;

/// How numbers are shown in the dashboard (`-u`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Units {
    /// KiB/MiB, µs/ms/s, 12.3k.
    Human,
    /// Plain bytes, microseconds, counts.
    Raw,
}

/// Where a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// For people: tables and the dashboard.
    Human,
    /// The dashboard with `-u raw`: plain numbers.
    Raw,
    /// A CSV cell: plain numbers, milliseconds for times, empty when there is no value.
    Csv,
}

impl From<Units> for Style {
    fn from(u: Units) -> Self {
        match u {
            Units::Human => Self::Human,
            Units::Raw => Self::Raw,
        }
    }
}

/// What a value measures, which decides how it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Count,
    /// Per second, one decimal.
    PerSecond,
    Bytes,
    BytesPerSecond,
    Percent,
    Micros,
}

/// The clocks a rate needs: the last complete tick and the whole capture, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Period {
    pub tick_s: f64,
    pub elapsed_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Requests,
    /// Requests per second over the last tick.
    Rate,
    /// Requests per second since the first exchange.
    AvgRate,
    Responses,
    NoResponse,
    BytesIn,
    BytesOut,
    /// Request and response bytes per second over the last tick.
    BytesInRate,
    BytesOutRate,
    /// Final responses of a status class, 1xx to 5xx.
    Status(u8),
    Success,
    LatencyMin,
    LatencyAvg,
    LatencyMax,
    LatencyP50,
    LatencyP90,
    LatencyP99,
    TtfbAvg,
    TtfbP99,
    /// Exchanges capture loss touched.
    GapAffected,
}

/// The headless table's columns, after the group.
pub const TABLE: [Metric; 18] = [
    Metric::Requests,
    Metric::Rate,
    Metric::AvgRate,
    Metric::BytesIn,
    Metric::BytesOut,
    Metric::Status(2),
    Metric::Status(3),
    Metric::Status(4),
    Metric::Status(5),
    Metric::NoResponse,
    Metric::Success,
    Metric::LatencyMin,
    Metric::LatencyAvg,
    Metric::LatencyMax,
    Metric::LatencyP50,
    Metric::LatencyP90,
    Metric::LatencyP99,
    Metric::TtfbAvg,
];

/// The CSV file's columns, after `group`. A public interface: append, never change.
pub const CSV: [Metric; 20] = [
    Metric::Requests,
    Metric::Responses,
    Metric::NoResponse,
    Metric::BytesIn,
    Metric::BytesOut,
    Metric::Status(1),
    Metric::Status(2),
    Metric::Status(3),
    Metric::Status(4),
    Metric::Status(5),
    Metric::Success,
    Metric::LatencyMin,
    Metric::LatencyAvg,
    Metric::LatencyMax,
    Metric::LatencyP50,
    Metric::LatencyP90,
    Metric::LatencyP99,
    Metric::TtfbAvg,
    Metric::TtfbP99,
    Metric::GapAffected,
];

impl Metric {
    /// The column title in tables and the dashboard.
    pub fn title(self) -> &'static str {
        match self {
            Self::Requests => "REQS",
            Self::Rate => "REQ/S",
            Self::AvgRate => "AVG/S",
            Self::Responses => "RESPS",
            Self::NoResponse => "NORESP",
            Self::BytesIn => "IN",
            Self::BytesOut => "OUT",
            Self::BytesInRate => "IN/S",
            Self::BytesOutRate => "OUT/S",
            Self::Status(1) => "1XX",
            Self::Status(2) => "2XX",
            Self::Status(3) => "3XX",
            Self::Status(4) => "4XX",
            Self::Status(_) => "5XX",
            Self::Success => "SUCC%",
            Self::LatencyMin => "MIN",
            Self::LatencyAvg => "AVG",
            Self::LatencyMax => "MAX",
            Self::LatencyP50 => "P50",
            Self::LatencyP90 => "P90",
            Self::LatencyP99 => "P99",
            Self::TtfbAvg => "TTFB",
            Self::TtfbP99 => "TTFB99",
            Self::GapAffected => "GAPPED",
        }
    }

    /// The CSV column name.
    pub fn csv_name(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Rate => "requests_per_s",
            Self::AvgRate => "requests_per_s_avg",
            Self::Responses => "responses",
            Self::NoResponse => "no_response",
            Self::BytesIn => "bytes_in",
            Self::BytesOut => "bytes_out",
            Self::BytesInRate => "bytes_in_per_s",
            Self::BytesOutRate => "bytes_out_per_s",
            Self::Status(1) => "status_1xx",
            Self::Status(2) => "status_2xx",
            Self::Status(3) => "status_3xx",
            Self::Status(4) => "status_4xx",
            Self::Status(_) => "status_5xx",
            Self::Success => "success_rate",
            Self::LatencyMin => "latency_min_ms",
            Self::LatencyAvg => "latency_avg_ms",
            Self::LatencyMax => "latency_max_ms",
            Self::LatencyP50 => "latency_p50_ms",
            Self::LatencyP90 => "latency_p90_ms",
            Self::LatencyP99 => "latency_p99_ms",
            Self::TtfbAvg => "ttfb_avg_ms",
            Self::TtfbP99 => "ttfb_p99_ms",
            Self::GapAffected => "gap_affected",
        }
    }

    fn unit(self) -> Unit {
        match self {
            Self::Requests
            | Self::Responses
            | Self::NoResponse
            | Self::Status(_)
            | Self::GapAffected => Unit::Count,
            Self::Rate | Self::AvgRate => Unit::PerSecond,
            Self::BytesIn | Self::BytesOut => Unit::Bytes,
            Self::BytesInRate | Self::BytesOutRate => Unit::BytesPerSecond,
            Self::Success => Unit::Percent,
            _ => Unit::Micros,
        }
    }

    /// The rate form of a byte total (the dashboard's `t`), else itself.
    pub fn per_second(self) -> Self {
        match self {
            Self::BytesIn => Self::BytesInRate,
            Self::BytesOut => Self::BytesOutRate,
            m => m,
        }
    }

    /// The value for a group; `None` when there is none (no latency sample, no tick yet).
    pub fn value(self, a: &Agg, span: Period) -> Option<f64> {
        let per = |n: u64, s: f64| (s > 0.0).then(|| n as f64 / s);
        let lat = |q: f64| (!a.latency.is_empty()).then(|| a.latency.value_at_quantile(q) as f64);
        match self {
            Self::Requests => Some(a.requests as f64),
            Self::Rate => per(a.last_tick.requests, span.tick_s),
            Self::AvgRate => per(a.requests, span.elapsed_s),
            Self::Responses => Some(a.responses as f64),
            Self::NoResponse => Some(a.no_response as f64),
            Self::BytesIn => Some(a.bytes_in as f64),
            Self::BytesOut => Some(a.bytes_out as f64),
            Self::BytesInRate => per(a.last_tick.bytes[0], span.tick_s),
            Self::BytesOutRate => per(a.last_tick.bytes[1], span.tick_s),
            Self::Status(c) => Some(a.status[usize::from(c.clamp(1, 5) - 1)] as f64),
            Self::Success => a.success_rate(),
            Self::LatencyMin => (!a.latency.is_empty()).then(|| a.latency.min() as f64),
            Self::LatencyAvg => (!a.latency.is_empty()).then(|| a.latency.mean()),
            Self::LatencyMax => (!a.latency.is_empty()).then(|| a.latency.max() as f64),
            Self::LatencyP50 => lat(0.5),
            Self::LatencyP90 => lat(0.9),
            Self::LatencyP99 => lat(0.99),
            Self::TtfbAvg => (!a.ttfb.is_empty()).then(|| a.ttfb.mean()),
            Self::TtfbP99 => (!a.ttfb.is_empty()).then(|| a.ttfb.value_at_quantile(0.99) as f64),
            Self::GapAffected => Some(a.gap_affected as f64),
        }
    }

    /// `value` written in `style`.
    pub fn format(self, value: Option<f64>, style: Style) -> String {
        let Some(v) = value else {
            return if style == Style::Csv { "" } else { "-" }.to_owned();
        };
        match (self.unit(), style) {
            (Unit::Count, Style::Human) => units::count(v as u64),
            (Unit::Count, _) => format!("{v:.0}"),
            (Unit::PerSecond, _) => format!("{v:.1}"),
            (Unit::Bytes, Style::Human) => units::bytes(v as u64),
            (Unit::Bytes, _) => format!("{v:.0}"),
            (Unit::BytesPerSecond, Style::Human) => format!("{}/s", units::bytes(v as u64)),
            (Unit::BytesPerSecond, _) => format!("{v:.0}/s"),
            (Unit::Percent, Style::Csv) => format!("{v:.2}"),
            (Unit::Percent, _) => format!("{v:.1}"),
            (Unit::Micros, Style::Human) => units::micros(v),
            (Unit::Micros, Style::Raw) => format!("{v:.0}"),
            (Unit::Micros, Style::Csv) => format!("{:.3}", v / 1000.0),
        }
    }

    /// The value for a group, written in `style`.
    pub fn cell(self, a: &Agg, span: Period, style: Style) -> String {
        self.format(self.value(a, span), style)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_style_writes_a_missing_value_its_way() {
        let a = Agg::default();
        let no_tick = Period {
            tick_s: 0.0,
            elapsed_s: 0.0,
        };
        assert_eq!(Metric::LatencyP99.cell(&a, no_tick, Style::Human), "-");
        assert_eq!(Metric::LatencyP99.cell(&a, no_tick, Style::Csv), "");
        assert_eq!(Metric::Rate.cell(&a, no_tick, Style::Raw), "-");
        assert_eq!(Metric::Requests.cell(&a, no_tick, Style::Csv), "0");
    }
}
