#!/usr/bin/env bash
# Installs what a fresh machine lacks to build tracer: the pinned host and eBPF toolchains (the
# eBPF one with rust-src for -Z build-std and clippy for `cargo xtask test`), a bpf-linker linked
# against the eBPF toolchain's own LLVM, and the tools the tests and benchmarks run.
# Idempotent: every step is skipped when its result is already there. Recipe: shared/TOOLCHAIN.md.
#
# Its stdout is one line, the folders to put in front of PATH (bpf-linker's, rustup's), separated
# by ':'; everything else, including whatever the tools it calls print to their stdout (rustup
# prints its install summary there), goes to stderr.
set -euo pipefail
exec 3>&1 1>&2
# A service manager or `env -i` may start this without HOME.
HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
export HOME

HOST_TC=${TRACER_HOST_TOOLCHAIN:-1.99.1}
EBPF_TC=${TRACER_EBPF_TOOLCHAIN:-nightly-2026-10-30}
BPF_LINKER_VERSION=0.13.0
CARGO_DEB_VERSION=3.8.0
TOOLS=${TRACER_TOOLS_DIR:-$HOME/.cache/tracer-tools}

say() { printf 'setup: %s\n' "$*" >&2; }

# rustup and its cargo proxy: on PATH, or where rustup's installer puts them (a fresh login shell
# may not have ~/.cargo/bin on PATH yet).
for dir in "${CARGO_HOME:-$HOME/.cargo}/bin" "$HOME/.cargo/bin"; do
    if ! command -v rustup >/dev/null 2>&1 && [ -x "$dir/rustup" ]; then
        PATH="$dir:$PATH"
    fi
done
if ! command -v rustup >/dev/null 2>&1; then
    say "rustup was not found on PATH nor in ~/.cargo/bin; install rustup, then run this again"
    exit 1
fi
RUSTUP_BIN=$(dirname "$(command -v rustup)")

has_toolchain() { rustup run "$1" rustc --version >/dev/null 2>&1; }

if ! has_toolchain "$HOST_TC"; then
    say "installing host toolchain $HOST_TC"
    rustup toolchain install "$HOST_TC" --profile minimal --component clippy,rustfmt --no-self-update
fi
if ! rustup component list --toolchain "$HOST_TC" --installed 2>/dev/null | grep >/dev/null '^clippy'; then
    rustup component add clippy rustfmt --toolchain "$HOST_TC"
fi
# The static single binary (x86_64-unknown-linux-musl) runs on other kernels and distributions;
# the aarch64 one is cross-built for arm64 (rust-lld and Rust's own musl crt objects, set in
# .cargo/config.toml: no cross C toolchain).
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    if ! rustup target list --toolchain "$HOST_TC" --installed 2>/dev/null | grep >/dev/null "^$target\$"; then
        rustup target add "$target" --toolchain "$HOST_TC"
    fi
done
if ! has_toolchain "$EBPF_TC" ||
    ! rustup component list --toolchain "$EBPF_TC" --installed 2>/dev/null | grep >/dev/null '^rust-src'; then
    say "installing eBPF toolchain $EBPF_TC with rust-src and clippy"
    rustup toolchain install "$EBPF_TC" --profile minimal --component rust-src,clippy --no-self-update
fi
if ! rustup component list --toolchain "$EBPF_TC" --installed 2>/dev/null | grep >/dev/null '^clippy'; then
    rustup component add clippy --toolchain "$EBPF_TC"
fi

if ! "$TOOLS/bin/bpf-linker" --version 2>/dev/null | grep >/dev/null "$BPF_LINKER_VERSION"; then
    say "building bpf-linker $BPF_LINKER_VERSION against $EBPF_TC's LLVM (about a minute)"
    sysroot=$(rustup run "$EBPF_TC" rustc --print sysroot)
    lib=$(cd "$sysroot/lib" && ls libLLVM.so.* | head -n1)
    mkdir -p "$TOOLS/llvm/lib"
    ln -sf "$sysroot/lib/$lib" "$TOOLS/llvm/lib/libLLVM.so"
    ln -sf "$sysroot/lib/$lib" "$TOOLS/llvm/lib/$lib"
    llvm_major=$(rustup run "$EBPF_TC" rustc --version --verbose | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
    LLVM_PREFIX="$TOOLS/llvm" cargo "+$HOST_TC" install "bpf-linker@$BPF_LINKER_VERSION" --locked \
        --no-default-features --features "llvm-$llvm_major" --root "$TOOLS"
fi

# cargo-deb builds the .deb (`cargo xtask deb`), which tests/tests/deb.rs installs and removes.
if ! "$TOOLS/bin/cargo-deb" --version 2>/dev/null | grep >/dev/null "$CARGO_DEB_VERSION"; then
    say "building cargo-deb $CARGO_DEB_VERSION (about two minutes)"
    cargo "+$HOST_TC" install "cargo-deb@$CARGO_DEB_VERSION" --locked --root "$TOOLS"
fi

# Test and benchmark helpers: iproute2 for network namespaces, bpftool to check nothing is left
# attached, nginx and wrk for real HTTP churn, util-linux's setpriv to drop privileges,
# prometheus to scrape `tracer run --metrics` for real, systemd's systemd-analyze to verify the
# unit under deploy/.
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v bpftool >/dev/null 2>&1 || missing+=(bpftool)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
# The kernel matrix (cargo xtask qemu): qemu, a static busybox, cpio, and xz for the kernels'
# compressed modules (6.12 ships .ko.xz; busybox insmod is given them decompressed). arm64
# (--arch arm64) boots under qemu-system-aarch64; its busybox comes from Debian's arm64 package.
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
command -v qemu-system-aarch64 >/dev/null 2>&1 || missing+=(qemu-system-arm)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v cpio >/dev/null 2>&1 || missing+=(cpio)
dpkg -s xz-utils >/dev/null 2>&1 || missing+=(xz-utils)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# man-db's `man -w` finds the installed package's man page (tests/tests/deb.rs).
command -v man >/dev/null 2>&1 || missing+=(man-db)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" -ne 0 ]; then
    say "not root: not installing ${missing[*]} (only the tests that run as root need them)"
elif [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    # No service may start from a package's install script: tests start their own nginx. A
    # policy the machine already has is left as it is; ours goes even if apt fails.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

say "ready: $(rustup run "$HOST_TC" rustc --version), eBPF $(rustup run "$EBPF_TC" rustc --version), $("$TOOLS/bin/bpf-linker" --version), $("$TOOLS/bin/cargo-deb" --version)"
printf '%s\n' "$TOOLS/bin:$RUSTUP_BIN" >&3
