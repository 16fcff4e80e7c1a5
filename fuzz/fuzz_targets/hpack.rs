//! The lenient HPACK decoder over arbitrary header blocks on one connection: each block is a
//! length byte and that many bytes. Must not panic, and the dynamic table never holds more than
//! its size allows (an entry larger than the table empties it).
#![no_main]

use http_top::proto::h2::hpack::{Decoder, MAX_TABLE_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::default();
    // The first byte, when present, is the table size the peer's SETTINGS allow.
    if let Some(&s) = data.first() {
        d.set_allowed(usize::from(s) * 64);
    }
    let mut rest = data.get(1..).unwrap_or_default();
    while let Some((&len, tail)) = rest.split_first() {
        let (block, next) = tail.split_at(usize::from(len).min(tail.len()));
        rest = next;
        // Values of some names read, of others stepped over: both paths.
        let reads = |n: &[u8]| n.len().is_multiple_of(2);
        let _ = d.decode(block, reads, |(n, v)| {
            // What comes out is bounded by what went in (or a table entry, itself from input).
            assert!(n.map_or(0, <[u8]>::len) <= 16 * 1024 + 64);
            assert!(v.map_or(0, <[u8]>::len) <= 16 * 1024 + 64);
        });
        assert!(d.table_size() <= MAX_TABLE_SIZE);
    }
});
