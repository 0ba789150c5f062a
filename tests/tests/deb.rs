//! The .deb (`cargo xtask deb`) installs and removes cleanly, for real (root): `dpkg -i`, then
//! the installed binary, man pages, completions and unit work; `dpkg -r` and `dpkg -P` leave the
//! machine as it was (every path of the package present before is still there, every other one
//! is gone), also when the test fails halfway (a guard purges what it installed). A tracer
//! package installed before the test is never touched: the test fails and says so.
//!
//! The package: $TRACER_DEB (`cargo xtask test` builds it first), else `cargo xtask deb` here.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use tracer_tests::{
    deploy::{run_bounded, text},
    tools,
};

const PACKAGE: &str = "tracer";
const BASH_COMPLETION: &str = "/usr/share/bash-completion/completions/tracer";
const ZSH_COMPLETION: &str = "/usr/share/zsh/vendor-completions/_tracer";
const FISH_COMPLETION: &str = "/usr/share/fish/vendor_completions.d/tracer.fish";
const UNIT: &str = "/usr/lib/systemd/system/tracer.service";
/// The link `systemctl enable tracer` makes (WantedBy=multi-user.target).
const ENABLED_LINK: &str = "/etc/systemd/system/multi-user.target.wants/tracer.service";

fn run(cmd: &mut Command) -> Output {
    run_bounded(cmd, Duration::from_secs(120))
}

fn said(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// dpkg's status of the package ("install ok installed", "deinstall ok config-files"), or None
/// when dpkg knows nothing of it.
fn dpkg_status() -> Option<String> {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", PACKAGE]));
    let status = text(&out.stdout).trim().to_string();
    (out.status.success() && !status.is_empty() && !status.ends_with("not-installed"))
        .then_some(status)
}

/// Purges the package on drop unless disarmed: a failing test leaves nothing installed.
struct Purge {
    armed: bool,
}

impl Drop for Purge {
    fn drop(&mut self) {
        if self.armed {
            let out = run(Command::new("dpkg").args(["--purge", PACKAGE]));
            eprintln!("cleanup: dpkg --purge {PACKAGE}: {}", said(&out).trim());
            let _ = std::fs::remove_file(ENABLED_LINK);
        }
    }
}

fn deb_path() -> PathBuf {
    if let Some(path) = std::env::var_os("TRACER_DEB") {
        return path.into();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = run_bounded(
        Command::new(cargo)
            .args(["xtask", "deb"])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")),
        Duration::from_secs(1800),
    );
    assert!(
        out.status.success(),
        "cargo xtask deb: {}",
        text(&out.stderr)
    );
    let path = text(&out.stdout).trim().to_string();
    assert!(path.ends_with(".deb"), "cargo xtask deb printed {path:?}");
    path.into()
}

/// Every path in the package (files and folders, absolute), from `dpkg-deb -c`.
fn contents(deb: &Path) -> Vec<PathBuf> {
    let out = run(Command::new("dpkg-deb").arg("-c").arg(deb));
    assert!(out.status.success(), "dpkg-deb -c: {}", said(&out));
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| PathBuf::from(p.trim_start_matches('.').trim_end_matches('/')))
        .filter(|p| p.as_os_str().len() > 1)
        .collect()
}

/// Which of `paths` exist (a dangling link counts).
fn existing(paths: &[PathBuf]) -> BTreeMap<PathBuf, bool> {
    paths
        .iter()
        .map(|p| (p.clone(), p.symlink_metadata().is_ok()))
        .collect()
}

#[test]
fn deb_installs_works_and_removes_cleanly() {
    // SAFETY: geteuid(2) has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "dpkg -i needs root");
    tools::require("dpkg", "dpkg");
    if let Some(status) = dpkg_status() {
        panic!(
            "a {PACKAGE} package is already on this machine (dpkg: \"{status}\"); this test \
             installs and purges its own and will not touch it: `dpkg --purge {PACKAGE}` first, \
             or run the test elsewhere"
        );
    }
    assert!(
        Path::new(ENABLED_LINK).symlink_metadata().is_err(),
        "{ENABLED_LINK} exists with no {PACKAGE} package: remove it first"
    );
    let deb = deb_path();
    let paths = contents(&deb);
    for file in [
        "/usr/bin/tracer",
        UNIT,
        "/usr/share/man/man1/tracer.1.gz",
        "/usr/share/man/man1/tracer-run.1.gz",
        "/usr/share/man/man1/tracer-completions.1.gz",
        BASH_COMPLETION,
        ZSH_COMPLETION,
        FISH_COMPLETION,
    ] {
        assert!(
            paths.contains(&PathBuf::from(file)),
            "{file} not in {paths:?}"
        );
    }
    let before = existing(&paths);

    let mut purge = Purge { armed: true };
    let out = run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(out.status.success(), "dpkg -i: {}", said(&out));
    check_installed();

    // As `systemctl enable tracer` would: remove keeps the link (a reinstall stays enabled),
    // purge takes it away.
    std::os::unix::fs::symlink(UNIT, ENABLED_LINK).expect("enable link");
    let out = run(Command::new("dpkg").args(["-r", PACKAGE]));
    assert!(out.status.success(), "dpkg -r: {}", said(&out));
    assert!(
        Path::new("/usr/bin/tracer").symlink_metadata().is_err(),
        "/usr/bin/tracer left after dpkg -r"
    );
    assert!(Path::new(ENABLED_LINK).symlink_metadata().is_ok());
    let out = run(Command::new("dpkg").args(["-P", PACKAGE]));
    assert!(out.status.success(), "dpkg -P: {}", said(&out));
    purge.armed = false;

    assert_eq!(dpkg_status(), None, "dpkg still knows {PACKAGE} after -P");
    assert!(
        Path::new(ENABLED_LINK).symlink_metadata().is_err(),
        "{ENABLED_LINK} left after dpkg -P"
    );
    let after = existing(&paths);
    let left: Vec<_> = after
        .iter()
        .filter(|(p, now)| **now && !before[*p])
        .map(|(p, _)| p)
        .collect();
    let gone: Vec<_> = after
        .iter()
        .filter(|(p, now)| !**now && before[*p])
        .map(|(p, _)| p)
        .collect();
    assert!(left.is_empty(), "left behind after dpkg -P: {left:?}");
    assert!(
        gone.is_empty(),
        "there before, gone after dpkg -P: {gone:?}"
    );
    let info: Vec<_> = std::fs::read_dir("/var/lib/dpkg/info")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("{PACKAGE}.")))
        .collect();
    assert!(info.is_empty(), "dpkg's records left: {info:?}");
}

