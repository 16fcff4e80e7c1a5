//! Grouping keys: what an exchange is counted under.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use super::OTHER;
use crate::{
    owner::{self, Owner},
    proto::{Exchange, Grpc, Protocol},
    text::printable,
};

/// Label for a request field that is absent.
pub const UNSPECIFIED: &str = "_unspecified";
/// Label for request-derived keys when the request was never seen.
pub const UNKNOWN: &str = "_unknown";
/// Label for request-derived keys when the request's bytes were not HTTP.
pub const UNPARSABLE: &str = "_unparsable";

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
    /// The path with identifiers replaced ([`super::route`]).
    Route,
    /// Target without the query; absolute-form targets reduced to their path.
    Path,
    /// The first N segments of the path.
    PathPrefix(usize),
    /// The first `NAME=` query parameter, percent-decoded.
    Query(String),
    Method,
    /// Status class `1xx`..`5xx`, or `none`.
    Status,
    /// The protocol: `HTTP/1.0`, `HTTP/1.1`, `h2c` (HTTP/2 over cleartext), `grpc`.
    Proto,
    /// A gRPC call's status code name (`OK`, `NOT_FOUND`...), `none` when it ended with no
    /// status on the wire; `_unspecified` for what is not gRPC.
    Grpc,
    /// The process holding the server's listening socket, `comm[pid]` (see [`crate::owner`]).
    Process,
    /// The server's container, named network namespace, or `host`.
    Container,
    /// The process holding the client's connected socket.
    ClientProcess,
    /// The client's container, named network namespace, or `host`.
    ClientContainer,
}

/// The gRPC status codes' names, by code (the gRPC spec's `statuscodes.md`).
pub const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

impl FromStr for GroupKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "server" => Self::Server,
            "port" => Self::Port,
            "client" => Self::Client,
            "host" => Self::Host,
            "route" => Self::Route,
            "path" => Self::Path,
            "method" => Self::Method,
            "status" => Self::Status,
            "proto" => Self::Proto,
            "grpc" => Self::Grpc,
            "process" => Self::Process,
            "container" => Self::Container,
            "client-process" => Self::ClientProcess,
            "client-container" => Self::ClientContainer,
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
                        "unknown grouping key {s:?}: use server, port, client, host, route, path, \
                         path:N, query:NAME, method, status, proto, grpc, process, container, \
                         client-process or client-container"
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
            Self::Route => f.write_str("route"),
            Self::Path => f.write_str("path"),
            Self::PathPrefix(n) => write!(f, "path:{n}"),
            Self::Query(q) => write!(f, "query:{q}"),
            Self::Method => f.write_str("method"),
            Self::Status => f.write_str("status"),
            Self::Proto => f.write_str("proto"),
            Self::Grpc => f.write_str("grpc"),
            Self::Process => f.write_str("process"),
            Self::Container => f.write_str("container"),
            Self::ClientProcess => f.write_str("client-process"),
            Self::ClientContainer => f.write_str("client-container"),
        }
    }
}

