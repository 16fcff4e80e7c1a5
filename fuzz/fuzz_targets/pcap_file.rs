//! pcap/pcapng reading and the whole pipeline behind it, on arbitrary file contents. Must not panic:
//! a bad file is an error or a partial result.
#![no_main]

use std::time::Duration;

use http_top::{
    capture::{Next, PacketSource, file::FileSource},
    flow::FlowConfig,
    pipeline::Pipeline,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut src) = FileSource::from_bytes("fuzz", data.to_vec()) else { return };
    let mut p = Pipeline::new(FlowConfig::default());
    let mut n = 0u64;
    while let Ok(Next::Packet(pkt)) = src.next_packet(Duration::ZERO) {
        p.packet(&pkt);
        n += 1;
    }
    p.finish(drop);
    assert_eq!(p.counters().packets, n);
});
