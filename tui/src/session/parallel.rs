//! A capture file through several pipelines at once. The session's thread reads, decodes and
//! aggregates; connections are spread over worker threads by a hash of their two endpoints (the
//! same for both directions), each worker with its own reassembly and HTTP state, so no state is
//! shared and every connection sees its segments in capture order, as on one thread.
//!
//! The result is the sequential one: the same exchanges and counters. Two things differ, both
//! allowed: exchanges of different connections may complete in another order between workers, and
//! each worker's connection and buffer caps are its share of the total, so a flood evicts per
//! worker. Rate ticks stay exact: a tick is taken only once every worker has handed over what it
//! completed before the tick's capture time.
//!
//! Measured on 2 cores with one worker (`cargo xtask bench` at 35d4380): the 1M-request capture
//! end to end in 0.48 s against 0.77 s on one thread; the reader is then the busier thread.

use std::{
    collections::VecDeque,
    hash::BuildHasher,
    net::SocketAddr,
    ops::Range,
    sync::mpsc::{self, Receiver, Sender, SyncSender},
    thread::JoinHandle,
};

use super::{Engine, Event};
use crate::{
    decode::Segment,
    flow::{FlowConfig, FlowStats},
    packet::{Packet, Shared},
    pipeline::{Pipeline, Totals},
    proto::{Exchange, HttpStats, SpareLines},
};

/// Segments sent to a worker at a time: large enough that the channel costs nothing per packet,
/// small enough that workers start at once. Their payloads (copied, or where they lie in the
/// source's shared windows, which a batch holds on to) add up to about [`BATCH_BYTES`] at most,
/// in [`BATCH_WINDOWS`] windows at most.
const BATCH_SEGMENTS: usize = 512;
const BATCH_BYTES: usize = 1 << 20;
/// Windows a batch holds at most: a worker that gets a segment now and then (a trickle of HTTP
/// among other traffic) would otherwise hold a megabyte window for each, and the reader would
/// take new ones. With it, what is in flight is at most this many windows a batch queued.
const BATCH_WINDOWS: usize = 2;
/// Batches queued per worker before the reader waits: bounds memory.
const QUEUED_BATCHES: usize = 8;

/// One decoded segment without its payload, which is `shared[buffer][payload]` of its batch, or
/// `data[payload]` when `buffer` is [`COPIED`].
struct Meta {
    ts_ns: u64,
    segment: Segment<'static>,
    payload: Range<usize>,
    buffer: usize,
}

/// [`Meta::buffer`] of a payload copied into the batch (the source's frames do not stay put).
const COPIED: usize = usize::MAX;

#[derive(Default)]
struct Batch {
    meta: Vec<Meta>,
    /// The source's buffers the payloads lie in (a file's read windows), held until the worker is
    /// done with them: no payload byte is copied on the reader's thread (the copy was a seventh of
    /// its time on small requests, and more on large bodies, which no one else reads).
    shared: Vec<Shared>,
    /// Payloads copied, from sources whose frames do not stay where they are (the live ring).
    data: Vec<u8>,
    /// Payload bytes in the batch, in place or copied.
    bytes: usize,
    /// Request-line buffers of the worker's exchanges delivered since its last batch, going back
    /// to it to be filled again: a buffer freed on another thread than the one that allocated it
    /// costs glibc a lock both threads take (a tenth of a small-request run).
    spare: SpareLines,
    /// Exchanges the worker completed with this batch, coming back in it: one vector goes back
    /// and forth, where one allocated by the worker for every batch and freed by the reader cost
    /// the same lock, and a copy of every exchange.
    done: Vec<Exchange>,
}

enum ToWorker {
    Batch(Batch),
    /// The reader crossed a tick boundary: answer once everything before it is handed over.
    Tick,
    Finish,
}

enum FromWorker {
    /// Exchanges a worker completed at the end of the input, with its number.
    Exchanges(usize, Vec<Exchange>),
    /// A batch done with, emptied but for the exchanges completed with it, to be filled again
    /// (fresh megabyte buffers for every batch cost page faults), with the worker's number and
    /// counters after it.
    Free(Batch, usize, FlowStats, HttpStats),
    Tick(usize),
    Done(usize, FlowStats, HttpStats),
}

