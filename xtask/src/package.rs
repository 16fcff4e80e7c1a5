//! `cargo xtask package`: a Debian package of the release build, made with `dpkg-deb` (what
//! cargo-deb drives too; one tool fewer to install on a fresh machine).
//!
//! It holds the binary; its man page and bash, zsh and fish completions, printed by the binary
//! itself (`--generate`: clap_mangen and clap_complete, from the same definition as `--help`); the
//! systemd unit and its settings file (`packaging/`); the Grafana board; and the licence. The
//! postinst makes the `http-top` system user the service drops to.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

use crate::{cargo, setup::output, sh};

/// Builds `target/debian/http-top_VERSION_ARCH.deb` and returns its path.
pub fn run(root: &Path) -> anyhow::Result<PathBuf> {
    crate::setup::run(false)?;
    sh(cargo().args(["build", "--release", "-p", "http-top"]))?;
    let bin = root.join("target/release/http-top");
    let version = env!("CARGO_PKG_VERSION");
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
    let arch = arch.trim();

    let stage = root.join("target/debian/stage");
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    let put = |rel: &str, bytes: &[u8], mode: u32| -> anyhow::Result<()> {
        let path = stage.join(rel);
        fs::create_dir_all(path.parent().expect("a file has a parent"))?;
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        Ok(())
    };
    let generate = |what: &str| output(Command::new(&bin).args(["--generate", what]));

    put("usr/bin/http-top", &fs::read(&bin)?, 0o755)?;
    put(
        "usr/share/man/man1/http-top.1.gz",
        &gzip(generate("man")?.as_bytes())?,
        0o644,
    )?;
    put(
        "usr/share/bash-completion/completions/http-top",
        generate("bash")?.as_bytes(),
        0o644,
    )?;
    put(
        "usr/share/zsh/vendor-completions/_http-top",
        generate("zsh")?.as_bytes(),
        0o644,
    )?;
    put(
        "usr/share/fish/vendor_completions.d/http-top.fish",
        generate("fish")?.as_bytes(),
        0o644,
    )?;
    put(
        "lib/systemd/system/http-top.service",
        &fs::read(root.join("packaging/http-top.service"))?,
        0o644,
    )?;
    put(
        "etc/default/http-top",
        &fs::read(root.join("packaging/http-top.default"))?,
        0o644,
    )?;
    put(
        "usr/share/http-top/grafana/http-top.json",
        &fs::read(root.join("assets/grafana/http-top.json"))?,
        0o644,
    )?;
    put(
        "usr/share/doc/http-top/copyright",
        b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
          Upstream-Name: http-top\n\nFiles: *\nCopyright: the http-top authors\n\
          License: MIT or Apache-2.0\n",
        0o644,
    )?;

    let installed_kib = dir_size(&stage)? / 1024;
    let control = format!(
        "Package: http-top\nVersion: {version}\nArchitecture: {arch}\n\
         Maintainer: http-top developers <http-top@localhost>\n\
         Depends: libc6 (>= 2.34), adduser\nSection: net\nPriority: optional\n\
         Installed-Size: {installed_kib}\n\
         Description: live HTTP traffic dashboard and Prometheus exporter\n \
         Captures an interface through an eBPF socket filter, reassembles TCP, pairs HTTP\n \
         requests with responses and shows per-service requests, bytes, status classes and\n \
         latency in a terminal dashboard, as tables, CSV, JSON or Prometheus metrics.\n"
    );
    put("DEBIAN/control", control.as_bytes(), 0o644)?;
    put("DEBIAN/conffiles", b"/etc/default/http-top\n", 0o644)?;
    put(
        "DEBIAN/postinst",
        b"#!/bin/sh\nset -e\n\
          # The user the service gives its privileges up to.\n\
          if [ \"$1\" = configure ] && ! getent passwd http-top >/dev/null; then\n\
          \x20   adduser --system --group --no-create-home --home /nonexistent http-top >/dev/null\n\
          fi\n\
          if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n",
        0o755,
    )?;
    put(
        "DEBIAN/postrm",
        b"#!/bin/sh\nset -e\n\
          if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n\
          if [ \"$1\" = purge ] && getent passwd http-top >/dev/null; then\n\
          \x20   deluser --system http-top >/dev/null 2>&1 || true\n\
          fi\n",
        0o755,
    )?;
    put(
        "DEBIAN/prerm",
        b"#!/bin/sh\nset -e\n\
          if [ -d /run/systemd/system ]; then systemctl stop http-top.service || true; fi\n",
        0o755,
    )?;

    let deb = root.join(format!("target/debian/http-top_{version}_{arch}.deb"));
    sh(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&stage)
        .arg(&deb))?;
    eprintln!("xtask: built {}", deb.display());
    Ok(deb)
}

/// gzip -9n: no name or time stamp in the header, so the package is the same for the same input.
fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-9n"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start gzip")?;
    child.stdin.take().expect("piped stdin").write_all(bytes)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("gzip failed");
    }
    Ok(out.stdout)
}

fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() {
            dir_size(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(total)
}
