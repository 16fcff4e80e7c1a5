//! `cargo xtask demo-capture`: re-records the bundled demo capture from real traffic. The recording
//! itself is a shell script (namespaces, nginx, curl, tcpdump are shell tools); this only checks the
//! preconditions and puts the result in place.

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
