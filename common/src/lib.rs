//! What the kernel filter (`ebpf/`) and userspace (`tui/`) agree on: map names and sizes, the layout of
//! map keys and values, and the rule that decides whether a TCP payload starts an HTTP/1.x message.
//!
//! Every struct here is `#[repr(C)]`, `Copy`, and has its padding written out as named fields, so the
//! bytes the kernel hashes are exactly the bytes userspace builds (an implicit padding hole would make
//! two equal keys hash differently).
#![no_std]

/// LRU hash map: [`ConnKey`] -> [`ConnValue`], one entry per direction of every HTTP connection the
/// filter has seen start a message.
pub const CONN_MAP: &str = "HTTP_CONNS";
/// Capacity of [`CONN_MAP`]. Two entries per connection, so this tracks 32 Ki connections before the
/// LRU starts evicting the least recently used ones.
pub const CONN_MAP_CAPACITY: u32 = 65_536;

/// Hash map: TCP port (host order) -> 1. Only consulted when [`CONFIG_PORT_FILTER`] is set.
pub const PORT_MAP: &str = "HTTP_PORTS";
/// Capacity of [`PORT_MAP`].
pub const PORT_MAP_CAPACITY: u32 = 64;

/// Array of `u32` configuration words, indexed by the `CONFIG_*` constants.
pub const CONFIG_MAP: &str = "HTTP_CONFIG";
/// Number of entries in [`CONFIG_MAP`].
pub const CONFIG_MAP_LEN: u32 = 4;
/// Config index: non-zero when only ports listed in [`PORT_MAP`] may be kept.
pub const CONFIG_PORT_FILTER: u32 = 0;
/// Config index: non-zero when the filter may cut body bytes (`--no-skip` leaves it 0).
pub const CONFIG_SKIP_BODIES: u32 = 1;

/// Per-CPU array of `u64` counters, indexed by the `STAT_*` constants.
pub const STATS_MAP: &str = "HTTP_FILTER_STATS";
/// Packets the filter ran on.
pub const STAT_SEEN: u32 = 0;
/// Packets kept because their TCP payload starts an HTTP/1.x message.
pub const STAT_KEPT_START: u32 = 1;
/// Packets kept because they belong to a recorded connection (payload, FIN or RST).
pub const STAT_KEPT_CONN: u32 = 2;
/// Times recording a connection in [`CONN_MAP`] failed (the packet is still kept).
pub const STAT_INSERT_FAILED: u32 = 3;
/// Packets cut to their headers because their payload lay wholly inside a body userspace said it
/// does not need ([`ConnValue::skip_seq`]).
pub const STAT_SKIPPED: u32 = 4;
/// The payload bytes those packets carried, which never reached the ring.
pub const STAT_SKIPPED_BYTES: u32 = 5;
/// Skip stretches the filter set itself, from a response head it read ([`response_body`]).
pub const STAT_HEAD_STRETCHES: u32 = 6;
/// Response heads the filter let pass unread on a connection of small answers ([`head_unread`]):
/// a body behind one of them is cut only once userspace asks for its stretch.
pub const STAT_HEADS_UNREAD: u32 = 7;
/// Number of entries in [`STATS_MAP`].
pub const STATS_LEN: u32 = 8;

/// Address family tag in [`ConnKey::family`] (not the kernel's `AF_*` numbers: a key only needs to tell
/// the two apart).
pub const FAMILY_IPV4: u8 = 4;
/// See [`FAMILY_IPV4`].
pub const FAMILY_IPV6: u8 = 6;

/// One direction of a TCP connection, as seen in a packet (source = sender).
///
/// IPv4 addresses use the first 4 bytes of the 16-byte fields; the rest stay zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ConnKey {
    /// Sender address, network byte order.
    pub src_addr: [u8; 16],
    /// Receiver address, network byte order.
    pub dst_addr: [u8; 16],
    /// Sender port, host byte order.
    pub src_port: u16,
    /// Receiver port, host byte order.
    pub dst_port: u16,
    /// [`FAMILY_IPV4`] or [`FAMILY_IPV6`].
    pub family: u8,
    /// Explicit padding; always zero.
    pub pad: [u8; 3],
}

impl ConnKey {
    /// The same connection seen from the other side.
    #[must_use]
    pub const fn reversed(&self) -> Self {
        Self {
            src_addr: self.dst_addr,
            dst_addr: self.src_addr,
            src_port: self.dst_port,
            dst_port: self.src_port,
            family: self.family,
            pad: [0; 3],
        }
    }
}

/// [`ConnValue::flags`]: this direction has carried a HEAD request, so the filter reads no
/// response heads of the connection (a HEAD's response announces a length it does not send, and
/// the filter cannot pair responses with requests). Userspace still asks for stretches: it can.
pub const FLAG_HEAD_ASKED: u32 = 1;

/// What the filter remembers about a recorded connection direction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ConnValue {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) of the last packet kept for this direction; userspace
    /// compares it with its own monotonic clock to expire idle connections.
    pub last_seen_ns: u64,
    /// Packets kept for this direction (wrapping; for inspection with bpftool).
    pub packets: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Body skipping: the TCP sequence number where a stretch of body bytes userspace does not
    /// need begins. Written by userspace once it has parsed a head that says how long the body is.
    pub skip_seq: u32,
    /// Length of that stretch; 0 when there is none. A packet whose payload lies wholly inside
    /// `[skip_seq, skip_seq + skip_len)` (in TCP's wrapping sequence space) reaches userspace cut
    /// to its headers, which still say how many payload bytes it carried. The filter sets it to 0
    /// when a packet reaches or crosses the end, so a stale stretch cannot match again when the
    /// sequence numbers wrap.
    pub skip_len: u32,
}

