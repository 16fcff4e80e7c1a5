//! One direction of an HTTP/1.x connection as a sequence of messages: head (httparse), then a body
//! framed as RFC 9112 section 6 says. Pull-style: [`MessageParser::feed`] consumes bytes up to the next
//! event and says how many it took, so the connection can react (decide a response's framing from its
//! request) before feeding the rest.
//!
//! Bounded: a head may grow to [`MAX_HEAD`] bytes and carry [`MAX_HEADERS`] headers; beyond, it is an
//! error and the parser resynchronises.

pub use super::head::{Head, MAX_HEAD, MAX_HEADERS, ParseError, starts_message};
use super::head::{find_head_end, parse_head, parse_head_prefix};
use crate::proto::SpareLines;

/// How the body after a head is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of a chunk size.
    Size { value: u64, digits: u8 },
    /// Skipping chunk extensions up to LF.
    Ext { value: u64 },
    /// Chunk data left.
    Data(u64),
    /// CR LF after chunk data.
    DataEnd { seen_cr: bool },
    /// Trailer section: at the start of a line.
    TrailerLineStart,
    /// Inside a trailer line.
    TrailerLine,
    /// CR of the empty line that ends the message.
    FinalLf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Between messages.
    Idle,
    /// Accumulating a head.
    Head,
    /// Head parsed; waiting for [`MessageParser::set_framing`].
    AwaitFraming,
    BodyLength(u64),
    BodyChunked(Chunk),
    BodyClose,
    /// After an error or gap: skip until a segment starts a message.
    Resync,
    /// Not HTTP any more.
    Tunnel,
}

/// One step's outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The first byte of a message, captured at `ts`.
    Start { ts: u64 },
    /// The head is complete; call `set_framing` before feeding more.
    Head(Head),
    /// The message is complete: its last byte was captured at `ts`; `bytes` is its size on the
    /// wire (head, body, chunk framing).
    End { ts: u64, bytes: u64 },
    /// The message in progress is lost; the parser resynchronises.
    Error(ParseError),
}

/// Parser for one direction.
#[derive(Debug)]
pub struct MessageParser {
    state: State,
    /// A head split over segments, gathered. Boxed and absent otherwise (nearly always): an empty
    /// `Vec` is 24 bytes in both directions of every connection in the table, the box 8.
    #[expect(
        clippy::box_collection,
        reason = "8 bytes per direction instead of 24, see above"
    )]
    head: Option<Box<Vec<u8>>>,
    /// Bytes of the current message so far; after an error, of the failed message (until the
    /// next message starts).
    bytes: u64,
    /// Capture time of the last byte consumed.
    last_ts: u64,
}

impl Default for MessageParser {
    fn default() -> Self {
        Self {
            state: State::Idle,
            head: None,
            bytes: 0,
            last_ts: 0,
        }
    }
}

impl MessageParser {
    /// Bytes the message reported by the last [`Event::Error`] had consumed (it still crossed the
    /// wire and counts toward its exchange).
    pub fn failed_bytes(&self) -> u64 {
        self.bytes
    }

    /// Capture time of the last byte consumed.
    pub fn last_ts(&self) -> u64 {
        self.last_ts
    }

    /// In the middle of a message (its start seen, its end not yet)?
    pub fn in_message(&self) -> bool {
        !matches!(self.state, State::Idle | State::Resync | State::Tunnel)
    }

    /// Skipping bytes until a segment starts a message (after an error or a gap)?
    pub fn resyncing(&self) -> bool {
        self.state == State::Resync
    }

    /// Skips bytes until the start of a segment that begins a message.
    pub fn resync(&mut self) {
        self.state = State::Resync;
        self.head = None;
    }

    pub fn tunnel(&mut self) {
        self.state = State::Tunnel;
        self.head = None;
    }

