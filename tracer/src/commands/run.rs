//! `tracer run`: a line per transition and a per-state table every interval and at exit; with
//! `--metrics`, the same numbers served to Prometheus while it runs; and queries (`tracer
//! histogram`, `tracer closes`) answered on its control socket.
use std::{
    io::{BufWriter, Stdout, Write},
    sync::Arc,
};

use anyhow::Result;
use serde::Serialize;
use tokio::sync::Notify;
use tracer_common::RawEvent;

use crate::engine::{Collector, Sink};
use crate::source::probe::Detail;
use crate::{
    commands::options::RunArgs,
    model::{Step, TcpState},
    service::daemon::{
        server::{self, Server, View},
        socket,
    },
    service::doctor::live::{self, Forecasts, LiveForecasts},
    service::metrics::{self, Metrics},
    stats::{
        StateSummary,
        closes::{CloseRow, CloseStats, GroupBy},
        window::{DEFAULT_SLOT, History},
    },
    time::clock::WallClock,
    view::{closes, line, table},
};

/// The control socket and what only it needs: the history of time slots for `--window`.
struct Daemon {
    server: Server,
    history: History,
}

struct RunSink {
    out: BufWriter<Stdout>,
    clock: WallClock,
    lines: line::TextLines,
    json_lines: line::JsonLines,
    json: bool,
    quiet: bool,
    closes: CloseStats,
    /// Set with `--metrics`: every step is counted, every tick refreshes the gauges.
    metrics: Option<Metrics>,
    /// Collector ticks per summary: more than one when `--metrics` ticks faster than
    /// `--interval` to keep the gauges fresh.
    ticks_per_summary: u32,
    ticks: u32,
    /// The control socket, unless `--no-socket` (or a replay).
    daemon: Option<Daemon>,
    /// Renewed every [`live::WINDOW`] for the control socket and the metrics (live only).
    forecasts: Option<LiveForecasts>,
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
    /// Sockets dropped from full tables (`--max-sockets`): their durations are not counted.
    evicted: u64,
    undecodable: u64,
    /// Transitions inferred to have happened but never seen (lost, or not handed to eBPF).
    gaps: u64,
}

