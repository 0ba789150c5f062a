//! One VM: the initramfs for a kernel, the boot, and what its serial console says.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use super::{arch::Arch, kernels, modules, sh};

pub const REQUESTS: u64 = 20;

/// The modules tracer's snapshot needs (sock_diag for TCP), and the dummy interface the
/// half-open check sends its SYN-ACKs into; their dependencies come along.
const MODULES: &[&str] = &["inet_diag", "tcp_diag", "dummy"];

/// A gzip'd cpio initramfs: busybox, the static tracer, the kernel's own diag modules, the
/// init script, all of the VM's architecture. Returns the image and the modules it loads, in
/// order.
pub fn initramfs(
    work: &Path,
    arch: Arch,
    tracer: &Path,
    kernel: &kernels::Kernel,
) -> Result<(PathBuf, Vec<String>)> {
    let dir = work.join(format!("initrd-{}", arch.name()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["bin", "proc", "sys", "dev", "tmp", "www"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let busybox = kernels::busybox(work, arch)?;
    std::fs::copy(&busybox, dir.join("bin/busybox"))
        .with_context(|| format!("busybox-static: {}", busybox.display()))?;
    std::fs::copy(tracer, dir.join("bin/tracer"))?;
    // Built beside it (mod.rs): the half-open check's SYN sender.
    std::fs::copy(tracer.with_file_name("trc-syns"), dir.join("bin/trc-syns"))?;
    std::fs::write(dir.join("www/index.html"), "hello\n")?;
    let modules = modules::copy(kernel, MODULES, &dir.join("lib/modules"))?;
    std::fs::write(dir.join("modules.load"), modules.join("\n") + "\n")?;
    std::fs::write(dir.join("init"), include_str!("../../assets/qemu-init.sh"))?;
    std::fs::write(
        dir.join("timewait.sh"),
        include_str!("../../assets/qemu-timewait.sh"),
    )?;
    sh(Command::new("chmod")
        .arg("755")
        .arg(dir.join("init"))
        .arg(dir.join("timewait.sh")))?;
    let image = work.join(format!("initrd-{}.gz", arch.name()));
    sh(Command::new("sh").arg("-c").arg(format!(
        "cd {} && find . | cpio -o -H newc 2>/dev/null | gzip -1 > {}",
        dir.display(),
        image.display()
    )))?;
    Ok((image, modules))
}

/// Boots the kernel with the initramfs under TCG (KVM is not available everywhere, and never
/// for another architecture) and returns the serial console's text.
pub fn boot(arch: Arch, vmlinuz: &Path, initrd: &Path) -> Result<String> {
    let (qemu, machine, console) = arch.qemu();
    let timeout = arch.vm_timeout().as_secs();
    let out = Command::new("timeout")
        .arg(timeout.to_string())
        .arg(qemu)
        .args(machine)
        .args(["-m", "1024", "-smp", "2", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", &format!("{console} quiet panic=-1")])
        .output()
        .with_context(|| format!("running {qemu}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.code() == Some(124) {
        bail!("the VM did not power off within {timeout} s:\n{text}");
    }
    if !out.status.success() {
        bail!(
            "qemu failed ({}): {}\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

pub fn between<'a>(text: &'a str, begin: &str, end: &str) -> Result<&'a str> {
    let start = text
        .find(begin)
        .with_context(|| format!("no {begin} in VM output"))?;
    let rest = &text[start + begin.len()..];
    let stop = rest
        .find(end)
        .with_context(|| format!("no {end} in VM output"))?;
    Ok(rest[..stop].trim())
}

/// The loopback HTTP churn: `tracer closes` and `tracer histogram`.
pub struct Connections {
    pub server: Option<u64>,
    pub client: Option<u64>,
    pub incomplete: u64,
    pub durations: serde_json::Value,
    pub lost: serde_json::Value,
}

impl Connections {
    /// The `tracer closes` run of section `closes` (CLOSES, or CLOSES-TIMER: the timer path
    /// forced) and the `tracer histogram` run.
    pub fn parse(out: &str, closes: &str) -> Result<Connections> {
        // BEGIN-CLOSES comes before BEGIN-CLOSES-TIMER, END-CLOSES before END-CLOSES-TIMER.
        let closes: serde_json::Value = serde_json::from_str(between(
            out,
            &format!("BEGIN-{closes}"),
            &format!("END-{closes}"),
        )?)?;
        let hist: serde_json::Value =
            serde_json::from_str(between(out, "BEGIN-HIST", "END-HIST")?)?;
        let row = |role: &str| {
            closes
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["role"] == role)
        };
        // A server socket that never completed its handshake (seen once in 5 runs: 21 server
        // ends, one of them SYN_RECV -> CLOSE; presumably a child that lost the race for its
        // request, with the final ACK and the request handled on both vCPUs at once) is no
        // connection of its own.
        let incomplete = |role: &str| {
            row(role)
                .and_then(|r| r["handshake_incomplete"].as_u64())
                .unwrap_or(0)
        };
        let ended = |role: &str| {
            row(role)
                .and_then(|r| r["ended"].as_u64())
                .map(|n| n.saturating_sub(incomplete(role)))
        };
        Ok(Connections {
            server: ended("server"),
            client: ended("client"),
            incomplete: incomplete("server"),
            durations: hist["count"].clone(),
            lost: hist["lost"].clone(),
        })
    }

    pub fn ok(&self) -> bool {
        self.server == Some(REQUESTS)
            && self.client == Some(REQUESTS)
            && self.durations.as_u64() == Some(2 * REQUESTS)
            && self.lost.as_u64() == Some(0)
    }

    pub fn describe(&self) -> String {
        format!(
            "server ends {:?} (+{} handshakes not completed), client ends {:?}, ESTABLISHED \
             durations {}, lost {} (expected {REQUESTS}, {REQUESTS}, {}, 0)",
            self.server,
            self.incomplete,
            self.client,
            self.durations,
            self.lost,
            2 * REQUESTS
        )
    }
}

/// The sock_diag snapshot: `tracer states --json` with httpd listening, and no
/// "no snapshot of existing sockets" warning from any tracer run in the VM.
pub struct Snapshot {
    pub exit: Option<i32>,
    pub listening: Option<u64>,
    pub warnings: Vec<String>,
}

impl Snapshot {
    pub fn parse(out: &str) -> Result<Snapshot> {
        let exit = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("STATES-EXIT "))
            .and_then(|c| c.trim().parse().ok());
        let states = between(out, "BEGIN-STATES", "END-STATES")?;
        // httpd's row: the service it listens on.
        let listening = serde_json::from_str::<serde_json::Value>(states)
            .ok()
            .and_then(|v| {
                v["rows"]
                    .as_array()?
                    .iter()
                    .find(|r| r["service"] == "127.0.0.1:8080")?["states"]["LISTEN"]
                    .as_u64()
            });
        let warnings = between(out, "BEGIN-SNAPSHOT-WARNINGS", "END-SNAPSHOT-WARNINGS")?
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        Ok(Snapshot {
            exit,
            listening,
            warnings,
        })
    }

    pub fn ok(&self) -> bool {
        self.exit == Some(0) && self.listening.unwrap_or(0) >= 1 && self.warnings.is_empty()
    }

    pub fn describe(&self) -> String {
        match self.warnings.first() {
            Some(w) => format!("not taken: \"{w}\" ({} runs said so)", self.warnings.len()),
            None => format!(
                "`tracer states` exit {:?}, LISTEN on 127.0.0.1:8080 seen {:?}, no run warned",
                self.exit, self.listening
            ),
        }
    }
}

/// Which data path each of `closes`, `histogram` and the timer-path `closes` said it used.
pub struct Aggregation {
    /// (run, its stderr line about kernel aggregation).
    pub lines: Vec<(String, String)>,
}

impl Aggregation {
    pub fn parse(out: &str) -> Result<Aggregation> {
        let lines = between(out, "BEGIN-AGGREGATION", "END-AGGREGATION")?
            .lines()
            .filter_map(|l| l.trim().split_once(": "))
            .map(|(run, line)| (run.to_string(), line.to_string()))
            .collect();
        Ok(Aggregation { lines })
    }

    /// Every run aggregated in the kernel (`expected`), or every run said why not.
    pub fn ok(&self, expected: bool) -> bool {
        let said = |want: &str| {
            ["closes", "hist", "closes-timer"].iter().all(|run| {
                self.lines
                    .iter()
                    .any(|(r, l)| r == run && l.starts_with(want))
            })
        };
        match expected {
            true => said("kernel aggregation: durations counted in the kernel"),
            false => said("kernel aggregation unavailable"),
        }
    }

    pub fn describe(&self) -> String {
        let first = self
            .lines
            .first()
            .map_or("nothing said", |(_, l)| l.as_str());
        format!("{} runs said so; \"{first}\"", self.lines.len())
    }
}

/// Whether a kernel release (`5.10.0-32-cloud-amd64`) lets tracing programs read socket
/// cookies (5.12+): kernel aggregation is expected there.
pub fn aggregation_expected(release: &str) -> bool {
    let mut parts = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (5, 12)
}

/// The close rows of section `closes` (CLOSES, CLOSES-TIMER or CLOSES-OFF), sorted, to
/// compare the aggregating runs with the one that sent every transition. Without the row's
/// named owner: every wget has one connection, and which of the tied owners a row names may
/// differ between runs.
pub fn close_rows(out: &str, closes: &str) -> Result<Vec<String>> {
    let rows: serde_json::Value = serde_json::from_str(between(
        out,
        &format!("BEGIN-{closes}"),
        &format!("END-{closes}"),
    )?)?;
    let mut rows: Vec<String> = rows
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let mut r = r.clone();
            if let Some(row) = r.as_object_mut() {
                for owner in ["process", "pid", "cgroup_id", "unit", "container", "pod"] {
                    row.remove(owner);
                }
            }
            r.to_string()
        })
        .collect();
    rows.sort();
    Ok(rows)
}
