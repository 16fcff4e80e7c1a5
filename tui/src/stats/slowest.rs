//! The slowest exchanges of a group (the dashboard's `o`): a few per group, kept as compact records
//! shared between the keys whose groups they belong to, with every wire string already escaped.

use std::{net::SocketAddr, sync::Arc};

use super::GroupKey;
use crate::{proto::Exchange, text::printable};

/// Longest target kept, in wire bytes (the rest is cut before escaping, so a record stays small).
const TARGET_MAX: usize = 256;

/// One slow exchange, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowExchange {
    /// Capture time of the first request byte, ns since the epoch.
    pub ts_ns: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// As grouped under `proto`: `HTTP/1.1`, `h2c`, `grpc`.
    pub protocol: String,
    /// Escaped (`\xNN`) method and target; the target cut at 256 bytes (ending in `…`).
    pub method: String,
    pub target: String,
    pub status: Option<u16>,
    pub latency_us: u64,
    pub ttfb_us: Option<u64>,
    /// Request and response bytes.
    pub bytes: [u64; 2],
}

impl SlowExchange {
    pub fn of(e: &Exchange, latency_us: u64) -> Self {
        let target = e.target().map_or_else(
            || "-".to_owned(),
            |t| {
                if t.len() > TARGET_MAX {
                    printable(&t[..TARGET_MAX]) + "…"
                } else {
                    printable(t)
                }
            },
        );
        Self {
            ts_ns: e.req_first_ns,
            client: e.client,
            server: e.server,
            protocol: GroupKey::Proto.label(e),
            method: e.method().map_or_else(|| "-".to_owned(), printable),
            target,
            status: e.status,
            latency_us,
            ttfb_us: e.ttfb_ns().map(|n| n / 1_000),
            bytes: [e.req_bytes, e.resp_bytes],
        }
    }
}

/// The slowest exchanges of one group, slowest first, at most the statistics' cap.
#[derive(Debug, Clone, Default)]
pub struct Slowest(Vec<Arc<SlowExchange>>);

impl Slowest {
    /// Whether an exchange this slow would be kept among `cap`.
    pub fn admits(&self, latency_us: u64, cap: usize) -> bool {
        cap > 0 && (self.0.len() < cap || self.0.last().is_some_and(|s| s.latency_us < latency_us))
    }

    /// Keeps `s` among the `cap` slowest (ties: the earlier stays ahead).
    pub fn insert(&mut self, s: &Arc<SlowExchange>, cap: usize) {
        let at = self.0.partition_point(|x| x.latency_us >= s.latency_us);
        self.0.insert(at, Arc::clone(s));
        self.0.truncate(cap);
    }

    pub fn list(&self) -> &[Arc<SlowExchange>] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(latency_us: u64) -> Arc<SlowExchange> {
        Arc::new(SlowExchange {
            ts_ns: latency_us,
            client: "10.0.0.1:1".parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            protocol: "HTTP/1.1".into(),
            method: "GET".into(),
            target: "/".into(),
            status: Some(200),
            latency_us,
            ttfb_us: None,
            bytes: [0, 0],
        })
    }

    #[test]
    fn keeps_the_slowest_in_order_and_no_more() {
        let mut s = Slowest::default();
        for l in [5, 1, 9, 3, 9, 7, 2] {
            if s.admits(l, 3) {
                s.insert(&rec(l), 3);
            }
        }
        let got: Vec<u64> = s.list().iter().map(|x| x.latency_us).collect();
        assert_eq!(got, [9, 9, 7]);
        assert!(!s.admits(7, 3) && s.admits(8, 3) && !s.admits(100, 0));
    }
}
