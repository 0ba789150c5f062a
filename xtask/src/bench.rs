//! `cargo xtask bench`: loopback connection churn (nginx with `keepalive_timeout 0`, wrk with
//! `Connection: close`), untraced and traced by `tracer run` with every aggregate on, in
//! alternating rounds of the same length, so the ratio is measured side by side on a noisy
//! 2-core machine. All traffic goes to 127.0.0.1 and every round is bounded by wrk's duration.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

const PORT: u16 = 18_480;

struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    fn start() -> Result<Nginx> {
        let dir = std::env::temp_dir().join("tracer-bench-nginx");
        std::fs::create_dir_all(&dir)?;
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{ access_log off; keepalive_timeout 0;\n\
               client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f;\n\
               uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n\
               server {{ listen 127.0.0.1:{PORT}; location / {{ return 200 \"ok\\n\"; }} }} }}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .spawn()
            .context("starting nginx (scripts/setup.sh installs nginx-light)")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", PORT)).is_err() {
            if Instant::now() > deadline {
                bail!("nginx did not listen on {PORT}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Nginx { child, dir })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One wrk round; returns requests per second.
fn wrk(seconds: u32) -> Result<f64> {
    let out = Command::new("wrk")
        .args([
            "-t1",
            "-c20",
            &format!("-d{seconds}s"),
            "-H",
            "Connection: close",
        ])
        .arg(format!("http://127.0.0.1:{PORT}/"))
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output:\n{text}"))
}

/// CPU time (user + system) of a process so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields after the comm: state is index 0, utime 11, stime 12 (clock ticks, 100 Hz).
    (ticks(11) + ticks(12)) / 100.0
}

fn start_tracer(bin: &Path) -> Result<Child> {
    let child = Command::new(bin)
        .args([
            "run",
            "--quiet",
            "--interval",
            "1s",
            "--port",
            &PORT.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting tracer")?;
    std::thread::sleep(Duration::from_millis(1500)); // attach
    Ok(child)
}

pub fn run(rounds: u32, seconds: u32) -> Result<()> {
    let bin = PathBuf::from("target/release/tracer");
    if !bin.exists() {
        bail!("{} missing: run `cargo xtask build` first", bin.display());
    }
    let _nginx = Nginx::start()?;
    wrk(2)?; // warm-up
    let (mut plain, mut traced, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let base = wrk(seconds)?;
        let mut tracer = start_tracer(&bin)?;
        let before = cpu_seconds(tracer.id());
        let with = wrk(seconds)?;
        let used = cpu_seconds(tracer.id()) - before;
        let _ = Command::new("kill").arg(tracer.id().to_string()).status();
        let _ = tracer.wait();
        eprintln!(
            "round {round}: untraced {base:.0} req/s, traced {with:.0} req/s ({:.1} %), tracer CPU {:.1} %",
            100.0 * with / base,
            100.0 * used / seconds as f64
        );
        plain.push(base);
        traced.push(with);
        cpu.push(used / seconds as f64);
    }
    let mut ratios: Vec<f64> = plain.iter().zip(&traced).map(|(p, t)| t / p).collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "churn (nginx keepalive_timeout 0, wrk -t1 -c20 Connection: close), {rounds} x {seconds} s rounds:\n\
         untraced {:.0} req/s, traced {:.0} req/s, throughput kept: median {:.1} % (min {:.1} %, max {:.1} %), \
         tracer CPU {:.1} % of one core",
        mean(&plain),
        mean(&traced),
        100.0 * median,
        100.0 * ratios[0],
        100.0 * ratios[ratios.len() - 1],
        100.0 * mean(&cpu)
    );
    Ok(())
}
