//! Body skipping without root: real captures read whole, then read again through the kernel
//! filter's own verdict (`http_top_common::skip_verdict`, the function the filter runs) applied
//! to every frame with the stretches the pipeline asked for, each taking effect a few frames
//! late as in a live ring. Frames whose payload lies wholly inside a stretch reach the pipeline
//! cut to their headers, exactly as the filter hands them over.
//!
//! The filter also reads response heads itself (`http_top_common::response_body`) and starts a
//! stretch at once; that is simulated too, frame by frame as the filter does it.
//!
//! The whole read is the ground truth: every exchange must come out identical (counts, bytes,
//! times, flags) while far fewer payload bytes are seen. A wrong stretch (one that covers the
//! next message's head) must turn into a counted gap and a flagged exchange, never a wrong number.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use http_top::{
    capture::{Next, PacketSource, file::FileSource},
    decode,
    flow::FlowConfig,
    packet::{Packet, SkipHint},
    pipeline::{Pipeline, Totals},
    proto::Exchange,
};
use http_top_common::{
    STATUS_PREFIX, after_head_read, asks_head, head_unread, head_worth_reading, replaces_stretch,
    response_body, skip_verdict, skippable_status, stretch,
};

fn asset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets")
        .join(name)
}

struct Read {
    exchanges: Vec<Exchange>,
    totals: Totals,
    /// Stretches asked for.
    hints: usize,
    /// Frames cut to their headers, and their payload bytes.
    cut: usize,
    cut_bytes: u64,
    /// Stretches the simulated filter started from a head.
    head_stretches: usize,
    /// Response heads the filter let pass unread (a connection of small responses).
    heads_unread: usize,
}

/// The filter's map: a stretch per direction.
type Stretches = HashMap<(SocketAddr, SocketAddr), (u32, u32)>;

/// How the filter is simulated.
#[derive(Clone, Copy)]
struct Filter {
    /// Stretches userspace asks for take effect this many frames later.
    lag: usize,
    /// The filter reads response heads and starts stretches itself.
    heads: bool,
    /// It sees the requests too, so it reads no heads of a connection that has carried a HEAD
    /// request (false: as if the requests took another path).
    requests: bool,
}

/// Reads `path`; with a `filter`, skipping as the filter would. `tamper` may change a stretch
/// userspace asks for before it takes effect.
fn read(path: &Path, filter: Option<Filter>, tamper: impl FnMut(&mut SkipHint)) -> Read {
    read_source(FileSource::open(path).unwrap(), filter, tamper)
}

