//! Reading who owns what on this machine from `/proc`, `/run/netns` and the container runtimes'
//! own files, all under one root directory (`/` on a machine, a tree laid out like it in tests).
//!
//! One pass ([`scan`]) makes a [`Snapshot`]: every network namespace with its addresses and label,
//! and every TCP socket with the process that holds it. What cannot be read (a process that exited
//! mid-scan, a file the scanner has no right to) is skipped and counted, never fatal.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::owner::HOST;

/// Everything one scan found. Also the message the privileged helper sends (as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The network namespace the scan ran in (where `127.0.0.1` means this machine's own).
    pub self_netns: u64,
    pub namespaces: Vec<Namespace>,
    pub processes: Vec<ProcessEntry>,
    pub sockets: Vec<Socket>,
    /// Processes and namespaces that could not be read (exited mid-scan, or no permission).
    pub unreadable: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// The namespace's inode (`net:[INODE]`), its identity.
    pub inode: u64,
    /// A container's name, a named namespace's name, `host`, or `netns:[INODE]`.
    pub label: String,
    /// Its local addresses (IPv4 from `fib_trie`'s LOCAL routes, IPv6 from `if_inet6`).
    pub addrs: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEntry {
    pub pid: u32,
    /// As the process set it (it chooses its own name: [`super::Index`] escapes it like wire
    /// bytes).
    pub comm: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Socket {
    /// Index into [`Snapshot::namespaces`].
    pub ns: u32,
    pub local: SocketAddr,
    /// `None` for a listening socket.
    pub remote: Option<SocketAddr>,
    /// Index into [`Snapshot::processes`]: the lowest pid holding it (nginx's master, not a worker).
    pub process: u32,
}

/// Longest file the scan reads (a `tcp` table of a busy namespace is the largest).
const MAX_FILE: u64 = 64 << 20;

fn read(path: &Path) -> Option<String> {
    use std::io::Read;
    // Large reads: each read of /proc/net/tcp goes on walking the kernel's connection hash table
    // (one for all namespaces), and std's small first reads (32 bytes, then doubling) made a scan
    // of 30 namespaces take 0.59 s instead of 0.42 s. A short read is not the end: seq_file hands
    // over at most a page per read.
    const CHUNK: usize = 256 << 10;
    let mut f = fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    loop {
        let at = buf.len();
        if at as u64 >= MAX_FILE {
            break;
        }
        buf.resize(at + CHUNK, 0);
        match f.read(&mut buf[at..]) {
            Ok(0) => {
                buf.truncate(at);
                break;
            }
            Ok(n) => buf.truncate(at + n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(at),
            Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// `net:[4026531840]` -> 4026531840 (also `socket:[N]` with `prefix` `socket`).
fn bracketed(link: &str, prefix: &str) -> Option<u64> {
    link.strip_prefix(prefix)?
        .strip_prefix(":[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// A namespace file's inode: the link's target in `/proc/PID/ns/net`; for a bind mount in
/// `/run/netns`, the file's own inode (nsfs gives the namespace's).
fn netns_inode(path: &Path) -> Option<u64> {
    if let Ok(link) = fs::read_link(path) {
        return bracketed(link.to_str()?, "net");
    }
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| m.ino())
}

/// Parses `/proc/net/tcp` or `tcp6`: (local, remote, state, inode) per row. Addresses are printed
/// as the kernel's 32-bit words in host order (`%08X` of a `__be32`), ports in hex.
pub fn parse_tcp_table(text: &str) -> Vec<(SocketAddr, SocketAddr, u8, u64)> {
    let addr = |s: &str| -> Option<SocketAddr> {
        let (a, p) = s.split_once(':')?;
        let port = u16::from_str_radix(p, 16).ok()?;
        let word = |i: usize| -> Option<[u8; 4]> {
            Some(
                u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16)
                    .ok()?
                    .to_ne_bytes(),
            )
        };
        let ip = match a.len() {
            8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
            32 => {
                let mut o = [0u8; 16];
                for i in 0..4 {
                    o[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
                }
                unmap(IpAddr::V6(Ipv6Addr::from(o)))
            }
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = addr(f.get(1)?)?;
            let remote = addr(f.get(2)?)?;
            let state = u8::from_str_radix(f.get(3)?, 16).ok()?;
            let inode = f.get(9)?.parse().ok()?;
            Some((local, remote, state, inode))
        })
        .collect()
}

/// `::ffff:a.b.c.d` (an IPv4 peer of a dual-stack socket) as the IPv4 address the wire carries.
pub fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The local IPv4 addresses in a `fib_trie` dump: a `|-- A.B.C.D` leaf followed by a `/32 host
/// LOCAL` route (the kernel's own addresses; `ip route show table local` shows the same).
pub fn parse_fib_trie(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut leaf: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(a) = t.strip_prefix("|-- ") {
            leaf = a.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL")
            && let Some(a) = leaf
            && !out.contains(&IpAddr::V4(a))
        {
            out.push(IpAddr::V4(a));
        }
    }
    out
}

/// The addresses in `/proc/net/if_inet6` (32 hex digits, network order, first on each line).
pub fn parse_if_inet6(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let hex = l.split_whitespace().next()?;
            let v = u128::from_str_radix(hex, 16)
                .ok()
                .filter(|_| hex.len() == 32)?;
            Some(IpAddr::V6(Ipv6Addr::from(v)))
        })
        .collect()
}

/// A container runtime's id in a `/proc/PID/cgroup` path: the last 64-hex-digit name in it
/// (`docker-ID.scope`, `/docker/ID`, `libpod-ID.scope`, `cri-containerd-ID.scope`, a kubepods
/// leaf). Podman's `libpod-conmon-ID` is the monitor beside the container, not in it.
pub fn container_id(cgroup: &str) -> Option<String> {
    let path = cgroup.lines().find_map(|l| l.splitn(3, ':').nth(2))?;
    path.rsplit('/').find_map(|part| {
        if part.contains("conmon") {
            return None;
        }
        let name = part.strip_suffix(".scope").unwrap_or(part);
        let id = name.rsplit(['-', ':']).next()?;
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_owned())
    })
}

/// A container's name from its runtime's files: docker's `config.v2.json` (`"Name": "/api"`),
/// podman's storage `containers.json` (`"names": ["api"]`); the short id when neither says.
fn container_name(root: &Path, id: &str, podman: &mut Option<HashMap<String, String>>) -> String {
    let docker = root.join(format!("var/lib/docker/containers/{id}/config.v2.json"));
    if let Some(name) = read(&docker)
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| {
            v.get("Name")?
                .as_str()
                .map(|n| n.trim_start_matches('/').to_owned())
        })
        .filter(|n| !n.is_empty())
    {
        return name;
    }
    let podman = podman.get_or_insert_with(|| podman_names(root));
    if let Some(name) = podman.get(id) {
        return name.clone();
    }
    id[..12].to_owned()
}

/// Podman's container names by id, from containers/storage's `containers.json`.
fn podman_names(root: &Path) -> HashMap<String, String> {
    #[derive(Deserialize)]
    struct Entry {
        id: String,
        #[serde(default)]
        names: Vec<String>,
    }
    let path = root.join("var/lib/containers/storage/overlay-containers/containers.json");
    read(&path)
        .and_then(|s| serde_json::from_str::<Vec<Entry>>(&s).ok())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| Some((e.id, e.names.into_iter().next()?)))
        .collect()
}

/// How a namespace without a process in it is read (a named namespace whose servers exited, or
/// one made for a client that comes and goes).
pub trait EnterNetns {
    /// The contents of `files` (under `/proc/thread-self/net/`) as seen inside the namespace
    /// bound at `path`; `None` when it cannot be entered.
    fn read_inside(&mut self, path: &Path, files: &[&str]) -> Option<Vec<String>>;
}

/// Does not enter namespaces (no privilege for it, or a test tree).
pub struct NoEnter;

impl EnterNetns for NoEnter {
    fn read_inside(&mut self, _path: &Path, _files: &[&str]) -> Option<Vec<String>> {
        None
    }
}

const NET_FILES: [&str; 4] = ["tcp", "tcp6", "fib_trie", "if_inet6"];

/// One pass over the machine under `root`.
pub fn scan(root: &Path, enter: &mut dyn EnterNetns) -> Snapshot {
    let proc_dir = root.join("proc");
    let mut snap = Snapshot {
        self_netns: netns_inode(&proc_dir.join("self/ns/net")).unwrap_or(0),
        ..Snapshot::default()
    };
    // Per namespace: a process in it (its /proc/PID/net is the namespace's) and a container id.
    let mut ns_pid: BTreeMap<u64, (u32, Option<String>)> = BTreeMap::new();
    let mut socket_pid: HashMap<u64, u32> = HashMap::new();
    let mut comms: HashMap<u32, String> = HashMap::new();
    let mut pids: Vec<u32> = fs::read_dir(&proc_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let dir = proc_dir.join(pid.to_string());
        let Some(ns) = netns_inode(&dir.join("ns/net")) else {
            snap.unreadable += 1;
            continue;
        };
        let cid = read(&dir.join("cgroup")).and_then(|c| container_id(&c));
        let entry = ns_pid.entry(ns).or_insert((pid, None));
        if entry.1.is_none() {
            entry.1 = cid;
        }
        let Ok(fds) = fs::read_dir(dir.join("fd")) else {
            snap.unreadable += 1;
            continue;
        };
        let mut holds = false;
        for fd in fds.flatten() {
            if let Some(inode) = fs::read_link(fd.path())
                .ok()
                .and_then(|l| bracketed(l.to_str()?, "socket"))
            {
                // Ascending pids: the first holder is the lowest (a master before its workers).
                socket_pid.entry(inode).or_insert(pid);
                holds = true;
            }
        }
        if holds {
            let comm = read(&dir.join("comm")).unwrap_or_default();
            comms.insert(pid, comm.trim_end_matches('\n').to_owned());
        }
    }

    let root_ns = netns_inode(&proc_dir.join("1/ns/net"));
    let mut named: BTreeMap<u64, (String, PathBuf)> = BTreeMap::new();
    for e in fs::read_dir(root.join("run/netns"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Some(ino) = netns_inode(&e.path()) {
            let name = String::from_utf8_lossy(e.file_name().as_encoded_bytes()).into_owned();
            named.entry(ino).or_insert((name, e.path()));
        }
    }

    let mut podman = None;
    let mut process_index: HashMap<u32, u32> = HashMap::new();
    let inodes: Vec<u64> = ns_pid.keys().chain(named.keys()).copied().collect();
    for inode in inodes {
        if snap.namespaces.iter().any(|n| n.inode == inode) {
            continue;
        }
        let files: Option<Vec<String>> = match ns_pid.get(&inode) {
            Some((pid, _)) => {
                let net = proc_dir.join(format!("{pid}/net"));
                Some(
                    NET_FILES
                        .iter()
                        .map(|f| read(&net.join(f)).unwrap_or_default())
                        .collect(),
                )
            }
            None => enter.read_inside(&named[&inode].1, &NET_FILES),
        };
        let Some(files) = files else {
            snap.unreadable += 1;
            continue;
        };
        // The root namespace is the host's even when a container shares it (`--network host`).
        let label = match (
            ns_pid.get(&inode).and_then(|p| p.1.as_ref()),
            named.get(&inode),
        ) {
            _ if Some(inode) == root_ns => HOST.to_owned(),
            (Some(id), _) => container_name(root, id, &mut podman),
            (None, Some((name, _))) => name.clone(),
            (None, None) => format!("netns:[{inode}]"),
        };
        let mut addrs = parse_fib_trie(&files[2]);
        addrs.extend(parse_if_inet6(&files[3]));
        let ns = u32::try_from(snap.namespaces.len()).unwrap_or(u32::MAX);
        snap.namespaces.push(Namespace {
            inode,
            label,
            addrs,
        });
        for (local, remote, state, sock) in files[..2].iter().flat_map(|t| parse_tcp_table(t)) {
            // TIME_WAIT and other orphans have inode 0: no process holds them.
            let Some(&pid) = socket_pid.get(&sock) else {
                continue;
            };
            let process = *process_index.entry(pid).or_insert_with(|| {
                snap.processes.push(ProcessEntry {
                    pid,
                    comm: comms.get(&pid).cloned().unwrap_or_default(),
                });
                u32::try_from(snap.processes.len() - 1).unwrap_or(u32::MAX)
            });
            snap.sockets.push(Socket {
                ns,
                local: SocketAddr::new(unmap(local.ip()), local.port()),
                remote: (state != TCP_LISTEN)
                    .then(|| SocketAddr::new(unmap(remote.ip()), remote.port())),
                process,
            });
        }
    }
    snap
}

/// `TCP_LISTEN` in include/net/tcp_states.h.
const TCP_LISTEN: u8 = 0x0a;
