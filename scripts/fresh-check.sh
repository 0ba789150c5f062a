#!/usr/bin/env bash
# The README's two commands as a new user meets them, as root: empty toolchain homes
# (RUSTUP_HOME, CARGO_HOME, the tools folder), ~/.cargo/bin not on PATH, the C locale, TERM=dumb,
# no /run/tracer. Each command starts from homes of its own, so each downloads the toolchains and
# builds bpf-linker as on a new machine.
#   1. `bash scripts/dev.sh run --port P --json --duration D` in a fresh clone: must trace 20
#      loopback connections to port P, exactly.
#   2. `bash scripts/dev.sh test ARGS` in another fresh clone (CI: every test; ARGS narrow it).
# Both check what is committed (HEAD), never uncommitted edits.
# Usage: bash scripts/fresh-check.sh [run|test|all] [test args]   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
what=${1:-all}
[ $# -gt 0 ] && shift

HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
command -v python3 >/dev/null || {
    echo "fresh-check: python3 is needed to make the test traffic" >&2
    exit 1
}
base=$(mktemp -d /tmp/tracer-fresh.XXXXXX)
run_pid=""
# The run check's process group (dev.sh, cargo, tracer) goes with the check, however it ends.
trap '[ -n "$run_pid" ] && kill -- -"$run_pid" 2>/dev/null; rm -rf "$base"' EXIT
say() { printf 'fresh-check: %s\n' "$*" >&2; }

# Runs "$@" as on a new machine with the homes under $base/$1.
fresh() {
    local homes=$base/$1
    shift
    mkdir -p "$homes/rustup" "$homes/cargo" "$homes/tools"
    env -i HOME="$HOME" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C TERM=dumb RUSTUP_AUTO_INSTALL=0 \
        RUSTUP_HOME="$homes/rustup" CARGO_HOME="$homes/cargo" TRACER_TOOLS_DIR="$homes/tools" \
        "$@"
}

minutes() { awk -v s="$1" 'BEGIN { printf "%.1f min", s / 60 }'; }

check_run() {
    say "run: a fresh clone, empty toolchain homes"
    git clone -q "$repo" "$base/clone"
    say "run: commit $(git -C "$base/clone" log -1 --format='%h %s' | cut -c1-72)"
    # /run/tracer is where the daemon's socket goes: a new machine has none.
    if [ -e /run/tracer/tracer.sock ]; then
        say "a tracer daemon is running here (/run/tracer/tracer.sock): stop it first"
        exit 1
    fi
    # Below the ephemeral range (32768-60999 by default), so no connection holds it.
    local port=$((20000 + RANDOM % 12000)) start=$SECONDS
    # Job control on: the background job is a process group of its own, killed whole on exit.
    set -m
    fresh run bash "$base/clone/scripts/dev.sh" run --port "$port" --json --duration 20s \
        >"$base/run.out" 2>"$base/run.err" &
    local pid=$!
    set +m
    run_pid=$pid
    # The build comes first (minutes); the trace has started when tracer says how to stop it.
    until grep -q 'Ctrl-C' "$base/run.err" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$base/run.err" >&2
            say "FAIL: bash scripts/dev.sh run ended before tracing"
            exit 1
        fi
        if [ $((SECONDS - start)) -gt 2400 ]; then
            kill -- -"$pid"
            say "FAIL: bash scripts/dev.sh run did not start tracing within 40 minutes"
            exit 1
        fi
        sleep 2
    done
    local ready=$((SECONDS - start))
    # 20 loopback connections, the client closing first; bounded in count and time.
    timeout 30 python3 - "$port" <<'EOF'
import socket, sys
port = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(64)
for _ in range(20):
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    s, _ = srv.accept()
    c.close()
    s.recv(1)
    s.close()
EOF
    local status=0
    wait "$pid" || status=$?
    run_pid=""
    if [ "$status" != 0 ]; then
        tail -n 30 "$base/run.err" >&2
        say "FAIL: bash scripts/dev.sh run exited non-zero"
        exit 1
    fi
    local connects
    connects=$(grep -c '"from":"SYN_SENT","to":"ESTABLISHED"' "$base/run.out" || true)
    if [ "$connects" != 20 ]; then
        head -n 20 "$base/run.out" >&2
        say "FAIL: bash scripts/dev.sh run saw $connects of 20 connects to port $port"
        exit 1
    fi
    say "PASS: bash scripts/dev.sh run from empty homes traced 20 of 20 connects;" \
        "set-up and build took $(minutes "$ready")"
}

check_test() {
    say "test: a fresh clone, empty toolchain homes"
    git clone -q "$repo" "$base/clone-test"
    say "test: commit $(git -C "$base/clone-test" log -1 --format='%h %s' | cut -c1-72)"
    local start=$SECONDS
    (cd "$base/clone-test" && fresh test bash scripts/dev.sh test "$@")
    say "PASS: bash scripts/dev.sh test from empty homes, $(minutes $((SECONDS - start))) in all"
}

case "$what" in
    run) check_run ;;
    test) check_test "$@" ;;
    all)
        check_run
        check_test "$@"
        ;;
    *)
        echo "usage: bash scripts/fresh-check.sh [run|test|all] [test args]" >&2
        exit 2
        ;;
esac
