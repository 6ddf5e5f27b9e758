"""The live engine on the virtual device: deadline misses and block times of one voice over a stretch of time.

It runs the command a user runs, `rtvc run --virtual --headless`, in a subprocess: speech plays as the
microphone, paced on the audio clock for --seconds, the virtual device calling back every --period frames as a
sound card would, at --block-ms blocks. A deadline miss is an output underrun (a callback found no converted
audio for its period) or an input overrun (the worker fell a whole ring behind): the engine counts both, never
hides them. Block time is the worker's processing per block, against the block's duration.

Voices: --voice NAME, a profile in this repository (default: the built-in pitch voice), or --rvc SIZE: an RVC
v2 48k voice with HuBERT base written here with random weights ("full": the reference models' sizes, as the GPU
aims are stated; "tiny" for a CPU smoke run), run with --backend / --device / --precision / --f0 / --compile.

    python bench/live_virtual.py --block-ms 10 --seconds 20
    python bench/live_virtual.py --rvc full --backend cuda-graph --device cuda --precision fp16 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import machine, write_result

from rtvc.wavio import bundled_speech, load_mono, save

ROOT = Path(__file__).resolve().parent.parent
SR = 48000


def write_rvc_profile(folder: Path, args: argparse.Namespace) -> str:
    from rtvc.rvc.factory import write_rvc_checkpoint
    from rtvc.rvc.hubert_factory import write_fairseq_hubert

    models = folder / "models"
    models.mkdir()
    write_rvc_checkpoint(models / "voice.pth", version="v2", sr="48k", f0=1, size=args.rvc, seed=0)
    if args.rvc == "full":
        write_fairseq_hubert(models / "hubert_base.pt", seed=0)
    else:
        write_fairseq_hubert(models / "hubert_base.pt", seed=0, layers=2, dim=768, heads=12, ffn=512)
    model = {
        "path": "../models/voice.pth", "content": "../models/hubert_base.pt", "f0": args.f0,
        "backend": args.backend, "device": args.device, "precision": args.precision,
    }  # fmt: skip
    lines = ['label = "bench"', 'voice = "rvc"', "[model]", *(f'{k} = "{v}"' for k, v in model.items())]
    if args.compile:
        lines.append("compile = true")
    (folder / "profiles" / "bench.toml").write_text("\n".join(lines) + "\n")
    return "bench"


def run(args: argparse.Namespace, folder: Path) -> dict:
    (folder / "profiles").mkdir()
    profile = write_rvc_profile(folder, args) if args.rvc else args.voice
    if not args.rvc:  # a profile of this repository
        for p in (ROOT / "profiles").glob("*.toml"):
            (folder / "profiles" / p.name).write_text(p.read_text())
    config = folder / "config.toml"
    config.write_text(
        f"[audio]\nsamplerate = {SR}\nperiod = {args.period}\n"
        f'[stream]\nblock_ms = {args.block_ms}\n[voice]\nprofile = "{profile}"\n'
    )
    speech = load_mono(bundled_speech(), SR)
    n = int((args.seconds + 2) * SR)
    save(folder / "clip.wav", np.tile(speech, n // len(speech) + 1)[:n], SR)
    report, record = folder / "report.json", folder / "played.wav"
    cmd = [
        sys.executable, "-m", "rtvc", "run", "--config", str(config), "--virtual", "--headless",
        "--duration", str(args.seconds), "--clip", str(folder / "clip.wav"), "--record", str(record),
        "--report-json", str(report),
    ]  # fmt: skip
    try:  # (loading and capturing a full-size voice takes seconds; a run that hangs past that says what it printed)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 90, cwd=folder)
    except subprocess.TimeoutExpired as e:
        said = [(t.decode(errors="replace") if isinstance(t, bytes) else t or "")[-3000:] for t in (e.stdout, e.stderr)]
        print(*said, sep="\n", file=sys.stderr)
        raise SystemExit(f"live_virtual: rtvc run did not end {args.seconds + 90:g} s after it started") from None
    if res.returncode != 0 or not report.exists():
        print(res.stdout[-3000:], res.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"live_virtual: rtvc run ended with code {res.returncode}")
    st = json.loads(report.read_text())
    played = load_mono(record, SR)
    x, t = st["xruns"], st["timing"]
    voice_line = next((ln for ln in res.stdout.splitlines() if ln.startswith("voice: ")), "voice: ?")
    return {
        "voice": voice_line[len("voice: ") :],
        "seconds": args.seconds,
        "block_ms": args.block_ms,
        "period": args.period,
        "blocks": t["count"],
        "block_p50_ms": round(t["p50_ms"], 3),
        "block_p99_ms": round(t["p99_ms"], 3),
        "block_max_ms": round(t["max_ms"], 3),
        "budget_ms": t["budget_ms"],
        "output_underrun_events": x["output_underrun_events"],
        "input_overrun_events": x["input_overrun_events"],
        "xruns_total": x["total"],
        "deadline_misses": x["output_underrun_events"] + x["input_overrun_events"],
        "skipped_blocks": st["skipped_blocks"],  # dropped unconverted: their slot had gone by
        "overloaded_blocks": st["overload"]["blocks"],
        "declared_latency_ms": st["latency"]["ms"]["total"],
        "worker_priority": st["worker_priority"],
        "state": st["state"],
        "state_detail": st["detail"] or st["overload"]["last"],
        "output_rms_dbfs": round(float(20 * np.log10(np.sqrt(np.mean(played**2)) + 1e-12)), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voice", default="default", help="a profile of this repository (without --rvc)")
    ap.add_argument("--rvc", choices=["full", "tiny"], help="an RVC v2 48k voice with random weights instead")
    ap.add_argument("--backend", default="eager", choices=["eager", "cuda-graph", "tensorrt"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    ap.add_argument("--compile", action="store_true", help="compile = true in the voice's profile (cuda-graph)")
    ap.add_argument("--f0", default="fcpe", choices=["fcpe", "yin", "crepe-tiny", "crepe"])
    ap.add_argument("--block-ms", type=float, default=10.0)
    ap.add_argument("--period", type=int, default=256, help="frames per virtual-device callback")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=None, help="default: bench/results/live_virtual[_<voice>].json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rtvc-live-") as tmp:
        r = run(args, Path(tmp))
    print(f"\n{r['voice']}: {r['seconds']:g} s live on the virtual device, {r['block_ms']:g} ms blocks", end="")
    print(f", period {r['period']}")
    print(f"{'blocks':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'budget':>7} {'misses':>7} {'out dBFS':>9}")
    print(
        f"{r['blocks']:>7} {r['block_p50_ms']:>8.2f} {r['block_p99_ms']:>8.2f} {r['block_max_ms']:>8.2f} "
        f"{r['budget_ms']:>7.1f} {r['deadline_misses']:>7} {r['output_rms_dbfs']:>9.1f}"
    )
    print(f"worker: {r['worker_priority']}; state {r['state']}")
    print(f"skipped blocks {r['skipped_blocks']}, overloaded for {r['overloaded_blocks']} blocks", end="")
    print(f": {r['state_detail']}" if r["state_detail"] else "")
    gpu = "none (CPU only)"
    if args.device == "cuda":
        import torch

        gpu = torch.cuda.get_device_name()
    name = "live_virtual" + (f"_rvc_{args.rvc}_{args.backend}_{args.device}_{args.precision}" if args.rvc else "")
    name += "_compiled" if args.compile else ""
    out = args.out or ROOT / "bench" / "results" / f"{name}.json"
    keys = ("rvc", "backend", "device", "precision", "f0", "compile")
    setup = {k: getattr(args, k) for k in keys} if args.rvc else {}
    write_result(out, "live_virtual", {"machine": machine(gpu=gpu), "setup": setup, "result": r})


if __name__ == "__main__":
    main()
