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

    // End to end, as a user runs it, against the tools people would otherwise use on the same
    // file: wall time and peak memory of each, in one run.
    sh(crate::cargo().args(["build", "--release", "-p", "http-top"]))?;
    if is_root() {
        setup::apt_packages(setup::BENCH_PACKAGES)?;
    }
    let size = std::fs::metadata(&capture)?.len() as f64;
    let file = capture.display().to_string();
    let bin = root.join("target/release/http-top").display().to_string();
    let runs: [(&str, Vec<String>); 4] = [
        (
            "http-top -r FILE --headless",
            vec![bin, "-r".into(), file.clone(), "--headless".into()],
        ),
        (
            "tshark -r FILE -q -z http,tree",
            vec![
                "tshark".into(),
                "-r".into(),
                file.clone(),
                "-q".into(),
                "-z".into(),
                "http,tree".into(),
            ],
        ),
        (
            "httpry -r FILE",
            vec!["httpry".into(), "-r".into(), file.clone()],
        ),
        ("cat FILE > /dev/null", vec!["cat".into(), file.clone()]),
    ];
    let mut results: Vec<(&str, Option<(f64, f64)>)> = Vec::new();
    for (name, argv) in &runs {
        results.push((name, timed(argv)));
    }
    println!(
        "\nend to end on {} ({:.1} MB):",
        capture.display(),
        size / 1e6
    );
    println!(
        "  {:<34} {:>9} {:>10} {:>10} {:>12}",
        "command", "wall s", "MB/s", "peak MiB", "vs http-top"
    );
    let ours = results[0].1.map_or(f64::NAN, |(w, _)| w);
    for (name, r) in &results {
        match r {
            Some((wall, rss)) => println!(
                "  {name:<34} {wall:>9.3} {:>10.0} {:>10.1} {:>11.2}x",
                size / wall / 1e6,
                rss / 1024.0,
                wall / ours
            ),
            None => println!("  {name:<34} (not available)"),
        }
    }
    Ok(())
}

/// Runs `argv` under GNU time with output discarded; returns (wall seconds, peak RSS KiB).
fn timed(argv: &[String]) -> Option<(f64, f64)> {
    let report = std::env::temp_dir().join(format!("xtask-time-{}", std::process::id()));
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%e %M", "-o"])
        .arg(&report)
        .args(argv)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    let text = std::fs::read_to_string(&report).ok()?;
    let mut f = text.split_whitespace();
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// Runs the release binary on the demo in a 118x30 tmux pane grouped by path:1, selects the second
/// row, and turns the pane (with its colours) into `assets/dashboard.svg`.
pub fn screenshot(root: &Path) -> anyhow::Result<()> {
    setup::run(false)?;
    sh(crate::cargo().args(["build", "--release", "-p", "http-top"]))?;
    let bin = root.join("target/release/http-top");
    let demo = root.join("assets/demo.pcap");
    let session = format!("http-top-shot-{}", std::process::id());
    let cmd = format!(
        "{} -r {} -g path:1; sleep 30",
        bin.display(),
        demo.display()
    );
    sh(Command::new("tmux").args([
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "118",
        "-y",
        "30",
        &cmd,
    ]))?;
    let capture = || -> anyhow::Result<String> {
        let out = Command::new("tmux")
            .args(["capture-pane", "-e", "-p", "-t", &session])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let start = std::time::Instant::now();
    while !capture()?.contains("756 reqs") {
        if start.elapsed() > std::time::Duration::from_secs(20) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &session])
                .status();
            bail!("the dashboard did not show the demo's requests");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    sh(Command::new("tmux").args(["send-keys", "-t", &session, "j"]))?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pane = capture()?;
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    let mut child = Command::new("python3")
        .arg(root.join("xtask/scripts/pane-to-svg.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(root.join("assets/dashboard.svg"))?)
        .spawn()?;
    std::io::Write::write_all(child.stdin.as_mut().expect("piped"), pane.as_bytes())?;
    drop(child.stdin.take());
    if !child.wait()?.success() {
        bail!("pane-to-svg failed");
    }
    eprintln!("xtask: wrote assets/dashboard.svg");
    Ok(())
}

/// `cargo xtask bench --live`: nginx and wrk in network namespaces, http-top on the client's veth,
/// at wrk's maximum rate and at a lower one; prints counts (nginx vs http-top), drops, CPU, RSS.
pub fn live_load(root: &Path) -> anyhow::Result<()> {
    if !is_root() {
        bail!(
            "the live load test needs root (network namespaces, eBPF): sudo -E cargo xtask bench --live"
        );
    }
    setup::run(true)?;
    setup::apt_packages(&[("wrk", "/usr/bin/wrk")])?;
    sh(crate::cargo().args(["build", "--release", "-p", "http-top"]))?;
    sh(Command::new("timeout")
        .arg("300")
        .arg(root.join("xtask/scripts/live-load.sh"))
        .arg(root.join("target/release/http-top"))
        .arg("10"))
}
