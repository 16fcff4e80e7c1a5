//! `--metrics ADDR`: every http-top a Prometheus target.
//!
//! ```text
//! session ──exchange──▶ Exporter (series, on the session's thread)
//!                          │ publishes a snapshot when a scrape asks (checked every few packets)
//!                          ▼
//!                      serve (its own thread: hyper on tokio) ──GET /metrics──▶ Prometheus
//! ```
//!
//! Names follow the OpenTelemetry HTTP semantic conventions as Prometheus names
//! (`http_server_request_duration_seconds` and its labels `http_request_method`,
//! `http_response_status_code`, `http_route`, `server_address`, `server_port`,
//! `network_protocol_version`), with http-top's own under `http_top_`. The session's thread owns
//! the numbers and never waits for the endpoint: a scrape raises a flag, the session hands over a
//! copy at its next wake (within 100 ms), and the endpoint encodes that copy on its own thread.

mod encode;
pub mod serve;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::{
    counters::Counter,
    proto::Exchange,
    session::{Health, Output},
    stats::GroupKey,
    text::ellipsize,
};

/// The OpenTelemetry HTTP server duration buckets, seconds.
pub const DEFAULT_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Labels every series has, in this order; `--metrics-labels` adds more after them.
pub const FIXED_LABELS: [&str; 6] = [
    "http_request_method",
    "http_response_status_code",
    "http_route",
    "server_address",
    "server_port",
    "network_protocol_version",
];
const STATUS: usize = 1;

/// Methods named as they are; any other is `_OTHER` (OpenTelemetry's rule: a method is a bounded
/// label only if the set is closed).
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];
pub const OTHER_METHOD: &str = "_OTHER";

/// Longest label value, in characters; a longer one is cut (and ends in `…`).
pub const MAX_LABEL_CHARS: usize = 128;

/// The label a grouping key becomes with `--metrics-labels`; an error for the keys that already
/// are labels.
pub fn label_name(key: &GroupKey) -> Result<String, String> {
    Ok(match key {
        GroupKey::Client => "client_address".into(),
        GroupKey::Host => "http_host".into(),
        GroupKey::Path => "url_path".into(),
        GroupKey::PathPrefix(n) => format!("url_path_{n}"),
        GroupKey::Query(name) => format!(
            "query_{}",
            name.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        ),
        GroupKey::Status => "http_response_status_class".into(),
        // OpenTelemetry's name for an RPC system, and the gRPC status code's.
        GroupKey::Proto => "http_top_protocol".into(),
        GroupKey::Grpc => "rpc_grpc_status_code".into(),
        // OpenTelemetry's resource names, for the server's side and the client's.
        GroupKey::Process => "process_executable_name".into(),
        GroupKey::Container => "container_name".into(),
        GroupKey::ClientProcess => "client_process_executable_name".into(),
        GroupKey::ClientContainer => "client_container_name".into(),
        GroupKey::Server | GroupKey::Port | GroupKey::Route | GroupKey::Method => {
            return Err(format!(
                "{key} is a label of every series already (server_address, server_port, \
                 http_route, http_request_method)"
            ));
        }
    })
}

/// What `--metrics*` asked for.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub addr: SocketAddr,
    /// Histogram bucket bounds, seconds, ascending.
    pub buckets: Vec<f64>,
    /// Keys added as labels (`--metrics-labels`).
    pub labels: Vec<GroupKey>,
    /// Most label sets; past it new ones are folded ([`Series`]).
    pub max_series: usize,
    /// The interfaces captured on (the `interface` label of the capture's counters); empty for a
    /// file.
    pub interfaces: Vec<String>,
}

impl MetricsConfig {
    /// Every label name, fixed then added; an error when an added one repeats or is taken.
    pub fn label_names(&self) -> Result<Vec<String>, String> {
        let mut names: Vec<String> = FIXED_LABELS.iter().map(|s| (*s).to_owned()).collect();
        for k in &self.labels {
            let n = label_name(k)?;
            if names.contains(&n) {
                return Err(format!("--metrics-labels names {n} twice"));
            }
            names.push(n);
        }
        Ok(names)
    }
}

