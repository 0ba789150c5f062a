//! libbpf-tools' `tcpstates` attaches a classic tracepoint, which needs tracefs for the event
//! id; a fresh host here has none mounted. Mount it for the benchmark and undo it afterwards.
use std::process::Command;

use anyhow::Result;

const TRACEFS: &str = "/sys/kernel/tracing";

/// Unmounts tracefs on drop if the benchmark mounted it.
pub struct Mounted(bool);

pub fn for_tcpstates() -> Result<Mounted> {
    if !std::path::Path::new(super::TCPSTATES).exists()
        || std::path::Path::new(TRACEFS).join("events").exists()
    {
        return Ok(Mounted(false));
    }
    let ok = Command::new("mount")
        .args(["-t", "tracefs", "tracefs", TRACEFS])
        .status()?
        .success();
    if !ok {
        eprintln!("could not mount tracefs on {TRACEFS}: tcpstates will fail to attach");
    }
    Ok(Mounted(ok))
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.0 {
            let _ = Command::new("umount").arg(TRACEFS).status();
        }
    }
}
