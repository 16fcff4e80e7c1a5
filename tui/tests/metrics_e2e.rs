//! The metrics endpoint end to end: http-top capturing live with the real kernel filter on veths to
//! network namespaces running nginx, scraped by a real Prometheus server (Debian's `prometheus`),
//! and abused by hostile clients while it captures.
//!
//! Root only (namespaces, eBPF): `#[ignore]`d in a plain `cargo test`, run by `cargo xtask test`.
//! Traffic goes to addresses inside the namespaces made here; the endpoints and Prometheus listen
//! on 127.0.0.1. Every process is bounded in time and every load is bounded in count.

#![expect(
    clippy::print_stderr,
    reason = "tests explain what they are waiting for"
)]

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

mod common;

use common::{BIN, Guard, Netns, SUPPORT, ip, parse_nginx_log, run, tmpdir, wait_until};

/// A "host": a namespace with nginx (and a python upstream for slow answers) behind a veth whose
/// other end is in the test's own namespace, where curl sends from and http-top captures.
struct Host {
    _ns: Netns,
    /// The veth end http-top captures on (the test's namespace).
    dev: String,
    v4s: String,
    dir: PathBuf,
    _nginx: common::Nginx,
    _upstream: Guard,
    http_top: Option<Guard>,
    /// `127.0.0.1:PORT` of its metrics endpoint.
    metrics: String,
}

impl Host {
    fn new(tag: &str, net: u8) -> Self {
        let pid = std::process::id();
        let ns = Netns::new(tag);
        let (dev, peer) = (format!("htr{tag}{pid}"), format!("htn{tag}{pid}"));
        let _ = Command::new("ip")
            .args(["link", "del", &dev])
            .stderr(Stdio::null())
            .status();
        ip(&[
            "link", "add", &dev, "type", "veth", "peer", "name", &peer, "netns", &ns.0,
        ]);
        let y = pid % 250;
        let (v4s, v4c) = (format!("10.{net}.{y}.1"), format!("10.{net}.{y}.2"));
        ip(&["addr", "add", &format!("{v4c}/24"), "dev", &dev]);
        ip(&["link", "set", &dev, "up"]);
        ip(&[
            "-n",
            &ns.0,
            "addr",
            "add",
            &format!("{v4s}/24"),
            "dev",
            &peer,
        ]);
        ip(&["-n", &ns.0, "link", "set", &peer, "up"]);

        let dir = tmpdir(&format!("metrics-{tag}"));
        fs::create_dir_all(dir.join("www/static")).unwrap();
        fs::create_dir_all(dir.join("tmp")).unwrap();
        fs::write(dir.join("www/static/app.js"), "x".repeat(20_000)).unwrap();
        run(Command::new("chmod").args(["-R", "a+rX"]).arg(&dir));
        let ready = dir.join("upstream.ready");
        let upstream = Guard(
            ns.exec("python3")
                .arg(format!("{SUPPORT}/httpd.py"))
                .args(["127.0.0.1", "8000", "--ready"])
                .arg(&ready)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_until("the upstream to listen", Duration::from_secs(10), || {
            ready.exists()
        });
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
    keepalive_requests 10000;
    server {{
        listen {v4s}:80;
        root {d}/www;
        location /users/ {{ return 200 "a user\n"; }}
        location /orders/ {{ return 200 "an order\n"; }}
        location /api/ {{ proxy_pass http://127.0.0.1:8000/; }}
    }}
}}
"#
        );
        fs::write(dir.join("nginx.conf"), conf).unwrap();
        let nginx = common::Nginx::start(&ns, &dir, 80);
        Self {
            _nginx: nginx,
            _ns: ns,
            dev,
            v4s,
            dir,
            _upstream: upstream,
            http_top: None,
            metrics: String::new(),
        }
    }