impl RunSink {
    fn summary(&mut self, collector: &Collector, is_final: bool) -> Result<()> {
        let rows = collector.summaries();
        let close_rows = self.closes.rows(GroupBy::Service);
        let counters = collector.counters();
        if self.json {
            let s = JsonSummary {
                kind: "summary",
                time: self.clock.at(collector.now_ns()).to_rfc3339(),
                is_final,
                states: &rows,
                closes: &close_rows,
                events: counters.events,
                lost: counters.lost,
                evicted: counters.evicted,
                undecodable: counters.undecodable,
                gaps: counters.gaps,
            };
            writeln!(self.out, "{}", serde_json::to_string(&s)?)?;
        } else {
            let title = format!(
                "--- time in state{} ({}) ---",
                if is_final { ", final" } else { "" },
                self.clock.at(collector.now_ns()).format("%H:%M:%S")
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
    fn raw(&mut self, raw: &RawEvent) -> Result<()> {
        if let Some(daemon) = &mut self.daemon {
            daemon.history.count_event(raw.ts_ns);
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<()> {
        self.closes.record(step);
        if let Some(forecasts) = &mut self.forecasts {
            forecasts.record(step);
        }
        if let Some(daemon) = &mut self.daemon {
            daemon.history.record(step);
        }
        if let Some(metrics) = &mut self.metrics {
            metrics.record(step);
        }
        if self.quiet {
            return Ok(());
        }
        if self.json {
            let object = self.json_lines.format(step);
            self.out.write_all(object)?;
            self.out.write_all(b"\n")?;
        } else {
            let text = self.lines.format(step);
            self.out.write_all(text.as_bytes())?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn tick(&mut self, collector: &Collector) -> Result<()> {
        if let Some(daemon) = &mut self.daemon {
            daemon.history.advance(collector.now_ns());
        }
        if let Some(forecasts) = &mut self.forecasts
            && forecasts.tick(collector.now_ns())
            && let Some(metrics) = &self.metrics
        {
            metrics.refresh_forecasts(forecasts.latest());
        }
        if let Some(metrics) = &self.metrics {
            // Counted in place: copying every open socket out costs ~180 MiB at 1M sockets.
            metrics.refresh_open(
                &collector.open_by_state(collector.now_ns()),
                &collector.counters(),
            );
        }
        self.ticks += 1;
        if self.ticks >= self.ticks_per_summary {
            self.ticks = 0;
            self.summary(collector, false)?;
        }
        Ok(())
    }

    fn dwell(&mut self, now_ns: u64, state: TcpState, ns: u64, n: u64) -> Result<()> {
        if let Some(daemon) = &mut self.daemon {
            daemon.history.record_dwell(now_ns, state, ns, n);
        }
        if let Some(metrics) = &mut self.metrics {
            metrics.record_dwell(state, ns, n);
        }
        Ok(())
    }

    fn home_time_waits(&mut self, ns: u64, n: u64, early: u64) {
        if let Some(forecasts) = &mut self.forecasts {
            forecasts.record_time_waits(ns, n, early);
        }
    }

    fn queries(&self) -> Option<Arc<Notify>> {
        self.daemon.as_ref().map(|d| d.server.wakeup())
    }

    fn answer(&mut self, collector: &Collector) -> Result<()> {
        if let Some(daemon) = &mut self.daemon {
            daemon.history.advance(collector.now_ns());
            let none = Forecasts::default();
            daemon.server.answer(View {
                collector,
                closes: &self.closes,
                history: &daemon.history,
                forecasts: self.forecasts.as_ref().map_or(&none, |f| f.latest()),
            });
        }
        Ok(())
    }
}

pub async fn run(args: RunArgs) -> Result<()> {
    let filter = args.filter.to_config()?;
    // Bound before the programs are loaded: a port in use fails at once, with nothing attached.
    let listener = match args.metrics {
        Some(addr) => Some(metrics::server::bind(addr).await?),
        None => None,
    };
    let live = args.from.is_none();
    if live {
        // Before the control socket, so that without privileges that is the one error.
        crate::source::probe::check_can_trace()?;
    }
    let bound = if live && !args.no_socket {
        Some(socket::open(args.socket.as_deref())?)
    } else {
        None
    };
    // A line per transition needs every transition; summaries, windows and metrics do not.
    let detail = match args.quiet {
        true => Detail::Lives,
        false => Detail::Transitions,
    };
    let mut collector = Collector::open(&filter, args.from.as_deref(), args.ring_bytes, detail)?;
    let daemon = match bound {
        Some(bound) => {
            let server = Server::start(bound, server::Context::new(&filter))?;
            log::info!("answering queries on {}", server.path().display());
            let clock = collector.clock();
            let mut history = History::new(args.slot.unwrap_or(DEFAULT_SLOT), clock.realtime_ns(0));
            history.advance(collector.started_ns);
            Some(Daemon { server, history })
        }
        None => None,
    };
    let (tick, ticks_per_summary) = match listener {
        Some(_) => metrics::refresh_tick(args.interval),
        None => (args.interval, 1),
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = listener.as_ref().map(|_| Metrics::new(&mut registry));
    let server = listener.map(|l| {
        if let Ok(addr) = l.local_addr() {
            log::info!("serving Prometheus metrics at http://{addr}/metrics");
        }
        metrics::server::spawn(l, Arc::new(registry))
    });
    // Forecasts need snapshots of this namespace as it is now: not from a recording.
    let forecasts = (live && (daemon.is_some() || metrics.is_some()))
        .then(|| LiveForecasts::start(live::WINDOW));
    let mut sink = RunSink {
        out: BufWriter::new(std::io::stdout()),
        clock: collector.clock(),
        lines: line::TextLines::new(collector.clock()),
        json_lines: line::JsonLines::new(collector.clock()),
        json: args.json,
        quiet: args.quiet,
        closes: CloseStats::default(),
        metrics,
        ticks_per_summary,
        ticks: 0,
        daemon,
        forecasts,
    };
    if !args.json && !args.quiet {
        writeln!(sink.out, "{}", line::header())?;
    }
    sink.out.flush()?;
    if !collector.is_replay() {
        log::info!("tracing TCP state changes; Ctrl-C to stop");
    }
    let ended = collector.run(args.duration, tick, &mut sink).await;
    if let Some(server) = server {
        server.abort();
    }
    // Removes the socket file: no query is answered from here on.
    sink.daemon = None;
    ended?;
    sink.summary(&collector, true)?;
    collector.finish()
}