    /// Sets the body framing of the message whose head was just returned. A message with no body
    /// ends here.
    pub fn set_framing(&mut self, f: Framing) -> Option<Event> {
        debug_assert_eq!(self.state, State::AwaitFraming);
        match f {
            Framing::None | Framing::Length(0) => {
                self.state = State::Idle;
                Some(self.end())
            }
            Framing::Length(n) => {
                self.state = State::BodyLength(n);
                None
            }
            Framing::Chunked => {
                self.state = State::BodyChunked(Chunk::Size {
                    value: 0,
                    digits: 0,
                });
                None
            }
            Framing::Close => {
                self.state = State::BodyClose;
                None
            }
        }
    }

    fn end(&mut self) -> Event {
        let e = Event::End {
            ts: self.last_ts,
            bytes: self.bytes,
        };
        self.bytes = 0;
        e
    }

    fn fail(&mut self, e: ParseError) -> Event {
        self.resync();
        Event::Error(e)
    }

    /// `at_segment_start`: `data` begins where a captured segment began (resynchronisation only
    /// happens there). Returns the bytes consumed and the event reached, if any; a request head's
    /// line goes in a buffer from `spare`.
    #[inline(always)]
    pub fn feed(
        &mut self,
        ts: u64,
        data: &[u8],
        at_segment_start: bool,
        spare: &mut SpareLines,
    ) -> (usize, Option<Event>) {
        if data.is_empty() {
            return (0, None);
        }
        match &mut self.state {
            State::Tunnel => (data.len(), None),
            State::Resync => {
                if at_segment_start && starts_message(data) {
                    self.state = State::Idle;
                    (0, None)
                } else {
                    (data.len(), None)
                }
            }
            State::Idle => {
                // Empty lines before a request line are tolerated (RFC 9112 2.2).
                let skip = data
                    .iter()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
                if skip > 0 {
                    return (skip, None);
                }
                if !starts_message(data) {
                    return (0, Some(self.fail(ParseError::BadHead)));
                }
                self.state = State::Head;
                self.head = None;
                self.bytes = 0;
                self.last_ts = ts;
                (0, Some(Event::Start { ts }))
            }
            State::Head => self.feed_head(ts, data, spare),
            State::AwaitFraming => (0, None),
            State::BodyLength(rem) => {
                let n = (*rem).min(data.len() as u64);
                *rem -= n;
                self.bytes += n;
                self.last_ts = ts;
                if *rem == 0 {
                    self.state = State::Idle;
                    (n as usize, Some(self.end()))
                } else {
                    (n as usize, None)
                }
            }
            State::BodyClose => {
                self.bytes += data.len() as u64;
                self.last_ts = ts;
                (data.len(), None)
            }
            State::BodyChunked(_) => self.feed_chunked(ts, data),
        }
    }

    fn feed_head(
        &mut self,
        ts: u64,
        data: &[u8],
        spare: &mut SpareLines,
    ) -> (usize, Option<Event>) {
        if self.head.is_none()
            && let Ok(Some((end, head))) = parse_head_prefix(data, spare)
            && end <= MAX_HEAD
        {
            // The whole head is in this segment, as it nearly always is: parse it where it lies,
            // in one pass that also finds its end. Anything else (a head split over segments, an
            // error) takes the general path below, which reports errors only at the head's end.
            self.bytes += end as u64;
            self.last_ts = ts;
            return self.parsed(end, Ok(head));
        }
        let buf = self.head.get_or_insert_default();
        let old = buf.len();
        let room = MAX_HEAD + 4 - old;
        let take = data.len().min(room);
        buf.extend_from_slice(&data[..take]);
        // The head ends at the first empty line; search only where it can newly appear.
        let from = old.saturating_sub(3);
        let end = find_head_end(&buf[from..]).map(|e| from + e);
        let Some(end) = end else {
            if buf.len() > MAX_HEAD {
                return (take, Some(self.fail(ParseError::HeadTooLarge)));
            }
            self.last_ts = ts;
            self.bytes += take as u64;
            return (take, None);
        };
        if end > MAX_HEAD {
            return (take, Some(self.fail(ParseError::HeadTooLarge)));
        }
        let used = end - old;
        buf.truncate(end);
        self.bytes += used as u64;
        self.last_ts = ts;
        let parsed = parse_head(buf, spare);
        // The head's buffer is not kept between messages: an idle connection (most of a big
        // table) then holds no buffer at all.
        self.head = None;
        self.parsed(used, parsed)
    }

