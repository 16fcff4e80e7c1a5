//! pcap and pcapng files, through the pcap-file crate. The format is told by the magic number, not the
//! file name.
//!
//! Read front to back through a window of about a MiB (`read(2)` into one reused buffer): memory stays
//! flat for a capture of any size and for a pipe (`tcpdump -w - | http-top -r /dev/stdin`), and it
//! is faster than mapping the file (measured on a 484 MB capture: page faults and `madvise` took 23%
//! of the run when mapped).
//!
//! A record that cannot be read ends the file with what was read so far (pcap has no way to find the
//! next record after a corrupt length); it is counted in [`CaptureStats::bad_records`] and reported,
//! never a panic.

use std::{fs::File, io::Read, ops::Range, path::Path, time::Duration};

use anyhow::{Context, bail};
use pcap_file::{
    DataLink, PcapError,
    pcap::PcapParser,
    pcapng::{
        Block, PcapNgParser,
        blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
    },
};

use super::{CaptureStats, Next, PacketSource};
use crate::packet::{Direction, LinkType, Packet};

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x4d, 0x3c, 0xb2, 0xa1],
];

/// Bytes read at a time. The buffer is refilled only when a record runs past its end, so what
/// moves to its front each time is less than one record.
const WINDOW: usize = 1 << 20;

/// Largest record accepted: a corrupt length must not make the window grow to the file's size.
const MAX_RECORD: usize = 64 << 20;

/// The input seen through a window: `buf` holds its bytes from offset `base` on.
struct Input {
    /// `None` for a capture given in memory, and once the input has ended.
    file: Option<File>,
    buf: Vec<u8>,
    base: usize,
    /// Size of the whole input when known (a regular file, or bytes in memory), for progress.
    len: Option<u64>,
}

impl Input {
    /// Bytes in the buffer from offset `pos` on.
    fn from(&self, pos: usize) -> &[u8] {
        &self.buf[pos - self.base..]
    }

    fn ended(&self) -> bool {
        self.file.is_none()
    }

    /// Drops what is before `pos` and reads until `want` bytes from `pos` on are buffered or the
    /// input ends.
    fn fill(&mut self, pos: usize, want: usize) -> std::io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        // What is left of the buffer is less than a record: moving it is cheap.
        self.buf.drain(..pos - self.base);
        self.base = pos;
        while self.buf.len() < want {
            let room = (want - self.buf.len()).max(WINDOW);
            // Exactly: doubling would reserve twice a big record.
            self.buf.reserve_exact(room);
            // read_to_end reads into spare capacity without zeroing it first.
            if file.take(room as u64).read_to_end(&mut self.buf)? == 0 {
                self.file = None;
                break;
            }
        }
        Ok(())
    }
}

enum Parser {
    Pcap {
        parser: PcapParser,
        link: LinkType,
    },
    PcapNg {
        parser: PcapNgParser,
        ifaces: Vec<NgIface>,
    },
}

/// What a pcapng Interface Description Block says about the packets that name it.
struct NgIface {
    link: Option<LinkType>,
    /// Multiply the raw timestamp by `num`, divide by `den`, to get nanoseconds.
    num: u64,
    den: u64,
    offset_ns: u64,
}

/// A pcap or pcapng file opened for reading.
pub struct FileSource {
    input: Input,
    /// Offset of the next record in the input.
    pos: usize,
    parser: Parser,
    names: Vec<String>,
    stats: CaptureStats,
    /// Why the file ended before its end, if it did.
    pub bad_record: Option<String>,
    done: bool,
}

