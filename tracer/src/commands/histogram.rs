//! `tracer histogram --state S`: collect, then show the distribution of time spent in S.
use std::io::{IsTerminal, Write};

use anyhow::Result;
use serde::Serialize;

use super::collect::{Collector, Sink};
use crate::{
    cli::HistogramArgs,
    model::{Step, TcpState},
    output::{chart, duration::human},
    stats::StateSummary,
};

/// Counts completed durations and shows a countdown on stderr when it is a terminal.
struct Countdown {
    state: TcpState,
    seen: u64,
    ends_at_ns: Option<u64>,
    live: bool,
}

impl Sink for Countdown {
    fn step(&mut self, step: &Step) -> Result<()> {
        if step.from == self.state && step.dwell_ns.is_some() {
            self.seen += 1;
        }
        Ok(())
    }

    fn tick(&mut self, collector: &Collector) -> Result<()> {
        if !self.live {
            return Ok(());
        }
        let now = collector.now_ns();
        let left = match self.ends_at_ns {
            Some(end) => format!("{} left, ", human(end.saturating_sub(now))),
            None => String::new(),
        };
        let open = collector.summary(self.state).in_progress;
        eprint!(
            "\r\x1b[2Kcollecting {}: {left}{} completed, {open} still in it (Ctrl-C to stop early)",
            self.state, self.seen
        );
        std::io::stderr().flush()?;
        Ok(())
    }
}

#[derive(Serialize)]
struct JsonHistogram<'a> {
    #[serde(flatten)]
    summary: &'a StateSummary,
    collected_ns: u64,
    lost: u64,
    buckets: Vec<(u64, u64)>,
}

pub async fn run(args: HistogramArgs) -> Result<()> {
    let mut collector = Collector::new(&args.filter.to_config()?, args.from.as_deref())?;
    let replay = collector.is_replay();
    let live = std::io::stderr().is_terminal() && !replay;
    let started = collector.started_ns;
    let mut sink = Countdown {
        state: args.state,
        seen: 0,
        ends_at_ns: args.duration.map(|d| started + d.as_nanos() as u64),
        live,
    };
    if !live && !replay {
        eprintln!("collecting {} durations; Ctrl-C to stop", args.state);
    }
    let tick = std::time::Duration::from_secs(1);
    collector.run(args.duration, tick, &mut sink).await?;
    if live {
        eprint!("\r\x1b[2K");
    }
    let summary = collector.summary(args.state);
    let hist = collector.stats.histogram(args.state);
    if args.json {
        let buckets = hist
            .iter_recorded()
            .map(|v| {
                (
                    hist.highest_equivalent(v.value_iterated_to()),
                    v.count_at_value(),
                )
            })
            .collect();
        let out = JsonHistogram {
            summary: &summary,
            collected_ns: collector.now_ns().saturating_sub(started),
            lost: collector.counters().lost,
            buckets,
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print!("{}", chart::text(&summary, hist));
        let counters = collector.counters();
        println!(
            "collected for {}; {} events, {} lost",
            human(collector.now_ns().saturating_sub(started)),
            counters.events,
            counters.lost
        );
    }
    collector.finish()
}
