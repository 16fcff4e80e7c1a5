//! What pairs a response with its request: the queue of requests, responses that end before their
//! request does, and the proofs by TCP positions that keep pairing right after capture loss.

use super::{Http1Conn, MAX_PENDING};
use crate::proto::{Ctx, Exchange, Protocol, RequestLine};

/// `a <= b` for positions that wrap at 2^32 and lie within 2 GiB of each other.
pub(super) fn seq_le(a: u32, b: u32) -> bool {
    b.wrapping_sub(a) as i32 >= 0
}

/// How far a request has come.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReqState {
    /// Its bytes are still arriving.
    #[default]
    Receiving,
    Ended,
    /// It could not be parsed: the bytes the parser skips after it, up to the next message start,
    /// are its own.
    Failed,
}

/// A request waiting for its response (or holding one that came before the request ended).
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub(super) line: Option<RequestLine>,
    /// Minor version of the request's head (HTTP/1.0 or 1.1); 1 until the head is seen.
    pub(super) minor: u8,
    pub(super) state: ReqState,
    /// It failed on a parse error (not a gap or a close) before its head was read.
    pub(super) unparsable: bool,
    /// A gap touched its bytes.
    pub(super) gap: bool,
    /// Bytes lost between the previous message and this one may have held whole requests.
    pub(super) after_loss: bool,
    /// Request-stream offset of its first byte.
    pub(super) start: u32,
    /// Response-stream offset the client had acknowledged when it sent the request's first byte.
    pub(super) resp_seen: u32,
    /// The response stream's gap count then.
    pub(super) resp_gaps: u8,
    pub(super) first_ns: u64,
    pub(super) last_ns: u64,
    pub(super) bytes: u64,
    /// A final response that ended before this request did (the server answered early: a
    /// `return` for a POST, a 413 mid-upload, a final status instead of 100 Continue), held until
    /// the request ends, so the exchange counts the whole request.
    pub(super) answer: Option<Box<Answer>>,
}

/// A final response, as it ended.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) minor: u8,
    pub(super) first_ns: u64,
    pub(super) last_ns: u64,
    pub(super) bytes: u64,
    pub(super) truncated: bool,
    pub(super) gap: bool,
}

/// The response being received. 16 bytes: its flags are bits, as a table of 100 000 connections
/// holds one each.
#[derive(Debug, Default)]
pub(super) struct Response {
    pub(super) first_ns: u64,
    /// Bytes of interim (1xx) responses so far: small heads, so 32 bits.
    pub(super) interim_bytes: u32,
    pub(super) status: u16,
    flags: u8,
}

/// The response being received is an interim one (1xx but 101).
pub(super) const INTERIM: u8 = 1;
/// It ends HTTP on the connection (101, CONNECT 2xx).
pub(super) const TUNNEL: u8 = 2;
/// After capture loss, no request could be proven to be the one it answers.
pub(super) const UNMATCHED: u8 = 4;
/// A gap fell inside it.
pub(super) const TOUCHED: u8 = 8;
/// Its head says HTTP/1.0.
pub(super) const HTTP10: u8 = 16;
/// It is a 101 to HTTP/2 (`Upgrade: h2c`): the connection continues as HTTP/2.
pub(super) const H2C: u8 = 32;

