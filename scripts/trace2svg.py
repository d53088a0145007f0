#!/usr/bin/env python3
"""Draw a `sockloop serve --trace-events` file as an SVG timeline.

Standard library only. Reads the Chrome trace event JSON that
src/reactor/trace.rs writes (a file cut short by a crash, without its closing
bracket, is read too) and draws one lane for the loop, one for signals, and one
per slab token, with time running left to right.

A reactor spends almost all of its life asleep in poll and wakes for bursts of
microseconds, so a linear time axis would show nothing but sleep. The drawing
therefore cuts the timeline into *panels*, one per burst of activity, all at
the same scale (so widths compare), and replaces each long sleep between them
with a gap labelled with how long the loop slept. Hover any slice or marker in
a browser for its details.

With --window FROM:TO (microseconds since the trace began; repeatable) only
those stretches are drawn, which zooms in on a few turns of a busy trace.

Usage: scripts/trace2svg.py TRACE.json OUT.svg [--title TEXT] [--gap-us N]
                            [--width PX] [--max-scale PX_PER_US]
                            [--window FROM:TO ...]
"""

import argparse
import html
import json
import sys

# Colours: loop steps in pale tones, work on a token in strong ones.
COLOURS = {
    "poll": "#e4e4e4",
    "events": "#c6dbef",
    "still-ready": "#fdd0a2",
    "flush": "#c7e9c0",
    "sweep": "#dadaeb",
    "readable": "#3182bd",
    "readable+closed": "#08519c",
    "writable": "#e6550d",
    "readable+writable": "#756bb1",
    "retry": "#e7ba52",  # gold: purple is the READABLE | WRITABLE band
    "write": "#31a354",
}
INTEREST_COLOURS = {
    "READABLE": "#6baed6",
    "WRITABLE": "#fd8d3c",
    "READABLE | WRITABLE": "#9e9ac8",
}
MARKER_COLOURS = {
    "open": "#2ca02c",
    "eof": "#08519c",
    "closing": "#d62728",
    "close": "#7f0000",
    "linger": "#8c6d31",
    "signal": "#d62728",
}

LABEL_W = 150      # the column of lane names
LANE_H = 42        # one lane: marker labels, the slice, the interest band
SLICE_Y = 20       # slice top, within a lane
SLICE_H = 14
BAND_H = 4         # the interest band under a token's slices
GAP_W = 28         # the elided sleep between two panels
MIN_PANEL_W = 128  # room for a panel's header, whatever its duration
PANEL_HEAD = 30    # panel header: when it starts
ROW_GAP = 26


def load(path):
    """The trace's records, tolerating a missing closing bracket."""
    text = open(path, encoding="utf-8").read().strip()
    if not text.endswith("]"):
        text = text.rstrip(",\n ") + "\n]"
    return json.loads(text)


def slice_colour(event):
    name = event["name"]
    if name in COLOURS:
        return COLOURS[name]
    if name.startswith("readable+writable"):
        return COLOURS["retry"]
    if name.startswith("writable"):
        return COLOURS["writable"]
    return "#969696"


def fmt_us(us):
    if us >= 1_000_000:
        return "%.2f s" % (us / 1e6)
    if us >= 1000:
        return "%.1f ms" % (us / 1e3)
    return "%d µs" % us


def tooltip(event):
    parts = [event["name"], "at +" + fmt_us(event["ts"])]
    if "dur" in event:
        parts.append("took " + fmt_us(event["dur"]))
    for key, value in event.get("args", {}).items():
        if value not in (0, "", False) or key == "token":
            parts.append("%s=%s" % (key, value))
    return html.escape(", ".join(parts))


def clip(event, windows):
    """The event cut to the window it falls in, or None outside them all."""
    if not windows:
        return event
    start, end = event["ts"], event["ts"] + event.get("dur", 0)
    for a, b in windows:
        if end >= a and start <= b:
            if event["ph"] == "i":
                return event
            clipped = dict(event)
            clipped["ts"] = max(start, a)
            clipped["dur"] = min(end, b) - clipped["ts"]
            return clipped
    return None


