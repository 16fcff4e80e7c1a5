//! A snapshot as Prometheus metric families, encoded by the official client (`prometheus-client`)
//! in the format the scraper asked for.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet},
    metrics::MetricType,
    registry::{Registry, Unit},
};

use super::{STATUS, Series, Snapshot};
use crate::counters::Kind;

/// The exposition formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `text/plain; version=0.0.4`: what curl and older scrapers get.
    Text004,
    /// `application/openmetrics-text; version=1.0.0`: what Prometheus asks for first.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names it (Prometheus's own
    /// header does, with the highest weight), else the 0.0.4 text.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let asks = accept.is_some_and(|a| {
            a.split(',').any(|part| {
                let mut params = part.split(';').map(str::trim);
                let media = params.next().unwrap_or_default();
                let q = params
                    .filter_map(|p| p.strip_prefix("q="))
                    .find_map(|q| q.parse::<f64>().ok())
                    .unwrap_or(1.0);
                media.eq_ignore_ascii_case("application/openmetrics-text") && q > 0.0
            })
        });
        if asks {
            Self::OpenMetrics
        } else {
            Self::Text004
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text004 => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The endpoint's own counters.
#[derive(Debug, Default)]
pub struct ServerCounters {
    pub scrapes: AtomicU64,
    /// Connections closed at once because [`super::serve::MAX_CONNECTIONS`] were open.
    pub rejected: AtomicU64,
    /// Requests for anything but `GET /metrics`.
    pub not_found: AtomicU64,
}

/// Encodes `snap` (and the endpoint's counters) in `format`, into a string of `capacity` to start.
pub fn encode(
    snap: Arc<Snapshot>,
    server: &Arc<ServerCounters>,
    format: Format,
    capacity: usize,
) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families {
        snap,
        server: Arc::clone(server),
    }));
    let mut out = String::with_capacity(capacity);
    let done = match format {
        Format::Text004 => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    // Writing to a String cannot fail; a collector error would be ours, and is a bug.
    debug_assert!(done.is_ok(), "encoding failed");
    out
}

fn put(m: &mut MetricEncoder<'_>, c: &crate::counters::Counter) -> Result<(), std::fmt::Error> {
    match c.kind {
        Kind::Counter => m.encode_counter::<NoLabelSet, _, u64>(&c.value, None),
        Kind::Gauge => m.encode_gauge(&c.value),
    }
}

/// A counter family with one sample per series: name, help, a label left out, the value.
type PerSeries = (
    &'static str,
    &'static str,
    Option<usize>,
    fn(&Series) -> u64,
);

#[derive(Debug)]
struct Families {
    snap: Arc<Snapshot>,
    server: Arc<ServerCounters>,
}

/// A series' labels as name-value pairs; empty values are left out (a request without response
/// has no status code).
fn labels<'a>(names: &'a [String], s: &'a Series, skip: Option<usize>) -> Vec<(&'a str, &'a str)> {
    names
        .iter()
        .zip(s.values.iter())
        .enumerate()
        .filter(|&(i, (_, v))| !v.is_empty() && Some(i) != skip)
        .map(|(_, (n, v))| (n.as_str(), &**v))
        .collect()
}

impl Collector for Families {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = &self.snap;
        let names = &snap.label_names;
        {
            let mut m = enc.encode_descriptor(
                "http_server_request_duration",
                "Duration of HTTP server requests: first request byte to last response byte, \
                 as captured on the wire.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(snap.bounds.len() + 1);
            for s in snap.series.iter().filter(|s| s.count > 0) {
                buckets.clear();
                buckets.extend(snap.bounds.iter().copied().zip(s.buckets.iter().copied()));
                buckets.push((f64::INFINITY, s.buckets[snap.bounds.len()]));
                let l = labels(names, s, None);
                m.encode_family(&l)?
                    .encode_histogram::<NoLabelSet>(s.sum_s, s.count, &buckets, None)?;
            }
        }
        let per_series: [PerSeries; 3] = [
            (
                "http_top_request_bytes",
                "Request message bytes (start line, fields, body, chunk framing).",
                None,
                |s| s.request_bytes,
            ),
            (
                "http_top_response_bytes",
                "Response message bytes (interim responses included).",
                None,
                |s| s.response_bytes,
            ),
            (
                "http_top_requests_without_response",
                "Requests that got no response (connection closed, reset or lost first).",
                Some(STATUS),
                |s| s.without_response,
            ),
        ];
        for (name, help, skip, value) in per_series {
            let (name, unit) = match name.strip_suffix("_bytes") {
                Some(n) => (n, Some(&Unit::Bytes)),
                None => (name, None),
            };
            let mut m = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
            for s in snap.series.iter().filter(|s| value(s) > 0) {
                let l = labels(names, s, skip);
                m.encode_family(&l)?
                    .encode_counter::<NoLabelSet, _, u64>(&value(s), None)?;
            }
        }
        // The pipeline's counters (process-wide), then the capture's (per interface when live).
        let iface = [("interface", &*snap.interfaces)];
        for (list, labelled) in [(&snap.pipeline, false), (&snap.capture, true)] {
            for c in list {
                let name = format!("http_top_{}", c.name);
                let help = format!("http-top's {} counter (as in the summary line).", c.name);
                let kind = match c.kind {
                    Kind::Counter => MetricType::Counter,
                    Kind::Gauge => MetricType::Gauge,
                };
                let mut m = enc.encode_descriptor(&name, &help, None, kind)?;
                if labelled && !snap.interfaces.is_empty() {
                    put(&mut m.encode_family(&iface)?, c)?;
                } else {
                    put(&mut m, c)?;
                }
            }
        }
        let own: [(&str, &str, MetricType, u64); 5] = [
            (
                "http_top_metrics_series",
                "Label sets exported (capped by --metrics-max-series).",
                MetricType::Gauge,
                snap.series.len() as u64,
            ),
            (
                "http_top_metrics_folded_exchanges",
                "Exchanges counted under http_route=\"_other\" because the label sets reached \
                 --metrics-max-series.",
                MetricType::Counter,
                snap.folded,
            ),
            (
                "http_top_metrics_scrapes",
                "Scrapes of this endpoint.",
                MetricType::Counter,
                self.server.scrapes.load(Ordering::Relaxed),
            ),
            (
                "http_top_metrics_rejected_connections",
                "Connections to this endpoint closed at once because too many were open.",
                MetricType::Counter,
                self.server.rejected.load(Ordering::Relaxed),
            ),
            (
                "http_top_metrics_not_found",
                "Requests to this endpoint for anything but GET /metrics.",
                MetricType::Counter,
                self.server.not_found.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, kind, value) in own {
            let mut m = enc.encode_descriptor(name, help, None, kind)?;
            match kind {
                MetricType::Gauge => m.encode_gauge(&value)?,
                _ => m.encode_counter::<NoLabelSet, _, u64>(&value, None)?,
            }
        }
        let mut m = enc.encode_descriptor(
            "http_top_build",
            "The http-top that serves these metrics.",
            None,
            MetricType::Info,
        )?;
        m.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        Ok(())
    }
}
