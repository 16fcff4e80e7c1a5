//! Headless output: one line per kept packet, in the spirit of bcc's `http_filter`.
//!
//! ```text
//! 14:05:12.123456 veth0 out 10.0.0.2:41234 > 10.0.0.1:80 [P.] len=78 "GET / HTTP/1.1"
//! ```
//! The pipeline issue replaces this with per-group tables; until then it is how a user (and the
//! end-to-end tests) see what the filter keeps.

use std::io::{self, Write};

use http_top_common::{HTTP_TOKEN_MAX, starts_http_message};

use crate::{
    capture::{Direction, Packet},
    decode::{self, DecodeError, tcp_flags},
    text,
};

/// Longest start line printed, in bytes.
const START_LINE_MAX: usize = 160;

/// Counters the printer keeps.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrintStats {
    pub tcp_segments: u64,
    pub payload_bytes: u64,
    pub decode_errors: u64,
    pub not_tcp: u64,
}

pub struct PacketPrinter<W: Write> {
    out: W,
    pub stats: PrintStats,
}

impl<W: Write> PacketPrinter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            stats: PrintStats::default(),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Prints one packet; a frame that is not a TCP segment is counted, not printed.
    pub fn packet(&mut self, p: &Packet<'_>, ifaces: &[String]) -> io::Result<()> {
        let seg = match decode::decode(p.link, p.data) {
            Ok(s) => s,
            Err(DecodeError::NotTcp) => {
                self.stats.not_tcp += 1;
                return Ok(());
            }
            Err(_) => {
                self.stats.decode_errors += 1;
                return Ok(());
            }
        };
        self.stats.tcp_segments += 1;
        self.stats.payload_bytes += seg.payload.len() as u64;

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
            self.out,
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
            write!(self.out, " captured={}/{}", p.data.len(), p.orig_len)?;
        }
        let mut head = [0u8; HTTP_TOKEN_MAX];
        let n = seg.payload.len().min(HTTP_TOKEN_MAX);
        head[..n].copy_from_slice(&seg.payload[..n]);
        if starts_http_message(&head, seg.payload.len()) {
            let line = text::first_line(seg.payload, START_LINE_MAX);
            write!(self.out, " \"{}\"", text::printable(line))?;
        }
        writeln!(self.out)
    }
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