class Timeline:
    def __init__(self, records, gap_us, windows=()):
        self.names = {}
        self.events = []
        # Unclipped, for the interest bands: a band drawn in a window starts
        # from the state set before it.
        self.all_events = sorted((r for r in records if r.get("ph") == "i"),
                                 key=lambda e: e["ts"])
        self.windowed = bool(windows)
        for r in records:
            if r.get("ph") == "M":
                if r["name"] == "thread_name":
                    self.names[r["tid"]] = r["args"]["name"]
            elif r.get("ph") in ("X", "i"):
                r = clip(r, windows)
                if r is not None:
                    self.events.append(r)
        self.events.sort(key=lambda e: (e["ts"], -e.get("dur", 0)))
        self.tracks = self._tracks()
        self.clusters = self._clusters(gap_us)

    def _tracks(self):
        """Lanes in order, each with its label and the kinds seen on it."""
        kinds = {}
        for e in self.events:
            tid = e["tid"]
            kinds.setdefault(tid, [])
            args = e.get("args", {})
            kind = args.get("kind")
            if e["name"] == "open":
                kind = args.get("detail", "").split(" ")[0] + " conn"
            if kind and kind not in kinds[tid] and not (
                kind.endswith("-conn") and any(k.endswith(" conn") for k in kinds[tid])
            ):
                kinds[tid].append(kind)
        tids = sorted(kinds)
        if 1 not in tids:
            tids.insert(0, 1)
        return [(tid, self.names.get(tid, "track %d" % tid), kinds.get(tid, [])) for tid in tids]

    def _clusters(self, gap_us):
        """Bursts of activity: spans of time in which the loop never slept
        longer than gap_us at a time. A poll that returned quickly is part of
        a burst; a long one separates two."""
        spans = []
        for e in self.events:
            dur = e.get("dur", 0)
            if e["name"] == "poll" and dur > gap_us:
                continue
            spans.append((e["ts"], e["ts"] + dur))
        spans.sort()
        clusters = []
        for start, end in spans:
            if clusters and start - clusters[-1][1] <= gap_us:
                clusters[-1][1] = max(clusters[-1][1], end)
            else:
                clusters.append([start, end])
        margin = 4
        return [(s - margin, e + margin) for s, e in clusters]


def interest_segments(events, tid):
    """(from, to, interest) for a token's lane: READABLE from open, then each
    interest change, until close."""
    segments = []
    current = None
    since = None
    for e in events:
        if e["tid"] != tid or e["ph"] != "i":
            continue
        name = e["name"]
        if name == "open":
            current, since = "READABLE", e["ts"]
        elif name == "interest" and current is not None:
            segments.append((since, e["ts"], current))
            current, since = e["args"].get("detail", ""), e["ts"]
        elif name in ("closing", "close") and current is not None:
            segments.append((since, e["ts"], current))
            current = None
    return segments


def render(timeline, title, width, max_scale):
    tracks = timeline.tracks
    lane_of = {tid: i for i, (tid, _, _) in enumerate(tracks)}
    clusters = timeline.clusters
    if not clusters:
        sys.exit("no activity in the trace")
    row_w = width - LABEL_W - 10
    widest = max(e - s for s, e in clusters)
    scale = min(max_scale, (row_w - 10) / widest)

    # Pack panels into rows.
    rows = [[]]
    x = 0
    for s, e in clusters:
        w = max(MIN_PANEL_W, (e - s) * scale)
        need = w if not rows[-1] else GAP_W + w
        if rows[-1] and x + need > row_w:
            rows.append([])
            x = 0
            need = w
        x += need
        rows[-1].append((s, e, w))

    lanes_h = LANE_H * len(tracks)
    row_h = PANEL_HEAD + lanes_h + ROW_GAP
    top = 58
    legend_h = 96
    height = top + row_h * len(rows) + legend_h
    out = []
    add = out.append
    add('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
        'viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" '
        'font-size="11">' % (width, height, width, height))
    add('<rect width="100%" height="100%" fill="white"/>')
    n_events = sum(1 for e in timeline.events if e.get("cat") == "event")
    n_polls = sum(1 for e in timeline.events if e["name"] == "poll")
    n_opens = sum(1 for e in timeline.events if e["name"] == "open")
    add('<text x="10" y="22" font-size="15" font-weight="bold">%s</text>' % html.escape(title))
    if timeline.windowed:
        summary = ("A zoom on %d stretches of the trace, at one scale (100 µs = %d px)."
                   % (len(clusters), round(100 * scale)))
    else:
        summary = ("%d poll calls, %d events handled, %d connections opened. "
                   "Each panel is a burst of work, all at one scale (100 µs = %d px); "
                   "the sleeps in poll between panels are cut out."
                   % (n_polls, n_events, n_opens, round(100 * scale)))
    add('<text x="10" y="42" fill="#555">%s</text>' % summary)

    events = timeline.events
    bands = {tid: interest_segments(timeline.all_events, tid) for tid, _, _ in tracks}
    # The time between two panels: a sleep in poll, unless --window cut
    # work out.
    slept_before = {s: s - prev_e for (_, prev_e), (s, _) in zip(clusters, clusters[1:])}
    if timeline.windowed:
        slept_before = {}

    for r, row in enumerate(rows):
        y0 = top + r * row_h + PANEL_HEAD
        # Lane labels and guide lines.
        for i, (tid, name, kinds) in enumerate(tracks):
            ly = y0 + i * LANE_H
            add('<rect x="0" y="%d" width="%d" height="%d" fill="%s"/>'
                % (ly, width, LANE_H, "#fafafa" if i % 2 else "#ffffff"))
            add('<text x="8" y="%d" font-weight="bold">%s</text>' % (ly + 23, html.escape(name)))
            if kinds:
                add('<text x="8" y="%d" fill="#666" font-size="9.5">%s</text>'
                    % (ly + 35, html.escape(", ".join(kinds))))
        x = LABEL_W
        for i, (s, e, w) in enumerate(row):
            if i > 0:
                # The elided sleep between two panels (its length is in the
                # next panel's header).
                gx = x + GAP_W / 2
                add('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#bbb" stroke-dasharray="3,3"/>'
                    % (gx, y0, gx, y0 + lanes_h))
                x += GAP_W
            draw_panel(add, events, bands, lane_of, s, e, x, y0, w, scale, lanes_h,
                       slept_before.get(s))
            x += w

    draw_legend(add, 10, top + row_h * len(rows) - 6, width)
    add('</svg>')
    return "\n".join(out)


