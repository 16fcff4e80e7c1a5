use proptest::prelude::*;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

type Owned = Vec<(Option<String>, Option<String>)>;

fn decode(d: &mut Decoder, block: &[u8]) -> Result<Owned, HpackError> {
    let mut out = Vec::new();
    d.decode(
        block,
        |_| true,
        |(n, v)| {
            let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
            out.push((s(n), s(v)));
        },
    )?;
    Ok(out)
}

fn known(pairs: &[(&str, &str)]) -> Owned {
    pairs
        .iter()
        .map(|(n, v)| (Some((*n).to_owned()), Some((*v).to_owned())))
        .collect()
}

/// RFC 7541 C.3 and C.4: three requests on one connection, plain and Huffman-coded.
#[test]
fn the_rfc_examples_decode_with_the_dynamic_table() {
    let first = known(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ]);
    let mut second = first.clone();
    second.extend(known(&[("cache-control", "no-cache")]));
    let third = known(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ]);
    let plain = [
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ];
    let huffman = [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ];
    for blocks in [plain, huffman] {
        let mut d = Decoder::default();
        assert_eq!(decode(&mut d, &hex(blocks[0])).unwrap(), first);
        assert_eq!(decode(&mut d, &hex(blocks[1])).unwrap(), second);
        assert_eq!(decode(&mut d, &hex(blocks[2])).unwrap(), third);
        assert_eq!(d.entries(), 3);
        assert_eq!(d.unknown, 0);
    }
}

/// Joined after the first request: what referred to its table entry is unknown, the rest is
/// decoded, and entries added later keep their indices.
#[test]
fn a_decoder_joining_mid_connection_decodes_what_it_can() {
    let mut d = Decoder::default();
    let second = decode(&mut d, &hex("8286 84be 5808 6e6f 2d63 6163 6865")).unwrap();
    assert_eq!(second[3], (None, None), "{second:?}");
    assert_eq!(
        second[4],
        (Some("cache-control".into()), Some("no-cache".into()))
    );
    let third = decode(
        &mut d,
        &hex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"),
    )
    .unwrap();
    // bf is index 63: in the real table :authority (two entries back); here only cache-control
    // (62) is known, so 63 is unknown.
    assert_eq!(third[3], (None, None));
    assert_eq!(third[4].0.as_deref(), Some("custom-key"));
    assert_eq!(d.unknown, 2);
    // A literal whose name is an unknown index: the value is still read, the name is unknown.
    let mut fresh = Decoder::default();
    let f = decode(&mut fresh, &hex("7f00 0378 797a")).unwrap();
    assert_eq!(f, [(None, Some("xyz".to_owned()))]);
}

#[test]
fn broken_blocks_are_errors_not_panics() {
    for (block, err) in [
        ("80", HpackError::Invalid),
        ("41", HpackError::Truncated),
        ("410a 6162", HpackError::Truncated),
        ("ff ff ff ff ff ff ff", HpackError::Overflow),
        ("3f e1 ff 03", HpackError::Invalid),
        ("0081 ff 0161", HpackError::Huffman),
    ] {
        let mut d = Decoder::default();
        assert_eq!(decode(&mut d, &hex(block)), Err(err), "{block}");
    }
}

#[test]
fn size_updates_and_eviction_follow_the_table_size() {
    let mut d = Decoder::default();
    // Insert custom-key: custom-value (size 54), then shrink the table to 0: emptied.
    decode(
        &mut d,
        &hex("400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"),
    )
    .unwrap();
    assert_eq!(d.entries(), 1);
    decode(&mut d, &hex("20")).unwrap();
    assert_eq!(d.entries(), 0);
    // Room for one entry of 54 only: the second evicts the first.
    decode(&mut d, &hex("3f17")).unwrap(); // size update to 31 + 23 = 54
    for _ in 0..2 {
        decode(
            &mut d,
            &hex("400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"),
        )
        .unwrap();
    }
    assert_eq!(d.entries(), 1);
}

fn header() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        prop::sample::select(vec![
            &b":path"[..],
            b":method",
            b":authority",
            b"content-type",
            b"x-trace",
            b"grpc-status",
        ]),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(n, v)| (n.to_vec(), v))
}

