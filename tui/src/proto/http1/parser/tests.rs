use super::*;
use crate::proto::SpareLines;

/// Feeds `data` split at every `step` bytes, answering heads with `framing(head)`; returns the
/// events.
fn run(data: &[u8], step: usize, framing: impl Fn(&Head) -> Framing) -> Vec<Event> {
    let mut p = MessageParser::default();
    let mut out = Vec::new();
    for (i, part) in data.chunks(step).enumerate() {
        let mut rest = part;
        let mut first = true;
        while !rest.is_empty() {
            let (n, ev) = p.feed(i as u64, rest, first, &mut SpareLines::default());
            first = false;
            rest = &rest[n..];
            if let Some(ev) = ev {
                if let Event::Head(h) = &ev {
                    let f = framing(h);
                    out.push(ev);
                    if let Some(e) = p.set_framing(f) {
                        out.push(e);
                    }
                } else {
                    out.push(ev);
                }
            }
        }
    }
    out
}

fn req_framing(h: &Head) -> Framing {
    if h.chunked {
        Framing::Chunked
    } else {
        h.content_length.map_or(Framing::None, Framing::Length)
    }
}

fn ends(ev: &[Event]) -> Vec<u64> {
    ev.iter()
        .filter_map(|e| {
            if let Event::End { bytes, .. } = e {
                Some(*bytes)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn pipelined_requests_at_any_split() {
    let data = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /c HTTP/1.1\r\n\r\n";
    for step in 1..data.len() {
        let ev = run(data, step, req_framing);
        assert_eq!(ends(&ev), [28, 44, 19], "step {step}");
        assert!(
            !ev.iter().any(|e| matches!(e, Event::Error(_))),
            "step {step}: {ev:?}"
        );
    }
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
    for step in 1..data.len() {
        let ev = run(data, step, |h| {
            if h.status == 204 {
                Framing::None
            } else {
                Framing::Chunked
            }
        });
        assert_eq!(
            ends(&ev),
            [data.len() as u64 - 27, 27],
            "step {step}: {ev:?}"
        );
    }
}

#[test]
fn huge_chunk_size_is_an_error_not_an_overflow() {
    let data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\n";
    let ev = run(data, data.len(), |_| Framing::Chunked);
    assert!(ev.contains(&Event::Error(ParseError::BadChunk)), "{ev:?}");
}

#[test]
fn conflicting_content_lengths_are_rejected() {
    let data = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    let ev = run(data, data.len(), req_framing);
    assert!(ev.contains(&Event::Error(ParseError::BadContentLength)));
    let data = b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello";
    assert_eq!(ends(&run(data, 7, req_framing)), [data.len() as u64]);
}

#[test]
fn oversized_head_and_too_many_headers_are_errors() {
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
    let ev = run(&big, 1000, req_framing);
    assert!(ev.contains(&Event::Error(ParseError::HeadTooLarge)));
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..10_000 {
        many.extend(format!("H{i}: v\r\n").as_bytes());
    }
    many.extend(b"\r\n");
    let ev = run(&many, 1400, req_framing);
    assert!(
        ev.contains(&Event::Error(ParseError::HeadTooLarge)),
        "{:?}",
        &ev[..ev.len().min(3)]
    );
}

#[test]
fn after_garbage_it_resyncs_on_a_segment_that_starts_a_message() {
    let mut p = MessageParser::default();
    let (_, ev) = p.feed(
        1,
        b"\x16\x03\x01 not http",
        true,
        &mut SpareLines::default(),
    );
    assert_eq!(ev, Some(Event::Error(ParseError::BadHead)));
    // The rest of the garbage, then a segment that does not start a message, are skipped.
    assert_eq!(
        p.feed(2, b"more", true, &mut SpareLines::default()),
        (4, None)
    );
    assert_eq!(
        p.feed(3, b"body GET / HTTP/1.1", true, &mut SpareLines::default())
            .0,
        19
    );
    // A segment starting a request brings it back.
    assert_eq!(
        p.feed(
            4,
            b"GET / HTTP/1.1\r\n\r\n",
            true,
            &mut SpareLines::default()
        ),
        (0, None)
    );
    assert_eq!(
        p.feed(
            4,
            b"GET / HTTP/1.1\r\n\r\n",
            true,
            &mut SpareLines::default()
        ),
        (0, Some(Event::Start { ts: 4 }))
    );
}

#[test]
fn a_gap_inside_a_known_length_body_keeps_the_message() {
    let mut p = MessageParser::default();
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    p.feed(1, head, true, &mut SpareLines::default());
    let (n, ev) = p.feed(1, head, true, &mut SpareLines::default());
    assert!(matches!(ev, Some(Event::Head(_))));
    assert_eq!(n, head.len());
    assert_eq!(p.set_framing(Framing::Length(100)), None);
    assert_eq!(
        p.feed(2, &[b'x'; 30], true, &mut SpareLines::default()),
        (30, None)
    );
    assert_eq!(p.gap(50, 3), None);
    let (n, ev) = p.feed(4, &[b'x'; 30], true, &mut SpareLines::default());
    assert_eq!(n, 20);
    assert_eq!(
        ev,
        Some(Event::End {
            ts: 4,
            bytes: head.len() as u64 + 100
        })
    );
}

#[test]
fn a_gap_past_the_end_of_a_body_completes_it_and_resyncs() {
    let mut p = MessageParser::default();
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    p.feed(1, head, true, &mut SpareLines::default());
    p.feed(1, head, true, &mut SpareLines::default());
    p.set_framing(Framing::Length(10));
    p.feed(2, b"abc", true, &mut SpareLines::default());
    // 7 body bytes and the start of the next message were never captured.
    assert_eq!(
        p.gap(50, 3),
        Some(Event::End {
            ts: 3,
            bytes: head.len() as u64 + 10
        })
    );
    // The rest of that next message is skipped; a segment starting a message resumes.
    assert_eq!(
        p.feed(4, b"xyz\r\n\r\n", true, &mut SpareLines::default()),
        (7, None)
    );
    assert_eq!(
        p.feed(
            5,
            b"HTTP/1.1 204 No Content\r\n\r\n",
            true,
            &mut SpareLines::default()
        ),
        (0, None)
    );
}

#[test]
fn close_ends_a_close_delimited_body_and_truncates_others() {
    let mut p = MessageParser::default();
    let head = b"HTTP/1.0 200 OK\r\n\r\n";
    p.feed(1, head, true, &mut SpareLines::default());
    p.feed(1, head, true, &mut SpareLines::default());
    p.set_framing(Framing::Close);
    p.feed(2, b"abc", true, &mut SpareLines::default());
    assert_eq!(
        p.close(true),
        Some(Event::End {
            ts: 2,
            bytes: head.len() as u64 + 3
        })
    );
    let mut q = MessageParser::default();
    q.feed(1, head, true, &mut SpareLines::default());
    q.feed(1, head, true, &mut SpareLines::default());
    q.set_framing(Framing::Length(10));
    assert_eq!(q.close(true), Some(Event::Error(ParseError::Truncated)));
}

#[test]
fn head_fields() {
    let h = parse_head(
        b"GET http://h/p?q HTTP/1.0\r\nHOST: example\r\nConnection: keep-alive, Close\r\n\r\n",
        &mut SpareLines::default(),
    )
    .unwrap();
    let r = h.request.expect("a request");
    assert_eq!(r.method(), b"GET");
    assert_eq!(r.target(), b"http://h/p?q");
    assert_eq!(r.host(), Some(&b"example"[..]));
    assert_eq!(h.minor, 0);
    assert!(h.close);
    let r = parse_head(
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n\r\n",
        &mut SpareLines::default(),
    )
    .unwrap();
    assert_eq!((r.status, r.content_length), (304, Some(12)));
}

/// Content-Length: nineteen digits are the most a u64 always holds; more, a sign, a space inside
/// or nothing at all is an error, never a wrapped number.
#[test]
fn content_length_values() {
    let len = |v: &str| {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {v}\r\n\r\n");
        parse_head(head.as_bytes(), &mut SpareLines::default()).map(|h| h.content_length)
    };
    assert_eq!(len("0"), Ok(Some(0)));
    assert_eq!(len(" 42 "), Ok(Some(42)));
    assert_eq!(
        len("9999999999999999999"),
        Ok(Some(9_999_999_999_999_999_999))
    );
    assert_eq!(len("0000000000000000001"), Ok(Some(1)));
    for bad in [
        "10000000000000000000",
        "18446744073709551616",
        "-1",
        "+1",
        "1 2",
        "1a",
        "0x10",
    ] {
        assert_eq!(len(bad), Err(ParseError::BadContentLength), "{bad}");
    }
    assert_eq!(len("7, 7"), Ok(Some(7)));
    assert_eq!(len("7, 8"), Err(ParseError::BadContentLength));
}
