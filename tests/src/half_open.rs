//! Half-open connections on demand: raw TCP segments (SYN, RST) from an address nobody holds,
//! sent from the client namespace of a [`HostPair`]. The server answers with SYN-ACKs that
//! reach nobody (a static neighbour entry on its side points at the client's veth, whose
//! kernel drops them: the address is not its own), so its request sockets live until its
//! `tcp_synack_retries` run out.
use std::{net::Ipv4Addr, process::Command};

use crate::netns::{HostPair, ip};

/// The source address of the raw segments: on the pair's /24, held by no interface.
pub const PHANTOM_IP: [u8; 4] = [10, 231, 7, 3];

/// TCP flags.
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;

/// The MAC address of `dev` in namespace `ns`.
fn mac(ns: &str, dev: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns, "link", "show", "dev", dev])
        .output()
        .expect("run ip link show");
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text
        .find("link/ether ")
        .unwrap_or_else(|| panic!("no MAC for {dev} in {ns}: {text}"));
    text[at + 11..at + 28].to_string()
}

impl HostPair {
    /// Makes the server send its answers to [`PHANTOM_IP`] down the veth (to nobody).
    pub fn route_phantom(&self, tag: &str) {
        let mac = mac(&self.client_ns, &format!("v{tag}c"));
        let phantom = Ipv4Addr::from(PHANTOM_IP).to_string();
        let dev = format!("v{tag}s");
        ip(&[
            "-n",
            &self.server_ns,
            "neigh",
            "replace",
            &phantom,
            "lladdr",
            &mac,
            "dev",
            &dev,
            "nud",
            "permanent",
        ]);
    }

    /// Sets `net.ipv4.NAME` in the server namespace.
    pub fn server_sysctl(&self, name: &str, value: &str) {
        let path = format!("/proc/sys/net/ipv4/{name}");
        let value = value.to_string();
        HostPair::spawn_in(&self.server_ns, "sysctl", move || {
            std::fs::write(&path, value).unwrap_or_else(|e| panic!("write {path}: {e}"))
        })
        .join()
        .expect("sysctl thread");
    }
}

/// One's-complement sum of 16-bit big-endian words.
fn sum16(bytes: &[u8], mut acc: u32) -> u32 {
    for pair in bytes.chunks(2) {
        let hi = u32::from(pair[0]) << 8;
        acc += hi | pair.get(1).map_or(0, |&b| u32::from(b));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// An IPv4 + TCP segment without options or payload (the kernel fills the IP checksum,
/// length and id).
fn segment(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, seq: u32, flags: u8) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20);
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes()); // ack
    tcp.extend_from_slice(&[5 << 4, flags]);
    tcp.extend_from_slice(&64240u16.to_be_bytes()); // window
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6, 0, tcp.len() as u8]);
    let check = fold(sum16(&tcp, sum16(&pseudo, 0)));
    tcp[16..18].copy_from_slice(&check.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend(tcp);
    ip
}

/// Sends one segment from [`PHANTOM_IP`]`:sport` to `dst:dport` (call it inside the client
/// namespace; needs CAP_NET_RAW).
pub fn send(dst: [u8; 4], dport: u16, sport: u16, seq: u32, flags: u8) {
    let packet = segment(PHANTOM_IP, dst, sport, dport, seq, flags);
    // SAFETY: plain socket calls on a descriptor this function owns and closes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW);
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(dst),
            },
            sin_zero: [0; 8],
        };
        let sent = libc::sendto(
            fd,
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_in>() as u32,
        );
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        assert_eq!(sent, packet.len() as isize, "sendto: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tcp_checksum_verifies() {
        let p = segment([10, 0, 0, 3], [10, 0, 0, 1], 40000, 80, 7, SYN);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[12..20]);
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        assert_eq!(fold(sum16(&p[20..], sum16(&pseudo, 0))), 0);
    }
}
