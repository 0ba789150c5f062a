//! A fresh network namespace holding real loopback sockets in known states (TIME_WAIT,
//! CLOSE_WAIT, ESTABLISHED, LISTEN), so a snapshot of it can be checked against exact counts and
//! against `ss`. Nothing in it is reachable from outside; every wait is bounded.
use std::{
    collections::BTreeMap,
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, Output},
    thread::JoinHandle,
};

use tracer::time::clock::boot_ns;

use crate::netns::{HostPair, ip};

/// A network namespace with only `lo` (up), deleted when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        ip(&["netns", "add", name]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        Netns { name: name.into() }
    }

    /// The namespace's inode, as `/proc/PID/ns/net` names it (`net:[INODE]`).
    pub fn inode(&self) -> u32 {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(format!("/run/netns/{}", self.name)).expect("netns file");
        meta.ino() as u32
    }

    /// Runs `f` on a new thread named `name` inside this namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        HostPair::spawn_in(&self.name, name, f)
    }

    /// `ip netns exec NAME PROGRAM ARGS...`, waited for.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .expect("ip netns exec")
    }

    /// `ss -tanH` in the namespace, counted by state (kernel names, e.g. `TIME_WAIT`).
    pub fn ss_counts(&self) -> BTreeMap<String, u64> {
        let out = self.exec("ss", &["-tanH"]);
        assert!(out.status.success(), "ss: {out:?}");
        let mut counts = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(state) = line.split_whitespace().next() {
                *counts.entry(ss_state(state)).or_default() += 1;
            }
        }
        counts
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// `ss` spells states its own way (`ESTAB`, `TIME-WAIT`, `FIN-WAIT-2`, `UNCONN`).
pub fn ss_state(name: &str) -> String {
    match name {
        "ESTAB" => "ESTABLISHED".into(),
        "UNCONN" => "CLOSE".into(),
        "FIN-WAIT-1" => "FIN_WAIT1".into(),
        "FIN-WAIT-2" => "FIN_WAIT2".into(),
        other => other.replace('-', "_"),
    }
}

/// `n` connections to `server` in which the client closes first, the server second: each
/// client end is left in TIME_WAIT. Returns each client address with the boot time (ns) at
/// which its TIME_WAIT began (when the server's FIN went out, just before the return of close).
pub fn time_waits(server: &TcpListener, n: usize) -> Vec<(SocketAddr, u64)> {
    (0..n)
        .map(|_| {
            let client = TcpStream::connect(server.local_addr().unwrap()).expect("connect");
            let (mut accepted, _) = server.accept().expect("accept");
            let addr = client.local_addr().unwrap();
            drop(client);
            // The server must have the client's FIN before it closes, or both would close at
            // once (CLOSING) and both ends would hold a TIME_WAIT.
            let data = crate::take_fin(&mut accepted);
            assert_eq!(data, 0, "the peer sent data instead of closing");
            drop(accepted);
            (addr, boot_ns())
        })
        .collect()
}

/// `n` connections whose client closed and whose server never does: the returned accepted
/// ends stay in CLOSE_WAIT (and the orphaned client ends in a FIN_WAIT2 timewait socket) for as
/// long as they are kept.
pub fn close_waits(server: &TcpListener, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let client = TcpStream::connect(server.local_addr().unwrap()).expect("connect");
            let (mut accepted, _) = server.accept().expect("accept");
            drop(client);
            let data = crate::take_fin(&mut accepted);
            assert_eq!(data, 0, "the peer sent data instead of closing");
            accepted
        })
        .collect()
}

/// `n` open connections: both ends ESTABLISHED while kept.
pub fn established(server: &TcpListener, n: usize) -> Vec<(TcpStream, TcpStream)> {
    (0..n)
        .map(|_| {
            let client = TcpStream::connect(server.local_addr().unwrap()).expect("connect");
            let (accepted, _) = server.accept().expect("accept");
            (client, accepted)
        })
        .collect()
}
