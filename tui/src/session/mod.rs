//! One capture session: a packet source, the pipeline (on this thread, or fanned out over worker
//! threads for a file) and the rate ticker, driven by one loop that reports to an [`Output`].
//!
//! ```text
//! PacketSource ──packet──▶ Engine (decode → flow → proto) ──exchanges, ticks──▶ Output
//!      ▲                      │ (sequential Pipeline, or parallel::Parallel)     (table, CSV, JSON,
//!      └──── closing segment ─┘                                                  packets, pcap, the
//!                                                                                dashboard's feed)
//! ```
//!
//! Every way of running http-top goes through [`run`]: the headless table, `--json`, `--packets`,
//! `-w`, CSV and the dashboard are outputs, so stopping, draining, ticking, replaying, looping,
//! the live source's feedback and the end of capture are written once, here.

pub mod fanout;
pub mod parallel;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    capture::{CaptureStats, Next, PacketSource, file::FileSource},
    decode::Segment,
    flow::FlowConfig,
    names::{Resolver, Service},
    packet::{Packet, SkipHint},
    pipeline::{Pipeline, Totals},
    proto::Exchange,
    stats::{
        Ticker,
        key::path_of,
        route::{RouteConfig, Router},
    },
};

/// How long a live source may wait for a packet before the loop checks its stop conditions.
const POLL: Duration = Duration::from_millis(100);
/// Longest a stopping capture keeps reading what was already queued.
const DRAIN: Duration = Duration::from_secs(1);
/// The live ring hands over a partly filled block after 10 ms (`capture::live`).
const DRAIN_WAIT: Duration = Duration::from_millis(25);
/// Packets between two calls of [`Output::wake`] (and at least one per [`POLL`] when quiet).
const WAKE_EVERY: u32 = 64;
/// Wall time between two health reports.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

/// Every counter of a session: the pipeline's and the source's.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Health {
    pub totals: Totals,
    pub capture: CaptureStats,
    /// How much of a file has been read, 0.0 to 1.0 (None live).
    pub progress: Option<f64>,
    pub live: bool,
}

impl Health {
    /// Every counter that means something for this source, in summary order.
    pub fn list(&self) -> impl Iterator<Item = crate::counters::Counter> {
        self.totals.list().chain(self.capture.shown(self.live))
    }
}

/// Where a session reports. Each method returns an error only for a real failure; an output
/// that simply cannot take more (a closed pipe, a dashboard that quit) says so with
/// [`Output::done`], and the session stops.
pub trait Output {
    /// A frame as captured, before it is decoded (`--packets`, `-w`); only called when
    /// [`Output::wants_packets`] says so.
    fn packet(&mut self, _p: &Packet<'_>) -> anyhow::Result<()> {
        Ok(())
    }
    /// Whether this output takes frames.
    fn wants_packets(&self) -> bool {
        false
    }
    /// Whether this output reads exchanges' routes ([`Exchange::route`]); when none does, the
    /// session does not work them out (a lookup by path for every exchange).
    fn wants_routes(&self) -> bool {
        true
    }
    /// One finished exchange.
    fn exchange(&mut self, e: &Exchange) -> anyhow::Result<()>;
    /// A rate tick closes at capture time `now_ns`: exchanges reported after it belong to the next.
    fn tick(&mut self, _now_ns: u64) -> anyhow::Result<()> {
        Ok(())
    }
    /// Called every few packets and at least every 100 ms: periodic work (a live table, a batch
    /// for the dashboard). `now_ns` is the capture clock (on a quiet live interface, the wall).
    fn wake(&mut self, _now_ns: u64) -> anyhow::Result<()> {
        Ok(())
    }
    /// Nothing to read right now: a good moment to flush.
    fn idle(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    /// The counters, about once a second of wall time.
    fn health(&mut self, _h: &Health) -> anyhow::Result<()> {
        Ok(())
    }
    /// The session ended (source exhausted, stopped, or this output is done); `h` is final.
    fn end(&mut self, h: &Health) -> anyhow::Result<()>;
    /// Whether this output can take no more.
    fn done(&self) -> bool {
        false
    }
}

/// Several outputs, each told everything in the order given.
pub struct Outputs<'a>(pub Vec<Box<dyn Output + Send + 'a>>);

