//! Headless outputs of a session ([`crate::session::Output`]): the per-group table and CSV
//! ([`table`], [`csv`]), one JSON object per exchange ([`json`]), one line per packet
//! ([`packets`]), the captured frames as pcap ([`pcap`]), Prometheus metrics over HTTP
//! ([`metrics`]), `--alert` changes as JSON lines ([`alerts`]), and the summary line of every
//! counter.

pub mod alerts;
pub mod csv;
pub mod json;
pub mod metrics;
pub mod packets;
pub mod pcap;
pub mod table;

use std::io::{self, Write};

use anyhow::Context;

use crate::session::Health;

/// A buffered writer for stdout (or any writer) that treats a closed pipe (`| head`) as the
/// reader's way to stop, not as an error.
pub struct Sink<W: Write> {
    out: io::BufWriter<W>,
    closed: bool,
    /// One line being made ([`Sink::line`]).
    line: Vec<u8>,
}

impl<W: Write> Sink<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: io::BufWriter::with_capacity(1 << 16, out),
            closed: false,
            line: Vec::new(),
        }
    }

    /// Writes what `f` makes as one piece. Several stream outputs share stdout (`--slow` with
    /// `--alert`, `--json` with `--alert`...), each through its own buffer: a buffer only ever
    /// holds whole lines, so one that fills flushes whole lines, and no line is cut by another's.
    pub fn line(&mut self, f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> anyhow::Result<()> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        let made = f(&mut line);
        let r = match made {
            Ok(()) => self.write(|w| w.write_all(&line)),
            Err(e) => Err(e).context("formatting a line"),
        };
        self.line = line;
        r
    }

    /// Runs `f` on the writer unless the reader has gone.
    pub fn write(
        &mut self,
        f: impl FnOnce(&mut io::BufWriter<W>) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        if self.closed {
            return Ok(());
        }
        match f(&mut self.out) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            r => r.context("writing to stdout"),
        }
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.write(|w| w.flush())
    }

    /// Whether the reader has gone.
    pub fn closed(&self) -> bool {
        self.closed
    }
}

/// One line of every counter, `name=value` separated by spaces, and how many exchanges of the
/// shown key overflowed into `_other`.
pub fn summary(h: &Health, groups_overflowed: u64) -> String {
    let mut s = String::from("http-top:");
    for c in h.list() {
        s += &format!(" {}={}", c.name, c.value);
    }
    s + &format!(" groups_overflowed={groups_overflowed}")
}
