//! http-top: live HTTP traffic dashboard for Linux.
//!
//! Data flows one way:
//!
//! ```text
//! capture (live socket | pcap file) -> decode -> flow (TCP reassembly) -> http (parse, pair) -> stats -> output
//!   capture/                          decode.rs   flow/                     http/                 stats/   headless.rs, export/
//! ```
//!
//! Everything between capture and output is pure: it takes `(timestamp, bytes)` and returns values.

pub mod bpf;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod export;
pub mod flow;
pub mod headless;
pub mod http;
pub mod parallel;
pub mod pipeline;
pub mod stats;
pub mod text;
pub mod ui;
pub mod units;
