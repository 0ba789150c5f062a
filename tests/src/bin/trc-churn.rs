//! A traffic generator the filter tests run as a separate process, so it can have its own pid,
//! command name and cgroup. Every wait is bounded.
//!
//! ```text
//! trc-churn self|serve|connect --addr IP:PORT [-n N] [--bind IP] [--listen IP:PORT]
//!           [--hold-ms MS] [--cgroup DIR] [--comm NAME]
//! ```
//! `self` listens and connects to itself (the client closes first), `serve` listens and shuts
//! down each accepted connection after --hold-ms (the server closes first), `connect` connects
//! N times and closes once the server has. The process first joins --cgroup and takes --comm,
//! then listens (self, serve; on --listen if given, else on --addr), prints `ready`, waits for a line on stdin, makes its N
//! connections, prints `done` and exits.
use std::{
    io::{BufRead, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use socket2::{Domain, Socket, Type};
use tracer_tests::{churn::close_client_first, take_fin};

struct Opts {
    mode: String,
    addr: SocketAddr,
    n: usize,
    bind: Option<std::net::IpAddr>,
    listen: Option<SocketAddr>,
    hold: Duration,
    cgroup: Option<String>,
    comm: Option<String>,
}

fn parse() -> Opts {
    let mut args = std::env::args().skip(1);
    let mode = args.next().expect("mode: self, serve or connect");
    let mut opts = Opts {
        mode,
        addr: "127.0.0.1:0".parse().unwrap(),
        n: 1,
        bind: None,
        listen: None,
        hold: Duration::from_millis(20),
        cgroup: None,
        comm: None,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => opts.addr = value.parse().expect("--addr IP:PORT"),
            "-n" => opts.n = value.parse().expect("-n N"),
            "--bind" => opts.bind = Some(value.parse().expect("--bind IP")),
            "--listen" => opts.listen = Some(value.parse().expect("--listen IP:PORT")),
            "--hold-ms" => opts.hold = Duration::from_millis(value.parse().expect("--hold-ms")),
            "--cgroup" => opts.cgroup = Some(value),
            "--comm" => opts.comm = Some(value),
            other => panic!("unknown option {other}"),
        }
    }
    opts
}

fn connect(to: SocketAddr, bind: Option<std::net::IpAddr>) -> TcpStream {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None).expect("socket");
    if let Some(ip) = bind {
        socket
            .bind(&SocketAddr::new(ip, 0).into())
            .expect("bind client");
    }
    socket
        .connect_timeout(&to.into(), Duration::from_secs(5))
        .expect("connect");
    socket.into()
}

fn main() {
    let opts = parse();
    if let Some(dir) = &opts.cgroup {
        std::fs::write(
            format!("{dir}/cgroup.procs"),
            std::process::id().to_string(),
        )
        .expect("join cgroup");
    }
    if let Some(comm) = &opts.comm {
        let name = std::ffi::CString::new(comm.as_str()).unwrap();
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
        let rc = unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
        assert_eq!(rc, 0, "prctl");
    }
    let listener = match opts.mode.as_str() {
        "self" | "serve" => {
            Some(TcpListener::bind(opts.listen.unwrap_or(opts.addr)).expect("listen"))
        }
        "connect" => None,
        other => panic!("unknown mode {other}"),
    };
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).expect("stdin");
    for _ in 0..opts.n {
        match (&listener, opts.mode.as_str()) {
            (Some(l), "self") => {
                let client = connect(opts.addr, opts.bind);
                let (accepted, _) = l.accept().expect("accept");
                std::thread::sleep(opts.hold);
                close_client_first(client, accepted);
            }
            (Some(l), _) => {
                // The server closes first: shut down, then wait for the client's FIN (see
                // close_client_first for why not close() at once).
                let (mut accepted, _) = l.accept().expect("accept");
                std::thread::sleep(opts.hold);
                accepted.shutdown(Shutdown::Write).expect("shutdown");
                take_fin(&mut accepted);
            }
            (None, _) => {
                // Until the server's FIN, then close: CLOSE_WAIT -> LAST_ACK.
                let mut client = connect(opts.addr, opts.bind);
                take_fin(&mut client);
            }
        }
    }
    drop(listener);
    println!("done");
}
