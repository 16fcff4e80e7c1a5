//! The lenient HPACK decoder over arbitrary header blocks on one connection: each block is a
//! length byte and that many bytes. Must not panic, and the dynamic table never holds more than
//! its size allows (an entry larger than the table empties it). A decoder that reads every value
//! and one that steps over some end each block with the same table and the same unknown count.
#![no_main]

use http_top::proto::h2::hpack::{Decoder, HpackError, MAX_TABLE_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::default();
    let mut all = Decoder::default();
    // The first byte, when present, is the table size the peer's SETTINGS allow.
    if let Some(&s) = data.first() {
        d.set_allowed(usize::from(s) * 64);
        all.set_allowed(usize::from(s) * 64);
    }
    let mut rest = data.get(1..).unwrap_or_default();
    let mut same = true;
    while let Some((&len, tail)) = rest.split_first() {
        let (block, next) = tail.split_at(usize::from(len).min(tail.len()));
        rest = next;
        // Values of some names read, of others stepped over: both paths.
        let reads = |n: &[u8]| n.len().is_multiple_of(2);
        let read = d.decode(block, reads, |(n, v)| {
            // What comes out is bounded by what went in (or a table entry, itself from input).
            assert!(n.map_or(0, <[u8]>::len) <= 16 * 1024 + 64);
            assert!(v.map_or(0, <[u8]>::len) <= 16 * 1024 + 64);
        });
        assert!(d.table_size() <= MAX_TABLE_SIZE);
        // Invalid Huffman code in a value stepped over stops only the decoder that reads it:
        // from there on the two may differ. Any other end (or error) is the same for both.
        let every = all.decode(block, |_| true, |_| {});
        same &= read == every && every != Err(HpackError::Huffman);
        if same {
            assert_eq!(
                (all.entries(), all.table_size(), all.unknown),
                (d.entries(), d.table_size(), d.unknown)
            );
        }
    }
});
