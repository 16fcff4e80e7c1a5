//! Command line (clap derive).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{ArgGroup, Parser};

use crate::{
    flow::FlowConfig,
    output::{
        Sink,
        alerts::AlertLines,
        json::JsonLines,
        metrics::{DEFAULT_BUCKETS, MetricsConfig},
        packets::PacketLines,
        pcap::PcapFile,
        table::Tables,
    },
    session::{self, Outputs, parallel},
    stats::{
        GroupKey, Stats,
        alert::{Rule, Rules},
        route::{Pattern, RouteConfig},
    },
};

/// Live HTTP traffic dashboard for Linux (HTTP/1.x, HTTP/2 over cleartext, gRPC).
///
/// Captures on network interfaces through an eBPF socket filter (root needed) or reads a pcap/pcapng
/// file, reassembles TCP streams, pairs HTTP requests with responses and aggregates them per group:
/// requests, bytes, status classes, success rate, latency percentiles: in an interactive
/// dashboard, or headless (tables, CSV, JSON) with --headless.
#[derive(Debug, Parser)]
#[command(name = "http-top", version)]
#[command(group(ArgGroup::new("source").required(true).args(["interfaces", "read"])))]
pub struct Cli {
    /// Capture live on this interface; repeat for several (needs root)
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interfaces: Vec<String>,

    /// Read packets from a pcap or pcapng file instead of an interface
    #[arg(
        short = 'r',
        long = "read",
        value_name = "FILE",
        conflicts_with = "interfaces"
    )]
    pub read: Option<PathBuf>,

    /// Only watch these TCP ports (comma-separated or repeated; default: any port)
    #[arg(long, value_name = "P[,P]", value_delimiter = ',')]
    pub port: Vec<u16>,

    /// No dashboard: write to stdout (a file: the final table; live: a table every --interval)
    #[arg(long)]
    pub headless: bool,

    /// Group by: server, port, client, host, route, path, path:N, query:NAME, method, status, proto,
    /// grpc, process, container, client-process, client-container
    #[arg(
        short = 'g',
        long = "group-by",
        value_name = "KEY",
        default_value = "server"
    )]
    pub group_by: GroupKey,

    /// Write the final table as CSV to this file on exit
    #[arg(long, value_name = "PATH")]
    pub csv: Option<PathBuf>,

    /// Also write every captured frame to this pcap file (what the kernel filter kept)
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,

    /// Headless: print no tables (a service that only serves --metrics; the summary line still
    /// goes to stderr at exit)
    #[arg(short = 'q', long, requires = "headless")]
    pub quiet: bool,

    /// Print one JSON object per finished exchange instead of tables
    #[arg(long, conflicts_with = "packets")]
    pub json: bool,

    /// Print one line per captured TCP segment instead of tables (like bcc's http_filter)
    #[arg(long)]
    pub packets: bool,

    /// Dashboard: seconds per tick (rates roll, sparklines advance), like top's -d
    #[arg(
        short = 'd',
        long = "delay",
        value_name = "SECS",
        default_value_t = 1.0
    )]
    pub delay: f64,

    /// Dashboard on a file: replay at this multiple of the recorded pace (1 = as captured)
    #[arg(long, value_name = "X", requires = "read")]
    pub replay_speed: Option<f64>,

    /// Dashboard on a file: start again at the end (with --replay-speed, looks live)
    #[arg(long = "loop", requires = "read")]
    pub loop_file: bool,

    /// Units in the dashboard
    #[arg(short = 'u', long, value_enum, default_value = "human")]
    pub units: crate::stats::metric::Units,

    /// Directory for snapshots exported with `e`
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub export_dir: PathBuf,

    /// Write log messages (warnings, capture problems) to this file; without it the dashboard
    /// logs nothing and headless mode logs warnings to stderr
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Headless: seconds between tables in live mode, and the length of a rate tick
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub interval: f64,

    /// Most groups kept per grouping key; the rest are counted under _other
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_groups: usize,

    /// Stop a live capture after this many seconds
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// User to switch to once capture is set up (default: the user who ran sudo, else root with no
    /// capabilities)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Capture ring size per interface, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub ring_mb: u32,

    /// Copy every body byte from the kernel (by default the filter cuts packets of a body whose
    /// length a head announced to their headers: the bytes are counted, not copied)
    #[arg(long)]
    pub no_skip: bool,

    /// Spread a live capture over N rings per interface by flow hash (PACKET_FANOUT), each read
    /// by its own thread; off (1) by default, as it did not help on a 2-core machine (README,
    /// Performance)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub fanout: u16,

    /// Forget a connection after this many seconds without traffic
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub idle_timeout: u64,

    /// Name request paths by these route patterns before the automatic rule (repeatable): `{name}`
    /// matches one segment, a last `*` the rest; first match wins (see README, Routes)
    #[arg(long = "route", value_name = "PATTERN")]
    pub routes: Vec<Pattern>,

    /// Read more route patterns from this file, one per line (`#` starts a comment)
    #[arg(long = "routes", value_name = "FILE")]
    pub routes_file: Option<PathBuf>,

    /// Serve Prometheus metrics on this address at /metrics while capturing (e.g. 127.0.0.1:9464,
    /// [::]:9464), in every mode
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// Keep serving metrics this many seconds after the capture ends (a last scrape)
    #[arg(long, value_name = "SECS", default_value_t = 0.0, requires = "metrics")]
    pub metrics_linger: f64,

    /// Latency histogram bucket bounds in seconds
    /// [default: 0.005,0.01,0.025,0.05,0.075,0.1,0.25,0.5,0.75,1,2.5,5,7.5,10]
    #[arg(
        long,
        value_name = "S[,S]",
        value_delimiter = ',',
        requires = "metrics"
    )]
    pub metrics_buckets: Vec<f64>,

    /// Add these grouping keys as metric labels: client, host, path, path:N, query:NAME, status
    /// (query:s becomes the label query_s)
    #[arg(
        long,
        value_name = "KEY[,KEY]",
        value_delimiter = ',',
        requires = "metrics"
    )]
    pub metrics_labels: Vec<GroupKey>,

    /// Most metric label sets; past it new ones are counted under http_route="_other"
    #[arg(long, value_name = "N", default_value_t = 10_000, requires = "metrics")]
    pub metrics_max_series: usize,

    /// Print the man page or a shell's completions and exit (for packagers)
    #[arg(long, value_name = "WHAT", hide = true, exclusive = true)]
    pub generate: Option<Generate>,

    /// Threads for reading a file at full speed, headless or in the dashboard (connections spread
    /// over them); 1 reads on one thread [default: one per core, at most 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: Option<u16>,

    /// Look up which process and container stand behind a file's endpoints on this machine, as
    /// live (only meaningful where the file was captured); without it a file shows _unresolved
    #[arg(long, requires = "read")]
    pub resolve_names: bool,

    /// Live: do not look up process and container names (starts no helper process)
    #[arg(long, conflicts_with = "read")]
    pub no_names: bool,

    /// Headless: print each exchange slower than MS milliseconds as a JSON line (the object --json
    /// prints); dashboard: mark the groups whose p99 is above it
    #[arg(long, value_name = "MS", conflicts_with = "json")]
    pub slow: Option<f64>,

    /// Alert when a group crosses a threshold (repeatable): p99>250ms, avg>100ms, success<99%,
    /// 5xx>1/s, 5xx>2%, rate<10/s; checked every tick over --alert-window. Dashboard: marked and
    /// listed in the header; headless: one JSON line when it starts and one when it stops
    #[arg(long = "alert", value_name = "RULE")]
    pub alerts: Vec<Rule>,

    /// Seconds of traffic each alert check covers (a sliding window of ticks)
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub alert_window: f64,
}

