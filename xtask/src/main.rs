//! Project tasks: `cargo xtask test` (every check and test), `cargo xtask build`,
//! `cargo xtask bench` (throughput kept under connection churn, traced vs untraced),
//! `cargo xtask deb` (the Debian package).
//! The toolchains and bpf-linker come from scripts/setup.sh, which scripts/dev.sh runs first.
mod attach_bench;
mod bench;
mod churn;
mod deb;
mod qemu;
mod soak;

use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "tracer project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Format check, clippy (the eBPF crate too, as it is built), unit tests, the real-kernel
    /// integration tests (root), then the static binary on Debian's 5.10, 6.1 and 6.12 kernels
    /// under qemu, and the aarch64 one on Debian's arm64 6.1 and 6.12.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        args: Vec<String>,
    },
    /// Release build of the single `tracer` binary (eBPF object embedded).
    Build,
    /// The .deb: the static binary, systemd unit (not enabled), man pages, bash/zsh/fish
    /// completions (cargo-deb, from scripts/setup.sh). Prints the package's path.
    Deb,
    /// Attach + snapshot time with ~100,000 existing sockets (root; a throw-away netns).
    BenchAttach {
        #[arg(long, default_value_t = 100_000)]
        sockets: usize,
    },
    /// (internal) hold loopback connections for bench-attach until stdin closes.
    #[command(hide = true)]
    HoldSockets {
        #[arg(long)]
        pairs: usize,
        #[arg(long)]
        port: u16,
    },
    /// The static (musl) binary on Debian's 5.10, 6.1 and 6.12 kernels under qemu, one after
    /// the other (root; downloads the kernel packages once); `--arch arm64`: the aarch64 one on
    /// Debian's arm64 6.1 and 6.12.
    Qemu {
        /// Only this kernel series (default: all of the architecture's).
        #[arg(long, value_enum)]
        kernel: Option<qemu::Series>,
        /// The VMs' architecture (software emulation either way).
        #[arg(long, value_enum, default_value = "x86_64")]
        arch: qemu::Arch,
    },
    /// The bench's loopback churn alone, for profiling by hand (perf, bpf_stats, a tracer
    /// started beside it): prints connections/s. Bounded by --seconds; 127.0.0.0/8 only.
    Churn(churn::Load),
    /// `tracer run --quiet --metrics` beside steady churn for --minutes (root): RSS, events,
    /// losses and the daemon's answer every minute; the last answer must be exact.
    Soak {
        #[command(flatten)]
        options: soak::Options,
        /// Use the release binary as it is (no rebuild).
        #[arg(long)]
        no_build: bool,
    },
    /// Throughput kept under loopback connection churn, untraced vs tracer vs tcpstates in
    /// interleaved pairs; then per-program kernel cost, the daemon's cost per event and the
    /// highest rate with 0 lost (root).
    Bench {
        /// Rounds (each runs every traced contender once, an untraced run after each).
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        #[command(flatten)]
        load: churn::Load,
        /// Only the throughput rounds (no per-program cost, no lost-events ramp).
        #[arg(long)]
        throughput_only: bool,
        /// Use the release binary as it is (no rebuild).
        #[arg(long)]
        no_build: bool,
    },
}

fn cargo(args: &[&str]) -> Result<()> {
    cargo_env(args, &[])
}

/// `cargo ARGS` with `env` added to its environment.
fn cargo_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The toolchain that builds the eBPF crate, as tracer/build.rs chooses it.
const EBPF_TOOLCHAIN_ENV: &str = "TRACER_EBPF_TOOLCHAIN";
const EBPF_TOOLCHAIN_DEFAULT: &str = "nightly-2026-10-30";

/// Clippy on tracer-ebpf the way aya-build builds it (tracer/build.rs): the eBPF toolchain,
/// the BPF target, `core` built from source. The host clippy run leaves it out (it is not a
/// default member and does not build for the host).
fn clippy_ebpf() -> Result<()> {
    let toolchain =
        std::env::var(EBPF_TOOLCHAIN_ENV).unwrap_or_else(|_| EBPF_TOOLCHAIN_DEFAULT.to_string());
    let args = [
        "run",
        &toolchain,
        "cargo",
        "clippy",
        "-p",
        "tracer-ebpf",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--",
        "-D",
        "warnings",
    ];
    eprintln!("xtask: rustup {}", args.join(" "));
    // The host toolchain's rustc (set when this runs under cargo) must not leak in.
    let status = Command::new("rustup")
        .args(args)
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .context("running rustup (scripts/setup.sh installs it)")?;
    if !status.success() {
        bail!(
            "clippy on tracer-ebpf failed ({status}); scripts/setup.sh installs clippy for {toolchain}"
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Build => cargo(&["build", "--release", "-p", "tracer"]),
        Task::Deb => {
            let deb = deb::build(cargo)?;
            println!("{}", deb.display());
            Ok(())
        }
        Task::Qemu { kernel, arch } => qemu::run(cargo, &[arch], kernel),
        Task::BenchAttach { sockets } => attach_bench::run(sockets),
        Task::Churn(load) => churn::alone(&load),
        Task::Soak { options, no_build } => {
            if !no_build {
                cargo(&["build", "--release", "-p", "tracer"])?;
            }
            soak::run(std::path::Path::new("target/release/tracer"), &options)
        }
        Task::HoldSockets { pairs, port } => attach_bench::hold(pairs, port),
        Task::Bench {
            rounds,
            load,
            throughput_only,
            no_build,
        } => {
            if !no_build {
                cargo(&["build", "--release", "-p", "tracer"])?;
            }
            bench::run(&bench::Options {
                rounds,
                seconds: load.seconds,
                threads: load.threads,
                closer: load.closer,
                throughput_only,
            })
        }
        Task::Test { args } => {
            cargo(&["fmt", "--all", "--", "--check"])?;
            cargo(&["clippy", "--all-targets", "--", "-D", "warnings"])?;
            clippy_ebpf()?;
            // The integration tests run the real binary: build it first; tests/tests/deb.rs
            // installs the package.
            cargo(&["build", "-p", "tracer"])?;
            let deb = deb::build(cargo)?;
            // tracer-ebpf is built for the BPF target by tracer/build.rs, never as a host test.
            let mut test = vec![
                "test",
                "--workspace",
                "--exclude",
                "tracer-ebpf",
                "--no-fail-fast",
            ];
            if !args.is_empty() {
                test.push("--");
                test.extend(args.iter().map(String::as_str));
            }
            cargo_env(&test, &[("TRACER_DEB", deb.as_os_str())])?;
            // Other kernels: the static binary on Debian's 5.10, 6.1 and 6.12 under qemu, then
            // the aarch64 one on arm64's 6.1 and 6.12 (about a minute of VMs, after its build).
            qemu::run(cargo, &[qemu::Arch::X86_64, qemu::Arch::Arm64], None)
        }
    }
}
