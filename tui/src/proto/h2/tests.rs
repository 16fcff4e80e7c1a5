//! HTTP/2 conversations built frame by frame (header blocks encoded by loona-hpack's encoder),
//! through the real flow table.

use proptest::prelude::*;

use super::PREFACE;
use crate::{
    decode::tcp_flags,
    proto::{Exchange, Grpc, Protocol, conv::Conv},
};

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;
const PADDED: u8 = 8;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Both sides' encoders (one per direction, as on a real connection).
struct Encoders([loona_hpack::Encoder<'static>; 2]);

impl Encoders {
    fn new() -> Self {
        Self([loona_hpack::Encoder::new(), loona_hpack::Encoder::new()])
    }
    fn block(&mut self, dir: usize, fields: &[(&str, &str)]) -> Vec<u8> {
        self.0[dir].encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }
}

fn request(path: &str, method: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", method.to_owned()),
        (":scheme", "http".to_owned()),
        (":authority", "svc.local".to_owned()),
        (":path", path.to_owned()),
    ]
}

fn fields<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(n, x)| (*n, x.as_str())).collect()
}

fn s(b: Option<&[u8]>) -> String {
    String::from_utf8_lossy(b.unwrap_or(b"-")).into_owned()
}

/// The start of every connection: the preface and both sides' SETTINGS (and their ACKs).
fn open(c: &mut Conv) {
    let mut first = PREFACE.to_vec();
    first.extend(frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
    c.client(&first);
    c.server(&frame(SETTINGS, 0, 0, &[]));
    c.client(&frame(SETTINGS, 1, 0, &[]));
    c.server(&frame(SETTINGS, 1, 0, &[]));
}

#[test]
fn concurrent_streams_pair_by_stream_and_count_their_frames() {
    let mut c = Conv::new();
    let mut e = Encoders::new();
    open(&mut c);
    let get = frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &e.block(0, &fields(&request("/a?x=1", "GET"))),
    );
    let post = frame(
        HEADERS,
        END_HEADERS,
        3,
        &e.block(0, &fields(&request("/b", "POST"))),
    );
    let body = frame(DATA, END_STREAM, 3, b"0123456789");
    c.client(&[get.clone(), post.clone(), body.clone()].concat());
    // The server answers the second stream first, and pings in between (overhead).
    let h3 = frame(HEADERS, END_HEADERS, 3, &e.block(1, &[(":status", "201")]));
    let d3 = frame(DATA, END_STREAM, 3, b"created");
    c.server(&[h3.clone(), frame(PING, 0, 0, &[0; 8]), d3.clone()].concat());
    let h1 = frame(
        HEADERS,
        END_HEADERS,
        1,
        &e.block(1, &[(":status", "200"), ("content-type", "text/plain")]),
    );
    let d1a = frame(DATA, 0, 1, &[b'x'; 100]);
    let d1b = frame(DATA, END_STREAM, 1, &[b'y'; 50]);
    c.server(&h1);
    c.server(&[d1a.clone(), d1b.clone()].concat());
    let (ex, st) = c.done();
    let got: Vec<_> = ex
        .iter()
        .map(|x| {
            (
                s(x.method()),
                s(x.target()),
                s(x.host()),
                x.status,
                x.req_bytes,
                x.resp_bytes,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "POST".into(),
                "/b".into(),
                "svc.local".into(),
                Some(201),
                (post.len() + body.len()) as u64,
                (h3.len() + d3.len()) as u64
            ),
            (
                "GET".into(),
                "/a?x=1".into(),
                "svc.local".into(),
                Some(200),
                get.len() as u64,
                (h1.len() + d1a.len() + d1b.len()) as u64
            ),
        ]
    );
    assert!(
        ex.iter()
            .all(|x| x.protocol == Protocol::Http2 && !x.truncated && !x.gap && x.grpc == Grpc::No)
    );
    assert!(
        ex.iter()
            .all(|x| x.latency_ns().is_some() && x.ttfb_ns() <= x.latency_ns())
    );
    // Preface 24, client SETTINGS 9+6, three empty SETTINGS/ACKs 27, PING 17.
    assert_eq!(st.http2_overhead_bytes, 24 + 15 + 27 + 17);
    assert_eq!((st.requests, st.responses, st.parse_errors), (2, 2, 0));
}

