//! `tracer run`: a line per transition and a per-state table every interval and at exit.
use std::io::{BufWriter, Stdout, Write};

use anyhow::Result;
use serde::Serialize;

use super::collect::{Collector, Sink};
use crate::{
    cli::RunArgs,
    model::Step,
    output::{clock::WallClock, closes, line, table},
    stats::{
        StateSummary,
        closes::{CloseRow, CloseStats, GroupBy},
    },
};

struct RunSink {
    out: BufWriter<Stdout>,
    clock: WallClock,
    json: bool,
    quiet: bool,
    closes: CloseStats,
}

#[derive(Serialize)]
struct JsonSummary<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    #[serde(rename = "final")]
    is_final: bool,
    states: &'a [StateSummary],
    closes: &'a [CloseRow],
    events: u64,
    lost: u64,
    undecodable: u64,
}

impl RunSink {
    fn summary(&mut self, collector: &Collector, is_final: bool) -> Result<()> {
        let rows = collector.summaries();
        let close_rows = self.closes.rows(GroupBy::Service);
        let counters = collector.counters();
        if self.json {
            let s = JsonSummary {
                kind: "summary",
                time: chrono::Local::now().to_rfc3339(),
                is_final,
                states: &rows,
                closes: &close_rows,
                events: counters.events,
                lost: counters.lost,
                undecodable: counters.undecodable,
            };
            writeln!(self.out, "{}", serde_json::to_string(&s)?)?;
        } else {
            let title = format!(
                "--- time in state{} ({}) ---",
                if is_final { ", final" } else { "" },
                chrono::Local::now().format("%H:%M:%S")
            );
            writeln!(self.out, "{}", table::text(&rows, &counters, &title))?;
            if !close_rows.is_empty() {
                writeln!(
                    self.out,
                    "{}",
                    closes::text(&close_rows, "--- who closed first ---")
                )?;
            }
        }
        self.out.flush()?;
        Ok(())
    }
}

impl Sink for RunSink {
    fn step(&mut self, step: &Step) -> Result<()> {
        self.closes.record(step);
        if self.quiet {
            return Ok(());
        }
        let text = if self.json {
            line::json(step, &self.clock)
        } else {
            line::text(step, &self.clock)
        };
        writeln!(self.out, "{text}")?;
        Ok(())
    }

    fn tick(&mut self, collector: &Collector) -> Result<()> {
        self.summary(collector, false)
    }
}

pub async fn run(args: RunArgs) -> Result<()> {
    let mut collector = Collector::attach(&args.filter.to_config()?)?;
    let mut sink = RunSink {
        out: BufWriter::new(std::io::stdout()),
        clock: WallClock::now(),
        json: args.json,
        quiet: args.quiet,
        closes: CloseStats::default(),
    };
    if !args.json && !args.quiet {
        writeln!(sink.out, "{}", line::header())?;
    }
    sink.out.flush()?;
    eprintln!("tracing TCP state changes; Ctrl-C to stop");
    collector
        .run(args.duration, args.interval, &mut sink)
        .await?;
    sink.summary(&collector, true)
}
