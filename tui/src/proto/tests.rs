//! The HTTP layer on real captures (the public corpus) and on hand-built conversations for the cases
//! the corpus lacks.

use std::{net::SocketAddr, path::Path};

use super::conv::{C, Conv};
use crate::{
    decode::tcp_flags,
    flow::FlowConfig,
    pipeline::{Pipeline, read_file as read},
    proto::{Exchange, Protocol},
};

fn corpus(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/corpus")
        .join(name)
}

fn s(b: Option<&[u8]>) -> &str {
    std::str::from_utf8(b.unwrap_or(b"-")).unwrap()
}

#[test]
fn wireshark_http_cap() {
    let (mut ex, p) = read(&corpus("wireshark-http-cap.pcap"));
    // Exchanges come out as they complete; the first request's connection closes last.
    ex.sort_by_key(|e| e.req_first_ns);
    let hosts: Vec<(&str, &str, Option<u16>)> = ex
        .iter()
        .map(|e| (s(e.method()), s(e.host()), e.status))
        .collect();
    assert_eq!(
        hosts,
        [
            ("GET", "www.ethereal.com", Some(200)),
            ("GET", "pagead2.googlesyndication.com", Some(200))
        ]
    );
    assert_eq!(p.http_stats().parse_errors, 0);
}

#[test]
fn fhs_keepalive_gzip() {
    let (ex, p) = read(&corpus("fhs-gzip-keepalive.pcap"));
    assert_eq!(ex.len(), 9);
    assert!(
        ex.iter()
            .all(|e| e.status == Some(200) && s(e.method()) == "GET" && !e.truncated),
        "{ex:#?}"
    );
    assert_eq!(p.http_stats().parse_errors, 0);
    assert_eq!(p.flow_stats().gaps, 0);
}

#[test]
fn zeek_pipelined() {
    let (ex, p) = read(&corpus("zeek-pipelined-requests.pcap"));
    assert_eq!(ex.len(), 5);
    assert!(ex.iter().all(|e| e.status == Some(200) && e.request_seen));
    // Pipelined: FIFO pairing keeps request order, and each response ends after its request began.
    assert_eq!(s(ex[0].target()), "/style/enhanced.css");
    assert!(ex.iter().all(|e| e.resp_last_ns >= e.req_first_ns));
    assert_eq!(p.http_stats().parse_errors, 0);
}

#[test]
fn zeek_100_continue() {
    let (ex, p) = read(&corpus("zeek-100-continue.pcap"));
    assert_eq!(ex.len(), 1, "{ex:#?}");
    let e = &ex[0];
    assert_eq!((s(e.method()), e.status), ("POST", Some(200)));
    assert_eq!(p.http_stats().interim_responses, 1);
    // TTFB is to the final response, after the body was sent.
    assert!(
        e.resp_first_ns > e.req_last_ns || e.req_last_ns == 0,
        "{e:#?}"
    );
}

#[test]
fn pipelined_head_has_no_body_and_keeps_pairing() {
    let mut c = Conv::new();
    c.client(b"HEAD /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n");
    // The HEAD response announces a length but carries no body.
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop");
    let (ex, st) = c.done();
    let got: Vec<_> = ex
        .iter()
        .map(|e| (s(e.target()).to_owned(), e.status))
        .collect();
    assert_eq!(
        got,
        [("/a".to_owned(), Some(200)), ("/b".to_owned(), Some(404))]
    );
    assert_eq!(st.parse_errors, 0);
}

#[test]
fn no_body_statuses_and_close_delimited_http10() {
    let mut c = Conv::new();
    c.client(b"GET /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\nGET /z HTTP/1.0\r\n\r\n");
    c.server(
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    );
    c.server(b"HTTP/1.0 200 OK\r\n\r\nuntil the end");
    c.send(1, tcp_flags::FIN, b"");
    c.send(0, tcp_flags::FIN, b"");
    let (ex, _) = c.done();
    let got: Vec<_> = ex.iter().map(|e| (e.status, e.resp_bytes)).collect();
    assert_eq!(got, [(Some(204), 27), (Some(304), 49), (Some(200), 32)]);
}

