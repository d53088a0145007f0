#!/usr/bin/env bash
# Reproduce the figures of docs/benchmarks.md on one machine with two cores:
# the server pinned to CPU 0, the load generator to CPU 1, loopback only.
#
#   scripts/bench-sweep.sh            # everything, 5 s per run, 3 runs each
#   DURATION=2 REPEAT=1 scripts/bench-sweep.sh echo   # a quick echo sweep
#
# Writes one JSON report per run into $OUT (default docs/bench/), then draws
# $OUT/echo-sweep.svg and prints the Markdown tables with scripts/plot_bench.py.
# Every run is bounded (--duration plus a bounded drain); the server is
# stopped by its PID when the script exits.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/sockloop}
OUT=${OUT:-docs/bench}
DURATION=${DURATION:-5}
REPEAT=${REPEAT:-3}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
WHAT=${1:-all}

cargo build --release --quiet
mkdir -p "$OUT"

# 5000 connections need 5000 descriptors on each side, plus a few.
need=5100
if [ "$(ulimit -n)" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || {
        echo "ulimit -n is $(ulimit -n); raise it to $need for the 5000-connection runs" >&2
        exit 1
    }
fi

# What the figures were measured on, and how busy the machine was.
{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "cpus: $(nproc)"
    echo "kernel: $(uname -sr)"
    echo "rustc: $(rustc --version)"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "duration: $DURATION s, runs per point: $REPEAT"
} >"$OUT/machine.txt"

log=$(mktemp -d)
taskset -c "$SERVER_CPU" "$BIN" serve --echo 127.0.0.1:0 --udp-echo 127.0.0.1:0 \
    --chat 127.0.0.1:0 >"$log/listening" 2>"$log/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$log"' EXIT

# Wait (at most 10 s) for the three `listening` lines.
for _ in $(seq 100); do
    [ "$(wc -l <"$log/listening")" -ge 3 ] && break
    sleep 0.1
done
[ "$(wc -l <"$log/listening")" -ge 3 ] || { echo "server did not start" >&2; cat "$log/server.log" >&2; exit 1; }
addr() { awk -v s="$1" '$2 == s { print $3 }' "$log/listening"; }
ECHO=$(addr tcp-echo)
UDP=$(addr udp-echo)
CHAT=$(addr chat)

failed=0
# run NAME TARGET ADDR ARGS...: REPEAT runs, each one JSON file.
run() {
    local name=$1 target=$2 to=$3
    shift 3
    for r in $(seq "$REPEAT"); do
        local file="$OUT/$name-r$r.json"
        echo "bench $target --to $to $* --duration $DURATION --json > $file" >&2
        if ! taskset -c "$BENCH_CPU" "$BIN" bench "$target" --to "$to" "$@" \
            --duration "$DURATION" --json >"$file"; then
            failed=1
        fi
    done
}

if [ "$WHAT" = all ] || [ "$WHAT" = echo ]; then
    for w in 1 8; do
        for c in 1 10 100 1000 5000; do
            run "echo-w$w-c$c" echo "$ECHO" --conns "$c" --pipeline "$w" --size 64
        done
    done
fi
if [ "$WHAT" = all ] || [ "$WHAT" = udp ]; then
    for c in 1 10 100; do
        run "udp-w1-c$c" udp "$UDP" --conns "$c" --pipeline 1 --size 64
    done
fi
if [ "$WHAT" = all ] || [ "$WHAT" = chat ]; then
    for c in 10 100 1000; do
        run "chat-w1-c$c" chat "$CHAT" --conns "$c" --pipeline 1 --size 64
    done
fi

python3 scripts/plot_bench.py "$OUT" "$OUT/echo-sweep.svg"
if [ "$failed" -ne 0 ]; then
    echo "some runs reported errors (see the JSON files)" >&2
    exit 1
fi
