//! What runs next to the churn in a round: nothing, `tracer run` (aggregates only, or a line
//! per event), or libbpf-tools' `tcpstates`; each started, waited for, measured and stopped.
use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

pub const TCPSTATES: &str = "/usr/sbin/tcpstates";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    Untraced,
    /// `tracer run --quiet`: every aggregate, the tables only, stdout to a file (kernel
    /// aggregation where the kernel allows it).
    TracerQuiet,
    /// The same with `TRACER_KERNEL_AGGREGATION=off`: every transition to userspace.
    TracerPerTransition,
    /// `tracer run`: every aggregate and a line per transition, stdout to a file.
    TracerLines,
    /// libbpf-tools `tcpstates`, a line per transition to a file.
    Tcpstates,
    /// `tracer run --quiet` with `TRACER_EMPTY_PROGRAMS=1`: empty programs on the same hooks,
    /// nothing traced. The floor: what running any program on these hooks costs.
    EmptyPrograms,
}

impl Contender {
    pub fn label(self) -> &'static str {
        match self {
            Contender::Untraced => "untraced",
            Contender::TracerQuiet => "tracer run --quiet (kernel aggregation)",
            Contender::TracerPerTransition => "tracer run --quiet (per transition)",
            Contender::TracerLines => "tracer run (aggregates + a line per event)",
            Contender::Tcpstates => "libbpf-tools tcpstates",
            Contender::EmptyPrograms => "empty programs on the same hooks (floor)",
        }
    }
}

/// A running contender process; killed on drop if still running.
pub struct Running {
    child: Child,
    pub stdout: PathBuf,
    cpu_at_start: f64,
}

/// What the contender reported and used once stopped.
#[derive(Default, Debug, Clone, Copy)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub max_rss_kib: u64,
    pub received: Option<u64>,
    pub lost: Option<u64>,
}

pub fn start(
    contender: Contender,
    tracer: &Path,
    dir: &Path,
    ring_bytes: Option<u32>,
) -> Result<Option<Running>> {
    let stdout = dir.join("contender.out");
    let stderr = dir.join("contender.err");
    let mut command = match contender {
        Contender::Untraced => return Ok(None),
        Contender::Tcpstates => Command::new(TCPSTATES),
        Contender::TracerQuiet
        | Contender::TracerPerTransition
        | Contender::TracerLines
        | Contender::EmptyPrograms => {
            let mut c = Command::new(tracer);
            c.args(["run", "--no-socket", "--interval", "10s"]);
            if contender != Contender::TracerLines {
                c.arg("--quiet");
            }
            if contender == Contender::EmptyPrograms {
                c.env("TRACER_EMPTY_PROGRAMS", "1");
            }
            if contender == Contender::TracerPerTransition {
                c.env("TRACER_KERNEL_AGGREGATION", "off");
            }
            if let Some(bytes) = ring_bytes {
                c.args(["--ring-bytes", &bytes.to_string()]);
            }
            c
        }
    };
    let child = command
        .stdout(File::create(&stdout)?)
        .stderr(File::create(&stderr)?)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", contender.label()))?;
    let mut running = Running {
        cpu_at_start: 0.0,
        child,
        stdout: stdout.clone(),
    };
    wait_until_attached(contender, running.child.id(), &stderr)?;
    running.cpu_at_start = cpu_seconds(running.child.id());
    Ok(Some(running))
}

/// Runs `load` (one round of churn) next to `contender`, started and attached before it and
/// stopped after: what the load returned and what the contender used (nothing if untraced).
pub fn alongside<T>(
    contender: Contender,
    tracer: &Path,
    dir: &Path,
    ring_bytes: Option<u32>,
    load: impl FnOnce() -> T,
) -> Result<(T, Usage)> {
    let running = start(contender, tracer, dir, ring_bytes)?;
    let out = load();
    let usage = match running {
        Some(running) => running.stop()?,
        None => Usage::default(),
    };
    Ok((out, usage))
}

/// tracer says so on stderr once attached; tcpstates (whose stdout is block-buffered into
/// the file) is taken as attached once it holds BPF links.
fn wait_until_attached(contender: Contender, pid: u32, stderr: &Path) -> Result<()> {
    let attached = || match contender {
        Contender::Tcpstates => super::kernel_cost::holds_links(pid),
        _ => std::fs::read_to_string(stderr).is_ok_and(|t| t.contains("tracing TCP state changes")),
    };
    if wait_for(attached, Duration::from_secs(20)) {
        // Let the attach-time snapshot and first drain settle before measuring.
        std::thread::sleep(Duration::from_millis(300));
        return Ok(());
    }
    let err = std::fs::read_to_string(stderr).unwrap_or_default();
    bail!("{} did not attach within 20 s: {err}", contender.label())
}

/// Polls `done` every 50 ms until it holds (true) or `within` has passed (false).
pub fn wait_for(mut done: impl FnMut() -> bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (tracer prints its final summary), wait, and read what it reported.
    pub fn stop(mut self) -> Result<Usage> {
        let pid = self.child.id();
        let cpu_seconds = cpu_seconds(pid) - self.cpu_at_start;
        let max_rss_kib = max_rss_kib(pid);
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("contender {pid} did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (received, lost) = events_line(&std::fs::read_to_string(&self.stdout)?);
        Ok(Usage {
            cpu_seconds,
            max_rss_kib,
            received,
            lost,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last `events: N received, M lost...` line of a tracer summary.
fn events_line(text: &str) -> (Option<u64>, Option<u64>) {
    let Some(line) = text.lines().rev().find(|l| l.starts_with("events:")) else {
        return (None, None);
    };
    let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let before = |word: &str| {
        let i = words.iter().position(|w| *w == word)?;
        words.get(i.checked_sub(1)?)?.parse().ok()
    };
    (before("received"), before("lost"))
}

/// CPU time (user + system) of a process so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields after the comm: state is index 0, utime 11, stime 12 (clock ticks, 100 Hz).
    (ticks(11) + ticks(12)) / 100.0
}

fn max_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_last_events_line() {
        let text = "x\nevents: 10 received, 1 lost\nSTATE\nevents: 7 received, 0 lost, 3 evicted\n";
        assert_eq!(super::events_line(text), (Some(7), Some(0)));
        let text = "events: 25 received, 4 lost\n";
        assert_eq!(super::events_line(text), (Some(25), Some(4)));
        assert_eq!(super::events_line("nothing"), (None, None));
    }
}
