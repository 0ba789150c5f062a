//! Empty programs on the same hooks as the real ones, for `cargo xtask bench` only: what
//! running any BPF program on these tracepoints costs a churning host before it does anything
//! (the floor under every tracer's overhead). Never attached by a normal run.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn empty_inet_sock_set_state(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[btf_tracepoint(function = "tcp_send_reset")]
pub fn empty_tcp_send_reset(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn empty_tcp_receive_reset(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[btf_tracepoint(function = "timer_start")]
pub fn empty_timer_start(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[btf_tracepoint(function = "timer_expire_entry")]
pub fn empty_timer_expire_entry(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[btf_tracepoint(function = "timer_cancel")]
pub fn empty_timer_cancel(_ctx: BtfTracePointContext) -> i32 {
    0
}
