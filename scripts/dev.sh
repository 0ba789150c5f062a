#!/usr/bin/env bash
# The README's two commands, on a fresh machine as root:
#   bash scripts/dev.sh run [tracer run options]   set up, build, run `tracer run`
#   bash scripts/dev.sh test                       set up, then every check and test
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
eval "$(bash scripts/setup.sh)"

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
    *)
        echo "usage: bash scripts/dev.sh run [OPTIONS] | bash scripts/dev.sh test" >&2
        exit 2
        ;;
esac
