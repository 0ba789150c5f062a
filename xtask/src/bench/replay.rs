//! The daemon's own cost per event, free of the machine's noise: one round of churn is
//! recorded (`tracer record`), then replayed through the same model and aggregates
//! (`tracer run --from FILE --quiet`). The replay's CPU time over its events is what an event
//! costs in userspace (reading and checking the file included, the ring buffer not).
use std::{
    fs::File,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use super::{Options, PORT, contender::wait_for};

/// How long the recorder may take to start, and to stop once told.
const WITHIN: Duration = Duration::from_secs(20);
use crate::churn;

pub fn userspace_cost(
    tracer: &Path,
    dir: &Path,
    server: &churn::Server,
    opts: &Options,
) -> Result<()> {
    let file = dir.join("churn.rec");
    let stderr = dir.join("record.err");
    let mut recorder = Command::new(tracer)
        .args(["record", "--port", &PORT.to_string(), "--output"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(File::create(&stderr)?)
        .spawn()
        .context("starting tracer record")?;
    let said = |what: &str| std::fs::read_to_string(&stderr).is_ok_and(|t| t.contains(what));
    if !wait_for(|| said("recording TCP state changes"), WITHIN) {
        let _ = recorder.kill();
        bail!("tracer record did not start within {WITHIN:?}");
    }
    let round = Duration::from_secs(opts.seconds.into());
    churn::clients(server.addr, opts.threads, opts.closer, round);
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(recorder.id() as i32, libc::SIGINT) };
    if !wait_for(|| matches!(recorder.try_wait(), Ok(Some(_))), WITHIN) {
        let _ = recorder.kill();
        bail!("tracer record did not stop within {WITHIN:?} of SIGINT");
    }
    let summary = std::fs::read_to_string(&stderr)?;
    let events = recorded_events(&summary)
        .with_context(|| format!("no 'recorded N events' line from tracer record: {summary}"))?;

    let before = children_cpu_seconds();
    let status = Command::new(tracer)
        .args(["run", "--quiet", "--from"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("replaying the recording")?;
    let cpu = children_cpu_seconds() - before;
    let _ = std::fs::remove_file(&file);
    if !status.success() {
        bail!("tracer run --from {} failed ({status})", file.display());
    }
    println!(
        "\nuserspace cost per event: {:.0} ns ({events} events of one {} s round replayed in \
         {cpu:.2} s of CPU: model, histograms, close statistics and reading the file)",
        cpu * 1e9 / events.max(1) as f64,
        opts.seconds,
    );
    Ok(())
}

/// N of the recorder's final `recorded N events (...)` line.
fn recorded_events(text: &str) -> Option<u64> {
    let line = text.lines().rev().find(|l| l.starts_with("recorded "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU seconds of every child waited for so far.
fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_recorded_count() {
        let text = "recording TCP state changes to x; Ctrl-C to stop\n\
                    recorded 6383624 events (0 lost) over 40.1s to x (638363484 bytes)\n";
        assert_eq!(super::recorded_events(text), Some(6_383_624));
        assert_eq!(super::recorded_events("nothing"), None);
    }
}
