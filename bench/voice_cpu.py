"""CPU time per block of the built-in voices at 48 kHz, through the streaming converter.

For 10 ms and 20 ms blocks and each profile: thread CPU time and wall time per block (p50, p99), and
the p50/p99 CPU time as a fraction of the block's duration (1.0 = one core fully used; the aim for the
default voice is <= 0.15). Input: the bundled espeak-ng speech clip, looped. All rows in one run. The row
`default+gate` is the default voice with the noise gate after it (on, -60 dBFS, as config.toml ships it): what
the gate adds per block, beside the row without it, and the gate's own time inside those same blocks. The row
`default+fader` moves the default voice's formant every block (a fader held: 50 changes a second at 20 ms).

    python bench/voice_cpu.py [--seconds 20]

Prints a table and writes bench/results/voice_cpu.json.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import machine, write_result

from rtvc.config import load_config
from rtvc.converter import StreamingConverter, StreamShape
from rtvc.gate import GateSettings, NoiseGate
from rtvc.profiles import load_profile, make_voice
from rtvc.wavio import bundled_speech, load_mono

ROOT = Path(__file__).resolve().parent.parent
SR = 48000
PROFILES = ["default", "higher", "feminine", "chipmunk", "giant", "passthrough"]


def run(
    profile_name: str, block_ms: float, seconds: float, x: np.ndarray, gated: bool = False, fader: bool = False
) -> dict:
    """`fader`: the profile's formant moved every block (50 changes a second at 20 ms: a MIDI fader or a Stream
    Deck dial held), in steps of 0.1 semitone over 2 semitones and back."""
    profile = load_profile(profile_name, ROOT / "profiles")
    block = round(block_ms * SR / 1000)
    st = load_config(ROOT / "config.toml").stream  # (crossfade and search as config.toml ships them)
    shape = StreamShape(SR, block, crossfade=round(st.crossfade_ms * SR / 1e3), search=round(st.search_ms * SR / 1e3))
    conv = StreamingConverter(make_voice(profile, SR), profile.params, shape)
    gate = NoiseGate(SR, block, GateSettings()) if gated else None
    n = int(seconds * SR) // block
    reps = int(np.ceil(n * block / len(x))) + 1
    src = np.tile(x, reps)
    for i in range(20):  # warm-up: tables, FFT plans, caches
        conv.process_block(src[i * block : (i + 1) * block])
    cpu = np.empty(n)
    wall = np.empty(n)
    gate_wall = np.zeros(n)  # the gate's own share of each block (gated rows)
    for i in range(n):
        b = src[i * block : (i + 1) * block]
        if fader:  # (the change itself costs nothing here: it takes effect in the next process_block)
            step = i % 40 if i % 40 < 20 else 40 - i % 40
            conv.set_params(replace(profile.params, formant=profile.params.formant + 0.1 * step))
        c0, w0 = time.thread_time(), time.perf_counter()
        y = conv.process_block(b)
        if gate is not None:
            g0 = time.perf_counter()
            gate.process(b, y, conv.latency)
            gate_wall[i] = time.perf_counter() - g0
        cpu[i], wall[i] = time.thread_time() - c0, time.perf_counter() - w0
    budget = block / SR
    gate_share = (
        {
            "gate_wall_p50_ms": round(1e3 * float(np.median(gate_wall)), 4),
            "gate_wall_p99_ms": round(1e3 * float(np.percentile(gate_wall, 99)), 4),
        }
        if gate is not None
        else {}
    )
    return gate_share | {
        "profile": profile_name + ("+gate" if gated else "") + ("+fader" if fader else ""),
        "voice": profile.voice,
        "block_ms": block_ms,
        "blocks": n,
        "cpu_p50_ms": round(1e3 * float(np.median(cpu)), 4),
        "cpu_p99_ms": round(1e3 * float(np.percentile(cpu, 99)), 4),
        "wall_p50_ms": round(1e3 * float(np.median(wall)), 4),
        "wall_p99_ms": round(1e3 * float(np.percentile(wall, 99)), 4),
        "cpu_p50_load": round(float(np.median(cpu)) / budget, 4),
        "cpu_p99_load": round(float(np.percentile(cpu, 99)) / budget, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="audio per row")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "voice_cpu.json")
    args = ap.parse_args()
    x = load_mono(bundled_speech(), SR)
    rows = [
        run(p, b, args.seconds, x, g, f)
        for b in (10.0, 20.0)
        for p, g, f in [*((p, False, False) for p in PROFILES), ("default", True, False), ("default", False, True)]
    ]
    head = (
        f"{'profile':<14} {'block':>6} {'cpu p50 ms':>10} {'cpu p99 ms':>10} {'wall p50':>9} {'wall p99':>9} "
        f"{'load p50':>8} {'load p99':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['profile']:<14} {r['block_ms']:>4.0f}ms {r['cpu_p50_ms']:>10.3f} {r['cpu_p99_ms']:>10.3f} "
            f"{r['wall_p50_ms']:>9.3f} {r['wall_p99_ms']:>9.3f} {r['cpu_p50_load']:>8.3f} {r['cpu_p99_load']:>8.3f}"
        )
    result = {
        "machine": machine(),
        "samplerate": SR,
        "rows": rows,
    }
    for r in rows:
        if "gate_wall_p50_ms" in r:
            print(
                f"the gate's own share of {r['profile']} at {r['block_ms']:.0f} ms: p50 {r['gate_wall_p50_ms']:.3f} "
                f"ms, p99 {r['gate_wall_p99_ms']:.3f} ms per block (timed inside the same blocks)"
            )
    write_result(args.out, "voice_cpu", result)


if __name__ == "__main__":
    main()