/// Body bytes worth skipping: below this, writing a stretch costs about what copying the bytes
/// would.
pub const SKIP_MIN: u64 = 32 * 1024;
/// The longest stretch at once, far below 2^31 so sequence numbers compare unambiguously. A
/// longer body is skipped in stretches that end where what is left of it is a multiple of this.
pub const SKIP_MAX: u64 = 1 << 30;

/// The stretch to skip when `ahead` (at least 1) body bytes are left: up to the next point where a
/// multiple of [`SKIP_MAX`] is left.
#[inline(always)]
#[must_use]
pub const fn stretch(ahead: u64) -> u64 {
    (ahead - 1) % SKIP_MAX + 1
}

/// Most fields a head may have: userspace's parser (httparse with this many slots) calls a head
/// with more too large, so the filter reads no further either.
pub const HEAD_FIELDS_MAX: u32 = 128;

/// How many bytes of a response the filter reads for its head, at most.
pub const HEAD_SCAN: usize = 512;
const _: () = assert!(HEAD_SCAN.is_power_of_two());

/// Steps [`HeadScan::advance`] takes at a time (a step is one byte, or up to a word inside a
/// field name or a line the scan has no use for): the filter calls it once per `bpf_loop`
/// iteration, and several steps per call keep the scan's state in registers between them.
/// Measured with the filter's own run time on nginx's small responses: one byte per call, about
/// 5 ns a byte; words in values, 8 steps a call: 437 ns a packet; words in names too: 350; 32
/// steps a call: 335 (192 without reading heads).
pub const HEAD_CHUNK: u32 = 32;

/// The first [`HEAD_SCAN`] bytes of a payload: the filter's per-CPU scratch buffer. Aligned so
/// that [`HeadScan::advance`] can read it a word at a time.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug)]
pub struct HeadBytes(pub [u8; HEAD_SCAN]);

impl HeadBytes {
    /// Whether the bytes from `start` are `name` (lower case) in any case.
    #[inline(always)]
    fn holds_name(&self, start: u32, name: &[u8]) -> bool {
        let mut k = 0;
        while k < name.len() {
            // The mask bounds the index for the verifier; `start + k` is below the colon anyway.
            let b = self.0[(start as usize + k) & (HEAD_SCAN - 1)];
            if b.to_ascii_lowercase() != name[k] {
                return false;
            }
            k += 1;
        }
        true
    }

    /// The aligned little-endian word holding byte `at` (below [`HEAD_SCAN`]).
    #[inline(always)]
    fn word(&self, at: usize) -> u64 {
        let i = at / 8 * 8;
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[i..i + 8]);
        u64::from_le_bytes(w)
    }
}

const ONES: u64 = u64::MAX / 255;
const HIGHS: u64 = ONES * 0x80;

/// How many low bytes of `m` (a mask of high bits, as [`unusual_bytes`] makes) are clear: the
/// index of its lowest set byte, or 8. Without a count-trailing-zeros, which BPF lacks.
#[inline(always)]
const fn plain_bytes(m: u64) -> u32 {
    if m == 0 {
        return 8;
    }
    let low = m & m.wrapping_neg();
    let mut n = 0;
    if low >= 1 << 32 {
        n += 4;
    }
    if low >> (n * 8) >= 1 << 16 {
        n += 2;
    }
    if low >> (n * 8) >= 1 << 8 {
        n += 1;
    }
    n
}

/// Per byte of a word whose bytes are all below 0x80: the high bit where the byte is at least
/// `lo`, and where it is at most `hi` (no carry crosses a byte).
#[inline(always)]
const fn at_least(x: u64, lo: u8) -> u64 {
    x.wrapping_add(ONES * (0x80 - lo as u64)) & HIGHS
}
#[inline(always)]
const fn at_most(x: u64, hi: u8) -> u64 {
    !x.wrapping_add(ONES * (0x7f - hi as u64)) & HIGHS
}

/// Bytes of `w` that are not a letter, a digit or `-` (what most field names are made of): their
/// high bits, exactly.
#[inline(always)]
const fn not_name_bytes(w: u64) -> u64 {
    let x = w & !HIGHS;
    // Lower case: only bytes that are letters land in a..=z.
    let l = x | (ONES * 0x20);
    let letter = at_least(l, b'a') & at_most(l, b'z');
    let digit = at_least(x, b'0') & at_most(x, b'9');
    let dash = at_least(x, b'-') & at_most(x, b'-');
    !(letter | digit | dash) & HIGHS | (w & HIGHS)
}

/// Bytes of `w` below 0x20 (controls, CR, LF, HT) or DEL: their high bits, and perhaps some
/// of the bytes above one of them (a borrow carries), never missing one.
#[inline(always)]
const fn unusual_bytes(w: u64) -> u64 {
    let low = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    let y = w ^ (ONES * 0x7f);
    let del = y.wrapping_sub(ONES) & !y & HIGHS;
    low | del
}

/// Bytes of a status line the filter checks before reading on: `HTTP/1.x SSS`.
pub const STATUS_PREFIX: usize = 12;

