//! A kernel package's own modules for the initramfs: the ones asked for and their
//! dependencies, decompressed, in load order.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use super::kernels::Kernel;

/// Copies `names` and the modules they depend on (their `depends=`), decompressed
/// (busybox insmod may not read .ko.xz/.ko.zst), into `dest` as `<name>.ko`; returns them in
/// load order, dependencies first.
pub fn copy(kernel: &Kernel, names: &[&str], dest: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dest)?;
    let mut order = Vec::new();
    for name in names {
        add_module(kernel, name, dest, &mut order, 0)?;
    }
    Ok(order)
}

fn add_module(
    kernel: &Kernel,
    name: &str,
    dest: &Path,
    order: &mut Vec<String>,
    depth: usize,
) -> Result<()> {
    if order.iter().any(|m| m == name) {
        return Ok(());
    }
    if depth > 16 {
        bail!("module dependencies of {name} loop");
    }
    let source = find_module(&kernel.modules.join("kernel"), name)?
        .with_context(|| format!("{name}.ko not in {}", kernel.package))?;
    let out = dest.join(format!("{name}.ko"));
    let file = source.to_string_lossy();
    if file.ends_with(".xz") || file.ends_with(".zst") {
        let tool = if file.ends_with(".xz") { "xz" } else { "zstd" };
        let data = Command::new(tool)
            .args(["-dc"])
            .arg(&source)
            .output()
            .with_context(|| format!("running {tool} (Debian: xz-utils, zstd)"))?;
        if !data.status.success() {
            bail!("{tool} -dc {file} failed");
        }
        std::fs::write(&out, data.stdout)?;
    } else {
        std::fs::copy(&source, &out)?;
    }
    for dep in depends(&std::fs::read(&out)?)
        .split(',')
        .filter(|d| !d.is_empty())
    {
        add_module(kernel, dep, dest, order, depth + 1)?;
    }
    order.push(name.to_string());
    Ok(())
}

/// The `depends=` entry of a module's .modinfo section (what `modinfo -F depends` prints,
/// without needing kmod on the host).
fn depends(ko: &[u8]) -> String {
    let key = b"\0depends=";
    ko.windows(key.len())
        .position(|w| w == key)
        .map(|at| {
            let value = &ko[at + key.len()..];
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            String::from_utf8_lossy(&value[..end]).into_owned()
        })
        .unwrap_or_default()
}

/// `<name>.ko`, `.ko.xz` or `.ko.zst` anywhere under `dir` (module names use `_` where files
/// may use `-`).
fn find_module(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if let Some(found) = find_module(&path, name)? {
                return Ok(Some(found));
            }
            continue;
        }
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        let stem = file
            .strip_suffix(".ko")
            .or_else(|| file.strip_suffix(".ko.xz"))
            .or_else(|| file.strip_suffix(".ko.zst"));
        if stem.is_some_and(|s| s.replace('-', "_") == name.replace('-', "_")) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}
