#!/usr/bin/env python3
"""Plot pinfeed's HdrHistogram dumps as PNG charts.

Usage: scripts/plot_hdr.py DIR [--out OUTDIR] [--hlog]

DIR holds what `pinfeed run --hdr-dir DIR` wrote: `<stage>.hgrm` percentile distributions
(values in microseconds) and `<stage>.hlog` interval logs (values in ns).

Writes into OUTDIR (default DIR):
- `latency_by_percentile.png`: every stage on one chart, latency (us, log scale) against
  percentile on a log axis of 1/(1-p), as HdrHistogram's own plotter draws it;
- `<stage>.png`: one chart per stage;
- with --hlog, `latency_over_time.png`: p50, p99 and max of each interval of every stage,
  decoded from the interval logs (V2 deflate compressed histograms).

Needs matplotlib; installs it with pip (`pip install matplotlib`) when missing.
"""

import argparse
import base64
import glob
import math
import os
import struct
import subprocess
import sys
import zlib


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("plot_hdr: installing matplotlib with pip", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"]
        if subprocess.call(cmd) != 0:
            subprocess.check_call(cmd + ["--break-system-packages"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_hgrm(path):
    """Rows (value_us, percentile) of a .hgrm file, and its total count."""
    rows, total = [], 0
    with open(path) as f:
        for line in f:
            t = line.strip()
            if t.startswith("#[Max"):
                total = int(t.rsplit("=", 1)[1].rstrip("]").strip())
                continue
            if not t or t.startswith("#") or t.startswith("Value"):
                continue
            fields = t.split()
            rows.append((float(fields[0]), float(fields[1])))
    return rows, total


def stage_of(path):
    return os.path.splitext(os.path.basename(path))[0]


# values at or over this (us) are the histograms' 60 s ceiling
CLAMPED_US = 59_990_000.0

PERCENTILE_TICKS = [(1, "0%"), (10, "90%"), (100, "99%"), (1e3, "99.9%"), (1e4, "99.99%"),
                    (1e5, "99.999%"), (1e6, "99.9999%")]


def by_percentile(plt, series, title, out):
    """series: list of (label, rows, total)."""
    fig, ax = plt.subplots(figsize=(10, 6))
    top = 10.0
    for label, rows, total in series:
        xs, ys = [], []
        for value, p in rows:
            # p == 1 would be infinite: draw the max at the last finite x
            x = 1.0 / (1.0 - p) if p < 1.0 else None
            if x is None:
                x = xs[-1] if xs else 1.0
            xs.append(x)
            ys.append(max(value, 1e-3))
        if xs:
            top = max(top, xs[-1])
            ax.plot(xs, ys, label=f"{label} (n={total})", linewidth=1.4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [(x, t) for x, t in PERCENTILE_TICKS if x <= top * 1.01]
    ax.set_xticks([x for x, _ in ticks])
    ax.set_xticklabels([t for _, t in ticks])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (us)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(out)


# --- HdrHistogram V2 (deflate) decoding, enough for quantiles of the interval logs ---

V2_COOKIE = 0x1C849303
V2_COMPRESSED_COOKIE = 0x1C849304


def decode_histogram(b64):
    """(counts by index, sub_bucket_half_count_magnitude, unit_magnitude) of one entry."""
    raw = base64.b64decode(b64)
    cookie, length = struct.unpack(">ii", raw[:8])
    if cookie & ~0xF0 != V2_COMPRESSED_COOKIE & ~0xF0:
        raise ValueError(f"not a V2 compressed histogram: {cookie:#x}")
    payload = zlib.decompress(raw[8:8 + length])
    cookie, plen, _offset, digits, lowest, _highest, _ratio = struct.unpack(
        ">iiiiqqd", payload[:40])
    if cookie & ~0xF0 != V2_COOKIE & ~0xF0:
        raise ValueError(f"not a V2 histogram: {cookie:#x}")
    counts, i, pos, data = {}, 0, 40, payload[40:40 + plen]
    pos = 0
    while pos < len(data):
        value, shift = 0, 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80 or shift >= 63:
                break
        value = (value >> 1) ^ -(value & 1)  # zigzag
        if value < 0:
            i += -value  # a run of zero counts
        else:
            if value:
                counts[i] = value
            i += 1
    largest = 2 * 10 ** digits
    sub_bucket_count_magnitude = math.ceil(math.log2(largest))
    unit_magnitude = int(math.floor(math.log2(lowest))) if lowest > 0 else 0
    return counts, sub_bucket_count_magnitude - 1, unit_magnitude


def value_at(index, half_magnitude, unit_magnitude):
    half = 1 << half_magnitude
    bucket = (index >> half_magnitude) - 1
    sub = (index & (half - 1)) + half
    if bucket < 0:
        sub -= half
        bucket = 0
    return sub << (bucket + unit_magnitude)


def quantiles(counts, half_magnitude, unit_magnitude, qs):
    total = sum(counts.values())
    if total == 0:
        return [0.0 for _ in qs]
    out = []
    for q in qs:
        want = max(1, math.ceil(q * total))
        seen = 0
        for index in sorted(counts):
            seen += counts[index]
            if seen >= want:
                out.append(value_at(index, half_magnitude, unit_magnitude))
                break
    return out


def read_hlog(path):
    """[(start_s, p50_ns, p99_ns, max_ns, count)] of the intervals of a .hlog file."""
    points = []
    with open(path) as f:
        for line in f:
            t = line.strip()
            if not t or t.startswith("#") or t.startswith('"'):
                continue
            fields = t.split(",")
            if fields[0].startswith("Tag="):
                fields = fields[1:]
            start, b64 = float(fields[0]), fields[3]
            counts, half, unit = decode_histogram(b64)
            p50, p99, pmax = quantiles(counts, half, unit, [0.5, 0.99, 1.0])
            points.append((start, p50, p99, pmax, sum(counts.values())))
    return points


def over_time(plt, logs, out):
    fig, ax = plt.subplots(figsize=(10, 6))
    for stage, points in logs:
        pts = [p for p in points if p[4] > 0]
        if not pts:
            continue
        xs = [p[0] for p in pts]
        line, = ax.plot(xs, [p[2] / 1e3 for p in pts], label=f"{stage} p99")
        ax.plot(xs, [p[1] / 1e3 for p in pts], linestyle="--", color=line.get_color(),
                label=f"{stage} p50")
        ax.plot(xs, [p[3] / 1e3 for p in pts], linestyle=":", color=line.get_color(),
                label=f"{stage} max")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("latency (us)")
    ax.set_title("pinfeed stage latency per interval")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", help="directory given to `pinfeed run --hdr-dir`")
    ap.add_argument("--out", help="where the PNGs go (default: DIR)")
    ap.add_argument("--hlog", action="store_true", help="also plot the interval logs over time")
    args = ap.parse_args()
    out = args.out or args.dir
    os.makedirs(out, exist_ok=True)
    files = sorted(glob.glob(os.path.join(args.dir, "*.hgrm")))
    if not files:
        sys.exit(f"plot_hdr: no .hgrm files in {args.dir}")
    plt = ensure_matplotlib()
    series = []
    for path in files:
        rows, total = read_hgrm(path)
        series.append((stage_of(path), rows, total))
        by_percentile(plt, [series[-1]], f"pinfeed {stage_of(path)} latency by percentile",
                      os.path.join(out, stage_of(path) + ".png"))
    # a stage whose every value hit the 60 s ceiling (venue_to_read on an old recording)
    # would only stretch the shared axis
    clamped = {s[0] for s in series if s[1] and s[1][0][0] >= CLAMPED_US}
    for stage in sorted(clamped):
        print(f"plot_hdr: {stage}: every value is clamped at 60 s; left out of the shared "
              "charts", file=sys.stderr)
    by_percentile(plt, [s for s in series if s[2] > 0 and s[0] not in clamped],
                  "pinfeed stage latency by percentile",
                  os.path.join(out, "latency_by_percentile.png"))
    if args.hlog:
        logs = [(stage_of(p), read_hlog(p)) for p in sorted(glob.glob(os.path.join(args.dir,
                                                                                "*.hlog")))]
        logs = [(stage, points) for stage, points in logs if stage not in clamped]
        over_time(plt, logs, os.path.join(out, "latency_over_time.png"))


if __name__ == "__main__":
    main()
