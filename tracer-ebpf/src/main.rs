//! Kernel side of tracer: small, boring hooks that copy what they see into ring buffers, one per
//! CPU (up to [`tracer_common::MAX_RINGS`]). Everything that can be decided in userspace is
//! decided there.
#![no_std]
#![no_main]

mod aggregate;
mod emit;
mod fentry;
mod filter;
mod floor;
mod log;
mod reqsk;
mod resets;
mod state;
mod timewait;

// Only on the BPF target: a host build of the workspace (`cargo clippy --workspace`) links std
// into this crate through tracer-common's `user` feature, and std has its own.
#[cfg(all(not(test), target_arch = "bpf"))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
