use std::sync::Arc;

use super::{
    encode::{Format, ServerCounters, encode},
    *,
};
use crate::{
    proto::{Protocol, RequestLine},
    stats::route::{RouteConfig, Router},
};

fn ex(method: &[u8], target: &[u8], status: Option<u16>, lat_ms: u64) -> Exchange {
    let mut routes = Router::new(RouteConfig::default());
    Exchange {
        client: "10.0.0.1:40000".parse().unwrap(),
        server: "10.0.0.9:8080".parse().unwrap(),
        protocol: Protocol::Http11,
        request_seen: true,
        unparsable: false,
        request: Some(RequestLine::new(method, target, Some(b"svc"))),
        status,
        req_first_ns: 1_000_000_000,
        req_last_ns: 1_000_000_000,
        resp_first_ns: status.map_or(0, |_| 1_000_000_000 + lat_ms * 500_000),
        resp_last_ns: status.map_or(0, |_| 1_000_000_000 + lat_ms * 1_000_000),
        req_bytes: 100,
        resp_bytes: if status.is_some() { 1000 } else { 0 },
        truncated: false,
        gap: false,
        route: Some(routes.route(crate::stats::key::path_of(target))),
        grpc: crate::proto::Grpc::No,
        server_owner: None,
        client_owner: None,
    }
}

fn config(labels: Vec<GroupKey>, max_series: usize) -> MetricsConfig {
    MetricsConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        buckets: DEFAULT_BUCKETS.to_vec(),
        labels,
        max_series,
        interfaces: vec!["veth0".into()],
    }
}

fn exporter(labels: Vec<GroupKey>, max_series: usize) -> Exporter {
    Exporter::new(&config(labels, max_series), Publisher::new().0).unwrap()
}

fn text(x: &Exporter, format: Format) -> String {
    encode(
        Arc::new(x.snapshot(true)),
        &Arc::new(ServerCounters::default()),
        format,
        0,
    )
}

/// The sample lines of `text` whose name is `name`, without HELP and TYPE.
fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .collect()
}

#[test]
fn one_observation_per_answered_exchange_in_the_right_bucket() {
    let mut x = exporter(Vec::new(), 100);
    for (target, ms) in [
        ("/users/1", 3),
        ("/users/2", 30),
        ("/users/3", 30),
        ("/users/4", 20_000),
    ] {
        x.exchange(&ex(b"GET", target.as_bytes(), Some(200), ms))
            .unwrap();
    }
    x.exchange(&ex(b"GET", b"/users/5", None, 0)).unwrap();
    let t = text(&x, Format::Text004);
    let labels = "http_request_method=\"GET\",http_response_status_code=\"200\",\
                  http_route=\"/users/{id}\",server_address=\"10.0.0.9\",server_port=\"8080\",\
                  network_protocol_version=\"1.1\"";
    let b =
        |le: &str| format!("http_server_request_duration_seconds_bucket{{{labels},le=\"{le}\"}}");
    for (le, n) in [
        ("0.0", None),
        ("0.005", Some(1)),
        ("0.025", Some(1)),
        ("0.05", Some(3)),
        ("10", Some(3)),
        ("+Inf", Some(4)),
    ] {
        let line = samples(&t, "http_server_request_duration_seconds_bucket")
            .into_iter()
            .find(|l| l.starts_with(&b(le)))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap());
        assert_eq!(line, n, "le={le}\n{t}");
    }
    assert!(
        t.contains(&format!(
            "http_server_request_duration_seconds_count{{{labels}}} 4\n"
        )),
        "{t}"
    );
    assert!(t.contains(&format!("http_top_request_bytes_total{{{labels}}} 400\n")));
    assert!(t.contains(&format!("http_top_response_bytes_total{{{labels}}} 4000\n")));
    // The unanswered request: its own series, no status code label at all.
    let unanswered = samples(&t, "http_top_requests_without_response_total");
    assert_eq!(
        unanswered,
        [
            "http_top_requests_without_response_total{http_request_method=\"GET\",\
          http_route=\"/users/{id}\",server_address=\"10.0.0.9\",server_port=\"8080\",\
          network_protocol_version=\"1.1\"} 1"
        ]
    );
    assert!(t.contains("# TYPE http_server_request_duration_seconds histogram\n"));
    assert!(t.contains("http_top_build_info{version=\"0.1.0\"} 1\n"));
    assert!(!t.contains("# EOF"));
}

