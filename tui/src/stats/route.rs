//! Routes: a request's path with its identifiers replaced, `/api/users/123` → `/api/users/{id}`,
//! so that a service's endpoints are a handful of groups (and metric series) instead of one per
//! user, order or file.
//!
//! The rule, in order:
//! 1. The user's patterns (`--route`, `--routes FILE`), first match wins: `{name}` matches one
//!    segment, a last segment `*` matches the rest (none or more); the route is the pattern as
//!    written.
//! 2. Otherwise each segment of the path in turn becomes `{id}` when it looks like an identifier
//!    ([`is_identifier`]), else stays as it is, unless its parent already has [`Limits::children`]
//!    other literal children: then it becomes `{other}` (a tree level collapses past a cap, so a
//!    directory of ten thousand file names is not ten thousand routes). Names with dots
//!    (`hello.world`, `v1.2`, `app.js`) and plain words are never identifiers.
//! 3. A path deeper than [`Limits::depth`] segments ends in `/*`; the query is never part of a
//!    route.
//!
//! A route is decided once per path and never changes: a parent's children only grow, and a child
//! refused once is refused for good. So the route of every exchange is decided in one place (the
//! session's loop, [`Router::route`]), and every output sees the same one.

use std::{collections::HashMap, sync::Arc};

/// One user pattern, split into segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// As written: the route's name.
    text: Arc<str>,
    segments: Vec<Segment>,
    /// Ends in `*`: matches any rest of the path.
    rest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<[u8]>),
    /// `{name}`: any one non-empty segment.
    Param,
}

impl std::str::FromStr for Pattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let Some(body) = s.strip_prefix('/') else {
            return Err(format!("a route pattern starts with /, got {s:?}"));
        };
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "a route pattern has no spaces or control characters: {s:?}"
            ));
        }
        let mut parts: Vec<&str> = body.split('/').collect();
        let rest = parts.last() == Some(&"*");
        if rest {
            parts.pop();
        }
        let mut segments = Vec::with_capacity(parts.len());
        for p in parts {
            if p.contains('*') {
                return Err(format!(
                    "in route pattern {s:?}: * may only be the last segment"
                ));
            }
            segments.push(
                match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) if !name.is_empty() && !name.contains(['{', '}']) => Segment::Param,
                    Some(_) => return Err(format!("in route pattern {s:?}: {{}} needs a name")),
                    None if p.contains(['{', '}']) => {
                        return Err(format!(
                            "in route pattern {s:?}: a {{name}} is a whole segment ({p:?})"
                        ));
                    }
                    None => Segment::Literal(p.as_bytes().into()),
                },
            );
        }
        Ok(Self {
            text: s.into(),
            segments,
            rest,
        })
    }
}

