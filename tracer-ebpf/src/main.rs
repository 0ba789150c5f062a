//! Kernel side of tracer: small, boring hooks that copy what they see into one ring buffer.
//! Everything that can be decided in userspace is decided there.
#![no_std]
#![no_main]

mod emit;
mod fentry;
mod filter;
mod floor;
mod resets;
mod state;
mod timewait;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
