//! The filters run in the kernel: two kinds of traffic at once, one tracer keeping one kind and
//! a baseline tracer (port filter only) seeing both. What a filter excludes never reaches
//! userspace (0 transitions); what it keeps is exact (the expected transitions, the same as
//! the baseline's for that traffic).
use std::{
    net::{IpAddr, SocketAddr, TcpListener},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use socket2::{Domain, Socket, Type};
use tracer_tests::{
    Running,
    churn::{
        Churn, TestCgroup, changes, client_first_changes, close_client_first, count_by_change,
        endpoint, run_ip, stop, transitions,
    },
    free_port, tracer_bin,
};

const CONNECTIONS: usize = 5;

/// `127.110.x.(y + k)`, x.y from the process id with y a multiple of 8: a /29 of this run.
fn block_ip(k: u8) -> String {
    let pid = std::process::id();
    format!("127.110.{}.{}", (pid >> 8) & 0xff, (pid as u8 & 0xf8) + k)
}

/// `n` connections to `server` from a client bound to `client_ip`; the client closes first.
fn churn_from(server: SocketAddr, client_ip: IpAddr, n: usize) {
    let listener = TcpListener::bind(server).expect("listen");
    for _ in 0..n {
        let socket = Socket::new(Domain::for_address(server), Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::new(client_ip, 0).into()).unwrap();
        socket.connect(&server.into()).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        std::thread::sleep(Duration::from_millis(20));
        close_client_first(socket.into(), accepted);
    }
}

/// `tracer run --json ARGS`, stopped by [`finish`] (60 s at most).
fn run_json(args: &[&str]) -> Running {
    // No control socket: several tracers run at once and none is queried.
    let mut all = vec!["run", "--json", "--no-socket", "--duration", "60"];
    all.extend_from_slice(args);
    Running::start(&all)
}

fn finish(tracer: Running) -> Vec<Value> {
    let (code, out) = stop(tracer);
    assert_eq!(code, 0, "{out}");
    transitions(&out)
}

/// Does either end of the transition have one of these addresses?
fn touches(line: &Value, ips: &[&str]) -> bool {
    let (local, _) = endpoint(&line["local"]);
    let (remote, _) = endpoint(&line["remote"]);
    ips.contains(&local.as_str()) || ips.contains(&remote.as_str())
}

#[test]
fn addr_filter_keeps_matching_networks_only() {
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    // Inside the /30 of this run: .2 and .3; outside: .5 and .6.
    let ips: Vec<String> = [2, 3, 5, 6].into_iter().map(block_ip).collect();
    let baseline = run_json(&["--port", &p]);
    let v4net = run_json(&["--port", &p, "--addr", &format!("{}/30", block_ip(0))]);
    let v6host = run_json(&["--port", &p, "--addr", "::1/128", "--addr", "10.99.0.0/16"]);
    let groups: [(&str, &str); 3] = [(&ips[0], &ips[1]), (&ips[2], &ips[3]), ("::1", "::1")];
    let threads: Vec<_> = groups
        .iter()
        .map(|&(server, client)| {
            let server = SocketAddr::new(server.parse().unwrap(), port);
            let client: IpAddr = client.parse().unwrap();
            std::thread::spawn(move || churn_from(server, client, CONNECTIONS))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (baseline, v4net, v6host) = (finish(baseline), finish(v4net), finish(v6host));
    let inside = [ips[0].as_str(), &ips[1]];
    let outside = [ips[2].as_str(), &ips[3]];
    let v6 = ["::1"];
    let expected = client_first_changes(CONNECTIONS, true);
    for ips in [&inside[..], &outside, &v6] {
        assert_eq!(
            count_by_change(&baseline, |l| touches(l, ips)),
            expected,
            "baseline, {ips:?}"
        );
    }
    assert_eq!(count_by_change(&v4net, |l| touches(l, &inside)), expected);
    assert_eq!(
        v4net.len(),
        expected.values().sum::<usize>(),
        "nothing else"
    );
    assert_eq!(count_by_change(&v6host, |l| touches(l, &v6)), expected);
    assert_eq!(
        v6host.len(),
        expected.values().sum::<usize>(),
        "nothing else"
    );
}

/// `stat -L -c %i PATH`: the inode of a namespace file.
fn stat_inode(path: &str) -> u64 {
    let out = Command::new("stat")
        .args(["-L", "-c", "%i", path])
        .output()
        .expect("stat");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("inode")
}

#[test]
fn netns_filter_keeps_one_namespace_by_path_or_inode() {
    use tracer_tests::sockets::Netns;
    let pid = std::process::id();
    let (a, b) = (
        Netns::create(&format!("trcfa{pid}")),
        Netns::create(&format!("trcfb{pid}")),
    );
    let (ino_a, ino_b) = (
        stat_inode(&format!("/run/netns/{}", a.name)),
        stat_inode(&format!("/run/netns/{}", b.name)),
    );
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let baseline = run_json(&["--port", &p]);
    let only_a = run_json(&["--port", &p, "--netns", &format!("/run/netns/{}", a.name)]);
    let only_b = run_json(&["--port", &p, "--netns", &ino_b.to_string()]);
    // The same address and port in both: only the namespace tells them apart.
    let server: SocketAddr = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    let client: IpAddr = "127.0.0.1".parse().unwrap();
    let ta = a.spawn("churn-a", move || churn_from(server, client, CONNECTIONS));
    let tb = b.spawn("churn-b", move || {
        churn_from(server, client, CONNECTIONS + 2)
    });
    ta.join().unwrap();
    tb.join().unwrap();
    let (baseline, only_a, only_b) = (finish(baseline), finish(only_a), finish(only_b));
    let in_ns = |ino: u64| move |l: &Value| l["netns"].as_u64() == Some(ino);
    let (expected_a, expected_b) = (
        client_first_changes(CONNECTIONS, true),
        client_first_changes(CONNECTIONS + 2, true),
    );
    assert_eq!(count_by_change(&baseline, in_ns(ino_a)), expected_a);
    assert_eq!(count_by_change(&baseline, in_ns(ino_b)), expected_b);
    assert_eq!(count_by_change(&only_a, in_ns(ino_a)), expected_a);
    assert_eq!(
        only_a.len(),
        expected_a.values().sum::<usize>(),
        "only namespace A"
    );
    assert_eq!(count_by_change(&only_b, in_ns(ino_b)), expected_b);
    assert_eq!(
        only_b.len(),
        expected_b.values().sum::<usize>(),
        "only namespace B"
    );
}

/// Is this transition on the server side of `port` (its local port), or the client side?
fn server_side(line: &Value, port: u16) -> bool {
    endpoint(&line["local"]).1 == port
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
    let on = |port: u16| {
        move |l: &Value| endpoint(&l["local"]).1 == port || endpoint(&l["remote"]).1 == port
    };
    let expected = client_first_changes(CONNECTIONS, false);
    assert_eq!(count_by_change(&baseline, on(p1)), expected);
    assert_eq!(count_by_change(&baseline, on(p2)), expected);
    assert_eq!(count_by_change(&only_kept, on(p1)), expected);
    assert_eq!(count_by_change(&only_kept, on(p2)), changes(&[]));
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
    let on = |port: u16| {
        move |l: &Value| endpoint(&l["local"]).1 == port || endpoint(&l["remote"]).1 == port
    };
    let expected = client_first_changes(CONNECTIONS, true);
    assert_eq!(count_by_change(&baseline, on(p1)), expected);
    assert_eq!(count_by_change(&baseline, on(p2)), expected);
    assert_eq!(count_by_change(&only_alpha, on(p1)), expected);
    assert_eq!(count_by_change(&only_alpha, on(p2)), changes(&[]));
    for l in &only_alpha {
        assert_eq!(l["comm"], "trc-alpha", "{l}");
    }
}

#[test]
fn bad_filter_values_are_usage_errors_with_the_reason() {
    let many_ports: Vec<String> = (1..=17)
        .flat_map(|p| ["--port".into(), p.to_string()])
        .collect();
    let many_addrs: Vec<String> = (1..=9)
        .flat_map(|i| ["--addr".into(), format!("10.0.0.{i}")])
        .collect();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--addr".into(), "10.0.0.0/33".into()],
            "'10.0.0.0/33' is not an address or CIDR",
        ),
        (
            vec!["--addr".into(), "::1/129".into()],
            "'::1/129' is not an address or CIDR",
        ),
        (
            vec!["--addr".into(), "example.com".into()],
            "is not an address or CIDR",
        ),
        (
            vec!["--netns".into(), "/run/netns/trc-does-not-exist".into()],
            "does not exist",
        ),
        (
            vec!["--netns".into(), "/etc/hostname".into()],
            "not a network namespace",
        ),
        (
            vec!["--netns".into(), "0".into()],
            "not a network namespace inode",
        ),
        (
            vec!["--cgroup".into(), "/trc-does-not-exist".into()],
            "not a cgroup v2 directory",
        ),
        (
            vec!["--cgroup".into(), "18446744073709551615".into()],
            "no cgroup has id",
        ),
        (vec!["--pid".into(), "0".into()], "not a process id"),
        (
            vec!["--pid".into(), "2147483647".into()],
            "no process has pid",
        ),
        (
            vec!["--comm".into(), "a-very-long-command".into()],
            "longer than 15 bytes",
        ),
        (vec!["--port".into(), "0".into()], "not a TCP port"),
        (vec!["--ring-bytes".into(), "1000".into()], "power of two"),
        (vec!["--ring-bytes".into(), "12288".into()], "power of two"),
        (
            vec!["--from".into(), "x.trc".into(), "--pid".into(), "1".into()],
            "cannot be used",
        ),
        (many_ports, "at most 16 --port values"),
        (many_addrs, "at most 8 --addr values"),
    ];
    for (args, message) in cases {
        let out = Command::new(tracer_bin())
            .arg("run")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    // The same options on every live subcommand.
    for sub in [
        &["histogram", "--state", "established"][..],
        &["closes"],
        &["top"],
        &["record", "-o", "/dev/null"],
    ] {
        let out = Command::new(tracer_bin())
            .args(sub)
            .args(["--addr", "10.0.0.0/33"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{sub:?}");
    }
}
