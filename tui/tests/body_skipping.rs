//! Body skipping without root: real captures read whole, then read again through the kernel
//! filter's own verdict (`http_top_common::skip_verdict`, the function the filter runs) applied
//! to every frame with the stretches the pipeline asked for, each taking effect a few frames
//! late as in a live ring. Frames whose payload lies wholly inside a stretch reach the pipeline
//! cut to their headers, exactly as the filter hands them over.
//!
//! The whole read is the ground truth: every exchange must come out identical (counts, bytes,
//! times, flags) while far fewer payload bytes are seen. A wrong stretch (one that covers the
//! next message's head) must turn into a counted gap and a flagged exchange, never a wrong number.

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
    packet::{Packet, SkipHint},
    pipeline::{Pipeline, Totals},
    proto::Exchange,
};
use http_top_common::skip_verdict;

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
}

/// The filter's map: a stretch per direction.
type Stretches = HashMap<(SocketAddr, SocketAddr), (u32, u32)>;

/// Reads `path`; with `lag`, skipping as the filter would with stretches that take effect `lag`
/// frames after they were asked for. `tamper` may change a stretch before it takes effect.
fn read(path: &Path, lag: Option<usize>, mut tamper: impl FnMut(&mut SkipHint)) -> Read {
    let mut src = FileSource::open(path).unwrap();
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
    };
    let mut map = Stretches::new();
    let mut queued: Vec<(usize, SkipHint)> = Vec::new();
    let mut n = 0;
    while let Next::Packet(pkt) = src.next_packet(Duration::ZERO).unwrap() {
        n += 1;
        for (_, h) in queued.extract_if(.., |(due, _)| *due <= n) {
            map.insert((h.src, h.dst), (h.seq, h.len));
        }
        let mut frame = pkt;
        if let Ok(seg) = decode::decode(pkt.link, pkt.data)
            && let Some(&(seq, len)) = map.get(&(seg.src, seg.dst))
        {
            match skip_verdict(seq, len, seg.seq, seg.payload.len() as u32) {
                Some(true) => {
                    let headers = seg.payload.as_ptr() as usize - pkt.data.as_ptr() as usize;
                    r.cut += 1;
                    r.cut_bytes += seg.payload.len() as u64;
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
    for name in ["exactness.pcap", "bimodal.pcap", "demo.pcap"] {
        let whole = read(&asset(name), None, |_| {});
        for lag in [0, 1, 5, 40] {
            let skipping = read(&asset(name), Some(lag), |_| {});
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
                "{name} lag {lag}: {} stretches, {} frames cut, payload seen {} of {} bytes",
                skipping.hints,
                skipping.cut,
                t.counters.payload_bytes,
                whole.totals.counters.payload_bytes
            );
            if name == "exactness.pcap" && lag <= 1 {
                // Its 100 000-byte bodies are worth skipping: most of their bytes are never seen
                // when the stretch takes effect at once (a long lag finishes these small bodies
                // before it does; they are still exact).
                assert!(skipping.hints > 0 && skipping.cut > 0, "lag {lag}");
                assert!(
                    t.counters.payload_bytes * 4 < whole.totals.counters.payload_bytes,
                    "lag {lag}: {} of {}",
                    t.counters.payload_bytes,
                    whole.totals.counters.payload_bytes
                );
            }
        }
    }
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
    let bad = read(&asset(name), Some(2), |h| h.len += 3000);
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
