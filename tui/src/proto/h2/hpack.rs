//! HPACK (RFC 7541) as a sniffer needs it: one decoder per direction, with the dynamic table, that
//! never stops on what it cannot know.
//!
//! HPACK crates decode for an endpoint, which has seen every header block of its connection: an
//! index they do not hold is a protocol error, so they stop, and their table stays behind. A
//! capture may begin mid-connection, or lose a header block: then a field refers to a table entry
//! that was never seen. This decoder reads every representation anyway (each is self-delimiting),
//! reports such a field as unknown, and keeps inserting new entries, so the entries it does know
//! keep their indices (new entries take the lowest dynamic index; the unknown ones are older and
//! sit above). Huffman-coded strings are decoded by `httlib-huffman`.

use std::collections::VecDeque;

/// The static table (RFC 7541 Appendix A), index 1 first.
const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The table size before any SETTINGS (RFC 9113 6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;
/// Longest string (name or value) decoded; a longer one is an error (the header list is capped
/// well below it anyway).
const MAX_STRING: usize = 16 * 1024;
/// Largest table size accepted, whatever SETTINGS say: bounds the memory of a connection.
pub const MAX_TABLE_SIZE: usize = 64 * 1024;

/// Why a header block could not be read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpackError {
    /// The block ends inside a representation.
    Truncated,
    /// An integer too large to be meant.
    Overflow,
    /// A string longer than [`MAX_STRING`].
    TooLong,
    /// Not valid Huffman code.
    Huffman,
    /// Index 0, or a table size update past what SETTINGS allow.
    Invalid,
}

/// One decoded field; `None` for a name or value that refers to an entry never seen, and for a
/// value the caller does not read that is not added to the table (see [`Decoder::decode`]).
pub type Field<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// A dynamic table entry; the name is unknown when it came from an index never seen.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: Option<Box<[u8]>>,
    value: Box<[u8]>,
}

impl Entry {
    /// RFC 7541 4.1; an unknown name counts as empty (its size is unknowable).
    fn size(&self) -> usize {
        self.name.as_ref().map_or(0, |n| n.len()) + self.value.len() + 32
    }
}

/// The decoder of one direction of one connection.
#[derive(Debug)]
pub struct Decoder {
    /// Newest first: index 62 is `table[0]`.
    table: VecDeque<Entry>,
    size: usize,
    max: usize,
    /// What the peer's SETTINGS_HEADER_TABLE_SIZE allows the encoder to pick.
    allowed: usize,
    /// Fields that referred to an entry never seen.
    pub unknown: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            table: VecDeque::new(),
            size: 0,
            max: DEFAULT_TABLE_SIZE,
            allowed: DEFAULT_TABLE_SIZE,
            unknown: 0,
        }
    }
}

/// Strings of one representation, decoded (Huffman) or borrowed.
enum Str<'a> {
    Raw(&'a [u8]),
    Owned(Vec<u8>),
}

impl Str<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Str::Raw(b) => b,
            Str::Owned(v) => v,
        }
    }
}

impl Decoder {
    /// The peer advertised SETTINGS_HEADER_TABLE_SIZE `n`: the encoder may now pick up to it.
    pub fn set_allowed(&mut self, n: usize) {
        self.allowed = n.min(MAX_TABLE_SIZE);
    }

    /// Entries held now.
    pub fn entries(&self) -> usize {
        self.table.len()
    }

    /// Bytes the table holds now, by RFC 7541's measure.
    pub fn table_size(&self) -> usize {
        self.size
    }

