//! The reassembler against a naive model: a byte stream cut into random segments, reordered,
//! duplicated, overlapped and partly dropped must come out as the original bytes, with gaps exactly
//! where no captured segment covered them.

use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;
use crate::decode::{Segment, tcp_flags};

/// What came out of the table, per direction: bytes, with `None` for gap bytes.
#[derive(Default)]
struct Recorder {
    out: [Vec<Option<u8>>; 2],
    /// Capture time per delivered byte.
    ts: [Vec<u64>; 2],
    closes: Vec<CloseReason>,
    /// Offsets (per direction) of uncaptured bytes taken as body; they come out as `None` too.
    skipped: [Vec<usize>; 2],
    /// Takes uncaptured bytes as body only before this offset (a body that ends there).
    body_end: Option<usize>,
}

impl Handler for Recorder {
    type Conn = ();
    fn on_data(&mut self, _: &mut (), _: &ConnInfo, dir: usize, ts: u64, data: &[u8]) {
        self.out[dir].extend(data.iter().map(|&b| Some(b)));
        self.ts[dir].extend(std::iter::repeat_n(ts, data.len()));
    }
    fn on_gap(&mut self, _: &mut (), _: &ConnInfo, dir: usize, len: u64, _: u64) {
        self.out[dir].extend(std::iter::repeat_n(None, len as usize));
        self.ts[dir].extend(std::iter::repeat_n(0, len as usize));
    }
    fn on_skip(&mut self, _: &mut (), _: &ConnInfo, dir: usize, len: u64, _: u64) -> u64 {
        let at = self.out[dir].len();
        let end = self.body_end.unwrap_or(0);
        let taken = (len as usize).min(end.saturating_sub(at));
        self.skipped[dir].extend(at..at + taken);
        self.out[dir].extend(std::iter::repeat_n(None, taken));
        self.ts[dir].extend(std::iter::repeat_n(0, taken));
        taken as u64
    }
    fn on_close(&mut self, _: &mut (), _: &ConnInfo, reason: CloseReason, _: u64) {
        self.closes.push(reason);
    }
}

fn a() -> SocketAddr {
    "10.0.0.1:40000".parse().unwrap()
}
fn b() -> SocketAddr {
    "10.0.0.2:80".parse().unwrap()
}

fn seg(src: SocketAddr, dst: SocketAddr, seq: u32, flags: u8, payload: &[u8]) -> Segment<'_> {
    Segment {
        src,
        dst,
        seq,
        ack: 0,
        flags,
        payload,
        uncaptured: 0,
    }
}

/// A segment of the model: a range of the stream and whether it is captured.
#[derive(Debug, Clone)]
struct Piece {
    start: usize,
    end: usize,
}

fn stream_and_pieces() -> impl Strategy<Value = (Vec<u8>, u32, Vec<Piece>, Vec<usize>, bool)> {
    (1usize..4000, any::<u32>(), any::<bool>()).prop_flat_map(|(len, isn, syn)| {
        (
            proptest::collection::vec(any::<u8>(), len),
            // ISNs near the wrap point are the interesting ones.
            prop_oneof![Just(u32::MAX - 100), Just(isn)],
            proptest::collection::vec(1usize..len.max(2), 0..12),
            // Extra retransmissions: random ranges sent again.
            proptest::collection::vec((0usize..len, 1usize..600), 0..6),
            // Permutation seed and drop mask.
            proptest::collection::vec(any::<u16>(), 64),
            Just(syn),
        )
            .prop_map(move |(data, isn, mut cuts, retrans, noise, syn)| {
                cuts.push(0);
                cuts.push(len);
                cuts.sort_unstable();
                cuts.dedup();
                let mut pieces: Vec<Piece> = cuts
                    .windows(2)
                    .map(|w| Piece {
                        start: w[0],
                        end: w[1],
                    })
                    .collect();
                for (s, l) in retrans {
                    pieces.push(Piece {
                        start: s,
                        end: (s + l).min(len),
                    });
                }
                // Local reordering: swap neighbours chosen by the noise.
                for (i, n) in noise.iter().enumerate() {
                    let j = i % pieces.len();
                    let k = (j + usize::from(*n % 3)) % pieces.len();
                    pieces.swap(j, k);
                }
                let order: Vec<usize> = noise.iter().map(|n| usize::from(*n)).collect();
                (data, isn, pieces, order, syn)
            })
    })
}