def draw_panel(add, events, bands, lane_of, start, end, x0, y0, w, scale, lanes_h, slept):
    def px(t):
        return x0 + (max(start, min(end, t)) - start) * scale

    add('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="none" stroke="#ccc"/>'
        % (x0, y0, max(w, (end - start) * scale), lanes_h))
    add('<text x="%.1f" y="%d" fill="#444" font-size="10">+%s</text>'
        % (x0 + 2, y0 - 15, fmt_us(start)))
    busy = fmt_us(end - start)
    if slept is not None and w >= 190:
        busy += " of work, after %s asleep" % fmt_us(slept)
    elif slept is not None:
        busy += ", slept %s" % fmt_us(slept)
    add('<text x="%.1f" y="%d" fill="#888" font-size="9.5">%s</text>' % (x0 + 2, y0 - 4, busy))
    # Interest bands first, under everything else.
    for tid, segments in bands.items():
        lane = lane_of[tid]
        for s, e, interest in segments:
            if e < start or s > end:
                continue
            a, b = px(s), px(e)
            add('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>interest %s</title></rect>'
                % (a, y0 + lane * LANE_H + SLICE_Y + SLICE_H + 1, max(b - a, 0.8), BAND_H,
                   INTEREST_COLOURS.get(interest, "#bbb"), html.escape(interest)))
    right = x0 + max(w, (end - start) * scale)
    labels = []  # (x, lane, text, colour), placed once all are known

    def place_label(lane, x, text, colour):
        labels.append((x, lane, text, colour))

    # Slices.
    for ev in events:
        if ev["ph"] != "X":
            continue
        s, e = ev["ts"], ev["ts"] + ev["dur"]
        if e < start or s > end:
            continue
        lane = lane_of[ev["tid"]]
        a, b = px(s), px(e)
        bw = max(b - a, 1.5)
        ly = y0 + lane * LANE_H
        add('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>'
            % (a, ly + SLICE_Y, bw, SLICE_H, slice_colour(ev), tooltip(ev)))
        label = short_label(ev)
        if ev["name"] == "write" and not ev["args"].get("bytes_out"):
            # The write that found the socket full: the turning point of
            # backpressure, worth a label even when the slice is thin.
            place_label(lane, a - 3, "would block", COLOURS["write"])
            continue
        if ev["name"] == "write" and is_partial(ev["args"]):
            place_label(lane, a - 3, "partial", COLOURS["write"])
        if label and bw >= 6.2 * len(label) + 4:
            dark = ev["name"] in ("poll", "events", "still-ready", "flush", "sweep")
            add('<text x="%.1f" y="%d" font-size="9.5" fill="%s" pointer-events="none">%s</text>'
                % (a + 2, ly + SLICE_Y + 11, "#333" if dark else "white", html.escape(label)))
    # Markers, with labels that step aside when they would overlap.
    for ev in events:
        if ev["ph"] != "i" or not (start <= ev["ts"] <= end):
            continue
        name = ev["name"]
        if name == "interest":
            continue  # shown by the band
        kind = "signal" if name.startswith("signal") else name
        colour = MARKER_COLOURS.get(kind, "#555")
        lane = lane_of[ev["tid"]]
        ly = y0 + lane * LANE_H
        mx = px(ev["ts"])
        add('<path d="M%.1f %d l-3.5 -6 h7 z" fill="%s"><title>%s</title></path>'
            % (mx, ly + SLICE_Y, colour, tooltip(ev)))
        label = {"signal 2": "SIGINT", "signal 15": "SIGTERM"}.get(name, name)
        place_label(lane, mx - 3, label, colour)
    # Each label above its lane, kept inside the panel, on the first of two
    # levels where it overlaps nothing; one that fits nowhere is left to the
    # tooltip.
    last_label_end = {}
    for x, lane, text, colour in sorted(labels):
        text_w = 5.6 * len(text) + 3
        x = min(x, right - text_w)
        for level in (0, 1):
            if last_label_end.get((lane, level), -1e9) <= x:
                add('<text x="%.1f" y="%d" font-size="9" fill="%s">%s</text>'
                    % (x, y0 + lane * LANE_H + SLICE_Y - 7 - 9 * level, colour, html.escape(text)))
                last_label_end[(lane, level)] = x + text_w
                break


