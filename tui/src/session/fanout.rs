//! A live capture spread over several rings (`--fanout N`): the kernel's `PACKET_FANOUT` hands
//! each ring the flows whose hash falls to it (both directions of a connection to the same one),
//! and each ring is read on a thread of its own through its own pipeline, which tells the filter
//! itself about closing connections and bodies to skip. The session's thread only merges: it
//! takes the exchanges the readers complete, in the order they arrive, and sums their counters.
//!
//! Off by default: measured on this project's 2-core machine it does not help (README,
//! Performance), since the readers compete with the traffic's own processes for the same cores.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, Sender},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{Engine, Event};
use crate::{
    capture::{Next, PacketSource},
    flow::FlowConfig,
    packet::Packet,
    pipeline::{Pipeline, Totals},
    proto::Exchange,
};

/// How long a reader waits for its ring before it looks at the stop flag again.
const WAIT: Duration = Duration::from_millis(20);
/// A reader hands over what it completed at least this often (and every 64 packets).
const HAND_OVER: Duration = Duration::from_millis(20);
/// How often a reader refreshes its ring's drop count.
const STATS_EVERY: Duration = Duration::from_secs(1);

enum FromRing {
    /// Completed exchanges, with the reader's counters and clock after them.
    Exchanges(usize, Vec<Exchange>, Totals, u64),
    /// The reader has stopped and handed over everything.
    Done(usize, Totals),
}

/// The readers and what they have reported.
pub struct Fanout {
    from: Receiver<FromRing>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    totals: Vec<Totals>,
    now_ns: u64,
    tick: Option<u64>,
}

impl Fanout {
    /// One reader thread per source; each pipeline's caps are its share of `cfg`'s.
    pub fn start(
        sources: Vec<Box<dyn PacketSource + Send>>,
        cfg: FlowConfig,
    ) -> anyhow::Result<Self> {
        let n = sources.len().max(1);
        let share = FlowConfig {
            max_conns: (cfg.max_conns / n).max(1),
            max_total_buffered: cfg.max_total_buffered / n,
            ..cfg
        };
        let (tx, from) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(n);
        for (id, src) in sources.into_iter().enumerate() {
            let (tx, stop) = (tx.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("http-top-ring-{id}"))
                    .spawn(move || read(id, src, share, &stop, &tx))?,
            );
        }
        Ok(Self {
            from,
            stop,
            threads,
            totals: vec![Totals::default(); n],
            now_ns: 0,
            tick: None,
        })
    }

    fn take(
        &mut self,
        m: FromRing,
        each: &mut dyn FnMut(Event<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        match m {
            FromRing::Exchanges(id, done, totals, now) => {
                self.totals[id] = totals;
                self.now_ns = self.now_ns.max(now);
                done.into_iter()
                    .try_for_each(|mut e| each(Event::Exchange(&mut e)))
            }
            FromRing::Done(id, totals) => {
                self.totals[id] = totals;
                Ok(())
            }
        }
    }
}

/// A reader: its ring through its own pipeline until told to stop and the ring is empty.
fn read(
    id: usize,
    mut src: Box<dyn PacketSource + Send>,
    cfg: FlowConfig,
    stop: &AtomicBool,
    tx: &Sender<FromRing>,
) {
    let mut p = Pipeline::new(cfg);
    if src.skips_bodies() {
        p.ask_skips();
    }
    let (mut last_hand, mut last_stats) = (Instant::now(), Instant::now());
    let mut since = 0u32;
    loop {
        let idle = match src.next_packet(WAIT) {
            Ok(Next::Packet(pkt)) => {
                let pkt: Packet<'_> = pkt;
                let closing = p.packet(&pkt);
                if let Some(seg) = closing {
                    src.observe(&seg);
                }
                for h in p.skips() {
                    src.skip_body(&h);
                }
                since += 1;
                false
            }
            Ok(Next::Idle) => true,
            Ok(Next::End) | Err(_) => break,
        };
        if idle && stop.load(Ordering::Relaxed) {
            break;
        }
        if p.has_exchanges() && (idle || since >= 64 || last_hand.elapsed() >= HAND_OVER) {
            since = 0;
            last_hand = Instant::now();
            let done: Vec<Exchange> = p.drain().collect();
            if tx
                .send(FromRing::Exchanges(id, done, p.totals(), p.now_ns()))
                .is_err()
            {
                return;
            }
        }
        if last_stats.elapsed() >= STATS_EVERY {
            last_stats = Instant::now();
            src.stats();
        }
    }
    src.stats();
    let mut rest = Vec::new();
    p.finish(|e| rest.push(e));
    let totals = p.totals();
    let _ = tx.send(FromRing::Exchanges(id, rest, totals, p.now_ns()));
    let _ = tx.send(FromRing::Done(id, totals));
}

impl Engine for Fanout {
    fn packet(
        &mut self,
        _p: &Packet<'_>,
    ) -> anyhow::Result<Option<crate::decode::Segment<'static>>> {
        // The source the session reads kept no ring: the readers have them.
        Ok(None)
    }

    fn now_ns(&self) -> u64 {
        self.now_ns
    }

    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        self.tick = Some(now_ns);
        Ok(())
    }

    fn poll(
        &mut self,
        each: &mut dyn FnMut(Event<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        // What the readers completed so far belongs before the tick asked for now.
        while let Ok(m) = self.from.try_recv() {
            self.take(m, each)?;
        }
        if let Some(t) = self.tick.take() {
            each(Event::Tick(t))?;
        }
        Ok(())
    }

    fn finish(
        &mut self,
        each: &mut dyn FnMut(Event<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.poll(each)?;
        self.stop.store(true, Ordering::Relaxed);
        let mut done = 0;
        while done < self.threads.len() {
            match self.from.recv() {
                Ok(m) => {
                    done += usize::from(matches!(m, FromRing::Done(..)));
                    self.take(m, each)?;
                }
                Err(_) => break,
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        Ok(())
    }

    fn totals(&self) -> Totals {
        let mut sum = Totals::default();
        for t in &self.totals {
            sum += *t;
        }
        sum
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
