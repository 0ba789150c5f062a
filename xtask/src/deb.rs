//! `cargo xtask deb`: the .deb of the static (musl) binary, with what tracer/Cargo.toml's
//! `[package.metadata.deb]` lists under target/release/deb/ generated here from that binary
//! (man pages, shell completions) and from deploy/ (the systemd unit, run from /usr/bin).
//! cargo-deb (scripts/setup.sh installs it) builds the package; its path goes to stdout.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

const TARGET: &str = "x86_64-unknown-linux-musl";
/// Where deploy/systemd/tracer.service runs the binary from (a manual install), and where the
/// package puts it.
const UNIT_BIN: &str = "/usr/local/bin/tracer";
const PACKAGE_BIN: &str = "/usr/bin/tracer";

/// Builds the package; returns its path.
pub fn build(cargo: impl Fn(&[&str]) -> Result<()>) -> Result<PathBuf> {
    require_cargo_deb()?;
    cargo(&["build", "--release", "-p", "tracer", "--target", TARGET])?;
    let target_dir = target_dir()?;
    // cargo-deb reads the assets' "target/release/" as this folder.
    let release = target_dir.join(TARGET).join("release");
    let bin = release.join("tracer");
    let assets = release.join("deb");
    if let Err(e) = std::fs::remove_dir_all(&assets)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(e).with_context(|| format!("removing {}", assets.display()));
    }
    man_pages(&bin, &assets.join("man"))?;
    completions(&bin, &assets.join("completions"))?;
    unit(&assets.join("tracer.service"))?;

    let out_dir = target_dir.join("debian");
    eprintln!("xtask: cargo-deb -p tracer --no-build --target {TARGET}");
    let out = Command::new("cargo-deb")
        .args(["-p", "tracer", "--no-build", "--target", TARGET, "--output"])
        .arg(&out_dir)
        .current_dir(workspace())
        .output()
        .context("running cargo-deb")?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("cargo-deb failed ({})", out.status);
    }
    // cargo-deb prints the path of the package it wrote.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .with_context(|| format!("cargo-deb named no .deb; it said: {stdout}"))?;
    Ok(deb)
}

fn require_cargo_deb() -> Result<()> {
    match Command::new("cargo-deb").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => bail!(
            "cargo-deb not found: `bash scripts/setup.sh` installs it into \
             ~/.cache/tracer-tools/bin; put that folder on PATH (scripts/dev.sh does)"
        ),
    }
}

/// tracer.1 and one page per subcommand, gzipped as Debian wants them.
fn man_pages(bin: &Path, dir: &Path) -> Result<()> {
    run(Command::new(bin).arg("man").arg("--dir").arg(dir))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    pages.sort();
    if !pages.iter().any(|p| p.ends_with("tracer.1")) {
        bail!("`tracer man` wrote no tracer.1 into {}", dir.display());
    }
    // -n: no name or time stamp inside, so the same pages give the same bytes.
    run(Command::new("gzip").args(["-9", "-n", "-f"]).args(&pages))?;
    Ok(())
}

/// bash, zsh and fish completions, named as each shell's vendor folder expects.
fn completions(bin: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (shell, file) in [
        ("bash", "tracer"),
        ("zsh", "_tracer"),
        ("fish", "tracer.fish"),
    ] {
        let script = run(Command::new(bin).args(["completions", shell]))?;
        let path = dir.join(file);
        std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// deploy/systemd/tracer.service, running the packaged binary.
fn unit(path: &Path) -> Result<()> {
    let source = workspace().join("deploy/systemd/tracer.service");
    let text = std::fs::read_to_string(&source)
        .with_context(|| format!("reading {}", source.display()))?;
    if !text.contains(&format!("ExecStart={UNIT_BIN} ")) {
        bail!(
            "{} no longer runs {UNIT_BIN}: update xtask/src/deb.rs",
            source.display()
        );
    }
    std::fs::write(path, text.replace(UNIT_BIN, PACKAGE_BIN))
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs `cmd`; its stdout, or an error with its stderr.
fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Cargo's target folder as cargo itself resolves it (CARGO_TARGET_DIR, config, default).
fn target_dir() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = run(Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace()))?;
    let meta: serde_json::Value = serde_json::from_slice(&out).context("cargo metadata")?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata gave no target_directory")
}