    /// Decodes one whole header block (HEADERS or PUSH_PROMISE with its CONTINUATIONs), calling
    /// `each` for every field in order. On an error the fields before it have been reported and
    /// the table holds what was inserted before it.
    ///
    /// `reads(name)`: whether the caller reads the value of a field so named. A value it does not
    /// read, in a literal the table does not keep, is stepped over undecoded (`None`): servers
    /// send `date`, `etag`, `last-modified` and the like Huffman-coded in every response, and
    /// decoding them was half the time of reading h2load's traffic. (A value the table keeps is
    /// always decoded: the table's size counts decoded bytes.) A stepped-over value's length is
    /// checked as a decoded one's; invalid Huffman code in it goes unnoticed.
    pub fn decode(
        &mut self,
        block: &[u8],
        reads: impl Fn(&[u8]) -> bool,
        mut each: impl FnMut(Field<'_>),
    ) -> Result<(), HpackError> {
        let mut at = 0;
        while at < block.len() {
            let b = block[at];
            if b & 0x80 != 0 {
                let i = int(block, &mut at, 7)?;
                if i == 0 {
                    return Err(HpackError::Invalid);
                }
                match self.get(i) {
                    Some((n, v)) => each((n, Some(v))),
                    None => {
                        self.unknown += 1;
                        each((None, None));
                    }
                }
            } else if b & 0xe0 == 0x20 {
                let n = int(block, &mut at, 5)?;
                if n > self.allowed {
                    return Err(HpackError::Invalid);
                }
                self.max = n;
                self.evict(0);
            } else {
                // Literal: with incremental indexing (01), or without / never indexed (0000,
                // 0001): the name by index or as a string, then the value.
                let (prefix, index) = if b & 0xc0 == 0x40 {
                    (6, true)
                } else {
                    (4, false)
                };
                let ni = int(block, &mut at, prefix)?;
                let name: Option<Str<'_>> = if ni == 0 {
                    Some(string(block, &mut at)?)
                } else if let Some((n, _)) = STATIC.get(ni - 1) {
                    Some(Str::Raw(n))
                } else {
                    match self.get(ni) {
                        Some((Some(n), _)) => Some(Str::Owned(n.to_vec())),
                        _ => None,
                    }
                };
                if !index && name.as_ref().is_some_and(|n| !reads(n.bytes())) {
                    skip_string(block, &mut at)?;
                    each((name.as_ref().map(Str::bytes), None));
                    continue;
                }
                let value = string(block, &mut at)?;
                if name.is_none() {
                    self.unknown += 1;
                }
                each((name.as_ref().map(Str::bytes), Some(value.bytes())));
                if index {
                    self.insert(Entry {
                        name: name.map(|n| n.bytes().into()),
                        value: value.bytes().into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The entry at `index` (1-based, static then dynamic); `None` past what is known.
    fn get(&self, index: usize) -> Option<(Option<&[u8]>, &[u8])> {
        if index <= STATIC.len() {
            let (n, v) = STATIC[index - 1];
            return Some((Some(n), v));
        }
        let e = self.table.get(index - STATIC.len() - 1)?;
        Some((e.name.as_deref(), &e.value))
    }

    fn insert(&mut self, e: Entry) {
        let size = e.size();
        if size > self.max {
            // RFC 7541 4.4: an entry larger than the table empties it.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front(e);
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            match self.table.pop_back() {
                Some(old) => self.size -= old.size(),
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }
}

/// An integer with an `n`-bit prefix (RFC 7541 5.1) at `block[*at]`.
fn int(block: &[u8], at: &mut usize, n: u32) -> Result<usize, HpackError> {
    let mask = (1usize << n) - 1;
    let first = usize::from(*block.get(*at).ok_or(HpackError::Truncated)?) & mask;
    *at += 1;
    if first < mask {
        return Ok(first);
    }
    let mut value = mask;
    let mut shift = 0;
    loop {
        let b = *block.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        // Past 2^28 no sane length, index or size is meant.
        if shift > 21 {
            return Err(HpackError::Overflow);
        }
        value += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// Steps over the string literal (RFC 7541 5.2) at `block[*at]`; its bytes as sent (Huffman-coded or not).
fn skip_string<'a>(block: &'a [u8], at: &mut usize) -> Result<&'a [u8], HpackError> {
    let len = int(block, at, 7)?;
    if len > MAX_STRING {
        return Err(HpackError::TooLong);
    }
    let raw = block.get(*at..*at + len).ok_or(HpackError::Truncated)?;
    *at += len;
    Ok(raw)
}

/// The string literal at `block[*at]`, decoded.
fn string<'a>(block: &'a [u8], at: &mut usize) -> Result<Str<'a>, HpackError> {
    let huffman = block.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let raw = skip_string(block, at)?;
    if !huffman {
        return Ok(Str::Raw(raw));
    }
    let mut out = Vec::with_capacity(raw.len() * 8 / 5 + 1);
    httlib_huffman::decode(raw, &mut out, httlib_huffman::DecoderSpeed::FiveBits)
        .map_err(|_| HpackError::Huffman)?;
    Ok(Str::Owned(out))
}

#[cfg(test)]
mod tests;
