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
    // Its own files only: other tests use the directory at the same time.
    std::fs::remove_file(&fifo).unwrap();
    std::fs::remove_file(&ng_path).unwrap();
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
    let cap = src.input.allocated();
    assert!(cap <= MAX_RECORD + 4 * WINDOW, "{cap}");
    assert!(
        !src.input.ended(),
        "read to the end for a record that cannot be"
    );
    std::fs::remove_file(&path).unwrap();
}

/// A file's read windows are shared with worker threads: a window someone still holds keeps its
/// bytes while the source reads on, and windows no one holds are filled again rather than new
/// ones taken, so memory stays flat however long the file.
#[test]
fn shared_windows_stay_intact_while_held_and_are_reused_once_free() {
    use pcap_file::pcap::{PcapPacket, PcapWriter};
    let frame = |i: u32| -> Vec<u8> {
        (0..1000u32)
            .map(|j| (i.wrapping_mul(31) ^ j) as u8)
            .collect()
    };
    let frames = 12_000;
    let mut w = PcapWriter::new(Vec::new()).unwrap();
    for i in 0..frames {
        let ts = Duration::from_micros(u64::from(i));
        w.write_packet(&PcapPacket::new(ts, 1000, &frame(i)))
            .unwrap();
    }
    let path = temp("shared.pcap");
    std::fs::write(&path, w.into_writer()).unwrap();
    let mut src = FileSource::open(&path).unwrap();
    let mut held = Vec::new();
    let mut windows = 0;
    let mut last = None;
    let mut i = 0;
    while let Next::Packet(p) = src.next_packet(Duration::ZERO).unwrap() {
        let s = p.shared.expect("a file's frames lie in a shared window");
        assert_eq!(p.data, &frame(i)[..]);
        if last
            .as_ref()
            .is_none_or(|l: &crate::packet::Shared| !l.same(s))
        {
            windows += 1;
            last = Some(s.clone());
        }
        // A frame of each of the first windows held, as a worker with a batch in flight does.
        if i < 3000 && i % 500 == 0 {
            held.push((s.clone(), s.offset_of(p.data).unwrap(), i));
        }
        i += 1;
    }
    drop(last);
    assert_eq!(i, frames);
    for (s, at, i) in &held {
        assert_eq!(&s[*at..*at + 1000], &frame(*i)[..]);
    }
    // 12 MB through 1 MiB windows: the three or four held are not filled again, and the others
    // take turns in two buffers.
    assert!(windows >= 11, "{windows} windows");
    assert!(
        src.input.fresh <= 5,
        "{} buffers taken new",
        src.input.fresh
    );
    std::fs::remove_file(&path).unwrap();
}

/// Records longer than a window (pcapng allows any length) among short ones: the window grows
/// for them, and every record read from the file equals the one read from memory, through one
/// reused buffer and with earlier windows held as a worker would hold them.
#[test]
fn records_longer_than_a_window_read_whole() {
    use pcap_file::pcapng::{
        PcapNgWriter,
        blocks::{
            enhanced_packet::EnhancedPacketBlock, interface_description::InterfaceDescriptionBlock,
        },
    };
    let mut ng = PcapNgWriter::new(Vec::new()).unwrap();
    ng.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 0,
        options: vec![],
    })
    .unwrap();
    let sizes = [100, 3 * WINDOW + 17, 60, WINDOW - 5, 2 * WINDOW, 40];
    for (i, &n) in sizes.iter().cycle().take(30).enumerate() {
        let data: Vec<u8> = (0..n).map(|j| (i * 7 + j) as u8).collect();
        ng.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_micros(i as u64),
            original_len: n as u32,
            data: std::borrow::Cow::Owned(data),
            options: vec![],
        })
        .unwrap();
    }
    let bytes = ng.into_inner();
    let whole = all(&mut FileSource::from_bytes("long", bytes.clone()).unwrap());
    assert_eq!(whole.len(), 30);
    let path = temp("long.pcapng");
    std::fs::write(&path, &bytes).unwrap();
    same(&all(&mut FileSource::open(&path).unwrap()), &whole);
    // Holding every window, as workers with batches in flight would.
    let mut src = FileSource::open(&path).unwrap();
    let mut held = Vec::new();
    let mut read = Vec::new();
    while let Next::Packet(p) = src.next_packet(Duration::ZERO).unwrap() {
        held.push(p.shared.unwrap().clone());
        read.push((p.ts_ns, p.data.to_vec()));
    }
    same(&read, &whole);
    std::fs::remove_file(&path).unwrap();
}
