use std::{path::Path, time::Duration};

use super::*;
use crate::{
    capture::{Next, PacketSource, file::FileSource},
    stats::{GroupKey, Stats},
};

/// Every group of every key, with what it counted (latency histograms by count).
/// Key index, label, requests, no responses, bytes in and out, status classes, latencies.
type Group = (usize, String, u64, u64, u64, u64, [u64; 5], u64);

fn groups(s: &Stats) -> Vec<Group> {
    let mut out = Vec::new();
    for k in 0..s.keys().len() {
        for r in s.rows(k) {
            let a = r.agg;
            out.push((
                k,
                r.group,
                a.requests,
                a.no_response,
                a.bytes_in,
                a.bytes_out,
                a.status,
                a.latency.len(),
            ));
        }
    }
    out.sort();
    out
}

/// A file through `engine`, ticking every second of capture time.
fn read(path: &Path, engine: &mut dyn Engine) -> (Stats, u64) {
    let mut src = FileSource::open(path).unwrap();
    let mut stats = Stats::new(GroupKey::standard_set(&GroupKey::Server, false), 1000);
    let mut seen = 0u64;
    let mut each = |ev: Event<'_>| {
        match ev {
            Event::Exchange(e) => {
                seen += 1;
                stats.add(e);
            }
            Event::Tick(t) => stats.tick(t),
        }
        Ok(())
    };
    let mut ticker = crate::stats::Ticker::new(Duration::from_secs(1));
    while let Next::Packet(p) = src.next_packet(Duration::ZERO).unwrap() {
        if ticker.due(engine.now_ns().max(p.ts_ns)) {
            engine.tick(p.ts_ns).unwrap();
        }
        engine.packet(&p).unwrap();
        engine.poll(&mut each).unwrap();
    }
    engine.finish(&mut each).unwrap();
    (stats, seen)
}

/// The demo and every corpus capture, with one, two and three workers: the same groups, counts
/// and counters as one thread.
#[test]
fn workers_count_what_one_thread_counts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("../assets/demo.pcap")];
    for e in std::fs::read_dir(root.join("../assets/corpus")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            files.push(p);
        }
    }
    for f in &files {
        let mut one = super::super::Sequential::new(FlowConfig::default(), false);
        let (seq, _) = read(f, &mut one);
        let one = one.totals();
        for n in 1..=3 {
            let mut par = Parallel::start(FlowConfig::default(), n).unwrap();
            let (stats, seen) = read(f, &mut par);
            let t = par.totals();
            let name = format!("{} with {n} workers", f.display());
            assert_eq!(groups(&stats), groups(&seq), "{name}");
            assert_eq!(t.counters, one.counters, "{name}");
            assert_eq!(t.http, one.http, "{name}");
            assert_eq!(t.flows.connections, one.flows.connections, "{name}");
            assert_eq!(t.flows.gaps, one.flows.gaps, "{name}");
            assert_eq!(
                seen,
                stats.total().requests + one.http.unmatched_responses,
                "{name}"
            );
            assert_eq!(stats.total().requests, seq.total().requests, "{name}");
        }
    }
}
