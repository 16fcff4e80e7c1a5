//! Both sides of the names helper's interface (`names::helper`): the privileged helper's request
//! loop over arbitrary bytes from the main process (it must answer exactly one snapshot per `S`
//! read before the first other byte, and stop there), and the main process's decoding and
//! indexing of an arbitrary reply (refused or indexed, never a panic or an index out of range).
#![no_main]

use http_top::names::{
    Index,
    helper::{REQUEST_SCAN, decode_reply, serve_requests},
    scan::Snapshot,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut scans = 0usize;
    let mut out = Vec::new();
    let result = serve_requests(&mut &data[..], &mut out, || {
        scans += 1;
        Snapshot::default()
    });
    let asked = data.iter().take_while(|&&b| b == REQUEST_SCAN).count();
    assert_eq!(scans, asked);
    assert_eq!(result.is_ok(), asked == data.len());
    if let Ok(s) = decode_reply(data)
        && let Ok(ix) = Index::build(s, 1)
    {
        let a = "10.0.0.1:80".parse().unwrap();
        let _ = (ix.server(a), ix.client("10.0.0.2:1234".parse().unwrap(), a));
    }
});
