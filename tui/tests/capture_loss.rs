//! Capture loss never shifts pairing (issue 10): real captures read whole, then with every Nth
//! frame that carries payload removed (what `editcap -d` would write, done in memory). The ground
//! truth is the whole capture's exchanges; those whose bytes all survived must come out exactly as
//! they were and unflagged, and no exchange may carry another exchange's response.
//!
//! An exchange of the whole capture counts as touched when a removed frame of its connection was
//! captured between its first request byte and its last byte (so a pipelined neighbour's loss
//! counts too): a superset of the truly touched ones, so the exact set checked is never too large.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use http_top::{
    capture::{Next, PacketSource, file::FileSource},
    decode,
    flow::FlowConfig,
    pipeline::Pipeline,
    proto::Exchange,
};

fn asset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets")
        .join(name)
}

/// One frame as read: its capture time, its connection (endpoints in a fixed order) and whether
/// it carries TCP payload.
struct Frame {
    ts_ns: u64,
    conn: Option<(SocketAddr, SocketAddr)>,
    payload: bool,
}

fn conn_of(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Reads `path` through a pipeline, skipping the frames `drop` says; returns the exchanges and
/// every frame seen.
fn read(path: &Path, mut drop: impl FnMut(usize, &Frame) -> bool) -> (Vec<Exchange>, Vec<Frame>) {
    let mut src = FileSource::open(path).unwrap();
    let mut p = Pipeline::new(FlowConfig::default());
    let mut out = Vec::new();
    let mut frames = Vec::new();
    while let Next::Packet(pkt) = src.next_packet(Duration::ZERO).unwrap() {
        let seg = decode::decode(pkt.link, pkt.data).ok();
        let f = Frame {
            ts_ns: pkt.ts_ns,
            conn: seg.as_ref().map(|s| conn_of(s.src, s.dst)),
            payload: seg.as_ref().is_some_and(|s| !s.payload.is_empty()),
        };
        if !drop(frames.len(), &f) {
            p.packet(&pkt);
            out.extend(p.drain());
        }
        frames.push(f);
    }
    p.finish(|e| out.push(e));
    (out, frames)
}

/// Where an exchange's request began, and what it asked: the key that matches it across the two
/// reads (pipelined requests share a frame, so the time alone is not enough).
fn request_key(e: &Exchange) -> (SocketAddr, u64, Vec<u8>) {
    (
        e.client,
        e.req_first_ns,
        e.target().unwrap_or_default().to_vec(),
    )
}

/// Checks one capture with every `n`th payload frame removed; returns (exchanges kept exact,
/// exchanges touched).
fn check(name: &str, n: usize) -> (usize, usize) {
    let path = asset(name);
    let (truth, _) = read(&path, |_, _| false);
    let mut count = 0;
    let mut removed: HashMap<(SocketAddr, SocketAddr), Vec<u64>> = HashMap::new();
    let (damaged, _) = read(&path, |_, f| {
        if !f.payload {
            return false;
        }
        count += 1;
        let drop = count % n == 0;
        if drop && let Some(c) = f.conn {
            removed.entry(c).or_default().push(f.ts_ns);
        }
        drop
    });
    assert!(!removed.is_empty(), "{name} every {n}: nothing removed");
    let touched = |e: &Exchange| {
        let start = if e.request_seen {
            e.req_first_ns
        } else {
            e.resp_first_ns
        };
        let end = e.req_last_ns.max(e.resp_last_ns).max(start);
        removed
            .get(&conn_of(e.client, e.server))
            .is_some_and(|ts| ts.iter().any(|&t| t >= start && t <= end))
    };
    let by_request: HashMap<_, &Exchange> = truth
        .iter()
        .filter(|e| e.request_seen)
        .map(|e| (request_key(e), e))
        .collect();
    // Responses by their first frame (several small ones may share it).
    let mut responses: HashMap<(SocketAddr, u64), Vec<&Exchange>> = HashMap::new();
    for e in truth.iter().filter(|e| e.status.is_some()) {
        responses
            .entry((e.client, e.resp_first_ns))
            .or_default()
            .push(e);
    }
    let got: HashMap<_, &Exchange> = damaged
        .iter()
        .filter(|e| e.request_seen)
        .map(|e| (request_key(e), e))
        .collect();
    let ctx = |e: &Exchange| format!("{name} every {n}th payload frame removed: {e:?}");

    // Untouched exchanges come out exactly as from the whole capture, and unflagged.
    let mut exact = 0;
    let mut hit = 0;
    for t in &truth {
        if touched(t) || !t.request_seen {
            hit += usize::from(touched(t));
            continue;
        }
        let d = got
            .get(&request_key(t))
            .unwrap_or_else(|| panic!("untouched exchange missing: {}", ctx(t)));
        assert_eq!(*d, t, "untouched exchange changed: {}", ctx(t));
        exact += 1;
    }
    // No exchange carries a response that is not its own.
    for d in &damaged {
        let Some(status) = d.status else { continue };
        let candidates = responses
            .get(&(d.client, d.resp_first_ns))
            .unwrap_or_else(|| panic!("a response the capture does not hold: {}", ctx(d)));
        assert!(
            candidates.iter().any(|r| r.status == Some(status)),
            "{}",
            ctx(d)
        );
        if d.request_seen {
            let t = by_request
                .get(&request_key(d))
                .unwrap_or_else(|| panic!("a request the capture does not hold: {}", ctx(d)));
            assert_eq!(
                (t.status, t.resp_first_ns),
                (Some(status), d.resp_first_ns),
                "paired with another exchange's response: {}",
                ctx(d)
            );
        } else {
            assert!(
                d.gap,
                "a response lost its request without a flag: {}",
                ctx(d)
            );
        }
    }
    // Exchanges changed by the loss say so.
    for d in &damaged {
        let same = d.request_seen && by_request.get(&request_key(d)).is_some_and(|t| *t == d);
        assert!(
            same || d.gap || !d.request_seen,
            "changed but not flagged: {}",
            ctx(d)
        );
    }
    (exact, hit)
}

/// keep-alive, slow responses, large bodies, pipelined bursts and early answers
/// (xtask/scripts/exactness-capture.sh), the demo, and Zeek's pipelined sample.
#[test]
fn removed_frames_never_shift_pairing() {
    for (name, every) in [
        ("exactness.pcap", &[3, 7, 13, 29, 50][..]),
        ("demo.pcap", &[3, 7, 13, 29, 50]),
        ("corpus/zeek-pipelined-requests.pcap", &[3, 5, 7]),
    ] {
        for &n in every {
            let (exact, touched) = check(name, n);
            assert!(exact > 0, "{name} every {n}: nothing left to compare");
            eprintln!("{name} every {n}: {exact} exchanges exact, {touched} touched");
        }
    }
}