/// What the reader hands over next: a worker's exchanges as they came, or a tick.
enum Ready {
    /// Exchanges a worker completed (a batch's `done`), with its number.
    Exchanges(usize, Batch),
    /// Exchanges a worker completed at the end of the input: not kept once handed over (the
    /// connections still open at the end can be many, and their vectors are not needed again).
    Last(usize, Vec<Exchange>),
    Tick(u64),
}

/// Worker threads for `threads` in all (the reader is one of them): 0 means read sequentially.
pub fn workers(threads: usize) -> usize {
    threads.saturating_sub(1)
}

/// The pipeline fanned out over worker threads: this thread decodes and routes, the workers
/// reassemble and parse.
pub struct Parallel {
    to: Vec<SyncSender<ToWorker>>,
    from: Receiver<FromWorker>,
    threads: Vec<JoinHandle<()>>,
    decoder: Pipeline,
    batches: Vec<Batch>,
    /// Emptied batches handed back by the workers, to be filled again.
    free: Vec<Batch>,
    /// Any fixed seed: routing must only be the same for both directions of a connection.
    router: foldhash::fast::FixedState,
    /// What is ready to hand over, in order.
    ready: VecDeque<Ready>,
    /// Request-line buffers of delivered exchanges, per worker, until its next batch takes them.
    spent: Vec<SpareLines>,
    /// Capture times of the ticks asked for and not handed over yet, and how many were.
    ticks: VecDeque<u64>,
    ticks_done: usize,
    /// Tick markers received from each worker.
    markers: Vec<usize>,
    /// Each worker's latest counters.
    worker_totals: Vec<(FlowStats, HttpStats)>,
    done: usize,
}

