//! `tracer closes`: who closed first, per service or per process.
use anyhow::{Result, anyhow};
use serde::Serialize;
use tracer_common::FilterConfig;

use crate::engine::{Collector, Sink};
use crate::{
    commands::options::ClosesArgs,
    model::Step,
    service::daemon::{client, protocol::Query, window::Interval},
    source::cgroups::CgroupNamer,
    stats::closes::{CloseRow, CloseStats, GroupBy, regroup},
    time::duration::human,
    view::closes,
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
        by.name(),
        human(collected_ns),
    )
}

/// `--json` with `--window`/`--since`: the rows, and the interval they cover.
#[derive(Serialize)]
struct WindowJson<'a> {
    interval: &'a Interval,
    rows: &'a [CloseRow],
}

/// Without --duration and --from, a running daemon answers at once (unless --no-daemon).
fn from_daemon(args: &ClosesArgs, filter: &FilterConfig) -> Result<bool> {
    if args.duration.is_some() || args.from.is_some() || args.daemon.no_daemon {
        return Ok(false);
    }
    let query = Query::Closes(args.by);
    let asked = args.daemon.asked();
    let socket = args.daemon.socket.as_deref();
    let Some(answer) = client::consult(socket, query, filter, asked.as_ref())? else {
        return Ok(false);
    };
    let rows: Vec<CloseRow> = serde_json::from_value(answer.answer)
        .map_err(|e| anyhow!("the tracer daemon sent unreadable rows: {e}"))?;
    let s = &answer.status;
    match (&s.interval, args.json) {
        (None, true) => println!("{}", serde_json::to_string(&rows)?),
        (Some(interval), true) => {
            let json = WindowJson {
                interval,
                rows: &rows,
            };
            println!("{}", serde_json::to_string(&json)?);
        }
        (None, false) => print!(
            "{}",
            closes::text(&rows, &title(args.by, s.collected_ns, s.events, s.lost))
        ),
        (Some(interval), false) => {
            let counts = format!(
                "{} events, {} lost since the daemon started",
                s.events, s.lost
            );
            let title = format!(
                "Connection ends by {}, {}:",
                args.by.name(),
                client::span_and(interval, &counts)
            );
            print!("{}", closes::text(&rows, &title));
        }
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
        log::info!("collecting connection ends; Ctrl-C to stop");
    }
    collector
        .run(args.duration, std::time::Duration::from_secs(1), &mut ends)
        .await?;
    let mut rows = ends.rows(args.by);
    if !collector.is_replay() {
        // The cgroups of a recording are another host's (or gone): no units or containers.
        CgroupNamer::new().name_rows(&mut rows);
    }
    let rows = regroup(rows, args.by);
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
