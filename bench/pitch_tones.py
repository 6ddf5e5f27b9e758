"""The pitch voice's profiles on pure tones: steady ones must come out steady, cut-off ones must not come back.

Steady: a tone of each frequency from 100 to 2000 Hz in 10 Hz steps (0.3 peak, 1.5 s) through each profile in
profiles/ that uses the pitch voice (config.toml's stream: 20 ms blocks, 3 ms crossfade, 16 ms search); the swing of
the output's 10 ms RMS over the steady second; per profile how many frequencies swing by 2 dB or more, and the worst.
The formant filter's envelope once flipped between its voiced and unvoiced forms from hop to hop on such tones (a
whistle, a held note), up to 18 dB of tremble. Cut-off: 12 tones of 440 Hz at 0.25, each cut at another place
against the block grid; the largest |output| after the output first fell under 0.05 for 1 ms (a higher pitch
re-reads input the block before played, and a sound that stopped there came back: a ghost). `--before PATH`: the
same rows from another checkout (PYTHONPATH), side by side in one run.

    python bench/pitch_tones.py [--before /tmp/old-checkout] [--out FILE]

Prints a table and writes bench/results/pitch_tones.json.
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
SR = 48000
PROFILES = ["default", "feminine", "higher", "masculine", "chipmunk", "giant"]


def measure(profile: str) -> dict:
    """One profile in this process (the rtvc on sys.path)."""
    from rtvc.config import load_config
    from rtvc.converter import StreamingConverter, StreamShape
    from rtvc.profiles import load_profile
    from rtvc.stream_config import frames
    from rtvc.voices.pitch import PitchVoice

    st = load_config(None, {}).stream
    shape = StreamShape(SR, frames(st.block_ms, SR), frames(st.crossfade_ms, SR), frames(st.search_ms, SR))
    params = load_profile(profile, ROOT / "profiles").params

    def run(x: np.ndarray) -> np.ndarray:
        conv = StreamingConverter(PitchVoice(SR), params, shape)
        b = shape.block
        y = np.concatenate([conv.process_block(x[i : i + b]) for i in range(0, len(x) - b + 1, b)])
        return y[conv.latency :].astype(np.float64)

    t = np.arange(int(1.5 * SR)) / SR
    swings = []
    for f in range(100, 2001, 10):
        y = run((0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32))[SR // 4 : SR // 4 + SR]
        rms = np.sqrt((y.reshape(-1, 480) ** 2).mean(axis=1))
        swings.append((f, float(20 * np.log10(rms.max() / rms.min()))))
    x, ends = np.zeros(13 * SR, np.float32), []
    for i in range(12):
        start, n = SR // 2 + i * SR + i * 80, 218 * SR // 440
        x[start : start + n] = 0.25 * np.sin(2 * np.pi * 440 * np.arange(n) / SR)
        ends.append(start + n)
    y = np.abs(run(x))
    ghosts = []
    for e in ends:
        seg = y[e - 1500 : e + 4000]
        quiet = next(i for i in range(0, len(seg) - 48, 8) if seg[i : i + 48].max() < 0.05)
        ghosts.append(round(float(seg[quiet:].max()), 3))
    worst = max(swings, key=lambda s: s[1])
    return {
        "profile": profile,
        "pitch": params.pitch,
        "formant": params.formant,
        "tones": len(swings),
        "swing_2db_or_more": sum(s >= 2.0 for _f, s in swings),
        "worst_swing_db": round(worst[1], 1),
        "worst_at_hz": worst[0],
        "cut_off_ghosts_over_0_1": sum(g > 0.1 for g in ghosts),
        "largest_ghost": max(ghosts),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="another checkout to run the same rows from (PYTHONPATH)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pitch_tones.json")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # (a row, in a child process)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    rows = []
    print(f"{'code':7} {'profile':10} {'pitch/formant':>13} {'swing >=2 dB':>12} {'worst':>15} {'ghosts >0.1':>11}")
    for profile in PROFILES:
        for code, path in [("before", args.before), ("now", ROOT)] if args.before else [("now", ROOT)]:
            env = {**os.environ, "PYTHONPATH": str(path)}
            cmd = [sys.executable, __file__, "--one", profile]
            row = {"code": code, **json.loads(subprocess.run(cmd, env=env, capture_output=True, check=True).stdout)}
            rows.append(row)
            print(
                f"{code:7} {profile:10} {row['pitch']:+6.1f}/{row['formant']:+5.1f} "
                f"{row['swing_2db_or_more']:>5} of {row['tones']:<3} "
                f"{row['worst_swing_db']:5.1f} dB {row['worst_at_hz']:>4} Hz"
                f" {row['cut_off_ghosts_over_0_1']:>5} of 12 (largest {row['largest_ghost']:.2f})"
            )
    write_result(
        args.out,
        "pitch_tones",
        {
            "machine": machine(),
            "stream": "config.toml's (48 kHz, 20 ms blocks, 3 ms crossfade, 16 ms search)",
            "before": str(args.before) if args.before else None,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
