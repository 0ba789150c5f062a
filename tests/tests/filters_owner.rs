//! Owner filters (cgroup, pid, command name) follow the socket, not the interrupted task:
//! two processes' traffic at once, one kept, a baseline tracer seeing both.
use std::time::Duration;

use serde_json::Value;
use tracer_tests::{
    churn::{Churn, TestCgroup, changes, client_first_changes, count_by_change, endpoint, run_ip},
    filter_traffic::*,
    free_port,
};

const CONNECTIONS: usize = 5;

/// The baseline saw every change of the [`CONNECTIONS`] client-first connections on both ports
/// (`listener_seen`: the listener's start too); the filtered run those on `p1` only.
fn only_first_port_kept(
    baseline: &[Value],
    filtered: &[Value],
    (p1, p2): (u16, u16),
    listener_seen: bool,
) {
    let on = |port: u16| {
        move |l: &Value| endpoint(&l["local"]).1 == port || endpoint(&l["remote"]).1 == port
    };
    let expected = client_first_changes(CONNECTIONS, listener_seen);
    assert_eq!(count_by_change(baseline, on(p1)), expected);
    assert_eq!(count_by_change(baseline, on(p2)), expected);
    assert_eq!(count_by_change(filtered, on(p1)), expected);
    assert_eq!(count_by_change(filtered, on(p2)), changes(&[]));
}

#[test]
fn cgroup_filter_follows_the_socket_not_the_interrupted_task() {
    let pid = std::process::id();
    let clients = TestCgroup::create(&format!("trc-filter-clients-{pid}"));
    let servers = TestCgroup::create(&format!("trc-filter-servers-{pid}"));
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let ip = run_ip(111, 0);
    let addr = format!("{ip}:{port}");
    let n = CONNECTIONS.to_string();
    let baseline = run_json(&["--port", &p, "--addr", &ip]);
    // One by path, one by id.
    let only_clients = run_json(&["--port", &p, "--addr", &ip, "--cgroup", clients.path_str()]);
    let only_servers = run_json(&[
        "--port",
        &p,
        "--addr",
        &ip,
        "--cgroup",
        &servers.id.to_string(),
    ]);
    // The server closes first: the client's ESTABLISHED -> CLOSE_WAIT happens in softirq while
    // the server process is current, and the server's FIN_WAIT2 -> TIME_WAIT while the client
    // is (loopback delivers in the sender's context): only following the socket keeps them.
    let mut server = Churn::spawn(&[
        "serve",
        "--addr",
        &addr,
        "-n",
        &n,
        "--cgroup",
        servers.path_str(),
    ]);
    let mut client = Churn::spawn(&[
        "connect",
        "--addr",
        &addr,
        "-n",
        &n,
        "--cgroup",
        clients.path_str(),
    ]);
    server.go();
    client.go();
    client.finish(Duration::from_secs(20));
    server.finish(Duration::from_secs(20));
    let (baseline, only_clients, only_servers) =
        (finish(baseline), finish(only_clients), finish(only_servers));
    let c = CONNECTIONS;
    let client_side = changes(&[
        ("CLOSE", "SYN_SENT", c),
        ("SYN_SENT", "ESTABLISHED", c),
        ("ESTABLISHED", "CLOSE_WAIT", c),
        ("CLOSE_WAIT", "LAST_ACK", c),
        ("LAST_ACK", "CLOSE", c),
    ]);
    let server_changes = changes(&[
        ("CLOSE", "LISTEN", 1),
        ("LISTEN", "SYN_RECV", c),
        ("SYN_RECV", "ESTABLISHED", c),
        ("ESTABLISHED", "FIN_WAIT1", c),
        ("FIN_WAIT1", "FIN_WAIT2", c),
        ("FIN_WAIT2", "CLOSE", c),
        ("FIN_WAIT2", "TIME_WAIT", c),
        ("LISTEN", "CLOSE", 1),
    ]);
    assert_eq!(
        count_by_change(&baseline, |l| !server_side(l, port)),
        client_side
    );
    assert_eq!(
        count_by_change(&baseline, |l| server_side(l, port)),
        server_changes
    );
    assert_eq!(
        count_by_change(&only_clients, |l| !server_side(l, port)),
        client_side
    );
    assert_eq!(
        count_by_change(&only_clients, |l| server_side(l, port)),
        changes(&[]),
        "no server socket"
    );
    assert_eq!(
        count_by_change(&only_servers, |l| server_side(l, port)),
        server_changes
    );
    assert_eq!(
        count_by_change(&only_servers, |l| !server_side(l, port)),
        changes(&[]),
        "no client socket"
    );
    // Each socket is attributed to its owner, whose cgroup id is the directory's inode.
    for (lines, cgroup) in [(&only_clients, &clients), (&only_servers, &servers)] {
        for l in lines.iter() {
            assert_eq!(l["cgroup_id"].as_u64(), Some(cgroup.id), "{l}");
        }
    }
}

