//! http-top: live HTTP traffic dashboard for Linux.
//!
//! Data flows one way, driven by one session loop (`session`):
//!
//! ```text
//! capture (live ring | pcap file) -> decode -> flow (TCP reassembly) -> proto (parse, pair)
//!     -> route (session) -> outputs: stats tables, CSV, JSON, packets, pcap, metrics, dashboard
//! ```
//!
//! Everything between capture and the outputs is pure: it takes `(timestamp, bytes)` and returns
//! values. `tests/layers.rs` holds the modules to their ranks.

pub mod bpf;
pub mod capture;
pub mod cli;
pub mod counters;
pub mod decode;
pub mod flow;
pub mod names;
pub mod output;
pub mod owner;
pub mod packet;
pub mod pipeline;
pub mod proto;
pub mod session;
pub mod stats;
pub mod text;
pub mod ui;
pub mod units;
