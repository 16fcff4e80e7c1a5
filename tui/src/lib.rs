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
pub mod counters;
pub mod decode;
pub mod flow;
pub mod output;
pub mod packet;
pub mod pipeline;
pub mod proto;
pub mod session;
pub mod stats;
pub mod text;
pub mod ui;
pub mod units;
