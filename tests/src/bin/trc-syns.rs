//! Unanswered half-open connections for the qemu scenario (xtask/assets/qemu-init.sh): N raw
//! SYNs from [`PHANTOM_IP`] (held by nobody: the VM routes its answers into a dummy interface)
//! to a listener, each from its own port.
//!
//! ```text
//! trc-syns IP PORT N
//! ```
use std::net::Ipv4Addr;

use tracer_tests::half_open::{PHANTOM_IP, SYN, send};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ip, port, n] = args.as_slice() else {
        eprintln!("usage: trc-syns IP PORT N (SYNs from {PHANTOM_IP:?})");
        std::process::exit(2);
    };
    let (Ok(ip), Ok(port), Ok(n)) = (
        ip.parse::<Ipv4Addr>(),
        port.parse::<u16>(),
        n.parse::<u16>(),
    ) else {
        eprintln!("trc-syns: IP PORT N expected, got {args:?}");
        std::process::exit(2);
    };
    if n > 1000 {
        eprintln!("trc-syns: at most 1000 SYNs");
        std::process::exit(2);
    }
    for i in 0..n {
        send(ip.octets(), port, 46000 + i, 1000 * u32::from(i), SYN);
    }
    println!("sent {n} SYNs");
}
