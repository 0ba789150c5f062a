//! `cargo xtask bench`: loopback connection churn (xtask/src/churn.rs), untraced and traced,
//! in interleaved pairs of runs of the same length (untraced, empty programs on the same hooks
//! (the floor), untraced, tracer, untraced, tracer with lines, untraced, tcpstates, untraced,
//! ...), each traced rate over the mean of the untraced runs on either side of it, so every
//! ratio is measured side by side on a noisy 2-core machine. Then the
//! per-program kernel cost, the daemon's cost per event (a recorded round replayed) and the
//! highest event rate with nothing lost. All traffic goes to
//! 127.0.0.0/8 and every round is bounded by its duration.
pub(crate) mod contender;
mod kernel_cost;
mod loss;
mod replay;
mod tracefs;

use std::{path::PathBuf, time::Duration};

use anyhow::{Result, bail};
use contender::{Contender, TCPSTATES, Usage};

use crate::churn::{self, Closer};

pub const PORT: u16 = 18_480;

pub struct Options {
    pub rounds: u32,
    pub seconds: u32,
    pub threads: usize,
    pub closer: Closer,
    /// Skip the per-program cost and the lost-events ramp.
    pub throughput_only: bool,
}

/// One contender's rounds: connections/s and what it used.
#[derive(Default)]
struct Series {
    rates: Vec<f64>,
    /// The mean of the untraced rounds just before and just after each of `rates`.
    baselines: Vec<f64>,
    usage: Vec<Usage>,
}

pub fn run(opts: &Options) -> Result<()> {
    let tracer = PathBuf::from("target/release/tracer");
    if !tracer.exists() {
        bail!(
            "{} missing: run `cargo xtask build` first",
            tracer.display()
        );
    }
    let dir = std::env::temp_dir().join("tracer-bench");
    std::fs::create_dir_all(&dir)?;
    let _tracefs = tracefs::for_tcpstates()?;
    let mut contenders = vec![
        Contender::Untraced,
        Contender::EmptyPrograms,
        Contender::TracerQuiet,
        Contender::TracerPerTransition,
        Contender::TracerLines,
    ];
    if std::path::Path::new(TCPSTATES).exists() {
        contenders.push(Contender::Tcpstates);
    } else {
        eprintln!("{TCPSTATES} not found: no tcpstates comparison (apt install libbpf-tools)");
    }
    let server = churn::Server::start(PORT, opts.threads, opts.closer)?;
    churn::clients(
        server.addr,
        opts.threads,
        opts.closer,
        Duration::from_secs(2),
    ); // warm-up
    let round = Duration::from_secs(opts.seconds.into());
    let measure = |r: u32, c: Contender| -> Result<(f64, Usage)> {
        let ((done, failed), usage) = contender::alongside(c, &tracer, &dir, None, || {
            churn::clients(server.addr, opts.threads, opts.closer, round)
        })?;
        let rate = done as f64 / round.as_secs_f64();
        let failed = match failed {
            0 => String::new(),
            n => format!(" ({n} failed)"),
        };
        eprintln!("round {r}: {:<44} {rate:>8.0} conn/s{failed}", c.label());
        Ok((rate, usage))
    };
    // Untraced before and after every traced round (U A U B U C ...): each traced rate is
    // compared with the mean of its two neighbours, so drift over the run cancels out.
    let mut series: Vec<Series> = contenders.iter().map(|_| Series::default()).collect();
    let (mut before, _) = measure(1, Contender::Untraced)?;
    series[0].rates.push(before);
    for r in 1..=opts.rounds {
        for (i, &c) in contenders.iter().enumerate().skip(1) {
            let (rate, usage) = measure(r, c)?;
            let (after, _) = measure(r, Contender::Untraced)?;
            series[i].rates.push(rate);
            series[i].baselines.push((before + after) / 2.0);
            series[i].usage.push(usage);
            series[0].rates.push(after);
            before = after;
        }
    }
    report(opts, &contenders, &series);
    if !opts.throughput_only {
        loss::kernel_costs(&tracer, &dir, &server, opts, &contenders)?;
        replay::userspace_cost(&tracer, &dir, &server, opts)?;
        loss::ramp(&tracer, &dir, opts)?;
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(opts: &Options, contenders: &[Contender], series: &[Series]) {
    println!(
        "\nchurn: {} client + {} server threads on 127.0.0.1, {:?} closes first, 16-byte request and response; \
         {} rounds of {} s runs, untraced between every two",
        opts.threads, opts.threads, opts.closer, opts.rounds, opts.seconds
    );
    println!(
        "{:<44} {:>10} {:>22} {:>10} {:>9} {:>7} {:>12}",
        "", "conn/s", "kept: median (range)", "CPU", "max RSS", "lost", "records/conn"
    );
    for (c, s) in contenders.iter().zip(series) {
        let ratios: Vec<f64> = match *c {
            Contender::Untraced => vec![1.0],
            _ => s
                .rates
                .iter()
                .zip(&s.baselines)
                .map(|(t, b)| t / b)
                .collect(),
        };
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let cpu = s.usage.iter().map(|u| u.cpu_seconds).sum::<f64>()
            / (s.usage.len().max(1) as f64 * opts.seconds as f64);
        let rss = s.usage.iter().map(|u| u.max_rss_kib).max().unwrap_or(0);
        // Nothing ran beside the untraced rounds: no CPU, memory or losses to show.
        let lost: Option<u64> = match *c {
            Contender::Untraced => None,
            _ => s.usage.iter().map(|u| u.lost).sum(),
        };
        let cpu = if *c == Contender::Untraced { 0.0 } else { cpu };
        // Records that crossed to userspace per connection made (both ends are traced).
        let connections: f64 = s.rates.iter().map(|r| r * opts.seconds as f64).sum();
        let records = s
            .usage
            .iter()
            .map(|u| u.received)
            .sum::<Option<u64>>()
            .filter(|_| connections > 0.0)
            .map_or("-".to_string(), |n| {
                format!("{:.2}", n as f64 / connections)
            });
        println!(
            "{:<44} {:>10.0} {:>8.1} % ({:.1}-{:.1}) {:>8.1} % {:>6} MiB {:>7} {:>12}",
            c.label(),
            median(s.rates.clone()),
            100.0 * median(ratios.clone()),
            100.0 * lo,
            100.0 * hi,
            100.0 * cpu,
            rss / 1024,
            lost.map_or("-".to_string(), |l| l.to_string()),
            records,
        );
    }
    println!(
        "(CPU: the contender's own user+system time as % of one core; kernel-side BPF time is in the throughput)"
    );
}
