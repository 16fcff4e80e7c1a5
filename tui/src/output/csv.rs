//! The table as CSV, one row per group: `--csv FILE` at the end of a headless run, and the
//! dashboard's `e` export.

use std::io::Write;

use hdrhistogram::Histogram;

use crate::stats::Row;

/// The CSV header, fixed: scripts depend on it.
pub const CSV_HEADER: [&str; 20] = [
    "group",
    "requests",
    "responses",
    "no_response",
    "bytes_in",
    "bytes_out",
    "status_1xx",
    "status_2xx",
    "status_3xx",
    "status_4xx",
    "status_5xx",
    "success_rate",
    "latency_min_ms",
    "latency_avg_ms",
    "latency_max_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "ttfb_avg_ms",
    "ttfb_p99_ms",
];

/// A text cell that a spreadsheet would run as a formula gets a leading `'` (OWASP, CSV injection).
pub fn neutralize(s: &str) -> String {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{s}"),
        _ => s.to_owned(),
    }
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

/// Milliseconds with 3 decimals of a histogram statistic; empty when there are no samples.
fn hist_ms(h: &Histogram<u32>, f: impl Fn(&Histogram<u32>) -> f64) -> String {
    if h.is_empty() {
        String::new()
    } else {
        ms(f(h))
    }
}

/// Writes the rows of one grouping as CSV.
pub fn write_csv<W: Write>(out: W, rows: &[Row]) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    for r in rows {
        let a = &r.agg;
        let lat = &a.latency;
        let q = |p: f64| move |h: &Histogram<u32>| h.value_at_quantile(p) as f64;
        w.write_record([
            neutralize(&r.group),
            a.requests.to_string(),
            a.responses.to_string(),
            a.no_response.to_string(),
            a.bytes_in.to_string(),
            a.bytes_out.to_string(),
            a.status[0].to_string(),
            a.status[1].to_string(),
            a.status[2].to_string(),
            a.status[3].to_string(),
            a.status[4].to_string(),
            a.success_rate()
                .map_or_else(String::new, |s| format!("{s:.2}")),
            hist_ms(lat, |h| h.min() as f64),
            hist_ms(lat, Histogram::mean),
            hist_ms(lat, |h| h.max() as f64),
            hist_ms(lat, q(0.5)),
            hist_ms(lat, q(0.9)),
            hist_ms(lat, q(0.99)),
            hist_ms(&a.ttfb, Histogram::mean),
            hist_ms(&a.ttfb, q(0.99)),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralized() {
        assert_eq!(neutralize("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        for p in ["+1", "-1", "@SUM", "\tx", "\rx"] {
            assert!(neutralize(p).starts_with('\''), "{p}");
        }
        assert_eq!(neutralize("/api"), "/api");
        assert_eq!(neutralize("10.0.0.1:80"), "10.0.0.1:80");
    }
}
