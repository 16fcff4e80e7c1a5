//! Recorded captures: `cargo xtask demo-capture` re-records the bundled demo, `cargo xtask bench`
//! records a large capture (outside git) and benchmarks the pipeline on it. The recordings
//! themselves are shell scripts (namespaces, nginx, curl, ab, tcpdump are shell tools); this checks
//! the preconditions, runs them, and reports.

use std::{path::Path, process::Command};

use anyhow::bail;

use crate::{is_root, setup, sh};

pub fn run(root: &Path) -> anyhow::Result<()> {
    if !is_root() {
        bail!(
            "recording the demo needs root (network namespaces, tcpdump): sudo -E cargo xtask demo-capture"
        );
    }
    setup::run(true)?;
    let out = root.join("assets/demo.pcap");
    sh(Command::new("timeout")
        .arg("300")
        .arg(root.join("xtask/scripts/demo-capture.sh"))
        .arg(&out))
}

/// Records `target/bench/large.pcap` if it is missing (root), runs the criterion benchmarks on it,
/// then times the release binary end to end (`-r FILE --headless`) and prints the figures.
pub fn bench(root: &Path) -> anyhow::Result<()> {
    setup::run(false)?;
    let large = root.join("target/bench/large.pcap");
    if !large.exists() {
        if is_root() {
            setup::apt_packages(setup::TEST_PACKAGES)?;
            setup::apt_packages(setup::BENCH_PACKAGES)?;
            std::fs::create_dir_all(large.parent().expect("has a parent"))?;
            let tmp = large.with_extension("pcap.part");
            sh(Command::new("timeout")
                .arg("600")
                .arg(root.join("xtask/scripts/bench-capture.sh"))
                .arg(&tmp))?;
            std::fs::rename(&tmp, &large)?;
        } else {
            eprintln!(
                "xtask: not root, so no large capture can be recorded; benchmarking the demo"
            );
        }
    }
    let capture = if large.exists() {
        large
    } else {
        root.join("assets/demo.pcap")
    };
    sh(crate::cargo()
        .env("HTTP_TOP_BENCH_PCAP", &capture)
        .args(["bench", "-p", "http-top", "--bench", "pipeline"]))?;

    // End to end, as a user runs it.
    sh(crate::cargo().args(["build", "--release", "-p", "http-top"]))?;
    let size = std::fs::metadata(&capture)?.len();
    let start = std::time::Instant::now();
    let out = Command::new(root.join("target/release/http-top"))
        .arg("-r")
        .arg(&capture)
        .arg("--headless")
        .output()?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("http-top failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let summary = err.lines().last().unwrap_or_default();
    let field = |k: &str| -> f64 {
        summary
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let packets = field("packets");
    println!("\nend to end: http-top -r {} --headless", capture.display());
    println!(
        "  file        {:.1} MB, {packets:.0} packets, {:.0} requests",
        size as f64 / 1e6,
        field("requests")
    );
    println!("  wall time   {secs:.3} s");
    println!(
        "  throughput  {:.2} Mpackets/s, {:.0} MB/s of capture",
        packets / secs / 1e6,
        size as f64 / secs / 1e6
    );
    Ok(())
}
