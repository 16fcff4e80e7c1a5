//! The table as CSV, one row per group: `--csv FILE` at the end of a headless run, and the
//! dashboard's `e` export.

use std::io::Write;

use crate::stats::{
    Row,
    metric::{self, Period, Style},
};

/// A text cell that a spreadsheet would run as a formula gets a leading `'` (OWASP, CSV injection).
pub fn neutralize(s: &str) -> String {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{s}"),
        _ => s.to_owned(),
    }
}

/// Writes the rows of one grouping as CSV: `group`, then the columns of [`metric::CSV`], then
/// `name` (the container or process behind a server or client; added last, so the columns
/// before it keep their places).
pub fn write_csv<W: Write>(out: W, rows: &[Row], span: Period) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(
        std::iter::once("group")
            .chain(metric::CSV.iter().map(|m| m.csv_name()))
            .chain(["name"]),
    )?;
    for r in rows {
        w.write_record(
            std::iter::once(neutralize(&r.group))
                .chain(metric::CSV.iter().map(|m| m.cell(&r.agg, span, Style::Csv)))
                .chain([neutralize(r.name.as_deref().unwrap_or(""))]),
        )?;
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

    #[test]
    fn the_name_is_the_last_column() {
        let row = |name: Option<&str>| Row {
            group: "10.0.0.9:80".into(),
            agg: crate::stats::Agg::default(),
            name: name.map(str::to_owned),
            slowest: Default::default(),
        };
        let mut out = Vec::new();
        let span = Period {
            tick_s: 1.0,
            elapsed_s: 1.0,
        };
        write_csv(
            &mut out,
            &[row(Some("orders-api")), row(None), row(Some("=cmd"))],
            span,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with(",gap_affected,name"), "{text}");
        assert!(lines[1].starts_with("10.0.0.9:80,") && lines[1].ends_with(",orders-api"));
        assert!(lines[2].ends_with(','), "{text}");
        // A name is text from a machine's files: neutralized like a group.
        assert!(lines[3].ends_with(",'=cmd"), "{text}");
    }
}
