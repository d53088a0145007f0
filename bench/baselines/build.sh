#!/usr/bin/env bash
# Build every reference server of sockloop's benchmarks into
# bench/baselines/target/release/ (gitignored):
#
#   c-epoll-echo, c-splice-echo   gcc -O2
#   mio-echo, tokio-echo, tokio-chat   cargo build --release --locked
#
# Idempotent: make-like for the C servers, cargo's own for the Rust ones. Each
# Rust baseline is its own workspace with its own Cargo.lock, so none of
# them is ever part of sockloop's build.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out="$here/target/release"
mkdir -p "$out"

CC=${CC:-gcc}
for name in c-epoll-echo c-splice-echo; do
    if [ ! -x "$out/$name" ] || [ "$here/$name/echo.c" -nt "$out/$name" ]; then
        "$CC" -O2 -g -Wall -Wextra -o "$out/$name" "$here/$name/echo.c"
    fi
done

for name in mio-echo tokio-echo tokio-chat; do
    CARGO_TARGET_DIR="$here/target" cargo build --release --locked --quiet \
        --manifest-path "$here/$name/Cargo.toml"
done

ls "$out/c-epoll-echo" "$out/c-splice-echo" "$out/mio-echo" "$out/tokio-echo" "$out/tokio-chat"
