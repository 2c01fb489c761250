"""The benchmark's report: scripts/bench.sh adds one result at a time, then writes the JSON
file and a plot of each figure against its reference or goal.

Usage:
  bench_report.py add RESULTS KEY=VALUE...   appends one result (numbers parsed) to RESULTS
  bench_report.py write RESULTS OUT.json OUT.svg

A result is either a comparison (`value` against `reference_value`, both rates or amounts
where more is better: `ratio` = value / reference_value, met if at least `goal`) or a limit
(`value` against `limit`, less is better: `ratio` = value / limit, met if at most 1).
"""
import json
import sys
from html import escape


def parse(v):
    try:
        return float(v) if "." in v or "e" in v else int(v)
    except ValueError:
        return v


def add(results, pairs):
    r = {k: parse(v) for k, v in (p.split("=", 1) for p in pairs)}
    if "reference_value" in r:
        r["ratio"] = round(r["value"] / r["reference_value"], 3) if r["reference_value"] else None
        if "goal" in r:
            r["met"] = r["ratio"] is not None and r["ratio"] >= r["goal"]
    elif "limit" in r:
        r["ratio"] = round(r["value"] / r["limit"], 3)
        r["met"] = r["ratio"] <= 1
    with open(results, "a") as f:
        f.write(json.dumps(r) + "\n")


def svg(results):
    """One row per result: a grey bar for the reference (or limit) at 1.0, a bar for
    logcollect at its ratio (green if its goal is met, red if missed, blue without goal), and
    a tick at the goal."""
    rows = [r for r in results if r.get("ratio") is not None]
    width, left, row_h = 1100, 430, 34
    top = max([2.0] + [r["ratio"] for r in rows] + [r.get("goal", 0) for r in rows])
    scale = (width - left - 150) / top
    height = 60 + row_h * len(rows)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="20" font-size="15">logcollect beside its references '
           '(ratio; grey = reference or limit = 1.0; tick = goal)</text>']
    for x in range(int(top) + 1):
        px = left + x * scale
        out.append(f'<line x1="{px}" y1="30" x2="{px}" y2="{height - 10}" stroke="#ddd"/>'
                   f'<text x="{px - 4}" y="{height - 0}" fill="#888">{x}</text>')
    for i, r in enumerate(rows):
        y = 40 + i * row_h
        ratio = r["ratio"]
        color = "#4a7bd0" if "met" not in r else ("#3a9a4a" if r["met"] else "#d04a3a")
        other = r.get("reference", f"limit {r.get('limit')} {r['unit']}")
        figure = f'{r["ratio"]:.2f} ({r["value"]:,.{0 if r["value"] >= 100 else 3}f} {r["unit"]})'

        out.append(f'<text x="10" y="{y + 11}">{escape(r["what"][:62])}</text>')
        out.append(f'<text x="10" y="{y + 25}" fill="#666">vs {escape(str(other)[:58])}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{scale}" height="12" fill="#ccc"/>')
        out.append(f'<rect x="{left}" y="{y + 14}" width="{ratio * scale:.1f}" height="12" '
                   f'fill="{color}"/>')
        out.append(f'<text x="{left + ratio * scale + 6:.1f}" y="{y + 25}">{escape(figure)}</text>')
        goal = r.get("goal", 1 if "limit" in r else None)
        if goal is not None:
            gx = left + goal * scale
            out.append(f'<line x1="{gx}" y1="{y - 2}" x2="{gx}" y2="{y + 28}" stroke="black" '
                       'stroke-width="2"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(results, out_json, out_svg):
    with open(results) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    with open(out_json, "w") as f:
        json.dump({"results": rows}, f, indent=1)
        f.write("\n")
    with open(out_svg, "w") as f:
        f.write(svg(rows))


if __name__ == "__main__":
    if sys.argv[1:2] == ["add"] and len(sys.argv) > 3:
        add(sys.argv[2], sys.argv[3:])
    elif sys.argv[1:2] == ["write"] and len(sys.argv) == 5:
        write(*sys.argv[2:])
    else:
        sys.exit(__doc__)