impl Output for Outputs<'_> {
    fn packet(&mut self, p: &Packet<'_>) -> anyhow::Result<()> {
        self.0
            .iter_mut()
            .filter(|o| o.wants_packets())
            .try_for_each(|o| o.packet(p))
    }
    fn wants_packets(&self) -> bool {
        self.0.iter().any(|o| o.wants_packets())
    }
    fn wants_routes(&self) -> bool {
        self.0.iter().any(|o| o.wants_routes())
    }
    fn exchange(&mut self, e: &Exchange) -> anyhow::Result<()> {
        self.0.iter_mut().try_for_each(|o| o.exchange(e))
    }
    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        self.0.iter_mut().try_for_each(|o| o.tick(now_ns))
    }
    fn wake(&mut self, now_ns: u64) -> anyhow::Result<()> {
        self.0.iter_mut().try_for_each(|o| o.wake(now_ns))
    }
    fn idle(&mut self) -> anyhow::Result<()> {
        self.0.iter_mut().try_for_each(|o| o.idle())
    }
    fn health(&mut self, h: &Health) -> anyhow::Result<()> {
        self.0.iter_mut().try_for_each(|o| o.health(h))
    }
    fn end(&mut self, h: &Health) -> anyhow::Result<()> {
        self.0.iter_mut().try_for_each(|o| o.end(h))
    }
    fn done(&self) -> bool {
        self.0.iter().any(|o| o.done())
    }
}

/// What the engine hands over, in order. Lent, not given: exchanges stay where the engine keeps
/// them (an exchange is ~200 bytes to copy at every move), and the engine keeps what it can
/// reuse.
pub enum Event<'a> {
    Exchange(&'a mut Exchange),
    Tick(u64),
}

/// What the session adds to every exchange before an output sees it.
struct Naming {
    /// `None` when no output reads routes.
    router: Option<Router>,
    resolver: Option<Resolver>,
}

/// Hands an event to the outputs; an exchange gets its route and its endpoints' owners first,
/// here on the session's one thread, so every output (and every run over the same capture) sees
/// the same names.
fn deliver(out: &mut dyn Output, naming: &mut Naming, ev: Event<'_>) -> anyhow::Result<()> {
    match ev {
        Event::Exchange(e) => {
            if let Some(router) = &mut naming.router
                && e.request_seen
                && !e.unparsable
            {
                e.route = e.target().map(|t| router.route(path_of(t)));
            }
            if let Some(r) = &mut naming.resolver {
                r.resolve(e);
            }
            out.exchange(e)
        }
        Event::Tick(t) => out.tick(t),
    }
}

