//! `--metrics` on a file, headless: the endpoint is up while the file is read and, with
//! `--metrics-linger`, after it, for a last scrape; then the process exits by itself. On the bundled
//! demo capture (756 exchanges, all answered: nginx's own log of the same traffic agrees). No root.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

mod common;

use common::{BIN, Guard, run};

#[test]
fn a_file_is_served_until_the_linger_ends() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/demo.pcap");
    let started = Instant::now();
    let mut child = Guard(
        Command::new(BIN)
            .args(["-r", demo, "--headless", "--quiet"])
            .args(["--metrics", "127.0.0.1:0", "--metrics-linger", "3"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start http-top"),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("http-top: metrics at http://")
                .map(|a| a.trim_end_matches("/metrics").to_owned())
        })
        .expect("the metrics address on stderr");
    // The summary line comes when the file is read: the scrape after it sees all of it.
    let summary = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("http-top: packets="))
        .expect("the summary line");
    assert!(summary.contains("requests=756"), "{summary}");
    let page = run(Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://{addr}/metrics")));
    let answered: u64 = page
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(answered, 756, "{page}");
    assert!(page.contains("http_top_packets_total 4124\n"), "{page}");
    // Then it leaves by itself once the linger is over.
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "http-top did not exit after --metrics-linger"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "left before the linger ended"
    );
}
