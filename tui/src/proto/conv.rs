//! A conversation on one connection, built by hand for the protocol tests: segments in both
//! directions through the real flow table into [`Protocols`].

use std::net::SocketAddr;

use crate::{
    decode::{Segment, tcp_flags},
    flow::{FlowConfig, FlowTable},
    proto::{Conn, Exchange, Protocols},
};

pub struct Conv {
    pub t: FlowTable<Conn>,
    pub h: Protocols,
    pub seq: [u32; 2],
    pub ts: u64,
}

pub const C: &str = "10.0.0.1:40000";
pub const S: &str = "10.0.0.2:80";

impl Conv {
    pub fn new() -> Self {
        Self {
            t: FlowTable::new(FlowConfig::default()),
            h: Protocols::default(),
            seq: [1000, 9000],
            ts: 0,
        }
    }
    pub fn send(&mut self, dir: usize, flags: u8, data: &[u8]) {
        self.send_acking(dir, flags, 0, data);
    }
    pub fn send_acking(&mut self, dir: usize, flags: u8, ack: u32, data: &[u8]) {
        let (src, dst): (SocketAddr, SocketAddr) = if dir == 0 {
            (C.parse().unwrap(), S.parse().unwrap())
        } else {
            (S.parse().unwrap(), C.parse().unwrap())
        };
        self.ts += 1000;
        let seg = Segment {
            src,
            dst,
            seq: self.seq[dir],
            ack,
            flags,
            payload: data,
            uncaptured: 0,
        };
        self.t.feed(self.ts, &seg, &mut self.h);
        self.seq[dir] =
            self.seq[dir].wrapping_add(data.len() as u32 + u32::from(flags & tcp_flags::FIN != 0));
    }
    pub fn client(&mut self, data: &[u8]) {
        self.send(0, 0, data);
    }
    /// A segment acknowledging everything the other side has sent, as a real peer would.
    pub fn acked(&mut self, dir: usize, data: &[u8]) {
        self.send_acking(dir, tcp_flags::ACK, self.seq[1 - dir], data);
    }
    /// Bytes sent but never captured.
    pub fn lost(&mut self, dir: usize, data: &[u8]) {
        self.seq[dir] = self.seq[dir].wrapping_add(data.len() as u32);
    }
    pub fn server(&mut self, data: &[u8]) {
        self.send(1, 0, data);
    }
    pub fn done(mut self) -> (Vec<Exchange>, crate::proto::HttpStats) {
        self.t.finish_some(self.ts + 1, &mut self.h, usize::MAX);
        (self.h.exchanges, self.h.stats)
    }
}
