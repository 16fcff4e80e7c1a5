//! gRPC end to end: a real grpcio server and client (`tests/support/grpc_calls.py`, Debian's
//! python3-grpcio) in two network namespaces: unary, server-, client- and bidirectional-streaming
//! calls; OK, NOT_FOUND, UNAVAILABLE, INTERNAL and a client deadline that expires. http-top
//! captures the client's veth live through the kernel filter (gRPC is HTTP/2 with prior
//! knowledge) and reads tcpdump's recording of it; per method and status code it must count what
//! the client saw.
//!
//! Root only: `#[ignore]`d in a plain `cargo test`, run by `cargo xtask test`.

#![expect(
    clippy::print_stderr,
    reason = "tests explain what they are waiting for"
)]

use std::{
    collections::BTreeMap,
    fs,
    process::{Command, Stdio},
    time::Duration,
};

mod common;

use common::{BIN, Guard, Link, SUPPORT, run, tmpdir, wait_until};

/// Debian's python, which has python3-grpcio (`python3` on PATH may be another).
const PYTHON: &str = "/usr/bin/python3";
const PORT: &str = "50051";

/// Per method, per gRPC status name: calls.
type Calls = BTreeMap<String, BTreeMap<String, u64>>;

fn calls_of(json_lines: &str) -> Calls {
    let mut m = Calls::new();
    for line in json_lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["protocol"], "grpc", "{line}");
        let method = v["target"].as_str().unwrap_or("-").to_owned();
        let code = v["grpc"].as_str().unwrap_or("-").to_owned();
        *m.entry(method).or_default().entry(code).or_default() += 1;
    }
    m
}

/// The grpcio server in the link's server namespace, once it listens.
fn grpc_server(link: &Link, dir: &std::path::Path) -> Guard {
    let ready = dir.join("server.ready");
    let g = Guard(
        link.server
            .exec(PYTHON)
            .arg(format!("{SUPPORT}/grpc_calls.py"))
            .args(["server", &link.v4s, PORT])
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("server.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until("the gRPC server", Duration::from_secs(20), || {
        ready.exists()
    });
    g
}

