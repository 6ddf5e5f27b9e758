"""Loading a model voice while another plays: how long the load takes and what the playing voice loses.

A user switches voices while talking: `voices.select` loads the new profile on a control thread while the
worker plays the current voice. This bench plays the default voice (pitch, no model) on the paced virtual
device (--period frames a callback, --block-ms blocks, the daemon's real-time worker) and loads a full-size RVC
v2 48k voice with HuBERT base, FCPE and a faiss index, all written here with random weights, the way the
daemon does (`build_converter` on another thread: read, build, check, one rehearsal block). It counts the
output underruns (ms of silence), the virtual device's late callbacks, the worker's slowest block and how long
a real-time Python thread waited for the interpreter's lock (LockProbe), per load, beside `idle` stretches of
the same length in turns (nothing loads: what the machine does on its own).
In `load, shared` another RVC voice on the same HuBERT file is loaded already, as when a user switches from one
community voice to another: the new voice takes that voice's content encoder (ContentEncoder.shared).

    python bench/voice_load.py --loads 5
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import machine, write_result

SR = 48000
MODES = ("idle", "load", "load, shared")  # shared: another RVC voice on the same HuBERT file is loaded meanwhile


def write_voice(folder: Path, index_vectors: int) -> None:
    from rtvc.rvc.factory import write_rvc_checkpoint
    from rtvc.rvc.hubert_factory import write_fairseq_hubert
    from rtvc.rvc.index import write_index

    models = folder / "models"
    models.mkdir()
    write_rvc_checkpoint(models / "voice.pth", version="v2", sr="48k", f0=1, size="full", seed=0)
    write_rvc_checkpoint(models / "other.pth", version="v2", sr="48k", f0=1, size="full", seed=1)
    write_fairseq_hubert(models / "hubert_base.pt", seed=0)
    feats = np.random.default_rng(0).standard_normal((index_vectors, 768)).astype(np.float32)
    write_index(models / "voice.index", feats)
    (folder / "profiles").mkdir()
    (folder / "profiles" / "voice.toml").write_text(
        'label = "bench"\nvoice = "rvc"\n[model]\npath = "../models/voice.pth"\n'
        'content = "../models/hubert_base.pt"\nf0 = "fcpe"\nindex = "../models/voice.index"\n'
    )
    (folder / "profiles" / "other.toml").write_text(
        'label = "other"\nvoice = "rvc"\n[model]\npath = "../models/other.pth"\n'
        'content = "../models/hubert_base.pt"\nf0 = "fcpe"\n'
    )
    (folder / "profiles" / "default.toml").write_text(
        (Path(__file__).parent.parent / "profiles/default.toml").read_text()
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=int, default=5, help="loads per mode")
    ap.add_argument("--block-ms", type=int, default=20)
    ap.add_argument("--period", type=int, default=256)
    ap.add_argument(
        "--index-vectors",
        type=int,
        default=60000,
        help="features in the voice's .index (60,000: 190 MB, a community voice's; RVC keeps up to 200,000)",
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "voice_load.json")
    args = ap.parse_args()

    from rtvc.audio.virtual import VirtualDevice
    from rtvc.config import load_config
    from rtvc.run import build_converter, build_engine
    from rtvc.voices.rvc import RvcVoice
    from rtvc.wavio import bundled_speech, load_mono

    RvcVoice.preload()  # (as the daemon does before its audio starts)
    with tempfile.TemporaryDirectory(prefix="rtvc-load-") as tmp:
        folder = Path(tmp)
        print("writing a full-size RVC v2 48k voice, HuBERT base and an index (random weights)...", flush=True)
        write_voice(folder, args.index_vectors)
        cfg_path = folder / "config.toml"
        cfg_path.write_text(
            f"[audio]\nsamplerate = {SR}\nperiod = {args.period}\n[stream]\nblock_ms = {args.block_ms}\n"
            '[voice]\nprofile = "default"\n'
        )
        cfg = load_config(cfg_path, {})
        build_converter(cfg, "voice")  # one load first: the files are in the page cache for every mode
        engine = build_engine(cfg)
        speech = load_mono(bundled_speech(), SR)
        seconds = 30 * len(MODES) * args.loads + 30
        device = VirtualDevice(engine, np.tile(speech, seconds * SR // len(speech) + 1)[: seconds * SR], args.period)
        engine.start()
        device.start()
        time.sleep(3)
        rows: dict[str, list[dict]] = {m: [] for m in MODES}
        probe = LockProbe()
        load_s: list[float] = []
        for k in range(args.loads):
            for mode in MODES:
                # "load, shared": the voice a user switches from, another RVC voice on the same HuBERT, is loaded
                # (loaded here before the measured stretch; the other modes run with no RVC voice loaded)
                other = build_converter(cfg, "other") if mode == "load, shared" else None
                if other is not None:
                    time.sleep(1.0)  # (as after each mode)
                x0, late0, n0 = engine.status().xruns, device.late_callbacks, engine.timer.count
                probe.window()
                t0 = time.perf_counter()
                if mode == "idle":
                    time.sleep(statistics.median(load_s) if load_s else 1.5)
                else:
                    load_on_a_thread(build_converter, cfg)
                took = time.perf_counter() - t0
                held = probe.result()
                if mode != "idle":
                    load_s.append(took)
                x = engine.status().xruns
                blocks = engine.timer.since(n0)
                rows[mode].append({
                    "seconds": round(took, 3),
                    "underrun_ms": (x.output_underrun_frames - x0.output_underrun_frames) * 1e3 / SR,
                    "underrun_events": x.output_underrun_events - x0.output_underrun_events,
                    "late_callbacks": device.late_callbacks - late0,
                    "block_max_ms": round(float(blocks.max()) * 1e3, 2) if len(blocks) else 0.0,
                    **held,
                })  # fmt: skip
                print(f"  {k + 1}/{args.loads} {mode:12s} {rows[mode][-1]}", flush=True)
                del other
                gc.collect()
                time.sleep(1.0)  # (the next mode starts from a drained ring)
        device.stop()
        engine.stop()
        probe.stop()

    def summary(mode: str) -> dict:
        r = rows[mode]
        col = {key: [row[key] for row in r] for key in r[0]}
        return {
            "seconds_median": round(statistics.median(col["seconds"]), 2),
            "underrun_ms_median": round(statistics.median(col["underrun_ms"]), 1),
            "underrun_ms_max": round(max(col["underrun_ms"]), 1),
            "underrun_events_median": statistics.median(col["underrun_events"]),
            "late_callbacks_median": statistics.median(col["late_callbacks"]),
            "block_max_ms_median": round(statistics.median(col["block_max_ms"]), 1),
            "block_max_ms_max": round(max(col["block_max_ms"]), 1),
            "lock_waits_over_4ms_median": statistics.median(col["lock_waits_over_4ms"]),
            "lock_wait_max_ms_max": max(col["lock_wait_max_ms"]),
            "per_load": r,
        }

    result = {m: summary(m) for m in MODES}
    print(f"\nloading a full-size RVC voice while the default voice plays ({args.block_ms} ms blocks, period "
          f"{args.period}), {args.loads} loads a mode, medians (max)")  # fmt: skip
    print(
        f"{'mode':12s} {'load s':>7} {'silence ms':>15} {'underruns':>10} {'late cb':>8} {'worker max ms':>16}"
        f" {'lock waits>4ms':>15} {'longest':>8}"
    )
    for m in MODES:
        s = result[m]
        print(
            f"{m:12s} {s['seconds_median']:>7.2f} {s['underrun_ms_median']:>7.1f} ({s['underrun_ms_max']:>5.1f}) "
            f"{s['underrun_events_median']:>10g} {s['late_callbacks_median']:>8g} "
            f"{s['block_max_ms_median']:>7.1f} ({s['block_max_ms_max']:>6.1f})"
            f" {s['lock_waits_over_4ms_median']:>15g} {s['lock_wait_max_ms_max']:>8.1f}"
        )
    write_result(
        args.out,
        "voice_load",
        {
            "machine": machine(),
            "block_ms": args.block_ms,
            "period": args.period,
            "loads_per_mode": args.loads,
            "index_vectors": args.index_vectors,
            "rtvc_commit": _commit(),
            "lock_probe_realtime": probe.realtime,
            "thp": {"THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE"), "kernel": _thp_mode()},
            "modes": result,
            "command": "python " + " ".join(["bench/voice_load.py", *sys.argv[1:]]),
        },
    )


class LockProbe:
    """A thread at the worker's kind of priority (SCHED_FIFO 3 where allowed) that sleeps 1 ms at a time and
    records how much later than that it runs again: with the CPU its own, what it waits for is Python's lock.
    The waits over 4 ms in a window are the loader's long hold-ups of the lock, as the audio worker meets them."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.recording = False
        self.realtime = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO, os.sched_param(3))
            self.realtime = True
        except (OSError, AttributeError):
            pass
        while not self._stop.is_set():
            t0 = time.perf_counter()
            time.sleep(0.001)
            late = (time.perf_counter() - t0 - 0.001) * 1e3
            if self.recording and late > 4.0:
                self.waits.append(late)

    def window(self) -> None:
        self.waits = []
        self.recording = True

    def result(self) -> dict:
        self.recording = False
        return {
            "lock_waits_over_4ms": len(self.waits),
            "lock_wait_ms_sum": round(sum(self.waits), 1),
            "lock_wait_max_ms": round(max(self.waits, default=0.0), 1),
        }

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def load_on_a_thread(build_converter, cfg) -> None:
    """As the daemon's voices.select does: the load runs on a thread of its own (asyncio.to_thread)."""
    failed: list[BaseException] = []

    def load() -> None:
        try:
            build_converter(cfg, "voice")
        except BaseException as e:
            failed.append(e)

    th = threading.Thread(target=load, name="load")
    th.start()
    th.join()
    if failed:
        raise SystemExit(f"voice_load: the load failed: {failed[0]}")


def _thp_mode() -> str:
    """The kernel's transparent huge page mode ("always", "madvise", "never"), as torch meets it."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "unknown"
    return text[text.index("[") + 1 : text.index("]")] if "[" in text else text.strip()


def _commit() -> str:
    """The commit of the rtvc package measured (+ "-dirty" with changes not committed)."""
    import subprocess

    import rtvc

    where = Path(rtvc.__file__).parent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=where, capture_output=True, text=True)
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else "?"


if __name__ == "__main__":
    main()
