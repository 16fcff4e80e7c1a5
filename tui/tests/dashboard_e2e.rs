//! The real binary's dashboard in a real terminal (tmux): keys sent with `send-keys`, the screen read
//! with `capture-pane`, asserting what a person would see. `#[ignore]`d (needs tmux and, for the
//! live one, root); `cargo xtask test` runs them.

mod common;

use std::{fs, process::Command, time::Duration};

use common::{BIN, Netns, SUPPORT, run, tmpdir, wait_until, wait_until_or};

/// A tmux session running one command, killed on drop.
struct Tmux(String);

impl Tmux {
    fn start(tag: &str, cmd: &str) -> Self {
        let name = format!("httptop-{tag}-{}", std::process::id());
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &name])
            .output();
        run(Command::new("tmux").args([
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "120",
            "-y",
            "30",
            cmd,
        ]));
        Self(name)
    }

    fn screen(&self) -> String {
        run(Command::new("tmux").args(["capture-pane", "-p", "-t", &self.0]))
    }

    fn keys(&self, keys: &[&str]) {
        run(Command::new("tmux")
            .args(["send-keys", "-t", &self.0])
            .args(keys));
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        wait_until_or(
            what,
            Duration::from_secs(15),
            || cond(&self.screen()),
            || self.screen(),
        );
        self.screen()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

/// The table rows on screen: (group, requests).
fn rows(screen: &str) -> Vec<(String, u64)> {
    screen
        .lines()
        .filter_map(|l| l.strip_prefix("│"))
        .filter_map(|l| {
            let l = l.trim_start_matches(['▶', ' ']);
            let mut f = l.split_whitespace();
            let g = f.next()?;
            let n = f.next()?.parse().ok()?;
            Some((g.to_owned(), n))
        })
        .collect()
}

#[test]
#[ignore = "needs tmux (cargo xtask test runs it)"]
fn a_person_on_the_demo_capture() {
    let dir = tmpdir("tmux");
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/demo.pcap");
    // The dashboard serves metrics too (a port free a moment ago: the dashboard owns the
    // terminal, so it cannot tell us which it took).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cmd = format!(
        "cd {} && {BIN} -r {demo} --export-dir {} --metrics 127.0.0.1:{port}; echo EXITED-$?; \
         sleep 30",
        dir.display(),
        dir.display()
    );
    let t = Tmux::start("demo", &cmd);

    // Rows appear, grouped by server, most requests first.
    let s = t.wait_for("the table", |s| s.contains("756 reqs"));
    let r = rows(&s);
    assert_eq!(r[0], ("10.232.0.1:80".to_owned(), 732), "{s}");
    assert!(s.contains("group: server"));

    // The metrics endpoint counts what the dashboard shows, while the dashboard runs.
    let page = run(Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{port}/metrics")));
    let answered: u64 = page
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(answered, 756, "{page}");

    // g: the grouping title and the rows change.
    t.keys(&["g"]);
    let s = t.wait_for("grouping by port", |s| s.contains("group: port"));
    assert_eq!(
        rows(&s),
        [("80".to_owned(), 744), ("8080".to_owned(), 12)],
        "{s}"
    );
    t.keys(&["g", "g", "g"]);
    let s = t.wait_for("grouping by route", |s| s.contains("group: route"));
    assert_eq!(rows(&s)[0], ("/search".to_owned(), 180), "{s}");
    assert!(rows(&s).iter().any(|(r, _)| r == "/api/bytes/{id}"), "{s}");
    t.keys(&["g", "g"]);
    let s = t.wait_for("grouping by path:1", |s| s.contains("group: path:1"));
    let by_path = rows(&s);
    assert_eq!(by_path[0].0, "/api", "{s}");

    // s: the sort column moves (REQS -> REQ/S ...); 1 sorts by name.
    t.keys(&["1"]);
    let s = t.wait_for("sorted by name", |s| s.contains("PATH:1▲"));
    let names: Vec<String> = rows(&s).into_iter().map(|(g, _)| g).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "{s}");
    t.keys(&["s"]);
    t.wait_for("sorted by requests", |s| s.contains("REQS▼"));

    // /: filter rows.
    t.keys(&["/", "a", "p", "i", "Enter"]);
    let s = t.wait_for("the filter", |s| s.contains("filter: api"));
    assert_eq!(rows(&s), [("/api".to_owned(), 252)], "{s}");

    // e: a CSV whose numbers equal the screen's.
    t.keys(&["e"]);
    let s = t.wait_for("the export message", |s| s.contains("snapshot written to"));
    let csv = fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(".csv"))
        .expect("a csv file");
    let text = fs::read_to_string(csv.path()).unwrap();
    let line = text.lines().nth(1).unwrap();
    assert!(line.starts_with("/api,252,252,0,"), "{line}\n{s}");

    // q: exits, leaving the alternate screen (the shell's next line is on a normal screen).
    t.keys(&["q"]);
    let s = t.wait_for("exit", |s| s.contains("EXITED-0"));
    assert!(
        !s.contains("group: path:1"),
        "the dashboard is still on screen:\n{s}"
    );
}

#[test]
#[ignore = "needs root and tmux (cargo xtask test runs it)"]
fn a_person_watching_live_traffic() {
    let dir = tmpdir("tmuxlive");
    let ns = Netns::new("t");
    let ready = dir.join("ready");
    let _server = common::Guard(
        ns.exec("python3")
            .arg(format!("{SUPPORT}/httpd.py"))
            .args(["127.0.0.1", "8080", "--ready"])
            .arg(&ready)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the server", Duration::from_secs(10), || ready.exists());
    let cmd = format!(
        "ip netns exec {} {BIN} -i lo -g path; echo EXITED-$?; sleep 30",
        ns.0
    );
    let t = Tmux::start("live", &cmd);
    t.wait_for("the dashboard", |s| s.contains("group: path"));
    for i in 0..3 {
        run(ns.exec("curl").args([
            "-s",
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:8080/bytes/{}", 100 + i),
        ]));
    }
    run(ns
        .exec("curl")
        .args(["-s", "-o", "/dev/null", "http://127.0.0.1:8080/status/503"]));
    let s = t.wait_for("four requests", |s| s.contains("4 reqs"));
    let r = rows(&s);
    assert!(r.contains(&("/status/503".to_owned(), 1)), "{s}");
    assert!(s.contains("drops 0"), "{s}");
    t.keys(&["q"]);
    t.wait_for("exit", |s| s.contains("EXITED-0"));
}