#[test]
fn openmetrics_when_asked() {
    let mut x = exporter(Vec::new(), 100);
    x.exchange(&ex(b"GET", b"/", Some(200), 1)).unwrap();
    let t = text(&x, Format::OpenMetrics);
    assert!(t.ends_with("# EOF\n"), "{t}");
    assert!(t.contains("# UNIT http_server_request_duration_seconds seconds\n"));
    assert!(t.contains("# TYPE http_top_request_bytes counter\n"));
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                      version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(Format::from_accept(Some("*/*")), Format::Text004);
    assert_eq!(Format::from_accept(None), Format::Text004);
    assert_eq!(
        Format::from_accept(Some("application/openmetrics-text; q=0, text/plain")),
        Format::Text004
    );
}

#[test]
fn unknown_methods_are_other_and_wire_bytes_are_safe_and_short() {
    let mut x = exporter(vec![GroupKey::Query("s".into()), GroupKey::Host], 100);
    let long = format!("/?s={}", "a".repeat(500));
    x.exchange(&ex(b"BREW", b"/pot?s=%1b%5b2J%0a", Some(418), 1))
        .unwrap();
    x.exchange(&ex(b"GET", long.as_bytes(), Some(200), 1))
        .unwrap();
    let t = text(&x, Format::Text004);
    let lines = samples(&t, "http_top_request_bytes_total");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("http_request_method=\"_OTHER\"")
                && l.contains("query_s=\"\\\\x1b[2J\\\\x0a\"")
                && l.contains("http_host=\"svc\"")),
        "{t}"
    );
    let cut = lines.iter().find(|l| l.contains("aaaa")).unwrap();
    let value = cut
        .split("query_s=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(value.chars().count(), MAX_LABEL_CHARS);
    assert!(t.lines().all(|l| !l.contains('\x1b')));
}

#[test]
fn past_the_cap_label_sets_fold_into_other() {
    let mut x = exporter(vec![GroupKey::Client], 3);
    for i in 0..10u8 {
        let mut e = ex(b"GET", format!("/p{i}").as_bytes(), Some(200), 1);
        e.client = format!("10.0.1.{i}:1000").parse().unwrap();
        x.exchange(&e).unwrap();
    }
    let snap = x.snapshot(false);
    // Three label sets, then one folded set for the seven that did not fit.
    assert_eq!(snap.series.len(), 4);
    assert_eq!(snap.folded, 7);
    let folded = &snap.series[3];
    assert_eq!(&*folded.values[2], "_other");
    assert_eq!(&*folded.values[3], "_other");
    assert_eq!(&*folded.values[6], "_other");
    assert_eq!(&*folded.values[0], "GET");
    assert_eq!(folded.count, 7);
    let t = text(&x, Format::Text004);
    assert!(
        t.contains("http_top_metrics_folded_exchanges_total 7\n"),
        "{t}"
    );
    assert!(t.contains("http_top_metrics_series 4\n"));
}

#[test]
fn http2_is_protocol_version_2_and_grpc_a_label_to_add() {
    let mut x = exporter(vec![GroupKey::Grpc], 100);
    let mut e = ex(b"POST", b"/pkg.Svc/Get", Some(200), 1);
    e.protocol = Protocol::Http2;
    e.grpc = crate::proto::Grpc::Status(5);
    x.exchange(&e).unwrap();
    let t = text(&x, Format::Text004);
    let line = samples(&t, "http_server_request_duration_seconds_count")[0];
    assert!(
        line.contains("network_protocol_version=\"2\"")
            && line.contains("rpc_grpc_status_code=\"NOT_FOUND\""),
        "{line}"
    );
}

#[test]
fn keys_that_are_labels_already_are_refused() {
    assert_eq!(
        label_name(&GroupKey::Query("s-1".into())).unwrap(),
        "query_s_1"
    );
    assert_eq!(label_name(&GroupKey::PathPrefix(2)).unwrap(), "url_path_2");
    for k in [
        GroupKey::Server,
        GroupKey::Port,
        GroupKey::Route,
        GroupKey::Method,
    ] {
        assert!(label_name(&k).is_err());
    }
    let twice = config(vec![GroupKey::Client, GroupKey::Client], 10);
    assert!(twice.label_names().is_err());
}

#[test]
fn health_counters_are_exported_with_the_interface_where_it_applies() {
    let mut x = exporter(Vec::new(), 10);
    let mut h = Health {
        live: true,
        ..Health::default()
    };
    h.capture.ring_drops = 3;
    h.totals.http.parse_errors = 2;
    x.end(&h).unwrap();
    let t = text(&x, Format::Text004);
    assert!(
        t.contains("http_top_ring_drops_total{interface=\"veth0\"} 3\n"),
        "{t}"
    );
    assert!(t.contains("http_top_parse_errors_total 2\n"), "{t}");
}