fn read_source(
    mut src: FileSource,
    filter: Option<Filter>,
    mut tamper: impl FnMut(&mut SkipHint),
) -> Read {
    let lag = filter.map(|f| f.lag);
    let heads = filter.is_some_and(|f| f.heads);
    let requests = filter.is_some_and(|f| f.requests);
    let mut p = Pipeline::new(FlowConfig::default());
    if lag.is_some() {
        p.ask_skips();
    }
    let mut r = Read {
        exchanges: Vec::new(),
        totals: Totals::default(),
        hints: 0,
        cut: 0,
        cut_bytes: 0,
        head_stretches: 0,
        heads_unread: 0,
    };
    let mut map = Stretches::new();
    // Client directions that carried a HEAD request (`FLAG_HEAD_ASKED`).
    let mut head_asked = HashSet::new();
    // Response directions' flags: heads read in a row with nothing to skip, heads let pass.
    let mut head_flags: HashMap<(SocketAddr, SocketAddr), u32> = HashMap::new();
    let mut queued: Vec<(usize, SkipHint)> = Vec::new();
    let mut n = 0;
    while let Next::Packet(pkt) = src.next_packet(Duration::ZERO).unwrap() {
        n += 1;
        for (_, h) in queued.extract_if(.., |(due, _)| *due <= n) {
            let (seq, len) = map.get(&(h.src, h.dst)).copied().unwrap_or((0, 0));
            if replaces_stretch(seq, len, h.seq, h.len) {
                map.insert((h.src, h.dst), (h.seq, h.len));
            }
        }
        let mut frame = pkt;
        let seg = decode::decode(pkt.link, pkt.data).ok();
        let mut cut = false;
        // The stretch as the filter reads it, before this packet clears it.
        let before = seg
            .as_ref()
            .and_then(|seg| map.get(&(seg.src, seg.dst)).copied());
        if let Some(seg) = &seg
            && let Some((seq, len)) = before
        {
            match skip_verdict(seq, len, seg.seq, seg.payload.len() as u32) {
                Some(true) => {
                    let headers = seg.payload.as_ptr() as usize - pkt.data.as_ptr() as usize;
                    r.cut += 1;
                    r.cut_bytes += seg.payload.len() as u64;
                    cut = true;
                    frame = Packet {
                        data: &pkt.data[..headers],
                        ..pkt
                    };
                }
                Some(false) => {
                    map.remove(&(seg.src, seg.dst));
                }
                None => {}
            }
        }
        // The filter's own reading of a response head, on a packet it keeps whole whose first
        // byte no stretch covers.
        if heads
            && !cut
            && let Some(seg) = &seg
            && seg.payload.len() >= STATUS_PREFIX
        {
            let covered =
                before.is_some_and(|(seq, len)| skip_verdict(seq, len, seg.seq, 1) == Some(true));
            if covered {
            } else if asks_head(seg.payload) {
                if requests {
                    head_asked.insert((seg.src, seg.dst));
                }
            } else if skippable_status(seg.payload[..STATUS_PREFIX].try_into().unwrap()) {
                let flags = head_flags.entry((seg.src, seg.dst)).or_default();
                if let Some(f) = head_unread(*flags) {
                    *flags = f;
                    r.heads_unread += 1;
                } else if !head_asked.contains(&(seg.dst, seg.src))
                    && head_worth_reading(
                        seg.payload.len(),
                        seg.payload[seg.payload.len() - 4..].try_into().unwrap(),
                    )
                {
                    let found = response_body(seg.payload);
                    *flags = after_head_read(*flags, found.is_some());
                    if let Some((head, body)) = found {
                        r.head_stretches += 1;
                        map.insert(
                            (seg.src, seg.dst),
                            (seg.seq.wrapping_add(head), stretch(body) as u32),
                        );
                    }
                }
            }
        }
        p.packet(&frame);
        r.exchanges.extend(p.drain());
        for mut h in p.skips() {
            r.hints += 1;
            tamper(&mut h);
            queued.push((n + lag.unwrap_or(0), h));
        }
    }
    p.finish(|e| r.exchanges.push(e));
    r.totals = p.totals();
    r
}

fn sorted(mut v: Vec<Exchange>) -> Vec<Exchange> {
    v.sort_by_key(|e| (e.client, e.req_first_ns, e.resp_first_ns));
    v
}

#[test]
fn skipped_bodies_give_the_same_exchanges_from_far_fewer_bytes() {
    // Payload seen on the exactness capture with stretches 40 frames late, without and with the
    // filter reading heads.
    let mut seen_late = [0u64; 2];
    for name in ["exactness.pcap", "bimodal.pcap", "demo.pcap"] {
        let whole = read(&asset(name), None, |_| {});
        for (lag, heads) in [
            (0, false),
            (1, false),
            (5, false),
            (40, false),
            (0, true),
            (40, true),
        ] {
            let skipping = read(
                &asset(name),
                Some(Filter {
                    lag,
                    heads,
                    requests: true,
                }),
                |_| {},
            );
            let t = &skipping.totals;
            assert_eq!(
                sorted(skipping.exchanges),
                sorted(whole.exchanges.clone()),
                "{name}, lag {lag}"
            );
            // Every byte the filter cut was counted as body, none lost.
            assert_eq!(t.flows.skip_misses, 0, "{name}");
            assert_eq!(t.flows.gaps, whole.totals.flows.gaps, "{name}");
            assert_eq!(t.http, whole.totals.http, "{name}");
            assert_eq!(t.counters.uncaptured_bytes, skipping.cut_bytes, "{name}");
            assert!(t.flows.skipped_bytes <= skipping.cut_bytes, "{name}");
            eprintln!(
                "{name} lag {lag} heads {heads}: {} stretches asked, {} from heads ({} let pass), \
                 {} frames cut, payload seen {} of {} bytes",
                skipping.hints,
                skipping.head_stretches,
                skipping.heads_unread,
                skipping.cut,
                t.counters.payload_bytes,
                whole.totals.counters.payload_bytes
            );
            if name != "exactness.pcap" {
                continue;
            }
            let seen = t.counters.payload_bytes;
            let all = whole.totals.counters.payload_bytes;
            // Its two 512 KiB answers and seven uploads are worth skipping: most of their bytes
            // are never seen when the stretch takes effect at once (a long lag finishes these
            // bodies before it does; they are still exact).
            if lag <= 1 {
                assert!(skipping.hints > 0 && skipping.cut > 0, "lag {lag}");
                assert!(seen * 4 < all, "lag {lag}: {seen} of {all}");
            }
            if lag == 40 {
                seen_late[usize::from(heads)] = seen;
            }
            if heads {
                // The filter reads both answers' heads itself (the uploads are left to
                // userspace: it reads no request).
                assert_eq!(skipping.head_stretches, 2, "lag {lag}");
                // Its connections of small answers read four heads, then one in eight
                // (`head_unread`): the rest pass unread, and every exchange is still exact.
                assert!(skipping.heads_unread >= 20, "{}", skipping.heads_unread);
            }
        }
    }
    // Reading the heads in the filter skips the answers' bodies however late userspace is.
    assert!(
        seen_late[1] + 900_000 < seen_late[0],
        "{seen_late:?}: without and with the filter reading heads"
    );
}

