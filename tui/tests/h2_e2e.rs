//! HTTP/2 over cleartext end to end: nginx (`listen ... http2`, prior knowledge) in a network
//! namespace, driven from another by curl (`--http2-prior-knowledge`), nghttp (several streams
//! multiplexed on one connection, a POST with a body, 204/404/500) and h2load (thousands of
//! requests, many concurrent streams per connection); http-top captures the client's veth live
//! through the kernel filter while tcpdump records it, and then reads the recording.
//!
//! Compared with nginx's access log (requests and statuses per path, `$bytes_sent`: over HTTP/2 the
//! response's frames with their 9-byte headers) and with tshark's HTTP/2 dissector of the same
//! recording (paths and statuses).
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

use common::{BIN, Guard, Link, SUPPORT, parse_nginx_log, run, tmpdir, wait_until};

/// Per path: requests, statuses (sorted), response bytes.
type PerPath = BTreeMap<String, (u64, Vec<u16>, u64)>;

fn per_path_json(text: &str) -> PerPath {
    let mut m = PerPath::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["protocol"], "h2c", "{line}");
        let target = v["target"].as_str().unwrap_or("-");
        let path = target.split('?').next().unwrap().to_owned();
        let e = m.entry(path).or_default();
        e.0 += 1;
        if let Some(s) = v["status"].as_u64() {
            e.1.push(s as u16);
        }
        e.2 += v["response_bytes"].as_u64().unwrap();
    }
    for e in m.values_mut() {
        e.1.sort_unstable();
    }
    m
}

