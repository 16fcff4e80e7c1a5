//! Helpers shared by the root-only end-to-end tests: network namespaces, child processes that die
//! with the test, and waiting on conditions (never on fixed sleeps).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::{
    fs,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_http-top");
pub const SUPPORT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support");

/// Runs a command to completion; fails the test with its stderr if it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    wait_until_or(what, timeout, &mut cond, String::new);
}

/// Polls `cond` until it holds; on time-out fails with `explain()`.
pub fn wait_until_or(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
    explain: impl Fn() -> String,
) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}\n{}",
            explain()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A network namespace, deleted (with its veths) on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = format!("ht{tag}{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Self(name)
    }

    /// Gives `dev` (already in this namespace) the IPv4 `addr`/24 and brings it up.
    pub fn address(&self, dev: &str, addr: &str) {
        ip(&[
            "-n",
            &self.0,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            dev,
        ]);
        ip(&["-n", &self.0, "link", "set", dev, "up"]);
    }

    pub fn exec(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, prog]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Two namespaces joined by a veth pair, with IPv4 and IPv6 addresses inside them only.
pub struct Link {
    pub server: Netns,
    pub client: Netns,
    pub v4s: String,
    pub v6s: String,
    /// The client's end of the veth.
    pub vc: String,
    /// A namespace forwarding between the two, when made with [`Link::routed`].
    pub router: Option<Netns>,
}

