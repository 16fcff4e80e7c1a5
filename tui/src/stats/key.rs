//! Grouping keys: what an exchange is counted under.

use std::{fmt, str::FromStr};

use crate::{
    http::Exchange,
    text::{printable, printable_into},
};

/// Label for a request field that is absent.
pub const UNSPECIFIED: &str = "_unspecified";
/// Label for request-derived keys when the request was never seen.
pub const UNKNOWN: &str = "_unknown";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupKey {
    /// Server `IP:port` (`[v6]:port`).
    Server,
    /// Server port.
    Port,
    /// Client IP.
    Client,
    /// Host field as sent.
    Host,
    /// Target without the query; absolute-form targets reduced to their path.
    Path,
    /// The first N segments of the path.
    PathPrefix(usize),
    /// The first `NAME=` query parameter, percent-decoded.
    Query(String),
    Method,
    /// Status class `1xx`..`5xx`, or `none`.
    Status,
}

impl FromStr for GroupKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "server" => Self::Server,
            "port" => Self::Port,
            "client" => Self::Client,
            "host" => Self::Host,
            "path" => Self::Path,
            "method" => Self::Method,
            "status" => Self::Status,
            _ => {
                if let Some(n) = s.strip_prefix("path:") {
                    let n: usize = n
                        .parse()
                        .map_err(|_| format!("path:N needs a number, got {n:?}"))?;
                    if n == 0 {
                        return Err("path:N needs N >= 1".into());
                    }
                    Self::PathPrefix(n)
                } else if let Some(name) = s.strip_prefix("query:") {
                    if name.is_empty() {
                        return Err("query:NAME needs a parameter name".into());
                    }
                    Self::Query(name.to_owned())
                } else {
                    return Err(format!(
                        "unknown grouping key {s:?}: use server, port, client, host, path, path:N, \
                         query:NAME, method or status"
                    ));
                }
            }
        })
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server => f.write_str("server"),
            Self::Port => f.write_str("port"),
            Self::Client => f.write_str("client"),
            Self::Host => f.write_str("host"),
            Self::Path => f.write_str("path"),
            Self::PathPrefix(n) => write!(f, "path:{n}"),
            Self::Query(q) => write!(f, "query:{q}"),
            Self::Method => f.write_str("method"),
            Self::Status => f.write_str("status"),
        }
    }
}

