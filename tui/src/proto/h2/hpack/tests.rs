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
    d.decode(block, |(n, v)| {
        let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        out.push((s(n), s(v)));
    })?;
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
            let _ = d.decode(b, |_| {});
            prop_assert!(d.size <= d.max || d.table.is_empty());
        }
    }
}
