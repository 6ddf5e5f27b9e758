"""Switching back to the voice played before: how long `voices.select` takes, against loading that voice.

The daemon keeps the voice played before loaded (rtvc.control.controller, `_take_kept`). This bench drives a
Controller as `voices.select` does, with the engine live on the paced virtual device: the default voice plays,
then a full-size RVC v2 48k voice (HuBERT base, FCPE, a 60,000-feature index; random weights, written here) is
selected (a load), the default voice again, then the RVC voice again (taken back). The kept voice is let go
before each round, so every round's first select is a load. On this CPU the RVC voice cannot keep up (it plays
silence while selected); the time of the select call is what is measured.

    python bench/voice_back.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine, write_result
from voice_load import write_voice

SR = 48000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "voice_back.json")
    args = ap.parse_args()

    from rtvc.audio.virtual import VirtualDevice
    from rtvc.config import load_config
    from rtvc.control.controller import Controller
    from rtvc.run import build_engine
    from rtvc.voices.rvc import RvcVoice
    from rtvc.wavio import bundled_speech, load_mono

    RvcVoice.preload()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="rtvc-back-") as tmp:
        folder = Path(tmp)
        print("writing a full-size RVC v2 48k voice, HuBERT base and an index (random weights)...", flush=True)
        write_voice(folder, 60000)
        (folder / "config.toml").write_text(
            f'[audio]\nsamplerate = {SR}\nperiod = 256\n[stream]\nblock_ms = 20\n[voice]\nprofile = "default"\n'
        )
        cfg = load_config(folder / "config.toml", {})
        engine = build_engine(cfg)
        controller = Controller(cfg, engine, "default")
        speech = load_mono(bundled_speech(), SR)
        seconds = 12 * args.rounds + 10
        device = VirtualDevice(engine, np.tile(speech, seconds * SR // len(speech) + 1)[: seconds * SR], 256)
        engine.start()
        device.start()
        time.sleep(2)

        def select(name: str) -> float:
            t0 = time.perf_counter()
            controller.select_voice(name, "bench")
            took = time.perf_counter() - t0
            time.sleep(1.0)
            return round(took * 1e3, 2)

        for r in range(args.rounds):
            controller._kept = None  # (let go: this round's first select loads)
            row = {"load_ms": select("voice"), "to_default_ms": select("default"), "back_ms": select("voice")}
            select("default")
            rows.append(row)
            print(f"  {r + 1}/{args.rounds} {row}", flush=True)
        device.stop()
        engine.stop()

    med = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
    print(f"\nvoices.select of a full-size RVC voice, median of {args.rounds}: load {med['load_ms']:.0f} ms, "
          f"back to it (kept) {med['back_ms']:.1f} ms; ratio {med['load_ms'] / med['back_ms']:.0f}x")  # fmt: skip
    write_result(
        args.out,
        "voice_back",
        {
            "machine": machine(),
            "median_ms": med,
            "ratio_load_to_back": round(med["load_ms"] / med["back_ms"], 1),
            "rounds": rows,
            "command": "python " + " ".join(["bench/voice_back.py", *sys.argv[1:]]),
        },
    )


if __name__ == "__main__":
    main()