impl GroupKey {
    /// The keys a user can switch between by default, with `first` in front.
    pub fn standard_set(first: &Self) -> Vec<Self> {
        let mut keys = vec![first.clone()];
        for k in [
            Self::Server,
            Self::Port,
            Self::Client,
            Self::Host,
            Self::Path,
            Self::PathPrefix(1),
            Self::Query("s".into()),
            Self::Method,
            Self::Status,
        ] {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        keys
    }

    /// The group an exchange belongs to under this key, printable (bytes from the wire escaped).
    pub fn label(&self, e: &Exchange) -> String {
        let mut s = String::new();
        self.write_label(e, &mut s);
        s
    }

    /// [`Self::label`], appended to `out`: every exchange is labelled under every key, and a
    /// reused buffer spares an allocation each time.
    pub fn write_label(&self, e: &Exchange, out: &mut String) {
        use std::fmt::Write;
        match self {
            Self::Server => {
                let _ = write!(out, "{}", e.server);
            }
            Self::Port => {
                let _ = write!(out, "{}", e.server.port());
            }
            Self::Client => {
                let _ = write!(out, "{}", e.client.ip());
            }
            Self::Status => match e.status {
                None => out.push_str("none"),
                Some(s) => {
                    let _ = write!(out, "{}xx", (s / 100).clamp(1, 5));
                }
            },
            Self::Host | Self::Path | Self::PathPrefix(_) | Self::Query(_) | Self::Method => {
                let Some(line) = e.request.as_ref().filter(|_| e.request_seen) else {
                    out.push_str(UNKNOWN);
                    return;
                };
                let target = line.target();
                match self {
                    Self::Host => match line.host() {
                        Some(h) => printable_into(h, out),
                        None => out.push_str(UNSPECIFIED),
                    },
                    Self::Method => printable_into(line.method(), out),
                    Self::Path => printable_into(path_of(target), out),
                    Self::PathPrefix(n) => printable_into(path_prefix(path_of(target), *n), out),
                    Self::Query(name) => out.push_str(&query_param(target, name)),
                    _ => unreachable!("outer match"),
                }
            }
        }
    }
}

/// The path of a request target (RFC 9112 3.2): origin-form up to `?` (and `#`, which clients should
/// not send but some do); absolute-form reduced to its path; authority-form and `*` as they are.
pub fn path_of(target: &[u8]) -> &[u8] {
    let mut t = target;
    for scheme in [&b"http://"[..], b"https://"] {
        if t.get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        {
            let rest = &t[scheme.len()..];
            t = match rest.iter().position(|&b| b == b'/' || b == b'?') {
                Some(i) if rest[i] == b'/' => &rest[i..],
                _ => b"/",
            };
            break;
        }
    }
    let end = t
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(t.len());
    &t[..end]
}

/// The first `n` segments of a path: `/a/b/c` with 2 is `/a/b`.
pub fn path_prefix(path: &[u8], n: usize) -> &[u8] {
    if !path.starts_with(b"/") {
        return path;
    }
    let mut seen = 0;
    for (i, &b) in path.iter().enumerate().skip(1) {
        if b == b'/' {
            seen += 1;
            if seen == n {
                return &path[..i];
            }
        }
    }
    path
}

/// The first `name=` parameter of the target's query, form-decoded (`+` is a space, `%xx` a byte);
/// [`UNSPECIFIED`] when there is none.
pub fn query_param(target: &[u8], name: &str) -> String {
    let Some(q) = target
        .iter()
        .position(|&b| b == b'?')
        .map(|i| &target[i + 1..])
    else {
        return UNSPECIFIED.to_owned();
    };
    let q = &q[..q.iter().position(|&b| b == b'#').unwrap_or(q.len())];
    url::form_urlencoded::parse(q)
        .find(|(k, _)| k == name)
        .map_or_else(|| UNSPECIFIED.to_owned(), |(_, v)| printable(v.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(path_of(b"/a/b?x=1"), b"/a/b");
        assert_eq!(path_of(b"HTTP://Example.com:8080/p/q?z"), b"/p/q");
        assert_eq!(path_of(b"http://example.com"), b"/");
        assert_eq!(path_of(b"http://example.com?x"), b"/");
        assert_eq!(path_of(b"*"), b"*");
        assert_eq!(path_of(b"example.com:443"), b"example.com:443");
        assert_eq!(path_of(b"/frag#x"), b"/frag");
        assert_eq!(path_prefix(b"/a/b/c", 1), b"/a");
        assert_eq!(path_prefix(b"/a/b/c", 2), b"/a/b");
        assert_eq!(path_prefix(b"/a/b/c", 5), b"/a/b/c");
        assert_eq!(path_prefix(b"/", 1), b"/");
        assert_eq!(path_prefix(b"/a/", 1), b"/a");
    }

    #[test]
    fn query_params_decode_and_distinguish_absent_from_empty() {
        assert_eq!(query_param(b"/search?s=red+shoes&s=x", "s"), "red shoes");
        assert_eq!(query_param(b"/?q=1&s=", "s"), "");
        assert_eq!(query_param(b"/?q=1", "s"), UNSPECIFIED);
        assert_eq!(query_param(b"/plain", "s"), UNSPECIFIED);
        assert_eq!(query_param(b"/?s=%41%42%zz", "s"), "AB%zz");
        // Decoded control bytes are escaped, never emitted raw.
        assert_eq!(query_param(b"/?s=%1b%5b2J", "s"), "\\x1b[2J");
    }

    #[test]
    fn keys_parse_and_print() {
        for k in [
            "server", "port", "client", "host", "path", "path:3", "query:s", "method", "status",
        ] {
            assert_eq!(k.parse::<GroupKey>().unwrap().to_string(), k);
        }
        assert!("path:0".parse::<GroupKey>().is_err());
        assert!("query:".parse::<GroupKey>().is_err());
        assert!("bogus".parse::<GroupKey>().is_err());
    }
}
