"""How the pitch voice's real delay moves with its pitch, against the latency it declares.

The pitch voice reads each block's tail from the window at `ratio` times the speed, ending at the newest input frame
(rtvc/voices/pitch.py): a block at a higher pitch plays older input, at a lower one newer, so its delay differs from
the converter's declared one (which is that of pitch 0) and varies across a block (the read is a ramp). This measures
the delay as a listener meets it: espeak-ng speech through the streaming converter (config.toml's stream: 20 ms
blocks, 3 ms crossfade, 16 ms search; formants with the pitch, so the formant filter is off), the lag of the output's
amplitude envelope (40 Hz low-pass of |x|) against the input's at the peak of their cross-correlation, against the
declared converter latency; and beside it the mean extra delay of the played frames by the read's geometry
((SOLA delay + (block - 1) / 2) * (ratio - 1)), which the envelope follows for pitches down but not up (a read
faster than real time skips input: no one lag fits).

    python bench/pitch_delay.py [--out FILE]

Prints a table and writes bench/results/pitch_delay.json.
"""

from __future__ import annotations

import argparse
import io
import subprocess
from pathlib import Path

import numpy as np
from common import machine, write_result

ROOT = Path(__file__).resolve().parent.parent
SR, BLOCK = 48000, 960
TEXT = "Hello there. The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore."
PITCHES = [-12.0, -7.0, -4.0, 0.0, 4.0, 7.0, 12.0]


def speech() -> np.ndarray:
    import soundfile as sf
    from scipy.signal import resample_poly

    wav = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "--stdout", TEXT], capture_output=True, check=True)
    x, sr = sf.read(io.BytesIO(wav.stdout), dtype="float64")
    x = resample_poly(x, SR // 50, sr // 50)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def envelope_lag_ms(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.signal import butter, sosfiltfilt

    lp = butter(4, 40, fs=SR, output="sos")
    ex, ey = (sosfiltfilt(lp, np.abs(s.astype(np.float64)))[::48] for s in (x, y))  # (1 kHz: a ms a step)
    ex, ey = ex - ex.mean(), ey - ey.mean()
    c = np.correlate(ey, ex, "full")[len(ex) - 1 : len(ex) - 1 + 200]
    k = int(np.argmax(c[1:-1])) + 1
    a, b, d = c[k - 1], c[k], c[k + 1]
    return float(k + 0.5 * (a - d) / (a - 2 * b + d))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pitch_delay.json")
    args = ap.parse_args()
    from rtvc.converter import StreamingConverter, StreamShape
    from rtvc.voices.pitch import PitchParams, PitchVoice

    x = speech()
    shape = StreamShape(SR, BLOCK, crossfade=144, search=768)
    rows = []
    print(f"{'pitch':>6} {'declared ms':>11} {'measured ms':>11} {'measured - declared':>19} {'read geometry':>13}")
    for p in PITCHES:
        conv = StreamingConverter(PitchVoice(SR), PitchParams(pitch=p, formant=p), shape)
        y = np.concatenate([conv.process_block(x[b : b + BLOCK]) for b in range(0, len(x) - BLOCK + 1, BLOCK)])
        declared = 1e3 * conv.latency / SR
        measured = envelope_lag_ms(x[: len(y)], y)
        geometry = 1e3 * (conv._sola_delay + (BLOCK - 1) / 2) * (2.0 ** (p / 12.0) - 1.0) / SR
        rows.append(
            {
                "pitch": p,
                "declared_ms": round(declared, 2),
                "measured_ms": round(measured, 2),
                "measured_minus_declared_ms": round(measured - declared, 2),
                "read_geometry_extra_ms": round(geometry, 2),
            }
        )
        print(f"{p:>+6.0f} {declared:>11.2f} {measured:>11.2f} {measured - declared:>+19.2f} {geometry:>+13.2f}")
    write_result(
        args.out,
        "pitch_delay",
        {"machine": machine(), "stream": {"block": BLOCK, "crossfade": 144, "search": 768}, "rows": rows},
    )


if __name__ == "__main__":
    main()
