"""How long the SOLA search must be: the pitch voice's output on harmonic tones, energy off the expected harmonics.

The streaming converter joins each block to the last at the offset within `stream.search_ms` where their
waveforms line up. Lining up needs one period of the output voice within the search: a shorter search joins
out of phase, and the join's phase jump, 50 times a second at 20 ms blocks, puts energy between the
harmonics (a rough, buzzing voice). For each profile and input F0 this converts a harmonic tone (1/k
amplitudes up to 4 kHz) through the pitch voice at each search length and reports the energy more than 4 Hz
from every harmonic of the output F0, below 4 kHz, in dB of the total (lower is cleaner).

    python bench/sola_search.py [--searches-ms 8 12 16 20] [--f0 85 100 120 150 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import machine, write_result

SR = 48000
PROFILES = {"default (Deeper)": (-4.0, -1.5), "masculine": (-5.0, -2.5), "higher": (4.0, 1.0), "giant": (-7.0, -7.0)}


def harmonic_tone(f0: float, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = sum((1 / k) * np.sin(2 * np.pi * k * f0 * t + 0.3 * k * k) for k in range(1, int(4000 / f0)))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def convert(
    x: np.ndarray, pitch: float, formant: float, block_ms: float, crossfade_ms: float, search_ms: float, fixed: bool
) -> tuple[np.ndarray, float]:
    """The output, and the search it ran with (ms). `fixed`: exactly `search_ms`; else as rtvc runs the voice (the
    converter widens the search to the voice's least_search)."""
    from rtvc.converter import StreamingConverter, StreamShape
    from rtvc.voices.pitch import PitchParams, PitchVoice

    class Fixed(PitchVoice):
        least_search = None  # (the search as given)

    shape = StreamShape(SR, round(block_ms * SR / 1e3), round(crossfade_ms * SR / 1e3), round(search_ms * SR / 1e3))
    voice = Fixed(SR) if fixed else PitchVoice(SR)
    conv = StreamingConverter(voice, PitchParams(pitch=pitch, formant=formant), shape)
    b = shape.block
    y = np.concatenate([conv.process_block(x[i : i + b]) for i in range(0, len(x) - b + 1, b)])
    return y[conv.latency :], 1e3 * conv.shape.search / SR


def off_harmonic_db(y: np.ndarray, f0: float) -> float:
    """Energy more than 4 Hz from every multiple of f0, below 4 kHz, over one second after the first half."""
    seg = y[SR // 2 : SR // 2 + SR]
    power = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
    f = np.fft.rfftfreq(len(seg), 1 / SR)
    band = f < 4000
    near = np.zeros_like(band)
    for k in range(1, int(4000 / f0) + 1):
        near |= np.abs(f - k * f0) < 4
    return float(10 * np.log10(power[band & ~near].sum() / power[band].sum()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--searches-ms", type=float, nargs="+", default=[8.0, 12.0, 16.0, 20.0])
    ap.add_argument("--f0", type=float, nargs="+", default=[85.0, 100.0, 120.0, 150.0, 200.0])
    ap.add_argument("--block-ms", type=float, default=20.0)
    ap.add_argument("--crossfade-ms", type=float, default=3.0)
    ap.add_argument("--config-search-ms", type=float, default=16.0, help="config.toml's stream.search_ms")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sola_search.json")
    args = ap.parse_args()

    rows = []
    head = " ".join(f"{s:>7g}" for s in args.searches_ms)
    print(f"off-harmonic energy (dB of the total; lower is cleaner) by search (ms), {args.block_ms:g} ms blocks;")
    print(f"'rtvc': as rtvc runs the profile, config.toml's {args.config_search_ms:g} ms widened to the voice's least")
    print(f"{'profile':18s} {'in F0':>6} {'out F0':>7} {'period':>7} {head} {'rtvc':>14}")
    for name, (pitch, formant) in PROFILES.items():
        for f0 in args.f0:
            out_f0 = f0 * 2 ** (pitch / 12)
            x = harmonic_tone(f0)
            db = []
            for s in args.searches_ms:
                y, _ = convert(x, pitch, formant, args.block_ms, args.crossfade_ms, s, fixed=True)
                db.append(round(off_harmonic_db(y, out_f0), 1))
            y, ran = convert(x, pitch, formant, args.block_ms, args.crossfade_ms, args.config_search_ms, fixed=False)
            as_run = round(off_harmonic_db(y, out_f0), 1)
            by_search = dict(zip(map(str, args.searches_ms), db, strict=True))
            rows.append({
                "profile": name, "pitch": pitch, "formant": formant, "input_f0_hz": f0,
                "output_f0_hz": round(out_f0, 1), "off_harmonic_db": by_search,
                "as_rtvc_runs_it": {"search_ms": round(ran, 3), "off_harmonic_db": as_run},
            })  # fmt: skip
            print(
                f"{name:18s} {f0:6.0f} {out_f0:7.1f} {1e3 / out_f0:5.1f}ms "
                + " ".join(f"{v:7.1f}" for v in db)
                + f" {as_run:6.1f} ({ran:4.1f}ms)",
                flush=True,
            )
    write_result(
        args.out,
        "sola_search",
        {
            "machine": machine(),
            "block_ms": args.block_ms,
            "crossfade_ms": args.crossfade_ms,
            "searches_ms": args.searches_ms,
            "measure": "energy more than 4 Hz from every harmonic of the output F0, below 4 kHz, dB of the total",
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
