//! TCP reassembly fed arbitrary segment sequences on a few connections, with small caps so the
//! overflow paths run; some segments arrive cut (uncaptured bytes, as the kernel filter's body
//! skipping sends them), taken as body by every other call. Must not panic, and must never deliver
//! more bytes, held or skipped, than it was given.
#![no_main]

use std::net::SocketAddr;

use http_top::{
    decode::Segment,
    flow::{CloseReason, ConnInfo, FlowConfig, FlowTable, Handler},
};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Count {
    delivered: u64,
    skipped: u64,
    skip_calls: u64,
}

impl Handler for Count {
    type Conn = u64;
    fn on_data(&mut self, c: &mut u64, _: &ConnInfo, _: usize, _: u64, data: &[u8]) {
        *c += data.len() as u64;
        self.delivered += data.len() as u64;
    }
    fn on_skip(&mut self, _: &mut u64, _: &ConnInfo, _: usize, len: u64, _: u64) -> u64 {
        self.skip_calls += 1;
        let taken = if self.skip_calls.is_multiple_of(2) { len } else { len / 2 };
        self.skipped += taken;
        taken
    }
    fn on_gap(&mut self, _: &mut u64, _: &ConnInfo, _: usize, _: u64, _: u64) {}
    fn on_close(&mut self, _: &mut u64, _: &ConnInfo, _: CloseReason, _: u64) {}
}

fuzz_target!(|data: &[u8]| {
    let cfg = FlowConfig { max_conns: 4, max_ooo_bytes: 512, max_holes: 4, max_total_buffered: 2048, idle_timeout_ns: 5_000 };
    let mut t = FlowTable::<u64>::new(cfg);
    let mut h = Count::default();
    let mut given = 0u64;
    let mut uncaptured = 0u64;
    let payload = [b'x'; 300];
    // Each op: 8 bytes: conn+dir, flags, seq (4), ack delta, length.
    for (i, op) in data.chunks_exact(8).enumerate() {
        let conn = op[0] & 3;
        let to_server = op[0] & 4 != 0;
        let c: SocketAddr = SocketAddr::from(([10, 0, 0, conn], 40000));
        let s: SocketAddr = SocketAddr::from(([10, 0, 1, 1], 80));
        let (src, dst) = if to_server { (c, s) } else { (s, c) };
        let seq = u32::from_le_bytes([op[2], op[3], op[4], op[5]]);
        let len = usize::from(op[7]) % payload.len();
        // Flag bit 0x40 (ECE, which reassembly ignores) cuts the segment at a third.
        let held = if op[1] & 0x40 != 0 { len / 3 } else { len };
        given += held as u64;
        uncaptured += (len - held) as u64;
        let seg = Segment { src, dst, seq, ack: seq.wrapping_add(u32::from(op[6]) * 64), flags: op[1], payload: &payload[..held], uncaptured: (len - held) as u32 };
        t.feed(i as u64 * 1000, &seg, &mut h);
    }
    t.finish_some(u64::MAX / 2, &mut h, usize::MAX);
    assert!(h.delivered <= given);
    assert!(h.skipped <= uncaptured);
    assert_eq!(t.stats().skipped_bytes, h.skipped);
    assert_eq!(t.stats().open, 0);
});
