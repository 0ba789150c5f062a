//! `cargo xtask soak`: `tracer run --quiet --metrics` beside steady loopback churn for many
//! minutes (root). Every minute it records the tracer's RSS, events received and lost (from
//! its metrics) and the daemon's count of connection ends; at the end, after the churn stops,
//! the daemon's count must equal the connections the churn completed. A benchmark, not a test:
//! it prints a table for BENCHMARKS.md and fails only if the last answer is not exact or
//! events were lost.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{
    bench::contender::wait_for,
    churn::{self, Closer},
};

const PORT: u16 = 18_490;
const METRICS: &str = "127.0.0.1:18491";

#[derive(Clone, Copy, Debug, clap::Args)]
pub struct Options {
    /// Minutes of churn.
    #[arg(long, default_value_t = 10)]
    pub minutes: u32,
    /// Connections per second, all client threads together.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,
    /// Client threads (and as many server threads).
    #[arg(long, default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub threads: usize,
}

/// One minute's reading.
struct Reading {
    minute: u32,
    rss_kib: u64,
    received: u64,
    lost: u64,
    ends: u64,
    done: u64,
}

pub fn run(tracer: &Path, opts: &Options) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("tracer-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("t.sock");
    let stderr = dir.join("tracer.err");
    let mut child = Command::new(tracer)
        .args([
            "run",
            "--quiet",
            "--interval",
            "60s",
            "--metrics",
            METRICS,
            "--socket",
        ])
        .arg(&socket)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr)?)
        .spawn()
        .context("starting tracer run")?;
    let pid = child.id();
    let result = (|| {
        // The control socket is bound before the programs attach: wait for the ready line.
        let ready = || std::fs::read_to_string(&stderr).is_ok_and(|s| s.contains("Ctrl-C"));
        if !wait_for(ready, Duration::from_secs(30)) {
            bail!("tracer run did not start tracing within 30 s");
        }
        let server = churn::Server::start(PORT, opts.threads, Closer::Server)?;
        let (stop, done) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let load = paced_clients(server.addr, opts, &stop, &done);
        println!(
            "soak: {} conn/s for {} min, tracer pid {pid}",
            opts.rate, opts.minutes
        );
        println!("minute  rss_MiB  events_received  lost  ends(daemon)  ends(churn)");
        let mut readings = Vec::new();
        let start = Instant::now();
        for minute in 1..=opts.minutes {
            let at = start + Duration::from_secs(60 * u64::from(minute));
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            let r = reading(tracer, &socket, pid, minute, &done)?;
            println!(
                "{:>6}  {:>7.1}  {:>15}  {:>4}  {:>12}  {:>11}",
                r.minute,
                r.rss_kib as f64 / 1024.0,
                r.received,
                r.lost,
                r.ends,
                r.done
            );
            readings.push(r);
        }
        stop.store(true, Ordering::SeqCst);
        for handle in load {
            let _ = handle.join();
        }
        let accepted = server.accepted.clone();
        drop(server);
        // The last connections' ends reach the daemon within its reorder horizon.
        std::thread::sleep(Duration::from_secs(2));
        let last = reading(tracer, &socket, pid, opts.minutes + 1, &done)?;
        // Every accepted connection, the stopping server's wake-ups included, ended.
        let accepted = accepted.load(Ordering::SeqCst);
        let first = readings.first().map_or(0, |r| r.rss_kib);
        let growth = last.rss_kib as f64 / first.max(1) as f64;
        println!(
            "soak: after the churn: {} ends answered, {} connections accepted ({} made by the \
             clients), {} lost; RSS {:.1} MiB (minute 1: {:.1} MiB, x{growth:.2})",
            last.ends,
            accepted,
            last.done,
            last.lost,
            last.rss_kib as f64 / 1024.0,
            first as f64 / 1024.0
        );
        if last.ends != accepted || last.lost != 0 {
            bail!("the last answer is not exact or events were lost");
        }
        Ok(())
    })();
    // SAFETY: kill(2) on the pid of our own child, not yet waited for.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Client threads that together make `rate` connections a second until `stop`.
fn paced_clients(
    server: SocketAddr,
    opts: &Options,
    stop: &Arc<AtomicBool>,
    done: &Arc<AtomicU64>,
) -> Vec<std::thread::JoinHandle<()>> {
    let per_thread = f64::from(opts.rate) / opts.threads as f64;
    let gap = Duration::from_secs_f64(1.0 / per_thread);
    (0..opts.threads)
        .map(|i| {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if churn::one(i, server, Closer::Server).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    next += gap;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        })
        .collect()
}

fn reading(
    tracer: &Path,
    socket: &Path,
    pid: u32,
    minute: u32,
    done: &AtomicU64,
) -> Result<Reading> {
    let done = done.load(Ordering::SeqCst);
    let metrics = scrape()?;
    let metric = |name: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let out = Command::new(tracer)
        .args(["closes", "--json", "--socket"])
        .arg(socket)
        .output()
        .context("tracer closes")?;
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("tracer closes: {}", String::from_utf8_lossy(&out.stderr)))?;
    let service = format!("127.0.0.1:{PORT}");
    let ends = rows
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["service"] == service.as_str() && r["role"] == "server")
        .filter_map(|r| r["ended"].as_u64())
        .sum();
    Ok(Reading {
        minute,
        rss_kib: rss_kib(pid),
        received: metric("tracer_events_received"),
        lost: metric("tracer_events_lost"),
        ends,
        done,
    })
}

/// The metrics page, by hand: one GET over HTTP/1.0 on loopback.
fn scrape() -> Result<String> {
    let mut conn = TcpStream::connect(METRICS).context("connecting to the metrics server")?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut page = String::new();
    conn.read_to_string(&mut page)?;
    Ok(page)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
