//! Ages from timers, owners joined by inode, and one netlink datagram decoded.
use std::{collections::HashMap, time::Duration};

use netlink_packet_core::{DoneMessage, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_sock_diag::{
    AF_INET, SockDiagMessage,
    inet::{InetResponse, InetResponseHeader, SocketId, Timer},
};

use super::{S, ip};
use crate::{
    model::{Owner, TcpState, Tuple},
    source::snapshot::{Age, Entry, Snapshot, TIME_WAIT_NS, age_of, diag, request_age},
};

#[test]
fn only_a_time_wait_timer_dates_a_socket() {
    assert_eq!(age_of(TcpState::TimeWait, 3, 59_000), Age::Exact(S));
    assert_eq!(age_of(TcpState::TimeWait, 3, 0), Age::Exact(TIME_WAIT_NS));
    // A timer re-armed past 60 s (never expected) is not a negative age.
    assert_eq!(age_of(TcpState::TimeWait, 3, 61_000), Age::Exact(0));
    // A FIN_WAIT2 timewait runs the same timer, from another start: undated.
    assert_eq!(age_of(TcpState::FinWait2, 3, 59_000), Age::AtLeast(0));
    assert_eq!(age_of(TcpState::CloseWait, 2, 7_000), Age::AtLeast(0));
}

#[test]
fn a_request_socket_is_at_least_as_old_as_its_syn_ack_retransmits_say() {
    // No retransmit yet: its first 1 s timer has 400 ms left.
    assert_eq!(request_age(0, 400), Age::AtLeast(600_000_000));
    assert_eq!(request_age(0, 5_000), Age::AtLeast(0));
    // Retransmits come at >= 1 s, 3 s, 7 s, ..., at most two at each (timer and SYN).
    assert_eq!(request_age(1, 0), Age::AtLeast(S));
    assert_eq!(request_age(2, 0), Age::AtLeast(S));
    assert_eq!(request_age(3, 0), Age::AtLeast(3 * S));
    assert_eq!(request_age(5, 0), Age::AtLeast(7 * S));
    // Waits stop doubling at 120 s: 1 + 2 + ... + 64, then 121 waits of 120 s.
    assert_eq!(request_age(255, 0), Age::AtLeast((127 + 121 * 120) * S));
    // Only a request socket (SYN_RECV, no file, its SYN-ACK timer) is dated so.
    let req = Entry {
        state: TcpState::SynRecv,
        tuple: Tuple::new(ip("10.0.0.1"), 80, ip("10.0.0.3"), 4000),
        inode: 0,
        uid: 0,
        cgroup_id: 0,
        timer: 1,
        expires_ms: 0,
        retrans: 3,
    };
    let snap = Snapshot::assemble(100, 7, vec![req], &HashMap::new(), 0);
    assert_eq!(snap.sockets[0].age, Age::AtLeast(3 * S));
}

#[test]
fn the_oldest_of_exact_and_unknown_ages_is_only_a_bound() {
    assert_eq!(Age::Exact(5).oldest(Age::Exact(3)), Age::Exact(5));
    assert_eq!(Age::Exact(5).oldest(Age::AtLeast(3)), Age::AtLeast(5));
    assert_eq!(Age::AtLeast(0).oldest(Age::Exact(9)), Age::AtLeast(9));
}

#[test]
fn owners_join_by_inode_and_never_for_timewait_sockets() {
    let entry = |state, inode, timer, expires_ms| Entry {
        state,
        tuple: Tuple::new(ip("127.0.0.1"), 80, ip("127.0.0.1"), 5000),
        inode,
        uid: 33,
        cgroup_id: 9,
        timer,
        expires_ms,
        retrans: 0,
    };
    let owner = Owner {
        pid: 42,
        comm: "nginx".into(),
        cgroup_id: 0,
    };
    let owners = HashMap::from([(5, owner), (0, owner)]);
    let snap = Snapshot::assemble(
        100,
        7,
        vec![
            entry(TcpState::CloseWait, 5, 0, 0),
            entry(TcpState::TimeWait, 0, 3, 30_000),
            entry(TcpState::Established, 6, 0, 0),
        ],
        &owners,
        2,
    );
    let got = &snap.sockets;
    let o = got[0].owner.as_ref().unwrap();
    assert_eq!((o.pid, o.comm.as_str(), o.cgroup_id), (42, "nginx", 9));
    assert_eq!(got[0].uid, 33);
    assert_eq!(got[1].owner, None);
    assert_eq!(got[1].age, Age::Exact(30 * S));
    assert_eq!(got[2].owner, None, "inode 6 has no known holder");
    assert_eq!(snap.unreadable_processes, 2);
}

#[test]
fn a_datagram_decodes_tuple_inode_and_the_timewait_expiry() {
    let response = InetResponse {
        header: InetResponseHeader {
            family: AF_INET,
            state: 6,
            timer: Some(Timer::Retransmit(Duration::from_millis(41_500), 0)),
            socket_id: SocketId {
                source_port: 8080,
                destination_port: 40000,
                source_address: ip("127.0.0.1"),
                destination_address: ip("127.0.0.2"),
                interface_id: 0,
                cookie: [0; 8],
            },
            recv_queue: 0,
            send_queue: 0,
            uid: 1000,
            inode: 0,
        },
        nlas: Default::default(),
    };
    let mut msg = NetlinkMessage::new(
        NetlinkHeader::default(),
        SockDiagMessage::InetResponse(Box::new(response)).into(),
    );
    msg.finalize();
    let mut bytes = vec![0; msg.buffer_len()];
    msg.serialize(&mut bytes);
    // The crate writes no expiry for a timewait timer, so it is emitted as a retransmit timer
    // and turned into the kernel's timewait one (idiag_timer 3) here.
    bytes[16 + 2] = 3;
    let mut done = NetlinkMessage::<SockDiagMessage>::new(
        NetlinkHeader::default(),
        NetlinkPayload::Done(DoneMessage::default()),
    );
    done.finalize();
    let start = bytes.len();
    bytes.resize(start + done.buffer_len(), 0);
    done.serialize(&mut bytes[start..]);

    let mut entries = Vec::new();
    assert!(
        diag::parse_datagram(&bytes, &mut entries).unwrap(),
        "DONE ends the dump"
    );
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.state, TcpState::TimeWait);
    assert_eq!(
        e.tuple,
        Tuple::new(ip("127.0.0.1"), 8080, ip("127.0.0.2"), 40000)
    );
    assert_eq!((e.timer, e.expires_ms, e.uid), (3, 41_500, 1000));
    assert_eq!(
        age_of(e.state, e.timer, e.expires_ms),
        Age::Exact(18_500_000_000)
    );
}
