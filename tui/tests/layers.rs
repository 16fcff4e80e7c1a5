//! The layering rule of the crate's modules, written down as a test.
//!
//! Dependencies point down: a module may use modules of its own layer or lower, never higher, so
//! each layer can be read, tested and benchmarked without the ones above it, and a change high up
//! cannot break what lies below. A second rule keeps the source files free of cycles between one
//! another, so every file can be understood from the files it uses.
//!
//! The check reads the text of `src` with a small hand-written scanner (std only, no parser crate)
//! so that it runs with the ordinary tests and needs nothing to build. It is deliberately simple:
//! it sees `crate::`, `self::` and `super::` paths (and `http_top::` in the binary), not names
//! brought into scope by a `use` and then used unqualified; those are caught at their `use`.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

/// The layers, lowest first: a top-level module's rank is its index here. A module may use modules
/// of its own rank or lower. A module of `src` missing from this table fails the check, so each new
/// module gets a place on purpose; a name here without a module (yet) is fine.
const LAYERS: &[&[&str]] = &[
    // Leaves: counters declared once; what every layer shares about a packet; text escaping;
    // number formatting.
    &["counters", "owner", "packet", "text", "units"],
    &["decode"],
    &["flow"],
    // The protocol seam and its parsers: HTTP/1.x today, HTTP/2 later.
    &["proto"],
    &["stats"],
    &["pipeline"],
    &["bpf"],
    &["capture"],
    // Process and container names: reads /proc and runtime files (an edge, like capture).
    &["names"],
    &["session"],
    &["output", "ui"],
    &["cli"],
];

/// `src/main.rs` is a crate of its own and names the library by its crate name, not `crate`.
const LIB_CRATE: &str = "http_top";

/// Name and rank of the binary, which sits above every layer: nothing in the library can use it.
const BINARY: &str = "main";
const BINARY_RANK: usize = LAYERS.len();

fn rank(top_level: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&top_level))
}

// ---------------------------------------------------------------------------------------------
// The check.

/// Where a module refers to another: the first such place is shown for each pair of modules.
#[derive(Debug, Clone)]
struct Site {
    file: String,
    line: usize,
    written: String,
}

/// Every violation of the layering rule in the crate whose sources are in `src`, one message each.
fn check(src: &Path) -> Vec<String> {
    let files = source_files(src);
    let lib_modules: BTreeSet<Vec<String>> = files
        .iter()
        .filter_map(|f| f.library_module().cloned())
        .collect();
    let mut violations = Vec::new();

    let mut unknown = BTreeSet::new();
    for file in &files {
        let top = file.top_level();
        if rank_of_file(file).is_none() && unknown.insert(top.to_owned()) {
            violations.push(format!(
                "{}: module `{top}` is not in the layer table: add it to LAYERS in tui/tests/layers.rs \
                 at the rank of the layer it belongs to",
                file.display,
            ));
        }
    }

    // First reference per (from, to) pair of modules, for the cycle check.
    let mut edges: BTreeMap<(String, String), Site> = BTreeMap::new();
    for file in &files {
        let from = file.name();
        for reference in references(&file.tokens, &file.kind) {
            let Some(target) = deepest_module(&lib_modules, &reference.target) else {
                continue;
            };
            let to = target.join("::");
            if to == from {
                continue;
            }
            let site = Site {
                file: file.display.clone(),
                line: reference.line,
                written: reference.written,
            };
            if let (Some(from_rank), Some(to_rank)) = (rank_of_file(file), rank(&target[0]))
                && to_rank > from_rank
            {
                violations.push(format!(
                    "{}:{}: `{}`: {from} (rank {from_rank}) uses {to} (rank {to_rank}), a higher \
                     layer; a module may use only its own layer or lower",
                    site.file, site.line, site.written,
                ));
            }
            edges.entry((from.clone(), to)).or_insert(site);
        }
    }

    violations.extend(cycles(&edges));
    violations
}