/// The pipeline as the session drives it: on this thread ([`Pipeline`]) or over worker threads
/// ([`parallel::Parallel`]).
pub trait Engine {
    /// One frame in; the segment's head when it closes a connection (FIN or RST), which the
    /// session passes to [`PacketSource::observe`].
    fn packet(&mut self, p: &Packet<'_>) -> anyhow::Result<Option<Segment<'static>>>;
    /// Latest capture time seen.
    fn now_ns(&self) -> u64;
    /// A tick boundary at `now_ns`: exchanges completed before it are reported before the tick.
    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()>;
    /// Hands over what is ready, in order: `each` sees an event, and may change it, before the
    /// engine drops it (or keeps what it can reuse).
    fn poll(&mut self, each: &mut dyn FnMut(Event<'_>) -> anyhow::Result<()>)
    -> anyhow::Result<()>;
    /// Ends the capture: every connection closes; hands over everything left.
    fn finish(
        &mut self,
        each: &mut dyn FnMut(Event<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()>;
    /// The counters so far.
    fn totals(&self) -> Totals;
    /// Bodies found since the last call that need not be captured, for the live source.
    fn skips(&mut self, _each: &mut dyn FnMut(&SkipHint)) {}
}

/// The pipeline on the session's own thread.
struct Sequential {
    pipeline: Pipeline,
    /// A tick asked for and not handed over yet.
    tick: Option<u64>,
}

impl Sequential {
    /// `skips`: the source can leave out bodies, so the pipeline says which.
    fn new(flow: FlowConfig, skips: bool) -> Self {
        let mut pipeline = Pipeline::new(flow);
        if skips {
            pipeline.ask_skips();
        }
        Self {
            pipeline,
            tick: None,
        }
    }
}

impl Engine for Sequential {
    fn packet(&mut self, p: &Packet<'_>) -> anyhow::Result<Option<Segment<'static>>> {
        Ok(self.pipeline.packet(p))
    }
    fn now_ns(&self) -> u64 {
        self.pipeline.now_ns()
    }
    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        // The session polls after every packet, so nothing completed before the tick waits here.
        self.tick = Some(now_ns);
        Ok(())
    }
    fn poll(
        &mut self,
        each: &mut dyn FnMut(Event<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        // Called after every packet; most complete nothing.
        if self.tick.is_none() && !self.pipeline.has_exchanges() {
            return Ok(());
        }
        if let Some(t) = self.tick.take() {
            each(Event::Tick(t))?;
        }
        self.pipeline
            .drain()
            .try_for_each(|mut e| each(Event::Exchange(&mut e)))
    }
    fn finish(
        &mut self,
        each: &mut dyn FnMut(Event<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.poll(each)?;
        let mut result = Ok(());
        self.pipeline.finish(|mut e| {
            if result.is_ok() {
                result = each(Event::Exchange(&mut e));
            }
        });
        result
    }
    fn totals(&self) -> Totals {
        self.pipeline.totals()
    }
    fn skips(&mut self, each: &mut dyn FnMut(&SkipHint)) {
        self.pipeline.skips().for_each(|h| each(&h));
    }
}

/// How a session reads.
#[derive(Debug, Clone)]
pub struct Options {
    pub flow: FlowConfig,
    /// Rate tick length, in capture time.
    pub tick: Duration,
    /// Worker threads for reading a file (0: the pipeline runs on the session's thread). Not
    /// used live or when a file is replayed at its recorded pace.
    pub workers: usize,
    /// Stop after this much wall time.
    pub duration: Option<Duration>,
    /// Replay a file at this multiple of its recorded pace (None: as fast as it can be read).
    pub replay_speed: Option<f64>,
    /// Start this file again when it ends (demo mode); its source is the one passed to [`run`].
    pub loop_file: Option<PathBuf>,
    /// The source is a live capture: a quiet interface still lets time pass.
    pub live: bool,
    /// How request paths become routes.
    pub routes: RouteConfig,
    /// Where process and container names come from (`None`: not looked up).
    pub names: Option<Service>,
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Replay at a file's recorded pace: capture time `t0` is shown at wall time `w0`.
struct Pace {
    speed: f64,
    base: Option<(u64, Instant)>,
}

impl Pace {
    /// Waits until capture time `ts` is due, in short steps so that stopping stays prompt and the
    /// output keeps its periodic work; `false` when the session should stop instead.
    fn wait(
        &mut self,
        ts: u64,
        stop: &AtomicBool,
        now_ns: u64,
        out: &mut dyn Output,
    ) -> anyhow::Result<bool> {
        let (t0, w0) = *self.base.get_or_insert((ts, Instant::now()));
        let due = w0 + Duration::from_secs_f64(ts.saturating_sub(t0) as f64 / 1e9 / self.speed);
        while let Some(left) = due.checked_duration_since(Instant::now()) {
            out.wake(now_ns)?;
            if stop.load(Ordering::Relaxed) || out.done() {
                return Ok(false);
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        Ok(true)
    }
}

/// Reads `source` until it ends, `stop` is set, `opts.duration` passes or `out` is done, and
/// reports everything to `out`. Returns the final counters.
pub fn run(
    source: Box<dyn PacketSource + Send>,
    opts: &Options,
    stop: &AtomicBool,
    out: &mut dyn Output,
) -> anyhow::Result<Health> {
    // The loop is compiled for each engine: a call through a vtable for every packet was
    // measurable on a capture of small requests.
    let mut source = source;
    let rings = source.split();
    if !rings.is_empty() {
        // A live capture over several rings (--fanout): each read on a thread of its own.
        let rings = std::cell::RefCell::new(Some(rings));
        drive(source, opts, stop, out, || {
            let rings = rings.borrow_mut().take();
            fanout::Fanout::start(rings.unwrap_or_default(), opts.flow)
        })
    } else if !opts.live && opts.replay_speed.is_none() && opts.workers > 0 {
        drive(source, opts, stop, out, || {
            parallel::Parallel::start(opts.flow, opts.workers)
        })
    } else {
        let skips = source.skips_bodies();
        drive(source, opts, stop, out, || {
            Ok(Sequential::new(opts.flow, skips))
        })
    }
}

fn drive<E: Engine>(
    mut source: Box<dyn PacketSource + Send>,
    opts: &Options,
    stop: &AtomicBool,
    out: &mut dyn Output,
    start: impl Fn() -> anyhow::Result<E>,
) -> anyhow::Result<Health> {
    let live = opts.live;
    let mut engine = start()?;
    let mut naming = Naming {
        router: out.wants_routes().then(|| Router::new(opts.routes.clone())),
        resolver: opts.names.clone().map(Resolver::new),
    };
    let packets = out.wants_packets();
    let mut ticker = Ticker::new(opts.tick);
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let mut drain_until: Option<Instant> = None;
    let mut pace = opts.replay_speed.map(|speed| Pace { speed, base: None });
    // Looping: later passes are shifted to continue after the previous one.
    let (mut offset, mut first_ts, mut last_ts) = (0u64, None::<u64>, 0u64);
    let mut last_health: Option<Instant> = None;
    let mut since_wake = 0u32;
    let health = |engine: &E, source: &mut dyn PacketSource| Health {
        totals: engine.totals(),
        capture: source.stats(),
        progress: source.progress(),
        live,
    };
    loop {
        // On Ctrl-C or --duration, finish what the kernel already queued (the ring can hold the
        // last few milliseconds of traffic), then stop at the first quiet moment.
        let stopping =
            stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d);
        if stopping && Instant::now() >= *drain_until.get_or_insert(Instant::now() + DRAIN) {
            break;
        }
        // While draining, wait just longer than the ring takes to hand over a partly filled block.
        let wait = if stopping { DRAIN_WAIT } else { POLL };
        let mut closing = None;
        let mut quiet = false;
        match source.next_packet(wait)? {
            Next::Packet(p) => {
                let p = Packet {
                    ts_ns: p.ts_ns.saturating_add(offset),
                    ..p
                };
                first_ts.get_or_insert(p.ts_ns);
                last_ts = last_ts.max(p.ts_ns);
                if let Some(pace) = &mut pace
                    && !pace.wait(p.ts_ns, stop, engine.now_ns(), out)?
                {
                    break;
                }
                // Rates tick on capture time, so a file shows the rates it had when captured;
                // this packet's exchanges belong to the tick it may open.
                let now = engine.now_ns().max(p.ts_ns);
                if ticker.due(now) {
                    engine.tick(now)?;
                }
                if packets {
                    out.packet(&p)?;
                }
                closing = engine.packet(&p)?;
                since_wake += 1;
            }
            Next::Idle if stopping => break,
            Next::Idle => {
                // A quiet live interface: time passes all the same.
                let now = wall_ns().max(engine.now_ns());
                if ticker.due(now) {
                    engine.tick(now)?;
                }
                quiet = true;
            }
            Next::End => {
                let Some(path) = &opts.loop_file else {
                    break;
                };
                // Next pass: fresh connections, timestamps continuing after this pass.
                engine.finish(&mut |ev| deliver(out, &mut naming, ev))?;
                engine = start()?;
                offset = offset.saturating_add(
                    last_ts.saturating_sub(first_ts.unwrap_or(last_ts)) + 1_000_000_000,
                );
                (first_ts, last_ts) = (None, 0);
                source = Box::new(FileSource::open(path)?);
                continue;
            }
        }
        if let Some(seg) = closing {
            source.observe(&seg);
        }
        engine.skips(&mut |h| source.skip_body(h));
        engine.poll(&mut |ev| deliver(out, &mut naming, ev))?;
        if quiet || since_wake >= WAKE_EVERY {
            since_wake = 0;
            let now = if live {
                wall_ns().max(engine.now_ns())
            } else {
                engine.now_ns()
            };
            out.wake(now)?;
            if quiet {
                out.idle()?;
            }
            if last_health.is_none_or(|t| t.elapsed() >= HEALTH_EVERY) {
                last_health = Some(Instant::now());
                out.health(&health(&engine, &mut *source))?;
            }
            if out.done() {
                break;
            }
        }
    }
    if let Some(p) = source.problem() {
        tracing::warn!("capture file ends with an unreadable record ({p}); stopping there");
    }
    engine.finish(&mut |ev| deliver(out, &mut naming, ev))?;
    let h = health(&engine, &mut *source);
    out.health(&h)?;
    out.end(&h)?;
    Ok(h)
}
