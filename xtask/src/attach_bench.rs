//! `cargo xtask bench-attach`: how long `tracer run` takes to attach and snapshot a host that
//! already has ~100,000 TCP sockets. The sockets (ESTABLISHED pairs, held by several child
//! processes since one process may hold only 20,000 descriptors here) are made in a fresh
//! network namespace on its loopback, so counts are exact and nothing leaves it.
use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

const NETNS: &str = "tracer-bench-attach";
/// Descriptors per process are capped at 20,000 here: 9,000 pairs = 18,000 sockets each.
const PAIRS_PER_HOLDER: usize = 9_000;

fn ip(args: &[&str]) -> Result<()> {
    let ok = Command::new("ip").args(args).status()?.success();
    if !ok {
        bail!("ip {} failed", args.join(" "));
    }
    Ok(())
}

/// Child mode (`xtask hold-sockets`): opens `pairs` loopback connections to `port` in the
/// current netns, says "ready", and holds them until stdin closes.
pub fn hold(pairs: usize, port: u16) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut held = Vec::with_capacity(2 * pairs);
    for _ in 0..pairs {
        held.push(TcpStream::connect(addr)?);
        held.push(listener.accept()?.0);
    }
    println!("ready");
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    Ok(())
}

/// Starts `holders` child processes inside the netns, each holding `pairs` connections.
fn make_sockets(holders: usize, pairs: usize) -> Result<Vec<std::process::Child>> {
    let me = std::env::current_exe()?;
    let mut children = Vec::new();
    for i in 0..holders {
        let mut child = Command::new("ip")
            .args(["netns", "exec", NETNS])
            .arg(&me)
            .args(["hold-sockets", "--pairs", &pairs.to_string(), "--port"])
            .arg((7000 + i).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!("socket holder {i} failed");
        }
        children.push(child);
    }
    Ok(children)
}

/// Starts `tracer ARGS` inside the netns and returns the time until it says it is tracing.
fn time_to_ready(bin: &str, args: &[&str]) -> Result<Duration> {
    let start = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", NETNS, bin])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut ready = None;
    for line in BufReader::new(stderr).lines() {
        if line?.contains("Ctrl-C") {
            ready = Some(start.elapsed());
            break;
        }
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    ready.context("tracer never became ready")
}

pub fn run(total: usize) -> Result<()> {
    let bin = "target/release/tracer";
    let _ = Command::new("ip").args(["netns", "del", NETNS]).status();
    ip(&["netns", "add", NETNS])?;
    let result = (|| -> Result<()> {
        ip(&["-n", NETNS, "link", "set", "lo", "up"])?;
        for sysctl in [
            "net.ipv4.tcp_max_tw_buckets=1000000",
            "net.ipv4.ip_local_port_range=10000 65000",
        ] {
            let ok = Command::new("ip")
                .args(["netns", "exec", NETNS, "sysctl", "-q", "-w", sysctl])
                .status()?
                .success();
            if !ok {
                bail!("sysctl {sysctl}");
            }
        }
        let made = Instant::now();
        let holders = total.div_ceil(2 * PAIRS_PER_HOLDER);
        let _children = make_sockets(holders, PAIRS_PER_HOLDER)?;
        eprintln!(
            "xtask: {} sockets held by {holders} processes, made in {:.1?}",
            2 * holders * PAIRS_PER_HOLDER,
            made.elapsed()
        );
        let states_start = Instant::now();
        let out = Command::new("ip")
            .args(["netns", "exec", NETNS, bin, "states", "--json"])
            .output()?;
        let states_time = states_start.elapsed();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let tw = v["states"]["ESTABLISHED"].as_u64().unwrap_or(0);
        let mut attach = Vec::new();
        for _ in 0..3 {
            attach.push(time_to_ready(
                bin,
                &["run", "--quiet", "--no-socket", "--duration", "60"],
            )?);
        }
        attach.sort();
        println!(
            "{tw} existing sockets (ESTABLISHED): `tracer states` {:.0} ms; `tracer run` attach + \
             snapshot until ready: median {:.0} ms (of 3: {:.0?})",
            states_time.as_secs_f64() * 1e3,
            attach[1].as_secs_f64() * 1e3,
            attach
        );
        if tw < total as u64 {
            bail!("only {tw} of {total} sockets were seen");
        }
        Ok(())
    })();
    let _ = Command::new("ip").args(["netns", "del", NETNS]).status();
    result
}