#[test]
#[ignore = "needs root: network namespaces and the eBPF filter"]
fn h2c_with_prior_knowledge_counts_what_nginx_served() {
    let link = Link::new(249, "f9");
    let dir = tmpdir("h2");
    let www = dir.join("www");
    fs::create_dir_all(www.join("static")).unwrap();
    fs::create_dir_all(dir.join("tmp")).unwrap();
    for (name, size) in [
        ("small.txt", 100),
        ("page.html", 5_000),
        ("big.bin", 300_000),
    ] {
        fs::write(www.join("static").join(name), "z".repeat(size)).unwrap();
    }
    run(Command::new("chmod").args(["-R", "a+rX"]).arg(&dir));
    let ready = dir.join("upstream.ready");
    let _upstream = Guard(
        link.server
            .exec("python3")
            .arg(format!("{SUPPORT}/httpd.py"))
            .args(["127.0.0.1", "8000", "--ready"])
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the upstream", Duration::from_secs(10), || ready.exists());
    let d = dir.display();
    let conf = format!(
        r#"worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 512; }}
http {{
    log_format wire '$remote_addr $request_length $bytes_sent $status $request_time "$request"';
    access_log {d}/access.log wire;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    default_type text/plain;
    server {{
        listen {v4}:80 http2;
        root {d}/www;
        location = /empty {{ return 204; }}
        location = /boom {{ return 500 "boom\n"; }}
        location /upload/ {{ client_max_body_size 10m; proxy_pass http://127.0.0.1:8000; }}
    }}
}}
"#,
        v4 = link.v4s
    );
    fs::write(dir.join("nginx.conf"), conf).unwrap();
    let _nginx = common::Nginx::start(&link.server, &dir, 80);

    // tcpdump and http-top on the client's veth.
    let pcap = dir.join("h2.pcap");
    let tcpdump = common::tcpdump(&link.client, &link.vc, "tcp port 80", &pcap);
    let (out, err) = (dir.join("live.json"), dir.join("live.err"));
    let http_top = common::http_top_json(&link.client, &link.vc, &out, &err);

    let url = |p: &str| format!("http://{}{p}", link.v4s);
    let client = |prog: &str, args: &[String]| {
        run(Command::new("timeout")
            .arg("60")
            .args(["ip", "netns", "exec", &link.client.0, prog])
            .args(args))
    };
    // curl: one URL per connection (curl 7.88 does not reuse a prior-knowledge connection).
    for p in [
        "/static/small.txt",
        "/static/page.html",
        "/empty",
        "/missing",
        "/boom",
    ] {
        client(
            "curl",
            &[
                "-s".into(),
                "-o".into(),
                "/dev/null".into(),
                "--http2-prior-knowledge".into(),
                url(p),
            ],
        );
    }
    // nghttp: many streams on one connection (each URL twice: -m 2; nghttp asks a URL only once
    // otherwise), and a POST with a body.
    let many: Vec<String> = [
        "/static/small.txt",
        "/static/big.bin",
        "/empty",
        "/missing",
        "/boom",
    ]
    .iter()
    .map(|p| url(p))
    .collect();
    client(
        "nghttp",
        &[vec!["-n".into(), "-m".into(), "2".into()], many].concat(),
    );
    let body = dir.join("body.bin");
    fs::write(&body, vec![b'b'; 40_000]).unwrap();
    client(
        "nghttp",
        &[
            "-n".into(),
            "-d".into(),
            body.display().to_string(),
            url("/upload/x"),
        ],
    );
    // h2load: 2 000 requests over 4 connections, 16 streams at once on each.
    let h2load = client(
        "h2load",
        &[
            "-n".into(),
            "2000".into(),
            "-c".into(),
            "4".into(),
            "-m".into(),
            "16".into(),
            url("/static/page.html"),
        ],
    );
    assert!(h2load.contains("2000 succeeded"), "{h2load}");
    let expected = 5 + 10 + 1 + 2000;

    let log_path = dir.join("access.log");
    wait_until(
        "nginx to log every request",
        Duration::from_secs(30),
        || fs::read_to_string(&log_path).is_ok_and(|s| s.lines().count() >= expected),
    );
    wait_until(
        "http-top to report every exchange",
        Duration::from_secs(30),
        || fs::read_to_string(&out).is_ok_and(|s| s.lines().count() >= expected),
    );
    common::wait_quiet(&pcap);
    let status = http_top.interrupt("http-top");
    assert!(status.success());
    let _ = tcpdump.interrupt("tcpdump");
    let log = parse_nginx_log(&fs::read_to_string(&log_path).unwrap());
    assert_eq!(log.len(), expected);

    // nginx's side, per path.
    let mut want = PerPath::new();
    for l in &log {
        let e = want.entry(l.path.clone()).or_default();
        e.0 += 1;
        e.1.push(l.status);
        e.2 += l.bytes_sent;
    }
    for e in want.values_mut() {
        e.1.sort_unstable();
    }
    let live = per_path_json(&fs::read_to_string(&out).unwrap());
    let counts = |m: &PerPath| -> BTreeMap<String, (u64, Vec<u16>)> {
        m.iter()
            .map(|(k, v)| (k.clone(), (v.0, v.1.clone())))
            .collect()
    };
    assert_eq!(
        counts(&live),
        counts(&want),
        "requests and statuses per path, live vs nginx"
    );
    let bytes = |m: &PerPath| -> BTreeMap<String, u64> {
        m.iter().map(|(k, v)| (k.clone(), v.2)).collect()
    };
    assert_eq!(
        bytes(&live),
        bytes(&want),
        "response bytes per path, live vs nginx $bytes_sent"
    );

    // The recording, read from the file.
    let file = Command::new(BIN)
        .arg("-r")
        .arg(&pcap)
        .arg("--json")
        .output()
        .unwrap();
    assert!(file.status.success());
    let offline = per_path_json(&String::from_utf8_lossy(&file.stdout));
    assert_eq!(offline, live, "the recording read from the file vs live");

    // tshark's HTTP/2 dissector on the same recording: the same paths and statuses.
    let tshark = run(Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-d",
            "tcp.port==80,http2",
            "-Y",
            "http2.type == 1",
            "-T",
            "fields",
        ])
        .args(["-e", "http2.headers.path", "-e", "http2.headers.status"])
        .args(["-E", "occurrence=a", "-E", "aggregator=|"]));
    let mut paths: BTreeMap<String, u64> = BTreeMap::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for line in tshark.lines() {
        let (p, s) = line.split_once('\t').unwrap_or((line, ""));
        for p in p.split('|').filter(|p| !p.is_empty()) {
            *paths
                .entry(p.split('?').next().unwrap().to_owned())
                .or_default() += 1;
        }
        for s in s.split('|').filter_map(|s| s.parse::<u16>().ok()) {
            // Interim responses are not final statuses.
            if s >= 200 {
                *statuses.entry(s).or_default() += 1;
            }
        }
    }
    let live_paths: BTreeMap<String, u64> = live.iter().map(|(k, v)| (k.clone(), v.0)).collect();
    assert_eq!(paths, live_paths, "paths: tshark vs http-top");
    let mut live_statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for v in live.values() {
        for s in &v.1 {
            *live_statuses.entry(*s).or_default() += 1;
        }
    }
    assert_eq!(statuses, live_statuses, "statuses: tshark vs http-top");
    let summary = fs::read_to_string(&err).unwrap();
    eprintln!("{}", summary.lines().last().unwrap_or_default());
    let s = common::summary(&summary);
    assert_eq!(s["http2_lost"], 0);
    assert_eq!(s["parse_errors"], 0);
    assert!(s["http2"] >= 5 + 2 + 4);
}

/// An h2c upgrade (RFC 7540 3.2) with a real server (`tests/support/h2c_server.py`: Python's `h2`;
/// nginx does not upgrade) and real clients (curl `--http2`, which upgrades a plain http:// URL and
/// then sends its other URLs as streams of the same connection; nghttp `-u`): the upgrade request
/// is stream 1, answered in HTTP/2 after the 101, and every stream is counted as the server logged
/// it, live through the kernel filter.
#[test]
#[ignore = "needs root: network namespaces and the eBPF filter"]
fn an_h2c_upgrade_is_followed_into_http2() {
    let link = Link::new(251, "fb");
    let dir = tmpdir("h2c");
    let (ready, server_log) = (dir.join("server.ready"), dir.join("server.log"));
    let _server = Guard(
        link.server
            .exec("/usr/bin/python3")
            .arg(format!("{SUPPORT}/h2c_server.py"))
            .args([&link.v4s, "8080"])
            .arg(&ready)
            .arg(&server_log)
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("server.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until("the h2c server", Duration::from_secs(10), || ready.exists());
    let (out, err) = (dir.join("live.json"), dir.join("live.err"));
    let http_top = common::http_top_json(&link.client, &link.vc, &out, &err);
    let url = |p: &str| format!("http://{}:8080{p}", link.v4s);
    let in_client = |args: &[String]| {
        run(Command::new("timeout")
            .args(["30", "ip", "netns", "exec", &link.client.0])
            .args(args))
    };
    for _ in 0..2 {
        let urls = ["/bytes/1000", "/bytes/70000", "/missing"];
        let mut args: Vec<String> = vec!["curl".into(), "-s".into(), "--http2".into()];
        for u in urls {
            args.extend(["-o".into(), "/dev/null".into(), url(u)]);
        }
        args.extend(["-w".into(), "%{http_version} %{http_code}\n".into()]);
        let said = in_client(&args);
        assert_eq!(said, "2 200\n2 200\n2 404\n", "curl upgraded and got");
    }
    in_client(&[
        "nghttp".into(),
        "-u".into(),
        "-n".into(),
        url("/bytes/10"),
        url("/bytes/20"),
    ]);
    let served = 8;
    wait_until(
        "the server to log every stream",
        Duration::from_secs(20),
        || fs::read_to_string(&server_log).is_ok_and(|s| s.lines().count() >= served),
    );
    wait_until(
        "http-top to report every stream",
        Duration::from_secs(20),
        || fs::read_to_string(&out).is_ok_and(|s| s.lines().count() >= served),
    );
    assert!(http_top.interrupt("http-top").success());
    // What the server answered, per path: streams and statuses.
    let mut want: BTreeMap<String, (u64, Vec<u16>, u64)> = BTreeMap::new();
    for l in fs::read_to_string(&server_log).unwrap().lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let e = want.entry(f[1].to_owned()).or_default();
        e.0 += 1;
        e.1.push(f[2].parse().unwrap());
    }
    let mut live = per_path_json(&fs::read_to_string(&out).unwrap());
    // Response bytes are the frames (and the 101); the server logs bodies only.
    for (path, v) in live.iter_mut() {
        let body: u64 = path
            .strip_prefix("/bytes/")
            .and_then(|n| n.parse().ok())
            .unwrap_or(10);
        assert!(
            v.2 >= v.0 * body,
            "{path}: {} bytes for {} bodies of {body}",
            v.2,
            v.0
        );
        v.2 = 0;
    }
    for v in want.values_mut() {
        v.1.sort_unstable();
    }
    assert_eq!(
        live, want,
        "streams and statuses per path: http-top vs the server"
    );
    let s = common::summary(&fs::read_to_string(&err).unwrap());
    // Three connections, each upgraded: each request counted once.
    assert_eq!(
        (s["requests"], s["http2"], s["tunnels"]),
        (served as u64, 3, 0)
    );
}