proptest! {
    /// What an encoder (loona-hpack's, with its dynamic table) writes, this decoder reads back,
    /// block after block.
    #[test]
    fn reads_what_an_encoder_writes(blocks in prop::collection::vec(prop::collection::vec(header(), 1..8), 1..6)) {
        let mut enc = loona_hpack::Encoder::new();
        let mut d = Decoder::default();
        for headers in &blocks {
            let block = enc.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])));
            let got = decode(&mut d, &block).unwrap();
            let want: Owned = headers
                .iter()
                .map(|(n, v)| (Some(String::from_utf8_lossy(n).into_owned()), Some(String::from_utf8_lossy(v).into_owned())))
                .collect();
            prop_assert_eq!(got, want);
        }
        prop_assert_eq!(d.unknown, 0);
    }

    /// Any bytes: an error or fields, never a panic, and the table stays within its size.
    #[test]
    fn any_bytes_are_safe(blocks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..8)) {
        let mut d = Decoder::default();
        for b in &blocks {
            let _ = d.decode(b, |_| true, |_| {});
            prop_assert!(d.size <= d.max || d.table.is_empty());
        }
    }
}

/// An HPACK integer with an `n`-bit prefix after the bits `first`.
fn encode_int(first: u8, n: u32, mut v: usize, out: &mut Vec<u8>) {
    let mask = (1usize << n) - 1;
    if v < mask {
        out.push(first | v as u8);
        return;
    }
    out.push(first | mask as u8);
    v -= mask;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

fn encode_string(s: &[u8], huffman: bool, out: &mut Vec<u8>) {
    if huffman {
        let mut h = Vec::new();
        httlib_huffman::encode(s, &mut h).unwrap();
        encode_int(0x80, 7, h.len(), out);
        out.extend_from_slice(&h);
    } else {
        encode_int(0, 7, s.len(), out);
        out.extend_from_slice(s);
    }
}

proptest! {
    /// A caller that reads some names only gets the same values for those as one that reads
    /// every value, `None` for the others' values in literals the table does not keep (and
    /// theirs in literals it keeps), and the decoder ends with the same table.
    #[test]
    fn values_not_read_are_stepped_over_and_the_table_is_the_same(
        blocks in prop::collection::vec(
            prop::collection::vec((header(), 0u8..3, any::<bool>(), any::<bool>()), 1..10),
            1..4,
        ),
    ) {
        let reads = |n: &[u8]| n == b":path" || n == b"grpc-status";
        let (mut all, mut some) = (Decoder::default(), Decoder::default());
        for fields in &blocks {
            let mut block = Vec::new();
            let mut kept = Vec::new();
            for ((name, value), kind, by_index, huffman) in fields {
                // With incremental indexing, without, never indexed (RFC 7541 6.2).
                let (first, prefix) = [(0x40, 6), (0x00, 4), (0x10, 4)][usize::from(*kind)];
                kept.push(*kind == 0);
                match STATIC.iter().position(|(n, _)| n == name) {
                    Some(i) if *by_index => encode_int(first, prefix, i + 1, &mut block),
                    _ => {
                        block.push(first);
                        encode_string(name, *huffman, &mut block);
                    }
                }
                encode_string(value, *huffman, &mut block);
            }
            let mut every = Vec::new();
            all.decode(&block, |_| true, |(n, v)| every.push((n.map(<[u8]>::to_vec), v.map(<[u8]>::to_vec)))).unwrap();
            let mut read = Vec::new();
            some.decode(&block, reads, |(n, v)| read.push((n.map(<[u8]>::to_vec), v.map(<[u8]>::to_vec)))).unwrap();
            prop_assert_eq!(every.len(), fields.len());
            for ((e, r), keep) in every.iter().zip(&read).zip(&kept) {
                prop_assert_eq!(&e.0, &r.0);
                let name = e.0.as_deref().unwrap();
                if reads(name) || *keep {
                    prop_assert_eq!(&e.1, &r.1);
                } else {
                    prop_assert_eq!(&r.1, &None);
                }
            }
            prop_assert_eq!(&all.table, &some.table);
            prop_assert_eq!(all.size, some.size);
        }
    }
}