/// Whether `p` opens a response whose head may announce a body the filter can skip: an HTTP/1.x
/// status line that is not 1xx, 204 or 304 (which have no body whatever they announce).
#[inline(always)]
#[must_use]
pub fn skippable_status(p: &[u8; STATUS_PREFIX]) -> bool {
    if p[0] != b'H' || p[1] != b'T' || p[2] != b'T' || p[3] != b'P' || p[4] != b'/' {
        return false;
    }
    if p[5] != b'1' || p[6] != b'.' || (p[7] != b'0' && p[7] != b'1') || p[8] != b' ' {
        return false;
    }
    let (s0, s1, s2) = (p[9], p[10], p[11]);
    if !s0.is_ascii_digit() || !s1.is_ascii_digit() || !s2.is_ascii_digit() || s0 == b'1' {
        return false;
    }
    !matches!((s0, s1, s2), (b'2', b'0', b'4') | (b'3', b'0', b'4'))
}

/// Whether a client segment starting with `start` is a HEAD request ([`FLAG_HEAD_ASKED`]).
#[inline(always)]
#[must_use]
pub fn asks_head(start: &[u8]) -> bool {
    start.starts_with(b"HEAD ")
}

/// A response's first segment at least this long may open a body worth skipping whatever it
/// ends with; a shorter one only if it is a head alone ([`head_worth_reading`]).
pub const HEAD_READ_MIN: usize = 1024;

/// [`ConnValue::flags`] of a response direction, bits 8-10: how many heads in a row the filter
/// read that announced nothing worth skipping (a small body, a chunked one, or a head it could
/// not read: longer than [`HEAD_SCAN`], unusual).
const SMALL_RUN_SHIFT: u32 = 8;
const SMALL_RUN_MASK: u32 = 0x7 << SMALL_RUN_SHIFT;
/// Bits 12-15: how many response heads the filter lets pass unread from now on.
const QUIET_SHIFT: u32 = 12;
const QUIET_MASK: u32 = 0xf << QUIET_SHIFT;
/// After this many heads in a row with nothing to skip on a connection...
pub const SMALL_RUN: u32 = 4;
/// ...the filter reads one head in this many there, until one announces a body worth skipping.
/// (The count runs over every response that starts in a segment of its own, read or not: with
/// short answers that hold their body mixed in, somewhat more heads are read.)
/// Reading a head alone in its segment costs the softirq about 0.6 µs (wrk lost 9% of its rate
/// serving small files on this 2-core machine); a connection that serves small responses keeps
/// serving them, and userspace still asks for the stretch of any body the filter did not read
/// (later: it reads a ring block behind the wire).
pub const HEAD_QUIET: u32 = 8;
// Both counts fit their bits.
const _: () = assert!(SMALL_RUN >= 1 && SMALL_RUN <= 7 && HEAD_QUIET >= 1 && HEAD_QUIET <= 16);

/// Whether the filter lets the next response on a direction with `flags` pass with its head
/// unread, before it loads or looks up anything more; if so, the flags to store (one fewer to
/// come).
#[inline(always)]
#[must_use]
pub const fn head_unread(flags: u32) -> Option<u32> {
    if flags & QUIET_MASK == 0 {
        None
    } else {
        Some(flags - (1 << QUIET_SHIFT))
    }
}

/// The flags of a response direction after the filter read a head: `stretched` when it started
/// a stretch. The [`SMALL_RUN`]th head in a row with nothing to skip makes the next
/// `HEAD_QUIET - 1` pass unread; after them one is read again, and a stretch ends the run.
#[inline(always)]
#[must_use]
pub const fn after_head_read(flags: u32, stretched: bool) -> u32 {
    let rest = flags & !(SMALL_RUN_MASK | QUIET_MASK);
    if stretched {
        return rest;
    }
    let run = ((flags & SMALL_RUN_MASK) >> SMALL_RUN_SHIFT) + 1;
    if run >= SMALL_RUN {
        rest | (SMALL_RUN - 1) << SMALL_RUN_SHIFT | (HEAD_QUIET - 1) << QUIET_SHIFT
    } else {
        rest | run << SMALL_RUN_SHIFT
    }
}

/// Whether the filter reads the head at the start of a response segment of `payload_len` bytes
/// whose last four are `last4`: when the segment is long (a head and the start of a body that
/// fills it: nginx's first segment of a large file is a whole one), or when it is a head alone
/// (ends with the empty line: nginx sends a file's head before `sendfile`). A short segment that
/// ends in a body holds the whole response, and there is nothing to skip: not reading it keeps
/// the filter's cost per small response where it was (reading a head costs about 5 ns a byte
/// under `bpf_loop`).
#[inline(always)]
#[must_use]
pub fn head_worth_reading(payload_len: usize, last4: [u8; 4]) -> bool {
    payload_len >= HEAD_READ_MIN || last4 == *b"\r\n\r\n"
}

/// Whether `b` may be part of a field name (RFC 9110 section 5.6.2, `tchar`).
#[inline(always)]
const fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

// HeadScan states.
/// At a field name (`line` bytes of it so far).
const NAME: u32 = 0;
/// In a line nothing more is needed of.
const REST: u32 = 1;
/// Right after the status code: a space or the line's end.
const REASON: u32 = 8;
/// After `Content-Length:`, before its digits.
const LEAD: u32 = 2;
const DIGITS: u32 = 3;
/// After the digits: only whitespace may follow.
const TRAIL: u32 = 4;
/// The head ended and announced a body worth skipping.
const FOUND: u32 = 5;
/// Nothing to skip here (or nothing the filter can be sure of): userspace decides.
const NONE: u32 = 6;

/// Content-Length when none was seen.
const NO_LENGTH: u64 = u64::MAX;

