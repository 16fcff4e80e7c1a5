//! `cargo xtask setup`: make a fresh machine able to build and test http-top. Every step checks before
//! it acts, so a second run takes a second or two.
//!
//! - the nightly toolchain with `rust-src` (the eBPF crate builds `core` for the bpf target);
//! - `bpf-linker`, built against the nightly's own shared LLVM (no separate LLVM install needed), and
//!   rebuilt when the nightly changes, since it links that exact library;
//! - with `--test-deps`, the Debian packages the end-to-end tests drive.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context, bail};

use crate::{is_root, sh};

const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages the tests use, with a binary each that proves it is installed.
pub const TEST_PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "/usr/sbin/ip"),
    ("curl", "/usr/bin/curl"),
    ("nginx-light", "/usr/sbin/nginx"),
    ("tcpdump", "/usr/bin/tcpdump"),
    ("iputils-ping", "/usr/bin/ping"),
    ("util-linux", "/usr/bin/setpriv"),
    ("nftables", "/usr/sbin/nft"),
    ("tmux", "/usr/bin/tmux"),
    ("python3", "/usr/bin/python3"),
    // The metrics end-to-end test scrapes http-top with a real Prometheus (and lints with promtool).
    ("prometheus", "/usr/bin/prometheus"),
    // The package test looks the man page up.
    ("man-db", "/usr/bin/man"),
    // HTTP/2: nghttp and h2load drive nginx, nghttpd answers an h2c upgrade, tshark's dissector
    // cross-checks, grpcio (for Debian's python) makes real gRPC calls.
    ("nghttp2-client", "/usr/bin/h2load"),
    ("nghttp2-server", "/usr/sbin/nghttpd"),
    ("tshark", "/usr/bin/tshark"),
    // The h2c upgrade test's server (tests/support/h2c_server.py).
    (
        "python3-h2",
        "/usr/lib/python3/dist-packages/h2/__init__.py",
    ),
    (
        "python3-grpcio",
        "/usr/lib/python3/dist-packages/grpc/__init__.py",
    ),
    // libfuzzer-sys compiles libFuzzer (C++) when the lint checks that the fuzz targets build.
    ("g++", "/usr/bin/g++"),
];

/// Debian packages `cargo xtask bench` uses to record its capture, on top of the test ones.
pub const BENCH_PACKAGES: &[(&str, &str)] = &[
    ("apache2-utils", "/usr/bin/ab"),
    // The tools http-top is measured against (tshark too, a test package), and GNU time for their
    // peak memory.
    ("httpry", "/usr/sbin/httpry"),
    ("time", "/usr/bin/time"),
    // The live body-skipping and fanout rows load nginx at wrk's maximum rate.
    ("wrk", "/usr/bin/wrk"),
];

pub fn run(test_deps: bool) -> anyhow::Result<()> {
    nightly_with_rust_src()?;
    bpf_linker()?;
    if test_deps {
        apt_packages(TEST_PACKAGES)?;
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; fails with its stderr if it fails.
pub(crate) fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn nightly_with_rust_src() -> anyhow::Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        sh(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))?;
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        sh(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo"),
        PathBuf::from,
    )
}

/// bpf-linker links the nightly's `libLLVM.so.*-nightly`. It is (re)built when missing, when it does
/// not run, or when the nightly it was built against is not the current one (a stamp records which).
fn bpf_linker() -> anyhow::Result<()> {
    let vv = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let llvm_version = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("rustc +nightly -vV printed no LLVM version")?
        .trim()
        .to_owned();
    let llvm_major = llvm_version
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?
        .trim()
        .to_owned();

    let prefix = cargo_home().join("bpf-linker-llvm");
    let stamp_path = prefix.join("stamp");
    let stamp = format!("{vv}{BPF_LINKER_VERSION}\n");
    let runs = Command::new("rustup")
        .args(["run", "nightly", "bpf-linker", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if runs && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(());
    }

    // LLVM_PREFIX must look like an LLVM install: lib/libLLVM.so and its versioned names, pointing
    // at the nightly's copy.
    let sys_lib = PathBuf::from(&sysroot).join("lib");
    let libllvm = fs::read_dir(&sys_lib)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so.") && n.ends_with("nightly"))
        .with_context(|| format!("no libLLVM.so.*-nightly in {}", sys_lib.display()))?;
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib)?;
    for name in [
        "libLLVM.so".to_owned(),
        format!("libLLVM.so.{llvm_major}"),
        format!("libLLVM-{llvm_major}.so"),
        libllvm.clone(),
    ] {
        let link = lib.join(&name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(sys_lib.join(&libllvm), &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
    }
    sh(Command::new("cargo").env("LLVM_PREFIX", &prefix).args([
        "install",
        &format!("bpf-linker@{BPF_LINKER_VERSION}"),
        "--locked",
        "--force",
        "--no-default-features",
        "--features",
        &format!("llvm-{llvm_major}"),
    ]))?;
    fs::write(&stamp_path, stamp)?;
    Ok(())
}

/// Installs those of `packages` (name, a file it provides) that are missing.
pub fn apt_packages(packages: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, bin)| !std::path::Path::new(bin).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "the tests need these packages: sudo apt-get install {}",
            missing.join(" ")
        );
    }
    sh(Command::new("apt-get").args(["update", "-qq"]))?;
    sh(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))?;
    Ok(())
}