fn rank_of_file(file: &SourceFile) -> Option<usize> {
    match file.kind {
        FileKind::Binary => Some(BINARY_RANK),
        FileKind::Library(_) => rank(file.top_level()),
    }
}

/// The module that a path from the crate root names: the deepest module file along it, so
/// `capture::live::LiveSource` is `capture::live` and `decode::tcp_flags::SYN` (an inline module) is
/// `decode`. None when no module file is on the path (an item of the crate root).
fn deepest_module(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|len| path[..len].to_vec())
        .find(|prefix| modules.contains(prefix))
}

/// A module and its own ancestor or descendant: they may use each other (a child uses its parent's
/// items through `super::`, the parent re-exports or calls the child); that is normal Rust, not a
/// cycle between files.
fn related(a: &str, b: &str) -> bool {
    a == b || b.starts_with(&format!("{a}::")) || a.starts_with(&format!("{b}::"))
}

/// One message per group of modules that reach each other (a strongly connected component), with
/// every edge inside the group, so the developer sees all the places that close the loop.
fn cycles(edges: &BTreeMap<(String, String), Site>) -> Vec<String> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        if !related(from, to) {
            graph.entry(from).or_default().insert(to);
            graph.entry(to).or_default();
        }
    }
    // The graph has a few dozen nodes: reachability from every node is cheap and easy to check.
    let reach: BTreeMap<&str, BTreeSet<&str>> = graph
        .keys()
        .map(|&node| (node, reachable(&graph, node)))
        .collect();

    let mut reported = BTreeSet::new();
    let mut messages = Vec::new();
    for (&node, from_node) in &reach {
        if !from_node.contains(node) || reported.contains(node) {
            continue;
        }
        let group: BTreeSet<&str> = from_node
            .iter()
            .copied()
            .filter(|other| reach[other].contains(node))
            .collect();
        let inside: Vec<String> = edges
            .iter()
            .filter(|((from, to), _)| {
                group.contains(from.as_str()) && group.contains(to.as_str()) && !related(from, to)
            })
            .map(|((from, to), site)| {
                format!(
                    "{from} -> {to} ({}:{} `{}`)",
                    site.file, site.line, site.written
                )
            })
            .collect();
        messages.push(format!(
            "cycle between modules {}: {}",
            group.iter().copied().collect::<Vec<_>>().join(", "),
            inside.join("; "),
        ));
        reported.extend(group);
    }
    messages
}

/// The nodes reachable from `start` by one edge or more (so `start` itself only through a cycle).
fn reachable<'a>(
    graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    start: &'a str,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = graph[start].iter().copied().collect();
    while let Some(node) = todo.pop() {
        if seen.insert(node) {
            todo.extend(graph[node].iter().copied());
        }
    }
    seen
}

// ---------------------------------------------------------------------------------------------
// Source files.

#[derive(Debug)]
enum FileKind {
    /// `src/main.rs`: the binary crate.
    Binary,
    /// A module of the library, by its path from the crate root (`["capture", "live"]`).
    Library(Vec<String>),
}

#[derive(Debug)]
struct SourceFile {
    /// As shown in messages: `src/capture/live.rs`.
    display: String,
    kind: FileKind,
    /// The file's tokens, without comments, literals or test-only code.
    tokens: Vec<Token>,
}

impl SourceFile {
    fn library_module(&self) -> Option<&Vec<String>> {
        match &self.kind {
            FileKind::Binary => None,
            FileKind::Library(path) => Some(path),
        }
    }

    fn name(&self) -> String {
        self.library_module()
            .map_or_else(|| BINARY.to_owned(), |path| path.join("::"))
    }

    fn top_level(&self) -> &str {
        self.library_module().map_or(BINARY, |path| &path[0])
    }
}