    /// Starts http-top on this host's veth with `--metrics 127.0.0.1:0` and learns the port.
    fn start_http_top(&mut self, args: &[&str]) {
        let err = self.dir.join("http-top.err");
        let child = Guard(
            Command::new(BIN)
                .args(["-i", &self.dev, "--headless", "--duration", "150"])
                .args(["--metrics", "127.0.0.1:0"])
                .args(args)
                .stdout(Stdio::null())
                .stderr(fs::File::create(&err).unwrap())
                .spawn()
                .expect("start http-top"),
        );
        let mut addr = String::new();
        wait_until(
            "http-top to capture and serve",
            Duration::from_secs(20),
            || {
                let e = fs::read_to_string(&err).unwrap_or_default();
                if let Some(a) = e
                    .lines()
                    .find_map(|l| l.strip_prefix("http-top: metrics at http://"))
                {
                    addr = a.trim_end_matches("/metrics").to_owned();
                }
                e.contains("capturing on") && !addr.is_empty()
            },
        );
        self.metrics = addr;
        self.http_top = Some(child);
    }

    /// Sends `urls` (paths) from the test's namespace with one curl (keep-alive), bounded in time;
    /// returns the status codes curl reports.
    fn curl(&self, paths: &[String]) -> Vec<u16> {
        let config: String = paths
            .iter()
            .map(|p| {
                format!(
                    "url = \"http://{}{p}\"\noutput = /dev/null\nwrite-out = \"%{{http_code}}\\n\"\n",
                    self.v4s
                )
            })
            .collect();
        let file = self.dir.join("curl.conf");
        fs::write(&file, config).unwrap();
        run(Command::new("curl")
            .args(["-s", "--max-time", "60", "-K"])
            .arg(&file))
        .lines()
        .map(|c| c.parse().unwrap())
        .collect()
    }

    fn access_log(&self) -> Vec<common::NginxLine> {
        parse_nginx_log(&fs::read_to_string(self.dir.join("access.log")).unwrap_or_default())
    }

    fn scrape(&self, accept: Option<&str>) -> String {
        let mut c = Command::new("curl");
        c.args(["-s", "--max-time", "10"]);
        if let Some(a) = accept {
            c.args(["-H", &format!("Accept: {a}")]);
        }
        run(c.arg(format!("http://{}/metrics", self.metrics)))
    }
}

/// The traffic of one wave on one host: routes with identifiers, a static file, a 404, and a few
/// slow answers (the python upstream sleeps `slow_ms`).
fn wave(users: std::ops::Range<u32>, slow: usize, slow_ms: u32) -> Vec<String> {
    let mut paths = Vec::new();
    for u in users {
        paths.push(format!("/users/{u}"));
        if u % 2 == 0 {
            paths.push("/static/app.js".to_owned());
        }
        if u % 3 == 0 {
            paths.push(format!("/orders/123e4567-e89b-12d3-a456-{:012x}", u));
        }
        if u % 10 == 0 {
            paths.push("/missing".to_owned());
        }
    }
    for _ in 0..slow {
        paths.push(format!("/api/delay/{slow_ms}"));
    }
    paths
}

/// The route each path of [`wave`] gets: automatic, except `/api/delay/...` on a host started with
/// `--route /api/delay/{ms}`.
fn expected_route(path: &str, delay_pattern: bool) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.get(1).copied() {
        Some("users") => "/users/{id}".into(),
        Some("orders") => "/orders/{id}".into(),
        Some("api") if delay_pattern => "/api/delay/{ms}".into(),
        Some("api") => "/api/delay/{id}".into(),
        _ => path.into(),
    }
}

/// A Prometheus server on 127.0.0.1 scraping `targets` every second, its data in `dir`.
struct Prometheus {
    _child: Guard,
    addr: String,
}

