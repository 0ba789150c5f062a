#!/usr/bin/env bash
# The README's two commands, on a fresh machine as root:
#   bash scripts/dev.sh run [tracer run options]   set up, build, run `tracer run`
#   bash scripts/dev.sh test [test name filter]    set up, then every check and test
#   bash scripts/dev.sh unit [test name filter]    set up, then the unit tests (no root needed)
#   bash scripts/dev.sh setup                      set up only (toolchains, bpf-linker, packages)
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: bash scripts/dev.sh run [OPTIONS] | test [FILTER] | unit [FILTER] | setup"
case "${1:-}" in
    run | test | unit | setup) ;;
    *)
        echo "$usage" >&2
        exit 2
        ;;
esac

# setup.sh prints one line: the folders to put in front of PATH. Anything else means it broke its
# contract; nothing it prints is ever evaluated as shell code.
prefix=$(bash scripts/setup.sh)
case "$prefix" in
    *$'\n'* | "")
        echo "dev.sh: scripts/setup.sh printed something other than one line of folders; its stdout was:" >&2
        printf '%s\n' "$prefix" >&2
        exit 1
        ;;
esac
IFS=: read -r -a dirs <<<"$prefix"
for dir in "${dirs[@]}"; do
    if [ ! -d "$dir" ]; then
        echo "dev.sh: scripts/setup.sh named '$dir', which is not a folder" >&2
        exit 1
    fi
done
export PATH="$prefix:$PATH"

case "${1:-}" in
    run)
        shift
        cargo build --release -p tracer
        exec target/release/tracer run "$@"
        ;;
    test)
        shift
        exec cargo xtask test "$@"
        ;;
    unit)
        shift
        exec cargo test -p tracer "$@"
        ;;
    setup) ;;
esac