/// Every non-test `.rs` file of `src` but `lib.rs`, which only declares the modules.
fn source_files(src: &Path) -> Vec<SourceFile> {
    let mut paths = Vec::new();
    collect_rs_files(src, &mut paths);
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let relative: Vec<String> = path
            .strip_prefix(src)
            .expect("found under src")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let kind = match relative.as_slice() {
            [only] if only == "lib.rs" => continue,
            [only] if only == "main.rs" => FileKind::Binary,
            _ => {
                // `tests.rs` and `tests/` hold unit tests, which may use anything they test.
                if relative
                    .iter()
                    .any(|part| part == "tests" || part == "tests.rs")
                {
                    continue;
                }
                let mut module = relative;
                let last = module.pop().expect("a file has a name");
                let stem = last
                    .strip_suffix(".rs")
                    .expect("only .rs files are collected");
                if stem != "mod" {
                    module.push(stem.to_owned());
                }
                FileKind::Library(module)
            }
        };
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        files.push(SourceFile {
            display: format!(
                "src/{}",
                path.strip_prefix(src).expect("found under src").display()
            ),
            kind,
            tokens: strip_test_code(tokenize(&text)),
        });
    }
    files
}

fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect_rs_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens: enough of Rust's lexical grammar that comments, strings and characters never look like
// paths, and that brackets can be matched.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Ident,
    Punct,
    /// A string, character or number: its text is dropped, it only takes a place.
    Literal,
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    text: String,
    line: usize,
}

impl Token {
    fn is(&self, text: &str) -> bool {
        self.kind != TokenKind::Literal && self.text == text
    }

    fn is_ident(&self) -> bool {
        self.kind == TokenKind::Ident
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        let mut push = |kind, text: String| {
            tokens.push(Token {
                kind,
                text,
                line: start_line,
            })
        };
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            // Line comments, doc comments included: the newline itself is counted above.
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            i = skip_block_comment(&chars, i, &mut line);
        } else if c == '"' {
            i = skip_string(&chars, i, &mut line);
            push(TokenKind::Literal, String::new());
        } else if c == '\'' {
            let (end, is_char) = skip_char_or_lifetime(&chars, i);
            if is_char {
                push(TokenKind::Literal, String::new());
            }
            i = end;
        } else if c.is_ascii_digit() {
            // `1.5` comes out as literal, `.`, literal: harmless, and `0..n` stays a range.
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            push(TokenKind::Literal, String::new());
        } else if is_ident_char(c) {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // Prefixed literals: raw strings r"…" r#"…"#, byte and C strings b"…" c"…", bytes b'…'.
            let raw_end = match word.as_str() {
                "r" | "br" | "cr" => skip_raw_string(&chars, i, &mut line),
                _ => None,
            };
            if let Some(end) = raw_end {
                i = end;
                push(TokenKind::Literal, String::new());
            } else if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                i = skip_string(&chars, i, &mut line);
                push(TokenKind::Literal, String::new());
            } else if word == "b" && at(i) == '\'' {
                i = skip_char_or_lifetime(&chars, i).0;
                push(TokenKind::Literal, String::new());
            } else if word == "r" && at(i) == '#' {
                // A raw identifier (`r#use`) is never a keyword: keep the prefix so it matches none.
                let start = i + 1;
                i = start;
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                push(TokenKind::Ident, format!("r#{name}"));
            } else {
                push(TokenKind::Ident, word);
            }
        } else {
            let pair: String = [c, at(i + 1)].iter().collect();
            if matches!(pair.as_str(), "::" | "->" | "=>") {
                push(TokenKind::Punct, pair);
                i += 2;
            } else {
                push(TokenKind::Punct, c.to_string());
                i += 1;
            }
        }
    }
    tokens
}

/// Block comments nest in Rust: `/* a /* b */ still comment */`.
fn skip_block_comment(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        let next = chars.get(i + 1).copied().unwrap_or('\0');
        if chars[i] == '/' && next == '*' {
            depth += 1;
            i += 2;
        } else if chars[i] == '*' && next == '/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            if chars[i] == '\n' {
                *line += 1;
            }
            i += 1;
        }
    }
    i
}

