//! The dashboard rendered into ratatui's TestBackend, on exchanges from the bundled demo capture.

use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::{Terminal, backend::TestBackend, style::Color};

use super::*;
use crate::{proto::RequestLine, text::ellipsize};

/// Every exchange of the demo capture, and the capture time of its last packet.
fn demo_exchanges() -> (Vec<Exchange>, u64) {
    let (mut ex, p) = crate::pipeline::read_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/demo.pcap"),
    );
    // Routes, as the session's loop decides them.
    let mut router = crate::stats::route::Router::new(Default::default());
    for e in ex.iter_mut().filter(|e| e.request_seen && !e.unparsable) {
        e.route = e
            .target()
            .map(|t| router.route(crate::stats::key::path_of(t)));
    }
    (ex, p.now_ns())
}

fn app() -> App {
    let (ex, now) = demo_exchanges();
    let stats = Stats::new(GroupKey::standard_set(&GroupKey::Server, false), 1000);
    let mut a = App::new(
        stats,
        "demo.pcap".into(),
        Units::Human,
        std::env::temp_dir(),
    );
    let first = ex
        .iter()
        .map(|e| e.req_first_ns)
        .filter(|t| *t > 0)
        .min()
        .unwrap();
    a.ingest(ex);
    a.tick(first + 1_000_000_000);
    a.tick(now);
    a
}

fn render(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    // As the dashboard's loop does before each frame.
    app.page = render::page_rows(app, ratatui::layout::Rect::new(0, 0, w, h));
    app.refresh();
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    // The header's uptime is drawn at the time given: the start, so frames are reproducible.
    let now = app.started;
    t.draw(|f| render::draw(f, app, now)).unwrap();
    t
}

fn lines(t: &Terminal<TestBackend>) -> Vec<String> {
    let buf = t.backend().buffer();
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect::<String>()
        })
        .collect()
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

/// A key as the dashboard's loop handles it: the view is refreshed first (as before every frame),
/// and what the action asks of the outside world is carried out.
fn press(app: &mut App, k: KeyEvent) {
    app.refresh();
    if let Some(a) = map_key(k, app.mode())
        && let Some(effect) = app.apply(a)
    {
        run::carry_out(app, effect);
    }
}

#[test]
fn keymap_covers_the_documented_keys() {
    assert_eq!(map_key(key('q'), Mode::Table), Some(Action::Quit));
    assert_eq!(
        map_key(
            KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Mode::Filter
        ),
        Some(Action::Quit)
    );
    assert_eq!(map_key(key('g'), Mode::Table), Some(Action::NextGroupKey));
    assert_eq!(map_key(key('G'), Mode::Table), Some(Action::PrevGroupKey));
    assert_eq!(map_key(key('<'), Mode::Table), Some(Action::SortPrev));
    assert_eq!(map_key(key('I'), Mode::Table), Some(Action::Reverse));
    assert_eq!(map_key(key('3'), Mode::Table), Some(Action::SortBy(3)));
    assert_eq!(map_key(key(' '), Mode::Table), Some(Action::Pause));
    // While filtering, letters are text, not commands.
    assert_eq!(
        map_key(key('q'), Mode::Filter),
        Some(Action::FilterChar('q'))
    );
    assert_eq!(
        map_key(
            KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
            Mode::Filter
        ),
        Some(Action::FilterClear)
    );
    // Any key closes help.
    assert_eq!(map_key(key('x'), Mode::Help), Some(Action::Help));
    // Every key the help lists is one the keymap knows.
    for (keys, _) in render::HELP {
        assert!(!keys.is_empty());
    }
}

