//! The two measurements after the throughput rounds: what each BPF program costs per run, and
//! the highest event rate `tracer run` keeps with nothing lost (more client threads until
//! events are lost or the machine saturates), with the ring sizes that rate needs.
use std::{path::Path, time::Duration};

use anyhow::Result;

use super::{
    Options,
    contender::{self, Contender},
    kernel_cost,
};
use crate::churn;

/// Per-program cost of tracer (and tcpstates) over one round with bpf_stats on.
pub fn kernel_costs(
    tracer: &Path,
    dir: &Path,
    server: &churn::Server,
    opts: &Options,
    contenders: &[Contender],
) -> Result<()> {
    println!(
        "\nper-program kernel cost (kernel.bpf_stats_enabled, one {} s round each):",
        opts.seconds
    );
    let round = Duration::from_secs(opts.seconds.into());
    for &c in contenders {
        if matches!(c, Contender::Untraced | Contender::TracerLines) {
            continue;
        }
        let _stats = kernel_cost::StatsEnabled::on()?;
        let Some(running) = contender::start(c, tracer, dir, None)? else {
            continue;
        };
        let ids = kernel_cost::program_ids(running.pid());
        let before = kernel_cost::costs(&ids)?;
        churn::clients(server.addr, opts.threads, opts.closer, round);
        let after = kernel_cost::costs(&ids)?;
        let usage = running.stop()?;
        let delta: Vec<_> = after
            .iter()
            .zip(&before)
            .map(|(a, b)| kernel_cost::ProgramCost {
                name: a.name.clone(),
                runs: a.runs - b.runs.min(a.runs),
                run_time_ns: a.run_time_ns - b.run_time_ns.min(a.run_time_ns),
            })
            .collect();
        kernel_cost::print(c.label(), round.as_secs_f64(), &delta);
        kernel_cost::per_transition(&delta, usage.cpu_seconds);
    }
    Ok(())
}

/// Client threads per step of the ramp, and ring sizes tried at the top step.
const THREAD_STEPS: [usize; 5] = [1, 2, 4, 8, 16];
const RING_SIZES: [u32; 4] = [256 << 10, 1 << 20, 4 << 20, 16 << 20];

pub fn ramp(tracer: &Path, dir: &Path, opts: &Options) -> Result<()> {
    println!(
        "\nlost events as the churn rises (tracer run --quiet, default ring, {} s per step):",
        opts.seconds
    );
    println!(
        "{:>8} {:>10} {:>14} {:>8}",
        "threads", "conn/s", "events/s", "lost"
    );
    let mut best = 0.0f64;
    for threads in THREAD_STEPS {
        let (rate, events, lost) = traced_step(tracer, dir, opts, threads, None)?;
        println!("{threads:>8} {rate:>10.0} {events:>14.0} {lost:>8}");
        if lost == 0 {
            best = best.max(events);
        }
    }
    println!(
        "highest rate with 0 lost: {best:.0} events/s (the 2 cores saturate before the ring fills)"
    );
    let top = *THREAD_STEPS.last().unwrap_or(&16);
    println!("\nring size at {top} threads:");
    println!("{:>10} {:>14} {:>8}", "ring", "events/s", "lost");
    for bytes in RING_SIZES {
        let (_, events, lost) = traced_step(tracer, dir, opts, top, Some(bytes))?;
        println!("{:>7} KiB {events:>14.0} {lost:>8}", bytes >> 10);
    }
    Ok(())
}

/// One traced step with its own server: (connections/s, events/s, lost).
fn traced_step(
    tracer: &Path,
    dir: &Path,
    opts: &Options,
    threads: usize,
    ring_bytes: Option<u32>,
) -> Result<(f64, f64, u64)> {
    let server = churn::Server::start(super::PORT + 1, threads, opts.closer)?;
    let round = Duration::from_secs(opts.seconds.into());
    let ((done, _), usage) =
        contender::alongside(Contender::TracerQuiet, tracer, dir, ring_bytes, || {
            churn::clients(server.addr, threads, opts.closer, round)
        })?;
    let secs = round.as_secs_f64();
    Ok((
        done as f64 / secs,
        usage.received.unwrap_or(0) as f64 / secs,
        usage.lost.unwrap_or(0),
    ))
}
