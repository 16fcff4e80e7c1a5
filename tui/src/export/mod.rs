//! Snapshots for other tools: CSV (one row per group) and newline-delimited JSON (one object per
//! exchange).

use std::io::Write;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{http::Exchange, stats::Row, text::printable};

/// The CSV header, fixed: scripts depend on it.
pub const CSV_HEADER: [&str; 20] = [
    "group",
    "requests",
    "responses",
    "no_response",
    "bytes_in",
    "bytes_out",
    "status_1xx",
    "status_2xx",
    "status_3xx",
    "status_4xx",
    "status_5xx",
    "success_rate",
    "latency_min_ms",
    "latency_avg_ms",
    "latency_max_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "ttfb_avg_ms",
    "ttfb_p99_ms",
];

/// A text cell that a spreadsheet would run as a formula gets a leading `'` (OWASP, CSV injection).
pub fn neutralize(s: &str) -> String {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{s}"),
        _ => s.to_owned(),
    }
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

/// Milliseconds with 3 decimals of a histogram statistic; empty when there are no samples.
fn hist_ms(h: &Histogram<u32>, f: impl Fn(&Histogram<u32>) -> f64) -> String {
    if h.is_empty() {
        String::new()
    } else {
        ms(f(h))
    }
}

/// Writes the rows of one grouping as CSV.
pub fn write_csv<W: Write>(out: W, rows: &[Row]) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    for r in rows {
        let a = &r.agg;
        let lat = &a.latency;
        let q = |p: f64| move |h: &Histogram<u32>| h.value_at_quantile(p) as f64;
        w.write_record([
            neutralize(&r.group),
            a.requests.to_string(),
            a.responses.to_string(),
            a.no_response.to_string(),
            a.bytes_in.to_string(),
            a.bytes_out.to_string(),
            a.status[0].to_string(),
            a.status[1].to_string(),
            a.status[2].to_string(),
            a.status[3].to_string(),
            a.status[4].to_string(),
            a.success_rate()
                .map_or_else(String::new, |s| format!("{s:.2}")),
            hist_ms(lat, |h| h.min() as f64),
            hist_ms(lat, Histogram::mean),
            hist_ms(lat, |h| h.max() as f64),
            hist_ms(lat, q(0.5)),
            hist_ms(lat, q(0.9)),
            hist_ms(lat, q(0.99)),
            hist_ms(&a.ttfb, Histogram::mean),
            hist_ms(&a.ttfb, q(0.99)),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[derive(Serialize)]
struct JsonExchange {
    /// Capture time of the first request byte (or of the response when no request was seen), s.
    ts: f64,
    client: String,
    server: String,
    method: Option<String>,
    target: Option<String>,
    host: Option<String>,
    status: Option<u16>,
    request_bytes: u64,
    response_bytes: u64,
    latency_ms: Option<f64>,
    ttfb_ms: Option<f64>,
    truncated: bool,
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
        method: s(e.method()),
        target: s(e.target()),
        host: s(e.host()),
        status: e.status,
        request_bytes: e.req_bytes,
        response_bytes: e.resp_bytes,
        latency_ms: e.latency_ns().map(|n| n as f64 / 1e6),
        ttfb_ms: e.ttfb_ns().map(|n| n as f64 / 1e6),
        truncated: e.truncated,
    };
    serde_json::to_writer(&mut out, &j)?;
    out.write_all(b"\n")
}

/// Writes captured frames to a pcap file (nanosecond timestamps), like `tcpdump -w`: what the
/// kernel filter kept, for a later `-r` or for Wireshark.
pub struct PcapOut {
    writer: pcap_file::pcap::PcapWriter<std::io::BufWriter<std::fs::File>>,
    link: crate::capture::LinkType,
}

impl PcapOut {
    pub fn create(path: &std::path::Path, link: crate::capture::LinkType) -> anyhow::Result<Self> {
        use crate::capture::LinkType;
        use pcap_file::{DataLink, Endianness, TsResolution, pcap::PcapHeader};
        let datalink = match link {
            LinkType::Ethernet => DataLink::ETHERNET,
            LinkType::RawIp => DataLink::RAW,
            LinkType::LinuxSll => DataLink::LINUX_SLL,
            LinkType::LinuxSll2 => DataLink::LINUX_SLL2,
            LinkType::Null => DataLink::NULL,
            LinkType::Loop => DataLink::LOOP,
        };
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: 262_144,
            datalink,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::native(),
        };
        let file = std::fs::File::create(path)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
        let writer =
            pcap_file::pcap::PcapWriter::with_header(std::io::BufWriter::new(file), header)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        Ok(Self { writer, link })
    }

    /// Appends one frame; frames of another link type than the first are skipped (a pcap file has
    /// one).
    pub fn write(&mut self, p: &crate::capture::Packet<'_>) -> anyhow::Result<()> {
        if p.link != self.link {
            return Ok(());
        }
        let ts = std::time::Duration::from_nanos(p.ts_ns);
        self.writer
            .write_packet(&pcap_file::pcap::PcapPacket::new(ts, p.orig_len, p.data))
            .map_err(|e| anyhow::anyhow!("writing the capture file: {e}"))?;
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<()> {
        use std::io::Write as _;
        self.writer.into_writer().flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralized() {
        assert_eq!(neutralize("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        for p in ["+1", "-1", "@SUM", "\tx", "\rx"] {
            assert!(neutralize(p).starts_with('\''), "{p}");
        }
        assert_eq!(neutralize("/api"), "/api");
        assert_eq!(neutralize("10.0.0.1:80"), "10.0.0.1:80");
    }
}