#[test]
fn populated_table_whole_lines() {
    let mut a = app();
    let t = render(&mut a, 120, 30);
    let l = lines(&t);
    assert!(
        l[0].starts_with(" http-top  demo.pcap │ up 00:00:00 │ capture 00:00:3"),
        "{}",
        l[0]
    );
    assert!(l[0].contains("│ group: server"));
    assert!(l[1].contains("756 reqs"), "{}", l[1]);
    assert!(l[1].contains("drops 0 gaps 0 errors 0"), "{}", l[1]);
    assert!(
        l[3].contains("SERVER") && l[3].contains("REQS▼"),
        "{}",
        l[3]
    );
    assert!(
        l[4].starts_with("│▶ 10.232.0.1:80 ") && l[4].contains(" 732 "),
        "{}",
        l[4]
    );
    assert!(
        l[5].starts_with("│  10.232.0.1:8080 ") && l[5].contains(" 12 "),
        "{}",
        l[5]
    );
    assert!(l[6].starts_with("│  [fd00:4855::1]:80 "), "{}", l[6]);
    assert!(l[29].starts_with(" q quit · g/G group"), "{}", l[29]);
    insta::assert_snapshot!("table_120x30", l.join("\n"));
}

#[test]
fn each_grouping_key_shows_its_groups() {
    let mut a = app();
    let want = [
        ("server", "10.232.0.1:80"),
        ("port", "80"),
        ("client", "10.232.0.2"),
        ("host", "shop.example"),
        ("route", "/search"),
        ("path", "/search"),
        ("path:1", "/api"),
        ("query:s", "_unspecified"),
        ("method", "GET"),
        ("status", "2xx"),
        ("proto", "HTTP/1.1"),
        ("grpc", "_unspecified"),
    ];
    for (key_name, top) in want {
        let t = render(&mut a, 120, 20);
        let l = lines(&t);
        assert!(l[0].contains(&format!("group: {key_name}")), "{}", l[0]);
        assert!(
            l[3].contains(&key_name.to_uppercase()),
            "{key_name}: {}",
            l[3]
        );
        assert!(
            l[4].starts_with(&format!("│▶ {top} ")),
            "{key_name}: {}",
            l[4]
        );
        press(&mut a, key('g'));
    }
    // Round trip back to the first key.
    assert_eq!(a.key(), &GroupKey::Server);
}

#[test]
fn sorting_by_column_and_reverse() {
    let mut a = app();
    press(&mut a, key('1')); // group name, ascending
    let l = lines(&render(&mut a, 120, 20));
    assert!(l[3].contains("SERVER▲"), "{}", l[3]);
    assert!(l[4].starts_with("│▶ 10.232.0.1:80 "), "{}", l[4]);
    assert!(l[6].starts_with("│  [fd00:4855::1]:80 "), "{}", l[6]);
    press(&mut a, key('1')); // again: descending
    let l = lines(&render(&mut a, 120, 20));
    assert!(l[3].contains("SERVER▼"));
    assert!(l[4].starts_with("│▶ [fd00:4855::1]:80 "), "{}", l[4]);
    press(&mut a, key('s')); // next column: REQS, descending
    let l = lines(&render(&mut a, 120, 20));
    assert!(l[3].contains("REQS▼"));
    assert!(l[4].starts_with("│▶ 10.232.0.1:80 "));
    press(&mut a, key('r'));
    let l = lines(&render(&mut a, 120, 20));
    assert!(l[3].contains("REQS▲"));
    assert!(!l[4].starts_with("│▶ 10.232.0.1:80 "), "{}", l[4]);
}