/// Reads a response head byte by byte after its status line ([`skippable_status`]), for the
/// kernel filter to start skipping a body without waiting for userspace to parse the head.
///
/// A few steps per call of [`advance`](Self::advance), so that the filter can run it under
/// `bpf_loop` with the state in a map value: the verifier checks a call once instead of every
/// path through a scan of 512 bytes (bounded loops over the bytes passed neither its instruction
/// nor its state limit). Inside a field name or a line it has no use for, a step takes up to a
/// word: up to the first byte that is not a letter, digit or `-` (names), or a control byte
/// (values).
///
/// It finds Content-Length (any case, whitespace around the digits, the same value twice) and
/// the empty line; Transfer-Encoding, a second different length, a malformed value, or a head
/// longer than [`HEAD_SCAN`] leave the decision to userspace. It cannot know the request (a HEAD's
/// response announces a length and sends no body): the filter does not read the heads of a
/// connection whose client segments have started with `HEAD ` (a HEAD pipelined behind another
/// request in one segment is not seen). Bytes cut wrongly are taken as body by userspace only
/// where its own parse puts a body; anywhere else they are a counted gap, never a wrong number.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HeadScan {
    /// The Content-Length digits read so far.
    value: u64,
    /// The Content-Length announced, or [`NO_LENGTH`].
    length: u64,
    /// Bytes of the current line so far, not counting CR; 0 at a line's start.
    line: u32,
    digits: u32,
    state: u32,
    /// Once found: the head's length, its empty line included.
    head_len: u32,
    /// 1 after a CR: only LF may follow.
    cr: u32,
    /// The next byte's offset in the payload.
    at: u32,
    /// Lines ended so far, the status line included.
    lines: u32,
    _pad: u32,
}

impl Default for HeadScan {
    fn default() -> Self {
        Self::new()
    }
}

impl HeadScan {
    /// A scan that has read a status line of [`STATUS_PREFIX`] bytes and goes on at its reason
    /// phrase.
    #[inline(always)]
    #[must_use]
    pub const fn new() -> Self {
        Self {
            value: 0,
            length: NO_LENGTH,
            line: STATUS_PREFIX as u32,
            digits: 0,
            state: REASON,
            head_len: 0,
            cr: 0,
            at: STATUS_PREFIX as u32,
            lines: 0,
            _pad: 0,
        }
    }

    /// Reads on in `bytes`, the payload's first `avail` bytes: up to [`HEAD_CHUNK`] of them.
    /// False once it has decided, or read all `avail` without deciding.
    #[inline(always)]
    pub fn advance(&mut self, bytes: &HeadBytes, avail: u32) -> bool {
        let mut k = 0;
        while k < HEAD_CHUNK {
            // Read afresh each time round: otherwise the compiler computes `bytes + at` once
            // before the loop, from an `at` the verifier cannot bound, and steps the pointer.
            // SAFETY: a plain read of a field of `self`.
            let at = unsafe { core::ptr::read_volatile(&raw const self.at) };
            if at >= avail || at as usize >= HEAD_SCAN {
                return false;
            }
            if self.cr == 0 && (self.state == REST || self.state == NAME) {
                // Up to the first byte that matters in this word at once: inside a line
                // nothing more is needed of, a control byte, CR or LF; in a field name, any
                // byte but a letter, a digit or `-` (the colon, or one to look at closer).
                let w = bytes.word(at as usize);
                let m = if self.state == REST {
                    unusual_bytes(w)
                } else {
                    not_name_bytes(w)
                } >> ((at & 7) * 8);
                let next = (at + plain_bytes(m)).min((at | 7) + 1).min(avail);
                if next > at {
                    self.line += next - at;
                    self.at = next;
                    k += 1;
                    continue;
                }
            }
            let b = bytes.0[at as usize];
            self.at = at + 1;
            let more = if self.state == NAME && b == b':' && self.cr == 0 {
                self.name_end(bytes, at)
            } else {
                self.step(b, at)
            };
            if !more {
                return false;
            }
            k += 1;
        }
        true
    }

    /// Takes byte `b`, at offset `at` of the payload; false once the scan has decided.
    #[inline(always)]
    fn step(&mut self, b: u8, at: u32) -> bool {
        if self.cr != 0 && b != b'\n' {
            return self.give_up(); // a CR not ending a line
        }
        if b == b'\n' {
            self.cr = 0;
            return self.line_end(at);
        }
        if b == b'\r' {
            self.cr = 1;
            if self.state == DIGITS {
                self.state = TRAIL;
            }
            return true;
        }
        let space = b == b' ' || b == b'\t';
        if (b < 0x20 && !space) || b == 0x7f {
            return self.give_up(); // a control byte: not a head userspace would parse
        }
        self.line += 1;
        match self.state {
            REASON if b == b' ' => self.state = REST,
            // Whitespace before the colon, or any other byte a field name cannot hold:
            // userspace rejects the head. (The colon is `name_end`'s.)
            NAME if !is_token(b) => return self.give_up(),
            NAME => {}
            LEAD if space => {}
            LEAD | DIGITS if b.is_ascii_digit() => {
                // At most 18 digits: no overflow, and far beyond any body.
                if self.digits == 18 {
                    return self.give_up();
                }
                self.value = self.value * 10 + u64::from(b - b'0');
                self.digits += 1;
                self.state = DIGITS;
            }
            DIGITS | TRAIL if space => self.state = TRAIL,
            REST => {}
            _ => return self.give_up(),
        }
        true
    }

