//! pcap and pcapng files, through the pcap-file crate. The format is told by the magic number, not the
//! file name.
//!
//! A record that cannot be read ends the file with what was read so far (pcap has no way to find the
//! next record after a corrupt length); it is counted in [`CaptureStats::bad_records`] and reported,
//! never a panic.

use std::{fs::File, path::Path, time::Duration};

use anyhow::{Context, bail};
use memmap2::Mmap;
use pcap_file::{
    DataLink, PcapError,
    pcap::PcapParser,
    pcapng::{
        Block, PcapNgParser,
        blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
    },
};

use super::{CaptureStats, Direction, LinkType, Next, Packet, PacketSource};

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x4d, 0x3c, 0xb2, 0xa1],
];

/// The file's bytes: mapped when it is a regular file (no copy, and the page cache does the
/// read-ahead), read into memory otherwise (a pipe or a FIFO).
enum Bytes {
    Map(Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Map(m) => m,
            Self::Owned(v) => v,
        }
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
    bytes: Bytes,
    /// Start of the part of a mapping not yet handed back to the kernel (see `release_behind`).
    released: usize,
    /// Offset of the next record in `bytes`.
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
        let is_file = file.metadata().map(|m| m.is_file()).unwrap_or(false);
        let bytes = if is_file {
            // SAFETY: the mapping is read-only; a file truncated by someone else while we read it
            // would fault, which is the documented limit of reading captures by mapping.
            let m = unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {name}"))?;
            // Read once, front to back: read ahead aggressively.
            let _ = m.advise(memmap2::Advice::Sequential);
            Bytes::Map(m)
        } else {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut v)
                .with_context(|| format!("cannot read {name}"))?;
            Bytes::Owned(v)
        };
        // Shown in every output line: the file name, not the whole path.
        let short = path
            .file_name()
            .map_or_else(|| name.clone(), |n| n.to_string_lossy().into_owned());
        Self::from_parts(&name, short, bytes)
    }

    /// A capture held in memory (tests, fuzzing, data from a pipe).
    pub fn from_bytes(name: &str, data: Vec<u8>) -> anyhow::Result<Self> {
        Self::from_parts(name, name.to_owned(), Bytes::Owned(data))
    }

    fn from_parts(name: &str, short: String, bytes: Bytes) -> anyhow::Result<Self> {
        let data = bytes.as_slice();
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
            bytes,
            pos,
            released: 0,
            parser,
            names: vec![short],
            stats: CaptureStats::default(),
            bad_record: None,
            done: false,
        })
    }
}

/// How far the read position moves before the pages behind it are handed back.
const RELEASE_EVERY: usize = 2 << 20;

impl FileSource {
    /// Hands the mapped pages behind the read position back to the kernel every
    /// [`RELEASE_EVERY`] bytes, so reading a capture of many GB costs a bounded resident size; the
    /// pages stay in the page cache.
    fn release_behind(&mut self) {
        if let Bytes::Map(m) = &self.bytes
            && self.pos - self.released >= RELEASE_EVERY
        {
            let end = self.pos & !0xfff;
            // SAFETY: MADV_DONTNEED on a read-only, file-backed private mapping only drops this
            // process's references to the pages; touching them again reads the file's data back,
            // so the range (all behind the read position, including any packet handed out before)
            // stays valid to read.
            let r = unsafe {
                m.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    self.released,
                    end - self.released,
                )
            };
            if r.is_ok() {
                self.released = end;
            }
        }
    }
}

/// Remembers why the file ended early; the caller reports it (never on a terminal the dashboard
/// owns).
fn report_bad_record(last: &mut Option<String>, err: &PcapError) {
    *last = Some(err.to_string());
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

impl PacketSource for FileSource {
    fn next_packet(&mut self, _timeout: Duration) -> anyhow::Result<Next<'_>> {
        self.release_behind();
        let data = self.bytes.as_slice();
        loop {
            if self.done || self.pos >= data.len() {
                self.done = true;
                return Ok(Next::End);
            }
            let src = &data[self.pos..];
            let (ts_ns, link, frame, orig_len) = match &mut self.parser {
                Parser::Pcap { parser, link } => match parser.next_packet(src) {
                    Ok((rest, p)) => {
                        self.pos = data.len() - rest.len();
                        let ts_ns = u64::try_from(p.timestamp.as_nanos()).unwrap_or(u64::MAX);
                        let frame: &[u8] = match p.data {
                            std::borrow::Cow::Borrowed(d) => d,
                            // The parser borrows from its input; an owned copy would be a bug in it.
                            std::borrow::Cow::Owned(_) => continue,
                        };
                        (ts_ns, *link, frame, p.orig_len)
                    }
                    Err(e) => {
                        // pcap has no way to find the next record after a bad one.
                        self.stats.bad_records += 1;
                        self.done = true;
                        report_bad_record(&mut self.bad_record, &e);
                        return Ok(Next::End);
                    }
                },
                Parser::PcapNg { parser, ifaces } => {
                    let block = match parser.next_block(src) {
                        Ok((rest, b)) => {
                            self.pos = data.len() - rest.len();
                            b
                        }
                        Err(e) => {
                            self.stats.bad_records += 1;
                            self.done = true;
                            report_bad_record(&mut self.bad_record, &e);
                            return Ok(Next::End);
                        }
                    };
                    let (iface, ts_raw, frame, orig_len) = match block {
                        Block::SectionHeader(_) => {
                            ifaces.clear();
                            continue;
                        }
                        Block::InterfaceDescription(idb) => {
                            ifaces.push(ng_iface(&idb));
                            continue;
                        }
                        Block::EnhancedPacket(epb) => (
                            ifaces.get(epb.interface_id as usize),
                            Some(epb.timestamp),
                            epb.data,
                            epb.original_len,
                        ),
                        Block::SimplePacket(spb) => {
                            (ifaces.first(), None, spb.data, spb.original_len)
                        }
                        _ => continue,
                    };
                    let Some(iface) = iface else {
                        self.stats.bad_records += 1;
                        continue;
                    };
                    let Some(link) = iface.link else {
                        self.stats.unsupported_link += 1;
                        continue;
                    };
                    // pcap-file hands back the raw timestamp units as if they were nanoseconds;
                    // scale them by the interface's resolution.
                    let ts_ns = ts_raw.map_or(0, |t| {
                        let raw = t.as_nanos();
                        u64::try_from(raw * u128::from(iface.num) / u128::from(iface.den))
                            .unwrap_or(u64::MAX)
                            .saturating_add(iface.offset_ns)
                    });
                    let frame: &[u8] = match frame {
                        std::borrow::Cow::Borrowed(d) => d,
                        std::borrow::Cow::Owned(_) => continue,
                    };
                    (ts_ns, link, frame, orig_len)
                }
            };
            self.stats.packets += 1;
            return Ok(Next::Packet(Packet {
                ts_ns,
                link,
                data: frame,
                orig_len,
                iface: 0,
                direction: Direction::Unknown,
            }));
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
        let len = self.bytes.as_slice().len();
        Some(if len == 0 {
            1.0
        } else {
            self.pos as f64 / len as f64
        })
    }
}
