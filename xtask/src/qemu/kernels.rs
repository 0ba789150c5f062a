//! The kernels of the matrix, from Debian's package archive. apt runs with a private sources
//! list, lists and cache under the work dir (`-o Dir::Etc::sourcelist=...` and friends), so the
//! machine's own apt configuration and state are never changed; the packages are checked
//! against the archive's signed Release files like any apt download. The newest image package
//! of each series is chosen, the `-cloud-amd64` or `-cloud-arm64` flavour (it has everything
//! the VM needs: a built-in serial console, network namespaces, BTF, and `inet_diag`/`tcp_diag`
//! as modules). The arm64 lists come from `[arch=arm64]` entries (apt is told the architecture
//! with `APT::Architectures`; dpkg's own list is untouched), and arm64's busybox from its
//! `busybox-static` package. Each package is unpacked once under `<work>/kernels/<package>/`.
use std::{
    cmp::Ordering,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, bail};

use super::{arch::Arch, sh};

/// Debian's mirror, as in the machine's /etc/apt/sources.list.d/debian.sources.
const MIRROR: &str = "http://deb.debian.org";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Suites searched, and for which architectures: a series' newest build may be in the
/// security suite. arm64 boots bookworm's 6.1 and 6.12.
const SUITES: &[(&str, &str, &str)] = &[
    ("debian", "bullseye", "amd64"),
    ("debian-security", "bullseye-security", "amd64"),
    ("debian", "bookworm", "amd64,arm64"),
    ("debian-security", "bookworm-security", "amd64,arm64"),
    ("debian", "bookworm-backports", "amd64,arm64"),
];
/// The package lists are refreshed when older than this.
const LISTS_MAX_AGE: Duration = Duration::from_secs(12 * 3600);

/// One kernel series of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Series {
    #[value(name = "5.10")]
    V5_10,
    #[value(name = "6.1")]
    V6_1,
    #[value(name = "6.12")]
    V6_12,
}

impl Series {
    pub const ALL: [Series; 3] = [Series::V5_10, Series::V6_1, Series::V6_12];

    pub fn name(self) -> &'static str {
        match self {
            Series::V5_10 => "5.10",
            Series::V6_1 => "6.1",
            Series::V6_12 => "6.12",
        }
    }

    /// Where Debian ships it (the newest build may be in the suite's -security).
    fn suites(self) -> &'static str {
        match self {
            Series::V5_10 => "bullseye",
            Series::V6_1 => "bookworm",
            Series::V6_12 => "bookworm-backports, bookworm-security",
        }
    }

    /// Its image packages: `linux-image-5.10.0-46-cloud-amd64`, `linux-image-6.1.0-57-...`,
    /// `linux-image-6.12.118+deb12-cloud-amd64` (`-cloud-arm64` on arm64).
    fn matches(self, arch: Arch, package: &str) -> bool {
        let Some(rest) = package
            .strip_prefix("linux-image-")
            .and_then(|p| p.strip_suffix(arch.flavour()))
        else {
            return false;
        };
        match self {
            Series::V5_10 => rest.starts_with("5.10.0-"),
            Series::V6_1 => rest.starts_with("6.1.0-"),
            Series::V6_12 => rest.starts_with("6.12.") && rest.contains("+deb"),
        }
    }
}

