//! Unit tests of the pure parts of the snapshot and of `tracer states`, from synthetic sockets:
//! ages from timers, owners joined by inode, the netlink decoding of one datagram, the
//! state / service / process grouping (the text and JSON made of it: view/states/tests.rs).
use std::net::IpAddr;

use super::{Age, DEFAULT_EPHEMERAL_PORTS, SnapSocket, Snapshot};
use crate::model::{Owner, TcpState, Tuple};

mod decode;
mod grouping;

pub const S: u64 = 1_000_000_000;

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn sock(state: TcpState, local: &str, lport: u16, remote: &str, rport: u16) -> SnapSocket {
    SnapSocket {
        state,
        tuple: Tuple::new(ip(local), lport, ip(remote), rport),
        inode: 0,
        uid: 0,
        owner: None,
        age: Age::AtLeast(0),
    }
}

pub fn owned(mut s: SnapSocket, pid: u32, comm: &str) -> SnapSocket {
    s.inode = u64::from(pid) * 1000 + u64::from(s.tuple.remote_port);
    s.owner = Some(Owner {
        pid,
        comm: comm.into(),
        cgroup_id: 0,
    });
    s
}

pub fn aged(mut s: SnapSocket, secs: u64) -> SnapSocket {
    s.age = Age::Exact(secs * S);
    s
}

pub fn snapshot(sockets: Vec<SnapSocket>) -> Snapshot {
    Snapshot {
        taken_ns: 1,
        netns: 7,
        sockets,
        unreadable_processes: 0,
        ephemeral_ports: DEFAULT_EPHEMERAL_PORTS,
    }
}

/// A web server on :8080 (nginx, two workers) with clients that close first (CLOSE_WAIT left
/// behind by the server) and TIME_WAITs it closed itself; an app that is a client of a database.
pub fn incident() -> Snapshot {
    use TcpState::*;
    snapshot(vec![
        owned(sock(Listen, "0.0.0.0", 8080, "0.0.0.0", 0), 100, "nginx"),
        owned(
            sock(CloseWait, "127.0.0.1", 8080, "127.0.0.1", 40001),
            101,
            "nginx",
        ),
        owned(
            sock(CloseWait, "127.0.0.1", 8080, "127.0.0.1", 40002),
            101,
            "nginx",
        ),
        // Dual-stack listener: an IPv4 client on an IPv6 socket is the same service.
        owned(
            sock(
                CloseWait,
                "::ffff:127.0.0.1",
                8080,
                "::ffff:127.0.0.1",
                40003,
            ),
            102,
            "nginx",
        ),
        aged(sock(TimeWait, "127.0.0.1", 8080, "127.0.0.1", 40004), 50),
        aged(sock(TimeWait, "127.0.0.1", 8080, "127.0.0.1", 40005), 3),
        aged(sock(TimeWait, "10.0.0.1", 50001, "10.0.0.5", 5432), 10),
        aged(sock(TimeWait, "10.0.0.1", 50002, "10.0.0.5", 5432), 20),
        owned(
            sock(Established, "10.0.0.1", 50003, "10.0.0.5", 5432),
            200,
            "app",
        ),
    ])
}
