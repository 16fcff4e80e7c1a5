//! Frame decoding: any bytes, any link type. Must not panic; a TCP segment's payload must lie
//! inside the frame.
#![no_main]

use http_top::{decode::decode, packet::LinkType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, frame)) = data.split_first() else { return };
    let link = [LinkType::Ethernet, LinkType::RawIp, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::Null, LinkType::Loop]
        [usize::from(kind % 6)];
    if let Ok(seg) = decode(link, frame) {
        let start = seg.payload.as_ptr() as usize;
        let base = frame.as_ptr() as usize;
        assert!(start >= base && start + seg.payload.len() <= base + frame.len());
    }
});
