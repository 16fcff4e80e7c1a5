//! The kernel filter's reading of a response head (`http_top_common::response_body`, the code the
//! filter runs under `bpf_loop`) against httparse: whenever the filter would start a skip stretch,
//! httparse must read a complete head of that length whose body has that Content-Length (no
//! Transfer-Encoding, a status with a body). A disagreement would cut bytes userspace needs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, body)) = http_top_common::response_body(data) else {
        return;
    };
    assert!(body >= http_top_common::SKIP_MIN);
    // As many slots as userspace's parser has.
    let mut fields = [httparse::EMPTY_HEADER; http_top_common::HEAD_FIELDS_MAX as usize];
    let mut r = httparse::Response::new(&mut fields);
    let parsed = r.parse(data);
    assert!(
        matches!(parsed, Ok(httparse::Status::Complete(n)) if n == len as usize),
        "filter: head of {len} bytes, httparse: {parsed:?}"
    );
    let code = r.code.unwrap();
    assert!(!(100..200).contains(&code) && code != 204 && code != 304, "status {code}");
    let mut lengths = 0;
    for f in r.headers.iter() {
        assert!(!f.name.eq_ignore_ascii_case("transfer-encoding"));
        if f.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(f.value).unwrap().trim_matches([' ', '\t']);
            assert_eq!(v.parse::<u64>().ok(), Some(body), "{v:?}");
            lengths += 1;
        }
    }
    assert!(lengths > 0);
});
