//! Two test hosts on one machine: network namespaces joined by a veth pair, created by the test
//! and deleted when dropped. Traffic between them never leaves this machine.
use std::{fs::File, os::fd::AsRawFd, process::Command};

/// A server host and a client host, `SERVER_IP` and `CLIENT_IP` on a private /24 that exists
/// only inside these two namespaces.
pub struct HostPair {
    pub server_ns: String,
    pub client_ns: String,
}

pub const SERVER_IP: [u8; 4] = [10, 231, 7, 1];
pub const CLIENT_IP: [u8; 4] = [10, 231, 7, 2];

/// Runs `ip ARGS`, failing the test with ip's own message if it fails.
pub(crate) fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl HostPair {
    /// Creates the namespaces `trc<tag>s` / `trc<tag>c` with a veth pair between them.
    pub fn create(tag: &str) -> HostPair {
        let server_ns = format!("trc{tag}s");
        let client_ns = format!("trc{tag}c");
        let _ = Command::new("ip")
            .args(["netns", "del", &server_ns])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &client_ns])
            .output();
        ip(&["netns", "add", &server_ns]);
        ip(&["netns", "add", &client_ns]);
        let (va, vb) = (format!("v{tag}s"), format!("v{tag}c"));
        ip(&[
            "link", "add", &va, "netns", &server_ns, "type", "veth", "peer", "name", &vb, "netns",
            &client_ns,
        ]);
        for (ns, dev, addr) in [
            (&server_ns, &va, "10.231.7.1/24"),
            (&client_ns, &vb, "10.231.7.2/24"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        HostPair {
            server_ns,
            client_ns,
        }
    }

    /// Runs `f` on a new thread named `name` inside namespace `ns`.
    pub fn spawn_in<T: Send + 'static>(
        ns: &str,
        name: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{ns}");
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let file = File::open(&path).expect("open netns");
                // SAFETY: setns on this thread only, with a valid namespace fd.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .expect("spawn thread")
    }
}

impl Drop for HostPair {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