/// An unpacked kernel package.
pub struct Kernel {
    pub package: String,
    pub version: String,
    /// The suite it came from (bookworm-security, ...).
    pub suite: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` inside the package.
    pub modules: PathBuf,
}

/// apt with our own sources, lists and cache.
struct Apt {
    dir: PathBuf,
}

impl Apt {
    fn new(work: &Path) -> Result<Apt> {
        let dir = work.join("apt");
        for sub in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let list: String = SUITES
            .iter()
            .map(|(archive, suite, archs)| {
                format!("deb [arch={archs} signed-by={KEYRING}] {MIRROR}/{archive} {suite} main\n")
            })
            .collect();
        std::fs::write(dir.join("sources.list"), list)?;
        Ok(Apt { dir })
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        vec![
            format!("-o=Dir::Etc::sourcelist={d}/sources.list"),
            "-o=Dir::Etc::sourceparts=-".into(),
            format!("-o=Dir::State::Lists={d}/lists"),
            format!("-o=Dir::Cache={d}/cache"),
            "-o=APT::Get::List-Cleanup=0".into(),
            // arm64 beside the host's own architectures, for this apt run only.
            "-o=APT::Architectures::=arm64".into(),
            // Downloads land in our work dir, which apt's _apt user cannot write.
            "-o=APT::Sandbox::User=root".into(),
        ]
    }

    fn cmd(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.args(self.options());
        cmd
    }

    /// `apt-get update` on our lists when they are missing or stale, or were made from another
    /// sources list (the stamp holds the one they came from). A failed update with lists
    /// present is a warning (offline runs use what they have).
    fn refresh(&self) -> Result<()> {
        let stamp = self.dir.join("lists/updated");
        let sources = std::fs::read_to_string(self.dir.join("sources.list"))?;
        let fresh = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < LISTS_MAX_AGE)
            && std::fs::read_to_string(&stamp).is_ok_and(|s| s == sources);
        if fresh {
            return Ok(());
        }
        eprintln!(
            "xtask: apt-get update on the private lists in {}",
            self.dir.display()
        );
        match sh(self.cmd("apt-get").args(["-qq", "update"])) {
            Ok(_) => {
                std::fs::write(&stamp, sources)?;
                Ok(())
            }
            Err(e) if stamp.exists() => {
                eprintln!("xtask: warning: apt-get update failed, using the old lists: {e:#}");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The newest package of the series that has a version to download.
    fn newest(&self, series: Series, arch: Arch) -> Result<Chosen> {
        let names = sh(self.cmd("apt-cache").args(["pkgnames", "linux-image-"]))?;
        let mut names: Vec<&str> = names.lines().filter(|n| series.matches(arch, n)).collect();
        names.sort_by(|a, b| natural(b, a));
        for name in names {
            // pkgnames also lists names only referenced by other packages: those have no line.
            if let Some(chosen) = self.version(name, arch)? {
                return Ok(chosen);
            }
        }
        bail!(
            "no linux-image-{}*{} package in the lists ({})",
            series.name(),
            arch.flavour(),
            series.suites()
        )
    }

    /// The package's newest version for `arch` and its suite (`apt-cache madison`:
    /// `name:arch | version | mirror suite/main arm64 Packages`), if it has one.
    fn version(&self, name: &str, arch: Arch) -> Result<Option<Chosen>> {
        let qualified = format!("{name}:{}", arch.debian());
        let madison = sh(self.cmd("apt-cache").args(["madison", &qualified]))?;
        let Some(line) = madison.lines().next() else {
            return Ok(None);
        };
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, version, source, ..] = fields[..] else {
            return Ok(None);
        };
        let suite = source.split_whitespace().nth(1).unwrap_or("?");
        Ok(Some(Chosen {
            package: name.to_string(),
            version: version.to_string(),
            suite: suite.split('/').next().unwrap_or("?").to_string(),
        }))
    }

    /// Downloads `chosen` for `arch` and unpacks it into `root` (with an ORIGIN file: version
    /// and suite), unless it is there already.
    fn unpack(&self, chosen: &Chosen, arch: Arch, root: &Path) -> Result<()> {
        if root.join("ORIGIN").exists() {
            return Ok(());
        }
        let package = &chosen.package;
        let dl = root.with_extension("download");
        let _ = std::fs::remove_dir_all(&dl);
        std::fs::create_dir_all(&dl)?;
        eprintln!(
            "xtask: downloading {package}:{} {}",
            arch.debian(),
            chosen.version
        );
        let qualified = format!("{package}:{}", arch.debian());
        sh(self
            .cmd("apt-get")
            .args(["-qq", "download", &qualified])
            .current_dir(&dl))?;
        let deb = find_in(&dl, &format!("{package}_"))?;
        let partial = root.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        sh(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
        std::fs::write(
            partial.join("ORIGIN"),
            format!("{} {}", chosen.version, chosen.suite),
        )?;
        let _ = std::fs::remove_dir_all(root);
        std::fs::rename(&partial, root)?;
        std::fs::remove_dir_all(&dl)?;
        Ok(())
    }
}

/// A kernel package picked from the lists (or the cache).
struct Chosen {
    package: String,
    version: String,
    suite: String,
}

/// Compares package names with their digit runs as numbers (6.12.100 after 6.12.95).
fn natural(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let key = |c: &(bool, &str)| match c {
        (true, d) => (d.trim_start_matches('0').len(), d.to_string()),
        (false, t) => (0, t.to_string()),
    };
    chunks(a).iter().map(key).cmp(chunks(b).iter().map(key))
}

/// Finds (downloading and unpacking once) the newest kernel of the series. Without network,
/// the newest one already unpacked is used.
pub fn fetch(work: &Path, series: Series, arch: Arch) -> Result<Kernel> {
    let apt = Apt::new(work)?;
    let chosen = apt.refresh().and_then(|()| apt.newest(series, arch));
    let chosen = match chosen {
        Ok(found) => found,
        Err(e) => cached(work, series, arch).with_context(|| format!("{e:#}"))?,
    };
    let package = chosen.package.clone();
    let root = work.join("kernels").join(&package);
    apt.unpack(&chosen, arch, &root)?;
    // What was downloaded (the cache fallback knows no more than the name).
    let origin = std::fs::read_to_string(root.join("ORIGIN")).unwrap_or_default();
    let (version, suite) = origin.trim().split_once(' ').unwrap_or(("?", "?"));
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|m| root.join(m))
        .find(|m| m.is_dir())
        .context("no lib/modules in the kernel package")?;
    let modules = std::fs::read_dir(&modules)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.is_dir())
        .context("no lib/modules/<release> in the kernel package")?;
    Ok(Kernel {
        package,
        version: version.to_string(),
        suite: suite.to_string(),
        vmlinuz: find_in(&root.join("boot"), "vmlinuz")?,
        modules,
    })
}

/// The static busybox for the VM: the host's own (Debian's busybox-static) on x86_64; on arm64,
/// `/bin/busybox` of the newest arm64 `busybox-static`, unpacked once under
/// `<work>/busybox-arm64/<version>/` (offline: whichever is there).
pub fn busybox(work: &Path, arch: Arch) -> Result<PathBuf> {
    if arch == Arch::X86_64 {
        return Ok(PathBuf::from("/bin/busybox"));
    }
    let base = work.join(format!("busybox-{}", arch.name()));
    let apt = Apt::new(work)?;
    let found = apt
        .refresh()
        .and_then(|()| apt.version("busybox-static", arch))
        .and_then(|c| c.context("no busybox-static in the lists"));
    let root = match found {
        Ok(chosen) => {
            let root = base.join(chosen.version.replace(':', "_"));
            apt.unpack(&chosen, arch, &root)?;
            root
        }
        Err(e) => std::fs::read_dir(&base)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.join("ORIGIN").exists())
            .with_context(|| format!("{e:#}; no busybox-static unpacked before"))?,
    };
    Ok(root.join("bin/busybox"))
}

/// The newest package of the series already unpacked under `<work>/kernels`.
fn cached(work: &Path, series: Series, arch: Arch) -> Result<Chosen> {
    let mut names: Vec<String> = std::fs::read_dir(work.join("kernels"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| series.matches(arch, n))
        .collect();
    names.sort_by(|a, b| natural(b, a));
    let package = names
        .into_iter()
        .next()
        .context("apt failed and no kernel of this series is cached")?;
    eprintln!("xtask: warning: apt failed; using the cached {package}");
    Ok(Chosen {
        package,
        version: String::new(),
        suite: String::new(),
    })
}

fn find_in(dir: &Path, prefix: &str) -> Result<PathBuf> {
    std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .with_context(|| format!("no {prefix}* in {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_by_numbers() {
        let mut names = [
            "linux-image-6.12.95+deb12-cloud-amd64",
            "linux-image-6.12.100+deb12-cloud-amd64",
            "linux-image-6.12.90+deb12.1-cloud-amd64",
        ];
        names.sort_by(|a, b| natural(b, a));
        assert_eq!(names[0], "linux-image-6.12.100+deb12-cloud-amd64");
        assert!(natural("linux-image-5.10.0-9-x", "linux-image-5.10.0-46-x").is_lt());
    }

    #[test]
    fn series_names() {
        let x86 = Arch::X86_64;
        assert!(Series::V6_1.matches(x86, "linux-image-6.1.0-57-cloud-amd64"));
        assert!(!Series::V6_1.matches(x86, "linux-image-6.12.118+deb12-cloud-amd64"));
        assert!(!Series::V6_1.matches(x86, "linux-image-6.1.0-57-cloud-amd64-unsigned"));
        assert!(Series::V6_12.matches(x86, "linux-image-6.12.118+deb12-cloud-amd64"));
        assert!(Series::V5_10.matches(x86, "linux-image-5.10.0-46-cloud-amd64"));
        assert!(!Series::V6_1.matches(x86, "linux-image-6.1.0-57-cloud-arm64"));
        assert!(Series::V6_1.matches(Arch::Arm64, "linux-image-6.1.0-57-cloud-arm64"));
        assert!(!Series::V6_1.matches(Arch::Arm64, "linux-image-6.1.0-57-arm64"));
    }
}
