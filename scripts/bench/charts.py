"""Draws the benchmark charts of docs/benchmarks.md as plain SVG (no plotting
library needed; `atelier bench --plot` draws its own with plotters).

  charts.py stages MEDIANS.json OUT.svg   time per stage, atelier vs the peer
                                          (the JSON scripts/bench/stages.sh writes)
  charts.py scaling TABLE.txt OUT.svg     wall time and peak memory against the
                                          number of variations (scaling.sh's output)
"""
import json
import sys

W, H = 760, 360
LEFT, RIGHT, TOP, BOTTOM = 150, 30, 50, 50
COLOURS = {"atelier": "#1f77b4", "peer": "#ff7f0e", "wall": "#1f77b4", "memory": "#d62728"}
FONT = 'font-family="sans-serif" font-size="13"'


def svg(body, title):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}">'
            f'<rect width="{W}" height="{H}" fill="white"/>'
            f'<text x="{W / 2}" y="26" text-anchor="middle" font-family="sans-serif" font-size="16">{title}</text>'
            + "".join(body) + "</svg>\n")


def nice(top):
    """A round axis maximum at or above `top`, and its tick step."""
    for step in (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000):
        if top / step <= 6:
            return step * int(top / step + 0.999), step
    return top, top / 5


def stages(medians, out):
    names = ["analysis", "generation", "upscaling", "post_processing"]
    rows = [(n.replace("_", "-"), {w: medians[w]["stages"][n] for w in ("atelier", "peer")}) for n in names]
    rows.append(("whole process", {w: medians[w]["wall"] for w in ("atelier", "peer")}))
    top, step = nice(max(max(v.values()) for _, v in rows))
    plot_w, band = W - LEFT - RIGHT, (H - TOP - BOTTOM) / len(rows)
    body = []
    x = lambda v: LEFT + v / top * plot_w
    t = 0.0
    while t <= top + 1e-9:
        body.append(f'<line x1="{x(t)}" y1="{TOP}" x2="{x(t)}" y2="{H - BOTTOM}" stroke="#ddd"/>'
                    f'<text x="{x(t)}" y="{H - BOTTOM + 16}" text-anchor="middle" {FONT}>{t:g}</text>')
        t += step
    body.append(f'<text x="{LEFT + plot_w / 2}" y="{H - 12}" text-anchor="middle" {FONT}>seconds (median)</text>')
    for i, (name, values) in enumerate(rows):
        y0 = TOP + i * band
        body.append(f'<text x="{LEFT - 8}" y="{y0 + band / 2 + 4}" text-anchor="end" {FONT}>{name}</text>')
        for j, who in enumerate(("atelier", "peer")):
            v, y = values[who], y0 + 6 + j * (band - 12) / 2
            body.append(f'<rect x="{LEFT}" y="{y:.1f}" width="{x(v) - LEFT:.1f}" height="{(band - 14) / 2:.1f}" fill="{COLOURS[who]}"/>'
                        f'<text x="{x(v) + 4:.1f}" y="{y + (band - 14) / 4 + 4:.1f}" {FONT}>{v:.3f}</text>')
    for j, who in enumerate(("atelier", "Python peer")):
        body.append(f'<rect x="{W - 190 + j * 95}" y="{TOP - 14}" width="12" height="12" fill="{COLOURS[("atelier", "peer")[j]]}"/>'
                    f'<text x="{W - 174 + j * 95}" y="{TOP - 4}" {FONT}>{who}</text>')
    open(out, "w").write(svg(body, "Standard job: time per stage, atelier vs the Python peer"))


def scaling(table, out):
    points = []
    for line in open(table):
        f = line.split()
        if f and f[0].isdigit():
            points.append((int(f[0]), float(f[3]), float(f[4])))
    n_max = max(p[0] for p in points)
    t_top, t_step = nice(max(p[1] for p in points))
    m_top, m_step = nice(max(p[2] for p in points))
    left, right = 70, W - 80
    x = lambda n: left + n / n_max * (right - left)
    yt = lambda v: H - BOTTOM - v / t_top * (H - TOP - BOTTOM)
    ym = lambda v: H - BOTTOM - v / m_top * (H - TOP - BOTTOM)
    body = [f'<line x1="{left}" y1="{H - BOTTOM}" x2="{right}" y2="{H - BOTTOM}" stroke="#444"/>']
    t = 0.0
    while t <= t_top + 1e-9:
        body.append(f'<line x1="{left}" y1="{yt(t)}" x2="{right}" y2="{yt(t)}" stroke="#eee"/>'
                    f'<text x="{left - 6}" y="{yt(t) + 4}" text-anchor="end" {FONT} fill="{COLOURS["wall"]}">{t:g}</text>')
        t += t_step
    m = 0.0
    while m <= m_top + 1e-9:
        body.append(f'<text x="{right + 6}" y="{ym(m) + 4}" {FONT} fill="{COLOURS["memory"]}">{m:g}</text>')
        m += m_step
    for n, _, _ in points:
        body.append(f'<text x="{x(n)}" y="{H - BOTTOM + 16}" text-anchor="middle" {FONT}>{n}</text>')
    body.append(f'<text x="{(left + right) / 2}" y="{H - 12}" text-anchor="middle" {FONT}>variations (24 MP photo, x4, video and report)</text>'
                f'<text x="16" y="{TOP - 12}" {FONT} fill="{COLOURS["wall"]}">wall s</text>'
                f'<text x="{right - 10}" y="{TOP - 12}" {FONT} fill="{COLOURS["memory"]}">peak MB</text>')
    for key, y in (("wall", yt), ("memory", ym)):
        idx = 1 if key == "wall" else 2
        path = " ".join(f"{x(p[0]):.1f},{y(p[idx]):.1f}" for p in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{COLOURS[key]}" stroke-width="2"/>')
        body += [f'<circle cx="{x(p[0]):.1f}" cy="{y(p[idx]):.1f}" r="3" fill="{COLOURS[key]}"/>' for p in points]
    open(out, "w").write(svg(body, "Scaling with variations: wall time and peak memory"))


if __name__ == "__main__":
    mode, source, out = sys.argv[1:4]
    if mode == "stages":
        stages(json.load(open(source)), out)
    elif mode == "scaling":
        scaling(source, out)
    else:
        sys.exit(__doc__)
