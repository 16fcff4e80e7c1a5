//! The whole pipeline on real captures, through the binary: `http-top -r FILE --headless -g KEY
//! --csv OUT`, compared with what the capture's README says and, for the bundled demo, with nginx's
//! own access log of the same traffic.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

mod common;

use common::{BIN, NginxLine as LogLine};

/// One CSV row, by column name.
type Row = BTreeMap<String, String>;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("http-top-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Runs http-top on `file` grouped by `key`; returns the CSV rows by group, and stdout.
fn csv(file: &Path, key: &str) -> (BTreeMap<String, Row>, String) {
    let out_csv = tmp(&format!(
        "{}-{}.csv",
        file.file_name().unwrap().to_string_lossy(),
        key.replace(':', "_")
    ));
    let out = Command::new(BIN)
        .arg("-r")
        .arg(file)
        .args(["--headless", "-g", key, "--csv"])
        .arg(&out_csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    // The columns scripts know, unchanged; new ones only appended (`name`: the process or
    // container behind a server or client).
    assert_eq!(
        header.join(","),
        "group,requests,responses,no_response,bytes_in,bytes_out,status_1xx,status_2xx,status_3xx,status_4xx,status_5xx,success_rate,latency_min_ms,latency_avg_ms,latency_max_ms,latency_p50_ms,latency_p90_ms,latency_p99_ms,ttfb_avg_ms,ttfb_p99_ms,gap_affected,name"
    );
    let mut rows = BTreeMap::new();
    for line in lines {
        // No group label in these captures contains a comma or quote.
        let cells: Vec<&str> = line.split(',').collect();
        let row: Row = header
            .iter()
            .zip(&cells)
            .map(|(h, c)| ((*h).to_owned(), (*c).to_owned()))
            .collect();
        rows.insert(cells[0].to_owned(), row);
    }
    (rows, String::from_utf8(out.stdout).unwrap())
}

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/corpus")
        .join(name)
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/demo.pcap")
}

fn n(r: &Row, k: &str) -> u64 {
    r[k].parse().unwrap_or_else(|_| panic!("{k}={:?}", r[k]))
}

/// (requests, responses, no_response, status_2xx) of a group.
fn counts(rows: &BTreeMap<String, Row>, g: &str) -> (u64, u64, u64, u64) {
    let r = rows
        .get(g)
        .unwrap_or_else(|| panic!("no group {g:?} in {:?}", rows.keys()));
    (
        n(r, "requests"),
        n(r, "responses"),
        n(r, "no_response"),
        n(r, "status_2xx"),
    )
}

#[test]
fn corpus_counts_per_group_match_the_readme() {
    // wireshark-http-cap.pcap: 2 GET requests to two hosts, 2 responses, both 200.
    let (rows, _) = csv(&corpus("wireshark-http-cap.pcap"), "host");
    assert_eq!(rows.len(), 2);
    assert_eq!(counts(&rows, "www.ethereal.com"), (1, 1, 0, 1));
    assert_eq!(counts(&rows, "pagead2.googlesyndication.com"), (1, 1, 0, 1));

    // fhs-gzip-keepalive.pcap: 9 GETs on keep-alive connections to one host, 9 gzip responses, 200.
    let (rows, _) = csv(&corpus("fhs-gzip-keepalive.pcap"), "method");
    assert_eq!(rows.len(), 1);
    assert_eq!(counts(&rows, "GET"), (9, 9, 0, 9));
    let (rows, _) = csv(&corpus("fhs-gzip-keepalive.pcap"), "host");
    assert_eq!(rows.len(), 1, "one host: {:?}", rows.keys());

    // zeek-pipelined-requests.pcap: 5 pipelined GETs to www.mozilla.org, 5 responses, all 200.
    let (rows, _) = csv(&corpus("zeek-pipelined-requests.pcap"), "host");
    assert_eq!(counts(&rows, "www.mozilla.org"), (5, 5, 0, 5));
    assert_eq!(rows["www.mozilla.org"]["success_rate"], "100.00");

    // zeek-100-continue.pcap: one POST; an interim 100, then a final 200. The exchange is one,
    // its status the final one.
    let (rows, _) = csv(&corpus("zeek-100-continue.pcap"), "status");
    assert_eq!(rows.len(), 1);
    assert_eq!(counts(&rows, "2xx"), (1, 1, 0, 1));
    assert_eq!(n(&rows["2xx"], "status_1xx"), 0);
}

/// nginx's access log of the demo traffic.
fn nginx_log() -> Vec<LogLine> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/demo-nginx.log");
    common::parse_nginx_log(&std::fs::read_to_string(path).unwrap())
}

/// Compares http-top's groups with the same grouping of nginx's log: requests, responses, bytes
/// in (nginx `$request_length`: request line, fields, body) and out (`$bytes_sent`: status line,
/// fields, body), exactly.
fn compare_with_nginx(key: &str, label: impl Fn(&LogLine) -> String) {
    let (rows, _) = csv(&demo(), key);
    let mut want: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for l in nginx_log() {
        let e = want.entry(label(&l)).or_default();
        e.0 += 1;
        e.1 += l.request_length;
        e.2 += l.bytes_sent;
    }
    let got: BTreeMap<String, (u64, u64, u64)> = rows
        .iter()
        .map(|(g, r)| {
            (
                g.clone(),
                (n(r, "requests"), n(r, "bytes_in"), n(r, "bytes_out")),
            )
        })
        .collect();
    assert_eq!(got, want, "grouped by {key}");
    for (g, r) in &rows {
        assert_eq!(
            n(r, "responses"),
            n(r, "requests"),
            "{g}: every request got a response"
        );
        assert_eq!(n(r, "no_response"), 0, "{g}");
    }
}

#[test]
fn demo_matches_nginx_access_log_by_status_path_and_client() {
    // The demo covers keep-alive, gzip-chunked responses, a python upstream with delays, POST,
    // HEAD, 204, 301, 403, 404, 502 and IPv6; nginx counts the same bytes http-top does.
    compare_with_nginx("status", |l| format!("{}xx", l.status / 100));
    compare_with_nginx("path", |l| l.path.clone());
    compare_with_nginx("client", |l| l.client.clone());
}

#[test]
fn demo_statuses_and_success_rate() {
    let (rows, table) = csv(&demo(), "status");
    let log = nginx_log();
    for class in 2..=5u16 {
        let want = log.iter().filter(|l| l.status / 100 == class).count() as u64;
        assert_eq!(
            n(&rows[&format!("{class}xx")], &format!("status_{class}xx")),
            want
        );
    }
    // Only 502s (status >= 500) count against success.
    let total = table.lines().find(|l| l.starts_with("TOTAL")).unwrap();
    let ok = log.iter().filter(|l| l.status < 500).count() as f64 * 100.0 / log.len() as f64;
    assert!(total.contains(&format!("{ok:.1}")), "{total} vs {ok:.1}");
}

#[test]
fn json_lines_are_one_per_exchange() {
    let out = Command::new(BIN)
        .arg("-r")
        .arg(demo())
        .args(["--headless", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), nginx_log().len());
    let mut bytes_in = 0;
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["ts"].as_f64().unwrap() > 1.7e9, "{l}");
        assert!(v["status"].as_u64().is_some(), "{l}");
        bytes_in += v["request_bytes"].as_u64().unwrap();
    }
    assert_eq!(
        bytes_in,
        nginx_log().iter().map(|l| l.request_length).sum::<u64>()
    );
}
