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
};

/// What the capture thread sends.
pub struct Batch {
    pub exchanges: Vec<Exchange>,
    /// Capture time now (for a live source, the clock: quiet time still passes).
    pub now_ns: u64,
    pub health: Health,
}

/// How the capture thread reads.
pub struct CaptureOptions {
    pub flow: FlowConfig,
    /// Replay a file at this multiple of its recorded pace (None: as fast as possible).
    pub replay_speed: Option<f64>,
    /// Start the file again when it ends (demo mode).
    pub loop_file: Option<PathBuf>,
    pub live: bool,
}

const POLL: Duration = Duration::from_millis(100);
const SEND_EVERY: Duration = Duration::from_millis(50);
const FRAME: Duration = Duration::from_millis(100);

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Runs the capture side until `stop` is set or the receiver goes away.
fn capture(
    mut source: Box<dyn PacketSource + Send>,
    opts: &CaptureOptions,
    tx: &SyncSender<Batch>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut pipeline = Pipeline::new(opts.flow);
    let mut pending: Vec<Exchange> = Vec::new();
    let mut last_send = Instant::now();
    let mut last_health = Instant::now();
    let mut health = Health::default();
    // Replay: capture time `t0` is shown at wall time `w0`; looping shifts later passes by `offset`.
    let mut base: Option<(u64, Instant)> = None;
    let mut offset: u64 = 0;
    let mut first_ts: Option<u64> = None;
    let mut last_ts: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        match source.next_packet(POLL)? {
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
                        if stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        thread::sleep(left.min(SEND_EVERY));
                        if !pending.is_empty() || last_send.elapsed() >= SEND_EVERY {
                            let now = pipeline.now_ns();
                            if tx
                                .send(Batch {
                                    exchanges: std::mem::take(&mut pending),
                                    now_ns: now,
                                    health,
                                })
                                .is_err()
                            {
                                return Ok(());
                            }
                            last_send = Instant::now();
                        }
                    }
                }
                pipeline.packet(&Packet { ts_ns: ts, ..p });
                pending.extend(pipeline.drain());
            }
            Next::Idle => {}
            Next::End => {
                pipeline.finish();
                pending.extend(pipeline.drain());
                let Some(path) = &opts.loop_file else {
                    let _ = tx.send(Batch {
                        exchanges: std::mem::take(&mut pending),
                        now_ns: pipeline.now_ns(),
                        health,
                    });
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
            }
        }
        if last_health.elapsed() >= Duration::from_secs(1) || health.packets == 0 {
            last_health = Instant::now();
            let cs = source.stats();
            let fs = pipeline.flow_stats();
            let pc = pipeline.counters();
            health = Health {
                packets: pc.packets,
                ring_drops: cs.ring_drops,
                gaps: fs.gaps,
                parse_errors: pipeline.http_stats().parse_errors,
                decode_errors: pc.decode_errors,
                open_conns: fs.open,
                progress_permille: source.progress().map(|p| (p * 1000.0) as u16),
            };
        }
        if last_send.elapsed() >= SEND_EVERY || pending.len() >= 5_000 {
            let now = if opts.live {
                wall_ns().max(pipeline.now_ns())
            } else {
                pipeline.now_ns()
            };
            if tx
                .send(Batch {
                    exchanges: std::mem::take(&mut pending),
                    now_ns: now,
                    health,
                })
                .is_err()
            {
                return Ok(());
            }
            last_send = Instant::now();
        }
    }
    Ok(())
}

/// Runs the dashboard until the user quits (or `stop` is set by a signal).
pub fn run(
    mut app: App,
    source: Box<dyn PacketSource + Send>,
    opts: CaptureOptions,
    delay: Duration,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let (tx, rx): (SyncSender<Batch>, Receiver<Batch>) = mpsc::sync_channel(64);
    let capture_stop = Arc::clone(stop);
    let handle = thread::Builder::new()
        .name("capture".into())
        .spawn(move || capture(source, &opts, &tx, &capture_stop))
        .context("starting the capture thread")?;

    let mut terminal = ratatui::init();
    let result = ui_loop(&mut terminal, &mut app, &rx, delay, stop, &handle);
    ratatui::restore();

    stop.store(true, Ordering::Relaxed);
    drop(rx);
    let captured = handle
        .join()
        .map_err(|_| anyhow::anyhow!("the capture thread panicked"))?;
    result.and(captured)
}

fn ui_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    rx: &Receiver<Batch>,
    delay: Duration,
    stop: &AtomicBool,
    handle: &thread::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let tick_ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX).max(1);
    let mut next_tick: Option<u64> = None;
    loop {
        while let Ok(b) = rx.try_recv() {
            app.ingest(b.exchanges);
            app.health = b.health;
            let tick = next_tick.get_or_insert(b.now_ns.saturating_add(tick_ns));
            if b.now_ns >= *tick {
                app.tick(b.now_ns);
                *tick = b.now_ns.saturating_add(tick_ns);
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
