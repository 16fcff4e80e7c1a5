//! The `http-top` binary: command line, the capture loop, output. The pipeline lives in the library
//! (`lib.rs`), so benchmarks and tests use the same code.

use std::{
    io::{self, Write},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;

use http_top::{
    capture::{
        Next, PacketSource,
        file::FileSource,
        live::{LiveOptions, LiveSource},
        privs,
    },
    cli::Cli,
    export,
    flow::FlowConfig,
    headless, parallel,
    pipeline::{Pipeline, Totals},
    stats::{GroupKey, Stats, Ticker},
    text, ui,
};

/// How long a live source may wait for a packet before the loop checks its stop conditions.
const POLL: Duration = Duration::from_millis(100);
/// Longest a stopping capture keeps reading what was already queued.
const DRAIN: Duration = Duration::from_secs(1);
/// The live ring hands over a partly filled block after 10 ms (`capture::live`).
const DRAIN_WAIT: Duration = Duration::from_millis(25);

#[expect(clippy::print_stderr, reason = "main reports errors on stderr")]
fn main() -> ExitCode {
    // glibc raises its mmap threshold each time a large block is freed, after which the flow
    // table's multi-MiB allocations come from the heap and stay resident when freed (measured: a
    // flood with 100 000 open connections peaked at 72 MiB instead of 62). A fixed threshold keeps
    // them mapped, and given back when the table is rebuilt.
    #[cfg(target_env = "gnu")]
    // SAFETY: called before any other thread exists; M_MMAP_THRESHOLD takes a byte count.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli) {
        eprintln!("http-top: {e:#}");
        return ExitCode::FAILURE;
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line a user can act on; the chain says where it came from.
            // (Multi-line causes, such as a verifier log, keep their lines.)
            let msg = format!("{e:#}");
            for line in msg.lines() {
                eprintln!("http-top: {}", text::printable(line.as_bytes()));
            }
            ExitCode::FAILURE
        }
    }
}

#[expect(
    clippy::print_stderr,
    reason = "startup and summary lines go to stderr in headless mode"
)]
fn run(cli: &Cli) -> anyhow::Result<()> {
    for (name, v) in [
        ("--interval", cli.interval),
        ("--delay", cli.delay),
        ("--replay-speed", cli.replay_speed.unwrap_or(1.0)),
    ] {
        if v.is_nan() || v <= 0.0 {
            anyhow::bail!("{name} must be positive");
        }
    }
    // --packets and --json are stream outputs: they imply headless.
    let dashboard = !cli.headless && !cli.packets && !cli.json;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handler")?;
    }

    let live = cli.read.is_none();
    let mut source: Box<dyn PacketSource + Send> = if let Some(path) = &cli.read {
        Box::new(FileSource::open(path)?)
    } else {
        let live = LiveSource::open(&LiveOptions {
            interfaces: cli.interfaces.clone(),
            ports: cli.port.clone(),
            ring_mb: cli.ring_mb,
            idle_timeout: Duration::from_secs(cli.idle_timeout),
        })?;
        let who = privs::drop_privileges(cli.user.as_deref())?;
        tracing::info!(interfaces = ?cli.interfaces, uid = who.uid, gid = who.gid, "capturing; privileges dropped");
        eprintln!(
            "http-top: capturing on {} (filter attached; uid {} gid {}, capabilities {:#x})",
            cli.interfaces.join(", "),
            who.uid,
            who.gid,
            privs::effective_caps().unwrap_or(u64::MAX),
        );
        Box::new(live)
    };

    let flow = FlowConfig {
        idle_timeout_ns: cli.idle_timeout.saturating_mul(1_000_000_000),
        ..FlowConfig::default()
    };
    let stats = Stats::new(GroupKey::standard_set(&cli.group_by), cli.max_groups);
    if dashboard {
        let name = cli
            .read
            .as_ref()
            .map_or_else(|| cli.interfaces.join(", "), |p| p.display().to_string());
        let app = ui::App::new(stats, name, cli.units, cli.export_dir.clone());
        let opts = ui::run::CaptureOptions {
            flow,
            replay_speed: cli.replay_speed,
            loop_file: if cli.loop_file {
                cli.read.clone()
            } else {
                None
            },
            live: cli.read.is_none(),
            tick: Duration::from_secs_f64(cli.delay),
        };
        return ui::run::run(app, source, opts, &stop);
    }
    let mut stats = stats;
    let tables = !cli.packets && !cli.json;
    let interval = Duration::from_secs_f64(cli.interval);
    let mut ticker = Ticker::new(interval);
    let mut next_table = Instant::now() + interval;

    let deadline = cli
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut written: io::Result<()> = Ok(());
    let workers = parallel::workers(cli.threads.map_or_else(default_threads, usize::from));
    if !live && !cli.packets && cli.write.is_none() && workers > 0 {
        // A file with nothing printed per packet: connections spread over worker threads.
        let totals = parallel::read(
            &mut *source,
            flow,
            workers,
            ticker,
            &stop,
            &mut stats,
            |e| {
                if cli.json && written.is_ok() {
                    written = export::write_json_line(&mut out, e);
                }
            },
        )?;
        return report(cli, source, &stats, out, written, &totals);
    }
    let mut pipeline = Pipeline::new(flow);
    let ifaces = source.interfaces().to_vec();
    let mut pcap_out: Option<export::PcapOut> = None;
    let mut drain_deadline: Option<Instant> = None;
    loop {
        // On Ctrl-C or --duration, finish what the kernel already queued (the ring can hold the
        // last few milliseconds of traffic), then stop at the first quiet moment.
        let stopping =
            stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d);
        if stopping {
            let until = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN);
            if Instant::now() >= until {
                break;
            }
        }
        // While draining, wait just longer than the ring takes to hand over a partly filled block.
        let wait = if stopping { DRAIN_WAIT } else { POLL };
        let mut closing = None;
        match source.next_packet(wait)? {
            Next::Packet(p) => {
                if cli.packets {
                    written = headless::packet_line(&mut out, &p, &ifaces);
                }
                if let Some(path) = &cli.write {
                    if pcap_out.is_none() {
                        pcap_out = Some(export::PcapOut::create(path, p.link)?);
                    }
                    if let Some(w) = &mut pcap_out {
                        w.write(&p)?;
                    }
                }
                closing = pipeline.packet(&p);
            }
            // Quiet moment: show what we have.
            Next::Idle if stopping => break,
            Next::Idle => written = out.flush(),
            Next::End => break,
        }
        if let Some(seg) = closing {
            source.observe(&seg);
        }
        // Rates tick on capture time, so a file shows the rates it had when it was captured.
        let now = pipeline.now_ns();
        if ticker.due(now) {
            stats.tick(now);
        }
        for e in pipeline.drain() {
            stats.add(&e);
            if cli.json && written.is_ok() {
                written = export::write_json_line(&mut out, &e);
            }
        }
        if live && tables && Instant::now() >= next_table {
            next_table += interval;
            written = writeln!(out, "{}", headless::table(&stats, 0)).and_then(|()| out.flush());
        }
        if written.is_err() {
            break;
        }
    }
    if let Some(w) = pcap_out {
        w.finish()?;
    }
    pipeline.finish(|e| {
        stats.add(&e);
        if cli.json && written.is_ok() {
            written = export::write_json_line(&mut out, &e);
        }
    });
    report(cli, source, &stats, out, written, &pipeline.totals())
}

