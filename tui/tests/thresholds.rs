//! `--slow` and `--alert` on the bimodal capture (`assets/bimodal.pcap`, recorded by
//! `xtask/scripts/bimodal-capture.sh`), against nginx's own access log of the same requests and the
//! python client's own timings.
//!
//! The capture was taken on the client's side of the veth, so http-top's latency (first request
//! byte to last response byte, as the client's kernel saw them) sits between nginx's
//! `$request_time` (server side, ms resolution) and the client's own timer (which adds Python's
//! work). The modes are far apart (3 ms, 80 ms, 180 ms, 400 ms), so each threshold used here falls
//! in a gap and every source must put each request on the same side of it.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_http-top");
const CAPTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/bimodal.pcap");

/// One line of nginx's log: status, request time (s), target, phase, time logged (s).
type Logged = (u16, f64, String, char, f64);

fn nginx() -> Vec<Logged> {
    std::fs::read_to_string(format!("{CAPTURE}.nginx.log"))
        .unwrap()
        .lines()
        .map(|l| {
            let q: Vec<&str> = l.split('"').collect();
            let head: Vec<&str> = q[0].split_whitespace().collect();
            let target = q[1].split_whitespace().nth(1).unwrap().to_owned();
            let phase = q[3].chars().last().unwrap();
            (
                head[0].parse().unwrap(),
                head[1].parse().unwrap(),
                target,
                phase,
                q[4].trim().parse().unwrap(),
            )
        })
        .collect()
}

