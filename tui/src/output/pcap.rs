//! `-w FILE`: every captured frame to a pcap file.

use std::path::PathBuf;

use crate::{
    packet::{LinkType, Packet},
    proto::Exchange,
    session::{Health, Output},
};

/// Writes captured frames to a pcap file (nanosecond timestamps), like `tcpdump -w`: what the
/// kernel filter kept, for a later `-r` or for Wireshark.
pub struct PcapOut {
    writer: pcap_file::pcap::PcapWriter<std::io::BufWriter<std::fs::File>>,
    link: LinkType,
}

impl PcapOut {
    pub fn create(path: &std::path::Path, link: LinkType) -> anyhow::Result<Self> {
        use pcap_file::{DataLink, Endianness, TsResolution, pcap::PcapHeader};
        let datalink = match link {
            LinkType::Ethernet => DataLink::ETHERNET,
            LinkType::RawIp => DataLink::RAW,
            LinkType::LinuxSll => DataLink::LINUX_SLL,
            LinkType::LinuxSll2 => DataLink::LINUX_SLL2,
            LinkType::Null => DataLink::NULL,
            LinkType::Loop => DataLink::LOOP,
        };
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: 262_144,
            datalink,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::native(),
        };
        let file = std::fs::File::create(path)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
        let writer =
            pcap_file::pcap::PcapWriter::with_header(std::io::BufWriter::new(file), header)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        Ok(Self { writer, link })
    }

    /// Appends one frame; frames of another link type than the first are skipped (a pcap file has
    /// one).
    pub fn write(&mut self, p: &Packet<'_>) -> anyhow::Result<()> {
        if p.link != self.link {
            return Ok(());
        }
        let ts = std::time::Duration::from_nanos(p.ts_ns);
        self.writer
            .write_packet(&pcap_file::pcap::PcapPacket::new(ts, p.orig_len, p.data))
            .map_err(|e| anyhow::anyhow!("writing the capture file: {e}"))?;
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<()> {
        use std::io::Write as _;
        self.writer.into_writer().flush()?;
        Ok(())
    }
}

/// `-w FILE` as a session output: the file is created with the first frame's link type.
pub struct PcapFile {
    pub path: PathBuf,
    pub out: Option<PcapOut>,
}

impl Output for PcapFile {
    fn packet(&mut self, p: &Packet<'_>) -> anyhow::Result<()> {
        if self.out.is_none() {
            self.out = Some(PcapOut::create(&self.path, p.link)?);
        }
        self.out.as_mut().map_or(Ok(()), |w| w.write(p))
    }
    fn wants_packets(&self) -> bool {
        true
    }
    fn wants_routes(&self) -> bool {
        false
    }
    fn exchange(&mut self, _e: &Exchange) -> anyhow::Result<()> {
        Ok(())
    }
    fn end(&mut self, _h: &Health) -> anyhow::Result<()> {
        self.out.take().map_or(Ok(()), PcapOut::finish)
    }
}