#[test]
fn interim_responses_trailers_padding_continuation_and_resets() {
    let mut c = Conv::new();
    let mut e = Encoders::new();
    open(&mut c);
    // Stream 1: the request's block split over HEADERS + CONTINUATION, padded.
    let block = e.block(0, &fields(&request("/upload", "PUT")));
    let (a, b) = block.split_at(block.len() / 2);
    let mut padded = vec![3u8];
    padded.extend_from_slice(a);
    padded.extend_from_slice(&[0, 0, 0]);
    c.client(
        &[
            frame(HEADERS, PADDED, 1, &padded),
            frame(CONTINUATION, END_HEADERS, 1, b),
        ]
        .concat(),
    );
    c.client(&frame(DATA, END_STREAM, 1, b"data"));
    c.server(&frame(
        HEADERS,
        END_HEADERS,
        1,
        &e.block(1, &[(":status", "100")]),
    ));
    c.server(&frame(
        HEADERS,
        END_HEADERS,
        1,
        &e.block(1, &[(":status", "200")]),
    ));
    c.server(&frame(DATA, 0, 1, b"ok"));
    c.server(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &e.block(1, &[("x-trailer", "1")]),
    ));
    // Stream 3: the client gives up (RST_STREAM) after the response's headers.
    c.client(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &e.block(0, &fields(&request("/slow", "GET"))),
    ));
    c.server(&frame(
        HEADERS,
        END_HEADERS,
        3,
        &e.block(1, &[(":status", "200")]),
    ));
    c.client(&frame(RST, 0, 3, &8u32.to_be_bytes()));
    // Stream 5: never answered before the connection closes.
    c.client(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        5,
        &e.block(0, &fields(&request("/never", "GET"))),
    ));
    c.send(0, tcp_flags::FIN, b"");
    let (ex, st) = c.done();
    let got: Vec<_> = ex
        .iter()
        .map(|x| (s(x.target()), x.status, x.truncated))
        .collect();
    assert_eq!(
        got,
        [
            ("/upload".into(), Some(200), false),
            ("/slow".into(), None, true),
            ("/never".into(), None, true),
        ]
    );
    // The interim response's frame and the trailers count toward the response.
    assert!(ex[0].resp_bytes > 9 * 4 + 2, "{:?}", ex[0]);
    assert_eq!(st.parse_errors, 0);
}

#[test]
fn grpc_status_from_trailers_from_a_trailers_only_response_or_none() {
    let mut c = Conv::new();
    let mut e = Encoders::new();
    open(&mut c);
    let call = |e: &mut Encoders, path: &str| {
        let r = request(path, "POST");
        let mut f = fields(&r);
        f.push(("content-type", "application/grpc"));
        f.push(("te", "trailers"));
        e.block(0, &f)
    };
    // OK, then NOT_FOUND in trailers.
    for (id, code) in [(1u32, "0"), (3, "5")] {
        let b = call(&mut e, "/pkg.Svc/Get");
        c.client(
            &[
                frame(HEADERS, END_HEADERS, id, &b),
                frame(DATA, END_STREAM, id, &[0, 0, 0, 0, 2, 8, 1]),
            ]
            .concat(),
        );
        c.server(&frame(
            HEADERS,
            END_HEADERS,
            id,
            &e.block(
                1,
                &[(":status", "200"), ("content-type", "application/grpc")],
            ),
        ));
        c.server(&frame(DATA, 0, id, &[0, 0, 0, 0, 0]));
        c.server(&frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &e.block(1, &[("grpc-status", code)]),
        ));
    }
    // UNAVAILABLE as a trailers-only response.
    let b = call(&mut e, "/pkg.Svc/Down");
    c.client(
        &[
            frame(HEADERS, END_HEADERS, 5, &b),
            frame(DATA, END_STREAM, 5, &[0; 5]),
        ]
        .concat(),
    );
    c.server(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        5,
        &e.block(
            1,
            &[
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", "14"),
            ],
        ),
    ));
    // A deadline: the client resets the stream, no status on the wire.
    let b = call(&mut e, "/pkg.Svc/Slow");
    c.client(
        &[
            frame(HEADERS, END_HEADERS, 7, &b),
            frame(DATA, END_STREAM, 7, &[0; 5]),
        ]
        .concat(),
    );
    c.client(&frame(RST, 0, 7, &8u32.to_be_bytes()));
    let (ex, _) = c.done();
    let got: Vec<_> = ex.iter().map(|x| (s(x.target()), x.grpc)).collect();
    assert_eq!(
        got,
        [
            ("/pkg.Svc/Get".into(), Grpc::Status(0)),
            ("/pkg.Svc/Get".into(), Grpc::Status(5)),
            ("/pkg.Svc/Down".into(), Grpc::Status(14)),
            ("/pkg.Svc/Slow".into(), Grpc::NoStatus),
        ]
    );
}