impl Prometheus {
    fn start(dir: &Path, targets: &[&str]) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let conf = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: http-top\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        let file = dir.join("prometheus.yml");
        fs::write(&file, conf).unwrap();
        run(Command::new("promtool")
            .arg("check")
            .arg("config")
            .arg(&file));
        let addr = format!("127.0.0.1:{port}");
        let child = Guard(
            Command::new("prometheus")
                .arg(format!("--config.file={}", file.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.join("prometheus.log")).unwrap())
                .spawn()
                .expect("start prometheus"),
        );
        let p = Self {
            _child: child,
            addr,
        };
        wait_until("Prometheus to be ready", Duration::from_secs(30), || {
            Command::new("curl")
                .args(["-sf", &format!("http://{}/-/ready", p.addr)])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        p
    }

    /// Runs an instant query through Prometheus's HTTP API; the `data.result` array, or the error
    /// Prometheus gave.
    fn query(&self, q: &str) -> Result<Vec<serde_json::Value>, String> {
        let out = run(Command::new("curl")
            .args(["-s", "--max-time", "10", "--data-urlencode"])
            .arg(format!("query={q}"))
            .arg(format!("http://{}/api/v1/query", self.addr)));
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
        if v["status"] != "success" {
            return Err(format!("{q}: {out}"));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The value of each series of a query's result, by the value of `label` ("" for none).
    fn values(&self, q: &str, label: &str) -> BTreeMap<String, f64> {
        self.query(q)
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|r| {
                let key = r["metric"][label].as_str().unwrap_or_default().to_owned();
                let v: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
                (key, v)
            })
            .collect()
    }
}

/// The bucket (upper bound) of the default buckets that holds `secs`.
fn bucket_of(secs: f64) -> f64 {
    http_top::output::metrics::DEFAULT_BUCKETS
        .iter()
        .copied()
        .find(|&b| secs <= b)
        .unwrap_or(f64::INFINITY)
}

/// The exposition passes `promtool check metrics` (Prometheus's own linter, which also parses it).
fn promtool_check(text: &str) {
    let dir = tmpdir("promtool");
    let file = dir.join("metrics.txt");
    fs::write(&file, text).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", file.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs root: network namespaces and the eBPF filter"]
fn a_fleet_of_two_scraped_by_prometheus_adds_up_to_what_nginx_served() {
    let mut a = Host::new("a", 246);
    let mut b = Host::new("b", 247);
    a.start_http_top(&[]);
    b.start_http_top(&["--route", "/api/delay/{ms}"]);
    let dir = tmpdir("prometheus");
    let prom = Prometheus::start(&dir, &[&a.metrics, &b.metrics]);

    // Warm-up: every label set exists in Prometheus before the measured wave, so that rate()
    // sees all of that wave (a series' first sample is not an increase).
    let warm = |h: &Host| {
        let s = h.curl(&wave(0..1, 1, 150));
        assert!(s.iter().all(|&c| c == 200 || c == 404), "{s:?}");
    };
    warm(&a);
    warm(&b);
    let (warm_a, warm_b) = (a.access_log().len(), b.access_log().len());
    let warm_lines = warm_a + warm_b;
    let scraped = |n: usize| {
        prom.values("sum(http_server_request_duration_seconds_count)", "")
            .get("")
            .copied()
            == Some(n as f64)
    };
    wait_until(
        "Prometheus to scrape the warm-up",
        Duration::from_secs(30),
        || scraped(warm_lines),
    );
    // Two more scrapes, so the warm-up values are a sample before the wave.
    std::thread::sleep(Duration::from_secs(2));

    // The measured wave: 5% slow answers (150 ms), so the true p99 is one of them.
    let wave_a = wave(1..121, 10, 150);
    let wave_b = wave(121..181, 5, 150);
    let (ca, cb) = (a.curl(&wave_a), b.curl(&wave_b));
    assert!(ca.iter().chain(&cb).all(|&c| c == 200 || c == 404));
    let (log_a, log_b) = (a.access_log(), b.access_log());
    let total = log_a.len() + log_b.len();
    assert_eq!(
        total,
        warm_lines + wave_a.len() + wave_b.len(),
        "nginx logged every request"
    );
    eprintln!("{total} exchanges served; waiting for Prometheus to see them all");
    wait_until_scraped(&prom, total);

    // By route, as nginx served them and as the route rule names them.
    let mut want: BTreeMap<String, f64> = BTreeMap::new();
    for (log, delay_pattern) in [(&log_a, false), (&log_b, true)] {
        for l in log.iter() {
            *want
                .entry(expected_route(&l.path, delay_pattern))
                .or_default() += 1.0;
        }
    }
    let got = prom.values(
        "sum by (http_route) (http_server_request_duration_seconds_count)",
        "http_route",
    );
    assert_eq!(got, want, "exchanges by route: Prometheus vs nginx's logs");

    // Bytes: nginx's $bytes_sent is the response as sent, which is what http-top counts.
    let sent: u64 = log_a.iter().chain(&log_b).map(|l| l.bytes_sent).sum();
    let got_sent = prom.values("sum(http_top_response_bytes_total)", "")[""];
    assert_eq!(got_sent, sent as f64, "response bytes: Prometheus vs nginx");

    // p99 of the wave: the bucket Prometheus's estimate lands in holds nginx's true p99
    // ($request_time, ms resolution: far from any bucket bound here).
    let mut times: Vec<f64> = log_a[warm_a..]
        .iter()
        .chain(&log_b[warm_b..])
        .map(|l| l.request_ms / 1000.0)
        .collect();
    times.sort_by(f64::total_cmp);
    let true_p99 = times[((times.len() as f64) * 0.99).ceil() as usize - 1];
    let p99 = prom.values(
        "histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket[1m])))",
        "",
    )[""];
    eprintln!("p99: nginx {true_p99:.3}s, Prometheus {p99:.3}s");
    assert_eq!(
        bucket_of(p99),
        bucket_of(true_p99),
        "p99 estimate {p99} is not in the bucket of the true p99 {true_p99}"
    );

    // Both hosts are targets; their health and build are there.
    let up = prom.values("up", "instance");
    assert_eq!(up.len(), 2, "{up:?}");
    assert!(up.values().all(|&v| v == 1.0));
    let packets = prom.values("http_top_packets_total", "instance");
    assert!(packets.values().all(|&v| v > 0.0), "{packets:?}");
    let kept = prom.values("http_top_filter_kept_total", "interface");
    assert!(
        kept.contains_key(&a.dev) && kept.contains_key(&b.dev),
        "{kept:?}"
    );
    assert_eq!(prom.values("count(http_top_build_info)", "")[""], 2.0);

    // The exposition, in both formats, passes Prometheus's own linter / parser.
    let text = a.scrape(None);
    promtool_check(&text);
    let om = a.scrape(Some("application/openmetrics-text; version=1.0.0"));
    assert!(om.ends_with("# EOF\n"));

    // The Grafana board: every expression runs on this Prometheus, and every metric it names is
    // one http-top exports.
    let board: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../assets/grafana/http-top.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&board, &mut exprs);
    assert!(exprs.len() >= 10, "the board has {} queries", exprs.len());
    let exported = format!("{text}\n{}", b.scrape(None));
    for e in &exprs {
        let q = e
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*")
            .replace("$server_address", ".*")
            .replace("$route", ".*");
        prom.query(&q)
            .unwrap_or_else(|err| panic!("Grafana query fails on Prometheus: {err}"));
        for name in metric_names(&q) {
            // A sample line, or a family without samples yet (no request went unanswered).
            assert!(
                exported.contains(&format!("\n{name}"))
                    || exported.contains(&format!("# TYPE {name} ")),
                "the board queries {name}, which http-top does not export"
            );
        }
    }
    let routes = prom
        .query("sum by (http_route) (rate(http_server_request_duration_seconds_count[1m]))")
        .unwrap();
    assert!(!routes.is_empty());
    drop(b);
    drop(a);
}

fn wait_until_scraped(prom: &Prometheus, n: usize) {
    wait_until(
        "Prometheus to see every exchange",
        Duration::from_secs(30),
        || {
            prom.values("sum(http_server_request_duration_seconds_count)", "")
                .get("")
                .copied()
                == Some(n as f64)
        },
    );
}

/// Every `expr` string in a Grafana dashboard (panels, rows, targets at any depth).
fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

/// The metric names in a PromQL expression: identifiers starting with `http_`.
fn metric_names(q: &str) -> Vec<String> {
    let mut names = Vec::new();
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if boundary && q[i..].starts_with("http_") {
            let end = q[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(q.len(), |e| i + e);
            let name = &q[i..end];
            // Label names in matchers and `by (...)` start with http_ too; metric names are
            // followed by `{`, `[` or a space-less end, labels by `=`, `!`, `,` or `)`.
            let next = q[end..].trim_start().chars().next();
            if !matches!(next, Some('=' | '!' | ',' | ')')) {
                names.push(name.to_owned());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

#[test]
#[ignore = "needs root: network namespaces and the eBPF filter"]
fn a_hostile_scraper_costs_bounded_memory_and_never_stalls_capture() {
    let mut h = Host::new("m", 248);
    // A path label per user makes a page of a few MB, so that readers that stop reading hold
    // real memory.
    h.start_http_top(&["--metrics-labels", "path,client"]);
    let pid = h.http_top.as_ref().unwrap().0.id();
    let rss_kib = || -> u64 {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
    };
    let warm = h.curl(&wave(0..600, 0, 0));
    // The page follows the capture by up to a tick (and the capture starts once the first names
    // scan is in): wait for the wave to show, as the other tests wait for their traffic.
    let page = std::cell::RefCell::new(String::new());
    common::wait_until_or(
        "the page to grow past 1 MiB",
        Duration::from_secs(10),
        || {
            *page.borrow_mut() = h.scrape(None);
            page.borrow().len() > 1 << 20
        },
        || format!("the page is {} bytes", page.borrow().len()),
    );
    let hwm_before = rss_kib();

    // The abuse runs while traffic is captured.
    let port = h.metrics.rsplit(':').next().unwrap().to_owned();
    let abuse = std::thread::spawn(move || {
        run(Command::new("timeout")
            .args(["120", "python3"])
            .arg(format!("{SUPPORT}/metrics_abuse.py"))
            .args(["127.0.0.1", &port]))
    });
    let mut statuses = warm;
    for round in 0..10u32 {
        statuses.extend(h.curl(&wave(600 + round * 100..700 + round * 100, 1, 20)));
    }
    let report: serde_json::Value = serde_json::from_str(&abuse.join().unwrap()).unwrap();
    eprintln!("abuse: {report}");
    let served = h.access_log().len();
    assert_eq!(
        served,
        statuses.len(),
        "nginx logged every request curl made"
    );

    // What each hostile client got.
    assert_eq!(report["not_found"], 404);
    let long = report["long_line"]["status"].as_u64();
    assert!(
        long.is_none() || long == Some(431) || long == Some(400),
        "a 1 MiB request line got {long:?}"
    );
    let slowloris = report["slowloris_closed_after_s"]
        .as_f64()
        .expect("slowloris never closed");
    assert!(slowloris < 8.0, "slowloris held for {slowloris} s");
    assert_eq!(report["slow_readers"]["scrape_status"], 200, "{report}");
    let drops = report["slow_readers"]["dropped_after_s"]
        .as_array()
        .unwrap();
    assert!(
        drops.iter().all(|d| d.as_f64().is_some_and(|d| d < 10.0)),
        "readers that stopped reading were not all dropped: {drops:?}"
    );
    assert_eq!(report["flood_opened"], 1000);
    let ok = report["flood_scrape_ok_after_s"]
        .as_f64()
        .expect("no scrape got through the flood");
    assert!(
        ok < 10.0,
        "a scrape waited {ok} s behind 1000 idle connections"
    );

    // Capture never stalled: every exchange nginx served is counted, exactly.
    let count = |text: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    wait_until(
        "http-top to count every exchange",
        Duration::from_secs(10),
        || count(&h.scrape(None)) == served as u64,
    );
    let after = h.scrape(None);
    assert!(after.contains("http_top_metrics_rejected_connections_total "));
    let rejected: u64 = after
        .lines()
        .find_map(|l| l.strip_prefix("http_top_metrics_rejected_connections_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rejected > 0, "the flood was never turned away");
    let hwm = rss_kib();
    eprintln!(
        "peak RSS {} MiB before the abuse, {} MiB after; page {} KiB",
        hwm_before / 1024,
        hwm / 1024,
        after.len() / 1024
    );
    // Bounded: 20 readers that stopped reading share the pages made within a second of each
    // other (a few alive at once, one being encoded: a growing string, twice its size), 256
    // connections' buffers; capture itself grew by the wave's new series.
    let page_kib = after.len() as u64 / 1024;
    assert!(
        hwm < hwm_before + 10 * page_kib + 32 * 1024,
        "peak RSS grew from {hwm_before} KiB to {hwm} KiB under abuse"
    );
}
