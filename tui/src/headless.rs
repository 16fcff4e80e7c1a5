//! Headless output: the per-group table, and (`--packets`) one line per kept packet in the spirit of
//! bcc's `http_filter`:
//!
//! ```text
//! 14:05:12.123456 veth0 out 10.0.0.2:41234 > 10.0.0.1:80 [P.] len=78 "GET / HTTP/1.1"
//! ```

use std::io::{self, Write};

use http_top_common::{HTTP_TOKEN_MAX, starts_http_message};

use crate::{
    capture::{Direction, Packet},
    decode::{self, tcp_flags},
    stats::{Row, Stats},
    text, units,
};

/// Longest start line printed, in bytes.
const START_LINE_MAX: usize = 160;

/// Prints one line per TCP segment (`--packets`); frames that are not TCP segments are skipped
/// (the pipeline counts them).
pub fn packet_line<W: Write>(out: &mut W, p: &Packet<'_>, ifaces: &[String]) -> io::Result<()> {
    let Ok(seg) = decode::decode(p.link, p.data) else {
        return Ok(());
    };
    let secs = p.ts_ns / 1_000_000_000;
    let micros = (p.ts_ns % 1_000_000_000) / 1_000;
    let day = secs % 86_400;
    let dir = match p.direction {
        Direction::In => "in",
        Direction::Out => "out",
        Direction::Unknown => "-",
    };
    let iface = ifaces.get(p.iface).map_or("?", String::as_str);
    write!(
        out,
        "{:02}:{:02}:{:02}.{micros:06} {} {dir} {} > {} [{}] len={}",
        day / 3600,
        day / 60 % 60,
        day % 60,
        text::printable(iface.as_bytes()),
        seg.src,
        seg.dst,
        flag_letters(seg.flags),
        seg.payload.len(),
    )?;
    if (p.data.len() as u64) < u64::from(p.orig_len) {
        // The snap length cut the frame: the payload shown is only what was captured.
        write!(out, " captured={}/{}", p.data.len(), p.orig_len)?;
    }
    let mut head = [0u8; HTTP_TOKEN_MAX];
    let n = seg.payload.len().min(HTTP_TOKEN_MAX);
    head[..n].copy_from_slice(&seg.payload[..n]);
    if starts_http_message(&head, seg.payload.len()) {
        let line = text::first_line(seg.payload, START_LINE_MAX);
        write!(out, " \"{}\"", text::printable(line))?;
    }
    writeln!(out)
}

/// Longest group name shown before it is cut with an ellipsis.
const GROUP_WIDTH: usize = 40;

/// Renders the rows of grouping `k` as an aligned table with human units. REQ/S is the rate over
/// the last tick, AVG/S since the first exchange, both in capture time.
pub fn table(stats: &Stats, k: usize) -> String {
    let key = stats
        .keys()
        .get(k)
        .map_or_else(String::new, ToString::to_string);
    let rows = stats.rows(k);
    let header = [
        key.to_uppercase(),
        "REQS".into(),
        "REQ/S".into(),
        "AVG/S".into(),
        "IN".into(),
        "OUT".into(),
        "2XX".into(),
        "3XX".into(),
        "4XX".into(),
        "5XX".into(),
        "NORESP".into(),
        "SUCC%".into(),
        "MIN".into(),
        "AVG".into(),
        "MAX".into(),
        "P50".into(),
        "P90".into(),
        "P99".into(),
        "TTFB".into(),
    ];
    let rate = |n: u64, secs: f64| {
        if secs > 0.0 {
            format!("{:.1}", n as f64 / secs)
        } else {
            "-".into()
        }
    };
    let cells = |r: &Row| -> Vec<String> {
        let a = &r.agg;
        let lat = &a.latency;
        let t = |f: &dyn Fn() -> f64| {
            if lat.is_empty() {
                "-".to_owned()
            } else {
                units::micros(f())
            }
        };
        vec![
            text::ellipsize(&r.group, GROUP_WIDTH),
            units::count(a.requests),
            rate(a.last_tick_requests, stats.last_tick_s()),
            rate(a.requests, stats.elapsed_s()),
            units::bytes(a.bytes_in),
            units::bytes(a.bytes_out),
            units::count(a.status[1]),
            units::count(a.status[2]),
            units::count(a.status[3]),
            units::count(a.status[4]),
            units::count(a.no_response),
            a.success_rate()
                .map_or_else(|| "-".into(), |s| format!("{s:.1}")),
            t(&|| lat.min() as f64),
            t(&|| lat.mean()),
            t(&|| lat.max() as f64),
            t(&|| lat.value_at_quantile(0.5) as f64),
            t(&|| lat.value_at_quantile(0.9) as f64),
            t(&|| lat.value_at_quantile(0.99) as f64),
            if a.ttfb.is_empty() {
                "-".into()
            } else {
                units::micros(a.ttfb.mean())
            },
        ]
    };
    let mut body: Vec<Vec<String>> = rows.iter().map(cells).collect();
    if rows.len() > 1 {
        body.push(cells(&Row {
            group: "TOTAL".into(),
            agg: stats.total().clone(),
        }));
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &body {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header.to_vec()).chain(&body) {
        for (i, (c, w)) in line.iter().zip(&widths).enumerate() {
            let pad = w - c.chars().count();
            if i == 0 {
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str("  ");
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            }
        }
        out.push('\n');
    }
    out
}

/// tcpdump-style flag letters: S F R P, and `.` for ACK.
fn flag_letters(flags: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (tcp_flags::SYN, 'S'),
        (tcp_flags::FIN, 'F'),
        (tcp_flags::RST, 'R'),
        (tcp_flags::PSH, 'P'),
        (tcp_flags::ACK, '.'),
    ] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_like_tcpdump() {
        assert_eq!(flag_letters(tcp_flags::SYN), "S");
        assert_eq!(flag_letters(tcp_flags::PSH | tcp_flags::ACK), "P.");
        assert_eq!(flag_letters(tcp_flags::FIN | tcp_flags::ACK), "F.");
    }
}
