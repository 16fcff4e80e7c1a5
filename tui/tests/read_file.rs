//! `http-top -r FILE --headless --packets` on real captures: the public corpus in assets/corpus and the
//! bundled demo. No root needed.
//!
//! Expected numbers come from tshark 4.0 on the same files, not from http-top:
//! frames `capinfos -c`, TCP segments and payload bytes `tshark -T fields -e tcp.len` (count of
//! non-empty fields, sum), requests `tshark -Y http.request | wc -l`.

use std::{collections::HashMap, path::Path, process::Command};

mod common;

use common::BIN;

struct Run {
    stdout: String,
    summary: HashMap<String, u64>,
}

fn read(path: &Path) -> Run {
    let out = Command::new(BIN)
        .arg("-r")
        .arg(path)
        .args(["--headless", "--packets"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", path.display());
    let summary = common::summary(&stderr);
    Run {
        stdout: String::from_utf8(out.stdout).unwrap(),
        summary,
    }
}

fn corpus(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/corpus")
        .join(name)
}

fn request_lines(stdout: &str) -> usize {
    const METHODS: [&str; 7] = [
        "GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ",
    ];
    stdout
        .lines()
        .filter_map(|l| l.split_once(" \"").map(|(_, s)| s))
        .filter(|s| METHODS.iter().any(|m| s.starts_with(m)))
        .count()
}

#[test]
fn corpus_files_decode_exactly_as_tshark_counts_them() {
    // (file, frames, tcp segments, tcp payload bytes, http requests)
    for (file, frames, segs, bytes, reqs) in [
        ("wireshark-http-cap.pcap", 43, 41, 22_584, 2),
        ("fhs-gzip-keepalive.pcap", 101, 87, 51_870, 9),
        ("zeek-pipelined-requests.pcap", 49, 49, 42_362, 5),
        ("zeek-100-continue.pcap", 66, 66, 63_324, 1),
    ] {
        let r = read(&corpus(file));
        assert_eq!(r.summary["packets"], frames, "{file}");
        assert_eq!(r.summary["tcp_segments"], segs, "{file}");
        assert_eq!(r.summary["payload_bytes"], bytes, "{file}");
        // Frames that are not TCP (DNS in these captures) are counted apart, not as errors.
        assert_eq!(r.summary["not_tcp"], frames - segs, "{file}");
        assert_eq!(r.summary["decode_errors"], 0, "{file}");
        assert_eq!(r.summary["bad_records"], 0, "{file}");
        assert_eq!(request_lines(&r.stdout), reqs, "{file}");
        assert_eq!(
            r.stdout.lines().count() as u64,
            segs,
            "{file}: one line per TCP segment"
        );
    }
}

#[test]
fn the_bundled_demo_is_real_traffic_and_reads_cleanly() {
    let r = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/demo.pcap"));
    assert_eq!(r.summary["packets"], 4124);
    assert_eq!(r.summary["tcp_segments"], 4124);
    assert_eq!(r.summary["payload_bytes"], 1_280_617);
    assert_eq!(request_lines(&r.stdout), 756);
    assert!(r.stdout.contains("\"GET /search?s=shoes&page=1 HTTP/1.1\""));
}

#[test]
fn a_file_cut_mid_record_keeps_what_was_read() {
    let src = std::fs::read(corpus("zeek-pipelined-requests.pcap")).unwrap();
    let dir = std::env::temp_dir().join(format!("http-top-trunc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &src[..src.len() - 700]).unwrap();
    let r = read(&cut);
    assert_eq!(r.summary["bad_records"], 1);
    // Said once, as a warning: on stderr in headless mode, or in --log-file when given.
    let out = Command::new(BIN)
        .arg("-r")
        .arg(&cut)
        .arg("--headless")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WARN") && err.contains("unreadable record"),
        "{err}"
    );
    let log = dir.join("log.txt");
    let out = Command::new(BIN)
        .arg("-r")
        .arg(&cut)
        .arg("--headless")
        .arg("--log-file")
        .arg(&log)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("unreadable record"));
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("unreadable record")
    );
    assert!(
        r.summary["packets"] > 40 && r.summary["packets"] < 49,
        "{:?}",
        r.summary
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn not_a_capture_is_a_clear_error() {
    let out = Command::new(BIN)
        .args([
            "-r",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/read_file.rs"),
            "--headless",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a pcap or pcapng file"), "{err}");
}

#[test]
fn pcapng_with_nanosecond_resolution_reads_like_the_pcap_it_came_from() {
    use pcap_file::{
        DataLink,
        pcap::PcapReader,
        pcapng::{
            PcapNgWriter,
            blocks::{
                enhanced_packet::EnhancedPacketBlock,
                interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            },
        },
    };
    let src = corpus("fhs-gzip-keepalive.pcap");
    let dir = std::env::temp_dir().join(format!("http-top-ng-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ng = dir.join("fhs.pcapng");
    {
        let mut reader = PcapReader::new(std::fs::File::open(&src).unwrap()).unwrap();
        let mut writer = PcapNgWriter::new(std::fs::File::create(&ng).unwrap()).unwrap();
        writer
            .write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: 0,
                // if_tsresol = 9: timestamps count nanoseconds (the default would be microseconds).
                options: vec![InterfaceDescriptionOption::IfTsResol(9)],
            })
            .unwrap();
        // A second interface of a link type http-top does not decode (802.11), with one frame:
        // skipped and counted, not mistaken for Ethernet.
        writer
            .write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::IEEE802_11,
                snaplen: 0,
                options: vec![],
            })
            .unwrap();
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: 1,
                timestamp: std::time::Duration::ZERO,
                original_len: 4,
                data: std::borrow::Cow::Borrowed(&[0x80, 0, 0, 0]),
                options: vec![],
            })
            .unwrap();
        while let Some(p) = reader.next_packet() {
            let p = p.unwrap();
            writer
                .write_pcapng_block(EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: p.timestamp,
                    original_len: p.orig_len,
                    data: p.data,
                    options: vec![],
                })
                .unwrap();
        }
    }
    let a = read(&src);
    let b = read(&ng);
    assert_eq!(a.summary["packets"], b.summary["packets"]);
    assert_eq!(b.summary["unsupported_link"], 1);
    assert_eq!(a.summary["unsupported_link"], 0);
    assert_eq!(a.summary["payload_bytes"], b.summary["payload_bytes"]);
    // Same lines, timestamps included, but for the file name column.
    let strip = |s: &str| {
        s.lines()
            .map(|l| {
                l.replacen("fhs-gzip-keepalive.pcap", "F", 1)
                    .replacen("fhs.pcapng", "F", 1)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a.stdout), strip(&b.stdout));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What a broken file gives: a clear error (exit 1, one line naming the problem) when nothing in it
/// can be read, else what could be read with the rest counted (exit 0); never a panic.
#[test]
fn broken_files_are_clear_errors_or_partial_results() {
    let dir = std::env::temp_dir().join(format!("http-top-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let header = |link: u32| {
        let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&link.to_le_bytes());
        h
    };
    let record = |frame: &[u8]| {
        let mut r = vec![0; 8];
        r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        r.extend_from_slice(frame);
        r
    };
    let run = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = Command::new(BIN)
            .arg("-r")
            .arg(&path)
            .arg("--headless")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "{name}: {err}");
        (out.status.code(), err)
    };

    for (name, bytes, says) in [
        (
            "empty.pcap",
            vec![],
            "too short to be a capture file (0 bytes)",
        ),
        (
            "cut-header.pcap",
            header(1)[..10].to_vec(),
            "bad pcap header",
        ),
        ("wifi.pcap", header(105), "is not supported"),
        (
            "cut-ng-header.pcapng",
            vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0],
            "bad pcapng header",
        ),
    ] {
        let (code, err) = run(name, &bytes);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
    }

    let (code, err) = run("header-only.pcap", &header(1));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(common::summary(&err)["packets"], 0);

    // Frames shorter than their own headers: Ethernet cut, IPv4 cut, TCP cut. Counted, skipped,
    // and the valid frame after them still decodes.
    let ip = vec![
        0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let mut tcp = vec![
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff,
    ];
    tcp.extend_from_slice(&[0; 4]);
    let eth = |rest: &[u8]| [&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0][..], rest].concat();
    let mut file = header(1);
    file.extend(record(&eth(&[])[..10]));
    file.extend(record(&eth(&ip[..12])));
    file.extend(record(&eth(&[&ip[..], &tcp[..10]].concat())));
    file.extend(record(&eth(&[&ip[..], &tcp[..]].concat())));
    let (code, err) = run("short-frames.pcap", &file);
    assert_eq!(code, Some(0), "{err}");
    let s = common::summary(&err);
    assert_eq!(
        (s["packets"], s["decode_errors"], s["tcp_segments"]),
        (4, 3, 1),
        "{err}"
    );

    // pcapng cut in the middle of its last block: what came before is read, the cut counted.
    let demo_ng = {
        use pcap_file::{
            DataLink,
            pcapng::{
                PcapNgWriter,
                blocks::{
                    enhanced_packet::EnhancedPacketBlock,
                    interface_description::InterfaceDescriptionBlock,
                },
            },
        };
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![],
        })
        .unwrap();
        let frame = eth(&[&ip[..], &tcp[..]].concat());
        for _ in 0..3 {
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: std::time::Duration::ZERO,
                original_len: frame.len() as u32,
                data: std::borrow::Cow::Borrowed(&frame),
                options: vec![],
            })
            .unwrap();
        }
        w.into_inner()
    };
    let (code, err) = run("cut.pcapng", &demo_ng[..demo_ng.len() - 5]);
    assert_eq!(code, Some(0), "{err}");
    let s = common::summary(&err);
    assert_eq!((s["packets"], s["bad_records"]), (2, 1), "{err}");
    assert!(err.contains("unreadable record"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
