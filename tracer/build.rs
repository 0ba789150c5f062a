//! Builds the eBPF programs with the pinned eBPF toolchain and embeds the object in the binary,
//! and names the git commit it is built from for `tracer --version`.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

/// The nightly that builds the eBPF crate; its LLVM must match bpf-linker's (scripts/setup.sh).
const EBPF_TOOLCHAIN_ENV: &str = "TRACER_EBPF_TOOLCHAIN";
const EBPF_TOOLCHAIN_DEFAULT: &str = "nightly-2026-10-30";

fn main() -> anyhow::Result<()> {
    emit_git_commit();
    println!("cargo::rerun-if-env-changed={EBPF_TOOLCHAIN_ENV}");
    let toolchain =
        std::env::var(EBPF_TOOLCHAIN_ENV).unwrap_or_else(|_| EBPF_TOOLCHAIN_DEFAULT.to_string());
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "tracer-ebpf")
        .ok_or_else(|| anyhow!("tracer-ebpf package not found"))?;
    let root = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    let package = aya_build::Package {
        name: ebpf.name.as_str(),
        root_dir: root.as_str(),
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::Custom(&toolchain))
}

/// Sets `TRACER_GIT_COMMIT` to the short hash and commit date of HEAD ("abc1234 2026-12-07"),
/// or "unknown commit" outside a git checkout (a crate tarball) or without git. Reruns when
/// HEAD moves: HEAD itself, its reflog (written on every commit, checkout and reset), the branch
/// it points to and packed-refs, each where this checkout keeps it (worktrees included).
fn emit_git_commit() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    // A packaged crate carries this file; a git repository around it would be someone else's.
    let packaged = dir.join(".cargo_vcs_info.json").exists();
    let commit = (!packaged)
        .then(|| git(&dir, &["log", "-1", "--format=%h %cs", "HEAD"]))
        .flatten()
        .unwrap_or_else(|| "unknown commit".to_string());
    println!("cargo::rustc-env=TRACER_GIT_COMMIT={commit}");
    if packaged {
        return;
    }
    let mut watched = vec!["HEAD".to_string(), "logs/HEAD".into(), "packed-refs".into()];
    watched.extend(git(&dir, &["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        let path = git(
            &dir,
            &["rev-parse", "--path-format=absolute", "--git-path", &name],
        );
        // A path that does not exist would rerun this script (and the eBPF build) every time.
        if let Some(path) = path.filter(|p| Path::new(p).exists()) {
            println!("cargo::rerun-if-changed={path}");
        }
    }
}

/// `git ARGS` in `dir`: its first line of output, or None if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().next()?.trim().to_string();
    (out.status.success() && !line.is_empty()).then_some(line)
}
