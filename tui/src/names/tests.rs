//! The resolver on a tree laid out as a machine lays out `/proc`, `/run/netns`, docker's and
//! podman's files (the runtimes' own formats; no daemon runs in CI, see README).

use std::{
    fs,
    net::SocketAddr,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use super::{
    Index,
    helper::{REQUEST_SCAN, decode_reply, serve_requests},
    scan::{self, Snapshot, container_id, parse_fib_trie, parse_if_inet6, parse_tcp_table},
};
use crate::owner::Owner;

const DOCKER_ID: &str = "3f4e2b1a9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";
const PODMAN_ID: &str = "aa11bb22cc33dd44ee55ff6600778899aa11bb22cc33dd44ee55ff6600778899";

const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

/// A row of `/proc/net/tcp` as the kernel prints it.
fn tcp_row(local: &str, remote: &str, state: u8, inode: u64) -> String {
    format!(
        "   0: {local} {remote} {state:02X} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
    )
}

/// `a.b.c.d:port` as `/proc/net/tcp` writes it (the address's 32-bit word in host order).
fn hex4(addr: &str) -> String {
    let a: SocketAddr = addr.parse().unwrap();
    let std::net::IpAddr::V4(v4) = a.ip() else {
        panic!()
    };
    format!("{:08X}:{:04X}", u32::from_ne_bytes(v4.octets()), a.port())
}

fn fib_trie(locals: &[&str]) -> String {
    let mut s = String::from("Main:\n  +-- 0.0.0.0/0 3 0 5\n");
    for a in locals {
        s += &format!("     |-- {a}\n        /32 host LOCAL\n");
    }
    s += "     |-- 10.9.9.0\n        /24 link UNICAST\n";
    s
}

struct Tree(PathBuf);

impl Tree {
    fn new(tag: &str) -> Self {
        let root = std::env::temp_dir().join(format!("ht-names-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        Self(root)
    }

    fn file(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn link(&self, rel: &str, target: &str) {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }

    /// A process: its namespace, cgroup, name, socket fds and (for the namespace's first) its net
    /// files.
    fn process(&self, pid: u32, ns: u64, cgroup: &str, comm: &str, sockets: &[u64]) {
        self.link(&format!("proc/{pid}/ns/net"), &format!("net:[{ns}]"));
        self.file(&format!("proc/{pid}/cgroup"), cgroup);
        self.file(&format!("proc/{pid}/comm"), &format!("{comm}\n"));
        fs::create_dir_all(self.0.join(format!("proc/{pid}/fd"))).unwrap();
        self.link(&format!("proc/{pid}/fd/0"), "/dev/null");
        for (i, s) in sockets.iter().enumerate() {
            self.link(
                &format!("proc/{pid}/fd/{}", i + 3),
                &format!("socket:[{s}]"),
            );
        }
    }

    fn net(&self, pid: u32, tcp: &str, locals: &[&str]) {
        self.file(
            &format!("proc/{pid}/net/tcp"),
            &format!("{TCP_HEADER}{tcp}"),
        );
        self.file(&format!("proc/{pid}/net/tcp6"), TCP_HEADER);
        self.file(&format!("proc/{pid}/net/fib_trie"), &fib_trie(locals));
        self.file(
            &format!("proc/{pid}/net/if_inet6"),
            "00000000000000000000000000000001 01 80 10 80       lo\n",
        );
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The machine of the tests: the host (with a sshd), a docker container serving on :80 (nginx, a
/// master and a worker sharing the listening socket), a named namespace with a python client
/// connected to it, a podman container, and a process-less named namespace.
fn machine(tag: &str) -> Tree {
    let t = Tree::new(tag);
    t.link("proc/self/ns/net", "net:[100]");
    t.process(1, 100, "0::/init.scope\n", "systemd", &[]);
    t.net(
        1,
        &tcp_row(&hex4("0.0.0.0:22"), &hex4("0.0.0.0:0"), 0x0a, 900),
        &["127.0.0.1", "172.18.0.1"],
    );
    t.process(50, 100, "0::/system.slice/ssh.service\n", "sshd", &[900]);

    let docker_cg = format!("0::/system.slice/docker-{DOCKER_ID}.scope\n");
    t.process(200, 200, &docker_cg, "nginx", &[5000]);
    t.process(201, 200, &docker_cg, "nginx", &[5000, 5001]);
    t.net(
        200,
        &(tcp_row(&hex4("0.0.0.0:80"), &hex4("0.0.0.0:0"), 0x0a, 5000)
            + &tcp_row(&hex4("172.18.0.3:80"), &hex4("172.18.0.5:40000"), 0x01, 5001)
            // TIME_WAIT: no inode, no owner.
            + &tcp_row(&hex4("172.18.0.3:80"), &hex4("172.18.0.5:39000"), 0x06, 0)),
        &["127.0.0.1", "172.18.0.3"],
    );
    t.file(
        &format!("var/lib/docker/containers/{DOCKER_ID}/config.v2.json"),
        r#"{"ID":"x","Name":"/orders-api","State":{"Running":true}}"#,
    );

    t.link("run/netns/cli", "net:[300]");
    // A process that named itself with an escape sequence.
    t.process(300, 300, "0::/user.slice\n", "py\u{1b}[2Jthon3", &[6000]);
    t.net(
        300,
        &tcp_row(
            &hex4("172.18.0.5:40000"),
            &hex4("172.18.0.3:80"),
            0x01,
            6000,
        ),
        &["127.0.0.1", "172.18.0.5"],
    );

    t.process(
        400,
        400,
        &format!("0::/machine.slice/libpod-{PODMAN_ID}.scope/container\n"),
        "billing-svc",
        &[],
    );
    t.net(400, "", &["10.88.0.7"]);
    t.file(
        "var/lib/containers/storage/overlay-containers/containers.json",
        &format!(r#"[{{"id":"{PODMAN_ID}","names":["billing"],"image":"x"}}]"#),
    );
    // Named, but nothing runs in it: its addresses need entering it (the helper does).
    t.link("run/netns/empty", "net:[500]");
    t
}

fn owner(container: &str, comm: &str, pid: u32) -> Owner {
    Owner::Local {
        container: container.into(),
        process: Some(crate::owner::Process {
            comm: comm.into(),
            pid,
        }),
    }
}

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn index(root: &Path) -> Index {
    Index::build(scan::scan(root, &mut scan::NoEnter), 1).unwrap()
}

#[test]
fn scan_labels_every_namespace() {
    let t = machine("labels");
    let s = scan::scan(&t.0, &mut scan::NoEnter);
    let labels: Vec<(u64, &str)> = s
        .namespaces
        .iter()
        .map(|n| (n.inode, n.label.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            (100, "host"),
            (200, "orders-api"),
            (300, "cli"),
            (400, "billing")
        ]
    );
    // The process-less namespace could not be entered here.
    assert_eq!(s.unreadable, 1);
    assert_eq!(s.self_netns, 100);
}

#[test]
fn servers_clients_and_strangers() {
    let t = machine("owners");
    let ix = index(&t.0);
    // The listening socket is nginx's master's (the lowest pid holding it), in the container.
    assert_eq!(
        ix.server(a("172.18.0.3:80")),
        owner("orders-api", "nginx", 200)
    );
    // The client: the process holding that connected socket, in its named namespace; its
    // self-chosen name escaped.
    assert_eq!(
        ix.client(a("172.18.0.5:40000"), a("172.18.0.3:80")),
        owner("cli", "py\\x1b[2Jthon3", 300)
    );
    // A local address with no socket for this connection: the namespace, no process.
    assert_eq!(
        ix.client(a("172.18.0.5:41000"), a("172.18.0.3:80")),
        Owner::Local {
            container: "cli".into(),
            process: None
        }
    );
    // A wildcard listener on the host serves the bridge's address.
    assert_eq!(ix.server(a("172.18.0.1:22")), owner("host", "sshd", 50));
    assert_eq!(ix.server(a("192.0.2.44:80")), Owner::Remote);
    assert_eq!(
        ix.client(a("192.0.2.44:5555"), a("172.18.0.3:80")),
        Owner::Remote
    );
    // Loopback is the capture's own namespace, whichever others also have 127.0.0.1.
    assert_eq!(ix.server(a("127.0.0.1:22")), owner("host", "sshd", 50));
    assert_eq!(
        ix.server(a("10.88.0.7:80")),
        Owner::Local {
            container: "billing".into(),
            process: None
        }
    );
}

#[test]
fn cgroup_paths_of_each_runtime() {
    let id = DOCKER_ID;
    for (cgroup, want) in [
        (format!("0::/system.slice/docker-{id}.scope"), Some(id)),
        (format!("12:memory:/docker/{id}\n0::/docker/{id}"), Some(id)),
        (
            format!("0::/machine.slice/libpod-{id}.scope/container"),
            Some(id),
        ),
        (
            format!(
                "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{id}.scope"
            ),
            Some(id),
        ),
        (
            format!(
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-{id}.scope"
            ),
            Some(id),
        ),
        (format!("0::/kubepods/besteffort/pod1/{id}"), Some(id)),
        // Podman's monitor runs beside the container, not in it.
        (format!("0::/machine.slice/libpod-conmon-{id}.scope"), None),
        (
            "0::/user.slice/user-1000.slice/session-2.scope".to_owned(),
            None,
        ),
        ("0::/".to_owned(), None),
    ] {
        assert_eq!(container_id(&cgroup).as_deref(), want, "{cgroup}");
    }
}

#[test]
fn proc_net_formats() {
    // Lines as this kernel prints them.
    let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 647 1 00000000a14c467f 100 0 0 10 0\n   1: 0100007F:223D 0100007F:97F6 06 00000000:00000000 03:00000713 00000000     0        0 0 3 000000002b154a03\n";
    assert_eq!(
        parse_tcp_table(tcp),
        [
            (a("0.0.0.0:2024"), a("0.0.0.0:0"), 0x0a, 647),
            (a("127.0.0.1:8765"), a("127.0.0.1:38902"), 0x06, 0)
        ]
    );
    // A dual-stack socket's IPv4 peer, and a real IPv6 one.
    let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:A0B2 01 00000000:00000000 00:00000000 00000000     0        0 777 1\n   1: 000080FE00000000FF0000FC010000FE:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 778 1\n";
    let rows = parse_tcp_table(tcp6);
    assert_eq!(rows[0].0, a("127.0.0.1:8080"));
    assert_eq!(rows[1].0, a("[fe80::fc00:ff:fe00:1]:80"));
    let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 127.0.0.0/8 2 0 2\n        +-- 127.0.0.0/31 1 0 0\n           |-- 127.0.0.0\n              /8 host LOCAL\n           |-- 127.0.0.1\n              /32 host LOCAL\n        |-- 127.255.255.255\n           /32 link BROADCAST\n     +-- 192.0.2.0/24 2 0 2\n           |-- 192.0.2.0\n              /24 link UNICAST\n           |-- 192.0.2.2\n              /32 host LOCAL\nLocal:\n           |-- 192.0.2.2\n              /32 host LOCAL\n";
    assert_eq!(
        parse_fib_trie(fib),
        [a("127.0.0.1:0").ip(), a("192.0.2.2:0").ip()]
    );
    assert_eq!(
        parse_if_inet6(
            "00000000000000000000000000000001 01 80 10 80       lo\nfd000000000000000000000000000002 04 40 00 82     eth0\nnot hex\n"
        ),
        [a("[::1]:0").ip(), a("[fd00::2]:0").ip()]
    );
}

#[test]
fn helper_protocol() {
    let t = machine("proto");
    let mut out = Vec::new();
    let scan = || scan::scan(&t.0, &mut scan::NoEnter);
    serve_requests(&mut &[REQUEST_SCAN, REQUEST_SCAN][..], &mut out, scan).unwrap();
    // Two replies, each a length and a snapshot equal to a scan made here.
    let (len, rest) = out.split_at(4);
    let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
    let first = decode_reply(&rest[..len]).unwrap();
    assert_eq!(first, scan());
    assert_eq!(rest.len(), 2 * len + 4);
    // Anything else ends the helper; the end of input is a clean stop.
    let err = serve_requests(&mut &b"SX"[..], &mut Vec::new(), scan).unwrap_err();
    assert!(err.to_string().contains("unknown request 0x58"), "{err}");
    serve_requests(&mut &b""[..], &mut Vec::new(), scan).unwrap();
    assert!(decode_reply(b"{\"self_netns\":1").is_err());
}

#[test]
fn snapshots_with_dangling_references_are_refused() {
    let mut s = Snapshot::default();
    s.sockets.push(scan::Socket {
        ns: 3,
        local: a("10.0.0.1:80"),
        remote: None,
        process: 0,
    });
    assert!(Index::build(s, 1).unwrap_err().contains("namespace 3 of 0"));
}

/// A source that scans `root` only when the test lets it.
struct Gated {
    root: PathBuf,
    go: std::sync::mpsc::Receiver<()>,
}

impl super::Source for Gated {
    fn snapshot(&mut self) -> anyhow::Result<Snapshot> {
        self.go.recv()?;
        Ok(scan::scan(&self.root, &mut scan::NoEnter))
    }
}

#[test]
fn nothing_is_claimed_before_the_first_scan() {
    let t = machine("first");
    let (tx, go) = std::sync::mpsc::channel();
    let service = super::Service::start(Box::new(Gated {
        root: t.0.clone(),
        go,
    }))
    .unwrap();
    let mut r = super::Resolver::new(service.clone());
    let mut e = crate::proto::Exchange {
        client: a("172.18.0.5:40000"),
        server: a("172.18.0.3:80"),
        protocol: crate::proto::Protocol::Http11,
        request_seen: true,
        unparsable: false,
        request: None,
        status: Some(200),
        req_first_ns: 1,
        req_last_ns: 1,
        resp_first_ns: 2,
        resp_last_ns: 2,
        req_bytes: 1,
        resp_bytes: 1,
        truncated: false,
        gap: false,
        route: None,
        grpc: crate::proto::Grpc::No,
        server_owner: None,
        client_owner: None,
    };
    // Not `_remote` for want of a scan: unresolved.
    r.resolve(&mut e);
    assert_eq!(
        (e.server_owner.is_none(), e.client_owner.is_none()),
        (true, true)
    );
    tx.send(()).unwrap();
    assert!(service.wait_ready(std::time::Duration::from_secs(10)));
    r.resolve(&mut e);
    assert_eq!(
        e.server_owner.as_deref(),
        Some(&owner("orders-api", "nginx", 200))
    );
    assert_eq!(
        e.client_owner.as_deref(),
        Some(&owner("cli", "py\\x1b[2Jthon3", 300))
    );
}
