//! The live rows of `cargo xtask bench`, under wrk's maximum rate across a veth: kernel body
//! skipping on and off with 5 MiB and 100 MiB bodies (xtask/scripts/skip-load.sh), and capture
//! over one ring or a fanout of two (xtask/scripts/fanout-load.sh), held to issue 14's targets,
//! and the kernel filter's own time per packet (xtask/scripts/filter-cost.sh).

use std::{collections::HashMap, path::Path, process::Command};

use anyhow::Context;

use super::Bench;
use crate::{is_root, setup};

/// One `key=value` line of a load script.
pub(super) type Row = HashMap<String, String>;

/// The lines of `out` that start with `tag`, as key=value maps.
pub(super) fn rows(out: &str, tag: &str) -> Vec<Row> {
    out.lines()
        .filter_map(|l| l.strip_prefix(tag))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

/// The row of `rows` labelled `label`.
fn labelled<'a>(rows: &'a [Row], label: &str) -> anyhow::Result<&'a Row> {
    rows.iter()
        .find(|r| r["label"] == label)
        .with_context(|| format!("no {label} row"))
}

pub(super) fn num(r: &Row, k: &str) -> f64 {
    r.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// Runs a load script of xtask/scripts with the release binary; its stdout.
pub(super) fn load(b: &Bench, root: &Path, script: &str, secs: &str) -> anyhow::Result<String> {
    setup::apt_packages(setup::TEST_PACKAGES)?;
    setup::apt_packages(setup::BENCH_PACKAGES)?;
    let out = Command::new("timeout")
        .arg("600")
        .arg(root.join("xtask/scripts").join(script))
        .arg(&b.bin)
        .arg(secs)
        .output()
        .with_context(|| format!("running {script}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        anyhow::bail!(
            "{script} failed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

/// Whether http-top counted a run's responses as nginx logged them. wrk stops mid-body, and a
/// response whose bytes nginx had written into its socket when wrk's connection closed is logged
/// whole though it never crossed the wire (http-top sees it cut, and leaves it out): so nginx may
/// log up to one response per connection (4) more. Every response counted must be exact: all are
/// the same file, so the bytes are the count times nginx's size of one.
fn counted_as_nginx(r: &Row) -> bool {
    let (n, h) = (num(r, "nginx_requests"), num(r, "http_top_requests"));
    let one = num(r, "nginx_bytes") / n;
    (0.0..=4.0).contains(&(n - h)) && num(r, "http_top_bytes") == h * one && r["gaps"] == "0"
}

pub(super) fn skipping(b: &mut Bench, root: &Path) -> anyhow::Result<()> {
    if !is_root() {
        eprintln!("xtask: not root, so the live body-skipping rows are left out");
        return Ok(());
    }
    let text = load(b, root, "skip-load.sh", "8")?;
    let rows = rows(&text, "skip-row ");
    let find = |label: &str, body: &str| {
        rows.iter()
            .find(|r| r["label"] == label && r["body"] == body)
            .with_context(|| format!("no {label} row for {body}"))
    };
    println!(
        "\nbody skipping live (wrk -c 4 at its maximum rate, 8 s a run; xtask/scripts/skip-load.sh):"
    );
    println!(
        "  {:<11} {:<9} {:>7} {:>7} {:>9} {:>7} {:>6} {:>9} {:>7} {:>6} {:>7}",
        "run",
        "body",
        "GB",
        "MB/s",
        "requests",
        "nginx",
        "exact",
        "captured",
        "drops",
        "CPU s",
        "s/GB"
    );
    for r in &rows {
        let gb = num(r, "nginx_bytes") / 1e9;
        println!(
            "  {:<11} {:<9} {:>7.2} {:>7.0} {:>9} {:>7} {:>6} {:>8.1}% {:>7} {:>6.2} {:>7.4}",
            r["label"],
            r["body"],
            gb,
            num(r, "wrk_mb_s"),
            r["http_top_requests"],
            r["nginx_requests"],
            if counted_as_nginx(r) { "yes" } else { "no" },
            100.0 * num(r, "captured") / num(r, "nginx_bytes"),
            r["ring_drops"],
            num(r, "cpu_s"),
            num(r, "cpu_s") / gb
        );
    }
    // Skipping must be exact. Copying everything is exact only where its ring kept up: at this
    // rate it may drop (that is what skipping is for), and an exchange a drop touched is
    // flagged and left out, so it cannot equal nginx's log then.
    let bodies = ["5m.bin", "100m.bin"];
    let exact_on = bodies
        .iter()
        .all(|f| find("skip", f).is_ok_and(counted_as_nginx));
    b.target(
        "skipping on: requests and bytes = nginx's log",
        if exact_on { "equal" } else { "differ" }.into(),
        Some(exact_on),
    );
    let copy: Vec<&Row> = bodies.iter().filter_map(|f| find("copy", f).ok()).collect();
    let kept_up = copy.iter().filter(|r| r["ring_drops"] == "0").count();
    let exact_off = copy.len() == bodies.len()
        && copy
            .iter()
            .all(|r| r["ring_drops"] != "0" || counted_as_nginx(r));
    b.target(
        "--no-skip: = nginx's log where its ring kept up",
        format!("equal in {kept_up} of {} runs without drops", copy.len()),
        Some(exact_off),
    );
    for (body, name) in [("5m.bin", "5 MiB"), ("100m.bin", "100 MiB")] {
        let (s, c) = (find("skip", body)?, find("copy", body)?);
        let seen = num(s, "captured") / num(s, "nginx_bytes");
        b.target(
            &format!("skipping, {name} bodies: userspace sees <= 5% of bytes"),
            format!("{:.1}%", 100.0 * seen),
            Some(seen <= 0.05),
        );
        let per_gb = |r: &Row| num(r, "cpu_s") / num(r, "nginx_bytes");
        let fall = per_gb(c) / per_gb(s);
        b.target(
            &format!("skipping, {name} bodies: CPU per GB falls >= 10x"),
            format!("{fall:.1}x"),
            Some(fall >= 10.0),
        );
        b.target(
            &format!("{name} bodies at max rate, 32 MiB ring: no drops skipping (copying)"),
            format!("{} ({})", s["ring_drops"], c["ring_drops"]),
            Some(num(s, "ring_drops") == 0.0),
        );
    }
    let (s, c) = (find("skip-ring2", "5m.bin")?, find("copy-ring2", "5m.bin")?);
    b.target(
        "2 MiB ring, 5 MiB bodies: exchanges kept, skipping vs --no-skip",
        format!(
            "{:.0}% vs {:.0}%",
            100.0 * num(s, "http_top_requests") / num(s, "nginx_requests"),
            100.0 * num(c, "http_top_requests") / num(c, "nginx_requests")
        ),
        None,
    );
    Ok(())
}

pub(super) fn fanout(b: &mut Bench, root: &Path) -> anyhow::Result<()> {
    if !is_root() {
        eprintln!("xtask: not root, so the live fanout rows are left out");
        return Ok(());
    }
    let text = load(b, root, "fanout-load.sh", "8")?;
    let rows = rows(&text, "fanout-row ");
    let find = |label: &str| labelled(&rows, label);
    println!(
        "\none ring or a fanout of two (wrk -c 16 at its maximum rate on a 600-byte page, 8 s a run; xtask/scripts/fanout-load.sh):"
    );
    println!(
        "  {:<14} {:>10} {:>10} {:>10} {:>8} {:>7} {:>11}",
        "run", "wrk req/s", "nginx", "http-top", "drops", "CPU s", "us/request"
    );
    for r in &rows {
        println!(
            "  {:<14} {:>10.0} {:>10} {:>10} {:>8} {:>7.2} {:>11.2}",
            r["label"],
            num(r, "wrk_rps"),
            r["nginx_requests"],
            r["http_top_requests"],
            r["ring_drops"],
            num(r, "cpu_s"),
            1e6 * num(r, "cpu_s") / num(r, "http_top_requests")
        );
    }
    // Fanout helps if, with a small ring, it keeps requests one ring loses, without costing the
    // load more than it gains.
    let (one, two) = (find("one-ring2")?, find("fanout2-ring2")?);
    let kept = |r: &Row| num(r, "http_top_requests") / num(r, "nginx_requests");
    let helps = kept(two) > kept(one) + 0.01;
    b.target(
        "fanout 2 vs 1 ring, 2 MiB rings at max rate: kept",
        format!("{:.1}% vs {:.1}%", 100.0 * kept(two), 100.0 * kept(one)),
        None,
    );
    b.target(
        "fanout off by default unless it helps here",
        if helps {
            "helps: turn it on"
        } else {
            "no help: off"
        }
        .into(),
        Some(!helps),
    );
    Ok(())
}

/// What reading response heads costs the kernel filter: its run time per packet (the kernel's
/// BPF statistics) with body skipping on and off, on small pages and on 5 MiB bodies.
pub(super) fn filter_cost(b: &mut Bench, root: &Path) -> anyhow::Result<()> {
    if !is_root() {
        eprintln!("xtask: not root, so the kernel filter's cost rows are left out");
        return Ok(());
    }
    let text = load(b, root, "filter-cost.sh", "5")?;
    let rows = rows(&text, "filter-row ");
    let find = |label: &str| labelled(&rows, label);
    println!(
        "\nthe kernel filter's own time (kernel.bpf_stats_enabled; wrk at its maximum rate, 5 s a run; xtask/scripts/filter-cost.sh):"
    );
    println!(
        "  {:<14} {:>10} {:>10} {:>10} {:>13} {:>12}",
        "run", "wrk req/s", "packets", "ns/packet", "stretches set", "heads unread"
    );
    for r in &rows {
        println!(
            "  {:<14} {:>10.0} {:>10} {:>10} {:>13} {:>12}",
            r["label"],
            num(r, "wrk_rps"),
            r["runs"],
            r["ns_per_run"],
            r["head_stretches"],
            r["heads_unread"]
        );
    }
    for (what, on, off) in [
        (
            "600-byte pages, head in a segment of its own",
            "small-skip",
            "small-noskip",
        ),
        (
            "600-byte pages, head and page in one segment",
            "small1-skip",
            "small1-noskip",
        ),
        ("5 MiB bodies", "5m-skip", "5m-noskip"),
    ] {
        let (s, c) = (find(on)?, find(off)?);
        b.target(
            &format!("filter ns/packet, skipping on vs off: {what}"),
            format!("{} vs {}", s["ns_per_run"], c["ns_per_run"]),
            None,
        );
    }
    Ok(())
}