    /// A line ended at `at` (its LF).
    #[inline(always)]
    fn line_end(&mut self, at: u32) -> bool {
        if self.line == 0 {
            // The empty line: the head ends after it.
            if self.length != NO_LENGTH && self.length >= SKIP_MIN {
                self.state = FOUND;
                self.head_len = at + 1;
            } else {
                self.state = NONE;
            }
            return false;
        }
        self.lines += 1;
        if self.lines > HEAD_FIELDS_MAX + 1 {
            return self.give_up(); // more fields than userspace parses
        }
        match self.state {
            // A field line without a colon (or an empty value): userspace rejects it.
            NAME | LEAD => return self.give_up(),
            DIGITS | TRAIL => {
                if self.length != NO_LENGTH && self.length != self.value {
                    return self.give_up(); // two lengths that disagree: userspace calls it an error
                }
                self.length = self.value;
            }
            _ => {}
        }
        self.line = 0;
        self.value = 0;
        self.digits = 0;
        self.state = NAME;
        true
    }

    /// The colon at `at` ends a field name of `line` bytes: Content-Length's value is read,
    /// Transfer-Encoding ends the scan, any other field's line is passed over.
    #[inline(always)]
    fn name_end(&mut self, bytes: &HeadBytes, at: u32) -> bool {
        let n = self.line;
        self.line += 1;
        if n == 0 {
            return self.give_up();
        }
        let start = at.wrapping_sub(n);
        if n == 14 && bytes.holds_name(start, b"content-length") {
            self.state = LEAD;
        } else if n == 17 && bytes.holds_name(start, b"transfer-encoding") {
            // Chunked or otherwise coded: its length is not the body's.
            return self.give_up();
        } else {
            self.state = REST;
        }
        true
    }

    #[inline(always)]
    fn give_up(&mut self) -> bool {
        self.state = NONE;
        false
    }

    /// Once the scan has stopped: the head's length and the body's announced length, when the
    /// head ended with a body of at least [`SKIP_MIN`] bytes.
    #[inline(always)]
    #[must_use]
    pub fn found(&self) -> Option<(u32, u64)> {
        (self.state == FOUND).then_some((self.head_len, self.length))
    }
}

/// The whole rule on a payload's first bytes, as the filter applies it: its status line, then
/// [`HeadScan`] over at most [`HEAD_SCAN`] bytes. The head's length and the body's.
#[must_use]
pub fn response_body(payload: &[u8]) -> Option<(u32, u64)> {
    let status: &[u8; STATUS_PREFIX] = payload.get(..STATUS_PREFIX)?.try_into().ok()?;
    if !skippable_status(status) {
        return None;
    }
    let mut bytes = HeadBytes([0; HEAD_SCAN]);
    let avail = payload.len().min(HEAD_SCAN);
    bytes.0[..avail].copy_from_slice(&payload[..avail]);
    let mut scan = HeadScan::new();
    while scan.advance(&bytes, avail as u32) {}
    scan.found()
}

/// Whether a payload of `len` bytes at sequence number `seq` lies wholly inside the skip stretch
/// of `v` (`Some(true)`), reaches or crosses its end (`Some(false)`: the stretch is used up), or
/// does neither (`None`: before it, or no stretch). Shared by the kernel filter and the tests.
#[inline(always)]
#[must_use]
pub fn skip_verdict(skip_seq: u32, skip_len: u32, seq: u32, len: u32) -> Option<bool> {
    if skip_len == 0 || len == 0 {
        return None;
    }
    let off = seq.wrapping_sub(skip_seq);
    if off >= skip_len {
        // Before the stretch (a retransmission, wrapping to a large offset) or past its end.
        return if off < 1 << 31 { Some(false) } else { None };
    }
    Some(len <= skip_len - off)
}

/// Whether a stretch userspace asks for (`new_seq`, `new_len`; a length of 0 asks to clear the
/// stretch that starts at `new_seq`) should replace the one the map holds (`cur_seq`, `cur_len`).
///
/// Userspace reads the connection behind the filter, by as much as a ring block takes to fill, and
/// the filter starts stretches itself from the heads it reads: what userspace asks for may be a
/// body the filter is already skipping, or one it has passed, while the map holds the next one.
/// So a stretch never moves back: it replaces none that ends at or after its end, and a clear
/// removes only the stretch of the body it was asked for.
#[inline(always)]
#[must_use]
pub fn replaces_stretch(cur_seq: u32, cur_len: u32, new_seq: u32, new_len: u32) -> bool {
    if new_len == 0 {
        return cur_len != 0 && cur_seq == new_seq;
    }
    if cur_len == 0 {
        return true;
    }
    let cur_end = cur_seq.wrapping_add(cur_len);
    let new_end = new_seq.wrapping_add(new_len);
    // Ends within 2^31 of each other (stretches are at most SKIP_MAX): a serial comparison.
    (new_end.wrapping_sub(cur_end) as i32) > 0
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both are repr(C), Copy, and have no implicit padding (checked by the layout tests), so
    // every byte pattern is a valid value and no uninitialised byte is ever read.
    unsafe impl aya::Pod for super::ConnKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ConnValue {}
}

/// Longest token [`starts_http_message`] compares.
pub const HTTP_TOKEN_MAX: usize = 8;

/// Tokens that open an HTTP message: request methods with their trailing space, the status line's
/// version prefix (RFC 9112 section 3 and 4), and the start of the HTTP/2 client connection preface
/// (`PRI * HTTP/2.0`, RFC 9113 3.4: h2c with prior knowledge; an h2c upgrade starts as HTTP/1.1).
const HTTP_TOKENS: [&[u8]; 11] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"HTTP/1.",
    b"PRI * HT",
];

