//! Who stands behind an endpoint: the process holding its socket and the container (or network
//! namespace) it lives in, as the session's name resolver (`names`) found them on this machine.
//!
//! Plain values, so that the exchange, the grouping keys and every output can carry them without
//! knowing how they were found.

use std::sync::Arc;

/// Process or container label when the address lives on no network namespace of this machine.
pub const REMOTE: &str = "_remote";
/// Label when names were not looked up (a file read without `--resolve-names`).
pub const UNRESOLVED: &str = "_unresolved";
/// Process label when the address is local but no socket of it was found (yet).
pub const UNKNOWN: &str = "_unknown";
/// Container label of the root network namespace.
pub const HOST: &str = "host";

/// A process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Process {
    /// The command name (`/proc/PID/comm`: at most 15 bytes), already printable.
    pub comm: Arc<str>,
    pub pid: u32,
}

/// Where an endpoint lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// On this machine: in `container` (a container's name, a named network namespace, [`HOST`],
    /// or `netns:[INODE]` for an unnamed one), held by `process` when its socket was found.
    Local {
        container: Arc<str>,
        process: Option<Process>,
    },
    /// Not an address of any network namespace here.
    Remote,
}

impl Owner {
    /// `comm[pid]` (syslog's form: one token, the name first), or a special label.
    pub fn process_label(owner: Option<&Self>) -> String {
        match owner {
            None => UNRESOLVED.to_owned(),
            Some(Self::Remote) => REMOTE.to_owned(),
            Some(Self::Local { process: None, .. }) => UNKNOWN.to_owned(),
            Some(Self::Local {
                process: Some(p), ..
            }) => format!("{}[{}]", p.comm, p.pid),
        }
    }

    /// The container (or namespace) name, or a special label.
    pub fn container_label(owner: Option<&Self>) -> &str {
        match owner {
            None => UNRESOLVED,
            Some(Self::Remote) => REMOTE,
            Some(Self::Local { container, .. }) => container,
        }
    }

    /// The short name shown next to an address (`orders-api 172.18.0.3:8080`): the container when
    /// the endpoint lives in one, else the process; nothing for remote or unknown endpoints.
    pub fn short_name(&self) -> Option<&str> {
        match self {
            Self::Remote => None,
            Self::Local { container, .. } if &**container != HOST => Some(container),
            Self::Local { process, .. } => process.as_ref().map(|p| &*p.comm),
        }
    }
}
