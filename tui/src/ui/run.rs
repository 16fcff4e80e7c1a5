//! The dashboard's loop. Capture and the packet pipeline run on their own thread and send batches
//! of finished exchanges over a bounded channel; this thread owns the statistics, ticks them in
//! capture time, renders about ten times a second and handles keys as they come. The terminal is
//! restored on every way out, panics included (`ratatui::init` installs the hook).

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, SyncSender},
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use crossterm::event::{self, Event, KeyEventKind};

use super::{App, Health, map_key, render};
use crate::{
    capture::{Next, Packet, PacketSource, file::FileSource},
    flow::FlowConfig,
    http::Exchange,
    pipeline::Pipeline,
    stats::Ticker,
};

/// What the capture thread sends.
pub struct Batch {
    pub exchanges: Vec<Exchange>,
    /// Capture time now (for a live source, the clock: quiet time still passes).
    pub now_ns: u64,
    pub health: Health,
    /// Close a tick at `now_ns` after taking these exchanges. The capture side decides, so ticks
    /// fall on capture-time boundaries even when a file is read faster than it was recorded.
    pub tick: bool,
}

/// How the capture thread reads.
pub struct CaptureOptions {
    pub flow: FlowConfig,
    /// Replay a file at this multiple of its recorded pace (None: as fast as possible).
    pub replay_speed: Option<f64>,
    /// Start the file again when it ends (demo mode).
    pub loop_file: Option<PathBuf>,
    pub live: bool,
    /// Tick length in capture time.
    pub tick: Duration,
}

const POLL: Duration = Duration::from_millis(100);
const SEND_EVERY: Duration = Duration::from_millis(50);
const FRAME: Duration = Duration::from_millis(100);

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The capture side's sending half: batches exchanges, closes ticks on capture-time boundaries.
struct Sender<'a> {
    tx: &'a SyncSender<Batch>,
    pending: Vec<Exchange>,
    health: Health,
    last_send: Instant,
    ticker: Ticker,
}

impl Sender<'_> {
    /// Sends what is pending; `false` once the receiver is gone.
    fn send(&mut self, now_ns: u64, tick: bool) -> bool {
        self.last_send = Instant::now();
        let b = Batch {
            exchanges: std::mem::take(&mut self.pending),
            now_ns,
            health: self.health,
            tick,
        };
        self.tx.send(b).is_ok()
    }

    /// Closes a tick if capture time `now_ns` reached the boundary (one tick for a longer jump:
    /// its rate is then averaged over the whole quiet stretch).
    fn clock(&mut self, now_ns: u64) -> bool {
        if self.ticker.due(now_ns) {
            return self.send(now_ns, true);
        }
        true
    }

    fn flush_if_due(&mut self, now_ns: u64) -> bool {
        if self.last_send.elapsed() >= SEND_EVERY || self.pending.len() >= 5_000 {
            return self.send(now_ns, false);
        }
        true
    }
}

fn health_of(source: &mut dyn PacketSource, pipeline: &Pipeline) -> Health {
    let cs = source.stats();
    let fs = pipeline.flow_stats();
    let pc = pipeline.counters();
    Health {
        packets: pc.packets,
        ring_drops: cs.ring_drops,
        gaps: fs.gaps,
        parse_errors: pipeline.http_stats().parse_errors,
        decode_errors: pc.decode_errors,
        open_conns: fs.open,
        progress_permille: source.progress().map(|p| (p * 1000.0) as u16),
    }
}