impl FileSource {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let name = path.display().to_string();
        let file = File::open(path).with_context(|| format!("cannot open {name}"))?;
        let len = file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        let mut input = Input {
            file: Some(file),
            buf: Vec::with_capacity(2 * WINDOW),
            base: 0,
            len,
        };
        input
            .fill(0, WINDOW)
            .with_context(|| format!("cannot read {name}"))?;
        // Shown in every output line: the file name, not the whole path.
        let short = path
            .file_name()
            .map_or_else(|| name.clone(), |n| n.to_string_lossy().into_owned());
        Self::from_parts(&name, short, input)
    }

    /// A capture held in memory (tests, fuzzing, data from a pipe).
    pub fn from_bytes(name: &str, data: Vec<u8>) -> anyhow::Result<Self> {
        let input = Input {
            file: None,
            len: Some(data.len() as u64),
            buf: data,
            base: 0,
        };
        Self::from_parts(name, name.to_owned(), input)
    }

    fn from_parts(name: &str, short: String, input: Input) -> anyhow::Result<Self> {
        let data = input.from(0);
        let Some(magic) = data.get(..4) else {
            bail!(
                "{name}: too short to be a capture file ({} bytes)",
                data.len()
            );
        };
        let (rest_len, parser) = if magic == PCAPNG_MAGIC {
            let (rest, parser) = PcapNgParser::new(data)
                .map_err(|e| anyhow::anyhow!("{name}: bad pcapng header: {e}"))?;
            (
                rest.len(),
                Parser::PcapNg {
                    parser,
                    ifaces: Vec::new(),
                },
            )
        } else if PCAP_MAGICS.iter().any(|m| m == magic) {
            let (rest, parser) = PcapParser::new(data)
                .map_err(|e| anyhow::anyhow!("{name}: bad pcap header: {e}"))?;
            let datalink = parser.header().datalink;
            let Some(link) = link_type(datalink) else {
                bail!(
                    "{name}: link type {datalink:?} is not supported (Ethernet, raw IP, Linux cooked \
                     capture and BSD loopback are)"
                );
            };
            (rest.len(), Parser::Pcap { parser, link })
        } else {
            bail!("{name}: not a pcap or pcapng file (magic {magic:02x?})");
        };
        let pos = data.len() - rest_len;
        Ok(Self {
            input,
            pos,
            parser,
            names: vec![short],
            stats: CaptureStats::default(),
            bad_record: None,
            done: false,
        })
    }
}

impl FileSource {
    /// Ends the input at a record that cannot be read (pcap has no way to find the next one after
    /// a bad length) and remembers why; the caller reports it (never on a terminal the dashboard
    /// owns).
    fn bad_end(&mut self, err: &PcapError) {
        self.stats.bad_records += 1;
        self.done = true;
        self.bad_record = Some(err.to_string());
    }
}

fn link_type(dl: DataLink) -> Option<LinkType> {
    Some(match dl {
        DataLink::ETHERNET => LinkType::Ethernet,
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => LinkType::RawIp,
        DataLink::LINUX_SLL => LinkType::LinuxSll,
        DataLink::LINUX_SLL2 => LinkType::LinuxSll2,
        DataLink::NULL => LinkType::Null,
        DataLink::LOOP => LinkType::Loop,
        _ => return None,
    })
}

fn ng_iface(idb: &InterfaceDescriptionBlock<'_>) -> NgIface {
    // Default resolution is microseconds (pcapng spec, if_tsresol).
    let (mut num, mut den) = (1_000, 1);
    let mut offset_ns = 0;
    for opt in &idb.options {
        match opt {
            InterfaceDescriptionOption::IfTsResol(r) => {
                let exp = u32::from(r & 0x7f);
                if r & 0x80 == 0 {
                    // 10^-exp seconds per unit.
                    if exp <= 9 {
                        (num, den) = (10u64.pow(9 - exp), 1);
                    } else {
                        (num, den) = (1, 10u64.saturating_pow(exp - 9));
                    }
                } else {
                    // 2^-exp seconds per unit.
                    (num, den) = (1_000_000_000, 1u64.checked_shl(exp).unwrap_or(u64::MAX));
                }
            }
            InterfaceDescriptionOption::IfTsOffset(s) => {
                offset_ns = s.saturating_mul(1_000_000_000)
            }
            _ => {}
        }
    }
    NgIface {
        link: link_type(idb.linktype),
        num,
        den,
        offset_ns,
    }
}

/// What parsing at the read position found.
enum Step {
    Packet {
        ts_ns: u64,
        link: LinkType,
        /// Where the frame lies in the input buffer.
        frame: Range<usize>,
        orig_len: u32,
    },
    /// A block that is not a packet, or a packet that cannot be used; counted where it applies.
    Skip,
    /// The record runs past the buffered bytes.
    Incomplete,
    /// A record that cannot be read; the input ends here.
    Bad(PcapError),
}