/// What matches an exchange across two reads (pipelined requests share a frame, so the time
/// alone is not enough).
fn key(e: &Exchange) -> (SocketAddr, u64, Vec<u8>) {
    (
        e.client,
        e.req_first_ns,
        e.target().unwrap_or_default().to_vec(),
    )
}

#[test]
fn a_wrong_stretch_is_a_counted_gap_never_a_wrong_number() {
    let name = "exactness.pcap";
    let whole = read(&asset(name), None, |_| {});
    // Every stretch runs 3000 bytes past its body: the next response's head is cut too.
    let bad = read(
        &asset(name),
        Some(Filter {
            lag: 2,
            heads: false,
            requests: true,
        }),
        |h| h.len += 3000,
    );
    let t = &bad.totals;
    assert!(t.flows.skip_misses > 0, "the cut heads were needed");
    assert!(t.flows.gaps > whole.totals.flows.gaps);
    // Exchanges the loss touched are flagged; every other one is exactly as in the whole read.
    let truth: HashMap<_, _> = whole.exchanges.iter().map(|e| (key(e), e)).collect();
    let (mut exact, mut flagged) = (0, 0);
    for e in &bad.exchanges {
        if e.gap || e.truncated {
            flagged += 1;
            continue;
        }
        let w = truth
            .get(&key(e))
            .unwrap_or_else(|| panic!("an unflagged exchange the whole read does not have: {e:?}"));
        assert_eq!(e, *w);
        exact += 1;
    }
    assert!(flagged > 0 && exact > 0, "{flagged} flagged, {exact} exact");
}

/// One TCP connection written frame by frame (client 10.0.0.1:40000, server 10.0.0.2:80), a
/// millisecond apart.
#[derive(Default)]
struct Conv {
    frames: Vec<Vec<u8>>,
    /// Next sequence number of the client and of the server.
    seq: [u32; 2],
}

impl Conv {
    fn send(&mut self, from_client: bool, flags: &str, data: &[u8]) {
        use etherparse::PacketBuilder;
        let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        if self.frames.is_empty() {
            self.seq = [1000, 5000];
        }
        let seq = &mut self.seq;
        let (src, dst, sp, dp, d) = if from_client {
            (c, s, 40000, 80, 0)
        } else {
            (s, c, 80, 40000, 1)
        };
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src, dst, 64)
            .tcp(sp, dp, seq[d], 65535);
        let b = match flags {
            "syn" => b.syn(),
            "synack" => b.syn().ack(seq[1 - d]),
            "fin" => b.fin().ack(seq[1 - d]),
            _ => b.ack(seq[1 - d]),
        };
        let mut f = Vec::new();
        b.write(&mut f, data).unwrap();
        self.frames.push(f);
        seq[d] = seq[d]
            .wrapping_add(data.len() as u32)
            .wrapping_add(u32::from(
                flags == "syn" || flags == "synack" || flags == "fin",
            ));
    }

    fn pcap(&self) -> Vec<u8> {
        let mut w = pcap_file::pcap::PcapWriter::new(Vec::new()).unwrap();
        for (i, f) in self.frames.iter().enumerate() {
            let ts = Duration::from_millis(1000 + i as u64);
            w.write_packet(&pcap_file::pcap::PcapPacket::new(ts, f.len() as u32, f))
                .unwrap();
        }
        w.into_writer()
    }
}

/// A capture built with [`Conv`] read whole, without the filter: `n` exchanges, each a 200 with
/// no gap.
fn whole_exact(src: &impl Fn() -> FileSource, n: usize) -> Read {
    let whole = read_source(src(), None, |_| {});
    assert_eq!(whole.exchanges.len(), n);
    assert!(
        whole
            .exchanges
            .iter()
            .all(|e| !e.gap && e.status == Some(200))
    );
    whole
}