#[test]
fn a_reset_mid_response_and_an_unanswered_request() {
    let mut c = Conv::new();
    c.client(b"GET /big HTTP/1.1\r\n\r\nGET /never HTTP/1.1\r\n\r\n");
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly part");
    c.send(1, tcp_flags::RST, b"");
    let (ex, _) = c.done();
    assert_eq!(ex.len(), 2);
    assert_eq!((ex[0].status, ex[0].truncated), (Some(200), true));
    // What did cross the wire counts: the head and the part of the body before the reset.
    assert_eq!(ex[0].resp_bytes, 41 + 9);
    assert_eq!((s(ex[1].target()), ex[1].status), ("/never", None));
}

#[test]
fn one_byte_per_segment_request() {
    let mut c = Conv::new();
    let req = b"POST /one HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    for b in req {
        c.client(&[*b]);
    }
    c.server(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    let (ex, st) = c.done();
    assert_eq!(ex.len(), 1);
    assert_eq!(
        (s(ex[0].method()), ex[0].status, ex[0].req_bytes),
        ("POST", Some(201), req.len() as u64)
    );
    // First and last request byte came in different segments.
    assert_eq!(
        ex[0].req_last_ns - ex[0].req_first_ns,
        1000 * (req.len() as u64 - 1)
    );
    assert_eq!(st.parse_errors, 0);
}

