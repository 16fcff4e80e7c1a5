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