impl Response {
    pub(super) fn is(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub(super) fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

impl Http1Conn {
    /// A request starts at request-stream offset `at`, captured at `ts`.
    pub(super) fn request_start(&mut self, cx: &mut Ctx<'_>, at: u32, ts: u64) {
        self.end_failed(cx);
        if self.pending.len() >= MAX_PENDING {
            cx.stats.pending_overflows += 1;
            self.pending.pop_front();
        }
        cx.stats.requests += 1;
        // Room for one: most connections never pipeline, and the default first allocation
        // (four) is most of an idle connection's memory.
        if self.pending.capacity() == 0 {
            self.pending.reserve_exact(1);
        }
        // Pipelined behind a request that may follow a lost one (sent before anything more was
        // received), it may too.
        let behind_loss = self.pending.back().is_some_and(|b| {
            b.after_loss && b.resp_seen == cx.info.ack.map_or(self.acked, |a| a as u32)
        });
        self.pending.push_back(Pending {
            minor: 1,
            after_loss: std::mem::take(&mut self.req_loss) || behind_loss,
            start: at,
            first_ns: ts,
            last_ns: ts,
            // What the client had received when it sent this request: its segment's own
            // acknowledgement (it may be delivered late, from out of order), else the latest.
            resp_seen: cx.info.ack.map_or(self.acked, |a| a as u32),
            resp_gaps: self.resp_gaps,
            ..Pending::default()
        });
    }

    /// The last request, if it is in `state`: the only one that can still be receiving bytes
    /// (or absorbing them after it failed).
    pub(super) fn last_if(&mut self, state: ReqState) -> Option<&mut Pending> {
        self.pending.back_mut().filter(|p| p.state == state)
    }

    /// The request being received ended (`failed`: on a parse error, and its bytes go on).
    pub(super) fn request_end(&mut self, cx: &mut Ctx<'_>, ts: u64, bytes: u64, state: ReqState) {
        let Some(p) = self.last_if(ReqState::Receiving) else {
            return;
        };
        p.last_ns = p.last_ns.max(ts);
        p.bytes = bytes;
        p.state = state;
        if state == ReqState::Ended && p.answer.is_some() {
            let p = self.pending.pop_back();
            self.emit(cx, p, None);
        }
    }

    /// A request that failed to parse ends where the next message starts, or now.
    pub(super) fn end_failed(&mut self, cx: &mut Ctx<'_>) {
        if let Some(p) = self.pending.back_mut()
            && p.state == ReqState::Failed
        {
            p.state = ReqState::Ended;
            if p.answer.is_some() {
                let p = self.pending.pop_back();
                self.emit(cx, p, None);
            }
        }
    }

    /// A final response ended: it pairs with the first waiting request, or is held by it until
    /// that request ends, or (after capture loss with no proof) stands alone.
    pub(super) fn response_end(&mut self, cx: &mut Ctx<'_>, answer: Answer) {
        // No server answers bytes it could not parse with success: such a request got no
        // answer, and this response is the next request's.
        while answer.status < 400
            && let Some(p) = self.pending.front()
            && p.unparsable
            && p.line.is_none()
            && p.answer.is_none()
        {
            let p = self.pending.pop_front();
            self.emit(cx, p, None);
        }
        if self.response.is(UNMATCHED) || self.pending.is_empty() {
            self.emit(cx, None, Some(answer));
            return;
        }
        let front = self.pending.front_mut().expect("not empty");
        if front.state == ReqState::Ended || self.response.is(TUNNEL) {
            let p = self.pending.pop_front();
            self.emit(cx, p, Some(answer));
        } else {
            front.answer = Some(Box::new(answer));
        }
    }

    /// One exchange: a request (with the answer it held, if any), a response, or both.
    pub(super) fn emit(&mut self, cx: &mut Ctx<'_>, req: Option<Pending>, resp: Option<Answer>) {
        let client_dir = usize::from(self.client);
        let request_seen = req.is_some();
        let mut req = req.unwrap_or_default();
        let resp = resp.or_else(|| req.answer.take().map(|a| *a));
        // The request's version, else the response's.
        let minor = if request_seen {
            req.minor
        } else {
            resp.map_or(1, |r| r.minor)
        };
        if resp.is_some() {
            cx.stats.responses += 1;
            if !request_seen {
                cx.stats.unmatched_responses += 1;
            }
        }
        cx.exchanges.push(Exchange {
            client: cx.info.addrs[client_dir],
            server: cx.info.addrs[1 - client_dir],
            protocol: if minor == 0 {
                Protocol::Http10
            } else {
                Protocol::Http11
            },
            request_seen,
            unparsable: req.unparsable && req.line.is_none(),
            request: req.line,
            status: resp.map(|r| r.status),
            req_first_ns: req.first_ns,
            req_last_ns: req.last_ns,
            resp_first_ns: resp.map_or(0, |r| r.first_ns),
            resp_last_ns: resp.map_or(0, |r| r.last_ns),
            req_bytes: req.bytes,
            resp_bytes: resp.map_or(0, |r| r.bytes),
            truncated: resp.is_some_and(|r| r.truncated),
            gap: req.gap || resp.is_some_and(|r| r.gap),
            route: None,
            server_owner: None,
            client_owner: None,
            grpc: crate::proto::Grpc::No,
        });
    }

    /// Emits, unanswered, the first waiting requests whose responses the client's
    /// acknowledgements show were lost before a response starting at `start` (see the module
    /// notes).
    pub(super) fn drop_lost(&mut self, cx: &mut Ctx<'_>, start: u32) {
        while self.last_end_known && self.pending.len() >= 2 {
            let (first, next) = (&self.pending[0], &self.pending[1]);
            let lost = first.resp_gaps != self.resp_gaps
                && seq_le(self.last_end, first.resp_seen)
                && first.resp_seen != next.resp_seen
                && seq_le(first.resp_seen, next.resp_seen)
                && seq_le(next.resp_seen, start);
            if !lost {
                break;
            }
            cx.stats.lost_responses += 1;
            self.emit_front_unanswered(cx);
        }
    }

    /// The first waiting request, emitted without the response capture loss took from it (or
    /// may have): flagged, and cut short.
    fn emit_front_unanswered(&mut self, cx: &mut Ctx<'_>) {
        let mut req = self.pending.pop_front();
        if let Some(r) = &mut req {
            r.gap = true;
        }
        let held = req.as_ref().is_some_and(|r| r.answer.is_some());
        self.emit(cx, req, None);
        if !held && let Some(e) = cx.exchanges.last_mut() {
            e.truncated = true;
        }
    }

    /// A response starts at response-stream offset `start` while the connection is out of step
    /// (capture loss since the last response that ended in order, or before the first waiting
    /// request). FIFO alone could pair it with the wrong request; positions decide instead:
    ///
    /// - (A) the response to a request starts at or after what the client had received when it
    ///   sent the request (`resp_seen`): a response starting before cannot be its;
    /// - (B) the server sends it after receiving the request's first byte: a response sent while
    ///   the server had acknowledged no byte of the request cannot be its;
    /// - a request sent before the client had received past the lost bytes may have had its
    ///   response in them, and a request after lost request bytes may follow a request lost whole:
    ///   either way nothing proves which request this response answers, so such requests are
    ///   emitted unanswered and flagged, never paired by guess.
    ///
    /// The response stands alone (unmatched, flagged) when no waiting request can be proven its.
    pub(super) fn settle(&mut self, cx: &mut Ctx<'_>, start: u32) {
        // A response with no request waiting, after request bytes were lost: its request may be
        // in them.
        if self.pending.is_empty() && self.req_loss {
            self.response.set(UNMATCHED, true);
            return;
        }
        // (A) holds without loss too: a response that starts before what the client had received
        // when it sent the first waiting request is not that request's (or, first in, first out,
        // a later one's). It cannot happen in order; it does when delivery order between the two
        // directions is not the wire's (holes declared late), and then it is not guessed over.
        if self.acked_known
            && self
                .pending
                .front()
                .is_some_and(|r| !seq_le(r.resp_seen, start))
        {
            self.response.set(UNMATCHED, true);
            return;
        }
        if !self.resp_loss && self.pending.front().is_none_or(|p| !p.after_loss) {
            return;
        }
        while let Some(r) = self.pending.front() {
            // Without the client's acknowledgements (never without them in a real capture), no
            // position proves anything: first in, first out.
            if !self.acked_known {
                return;
            }
            let a = seq_le(r.resp_seen, start);
            let b = !self.server_ack_known || !seq_le(self.server_acked, r.start);
            if !a || !b {
                // Not this request's, nor (first in, first out) a later one's.
                self.response.set(UNMATCHED, true);
                return;
            }
            // Response side: sent after the client had received past what was lost, its response
            // cannot be in the loss.
            let resp_ok = !self.resp_loss || seq_le(self.resp_gap_end, r.resp_seen);
            // Request side: sent after the client had received every response so far whole, so a
            // request lost before it was answered before it (a client that pipelines has not).
            let req_ok =
                !r.after_loss || (self.last_end_known && seq_le(self.last_end, r.resp_seen));
            if resp_ok && req_ok {
                // Sent after everything lost: in step again, and so are the requests behind it
                // (no request lost before this one is still to be answered).
                self.resp_loss = false;
                self.pending.iter_mut().for_each(|p| p.after_loss = false);
                return;
            }
            if r.state != ReqState::Ended {
                self.response.set(UNMATCHED, true);
                return;
            }
            cx.stats.unpaired += 1;
            self.emit_front_unanswered(cx);
        }
        self.response.set(UNMATCHED, true);
    }
}