/// The installed files, used as a user would.
fn check_installed() {
    let out = run(Command::new("/usr/bin/tracer").arg("--version"));
    let version = text(&out.stdout);
    assert!(out.status.success(), "{}", said(&out));
    let prefix = format!("tracer {} (", env!("CARGO_PKG_VERSION"));
    assert!(
        version.starts_with(&prefix) && version.trim_end().ends_with(')'),
        "tracer --version said {version:?}"
    );

    tools::require("man", "man-db");
    let out = run(Command::new("man").args(["-w", "tracer"]));
    assert!(out.status.success(), "man -w tracer: {}", said(&out));
    assert_eq!(text(&out.stdout).trim(), "/usr/share/man/man1/tracer.1.gz");
    let out = run(Command::new("man").args(["-w", "tracer-histogram"]));
    assert!(
        out.status.success(),
        "man -w tracer-histogram: {}",
        said(&out)
    );

    // The bash script parses and, sourced, registers a completion for tracer.
    let out = run(Command::new("bash").arg("-n").arg(BASH_COMPLETION));
    assert!(out.status.success(), "bash -n: {}", said(&out));
    let out = run(Command::new("bash")
        .arg("-c")
        .arg(format!("source {BASH_COMPLETION} && complete -p tracer")));
    assert!(
        out.status.success() && text(&out.stdout).contains("tracer"),
        "sourcing the bash completion: {}",
        said(&out)
    );
    for (file, first) in [(ZSH_COMPLETION, "#compdef tracer"), (FISH_COMPLETION, "")] {
        let script = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            script.starts_with(first) && script.contains("histogram"),
            "{file}"
        );
    }

    // systemd's own parser on the installed unit: every line understood, ExecStart exists.
    tools::require("systemd-analyze", "systemd");
    let out = run(Command::new("systemd-analyze").arg("verify").arg(UNIT));
    assert!(
        out.status.success() && said(&out).trim().is_empty(),
        "systemd-analyze verify {UNIT}: {}",
        said(&out)
    );
    let unit = std::fs::read_to_string(UNIT).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/tracer run "), "{unit}");
}
