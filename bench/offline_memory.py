"""`rtvc convert --offline` on long files: the largest memory it takes and its time, by the file's length.

One pass over the whole file took memory as the square of its length (HuBERT's and the text encoder's attention;
a helper measured 1.78 GB at 30 s and 14.07 GB at 180 s), oneDNN kept kernels and buffers for each new input length,
and the resampling to 16 kHz built (outputs x taps) arrays for the whole file. Now files past 45 s go in passes of
about 30 s (rtvc.voices.rvc.offline_cuts). Each row is a fresh `rtvc convert --offline` process (its peak RSS
from the kernel: wait4's usage of the finished child) on the bundled speech repeated to the length, through a tiny
random-weight RVC v2 48k voice with YIN. `--before PATH`: the same rows with PYTHONPATH at another checkout (a
worktree of an older commit, with this checkout's rtvc/_rt*.so copied into its rtvc/), side by side in one run.

    python bench/offline_memory.py --seconds 40 60 180 600 [--before /tmp/old --before-seconds 60 120]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from common import machine, write_result

ROOT = Path(__file__).resolve().parent.parent
SR = 48000


def setup(d: Path) -> Path:
    from rtvc.rvc.factory import write_rvc_checkpoint
    from rtvc.rvc.hubert_factory import write_fairseq_hubert

    write_rvc_checkpoint(d / "v2.pth", version="v2", sr="48k", f0=1, size="tiny", seed=1)
    write_fairseq_hubert(d / "hubert.pt", seed=0, layers=2, dim=768, heads=12, ffn=512)
    (d / "profiles").mkdir()
    (d / "profiles" / "tiny.toml").write_text(
        'voice = "rvc"\n[model]\npath = "../v2.pth"\ncontent = "../hubert.pt"\nf0 = "yin"\n'
    )
    (d / "config.toml").write_text('[voice]\nprofile = "tiny"\n')
    return d / "config.toml"


def run(config: Path, seconds: int, pythonpath: Path) -> dict:
    from rtvc.wavio import bundled_speech, load_mono

    src = config.parent / f"in{seconds}.wav"
    if not src.exists():
        sf.write(src, np.resize(0.5 * load_mono(bundled_speech(), SR), seconds * SR), SR)
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    cmd = [sys.executable, "-m", "rtvc", "convert", "--offline", "--config", str(config), str(src), f"{src}.out.wav"]
    log = config.parent / "convert.log"
    t0 = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=config.parent)
        _pid, status, usage = os.wait4(proc.pid, 0)  # (this child's own peak, in KiB)
        proc.returncode = os.waitstatus_to_exitcode(status)
    took = time.monotonic() - t0
    if proc.returncode != 0:
        return {"seconds": seconds, "error": log.read_text().strip().splitlines()[-1:]}
    return {"seconds": seconds, "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 2), "wall_s": round(took, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, nargs="+", default=[40, 60, 180, 600])
    ap.add_argument("--before", type=Path, help="another checkout to run the same rows from (PYTHONPATH)")
    ap.add_argument("--before-seconds", type=int, nargs="+", default=[60, 120])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "offline_memory.json")
    args = ap.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = setup(Path(tmp))
        plan = [("before", s, args.before) for s in args.before_seconds] if args.before else []
        plan += [("now", s, ROOT) for s in args.seconds]
        print(f"{'code':8} {'file':>6} {'peak RSS':>10} {'time':>8}")
        for code, seconds, path in plan:
            row = {"code": code, **run(config, seconds, path)}
            rows.append(row)
            if "error" in row:
                print(f"{code:8} {seconds:5d}s  {row['error']}")
            else:
                print(f"{code:8} {seconds:5d}s {row['peak_rss_gb']:8.2f} GB {row['wall_s']:7.1f} s")
    write_result(
        args.out,
        "offline_memory",
        {
            "machine": machine(),
            "voice": "tiny random-weight RVC v2 48k, 2-layer HuBERT (768-d), YIN",
            "before": str(args.before) if args.before else None,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