impl GroupKey {
    /// The keys a user can switch between by default, with `first` in front; the four name keys
    /// only when names are looked up (`names`).
    pub fn standard_set(first: &Self, names: bool) -> Vec<Self> {
        let mut keys = vec![first.clone()];
        let name_keys = [
            Self::Process,
            Self::Container,
            Self::ClientProcess,
            Self::ClientContainer,
        ];
        for k in [
            Self::Server,
            Self::Port,
            Self::Client,
            Self::Host,
            Self::Route,
            Self::Path,
            Self::PathPrefix(1),
            Self::Query("s".into()),
            Self::Method,
            Self::Status,
            Self::Proto,
            Self::Grpc,
        ]
        .into_iter()
        .chain(name_keys.into_iter().filter(|_| names))
        {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        keys
    }

    /// The group an exchange belongs to under this key, printable (bytes from the wire escaped).
    pub fn label(&self, e: &Exchange) -> String {
        let mut raw = Vec::new();
        self.write_raw(e, &mut raw);
        self.display(&raw)
    }

    /// The group of `e` in its raw form, appended to `out`: a tag byte, then the value as it came
    /// (address octets and port, status class, wire bytes, a decoded query value). Aggregation keys
    /// groups by this, and only [`Self::display`] turns it into text: nothing is formatted or
    /// escaped per exchange (formatting addresses and escaping labels was a tenth of a run).
    pub fn write_raw(&self, e: &Exchange, out: &mut Vec<u8>) {
        let ip = |out: &mut Vec<u8>, ip: IpAddr| match ip {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        };
        match self {
            Self::Server => {
                out.push(TAG_VALUE);
                ip(out, e.server.ip());
                out.extend_from_slice(&e.server.port().to_be_bytes());
            }
            Self::Port => {
                out.push(TAG_VALUE);
                out.extend_from_slice(&e.server.port().to_be_bytes());
            }
            Self::Client => {
                out.push(TAG_VALUE);
                ip(out, e.client.ip());
            }
            Self::Status => {
                out.push(TAG_VALUE);
                out.push(e.status.map_or(0, |s| (s / 100).clamp(1, 5) as u8));
            }
            Self::Proto => {
                out.push(TAG_VALUE);
                out.push(match (e.protocol, e.grpc) {
                    (_, Grpc::NoStatus | Grpc::Status(_)) => PROTO_GRPC,
                    (Protocol::Http2, Grpc::No) => PROTO_H2C,
                    (p, Grpc::No) => p as u8,
                });
            }
            Self::Process | Self::ClientProcess | Self::Container | Self::ClientContainer => {
                out.push(TAG_VALUE);
                let owner = if matches!(self, Self::Process | Self::Container) {
                    &e.server_owner
                } else {
                    &e.client_owner
                };
                let process = matches!(self, Self::Process | Self::ClientProcess);
                match owner.as_deref() {
                    None => out.push(OWNER_UNRESOLVED),
                    Some(Owner::Remote) => out.push(OWNER_REMOTE),
                    Some(Owner::Local { process: None, .. }) if process => {
                        out.push(OWNER_UNKNOWN);
                    }
                    Some(Owner::Local {
                        process: Some(p), ..
                    }) if process => {
                        out.push(OWNER_NAMED);
                        out.extend_from_slice(&p.pid.to_be_bytes());
                        out.extend_from_slice(p.comm.as_bytes());
                    }
                    Some(Owner::Local { container, .. }) => {
                        out.push(OWNER_NAMED);
                        out.extend_from_slice(container.as_bytes());
                    }
                }
            }
            Self::Grpc => match e.grpc {
                Grpc::No => out.push(TAG_UNSPECIFIED),
                Grpc::NoStatus => out.extend_from_slice(&[TAG_VALUE, 0xff, 0xff]),
                Grpc::Status(c) => {
                    out.push(TAG_VALUE);
                    out.extend_from_slice(&c.to_be_bytes());
                }
            },
            Self::Host
            | Self::Route
            | Self::Path
            | Self::PathPrefix(_)
            | Self::Query(_)
            | Self::Method => {
                if e.unparsable {
                    out.push(TAG_UNPARSABLE);
                    return;
                }
                let Some(line) = e.request.as_ref().filter(|_| e.request_seen) else {
                    out.push(TAG_UNKNOWN);
                    return;
                };
                let target = line.target();
                // A decoded query value may be a new string; it lives here.
                let query;
                let value = match self {
                    Self::Host => line.host(),
                    // Decided by the session's router; absent when none ran (unit tests).
                    Self::Route => e.route.as_deref().map(str::as_bytes),
                    Self::Method => Some(line.method()),
                    Self::Path => Some(path_of(target)),
                    Self::PathPrefix(n) => Some(path_prefix(path_of(target), *n)),
                    Self::Query(name) => {
                        query = query_param(target, name);
                        query.as_deref().map(str::as_bytes)
                    }
                    _ => unreachable!("outer match"),
                };
                match value {
                    Some(v) => {
                        out.push(TAG_VALUE);
                        out.extend_from_slice(v);
                    }
                    None => out.push(TAG_UNSPECIFIED),
                }
            }
        }
    }

    /// The label of a group in its raw form (from [`Self::write_raw`]), printable.
    pub fn display(&self, raw: &[u8]) -> String {
        let Some((&tag, v)) = raw.split_first() else {
            return OTHER.to_owned();
        };
        match tag {
            TAG_UNKNOWN => return UNKNOWN.to_owned(),
            TAG_UNSPECIFIED => return UNSPECIFIED.to_owned(),
            TAG_OTHER => return OTHER.to_owned(),
            TAG_UNPARSABLE => return UNPARSABLE.to_owned(),
            _ => {}
        }
        let ip = |o: &[u8]| -> IpAddr {
            match <[u8; 4]>::try_from(o) {
                Ok(a) => IpAddr::from(a),
                Err(_) => IpAddr::from(<[u8; 16]>::try_from(o).unwrap_or_default()),
            }
        };
        let port = |p: &[u8]| u16::from_be_bytes([p[0], p[1]]);
        match self {
            Self::Server if v.len() >= 2 => {
                let (a, p) = v.split_at(v.len() - 2);
                SocketAddr::new(ip(a), port(p)).to_string()
            }
            Self::Port if v.len() == 2 => port(v).to_string(),
            Self::Client => ip(v).to_string(),
            Self::Status => match v.first() {
                Some(&c @ 1..=5) => format!("{c}xx"),
                _ => "none".to_owned(),
            },
            Self::Proto => match v.first() {
                Some(&PROTO_H2C) => "h2c".to_owned(),
                Some(&PROTO_GRPC) => "grpc".to_owned(),
                Some(&p) if p == Protocol::Http10 as u8 => Protocol::Http10.as_str().to_owned(),
                _ => Protocol::Http11.as_str().to_owned(),
            },
            Self::Grpc => match v {
                [0xff, 0xff] => "none".to_owned(),
                [a, b] => {
                    let c = u16::from_be_bytes([*a, *b]);
                    GRPC_CODES
                        .get(usize::from(c))
                        .map_or_else(|| c.to_string(), |n| (*n).to_owned())
                }
                _ => "none".to_owned(),
            },
            Self::Process | Self::ClientProcess | Self::Container | Self::ClientContainer => {
                match v.split_first() {
                    Some((&OWNER_REMOTE, _)) => owner::REMOTE.to_owned(),
                    Some((&OWNER_UNKNOWN, _)) => owner::UNKNOWN.to_owned(),
                    // Names were made printable when found.
                    Some((&OWNER_NAMED, rest)) => match self {
                        Self::Process | Self::ClientProcess if rest.len() >= 4 => {
                            let (pid, comm) = rest.split_at(4);
                            let pid = u32::from_be_bytes([pid[0], pid[1], pid[2], pid[3]]);
                            format!("{}[{pid}]", String::from_utf8_lossy(comm))
                        }
                        _ => String::from_utf8_lossy(rest).into_owned(),
                    },
                    _ => owner::UNRESOLVED.to_owned(),
                }
            }
            _ => printable(v),
        }
    }
}

/// Tags of a raw group: a value follows, or one of the special groups.
const TAG_VALUE: u8 = 0;
const TAG_UNKNOWN: u8 = 1;
const TAG_UNSPECIFIED: u8 = 2;
const TAG_OTHER: u8 = 3;
const TAG_UNPARSABLE: u8 = 4;

/// What follows [`TAG_VALUE`] in a process or container group's raw form.
const OWNER_UNRESOLVED: u8 = 0;
const OWNER_REMOTE: u8 = 1;
const OWNER_UNKNOWN: u8 = 2;
const OWNER_NAMED: u8 = 3;

/// Raw `proto` groups beyond the [`Protocol`] values.
const PROTO_H2C: u8 = 0xfe;
const PROTO_GRPC: u8 = 0xfd;

/// The raw form of the overflow group, under every key.
pub const RAW_OTHER: &[u8] = &[TAG_OTHER];

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
/// `None` when there is none.
pub fn query_param<'a>(target: &'a [u8], name: &str) -> Option<std::borrow::Cow<'a, str>> {
    let q = &target[target.iter().position(|&b| b == b'?')? + 1..];
    let q = &q[..q.iter().position(|&b| b == b'#').unwrap_or(q.len())];
    url::form_urlencoded::parse(q)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
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
        let q = |t: &[u8]| query_param(t, "s").map(|v| v.into_owned());
        assert_eq!(q(b"/search?s=red+shoes&s=x").as_deref(), Some("red shoes"));
        assert_eq!(q(b"/?q=1&s=").as_deref(), Some(""));
        assert_eq!(q(b"/?q=1"), None);
        assert_eq!(q(b"/plain"), None);
        assert_eq!(q(b"/?s=%41%42%zz").as_deref(), Some("AB%zz"));
        // Decoded control bytes are escaped in the label, never emitted raw.
        let k = GroupKey::Query("s".into());
        assert_eq!(k.display(&[TAG_VALUE, 0x1b, b'[', b'2', b'J']), "\\x1b[2J");
        assert_eq!(k.display(&[TAG_UNSPECIFIED]), UNSPECIFIED);
    }

    #[test]
    fn keys_parse_and_print() {
        for k in [
            "server",
            "port",
            "client",
            "host",
            "route",
            "path",
            "path:3",
            "query:s",
            "method",
            "status",
            "proto",
            "grpc",
            "process",
            "container",
            "client-process",
            "client-container",
        ] {
            assert_eq!(k.parse::<GroupKey>().unwrap().to_string(), k);
        }
        assert!("path:0".parse::<GroupKey>().is_err());
        assert!("query:".parse::<GroupKey>().is_err());
        assert!("bogus".parse::<GroupKey>().is_err());
    }
}