def is_partial(args):
    """A write that took less than was pending, short of the write budget
    (WRITE_BUDGET_PER_TURN in src/config.rs): the send buffer filled up."""
    written, pending = args.get("bytes_out", 0), args.get("pending")
    return pending is not None and 0 < written < min(pending, 256 * 1024)


def short_label(ev):
    name = ev["name"]
    args = ev.get("args", {})
    if name == "write":
        if not args.get("bytes_out"):
            return "would block"
        return "write %s" % fmt_bytes(args["bytes_out"])
    if name in ("poll",):
        return "poll"
    if ev.get("cat") == "event":
        moved = args.get("bytes_in", 0)
        if moved:
            return "read %s" % fmt_bytes(moved)
        if args.get("datagrams_in"):
            return "%d datagram" % args["datagrams_in"]
        return ""
    return name


def fmt_bytes(n):
    if n >= 1024 and n % 1024 == 0:
        return "%d KiB" % (n // 1024)
    if n >= 10240:
        return "%.1f KiB" % (n / 1024)
    return "%d B" % n


def draw_legend(add, x, y, width):
    add('<text x="%d" y="%d" font-weight="bold">Legend</text>' % (x, y + 16))
    items = [
        ("poll", COLOURS["poll"], "loop asleep in poll"),
        ("events", COLOURS["events"], "dispatching the batch"),
        ("still-ready", COLOURS["still-ready"], "retrying unfinished work"),
        ("flush", COLOURS["flush"], "writing pending output"),
        ("sweep", COLOURS["sweep"], "freeing closed slots"),
        ("readable", COLOURS["readable"], "a readable event handled"),
        ("readable+closed", COLOURS["readable+closed"], "readable, FIN seen"),
        ("writable", COLOURS["writable"], "a writable event handled"),
        ("retry", COLOURS["retry"], "a still-ready source retried"),
        ("write", COLOURS["write"], "one flush of one connection"),
    ]
    col_w = (width - 20) / 5
    for i, (name, colour, what) in enumerate(items):
        cx = x + (i % 5) * col_w
        cy = y + 26 + (i // 5) * 18
        add('<rect x="%.1f" y="%d" width="14" height="10" fill="%s"/>' % (cx, cy, colour))
        add('<text x="%.1f" y="%d" font-size="10"><tspan font-weight="bold">%s</tspan> %s</text>'
            % (cx + 18, cy + 9, name, html.escape(what)))
    cy = y + 26 + 2 * 18
    add('<text x="%d" y="%d" font-size="10" font-weight="bold">interest band:</text>' % (x, cy + 9))
    bx = x + 90
    for name, colour in INTEREST_COLOURS.items():
        add('<rect x="%d" y="%d" width="14" height="5" fill="%s"/>' % (bx, cy + 3, colour))
        add('<text x="%d" y="%d" font-size="10">%s</text>' % (bx + 18, cy + 9, name))
        bx += 40 + 6.5 * len(name)
    add('<text x="%d" y="%d" font-size="10" fill="#555">markers: open, eof, closing '
        '(marked, slot kept), close (swept, slot freed), SIGINT</text>' % (bx + 10, cy + 9))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("svg")
    ap.add_argument("--title", default="sockloop serve: one thread, one poll loop")
    ap.add_argument("--gap-us", type=int, default=400,
                    help="a sleep in poll longer than this separates two panels (default 400)")
    ap.add_argument("--width", type=int, default=1200, help="SVG width in pixels")
    ap.add_argument("--max-scale", type=float, default=2.5,
                    help="at most this many pixels per microsecond (default 2.5)")
    ap.add_argument("--window", action="append", default=[], metavar="FROM:TO",
                    help="draw only this stretch, in µs since the trace began (repeatable)")
    args = ap.parse_args()
    windows = []
    for w in args.window:
        a, _, b = w.partition(":")
        windows.append((float(a), float(b)))
    timeline = Timeline(load(args.trace), args.gap_us, windows)
    svg = render(timeline, args.title, args.width, args.max_scale)
    with open(args.svg, "w", encoding="utf-8") as f:
        f.write(svg + "\n")
    print("wrote %s: %d panels, %d lanes" % (args.svg, len(timeline.clusters), len(timeline.tracks)))


if __name__ == "__main__":
    main()