/// From the opening quote to past the closing one, stepping over escapes (`\"`).
fn skip_string(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '"' => return i + 1,
            '\\' => {
                if chars.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
            }
            '\n' => {
                *line += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    i
}

/// At `i` just after an `r`, `br` or `cr` prefix: the end of a raw string (`r#"…"#`), or None when
/// this is no raw string (a raw identifier, or an identifier followed by `#`).
fn skip_raw_string(chars: &[char], mut i: usize, line: &mut usize) -> Option<usize> {
    let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
    i += hashes;
    if chars.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"'
            && chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(i + 1 + hashes);
        }
        if chars[i] == '\n' {
            *line += 1;
        }
        i += 1;
    }
    Some(i)
}

/// At a `'`: a character literal (`'a'`, `'\''`, `'\u{1F600}'`, returned with true) or a lifetime
/// or label (`'a`, `'outer:`, with false). A lifetime is never followed by a closing quote after
/// one character, which is what tells them apart.
fn skip_char_or_lifetime(chars: &[char], i: usize) -> (usize, bool) {
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    if at(i + 1) == '\\' {
        let mut end = i + 3;
        while end < chars.len() && chars[end] != '\'' {
            end += 1;
        }
        (end + 1, true)
    } else if at(i + 2) == '\'' {
        (i + 3, true)
    } else {
        let mut end = i + 1;
        while end < chars.len() && is_ident_char(chars[end]) {
            end += 1;
        }
        (end, false)
    }
}

/// The index of the bracket that closes the one at `open`, or the end when it is never closed.
fn matching(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, token) in tokens.iter().enumerate().skip(open) {
        if token.kind != TokenKind::Punct {
            continue;
        }
        match token.text.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

// ---------------------------------------------------------------------------------------------
// Test-only code: unit tests may use anything they test, so `#[cfg(test)]` items are left out.

/// An attribute starting at `i`: whether it is inner (`#![…]`), the range of its contents, and the
/// index just after it.
struct Attribute {
    inner: bool,
    body: std::ops::Range<usize>,
    end: usize,
}

fn attribute_at(tokens: &[Token], i: usize) -> Option<Attribute> {
    if !tokens.get(i)?.is("#") {
        return None;
    }
    let inner = tokens.get(i + 1)?.is("!");
    let open = if inner { i + 2 } else { i + 1 };
    if !tokens.get(open)?.is("[") {
        return None;
    }
    let close = matching(tokens, open);
    Some(Attribute {
        inner,
        body: open + 1..close.min(tokens.len()),
        end: (close + 1).min(tokens.len()),
    })
}

/// `#[cfg(test)]` and the like (`cfg(all(test, unix))`), but not `cfg(not(test))`.
fn is_test_only(body: &[Token]) -> bool {
    body.first().is_some_and(|t| t.is("cfg"))
        && body.iter().any(|t| t.is("test"))
        && !body.iter().any(|t| t.is("not"))
}

fn strip_test_code(tokens: Vec<Token>) -> Vec<Token> {
    let mut kept = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let Some(attribute) = attribute_at(&tokens, i) else {
            kept.push(tokens[i].clone());
            i += 1;
            continue;
        };
        if !is_test_only(&tokens[attribute.body.clone()]) {
            kept.extend_from_slice(&tokens[i..attribute.end]);
            i = attribute.end;
        } else if attribute.inner {
            // `#![cfg(test)]` makes the rest of the enclosing module test-only.
            i = end_of_block(&tokens, attribute.end);
        } else {
            let mut item = attribute.end;
            while let Some(next) = attribute_at(&tokens, item).filter(|a| !a.inner) {
                item = next.end;
            }
            i = end_of_item(&tokens, item);
        }
    }
    kept
}

