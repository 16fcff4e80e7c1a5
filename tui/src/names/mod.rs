//! Names, not numbers: which process and which container stands behind each endpoint.
//!
//! ```text
//!  Source (helper process | in-process scan)   Service thread          Resolver (session thread)
//!  scan of /proc, /run/netns, runtime files ──▶ Snapshot ─▶ Index ──▶  per exchange: Owner of the
//!           ▲                                   (every 5 s, or         server and of the client,
//!           └──────── refresh wanted ◀────────── sooner on demand) ◀── cached until the next Index
//! ```
//!
//! The session owns one [`Resolver`]: every exchange gets the [`Owner`] of its server and client
//! before any output sees it, like its route. Lookups never block the session: scans run on the
//! service's thread, and an endpoint not found (a namespace or server newer than the last scan)
//! asks for a scan, at most one per [`MIN_GAP`].
//!
//! Live, the scan runs in a small helper process that keeps the few capabilities reading other
//! users' `/proc` needs, while http-top itself drops every privilege (`helper`, and README's
//! threat model).

pub mod helper;
pub mod scan;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::Thread,
    time::{Duration, Instant},
};

pub use self::scan::Snapshot;
use crate::{
    owner::{Owner, Process},
    proto::Exchange,
};

/// Time between two scans when nothing asks.
pub const PERIOD: Duration = Duration::from_secs(5);
/// Shortest time between two scans, however often an unknown endpoint asks (longer where a scan
/// is slow: four times its duration).
pub const MIN_GAP: Duration = Duration::from_millis(500);
/// Scans failed in a row after which the service stops trying.
const GIVE_UP_AFTER: u32 = 3;
/// Most endpoints a resolver remembers between two scans (then it starts over).
const CACHE_CAP: usize = 65_536;

/// Where snapshots come from.
pub trait Source: Send {
    fn snapshot(&mut self) -> anyhow::Result<Snapshot>;
}

/// Scans in this process, under `root` (`/`, or a test tree), entering no namespace.
pub struct InProcess {
    pub root: std::path::PathBuf,
}

impl Source for InProcess {
    fn snapshot(&mut self) -> anyhow::Result<Snapshot> {
        Ok(scan::scan(&self.root, &mut scan::NoEnter))
    }
}

/// A snapshot made ready for lookups.
#[derive(Debug, Default)]
pub struct Index {
    labels: Vec<Arc<str>>,
    processes: Vec<Process>,
    /// Namespaces holding each address.
    by_addr: HashMap<IpAddr, Vec<u32>>,
    /// Listening sockets by (namespace, port): bound address (unspecified: all), process.
    listeners: HashMap<(u32, u16), Vec<(IpAddr, u32)>>,
    /// Connected sockets by (local, remote): namespace, process.
    connected: HashMap<(SocketAddr, SocketAddr), Vec<(u32, u32)>>,
    self_ns: Option<u32>,
    /// When the scan was made.
    pub generation: u64,
}