/// The whole of [`concurrent_streams_pair_by_stream_and_count_their_frames`]'s client and server
/// bytes, for cutting at random.
fn conversation() -> (Vec<u8>, Vec<u8>) {
    let mut e = Encoders::new();
    let mut client = PREFACE.to_vec();
    client.extend(frame(SETTINGS, 0, 0, &[]));
    let mut server = frame(SETTINGS, 0, 0, &[]);
    for id in [1u32, 3, 5, 7] {
        let path = format!("/p{id}");
        client.extend(frame(
            HEADERS,
            END_HEADERS,
            id,
            &e.block(0, &fields(&request(&path, "POST"))),
        ));
        client.extend(frame(DATA, END_STREAM, id, &vec![b'b'; id as usize * 100]));
    }
    for id in [7u32, 1, 5, 3] {
        server.extend(frame(
            HEADERS,
            END_HEADERS,
            id,
            &e.block(1, &[(":status", "200"), ("x-id", &id.to_string())]),
        ));
        server.extend(frame(DATA, END_STREAM, id, &vec![b'r'; id as usize * 333]));
    }
    (client, server)
}

fn summary(ex: &[Exchange]) -> Vec<(String, Option<u16>, u64, u64)> {
    let mut v: Vec<_> = ex
        .iter()
        .map(|x| (s(x.target()), x.status, x.req_bytes, x.resp_bytes))
        .collect();
    v.sort();
    v
}

proptest! {
    /// However the two byte streams are cut into segments, the same exchanges come out.
    #[test]
    fn any_segmentation_gives_the_same_exchanges(cuts_c in prop::collection::vec(1usize..200, 1..40), cuts_s in prop::collection::vec(1usize..400, 1..40)) {
        let (client, server) = conversation();
        let whole = {
            let mut c = Conv::new();
            c.client(&client);
            c.server(&server);
            summary(&c.done().0)
        };
        prop_assert_eq!(whole.len(), 4);
        let mut c = Conv::new();
        let (mut i, mut j) = (0, 0);
        let mut k = 0;
        while i < client.len() || j < server.len() {
            // The first segment holds at least `PRI`: one or two bytes could as well be a POST's.
            let n = cuts_c[k % cuts_c.len()].max(if i == 0 { 3 } else { 1 }).min(client.len() - i);
            c.client(&client[i..i + n]);
            i += n;
            if i == client.len() {
                let m = cuts_s[k % cuts_s.len()].min(server.len() - j);
                c.server(&server[j..j + m]);
                j += m;
            }
            k += 1;
        }
        let (ex, st) = c.done();
        prop_assert_eq!(summary(&ex), whole);
        prop_assert_eq!(st.parse_errors, 0);
    }

    /// Any bytes after the preface: counted, never a panic.
    #[test]
    fn arbitrary_frames_never_panic(client in prop::collection::vec(any::<u8>(), 0..600), server in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut c = Conv::new();
        let mut first = PREFACE.to_vec();
        first.extend_from_slice(&client);
        c.client(&first);
        c.server(&server);
        let _ = c.done();
    }
}

#[test]
fn a_gap_inside_data_keeps_the_frames_and_a_gap_across_them_gives_up() {
    let (client, server) = conversation();
    // Lose 50 bytes inside the last response DATA payload (stream 3's, 999 bytes): still paired.
    let mut c = Conv::new();
    c.client(&client);
    let cut = server.len() - 500;
    c.server(&server[..cut]);
    c.lost(1, &server[cut..cut + 50]);
    c.server(&server[cut + 50..]);
    let (ex, st) = c.done();
    assert_eq!(ex.len(), 4);
    assert_eq!(ex.iter().filter(|x| x.gap).count(), 1);
    assert!(ex.iter().all(|x| x.status == Some(200)), "{ex:#?}");
    assert_eq!(st.http2_lost, 0);
    // Lose the first response's headers: the server's frames are lost to us; the requests end
    // flagged, without responses, at the close.
    let mut c = Conv::new();
    c.client(&client);
    c.server(&server[..20]);
    c.lost(1, &server[20..60]);
    c.server(&server[60..]);
    let (ex, st) = c.done();
    assert_eq!(st.http2_lost, 1);
    assert_eq!(ex.len(), 4);
    assert!(
        ex.iter()
            .all(|x| x.gap && x.status.is_none() && x.request_seen)
    );
}

#[test]
fn malformed_frames_are_counted_and_the_direction_given_up() {
    let mut c = Conv::new();
    open(&mut c);
    // 20 000 bytes > the 16 384 SETTINGS allow; then a DATA on stream 0 in the other direction.
    c.client(&frame(DATA, 0, 1, &vec![0; 20_000]));
    c.server(&frame(DATA, 0, 0, b"x"));
    let (_, st) = c.done();
    assert_eq!((st.parse_errors, st.http2_lost), (2, 2));
}

