//! One tracer, traffic in two pairs of network namespaces at once (the same addresses and port
//! in both pairs): every transition carries the inode of the namespace of its socket, as
//! `stat -L -c %i /run/netns/NAME` gives it, and the counts per namespace are exact.
use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    process::Command,
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;
use tracer_tests::{
    Running,
    churn::{changes, count_by_change, stop, transitions},
    free_port,
    netns::{HostPair, SERVER_IP},
    take_fin,
};

fn stat_inode(ns: &str) -> u64 {
    let out = Command::new("stat")
        .args(["-L", "-c", "%i", &format!("/run/netns/{ns}")])
        .output()
        .expect("stat");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("inode")
}

/// `n` connections from the client namespace to the server one; the client closes first and
/// the server closes once it has read the client's FIN.
fn churn(
    pair: &HostPair,
    port: u16,
    n: usize,
) -> (std::thread::JoinHandle<()>, std::thread::JoinHandle<()>) {
    let addr = SocketAddr::from((SERVER_IP, port));
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = HostPair::spawn_in(&pair.server_ns, "server", move || {
        let listener = TcpListener::bind(addr).expect("listen");
        ready_tx.send(()).unwrap();
        for _ in 0..n {
            let (mut s, _) = listener.accept().expect("accept");
            take_fin(&mut s);
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("server listening");
    let client = HostPair::spawn_in(&pair.client_ns, "client", move || {
        for _ in 0..n {
            let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
            std::thread::sleep(Duration::from_millis(20));
            // Shut down, not close: see close_client_first.
            c.shutdown(std::net::Shutdown::Write).expect("shutdown");
            take_fin(&mut c);
        }
    });
    (server, client)
}

#[test]
fn each_namespace_is_labelled_and_counted_exactly() {
    let tag = std::process::id() % 10000;
    let first = HostPair::create(&format!("{tag}x"));
    let second = HostPair::create(&format!("{tag}y"));
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let tracer = Running::start(&[
        "run",
        "--json",
        "--no-socket",
        "--duration",
        "60",
        "--port",
        &p,
        // Only the pairs' network: other tests may use the port as an ephemeral one.
        "--addr",
        "10.231.7.0/24",
    ]);
    let (n1, n2) = (3, 6);
    let (s1, c1) = churn(&first, port, n1);
    let (s2, c2) = churn(&second, port, n2);
    for t in [c1, c2, s1, s2] {
        t.join().unwrap();
    }
    let (code, out) = stop(tracer);
    assert_eq!(code, 0, "{out}");
    let lines = transitions(&out);
    let server_side = |n| {
        changes(&[
            ("CLOSE", "LISTEN", 1),
            ("LISTEN", "SYN_RECV", n),
            ("SYN_RECV", "ESTABLISHED", n),
            ("ESTABLISHED", "CLOSE_WAIT", n),
            ("CLOSE_WAIT", "LAST_ACK", n),
            ("LAST_ACK", "CLOSE", n),
            ("LISTEN", "CLOSE", 1),
        ])
    };
    let client_side = |n| {
        changes(&[
            ("CLOSE", "SYN_SENT", n),
            ("SYN_SENT", "ESTABLISHED", n),
            ("ESTABLISHED", "FIN_WAIT1", n),
            ("FIN_WAIT1", "FIN_WAIT2", n),
            ("FIN_WAIT2", "CLOSE", n),
            ("FIN_WAIT2", "TIME_WAIT", n),
        ])
    };
    let mut labelled = 0;
    for (pair, n) in [(&first, n1), (&second, n2)] {
        for (ns, expected) in [
            (&pair.server_ns, server_side(n)),
            (&pair.client_ns, client_side(n)),
        ] {
            let ino = stat_inode(ns);
            let in_ns = |l: &Value| l["netns"].as_u64() == Some(ino);
            assert_eq!(count_by_change(&lines, in_ns), expected, "namespace {ns}");
            labelled += expected.values().sum::<usize>();
        }
    }
    assert_eq!(lines.len(), labelled, "every transition in one of the four");
}
