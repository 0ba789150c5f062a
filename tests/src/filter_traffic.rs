//! Traffic and output helpers of the filter tests (tests/filters_*.rs): two kinds of traffic
//! at once from separate client addresses, namespaces, cgroups or processes.
use std::{
    net::{IpAddr, SocketAddr, TcpListener},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use socket2::{Domain, Socket, Type};

use crate::{
    Running,
    churn::{close_client_first, endpoint, stop, transitions},
};

/// `127.110.x.(y + k)`, x.y from the process id with y a multiple of 8: a /29 of this run.
pub fn block_ip(k: u8) -> String {
    let pid = std::process::id();
    format!("127.110.{}.{}", (pid >> 8) & 0xff, (pid as u8 & 0xf8) + k)
}

/// `n` connections to `server` from a client bound to `client_ip`; the client closes first.
pub fn churn_from(server: SocketAddr, client_ip: IpAddr, n: usize) {
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
pub fn run_json(args: &[&str]) -> Running {
    // No control socket: several tracers run at once and none is queried.
    let mut all = vec!["run", "--json", "--no-socket", "--duration", "60"];
    all.extend_from_slice(args);
    Running::start(&all)
}

pub fn finish(tracer: Running) -> Vec<Value> {
    let (code, out) = stop(tracer);
    assert_eq!(code, 0, "{out}");
    transitions(&out)
}

/// Does either end of the transition have one of these addresses?
pub fn touches(line: &Value, ips: &[&str]) -> bool {
    let (local, _) = endpoint(&line["local"]);
    let (remote, _) = endpoint(&line["remote"]);
    ips.contains(&local.as_str()) || ips.contains(&remote.as_str())
}

/// `stat -L -c %i PATH`: the inode of a namespace file.
pub fn stat_inode(path: &str) -> u64 {
    let out = Command::new("stat")
        .args(["-L", "-c", "%i", path])
        .output()
        .expect("stat");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("inode")
}

/// Is this transition on the server side of `port` (its local port), or the client side?
pub fn server_side(line: &Value, port: u16) -> bool {
    endpoint(&line["local"]).1 == port
}
