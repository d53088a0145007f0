#!/usr/bin/env bash
# Syscalls per TCP echo round trip: run the release server under `strace -c -f`
# while `sockloop bench echo` drives it, then divide by the round trips bench
# reports. Loopback only; bounded by --duration.
#
#   scripts/strace-echo.sh [CONNS] [SECONDS]      (defaults: 100 conns, 3 s)
#
# Needs strace (apt-get install strace). Prints bench's JSON, then strace's
# table (the server's syscalls only: bench runs outside strace).
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-100}
secs=${2:-3}
cargo build --release --quiet
out=$(mktemp -d)
strace -c -f -o "$out/strace.txt" target/release/sockloop serve --echo 127.0.0.1:0 >"$out/listening" 2>/dev/null &
tracer=$!
for _ in $(seq 200); do grep -q listening "$out/listening" && break; sleep 0.05; done
addr=$(awk '{print $3}' "$out/listening")
target/release/sockloop bench echo --to "$addr" --conns "$conns" --duration "$secs" --json
server=$(pgrep -P "$tracer")   # the server is strace's child; stop it, not strace
kill -INT "$server"
wait "$tracer"
echo
head -14 "$out/strace.txt"
rm -rf "$out"
