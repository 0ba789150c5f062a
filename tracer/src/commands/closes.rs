//! `tracer closes`: who closed first, per service or per process.
use anyhow::{Result, anyhow};
use tracer_common::FilterConfig;

use super::collect::{Collector, Sink};
use crate::{
    cli::ClosesArgs,
    daemon::{client, protocol::Query},
    model::Step,
    output::{closes, duration::human},
    stats::closes::{CloseRow, CloseStats, GroupBy},
};

/// Connection ends as they come: what `closes` and `doctor --duration` collect.
impl Sink for CloseStats {
    fn step(&mut self, step: &Step) -> Result<()> {
        self.record(step);
        Ok(())
    }

    fn tick(&mut self, _: &Collector) -> Result<()> {
        Ok(())
    }
}

/// The table's title line.
fn title(by: GroupBy, collected_ns: u64, events: u64, lost: u64) -> String {
    format!(
        "Connection ends by {} over {} ({events} events, {lost} lost):",
        match by {
            GroupBy::Service => "service",
            GroupBy::Process => "process",
        },
        human(collected_ns),
    )
}

/// Without --duration and --from, a running daemon answers at once (unless --no-daemon).
fn from_daemon(args: &ClosesArgs, filter: &FilterConfig) -> Result<bool> {
    if args.duration.is_some() || args.from.is_some() || args.daemon.no_daemon {
        return Ok(false);
    }
    let query = Query::Closes(args.by);
    let Some(answer) = client::consult(args.daemon.socket.as_deref(), query, filter)? else {
        return Ok(false);
    };
    let rows: Vec<CloseRow> = serde_json::from_value(answer.answer)
        .map_err(|e| anyhow!("the tracer daemon sent unreadable rows: {e}"))?;
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        let s = &answer.status;
        print!(
            "{}",
            closes::text(&rows, &title(args.by, s.collected_ns, s.events, s.lost))
        );
    }
    Ok(true)
}

pub async fn run(args: ClosesArgs) -> Result<()> {
    let filter = args.filter.to_config()?;
    if from_daemon(&args, &filter)? {
        return Ok(());
    }
    let mut collector = Collector::new(&filter, args.from.as_deref())?;
    let mut ends = CloseStats::default();
    if !collector.is_replay() {
        eprintln!("collecting connection ends; Ctrl-C to stop");
    }
    collector
        .run(args.duration, std::time::Duration::from_secs(1), &mut ends)
        .await?;
    let rows = ends.rows(args.by);
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
        return collector.finish();
    }
    let counters = collector.counters();
    let collected = collector.now_ns().saturating_sub(collector.started_ns);
    let title = title(args.by, collected, counters.events, counters.lost);
    print!("{}", closes::text(&rows, &title));
    collector.finish()
}