    fn parsed(&mut self, used: usize, head: Result<Head, ParseError>) -> (usize, Option<Event>) {
        match head {
            Ok(h) => {
                self.state = State::AwaitFraming;
                (used, Some(Event::Head(h)))
            }
            Err(e) => (used, Some(self.fail(e))),
        }
    }

    /// Body bytes known to come next without being seen: what is left of a body of known
    /// length, or of the chunk being read. `None` outside a body (or in one that runs to the
    /// close, whose end the parser cannot see coming).
    pub fn body_ahead(&self) -> Option<u64> {
        match self.state {
            State::BodyLength(rem) | State::BodyChunked(Chunk::Data(rem)) => Some(rem),
            _ => None,
        }
    }

    /// `len` bytes of this direction were sent, and their segments captured without them (see
    /// [`crate::decode::Segment::uncaptured`]). Takes the ones that are body, counted as if
    /// seen; returns how many (from the first) it took, and the message's end if they ended it.
    /// The rest were something the parser needed: the caller reports them as a gap.
    pub fn skip(&mut self, len: u64, ts: u64) -> (u64, Option<Event>) {
        match &mut self.state {
            State::BodyLength(rem) => {
                let n = len.min(*rem);
                *rem -= n;
                self.bytes += n;
                self.last_ts = ts;
                if *rem == 0 {
                    self.state = State::Idle;
                    return (n, Some(self.end()));
                }
                (n, None)
            }
            State::BodyChunked(Chunk::Data(rem)) => {
                let n = len.min(*rem);
                *rem -= n;
                self.bytes += n;
                self.last_ts = ts;
                if *rem == 0 {
                    self.state = State::BodyChunked(Chunk::DataEnd { seen_cr: false });
                }
                (n, None)
            }
            State::BodyClose => {
                self.bytes += len;
                self.last_ts = ts;
                (len, None)
            }
            State::Tunnel => (len, None),
            _ => (0, None),
        }
    }

    /// `len` bytes of this direction were never captured.
    pub fn gap(&mut self, len: u64, ts: u64) -> Option<Event> {
        match &mut self.state {
            State::Tunnel | State::Resync => None,
            State::BodyClose => {
                self.bytes += len;
                None
            }
            // A body of known length survives a gap inside it, and one that ends inside a gap is
            // complete; only what follows it in the gap (the next message's start) is lost.
            State::BodyLength(rem) => {
                let n = len.min(*rem);
                *rem -= n;
                self.bytes += n;
                self.last_ts = ts;
                if *rem == 0 {
                    let e = self.end();
                    if len > n {
                        self.resync();
                    } else {
                        self.state = State::Idle;
                    }
                    return Some(e);
                }
                None
            }
            State::BodyChunked(Chunk::Data(rem)) if len <= *rem => {
                *rem -= len;
                self.bytes += len;
                if *rem == 0 {
                    self.state = State::BodyChunked(Chunk::DataEnd { seen_cr: false });
                }
                None
            }
            State::Idle => {
                // Whatever follows may be the middle of a message.
                self.resync();
                None
            }
            _ => Some(self.fail(ParseError::Gap)),
        }
    }

    /// The direction ended (FIN, reset, idle, end of capture). A close-delimited body ends here;
    /// any other message in progress is truncated.
    pub fn close(&mut self, clean: bool) -> Option<Event> {
        match self.state {
            State::BodyClose if clean => {
                self.state = State::Idle;
                Some(self.end())
            }
            State::Head
            | State::AwaitFraming
            | State::BodyLength(_)
            | State::BodyChunked(_)
            | State::BodyClose => Some(self.fail(ParseError::Truncated)),
            _ => None,
        }
    }
}

mod chunked;
#[cfg(test)]
mod tests;
