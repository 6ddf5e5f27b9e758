"""The output limiter's cost per block, and what it does to a voice beyond full scale against clipping.

Per block (10 ms and 20 ms at 48 kHz), p50 and p99 over many blocks, measured side by side in one run:
- idle: every sample within full scale (the block passes as it is: one comparison);
- limiting: a tone at +6 dBFS (the gain goes down and back every half period);
- releasing: the gain coming back after a peak, the samples within full scale.
Then the bundled speech clip raised to peak at +6 dBFS: its peak limited, and the share of its blocks that held a
sample beyond full scale (`limited_blocks`, what the closing report counts); and
a 220 Hz tone at +6 dBFS: the energy off its fundamental, limited and clipped flat (what played before).

    python bench/limiter.py [--blocks 5000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import machine, write_result

SR = 48000


def timed(block: int, x: np.ndarray, n: int, carry_db: float = 0.0) -> list[float]:
    from rtvc.limiter import Limiter

    lim = Limiter(SR, block)
    b = x[:block].copy()
    out = []
    for _ in range(n):
        lim._gain_db = carry_db if carry_db else lim._gain_db  # (releasing: the gain carried in, each block)
        t0 = time.perf_counter()
        lim.process(b)
        out.append(time.perf_counter() - t0)
    return out


def speech() -> np.ndarray:
    from rtvc.wavio import bundled_speech, load_mono

    return load_mono(bundled_speech(), SR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "limiter.json")
    args = ap.parse_args()
    from rtvc.limiter import Limiter

    t = np.arange(SR) / SR
    rows = []
    print(f"{'block':>8} {'case':>10} {'p50 us':>8} {'p99 us':>8}")
    for ms in (10, 20):
        block = SR * ms // 1000
        cases = {
            "idle": (0.9 * np.sin(2 * np.pi * 220 * t), 0.0),
            "limiting": (2.0 * np.sin(2 * np.pi * 220 * t), 0.0),
            "releasing": (0.5 * np.sin(2 * np.pi * 220 * t), -3.0),
        }
        for name, (x, carry) in cases.items():
            ts = np.array(timed(block, x.astype(np.float32), args.blocks, carry)) * 1e6
            p50, p99 = float(np.median(ts)), float(np.percentile(ts, 99))
            rows.append({"block_ms": ms, "case": name, "p50_us": round(p50, 2), "p99_us": round(p99, 2)})
            print(f"{ms:>6} ms {name:>10} {p50:8.1f} {p99:8.1f}")
    x = speech()
    loud = (x * 10 ** (12 / 20) / np.abs(x).max() * 0.5).astype(np.float32)  # peaks +6 dBFS
    lim = Limiter(SR, 960)
    y = np.concatenate([lim.process(loud[i : i + 960]) for i in range(0, len(loud) - 959, 960)])
    tone = (2.0 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)  # +6 dBFS
    lim_t = Limiter(SR, 960)
    y_t = np.concatenate([lim_t.process(tone[i : i + 960]) for i in range(0, SR, 960)])[SR // 4 :]

    def off_fundamental_db(z: np.ndarray) -> float:
        """Energy off the 220 Hz fundamental (harmonics, intermodulation) against it, dB."""
        p = np.abs(np.fft.rfft(z * np.hanning(len(z)))) ** 2
        fund = p[np.abs(np.fft.rfftfreq(len(z), 1 / SR) - 220) < 15].sum()
        return 10 * np.log10((p.sum() - fund) / fund)

    quality = {
        "speech_input_peak_dbfs": round(float(20 * np.log10(np.abs(loud).max())), 2),
        "speech_limited_peak_dbfs": round(float(20 * np.log10(np.abs(y).max())), 2),
        "speech_limited_blocks_share": round(lim.limited_blocks / (len(y) // 960), 3),
        "tone_off_fundamental_limited_db": round(float(off_fundamental_db(y_t)), 1),
        "tone_off_fundamental_clipped_db": round(float(off_fundamental_db(np.clip(tone, -1, 1)[SR // 4 :])), 1),
    }
    print(
        f"\nspeech peaking at {quality['speech_input_peak_dbfs']} dBFS: limited to "
        f"{quality['speech_limited_peak_dbfs']} dBFS, {100 * quality['speech_limited_blocks_share']:.0f}% of its 20 ms "
        f"blocks beyond full scale\na 220 Hz tone at +6 dBFS, energy off its fundamental: limited "
        f"{quality['tone_off_fundamental_limited_db']} dB, clipped {quality['tone_off_fundamental_clipped_db']} dB"
    )
    write_result(args.out, "limiter", {"machine": machine(), "rows": rows, "quality": quality})


if __name__ == "__main__":
    main()
