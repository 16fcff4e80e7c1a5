//! Jobs a developer repeats: `cargo xtask setup | run | test | lint | bench | package | ...`.
//!
//! Not needed for a plain `cargo build` once the toolchain is in place; `setup` is what puts it there.

mod baseline;
mod bench;
mod demo;
mod package;
mod setup;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and testing need and a fresh machine lacks (idempotent)
    Setup {
        /// Also the system packages the end-to-end tests use (apt; needs root)
        #[arg(long)]
        test_deps: bool,
    },
    /// Build release and run http-top; with no arguments, on the bundled demo capture
    Run {
        /// Arguments for http-top
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup, then fmt check, clippy, unit tests and the root-only end-to-end tests
    Test,
    /// rustfmt check and clippy (-D warnings) on the userspace crates, the eBPF crate and the fuzz
    /// targets
    Lint,
    /// Pipeline benchmarks (criterion) on a large capture of real traffic, recorded on first use
    /// (needs root for that; without root, the bundled demo is used)
    Bench {
        /// Instead: live load (nginx and wrk in namespaces, http-top on the veth; root)
        #[arg(long)]
        live: bool,
        /// Instead: this build against the release binary of git revision REV, on the same
        /// captures in turn, as ratios (for "no slower than before")
        #[arg(long, value_name = "REV", conflicts_with = "live")]
        baseline: Option<String>,
    },
    /// Build a Debian package of the release build (binary, man page, completions, systemd unit)
    /// into target/debian/
    Package,
    /// Regenerate assets/dashboard.svg and assets/latency.svg: the dashboard in tmux, drawn as SVG
    Screenshot,
    /// Regenerate assets/demo.pcap from real traffic (nginx and curl in network namespaces; root)
    DemoCapture,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Setup { test_deps } => setup::run(test_deps),
        Cmd::Run { args } => run(&args),
        Cmd::Test => test(),
        Cmd::Lint => {
            setup::run(false)?;
            lint()
        }
        Cmd::DemoCapture => demo::run(&root()),
        Cmd::Bench {
            live: false,
            baseline: None,
        } => bench::run(&root()),
        Cmd::Bench {
            baseline: Some(rev),
            ..
        } => baseline::against(&root(), &rev),
        Cmd::Bench { live: true, .. } => bench::live(&root()),
        Cmd::Screenshot => demo::screenshot(&root()),
        Cmd::Package => package::run(&root()).map(|_| ()),
    }
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent")
        .to_path_buf()
}

/// Effective uid 0? (/proc/self is owned by the effective uid; saves a libc dependency.)
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// Runs a command in the workspace root, failing with its command line if it fails.
fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: {shown}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(args: &[String]) -> anyhow::Result<()> {
    setup::run(false)?;
    sh(cargo().args(["build", "--release", "-p", "http-top"]))?;
    let bin = root().join("target/release/http-top");
    let demo = root().join("assets/demo.pcap");
    let args: Vec<String> = if args.is_empty() {
        // The dashboard on the demo, replayed at its recorded pace and looping, so it looks live.
        vec![
            "-r".into(),
            demo.display().to_string(),
            "--replay-speed".into(),
            "1".into(),
            "--loop".into(),
        ]
    } else {
        args.to_vec()
    };
    let live = args
        .iter()
        .any(|a| a == "-i" || a.starts_with("--interface"));
    let mut cmd = if live && !is_root() {
        let mut c = Command::new("sudo");
        c.arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    cmd.args(&args);
    let status = cmd.status().context("cannot start http-top")?;
    if !status.success() {
        bail!("http-top exited with {status}");
    }
    Ok(())
}

fn lint() -> anyhow::Result<()> {
    sh(cargo().args(["fmt", "--all", "--check"]))?;
    // The default members (everything but the eBPF crate) on the host...
    sh(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    // ...and the eBPF crate for the target it is built for.
    sh(Command::new("rustup").args([
        "run",
        "nightly",
        "cargo",
        "clippy",
        "-p",
        "http-top-ebpf",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The fuzz targets live in their own workspace, outside the one above: check they still build
    // against the library's current API. libfuzzer-sys compiles libFuzzer, which needs g++.
    if !std::path::Path::new("/usr/bin/g++").exists() {
        bail!("checking the fuzz targets needs g++: sudo -E cargo xtask setup --test-deps");
    }
    sh(Command::new("rustup").args([
        "run",
        "nightly",
        "cargo",
        "clippy",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--",
        "-D",
        "warnings",
    ]))
}

fn test() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    setup::run(true)?;
    lint()?;
    // Unit tests and the file-based integration tests of the default members: no root needed.
    sh(cargo().args(["test"]))?;
    // End-to-end tests: the real filter on real sockets in network namespaces. They are #[ignore]d
    // in plain `cargo test` because they need root.
    if !is_root() {
        bail!(
            "the end-to-end tests need root (network namespaces, eBPF): run `sudo -E cargo xtask test`"
        );
    }
    // The package test installs what `cargo xtask package` builds.
    let deb = package::run(&root())?;
    sh(cargo().env("HTTP_TOP_DEB", &deb).args([
        "test",
        "-p",
        "http-top",
        "--tests",
        "--",
        "--ignored",
        "--test-threads=1",
    ]))?;
    eprintln!("xtask: all tests passed in {:.0?}", started.elapsed());
    Ok(())
}
