//! The dashboard rendered into ratatui's TestBackend, on exchanges from the bundled demo capture.

use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::{Terminal, backend::TestBackend, style::Color};

use super::*;
use crate::proto::RequestLine;

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
    app.page = render::page_rows(ratatui::layout::Rect::new(0, 0, w, h));
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
