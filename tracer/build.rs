//! Builds the eBPF programs with the pinned eBPF toolchain and embeds the object in the binary.
use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

/// The nightly that builds the eBPF crate; its LLVM must match bpf-linker's (scripts/setup.sh).
const EBPF_TOOLCHAIN_ENV: &str = "TRACER_EBPF_TOOLCHAIN";
const EBPF_TOOLCHAIN_DEFAULT: &str = "nightly-2026-10-30";

fn main() -> anyhow::Result<()> {
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