/// The client's log: (phase, target, status, its own latency ms).
fn client() -> Vec<(char, String, u16, f64)> {
    std::fs::read_to_string(format!("{CAPTURE}.client.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].chars().next().unwrap(),
                f[1].to_owned(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

fn http_top(args: &[&str]) -> Vec<serde_json::Value> {
    http_top_on(CAPTURE, args)
}

/// `http-top -r CAPTURE --headless ARGS`: its stdout, every line parsed as JSON.
fn http_top_on(capture: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(BIN)
        .args(["-r", capture, "--headless"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn slow_prints_exactly_the_exchanges_nginx_and_the_client_timed_above_it() {
    for ms in [30.0, 120.0, 300.0] {
        let lines = http_top(&["--slow", &ms.to_string()]);
        let mut got: Vec<String> = lines
            .iter()
            .map(|j| {
                assert!(j["latency_ms"].as_f64().unwrap() > ms, "{j}");
                // The same object --json writes.
                for f in [
                    "ts", "client", "server", "method", "route", "status", "ttfb_ms",
                ] {
                    assert!(j.get(f).is_some(), "{f} missing: {j}");
                }
                j["target"].as_str().unwrap().to_owned()
            })
            .collect();
        let mut by_nginx: Vec<String> = nginx()
            .into_iter()
            .filter(|n| n.1 * 1000.0 > ms)
            .map(|n| n.2)
            .collect();
        let mut by_client: Vec<String> = client()
            .into_iter()
            .filter(|c| c.3 > ms)
            .map(|c| c.1)
            .collect();
        got.sort();
        by_nginx.sort();
        by_client.sort();
        assert!(!got.is_empty());
        assert_eq!(got, by_nginx, "--slow {ms}: http-top vs nginx");
        assert_eq!(got, by_client, "--slow {ms}: http-top vs the client");
    }
    // 120 ms splits phase C's misses (180 ms) from A and B's (80 ms): the slow tail after the
    // "deploy" is all the lines beyond the reports.
    let c_misses = http_top(&["--slow", "120"])
        .iter()
        .filter(|j| j["route"] == "/api/items/{id}")
        .count();
    let by_nginx = nginx()
        .iter()
        .filter(|n| n.3 == 'C' && n.2.starts_with("/api/items/") && n.1 > 0.12)
        .count();
    assert_eq!(c_misses, by_nginx);
    assert!(c_misses > 50, "{c_misses}");
}

#[test]
fn alerts_start_and_stop_when_nginx_saw_the_phases_change() {
    let lines = http_top(&[
        "-g",
        "route",
        "--alert",
        "p99>150ms",
        "--alert",
        "5xx>1/s",
        "--alert",
        "success<50%",
        "--alert-window",
        "3",
    ]);
    let log = nginx();
    let at = |pred: &dyn Fn(&Logged) -> bool| -> Vec<f64> {
        log.iter().filter(|n| pred(n)).map(|n| n.4).collect()
    };
    let first_503 = at(&|n| n.0 == 503)[0];
    let last_503 = *at(&|n| n.0 == 503).last().unwrap();
    // nginx logs a request when it ends: the first miss of phase C ends ~180 ms after it starts.
    let first_c_miss = at(&|n| n.3 == 'C' && n.1 > 0.12 && n.2.starts_with("/api/items/"))[0];
    let events: Vec<(String, String, String, f64)> = lines
        .iter()
        .map(|j| {
            assert_eq!(j["key"], "route");
            (
                j["group"].as_str().unwrap().to_owned(),
                j["alert"].as_str().unwrap().to_owned(),
                j["state"].as_str().unwrap().to_owned(),
                j["ts"].as_f64().unwrap(),
            )
        })
        .collect();
    let find = |g: &str, a: &str, s: &str| {
        events
            .iter()
            .find(|e| e.0 == g && e.1 == a && e.2 == s)
            .unwrap_or_else(|| panic!("no {s} {a} on {g} in {events:#?}"))
            .3
    };
    // Ticks of 1 s: a change shows at the first tick after the request that made it.
    let fired = find("/api/fail/{id}", "5xx>1/s", "firing");
    assert!(
        fired > first_503 && fired < first_503 + 1.5,
        "{fired} vs {first_503}"
    );
    let resolved = find("/api/fail/{id}", "5xx>1/s", "resolved");
    assert!(
        resolved > last_503 && resolved < last_503 + 3.0 + 1.5,
        "{resolved} vs {last_503}"
    );
    // Every fail call fails: its success alert starts with the 5xx one; a window with no
    // response has no success rate, and an alert with nothing to measure stops (value null).
    assert_eq!(find("/api/fail/{id}", "success<50%", "firing"), fired);
    assert_eq!(find("/api/fail/{id}", "success<50%", "resolved"), resolved);
    assert!(
        lines.iter().any(|j| j["alert"] == "success<50%"
            && j["state"] == "resolved"
            && j["value"].is_null())
    );
    let items = find("/api/items/{id}", "p99>150ms", "firing");
    assert!(
        items > first_c_miss && items < first_c_miss + 1.5,
        "{items} vs {first_c_miss}"
    );
    // Reports always take 400 ms: firing from their first tick on, never resolved.
    find("/api/report", "p99>150ms", "firing");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.0 == "/api/report" || e.0 == "/api/items/{id}")
            .count(),
        2,
        "{events:#?}"
    );
}

#[test]
fn several_json_streams_share_stdout_without_cutting_a_line() {
    // Every exchange is slower than 0 ms (740 lines, several buffers' worth) and every group of
    // every tick alerts, so both outputs flush many times into the same stdout.
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/demo.pcap");
    let lines = http_top_on(
        demo,
        &[
            "-g",
            "path",
            "--slow",
            "0",
            "--alert",
            "rate>0/s",
            "--alert-window",
            "1",
        ],
    );
    let alerts = lines.iter().filter(|j| j.get("alert").is_some()).count();
    let slow = lines
        .iter()
        .filter(|j| j.get("latency_ms").is_some())
        .count();
    assert!(alerts > 50 && slow > 700, "{alerts} alerts, {slow} slow");
    assert_eq!(alerts + slow, lines.len());
}

#[test]
fn a_rule_without_a_latency_alerts_alone() {
    // No latency threshold to count: the tick counts alerts read are kept all the same.
    let lines = http_top(&["-g", "route", "--alert", "5xx>1/s", "--alert-window", "3"]);
    let states: Vec<&str> = lines.iter().map(|j| j["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["firing", "resolved"], "{lines:?}");
    assert!(lines.iter().all(|j| j["group"] == "/api/fail/{id}"));
}