/// The closing brace of the block that `start` is in (kept, it belongs to the enclosing code), or
/// the end of the file.
fn end_of_block(tokens: &[Token], start: usize) -> usize {
    let mut depth = 0usize;
    for (k, token) in tokens.iter().enumerate().skip(start) {
        match token.text.as_str() {
            _ if token.kind != TokenKind::Punct => {}
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" if depth == 0 => return k,
            ")" | "]" | "}" => depth -= 1,
            _ => {}
        }
    }
    tokens.len()
}

/// How an item that an attribute applies to ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemEnd {
    /// `fn`, `mod`, `impl`…: at the `;` or the brace that closes its body (`mod tests;`,
    /// `mod tests { … }`).
    SemicolonOrBody,
    /// `use`, `const`, `let`…: at the `;` (their value may hold braces: `const A: S = S { … };`).
    Semicolon,
    /// A field, variant, statement or expression: at a `,` or `;`, or before the enclosing closer.
    CommaOrSemicolon,
}

fn item_end(tokens: &[Token], start: usize) -> ItemEnd {
    const WITH_BODY: &[&str] = &[
        "fn",
        "mod",
        "impl",
        "struct",
        "enum",
        "union",
        "trait",
        "extern",
        "macro_rules",
    ];
    const TO_SEMICOLON: &[&str] = &["use", "const", "static", "type", "let"];
    let mut first_word = None;
    let mut k = start;
    while let Some(token) = tokens.get(k) {
        if token.is_ident() {
            if WITH_BODY.contains(&token.text.as_str()) {
                return ItemEnd::SemicolonOrBody;
            }
            if !token.is("pub") {
                first_word.get_or_insert(token.text.as_str());
            }
            k += 1;
        } else if token.is("(") && k > start && tokens[k - 1].is("pub") {
            k = matching(tokens, k) + 1;
        } else {
            break;
        }
    }
    match first_word {
        Some(word) if TO_SEMICOLON.contains(&word) => ItemEnd::Semicolon,
        _ => ItemEnd::CommaOrSemicolon,
    }
}

/// The index just after the item starting at `start`.
fn end_of_item(tokens: &[Token], start: usize) -> usize {
    let end = item_end(tokens, start);
    let mut depth = 0usize;
    // Only for telling a `,` inside generics (`HashMap<K, V>`) from the one ending a field.
    let mut angles = 0usize;
    for (k, token) in tokens.iter().enumerate().skip(start) {
        if token.kind != TokenKind::Punct {
            continue;
        }
        match token.text.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => {
                if depth == 0 {
                    return k;
                }
                depth -= 1;
                if depth == 0 && token.is("}") && end == ItemEnd::SemicolonOrBody {
                    return k + 1;
                }
            }
            ";" if depth == 0 => return k + 1,
            "," if depth == 0 && angles == 0 && end == ItemEnd::CommaOrSemicolon => return k + 1,
            "<" => angles += 1,
            ">" => angles = angles.saturating_sub(1),
            _ => {}
        }
    }
    tokens.len()
}

// ---------------------------------------------------------------------------------------------
// References: the paths of a file that name something of the crate.

#[derive(Debug)]
struct Reference {
    line: usize,
    /// As written, with `use` groups expanded: `crate::ui::App`.
    written: String,
    /// From the crate root: `["ui", "App"]`.
    target: Vec<String>,
}

