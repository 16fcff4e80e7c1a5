//! What a head says about the message after it: a request's body, and a response's (RFC 9112
//! section 6.3, which depends on the request it answers).

use super::{
    Http1Conn,
    pairing::{H2C, HTTP10, INTERIM, TUNNEL},
    parser::{Framing, Head},
};
use crate::proto::RequestLine;

impl Http1Conn {
    pub(super) fn request_head(&mut self, head: Head) -> Option<Framing> {
        let line = head.request?;
        let p = self.pending.back_mut()?;
        let connect = line.method() == b"CONNECT";
        p.line = Some(line);
        p.minor = head.minor;
        // RFC 9112 6.3: a request's body is chunked or Content-Length long, else empty; a CONNECT's
        // bytes after the head are the tunnel's, not a body.
        Some(if connect {
            Framing::None
        } else if head.chunked {
            Framing::Chunked
        } else {
            head.content_length.map_or(Framing::None, Framing::Length)
        })
    }

    pub(super) fn response_head(&mut self, head: Head) -> Option<Framing> {
        if head.request.is_some() {
            return None;
        }
        let status = head.status;
        let method = self
            .pending
            .front()
            .and_then(|p| p.line.as_ref())
            .map(RequestLine::method);
        self.response.status = status;
        self.response.set(HTTP10, head.minor == 0);
        let interim = (100..200).contains(&status) && status != 101;
        self.response.set(INTERIM, interim);
        // RFC 9112 6.3, in order.
        Some(
            if interim || method == Some(b"HEAD") || status == 204 || status == 304 {
                Framing::None
            } else if status == 101 || (method == Some(b"CONNECT") && (200..300).contains(&status))
            {
                self.response.set(TUNNEL, true);
                self.response.set(H2C, status == 101 && head.upgrade_h2c);
                Framing::None
            } else if head.chunked {
                Framing::Chunked
            } else if head.has_te {
                Framing::Close
            } else if let Some(n) = head.content_length {
                Framing::Length(n)
            } else {
                Framing::Close
            },
        )
    }
}