/// One label set's numbers.
#[derive(Debug, Clone)]
pub struct Series {
    /// Values in the order of the label names; an empty value is left out when encoded (the
    /// status code of a request without response).
    pub values: Arc<[Box<str>]>,
    /// Observations per bucket (not cumulative), one more than the bounds (the last is `+Inf`).
    pub buckets: Box<[u64]>,
    pub count: u64,
    pub sum_s: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub without_response: u64,
}

/// Everything one scrape shows, copied from the session's thread.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub label_names: Arc<[String]>,
    pub bounds: Arc<[f64]>,
    pub series: Vec<Series>,
    /// Exchanges counted in a folded label set because the cap was reached.
    pub folded: u64,
    /// The pipeline's counters and the capture's.
    pub pipeline: Vec<Counter>,
    pub capture: Vec<Counter>,
    /// Interfaces, comma-separated (the capture counters' `interface` label); empty for a file.
    pub interfaces: Arc<str>,
    /// The session ended: nothing newer will come.
    pub last: bool,
}

/// The label sets seen so far and their numbers.
struct Store {
    names: Arc<[String]>,
    bounds: Arc<[f64]>,
    extra: Vec<GroupKey>,
    max_series: usize,
    /// Index into `series` by the raw label set (method, status, route, server, version and each
    /// added key's raw group): only a new label set is turned into text.
    index: HashMap<Box<[u8]>, usize, foldhash::fast::RandomState>,
    series: Vec<Series>,
    folded: u64,
    scratch: Vec<u8>,
}

/// The raw form of a folded label part (no raw group starts with it).
const RAW_FOLDED: u8 = 0xff;

impl Store {
    fn new(config: &MetricsConfig, names: Vec<String>) -> Self {
        Self {
            names: names.into(),
            bounds: config.buckets.clone().into(),
            extra: config.labels.clone(),
            max_series: config.max_series.max(1),
            index: HashMap::default(),
            series: Vec::new(),
            folded: 0,
            scratch: Vec::new(),
        }
    }

    fn add(&mut self, e: &Exchange) {
        let mut raw = std::mem::take(&mut self.scratch);
        raw.clear();
        write_raw(e, &self.extra, false, &mut raw);
        let i = match self.index.get(raw.as_slice()) {
            Some(&i) => i,
            None if self.series.len() < self.max_series => self.insert(&raw, e, false),
            None => {
                // Past the cap: the label set keeps its method, status code and protocol
                // version (bounded sets); its route, server and added labels become `_other`.
                self.folded += 1;
                raw.clear();
                write_raw(e, &self.extra, true, &mut raw);
                match self.index.get(raw.as_slice()) {
                    Some(&i) => i,
                    None => self.insert(&raw, e, true),
                }
            }
        };
        self.scratch = raw;
        let s = &mut self.series[i];
        s.request_bytes += e.req_bytes;
        s.response_bytes += e.resp_bytes;
        if e.request_seen && e.status.is_none() {
            s.without_response += 1;
        }
        if let Some(ns) = e.latency_ns() {
            let secs = ns as f64 / 1e9;
            // `le` is inclusive: the first bound at or above the value.
            let b = self.bounds.partition_point(|&le| le < secs);
            s.buckets[b] += 1;
            s.count += 1;
            s.sum_s += secs;
        }
    }

    fn insert(&mut self, raw: &[u8], e: &Exchange, folded: bool) -> usize {
        let mut values: Vec<Box<str>> = label_values(e, folded).into_iter().collect();
        for k in &self.extra {
            values.push(if folded {
                crate::stats::OTHER.into()
            } else {
                safe(&k.label(e))
            });
        }
        self.series.push(Series {
            values: values.into(),
            buckets: vec![0; self.bounds.len() + 1].into(),
            count: 0,
            sum_s: 0.0,
            request_bytes: 0,
            response_bytes: 0,
            without_response: 0,
        });
        self.index.insert(raw.into(), self.series.len() - 1);
        self.series.len() - 1
    }
}

/// A label value as exported: printable already (labels come from [`GroupKey::label`], which
/// escapes wire bytes), cut to [`MAX_LABEL_CHARS`].
fn safe(s: &str) -> Box<str> {
    ellipsize(s, MAX_LABEL_CHARS).into_boxed_str()
}

