#!/usr/bin/env python3
"""Run sockloop and the reference servers of bench/baselines interleaved, and
print sockloop's ratios to each reference with their spread.

    scripts/compare-baselines.py                 # 3 rounds, 5 s per run
    scripts/compare-baselines.py --quick         # 1 round, 2 s per run: does it work?
    scripts/compare-baselines.py --rounds 5 --duration 10 --cases echo-stream-64k
    scripts/compare-baselines.py --list          # the cases and servers

Method. Every run starts one server afresh, pinned to CPU 0 (taskset), and
drives it with `sockloop bench ... --json --interval 0.5`, pinned to CPU 1;
the bench prints one progress line every 0.5 s on stderr. At each progress
line the script reads the CPU time (utime + stime) of the server, of the
bench and of the whole machine from /proc, so the measured window runs from
the first progress line to the last one before the deadline: setup (1000
chat clients' join notices), the connection ramp and the drain stay out of
it. Per run it reports the rate in that window, the server's CPU time per
message in it (lower is better), each side's share of its core (the side
near 100% is the one that saturated) and the CPU used by every other process
(`others`, over 10% of a core marks the run as disturbed). Rounds go over all
cases and, within a case, over all servers in an order that rotates every
round, so a slow drift of the machine spreads over every server alike. The
ratio sockloop / reference is computed per round; the summary gives its
median and its min..max over the rounds.

`sockloop bench` has no rate limit: every case is a closed loop at whatever
rate the pair reaches, so "server CPU per message" is the cost at saturation
(or near it), not at a fixed rate.

Only 127.0.0.1; every run is bounded in time (--duration, the bench's own
bounded setup and drain, and a hard timeout here); the script ends only the
processes it started, by their PID. Standard library only.
"""

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOCKLOOP = ROOT / "target" / "release" / "sockloop"
BASELINES = ROOT / "bench" / "baselines"
BASELINE_BIN = BASELINES / "target" / "release"
HZ = os.sysconf("SC_CLK_TCK")
INTERVAL = 0.5  # seconds between the bench's progress lines

# Servers: name -> (argv, the service name of its `listening SERVICE ADDR` line).
SERVERS = {
    "sockloop-echo": ([str(SOCKLOOP), "serve", "--echo", "127.0.0.1:0"], "tcp-echo"),
    "sockloop-chat": ([str(SOCKLOOP), "serve", "--chat", "127.0.0.1:0"], "chat"),
    "c-epoll-echo": ([str(BASELINE_BIN / "c-epoll-echo"), "0"], "tcp-echo"),
    "c-splice-echo": ([str(BASELINE_BIN / "c-splice-echo"), "0"], "tcp-echo"),
    "mio-echo": ([str(BASELINE_BIN / "mio-echo"), "0"], "tcp-echo"),
    "tokio-echo": ([str(BASELINE_BIN / "tokio-echo"), "0"], "tcp-echo"),
    "tokio-chat": ([str(BASELINE_BIN / "tokio-chat"), "0"], "chat"),
    "tokio-chat-batched": ([str(BASELINE_BIN / "tokio-chat"), "0", "--batch"], "chat"),
}

ECHO_REFS = ["c-epoll-echo", "c-splice-echo", "mio-echo", "tokio-echo"]
CHAT_REFS = ["tokio-chat", "tokio-chat-batched"]


class Case:
    """One load, `sockloop bench TARGET --conns N --size S --pipeline 1`,
    against sockloop and the references for that service."""

    def __init__(self, name, title, target, conns, size, primary):
        self.name = name
        self.title = title
        self.bench_args = [target, "--conns", str(conns), "--size", str(size),
                           "--pipeline", "1"]
        self.ours = f"sockloop-{target}"
        self.refs = list(ECHO_REFS if target == "echo" else CHAT_REFS)
        # The figure the case is about: "cpu" (server CPU per message, lower
        # is better), "rate" (messages/s) or "bytes" (MB/s).
        self.primary = primary


