//! What the daemon answers: a checked request, turned into a response from the collector, its
//! close statistics and its history of time slots, all as they are at that moment.
use serde_json::Value;
use tracer_common::FilterConfig;

use super::{
    protocol::{
        ErrorCode, INTERVAL, Query, Refusal, Request, Response, SINCE_START, Status, describe,
        filter_id,
    },
    window::{Interval, Window, reach, rfc3339},
};
use crate::{
    engine::Collector,
    service::doctor::live::Forecasts,
    source::cgroups::CgroupNamer,
    stats::{
        StateStats,
        closes::{CloseStats, regroup},
        window::{COARSE_FACTOR, COARSE_SLOTS, History, sparse::FULL_BITS},
    },
    view::histogram::HistogramJson,
};

/// What every answer says about the daemon.
pub struct Context {
    pub pid: u32,
    filter_id: String,
    filter: String,
    /// Names of owner cgroups, kept between queries: a miss walks the cgroup tree again at
    /// most every few seconds.
    names: std::sync::Mutex<CgroupNamer>,
}

impl Context {
    pub fn new(filter: &FilterConfig) -> Context {
        Context {
            pid: std::process::id(),
            filter_id: filter_id(filter),
            filter: describe(filter),
            names: std::sync::Mutex::new(CgroupNamer::new()),
        }
    }
}

/// What the daemon answers from.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub collector: &'a Collector,
    /// Connection ends since the start.
    pub closes: &'a CloseStats,
    /// Durations and ends per time slot, for intervals; moved up to "now" by the caller.
    pub history: &'a History,
    /// The latest forecasts (renewed every [`crate::service::doctor::live::WINDOW`]).
    pub forecasts: &'a Forecasts,
}

/// The numbers an answer is made of: the totals since the start, or an interval's merged slots.
struct Source<'a> {
    stats: &'a StateStats,
    closes: &'a CloseStats,
    collected_ns: u64,
    events: u64,
}

/// The answer to one checked request.
pub fn respond(request: &Request, context: &Context, view: View<'_>) -> Response {
    let fail = |code, message: String| Response::failure(context.pid, Refusal::new(code, message));
    if request
        .filter_id
        .as_ref()
        .is_some_and(|id| *id != context.filter_id)
    {
        let message = format!("this daemon traces {}", context.filter);
        return fail(ErrorCode::OtherFilter, message);
    }
    let collector = view.collector;
    let now = collector.now_ns();
    let counters = collector.counters();
    let totals = Source {
        stats: &collector.stats,
        closes: view.closes,
        collected_ns: now.saturating_sub(collector.started_ns),
        events: counters.events,
    };
    let merged;
    let (source, interval) = match request.window {
        None => (totals, None),
        Some(window) => match interval(window, view) {
            Err(message) => return fail(ErrorCode::BadRequest, message),
            Ok(Span::SinceStart(interval)) => (totals, Some(interval)),
            Ok(Span::Slots(interval, slots)) => {
                merged = slots;
                let source = Source {
                    stats: &merged.stats,
                    closes: &merged.closes,
                    collected_ns: interval.duration_ns,
                    events: merged.events,
                };
                (source, Some(interval))
            }
        },
    };
    let answer = match answer(request.query, context, (collector, view.forecasts), &source) {
        Ok(answer) => answer,
        Err(e) => return fail(ErrorCode::Internal, e.to_string()),
    };
    let status = Status {
        since: collector.clock().at(collector.started_ns).to_rfc3339(),
        window: match interval {
            Some(ref i) if i.slot_ns > 0 => INTERVAL.into(),
            _ => SINCE_START.into(),
        },
        collected_ns: source.collected_ns,
        events: source.events,
        lost: counters.lost,
        undecodable: counters.undecodable,
        gaps: counters.gaps,
        filter: context.filter.clone(),
        interval,
    };
    Response::success(context.pid, status, answer)
}

/// The query's result from `source`, with the sockets in each state as `collector` has them now.
fn answer(
    query: Query,
    context: &Context,
    (collector, latest): (&Collector, &Forecasts),
    source: &Source<'_>,
) -> serde_json::Result<Value> {
    match query {
        Query::Ping => Ok(Value::from("pong")),
        Query::Summary => serde_json::to_value(collector.summaries_of(source.stats)),
        Query::Histogram(state) => serde_json::to_value(HistogramJson::from_stats(
            collector,
            source.stats,
            state,
            source.collected_ns,
        )),
        Query::Closes(by) => {
            let mut rows = source.closes.rows(by);
            if let Ok(mut names) = context.names.lock() {
                names.name_rows(&mut rows);
            }
            serde_json::to_value(regroup(rows, by))
        }
        Query::Forecasts => forecasts(latest, collector),
    }
}

/// The latest forecasts, with when they were measured (`null` before the first window ends).
fn forecasts(f: &Forecasts, collector: &Collector) -> serde_json::Result<Value> {
    let mut value = serde_json::to_value(f)?;
    value["measured_at"] = match f.measured_ns {
        0 => Value::Null,
        ns => Value::from(collector.clock().at(ns).to_rfc3339()),
    };
    Ok(value)
}

/// Where an interval's numbers come from.
enum Span {
    /// It starts with the daemon (or before): the totals since the start answer it exactly.
    SinceStart(Interval),
    Slots(Interval, crate::stats::window::Merged),
}

/// The interval `window` asks for, fitted to the daemon's start and its history's slots.
fn interval(window: Window, view: View<'_>) -> Result<Span, String> {
    let collector = view.collector;
    let (clock, now, started) = (collector.clock(), collector.now_ns(), collector.started_ns);
    let requested = window.start_ns(&clock, now)?;
    let at = |ns: u64| clock.at(ns).to_rfc3339();
    let make = |start: u64, slot_ns: u64, bits: u32, note: Option<String>| Interval {
        requested: rfc3339(window.realtime_ns(&clock, now)),
        start: at(start),
        end: at(now),
        duration_ns: now.saturating_sub(start),
        slot_ns,
        significant_bits: bits,
        note,
    };
    let since_start = |note| Span::SinceStart(make(started, 0, FULL_BITS, note));
    if requested < started {
        let note = format!(
            "the daemon started at {}: counted from then",
            clock.at(started).format("%Y-%m-%d %H:%M:%S")
        );
        return Ok(since_start(Some(note)));
    }
    let start = view.history.start(requested);
    if start.at_ns <= started {
        return Ok(since_start(None));
    }
    let note = start.beyond_history.then(|| {
        let coarse = view.history.slot_ns().saturating_mul(COARSE_FACTOR);
        format!(
            "the daemon keeps {} of history: counted from its oldest slot",
            reach(coarse, COARSE_SLOTS)
        )
    });
    let merged = view.history.merged(start);
    let interval = make(start.at_ns, start.slot_ns, merged.bits, note);
    Ok(Span::Slots(interval, merged))
}
