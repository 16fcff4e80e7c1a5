//! http-top: live HTTP traffic dashboard for Linux.
//!
//! Data flows one way: capture (live socket | pcap file) -> decode -> ... -> output. See
//! `capture/` for where packets come from and `bpf.rs` for the kernel filter.

mod bpf;
mod capture;
mod cli;
mod decode;
mod flow;
mod headless;
mod http;
mod pipeline;
mod text;

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

use crate::{
    capture::{
        Next, PacketSource,
        file::FileSource,
        live::{LiveOptions, LiveSource},
        privs,
    },
    cli::Cli,
    headless::PacketPrinter,
};

/// How long a live source may wait for a packet before the loop checks its stop conditions.
const POLL: Duration = Duration::from_millis(100);

#[expect(clippy::print_stderr, reason = "main reports errors on stderr")]
fn main() -> ExitCode {
    let cli = Cli::parse();
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
    if !cli.headless {
        eprintln!("http-top: the dashboard is not built yet; printing packets as with --headless");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handler")?;
    }

    let mut source: Box<dyn PacketSource> = if let Some(path) = &cli.read {
        Box::new(FileSource::open(path)?)
    } else {
        let live = LiveSource::open(&LiveOptions {
            interfaces: cli.interfaces.clone(),
            ports: cli.port.clone(),
            ring_mb: cli.ring_mb,
            idle_timeout: Duration::from_secs(cli.idle_timeout),
        })?;
        let who = privs::drop_privileges(cli.user.as_deref())?;
        eprintln!(
            "http-top: capturing on {} (filter attached; uid {} gid {}, capabilities {:#x})",
            cli.interfaces.join(", "),
            who.uid,
            who.gid,
            privs::effective_caps().unwrap_or(u64::MAX),
        );
        Box::new(live)
    };

    let deadline = cli
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let stdout = io::stdout().lock();
    let mut printer = PacketPrinter::new(io::BufWriter::with_capacity(1 << 16, stdout));
    let ifaces = source.interfaces().to_vec();
    let mut result = Ok(());
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let written = match source.next_packet(POLL)? {
            Next::Packet(p) => printer.packet(&p, &ifaces),
            // Quiet moment: show what we have.
            Next::Idle => printer.flush(),
            Next::End => break,
        };
        if let Err(e) = written {
            // A closed pipe (`| head`) is a normal way to stop reading.
            if e.kind() != io::ErrorKind::BrokenPipe {
                result = Err(e).context("writing to stdout");
            }
            break;
        }
    }
    let _ = printer.flush();

    let cs = source.stats();
    let ps = printer.stats;
    let mut summary = format!(
        "http-top: packets={} tcp_segments={} payload_bytes={} not_tcp={} decode_errors={}",
        cs.packets, ps.tcp_segments, ps.payload_bytes, ps.not_tcp, ps.decode_errors,
    );
    if cli.read.is_some() {
        summary += &format!(" bad_records={}", cs.bad_records);
    } else {
        summary += &format!(
            " ring_drops={} filter_seen={} filter_kept={} filter_insert_failed={} tracked_conns={}",
            cs.ring_drops,
            cs.filter_seen,
            cs.filter_kept,
            cs.filter_insert_failed,
            cs.tracked_conns,
        );
    }
    eprintln!("{summary}");
    let _ = io::stderr().flush();
    result
}