CASES = [
    Case("echo-rr-64", "echo request-response, 64 connections, 64 B "
         "(closed loop: the bench cannot pace)", "echo", 64, 64, "cpu"),
    Case("echo-rr-1000", "echo request-response, 1000 connections, 64 B",
         "echo", 1000, 64, "rate"),
    Case("echo-stream-64k", "echo streaming, 64 KiB writes, 10 connections",
         "echo", 10, 65536, "bytes"),
    Case("chat-100", "chat, 100 clients in one room, 64 B lines", "chat", 100, 64, "cpu"),
    Case("chat-1000", "chat, 1000 clients in one room (100 send), 64 B lines",
         "chat", 1000, 64, "cpu"),
]

PROGRESS = re.compile(r"^bench \w+\s+([\d.]+)-([\d.]+) s\s+(\d+) messages")


def proc_cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (fields 14 and 15 of
    /proc/PID/stat; the command name in field 2 may hold spaces, so split
    after its closing parenthesis)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def busy_ticks(server_cpu, bench_cpu):
    """Busy ticks (user, nice, system, irq, softirq, steal) of the whole
    machine, of the server's CPU and of the bench's CPU, from /proc/stat."""
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            words = line.split()
            if not words[0].startswith("cpu"):
                break
            busy[words[0]] = sum(int(words[i]) for i in (1, 2, 3, 6, 7, 8))
    return busy["cpu"], busy[f"cpu{server_cpu}"], busy[f"cpu{bench_cpu}"]


