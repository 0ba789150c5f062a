//! scripts/setup.sh's contract with scripts/dev.sh: its stdout is one line (the folders for PATH)
//! whatever the tools it calls print. The tools here are stubs that print to stdout as rustup and
//! cargo do on a first install, so a setup step that lets them through fails this test.
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use tracer_tests::daemon::TempDir;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/bash\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A rustup that installs nothing but prints what the real one prints: its `info:` lines to
/// stderr, the summary of a toolchain install to stdout.
const RUSTUP: &str = r#"state="$STUB_STATE"
echo "info: stub rustup $*" >&2
case "$1 $2" in
"toolchain install")
    touch "$state/$3"
    echo "  $3-x86_64-unknown-linux-gnu installed - rustc 1.99.1 (58cf8f9c3 2026-10-13)" ;;
"component list") echo clippy-x86_64-unknown-linux-gnu; echo rust-src ;;
"component add") echo "info: component added" ;;
"target list") echo x86_64-unknown-linux-musl; echo aarch64-unknown-linux-musl ;;
run*)
    [ -e "$state/$2" ] || exit 1
    case "$*" in
    *--print\ sysroot*) echo "$state/sysroot" ;;
    *--verbose*) echo "rustc 1.99.1"; echo "LLVM version: 23.1.4" ;;
    *) echo "rustc 1.99.1 (stub)" ;;
    esac ;;
esac"#;

/// A cargo whose `install NAME@VERSION --root DIR` leaves a NAME in DIR/bin that prints
/// "NAME VERSION" for `--version`, printing to stdout as the real one does.
const CARGO: &str = r#"echo "    Updating crates.io index (stub cargo $*)"
root=""
name=""
version=""
while [ $# -gt 0 ]; do
    case "$1" in
    --root) root="$2" ;;
    *@*) name="${1%@*}"; version="${1#*@}" ;;
    esac
    shift
done
mkdir -p "$root/bin"
printf '#!/bin/bash\necho "%s %s"\n' "$name" "$version" > "$root/bin/$name"
chmod +x "$root/bin/$name"
echo "  Installed package \`$name v$version\` (executable \`$name\`)""#;

/// A PATH of stubs and the few system tools setup.sh uses, so no real toolchain is touched.
fn stub_path(dir: &Path, with_rustup: bool) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for tool in [
        "grep", "sed", "ls", "head", "mkdir", "ln", "dirname", "touch", "chmod", "cat",
    ] {
        let real = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found in /usr/bin or /bin"));
        std::os::unix::fs::symlink(real, bin.join(tool)).unwrap();
    }
    if with_rustup {
        script(&bin.join("rustup"), RUSTUP);
    }
    script(&bin.join("cargo"), CARGO);
    // The test helpers it checks for: present, so it installs no package.
    for tool in [
        "ip",
        "bpftool",
        "nginx",
        "wrk",
        "tmux",
        "qemu-system-x86_64",
        "qemu-system-aarch64",
        "cpio",
    ] {
        script(&bin.join(tool), "echo stub");
    }
    for tool in ["setpriv", "prometheus", "systemd-analyze", "dpkg", "man"] {
        script(&bin.join(tool), "echo stub");
    }
    let sysroot = dir.join("state/sysroot/lib");
    fs::create_dir_all(&sysroot).unwrap();
    fs::write(sysroot.join("libLLVM.so.23.1"), "").unwrap();
    bin
}

fn setup(dir: &Path, bin: &Path) -> Output {
    Command::new("/bin/bash")
        .arg(repo().join("scripts/setup.sh"))
        .env_clear()
        .env("PATH", bin)
        .env("HOME", dir.join("home"))
        .env("STUB_STATE", dir.join("state"))
        .env("TRACER_TOOLS_DIR", dir.join("tools"))
        .output()
        .unwrap()
}

#[test]
fn setup_prints_only_the_path_line_on_a_first_install_and_after() {
    let dir = TempDir::new("setup-stdout");
    let bin = stub_path(&dir.0, true);
    let expected = format!("{}:{}\n", dir.0.join("tools/bin").display(), bin.display());
    for round in ["first install", "second run"] {
        let out = setup(&dir.0, &bin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{round}: setup failed:\n{stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "{round}: stdout must be the one PATH line; stderr:\n{stderr}"
        );
        if round == "first install" {
            // The stubs did print to their stdout: it went to setup's stderr.
            assert!(stderr.contains("installed - rustc 1.99.1"), "{stderr}");
            assert!(stderr.contains("Installed package `bpf-linker"), "{stderr}");
            assert!(stderr.contains("Installed package `cargo-deb"), "{stderr}");
        } else {
            assert!(
                !stderr.contains("installing") && !stderr.contains("building"),
                "second run installed again:\n{stderr}"
            );
        }
    }
}

#[test]
fn setup_without_rustup_fails_with_one_sentence() {
    let dir = TempDir::new("setup-norustup");
    let bin = stub_path(&dir.0, false);
    let out = setup(&dir.0, &bin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(
        stderr.trim(),
        "setup: rustup was not found on PATH nor in ~/.cargo/bin; install rustup, then run this again"
    );
}
