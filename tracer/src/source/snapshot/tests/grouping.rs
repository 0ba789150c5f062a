//! Roles, services and processes: the rows of `tracer states`.
use super::{S, incident, snapshot, sock};
use crate::{
    model::{Role, TcpState},
    source::snapshot::{
        Age,
        summary::{Roles, StatesBy, summarize},
    },
};

#[test]
fn roles_follow_listeners_then_shared_ports_then_ephemeral_ones() {
    use TcpState::*;
    let sockets = vec![
        sock(Listen, "0.0.0.0", 8080, "0.0.0.0", 0),
        sock(
            Established,
            "::ffff:127.0.0.1",
            8080,
            "::ffff:127.0.0.1",
            40000,
        ),
        sock(SynSent, "10.0.0.1", 50000, "::1", 443),
        // TIME_WAITs a server on an ephemeral port left behind when it exited: its port is
        // the one they share.
        sock(TimeWait, "127.0.0.1", 36059, "127.0.0.1", 34492),
        sock(TimeWait, "127.0.0.1", 36059, "127.0.0.1", 34498),
        // One TIME_WAIT of a dead server on a fixed port: the port outside the ephemeral range.
        sock(TimeWait, "127.0.0.1", 18480, "127.0.0.1", 60998),
        // Nothing to tell them apart: the default, a client of the remote end.
        sock(TimeWait, "127.0.0.1", 40001, "127.0.0.1", 40002),
    ];
    let snap = snapshot(sockets);
    let roles = Roles::new(&snap);
    let got: Vec<(Role, String)> = snap
        .sockets
        .iter()
        .map(|s| {
            let (role, svc) = roles.of(s);
            (role, svc.to_string())
        })
        .collect();
    let want = [
        (Role::Listener, "0.0.0.0:8080"),
        (Role::Server, "127.0.0.1:8080"),
        (Role::Client, "[::1]:443"),
        (Role::Unknown, "127.0.0.1:36059"),
        (Role::Unknown, "127.0.0.1:36059"),
        (Role::Unknown, "127.0.0.1:18480"),
        (Role::Client, "127.0.0.1:40002"),
    ];
    let want: Vec<(Role, String)> = want.iter().map(|(r, s)| (*r, s.to_string())).collect();
    assert_eq!(got, want);
}

#[test]
fn by_service_groups_server_and_client_sides_with_oldest_ages() {
    let sum = summarize(&incident(), StatesBy::Service);
    assert_eq!(sum.totals.total(), 9);
    assert_eq!(sum.totals.count(TcpState::TimeWait), 4);
    assert_eq!(
        sum.totals.oldest(TcpState::TimeWait),
        Some(Age::Exact(50 * S))
    );
    assert_eq!(
        sum.totals.oldest(TcpState::CloseWait),
        Some(Age::AtLeast(0))
    );
    assert_eq!(
        rows_of(&sum),
        vec![
            (
                "127.0.0.1:8080".into(),
                Role::Server,
                "nginx (101) +1".into(),
                5
            ),
            ("10.0.0.5:5432".into(), Role::Client, "app (200)".into(), 3),
            (
                "0.0.0.0:8080".into(),
                Role::Listener,
                "nginx (100)".into(),
                1
            ),
        ]
    );
    let server = &sum.rows[0].states;
    assert_eq!(server.count(TcpState::CloseWait), 3);
    assert_eq!(server.count(TcpState::TimeWait), 2);
    assert_eq!(server.oldest(TcpState::TimeWait), Some(Age::Exact(50 * S)));
    let client = &sum.rows[1].states;
    assert_eq!(client.oldest(TcpState::TimeWait), Some(Age::Exact(20 * S)));
    assert_eq!(
        client.present().collect::<Vec<_>>(),
        vec![(TcpState::Established, 1), (TcpState::TimeWait, 2)]
    );
}

#[test]
fn by_process_puts_timewait_sockets_under_no_process() {
    let sum = summarize(&incident(), StatesBy::Process);
    let rows: Vec<(String, Role, u32, u64)> = sum
        .rows
        .iter()
        .map(|r| (r.process(), r.role, r.pid, r.states.total()))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("-".into(), Role::Client, 0, 2),
            ("-".into(), Role::Server, 0, 2),
            ("nginx (101)".into(), Role::Server, 101, 2),
            ("app (200)".into(), Role::Client, 200, 1),
            ("nginx (102)".into(), Role::Server, 102, 1),
            ("nginx (100)".into(), Role::Listener, 100, 1),
        ]
    );
    assert!(sum.rows.iter().all(|r| r.service == "*"));
    assert_eq!(sum.rows[0].states.count(TcpState::TimeWait), 2);
}

#[test]
fn by_state_has_totals_only() {
    let sum = summarize(&incident(), StatesBy::State);
    assert!(sum.rows.is_empty());
    assert_eq!(
        sum.totals.present().collect::<Vec<_>>(),
        vec![
            (TcpState::Established, 1),
            (TcpState::TimeWait, 4),
            (TcpState::CloseWait, 3),
            (TcpState::Listen, 1),
        ]
    );
}

/// (service, role, process, sockets) of each row.
fn rows_of(sum: &crate::source::snapshot::summary::Summary) -> Vec<(String, Role, String, u64)> {
    sum.rows
        .iter()
        .map(|r| (r.service.clone(), r.role, r.process(), r.states.total()))
        .collect()
}

#[test]
fn by_unit_merges_the_processes_of_a_unit_per_role() {
    use crate::model::cgroup_names::names_of;
    use crate::source::snapshot::summary::regroup;
    let mut sum = summarize(&incident(), StatesBy::Unit);
    // nginx's processes in nginx.service; app in a container; no process: nothing.
    regroup(&mut sum, StatesBy::Unit, |pid| match pid {
        100..=102 => names_of("/system.slice/nginx.service"),
        200 => names_of(&format!("/system.slice/docker-{}.scope", "ab".repeat(32))),
        _ => names_of("/"),
    });
    assert_eq!(
        rows_of(&sum),
        vec![
            (
                "-".into(),
                Role::Client,
                "app (200) container abababababab".into(),
                3
            ),
            (
                "nginx.service".into(),
                Role::Server,
                "nginx (101) +1 nginx.service".into(),
                3
            ),
            ("-".into(), Role::Server, "-".into(), 2),
            (
                "nginx.service".into(),
                Role::Listener,
                "nginx (100) nginx.service".into(),
                1
            ),
        ]
    );
    // By container, app's container is its own row.
    let mut sum = summarize(&incident(), StatesBy::Container);
    regroup(&mut sum, StatesBy::Container, |pid| match pid {
        200 => names_of(&format!("/system.slice/docker-{}.scope", "ab".repeat(32))),
        _ => names_of("/"),
    });
    assert!(
        sum.rows
            .iter()
            .any(|r| r.service == "abababababab" && r.states.total() == 1)
    );
}
