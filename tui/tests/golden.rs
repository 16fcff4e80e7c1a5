//! Golden outputs: what the real binary prints for the bundled demo and every corpus capture —
//! the headless table and `--csv` under every grouping key, `--json`, `--packets` and the summary
//! line — held byte for byte against files recorded before the house was reshaped (issue 9).
//! A refactoring that changes any number, label, order or format fails here.
//!
//! The summary line may gain counters (every counter is meant to be shown somewhere); each one
//! recorded must keep its value.
//!
//! `GOLDEN_BLESS=1 cargo test --test golden` rewrites the files (only for a deliberate change of
//! output, said in the commit).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

const BIN: &str = env!("CARGO_BIN_EXE_http-top");

/// Every grouping key, with the query parameters the demo's traffic carries.
const KEYS: [&str; 12] = [
    "server", "port", "client", "host", "route", "path", "path:1", "path:2", "query:s", "query:q",
    "method", "status",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn captures() -> Vec<PathBuf> {
    // The exactness capture (early answers, pipelined bursts) was added after the reshaping, as a
    // guard for what came with issue 10.
    let mut v = vec![
        root().join("assets/demo.pcap"),
        root().join("assets/exactness.pcap"),
    ];
    let mut corpus: Vec<PathBuf> = fs::read_dir(root().join("assets/corpus"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    corpus.sort();
    v.extend(corpus);
    v
}

fn golden_dir(capture: &Path) -> PathBuf {
    let stem = capture.file_stem().unwrap().to_string_lossy().into_owned();
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(stem)
}

/// Runs http-top; returns (stdout, stderr).
fn run(args: &[&str]) -> (String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "http-top {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn bless() -> bool {
    std::env::var_os("GOLDEN_BLESS").is_some()
}

/// Compares `got` with the golden file `name` (or writes it when blessing).
fn check(dir: &Path, name: &str, got: &str, failures: &mut Vec<String>) {
    let path = dir.join(name);
    if bless() {
        fs::create_dir_all(dir).unwrap();
        fs::write(&path, got).unwrap();
        return;
    }
    let want = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (record with GOLDEN_BLESS=1)", path.display()));
    if want != got {
        let line = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| want.lines().count().min(got.lines().count()));
        failures.push(format!(
            "{}: differs from line {}:\n  want {:?}\n  got  {:?}",
            path.display(),
            line + 1,
            want.lines().nth(line),
            got.lines().nth(line)
        ));
    }
}

/// The summary line's `key=value` pairs.
fn counters(summary: &str) -> BTreeMap<String, String> {
    let line = summary
        .lines()
        .find(|l| l.starts_with("http-top: packets="))
        .unwrap_or_else(|| panic!("no summary line in {summary:?}"));
    line.trim_start_matches("http-top: ")
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn tables_and_csv_under_every_key_are_as_recorded() {
    let tmp = std::env::temp_dir().join(format!("http-top-golden-{}", std::process::id()));
    fs::create_dir_all(&tmp).unwrap();
    let mut failures = Vec::new();
    for cap in captures() {
        let dir = golden_dir(&cap);
        let file = cap.to_str().unwrap();
        for key in KEYS {
            let name = key.replace(':', "-");
            let csv = tmp.join(format!("{name}.csv"));
            let (table, _) = run(&[
                "-r",
                file,
                "--headless",
                "-g",
                key,
                "--csv",
                csv.to_str().unwrap(),
            ]);
            check(&dir, &format!("{name}.table"), &table, &mut failures);
            let csv = fs::read_to_string(&csv).unwrap();
            check(&dir, &format!("{name}.csv"), &csv, &mut failures);
            // One thread reads the same table as several.
            let (one, _) = run(&["-r", file, "--headless", "-g", key, "--threads", "1"]);
            if one != table {
                failures.push(format!(
                    "{file} -g {key}: --threads 1 differs from the default"
                ));
            }
        }
    }
    fs::remove_dir_all(&tmp).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn json_packets_and_summary_are_as_recorded() {
    let mut failures = Vec::new();
    for cap in captures() {
        let dir = golden_dir(&cap);
        let file = cap.to_str().unwrap();
        // One thread: exchanges in completion order.
        let (json, summary) = run(&["-r", file, "--json", "--threads", "1"]);
        check(&dir, "exchanges.json", &json, &mut failures);
        // Worker threads may interleave connections, never change an exchange.
        let (par, _) = run(&["-r", file, "--json"]);
        let sorted = |s: &str| {
            let mut v: Vec<&str> = s.lines().collect();
            v.sort_unstable();
            v.join("\n")
        };
        if sorted(&par) != sorted(&json) {
            failures.push(format!("{file}: --json with workers has other exchanges"));
        }
        let (packets, _) = run(&["-r", file, "--packets"]);
        check(&dir, "packets.txt", &packets, &mut failures);

        let path = dir.join("summary.txt");
        if bless() {
            fs::write(&path, &summary).unwrap();
            continue;
        }
        let want = counters(&fs::read_to_string(&path).unwrap());
        let got = counters(&summary);
        for (k, v) in &want {
            if got.get(k) != Some(v) {
                failures.push(format!(
                    "{file}: summary {k}={v} recorded, now {:?}",
                    got.get(k)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// README's usage block is `http-top --help`, word for word.
#[test]
fn readme_usage_is_the_help_text() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let start =
        readme.find("## Usage\n\n```\n").expect("a Usage section") + "## Usage\n\n```\n".len();
    let len = readme[start..].find("```").unwrap();
    let (help, _) = run(&["--help"]);
    assert_eq!(
        &readme[start..start + len],
        help,
        "README's usage differs from `http-top --help`: paste the help text in"
    );
}
