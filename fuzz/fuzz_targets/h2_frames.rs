//! HTTP/2 connections over arbitrary frames: the client stream starts with the connection
//! preface (or, when the first byte is odd, the connection is picked up in its middle, as a
//! capture begun after it opened sees it), then both directions carry arbitrary bytes split at
//! arbitrary points, with stretches never captured (each chunk: a header byte, bit 7 the
//! direction, bit 6 lost, bits 0-5 the length, then that many bytes). Must not panic; every
//! stream whose request was seen is reported once, and no direction's exchanges count more bytes
//! than it carried.
#![no_main]

use std::net::SocketAddr;

use http_top::{
    decode::Segment,
    flow::{FlowConfig, FlowTable},
    proto::{Conn, Protocols, h2::PREFACE},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let c: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let s: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let mut t = FlowTable::<Conn>::new(FlowConfig::default());
    let mut h = Protocols::default();
    let mut seq = [1000u32, 9000u32];
    let mut ts = 1000;
    let (mode, mut rest): (u8, &[u8]) = match data.split_first() {
        Some((&m, r)) => (m, r),
        None => (0, &[]),
    };
    let mut carried = [0u64, 0];
    if mode & 1 == 0 {
        t.feed(ts, &Segment { src: c, dst: s, seq: seq[0], ack: seq[1], flags: 0x10, payload: PREFACE, uncaptured: 0 }, &mut h);
        seq[0] = seq[0].wrapping_add(PREFACE.len() as u32);
        carried[0] = PREFACE.len() as u64;
    }
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
        carried[dir] += len as u64;
        seq[dir] = seq[dir].wrapping_add(len as u32);
    }
    t.finish_some(ts + 1, &mut h, usize::MAX);
    let seen = h.exchanges.iter().filter(|e| e.request_seen).count() as u64;
    assert_eq!(seen, h.stats.requests);
    // What each direction's exchanges count, by who turned out to be the client (picked up in
    // its middle, the content says, not the harness), is at most what it carried.
    let mut counted = [0u64; 2];
    for e in &h.exchanges {
        let client = usize::from(e.client != c);
        counted[client] += e.req_bytes;
        counted[1 - client] += e.resp_bytes;
    }
    assert!(counted[0] <= carried[0] && counted[1] <= carried[1], "{counted:?} {carried:?}");
});
