//! The dashboard's loop. Capture and the packet pipeline run on their own thread and send batches
//! of finished exchanges over a bounded channel; this thread owns the statistics, ticks them in
//! capture time, renders about ten times a second and handles keys as they come. The terminal is
//! restored on every way out, panics included (`ratatui::init` installs the hook).

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, SyncSender},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::Context;
use crossterm::{
    event::{self, DisableMouseCapture, EnableMouseCapture, Event, KeyEventKind},
    execute,
};

use super::{App, Effect, map_key, map_mouse, render};
use crate::{
    capture::PacketSource,
    proto::Exchange,
    session::{self, Health, Output},
    stats::{Row, metric::Period},
};

/// What the capture thread sends.
pub struct Batch {
    pub exchanges: Vec<Exchange>,
    /// Capture time now (for a live source, the clock: quiet time still passes).
    pub now_ns: u64,
    pub health: Health,
    /// Close a tick at this capture time after taking these exchanges. The capture side decides,
    /// so ticks fall on capture-time boundaries even when a file is read faster than it was
    /// recorded. (Not `now_ns`: with several reader threads a tick is handed over after the
    /// reader has gone further, and every tick would then close at the same time.)
    pub tick: Option<u64>,
    /// The capture ended (a file was read to its end): keep the last picture on screen.
    pub ended: bool,
}

const SEND_EVERY: Duration = Duration::from_millis(50);
const FRAME: Duration = Duration::from_millis(100);
/// Exchanges sent in one batch at most.
const BATCH_MAX: usize = 5_000;

/// The dashboard's session output: batches exchanges for the UI thread over a bounded channel.
struct Feed {
    tx: SyncSender<Batch>,
    pending: Vec<Exchange>,
    health: Health,
    last_send: Instant,
    now_ns: u64,
    /// The UI thread has gone.
    closed: bool,
}

impl Feed {
    fn send(&mut self, tick: Option<u64>, ended: bool) {
        self.last_send = Instant::now();
        let b = Batch {
            exchanges: std::mem::take(&mut self.pending),
            now_ns: self.now_ns,
            health: self.health,
            tick,
            ended,
        };
        self.closed |= self.tx.send(b).is_err();
    }
}

impl Output for Feed {
    fn exchange(&mut self, e: &Exchange) -> anyhow::Result<()> {
        self.pending.push(e.clone());
        if self.pending.len() >= BATCH_MAX {
            self.send(None, false);
        }
        Ok(())
    }
    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        self.now_ns = self.now_ns.max(now_ns);
        self.send(Some(now_ns), false);
        Ok(())
    }
    fn wake(&mut self, now_ns: u64) -> anyhow::Result<()> {
        self.now_ns = self.now_ns.max(now_ns);
        if self.last_send.elapsed() >= SEND_EVERY {
            self.send(None, false);
        }
        Ok(())
    }
    fn health(&mut self, h: &Health) -> anyhow::Result<()> {
        self.health = *h;
        Ok(())
    }
    fn end(&mut self, h: &Health) -> anyhow::Result<()> {
        self.health = *h;
        // No tick: the stretch since the last one is partial, and its rate would lie.
        self.send(None, true);
        Ok(())
    }
    fn done(&self) -> bool {
        self.closed
    }
}

/// Runs the dashboard until the user quits (or `stop` is set by a signal).
pub fn run(
    mut app: App,
    source: Box<dyn PacketSource + Send>,
    opts: session::Options,
    stop: &Arc<AtomicBool>,
    // Outputs beside the dashboard (the metrics endpoint's exporter).
    beside: Vec<Box<dyn session::Output + Send>>,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the dashboard needs a terminal; without one, use --headless (tables), --json, --slow \
             MS or --alert RULE with --headless"
        );
    }
    let (tx, rx): (SyncSender<Batch>, Receiver<Batch>) = mpsc::sync_channel(64);
    let capture_stop = Arc::clone(stop);
    let handle = thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            let feed = Feed {
                tx,
                pending: Vec::new(),
                health: Health::default(),
                last_send: Instant::now(),
                now_ns: 0,
                closed: false,
            };
            let mut outputs: Vec<Box<dyn session::Output + Send>> = vec![Box::new(feed)];
            outputs.extend(beside);
            session::run(source, &opts, &capture_stop, &mut session::Outputs(outputs)).map(|_| ())
        })
        .context("starting the capture thread")?;

    let mut terminal = ratatui::init();
    // Clicks and the wheel come as events (htop does the same; Shift keeps the terminal's own
    // selection). Turned off again on every way out, a panic included, after ratatui's hook.
    let _ = execute!(std::io::stdout(), EnableMouseCapture);
    let restore_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(std::io::stdout(), DisableMouseCapture);
        restore_hook(info);
    }));
    let result = ui_loop(&mut terminal, &mut app, &rx, stop, &handle);
    let _ = execute!(std::io::stdout(), DisableMouseCapture);
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

#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// Does what an action asked of the outside world.
pub fn carry_out(app: &mut App, effect: Effect) -> Flow {
    let msg = match effect {
        Effect::Quit => return Flow::Quit,
        Effect::Say(msg) => msg.to_owned(),
        Effect::Export(rows, span) => match export(&app.export_dir, &rows, span) {
            Ok(path) => format!("snapshot written to {}", path.display()),
            Err(e) => format!("export failed: {e:#}"),
        },
    };
    app.say(msg, Instant::now());
    Flow::Continue
}

/// Writes `rows` (same columns as `--csv`) to a file named after the local time in `dir`.
fn export(dir: &Path, rows: &[Row], span: Period) -> anyhow::Result<PathBuf> {
    let name = format!(
        "http-top-{}.csv",
        chrono::Local::now().format("%Y%m%d-%H%M%S")
    );
    let path = dir.join(name);
    let file = std::fs::File::create(&path)?;
    crate::output::csv::write_csv(std::io::BufWriter::new(file), rows, span)?;
    Ok(path)
}

/// Takes what the capture side sent; whether it said the capture ended.
fn take(app: &mut App, rx: &Receiver<Batch>) -> bool {
    let mut ended = false;
    while let Ok(b) = rx.try_recv() {
        app.ingest(b.exchanges);
        app.health = b.health;
        if let Some(t) = b.tick {
            app.tick(t);
        }
        ended |= b.ended;
    }
    ended
}

fn ui_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    rx: &Receiver<Batch>,
    stop: &AtomicBool,
    handle: &thread::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let mut ended = false;
    loop {
        ended |= take(app, rx);
        let size = terminal.size()?.into();
        app.page = render::page_rows(app, size);
        app.refresh();
        terminal.draw(|f| render::draw(f, app, Instant::now()))?;
        if event::poll(FRAME)? {
            let action = match event::read()? {
                Event::Key(k) if k.kind == KeyEventKind::Press => map_key(k, app.mode()),
                // Hit-tested against the frame just drawn.
                Event::Mouse(m) => {
                    map_mouse(m.kind, render::hit(app, size, m.column, m.row), app.mode())
                }
                _ => None,
            };
            if let Some(a) = action
                && let Some(effect) = app.apply(a)
                && carry_out(app, effect) == Flow::Quit
            {
                return Ok(());
            }
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if handle.is_finished() {
            // What it sent last may have come after the batches taken above.
            ended |= take(app, rx);
            if !ended {
                // The capture side failed (its error is reported after the terminal is restored).
                return Ok(());
            }
        }
    }
}
