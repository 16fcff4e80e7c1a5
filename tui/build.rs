//! Builds the kernel filter (`ebpf/`) for the bpf target and leaves the object in `OUT_DIR`, where
//! `src/bpf.rs` embeds it. Building both halves together means the binary can never carry a kernel
//! program older than the map layout its userspace expects.
//!
//! Needs the nightly toolchain with `rust-src` and `bpf-linker` on PATH: `cargo xtask setup` installs
//! both.

use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    // Without these, any change under tui/ reruns this script and rebuilds the kernel program
    // from scratch (about 15 s of every edit-compile cycle).
    for dir in ["../ebpf", "../common", "build.rs"] {
        println!("cargo:rerun-if-changed={dir}");
    }
    aya_build::build_ebpf(
        [Package {
            name: "http-top-ebpf",
            root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../ebpf"),
            ..Default::default()
        }],
        Toolchain::Nightly,
    )
}