impl Index {
    /// Checks every reference of `s` (it may come from another process) and indexes it.
    pub fn build(s: Snapshot, generation: u64) -> Result<Self, String> {
        let n_ns = s.namespaces.len();
        let n_proc = s.processes.len();
        let mut ix = Self {
            labels: s
                .namespaces
                .iter()
                .map(|n| Arc::from(n.label.as_str()))
                .collect(),
            processes: s
                .processes
                .into_iter()
                .map(|p| Process {
                    comm: Arc::from(crate::text::printable(p.comm.as_bytes())),
                    pid: p.pid,
                })
                .collect(),
            generation,
            ..Self::default()
        };
        for (i, n) in s.namespaces.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| "too many namespaces")?;
            if n.inode == s.self_netns {
                ix.self_ns = Some(i);
            }
            for a in &n.addrs {
                let owners = ix.by_addr.entry(scan::unmap(*a)).or_default();
                if !owners.contains(&i) {
                    owners.push(i);
                }
            }
        }
        for sock in s.sockets {
            if sock.ns as usize >= n_ns || sock.process as usize >= n_proc {
                return Err(format!(
                    "socket refers to namespace {} of {n_ns} or process {} of {n_proc}",
                    sock.ns, sock.process
                ));
            }
            match sock.remote {
                None => ix
                    .listeners
                    .entry((sock.ns, sock.local.port()))
                    .or_default()
                    .push((sock.local.ip(), sock.process)),
                Some(remote) => ix
                    .connected
                    .entry((sock.local, remote))
                    .or_default()
                    .push((sock.ns, sock.process)),
            }
        }
        Ok(ix)
    }

    fn owner(&self, ns: u32, process: Option<u32>) -> Owner {
        Owner::Local {
            container: Arc::clone(&self.labels[ns as usize]),
            process: process.map(|p| self.processes[p as usize].clone()),
        }
    }

    /// The namespaces `ip` is an address of; the session's own first (a loopback address is in
    /// every namespace, and the capture sees its own).
    fn namespaces_of(&self, ip: IpAddr) -> Vec<u32> {
        // 127.0.0.0/8 is local in every namespace (one `/8 host LOCAL` route): the capture's own.
        if scan::unmap(ip).is_loopback() {
            return self.self_ns.into_iter().collect();
        }
        let mut v = self
            .by_addr
            .get(&scan::unmap(ip))
            .cloned()
            .unwrap_or_default();
        if let Some(own) = self.self_ns
            && let Some(i) = v.iter().position(|&n| n == own)
        {
            v.swap(0, i);
        }
        v
    }

    /// Who serves at `server`: the process listening on its port in the namespace holding its
    /// address (or, with no listener left, one holding an accepted connection).
    pub fn server(&self, server: SocketAddr) -> Owner {
        let spaces = self.namespaces_of(server.ip());
        let Some(&first) = spaces.first() else {
            return Owner::Remote;
        };
        for &ns in &spaces {
            if let Some(list) = self.listeners.get(&(ns, server.port())) {
                let exact = list
                    .iter()
                    .find(|(a, _)| scan::unmap(*a) == scan::unmap(server.ip()));
                if let Some((_, p)) =
                    exact.or_else(|| list.iter().find(|(a, _)| a.is_unspecified()))
                {
                    return self.owner(ns, Some(*p));
                }
            }
        }
        let accepted = self
            .connected
            .iter()
            .find(|((local, _), _)| *local == server)
            .and_then(|(_, v)| v.iter().find(|(ns, _)| spaces.contains(ns)));
        match accepted {
            Some(&(ns, p)) => self.owner(ns, Some(p)),
            None => self.owner(first, None),
        }
    }

    /// Who is the client at `client` talking to `server`: the process holding that connected
    /// socket in the namespace holding the client's address.
    pub fn client(&self, client: SocketAddr, server: SocketAddr) -> Owner {
        let spaces = self.namespaces_of(client.ip());
        let Some(&first) = spaces.first() else {
            return Owner::Remote;
        };
        let found = self
            .connected
            .get(&(client, server))
            .and_then(|v| v.iter().find(|(ns, _)| spaces.contains(ns)));
        match found {
            Some(&(ns, p)) => self.owner(ns, Some(p)),
            None => self.owner(first, None),
        }
    }
}

struct Shared {
    index: RwLock<Arc<Index>>,
    generation: AtomicU64,
    wanted: AtomicBool,
    thread: std::sync::OnceLock<Thread>,
}

