//! `tracer histogram --state S`: collect, then show the distribution of time spent in S.
use std::io::{IsTerminal, Write};

use anyhow::{Result, anyhow};
use hdrhistogram::Histogram;
use tracer_common::FilterConfig;

use crate::{
    commands::options::HistogramArgs,
    engine::{Collector, Sink},
    model::{Step, TcpState},
    service::daemon::{client, protocol::Query},
    time::duration::human,
    view::{chart, histogram::HistogramJson},
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

    fn dwell(&mut self, _now_ns: u64, state: TcpState, _ns: u64, n: u64) -> Result<()> {
        if state == self.state {
            self.seen += n;
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

fn print(json: bool, data: &HistogramJson, hist: &Histogram<u64>, events: u64) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(data)?);
    } else {
        print!("{}", chart::text(&data.summary, hist));
        match &data.interval {
            Some(interval) => println!(
                "{}",
                client::span_and(
                    interval,
                    &format!(
                        "{events} events, {} lost{} since the daemon started",
                        data.lost,
                        not_seen(data.gaps)
                    )
                )
            ),
            None => println!(
                "collected for {}; {events} events, {} lost{}",
                human(data.collected_ns),
                data.lost,
                not_seen(data.gaps)
            ),
        }
    }
    Ok(())
}

/// Said only when some transitions were inferred but not seen (README: Reliability).
fn not_seen(gaps: u64) -> String {
    match gaps {
        0 => String::new(),
        n => format!(", {n} not seen"),
    }
}

/// Without --duration and --from, a running daemon answers at once (unless --no-daemon).
fn from_daemon(args: &HistogramArgs, filter: &FilterConfig) -> Result<bool> {
    if args.duration.is_some() || args.from.is_some() || args.daemon.no_daemon {
        return Ok(false);
    }
    let query = Query::Histogram(args.state);
    let asked = args.daemon.asked();
    let socket = args.daemon.socket.as_deref();
    let Some(answer) = client::consult(socket, query, filter, asked.as_ref())? else {
        return Ok(false);
    };
    let mut data: HistogramJson = serde_json::from_value(answer.answer)
        .map_err(|e| anyhow!("the tracer daemon sent an unreadable histogram: {e}"))?;
    data.interval = answer.status.interval;
    print(args.json, &data, &data.histogram(), answer.status.events)?;
    Ok(true)
}

pub async fn run(args: HistogramArgs) -> Result<()> {
    let filter = args.filter.to_config()?;
    if from_daemon(&args, &filter)? {
        return Ok(());
    }
    let mut collector = Collector::new(&filter, args.from.as_deref())?;
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
        log::info!("collecting {} durations; Ctrl-C to stop", args.state);
    }
    let tick = std::time::Duration::from_secs(1);
    collector.run(args.duration, tick, &mut sink).await?;
    if live {
        eprint!("\r\x1b[2K");
    }
    let data = HistogramJson::of(&collector, args.state);
    let hist = collector.stats.histogram(args.state);
    print(args.json, &data, hist, collector.counters().events)?;
    collector.finish()
}