/// Threads for reading a file when `--threads` is not given: one per core, at most four (the
/// reader and the aggregation on one, reassembly and HTTP on the others).
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// The end of a headless run: the final table, the CSV, the summary line on stderr.
#[expect(clippy::print_stderr, reason = "the summary line goes to stderr")]
fn report(
    cli: &Cli,
    mut source: Box<dyn PacketSource + Send>,
    stats: &Stats,
    mut out: impl Write,
    mut written: io::Result<()>,
    totals: &Totals,
) -> anyhow::Result<()> {
    let live = cli.read.is_none();
    let tables = !cli.packets && !cli.json;
    if let Some(p) = source.problem() {
        tracing::warn!("capture file ends with an unreadable record ({p}); stopping there");
    }
    if tables && written.is_ok() {
        written = out.write_all(headless::table(stats, 0).as_bytes());
    }
    if written.is_ok() {
        written = out.flush();
    }
    let mut result = match written {
        // A closed pipe (`| head`) is a normal way to stop reading.
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    };
    if let Some(path) = &cli.csv {
        let r = std::fs::File::create(path)
            .map_err(anyhow::Error::from)
            .and_then(|f| {
                export::write_csv(io::BufWriter::new(f), &stats.rows(0))
                    .map_err(anyhow::Error::from)
            })
            .with_context(|| format!("writing {}", path.display()));
        if result.is_ok() {
            result = r;
        }
    }
    let overflowed = stats.overflowed(0);
    eprintln!(
        "{} groups_overflowed={overflowed}",
        summary(&mut *source, totals, live)
    );
    let _ = io::stderr().flush();
    result
}

/// Logs go to `--log-file` when given; otherwise headless runs log warnings to stderr and the
/// dashboard logs nothing (it owns the terminal).
fn init_logging(cli: &Cli) -> anyhow::Result<()> {
    use tracing_subscriber::fmt;
    if let Some(path) = &cli.log_file {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the log file {}", path.display()))?;
        fmt()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .init();
    } else if cli.headless || cli.packets || cli.json {
        fmt()
            .with_writer(io::stderr)
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .without_time()
            .init();
    }
    Ok(())
}

/// One line of global counters, `key=value` separated by spaces.
fn summary(source: &mut dyn PacketSource, t: &Totals, live: bool) -> String {
    let cs = source.stats();
    let (pc, fs, hs) = (t.counters, t.flows, t.http);
    let mut s = format!(
        "http-top: packets={} bytes={} tcp_segments={} payload_bytes={} not_tcp={} decode_errors={} \
         connections={} open={} evicted={} retransmissions={} out_of_order={} gaps={} gap_bytes={} ooo_overflows={} \
         requests={} responses={} interim={} unmatched_responses={} parse_errors={} truncated={} resyncs={} \
         http2={} tunnels={} lost_responses={}",
        pc.packets,
        pc.bytes,
        pc.tcp_segments,
        pc.payload_bytes,
        pc.not_tcp,
        pc.decode_errors,
        fs.connections,
        fs.open,
        fs.evicted,
        fs.retransmissions,
        fs.out_of_order,
        fs.gaps,
        fs.gap_bytes,
        fs.ooo_overflows,
        hs.requests,
        hs.responses,
        hs.interim_responses,
        hs.unmatched_responses,
        hs.parse_errors,
        hs.truncated,
        hs.resyncs,
        hs.http2_connections,
        hs.tunnels,
        hs.lost_responses,
    );
    if live {
        s += &format!(
            " ring_drops={} filter_seen={} filter_kept={} filter_insert_failed={} tracked_conns={}",
            cs.ring_drops,
            cs.filter_seen,
            cs.filter_kept,
            cs.filter_insert_failed,
            cs.tracked_conns,
        );
    } else {
        s += &format!(
            " bad_records={} unsupported_link={}",
            cs.bad_records, cs.unsupported_link
        );
    }
    s
}