impl FileSource {
    fn parse_next(&mut self) -> Step {
        let buf = self.input.from(self.pos);
        // Offset of a borrowed frame in the buffer (the parsers hand out subslices of their input).
        let offset = |frame: &[u8]| {
            let start = frame.as_ptr() as usize - self.input.buf.as_ptr() as usize;
            start..start + frame.len()
        };
        match &mut self.parser {
            Parser::Pcap { parser, link } => match parser.next_packet(buf) {
                Ok((rest, p)) => {
                    self.pos += buf.len() - rest.len();
                    let ts_ns = u64::try_from(p.timestamp.as_nanos()).unwrap_or(u64::MAX);
                    match p.data {
                        std::borrow::Cow::Borrowed(d) => Step::Packet {
                            ts_ns,
                            link: *link,
                            frame: offset(d),
                            orig_len: p.orig_len,
                        },
                        // The parser borrows from its input; an owned copy would be a bug in it.
                        std::borrow::Cow::Owned(_) => Step::Skip,
                    }
                }
                Err(PcapError::IncompleteBuffer) => Step::Incomplete,
                Err(e) => Step::Bad(e),
            },
            Parser::PcapNg { parser, ifaces } => {
                let block = match parser.next_block(buf) {
                    Ok((rest, b)) => {
                        self.pos += buf.len() - rest.len();
                        b
                    }
                    Err(PcapError::IncompleteBuffer) => return Step::Incomplete,
                    Err(e) => return Step::Bad(e),
                };
                let (iface, ts_raw, frame, orig_len) = match block {
                    Block::SectionHeader(_) => {
                        ifaces.clear();
                        return Step::Skip;
                    }
                    Block::InterfaceDescription(idb) => {
                        ifaces.push(ng_iface(&idb));
                        return Step::Skip;
                    }
                    Block::EnhancedPacket(epb) => (
                        ifaces.get(epb.interface_id as usize),
                        Some(epb.timestamp),
                        epb.data,
                        epb.original_len,
                    ),
                    Block::SimplePacket(spb) => (ifaces.first(), None, spb.data, spb.original_len),
                    _ => return Step::Skip,
                };
                let Some(iface) = iface else {
                    self.stats.bad_records += 1;
                    return Step::Skip;
                };
                let Some(link) = iface.link else {
                    self.stats.unsupported_link += 1;
                    return Step::Skip;
                };
                // pcap-file hands back the raw timestamp units as if they were nanoseconds; scale
                // them by the interface's resolution.
                let ts_ns = ts_raw.map_or(0, |t| {
                    let raw = t.as_nanos();
                    u64::try_from(raw * u128::from(iface.num) / u128::from(iface.den))
                        .unwrap_or(u64::MAX)
                        .saturating_add(iface.offset_ns)
                });
                match frame {
                    std::borrow::Cow::Borrowed(d) => Step::Packet {
                        ts_ns,
                        link,
                        frame: offset(d),
                        orig_len,
                    },
                    std::borrow::Cow::Owned(_) => Step::Skip,
                }
            }
        }
    }
}