def stop(proc, grace=5.0):
    """End a process this script started, by its PID: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def start_server(name, cpu):
    argv, service = SERVERS[name]
    proc = subprocess.Popen(["taskset", "-c", str(cpu)] + argv,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # taskset execs the server, so proc.pid is the server's own PID.
    found = {}

    def read_listening():
        for line in proc.stdout:
            words = line.split()
            if len(words) == 3 and words[0] == "listening" and words[1] == service:
                found["addr"] = words[2]
                return

    reader = threading.Thread(target=read_listening, daemon=True)
    reader.start()
    reader.join(timeout=10)
    if "addr" not in found:
        stop(proc)
        raise RuntimeError(f"{name} printed no `listening {service} ADDR` line within 10 s")
    return proc, found["addr"]


def run_one(case, server, duration, server_cpu, bench_cpu):
    """One bench run against a fresh server; a dict of figures."""
    proc, addr = start_server(server, server_cpu)
    try:
        argv = (["taskset", "-c", str(bench_cpu), str(SOCKLOOP), "bench"] + case.bench_args
                + ["--to", addr, "--duration", str(duration), "--interval", str(INTERVAL),
                   "--json"])
        bench = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Setup may take up to 60 s (chat), the drain 2 s: never wait longer.
        watchdog = threading.Timer(duration + 75, lambda: stop(bench, grace=1))
        watchdog.start()
        # (end of interval in s, messages in it, server, bench ticks, then
        # busy ticks of the machine, of the server's CPU, of the bench's CPU)
        samples = []
        other_stderr = []
        for line in bench.stderr:
            m = PROGRESS.match(line)
            if not m:
                other_stderr.append(line.rstrip())
                continue
            try:
                s_ticks, b_ticks = proc_cpu_ticks(proc.pid), proc_cpu_ticks(bench.pid)
            except OSError:
                continue
            samples.append((float(m.group(2)), int(m.group(3)), s_ticks, b_ticks)
                           + busy_ticks(server_cpu, bench_cpu))
        out = bench.stdout.read()
        bench.wait()
        watchdog.cancel()
    finally:
        stop(proc)
    try:
        report = json.loads(out)
    except ValueError:
        raise RuntimeError(f"bench against {server} gave no report: {' / '.join(other_stderr)}")
    # The window: from the first progress line to the last one of the load.
    inside = [s for s in samples if s[0] <= duration + INTERVAL / 2]
    if len(inside) < 2:
        raise RuntimeError(f"bench against {server}: too few progress lines ({len(samples)})")
    first, last = inside[0], inside[-1]
    secs = last[0] - first[0]
    messages = sum(s[1] for s in inside[1:])
    server_s = (last[2] - first[2]) / HZ
    bench_s = (last[3] - first[3]) / HZ
    machine_s = (last[4] - first[4]) / HZ
    server_cpu_busy_s = (last[5] - first[5]) / HZ
    bench_cpu_busy_s = (last[6] - first[6]) / HZ
    bytes_per_message = report["bytes"] / report["messages"] if report["messages"] else 0
    return {
        "case": case.name, "server": server, "window_s": secs, "messages": messages,
        "rate": messages / secs, "mb_s": messages * bytes_per_message / secs / 1e6,
        "cpu_us": server_s / messages * 1e6 if messages else float("nan"),
        "server_core": server_s / secs, "bench_core": bench_s / secs,
        "others_core": max(0.0, machine_s - server_s - bench_s) / secs,
        "server_cpu_busy": server_cpu_busy_s / secs, "bench_cpu_busy": bench_cpu_busy_s / secs,
        "errors": report["errors"], "whole_run_rate": report["messages_per_s"],
    }


def metric(run, primary):
    return {"cpu": run["cpu_us"], "rate": run["rate"], "bytes": run["mb_s"]}[primary]


def saturated(run):
    """Which side ran out of CPU: a side is saturated when its CPU was busy
    90% of the window; `(shared)` when its own process had under 90% of it,
    the rest going to interrupts or to other processes on that CPU."""
    sides = []
    for side in ("server", "bench"):
        if run[f"{side}_cpu_busy"] >= 0.9:
            sides.append(side if run[f"{side}_core"] >= 0.9 else f"{side} (shared)")
    return " + ".join(sides) or "neither"


def bench_bound(run):
    """The bench's CPU was saturated and the server's was not."""
    return run["bench_cpu_busy"] >= 0.9 and run["server_cpu_busy"] < 0.9


def describe(run):
    return (f"{run['case']:<16} {run['server']:<14} {run['rate']:>11,.0f} msg/s "
            f"{run['mb_s']:>8.1f} MB/s  server {run['cpu_us']:6.3f} us/msg  "
            f"cores: server {run['server_core']:4.0%} (its CPU {run['server_cpu_busy']:4.0%}) "
            f"bench {run['bench_core']:4.0%} (its CPU {run['bench_cpu_busy']:4.0%}) "
            f"others {run['others_core']:4.0%}  saturated: {saturated(run)}  "
            f"errors {run['errors']}")


def spread(values, fmt):
    values = sorted(values)
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(values[0])}..{fmt.format(values[-1])})"


def summarise(cases, runs, rounds):
    by = {}
    for r in runs:
        by.setdefault((r["case"], r["server"]), []).append(r)
    print()
    print(f"Ratios sockloop / reference, median (min..max over {rounds} round(s)); "
          "cpu = server CPU per message (lower is better for sockloop), "
          "rate = messages/s, MB/s = echoed or delivered bytes (higher is better).")
    print()
    print("| case | reference | msg/s ratio | MB/s ratio | server CPU/msg ratio "
          "| sockloop: µs CPU/msg, msg/s | reference: µs CPU/msg, msg/s "
          "| saturated (sockloop / reference) | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|")
    dagger = False
    for case in cases:
        ours = {r["round"]: r for r in by.get((case.name, case.ours), [])}
        for ref in case.refs:
            theirs = {r["round"]: r for r in by.get((case.name, ref), [])}
            common = sorted(set(ours) & set(theirs))
            if not common:
                continue
            pairs = [(ours[k], theirs[k]) for k in common]
            rate = spread([a["rate"] / b["rate"] for a, b in pairs], "{:.2f}x")
            mbs = spread([a["mb_s"] / b["mb_s"] for a, b in pairs], "{:.2f}x")
            cpu = spread([a["cpu_us"] / b["cpu_us"] for a, b in pairs], "{:.2f}x")
            if case.primary == "cpu":
                cpu = f"**{cpu}**"
            elif case.primary == "rate":
                rate = f"**{rate}**"
            else:
                mbs = f"**{mbs}**"
            mine = (f"{statistics.median(a['cpu_us'] for a, _ in pairs):.3f}, "
                    f"{statistics.median(a['rate'] for a, _ in pairs):,.0f}")
            other = (f"{statistics.median(b['cpu_us'] for _, b in pairs):.3f}, "
                     f"{statistics.median(b['rate'] for _, b in pairs):,.0f}")
            sat = ", ".join(sorted({f"{saturated(a)} / {saturated(b)}" for a, b in pairs}))
            if any(bench_bound(a) or bench_bound(b) for a, b in pairs):
                # The rate of a run the bench limited says more about the bench.
                rate, mbs = rate + " †", mbs + " †"
                dagger = True
            errors = sum(a["errors"] + b["errors"] for a, b in pairs)
            print(f"| {case.name} | {ref} | {rate} | {mbs} | {cpu} | {mine} | {other} "
                  f"| {sat} | {errors} |")
    if dagger:
        print()
        print("† in some round the bench's CPU was saturated and the server's was not: that "
              "rate is the load generator's limit, and the CPU ratio is the one to read.")
    disturbed = [r for r in runs if r["others_core"] > 0.10]
    if disturbed:
        print()
        print(f"{len(disturbed)} of {len(runs)} runs were disturbed (other processes used "
              "over 10% of a core during the window): "
              + ", ".join(f"{r['case']}/{r['server']}/r{r['round']} {r['others_core']:.0%}"
                          for r in disturbed))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds over every case (default 3)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of load per run (5)")
    p.add_argument("--quick", action="store_true", help="1 round of 2 s: does it all work?")
    p.add_argument("--cases", help="regular expression: only the cases it matches")
    p.add_argument("--servers", help="regular expression: only the references it matches "
                   "(sockloop always runs)")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU of the servers (0)")
    p.add_argument("--bench-cpu", type=int, default=1, help="CPU of the load generator (1)")
    p.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    p.add_argument("--json", metavar="FILE", help="also write every run's figures to FILE")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 2.0
    if args.rounds < 1 or not 1 <= args.duration <= 600:
        p.error("--rounds must be at least 1 and --duration between 1 and 600 s")

    cases = [c for c in CASES if not args.cases or re.search(args.cases, c.name)]
    for c in cases:
        if args.servers:
            c.refs = [r for r in c.refs if re.search(args.servers, r)]
    if args.list:
        for c in CASES:
            print(f"{c.name:<16} {c.title}: sockloop bench {' '.join(c.bench_args)}; "
                  f"{c.ours} against {', '.join(c.refs)}")
        return 0
    if not cases:
        p.error("no case matches --cases")

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        subprocess.run([str(BASELINES / "build.sh")], check=True, stdout=subprocess.DEVNULL)
    # 1000 connections need more than the usual 1024 descriptors on the
    # server's side; children inherit the limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {os.cpu_count()} CPUs, "
          f"load average {load}; {args.rounds} round(s) of {args.duration:g} s per run; "
          f"servers on CPU {args.server_cpu}, bench on CPU {args.bench_cpu}")
    runs = []
    failed = False
    for rnd in range(1, args.rounds + 1):
        for case in cases:
            servers = [case.ours] + case.refs
            shift = (rnd - 1) % len(servers)
            for server in servers[shift:] + servers[:shift]:
                try:
                    run = run_one(case, server, args.duration, args.server_cpu, args.bench_cpu)
                except RuntimeError as e:
                    print(f"round {rnd}: {case.name} {server}: FAILED: {e}", flush=True)
                    failed = True
                    continue
                run["round"] = rnd
                runs.append(run)
                failed |= run["errors"] != 0
                print(f"round {rnd}: {describe(run)}", flush=True)
    summarise(cases, runs, args.rounds)
    if args.json:
        Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in runs))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
