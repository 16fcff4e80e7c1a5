//! The headless per-group table: printed at the end of a file, every `--interval` live; the
//! `--csv` file and the summary line on stderr at the end.

use std::{
    io::{self, Write},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context;

use super::Sink;
use crate::{
    proto::Exchange,
    session::{Health, Output},
    stats::{
        Agg, Stats,
        metric::{self, Style},
    },
    text,
};

/// Longest group name shown before it is cut with an ellipsis.
const GROUP_WIDTH: usize = 40;

/// Renders the rows of grouping `k` as an aligned table with human units, the columns of
/// [`metric::TABLE`]. REQ/S is the rate over the last tick, AVG/S since the first exchange, both
/// in capture time.
pub fn table(stats: &Stats, k: usize) -> String {
    let key = stats
        .keys()
        .get(k)
        .map_or_else(String::new, ToString::to_string);
    let rows = stats.rows(k);
    let span = stats.span();
    let header: Vec<String> = std::iter::once(key.to_uppercase())
        .chain(metric::TABLE.iter().map(|m| m.title().to_owned()))
        .collect();
    let cells = |group: &str, a: &Agg| -> Vec<String> {
        std::iter::once(text::ellipsize(group, GROUP_WIDTH))
            .chain(metric::TABLE.iter().map(|m| m.cell(a, span, Style::Human)))
            .collect()
    };
    let mut body: Vec<Vec<String>> = rows.iter().map(|r| cells(&r.title(), &r.agg)).collect();
    if rows.len() > 1 {
        body.push(cells("TOTAL", stats.total()));
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &body {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header).chain(&body) {
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

/// The aggregating output of a headless run.
pub struct Tables<W: Write> {
    pub stats: Stats,
    sink: Sink<W>,
    /// Print tables (not with `--json` or `--packets`, which own stdout).
    print: bool,
    /// Live: a table every this often, and when the next is due.
    every: Option<(Duration, Instant)>,
    csv: Option<PathBuf>,
}

impl<W: Write> Tables<W> {
    pub fn new(
        stats: Stats,
        out: W,
        print: bool,
        every: Option<Duration>,
        csv: Option<PathBuf>,
    ) -> Self {
        Self {
            stats,
            sink: Sink::new(out),
            print,
            every: every.map(|e| (e, Instant::now() + e)),
            csv,
        }
    }
}

impl<W: Write> Output for Tables<W> {
    fn wants_routes(&self) -> bool {
        self.stats.reads_routes()
    }
    fn exchange(&mut self, e: &Exchange) -> anyhow::Result<()> {
        self.stats.add(e);
        Ok(())
    }
    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        self.stats.tick(now_ns);
        Ok(())
    }
    fn wake(&mut self, _now_ns: u64) -> anyhow::Result<()> {
        if let Some((every, next)) = &mut self.every
            && self.print
            && Instant::now() >= *next
        {
            *next += *every;
            let t = table(&self.stats, 0);
            self.sink
                .write(|w| writeln!(w, "{t}").and_then(|()| w.flush()))?;
        }
        Ok(())
    }
    fn idle(&mut self) -> anyhow::Result<()> {
        self.sink.flush()
    }
    #[expect(clippy::print_stderr, reason = "the summary line goes to stderr")]
    fn end(&mut self, h: &Health) -> anyhow::Result<()> {
        let mut result = Ok(());
        if self.print {
            let t = table(&self.stats, 0);
            result = self.sink.write(|w| w.write_all(t.as_bytes()));
        }
        result = result.and(self.sink.flush());
        if let Some(path) = &self.csv {
            let r = std::fs::File::create(path)
                .map_err(anyhow::Error::from)
                .and_then(|f| {
                    super::csv::write_csv(
                        io::BufWriter::new(f),
                        &self.stats.rows(0),
                        self.stats.span(),
                    )
                    .map_err(anyhow::Error::from)
                })
                .with_context(|| format!("writing {}", path.display()));
            result = result.and(r);
        }
        eprintln!("{}", super::summary(h, self.stats.overflowed(0)));
        let _ = io::stderr().flush();
        result
    }
    fn done(&self) -> bool {
        self.sink.closed()
    }
}
