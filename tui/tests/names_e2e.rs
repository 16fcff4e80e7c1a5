//! Process and container names end to end, on a bridge as docker makes one: namespaces with real
//! servers (nginx, python's http.server) and clients (a long-lived python keep-alive client,
//! curl), each joined to a bridge in the root namespace by a veth; http-top captures the bridge.
//!
//! Checked against the processes' own pids (nginx's pid file, the children this test started):
//! every exchange's server and client process and namespace, a namespace and server made after
//! http-top started (found within a few seconds), and the privileges of http-top's threads and of
//! its names helper.
//!
//! Root only: `#[ignore]`d in a plain `cargo test`, run by `cargo xtask test`.

#![expect(
    clippy::print_stderr,
    reason = "tests explain what they are waiting for"
)]

use std::{
    fs,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

mod common;

use common::{BIN, Guard, Netns, Nginx, SUPPORT, ip, run, tmpdir, wait_until};

/// The 10.254.y.0/24 of this test (other tests use other second octets).
const NET: u8 = 254;

/// A bridge in the root namespace (no address of its own), deleted on drop.
struct Bridge {
    name: String,
    next: u8,
    y: u32,
}

impl Bridge {
    fn new() -> Self {
        let name = format!("htbr{}", std::process::id());
        let _ = Command::new("ip")
            .args(["link", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["link", "add", &name, "type", "bridge"]);
        ip(&["link", "set", &name, "up"]);
        Self {
            name,
            next: 1,
            y: std::process::id() % 250,
        }
    }

    /// Plugs `ns` into the bridge; returns its address.
    fn plug(&mut self, ns: &Netns) -> String {
        let host_end = format!("htv{}{}", self.next, std::process::id());
        let addr = format!("10.{NET}.{}.{}", self.y, self.next);
        self.next += 1;
        ip(&[
            "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns.0,
        ]);
        ip(&["link", "set", &host_end, "master", &self.name, "up"]);
        ip(&[
            "-n",
            &ns.0,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns.0, "link", "set", "eth0", "up"]);
        addr
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .status();
    }
}

const PY: &str = "/usr/bin/python3";

fn httpd(ns: &Netns, addr: &str, port: u16, dir: &std::path::Path, tag: &str) -> Guard {
    let ready = dir.join(format!("{tag}.ready"));
    let g = Guard(
        ns.exec(PY)
            .arg(format!("{SUPPORT}/httpd.py"))
            .args([addr, &port.to_string(), "--ready"])
            .arg(&ready)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("python server to listen", Duration::from_secs(10), || {
        ready.exists()
    });
    g
}

fn curl(ns: &Netns, url: &str) {
    run(ns
        .exec("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "5", url]));
}

fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wall_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The `Field:` line of a `/proc/PID/status` (or a task's).
fn status_field(status: &str, k: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(k))
        .unwrap_or_else(|| panic!("no {k} in {status}"))
        .trim()
        .to_owned()
}

/// The children of `pid`, from /proc/*/stat.
fn children(pid: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                // pid (comm) state ppid: comm may hold spaces, so split after the last ')'.
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

#[test]
#[ignore = "root only: run by cargo xtask test"]
fn names_of_servers_and_clients_on_a_bridge() {
    let dir = tmpdir("names");
    let mut br = Bridge::new();
    let srv = Netns::new("srv");
    let cli = Netns::new("cli");
    let srv_addr = br.plug(&srv);
    let _cli_addr = br.plug(&cli);

    let d = dir.display();
    fs::write(
        dir.join("nginx.conf"),
        format!(
            r#"worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    server {{
        listen {srv_addr}:80;
        location / {{ return 200 "hello\n"; }}
    }}
}}
"#
        ),
    )
    .unwrap();
    let _nginx = Nginx::start(&srv, &dir, 80);
    let nginx_pid: u32 = fs::read_to_string(dir.join("nginx.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let py_server = httpd(&srv, &srv_addr, 8080, &dir, "srv");

    // http-top on the bridge: JSON lines, and a headless table grouped by process beside it.
    let out = dir.join("names.jsonl");
    let err = dir.join("names.err");
    let top = Guard(
        Command::new(BIN)
            .args(["-i", &br.name, "--json", "--duration", "60"])
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until("http-top to attach", Duration::from_secs(20), || {
        fs::read_to_string(&err)
            .unwrap_or_default()
            .contains("capturing on")
    });

    // Privileges: no thread of http-top holds a capability; its one child is the names helper,
    // which runs as nobody with exactly its three.
    let top_pid = top.0.id();
    for task in fs::read_dir(format!("/proc/{top_pid}/task"))
        .unwrap()
        .flatten()
    {
        let status = fs::read_to_string(task.path().join("status")).unwrap();
        for k in ["CapEff:", "CapPrm:", "CapBnd:", "CapInh:"] {
            assert_eq!(
                status_field(&status, k),
                "0000000000000000",
                "{k} of a thread"
            );
        }
    }
    let kids = children(top_pid);
    assert_eq!(kids.len(), 1, "http-top's children: {kids:?}");
    // It restricts itself first thing after its exec; wait for that.
    let helper_status = format!("/proc/{}/status", kids[0]);
    wait_until(
        "the helper to restrict itself",
        Duration::from_secs(5),
        || {
            fs::read_to_string(&helper_status)
                .is_ok_and(|s| status_field(&s, "Uid:").starts_with("65534"))
        },
    );
    let helper = fs::read_to_string(&helper_status).unwrap();
    eprintln!(
        "names helper: Uid {} CapEff {} CapBnd {} NoNewPrivs {}",
        status_field(&helper, "Uid:"),
        status_field(&helper, "CapEff:"),
        status_field(&helper, "CapBnd:"),
        status_field(&helper, "NoNewPrivs:")
    );
    // CAP_DAC_READ_SEARCH | CAP_SYS_PTRACE | CAP_SYS_ADMIN.
    for k in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(
            status_field(&helper, k),
            "0000000000280004",
            "{k} of the helper"
        );
    }
    assert_eq!(status_field(&helper, "CapInh:"), "0000000000000000");
    assert_eq!(status_field(&helper, "Uid:"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(&helper, "NoNewPrivs:"), "1");

    // A long-lived client on two keep-alive connections, and short-lived curls.
    let mut keepalive = Guard(
        cli.exec(PY)
            .arg(format!("{SUPPORT}/keepalive.py"))
            .args(["40", "0.1"])
            .arg(format!("http://{srv_addr}:80/ka"))
            .arg(format!("http://{srv_addr}:8080/bytes/100"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let keepalive_pid = keepalive.0.id();
    for i in 0..5 {
        curl(&cli, &format!("http://{srv_addr}:80/curl/{i}"));
    }

    // A namespace and a server made after http-top started.
    let late = Netns::new("late");
    let late_addr = br.plug(&late);
    let late_server = httpd(&late, &late_addr, 8081, &dir, "late");
    // Capture time is the wall clock: the first exchange named is compared with the moment the
    // server listened (the JSON lines themselves may wait in http-top's output buffer).
    let born = wall_s();
    let late_name = format!("python3[{}]", late_server.0.id());
    let started = Instant::now();
    let named_at = loop {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the late server was never named:\n{}",
            fs::read_to_string(&out).unwrap()
        );
        curl(&cli, &format!("http://{late_addr}:8081/bytes/10"));
        let named = json_lines(&out)
            .into_iter()
            .find(|v| v["server_process"] == late_name)
            .and_then(|v| v["ts"].as_f64());
        if let Some(ts) = named {
            break ts;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let after = named_at - born;
    eprintln!("late namespace and server named {after:.3} s after they started");
    assert!(after < 5.0, "{after}");

    // It stops by itself (40 rounds, and at most 60 s).
    assert!(keepalive.0.wait().unwrap().success());
    let status = top.interrupt("http-top");
    assert!(status.success());

    let lines = json_lines(&out);
    let by = |server: String| -> Vec<&serde_json::Value> {
        lines.iter().filter(|v| v["server"] == server).collect()
    };
    let nginx = by(format!("{srv_addr}:80"));
    let python = by(format!("{srv_addr}:8080"));
    eprintln!(
        "{} exchanges with nginx, {} with python",
        nginx.len(),
        python.len()
    );
    // Every exchange after the first scan names the server: nginx's master (its pid file) holds
    // the listening socket its workers share, python's server is the process this test started.
    let nginx_name = format!("nginx[{nginx_pid}]");
    let python_name = format!("python3[{}]", py_server.0.id());
    assert!(nginx.len() >= 45 && python.len() >= 40);
    for v in nginx.iter().chain(&python) {
        let want = if v["server"] == format!("{srv_addr}:80") {
            &nginx_name
        } else {
            &python_name
        };
        assert_eq!(v["server_process"], *want, "{v}");
        assert_eq!(v["server_container"], srv.0, "{v}");
        assert_eq!(v["client_container"], cli.0, "{v}");
    }
    // The keep-alive client, with its pid: its connections were made after the last scan, so its
    // first exchanges are `_unknown` until the scan their miss asked for (at most MIN_GAP, 0.5 s,
    // after the previous one); from then on every one is named.
    let ka_name = format!("python3[{keepalive_pid}]");
    let ka: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| {
            v["target"]
                .as_str()
                .is_some_and(|t| t == "/ka" || t == "/bytes/100")
        })
        .collect();
    assert_eq!(ka.len(), 80, "the keep-alive client made 40 rounds of two");
    // Per connection (the client's two keep-alive connections are two sockets, each found by
    // the first scan after it was made): `_unknown` first, then named for good.
    let mut conns: std::collections::BTreeMap<String, Vec<&serde_json::Value>> = Default::default();
    for v in &ka {
        conns
            .entry(v["client"].as_str().unwrap().to_owned())
            .or_default()
            .push(v);
    }
    assert_eq!(conns.len(), 2, "{conns:?}");
    for (client, ex) in conns {
        let first_named = ex
            .iter()
            .position(|v| v["client_process"] == ka_name)
            .unwrap_or_else(|| panic!("{client} never named {ka_name}"));
        assert!(
            ex[first_named..]
                .iter()
                .all(|v| v["client_process"] == ka_name),
            "{client}: once named, always named"
        );
        assert!(
            ex[..first_named]
                .iter()
                .all(|v| v["client_process"] == "_unknown")
        );
        let unnamed_for = ex[first_named]["ts"].as_f64().unwrap() - ex[0]["ts"].as_f64().unwrap();
        eprintln!(
            "keep-alive connection {client}: {first_named} of {} exchanges unnamed, for {unnamed_for:.3} s",
            ex.len()
        );
        assert!(unnamed_for < 5.0, "{unnamed_for}");
    }
    // The late namespace by its name.
    assert!(lines.iter().any(|v| v["server_container"] == late.0));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "root only: run by cargo xtask test"]
fn files_are_unresolved_unless_asked_and_strangers_are_remote() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/demo.pcap");
    let table = |key: &str, extra: &[&str]| {
        run(Command::new(BIN)
            .args(["-r", demo, "--headless", "-g", key])
            .args(extra))
    };
    let plain = table("container", &[]);
    assert!(plain.contains("_unresolved"), "{plain}");
    // The demo's addresses live nowhere on this machine.
    let resolved = table("container", &["--resolve-names"]);
    let rows: Vec<&str> = resolved.lines().skip(1).filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 1, "{resolved}");
    assert!(rows[0].starts_with("_remote "), "{resolved}");
    let clients = table("client-process", &["--resolve-names"]);
    assert!(
        clients.lines().nth(1).unwrap().starts_with("_remote "),
        "{clients}"
    );
}
