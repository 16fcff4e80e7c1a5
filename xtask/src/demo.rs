//! `cargo xtask demo-capture` re-records the bundled demo (a shell script: namespaces, nginx, curl
//! and tcpdump are shell tools); `cargo xtask screenshot` draws the dashboard on it.

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

/// Draws two pictures with the release binary in tmux panes, each turned (with its colours) into
/// SVG: `assets/dashboard.svg` (the demo grouped by path:1, the second row selected, 118x30) and
/// `assets/latency.svg` (the bimodal capture grouped by route with its alerts, the latency panel
/// of the first route, 118x34).
pub fn screenshot(root: &Path) -> anyhow::Result<()> {
    setup::run(false)?;
    sh(crate::cargo().args(["build", "--release", "-p", "http-top"]))?;
    let bin = root.join("target/release/http-top");
    shot(
        root,
        &format!(
            "{} -r {} -g path:1",
            bin.display(),
            root.join("assets/demo.pcap").display()
        ),
        (118, 30),
        "756 reqs",
        &["j"],
        "dashboard.svg",
    )?;
    shot(
        root,
        &format!(
            "{} -r {} -g route --alert 'p99>150ms' --alert-window 3 --slow 300",
            bin.display(),
            root.join("assets/bimodal.pcap").display()
        ),
        (118, 34),
        "787 reqs",
        &["l"],
        "latency.svg",
    )
}

/// Runs `cmd` in a `size` tmux pane until `ready` shows, presses `keys`, and writes the pane as
/// `assets/NAME`.
fn shot(
    root: &Path,
    cmd: &str,
    size: (u16, u16),
    ready: &str,
    keys: &[&str],
    name: &str,
) -> anyhow::Result<()> {
    let session = format!("http-top-shot-{}", std::process::id());
    let cmd = format!("{cmd}; sleep 30");
    sh(Command::new("tmux").args([
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        &size.0.to_string(),
        "-y",
        &size.1.to_string(),
        &cmd,
    ]))?;
    let capture = || -> anyhow::Result<String> {
        let out = Command::new("tmux")
            .args(["capture-pane", "-e", "-p", "-t", &session])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let start = std::time::Instant::now();
    while !capture()?.contains(ready) {
        if start.elapsed() > std::time::Duration::from_secs(20) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &session])
                .status();
            bail!("the dashboard did not show {ready:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for k in keys {
        sh(Command::new("tmux").args(["send-keys", "-t", &session, k]))?;
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pane = capture()?;
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    let mut child = Command::new("python3")
        .arg(root.join("xtask/scripts/pane-to-svg.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(root.join("assets").join(name))?)
        .spawn()?;
    std::io::Write::write_all(child.stdin.as_mut().expect("piped"), pane.as_bytes())?;
    drop(child.stdin.take());
    if !child.wait()?.success() {
        bail!("pane-to-svg failed");
    }
    eprintln!("xtask: wrote assets/{name}");
    Ok(())
}