impl Pattern {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` (starting with `/`) matches.
    fn matches(&self, path: &[u8]) -> bool {
        let Some(body) = path.strip_prefix(b"/") else {
            return false;
        };
        let mut parts = body.split(|&b| b == b'/');
        for seg in &self.segments {
            match (seg, parts.next()) {
                (Segment::Literal(l), Some(p)) if **l == *p => {}
                (Segment::Param, Some(p)) if !p.is_empty() => {}
                _ => return false,
            }
        }
        self.rest || parts.next().is_none()
    }
}

/// The bounds of automatic routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Distinct literal children one parent keeps; further ones are `{other}`.
    pub children: usize,
    /// Literal segments kept over all parents; past it every new one is `{other}`.
    pub nodes: usize,
    /// Segments kept; a deeper path ends in `/*`.
    pub depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            children: 64,
            nodes: 10_000,
            depth: 16,
        }
    }
}

/// What decides routes: the user's patterns and the automatic rule's bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteConfig {
    pub patterns: Vec<Pattern>,
    pub limits: Limits,
}

impl RouteConfig {
    /// Patterns from a file, one per line; blank lines and lines starting with `#` are skipped.
    pub fn read_patterns(path: &std::path::Path) -> anyhow::Result<Vec<Pattern>> {
        use anyhow::Context as _;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read route patterns from {}", path.display()))?;
        text.lines()
            .enumerate()
            .map(|(i, l)| (i, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .map(|(i, l)| {
                l.parse()
                    .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))
            })
            .collect()
    }
}

/// Label of a segment that looks like an identifier.
pub const ID: &str = "{id}";
/// Label of a literal segment past its parent's (or the tree's) cap.
pub const OTHER_SEGMENT: &str = "{other}";
/// Most paths whose route is remembered; the memory is forgotten when full.
const CACHE: usize = 4096;

/// The literal children one parent has kept.
type Children = Vec<Box<[u8]>>;

/// Decides the route of each path; see the module's documentation for the rule.
#[derive(Debug)]
pub struct Router {
    config: RouteConfig,
    /// Literal children of each parent, by the parent's route so far (`""` is the root).
    children: HashMap<Box<[u8]>, Children, foldhash::fast::RandomState>,
    nodes: usize,
    /// Routes of recent paths (most traffic is a few paths): no splitting, no allocation.
    cache: HashMap<Box<[u8]>, Arc<str>, foldhash::fast::RandomState>,
    /// Every distinct route handed out, so exchanges share one allocation each.
    names: HashMap<Box<str>, Arc<str>, foldhash::fast::RandomState>,
}

impl Router {
    pub fn new(config: RouteConfig) -> Self {
        Self {
            config,
            children: HashMap::default(),
            nodes: 0,
            cache: HashMap::default(),
            names: HashMap::default(),
        }
    }

    /// The route of `path` (a request target's path, `/` first; anything else is its own route).
    pub fn route(&mut self, path: &[u8]) -> Arc<str> {
        if let Some(r) = self.cache.get(path) {
            return Arc::clone(r);
        }
        let route = match self.config.patterns.iter().find(|p| p.matches(path)) {
            Some(p) => Arc::clone(&p.text),
            None => {
                let r = self.automatic(path);
                self.intern(r)
            }
        };
        if self.cache.len() >= CACHE {
            self.cache.clear();
        }
        self.cache.insert(path.into(), Arc::clone(&route));
        route
    }

    fn intern(&mut self, r: String) -> Arc<str> {
        if let Some(a) = self.names.get(r.as_str()) {
            return Arc::clone(a);
        }
        let a: Arc<str> = r.as_str().into();
        // Distinct routes are bounded by the tree's caps; this keeps the table bounded all the same.
        if self.names.len() < 4 * self.config.limits.nodes {
            self.names.insert(r.into_boxed_str(), Arc::clone(&a));
        }
        a
    }

    fn automatic(&mut self, path: &[u8]) -> String {
        let Some(body) = path.strip_prefix(b"/") else {
            return crate::text::printable(path);
        };
        let limits = self.config.limits;
        let mut route = String::with_capacity(path.len());
        for (depth, seg) in body.split(|&b| b == b'/').enumerate() {
            if depth == limits.depth {
                route.push_str("/*");
                break;
            }
            route.push('/');
            if is_identifier(seg) {
                route.push_str(ID);
                continue;
            }
            let parent = route.as_bytes()[..route.len() - 1].to_vec();
            let kids = self.children.entry(parent.into()).or_default();
            let known = kids.iter().any(|k| **k == *seg);
            if known || (kids.len() < limits.children && self.nodes < limits.nodes) {
                if !known {
                    kids.push(seg.into());
                    self.nodes += 1;
                }
                route.push_str(&crate::text::printable(seg));
            } else {
                route.push_str(OTHER_SEGMENT);
            }
        }
        route
    }
}

/// Whether a path segment looks like an identifier: all digits (with `-` or `_` between, as in
/// dates); a UUID; 16 or more hex digits; or a token of 12 or more letters, digits, `-` and `_`
/// with at least one letter and two digits. A segment with a dot never is (`app.js`, `v1.2`,
/// `hello.world`), nor a plain word.
pub fn is_identifier(seg: &[u8]) -> bool {
    if seg.is_empty() || seg.contains(&b'.') {
        return false;
    }
    let digits = seg.iter().filter(|b| b.is_ascii_digit()).count();
    let letters = seg.iter().filter(|b| b.is_ascii_alphabetic()).count();
    let token = seg
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !token {
        return false;
    }
    let numeric = digits > 0 && letters == 0;
    let hex = seg.len() >= 16 && seg.iter().all(u8::is_ascii_hexdigit);
    numeric || hex || is_uuid(seg) || (seg.len() >= 12 && letters >= 1 && digits >= 2)
}

fn is_uuid(seg: &[u8]) -> bool {
    seg.len() == 36
        && seg.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(paths: &[&str]) -> Vec<String> {
        let mut r = Router::new(RouteConfig::default());
        paths
            .iter()
            .map(|p| r.route(p.as_bytes()).to_string())
            .collect()
    }

    #[test]
    fn identifiers_become_id_and_names_stay() {
        assert_eq!(
            auto(&[
                "/api/users/123",
                "/api/users/124/orders/9f86d081884c7d65",
                "/files/123e4567-e89b-12d3-a456-426614174000",
                "/s/aZ9kQ2xR7pLm",
                "/days/2024-01-15",
                "/api/hello.world",
                "/static/app.v2.js",
                "/v1/health",
                "/api/v2/status",
                "/sha256sum",
                "/",
                "/a//b",
            ]),
            [
                "/api/users/{id}",
                "/api/users/{id}/orders/{id}",
                "/files/{id}",
                "/s/{id}",
                "/days/{id}",
                "/api/hello.world",
                "/static/app.v2.js",
                "/v1/health",
                "/api/v2/status",
                "/sha256sum",
                "/",
                "/a//b",
            ]
        );
        for word in ["users", "deadbeef", "iphone15", "café"] {
            assert!(!is_identifier(word.as_bytes()), "{word}");
        }
    }

    #[test]
    fn a_parent_with_too_many_children_collapses_the_new_ones() {
        let mut r = Router::new(RouteConfig {
            patterns: Vec::new(),
            limits: Limits {
                children: 3,
                ..Limits::default()
            },
        });
        let routes: Vec<String> = ["a", "b", "c", "d", "e", "a", "d"]
            .iter()
            .map(|n| r.route(format!("/files/{n}.txt").as_bytes()).to_string())
            .collect();
        assert_eq!(
            routes,
            [
                "/files/a.txt",
                "/files/b.txt",
                "/files/c.txt",
                "/files/{other}",
                "/files/{other}",
                "/files/a.txt",
                // Refused once, refused for good: a route never changes.
                "/files/{other}",
            ]
        );
        // The cap is per parent: another directory has its own.
        assert_eq!(&*r.route(b"/img/x.png"), "/img/x.png");
        // Identifiers do not use up a parent's room.
        assert_eq!(&*r.route(b"/files/42"), "/files/{id}");
    }

    #[test]
    fn the_tree_and_the_depth_are_bounded() {
        let mut r = Router::new(RouteConfig {
            patterns: Vec::new(),
            limits: Limits {
                children: 1000,
                nodes: 10,
                depth: 3,
            },
        });
        for i in 0..10 {
            assert_eq!(&*r.route(format!("/n{i}x").as_bytes()), format!("/n{i}x"));
        }
        assert_eq!(&*r.route(b"/eleventh"), "/{other}");
        assert_eq!(&*r.route(b"/n1x/b/c/d/e"), "/n1x/{other}/{other}/*");
        assert_eq!(r.nodes, 10);
    }

    #[test]
    fn user_patterns_come_first_and_name_the_route() {
        let patterns = ["/users/{id}/avatar", "/users/{user}", "/assets/*", "/exact"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let mut r = Router::new(RouteConfig {
            patterns,
            limits: Limits::default(),
        });
        let mut route = |p: &str| r.route(p.as_bytes()).to_string();
        assert_eq!(route("/users/alice/avatar"), "/users/{id}/avatar");
        assert_eq!(route("/users/alice"), "/users/{user}");
        assert_eq!(route("/users/"), "/users/");
        assert_eq!(route("/assets"), "/assets/*");
        assert_eq!(route("/assets/css/site.css"), "/assets/*");
        assert_eq!(route("/exact"), "/exact");
        assert_eq!(route("/exact/more"), "/exact/more");
        assert_eq!(route("/users/12/avatar/x"), "/users/{id}/avatar/x");
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for bad in ["users", "/a/*/b", "/a/{}", "/a/x{id}", "/a b", "/a/{i{d}"] {
            assert!(bad.parse::<Pattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_routes_file_skips_comments_and_names_the_bad_line() {
        let dir = std::env::temp_dir().join(format!("http-top-routes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "# ours\n/users/{id}\n\n  /static/*  \n").unwrap();
        let p = RouteConfig::read_patterns(&good).unwrap();
        let texts: Vec<&str> = p.iter().map(Pattern::as_str).collect();
        assert_eq!(texts, ["/users/{id}", "/static/*"]);
        let bad = dir.join("bad");
        std::fs::write(&bad, "/ok\n/a/*/b\n").unwrap();
        let e = RouteConfig::read_patterns(&bad).unwrap_err().to_string();
        assert!(e.contains("bad:2:") && e.contains("last segment"), "{e}");
        assert!(RouteConfig::read_patterns(&dir.join("none")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn wire_bytes_in_routes_are_escaped() {
        assert_eq!(auto(&["/a\x1b[2J/b"]), ["/a\\x1b[2J/b"]);
    }
}
