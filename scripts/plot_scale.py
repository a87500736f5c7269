#!/usr/bin/env python3
"""Draws a `coldchain bench --scale --json` report as an SVG (stdlib only).

    python3 scripts/plot_scale.py docs/bench/scale-mdbx.json docs/bench/scale-mdbx.svg

Four panels: the sustained I2 ingest rate per tenth of the ingest; median
latency of the log queries (Q1-Q3) and p99 of the point reads (Q4, Q4u)
against store size; throughput against store size (Q4, Q4u ops/s, I1 and
I2 blocks/s); bytes on disk per block. Sizes are on a log scale. The output
depends only on the report: the same JSON gives the same bytes. It also
prints the curve as Markdown tables (as in docs/BENCHMARKS.md).
"""
import json
import math
import sys

W, H = 520, 320  # one panel
ML, MR, MT, MB = 70, 130, 40, 50  # margins: left, right (legend), top, bottom
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def fmt(v):
    """A short, deterministic tick label."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e3:
        return f"{v / 1e3:g}k"
    if a >= 1:
        return f"{v:g}"
    return f"{v:.3g}"


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def log_ticks(lo, hi):
    """1-2-5 ticks covering lo..hi (both > 0)."""
    ticks = []
    e = math.floor(math.log10(lo))
    while True:
        for m in (1, 2, 5):
            t = m * 10**e
            if t > hi * 1.0001:
                return ticks
            if t >= lo * 0.9999:
                ticks.append(t)
        e += 1


def lin_ticks(lo, hi, n=5):
    span = hi - lo or 1.0
    raw = span / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    t = math.floor(lo / step) * step
    ticks = []
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


class Panel:
    """One chart at (x0, y0) with a log or linear x and y axis."""

    def __init__(self, out, x0, y0, title, xlabel, ylabel, xs, ys, xlog, ylog):
        self.out, self.x0, self.y0 = out, x0, y0
        self.xlog, self.ylog = xlog, ylog
        xs = [x for x in xs if x > 0 or not xlog]
        ys = [y for y in ys if y > 0 or not ylog]
        if not xs:
            xs = [1]
        if not ys:
            ys = [1]
        if xlog:
            self.xlo, self.xhi = min(xs) / 1.3, max(xs) * 1.3
            self.xticks = log_ticks(self.xlo, self.xhi)
        else:
            self.xlo, self.xhi = min(0, min(xs)), max(xs)
            self.xticks = lin_ticks(self.xlo, self.xhi)
            self.xhi = max(self.xhi, self.xticks[-1])
        if ylog:
            self.ylo, self.yhi = min(ys) / 1.5, max(ys) * 1.5
            self.yticks = log_ticks(self.ylo, self.yhi)
        else:
            self.ylo, self.yhi = 0, max(ys) * 1.1 or 1
            self.yticks = lin_ticks(self.ylo, self.yhi)
            self.yhi = max(self.yhi, self.yticks[-1])
        pw, ph = W - ML - MR, H - MT - MB
        o = out.append
        o(f'<text x="{x0 + ML}" y="{y0 + 22}" font-size="14" font-weight="bold">{esc(title)}</text>')
        o(f'<rect x="{x0 + ML}" y="{y0 + MT}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
        for t in self.xticks:
            x = self.px(t)
            o(f'<line x1="{x:.1f}" y1="{y0 + MT}" x2="{x:.1f}" y2="{y0 + MT + ph}" stroke="#eee"/>')
            o(f'<text x="{x:.1f}" y="{y0 + MT + ph + 15}" font-size="10" text-anchor="middle">{fmt(t)}</text>')
        for t in self.yticks:
            y = self.py(t)
            o(f'<line x1="{x0 + ML}" y1="{y:.1f}" x2="{x0 + ML + pw}" y2="{y:.1f}" stroke="#eee"/>')
            o(f'<text x="{x0 + ML - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end">{fmt(t)}</text>')
        o(f'<text x="{x0 + ML + pw / 2:.1f}" y="{y0 + H - 12}" font-size="11" text-anchor="middle">{esc(xlabel)}</text>')
        o(f'<text x="{x0 + 14}" y="{y0 + MT + ph / 2:.1f}" font-size="11" text-anchor="middle" '
          f'transform="rotate(-90 {x0 + 14} {y0 + MT + ph / 2:.1f})">{esc(ylabel)}</text>')
        self.legend = 0

    def px(self, v):
        pw = W - ML - MR
        if self.xlog:
            f = (math.log(v) - math.log(self.xlo)) / (math.log(self.xhi) - math.log(self.xlo))
        else:
            f = (v - self.xlo) / ((self.xhi - self.xlo) or 1)
        return self.x0 + ML + f * pw

    def py(self, v):
        ph = H - MT - MB
        if self.ylog:
            v = max(v, self.ylo)
            f = (math.log(v) - math.log(self.ylo)) / (math.log(self.yhi) - math.log(self.ylo))
        else:
            f = (v - self.ylo) / ((self.yhi - self.ylo) or 1)
        return self.y0 + MT + (1 - f) * ph

    def series(self, name, points, color, dashed=False):
        points = [(x, y) for x, y in points if y is not None and (y > 0 or not self.ylog)]
        if not points:
            return
        o = self.out.append
        dash = ' stroke-dasharray="5,3"' if dashed else ""
        path = " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in points)
        o(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for x, y in points:
            o(f'<circle cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="3" fill="{color}"/>')
        self.key(name, color)

    def bars(self, name, spans, color):
        """Bars over x-ranges: [(x_from, x_to, y)]."""
        o = self.out.append
        for lo, hi, y in spans:
            x1, x2 = self.px(lo), self.px(hi)
            yt, yb = self.py(y), self.py(self.ylo)
            o(f'<rect x="{x1 + 1:.1f}" y="{yt:.1f}" width="{max(x2 - x1 - 2, 1):.1f}" '
              f'height="{yb - yt:.1f}" fill="{color}" fill-opacity="0.7"/>')
            o(f'<text x="{(x1 + x2) / 2:.1f}" y="{yt - 3:.1f}" font-size="9" text-anchor="middle">{y:.0f}</text>')
        self.key(name, color)

    def key(self, name, color):
        x = self.x0 + W - MR + 8
        y = self.y0 + MT + 8 + 16 * self.legend
        self.out.append(f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{color}"/>')
        self.out.append(f'<text x="{x + 14}" y="{y + 1}" font-size="10">{esc(name)}</text>')
        self.legend += 1


def op(checkpoint, name):
    for r in checkpoint["results"]:
        if r["op"] == name:
            return r
    return None


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        rep = json.load(f)
    cps = rep["checkpoints"]
    sizes = [c["blocks"] for c in cps]
    out = []
    m = rep.get("machine", {})
    title = (f"coldchain bench --scale: {rep['store']} store, W1 ({rep['txs_per_block']} txs/block), "
             f"{m.get('cores', '?')} cores, {m.get('profile', '?')} build")
    load = f"load average {m.get('loadavg', '?')} at start, {rep.get('loadavg_end', '?')} at end"

    # 1. Ingest per tenth.
    tenths = rep["ingest_tenths"]
    p = Panel(out, 0, 40, "I2 sustained rate per tenth of the ingest", "blocks in the store",
              "blocks/s", [t["to"] for t in tenths], [t["rate"] for t in tenths], False, False)
    p.bars("I2 blocks/s", [(t["from"], t["to"], t["rate"]) for t in tenths if t["blocks"]], COLORS[0])

    # 2. Latencies against size.
    lat = [("Q1 median", "Q1", "median_ms"), ("Q2 median", "Q2", "median_ms"),
           ("Q3 median", "Q3", "median_ms"), ("Q4 p99", "Q4", "p99_ms"),
           ("Q4u p99", "Q4u", "p99_ms"), ("Q4u median", "Q4u", "median_ms")]
    series = []
    for label, name, field in lat:
        pts = [(c["blocks"], (op(c, name) or {}).get(field)) for c in cps]
        if any(y for _, y in pts):
            series.append((label, pts))
    ys = [y for _, pts in series for _, y in pts if y]
    p = Panel(out, W, 40, "Read latency against store size", "blocks in the store (log)",
              "ms (log)", sizes, ys, True, True)
    for i, (label, pts) in enumerate(series):
        p.series(label, pts, COLORS[i % len(COLORS)], dashed=label.endswith("p99"))

    # 3. Throughput against size.
    thr = [("Q4 ops/s", lambda c: (op(c, "Q4") or {}).get("rate")),
           ("Q4u ops/s", lambda c: (op(c, "Q4u") or {}).get("rate")),
           ("I1 blocks/s", lambda c: (op(c, "I1") or {}).get("rate")),
           ("I2 blocks/s (since previous size)", lambda c: c["ingest"]["rate"] or None)]
    series = []
    for label, get in thr:
        pts = [(c["blocks"], get(c)) for c in cps]
        if any(y for _, y in pts):
            series.append((label, pts))
    ys = [y for _, pts in series for _, y in pts if y]
    p = Panel(out, 0, 40 + H, "Throughput against store size", "blocks in the store (log)",
              "per second (log)", sizes, ys, True, True)
    for i, (label, pts) in enumerate(series):
        p.series(label.split(" (")[0], pts, COLORS[i % len(COLORS)])

    # 4. Disk per block.
    pts = [(c["blocks"], (c["bytes_per_block"] or 0) / 1024 or None) for c in cps]
    p = Panel(out, W, 40 + H, "Disk per block against store size", "blocks in the store (log)",
              "KiB per block", sizes, [y for _, y in pts if y], True, False)
    p.series("file size / blocks", pts, COLORS[0])

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{2 * H + 50}" '
           f'viewBox="0 0 {2 * W} {2 * H + 50}" font-family="sans-serif">',
           f'<rect width="{2 * W}" height="{2 * H + 50}" fill="white"/>',
           f'<text x="10" y="16" font-size="12">{esc(title)}</text>',
           f'<text x="10" y="31" font-size="11" fill="#555">{esc(load)}</text>']
    svg += out
    svg.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(svg) + "\n")
    markdown(rep)


def markdown(rep):
    """The curve as Markdown: one column per size."""
    cps = rep["checkpoints"]
    print("| blocks | " + " | ".join(f"{c['blocks']:,}" for c in cps) + " |")
    print("|---|" + "---:|" * len(cps))

    def row(name, cell):
        print(f"| {name} | " + " | ".join(cell(c) for c in cps) + " |")

    row("KiB on disk per block",
        lambda c: f"{c['bytes_per_block'] / 1024:.1f}" if c["bytes_per_block"] else "")
    row("I2 blocks/s since previous size",
        lambda c: f"{c['ingest']['rate']:,.0f}" if c["ingest"]["blocks"] else "")
    row("load average (1 min)", lambda c: c["loadavg"].split()[0] if c["loadavg"] else "")
    names = []
    for c in cps:
        for r in c["results"]:
            if r["op"] not in names:
                names.append(r["op"])

    def cell(c, name, p99):
        r = op(c, name)
        if r is None:
            return ""
        if p99:
            return f"{r['p99_ms']:.3f}"
        if r.get("rate"):
            return f"{r['rate']:,.0f}"
        return f"{r['median_ms']:.3f}"

    for name in names:
        first = next(op(c, name) for c in cps if op(c, name))
        unit = first["unit"] if first.get("rate") else "median ms"
        row(f"{name} ({unit})", lambda c, name=name: cell(c, name, False))
        row(f"{name} p99 ms", lambda c, name=name: cell(c, name, True))

    def extra(c, name, key):
        v = ((op(c, name) or {}).get("extra") or {}).get(key)
        return "" if v is None else (f"{v:,.0f}" if float(v).is_integer() else f"{v:.3f}")

    for label, name, key in (("Q4 tx by hash, median ms", "Q4", "median ms tx by hash"),
                             ("Q4 header by number, median ms", "Q4", "median ms header by number"),
                             ("Q4 receipts of a block, median ms", "Q4", "median ms block receipts"),
                             ("Q2 logs", "Q2", "logs (last query)"),
                             ("Q3 logs", "Q3", "logs (last query)")):
        row(label, lambda c, name=name, key=key: extra(c, name, key))
    print()
    print("| tenth of the ingest (blocks) | I2 blocks | seconds | blocks/s |")
    print("|---|---:|---:|---:|")
    for t in rep["ingest_tenths"]:
        print(f"| {t['from']:,}..{t['to']:,} | {t['blocks']:,} | {t['seconds']:.1f} | {t['rate']:,.0f} |")


if __name__ == "__main__":
    main()
