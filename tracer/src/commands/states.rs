//! `tracer states`: one snapshot of every TCP socket that exists now (no eBPF): what
//! `netstat -n | awk '/^tcp/ {++S[$NF]} ...'` counts, per service or process, with ages.
use std::io::Write;

use anyhow::Result;

use crate::{
    commands::options::StatesArgs,
    source::{
        cgroups::names_of_pid,
        snapshot::{
            self,
            summary::{regroup, summarize},
        },
    },
    time::clock::WallClock,
    view::states::{json, text},
};

pub fn run(args: StatesArgs) -> Result<()> {
    let snap = snapshot::take()?;
    let mut summary = summarize(&snap, args.by);
    regroup(&mut summary, args.by, names_of_pid);
    let clock = WallClock::now();
    let mut out = if args.json {
        let mut value = json(&summary, args.by, &clock);
        if let Some(threshold) = args.stuck {
            value["stuck"] = crate::service::doctor::stuck::instant_json(&snap, threshold);
        }
        format!("{value}\n")
    } else {
        text(&summary, args.by, &clock)
    };
    // --stuck: sockets that may be stuck; one snapshot cannot date them (see `tracer doctor`).
    if let (Some(threshold), false) = (args.stuck, args.json) {
        out.push_str(&crate::service::doctor::stuck::instant_text(
            &snap, threshold,
        ));
    }
    // write_all, not print!: `tracer states | head` must end quietly (main treats a broken
    // pipe as success), not panic.
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
