#!/usr/bin/env python3
"""Draws docs/perf/bandwidth.svg from docs/perf/results.json (written by
scripts/compare): average bandwidth against message size, uchan (SafeVerbs)
and ib_write_bw -c UC, medians with the range of the runs. Standard library
only.

    scripts/perf-chart.py [RESULTS.json] [OUT.svg]
"""
import json
import math
import sys
from xml.sax.saxutils import escape

W, H = 760, 460
LEFT, RIGHT, TOP, BOTTOM = 90, 30, 60, 70
# key in results.json, legend, colour, dash pattern
SERIES = (
    ("uchan-l1", "uchan -l 1 (SafeVerbs, one signaled write per post)", "#1f77b4", "6 4"),
    ("perftest-l1", "ib_write_bw -c UC -Q 1 (one signaled write per post)", "#d62728", "6 4"),
    ("uchan-l32", "uchan -l 32 (chains of 32, one completion each)", "#1f77b4", ""),
    ("perftest-l32", "ib_write_bw -c UC -l 32 -Q 32 (post lists of 32)", "#d62728", ""),
    ("uchan-q64", "uchan -l 1 -Q 64 (one write per post, every 64th signaled)", "#1f77b4", "2 3"),
    ("perftest-q64", "ib_write_bw -c UC -Q 64 (one write per post, every 64th signaled)", "#d62728", "2 3"),
)


def main(src="docs/perf/results.json", out="docs/perf/bandwidth.svg"):
    with open(src) as f:
        results = json.load(f)
    sizes = results["bandwidth"]["sizes"]
    values = [v for e in sizes for tool, *_ in SERIES if tool in e for v in e[tool]["runs"]["bw_avg"] if v > 0]
    if not sizes or not values:
        sys.exit("perf-chart: no bandwidth results in " + src)
    lo = 10 ** math.floor(math.log10(min(values)))
    hi = 10 ** math.ceil(math.log10(max(values)))
    xs = [math.log2(e["size"]) for e in sizes]
    x0, x1 = min(xs) - 1, max(xs) + 1

    def px(size):
        return LEFT + (math.log2(size) - x0) / (x1 - x0) * (W - LEFT - RIGHT)

    def py(v):
        return H - BOTTOM - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (H - TOP - BOTTOM)

    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="15">UC RDMA WRITE bandwidth: uchan (SafeVerbs) vs ib_write_bw</text>',
        f'<text x="{W / 2}" y="42" text-anchor="middle" fill="#555">{escape(results["device"])}, Soft-RoCE in qemu (TCG); '
        f'tx depth {results["tx_depth"]}; median of {results["rounds"]} runs, bars: min..max</text>',
    ]
    # Grid: decades of MB/sec, and the measured sizes.
    decade = lo
    while decade <= hi * 1.0001:
        y = py(decade)
        svg.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{decade:g}</text>')
        decade *= 10
    for e in sizes:
        x = px(e["size"])
        svg.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{H - BOTTOM}" stroke="#eee"/>')
        label = f'{e["size"] // 1024} KiB' if e["size"] >= 1024 else f'{e["size"]} B'
        svg.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 18}" text-anchor="middle">{label}</text>')
        r1 = e["ratios"]["uchan-l1_over_perftest-l1"]["bw_avg"]
        r2 = e["ratios"]["uchan-l32_over_perftest-l32"]["bw_avg"]
        text = " / ".join(format(r, ".2f") if r is not None else "-" for r in (r1, r2))
        svg.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 34}" text-anchor="middle" fill="#555">-l 1 / -l 32: {text}</text>')
    svg.append(f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="none" stroke="#333"/>')
    svg.append(f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">message size (log scale); '
               'ratios uchan / ib_write_bw at 1 and at 32 writes per post</text>')
    svg.append(f'<text transform="translate(22 {(TOP + H - BOTTOM) / 2}) rotate(-90)" text-anchor="middle">'
               'BW average [MB/sec = 2^20 B/s] (log scale)</text>')
    for k, (tool, name, color, dash) in enumerate(SERIES):
        shift = (k - 1.5) * 8  # side by side, so that the bars do not hide each other
        points = []
        for e in sizes:
            runs = [v for v in e.get(tool, {}).get("runs", {}).get("bw_avg", []) if v > 0]
            med = e.get(tool, {}).get("median", {}).get("bw_avg")
            if not runs or not med:
                continue
            x = px(e["size"]) + shift
            points.append(f"{x:.1f},{py(med):.1f}")
            svg.append(f'<line x1="{x:.1f}" y1="{py(min(runs)):.1f}" x2="{x:.1f}" y2="{py(max(runs)):.1f}" '
                       f'stroke="{color}" stroke-width="2" opacity="0.5"/>')
            svg.append(f'<circle cx="{x:.1f}" cy="{py(med):.1f}" r="4" fill="{color}"/>')
        svg.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" stroke-width="2" '
                   f'stroke-dasharray="{dash}"/>')
        ly = TOP + 18 + 18 * k
        svg.append(f'<line x1="{LEFT + 14}" y1="{ly - 4}" x2="{LEFT + 40}" y2="{ly - 4}" stroke="{color}" '
                   f'stroke-width="2" stroke-dasharray="{dash}"/>')
        svg.append(f'<text x="{LEFT + 46}" y="{ly}">{escape(name)}</text>')
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
