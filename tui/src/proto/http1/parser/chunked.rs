//! Chunked transfer coding (RFC 9112 7.1): sizes, extensions, data, trailers; framing bytes
//! count toward the message, nothing of it is kept.

use super::{Chunk, Event, MessageParser, ParseError, State};

impl MessageParser {
    pub(super) fn feed_chunked(&mut self, ts: u64, data: &[u8]) -> (usize, Option<Event>) {
        let State::BodyChunked(mut st) = self.state.clone() else {
            unreachable!()
        };
        self.last_ts = ts;
        let mut i = 0;
        while i < data.len() {
            if let Chunk::Data(rem) = st {
                let n = rem.min((data.len() - i) as u64);
                i += n as usize;
                st = if rem == n {
                    Chunk::DataEnd { seen_cr: false }
                } else {
                    Chunk::Data(rem - n)
                };
                continue;
            }
            let b = data[i];
            i += 1;
            st = match st {
                Chunk::Size { value, digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let d = u64::from((b as char).to_digit(16).expect("hex digit"));
                        // About 2^63 at most: anything larger is an attack or a bug, not a body.
                        if value >= 1 << 59 {
                            self.bytes += i as u64;
                            return (i, Some(self.fail(ParseError::BadChunk)));
                        }
                        Chunk::Size {
                            value: value * 16 + d,
                            digits: digits + 1,
                        }
                    }
                    b';' | b' ' | b'\t' | b'\r' if digits > 0 => Chunk::Ext { value },
                    b'\n' if digits > 0 => chunk_after_size(value),
                    _ => {
                        self.bytes += i as u64;
                        return (i, Some(self.fail(ParseError::BadChunk)));
                    }
                },
                Chunk::Ext { value } => {
                    if b == b'\n' {
                        chunk_after_size(value)
                    } else {
                        Chunk::Ext { value }
                    }
                }
                Chunk::DataEnd { seen_cr } => match (b, seen_cr) {
                    (b'\r', false) => Chunk::DataEnd { seen_cr: true },
                    (b'\n', _) => Chunk::Size {
                        value: 0,
                        digits: 0,
                    },
                    _ => {
                        self.bytes += i as u64;
                        return (i, Some(self.fail(ParseError::BadChunk)));
                    }
                },
                Chunk::TrailerLineStart => match b {
                    b'\r' => Chunk::FinalLf,
                    b'\n' => {
                        self.bytes += i as u64;
                        self.state = State::Idle;
                        return (i, Some(self.end()));
                    }
                    _ => Chunk::TrailerLine,
                },
                Chunk::TrailerLine => {
                    if b == b'\n' {
                        Chunk::TrailerLineStart
                    } else {
                        Chunk::TrailerLine
                    }
                }
                Chunk::FinalLf => {
                    if b == b'\n' {
                        self.bytes += i as u64;
                        self.state = State::Idle;
                        return (i, Some(self.end()));
                    }
                    self.bytes += i as u64;
                    return (i, Some(self.fail(ParseError::BadChunk)));
                }
                Chunk::Data(_) => unreachable!("handled above"),
            };
        }
        self.bytes += i as u64;
        self.state = State::BodyChunked(st);
        (i, None)
    }
}

fn chunk_after_size(value: u64) -> Chunk {
    if value == 0 {
        Chunk::TrailerLineStart
    } else {
        Chunk::Data(value)
    }
}
