//! `--slow MS` headless: every exchange slower than MS as a JSON line, the same object `--json`
//! writes, for scripts and log shippers.

use std::io::Write;

use super::{Sink, json::write_json_line};
use crate::{
    proto::Exchange,
    session::{Health, Output},
};

pub struct SlowLines<W: Write> {
    pub sink: Sink<W>,
    /// Exchanges whose latency (first request byte to last response byte) exceeds this are
    /// written.
    pub slower_than_ns: u64,
}

impl<W: Write> Output for SlowLines<W> {
    fn exchange(&mut self, e: &Exchange) -> anyhow::Result<()> {
        if e.latency_ns().is_some_and(|l| l > self.slower_than_ns) {
            self.sink.line(|w| write_json_line(w, e))?;
        }
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
