//! `tracer record -o FILE`: attach like `run` and write every raw event to a recording that
//! `--from FILE` replays (format: [`crate::source::recording`], `docs/recording-format.md`).
use std::{fs::File, io::BufWriter, time::Duration};

use anyhow::{Context, Result};
use tracer_common::RawEvent;

use crate::engine::{Collector, Sink};
use crate::{
    commands::options::RecordArgs,
    model::Step,
    source::probe::check_can_trace,
    source::recording::{
        Header, Writer,
        format::{FLAG_FILTER_NARROWER, FLAG_TIMEWAIT_FOLLOWED, HOSTNAME_MAX},
        writer,
    },
    time::duration::human,
};

struct Recorder {
    writer: Writer<BufWriter<File>>,
    name: String,
}

impl Sink for Recorder {
    fn raw(&mut self, raw: &RawEvent) -> Result<()> {
        self.writer
            .event(raw)
            .with_context(|| format!("writing {}", self.name))
    }

    fn step(&mut self, _: &Step) -> Result<()> {
        Ok(())
    }

    /// Every second: the clock and the lost counter, then a flush.
    fn tick(&mut self, collector: &Collector) -> Result<()> {
        let lost = collector.counters().lost;
        self.writer
            .tick(collector.now_ns(), lost)
            .and_then(|()| self.writer.flush())
            .with_context(|| format!("writing {}", self.name))
    }
}

/// This host's name, cut to what the header holds.
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut name = name.trim().to_string();
    while name.len() > HOSTNAME_MAX {
        name.pop();
    }
    name
}

pub async fn run(args: RecordArgs) -> Result<()> {
    let filter = args.filter.to_config()?;
    let name = args.output.display().to_string();
    // Refuse before creating the file, so a missing sudo leaves nothing behind.
    check_can_trace()?;
    let file = writer::create(&args.output).with_context(|| format!("creating {name}"))?;
    let mut collector = match Collector::attach(&filter) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&args.output);
            return Err(e);
        }
    };
    let narrower = filter.addr_count != 0 || filter.netns != 0 || filter.owner_match != 0;
    let header = Header {
        flags: if collector.timewait_followed() {
            FLAG_TIMEWAIT_FOLLOWED
        } else {
            0
        } | if narrower { FLAG_FILTER_NARROWER } else { 0 },
        start_boot_ns: collector.started_ns,
        start_realtime_ns: collector.clock().realtime_ns(collector.started_ns),
        filter,
        tracer_version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: hostname(),
    };
    let writer = Writer::new(BufWriter::with_capacity(256 * 1024, file), &header)
        .with_context(|| format!("writing {name}"))?;
    let mut sink = Recorder { writer, name };
    log::info!(
        "recording TCP state changes to {}; Ctrl-C to stop",
        sink.name
    );
    collector
        .run(args.duration, Duration::from_secs(1), &mut sink)
        .await?;
    let counters = collector.counters();
    let events = sink.writer.events();
    let file = sink
        .writer
        .finish(collector.now_ns(), counters.lost)
        .and_then(|out| out.into_inner().map_err(|e| e.into_error()))
        .with_context(|| format!("writing {}", sink.name))?;
    file.sync_all()
        .with_context(|| format!("writing {}", sink.name))?;
    log::info!(
        "recorded {events} events ({} lost) over {} to {} ({} bytes)",
        counters.lost,
        human(collector.now_ns().saturating_sub(collector.started_ns)),
        sink.name,
        file.metadata().map_or(0, |m| m.len()),
    );
    Ok(())
}
