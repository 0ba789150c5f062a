//! Checks that turn kernel refusals into one clear sentence before anything is loaded.
use std::path::Path;

use anyhow::{Result, bail};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;
const CAP_PERFMON: u32 = 38;

/// The effective capability set of this process, from /proc/self/status.
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1 << cap) != 0
}

/// Fails with a one-line instruction when this process cannot load tracing programs.
pub fn check_can_trace() -> Result<()> {
    let caps = effective_caps();
    let admin = has(caps, CAP_SYS_ADMIN);
    if !(admin || has(caps, CAP_BPF) && has(caps, CAP_PERFMON)) {
        bail!(
            "tracer needs root (or CAP_BPF and CAP_PERFMON) to load its eBPF programs: \
             run it with sudo"
        );
    }
    if !Path::new(VMLINUX_BTF).exists() {
        bail!(
            "this kernel has no BTF ({VMLINUX_BTF} is missing): tracer needs a kernel built \
             with CONFIG_DEBUG_INFO_BTF=y (Linux 5.8 or newer from most distributions)"
        );
    }
    Ok(())
}