#[test]
fn response_without_request_and_switching_protocols() {
    let mut c = Conv::new();
    // Picked up mid-connection: the server speaks first.
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    c.client(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    c.server(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
    c.client(b"\x81\x85 masked frame bytes that are not http");
    let (ex, st) = c.done();
    assert_eq!(ex.len(), 2);
    assert!(!ex[0].request_seen);
    assert_eq!(ex[1].status, Some(101));
    assert_eq!(st.tunnels, 1);
    assert_eq!(st.parse_errors, 0);
}

#[test]
fn http2_preface_is_recognised_and_ignored() {
    let mut c = Conv::new();
    c.client(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04");
    c.server(b"\x00\x00\x00\x04\x01");
    let (ex, st) = c.done();
    assert!(ex.is_empty());
    assert_eq!(st.http2_connections, 1);
    assert_eq!(st.parse_errors, 0);
}

#[test]
fn garbage_then_a_valid_request_resyncs() {
    let mut c = Conv::new();
    c.client(b"GET /ok HTTP/1.1\r\n\r\n");
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    c.client(b"GARBAGE\x00\x1b[31m\r\n\r\n");
    c.client(b"GET /again HTTP/1.1\r\n\r\n");
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let (ex, st) = c.done();
    let targets: Vec<(&str, bool, Option<u16>)> = ex
        .iter()
        .map(|e| (s(e.target()), e.unparsable, e.status))
        .collect();
    // The garbage is what the client sent where a request belongs: a request of its own, which
    // got no answer.
    assert_eq!(
        targets,
        [
            ("/ok", false, Some(200)),
            ("-", true, None),
            ("/again", false, Some(200))
        ]
    );
    assert_eq!(ex[1].req_bytes, 17);
    assert_eq!(st.parse_errors, 1);
}

mod no_panic {
    use proptest::prelude::*;

    use super::*;
    use crate::packet::{Direction, LinkType, Packet};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Arbitrary bytes in both directions, split at arbitrary points, with arbitrary gaps and
        /// closes: the HTTP layer never panics and never reports more responses than it saw
        /// message starts.
        #[test]
        fn arbitrary_streams(parts in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300), 0u8..8), 0..40)) {
            let mut c = Conv::new();
            for (to_server, mut bytes, kind) in parts {
                // Bias towards HTTP-looking input so the parser gets past the first byte.
                if kind == 0 { bytes.splice(0..0, b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n".iter().copied()); }
                if kind == 1 { bytes.splice(0..0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".iter().copied()); }
                let dir = usize::from(!to_server);
                match kind {
                    7 => c.send(dir, tcp_flags::FIN, &bytes),
                    6 => { c.seq[dir] = c.seq[dir].wrapping_add(100); c.send(dir, 0, &bytes) } // a hole
                    _ => c.send(dir, 0, &bytes),
                }
            }
            let (ex, st) = c.done();
            // Every request that started is reported exactly once (answered or not), and every
            // response without a request is reported as such.
            prop_assert_eq!(ex.iter().filter(|e| e.request_seen).count() as u64, st.requests);
            prop_assert_eq!(ex.iter().filter(|e| !e.request_seen).count() as u64, st.unmatched_responses);
        }

        /// Arbitrary frames of every link type: decode, reassembly and HTTP never panic.
        #[test]
        fn arbitrary_frames(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..50), link in 0u8..6) {
            let link = [LinkType::Ethernet, LinkType::RawIp, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::Null, LinkType::Loop][usize::from(link)];
            let mut p = Pipeline::new(FlowConfig::default());
            for (i, f) in frames.iter().enumerate() {
                p.packet(&Packet { ts_ns: i as u64, link, data: f, orig_len: f.len() as u32, iface: 0, direction: Direction::Unknown, shared: None });
            }
            p.finish(drop);
            prop_assert_eq!(p.counters().packets, frames.len() as u64);
        }

        /// Well-formed TCP/IP frames around hostile payloads, on a handful of connections with
        /// jittered sequence numbers and random flags: reassembly and HTTP hold up, and every
        /// request is accounted for.
        #[test]
        fn hostile_segments(segs in proptest::collection::vec((0u8..4, any::<bool>(), 0u32..3000, any::<u8>(), proptest::collection::vec(any::<u8>(), 0..400), 0u8..4), 1..80)) {
            let mut p = Pipeline::new(FlowConfig { max_conns: 3, max_ooo_bytes: 2000, max_holes: 4, ..FlowConfig::default() });
            let mut requests = 0;
            for (i, (conn, to_server, seq, flags, mut payload, kind)) in segs.into_iter().enumerate() {
                let prefix: &[u8] = match kind {
                    0 => b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                    1 => b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
                    _ => b"",
                };
                payload.splice(0..0, prefix.iter().copied());
                let (c, s) = ([10, 0, 0, conn], [10, 0, 1, 1]);
                let (src, dst, sp, dp) = if to_server { (c, s, 40000, 80) } else { (s, c, 80, 40000) };
                let mut frame = Vec::new();
                let b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src, dst, 64).tcp(sp, dp, seq, 1000);
                let b = if flags & 1 != 0 { b.fin() } else { b };
                let b = if flags & 2 != 0 { b.syn() } else { b };
                let b = if flags & 4 != 0 { b.rst() } else { b };
                b.write(&mut frame, &payload).unwrap();
                p.packet(&Packet { ts_ns: i as u64 * 1000, link: LinkType::Ethernet, data: &frame, orig_len: frame.len() as u32, iface: 0, direction: Direction::Unknown, shared: None });
                requests += p.drain().filter(|e| e.request_seen).count() as u64;
            }
            p.finish(|e| requests += u64::from(e.request_seen));
            prop_assert_eq!(requests, p.http_stats().requests);
            prop_assert!(p.flow_stats().open == 0);
        }
    }
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes()
}

/// Keep-alive, one request at a time; the second response is never captured. The client's
/// acknowledgement on the third request shows the second response came and went, so the third
/// response pairs with the third request, and the second is reported lost.
#[test]
fn a_response_lost_whole_in_a_gap_does_not_shift_pairing() {
    let mut c = Conv::new();
    c.acked(0, &get("/1"));
    c.acked(1, &ok("one"));
    c.acked(0, &get("/2"));
    c.lost(1, &ok("two"));
    c.acked(0, &get("/3"));
    c.acked(1, &ok("three"));
    let (ex, st) = c.done();
    let got: Vec<(&str, Option<u16>, bool)> = ex
        .iter()
        .map(|e| (s(e.target()), e.status, e.truncated))
        .collect();
    assert_eq!(
        got,
        [
            ("/1", Some(200), false),
            ("/2", None, true),
            ("/3", Some(200), false)
        ]
    );
    assert_eq!(ex[2].resp_bytes, ok("three").len() as u64);
    assert_eq!(st.lost_responses, 1);
}

/// Pipelined requests sent together carry the same acknowledgement: when the first response is
/// lost, nothing tells which request the next one answers. Neither is paired by guess: both are
/// emitted unanswered and flagged, the response alone; the next request, sent after the client
/// had received them, pairs with its own.
#[test]
fn pipelined_requests_are_not_guessed_at() {
    let mut c = Conv::new();
    c.acked(0, &[get("/1"), get("/2")].concat());
    c.lost(1, &ok("one"));
    c.acked(1, &ok("two"));
    c.acked(0, &get("/3"));
    c.acked(1, &ok("three"));
    let (ex, st) = c.done();
    let got: Vec<_> = ex
        .iter()
        .map(|e| (s(e.target()), e.resp_bytes, e.gap))
        .collect();
    assert_eq!(
        got,
        [
            ("/1", 0, true),
            ("/2", 0, true),
            ("-", ok("two").len() as u64, true),
            ("/3", ok("three").len() as u64, false),
        ]
    );
    assert_eq!((st.lost_responses, st.unpaired), (0, 2));
}

/// The exchange records the version its request was sent with; a response whose request was not
/// seen, the version it was sent with.
#[test]
fn each_exchange_records_its_protocol_version() {
    let mut c = Conv::new();
    c.client(b"GET /old HTTP/1.0\r\n\r\n");
    c.server(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    c.client(b"GET /new HTTP/1.1\r\nHost: h\r\n\r\n");
    c.server(b"HTTP/1.1 204 No Content\r\n\r\n");
    c.server(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    let (ex, _) = c.done();
    let got: Vec<_> = ex
        .iter()
        .map(|e| (s(e.target()).to_owned(), e.protocol))
        .collect();
    assert_eq!(
        got,
        [
            ("/old".to_owned(), Protocol::Http10),
            ("/new".to_owned(), Protocol::Http11),
            ("-".to_owned(), Protocol::Http10),
        ]
    );
    assert_eq!(Protocol::Http10.as_str(), "HTTP/1.0");
    // The corpus: the 2004 capture and the Zeek ones speak HTTP/1.1.
    for name in ["wireshark-http-cap.pcap", "zeek-pipelined-requests.pcap"] {
        let (ex, _) = read(&corpus(name));
        assert!(ex.iter().all(|e| e.protocol == Protocol::Http11), "{name}");
    }
}

/// A connection picked up mid-stream is detected at its first message start, from either side,
/// and the bytes before it still count in the positions pairing uses (a response lost whole is
/// still found after the detection).
#[test]
fn detection_waits_for_a_message_start_in_either_direction() {
    let mut c = Conv::new();
    // The tail of a body from each side, then the server's next response first.
    c.client(b"rest of an upload");
    c.server(b"tail of a response body");
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    c.client(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
    c.server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    let (ex, st) = c.done();
    let got: Vec<_> = ex
        .iter()
        .map(|e| (e.request_seen, s(e.target()).to_owned(), e.status))
        .collect();
    assert_eq!(
        got,
        [
            (false, "-".to_owned(), Some(200)),
            (true, "/after".to_owned(), Some(404)),
        ]
    );
    assert_eq!(st.parse_errors, 0);
    assert_eq!(ex[1].client, C.parse::<SocketAddr>().unwrap());
}

impl Conv {
    /// SYN and SYN-ACK: both streams are then seen from their start.
    fn handshake(&mut self) {
        self.send(0, tcp_flags::SYN, b"");
        self.seq[0] = self.seq[0].wrapping_add(1);
        self.send(1, tcp_flags::SYN | tcp_flags::ACK, b"");
        self.seq[1] = self.seq[1].wrapping_add(1);
    }
}

fn post(path: &str, body_len: usize, extra: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: h\r\nContent-Length: {body_len}\r\n{extra}\r\n")
        .into_bytes()
}

/// What each exchange says: request target, status, request and response bytes, flagged.
fn summary(ex: &[Exchange]) -> Vec<(String, Option<u16>, u64, u64, bool)> {
    ex.iter()
        .map(|e| {
            let target = if e.unparsable {
                "_unparsable".to_owned()
            } else {
                s(e.target()).to_owned()
            };
            (target, e.status, e.req_bytes, e.resp_bytes, e.gap)
        })
        .collect()
}

/// The server answers a POST before its body has arrived (nginx `return`): the exchange waits for
/// the body, so bytes in are the whole request, and the request pipelined behind it pairs with
/// its own response.
#[test]
fn an_early_response_waits_for_its_request_to_end() {
    let mut c = Conv::new();
    let head = post("/up", 10_000, "");
    c.acked(0, &head);
    c.acked(0, &[b'x'; 1000]);
    let ok = ok("done");
    c.acked(1, &ok);
    c.acked(0, &[b'x'; 9000]);
    c.acked(0, &get("/next"));
    let nf = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    c.acked(1, nf);
    let (ex, st) = c.done();
    assert_eq!(
        summary(&ex),
        [
            (
                "/up".into(),
                Some(200),
                head.len() as u64 + 10_000,
                ok.len() as u64,
                false
            ),
            (
                "/next".into(),
                Some(404),
                get("/next").len() as u64,
                nf.len() as u64,
                false
            ),
        ]
    );
    // Latency is still first request byte to last response byte.
    assert!(ex[0].resp_last_ns < ex[0].req_last_ns);
    assert_eq!(
        ex[0].latency_ns(),
        Some(ex[0].resp_last_ns - ex[0].req_first_ns)
    );
    assert_eq!(st.parse_errors, 0);
}

/// 413 in the middle of an upload, the server closes, the client has sent more by then: what
/// was sent is counted, once.
#[test]
fn a_client_that_keeps_sending_after_the_answer_is_counted_to_the_close() {
    let mut c = Conv::new();
    let head = post("/big", 100_000, "");
    c.acked(0, &head);
    c.acked(0, &[b'x'; 5000]);
    let too_big =
        b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    c.acked(1, too_big);
    c.send(1, tcp_flags::FIN | tcp_flags::ACK, b"");
    c.acked(0, &[b'x'; 3000]);
    c.send(0, tcp_flags::FIN | tcp_flags::ACK, b"");
    let (ex, st) = c.done();
    assert_eq!(
        summary(&ex),
        [(
            "/big".into(),
            Some(413),
            head.len() as u64 + 8000,
            too_big.len() as u64,
            false
        )]
    );
    assert!(!ex[0].truncated);
    assert_eq!(st.truncated, 1, "the request, cut by the close");
}

/// `Expect: 100-continue` answered with a final status at once; the client sends its body all the
/// same (curl does).
#[test]
fn a_final_status_instead_of_100_continue() {
    let mut c = Conv::new();
    let head = post("/e", 2000, "Expect: 100-continue\r\n");
    c.acked(0, &head);
    let cont = b"HTTP/1.1 100 Continue\r\n\r\n";
    c.acked(1, cont);
    let ok = ok("ok");
    c.acked(1, &ok);
    c.acked(0, &[b'y'; 2000]);
    let (ex, st) = c.done();
    assert_eq!(
        summary(&ex),
        [(
            "/e".into(),
            Some(200),
            head.len() as u64 + 2000,
            (cont.len() + ok.len()) as u64,
            false
        )]
    );
    assert_eq!(st.interim_responses, 1);
}

/// Bytes that are not HTTP get nginx's 400: the bytes are the request, `_unparsable`, at the
/// start of a connection and after a valid exchange; mid-stream (no SYN seen) they stay unknown.
#[test]
fn bytes_that_are_not_http_are_a_request_of_their_own() {
    let bad = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let mut c = Conv::new();
    c.handshake();
    c.acked(0, b"THIS IS NOT HTTP\r\n\r\n");
    c.acked(1, bad);
    let (ex, st) = c.done();
    assert_eq!(
        summary(&ex),
        [("_unparsable".into(), Some(400), 20, bad.len() as u64, false)]
    );
    assert!(ex[0].request_seen && ex[0].latency_ns().is_some());
    assert_eq!(
        (st.requests, st.parse_errors, st.unmatched_responses),
        (1, 1, 0)
    );

    let mut c = Conv::new();
    c.handshake();
    c.acked(0, &get("/a"));
    let ok = ok("a");
    c.acked(1, &ok);
    c.acked(0, b"\x16\x03\x01 not a request line at all\r\n\r\n");
    c.acked(0, b"more of it");
    c.acked(1, bad);
    let (ex, st) = c.done();
    assert_eq!(
        summary(&ex),
        [
            (
                "/a".into(),
                Some(200),
                get("/a").len() as u64,
                ok.len() as u64,
                false
            ),
            ("_unparsable".into(), Some(400), 43, bad.len() as u64, false),
        ]
    );
    assert_eq!((st.requests, st.parse_errors), (2, 1));

    // Picked up mid-stream: the bytes may be the tail of a request whose head was not captured.
    let mut c = Conv::new();
    c.acked(0, b"THIS IS NOT HTTP\r\n\r\n");
    c.acked(1, bad);
    let (ex, _) = c.done();
    assert_eq!(ex.len(), 1);
    assert!(!ex[0].request_seen && !ex[0].unparsable);
}

/// A request lost whole in a gap: its response stands alone (flagged), and the next request
/// pairs with its own.
#[test]
fn a_request_lost_whole_does_not_shift_pairing() {
    let mut c = Conv::new();
    c.acked(0, &get("/1"));
    c.acked(1, &ok("one"));
    c.lost(0, &get("/2"));
    c.acked(1, &ok("two!"));
    c.acked(0, &get("/3"));
    c.acked(1, &ok("three"));
    let (ex, _) = c.done();
    let got: Vec<_> = ex
        .iter()
        .map(|e| (s(e.target()).to_owned(), e.resp_bytes, e.gap))
        .collect();
    let len = |b: &str| ok(b).len() as u64;
    assert_eq!(
        got,
        [
            ("/1".to_owned(), len("one"), false),
            ("-".to_owned(), len("two!"), true),
            ("/3".to_owned(), len("three"), false),
        ]
    );
}

/// Pipelined requests and a response lost whole: nothing proves which request the next response
/// answers, so none is paired by guess; each is flagged.
#[test]
fn a_response_lost_in_a_pipelined_burst_pairs_nothing_by_guess() {
    let mut c = Conv::new();
    let mut burst = get("/1");
    burst.extend(get("/2"));
    burst.extend(get("/3"));
    c.acked(0, &burst);
    c.acked(1, &ok("1"));
    c.lost(1, &ok("22"));
    c.acked(1, &ok("333"));
    let (ex, st) = c.done();
    for e in &ex {
        // A response is 200 with a body of its request's number of bytes.
        if let (Some(t), Some(_)) = (e.target(), e.status) {
            let n = std::str::from_utf8(&t[1..])
                .unwrap()
                .parse::<u64>()
                .unwrap();
            assert_eq!(
                e.resp_bytes,
                ok(&"9".repeat(n as usize)).len() as u64,
                "{e:?}"
            );
        }
    }
    assert!(ex.iter().filter(|e| e.gap).count() >= 2, "{ex:#?}");
    assert_eq!(st.requests, 3);
    assert_eq!(ex.iter().filter(|e| e.status.is_some()).count(), 2);
}

/// What a connection costs: the flood bound (100 000 open connections in 64 MiB) rests on these.
#[test]
fn connection_state_stays_small() {
    use std::mem::size_of;
    assert!(
        size_of::<crate::proto::Conn>() <= 160,
        "{}",
        size_of::<crate::proto::Conn>()
    );
    assert!(crate::proto::http1::pending_size() <= 72);
    assert_eq!(crate::proto::http1::response_size(), 16);
    assert_eq!(size_of::<crate::proto::RequestLine>(), 24);
}

/// A request line in a reused buffer holds its own bytes and nothing of what the buffer held
/// before; a buffer too short is not used; the spare list stays bounded; over-long lines are cut
/// to what 16-bit offsets reach.
#[test]
fn request_lines_reuse_buffers() {
    use crate::proto::{RequestLine, SpareLines};
    let mut spare = SpareLines::default();
    let long = RequestLine::new_in(
        &mut spare,
        b"OPTIONS",
        b"/a/long/target?with=query",
        Some(b"host.example:8080"),
    );
    let buffer = long.method().as_ptr();
    spare.give(long);
    let short = RequestLine::new_in(&mut spare, b"GET", b"/", None);
    assert_eq!(
        short.method().as_ptr(),
        buffer,
        "the buffer given back is used"
    );
    assert_eq!(
        (short.method(), short.target(), short.host()),
        (&b"GET"[..], &b"/"[..], None)
    );
    assert_eq!(short, RequestLine::new(b"GET", b"/", None));
    assert_ne!(short, RequestLine::new(b"GET", b"/", Some(b"")));
    spare.give(short);
    let target = vec![b'x'; 500];
    let big = RequestLine::new_in(&mut spare, b"GET", &target, Some(b"h"));
    assert_ne!(
        big.method().as_ptr(),
        buffer,
        "a buffer too short is not used"
    );
    assert_eq!((big.target(), big.host()), (&target[..], Some(&b"h"[..])));
    assert!(spare.is_empty());
    for _ in 0..SpareLines::MAX + 10 {
        spare.give(RequestLine::new(b"GET", b"/", None));
    }
    assert_eq!(spare.len(), SpareLines::MAX);
    // A long line's buffer is not kept for the short ones after it; a copy holds what the line
    // holds, not the room of the buffer it had.
    let mut spare = SpareLines::default();
    spare.give(RequestLine::new(b"GET", &target, None));
    assert!(spare.is_empty());
    spare.give(RequestLine::new(b"GET", b"/a/long/target", None));
    let short = RequestLine::new_in(&mut spare, b"GET", b"/", None);
    assert!(short.buf.len() > 4);
    assert_eq!(short.clone().buf.len(), 4);
    assert_eq!(short.clone(), short);
    // Past 16-bit offsets the target is cut, never the Host.
    let huge = vec![b'y'; 70_000];
    let cut = RequestLine::new(b"GET", &huge, Some(b"host"));
    assert_eq!(cut.target().len(), usize::from(u16::MAX) - 3 - 4);
    assert_eq!(cut.host(), Some(&b"host"[..]));
}

mod loss {
    use proptest::prelude::*;

    use super::*;

    /// The response body to request `i`: its length says which request it answers.
    fn body(i: usize) -> String {
        "r".repeat(i + 1)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Conversations of bursts (one request, or several pipelined in one segment), each
        /// request answered in its own segment, with any segments never captured: no exchange
        /// pairs a request with another's response, and every exchange without the loss flag is
        /// exact.
        #[test]
        fn loss_never_shifts_pairing(
            bursts in prop::collection::vec(1usize..4, 1..6),
            drops in prop::collection::vec(any::<bool>(), 32),
        ) {
            let mut c = Conv::new();
            c.handshake();
            let mut seg = 0;
            let mut lost = |c: &mut Conv, dir: usize, data: &[u8]| {
                let drop = drops[seg % drops.len()] && seg % 3 != 0;
                seg += 1;
                if drop { c.lost(dir, data) } else { c.acked(dir, data) }
            };
            let mut i = 0;
            for &n in &bursts {
                let reqs: Vec<u8> = (i..i + n).flat_map(|k| get(&format!("/{k}"))).collect();
                lost(&mut c, 0, &reqs);
                for k in i..i + n {
                    lost(&mut c, 1, &ok(&body(k)));
                }
                i += n;
            }
            // A real capture ends with the peers' acknowledgements and FINs: what they acknowledge
            // shows what was sent and never captured.
            c.acked(0, b"");
            c.acked(1, b"");
            let flags = tcp_flags::FIN | tcp_flags::ACK;
            let ack = c.seq[1];
            c.send_acking(0, flags, ack, b"");
            let ack = c.seq[0];
            c.send_acking(1, flags, ack, b"");
            let (ex, _) = c.done();
            for e in &ex {
                let Some(t) = e.target() else { continue };
                let k: usize = std::str::from_utf8(&t[1..]).unwrap().parse().unwrap();
                if e.status.is_some() && !e.truncated {
                    prop_assert_eq!(e.resp_bytes, ok(&body(k)).len() as u64, "{:?}", e);
                }
                if !e.gap {
                    prop_assert_eq!(e.status, Some(200), "{:?}", e);
                    prop_assert_eq!(e.resp_bytes, ok(&body(k)).len() as u64, "{:?}", e);
                    prop_assert_eq!(e.req_bytes, get(&format!("/{k}")).len() as u64, "{:?}", e);
                }
            }
        }
    }
}
