use std::net::SocketAddr;

use crate::proto::RequestLine;

use super::*;

pub(super) fn ex(
    client: &str,
    server: &str,
    method: &str,
    target: &str,
    status: Option<u16>,
    t0: u64,
    lat_us: u64,
) -> Exchange {
    Exchange {
        client: client.parse::<SocketAddr>().unwrap(),
        server: server.parse().unwrap(),
        protocol: crate::proto::Protocol::Http11,
        request_seen: true,
        unparsable: false,
        request: Some(RequestLine::new(
            method.as_bytes(),
            target.as_bytes(),
            Some(b"h.example"),
        )),
        status,
        req_first_ns: t0,
        req_last_ns: t0,
        resp_first_ns: status.map_or(0, |_| t0 + lat_us * 500),
        resp_last_ns: status.map_or(0, |_| t0 + lat_us * 1000),
        req_bytes: 100,
        resp_bytes: if status.is_some() { 1000 } else { 0 },
        truncated: false,
        gap: false,
        route: None,
        server_owner: None,
        client_owner: None,
        grpc: crate::proto::Grpc::No,
    }
}

#[test]
fn every_key_sees_every_exchange_and_groups_add_up() {
    let keys: Vec<GroupKey> = GroupKey::standard_set(&GroupKey::Server, false);
    let mut s = Stats::new(keys.clone(), 100);
    let xs = [
        ex(
            "10.0.0.1:1",
            "10.0.0.9:80",
            "GET",
            "/a/b?s=x",
            Some(200),
            1_000_000_000,
            1000,
        ),
        ex(
            "10.0.0.2:1",
            "10.0.0.9:80",
            "GET",
            "/a/c?s=y",
            Some(503),
            1_100_000_000,
            3000,
        ),
        ex(
            "10.0.0.1:2",
            "[fd00::9]:8080",
            "POST",
            "/z",
            None,
            1_200_000_000,
            0,
        ),
        ex(
            "10.0.0.3:1",
            "10.0.0.9:80",
            "GET",
            "/a",
            Some(404),
            2_000_000_000,
            2000,
        ),
    ];
    for x in &xs {
        s.add(x);
    }
    for (k, key) in keys.iter().enumerate() {
        let m = s.merged(k);
        assert_eq!(m.requests, 4, "{key}");
        assert_eq!(m.bytes_out, 3000, "{key}");
        assert_eq!(m.latency.len(), 3, "{key}");
    }
    let server = s.rows(0);
    assert_eq!(server[0].group, "10.0.0.9:80");
    assert_eq!(server[0].agg.requests, 3);
    assert_eq!(server[1].group, "[fd00::9]:8080");
    assert_eq!(server[1].agg.no_response, 1);
    // 200, 404 ok; 503 not: 2 of 3.
    assert!((server[0].agg.success_rate().unwrap() - 66.666).abs() < 0.01);
    assert_eq!(server[1].agg.success_rate(), Some(0.0));

    let by = |k: &str| {
        let i = keys.iter().position(|x| x.to_string() == k).unwrap();
        s.rows(i)
            .into_iter()
            .map(|r| (r.group, r.agg.requests))
            .collect::<Vec<_>>()
    };
    assert_eq!(by("path:1"), [("/a".to_owned(), 3), ("/z".to_owned(), 1)]);
    assert_eq!(
        by("query:s"),
        [
            ("_unspecified".to_owned(), 2),
            ("x".to_owned(), 1),
            ("y".to_owned(), 1)
        ]
    );
    assert_eq!(
        by("status"),
        [
            ("2xx".to_owned(), 1),
            ("4xx".to_owned(), 1),
            ("5xx".to_owned(), 1),
            ("none".to_owned(), 1)
        ]
    );
    assert_eq!(
        by("client"),
        [
            ("10.0.0.1".to_owned(), 2),
            ("10.0.0.2".to_owned(), 1),
            ("10.0.0.3".to_owned(), 1)
        ]
    );
    // Latency quantiles in µs, 1% resolution.
    let l = &server[0].agg.latency;
    assert_eq!(l.min(), 1000);
    assert!((3000..=3030).contains(&l.max()), "{}", l.max());
}