/// The scanning thread; clones share it, and it ends when the last clone goes.
#[derive(Clone)]
pub struct Service {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field(
                "generation",
                &self.shared.generation.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Starts scanning from `source` (the first scan begins at once).
    pub fn start(mut source: Box<dyn Source>) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            index: RwLock::new(Arc::new(Index::default())),
            generation: AtomicU64::new(0),
            wanted: AtomicBool::new(true),
            thread: std::sync::OnceLock::new(),
        });
        let weak = Arc::downgrade(&shared);
        let handle = std::thread::Builder::new()
            .name("names".into())
            .spawn(move || {
                let mut last: Option<Instant> = None;
                let mut cost = Duration::ZERO;
                let mut failed_in_a_row = 0;
                loop {
                    let Some(shared) = weak.upgrade() else { return };
                    // A machine where a scan is slow is scanned less often: at most a quarter of a
                    // core on demand, a twentieth periodically.
                    let (gap, period) = (MIN_GAP.max(cost * 4), PERIOD.max(cost * 20));
                    let due = last.is_none_or(|t| t.elapsed() >= period);
                    let asked = shared.wanted.load(Ordering::Relaxed)
                        && last.is_none_or(|t| t.elapsed() >= gap);
                    if due || asked {
                        shared.wanted.store(false, Ordering::Relaxed);
                        let t0 = Instant::now();
                        let generation = shared.generation.load(Ordering::Relaxed) + 1;
                        let result = source
                            .snapshot()
                            .and_then(|s| Index::build(s, generation).map_err(anyhow::Error::msg));
                        last = Some(Instant::now());
                        cost = t0.elapsed();
                        match result {
                            Ok(ix) => {
                                *shared.index.write().unwrap_or_else(|e| e.into_inner()) =
                                    Arc::new(ix);
                                shared.generation.store(generation, Ordering::Release);
                                failed_in_a_row = 0;
                            }
                            // A helper that could not start (a service manager's bounding set
                            // without its capabilities) or died fails every time: say so once
                            // and stop, names stay as the last scan left them.
                            Err(e) if failed_in_a_row + 1 >= GIVE_UP_AFTER => {
                                tracing::warn!("process and container names are off: {e:#}");
                                return;
                            }
                            Err(e) => {
                                failed_in_a_row += 1;
                                tracing::warn!("looking up process and container names: {e:#}");
                            }
                        }
                    }
                    drop(shared);
                    std::thread::park_timeout(Duration::from_millis(100));
                }
            })?;
        let _ = shared.thread.set(handle.thread().clone());
        Ok(Self { shared })
    }

    /// Asks for a scan soon (at most one per [`MIN_GAP`]).
    pub fn want(&self) {
        if !self.shared.wanted.swap(true, Ordering::Relaxed)
            && let Some(t) = self.shared.thread.get()
        {
            t.unpark();
        }
    }

    /// The latest index, when it is newer than generation `seen`.
    fn newer_than(&self, seen: u64) -> Option<Arc<Index>> {
        (self.shared.generation.load(Ordering::Acquire) > seen)
            .then(|| Arc::clone(&self.shared.index.read().unwrap_or_else(|e| e.into_inner())))
    }

    /// Waits until at least one scan is indexed (tests, and a file read with `--resolve-names`,
    /// whose exchanges come faster than any scan); false if `timeout` passed first.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while self.shared.generation.load(Ordering::Acquire) == 0 {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// Endpoints the resolver looks up: a server address, or a client talking to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Endpoint {
    Server(SocketAddr),
    Client(SocketAddr, SocketAddr),
}

/// The session's side: owners per exchange, cached until a newer index arrives.
pub struct Resolver {
    service: Service,
    index: Arc<Index>,
    cache: HashMap<Endpoint, Arc<Owner>, foldhash::fast::RandomState>,
    /// Endpoints not found, with the generation they were first missed in: one scan after that
    /// is asked for, not one per exchange (a remote client stays remote).
    missed: HashMap<Endpoint, u64, foldhash::fast::RandomState>,
}

impl Resolver {
    pub fn new(service: Service) -> Self {
        Self {
            service,
            index: Arc::new(Index::default()),
            cache: HashMap::default(),
            missed: HashMap::default(),
        }
    }

    /// Sets the owners of `e`'s server and client (none before the first scan).
    pub fn resolve(&mut self, e: &mut Exchange) {
        if let Some(ix) = self.service.newer_than(self.index.generation) {
            self.index = ix;
            self.cache.clear();
        }
        // No scan yet: nothing is known, not even which addresses are local (`_unresolved`).
        if self.index.generation == 0 {
            return;
        }
        e.server_owner = Some(self.owner(Endpoint::Server(e.server)));
        e.client_owner = Some(self.owner(Endpoint::Client(e.client, e.server)));
    }

    fn owner(&mut self, ep: Endpoint) -> Arc<Owner> {
        if let Some(o) = self.cache.get(&ep) {
            return Arc::clone(o);
        }
        let owner = match ep {
            Endpoint::Server(s) => self.index.server(s),
            Endpoint::Client(c, s) => self.index.client(c, s),
        };
        if !matches!(
            owner,
            Owner::Local {
                process: Some(_),
                ..
            }
        ) {
            if self.missed.len() >= CACHE_CAP {
                self.missed.clear();
            }
            // A remote address is missed once, not once per connection of it.
            let miss = match (&owner, ep) {
                (Owner::Remote, Endpoint::Server(a) | Endpoint::Client(a, _)) => {
                    Endpoint::Server(SocketAddr::new(a.ip(), 0))
                }
                _ => ep,
            };
            let first = *self.missed.entry(miss).or_insert(self.index.generation);
            // Not found in the scan current when it was first seen: a newer scan may know it.
            if first == self.index.generation {
                self.service.want();
            }
        }
        if self.cache.len() >= CACHE_CAP {
            self.cache.clear();
        }
        let owner = Arc::new(owner);
        self.cache.insert(ep, Arc::clone(&owner));
        owner
    }
}

#[cfg(test)]
mod tests;
