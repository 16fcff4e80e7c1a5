//! pcap and pcapng files, through the pcap-file crate. The format is told by the magic number, not the
//! file name.
//!
//! Read front to back through a window of about a MiB (`read(2)` into a few reused buffers, which
//! worker threads read payloads from in place: [`crate::packet::Shared`]): memory stays flat for a
//! capture of any size and for a pipe (`tcpdump -w - | http-top -r /dev/stdin`), and it is faster
//! than mapping the file (measured on a 484 MB capture: page faults and `madvise` took 23% of the
//! run when mapped; mapped again later with payloads read in place: no faster, the workers then
//! read every payload cold).
//!
//! A record that cannot be read ends the file with what was read so far (pcap has no way to find the
//! next record after a corrupt length); it is counted in [`CaptureStats::bad_records`] and reported,
//! never a panic.

use std::{fs::File, ops::Range, path::Path, time::Duration};

use anyhow::{Context, bail};
use pcap_file::{
    DataLink, PcapError,
    pcap::PcapParser,
    pcapng::{
        Block, PcapNgParser,
        blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
    },
};

mod window;

use self::window::{Input, MAX_RECORD, WINDOW};
use super::{CaptureStats, Next, PacketSource};
use crate::packet::{Direction, LinkType, Packet};

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x4d, 0x3c, 0xb2, 0xa1],
];

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
        let mut input = Input::file(file, len);
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
        let input = Input::memory(data);
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
                        shared: Some(&self.input.buf),
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
mod tests;
