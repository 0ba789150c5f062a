//! `cargo xtask qemu`: the static (musl) tracer on a matrix of Debian kernels, 5.10
//! (bullseye), 6.1 (bookworm) and 6.12 (bookworm-backports), each under qemu (TCG) with a
//! busybox initramfs holding the binary and the kernel's own `inet_diag`/`tcp_diag` modules
//! (kernels.rs fetches the packages). The init script (assets/qemu-init.sh) takes a sock_diag
//! snapshot with `tracer states`, serves HTTP on the VM's loopback, churns 20 requests while
//! `tracer closes` and `tracer histogram` run, prints their JSON on the serial console and
//! powers off. Meanwhile assets/qemu-timewait.sh makes TIME_WAIT starts, early ends (tw reuse,
//! netns exit) and an expiry within seconds, traced twice: with the path tracer chooses (fentry
//! must be chosen on these kernels) and with the timer path forced
//! (TRACER_TIMEWAIT_HOOKS=timer); both must report the same. All traffic stays inside the VMs,
//! which run one after the other, each bounded by a timeout. One PASS/FAIL line per kernel and
//! check; the task fails when any failed.
//!
//! `--arch arm64` runs the same scenario on arm64 (arch.rs): the tracer cross-built for
//! aarch64-unknown-linux-musl, Debian's 6.1 and 6.12 `-cloud-arm64` kernels and arm64
//! busybox, on qemu-system-aarch64's `virt` machine, also under TCG. On arm64's 6.1, fentry
//! cannot attach (arch.rs): there tracer must choose the timer path itself.
mod arch;
mod half_open;
mod kernel_timewaits;
mod kernels;
mod modules;
mod scenario;
mod timewaits;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail};
pub use arch::Arch;
pub use kernels::Series;
use scenario::{Connections, Snapshot, between};
use timewaits::TimeWaits;