/// Feeds `pieces` (those not dropped) and returns what came out of direction 0.
fn run(
    data: &[u8],
    isn: u32,
    syn: bool,
    pieces: &[Piece],
    dropped: &[bool],
    cfg: FlowConfig,
) -> Recorder {
    let mut t = FlowTable::<()>::new(cfg);
    let mut r = Recorder::default();
    let base = isn.wrapping_add(u32::from(syn));
    if syn {
        t.feed(0, &seg(a(), b(), isn, tcp_flags::SYN, b""), &mut r);
    }
    for (i, p) in pieces.iter().enumerate() {
        if dropped[i] {
            continue;
        }
        let s = seg(
            a(),
            b(),
            base.wrapping_add(p.start as u32),
            tcp_flags::ACK,
            &data[p.start..p.end],
        );
        t.feed(1 + i as u64, &s, &mut r);
    }
    t.finish_some(1_000_000, &mut r, usize::MAX);
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn reordered_duplicated_segments_reassemble_exactly((data, isn, pieces, _order, syn) in stream_and_pieces()) {
        // Without drops, and with the first piece in front (a stream picked up mid-connection
        // starts wherever its first captured segment does), the output is the input.
        let mut pieces = pieces;
        if !syn {
            let first = pieces.iter().position(|p| p.start == 0).unwrap();
            pieces.swap(0, first);
        }
        let dropped = vec![false; pieces.len()];
        let r = run(&data, isn, syn, &pieces, &dropped, FlowConfig::default());
        let out: Vec<u8> = r.out[0].iter().map(|b| b.expect("no gap without drops")).collect();
        prop_assert_eq!(&out, &data);
        // Each byte carries the capture time of the first segment that brought it.
        let mut first = vec![u64::MAX; data.len()];
        for (i, p) in pieces.iter().enumerate() {
            for t in &mut first[p.start..p.end] {
                *t = (*t).min(1 + i as u64);
            }
        }
        prop_assert_eq!(&r.ts[0], &first);
    }

    #[test]
    fn dropped_segments_become_gaps_of_exactly_their_size((data, isn, pieces, order, _syn) in stream_and_pieces()) {
        let syn = true; // with the SYN, the stream's start is known even if its first bytes are lost
        let dropped: Vec<bool> = (0..pieces.len()).map(|i| order[i % order.len()] % 4 == 0).collect();
        let r = run(&data, isn, syn, &pieces, &dropped, FlowConfig::default());
        // Model: a byte is captured if any kept piece covers it.
        let mut covered = vec![false; data.len()];
        for (p, d) in pieces.iter().zip(&dropped) {
            if !d {
                covered[p.start..p.end].iter_mut().for_each(|c| *c = true);
            }
        }
        let last = covered.iter().rposition(|&c| c).map_or(0, |i| i + 1);
        let out = &r.out[0];
        // Everything up to the last captured byte is accounted for, each byte either exactly as sent
        // or as a gap where nothing covered it.
        prop_assert_eq!(out.len(), last);
        for (i, b) in out.iter().enumerate() {
            match b {
                Some(v) => { prop_assert!(covered[i]); prop_assert_eq!(*v, data[i]); }
                None => prop_assert!(!covered[i], "byte {} was captured but reported as a gap", i),
            }
        }
    }

    #[test]
    fn tiny_caps_lose_bytes_but_never_misplace_them((data, isn, pieces, _order, _syn) in stream_and_pieces()) {
        // With caps too small to wait for holes, bytes may be given up as gaps even though they
        // arrive later, but every delivered byte is still the right byte at the right offset.
        let cfg = FlowConfig { max_ooo_bytes: 300, max_holes: 2, ..FlowConfig::default() };
        let dropped = vec![false; pieces.len()];
        let r = run(&data, isn, true, &pieces, &dropped, cfg);
        prop_assert!(r.out[0].len() <= data.len());
        for (i, b) in r.out[0].iter().enumerate() {
            if let Some(v) = b {
                prop_assert_eq!(*v, data[i]);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Segments that arrive cut (the kernel filter skipping a body, a snap length) still say how
    /// many bytes they carried: reordered, duplicated and overlapping, every byte comes out once,
    /// as data when the first copy of it held it and as skipped body when that copy did not.
    #[test]
    fn uncaptured_bytes_come_out_once_where_they_were((data, isn, pieces, order, _syn) in stream_and_pieces()) {
        let held: Vec<usize> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let n = order[(i * 7 + 1) % order.len()];
                let len = p.end - p.start;
                if n % 3 == 0 { (n >> 2) % (len + 1) } else { len }
            })
            .collect();
        let mut t = FlowTable::<()>::new(FlowConfig::default());
        let mut r = Recorder { body_end: Some(data.len()), ..Recorder::default() };
        t.feed(0, &seg(a(), b(), isn, tcp_flags::SYN, b""), &mut r);
        let base = isn.wrapping_add(1);
        for (i, p) in pieces.iter().enumerate() {
            let mut s = seg(a(), b(), base.wrapping_add(p.start as u32), tcp_flags::ACK, &data[p.start..p.start + held[i]]);
            s.uncaptured = (p.end - p.start - held[i]) as u32;
            t.feed(1 + i as u64, &s, &mut r);
        }
        t.finish_some(1_000_000, &mut r, usize::MAX);
        // Model: the first piece (in capture order) covering a byte decides what it is.
        let mut first_held: Vec<Option<bool>> = vec![None; data.len()];
        for (p, h) in pieces.iter().zip(&held) {
            for (x, f) in first_held.iter_mut().enumerate().take(p.end).skip(p.start) {
                f.get_or_insert(x < p.start + h);
            }
        }
        prop_assert_eq!(r.out[0].len(), data.len());
        let expected_skipped: Vec<usize> = (0..data.len()).filter(|&x| first_held[x] == Some(false)).collect();
        prop_assert_eq!(&r.skipped[0], &expected_skipped);
        for (x, b) in r.out[0].iter().enumerate() {
            match b {
                Some(v) => { prop_assert_eq!(first_held[x], Some(true)); prop_assert_eq!(*v, data[x]); }
                None => prop_assert_eq!(first_held[x], Some(false), "byte {} is a gap", x),
            }
        }
        prop_assert_eq!(t.stats().skipped_bytes, expected_skipped.len() as u64);
        prop_assert_eq!((t.stats().gaps, t.stats().skip_misses), (0, 0));
    }
}

#[test]
fn uncaptured_bytes_outside_a_body_are_a_counted_gap() {
    let mut t = FlowTable::<()>::new(FlowConfig::default());
    // A body of 10 bytes: a segment of 4 held bytes and 12 uncaptured ones takes 6 as body and
    // reports the other 6 (the next message's head, say) as a gap.
    let mut r = Recorder {
        body_end: Some(10),
        ..Recorder::default()
    };
    t.feed(1, &seg(a(), b(), 100, tcp_flags::SYN, b""), &mut r);
    let mut s = seg(a(), b(), 101, tcp_flags::ACK, b"abcd");
    s.uncaptured = 12;
    t.feed(2, &s, &mut r);
    assert_eq!(r.skipped[0], (4..10).collect::<Vec<_>>());
    assert_eq!(r.out[0].len(), 16);
    let st = t.stats();
    assert_eq!(
        (st.skipped_bytes, st.skip_misses, st.gaps, st.gap_bytes),
        (6, 6, 1, 6)
    );
    // The stream goes on after them.
    t.feed(3, &seg(a(), b(), 117, tcp_flags::ACK, b"xy"), &mut r);
    assert_eq!(r.out[0][16..], [Some(b'x'), Some(b'y')]);
}

#[test]
fn first_copy_wins_for_timestamps() {
    let mut t = FlowTable::<()>::new(FlowConfig::default());
    let mut r = Recorder::default();
    t.feed(10, &seg(a(), b(), 1000, tcp_flags::SYN, b""), &mut r);
    // Bytes 5..10 arrive first (out of order), then 0..10: bytes 5..10 keep time 20.
    t.feed(20, &seg(a(), b(), 1006, 0, b"56789"), &mut r);
    t.feed(30, &seg(a(), b(), 1001, 0, b"0123456789"), &mut r);
    let out: Vec<u8> = r.out[0].iter().map(|b| b.unwrap()).collect();
    assert_eq!(out, b"0123456789");
    assert_eq!(r.ts[0], [30, 30, 30, 30, 30, 20, 20, 20, 20, 20]);
    // A retransmission of delivered bytes changes nothing.
    t.feed(40, &seg(a(), b(), 1001, 0, b"0123456789"), &mut r);
    assert_eq!(r.out[0].len(), 10);
    assert_eq!(t.stats().retransmissions, 1);
}

#[test]
fn an_ack_beyond_what_was_captured_reports_the_gap_at_once() {
    let mut t = FlowTable::<()>::new(FlowConfig::default());
    let mut r = Recorder::default();
    t.feed(1, &seg(a(), b(), 100, tcp_flags::SYN, b""), &mut r);
    t.feed(2, &seg(a(), b(), 101, tcp_flags::ACK, b"hello"), &mut r);
    // Bytes 106..116 were never captured; the peer acknowledges up to 116.
    let mut ack = seg(b(), a(), 5000, tcp_flags::ACK, b"");
    ack.ack = 116;
    t.feed(3, &ack, &mut r);
    assert_eq!(r.out[0].len(), 15);
    assert!(r.out[0][5..].iter().all(Option::is_none));
    assert_eq!(t.stats().gap_bytes, 10);
}

#[test]
fn fins_close_and_rst_resets() {
    let mut t = FlowTable::<()>::new(FlowConfig::default());
    let mut r = Recorder::default();
    t.feed(1, &seg(a(), b(), 1, tcp_flags::SYN, b""), &mut r);
    t.feed(
        2,
        &seg(b(), a(), 9, tcp_flags::SYN | tcp_flags::ACK, b""),
        &mut r,
    );
    t.feed(3, &seg(a(), b(), 2, tcp_flags::FIN, b"bye"), &mut r);
    assert!(r.closes.is_empty());
    t.feed(4, &seg(b(), a(), 10, tcp_flags::FIN, b""), &mut r);
    assert_eq!(r.closes, [CloseReason::Fin]);
    assert_eq!(t.stats().open, 0);

    t.feed(5, &seg(a(), b(), 50, 0, b"GET"), &mut r);
    t.feed(6, &seg(b(), a(), 70, tcp_flags::RST, b""), &mut r);
    assert_eq!(r.closes, [CloseReason::Fin, CloseReason::Reset]);
}

/// A table of at most 100 connections, idle after 5 s.
fn small_table() -> FlowTable<()> {
    FlowTable::new(FlowConfig {
        max_conns: 100,
        idle_timeout_ns: 5_000_000_000,
        ..FlowConfig::default()
    })
}

/// The `i`th of a thousand clients, addresses in the order of `i`.
fn client(i: u32) -> SocketAddr {
    SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1000))
}