#[test]
fn filter_keeps_matching_rows_case_insensitively() {
    let mut a = app();
    press(&mut a, key('g')); // port
    press(&mut a, key('g')); // client
    press(&mut a, key('/'));
    for c in "FD00".chars() {
        press(&mut a, key(c));
    }
    let l = lines(&render(&mut a, 120, 20));
    assert!(l[2].contains("filter: FD00▏ (1 groups)"), "{}", l[2]);
    assert!(l[4].starts_with("│▶ fd00:4855::2 "), "{}", l[4]);
    assert!(l[5].starts_with("│  "), "{}", l[5]);
    assert!(!l[5].contains("10.232"), "{}", l[5]);
    press(&mut a, KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    let l = lines(&render(&mut a, 120, 20));
    assert!(l[2].contains("5 groups"), "{}", l[2]);
}

#[test]
fn pause_freezes_the_view_but_not_the_counting() {
    let mut a = app();
    press(&mut a, key(' '));
    let before = lines(&render(&mut a, 120, 20));
    assert!(before[0].contains("PAUSED"), "{}", before[0]);
    let (more, _) = demo_exchanges();
    a.ingest(more);
    let during = lines(&render(&mut a, 120, 20));
    assert!(during[1].contains("756 reqs"), "{}", during[1]);
    press(&mut a, key('p'));
    let after = lines(&render(&mut a, 120, 20));
    assert!(!after[0].contains("PAUSED"));
    assert!(after[1].contains("1512 reqs"), "{}", after[1]);
}

#[test]
fn help_overlay_lists_every_key() {
    let mut a = app();
    press(&mut a, key('?'));
    let l = lines(&render(&mut a, 100, 30)).join("\n");
    for (k, d) in render::HELP {
        assert!(l.contains(k) && l.contains(&d[..d.len().min(30)]), "{k}");
    }
    press(&mut a, key('x'));
    assert_eq!(a.mode(), Mode::Table);
}

#[test]
fn drill_down_breaks_the_group_down_by_path_and_lists_exchanges() {
    let mut a = app();
    press(&mut a, key('g')); // port
    press(&mut a, KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let l = lines(&render(&mut a, 120, 30));
    assert!(
        l[2].contains("port = 80 by path (744 requests)"),
        "{}",
        l[2]
    );
    assert!(l[3].contains("PATH"), "{}", l[3]);
    let log_title = l
        .iter()
        .position(|x| x.contains("recent exchanges"))
        .unwrap();
    // Newest first: the demo's last request.
    assert!(
        l[log_title + 1].contains("10.232.0."),
        "{}",
        l[log_title + 1]
    );
    assert!(
        l[log_title + 1].contains("GET")
            || l[log_title + 1].contains("POST")
            || l[log_title + 1].contains("HEAD")
    );
    press(&mut a, KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    assert!(a.drill().is_none());
}

#[test]
fn a_route_drills_down_into_its_paths() {
    let mut a = app();
    for _ in 0..4 {
        press(&mut a, key('g')); // port, client, host, route
    }
    press(&mut a, key('j')); // the second route: /api/bytes/{id}
    press(&mut a, KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let l = lines(&render(&mut a, 120, 30));
    assert!(
        l[2].contains("route = /api/bytes/{id} by path (72 requests)"),
        "{}",
        l[2]
    );
    let paths: Vec<&String> = l[4..]
        .iter()
        .take_while(|x| x.contains("/api/bytes/"))
        .collect();
    assert!(paths.len() > 1, "{l:#?}");
    assert!(paths.iter().all(|p| !p.contains("{id}")), "{paths:?}");
}

#[test]
fn warnings_are_coloured_when_numbers_are_incomplete() {
    let mut a = app();
    a.health.capture.ring_drops = 3;
    a.health.totals.flows.gaps = 0;
    let t = render(&mut a, 120, 20);
    let l = lines(&t);
    let x = l[1].find("drops 3").unwrap();
    let col = l[1][..x].chars().count() as u16;
    assert_eq!(t.backend().buffer()[(col, 1)].fg, Color::Yellow);
    let g = l[1].find("gaps 0").unwrap();
    let gcol = l[1][..g].chars().count() as u16;
    assert_eq!(t.backend().buffer()[(gcol, 1)].fg, Color::Reset);
}

#[test]
fn a_live_capture_shows_the_body_bytes_the_filter_skipped() {
    let mut a = app();
    let t = render(&mut a, 160, 20);
    assert!(!lines(&t)[1].contains("skipped"), "a file has no filter");
    a.health.live = true;
    a.health.capture.filter_skipped_bytes = 3 << 30;
    let t = render(&mut a, 160, 20);
    let l = lines(&t);
    assert!(l[1].contains("skipped 3.0 GiB"), "{}", l[1]);
}

#[test]
fn small_and_degenerate_areas_never_panic() {
    let mut a = app();
    for (w, h) in [
        (80, 24),
        (40, 10),
        (20, 5),
        (1, 1),
        (0, 0),
        (200, 3),
        (3, 200),
    ] {
        let _ = render(&mut a, w, h);
        press(&mut a, key('?'));
        let _ = render(&mut a, w, h);
        press(&mut a, key('?'));
        press(&mut a, KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
        let _ = render(&mut a, w, h);
        press(&mut a, KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    }
    // 80x24: columns are dropped, not wrapped, and long names end in an ellipsis.
    let l = lines(&render(&mut a, 80, 24));
    assert!(l.iter().all(|x| x.chars().count() == 80));
    insta::assert_snapshot!("table_80x24", l.join("\n"));
}

#[test]
fn export_writes_the_view_with_the_csv_columns() {
    let mut a = app();
    let dir = std::env::temp_dir().join(format!("http-top-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    a.export_dir = dir.clone();
    press(&mut a, key('e'));
    let msg = a.message(std::time::Instant::now()).unwrap().to_owned();
    assert!(msg.starts_with("snapshot written to "), "{msg}");
    let path = msg.trim_start_matches("snapshot written to ");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.starts_with("group,requests,responses,no_response,bytes_in,bytes_out,"));
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("10.232.0.1:80,732,732,0,"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_column_sorts_both_ways() {
    let mut a = app();
    press(&mut a, key('g')); // port
    press(&mut a, key('g')); // client: several groups with different numbers
    let span = a.shown().span();
    let ordered = |a: &mut App, col: Column| {
        a.refresh();
        let v: Vec<f64> = a
            .view()
            .iter()
            .map(|r| col.value(r, span, a.rates))
            .collect();
        let ok = if a.descending {
            v.windows(2).all(|w| w[0] >= w[1])
        } else {
            v.windows(2).all(|w| w[0] <= w[1])
        };
        assert!(ok, "{col:?} descending={}: {v:?}", a.descending);
    };
    // Digits reach the first nine columns; s walks through all of them.
    for n in 2..=9 {
        let col = a.columns()[n - 1];
        press(&mut a, key(char::from(b'0' + n as u8)));
        assert_eq!(a.sort, col);
        ordered(&mut a, col);
        let before = a.descending;
        press(&mut a, key(char::from(b'0' + n as u8)));
        assert_ne!(a.descending, before, "pressing {n} again reverses");
        ordered(&mut a, col);
    }
    for _ in 0..a.columns().len() {
        press(&mut a, key('s'));
        let sort = a.sort;
        ordered(&mut a, sort);
    }
}

#[test]
fn the_dashboard_never_prints_wire_bytes_raw() {
    let (mut ex, _) = demo_exchanges();
    ex.truncate(3);
    for e in &mut ex {
        e.request = Some(RequestLine::new(
            b"GET",
            b"/\x1b[31mred\r\n",
            Some(b"evil\x1b]0;pwned\x07\x1b[2J.example"),
        ));
    }
    let stats = Stats::new(GroupKey::standard_set(&GroupKey::Host, false), 1000);
    let mut a = App::new(stats, "x".into(), Units::Human, std::env::temp_dir());
    a.ingest(ex);
    let t = render(&mut a, 120, 20);
    let screen = lines(&t).join("\n");
    assert!(
        screen.contains("evil\\x1b]0;pwned\\x07\\x1b[2J.example"),
        "{screen}"
    );
    assert!(!screen.contains('\x1b') && !screen.contains('\x07'));
    press(&mut a, KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let screen = lines(&render(&mut a, 120, 30)).join("\n");
    assert!(screen.contains("/\\x1b[31mred\\x0d\\x0a"), "{screen}");
    assert!(!screen.contains('\x1b'));
}

/// The dashboard after a capture replayed as the session does it: routes decided, a tick every
/// second of capture time, the exchanges of each tick ingested before it closes.
fn replayed(capture: &str, first: &GroupKey, rules: &[&str]) -> App {
    let (mut ex, p) = crate::pipeline::read_file(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../assets")
            .join(capture),
    );
    let mut router = crate::stats::route::Router::new(Default::default());
    for e in ex.iter_mut().filter(|e| e.request_seen && !e.unparsable) {
        e.route = e
            .target()
            .map(|t| router.route(crate::stats::key::path_of(t)));
    }
    let end = |e: &Exchange| e.resp_last_ns.max(e.req_last_ns);
    ex.sort_by_key(end);
    let stats = Stats::new(GroupKey::standard_set(first, false), 1000);
    let mut a = App::new(stats, capture.into(), Units::Human, std::env::temp_dir());
    let rules = crate::stats::alert::Rules::new(rules.iter().map(|r| r.parse().unwrap()).collect());
    a.watch_alerts(rules.unwrap(), 3);
    let mut next = ex.first().map_or(0, end) + 1_000_000_000;
    for e in ex {
        while end(&e) >= next {
            a.tick(next);
            next += 1_000_000_000;
        }
        a.ingest([e]);
    }
    // As the dashboard at the end of a file: the partial last tick is not closed.
    let _ = p;
    a
}

/// Selects the row whose group is `group`.
fn select(a: &mut App, group: &str) {
    a.refresh();
    a.selected = a.view().iter().position(|r| r.group == group).unwrap();
}

/// The rows of the latency panel's histogram: (bucket floor as drawn, count, marks).
fn histogram_rows(l: &[String]) -> Vec<(String, u64, String)> {
    let top = l.iter().position(|x| x.contains(" p50 ")).unwrap();
    l[top + 1..]
        .iter()
        .take_while(|x| !x.starts_with('└'))
        .filter(|x| {
            x.chars().nth(2).is_some_and(|c| c != ' ') || x.chars().nth(5).is_some_and(|c| c != ' ')
        })
        .map(|x| {
            let left: String = x.chars().skip(1).take_while(|c| *c != '│').collect();
            let (body, marks) = left.split_once('◀').unwrap_or((&left, ""));
            let f: Vec<&str> = body.split_whitespace().collect();
            let count = f.last().unwrap().parse().unwrap();
            (f[0].to_owned(), count, marks.trim().to_owned())
        })
        .collect()
}

fn micros_of(label: &str) -> f64 {
    let (n, scale) = if let Some(n) = label.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = label.strip_suffix("µs") {
        (n, 1.0)
    } else {
        (label.strip_suffix('s').unwrap(), 1e6)
    };
    n.parse::<f64>().unwrap() * scale
}

/// nginx's `$request_time` of every `/api/items/` request of the bimodal capture, ms.
fn nginx_items_ms() -> Vec<f64> {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/bimodal.pcap.nginx.log"),
    )
    .unwrap()
    .lines()
    .filter(|l| l.contains("\"GET /api/items/"))
    .map(|l| l.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() * 1e3)
    .collect()
}

#[test]
fn the_latency_panel_shows_the_two_modes_nginx_logged() {
    let mut a = replayed("bimodal.pcap", &GroupKey::Route, &[]);
    select(&mut a, "/api/items/{id}");
    press(&mut a, key('l'));
    let nginx = nginx_items_ms();
    for (w, h) in [(160, 45), (80, 24)] {
        let l = lines(&render(&mut a, w, h));
        assert!(l.iter().all(|x| x.chars().count() == usize::from(w)));
        let rows = histogram_rows(&l);
        // Each mode's exchanges land below, between and above the gaps nginx's log shows. A row
        // spans its floor to the floor of the row above it (rows go slowest first); the rows
        // wholly inside [lo, hi) are compared with nginx's requests in the span they cover.
        let count = |lo: f64, hi: f64| -> (u64, usize) {
            let spans: Vec<(f64, f64, u64)> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let ceil = if i == 0 {
                        f64::INFINITY
                    } else {
                        micros_of(&rows[i - 1].0)
                    };
                    let floor = if i == rows.len() - 1 {
                        0.0
                    } else {
                        micros_of(&r.0)
                    };
                    (floor, ceil, r.1)
                })
                .filter(|(f, c, _)| *f >= lo && *c <= hi)
                .collect();
            let from = spans.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
            let to = spans.iter().map(|s| s.1).fold(0.0, f64::max);
            let drawn = spans.iter().map(|s| s.2).sum();
            let logged = nginx
                .iter()
                .filter(|ms| (from / 1e3..to / 1e3).contains(*ms))
                .count();
            (drawn, logged)
        };
        let (hits, hits_logged) = count(0.0, 20_000.0);
        let (misses, misses_logged) = count(20_000.0, f64::INFINITY);
        assert_eq!(hits as usize, hits_logged, "{w}x{h}: {rows:?}");
        assert_eq!(misses as usize, misses_logged, "{w}x{h}: {rows:?}");
        assert!(hits > 400 && misses > 200, "{rows:?}");
        // p50 among the hits, p90 and p99 among the slow misses after the "deploy".
        let mark = |m: &str| micros_of(&rows.iter().find(|r| r.2.contains(m)).unwrap().0);
        assert!(mark("p50") < 10_000.0, "{rows:?}");
        assert!(
            mark("p90") >= 100_000.0 && mark("p99") >= 100_000.0,
            "{rows:?}"
        );
        // Nothing between the hits and the misses, on screen as in nginx's log.
        assert_eq!(count(16_000.0, 63_000.0), (0, 0), "{rows:?}");
        insta::assert_snapshot!(format!("latency_bimodal_{w}x{h}"), l.join("\n"));
    }
}

#[test]
fn the_heatmap_shows_the_slow_mode_moving_after_the_deploy() {
    let mut a = replayed("bimodal.pcap", &GroupKey::Route, &[]);
    select(&mut a, "/api/items/{id}");
    press(&mut a, key('l'));
    let l = lines(&render(&mut a, 160, 45));
    let top = l.iter().position(|x| x.contains(" over time: ")).unwrap();
    let title = &l[top];
    // The heatmap's box starts at the second corner of its title line.
    let left = title
        .chars()
        .enumerate()
        .filter(|(_, c)| *c == '┌')
        .nth(1)
        .unwrap()
        .0
        + 1;
    let ticks: usize = title
        .split(" over time: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((21..=24).contains(&ticks), "{title}");
    // The heatmap is the right part of each line: label, then one column per tick.
    let cells: Vec<(f64, Vec<usize>)> = l[top + 1..]
        .iter()
        .take_while(|x| !x.starts_with('└') && !x.contains(" now"))
        .filter_map(|x| {
            let right: String = x.chars().skip(left).collect();
            let label: String = right.chars().take(7).collect();
            let label = label.trim();
            if label.is_empty() {
                return None;
            }
            let cols: Vec<char> = right.chars().skip(7).take_while(|c| *c != '│').collect();
            let shaded = cols.len() - ticks;
            let used = (shaded..cols.len())
                .filter(|i| cols[*i] != ' ')
                .map(|i| i - shaded);
            Some((micros_of(label), used.collect()))
        })
        .collect();
    let row_of = |us: f64| {
        cells
            .iter()
            .filter(|(floor, _)| *floor <= us)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap()
            .1
            .clone()
    };
    let (misses_80, misses_180) = (row_of(81_000.0), row_of(182_000.0));
    // Phases A and B (14 s) have their misses at 80 ms, phase C (8 s) at 180 ms: two bands, one
    // after the other, meeting in at most one tick.
    assert!((12..=16).contains(&misses_80.len()), "{misses_80:?}");
    assert!((6..=10).contains(&misses_180.len()), "{misses_180:?}");
    assert!(
        misses_80.last().unwrap() <= &(misses_180[0] + 1),
        "{cells:?}"
    );
    // The hits run through every tick.
    assert!(row_of(3_500.0).len() >= ticks - 1, "{cells:?}");
}

#[test]
fn the_latency_panel_on_the_demo_and_its_drill_down() {
    let mut a = replayed("demo.pcap", &GroupKey::Server, &[]);
    select(&mut a, "10.232.0.1:80");
    press(&mut a, key('l'));
    for (w, h) in [(160, 45), (80, 24)] {
        let l = lines(&render(&mut a, w, h));
        let rows = histogram_rows(&l);
        let total: u64 = rows.iter().map(|r| r.1).sum();
        // Every answered request of the server, as its table row counts them.
        let row = a.view()[a.selected].clone();
        assert_eq!(total, row.agg.latency.len(), "{rows:?}");
        insta::assert_snapshot!(format!("latency_demo_{w}x{h}"), l.join("\n"));
    }
    // In the drill-down the panel follows the selected breakdown row.
    press(&mut a, KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let l = lines(&render(&mut a, 160, 45));
    let row = a.view()[a.selected].clone();
    assert!(
        l.iter().any(|x| x.contains(&format!(
            "{}: {} since start",
            ellipsize(&row.group, 24),
            row.agg.latency.len()
        ))),
        "{l:#?}"
    );
    // Below 80x24 the panel hides, and the footer says why.
    let l = lines(&render(&mut a, 79, 24));
    assert!(!l.iter().any(|x| x.contains("since start")));
    assert!(l[23].contains("needs a 80x24 terminal"), "{}", l[23]);
}

#[test]
fn the_slowest_exchanges_of_a_group_slowest_first() {
    for (capture, key_, group) in [
        ("bimodal.pcap", GroupKey::Route, "/api/items/{id}"),
        ("demo.pcap", GroupKey::Server, "10.232.0.1:80"),
    ] {
        let mut a = replayed(capture, &key_, &[]);
        select(&mut a, group);
        press(&mut a, key('o'));
        let row = a.view()[a.selected].clone();
        let list = row.slowest.list();
        assert_eq!(list.len(), SLOWEST.min(row.agg.latency.len() as usize));
        assert!(list.windows(2).all(|w| w[0].latency_us >= w[1].latency_us));
        // The slowest is the histogram's maximum.
        let h = &row.agg.latency;
        assert_eq!(h.max(), h.highest_equivalent(list[0].latency_us));
        let tag = capture.trim_end_matches(".pcap");
        for (w, h) in [(160, 45), (80, 24)] {
            let l = lines(&render(&mut a, w, h));
            let title = l.iter().position(|x| x.contains(" slowest of ")).unwrap();
            assert!(l[title + 1].contains("TIME") && l[title + 1].contains("TARGET"));
            assert!(
                l[title + 2].contains(&fmt_us_human(list[0].latency_us)),
                "{}",
                l[title + 2]
            );
            insta::assert_snapshot!(format!("slowest_{tag}_{w}x{h}"), l.join("\n"));
        }
    }
}

fn fmt_us_human(us: u64) -> String {
    crate::units::micros(us as f64)
}

#[test]
fn alerts_and_slow_groups_are_marked_and_listed() {
    let mut a = replayed("bimodal.pcap", &GroupKey::Route, &["p99>150ms", "5xx>1/s"]);
    a.slow_us = Some(300_000);
    let t = render(&mut a, 160, 45);
    let l = lines(&t);
    // At the end of the capture: the items' slow misses and the reports (the 503s stopped).
    assert!(l[2].starts_with(" ALERTS 2 "), "{}", l[2]);
    assert!(
        l[2].contains("/api/items/{id} p99>150ms (") && l[2].contains("/api/report p99>150ms"),
        "{}",
        l[2]
    );
    let buf = t.backend().buffer();
    let row_y = |g: &str| {
        l.iter()
            .position(|x| x.starts_with('│') && x.contains(&format!(" {g} ")))
            .unwrap() as u16
    };
    let group_x = 3;
    assert_eq!(buf[(group_x, row_y("/api/report"))].fg, Color::Red);
    assert_eq!(buf[(group_x, row_y("/api/fail/{id}"))].fg, Color::Reset);
    // --slow 300 ms: only the reports' p99 is above it.
    let p99_x = l[4].find("P99").unwrap() as u16;
    let p99_x = l[4][..p99_x as usize].chars().count() as u16;
    assert_eq!(buf[(p99_x + 1, row_y("/api/report"))].fg, Color::Magenta);
    assert_eq!(buf[(p99_x + 1, row_y("/api/items/{id}"))].fg, Color::Reset);
    // `c` clears the alerts with the statistics.
    press(&mut a, key('c'));
    let l = lines(&render(&mut a, 160, 45));
    assert!(!l[2].contains("ALERTS"), "{}", l[2]);
}

#[test]
fn the_mouse_sorts_selects_and_scrolls() {
    let mut a = replayed("demo.pcap", &GroupKey::Client, &[]);
    let area = ratatui::layout::Rect::new(0, 0, 120, 30);
    let l = lines(&render(&mut a, 120, 30));
    let mouse =
        |a: &App, kind, x: u16, y: u16| map_mouse(kind, render::hit(a, area, x, y), a.mode());
    let click = crossterm::event::MouseEventKind::Down(crossterm::event::MouseButton::Left);
    // A click on the AVG title sorts by it; again reverses.
    let x = l[3][..l[3].find("AVG").unwrap()].chars().count() as u16;
    let act = mouse(&a, click, x + 1, 3).unwrap();
    a.apply(act);
    assert_eq!(a.sort, Column::Metric(Metric::LatencyAvg));
    assert!(a.descending);
    let act = mouse(&a, click, x + 1, 3).unwrap();
    a.apply(act);
    assert!(!a.descending);
    let l = lines(&render(&mut a, 120, 30));
    assert!(l[3].contains("AVG▲"), "{}", l[3]);
    // A click on the third row selects it; the wheel moves the selection.
    let act = mouse(&a, click, 10, 6).unwrap();
    a.apply(act);
    assert_eq!(a.selected, 2);
    let l = lines(&render(&mut a, 120, 30));
    assert!(l[6].starts_with("│▶ "), "{}", l[6]);
    let act = mouse(&a, crossterm::event::MouseEventKind::ScrollUp, 50, 20).unwrap();
    a.apply(act);
    assert_eq!(a.selected, 1);
    // Outside the table, a click does nothing; under help, the mouse does nothing.
    assert_eq!(mouse(&a, click, 10, 0), None);
    press(&mut a, key('?'));
    assert_eq!(mouse(&a, click, 10, 6), None);
}

#[test]
fn on_a_tall_terminal_the_latency_panel_has_a_place_of_its_own() {
    let mut a = replayed("bimodal.pcap", &GroupKey::Route, &[]);
    select(&mut a, "/api/items/{id}");
    // 160x60: the sparkline and, under it, the latency panel, without a key.
    let l = lines(&render(&mut a, 160, 60));
    let spark = l
        .iter()
        .position(|x| x.contains("requests per tick"))
        .unwrap();
    let lat = l
        .iter()
        .position(|x| x.contains("/api/items/{id}: 683 since start"))
        .unwrap();
    assert!(spark < lat, "{l:#?}");
    assert!(l.iter().any(|x| x.contains(" over time: ")));
    // Still the table's page: the rows a page holds are what the table shows.
    assert!(a.page >= 10, "{}", a.page);
    // Shorter than that, only `l` shows it.
    let l = lines(&render(&mut a, 160, 49));
    assert!(!l.iter().any(|x| x.contains("since start")));
    assert!(l.iter().any(|x| x.contains("requests per tick")));
    // `l` on a tall terminal: the panel takes the sparkline's place, once.
    press(&mut a, key('l'));
    let l = lines(&render(&mut a, 160, 60));
    assert_eq!(l.iter().filter(|x| x.contains("since start")).count(), 1);
    assert!(!l.iter().any(|x| x.contains("requests per tick")));
}