/// A keep-alive connection: a HEAD whose answer announces a long body it does not send (in a head
/// long enough for the filter to read), then a GET. The filter, having seen the HEAD request,
/// reads no head of that connection: exact however late userspace is. A filter that did not see
/// the request (the requests on another path) starts a stretch from the HEAD's answer; userspace,
/// which knows the request, clears it. In time, nothing is lost; too late, the GET's answer is
/// cut: a counted gap and a flagged exchange, never its bytes counted as a body.
#[test]
fn the_answer_to_a_head_is_cleared_before_it_costs_the_next_one() {
    let mut conv = Conv::default();
    let mut send =
        |from_client: bool, flags: &str, data: &[u8]| conv.send(from_client, flags, data);
    send(true, "syn", b"");
    send(false, "synack", b"");
    send(true, "", b"HEAD /big HTTP/1.1\r\nHost: x\r\n\r\n");
    let pad = "a".repeat(100);
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nX-Pad: {pad}\r\n\r\n");
    send(false, "", head.as_bytes());
    send(true, "", b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n");
    send(
        false,
        "",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    );
    send(true, "", b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n");
    send(
        false,
        "",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    );
    send(true, "fin", b"");
    send(false, "fin", b"");
    let pcap = conv.pcap();
    let src = || FileSource::from_bytes("head.pcap", pcap.clone()).unwrap();
    let whole = whole_exact(&src, 3);
    for lag in [0, 3, 40] {
        let f = Filter {
            lag,
            heads: true,
            requests: true,
        };
        let seen = read_source(src(), Some(f), |_| {});
        assert_eq!(
            seen.head_stretches, 0,
            "a connection that asked HEAD: no head read"
        );
        assert_eq!(sorted(seen.exchanges), sorted(whole.exchanges.clone()));
        assert_eq!(seen.totals.flows.skip_misses, 0);
    }
    // Without the request, the clear takes effect at once: exact.
    let unseen = |lag| Filter {
        lag,
        heads: true,
        requests: false,
    };
    let quick = read_source(src(), Some(unseen(0)), |_| {});
    assert_eq!(quick.head_stretches, 1, "the filter read the HEAD's answer");
    assert_eq!(sorted(quick.exchanges), sorted(whole.exchanges.clone()));
    assert_eq!(quick.totals.flows.skip_misses, 0);
    // Three frames late: the first GET's answer is cut before the clear lands.
    let late = read_source(src(), Some(unseen(3)), |_| {});
    assert!(late.cut >= 1);
    assert!(
        late.totals.flows.skip_misses > 0,
        "the cut bytes were needed"
    );
    let truth: HashMap<_, _> = whole.exchanges.iter().map(|e| (key(e), e)).collect();
    for e in &late.exchanges {
        if e.gap || e.truncated {
            continue;
        }
        assert_eq!(
            Some(&e),
            truth.get(&key(e)),
            "an unflagged exchange must be exact"
        );
    }
    assert!(late.exchanges.iter().any(|e| e.gap), "the loss is flagged");
}

/// What a response head announces by httparse and RFC 9112 section 6.3: `(head length, body
/// length)` when the head is complete and its body has a Content-Length (every field of that
/// name all digits and equal), no Transfer-Encoding, and a status that allows a body.
fn httparse_body(bytes: &[u8]) -> Option<(usize, u64)> {
    // As many slots as userspace's parser has.
    let mut fields = [httparse::EMPTY_HEADER; http_top_common::HEAD_FIELDS_MAX as usize];
    let mut r = httparse::Response::new(&mut fields);
    let httparse::Status::Complete(head) = r.parse(bytes).ok()? else {
        return None;
    };
    let code = r.code?;
    if (100..200).contains(&code) || code == 204 || code == 304 {
        return None;
    }
    let mut length = None;
    for f in r.headers.iter() {
        if f.name.eq_ignore_ascii_case("transfer-encoding") {
            return None;
        }
        if f.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(f.value).ok()?.trim_matches([' ', '\t']);
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u64 = v.parse().ok()?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    Some((head, length?))
}

mod head_scan {
    use proptest::prelude::*;

    use super::*;

    /// Field names, some close to the two the filter looks for.
    const NAMES: [&str; 10] = [
        "Content-Length",
        "content-length",
        "CONTENT-LENGTH",
        "Transfer-Encoding",
        "transfer-encoding",
        "X-Content-Length",
        "Content-Lengths",
        "ontent-Length",
        "Server",
        "ETag",
    ];

    fn field() -> impl Strategy<Value = String> {
        (
            0..NAMES.len(),
            prop_oneof![
                (0u64..10_000_000).prop_map(|n| n.to_string()),
                Just("chunked".to_string()),
                "[ \t]{0,2}[0-9]{1,18}[ \t]{0,2}",
                "[ -~\u{7f}\u{e9}\t]{0,40}",
            ],
            prop_oneof![Just(": "), Just(":"), Just(" : "), Just(":\t")],
            prop_oneof![Just("\r\n"), Just("\n")],
        )
            .prop_map(|(n, v, sep, eol)| format!("{}{sep}{v}{eol}", NAMES[n]))
    }

    fn head() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![Just("1.1"), Just("1.0")],
            prop_oneof![
                Just(200u16),
                Just(206),
                Just(404),
                Just(100),
                Just(204),
                Just(304),
                100u16..600
            ],
            proptest::collection::vec(field(), 0..8),
            prop_oneof![Just("\r\n"), Just("\n")],
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<Option<(usize, u8)>>(),
        )
            .prop_map(|(v, code, fields, eol, body, flip)| {
                let mut h = format!("HTTP/{v} {code} OK{eol}").into_bytes();
                for f in fields {
                    h.extend_from_slice(f.as_bytes());
                }
                h.extend_from_slice(eol.as_bytes());
                h.extend_from_slice(&body);
                // Now and then one byte anywhere changed.
                if let Some((at, b)) = flip {
                    let at = at % h.len();
                    h[at] = b;
                }
                h
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The kernel filter's reading of a head (`common::HeadScan`, the code it runs) never
        /// disagrees with httparse: when it starts a stretch, the head is complete, that long, and
        /// announces that body; and every plain CRLF head within its reach that announces a long
        /// enough body is read.
        #[test]
        fn the_filter_reads_heads_as_httparse_does(h in head()) {
            let kernel = response_body(&h);
            let truth = httparse_body(&h);
            if let Some((len, body)) = kernel {
                prop_assert_eq!(truth, Some((len as usize, body)), "{:?}", String::from_utf8_lossy(&h));
                prop_assert!(body >= http_top_common::SKIP_MIN);
            }
            if let Some((len, body)) = truth
                && len <= http_top_common::HEAD_SCAN
                && body >= http_top_common::SKIP_MIN
                && !h[..len].windows(2).any(|w| w == b" :")
            {
                prop_assert_eq!(kernel, Some((len as u32, body)), "{:?}", String::from_utf8_lossy(&h));
            }
        }
    }
}

/// A keep-alive connection of small answers, each head alone in its segment (as nginx sends a
/// file's head before `sendfile`): the filter reads four heads that announce nothing worth
/// skipping, then lets heads pass unread (`head_unread`). A large body whose head comes then is
/// cut by userspace's own stretch: every exchange exact, no byte lost.
#[test]
fn a_large_body_after_small_ones_is_skipped_from_userspace_alone() {
    let mut conv = Conv::default();
    conv.send(true, "syn", b"");
    conv.send(false, "synack", b"");
    let page = [b'p'; 600];
    for _ in 0..5 {
        conv.send(true, "", b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n");
        conv.send(false, "", b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n");
        conv.send(false, "", &page);
    }
    conv.send(true, "", b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    conv.send(
        false,
        "",
        b"HTTP/1.1 200 OK\r\nContent-Length: 140000\r\n\r\n",
    );
    let chunk = [b'b'; 1400];
    for _ in 0..100 {
        conv.send(false, "", &chunk);
    }
    conv.send(true, "fin", b"");
    conv.send(false, "fin", b"");
    let pcap = conv.pcap();
    let src = || FileSource::from_bytes("quiet.pcap", pcap.clone()).unwrap();
    let whole = whole_exact(&src, 6);
    for lag in [0, 3] {
        let f = Filter {
            lag,
            heads: true,
            requests: true,
        };
        let seen = read_source(src(), Some(f), |_| {});
        // Four small heads read, the fifth and the large one's let pass.
        assert_eq!(seen.head_stretches, 0, "lag {lag}");
        assert_eq!(seen.heads_unread, 2, "lag {lag}");
        assert!(
            seen.hints > 0 && seen.cut >= 90,
            "lag {lag}: {} cut",
            seen.cut
        );
        assert_eq!(sorted(seen.exchanges), sorted(whole.exchanges.clone()));
        assert_eq!(seen.totals.flows.skip_misses, 0);
    }
}
