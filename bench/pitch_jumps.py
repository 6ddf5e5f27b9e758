"""Live pitch jumps of the pitch voice with its formants kept apart (the formant filter on): clicks and cost.

A 220 Hz tone at -12 dBFS through the streaming converter (config.toml's default stream: 20 ms blocks, 3 ms
crossfade, 16 ms search), the pitch jumping between two values every 13 blocks (each jump at another phase of the
tone) with the formant at -1.5. Per pair of pitches: how many of the upward and downward jumps have a
sample-to-sample step within 4 blocks of the jump over 2x and over 5x the steady output's largest step (a click),
the largest such ratio, and the thread CPU time per block (p50, p99) over the whole run. `--before PATH`: the same
rows from another checkout (PYTHONPATH), side by side in one run.

    python bench/pitch_jumps.py [--jumps 16] [--before /tmp/old-checkout]

Prints a table and writes bench/results/pitch_jumps.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from common import machine, write_result

ROOT = Path(__file__).resolve().parent.parent
PAIRS = [(-4.0, 12.0), (-12.0, 12.0), (0.0, 16.0), (-4.0, 10.0), (-4.0, 8.0)]
BLOCK, SR = 960, 48000


def measure(low: float, high: float, jumps: int) -> dict:
    """One pair in this process (the rtvc on sys.path)."""
    import time

    from rtvc.converter import StreamingConverter, StreamShape
    from rtvc.voices.pitch import PitchParams, PitchVoice

    shape = StreamShape(SR, BLOCK, crossfade=144, search=768)
    conv = StreamingConverter(PitchVoice(SR), PitchParams(pitch=low, formant=-1.5), shape)
    n = BLOCK * 13 * (jumps + 1) + 7
    x = (10 ** (-12 / 20) * np.sin(2 * np.pi * 220 * np.arange(n) / SR)).astype(np.float32)
    out, marks, cpu = [], [], []
    for i, b in enumerate(range(0, n - BLOCK + 1, BLOCK)):
        if i and i % 13 == 0:
            up = (i // 13) % 2 == 1
            conv.set_params(PitchParams(pitch=high if up else low, formant=-1.5))
            marks.append((i, up))
        t0 = time.thread_time()
        out.append(conv.process_block(x[b : b + BLOCK]))
        cpu.append(time.thread_time() - t0)
    step = np.abs(np.diff(np.concatenate(out)))
    ratios: dict[bool, list[float]] = {True: [], False: []}
    for i, up in marks:
        steady = max(step[(i - 6) * BLOCK : (i - 1) * BLOCK].max(), step[(i + 6) * BLOCK : (i + 12) * BLOCK].max())
        ratios[up].append(float(step[i * BLOCK : (i + 4) * BLOCK].max() / steady))
    ms = np.array(cpu[10:]) * 1e3
    row = {"low": low, "high": high, "cpu_p50_ms": round(float(np.percentile(ms, 50)), 3)}
    row["cpu_p99_ms"] = round(float(np.percentile(ms, 99)), 3)
    for up, name in ((True, "up"), (False, "down")):
        r = ratios[up]
        row[name] = {"jumps": len(r), "over_2x": sum(v > 2 for v in r), "over_5x": sum(v > 5 for v in r)}
        row[name]["largest_x"] = round(max(r), 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jumps", type=int, default=16, help="jumps per pair (half of them up)")
    ap.add_argument("--before", type=Path, help="another checkout to run the same rows from (PYTHONPATH)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pitch_jumps.json")
    ap.add_argument("--one", nargs=2, type=float, help=argparse.SUPPRESS)  # (a row, in a child process)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.jumps)))
        return
    rows = []
    print(f"{'code':7} {'pitch':>12} {'up >2x/>5x':>11} {'largest':>8} {'down largest':>13} {'CPU p50/p99 ms':>15}")
    for low, high in PAIRS:
        for code, path in [("before", args.before), ("now", ROOT)] if args.before else [("now", ROOT)]:
            env = {**os.environ, "PYTHONPATH": str(path)}
            cmd = [sys.executable, __file__, "--one", str(low), str(high), "--jumps", str(args.jumps)]
            row = {"code": code, **json.loads(subprocess.run(cmd, env=env, capture_output=True, check=True).stdout)}
            rows.append(row)
            up, down = row["up"], row["down"]
            print(
                f"{code:7} {low:+5.0f}->{high:+4.0f} {up['over_2x']:>5}/{up['over_5x']:<5} {up['largest_x']:7.1f}x"
                f" {down['largest_x']:12.1f}x {row['cpu_p50_ms']:7.2f}/{row['cpu_p99_ms']:.2f}"
            )
    write_result(
        args.out,
        "pitch_jumps",
        {
            "machine": machine(),
            "stream": "48 kHz, 20 ms blocks, crossfade 3 ms, search 16 ms; 220 Hz at -12 dBFS; formant -1.5",
            "before": str(args.before) if args.before else None,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