/// Runs the capture side until `stop` is set or the receiver goes away.
fn capture(
    mut source: Box<dyn PacketSource + Send>,
    opts: &CaptureOptions,
    tx: &SyncSender<Batch>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut pipeline = Pipeline::new(opts.flow);
    let mut out = Sender {
        tx,
        pending: Vec::new(),
        health: Health::default(),
        last_send: Instant::now(),
        ticker: Ticker::new(opts.tick),
    };
    let mut last_health = Instant::now();
    // Replay: capture time `t0` is shown at wall time `w0`; looping shifts later passes by `offset`.
    let mut base: Option<(u64, Instant)> = None;
    let mut offset: u64 = 0;
    let mut first_ts: Option<u64> = None;
    let mut last_ts: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut closing = None;
        let now = match source.next_packet(POLL)? {
            Next::Packet(p) => {
                let ts = p.ts_ns.saturating_add(offset);
                first_ts.get_or_insert(p.ts_ns);
                last_ts = last_ts.max(p.ts_ns);
                if let Some(speed) = opts.replay_speed {
                    let (t0, w0) = *base.get_or_insert((ts, Instant::now()));
                    let due =
                        w0 + Duration::from_secs_f64(ts.saturating_sub(t0) as f64 / 1e9 / speed);
                    // Wait in short steps, so stopping stays prompt and batches keep flowing.
                    while let Some(left) = due.checked_duration_since(Instant::now()) {
                        if stop.load(Ordering::Relaxed) || !out.flush_if_due(pipeline.now_ns()) {
                            return Ok(());
                        }
                        thread::sleep(left.min(SEND_EVERY));
                    }
                }
                // Exchanges finished so far belong to the tick this packet may close.
                if !out.clock(ts.max(pipeline.now_ns())) {
                    return Ok(());
                }
                closing = pipeline.packet(&Packet { ts_ns: ts, ..p });
                out.pending.extend(pipeline.drain());
                pipeline.now_ns()
            }
            // A quiet live interface: time passes all the same.
            Next::Idle => {
                let now = wall_ns().max(pipeline.now_ns());
                if !out.clock(now) {
                    return Ok(());
                }
                now
            }
            Next::End => {
                if let Some(p) = source.problem() {
                    tracing::warn!(
                        "capture file ends with an unreadable record ({p}); stopping there"
                    );
                }
                pipeline.finish(|e| out.pending.push(e));
                out.health = health_of(&mut *source, &pipeline);
                let Some(path) = &opts.loop_file else {
                    // No tick: the stretch since the last one is partial, and its rate would lie.
                    if !out.send(pipeline.now_ns(), false) {
                        return Ok(());
                    }
                    // Keep the last picture on screen until the user quits.
                    while !stop.load(Ordering::Relaxed) {
                        thread::sleep(POLL);
                    }
                    return Ok(());
                };
                // Next pass: fresh connections, timestamps continuing after this pass.
                offset = offset.saturating_add(
                    last_ts.saturating_sub(first_ts.unwrap_or(last_ts)) + 1_000_000_000,
                );
                first_ts = None;
                last_ts = 0;
                source = Box::new(FileSource::open(path)?);
                pipeline = Pipeline::new(opts.flow);
                continue;
            }
        };
        if let Some(seg) = closing {
            source.observe(&seg);
        }
        if last_health.elapsed() >= Duration::from_secs(1) || out.health.packets == 0 {
            last_health = Instant::now();
            out.health = health_of(&mut *source, &pipeline);
        }
        let now = if opts.live { wall_ns().max(now) } else { now };
        if !out.flush_if_due(now) {
            return Ok(());
        }
    }
    Ok(())
}

/// Runs the dashboard until the user quits (or `stop` is set by a signal).
pub fn run(
    mut app: App,
    source: Box<dyn PacketSource + Send>,
    opts: CaptureOptions,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let (tx, rx): (SyncSender<Batch>, Receiver<Batch>) = mpsc::sync_channel(64);
    let capture_stop = Arc::clone(stop);
    let handle = thread::Builder::new()
        .name("capture".into())
        .spawn(move || capture(source, &opts, &tx, &capture_stop))
        .context("starting the capture thread")?;

    let mut terminal = ratatui::init();
    let result = ui_loop(&mut terminal, &mut app, &rx, stop, &handle);
    ratatui::restore();

    stop.store(true, Ordering::Relaxed);
    drop(rx);
    let captured = handle
        .join()
        .map_err(|_| anyhow::anyhow!("the capture thread panicked"))?;
    if let Err(e) = &captured {
        tracing::error!("capture stopped: {e:#}");
    }
    result.and(captured)
}

fn ui_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    rx: &Receiver<Batch>,
    stop: &AtomicBool,
    handle: &thread::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    loop {
        while let Ok(b) = rx.try_recv() {
            app.ingest(b.exchanges);
            app.health = b.health;
            if b.tick {
                app.tick(b.now_ns);
            }
        }
        terminal.draw(|f| render::draw(f, app))?;
        if event::poll(FRAME)?
            && let Event::Key(k) = event::read()?
            && k.kind == KeyEventKind::Press
            && let Some(a) = map_key(k, app.mode())
        {
            app.apply(a);
        }
        if app.quit || stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if handle.is_finished() {
            // The capture side failed (its error is reported after the terminal is restored).
            return Ok(());
        }
    }
}