#[test]
fn pid_filter_keeps_one_process_and_its_listener_from_before_the_trace() {
    let (p1, p2) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let n = CONNECTIONS.to_string();
    // Listening before the tracer starts: the listener comes from the attach-time snapshot,
    // and its children are followed because its owner (from /proc) is the process.
    let ip = &run_ip(112, 0);
    // On 0.0.0.0: --addr keeps it (it listens on every address); its children are on IP.
    let churn = |port: u16| {
        Churn::spawn(&[
            "self",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--addr",
            &format!("{ip}:{port}"),
            "-n",
            &n,
        ])
    };
    let (mut kept, mut other) = (churn(p1), churn(p2));
    let (s1, s2) = (p1.to_string(), p2.to_string());
    let baseline = run_json(&["--port", &s1, "--port", &s2, "--addr", ip]);
    let only_kept = run_json(&[
        "--port",
        &s1,
        "--port",
        &s2,
        "--addr",
        ip,
        "--pid",
        &kept.pid().to_string(),
    ]);
    kept.go();
    other.go();
    let kept_pid = kept.pid();
    kept.finish(Duration::from_secs(20));
    other.finish(Duration::from_secs(20));
    let (baseline, only_kept) = (finish(baseline), finish(only_kept));
    only_first_port_kept(&baseline, &only_kept, (p1, p2), false);
    for l in &only_kept {
        assert_eq!(l["pid"].as_u64(), Some(u64::from(kept_pid)), "{l}");
    }
}

#[test]
fn comm_filter_keeps_one_command_name() {
    let (p1, p2) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let (s1, s2) = (p1.to_string(), p2.to_string());
    let n = CONNECTIONS.to_string();
    let ip = &run_ip(113, 0);
    let baseline = run_json(&["--port", &s1, "--port", &s2, "--addr", ip]);
    let only_alpha = run_json(&[
        "--port",
        &s1,
        "--port",
        &s2,
        "--addr",
        ip,
        "--comm",
        "trc-alpha",
    ]);
    // On 0.0.0.0: --addr keeps it (it listens on every address); its children are on IP.
    let mut alpha = Churn::spawn(&[
        "self",
        "--listen",
        &format!("0.0.0.0:{p1}"),
        "--addr",
        &format!("{ip}:{p1}"),
        "-n",
        &n,
        "--comm",
        "trc-alpha",
    ]);
    let mut beta = Churn::spawn(&[
        "self",
        "--addr",
        &format!("{ip}:{p2}"),
        "-n",
        &n,
        "--comm",
        "trc-beta",
    ]);
    alpha.go();
    beta.go();
    alpha.finish(Duration::from_secs(20));
    beta.finish(Duration::from_secs(20));
    let (baseline, only_alpha) = (finish(baseline), finish(only_alpha));
    only_first_port_kept(&baseline, &only_alpha, (p1, p2), true);
    for l in &only_alpha {
        assert_eq!(l["comm"], "trc-alpha", "{l}");
    }
}
