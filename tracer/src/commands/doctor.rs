//! `tracer doctor`: sysctls, kernel counters and snapshots of this network namespace turned into
//! findings (the rules are in [`crate::service::doctor`]). Instant without `--duration`; with it, the
//! counters and a snapshot are read at both ends and the live collector runs in between to learn
//! who closes first.
use std::{io::Write, path::Path, time::Duration};

use anyhow::Result;
use tracer_common::FilterConfig;

use crate::engine::Collector;
use crate::{
    commands::options::DoctorArgs,
    service::doctor::{Measured, Report, counters::Counters, report, sysctl::Sysctls},
    source::snapshot,
    stats::closes::{CloseStats, GroupBy},
    time::{clock::WallClock, duration::human},
};

fn counters() -> Result<Counters> {
    Counters::read(Path::new("/proc/net"))
}

pub async fn run(args: DoctorArgs) -> Result<()> {
    let sysctls = Sysctls::read(Path::new("/proc/sys"));
    let (measured, last, end) = match args.duration {
        None => (None, snapshot::take()?, counters()?),
        Some(duration) => {
            // Attached first, so every connection end between the two snapshots is seen.
            let mut collector = Collector::attach(&FilterConfig::default())?;
            let start = counters()?;
            let first = snapshot::take()?;
            log::info!(
                "measuring for {}: counters, connection ends, a second snapshot; Ctrl-C to stop \
                 early",
                human(duration.as_nanos() as u64)
            );
            // Connection ends, exactly as `tracer closes` counts them.
            let mut ends = CloseStats::default();
            collector
                .run(Some(duration), Duration::from_secs(1), &mut ends)
                .await?;
            collector.finish()?;
            let last = snapshot::take()?;
            let end = counters()?;
            let c = collector.counters();
            let measured = Measured {
                first,
                start,
                closes: ends.rows(GroupBy::Service),
                events: c.events,
                lost: c.lost,
            };
            (Some(measured), last, end)
        }
    };
    let report = Report::build(sysctls, end, last, measured, args.stuck);
    let clock = WallClock::now();
    let out = if args.json {
        format!("{}\n", report::json(&report, &clock))
    } else {
        report::text(&report, &clock)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
