//! `tracer closes`: who closed first, per service or per process.
use anyhow::Result;

use super::collect::{Collector, Sink};
use crate::{
    cli::ClosesArgs,
    model::Step,
    output::{closes, duration::human},
    stats::closes::CloseStats,
};

#[derive(Default)]
struct Ends {
    stats: CloseStats,
}

impl Sink for Ends {
    fn step(&mut self, step: &Step) -> Result<()> {
        self.stats.record(step);
        Ok(())
    }

    fn tick(&mut self, _: &Collector) -> Result<()> {
        Ok(())
    }
}

pub async fn run(args: ClosesArgs) -> Result<()> {
    let mut collector = Collector::new(&args.filter.to_config()?, args.from.as_deref())?;
    let mut ends = Ends::default();
    if !collector.is_replay() {
        eprintln!("collecting connection ends; Ctrl-C to stop");
    }
    collector
        .run(args.duration, std::time::Duration::from_secs(1), &mut ends)
        .await?;
    let rows = ends.stats.rows(args.by);
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
        return collector.finish();
    }
    let counters = collector.counters();
    let title = format!(
        "Connection ends by {} over {} ({} events, {} lost):",
        match args.by {
            crate::stats::closes::GroupBy::Service => "service",
            crate::stats::closes::GroupBy::Process => "process",
        },
        human(collector.now_ns().saturating_sub(collector.started_ns)),
        counters.events,
        counters.lost
    );
    print!("{}", closes::text(&rows, &title));
    collector.finish()
}
