"""What F0 over the whole window costs in the block where an RVC voice is switched to, on the CPU (eager path).

Every block estimates F0 over the newest audio only (the block + the estimator's context each side); the first
block after a switch also estimates it over every frame the synthesizer reads (1 s context: 1 s of audio at 16 kHz),
once (rtvc.voices.rvc: `primed`, `_update_f0(whole=...)`). Per estimator, the two estimates side by side on the same
speech, alternating, median and p99 of --runs each; the window's is what the switch's block pays on top of its usual F0.
(On the fixed-shape path it is one replay of the `f0_window` step instead: a GPU figure, not measured here.)

    python bench/f0_window_cost.py --runs 30
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import machine, write_result

ROOT = Path(__file__).resolve().parent.parent
HOP = 160


def main() -> None:
    from rtvc.rvc.f0 import make_f0
    from rtvc.wavio import bundled_speech, load_mono

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--block-ms", type=int, default=20)
    ap.add_argument("--window-s", type=float, default=1.0)
    ap.add_argument("--methods", nargs="+", default=["yin", "fcpe", "crepe-tiny"])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "f0_window_cost.json")
    args = ap.parse_args()
    x = (0.5 * load_mono(bundled_speech(), 16000)).astype(np.float32)
    window = x[: int(args.window_s * 16000) // HOP * HOP]
    rows = []
    print(f"{'F0':12} {'segment p50/p99 ms':>20} {'window (the switch adds it) p50/p99 ms':>40}")
    for method in args.methods:
        est = make_f0(method, f0_min=50.0, f0_max=1100.0, model_path=None, where="bench")
        look = -(-est.lookahead // HOP)
        segment = window[-(args.block_ms * 16 // HOP + 2 * look + 2) * HOP :]  # as _update_f0 takes it
        times: dict[str, list[float]] = {"segment": [], "window": []}
        for audio in (segment, window):  # (first runs: allocations, kernels chosen)
            est.estimate(audio)
        for _ in range(args.runs):
            for name, audio in (("segment", segment), ("window", window)):
                t0 = time.perf_counter()
                est.estimate(audio)
                times[name].append(1e3 * (time.perf_counter() - t0))
        stats = {k: {"p50_ms": round(float(np.median(v)), 2), "p99_ms": round(float(np.percentile(v, 99)), 2)}
                 for k, v in times.items()}  # fmt: skip
        rows.append({"f0": method, "segment_samples": len(segment), "window_samples": len(window), **stats})
        s, w = stats["segment"], stats["window"]
        print(f"{method:12} {s['p50_ms']:9.2f} / {s['p99_ms']:7.2f} {w['p50_ms']:31.2f} / {w['p99_ms']:7.2f}")
    write_result(
        args.out,
        "f0_window_cost",
        {"machine": machine(torch_threads=torch.get_num_threads()), "runs": args.runs, "rows": rows},
    )


if __name__ == "__main__":
    main()