impl Link {
    /// `net` picks the 10.x.y.0/24 used; the pid keeps concurrent runs apart.
    pub fn new(net: u8, v6_tag: &str) -> Self {
        let server = Netns::new("s");
        let client = Netns::new("c");
        let y = std::process::id() % 250;
        let (v4s, v4c) = (format!("10.{net}.{y}.1"), format!("10.{net}.{y}.2"));
        let (v6s, v6c) = (format!("fd00:{v6_tag}::1"), format!("fd00:{v6_tag}::2"));
        let (vs, vc) = (
            format!("hts{}", std::process::id()),
            format!("htc{}", std::process::id()),
        );
        ip(&[
            "link", "add", &vs, "netns", &server.0, "type", "veth", "peer", "name", &vc, "netns",
            &client.0,
        ]);
        for (ns, dev, a4, a6) in [(&server, &vs, &v4s, &v6s), (&client, &vc, &v4c, &v6c)] {
            ip(&["-n", &ns.0, "addr", "add", &format!("{a4}/24"), "dev", dev]);
            ip(&[
                "-n",
                &ns.0,
                "addr",
                "add",
                &format!("{a6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ip(&["-n", &ns.0, "link", "set", dev, "up"]);
        }
        Self {
            server,
            client,
            v4s,
            v6s,
            vc,
            router: None,
        }
    }

    /// Client and server in different subnets with a router namespace between them, so that what
    /// the router drops is real loss to TCP (a drop on the sender's own output is reported back to
    /// TCP, which just sends again). IPv4 only.
    pub fn routed(net: u8) -> Self {
        let server = Netns::new("s");
        let client = Netns::new("c");
        let router = Netns::new("r");
        let y = std::process::id() % 250;
        let pid = std::process::id();
        let (vc, vrc, vrs, vs) = (
            format!("htc{pid}"),
            format!("htrc{pid}"),
            format!("htrs{pid}"),
            format!("hts{pid}"),
        );
        ip(&[
            "link", "add", &vc, "netns", &client.0, "type", "veth", "peer", "name", &vrc, "netns",
            &router.0,
        ]);
        ip(&[
            "link", "add", &vs, "netns", &server.0, "type", "veth", "peer", "name", &vrs, "netns",
            &router.0,
        ]);
        let (c, rc) = (format!("10.{net}.{y}.2"), format!("10.{net}.{y}.1"));
        let (s, rs) = (
            format!("10.{}.{y}.2", net + 1),
            format!("10.{}.{y}.1", net + 1),
        );
        for (ns, dev, addr) in [
            (&client, &vc, &c),
            (&router, &vrc, &rc),
            (&router, &vrs, &rs),
            (&server, &vs, &s),
        ] {
            ns.address(dev, addr);
        }
        ip(&["-n", &client.0, "route", "add", "default", "via", &rc]);
        ip(&["-n", &server.0, "route", "add", "default", "via", &rs]);
        run(router.exec("sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
        Self {
            server,
            client,
            v4s: s,
            v6s: String::new(),
            vc,
            router: Some(router),
        }
    }
}

/// A child process killed on drop, so a failing assertion never leaves it behind.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    /// SIGINT, then waits (bounded) for a clean exit.
    pub fn interrupt(mut self, what: &str) -> std::process::ExitStatus {
        run(Command::new("kill").args(["-INT", &self.0.id().to_string()]));
        let start = Instant::now();
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{what} did not exit on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("http-top-e2e-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// Parses the `key=value` summary line http-top prints on stderr at exit.
pub fn summary(stderr: &str) -> std::collections::HashMap<String, u64> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("http-top: packets="))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    line.trim_start_matches("http-top: ")
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        .collect()
}

/// One line of an nginx access log in the tests' `log_format wire`:
/// `$remote_addr $request_length $bytes_sent $status $request_time "$request"`.
#[derive(Debug, Clone)]
pub struct NginxLine {
    pub client: String,
    /// Request line, fields and body.
    pub request_length: u64,
    /// Status line, fields and body as sent.
    pub bytes_sent: u64,
    pub status: u16,
    /// `$request_time`: first byte read to last byte sent, in ms (nginx's resolution).
    pub request_ms: f64,
    /// The request target without its query.
    pub path: String,
}

pub fn parse_nginx_log(text: &str) -> Vec<NginxLine> {
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(6, ' ').collect();
            let target = f[5].trim_matches('"').split(' ').nth(1).unwrap_or("");
            NginxLine {
                client: f[0].to_owned(),
                request_length: f[1].parse().unwrap(),
                bytes_sent: f[2].parse().unwrap(),
                status: f[3].parse().unwrap(),
                request_ms: f[4].parse::<f64>().unwrap() * 1000.0,
                path: target.split('?').next().unwrap().to_owned(),
            }
        })
        .collect()
}

/// Waits until a capture file stops growing for longer than libpcap holds a partly filled block
/// (1 s in tcpdump): what was captured is written, and tcpdump can be stopped.
pub fn wait_quiet(pcap: &std::path::Path) {
    let mut last = 0;
    let mut stable = 0;
    wait_until("the capture to go quiet", Duration::from_secs(20), || {
        let len = fs::metadata(pcap).map(|m| m.len()).unwrap_or(0);
        stable = if len == last { stable + 1 } else { 0 };
        last = len;
        stable >= 75
    });
}

/// tcpdump in `ns` writing what `dev` carries (matching `filter`) to `pcap`, once it listens. A
/// 64 MiB buffer: with the default 2 MiB, tcpdump drops frames of fast transfers.
pub fn tcpdump(ns: &Netns, dev: &str, filter: &str, pcap: &std::path::Path) -> Guard {
    let log = pcap.with_extension("tcpdump.log");
    let g = Guard(
        ns.exec("tcpdump")
            .args(["-i", dev, "-s", "0", "-B", "65536", "-w"])
            .arg(pcap)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start tcpdump"),
    );
    wait_until("tcpdump to listen", Duration::from_secs(10), || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("listening on")
    });
    g
}

/// http-top in `ns` capturing `dev` live with `--json` (one line per exchange to `out`, the
/// summary to `err`), once its filter is attached; bounded by `--duration 120`.
pub fn http_top_json(ns: &Netns, dev: &str, out: &std::path::Path, err: &std::path::Path) -> Guard {
    http_top_json_with(ns, dev, &[], out, err)
}

/// [`http_top_json`] with more options.
pub fn http_top_json_with(
    ns: &Netns,
    dev: &str,
    extra: &[&str],
    out: &std::path::Path,
    err: &std::path::Path,
) -> Guard {
    let g = Guard(
        ns.exec(BIN)
            .args(["-i", dev, "--json", "--duration", "120"])
            .args(extra)
            .stdout(fs::File::create(out).unwrap())
            .stderr(fs::File::create(err).unwrap())
            .spawn()
            .expect("start http-top"),
    );
    wait_until("http-top to attach", Duration::from_secs(20), || {
        fs::read_to_string(err)
            .unwrap_or_default()
            .contains("capturing on")
    });
    g
}

/// nginx started in `ns` from `dir/nginx.conf` (whose `pid` is `dir/nginx.pid`), once `port`
/// listens; stopped when dropped.
pub struct Nginx(PathBuf);

impl Nginx {
    pub fn start(ns: &Netns, dir: &std::path::Path, port: u16) -> Self {
        run(ns
            .exec("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf")));
        let g = Self(dir.join("nginx.pid"));
        let name = ns.0.clone();
        wait_until("nginx to listen", Duration::from_secs(10), || {
            let out = Command::new("ip")
                .args(["netns", "exec", &name, "ss", "-ltn"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).contains(&format!(":{port} "))
        });
        g
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Ok(pid) = fs::read_to_string(&self.0) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}
