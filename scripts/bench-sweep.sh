#!/usr/bin/env bash
# Reproduce the figures of docs/benchmarks.md on one machine with two cores:
# the server pinned to CPU 0, the load generator to CPU 1, loopback only.
#
#   scripts/bench-sweep.sh            # everything, 5 s per run, 3 runs each
#   DURATION=2 REPEAT=1 scripts/bench-sweep.sh echo   # a quick echo sweep
#   ONLY='echo-w8-c(100|5000)$' scripts/bench-sweep.sh  # redo some points only
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
if [ -n "${ONLY:-}" ]; then
    echo "rerun: $(date -u +%Y-%m-%dT%H:%MZ) of the points matching $ONLY" >>"$OUT/machine.txt"
else {
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "cpus: $(nproc)"
    echo "kernel: $(uname -sr)"
    echo "rustc: $(rustc --version)"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "duration: $DURATION s, runs per point: $REPEAT"
} >"$OUT/machine.txt"
fi

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

# CPU accounting, in clock ticks (USER_HZ, 100 a second on Linux).
hz=$(getconf CLK_TCK)
# Busy time of the whole machine (user, nice, system, steal) and, apart,
# its interrupt time (irq, softirq: on loopback most of TCP's receive path).
# With tick-based accounting the kernel charges interrupt time to whichever
# process it interrupted, so the server's and the bench's own CPU times
# already contain part of it; "others" below is everything busy that is
# neither of them, interrupt work done outside their context included. It can
# only overstate a disturbance, never hide one.
machine_busy() { awk '/^cpu /{ print $2+$3+$4+$9 }' /proc/stat; }
machine_irq() { awk '/^cpu /{ print $7+$8 }' /proc/stat; }
server_cpu() { awk '{ print $14+$15 }' "/proc/$server/stat"; }

# The machine may be shared (builds, other tests): before each run, wait
# until both CPUs were at least 90% idle for a second, for at most 2 minutes.
wait_for_quiet() {
    for _ in $(seq 120); do
        local b0 b1
        b0=$(($(machine_busy) + $(machine_irq)))
        sleep 1
        b1=$(($(machine_busy) + $(machine_irq)))
        # Busy ticks over 1 s on 2 CPUs: 2 * hz is "fully busy".
        [ $((b1 - b0)) -le $((2 * hz / 10)) ] && return 0
    done
    echo "machine still busy after 2 minutes; measuring anyway" >&2
}

failed=0
# run NAME TARGET ADDR ARGS...: REPEAT runs, each one JSON file, and beside
# it NAME-rN.cpu: CPU seconds used by the server, the bench, the kernel's
# interrupt work, and every other process on the machine during the run
# (others well above 0 means the figure was disturbed), and the wall time.
run() {
    local name=$1 target=$2 to=$3
    shift 3
    if [ -n "${ONLY:-}" ] && ! [[ $name =~ $ONLY ]]; then
        return 0
    fi
    for r in $(seq "$REPEAT"); do
        local file="$OUT/$name-r$r.json"
        wait_for_quiet
        echo "bench $target --to $to $* --duration $DURATION --json > $file" >&2
        local m0 s0 t0 i0 m1 s1 t1 i1
        m0=$(machine_busy)
        i0=$(machine_irq)
        s0=$(server_cpu)
        t0=$(date +%s.%N)
        if ! /usr/bin/time -f "%U %S" -o "$log/time" taskset -c "$BENCH_CPU" "$BIN" bench \
            "$target" --to "$to" "$@" --duration "$DURATION" --json >"$file"; then
            failed=1
        fi
        m1=$(machine_busy)
        i1=$(machine_irq)
        s1=$(server_cpu)
        t1=$(date +%s.%N)
        tail -n 1 "$log/time" | awk -v m=$((m1 - m0)) -v s=$((s1 - s0)) -v i=$((i1 - i0)) \
            -v hz="$hz" -v t0="$t0" -v t1="$t1" '{ b = $1 + $2
            printf "server_cpu_s %.2f\nbench_cpu_s %.2f\nirq_cpu_s %.2f\nothers_cpu_s %.2f\nwall_s %.2f\n",
                s / hz, b, i / hz, (m + i) / hz - s / hz - b, t1 - t0 }' >"$OUT/$name-r$r.cpu"
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
