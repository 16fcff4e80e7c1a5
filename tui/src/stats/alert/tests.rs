use super::*;
use crate::stats::{GroupKey, Stats, tests::ex};

fn rules(texts: &[&str]) -> Rules {
    Rules::new(texts.iter().map(|t| t.parse().unwrap()).collect()).unwrap()
}

#[test]
fn rules_parse_with_units_and_refuse_nonsense() {
    let r: Rule = "p99 > 250ms".parse().unwrap();
    assert_eq!(r.text, "p99>250ms");
    assert_eq!(r.threshold, 250_000.0);
    assert_eq!(r.measure, Measure::Quantile(990_000));
    let r: Rule = "p99.9>1.5s".parse().unwrap();
    assert_eq!(
        (r.measure, r.threshold),
        (Measure::Quantile(999_000), 1_500_000.0)
    );
    assert_eq!("avg>800us".parse::<Rule>().unwrap().threshold, 800.0);
    let r: Rule = "success<99%".parse().unwrap();
    assert_eq!(
        (r.measure, r.above, r.threshold),
        (Measure::Success, false, 99.0)
    );
    let r: Rule = "5xx>1/s".parse().unwrap();
    assert_eq!((r.measure, r.threshold), (Measure::ClassRate(5), 1.0));
    let r: Rule = "4XX>2.5%".parse().unwrap();
    assert_eq!((r.measure, r.threshold), (Measure::ClassShare(4), 2.5));
    assert_eq!("rate<10/s".parse::<Rule>().unwrap().measure, Measure::Rate);
    for bad in [
        "p99>250",
        "p99=1s",
        "p100>1s",
        "6xx>1/s",
        "latency>1s",
        "success<x%",
        ">1s",
        "p99>-1ms",
    ] {
        let e = bad.parse::<Rule>().unwrap_err();
        assert!(e.contains("e.g. p99>250ms"), "{bad}: {e}");
    }
    let nine: Vec<Rule> = (1..=9)
        .map(|i| format!("p99>{i}ms").parse().unwrap())
        .collect();
    assert!(Rules::new(nine).is_err());
    let r = rules(&["5xx>1/s", "p99>10ms", "p50>1ms"]);
    assert_eq!(r.thresholds_ns(), [10_000_000, 1_000_000]);
    assert_eq!(r.list()[2].slot, 1);
}

/// Ticks of one group: `per_tick` exchanges a second, `slow` of them at 300 ms, the rest at 1 ms,
/// `failing` of them answered 503.
fn tick(s: &mut Stats, t: u64, per_tick: u64, slow: u64, failing: u64) {
    for i in 0..per_tick {
        let lat = if i < slow { 300_000 } else { 1_000 };
        let status = if i >= per_tick - failing { 503 } else { 200 };
        s.add(&ex(
            "10.0.0.1:1",
            "10.0.0.9:80",
            "GET",
            "/",
            Some(status),
            t * 1_000_000_000 + i,
            lat,
        ));
    }
    s.tick((t + 1) * 1_000_000_000);
}

