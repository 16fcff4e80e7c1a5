//! Pipeline throughput on a real capture: decode, reassembly, HTTP pairing and aggregation under
//! every grouping key, in packets/s and bytes/s.
//!
//! The capture is `HTTP_TOP_BENCH_PCAP` when set (`cargo xtask bench` records a large one from real
//! nginx traffic), else the bundled demo. Frames are loaded into memory first, so the numbers are
//! the pipeline's and not the disk's; `file_to_stats` adds reading the file through the same
//! memory-mapped reader `-r` uses.

use std::{hint::black_box, path::PathBuf, time::Duration};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_top::{
    capture::{Next, PacketSource, file::FileSource},
    flow::FlowConfig,
    packet::{Direction, LinkType, Packet},
    pipeline::Pipeline,
    stats::{GroupKey, Stats},
};

fn capture_path() -> PathBuf {
    std::env::var_os("HTTP_TOP_BENCH_PCAP").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/demo.pcap")),
        PathBuf::from,
    )
}

struct Frames {
    frames: Vec<(u64, LinkType, Vec<u8>)>,
    bytes: u64,
}

fn load() -> Frames {
    let mut src = FileSource::open(&capture_path()).expect("open the benchmark capture");
    let mut frames = Vec::new();
    let mut bytes = 0;
    while let Next::Packet(p) = src.next_packet(Duration::ZERO).unwrap() {
        bytes += p.data.len() as u64;
        frames.push((p.ts_ns, p.link, p.data.to_vec()));
    }
    Frames { frames, bytes }
}

/// Runs the whole pipeline over the frames; returns the exchanges counted (so nothing is elided).
fn run(frames: &Frames) -> u64 {
    let mut p = Pipeline::new(FlowConfig::default());
    let mut stats = Stats::new(GroupKey::standard_set(&GroupKey::Server, false), 1000);
    for (ts, link, data) in &frames.frames {
        p.packet(&Packet {
            ts_ns: *ts,
            link: *link,
            data,
            orig_len: data.len() as u32,
            iface: 0,
            direction: Direction::Unknown,
            shared: None,
        });
        for e in p.drain() {
            stats.add(&e);
        }
    }
    p.finish(|e| stats.add(&e));
    stats.total().requests
}

fn bench(c: &mut Criterion) {
    let frames = load();
    eprintln!(
        "capture {}: {} frames, {} bytes",
        capture_path().display(),
        frames.frames.len(),
        frames.bytes
    );
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(frames.frames.len() as u64));
    g.bench_function("packets", |b| b.iter(|| black_box(run(&frames))));
    g.throughput(Throughput::Bytes(frames.bytes));
    g.bench_function("bytes", |b| b.iter(|| black_box(run(&frames))));
    g.bench_function("file_to_stats", |b| {
        b.iter(|| {
            let mut src = FileSource::open(&capture_path()).unwrap();
            let mut p = Pipeline::new(FlowConfig::default());
            let mut stats = Stats::new(GroupKey::standard_set(&GroupKey::Server, false), 1000);
            while let Next::Packet(pkt) = src.next_packet(Duration::ZERO).unwrap() {
                p.packet(&pkt);
                for e in p.drain() {
                    stats.add(&e);
                }
            }
            p.finish(|e| stats.add(&e));
            black_box(stats.total().requests)
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
