//! `tracer doctor`: sysctls, kernel counters and snapshots of this network namespace turned into
//! findings (the rules are in [`crate::service::doctor`]). Instant without `--duration`; with it, the
//! counters and a snapshot are read at both ends and the live collector runs in between to learn
//! who closes first.
use std::{io::Write, path::Path, time::Duration};

use anyhow::Result;
use tracer_common::FilterConfig;

use crate::engine::{Collector, Sink};
use crate::{
    commands::options::DoctorArgs,
    model::Step,
    service::doctor::{self, Measured, Report, counters::Counters, report, sysctl::Sysctls},
    source::{cgroups::names_of_pid, snapshot},
    stats::{
        closes::{CloseStats, GroupBy},
        turnover::Turnover,
    },
    time::{clock::WallClock, duration::human},
};

/// What the window measures: connection ends (as `tracer closes` counts them) and the
/// lifetimes and rates the forecasts need.
#[derive(Default)]
struct Window {
    ends: CloseStats,
    turnover: Turnover,
}

impl Sink for Window {
    fn step(&mut self, step: &Step) -> Result<()> {
        self.ends.record(step);
        self.turnover.record(step);
        Ok(())
    }

    fn tick(&mut self, _: &Collector) -> Result<()> {
        Ok(())
    }
}

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
            let mut window = Window::default();
            collector
                .run(Some(duration), Duration::from_secs(1), &mut window)
                .await?;
            collector.finish()?;
            let last = snapshot::take()?;
            let end = counters()?;
            let c = collector.counters();
            let measured = Measured {
                first,
                start,
                closes: window.ends.rows(GroupBy::Service),
                turnover: window.turnover,
                events: c.events,
                lost: c.lost,
            };
            (Some(measured), last, end)
        }
    };
    let mut report = Report::build(sysctls, end, last, measured, args.stuck);
    doctor::name_processes(&mut report.findings, names_of_pid);
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
