//! The system tools the tests run besides tracer. Each must be installed (scripts/setup.sh
//! installs them): a missing one fails the test that needs it, naming its Debian package.
use std::process::Command;

use crate::tracer_bin;

/// Fails the calling test unless `program --version` runs; `package` is the Debian package
/// scripts/setup.sh installs it from.
pub fn require(program: &str, package: &str) {
    let runs = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        runs,
        "{program} is missing: run `bash scripts/setup.sh` (Debian package {package})"
    );
}

/// `setpriv` (util-linux) and its arguments: the command after them runs as nobody (uid and
/// gid 65534, no groups) holding exactly `caps` (`CAP_...` names; none for an unprivileged
/// user), as systemd gives them to its dynamic user (inheritable, ambient and bounding set, no
/// new privileges).
pub fn as_nobody(caps: &[&str]) -> Vec<String> {
    let caps: Vec<String> = std::iter::once("-all".to_string())
        .chain(
            caps.iter()
                .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase())),
        )
        .collect();
    let caps = caps.join(",");
    [
        "setpriv".to_string(),
        "--reuid=65534".into(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        "--no-new-privs".into(),
        format!("--inh-caps={caps}"),
        format!("--ambient-caps={caps}"),
        format!("--bounding-set={caps}"),
        "--".into(),
    ]
    .into()
}

/// `tracer` run as nobody holding exactly `caps` ([`as_nobody`]); its arguments follow.
pub fn tracer_as_nobody(caps: &[&str]) -> Command {
    let setpriv = as_nobody(caps);
    let mut cmd = Command::new(&setpriv[0]);
    cmd.args(&setpriv[1..]).arg(tracer_bin());
    cmd
}