/// The fixed labels' values of `e`.
fn label_values(e: &Exchange, folded: bool) -> [Box<str>; 6] {
    let other = || Box::<str>::from(crate::stats::OTHER);
    let method = method_index(e).map_or(OTHER_METHOD, |i| KNOWN_METHODS[i]);
    [
        method.into(),
        e.status.map_or_else(Box::default, |s| s.to_string().into()),
        if folded {
            other()
        } else {
            safe(&GroupKey::Route.label(e))
        },
        if folded {
            other()
        } else {
            e.server.ip().to_string().into()
        },
        if folded {
            other()
        } else {
            e.server.port().to_string().into()
        },
        e.protocol.version().into(),
    ]
}

fn method_index(e: &Exchange) -> Option<usize> {
    let m = e.method().filter(|_| e.request_seen && !e.unparsable)?;
    KNOWN_METHODS.iter().position(|k| k.as_bytes() == m)
}

/// The raw label set of `e`: what [`label_values`] and the added keys' labels are made from.
fn write_raw(e: &Exchange, extra: &[GroupKey], folded: bool, out: &mut Vec<u8>) {
    out.push(method_index(e).map_or(0, |i| i as u8 + 1));
    out.extend_from_slice(&e.status.unwrap_or(0).to_be_bytes());
    out.push(e.protocol as u8);
    if folded {
        out.push(RAW_FOLDED);
        return;
    }
    // The server (address and port) and the route as their grouping keys write them, then each
    // added key; each part length-prefixed so that two sets cannot run together.
    for key in [&GroupKey::Server, &GroupKey::Route]
        .into_iter()
        .chain(extra)
    {
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        key.write_raw(e, out);
        let len = u16::try_from(out.len() - at - 2).unwrap_or(u16::MAX);
        out[at..at + 2].copy_from_slice(&len.to_be_bytes());
    }
}

/// The session's side of the endpoint: hands a snapshot over when a scrape asks.
#[derive(Clone)]
pub struct Publisher {
    tx: tokio::sync::watch::Sender<Arc<Snapshot>>,
    wanted: Arc<AtomicBool>,
}

impl Publisher {
    /// A publisher and what the endpoint reads from it.
    pub fn new() -> (Self, serve::Snapshots) {
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(Snapshot::default()));
        let wanted = Arc::new(AtomicBool::new(false));
        (
            Self {
                tx,
                wanted: Arc::clone(&wanted),
            },
            serve::Snapshots { rx, wanted },
        )
    }
}

/// The exporter as a session output.
pub struct Exporter {
    store: Store,
    publisher: Publisher,
    interfaces: Arc<str>,
    health: Health,
}

impl Exporter {
    pub fn new(config: &MetricsConfig, publisher: Publisher) -> Result<Self, String> {
        let names = config.label_names()?;
        Ok(Self {
            store: Store::new(config, names),
            publisher,
            interfaces: config.interfaces.join(",").into(),
            health: Health::default(),
        })
    }

    /// The numbers now, as a scrape shows them.
    pub fn snapshot(&self, last: bool) -> Snapshot {
        Snapshot {
            label_names: Arc::clone(&self.store.names),
            bounds: Arc::clone(&self.store.bounds),
            series: self.store.series.clone(),
            folded: self.store.folded,
            pipeline: self.health.totals.list().collect(),
            capture: self.health.capture.shown(self.health.live).collect(),
            interfaces: Arc::clone(&self.interfaces),
            last,
        }
    }

    fn publish_if_wanted(&mut self) {
        if self.publisher.wanted.swap(false, Ordering::AcqRel) {
            self.publish(false);
        }
    }

    fn publish(&mut self, last: bool) {
        let snap = Arc::new(self.snapshot(last));
        self.publisher.tx.send_replace(snap);
    }
}

impl Output for Exporter {
    fn exchange(&mut self, e: &Exchange) -> anyhow::Result<()> {
        self.store.add(e);
        Ok(())
    }
    fn wake(&mut self, _now_ns: u64) -> anyhow::Result<()> {
        self.publish_if_wanted();
        Ok(())
    }
    fn idle(&mut self) -> anyhow::Result<()> {
        self.publish_if_wanted();
        Ok(())
    }
    fn health(&mut self, h: &Health) -> anyhow::Result<()> {
        self.health = *h;
        self.publish_if_wanted();
        Ok(())
    }
    fn end(&mut self, h: &Health) -> anyhow::Result<()> {
        self.health = *h;
        self.publish(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
