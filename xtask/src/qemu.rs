//! `cargo xtask qemu`: the static (musl) tracer on a second kernel. Debian 12's stock kernel
//! (linux-image-amd64, 6.1) boots under qemu with a busybox initramfs holding the binary; the
//! init script (assets/qemu-init.sh) serves HTTP on the VM's loopback, churns 20 requests while
//! `tracer closes` and `tracer histogram` run, prints their JSON on the serial console and
//! powers off. All traffic stays inside the VM.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

const REQUESTS: u64 = 20;

fn sh(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Downloads and unpacks the kernel linux-image-amd64 points to; returns its vmlinuz.
fn kernel(work: &Path) -> Result<PathBuf> {
    let deps = sh(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    let package = deps
        .split_whitespace()
        .find(|w| w.starts_with("linux-image-6"))
        .context("no linux-image-6.* behind linux-image-amd64")?
        .to_string();
    let root = work.join("kernel");
    if !root.join("boot").exists() {
        sh(Command::new("apt-get")
            .args(["download", &package])
            .current_dir(work))?;
        let deb = std::fs::read_dir(work)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .context("downloaded .deb not found")?;
        sh(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    }
    std::fs::read_dir(root.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz"))
        })
        .context("vmlinuz not in the kernel package")
}

/// A gzip'd cpio initramfs: busybox, the static tracer, the init script.
fn initramfs(work: &Path, tracer: &Path) -> Result<PathBuf> {
    let dir = work.join("initrd");
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["bin", "proc", "sys", "dev", "tmp", "www"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).context("busybox-static")?;
    std::fs::copy(tracer, dir.join("bin/tracer"))?;
    std::fs::write(dir.join("www/index.html"), "hello\n")?;
    std::fs::write(dir.join("init"), include_str!("../assets/qemu-init.sh"))?;
    sh(Command::new("chmod").arg("755").arg(dir.join("init")))?;
    let image = work.join("initrd.gz");
    sh(Command::new("sh").arg("-c").arg(format!(
        "cd {} && find . | cpio -o -H newc 2>/dev/null | gzip -1 > {}",
        dir.display(),
        image.display()
    )))?;
    Ok(image)
}

fn between<'a>(text: &'a str, begin: &str, end: &str) -> Result<&'a str> {
    let start = text
        .find(begin)
        .with_context(|| format!("no {begin} in VM output"))?;
    let rest = &text[start + begin.len()..];
    let stop = rest
        .find(end)
        .with_context(|| format!("no {end} in VM output"))?;
    Ok(rest[..stop].trim())
}

pub fn run(cargo: impl Fn(&[&str]) -> Result<()>) -> Result<()> {
    let target = "x86_64-unknown-linux-musl";
    cargo(&["build", "--release", "-p", "tracer", "--target", target])?;
    let tracer = PathBuf::from(format!("target/{target}/release/tracer"));
    let work = std::env::temp_dir().join("tracer-qemu");
    std::fs::create_dir_all(&work)?;
    let vmlinuz = kernel(&work)?;
    let initrd = initramfs(&work, &tracer)?;
    eprintln!(
        "xtask: booting {} under qemu (software emulation, ~30 s)",
        vmlinuz.display()
    );
    // timeout(1) bounds the VM even if its init hangs.
    let out = sh(Command::new("timeout")
        .args([
            "300",
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "1024",
        ])
        .args(["-smp", "2", "-nographic", "-no-reboot", "-kernel"])
        .arg(&vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"]))?;
    let kernel_line = out
        .lines()
        .find_map(|l| l.find("QEMU-KERNEL").map(|i| &l[i..]))
        .unwrap_or("?");
    let closes: serde_json::Value =
        serde_json::from_str(between(&out, "BEGIN-CLOSES", "END-CLOSES")?)?;
    let hist: serde_json::Value = serde_json::from_str(between(&out, "BEGIN-HIST", "END-HIST")?)?;
    let ended = |role: &str| {
        closes
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["role"] == role)
            .and_then(|r| r["ended"].as_u64())
    };
    let ok = ended("server") == Some(REQUESTS)
        && ended("client") == Some(REQUESTS)
        && hist["count"].as_u64() == Some(2 * REQUESTS)
        && hist["lost"].as_u64() == Some(0);
    println!(
        "qemu {}: server ends {:?}, client ends {:?}, ESTABLISHED durations {}, lost {} -> {}",
        kernel_line.trim(),
        ended("server"),
        ended("client"),
        hist["count"],
        hist["lost"],
        if ok { "PASS" } else { "FAIL" }
    );
    if !ok {
        bail!("the static tracer did not give the expected answers on the second kernel:\n{out}");
    }
    Ok(())
}