fn sh(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One kernel's results, for the summary and the docs table.
struct Outcome {
    arch: Arch,
    series: Series,
    package: String,
    seconds: u64,
    /// `fentry` or what the auto run chose instead.
    auto_path: String,
    /// Whether kernel aggregation was expected (5.12+) rather than its fallback.
    aggregation: bool,
    /// (check, passed)
    checks: Vec<(&'static str, bool)>,
    error: Option<String>,
}

impl Outcome {
    /// `x86_64 6.1`, `arm64 6.1`: what its lines and files are named after.
    fn label(&self) -> String {
        format!("{} {}", self.arch.name(), self.series.name())
    }

    fn ok(&self) -> bool {
        self.error.is_none() && !self.checks.is_empty() && self.checks.iter().all(|c| c.1)
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// Runs each architecture's kernels (or the one series asked for), one VM after the other.
pub fn run(
    cargo: impl Fn(&[&str]) -> Result<()>,
    arches: &[Arch],
    only: Option<Series>,
) -> Result<()> {
    let target_dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let mut runs = Vec::new();
    for &arch in arches {
        let series: Vec<Series> = match only {
            Some(s) if arch.series().contains(&s) => vec![s],
            Some(s) => bail!(
                "no {} kernel {} in the matrix (it has: {})",
                arch.name(),
                s.name(),
                arch.series()
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => arch.series().to_vec(),
        };
        let target = arch.rust_target();
        cargo(&["build", "--release", "-p", "tracer", "--target", target])?;
        // The raw SYN sender of the half-open check.
        let syns = ["-p", "tracer-tests", "--bin", "trc-syns"];
        cargo(&[&["build", "--release", "--target", target][..], &syns[..]].concat())?;
        let tracer = PathBuf::from(format!("{target_dir}/{target}/release/tracer"));
        runs.extend(series.into_iter().map(|s| (arch, s, tracer.clone())));
    }
    let work = std::env::temp_dir().join("tracer-qemu");
    std::fs::create_dir_all(&work)?;
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for (arch, s, tracer) in runs {
        let t = Instant::now();
        let mut outcome = Outcome {
            arch,
            series: s,
            package: String::new(),
            seconds: 0,
            auto_path: String::new(),
            aggregation: false,
            checks: Vec::new(),
            error: None,
        };
        if let Err(e) = one(&work, &tracer, &mut outcome) {
            let first = format!("{e:#}");
            let first = first.lines().next().unwrap_or("").to_string();
            println!("qemu {}: {first} -> FAIL", outcome.label());
            outcome.error = Some(first);
        }
        outcome.seconds = t.elapsed().as_secs();
        println!(
            "qemu {}: {} in {} s",
            outcome.label(),
            verdict(outcome.ok()),
            outcome.seconds
        );
        outcomes.push(outcome);
    }
    summary(&outcomes, started.elapsed().as_secs());
    for o in outcomes.iter().filter(|o| !o.ok()) {
        let log = work.join(console_log(o.arch, o.series));
        if let Ok(console) = std::fs::read_to_string(&log) {
            eprintln!("--- {} ---\n{console}", log.display());
        }
    }
    if outcomes.iter().any(|o| !o.ok()) {
        bail!(
            "the static tracer did not give the expected answers on every kernel (console logs: {})",
            work.display()
        );
    }
    Ok(())
}

/// `console-6.1.log` (x86_64, as before arm64 came), `console-arm64-6.1.log`.
fn console_log(arch: Arch, series: Series) -> String {
    match arch {
        Arch::X86_64 => format!("console-{}.log", series.name()),
        _ => format!("console-{}-{}.log", arch.name(), series.name()),
    }
}

/// Fetches the kernel, boots it, checks and prints its lines.
fn one(work: &Path, tracer: &Path, o: &mut Outcome) -> Result<()> {
    let name = o.label();
    let log = work.join(console_log(o.arch, o.series));
    let _ = std::fs::remove_file(&log);
    let kernel = kernels::fetch(work, o.series, o.arch)?;
    o.package = format!(
        "`{}` ({}, {})",
        kernel.package, kernel.version, kernel.suite
    );
    let (initrd, modules) = scenario::initramfs(work, o.arch, tracer, &kernel)?;
    println!(
        "qemu {name}: {} {} from {}, modules {} loaded in the VM",
        kernel.package,
        kernel.version,
        kernel.suite,
        modules.join(" ")
    );
    let boot = Instant::now();
    let out = scenario::boot(o.arch, &kernel.vmlinuz, &initrd);
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            std::fs::write(&log, format!("{e:#}"))?;
            return Err(e.context(format!("console in {}", log.display())));
        }
    };
    std::fs::write(&log, &out)?;
    eprintln!(
        "xtask: {name}: VM ran {} s (TCG); console in {}",
        boot.elapsed().as_secs(),
        log.display()
    );
    let release = out
        .lines()
        .find_map(|l| l.find("QEMU-KERNEL ").map(|i| l[i + 12..].trim()))
        .unwrap_or("?")
        .to_string();
    let tag = format!("qemu {name} ({release})");
    for failed in out.lines().filter(|l| l.contains("INSMOD-FAILED")) {
        println!("{tag}: {}", failed.trim());
    }

    let conns = Connections::parse(&out, "CLOSES")?;
    let ok = conns.ok();
    println!("{tag} connections: {} -> {}", conns.describe(), verdict(ok));
    o.checks.push(("connections", ok));

    let conns = Connections::parse(&out, "CLOSES-TIMER")?;
    let ok = conns.ok();
    println!(
        "{tag} connections, timer path forced: {} -> {}",
        conns.describe(),
        verdict(ok)
    );
    o.checks.push(("connections timer", ok));

    let each = scenario::close_rows(&out, "CLOSES-OFF")?;
    for (section, what) in [("CLOSES", "chosen path"), ("CLOSES-TIMER", "timer path")] {
        let ok = scenario::close_rows(&out, section)? == each;
        println!(
            "{tag} close rows, {what}, against one transition at a time: {} -> {}",
            match ok {
                true => "the same".to_string(),
                false => format!(
                    "they differ: {}",
                    between(&out, &format!("BEGIN-{section}"), &format!("END-{section}"))?
                ),
            },
            verdict(ok)
        );
        o.checks.push(("same close rows", ok));
    }

    let aggregation = scenario::Aggregation::parse(&out)?;
    let expected = scenario::aggregation_expected(&release);
    o.aggregation = expected;
    let ok = aggregation.ok(expected);
    println!(
        "{tag} kernel aggregation ({}): {} -> {}",
        match expected {
            true => "expected: 5.12+",
            false => "fallback expected: before 5.12",
        },
        aggregation.describe(),
        verdict(ok)
    );
    o.checks.push(("aggregation", ok));

    let snap = Snapshot::parse(&out)?;
    let ok = snap.ok();
    println!("{tag} snapshot: {} -> {}", snap.describe(), verdict(ok));
    o.checks.push(("snapshot", ok));

    // fentry is expected on every kernel of the matrix (BTF trampolines since 5.5 on x86_64,
    // 6.4 on arm64) but arm64's 6.1, where tracer must fall back to the timer path; when the
    // path is not the one expected, its line says why (tracer's own stderr line).
    let auto = TimeWaits::parse(&out, "auto")?;
    let fentry = auto.path.starts_with("TIME_WAIT followed with fentry on");
    let timer_path = |path: &str| path.starts_with("TIME_WAIT followed through the timer");
    o.auto_path = match (fentry, o.arch.no_fentry(o.series)) {
        (true, _) => "fentry".into(),
        (false, Some(_)) if timer_path(&auto.path) => "timer".into(),
        _ => auto.path.clone(),
    };
    let (expected, ok) = match o.arch.no_fentry(o.series) {
        None => ("fentry expected".to_string(), fentry),
        Some(why) => (format!("timer expected: {why}"), timer_path(&auto.path)),
    };
    let ok = ok && auto.counts_ok();
    println!(
        "{tag} TIME_WAIT auto ({expected}): {} -> {}",
        auto.describe(),
        verdict(ok)
    );
    o.checks.push(("TIME_WAIT auto", ok));

    let timer = TimeWaits::parse(&out, "timer")?;
    let ok = timer_path(&timer.path) && timer.counts_ok();
    println!(
        "{tag} TIME_WAIT timer forced: {} -> {}",
        timer.describe(),
        verdict(ok)
    );
    o.checks.push(("TIME_WAIT timer", ok));

    let each = kernel_timewaits::each_summary(&out, "auto")?;
    let (fentry_line, timer_line) = (
        "TIME_WAIT followed with fentry",
        "TIME_WAIT followed through the timer",
    );
    let chosen = match o.arch.no_fentry(o.series) {
        None => fentry_line,
        Some(_) => timer_line,
    };
    let runs = [
        ("auto", "chosen path", chosen),
        ("timer", "timer path forced", timer_line),
    ];
    for (name, what, path) in runs {
        let a = kernel_timewaits::Aggregated::parse(&out, name)?;
        let ok = a.ok(&each, o.aggregation, path);
        println!(
            "{tag} TIME_WAIT under kernel aggregation, {what}: {} -> {}",
            a.describe(&each),
            verdict(ok)
        );
        o.checks.push(("TIME_WAIT aggregated", ok));
    }

    let auto = half_open::HalfOpens::parse(&out, "auto")?;
    let timer = half_open::HalfOpens::parse(&out, "timer")?;
    for (what, h) in [("chosen path", &auto), ("timer path forced", &timer)] {
        println!(
            "{tag} half-opens, {what}: {} -> {}",
            h.describe(),
            verdict(h.ok())
        );
        o.checks.push(("half-opens", h.ok()));
    }
    // Where fentry follows TIME_WAIT, the handler's own hooks follow request sockets (no
    // request-socket programs on every timer).
    if fentry {
        let ok = auto.path.contains(half_open::HANDLER_PATH);
        println!(
            "{tag} half-opens, chosen path hooks {:?}: {} -> {}",
            half_open::HANDLER_PATH,
            auto.path,
            verdict(ok)
        );
        o.checks.push(("half-open hooks", ok));
    }
    let same = auto.counts() == timer.counts();
    println!(
        "{tag} half-opens, chosen and timer path agree: {:?} and {:?} -> {}",
        auto.counts(),
        timer.counts(),
        verdict(same)
    );
    o.checks.push(("half-opens same", same));
    Ok(())
}

/// The matrix as a Markdown table: docs/kernel-support.md's rows.
fn summary(outcomes: &[Outcome], total: u64) {
    println!("qemu matrix ({total} s in all):");
    println!(
        "| kernel | package (version, suite) | TIME_WAIT path chosen | timer path forced \
         | kernel aggregation | snapshot | result | time |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for o in outcomes {
        let check = |name: &str| match o.checks.iter().find(|c| c.0 == name) {
            Some(c) => verdict(c.1),
            None => "-",
        };
        let auto = match check("TIME_WAIT auto") {
            "-" => "-".to_string(),
            v => format!("{}: {v}", o.auto_path),
        };
        let snapshot = match check("snapshot") {
            "PASS" => "taken",
            "FAIL" => "not taken",
            _ => "-",
        };
        let result = match &o.error {
            Some(e) => format!("FAIL: {e}"),
            None => verdict(o.ok()).to_string(),
        };
        let aggregation = match (check("aggregation"), o.aggregation) {
            ("-", _) => "-".to_string(),
            (v, true) => format!("on: {v}"),
            (v, false) => format!("fallback: {v}"),
        };
        println!(
            "| {} | {} | {auto} | {} | {aggregation} | {snapshot} | {result} | {} s |",
            o.label(),
            o.package,
            check("TIME_WAIT timer"),
            o.seconds
        );
    }
}