impl PacketSource for FileSource {
    fn next_packet(&mut self, _timeout: Duration) -> anyhow::Result<Next<'_>> {
        loop {
            if self.done {
                return Ok(Next::End);
            }
            if self.input.from(self.pos).is_empty() && !self.input.ended() {
                self.input
                    .fill(self.pos, WINDOW)
                    .context("cannot read the capture")?;
            }
            if self.input.from(self.pos).is_empty() {
                self.done = true;
                return Ok(Next::End);
            }
            match self.parse_next() {
                Step::Packet {
                    ts_ns,
                    link,
                    frame,
                    orig_len,
                } => {
                    return Ok(Next::Packet(Packet {
                        ts_ns,
                        link,
                        data: &self.input.buf[frame],
                        orig_len,
                        iface: 0,
                        direction: Direction::Unknown,
                    }));
                }
                Step::Skip => {}
                // The record runs past what is buffered: read on.
                Step::Incomplete
                    if !self.input.ended() && self.input.from(self.pos).len() < MAX_RECORD =>
                {
                    let want = self.input.from(self.pos).len() + WINDOW;
                    self.input
                        .fill(self.pos, want)
                        .context("cannot read the capture")?;
                }
                Step::Incomplete => {
                    self.bad_end(&PcapError::IncompleteBuffer);
                    return Ok(Next::End);
                }
                Step::Bad(e) => {
                    self.bad_end(&e);
                    return Ok(Next::End);
                }
            }
        }
    }

    fn interfaces(&self) -> &[String] {
        &self.names
    }

    fn stats(&mut self) -> CaptureStats {
        self.stats
    }

    fn problem(&self) -> Option<&str> {
        self.bad_record.as_deref()
    }

    fn progress(&self) -> Option<f64> {
        let len = self.input.len?;
        Some(if len == 0 {
            1.0
        } else {
            (self.pos as f64 / len as f64).min(1.0)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Write, path::PathBuf};

    use super::*;

    fn demo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/demo.pcap")
    }

    fn all(src: &mut FileSource) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Next::Packet(p) = src.next_packet(Duration::ZERO).unwrap() {
            out.push((p.ts_ns, p.data.to_vec()));
        }
        assert_eq!(src.problem(), None);
        out
    }

    /// Compares without printing thousands of frames when they differ.
    fn same(a: &[(u64, Vec<u8>)], b: &[(u64, Vec<u8>)]) {
        assert_eq!(a.len(), b.len());
        if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
            panic!("record {i} differs: ts {} vs {}", a[i].0, b[i].0);
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("http-top-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// The demo (1.6 MB) is longer than the read window, so records straddle refills; read through
    /// the window from a file, from a pipe and as pcapng, every record equals the one read whole
    /// from memory.
    #[test]
    fn windowed_reads_equal_reads_from_memory() {
        use pcap_file::pcapng::{
            PcapNgWriter,
            blocks::{
                enhanced_packet::EnhancedPacketBlock,
                interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            },
        };
        let bytes = std::fs::read(demo()).unwrap();
        assert!(bytes.len() > WINDOW);
        let whole = all(&mut FileSource::from_bytes("demo", bytes.clone()).unwrap());
        assert_eq!(whole.len(), 4124);

        let mut file = FileSource::open(&demo()).unwrap();
        same(&all(&mut file), &whole);
        assert_eq!(file.progress(), Some(1.0));

        let mut ng = PcapNgWriter::new(Vec::new()).unwrap();
        ng.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            // Nanosecond timestamps, like the pcap's.
            options: vec![InterfaceDescriptionOption::IfTsResol(9)],
        })
        .unwrap();
        for (ts, data) in &whole {
            ng.write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_nanos(*ts),
                original_len: data.len() as u32,
                data: std::borrow::Cow::Borrowed(data),
                options: vec![],
            })
            .unwrap();
        }
        let ng_path = temp("demo.pcapng");
        std::fs::write(&ng_path, ng.into_inner()).unwrap();
        same(&all(&mut FileSource::open(&ng_path).unwrap()), &whole);

        // A FIFO: no size, read as it comes.
        let fifo = temp("demo.fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut w = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
                // In pieces, as a live producer writes.
                for piece in bytes.chunks(100_000) {
                    w.write_all(piece).unwrap();
                }
            })
        };
        let mut piped = FileSource::open(&fifo).unwrap();
        assert_eq!(piped.progress(), None);
        same(&all(&mut piped), &whole);
        writer.join().unwrap();
        std::fs::remove_dir_all(fifo.parent().unwrap()).unwrap();
    }

    /// A pcapng block claiming 2 GiB in a longer file: the file ends there, counted, and the window
    /// stops growing at the record cap instead of reading on for it.
    #[test]
    fn a_corrupt_block_length_ends_the_file_without_reading_it_all() {
        let mut bytes = Vec::new();
        // Section header block (28 bytes, no options), then an Interface Description Block.
        bytes.extend_from_slice(&0x0a0d0d0au32.to_le_bytes());
        bytes.extend_from_slice(&28u32.to_le_bytes());
        bytes.extend_from_slice(&0x1a2b3c4du32.to_le_bytes());
        bytes.extend_from_slice(&[1, 0, 0, 0]);
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        bytes.extend_from_slice(&28u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&20u32.to_le_bytes());
        bytes.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&20u32.to_le_bytes());
        // An Enhanced Packet Block whose length says 2 GiB.
        bytes.extend_from_slice(&6u32.to_le_bytes());
        bytes.extend_from_slice(&0x8000_0000u32.to_le_bytes());
        bytes.resize(bytes.len() + MAX_RECORD + 8 * WINDOW, 0);
        let path = temp("corrupt.pcapng");
        std::fs::write(&path, &bytes).unwrap();
        let mut src = FileSource::open(&path).unwrap();
        assert!(matches!(
            src.next_packet(Duration::ZERO).unwrap(),
            Next::End
        ));
        assert_eq!(src.stats().bad_records, 1);
        assert!(src.problem().is_some());
        let cap = src.input.buf.capacity();
        assert!(cap <= MAX_RECORD + 4 * WINDOW, "{cap}");
        assert!(
            !src.input.ended(),
            "read to the end for a record that cannot be"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