#[test]
fn a_window_starts_and_stops_alerts_exactly_at_their_thresholds() {
    let r = rules(&["p99>250ms", "5xx>1/s", "success<96%"]);
    let mut s = Stats::new(vec![GroupKey::Server], 10);
    s.count_for_alerts(r.thresholds_ns());
    let mut w = Watch::new(r, 3);
    let mut fired = Vec::new();
    // (per tick, slow, failing) for 8 ticks of 1 s.
    let plan = [
        (100, 1, 0), // exactly 1% slower than 250 ms: p99 is not above it
        (100, 2, 0), // 3 of 200 = 1.5%: p99 > 250 ms
        (100, 0, 2), // 3 of 300 = 1%, and 2 failures in 3 s: neither
        (100, 0, 4), // slow 2/300; 6 failures in 3 s = 2/s
        (100, 0, 0), // 6 failures / 3 s still
        (100, 0, 0), // 4 / 3 s
        (100, 0, 0), // 0
        (10, 0, 10),
    ];
    for (t, (n, slow, failing)) in plan.into_iter().enumerate() {
        tick(&mut s, t as u64, n, slow, failing);
        let rows = s.rows(0);
        for c in w.observe(0, &rows, 1.0) {
            fired.push((
                t,
                w.rules().list()[c.rule].text.clone(),
                c.firing,
                c.value.map(|v| (v * 10.0).round() / 10.0),
            ));
        }
    }
    // Windows of 3 ticks: t1 holds 3 slow of 200 (1.5%), t2 3 of 300 (1.0%: not above); t3 holds
    // 6 failures in 3 s, t6 none; t7 10 failures in 3 s and 200 of 210 answered well (95.2%).
    assert_eq!(
        fired,
        [
            (1, "p99>250ms".to_owned(), true, Some(1.5)),
            (2, "p99>250ms".to_owned(), false, Some(1.0)),
            (3, "5xx>1/s".to_owned(), true, Some(2.0)),
            (6, "5xx>1/s".to_owned(), false, Some(0.0)),
            (7, "5xx>1/s".to_owned(), true, Some(3.3)),
            (7, "success<96%".to_owned(), true, Some(95.2)),
        ]
    );
    let firing = w.firing(0, "10.0.0.9:80");
    assert_eq!(firing.len(), 2);
    assert_eq!(firing[0].0.describe(firing[0].1), "3.3/s");
    assert_eq!(w.all_firing(0)[1].1.text, "success<96%");
    assert!(w.any_firing(0) && !w.any_firing(1));
    w.reset();
    assert!(w.all_firing(0).is_empty() && !w.any_firing(0));
}

#[test]
fn a_share_exactly_at_the_quantile_does_not_fire_and_thresholds_are_in_ns() {
    let r = rules(&["p99.9>250ms"]);
    let mut s = Stats::new(vec![GroupKey::Server], 10);
    s.count_for_alerts(r.thresholds_ns());
    let mut w = Watch::new(r, 1);
    let run = |s: &mut Stats, w: &mut Watch, t: u64, slow_us: &[u64]| {
        for i in 0..1000u64 {
            let lat = slow_us.get(i as usize).copied().unwrap_or(1_000);
            s.add(&ex(
                "10.0.0.1:1",
                "10.0.0.9:80",
                "GET",
                "/",
                Some(200),
                t * 1_000_000_000 + i,
                lat,
            ));
        }
        s.tick((t + 1) * 1_000_000_000);
        w.observe(0, &s.rows(0), 1.0)
    };
    // 1 of 1000 slower: exactly 0.1%, not more.
    assert!(run(&mut s, &mut w, 0, &[300_000]).is_empty());
    // 250 ms exactly is not slower than 250 ms; two over it are 0.2%.
    assert!(run(&mut s, &mut w, 1, &[250_000]).is_empty());
    let c = run(&mut s, &mut w, 2, &[300_000, 251_000]);
    assert_eq!(c.len(), 1);
    assert!(
        c[0].firing && (c[0].value.unwrap() - 0.2).abs() < 1e-9,
        "{c:?}"
    );
}

#[test]
fn a_long_window_is_kept_in_slots_and_slides_by_them() {
    let r = rules(&["5xx>1/s"]);
    let mut s = Stats::new(vec![GroupKey::Server], 10);
    s.count_for_alerts(r.thresholds_ns());
    // 90 ticks: 30 slots of 3 ticks.
    let mut w = Watch::new(r, 90);
    let mut changes = Vec::new();
    for t in 0..200u64 {
        // 200 failures in tick 0 only: 2.2/s over 90 s, then nothing.
        tick(
            &mut s,
            t,
            if t == 0 { 200 } else { 1 },
            0,
            if t == 0 { 200 } else { 0 },
        );
        for c in w.observe(0, &s.rows(0), 1.0) {
            changes.push((t, c.firing, c.window_s));
        }
        let g = &w.groups[&(0, "10.0.0.9:80".to_owned())];
        assert!(g.slots.len() <= SLOTS);
    }
    // Fires at once; stops when tick 0's slot leaves the window: after 90 ticks, by whole slots.
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes[0].1 && changes[0].0 == 0);
    assert!(
        !changes[1].1 && (90..=93).contains(&changes[1].0),
        "{changes:?}"
    );
    assert!((88.0..=91.0).contains(&changes[1].2), "{changes:?}");
}