/// Which connections a full table evicts, which the idle sweep and the end close, and in what
/// order, is the same in every run: ties in age are broken by the endpoints, never by the hash
/// table's order, which follows a seed random per table (found: a flood's requests per second
/// differed from run to run over the same capture).
#[test]
fn evictions_and_closes_come_in_the_same_order_in_every_run() {
    #[derive(Default)]
    struct Closes(Vec<(SocketAddr, CloseReason, u64)>);
    impl Handler for Closes {
        type Conn = ();
        fn on_data(&mut self, _: &mut (), _: &ConnInfo, _: usize, _: u64, _: &[u8]) {}
        fn on_gap(&mut self, _: &mut (), _: &ConnInfo, _: usize, _: u64, _: u64) {}
        fn on_skip(&mut self, _: &mut (), _: &ConnInfo, _: usize, _: u64, _: u64) -> u64 {
            0
        }
        fn on_close(&mut self, _: &mut (), info: &ConnInfo, reason: CloseReason, ts: u64) {
            self.0.push((info.addrs[0], reason, ts));
        }
    }
    let run = || {
        let mut t = small_table();
        let mut c = Closes::default();
        for i in 0..1000u32 {
            let src = client(i);
            // Seven connections a timestamp: the tenth the table evicts ends inside a tie.
            t.feed(u64::from(i / 7), &seg(src, b(), 1, 0, b"GET"), &mut c);
        }
        for i in 0..150u32 {
            let src = SocketAddr::from(([10, 1, 0, i as u8], 1000));
            t.feed(
                1_000 + u64::from(i / 7),
                &seg(src, b(), 1, 0, b"GET"),
                &mut c,
            );
        }
        // Ten seconds later: the idle sweep, then the end of the capture.
        t.feed(10_000_000_000, &seg(a(), b(), 1, 0, b"x"), &mut c);
        while t.finish_some(20_000_000_000, &mut c, 7) {}
        c.0
    };
    let first = run();
    assert_eq!(first.len(), 1151);
    let reasons = |r: CloseReason| first.iter().filter(|c| c.1 == r).count();
    assert_eq!(reasons(CloseReason::Evicted), 1050);
    assert_eq!(reasons(CloseReason::Idle), 100);
    // Least recently active first: connections came in the order of their addresses.
    for r in [CloseReason::Evicted, CloseReason::Idle] {
        let addrs: Vec<_> = first.iter().filter(|c| c.1 == r).map(|c| c.0).collect();
        assert!(addrs.windows(2).all(|w| w[0] < w[1]), "{r:?}");
    }
    for _ in 0..5 {
        assert!(
            run() == first,
            "another table closed connections in another order"
        );
    }
}