fn references(tokens: &[Token], kind: &FileKind) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut add = |path: &[String], line: usize, inline_modules: &[String]| {
        if let Some(target) = resolve(path, kind, inline_modules) {
            // `crate::decode::{self, Segment}` shows as `crate::decode`.
            let shown = path.strip_suffix(&["self".to_owned()]).unwrap_or(path);
            found.push(Reference {
                line,
                written: shown.join("::"),
                target,
            });
        }
    };
    // Inline modules (`mod tcp_flags { … }`) that the scan is in, with the brace depth of their
    // bodies: `self::` and `super::` inside them are relative to them.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        if token.is("{") {
            depth += 1;
            if i >= 2 && tokens[i - 2].is("mod") && tokens[i - 1].is_ident() {
                inline.push((tokens[i - 1].text.clone(), depth));
            }
        } else if token.is("}") {
            if inline.last().is_some_and(|&(_, d)| d == depth) {
                inline.pop();
            }
            depth = depth.saturating_sub(1);
        } else if token.is("use") && !tokens.get(i + 1).is_some_and(|t| t.is("<")) {
            // (`use<'a>` is precise capturing in `impl Trait + use<'a>`, not an import.)
            let mut paths = Vec::new();
            i = use_tree(tokens, i + 1, &mut Vec::new(), &mut paths);
            let modules: Vec<String> = inline.iter().map(|(name, _)| name.clone()).collect();
            for (path, line) in paths {
                add(&path, line, &modules);
            }
            continue;
        } else if token.is_ident()
            && matches!(token.text.as_str(), "crate" | "self" | "super" | LIB_CRATE)
            && tokens.get(i + 1).is_some_and(|t| t.is("::"))
            && !(i > 0 && tokens[i - 1].is("::"))
            && !(i >= 3
                && tokens[i - 1].is("in")
                && tokens[i - 2].is("(")
                && tokens[i - 3].is("pub"))
        {
            // An inline path: `crate::decode::Segment<'_>`, `super::map_key(…)`. (`pub(in crate::x)`
            // names a module only to set a visibility, so it is left out above.)
            let mut path = vec![token.text.clone()];
            let mut k = i;
            while tokens.get(k + 1).is_some_and(|t| t.is("::"))
                && tokens.get(k + 2).is_some_and(Token::is_ident)
            {
                path.push(tokens[k + 2].text.clone());
                k += 2;
            }
            let modules: Vec<String> = inline.iter().map(|(name, _)| name.clone()).collect();
            add(&path, tokens[k].line, &modules);
            i = k + 1;
            continue;
        }
        i += 1;
    }
    found
}

/// Expands the use tree at `i` (`crate::{a::{b, c}, d as e}`) into full paths, each with the line
/// of its last segment; returns the index after the tree.
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let outer = prefix.len();
    if tokens.get(i).is_some_and(|t| t.is("::")) {
        i += 1;
    }
    loop {
        match tokens.get(i) {
            Some(t) if t.is("{") => {
                i += 1;
                while tokens.get(i).is_some_and(|t| !t.is("}")) {
                    let next = use_tree(tokens, i, prefix, out);
                    // Always move on, even over something this scanner does not understand.
                    i = next.max(i + 1);
                    if tokens.get(i).is_some_and(|t| t.is(",")) {
                        i += 1;
                    }
                }
                i += 1;
                break;
            }
            Some(t) if t.is("*") => {
                out.push((prefix.clone(), t.line));
                i += 1;
                break;
            }
            Some(t) if t.is_ident() => {
                prefix.push(t.text.clone());
                i += 1;
                if tokens.get(i).is_some_and(|t| t.is("::")) {
                    i += 1;
                    continue;
                }
                out.push((prefix.clone(), t.line));
                if tokens.get(i).is_some_and(|t| t.is("as")) {
                    i += 2;
                }
                break;
            }
            _ => break,
        }
    }
    prefix.truncate(outer);
    i
}

/// The path from the crate root that `path` names, written in a file of `kind` inside the inline
/// modules `inline_modules`; None when it names nothing of the library (another crate, a local).
fn resolve(path: &[String], kind: &FileKind, inline_modules: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut target = match kind {
        // In the binary, `crate::`, `self::` and `super::` are the binary's own items.
        FileKind::Binary if first == LIB_CRATE => Vec::new(),
        FileKind::Binary => return None,
        FileKind::Library(_) if first == "crate" => Vec::new(),
        FileKind::Library(module) if first == "self" || first == "super" => {
            let mut here: Vec<String> = module.iter().chain(inline_modules).cloned().collect();
            if first == "super" {
                here.pop()?;
            }
            here
        }
        FileKind::Library(_) => return None,
    };
    for segment in rest {
        match segment.as_str() {
            "super" => {
                target.pop()?;
            }
            // `use crate::capture::{self, Next}` names `crate::capture`.
            "self" => {}
            _ => target.push(segment.clone()),
        }
    }
    Some(target)
}

