//! `--packets`: one line per captured TCP segment, in the spirit of bcc's `http_filter`; `len` is
//! the payload the segment carried on the wire, whether or not the frame holds all of it:
//!
//! ```text
//! 14:05:12.123456 veth0 tx 10.0.0.2:41234 > 10.0.0.1:80 [P.] len=78 "GET / HTTP/1.1"
//! ```

use std::io::{self, Write};

use http_top_common::{HTTP_TOKEN_MAX, starts_http_message};

use super::Sink;
use crate::{
    decode::{self, tcp_flags},
    packet::{Direction, Packet},
    proto::Exchange,
    session::{Health, Output},
    text,
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
        Direction::Received => "rx",
        Direction::Sent => "tx",
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
        // As tcpdump's `length`: what the segment carried on the wire, captured or not.
        seg.payload.len() as u64 + u64::from(seg.uncaptured),
    )?;
    if (p.data.len() as u64) < u64::from(p.orig_len) {
        // A snap length or the filter's body skipping cut the frame: the payload shown is only
        // what was captured.
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

/// `--packets` as a session output.
pub struct PacketLines<W: Write> {
    pub sink: Sink<W>,
    /// Interface names, indexed by [`Packet::iface`].
    pub ifaces: Vec<String>,
}

impl<W: Write> Output for PacketLines<W> {
    fn packet(&mut self, p: &Packet<'_>) -> anyhow::Result<()> {
        let ifaces = &self.ifaces;
        self.sink.line(|w| packet_line(w, p, ifaces))
    }
    fn wants_packets(&self) -> bool {
        true
    }
    fn wants_routes(&self) -> bool {
        false
    }
    fn exchange(&mut self, _e: &Exchange) -> anyhow::Result<()> {
        Ok(())
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