#[test]
fn groups_beyond_the_cap_go_to_other() {
    let mut s = Stats::new(vec![GroupKey::Path], 3);
    for i in 0..10 {
        s.add(&ex(
            "10.0.0.1:1",
            "10.0.0.9:80",
            "GET",
            &format!("/p{i}"),
            Some(200),
            1,
            1,
        ));
    }
    // Consecutive exchanges of one group take the remembered-group path: an overflowing group
    // must still count each time, and a known group still go to itself.
    for path in ["/p9", "/p9", "/p0", "/p0"] {
        s.add(&ex(
            "10.0.0.1:1",
            "10.0.0.9:80",
            "GET",
            path,
            Some(200),
            1,
            1,
        ));
    }
    let rows = s.rows(0);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].group, OTHER);
    assert_eq!(rows[0].agg.requests, 9);
    assert_eq!(s.overflowed(0), 9);
    let p0 = rows.iter().find(|r| r.group == "/p0").unwrap();
    assert_eq!(p0.agg.requests, 3);
}

#[test]
fn unknown_requests_and_tick_rates() {
    let mut s = Stats::new(vec![GroupKey::Method, GroupKey::Server], 10);
    let mut orphan = ex("10.0.0.1:1", "10.0.0.9:80", "GET", "/", Some(200), 0, 1);
    orphan.request_seen = false;
    orphan.request = None;
    s.add(&orphan);
    s.add(&ex(
        "10.0.0.1:1",
        "10.0.0.9:80",
        "GET",
        "/",
        Some(200),
        5_000_000_000,
        1,
    ));
    s.tick(6_000_000_000);
    s.add(&ex(
        "10.0.0.1:1",
        "10.0.0.9:80",
        "GET",
        "/",
        Some(200),
        6_500_000_000,
        1,
    ));
    let m = s.rows(0);
    assert_eq!(
        m.iter().map(|r| r.group.as_str()).collect::<Vec<_>>(),
        ["GET", "_unknown"]
    );
    assert_eq!(s.total().last_tick.requests, 1);
    assert_eq!(s.total().tick.requests, 1);
    // The orphan response is a response but not a request.
    assert_eq!((s.total().requests, s.total().responses), (2, 3));
}

#[test]
fn owners_name_groups_and_group_under_their_own_keys() {
    use crate::owner::{Owner, Process};
    let keys = GroupKey::standard_set(&GroupKey::Server, true);
    let mut s = Stats::new(keys.clone(), 100);
    let idx = |k: GroupKey| keys.iter().position(|x| *x == k).unwrap();
    let api = std::sync::Arc::new(Owner::Local {
        container: "orders-api".into(),
        process: Some(Process {
            comm: "nginx".into(),
            pid: 812,
        }),
    });
    let host_client = std::sync::Arc::new(Owner::Local {
        container: crate::owner::HOST.into(),
        process: None,
    });
    // Names arrive after the first exchange (the first scan had not seen the server yet): the
    // group stays one group, and takes the name.
    let mut first = ex("10.0.0.1:1", "10.0.0.9:80", "GET", "/", Some(200), 1, 10);
    first.server_owner = Some(std::sync::Arc::new(Owner::Remote));
    s.add(&first);
    let mut named = ex("10.0.0.1:2", "10.0.0.9:80", "GET", "/", Some(200), 2, 10);
    named.server_owner = Some(api.clone());
    named.client_owner = Some(host_client);
    s.add(&named);
    let server = s.rows(idx(GroupKey::Server));
    assert_eq!(server.len(), 1);
    assert_eq!(server[0].name.as_deref(), Some("orders-api"));
    assert_eq!(server[0].title(), "orders-api 10.0.0.9:80");
    // A client on the host with no socket found: no name beside it.
    assert_eq!(s.rows(idx(GroupKey::Client))[0].title(), "10.0.0.1");
    let labels = |k: GroupKey| -> Vec<String> {
        let mut v: Vec<String> = s.rows(idx(k)).into_iter().map(|r| r.group).collect();
        v.sort();
        v
    };
    assert_eq!(labels(GroupKey::Process), ["_remote", "nginx[812]"]);
    assert_eq!(labels(GroupKey::Container), ["_remote", "orders-api"]);
    assert_eq!(labels(GroupKey::ClientProcess), ["_unknown", "_unresolved"]);
    assert_eq!(labels(GroupKey::ClientContainer), ["_unresolved", "host"]);
}
