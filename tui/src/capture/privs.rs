//! Giving up root once the capture sockets are open and the filter attached.
//!
//! Parsing bytes from the network is the riskiest thing http-top does, so it does it with no
//! privileges: it switches to the invoking user (`SUDO_UID`/`SUDO_GID`, or `--user NAME`) and, when
//! there is no such user (a real root login), stays uid 0 but clears every capability, including the
//! bounding set, so not even an `execve` could bring them back. The open sockets and BPF map fds keep
//! working: the kernel checks privileges when they are created, not when they are used.

use std::{ffi::CString, io};

use anyhow::{Context, bail};

/// Who the process runs as after [`drop_privileges`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedTo {
    pub uid: u32,
    pub gid: u32,
}

/// Resolves `--user NAME`, or the user sudo was invoked by, to a uid/gid pair.
fn target(user: Option<&str>) -> anyhow::Result<Option<(u32, u32)>> {
    if let Some(name) = user {
        let cname = CString::new(name).context("--user contains a NUL byte")?;
        // SAFETY: getpwnam reads the C string and returns a pointer into static storage, which is
        // copied out before any other passwd call.
        let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
        if pw.is_null() {
            bail!("--user {name}: no such user");
        }
        // SAFETY: non-null pointer returned by getpwnam.
        let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        return Ok(Some((uid, gid)));
    }
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    Ok(match (env("SUDO_UID"), env("SUDO_GID")) {
        (Some(uid), Some(gid)) if uid != 0 => Some((uid, gid)),
        _ => None,
    })
}

fn check(ret: libc::c_int, what: &str) -> anyhow::Result<()> {
    if ret < 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("dropping privileges: {what}"));
    }
    Ok(())
}

/// Empties the bounding set but for the capabilities in `keep` (a mask of `CAP_*` bits), so that
/// not even an `execve` could bring the others back. Needs CAP_SETPCAP, so it comes first.
fn limit_bounding_set(keep: u64) -> anyhow::Result<()> {
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(63);
    for cap in (0..=last_cap).filter(|c| keep & (1 << c) == 0) {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        // EINVAL: this kernel does not know that capability.
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            check(r, "PR_CAPBSET_DROP")?;
        }
    }
    check(
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
        "PR_SET_NO_NEW_PRIVS",
    )
}

/// Switches groups, gid and uid (in that order: the uid last, while the others still may change).
fn switch_user(uid: u32, gid: u32) -> anyhow::Result<()> {
    let groups = [gid];
    // SAFETY: plain syscalls with valid pointers/values.
    unsafe {
        check(libc::setgroups(1, groups.as_ptr()), "setgroups")?;
        check(libc::setresgid(gid, gid, gid), "setresgid")?;
        check(libc::setresuid(uid, uid, uid), "setresuid")?;
    }
    Ok(())
}

/// Drops to the target user (or to a capability-less root). Must be called after every privileged
/// resource is open. Fails loudly rather than going on with privileges.
pub fn drop_privileges(user: Option<&str>) -> anyhow::Result<DroppedTo> {
    // capset(2) and the bounding set are per thread: a thread started earlier would keep root's
    // capabilities.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(n) = status.lines().find_map(|l| l.strip_prefix("Threads:"))
        && n.trim() != "1"
    {
        bail!(
            "dropping privileges: {} threads already run (must be the only one)",
            n.trim()
        );
    }
    limit_bounding_set(0)?;
    if let Some((uid, gid)) = target(user)? {
        switch_user(uid, gid)?;
    }
    // A uid change from 0 clears the permitted and effective sets; for a real root login (or to be
    // sure) clear them explicitly too.
    set_capabilities(0)?;

    // SAFETY: getters without arguments.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if let Some((want_uid, _)) = target(user)?
        && uid != want_uid
    {
        bail!("dropping privileges: still uid {uid}, wanted {want_uid}");
    }
    Ok(DroppedTo { uid, gid })
}

/// Becomes `uid`/`gid` keeping only the capabilities in `keep` (effective and permitted; bounding
/// set limited to them; nothing inheritable): for a helper that needs a few, never all.
pub fn restrict_to(keep: u64, uid: u32, gid: u32) -> anyhow::Result<()> {
    limit_bounding_set(keep)?;
    check(
        // SAFETY: prctl with integer arguments only. Keeps the permitted set across the uid change.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) },
        "PR_SET_KEEPCAPS",
    )?;
    switch_user(uid, gid)?;
    set_capabilities(keep)
}

/// Sets the effective and permitted sets to `mask`, the inheritable set to nothing.
fn set_capabilities(mask: u64) -> anyhow::Result<()> {
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // _LINUX_CAPABILITY_VERSION_3: two 32-bit data words (include/uapi/linux/capability.h).
    let mut header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let word = |i: u32| (mask >> (32 * i)) as u32;
    let data = [0, 1].map(|i| CapData {
        effective: word(i),
        permitted: word(i),
        inheritable: 0,
    });
    // SAFETY: capset reads one header and two data structs, laid out as the kernel expects.
    let r = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    check(i32::try_from(r).unwrap_or(-1), "capset")
}

/// The effective capability mask of this process, from /proc (for tests and the startup line).
pub fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}
