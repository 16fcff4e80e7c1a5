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
        Self::sized(tag, cmd, 120, 30)
    }

    fn sized(tag: &str, cmd: &str, w: u16, h: u16) -> Self {
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
            &w.to_string(),
            "-y",
            &h.to_string(),
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

    /// A left click at the 0-based cell (`x`, `y`), as a terminal reports it in SGR mouse mode
    /// (what the dashboard asks for): press and release.
    fn click(&self, x: u16, y: u16) {
        let (x, y) = (x + 1, y + 1);
        self.keys(&["-l", &format!("\x1b[<0;{x};{y}M\x1b[<0;{x};{y}m")]);
    }

    /// One notch of the wheel (down, else up) at (`x`, `y`).
    fn wheel(&self, down: bool, x: u16, y: u16) {
        let b = if down { 65 } else { 64 };
        self.keys(&["-l", &format!("\x1b[<{b};{};{}M", x + 1, y + 1)]);
    }

    fn resize(&self, w: u16, h: u16) {
        run(Command::new("tmux").args([
            "resize-window",
            "-t",
            &self.0,
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
        ]));
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

/// The 0-based column of `what` in the screen line that holds it.
fn column_of(screen: &str, what: &str) -> (u16, u16) {
    let (y, line) = screen
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(what))
        .unwrap_or_else(|| panic!("{what} not on screen:\n{screen}"));
    let x = line[..line.find(what).unwrap()].chars().count();
    (x as u16, y as u16)
}

#[test]
#[ignore = "needs tmux (cargo xtask test runs it)"]
fn a_person_reads_the_latency_pictures_with_keys_and_mouse() {
    let bimodal = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/bimodal.pcap");
    let cmd = format!(
        "{BIN} -r {bimodal} -g route --alert 'p99>150ms' --alert-window 3 --slow 300; \
         echo EXITED-$?; sleep 30"
    );
    let t = Tmux::sized("pictures", &cmd, 160, 45);
    let s = t.wait_for("the table", |s| s.contains("787 reqs"));
    // The alerts still firing at the end of the capture are listed in the header.
    assert!(
        s.lines().nth(2).is_some_and(|l| l.starts_with(" ALERTS 2 ")
            && l.contains("/api/items/{id} p99>150ms")
            && l.contains("/api/report p99>150ms")),
        "{s}"
    );
    assert_eq!(rows(&s)[0], ("/api/items/{id}".to_owned(), 683), "{s}");

    // l: the selected route's distribution, quantiles marked, and its heatmap.
    t.keys(&["l"]);
    let s = t.wait_for("the latency panel", |s| s.contains("over time: "));
    assert!(s.contains("/api/items/{id}: 683 since start, p50 "), "{s}");
    assert!(s.contains("◀ p50") && s.contains("◀ p90,p99"), "{s}");
    // j: the panel follows the selection.
    t.keys(&["j"]);
    t.wait_for("the fail route's panel", |s| {
        s.contains("/api/fail/{id}: 72 since start")
    });

    // o: the slowest exchanges of the selection, slowest first.
    t.keys(&["k", "o"]);
    let s = t.wait_for("the slowest panel", |s| {
        s.contains("20 slowest of /api/items/{id}")
    });
    let latencies: Vec<f64> = s
        .lines()
        .filter(|l| l.contains(" GET "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let i = f.iter().position(|x| *x == "200").unwrap();
            f[i + 1].trim_end_matches("ms").parse().unwrap()
        })
        .collect();
    assert!(latencies.len() >= 15, "{s}");
    assert!(
        latencies.windows(2).all(|w| w[0] >= w[1]) && latencies[0] > 180.0,
        "{s}"
    );

    // The mouse: a click on MAX sorts by it, a click on a row selects it, the wheel moves.
    let (x, y) = column_of(&s, "MAX");
    t.click(x + 1, y);
    let s = t.wait_for("sorted by MAX", |s| s.contains("MAX▼"));
    assert_eq!(rows(&s)[0].0, "/api/report", "{s}");
    let (_, y) = column_of(&s, "/api/fail/{id}");
    t.click(10, y);
    let s = t.wait_for("the fail route selected", |s| {
        s.contains("slowest of /api/fail/{id}")
    });
    assert!(s.contains("▶ /api/fail/{id}"), "{s}");
    t.wheel(false, 10, y);
    t.wait_for("the wheel", |s| s.contains("slowest of /api/items/{id}"));

    // Below 80x24 the panel hides and the footer says why; back at size, it returns.
    t.resize(79, 24);
    t.wait_for("the panel hidden", |s| s.contains("needs a 80x24 terminal"));
    t.resize(80, 24);
    t.wait_for("the panel back", |s| s.contains("slowest of"));

    t.keys(&["q"]);
    t.wait_for("exit", |s| s.contains("EXITED-0"));
}
