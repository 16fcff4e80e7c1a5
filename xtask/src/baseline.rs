//! `cargo xtask bench --baseline REV`: the release binary of another commit against this one, on
//! the same captures in the same run, timed in turn (A B A B ...) so that the machine's drift
//! falls on both; the ratio of each pair, and their median, is what a "no slower" claim rests on.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, bail};

use crate::{bench::Bench, setup, sh};

/// Pairs timed per command line.
const PAIRS: usize = 7;

/// Builds `rev` in a worktree of its own (target/bench/baseline-REV, with its own target dir) and
/// returns its release binary.
fn build(root: &Path, rev: &str) -> anyhow::Result<PathBuf> {
    let out = Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "--short", rev])
        .output()
        .context("git rev-parse")?;
    if !out.status.success() {
        bail!("unknown revision {rev}");
    }
    let short = String::from_utf8(out.stdout)?.trim().to_owned();
    let tree = root.join("target/bench").join(format!("baseline-{short}"));
    if !tree.exists() {
        sh(Command::new("git")
            .args(["worktree", "add", "--detach"])
            .arg(&tree)
            .arg(&short))?;
    }
    // `sh` runs in this workspace: name the worktree's manifest and target dir outright, or the
    // baseline would be built over this build's binary.
    let target = tree.join("target");
    sh(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "-p", "http-top", "--manifest-path"])
            .arg(tree.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target),
    )?;
    Ok(target.join("release/http-top"))
}

/// Wall seconds of one run, stdout and stderr discarded.
fn wall(bin: &Path, args: &[&str]) -> anyhow::Result<f64> {
    let start = Instant::now();
    let status = Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("starting {}", bin.display()))?;
    if !status.success() {
        bail!("{} {} failed: {status}", bin.display(), args.join(" "));
    }
    Ok(start.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times this build against `rev`'s on each capture, headless with the default threads and with
/// one thread. Returns the largest median ratio (this build / baseline).
pub fn compare(root: &Path, rev: &str, captures: &[PathBuf]) -> anyhow::Result<f64> {
    let base = build(root, rev)?;
    let ours = root.join("target/release/http-top");
    println!("\nthis build against {rev} (same run, alternating, {PAIRS} pairs; wall seconds):");
    println!(
        "  {:<44} {:>9} {:>9} {:>7} {:>13}",
        "command", "baseline", "this", "ratio", "ratio min-max"
    );
    let mut worst: f64 = 0.0;
    for capture in captures {
        let file = capture.display().to_string();
        for extra in [&[][..], &["--threads", "1"][..]] {
            let mut args = vec!["-r", file.as_str(), "--headless"];
            args.extend_from_slice(extra);
            // One warm-up each: the page cache and the binaries.
            wall(&base, &args)?;
            wall(&ours, &args)?;
            let (mut a, mut b, mut r) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..PAIRS {
                let x = wall(&base, &args)?;
                let y = wall(&ours, &args)?;
                r.push(y / x);
                a.push(x);
                b.push(y);
            }
            let (lo, hi) = (
                r.iter().copied().fold(f64::INFINITY, f64::min),
                r.iter().copied().fold(0.0, f64::max),
            );
            let ratio = median(r);
            worst = worst.max(ratio);
            let name = format!(
                "{} {}",
                capture.file_name().unwrap_or_default().to_string_lossy(),
                extra.join(" ")
            );
            println!(
                "  {name:<44} {:>9.3} {:>9.3} {ratio:>7.3} {lo:>6.3}-{hi:<6.3}",
                median(a),
                median(b)
            );
        }
    }
    Ok(worst)
}

/// `cargo xtask bench --baseline REV`: the captures of the bench (recorded if missing), this
/// build against REV's.
pub fn against(root: &Path, rev: &str) -> anyhow::Result<()> {
    setup::run(false)?;
    if crate::is_root() {
        setup::apt_packages(setup::TEST_PACKAGES)?;
        setup::apt_packages(setup::BENCH_PACKAGES)?;
    }
    let b = Bench::new(root)?;
    let mut captures: Vec<PathBuf> = [
        b.recorded("bench-1m.pcap", "all")?,
        b.recorded("bodies.pcap", "bodies")?,
    ]
    .into_iter()
    .flatten()
    .collect();
    if captures.is_empty() {
        captures.push(root.join("assets/demo.pcap"));
    }
    captures.push(b.generated(
        "conns-100000.pcap",
        "conns-capture.py",
        &["100000", "300000"],
    )?);
    sh(crate::cargo().args(["build", "--release", "-p", "http-top"]))?;
    let worst = compare(root, rev, &captures)?;
    let verdict = if worst <= 1.05 { "met" } else { "MISSED" };
    println!(
        "
targets:
  no slower than {rev} (largest median ratio <= 1.05) {worst:>14.3}  {verdict}"
    );
    Ok(())
}
