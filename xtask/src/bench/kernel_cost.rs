//! Per-program kernel cost from `kernel.bpf_stats_enabled`: run_time_ns / run_cnt of every
//! program a process holds (found through /proc/PID/fdinfo), the timer hooks included, which
//! run on every kernel timer, not only TCP's. The stats add two clock reads per run, so
//! they are on only for this measurement, never during the throughput rounds.
use std::{collections::BTreeSet, process::Command};

use anyhow::{Context, Result};
use serde_json::Value;

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Turns the kernel's BPF run-time statistics on; restores the previous value on drop.
pub struct StatsEnabled {
    previous: String,
}

impl StatsEnabled {
    pub fn on() -> Result<StatsEnabled> {
        let previous =
            std::fs::read_to_string(STATS_SYSCTL).context("reading bpf_stats_enabled")?;
        std::fs::write(STATS_SYSCTL, "1").context("enabling kernel.bpf_stats_enabled")?;
        Ok(StatsEnabled { previous })
    }
}

impl Drop for StatsEnabled {
    fn drop(&mut self) {
        let _ = std::fs::write(STATS_SYSCTL, self.previous.trim());
    }
}

#[derive(Debug, Clone)]
pub struct ProgramCost {
    pub name: String,
    pub runs: u64,
    pub run_time_ns: u64,
}

impl ProgramCost {
    pub fn ns_per_run(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            self.run_time_ns as f64 / self.runs as f64
        }
    }
}

/// Program ids a process holds open (`prog_id:` lines of its fdinfo).
pub fn program_ids(pid: u32) -> BTreeSet<u32> {
    fdinfo_ids(pid, "prog_id:")
}

/// Whether a process holds a BPF link (its programs are attached).
pub fn holds_links(pid: u32) -> bool {
    !fdinfo_ids(pid, "link_id:").is_empty()
}

fn fdinfo_ids(pid: u32, key: &str) -> BTreeSet<u32> {
    let mut ids = BTreeSet::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for fd in fds.flatten() {
        let text = std::fs::read_to_string(fd.path()).unwrap_or_default();
        ids.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix(key))
                .filter_map(|v| v.trim().parse::<u32>().ok()),
        );
    }
    ids
}

/// run_cnt and run_time_ns of each program, from bpftool.
pub fn costs(ids: &BTreeSet<u32>) -> Result<Vec<ProgramCost>> {
    let mut out = Vec::new();
    for id in ids {
        let output = Command::new("bpftool")
            .args(["prog", "show", "id", &id.to_string(), "--json"])
            .output()
            .context("running bpftool (scripts/setup.sh installs it)")?;
        let Ok(info) = serde_json::from_slice::<Value>(&output.stdout) else {
            continue;
        };
        let number = |key: &str| info.get(key).and_then(Value::as_u64).unwrap_or(0);
        out.push(ProgramCost {
            name: info
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
            runs: number("run_cnt"),
            run_time_ns: number("run_time_ns"),
        });
    }
    Ok(out)
}

pub fn print(label: &str, seconds: f64, costs: &[ProgramCost]) {
    println!("  {label}:");
    println!(
        "    {:<22} {:>12} {:>12} {:>10} {:>12}",
        "program", "runs", "runs/s", "ns/run", "CPU %"
    );
    for c in costs {
        println!(
            "    {:<22} {:>12} {:>12.0} {:>10.1} {:>11.2}%",
            c.name,
            c.runs,
            c.runs as f64 / seconds,
            c.ns_per_run(),
            100.0 * c.run_time_ns as f64 / 1e9 / seconds
        );
    }
}

/// CPU per TCP state transition, kernel programs and the process together: the transitions
/// are the state program's runs (bpftool shows names cut to 15 characters).
pub fn per_transition(costs: &[ProgramCost], process_cpu_seconds: f64) {
    let transitions: u64 = costs
        .iter()
        .filter(|c| c.name.contains("inet_sock") || c.name.starts_with("aggregate_inet"))
        .map(|c| c.runs)
        .sum();
    if transitions == 0 {
        println!("    no state transitions counted: no CPU per transition");
        return;
    }
    let kernel_ns: u64 = costs.iter().map(|c| c.run_time_ns).sum();
    let per = |ns: f64| ns / transitions as f64;
    let (kernel, process) = (per(kernel_ns as f64), per(process_cpu_seconds * 1e9));
    println!(
        "    CPU per transition: {:.0} ns (kernel programs {kernel:.0} + the process {process:.0}), {transitions} transitions",
        kernel + process
    );
}