// ---------------------------------------------------------------------------------------------
// The rule on the real tree.

#[test]
fn every_module_imports_only_its_own_layer_or_lower() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let violations = check(&src);
    assert!(
        violations.is_empty(),
        "{} layering violation(s) in {}:\n{}",
        violations.len(),
        src.display(),
        violations.join("\n"),
    );
}

// ---------------------------------------------------------------------------------------------
// The checker can fail: small trees that break (or seem to break) the rule.

/// A source tree in a directory of its own under the system's temp dir, removed when dropped (also
/// when the test fails).
struct Tree {
    root: PathBuf,
}

impl Tree {
    /// `files` are paths from the tree's root (`src/decode.rs`) and their text.
    fn new(files: &[(&str, &str)]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "http-top-layers-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
        ));
        // A leftover of an earlier run with the same process id must not add files.
        let _ = fs::remove_dir_all(&root);
        for (path, text) in files {
            let path = root.join(path);
            fs::create_dir_all(path.parent().expect("files are under src")).unwrap();
            fs::write(&path, text).unwrap();
        }
        Self { root }
    }

    fn check(&self) -> Vec<String> {
        check(&self.root.join("src"))
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// `name (rank N)`, as the messages show a module of the table.
fn ranked(module: &str) -> String {
    let top = module.split("::").next().unwrap_or(module);
    format!("{module} (rank {})", rank(top).expect("in the table"))
}

fn assert_one_violation(violations: &[String], parts: &[&str]) {
    assert_eq!(
        violations.len(),
        1,
        "expected one violation, got {violations:#?}"
    );
    for part in parts {
        assert!(
            violations[0].contains(part),
            "expected {part:?} in {:?}",
            violations[0]
        );
    }
}

#[test]
fn an_upward_import_is_reported() {
    let tree = Tree::new(&[
        ("src/lib.rs", "pub mod capture;\npub mod decode;\n"),
        ("src/capture/mod.rs", "pub struct Packet;\n"),
        ("src/decode.rs", "use crate::capture::Packet;\n"),
    ]);
    assert_one_violation(
        &tree.check(),
        &[
            "src/decode.rs:1",
            "`crate::capture::Packet`",
            &ranked("decode"),
            &ranked("capture"),
        ],
    );
}

#[test]
fn an_upward_import_in_a_nested_group_is_reported() {
    let tree = Tree::new(&[
        ("src/flow/mod.rs", "pub struct X;\n"),
        ("src/ui/mod.rs", "pub struct App;\n"),
        (
            "src/stats/mod.rs",
            "use crate::{\n    flow::X,\n    ui::{App},\n};\n",
        ),
    ]);
    assert_one_violation(
        &tree.check(),
        &[
            "src/stats/mod.rs:3",
            "`crate::ui::App`",
            &ranked("stats"),
            &ranked("ui"),
        ],
    );
}

#[test]
fn an_upward_inline_path_is_reported() {
    let tree = Tree::new(&[
        ("src/session.rs", "pub fn run() {}\n"),
        (
            "src/flow/mod.rs",
            "pub fn start() {\n    crate::session::run();\n}\n",
        ),
    ]);
    assert_one_violation(
        &tree.check(),
        &[
            "src/flow/mod.rs:2",
            "`crate::session::run`",
            &ranked("flow"),
            &ranked("session"),
        ],
    );
}

#[test]
fn test_only_code_is_not_checked() {
    let tree = Tree::new(&[
        ("src/capture/mod.rs", "pub struct Packet;\n"),
        ("src/ui/mod.rs", "pub struct App;\n"),
        (
            "src/decode.rs",
            "\
#[cfg(test)]
mod tests {
    use crate::capture::Packet;

    #[test]
    fn sees_packets() {
        let _ = crate::capture::Packet;
    }
}

#[cfg(test)]
use crate::capture::Packet as _;

// After the test-only items, the code is checked again.
#[cfg(not(test))]
pub fn later() -> crate::ui::App {
    crate::ui::App
}
",
        ),
        // Unit-test files, which `#[cfg(test)] mod tests;` declares.
        ("src/decode/tests.rs", "use crate::capture::Packet;\n"),
        (
            "src/decode/tests/fixtures.rs",
            "use crate::capture::Packet;\n",
        ),
    ]);
    let violations = tree.check();
    assert_eq!(violations.len(), 2, "{violations:#?}");
    assert!(
        violations[0].starts_with("src/decode.rs:16: `crate::ui::App`"),
        "{violations:#?}"
    );
    assert!(
        violations[1].starts_with("src/decode.rs:17: `crate::ui::App`"),
        "{violations:#?}"
    );
}

#[test]
fn a_cycle_between_modules_of_one_layer_is_reported() {
    let tree = Tree::new(&[
        ("src/output/mod.rs", "pub mod a;\npub mod b;\n"),
        (
            "src/output/a.rs",
            "pub struct X;\npub fn y() -> crate::output::b::Y {\n    crate::output::b::Y\n}\n",
        ),
        ("src/output/b.rs", "use super::a::X;\npub struct Y;\n"),
    ]);
    assert_one_violation(
        &tree.check(),
        &[
            "cycle between modules output::a, output::b",
            "output::a -> output::b (src/output/a.rs:2 `crate::output::b::Y`)",
            "output::b -> output::a (src/output/b.rs:1 `super::a::X`)",
        ],
    );
}

#[test]
fn a_module_missing_from_the_table_is_reported() {
    let tree = Tree::new(&[
        ("src/zebra.rs", "pub fn stripes() {}\n"),
        ("src/cli.rs", "use crate::zebra::stripes;\n"),
    ]);
    assert_one_violation(&tree.check(), &["src/zebra.rs", "`zebra`", "LAYERS"]);
}

#[test]
fn a_child_using_its_parent_is_no_cycle() {
    let tree = Tree::new(&[
        (
            "src/capture/mod.rs",
            "pub mod live;\npub struct Packet;\npub fn open() {\n    self::live::start();\n}\n",
        ),
        (
            "src/capture/live.rs",
            "use super::Packet;\npub fn start() -> super::Packet {\n    Packet\n}\n",
        ),
    ]);
    assert_eq!(tree.check(), Vec::<String>::new());
}

#[test]
fn comments_and_strings_are_not_paths() {
    let tree = Tree::new(&[
        ("src/capture/mod.rs", "pub struct Packet;\n"),
        ("src/ui/mod.rs", "pub struct X;\n"),
        (
            "src/decode.rs",
            r##"//! Module docs name crate::ui::X.
/// Item docs link [`crate::ui::X`].
// A line comment: crate::ui::X
/* A block comment /* nested */ crate::ui::X */
pub const TEXT: &str = "crate::ui::X \" crate::ui::X";
pub const RAW: &str = r#"crate::ui::X "quoted" crate::ui::X"#;
pub const BYTES: &[u8] = b"crate::ui::X";
pub fn quotes<'a>(s: &'a str) -> (char, char, &'a str) {
    ('"', '\'', s)
}
use crate::capture::Packet;
"##,
        ),
    ]);
    // Only the real import on the last line: the scanner is back in step after every literal.
    assert_one_violation(
        &tree.check(),
        &["src/decode.rs:11", "`crate::capture::Packet`"],
    );
}
