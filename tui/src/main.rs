//! The `http-top` binary: parse the command line, open the source, run the session into the
//! dashboard or the headless outputs ([`Cli`] says which). Everything else is the library, so
//! benchmarks and tests use the same code.

use std::{
    io,
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::Context;

use http_top::{
    capture::{
        PacketSource,
        file::FileSource,
        live::{LiveOptions, LiveSource},
        privs,
    },
    cli::{Cli, Invocation},
    names::{self, helper::Helper},
    output::metrics::{Exporter, Publisher, serve::Server},
    session,
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
    // The names helper is this binary re-executed by itself (names::helper), before any parsing.
    if std::env::args_os().nth(1).as_deref() == Some(names::helper::HELPER_ARG.as_ref()) {
        return match names::helper::main() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    let cli = match Invocation::from_args() {
        Invocation::Run(cli) => cli,
        Invocation::Generate(what) => {
            return match what.write(&mut io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("http-top: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
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
        ("--alert-window", cli.alert_window),
        ("--replay-speed", cli.replay_speed.unwrap_or(1.0)),
    ] {
        if v.is_nan() || v <= 0.0 {
            anyhow::bail!("{name} must be positive");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handler")?;
    }

    // The endpoint binds before capture starts (and before privileges are dropped), so a taken
    // port is an error now, not after the filter is attached; it serves once they are dropped.
    let metrics = match cli.metrics_config(&cli.interfaces)? {
        Some(config) => Some((Server::bind(config.addr)?, config)),
        None => None,
    };

    let mut names: Option<Box<dyn names::Source>> = None;
    let source: Box<dyn PacketSource + Send> = if let Some(path) = &cli.read {
        if cli.resolve_names {
            names = Some(Box::new(names::InProcess { root: "/".into() }));
        }
        Box::new(FileSource::open(path)?)
    } else {
        // Started while still root (the helper keeps the few capabilities its scan needs), and
        // before the filter is loaded, so that its first scan runs meanwhile.
        if !cli.no_names {
            match Helper::spawn() {
                Ok(h) => {
                    tracing::info!(pid = h.pid(), "names helper started");
                    names = Some(Box::new(h));
                }
                Err(e) => tracing::warn!("process and container names are off: {e:#}"),
            }
        }
        let live = LiveSource::open(&LiveOptions {
            interfaces: cli.interfaces.clone(),
            ports: cli.port.clone(),
            ring_mb: cli.ring_mb,
            idle_timeout: Duration::from_secs(cli.idle_timeout),
            skip_bodies: !cli.no_skip,
            fanout: cli.fanout,
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
    let metrics = match metrics {
        Some((bound, config)) => {
            let (publisher, snapshots) = Publisher::new();
            let server = bound.serve(snapshots)?;
            eprintln!("http-top: metrics at http://{}/metrics", server.addr);
            let exporter = Exporter::new(&config, publisher).map_err(anyhow::Error::msg)?;
            Some((exporter, server))
        }
        None => None,
    };

    let mut opts = cli.session_options()?;
    if let Some(source) = names {
        let service = names::Service::start(source)?;
        // The first exchanges wait for the first scan, so that none is called remote for want of
        // one: a file as long as it takes (it is read faster than any scan), live at most a second
        // (the ring holds what arrives meanwhile, but not for long on a busy link; exchanges
        // before the first scan are `_unresolved`).
        let wait = if cli.read.is_some() { 10 } else { 1 };
        if !service.wait_ready(Duration::from_secs(wait)) {
            tracing::warn!(
                "no process and container names yet: the first scan failed or takes long"
            );
        }
        opts.names = Some(service);
    }
    let (rules, window_ticks) = cli.alert_rules()?;
    // The dashboard switches between every key at once; a headless run prints (and writes to
    // CSV) the one it was asked for, and aggregating a dozen keys it never shows was a fifth of
    // the reading thread's time on a capture of small requests.
    let keys = if cli.dashboard() {
        GroupKey::standard_set(&cli.group_by, opts.names.is_some())
    } else {
        vec![cli.group_by.clone()]
    };
    let stats = Stats::new(keys, cli.max_groups);
    let (exporter, server) = metrics.unzip();
    let exporter = exporter.map(|e| Box::new(e) as Box<dyn session::Output + Send>);
    if cli.dashboard() {
        let name = cli
            .read
            .as_ref()
            .map_or_else(|| cli.interfaces.join(", "), |p| p.display().to_string());
        let mut app = ui::App::new(stats, name, cli.units, cli.export_dir.clone());
        app.watch_alerts(rules, window_ticks);
        app.slow_us = cli.slow_ns().map(|ns| ns / 1_000);
        ui::run::run(app, source, opts, &stop, exporter.into_iter().collect())?;
    } else {
        let mut outputs = cli.headless_outputs(stats, source.interfaces())?;
        outputs.0.extend(exporter);
        session::run(source, &opts, &stop, &mut outputs)?;
    }
    if let Some(server) = server {
        server.linger(Duration::from_secs_f64(cli.metrics_linger.max(0.0)), &stop);
    }
    Ok(())
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
    } else if !cli.dashboard() {
        fmt()
            .with_writer(io::stderr)
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .without_time()
            .init();
    }
    Ok(())
}
