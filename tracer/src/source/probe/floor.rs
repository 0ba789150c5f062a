//! `TRACER_EMPTY_PROGRAMS=1`, for `cargo xtask bench` only: empty programs on the same hooks
//! as a normal run (the state and reset tracepoints and the three timer tracepoints) instead of
//! the real ones. What the churn loses then is the floor: the cost of running any BPF program
//! on these hooks at all, before any work.
use anyhow::Result;
use aya::{Btf, Ebpf};

pub const ENV: &str = "TRACER_EMPTY_PROGRAMS";

/// (program, tracepoint): the empty twins of every program a timer-path run attaches.
const PROGRAMS: [(&str, &str); 6] = [
    ("empty_inet_sock_set_state", "inet_sock_set_state"),
    ("empty_tcp_send_reset", "tcp_send_reset"),
    ("empty_tcp_receive_reset", "tcp_receive_reset"),
    ("empty_timer_start", "timer_start"),
    ("empty_timer_expire_entry", "timer_expire_entry"),
    ("empty_timer_cancel", "timer_cancel"),
];

pub fn requested() -> bool {
    std::env::var_os(ENV).is_some_and(|v| v == "1")
}

pub fn attach(ebpf: &mut Ebpf, btf: &Btf) -> Result<()> {
    for (name, tracepoint) in PROGRAMS {
        super::attach_btf_tracepoint(ebpf, btf, name, tracepoint)?;
    }
    log::info!("benchmark floor ({ENV}=1): empty programs on every hook, nothing is traced");
    Ok(())
}
