#!/usr/bin/env python3
"""Turn the JSON reports of scripts/bench-sweep.sh into docs figures.

    python3 scripts/plot_bench.py DIR OUT.svg

Reads DIR/{target}-w{pipeline}-c{conns}-r{run}.json (one `sockloop bench
--json` object each), keeps for every (target, pipeline, conns) the run with
the median throughput, prints Markdown tables of those runs on stdout, and
writes OUT.svg: echo throughput and p99 latency against the number of
connections, one line per pipeline depth.

Standard library only: the SVG is written by hand.
"""

import json
import math
import re
import sys
from pathlib import Path

NAME = re.compile(r"^(echo|udp|chat)-w(\d+)-c(\d+)-r(\d+)\.json$")
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def load(directory):
    """{(target, pipeline, conns): [report, ...]}"""
    runs = {}
    for path in sorted(Path(directory).glob("*.json")):
        m = NAME.match(path.name)
        if not m:
            continue
        text = path.read_text().strip()
        if not text:
            print(f"warning: {path} is empty (the run failed)", file=sys.stderr)
            continue
        report = json.loads(text)
        key = (m.group(1), int(m.group(2)), int(m.group(3)))
        runs.setdefault(key, []).append(report)
    return runs


def median_run(reports):
    ordered = sorted(reports, key=lambda r: r["messages_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def si(v):
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            s = f"{v / scale:.1f}".rstrip("0").rstrip(".")
            return s + unit
    return f"{v:.0f}"


def table(runs, target):
    unit = "lines delivered/s" if target == "chat" else "messages/s"
    rows = [
        f"| conns | pipeline | {unit} (median) | min–max of runs | MiB/s | p50 µs | p99 µs | p99.9 µs | max µs | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (t, w, c) in sorted(k for k in runs if k[0] == target):
        reps = runs[(t, w, c)]
        m = median_run(reps)
        rates = [r["messages_per_s"] for r in reps]
        errors = sum(r["errors"] for r in reps)
        rows.append(
            f"| {c} | {w} | {m['messages_per_s']:,.0f} | {min(rates):,.0f}–{max(rates):,.0f} "
            f"| {m['bytes_per_s'] / 2**20:.1f} | {m['latency_p50_us']:.0f} | {m['latency_p99_us']:.0f} "
            f"| {m['latency_p999_us']:.0f} | {m['latency_max_us']:.0f} | {errors} |"
        )
    return "\n".join(rows)


def nice_step(span, ticks=5):
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for f in (1, 2, 5, 10):
        if raw <= f * mag:
            return f * mag
    return 10 * mag


class Panel:
    """One chart: log-scale x (connections), linear or log y."""

    def __init__(self, x0, y0, w, h, xs, ymax, ylog, ymin=None):
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.lx = (math.log10(min(xs)), math.log10(max(xs)))
        self.ylog = ylog
        if ylog:
            lo = math.floor(math.log10(ymin))
            hi = math.ceil(math.log10(ymax))
            self.ly = (lo, max(hi, lo + 1))
        else:
            self.step = nice_step(ymax)
            self.ly = (0, math.ceil(ymax * 1.05 / self.step) * self.step)

    def px(self, x):
        a, b = self.lx
        t = (math.log10(x) - a) / (b - a) if b > a else 0.5
        return self.x0 + 40 + t * (self.w - 80)

    def py(self, y):
        a, b = self.ly
        v = math.log10(y) if self.ylog else y
        return self.y0 + self.h - (v - a) / (b - a) * self.h

    def axes(self, xs, title, ylabel):
        out = [
            f'<text x="{self.x0 + self.w / 2}" y="{self.y0 - 14}" class="title">{title}</text>',
            f'<rect x="{self.x0}" y="{self.y0}" width="{self.w}" height="{self.h}" class="frame"/>',
        ]
        for x in xs:
            X = self.px(x)
            out.append(f'<line x1="{X}" y1="{self.y0}" x2="{X}" y2="{self.y0 + self.h}" class="grid"/>')
            out.append(f'<text x="{X}" y="{self.y0 + self.h + 16}" class="xtick">{x}</text>')
        if self.ylog:
            ticks = [10**e for e in range(self.ly[0], self.ly[1] + 1)]
        else:
            n = int(round(self.ly[1] / self.step))
            ticks = [i * self.step for i in range(n + 1)]
        for t in ticks:
            Y = self.py(t)
            out.append(f'<line x1="{self.x0}" y1="{Y}" x2="{self.x0 + self.w}" y2="{Y}" class="grid"/>')
            out.append(f'<text x="{self.x0 - 6}" y="{Y + 4}" class="ytick">{si(t)}</text>')
        out.append(
            f'<text x="{self.x0 + self.w / 2}" y="{self.y0 + self.h + 36}" class="label">connections (log scale)</text>'
        )
        cx, cy = self.x0 - 52, self.y0 + self.h / 2
        out.append(f'<text x="{cx}" y="{cy}" class="label" transform="rotate(-90 {cx} {cy})">{ylabel}</text>')
        return out

    def series(self, points, colour):
        pts = " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in points)
        out = [f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>']
        for x, y in points:
            out.append(f'<circle cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="3.5" fill="{colour}"/>')
        return out


def svg(runs, machine):
    echo = {k: median_run(v) for k, v in runs.items() if k[0] == "echo"}
    if not echo:
        raise SystemExit("no echo runs to plot")
    pipelines = sorted({w for (_, w, _) in echo})
    xs = sorted({c for (_, _, c) in echo})
    rate = {w: [(c, echo[("echo", w, c)]["messages_per_s"]) for c in xs if ("echo", w, c) in echo] for w in pipelines}
    p99 = {w: [(c, max(echo[("echo", w, c)]["latency_p99_us"], 1)) for c in xs if ("echo", w, c) in echo] for w in pipelines}
    W, H = 960, 430
    left = Panel(90, 60, 360, 270, xs, max(y for s in rate.values() for _, y in s), ylog=False)
    right = Panel(570, 60, 360, 270, xs, max(y for s in p99.values() for _, y in s), ylog=True,
                  ymin=min(y for s in p99.values() for _, y in s))
    body = []
    body += left.axes(xs, "TCP echo throughput", "messages per second")
    body += right.axes(xs, "TCP echo p99 latency", "p99 round trip (µs, log scale)")
    for i, w in enumerate(pipelines):
        colour = COLOURS[i % len(COLOURS)]
        body += left.series(rate[w], colour)
        body += right.series(p99[w], colour)
        lx, ly = 110 + i * 150, H - 40
        body.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 24}" y2="{ly}" stroke="{colour}" stroke-width="2"/>')
        body.append(f'<text x="{lx + 30}" y="{ly + 4}" class="legend">--pipeline {w}</text>')
    sample = echo[("echo", pipelines[0], xs[0])]
    note = (f"sockloop bench echo --size {sample['size']} --duration {sample['duration_s']:g}; "
            f"server on CPU 0, bench on CPU 1, loopback; median of runs. {machine}")
    body.append(f'<text x="{W / 2}" y="{H - 12}" class="note">{escape(note)}</text>')
    style = """
  text { font-family: sans-serif; fill: #222; }
  .title { font-size: 15px; font-weight: bold; text-anchor: middle; }
  .label { font-size: 12px; text-anchor: middle; }
  .xtick { font-size: 11px; text-anchor: middle; }
  .ytick { font-size: 11px; text-anchor: end; }
  .legend { font-size: 12px; }
  .note { font-size: 10px; text-anchor: middle; fill: #555; }
  .frame { fill: none; stroke: #444; }
  .grid { stroke: #ddd; stroke-width: 1; }
"""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}">\n'
            f'<style>{style}</style>\n<rect width="{W}" height="{H}" fill="white"/>\n'
            + "\n".join(body) + "\n</svg>\n")


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    directory, out = sys.argv[1], sys.argv[2]
    runs = load(directory)
    machine = ""
    info = Path(directory, "machine.txt")
    if info.exists():
        fields = dict(l.split(": ", 1) for l in info.read_text().splitlines() if ": " in l)
        machine = f"{fields.get('cpu', '')}, {fields.get('cpus', '?')} CPUs, {fields.get('kernel', '')}"
    for target in ("echo", "udp", "chat"):
        if any(k[0] == target for k in runs):
            print(f"\n### {target}\n")
            print(table(runs, target))
    if any(k[0] == "echo" for k in runs):
        Path(out).write_text(svg(runs, machine))
        print(f"\nwrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