/// Does a TCP payload whose first bytes are `head[..avail]` start an HTTP message (HTTP/1.x, or
/// the HTTP/2 preface)?
///
/// `avail` may be smaller than a token: a client that writes its request one byte per segment sends a
/// lone `G` first, and that segment must start the connection too, so a payload that is a strict
/// prefix of a token counts. `avail == 0` never matches.
///
/// Written with fixed-size arrays and constant loop bounds so the same code runs in the kernel filter
/// (where the verifier must see every loop end) and in host unit tests.
#[inline(always)]
#[must_use]
pub fn starts_http_message(head: &[u8; HTTP_TOKEN_MAX], avail: usize) -> bool {
    if avail == 0 {
        return false;
    }
    let mut t = 0;
    while t < HTTP_TOKENS.len() {
        if token_matches(HTTP_TOKENS[t], head, avail) {
            return true;
        }
        t += 1;
    }
    false
}

/// Length of an HTTP/2 frame header (RFC 9113 4.1).
pub const H2_FRAME_HEAD: usize = 9;

/// The payload length of the HTTP/2 frame whose 9-byte header is `h`, if the header is
/// plausible: a known type (DATA to CONTINUATION), the reserved bit clear, a length within the
/// default SETTINGS_MAX_FRAME_SIZE, and the stream and length the type requires (SETTINGS, PING,
/// GOAWAY on stream 0; PRIORITY 5 bytes, RST_STREAM and WINDOW_UPDATE 4, PING 8...).
///
/// How a connection picked up in its middle shows it is HTTP/2 (no preface to see): the kernel
/// filter keeps a connection whose segment is one plausible frame exactly, or begins with two;
/// userspace takes a segment of plausible frames that end where it ends.
#[inline(always)]
#[must_use]
pub fn h2_frame_len(h: &[u8; H2_FRAME_HEAD]) -> Option<u32> {
    let len = (h[0] as u32) << 16 | (h[1] as u32) << 8 | h[2] as u32;
    let stream = (h[5] as u32) << 24 | (h[6] as u32) << 16 | (h[7] as u32) << 8 | h[8] as u32;
    if stream & 0x8000_0000 != 0 || len > 16_384 {
        return None;
    }
    let ok = match h[3] {
        // DATA, HEADERS, PUSH_PROMISE, CONTINUATION
        0 | 1 | 5 | 9 => stream != 0,
        // PRIORITY
        2 => stream != 0 && len == 5,
        // RST_STREAM
        3 => stream != 0 && len == 4,
        // SETTINGS
        4 => stream == 0 && len.is_multiple_of(6),
        // PING
        6 => stream == 0 && len == 8,
        // GOAWAY
        7 => stream == 0 && len >= 8,
        // WINDOW_UPDATE
        8 => len == 4,
        _ => false,
    };
    if ok { Some(len) } else { None }
}