#[test]
#[ignore = "needs root: network namespaces and the eBPF filter"]
fn grpc_calls_are_counted_by_method_and_status_as_the_client_saw_them() {
    let link = Link::new(250, "fa");
    let dir = tmpdir("grpc");
    let _server = grpc_server(&link, &dir);

    let pcap = dir.join("grpc.pcap");
    let tcpdump = common::tcpdump(&link.client, &link.vc, &format!("tcp port {PORT}"), &pcap);
    let (out, err) = (dir.join("live.json"), dir.join("live.err"));
    let http_top = common::http_top_json(&link.client, &link.vc, &out, &err);

    let report = run(Command::new("timeout").args([
        "90",
        "ip",
        "netns",
        "exec",
        &link.client.0,
        PYTHON,
        &format!("{SUPPORT}/grpc_calls.py"),
        "client",
        &link.v4s,
        PORT,
    ]));
    let client: Calls = serde_json::from_str(report.trim()).unwrap();
    let total: u64 = client.values().flat_map(|m| m.values()).sum();
    eprintln!("the client saw {total} calls: {client:?}");

    wait_until(
        "http-top to report every call",
        Duration::from_secs(30),
        || fs::read_to_string(&out).is_ok_and(|s| s.lines().count() as u64 >= total),
    );
    common::wait_quiet(&pcap);
    assert!(http_top.interrupt("http-top").success());
    let _ = tcpdump.interrupt("tcpdump");
    let live = calls_of(&fs::read_to_string(&out).unwrap());

    // What the client calls DEADLINE_EXCEEDED ended on the wire without a status: its own
    // deadline passed and it reset the stream (RST_STREAM), before the server's answer. The
    // server may also have said so first (status 4 in trailers): either way, one per call.
    let mut want = client.clone();
    let get = want.get_mut("/demo.Echo/Get").unwrap();
    let deadline = get.remove("DEADLINE_EXCEEDED").unwrap_or(0);
    let mut got = live.clone();
    let got_get = got.get_mut("/demo.Echo/Get").unwrap();
    let on_wire =
        got_get.remove("none").unwrap_or(0) + got_get.remove("DEADLINE_EXCEEDED").unwrap_or(0);
    assert_eq!(on_wire, deadline, "calls past their deadline: {live:?}");
    assert_eq!(
        got, want,
        "calls per method and status: http-top live vs the client"
    );

    // The recording read from the file: the same.
    let file = Command::new(BIN)
        .arg("-r")
        .arg(&pcap)
        .arg("--json")
        .output()
        .unwrap();
    assert!(file.status.success());
    // The same, but for which of those two a deadline call shows: the client's RST_STREAM and the
    // server's trailers cross on the wire, and tcpdump's ring and http-top's may each receive the
    // two directions in a different order (two CPUs), so one capture can show `none` where the
    // other shows DEADLINE_EXCEEDED (seen once in a fresh CI run). Their sum, and every other
    // status of every method, must be equal.
    let fold = |mut calls: Calls| {
        let get = calls.get_mut("/demo.Echo/Get").unwrap();
        let past = get.remove("none").unwrap_or(0) + get.remove("DEADLINE_EXCEEDED").unwrap_or(0);
        get.insert("past the deadline".to_owned(), past);
        calls
    };
    assert_eq!(
        fold(calls_of(&String::from_utf8_lossy(&file.stdout))),
        fold(live),
        "file vs live"
    );

    // Grouped headless by grpc status, the success rate counts UNAVAILABLE and INTERNAL as
    // failures, NOT_FOUND not.
    let csv = dir.join("grpc.csv");
    let table = Command::new(BIN)
        .arg("-r")
        .arg(&pcap)
        .args(["--headless", "-g", "grpc", "--csv"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(table.status.success());
    let csv = fs::read_to_string(&csv).unwrap();
    // group,requests,responses,no_response,bytes_in,bytes_out,status_1xx..status_5xx,success_rate
    let succ = |group: &str| -> String {
        let line = csv
            .lines()
            .find(|l| l.starts_with(&format!("{group},")))
            .unwrap_or_else(|| panic!("{group} in\n{csv}"));
        line.split(',').nth(11).unwrap().to_owned()
    };
    assert_eq!(succ("UNAVAILABLE"), "0.00", "{csv}");
    assert_eq!(succ("INTERNAL"), "0.00", "{csv}");
    assert_eq!(succ("NOT_FOUND"), "100.00", "{csv}");
    assert_eq!(succ("OK"), "100.00", "{csv}");
}

/// A gRPC channel opened before http-top started (channels live for hours): the kernel filter
/// keeps the connection from its first plausible frames, userspace follows it from a segment of
/// whole frames, and HPACK decodes what it can, the rest counted as unknown. Every call made
/// after the capture began is counted, with the status the client saw.
#[test]
#[ignore = "needs root: network namespaces and the eBPF filter"]
fn a_grpc_channel_opened_before_the_capture_is_followed() {
    let link = Link::new(252, "fc");
    let dir = tmpdir("grpc-late");
    let _server = grpc_server(&link, &dir);
    let (opened, go, report) = (
        dir.join("client.ready"),
        dir.join("go"),
        dir.join("client.json"),
    );
    let mut client = Guard(
        Command::new("timeout")
            .args(["90", "ip", "netns", "exec", &link.client.0, PYTHON])
            .arg(format!("{SUPPORT}/grpc_calls.py"))
            .args(["client", &link.v4s, PORT])
            .arg(&opened)
            .arg(&go)
            .stdout(fs::File::create(&report).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the channel to open", Duration::from_secs(20), || {
        opened.exists()
    });
    let (out, err) = (dir.join("live.json"), dir.join("live.err"));
    let http_top = common::http_top_json(&link.client, &link.vc, &out, &err);
    fs::write(&go, "go").unwrap();
    wait_until("the client to finish", Duration::from_secs(60), || {
        client.0.try_wait().unwrap().is_some()
    });
    let seen: Calls = serde_json::from_str(fs::read_to_string(&report).unwrap().trim()).unwrap();
    let total: u64 = seen.values().flat_map(|m| m.values()).sum();
    wait_until(
        "http-top to report every call",
        Duration::from_secs(30),
        || fs::read_to_string(&out).is_ok_and(|s| s.lines().count() as u64 >= total),
    );
    assert!(http_top.interrupt("http-top").success());
    let text = fs::read_to_string(&out).unwrap();
    eprintln!("client: {seen:?}");
    for l in text.lines().take(3) {
        eprintln!("{l}");
    }
    let s = common::summary(&fs::read_to_string(&err).unwrap());
    eprintln!(
        "joined {} unknown fields {}",
        s["http2_joined"], s["http2_unknown_fields"]
    );
    assert_eq!(s["http2_joined"], 1);
    // The client's HPACK encoder indexed its fields in the call before the capture (the path,
    // the content-type, the server its grpc-status values): those are unknown now, so the calls
    // are counted, with their HTTP status, bytes and latency, under `_unknown` paths, and most
    // gRPC statuses cannot be known (only where a field was spelled out again after the join).
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len() as u64,
        total,
        "one exchange per call made after the capture began"
    );
    assert!(
        lines
            .iter()
            .all(|v| v["protocol"] == "h2c" || v["protocol"] == "grpc")
    );
    let answered = lines.iter().filter(|v| v["status"] == 200).count() as u64;
    let deadline = seen["/demo.Echo/Get"]
        .get("DEADLINE_EXCEEDED")
        .copied()
        .unwrap_or(0);
    // Every call the server answered has its :status (a static-table entry, known to any
    // decoder); a call past its deadline was reset by the client, or answered by the server with
    // DEADLINE_EXCEEDED first (as above).
    assert!(
        (total - deadline..=total).contains(&answered),
        "{answered} answered of {total}, {deadline} past their deadline:\n{text}"
    );
    assert!(s["http2_unknown_fields"] > 0);
}