#[test]
fn an_h2c_upgrade_makes_the_request_stream_1_and_continues_in_http2() {
    let mut c = Conv::new();
    let mut e = Encoders::new();
    let upgrade =
        b"GET /first HTTP/1.1\r\nHost: up.local\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                    Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    c.client(upgrade);
    let switching =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    // The 101 and the first HTTP/2 frames in one segment, as servers write them.
    let h1 = frame(HEADERS, END_HEADERS, 1, &e.block(1, &[(":status", "200")]));
    let d1 = frame(DATA, END_STREAM, 1, b"first!");
    c.server(&[&switching[..], &frame(SETTINGS, 0, 0, &[]), &h1, &d1].concat());
    let mut after = PREFACE.to_vec();
    after.extend(frame(SETTINGS, 0, 0, &[]));
    let get = frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &e.block(0, &fields(&request("/second", "GET"))),
    );
    after.extend(&get);
    c.client(&after);
    let h3 = frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &e.block(1, &[(":status", "404")]),
    );
    c.server(&h3);
    let (ex, st) = c.done();
    let got: Vec<_> = ex
        .iter()
        .map(|x| {
            (
                s(x.target()),
                s(x.host()),
                x.status,
                x.protocol,
                x.req_bytes,
                x.resp_bytes,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "/first".into(),
                "up.local".into(),
                Some(200),
                Protocol::Http2,
                upgrade.len() as u64,
                (switching.len() + h1.len() + d1.len()) as u64
            ),
            (
                "/second".into(),
                "svc.local".into(),
                Some(404),
                Protocol::Http2,
                get.len() as u64,
                h3.len() as u64
            ),
        ]
    );
    assert_eq!(
        (st.requests, st.responses, st.http2_connections, st.tunnels),
        (2, 2, 1, 0)
    );
}

#[test]
fn a_connection_picked_up_in_its_middle_is_followed_leniently() {
    // Streams 1 and 3 went by before the capture began and filled both directions' dynamic
    // tables; the blocks seen now refer to those entries (indices past what this decoder holds)
    // beside what they spell out. By hand, RFC 7541 section 6: 0x83 :method POST, 0x86 :scheme
    // http, 0x44 a literal :path indexed, 0xbf / 0xc0 / 0xbe dynamic entries never seen here,
    // 0x88 :status 200.
    let mut c = Conv::new();
    for (id, index) in [(5u32, 0xbf), (7, 0xc0)] {
        let path = format!("/p{id}");
        let mut req = vec![0x83, 0x86, 0x44, path.len() as u8];
        req.extend_from_slice(path.as_bytes());
        req.push(index);
        c.client(
            &[
                frame(HEADERS, END_HEADERS, id, &req),
                frame(DATA, END_STREAM, id, b"body"),
            ]
            .concat(),
        );
        c.server(
            &[
                frame(HEADERS, END_HEADERS, id, &[0x88, 0xbe]),
                frame(DATA, END_STREAM, id, b"ok"),
            ]
            .concat(),
        );
    }
    let (ex, st) = c.done();
    let got: Vec<_> = ex
        .iter()
        .map(|x| (s(x.method()), s(x.target()), x.status))
        .collect();
    assert_eq!(
        got,
        [
            ("POST".into(), "/p5".into(), Some(200)),
            ("POST".into(), "/p7".into(), Some(200))
        ],
        "{ex:#?}"
    );
    assert_eq!(
        (st.http2_connections, st.http2_joined, st.parse_errors),
        (1, 1, 0)
    );
    assert_eq!(st.http2_unknown_fields, 4);
    // Who sent a segment, from its first header block's first field.
    let req = frame(HEADERS, END_HEADERS, 1, &[0x83, 0x86]);
    let resp = frame(HEADERS, END_HEADERS, 1, &[0x20, 0x88]);
    assert_eq!(super::sent_by_client(&req), Some(true));
    assert_eq!(
        super::sent_by_client(&[frame(PING, 0, 0, &[0; 8]), resp].concat()),
        Some(false)
    );
    assert_eq!(super::sent_by_client(&frame(PING, 0, 0, &[0; 8])), None);
    assert_eq!(
        super::sent_by_client(&frame(HEADERS, END_HEADERS, 1, &[0xbe])),
        None
    );
    // Random bytes are not taken for frames.
    assert!(!super::frames_fill(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(!super::frames_fill(&[0u8; 9]));
    assert!(super::frames_fill(&frame(PING, 0, 0, &[0; 8])));
}
