//! The architectures the VMs run: x86_64 (the matrix of three kernels, the host's own busybox)
//! and arm64 (Debian's 6.1 and 6.12 on qemu's `virt` machine, everything cross: the tracer is
//! cross-built for aarch64-unknown-linux-musl, busybox comes from Debian's arm64
//! `busybox-static`). Both run under TCG.
use std::time::Duration;

use super::kernels::Series;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "arm64")]
    Arm64,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target of the static binary (.cargo/config.toml links the aarch64 one with
    /// rust-lld and Rust's own musl crt objects: no cross C toolchain).
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }

    /// Debian's name for it (`[arch=...]` in the sources list, `package:arch` for apt).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The kernel series booted: all three on x86_64; bookworm's 6.1 and 6.12 on arm64 (6.1
    /// for the timer path chosen alone, 6.12 for fentry).
    pub fn series(self) -> &'static [Series] {
        match self {
            Arch::X86_64 => &Series::ALL,
            Arch::Arm64 => &[Series::V6_1, Series::V6_12],
        }
    }

    /// Why tracer cannot use fentry for TIME_WAIT on this kernel, if it cannot: arm64 gained
    /// BPF trampolines in 6.0, but attaching one to a kernel function goes through ftrace's
    /// direct calls, which arm64 has since 6.4 (`DYNAMIC_FTRACE_WITH_DIRECT_CALLS`, not in
    /// Debian's arm64 6.1 config): the attach fails with ENOTSUPP (524).
    pub fn no_fentry(self, series: Series) -> Option<&'static str> {
        match (self, series) {
            (Arch::Arm64, Series::V5_10 | Series::V6_1) => {
                Some("fentry attach is ENOTSUPP on arm64 before 6.4")
            }
            _ => None,
        }
    }

    /// The image packages' flavour: `-cloud-amd64`, `-cloud-arm64` (both have BTF, network
    /// namespaces and `inet_diag`/`tcp_diag` as modules; the serial console is built in, 8250
    /// on x86, PL011 (ttyAMA0) on arm64).
    pub fn flavour(self) -> &'static str {
        match self {
            Arch::X86_64 => "-cloud-amd64",
            Arch::Arm64 => "-cloud-arm64",
        }
    }

    /// The VM's bound: timeout(1) kills qemu even if its init hangs.
    pub fn vm_timeout(self) -> Duration {
        match self {
            Arch::X86_64 => Duration::from_secs(420),
            Arch::Arm64 => Duration::from_secs(600),
        }
    }

    /// qemu and its machine; the kernel command line's console.
    pub fn qemu(self) -> (&'static str, &'static [&'static str], &'static str) {
        match self {
            Arch::X86_64 => (
                "qemu-system-x86_64",
                &["-accel", "tcg", "-cpu", "max"],
                "console=ttyS0",
            ),
            // pauth-impdef: pointer authentication with qemu's cheap hash instead of the
            // architected QARMA, which costs a lot under TCG (the kernel signs every return).
            Arch::Arm64 => (
                "qemu-system-aarch64",
                &["-M", "virt", "-accel", "tcg", "-cpu", "max,pauth-impdef=on"],
                "console=ttyAMA0",
            ),
        }
    }
}