impl Cli {
    /// Whether to open the dashboard: `--packets` and `--json` are stream outputs and imply
    /// headless.
    pub fn dashboard(&self) -> bool {
        !self.headless && !self.packets && !self.json
    }

    /// The seconds of one rate tick: `-d` in the dashboard, `--interval` headless.
    pub fn tick_s(&self) -> f64 {
        if self.dashboard() {
            self.delay
        } else {
            self.interval
        }
    }

    /// The `--alert` rules, and how many ticks a window holds; an error for too many latency
    /// rules.
    pub fn alert_rules(&self) -> anyhow::Result<(Rules, usize)> {
        let rules = Rules::new(self.alerts.clone()).map_err(|e| anyhow::anyhow!("--alert: {e}"))?;
        let ticks = (self.alert_window / self.tick_s())
            .round()
            .clamp(1.0, 3600.0) as usize;
        Ok((rules, ticks))
    }

    /// `--slow` in ns.
    pub fn slow_ns(&self) -> Option<u64> {
        self.slow.map(|ms| (ms.max(0.0) * 1e6) as u64)
    }

    /// How the session reads, from the flags (reads `--routes`).
    pub fn session_options(&self) -> anyhow::Result<session::Options> {
        let dashboard = self.dashboard();
        let mut patterns = self.routes.clone();
        if let Some(path) = &self.routes_file {
            patterns.extend(RouteConfig::read_patterns(path)?);
        }
        Ok(session::Options {
            flow: FlowConfig {
                idle_timeout_ns: self.idle_timeout.saturating_mul(1_000_000_000),
                ..FlowConfig::default()
            },
            tick: Duration::from_secs_f64(self.tick_s()),
            workers: parallel::workers(self.threads.map_or_else(default_threads, usize::from)),
            duration: self.duration.map(|s| Duration::from_secs_f64(s.max(0.0))),
            // Replaying and looping are for watching a file in the dashboard.
            replay_speed: self.replay_speed.filter(|_| dashboard),
            loop_file: self.read.clone().filter(|_| dashboard && self.loop_file),
            live: self.read.is_none(),
            routes: RouteConfig {
                patterns,
                ..RouteConfig::default()
            },
            // The name service runs beside the session; main starts it once privileges are
            // settled.
            names: None,
        })
    }