impl Parallel {
    /// Starts `workers` worker threads (at least one).
    pub fn start(cfg: FlowConfig, workers: usize) -> anyhow::Result<Self> {
        let n = workers.max(1);
        // Each worker's caps are its share, so the process keeps the bounds of one table.
        let share = FlowConfig {
            max_conns: (cfg.max_conns / n).max(1),
            max_total_buffered: cfg.max_total_buffered / n,
            ..cfg
        };
        // Unbounded back, bounded forth: a worker never waits on the reader, so the reader may
        // wait on a worker; what is in flight is bounded by the batches queued.
        let (out_tx, from) = mpsc::channel::<FromWorker>();
        // One worker waits for its batches spinning ([`next`]), unless it would take the only
        // core from the reader.
        let spin = n == 1 && std::thread::available_parallelism().is_ok_and(|p| p.get() > 1);
        let mut to = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for id in 0..n {
            let (tx, rx) = mpsc::sync_channel(QUEUED_BATCHES);
            let out = out_tx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("http-top-worker-{id}"))
                    .spawn(move || worker(id, share, &rx, &out, spin))?,
            );
            to.push(tx);
        }
        Ok(Self {
            to,
            from,
            threads,
            decoder: Pipeline::new(cfg),
            batches: (0..n).map(|_| Batch::default()).collect(),
            free: Vec::new(),
            router: foldhash::fast::FixedState::with_seed(0x0068_7474_7074_6f70),
            ready: VecDeque::new(),
            spent: (0..n).map(|_| SpareLines::default()).collect(),
            ticks: VecDeque::new(),
            ticks_done: 0,
            markers: vec![0; n],
            worker_totals: vec![(FlowStats::default(), HttpStats::default()); n],
            done: 0,
        })
    }

    fn send(&self, w: usize, m: ToWorker) -> anyhow::Result<()> {
        self.to[w]
            .send(m)
            .map_err(|_| anyhow::anyhow!("a worker thread stopped"))
    }

    /// Sends worker `w` its batch as it is.
    fn flush(&mut self, w: usize) -> anyhow::Result<()> {
        let next = self.free.pop().unwrap_or_default();
        let mut b = std::mem::replace(&mut self.batches[w], next);
        std::mem::swap(&mut b.spare, &mut self.spent[w]);
        self.send(w, ToWorker::Batch(b))
    }

    fn handle(&mut self, m: FromWorker) {
        match m {
            FromWorker::Free(b, id, f, h) => {
                self.worker_totals[id] = (f, h);
                if b.done.is_empty() {
                    self.free.push(b);
                } else {
                    self.ready.push_back(Ready::Exchanges(id, b));
                }
            }
            FromWorker::Exchanges(w, done) => self.ready.push_back(Ready::Last(w, done)),
            FromWorker::Tick(w) => {
                self.markers[w] += 1;
                // A tick is complete once every worker has passed it.
                let passed = self.markers.iter().copied().min().unwrap_or(0);
                while self.ticks_done < passed
                    && let Some(t) = self.ticks.pop_front()
                {
                    self.ready.push_back(Ready::Tick(t));
                    self.ticks_done += 1;
                }
            }
            FromWorker::Done(id, f, h) => {
                self.worker_totals[id] = (f, h);
                self.done += 1;
            }
        }
    }

    /// Hands `done` over in order, keeping each request line's buffer for worker `w`.
    fn deliver(
        &mut self,
        w: usize,
        done: &mut [Exchange],
        each: &mut dyn FnMut(Event<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        for e in done {
            each(Event::Exchange(e))?;
            if let Some(line) = e.request.take() {
                self.spent[w].give(line);
            }
        }
        Ok(())
    }

    fn hand_over(
        &mut self,
        each: &mut dyn FnMut(Event<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        while let Some(r) = self.ready.pop_front() {
            match r {
                Ready::Exchanges(w, mut b) => {
                    self.deliver(w, &mut b.done, each)?;
                    b.done.clear();
                    // A burst (an idle sweep, evictions) can complete thousands of exchanges
                    // with one batch; every vector going round would keep that room for good
                    // (the flood capture: +28 MiB). A batch's usual room stays.
                    b.done.shrink_to(BATCH_SEGMENTS);
                    self.free.push(b);
                }
                Ready::Last(w, mut done) => self.deliver(w, &mut done, each)?,
                Ready::Tick(t) => each(Event::Tick(t))?,
            }
        }
        Ok(())
    }
}

impl Engine for Parallel {
    fn packet(&mut self, p: &Packet<'_>) -> anyhow::Result<Option<Segment<'static>>> {
        let Some(seg) = self.decoder.decode(p) else {
            return Ok(None);
        };
        let w = route(&self.router, &seg, self.to.len());
        let b = &mut self.batches[w];
        let len = seg.payload.len();
        let in_place = p
            .shared
            .filter(|_| len > 0)
            .and_then(|s| Some((s, s.offset_of(seg.payload)?)));
        let (buffer, payload) = match in_place {
            Some((s, at)) => {
                // Consecutive segments lie in the same window.
                if !b.shared.last().is_some_and(|last| last.same(s)) {
                    b.shared.push(s.clone());
                }
                (b.shared.len() - 1, at..at + len)
            }
            // Copied, or nothing to copy (a bare ACK holds no window).
            None => {
                b.data.extend_from_slice(seg.payload);
                (COPIED, b.data.len() - len..b.data.len())
            }
        };
        b.meta.push(Meta {
            ts_ns: p.ts_ns,
            segment: seg.without_payload(),
            payload,
            buffer,
        });
        b.bytes += len;
        if b.meta.len() >= BATCH_SEGMENTS
            || b.bytes >= BATCH_BYTES
            || b.shared.len() >= BATCH_WINDOWS
        {
            self.flush(w)?;
            // Results are taken when a batch goes out, not per packet.
            while let Ok(m) = self.from.try_recv() {
                self.handle(m);
            }
        }
        Ok(seg.closing())
    }

    fn now_ns(&self) -> u64 {
        self.decoder.now_ns()
    }

    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        for w in 0..self.to.len() {
            self.flush(w)?;
            self.send(w, ToWorker::Tick)?;
        }
        self.ticks.push_back(now_ns);
        Ok(())
    }

    fn poll(
        &mut self,
        each: &mut dyn FnMut(Event<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.hand_over(each)
    }

    fn finish(
        &mut self,
        each: &mut dyn FnMut(Event<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        for w in 0..self.to.len() {
            self.flush(w)?;
            self.send(w, ToWorker::Finish)?;
        }
        while self.done < self.to.len() {
            // A worker that panicked drops its sender; the channel then ends early.
            let Ok(m) = self.from.recv() else {
                anyhow::bail!("a worker thread stopped");
            };
            self.handle(m);
            self.hand_over(each)?;
        }
        self.to.clear();
        for t in self.threads.drain(..) {
            t.join()
                .map_err(|_| anyhow::anyhow!("a worker thread panicked"))?;
        }
        self.hand_over(each)
    }

    fn totals(&self) -> Totals {
        let mut t = Totals {
            counters: self.decoder.counters(),
            ..Totals::default()
        };
        for (f, h) in &self.worker_totals {
            t.flows += *f;
            t.http += *h;
        }
        t
    }
}

/// The worker for a segment's connection: the same for both directions.
fn route(router: &impl BuildHasher, seg: &Segment<'_>, n: usize) -> usize {
    // One worker (two cores) is the common case: hashing both endpoints of every segment for it
    // was a twentieth of the reader's time.
    if n == 1 {
        return 0;
    }
    let one = |a: &SocketAddr| router.hash_one(a);
    // The hash scaled to 0..n by a multiplication: a division per segment showed in the profile.
    ((u128::from(one(&seg.src) ^ one(&seg.dst)) * n as u128) >> 64) as usize
}

/// The next message; with `spin`, waiting a little before sleeping: the reader sends a single
/// worker a batch every hundred microseconds or so, and waking it for each cost the reader, the
/// busier thread, a system call (measured on 2 cores: small-request capture -4% wall, 1M-request
/// capture -3%, the latter with 4% more CPU spent waiting). Several workers each get a batch less
/// often and would mostly spin: they sleep at once.
fn next(rx: &Receiver<ToWorker>, spin: bool) -> Option<ToWorker> {
    if !spin {
        return rx.recv().ok();
    }
    let until = std::time::Instant::now() + std::time::Duration::from_micros(200);
    loop {
        match rx.try_recv() {
            Ok(m) => return Some(m),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if std::time::Instant::now() < until => {
                std::hint::spin_loop();
            }
            Err(mpsc::TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

fn worker(
    id: usize,
    cfg: FlowConfig,
    rx: &Receiver<ToWorker>,
    out: &Sender<FromWorker>,
    spin: bool,
) {
    let mut p = Pipeline::new(cfg);
    // The reader hangs up only after it has everything it needs, or on an error.
    let send = |m: FromWorker| out.send(m).is_ok();
    while let Some(m) = next(rx, spin) {
        match m {
            ToWorker::Batch(mut b) => {
                p.reuse_lines(&mut b.spare);
                for m in &b.meta {
                    let bytes = match m.buffer {
                        COPIED => &b.data[..],
                        i => &b.shared[i][..],
                    };
                    let seg = Segment {
                        payload: &bytes[m.payload.clone()],
                        ..m.segment
                    };
                    p.feed_decoded(m.ts_ns, &seg);
                }
                p.take_exchanges(&mut b.done);
                b.meta.clear();
                b.data.clear();
                b.shared.clear();
                b.bytes = 0;
                if !send(FromWorker::Free(b, id, p.flow_stats(), p.http_stats())) {
                    return;
                }
            }
            ToWorker::Tick => {
                if !send(FromWorker::Tick(id)) {
                    return;
                }
            }
            ToWorker::Finish => {
                let mut v = Vec::new();
                p.finish(|e| {
                    v.push(e);
                    if v.len() >= 1024 {
                        let _ = out.send(FromWorker::Exchanges(id, std::mem::take(&mut v)));
                    }
                });
                send(FromWorker::Exchanges(id, v));
                send(FromWorker::Done(id, p.flow_stats(), p.http_stats()));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