#[inline(always)]
fn token_matches(token: &[u8], head: &[u8; HTTP_TOKEN_MAX], avail: usize) -> bool {
    let mut i = 0;
    while i < HTTP_TOKEN_MAX && i < token.len() {
        if i >= avail {
            // The payload ended inside the token: a prefix counts (see above).
            return true;
        }
        if head[i] != token[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use core::mem::{align_of, offset_of, size_of};

    use super::*;

    fn head(s: &[u8]) -> ([u8; HTTP_TOKEN_MAX], usize) {
        let mut h = [0u8; HTTP_TOKEN_MAX];
        let n = s.len().min(HTTP_TOKEN_MAX);
        h[..n].copy_from_slice(&s[..n]);
        (h, s.len())
    }

    fn starts(s: &[u8]) -> bool {
        let (h, n) = head(s);
        starts_http_message(&h, n)
    }

    #[test]
    fn conn_key_layout_has_no_holes() {
        // The fields' sizes add up to the struct size: no implicit padding the kernel would hash.
        assert_eq!(size_of::<ConnKey>(), 16 + 16 + 2 + 2 + 1 + 3);
        assert_eq!(size_of::<ConnKey>(), 40);
        assert_eq!(align_of::<ConnKey>(), 2);
        assert_eq!(offset_of!(ConnKey, src_addr), 0);
        assert_eq!(offset_of!(ConnKey, dst_addr), 16);
        assert_eq!(offset_of!(ConnKey, src_port), 32);
        assert_eq!(offset_of!(ConnKey, dst_port), 34);
        assert_eq!(offset_of!(ConnKey, family), 36);
        assert_eq!(offset_of!(ConnKey, pad), 37);
    }

    #[test]
    fn conn_value_layout_has_no_holes() {
        assert_eq!(size_of::<ConnValue>(), 24);
        assert_eq!(align_of::<ConnValue>(), 8);
        assert_eq!(offset_of!(ConnValue, last_seen_ns), 0);
        assert_eq!(offset_of!(ConnValue, packets), 8);
        assert_eq!(offset_of!(ConnValue, flags), 12);
        assert_eq!(offset_of!(ConnValue, skip_seq), 16);
        assert_eq!(offset_of!(ConnValue, skip_len), 20);
    }

    #[test]
    fn skip_stretch_takes_only_payloads_wholly_inside() {
        // A 1000-byte stretch at 5000.
        let v = |seq, len| skip_verdict(5000, 1000, seq, len);
        assert_eq!(v(5000, 1000), Some(true));
        assert_eq!(v(5100, 100), Some(true));
        assert_eq!(v(5900, 100), Some(true)); // ends exactly at the end: still inside
        assert_eq!(v(5900, 101), Some(false)); // crosses the end: kept whole, stretch done
        assert_eq!(v(6000, 10), Some(false)); // past the end
        assert_eq!(v(4990, 20), None); // straddles the start: kept whole, stretch stays
        assert_eq!(v(1000, 10), None); // an old retransmission
        assert_eq!(v(5100, 0), None); // no payload
        assert_eq!(skip_verdict(5000, 0, 5100, 10), None); // no stretch
        // Across the wrap of the sequence space.
        assert_eq!(skip_verdict(u32::MAX - 99, 1000, 50, 100), Some(true));
        assert_eq!(skip_verdict(u32::MAX - 99, 1000, 850, 100), Some(false));
    }

    #[test]
    fn reversed_swaps_ends_and_round_trips() {
        let k = ConnKey {
            src_addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            dst_addr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            src_port: 40_000,
            dst_port: 80,
            family: FAMILY_IPV4,
            pad: [0; 3],
        };
        let r = k.reversed();
        assert_eq!(r.src_addr, k.dst_addr);
        assert_eq!(r.dst_port, 40_000);
        assert_eq!(r.reversed(), k);
    }

    #[test]
    fn every_method_and_status_line_starts_a_message() {
        for s in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST /x HTTP/1.1\r\n",
            b"PUT /x HTTP/1.1",
            b"DELETE /x HTTP/1.1",
            b"HEAD / HTTP/1.0",
            b"OPTIONS * HTTP/1.1",
            b"PATCH /a HTTP/1.1",
            b"CONNECT h:443 HTTP/1.1",
            b"TRACE / HTTP/1.1",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.0 404 Not Found",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert!(starts(s), "{:?}", core::str::from_utf8(s));
        }
    }

    #[test]
    fn other_payloads_do_not() {
        for s in [
            &b"get / HTTP/1.1"[..],
            b"GETX / HTTP/1.1",
            b"HTTP/2.0 200",
            b"PRI * FTP",
            b"SSH-2.0-OpenSSH",
            b"\x16\x03\x01\x02\x00",
            b"hello world",
            b"\0\0\0\0\0\0\0\0\0",
            b"POSTAL",
        ] {
            assert!(!starts(s), "{:?}", s);
        }
        assert!(!starts(b""));
    }

    #[test]
    fn plausible_http2_frame_headers() {
        let h = |len: u32, kind: u8, stream: u32| {
            let l = len.to_be_bytes();
            let s = stream.to_be_bytes();
            [l[1], l[2], l[3], kind, 0, s[0], s[1], s[2], s[3]]
        };
        assert_eq!(h2_frame_len(&h(8, 6, 0)), Some(8)); // PING
        assert_eq!(h2_frame_len(&h(4, 8, 3)), Some(4)); // WINDOW_UPDATE on a stream
        assert_eq!(h2_frame_len(&h(100, 0, 1)), Some(100)); // DATA
        assert_eq!(h2_frame_len(&h(12, 4, 0)), Some(12)); // SETTINGS
        assert_eq!(h2_frame_len(&h(8, 6, 1)), None); // PING on a stream
        assert_eq!(h2_frame_len(&h(100, 0, 0)), None); // DATA on stream 0
        assert_eq!(h2_frame_len(&h(7, 4, 0)), None); // SETTINGS of 7 bytes
        assert_eq!(h2_frame_len(&h(20_000, 0, 1)), None); // past the default size
        assert_eq!(h2_frame_len(&h(5, 10, 1)), None); // unknown type
        assert_eq!(h2_frame_len(&h(5, 0, 0x8000_0001)), None); // reserved bit
        assert_eq!(h2_frame_len(b"GET / HTT"), None);
        assert_eq!(h2_frame_len(b"HTTP/1.1 "), None);
    }

    #[test]
    fn a_response_head_with_a_long_body_is_read_in_the_kernel() {
        let h = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5242880\r\nConnection: keep-alive\r\n\r\nBODY";
        assert_eq!(response_body(h), Some((h.len() as u32 - 4, 5_242_880)));
        // nginx's head of a static file, as it sends it.
        let h = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 03 Dec 2026 00:10:00 GMT\r\nContent-Type: application/octet-stream\r\nContent-Length: 5242880\r\nLast-Modified: Thu, 03 Dec 2026 00:09:00 GMT\r\nConnection: keep-alive\r\nETag: \"abc-500000\"\r\nAccept-Ranges: bytes\r\n\r\n";
        assert_eq!(response_body(h), Some((h.len() as u32, 5_242_880)));
        // Any case, spaces after the colon, HTTP/1.0.
        let h = b"HTTP/1.0 206 Partial\r\ncontent-LENGTH:   100000\r\n\r\n";
        assert_eq!(response_body(h), Some((h.len() as u32, 100_000)));
        // The same length twice is one length.
        let h = b"HTTP/1.1 200 OK\r\nContent-Length: 40000\r\nContent-Length: 40000\r\n\r\n";
        assert_eq!(response_body(h), Some((h.len() as u32, 40_000)));
    }

    #[test]
    fn a_head_with_more_fields_than_userspace_parses_is_left_to_it() {
        let head = |fields: u32| {
            let mut h = b"HTTP/1.1 200 OK\r\nContent-Length: 99999\n".to_vec();
            for _ in 1..fields {
                h.extend_from_slice(b"h:\n");
            }
            h.extend_from_slice(b"\n");
            h
        };
        assert!(response_body(&head(HEAD_FIELDS_MAX)).is_some());
        assert_eq!(response_body(&head(HEAD_FIELDS_MAX + 1)), None);
    }

    #[test]
    fn heads_the_kernel_leaves_to_userspace() {
        for h in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"[..], // too short to skip
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nContent-Length: 99999\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99999\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\nContent-Length: 99999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n", // head not ended in the scan
            b"HTTP/1.1 200 OK\r\nContent-Length: 9x999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 40000\r\nContent-Length: 50000\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789012\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-Content-Length: 99999\r\n\r\n",
            b"HTTP/2.0 200 OK\r\nContent-Length: 99999\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n",
        ] {
            assert_eq!(response_body(h), None, "{:?}", core::str::from_utf8(h));
        }
        // A head longer than the scan.
        let mut long = [b'a'; HEAD_SCAN];
        long[..17].copy_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(response_body(&long), None);
        // A head cut short by the end of its segment, whatever follows in the buffer.
        assert_eq!(
            response_body(b"HTTP/1.1 200 OK\r\nContent-Length: 99999"),
            None
        );
        assert_eq!(
            response_body(b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n"),
            None
        );
        assert_eq!(
            response_body(b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r"),
            None
        );
    }

    #[test]
    fn a_stretch_never_moves_back() {
        // Nothing in the map: taken.
        assert!(replaces_stretch(0, 0, 1000, 500));
        // The filter already skips this body from its head: same end, left alone.
        assert!(!replaces_stretch(900, 600, 1000, 500));
        // Userspace is a body behind: the map holds the next one, which it must not replace.
        assert!(!replaces_stretch(5000, 70_000, 1000, 500));
        // A later body than the map's (which the filter has not yet passed): taken.
        assert!(replaces_stretch(1000, 500, 5000, 70_000));
        // Across the wrap of sequence numbers.
        assert!(!replaces_stretch(10, 70_000, u32::MAX - 100, 50));
        assert!(replaces_stretch(u32::MAX - 100, 50, 10, 70_000));
        // A clear removes only the stretch that starts where its body did.
        assert!(replaces_stretch(1000, 500, 1000, 0));
        assert!(!replaces_stretch(5000, 70_000, 1000, 0));
        assert!(!replaces_stretch(0, 0, 1000, 0));
    }

    #[test]
    fn name_bytes_are_letters_digits_and_dashes_exactly() {
        for b in 0..=255u8 {
            let name = b.is_ascii_alphanumeric() || b == b'-';
            for at in 0..8 {
                let mut w = *b"content-";
                w[at] = b;
                let m = not_name_bytes(u64::from_le_bytes(w));
                assert_eq!(m == 0, name, "byte {b:#x} at {at}");
                if !name {
                    assert_eq!(plain_bytes(m), at as u32, "byte {b:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn plain_bytes_counts_up_to_the_first_unusual_one() {
        let word = |b: &[u8; 8]| unusual_bytes(u64::from_le_bytes(*b));
        assert_eq!(plain_bytes(word(b"abcdefgh")), 8);
        assert_eq!(plain_bytes(word(b"\rbcdefgh")), 0);
        assert_eq!(plain_bytes(word(b"abc\ne\0gh")), 3);
        assert_eq!(plain_bytes(word(b"abcdefg\x7f")), 7);
        assert_eq!(plain_bytes(word(b"ab\xe9\xff\tfgh")), 4);
        assert_eq!(plain_bytes(word(b"a b \x1fxyz")), 4);
    }

    #[test]
    fn stretches_end_where_a_multiple_of_the_longest_is_left() {
        assert_eq!(stretch(1), 1);
        assert_eq!(stretch(SKIP_MAX), SKIP_MAX);
        assert_eq!(stretch(SKIP_MAX + 1), 1);
        assert_eq!(stretch(3 * SKIP_MAX + 7), 7);
    }

    #[test]
    fn a_short_segment_that_is_a_token_prefix_counts() {
        assert!(starts(b"G"));
        assert!(starts(b"GE"));
        assert!(starts(b"HTTP/"));
        assert!(starts(b"OPTION"));
        assert!(!starts(b"X"));
        assert!(!starts(b"GX"));
    }

    /// Which response heads the filter reads on a connection, given which announced a body
    /// worth skipping (`true`): every one until four in a row announce nothing, then one in
    /// eight until one does; the other flags bits are left alone.
    #[test]
    fn heads_of_a_connection_serving_small_responses_are_read_one_in_eight() {
        extern crate std;
        use std::{vec, vec::Vec};
        let run = |stretched: &[bool]| {
            let mut flags = FLAG_HEAD_ASKED;
            let mut read = Vec::new();
            for &s in stretched {
                match head_unread(flags) {
                    Some(f) => {
                        flags = f;
                        read.push(false);
                    }
                    None => {
                        flags = after_head_read(flags, s);
                        read.push(true);
                    }
                }
                assert_eq!(flags & FLAG_HEAD_ASKED, FLAG_HEAD_ASKED);
            }
            read
        };
        // Small responses only: four read, then one in eight.
        let small = run(&[false; 4 + 8 * 3]);
        let mut expected = vec![true; 4];
        for _ in 0..3 {
            expected.extend([false; 7]);
            expected.push(true);
        }
        assert_eq!(small, expected);
        // Small and large in turn (as a browser fetches a page and its images): all read.
        let mixed: Vec<bool> = (0..40).map(|i| i % 3 == 0).collect();
        assert!(run(&mixed).iter().all(|&r| r));
        // A large body among small ones, once read, ends the quiet: the next three small heads
        // are read too.
        let mut after = [false; 4 + 7 + 1 + 4 + 7].to_vec();
        after[11] = true;
        let mut expected = vec![true; 4];
        expected.extend([false; 7]);
        expected.extend([true; 5]);
        expected.extend([false; 7]);
        assert_eq!(run(&after), expected);
    }
}
