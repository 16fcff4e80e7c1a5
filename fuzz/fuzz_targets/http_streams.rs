//! The protocol layer (detection, HTTP/1.x parsing and pairing) over arbitrary byte streams in
//! both directions, split at arbitrary points, with stretches never captured: each chunk is a
//! header byte (bit 7: direction, bit 6: lost, bits 0-5: length) and that many bytes. Every segment
//! acknowledges all the other side sent, so losses show as gaps. Must not panic, and every request
//! that started must be reported exactly once.
#![no_main]

use std::net::SocketAddr;

use http_top::{
    decode::Segment,
    flow::{FlowConfig, FlowTable},
    proto::{Conn, Protocols},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let c: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let s: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let mut t = FlowTable::<Conn>::new(FlowConfig::default());
    let mut h = Protocols::default();
    let mut seq = [1000u32, 9000u32];
    let mut rest = data;
    let mut ts = 0;
    while let Some((&head, tail)) = rest.split_first() {
        let dir = usize::from(head >> 7);
        let lost = head & 0x40 != 0;
        let len = usize::from(head & 0x3f).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        let (src, dst) = if dir == 0 { (c, s) } else { (s, c) };
        ts += 1000;
        if !lost {
            t.feed(ts, &Segment { src, dst, seq: seq[dir], ack: seq[1 - dir], flags: 0x10, payload: chunk, uncaptured: 0 }, &mut h);
        }
        seq[dir] = seq[dir].wrapping_add(len as u32);
    }
    t.finish_some(ts + 1, &mut h, usize::MAX);
    let seen = h.exchanges.iter().filter(|e| e.request_seen).count() as u64;
    assert_eq!(seen, h.stats.requests);
});
