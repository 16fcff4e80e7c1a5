//! What one rate tick counted for a group: the rates of the table (requests and bytes per second),
//! the heatmap's column (latency by half-octave bucket) and what alert windows sum up (failures,
//! status classes, exchanges slower than each alert's threshold).

use crate::proto::{Exchange, Grpc};

/// Latency buckets of the heatmap: half octaves (each bound √2 times the previous) from 32 µs, so
/// a bucket's width is a fixed share of its value, as on a log axis. Bucket 0 holds everything
/// under 32 µs, the last everything from about 4.7 min up.
pub const BUCKETS: usize = 48;
const FIRST_US: u64 = 32;

/// The bucket of a latency in µs.
pub fn bucket_of(us: u64) -> usize {
    if us < FIRST_US {
        return 0;
    }
    let octave = 63 - us.leading_zeros() as usize; // floor(log2 us) >= 5
    let base = 1u128 << octave;
    // In the upper half of the octave when us >= base·√2, i.e. us² >= 2·base².
    let upper = u128::from(us) * u128::from(us) >= 2 * base * base;
    (1 + 2 * (octave - 5) + usize::from(upper)).min(BUCKETS - 1)
}

/// The lower bound of bucket `i` in µs (0 for the first).
pub fn bucket_floor_us(i: usize) -> f64 {
    if i == 0 {
        return 0.0;
    }
    let octave = (i - 1) / 2 + 5;
    let base = (1u64 << octave) as f64;
    if (i - 1) % 2 == 1 {
        base * std::f64::consts::SQRT_2
    } else {
        base
    }
}

/// Exchanges per latency bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets(pub [u32; BUCKETS]);

impl Default for Buckets {
    fn default() -> Self {
        Self([0; BUCKETS])
    }
}

/// Most latency thresholds counted per tick (one per latency alert rule).
pub const MAX_THRESHOLDS: usize = 8;

/// What is known of one exchange before it is counted under every key: computed once, not once
/// per key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// First request byte to last response byte, µs.
    pub latency_us: Option<u64>,
    /// Its heatmap bucket, when the statistics keep them (the dashboard's: headless tables do
    /// not pay for them).
    pub bucket: Option<usize>,
    /// Bit i: slower than threshold i.
    pub over: u8,
    /// The final response's status class (0 for 1xx .. 4 for 5xx), and whether it failed (5xx,
    /// or a gRPC server error).
    pub class: Option<usize>,
    pub failed: bool,
}

impl Timing {
    /// `thresholds_ns`: compared in ns, so 250.0004 ms is slower than 250 ms.
    pub fn of(e: &Exchange, thresholds_ns: &[u64], buckets: bool) -> Self {
        let latency_ns = e.latency_ns();
        let latency_us = latency_ns.map(|n| n / 1_000);
        let mut over = 0;
        if let Some(l) = latency_ns {
            for (i, t) in thresholds_ns.iter().enumerate().take(MAX_THRESHOLDS) {
                over |= u8::from(l > *t) << i;
            }
        }
        let class = e.status.map(|s| usize::from((s / 100).clamp(1, 5)) - 1);
        // OpenTelemetry's server errors among gRPC statuses.
        let grpc_failed = matches!(e.grpc, Grpc::Status(2 | 4 | 12 | 13 | 14 | 15));
        Self {
            latency_us,
            bucket: latency_us.filter(|_| buckets).map(bucket_of),
            over,
            class,
            failed: class == Some(4) || (class.is_some() && grpc_failed),
        }
    }
}

/// One tick's counts for a group.
#[derive(Debug, Clone, Default)]
pub struct TickCounts {
    pub requests: u64,
    /// Request and response bytes.
    pub bytes: [u64; 2],
    /// What alert windows and the heatmap read, when the statistics count it (the dashboard's and
    /// `--alert`'s): boxed and made on first use, so the headless table's groups pay a pointer
    /// (measured inline: the flood benchmark's peak grew by 1 MiB, past its 64 MiB target).
    pub detail: Option<Box<TickDetail>>,
}

/// The part of a tick's counts only alerts and the heatmap read.
#[derive(Debug, Clone, Default)]
pub struct TickDetail {
    /// Final responses, and those of them that failed (as [`super::Agg::failed`]).
    pub responses: u64,
    pub failed: u64,
    pub no_response: u64,
    /// Final responses by class, 1xx .. 5xx.
    pub status: [u64; 5],
    /// Exchanges with a latency, and their sum in µs.
    pub timed: u64,
    pub latency_sum_us: u64,
    /// Exchanges slower than each of the statistics' thresholds.
    pub over: [u32; MAX_THRESHOLDS],
    /// Exchanges per latency bucket (empty unless the statistics count buckets).
    pub latency: Buckets,
}

impl TickCounts {
    /// `detail`: whether the statistics keep [`TickDetail`].
    pub(super) fn add(&mut self, e: &Exchange, t: &Timing, detail: bool) {
        if e.request_seen {
            self.requests += 1;
        }
        self.bytes[0] += e.req_bytes;
        self.bytes[1] += e.resp_bytes;
        if !detail {
            return;
        }
        let d = self.detail.get_or_insert_default();
        if e.request_seen {
            d.no_response += u64::from(e.status.is_none());
        }
        if let Some(c) = t.class {
            d.responses += 1;
            d.status[c] += 1;
            d.failed += u64::from(t.failed);
        }
        if let Some(l) = t.latency_us {
            d.timed += 1;
            d.latency_sum_us += l;
            if let Some(b) = t.bucket {
                d.latency.0[b] += 1;
            }
            let mut over = t.over;
            while over != 0 {
                d.over[over.trailing_zeros() as usize] += 1;
                over &= over - 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_half_octaves_and_their_floors_agree() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(31), 0);
        assert_eq!(bucket_of(32), 1);
        assert_eq!(bucket_of(45), 1); // 32·√2 = 45.25
        assert_eq!(bucket_of(46), 2);
        assert_eq!(bucket_of(64), 3);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        for us in [
            32u64,
            50,
            99,
            1000,
            4_000,
            80_000,
            180_000,
            400_000,
            3_600_000_000,
        ] {
            let b = bucket_of(us);
            assert!(bucket_floor_us(b) <= us as f64, "{us} in {b}");
            if b + 1 < BUCKETS {
                assert!((us as f64) < bucket_floor_us(b + 1), "{us} in {b}");
            }
        }
    }
}