#[test]
fn the_table_is_capped_and_idle_connections_expire() {
    let mut t = small_table();
    let mut r = Recorder::default();
    for i in 0..1000u32 {
        let src = client(i);
        t.feed(
            u64::from(i),
            &seg(src, b(), 1, 0, b"GET / HTTP/1.1\r\n\r\n"),
            &mut r,
        );
    }
    let s = t.stats();
    assert!(s.open <= 100);
    assert_eq!(s.evicted, 1000 - s.open);
    // Ten seconds later, one more segment triggers the idle sweep.
    t.feed(10_000_000_000, &seg(a(), b(), 1, 0, b"x"), &mut r);
    assert_eq!(t.stats().open, 1);
}

#[test]
fn without_a_syn_the_peers_ack_anchors_a_stream_whose_first_segment_is_late() {
    // Behind the kernel filter no SYN is captured. The server's first segment is lost and
    // retransmitted after its second; the client's request already said (ack) where the server's
    // stream starts, so the late first segment fills the hole instead of being dropped as old.
    let mut t = FlowTable::<()>::new(FlowConfig::default());
    let mut r = Recorder::default();
    let mut req = seg(a(), b(), 500, tcp_flags::ACK, b"GET / HTTP/1.1\r\n\r\n");
    req.ack = 7000;
    t.feed(1, &req, &mut r);
    t.feed(2, &seg(b(), a(), 7010, tcp_flags::ACK, b"second"), &mut r);
    t.feed(
        3,
        &seg(b(), a(), 7000, tcp_flags::ACK, b"HTTP/1.1 "),
        &mut r,
    );
    t.finish_some(4, &mut r, usize::MAX);
    let dir = 1;
    let out: Vec<u8> = r.out[dir].iter().map(|b| b.unwrap_or(b'?')).collect();
    assert_eq!(out, b"HTTP/1.1 ?second");
    assert_eq!(t.stats().out_of_order, 1);
}

/// A connection's allocation, with the protocol state in it: 248 bytes, one malloc size class
/// below the next (a byte more made the flood of 100 000 connections 1.6 MB larger).
#[test]
fn a_connection_fits_its_size_class() {
    let n = std::mem::size_of::<Conn<crate::proto::Conn>>();
    assert!(n <= 248, "{n}");
}
