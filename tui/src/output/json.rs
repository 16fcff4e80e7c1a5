//! `--json`: one object per finished exchange, newline-delimited; `--slow`: the same, for slow
//! exchanges only.

use std::io::Write;

use serde::Serialize;

use super::Sink;
use crate::{
    proto::{Exchange, Grpc},
    session::{Health, Output},
    stats::{GroupKey, key::UNPARSABLE},
    text::printable,
};

#[derive(Serialize)]
struct JsonExchange {
    /// Capture time of the first request byte (or of the response when no request was seen), s.
    ts: f64,
    client: String,
    server: String,
    /// `HTTP/1.0`, `HTTP/1.1`, `h2c` or `grpc`, as grouped under `proto`.
    protocol: String,
    method: Option<String>,
    target: Option<String>,
    /// The path with identifiers replaced (`/users/{id}`), as grouped under `route`.
    route: Option<String>,
    host: Option<String>,
    status: Option<u16>,
    request_bytes: u64,
    response_bytes: u64,
    latency_ms: Option<f64>,
    ttfb_ms: Option<f64>,
    truncated: bool,
    /// Capture loss touched it: its numbers are incomplete.
    gap: bool,
    /// A gRPC call's status name (`OK`, `NOT_FOUND`... `none` when none came); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc: Option<String>,
    /// Who stands behind each side, as grouped under `process`, `container`, `client-process`
    /// and `client-container`; absent when names are not looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    server_process: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_process: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_container: Option<String>,
}

/// Writes one exchange as a JSON line. Wire bytes are escaped like everywhere else (`\xNN`), so the
/// output is valid UTF-8 and safe to print.
pub fn write_json_line<W: Write>(mut out: W, e: &Exchange) -> std::io::Result<()> {
    let s = |b: Option<&[u8]>| b.map(printable);
    let t = if e.request_seen {
        e.req_first_ns
    } else {
        e.resp_first_ns
    };
    let j = JsonExchange {
        ts: t as f64 / 1e9,
        client: e.client.to_string(),
        server: e.server.to_string(),
        protocol: GroupKey::Proto.label(e),
        // Bytes that were not HTTP: no method or target, grouped as `_unparsable` as in tables.
        method: if e.unparsable {
            Some(UNPARSABLE.to_owned())
        } else {
            s(e.method())
        },
        target: if e.unparsable {
            Some(UNPARSABLE.to_owned())
        } else {
            s(e.target())
        },
        route: e.route.as_deref().map(str::to_owned),
        host: s(e.host()),
        status: e.status,
        request_bytes: e.req_bytes,
        response_bytes: e.resp_bytes,
        latency_ms: e.latency_ns().map(|n| n as f64 / 1e6),
        ttfb_ms: e.ttfb_ns().map(|n| n as f64 / 1e6),
        truncated: e.truncated,
        gap: e.gap,
        grpc: (e.grpc != Grpc::No).then(|| GroupKey::Grpc.label(e)),
        server_process: e.server_owner.as_ref().map(|_| GroupKey::Process.label(e)),
        server_container: e
            .server_owner
            .as_ref()
            .map(|_| GroupKey::Container.label(e)),
        client_process: e
            .client_owner
            .as_ref()
            .map(|_| GroupKey::ClientProcess.label(e)),
        client_container: e
            .client_owner
            .as_ref()
            .map(|_| GroupKey::ClientContainer.label(e)),
    };
    serde_json::to_writer(&mut out, &j)?;
    out.write_all(b"\n")
}

/// `--json` as a session output, and `--slow MS`: the same objects, only for exchanges slower
/// than MS (for scripts and log shippers).
pub struct JsonLines<W: Write> {
    pub sink: Sink<W>,
    /// `--slow`: only exchanges whose latency (first request byte to last response byte) exceeds
    /// this; every exchange when `None`.
    pub slower_than_ns: Option<u64>,
}

impl<W: Write> Output for JsonLines<W> {
    fn exchange(&mut self, e: &Exchange) -> anyhow::Result<()> {
        if let Some(t) = self.slower_than_ns
            && e.latency_ns().is_none_or(|l| l <= t)
        {
            return Ok(());
        }
        self.sink.line(|w| write_json_line(w, e))
    }
    fn idle(&mut self) -> anyhow::Result<()> {
        self.sink.flush()
    }
    fn end(&mut self, _h: &Health) -> anyhow::Result<()> {
        self.sink.flush()
    }
    fn done(&self) -> bool {
        self.sink.closed()
    }
}
