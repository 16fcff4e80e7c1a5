//! The privileged helper: a second, tiny http-top process that scans `/proc` for the main one.
//!
//! Finding which process holds a socket means reading every process's `/proc/PID/fd` and
//! `ns/net`, which only root (CAP_SYS_PTRACE + CAP_DAC_READ_SEARCH) may; entering a named
//! namespace with no process in it to read its addresses takes CAP_SYS_ADMIN. The main process
//! parses bytes from the network and must hold nothing, so (like OpenSSH's and tcpdump's privilege
//! separation) it starts this helper while still root, then drops everything.
//!
//! The helper:
//! - is http-top itself re-executed (`/proc/self/exe --names-helper`), with the socket of a
//!   socketpair as its stdin and stdout and nothing else open; dies with its parent
//!   (PR_SET_PDEATHSIG) and on the socket's end;
//! - runs as `nobody` with only CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE and CAP_SYS_ADMIN (bounding set
//!   limited to them, no_new_privs): it can read any file and enter network namespaces, not write
//!   a root-owned file, load BPF, open raw sockets or change users;
//! - takes one request, the byte `S` ([`serve_requests`]; any other byte ends it) and answers with
//!   a length-prefixed JSON [`Snapshot`]. It reads nothing else from the main process, so a main
//!   process taken over by hostile traffic can make it scan again, and learn what `ss -tp` as root
//!   would show (process names and sockets), nothing more.

use std::{
    io::{self, Read, Write},
    os::unix::net::UnixStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context;

use super::{
    Snapshot, Source,
    scan::{self, EnterNetns},
};

/// The first argument that makes http-top the helper (hidden from `--help`: internal).
pub const HELPER_ARG: &str = "--names-helper";
/// The one request.
pub const REQUEST_SCAN: u8 = b'S';
/// Largest reply the main process accepts.
pub const MAX_REPLY: u32 = 256 << 20;
/// How long the main process waits for a reply before giving up on the helper.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// CAP_DAC_READ_SEARCH (2), CAP_SYS_PTRACE (19), CAP_SYS_ADMIN (21): include/uapi/linux/capability.h.
pub const HELPER_CAPS: u64 = (1 << 2) | (1 << 19) | (1 << 21);
/// `nobody`/`nogroup`.
const NOBODY: u32 = 65_534;

/// The main process's end of the helper.
pub struct Helper {
    stream: UnixStream,
    child: Child,
    /// A scan was asked for and its reply not read yet (the first, asked at the start).
    asked: bool,
}

impl Helper {
    /// Starts the helper, and asks for its first scan at once; must run while this process still
    /// has root's capabilities.
    pub fn spawn() -> anyhow::Result<Self> {
        let (ours, theirs) = UnixStream::pair().context("socketpair for the names helper")?;
        let input = theirs
            .try_clone()
            .context("socketpair for the names helper")?;
        let child = Command::new("/proc/self/exe")
            .arg(HELPER_ARG)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(input)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            // Nothing may reach a terminal the dashboard owns; failures show as failed scans.
            .stderr(Stdio::null())
            .env_clear()
            .spawn()
            .context("starting the names helper")?;
        ours.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let mut helper = Self {
            stream: ours,
            child,
            asked: false,
        };
        helper.ask()?;
        Ok(helper)
    }

    fn ask(&mut self) -> anyhow::Result<()> {
        if !self.asked {
            self.stream
                .write_all(&[REQUEST_SCAN])
                .context("names helper is gone")?;
            self.asked = true;
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Source for Helper {
    fn snapshot(&mut self) -> anyhow::Result<Snapshot> {
        self.ask()?;
        self.asked = false;
        let body = self.reply();
        if body.is_err() {
            // A reply half read (or late) would be taken for the next one: no next one.
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
        }
        decode_reply(&body?)
    }
}

impl Helper {
    fn reply(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .context("names helper did not answer")?;
        let len = u32::from_le_bytes(len);
        anyhow::ensure!(
            len <= MAX_REPLY,
            "names helper's reply too long ({len} bytes)"
        );
        let mut body = vec![0; len as usize];
        self.stream
            .read_exact(&mut body)
            .context("names helper's reply cut short")?;
        Ok(body)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Closing the socket ends the helper; wait so that it leaves no zombie.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        let _ = self.child.wait();
    }
}

/// A reply's body as a snapshot (checked again when indexed).
pub fn decode_reply(body: &[u8]) -> anyhow::Result<Snapshot> {
    serde_json::from_slice(body).context("names helper's reply is not a snapshot")
}

/// The helper's loop: one snapshot per `S`, until the input ends. Any other byte is an error:
/// the main process never sends one, so it means the main process is not itself.
pub fn serve_requests(
    input: &mut impl Read,
    output: &mut impl Write,
    mut scan: impl FnMut() -> Snapshot,
) -> io::Result<()> {
    let mut req = [0u8; 1];
    loop {
        match input.read(&mut req) {
            Ok(0) => return Ok(()),
            Ok(_) if req[0] == REQUEST_SCAN => {
                let body = serde_json::to_vec(&scan()).map_err(io::Error::other)?;
                let len = u32::try_from(body.len())
                    .ok()
                    .filter(|&l| l <= MAX_REPLY)
                    .ok_or_else(|| io::Error::other("snapshot too large"))?;
                output.write_all(&len.to_le_bytes())?;
                output.write_all(&body)?;
                output.flush()?;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown request {:#04x}", req[0]),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The helper process's main: restrict itself, then serve on stdin/stdout.
pub fn main() -> anyhow::Result<()> {
    // SAFETY: prctl with integer arguments only; getppid has none.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) < 0 || libc::getppid() == 1 {
            anyhow::bail!("names helper: no parent");
        }
    }
    crate::capture::privs::restrict_to(HELPER_CAPS, NOBODY, NOBODY)?;
    let mut enter = Setns::new()?;
    serve_requests(&mut io::stdin().lock(), &mut io::stdout().lock(), || {
        scan::scan(Path::new("/"), &mut enter)
    })?;
    Ok(())
}

/// Enters a namespace with setns(2) to read its `/proc/thread-self/net` files, and comes back.
struct Setns {
    home: std::fs::File,
}

impl Setns {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            home: std::fs::File::open("/proc/thread-self/ns/net")
                .context("names helper: own network namespace")?,
        })
    }

    fn set(f: &std::fs::File) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on an open namespace file; affects this (single) thread only.
        unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) == 0 }
    }
}

impl EnterNetns for Setns {
    fn read_inside(&mut self, path: &Path, files: &[&str]) -> Option<Vec<String>> {
        let ns = std::fs::File::open(path).ok()?;
        if !Self::set(&ns) {
            return None;
        }
        let out = files
            .iter()
            .map(|f| {
                std::fs::read_to_string(format!("/proc/thread-self/net/{f}")).unwrap_or_default()
            })
            .collect();
        if !Self::set(&self.home) {
            // Every later reading would be of the wrong namespace: better no helper at all.
            std::process::exit(3);
        }
        Some(out)
    }
}
