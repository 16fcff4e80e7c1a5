//! The `http-top` binary: parse the command line, open the source, pick the outputs, run the
//! session. The pipeline lives in the library
//! (`lib.rs`), so benchmarks and tests use the same code.

use std::{
    io,
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::Context;
use clap::Parser;

use http_top::{
    capture::{
        PacketSource,
        file::FileSource,
        live::{LiveOptions, LiveSource},
        privs,
    },
    cli::Cli,
    flow::FlowConfig,
    output::{Sink, json::JsonLines, packets::PacketLines, pcap::PcapFile, table::Tables},
    session::{self, Output, Outputs, parallel},
    stats::{GroupKey, Stats},
    text, ui,
};

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

#[expect(clippy::print_stderr, reason = "the capture's start is told on stderr")]
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
    let source: Box<dyn PacketSource + Send> = if let Some(path) = &cli.read {
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

    let opts = session::Options {
        flow: FlowConfig {
            idle_timeout_ns: cli.idle_timeout.saturating_mul(1_000_000_000),
            ..FlowConfig::default()
        },
        tick: Duration::from_secs_f64(if dashboard { cli.delay } else { cli.interval }),
        workers: parallel::workers(cli.threads.map_or_else(default_threads, usize::from)),
        duration: cli.duration.map(|s| Duration::from_secs_f64(s.max(0.0))),
        // Replaying and looping are for watching a file in the dashboard.
        replay_speed: cli.replay_speed.filter(|_| dashboard),
        loop_file: cli.read.clone().filter(|_| dashboard && cli.loop_file),
        live,
    };
    let stats = Stats::new(GroupKey::standard_set(&cli.group_by), cli.max_groups);
    if dashboard {
        let name = cli
            .read
            .as_ref()
            .map_or_else(|| cli.interfaces.join(", "), |p| p.display().to_string());
        let app = ui::App::new(stats, name, cli.units, cli.export_dir.clone());
        return ui::run::run(app, source, opts, &stop);
    }
    let tables = !cli.packets && !cli.json;
    let every = live.then(|| Duration::from_secs_f64(cli.interval));
    let mut outputs: Vec<Box<dyn Output + Send>> = vec![Box::new(Tables::new(
        stats,
        io::stdout(),
        tables,
        every,
        cli.csv.clone(),
    ))];
    if cli.json {
        outputs.push(Box::new(JsonLines(Sink::new(io::stdout()))));
    }
    if cli.packets {
        let ifaces = source.interfaces().to_vec();
        outputs.push(Box::new(PacketLines {
            sink: Sink::new(io::stdout()),
            ifaces,
        }));
    }
    if let Some(path) = &cli.write {
        outputs.push(Box::new(PcapFile {
            path: path.clone(),
            out: None,
        }));
    }
    session::run(source, &opts, &stop, &mut Outputs(outputs))?;
    Ok(())
}

/// Threads for reading a file when `--threads` is not given: one per core, at most four (the
/// reader and the aggregation on one, reassembly and HTTP on the others).
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
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