    /// The metrics endpoint's settings, when `--metrics` is given; an error for a label that
    /// cannot be added or buckets that are not positive.
    pub fn metrics_config(&self, interfaces: &[String]) -> anyhow::Result<Option<MetricsConfig>> {
        let Some(addr) = self.metrics else {
            return Ok(None);
        };
        let mut buckets = if self.metrics_buckets.is_empty() {
            DEFAULT_BUCKETS.to_vec()
        } else {
            self.metrics_buckets.clone()
        };
        if buckets.iter().any(|b| !b.is_finite() || *b <= 0.0) {
            anyhow::bail!("--metrics-buckets takes positive numbers of seconds");
        }
        buckets.sort_by(f64::total_cmp);
        buckets.dedup();
        let config = MetricsConfig {
            addr,
            buckets,
            labels: self.metrics_labels.clone(),
            max_series: self.metrics_max_series,
            interfaces: interfaces.to_vec(),
        };
        config
            .label_names()
            .map_err(|e| anyhow::anyhow!("--metrics-labels: {e}"))?;
        Ok(Some(config))
    }

    /// The outputs of a headless run: the table (always: it aggregates for the CSV and the
    /// summary, and prints unless another output owns stdout), then `--json`, `--slow`,
    /// `--alert`, `--packets`, `-w`.
    pub fn headless_outputs(
        &self,
        stats: Stats,
        interfaces: &[String],
    ) -> anyhow::Result<Outputs<'static>> {
        let live = self.read.is_none();
        let streams = self.packets || self.json || self.slow.is_some() || !self.alerts.is_empty();
        let mut outputs: Vec<Box<dyn session::Output + Send>> = vec![Box::new(Tables::new(
            stats,
            std::io::stdout(),
            !streams && !self.quiet,
            live.then(|| Duration::from_secs_f64(self.interval)),
            self.csv.clone(),
        ))];
        // `--slow` and `--json` conflict: one of them at most.
        if self.json || self.slow.is_some() {
            outputs.push(Box::new(JsonLines {
                sink: Sink::new(std::io::stdout()),
                slower_than_ns: self.slow_ns(),
            }));
        }
        if !self.alerts.is_empty() {
            let (rules, window_ticks) = self.alert_rules()?;
            outputs.push(Box::new(AlertLines::new(
                std::io::stdout(),
                self.group_by.clone(),
                self.max_groups,
                rules,
                window_ticks,
            )));
        }
        if self.packets {
            outputs.push(Box::new(PacketLines {
                sink: Sink::new(std::io::stdout()),
                ifaces: interfaces.to_vec(),
            }));
        }
        if let Some(path) = &self.write {
            outputs.push(Box::new(PcapFile {
                path: path.clone(),
                out: None,
            }));
        }
        Ok(Outputs(outputs))
    }
}

/// What the command line asks for: a run, or a file for packagers.
pub enum Invocation {
    Run(Box<Cli>),
    Generate(Generate),
}

impl Invocation {
    /// Parses the command line (exits with clap's message when it is wrong). `--generate` needs no
    /// source, which the usual parse requires, so it is looked for only when that parse fails.
    pub fn from_args() -> Self {
        use clap::CommandFactory;
        match Cli::try_parse() {
            Ok(cli) => Self::Run(Box::new(cli)),
            Err(e) => {
                let relaxed = Cli::command().mut_group("source", |g| g.required(false));
                if let Ok(m) = relaxed.try_get_matches()
                    && let Some(g) = m.get_one::<Generate>("generate")
                {
                    return Self::Generate(*g);
                }
                e.exit()
            }
        }
    }
}

/// What `--generate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generate {
    Man,
    Bash,
    Zsh,
    Fish,
}

impl Generate {
    /// Writes the man page (clap_mangen) or the completion script (clap_complete), made from the
    /// same definition as `--help`, so they cannot drift from it.
    pub fn write(self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let shell = match self {
            Self::Man => return clap_mangen::Man::new(cmd).render(out),
            Self::Bash => clap_complete::Shell::Bash,
            Self::Zsh => clap_complete::Shell::Zsh,
            Self::Fish => clap_complete::Shell::Fish,
        };
        clap_complete::generate(shell, &mut cmd, "http-top", out);
        Ok(())
    }
}

/// Threads for reading a file when `--threads` is not given: one per core, at most four (the
/// reader and the aggregation on one, reassembly and HTTP on the others).
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn needs_a_source_and_only_one() {
        assert!(Cli::try_parse_from(["http-top"]).is_err());
        assert!(Cli::try_parse_from(["http-top", "-i", "lo", "-r", "x.pcap"]).is_err());
        let c = Cli::try_parse_from(["http-top", "-i", "lo", "-i", "eth0", "--port", "80,8080"])
            .unwrap();
        assert_eq!(c.interfaces, ["lo", "eth0"]);
        assert_eq!(c.port, [80, 8080]);
        let c = Cli::try_parse_from(["http-top", "-r", "x", "-g", "query:s"]).unwrap();
        assert_eq!(c.group_by, GroupKey::Query("s".into()));
        assert!(Cli::try_parse_from(["http-top", "-r", "x", "-g", "nope"]).is_err());
    }
}
