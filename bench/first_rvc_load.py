"""The first RVC voice loaded while the default voice plays, torch not loaded yet: what the playing voice loses.

A daemon started without RVC profiles has not loaded torch; the first RVC voice a client selects imports it
and what the voice needs (torchfcpe with librosa and numba, faiss), on the load thread, with audio running,
then builds the voice. Each run here is a fresh process (an import happens once a process): the default
voice (pitch, no model) plays on the paced virtual device (--period frames a callback, --block-ms blocks,
the daemon's real-time worker) for 3 s, then one thread loads a full-size RVC v2 48k voice with HuBERT base,
FCPE and a faiss index (voice_load.write_voice: random weights), as voices.select does (`build_converter`):
- `plain`: the load as rtvc made it until 2026-12-04 (torch and the RVC modules imported, then what the
  voice needs as its build reaches it; no giving way);
- `quiet`: as rtvc makes them now (`RvcVoice.preload(model)`, rtvc.quiet_import): native libraries loaded
  without the GIL, no garbage collection during the imports and what they made frozen out of later ones,
  and each module waits for the worker's free time between blocks;
- `quiet, not yielding`: the same imports without the waits (nor the build's: rtvc.quiet_import.giving_way);
- `idle`: nothing loads, for as long as the median load took (what the machine does on its own).
The modes take turns, in an order that changes each round. Per run: the load's seconds, output underruns
(ms of silence and events), late callbacks of the virtual device (its callbacks are Python: they wait for
the lock too, where a sound card's are C), the worker's slowest block, and how long a real-time Python
thread waited for the interpreter's lock (voice_load.LockProbe: waits over 4 ms).

    python bench/first_rvc_load.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import machine, write_result

SR = 48000
MODES = ("plain", "quiet, not yielding", "quiet", "idle")
HERE = Path(__file__).parent


WRITE = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from voice_load import write_voice
write_voice(Path(sys.argv[1]), int(sys.argv[2]))
"""  # (in a process of its own: writing the models imports torch, which the runs must not find loaded)


def child(mode: str, folder: Path, block_ms: int, period: int, idle_s: float) -> dict:
    """One run in this process: play, load (or idle) on a thread, count what the playing voice lost."""
    from voice_load import LockProbe

    from rtvc import quiet_import
    from rtvc.audio.virtual import VirtualDevice
    from rtvc.config import load_config
    from rtvc.run import build_converter, build_engine
    from rtvc.voices.rvc import RvcVoice, import_runtime
    from rtvc.wavio import bundled_speech, load_mono

    if "torch" in sys.modules:
        raise SystemExit("first_rvc_load: torch was imported before the load; the run would measure nothing")
    if mode == "plain":  # (the imports as before: torch and the RVC modules, the rest where the build needs it)
        RvcVoice.preload = staticmethod(lambda model=None: import_runtime())
    cfg = load_config(folder / "config.toml", {})
    engine = build_engine(cfg)
    speech = load_mono(bundled_speech(), SR)
    seconds = 60
    device = VirtualDevice(engine, np.tile(speech, seconds * SR // len(speech) + 1)[: seconds * SR], period)
    engine.start()
    if mode in ("plain", "quiet, not yielding"):  # (no engine to give way to: no wait, no hook)
        quiet_import.give_way(None)
    device.start()
    probe = LockProbe()
    time.sleep(3)
    x0, late0, n0 = engine.status().xruns, device.late_callbacks, engine.timer.count
    failed: list[BaseException] = []
    loaded: list[object] = []

    def load() -> None:
        try:
            if mode == "idle":
                time.sleep(idle_s)
            else:
                loaded.append(build_converter(cfg, "voice"))
        except BaseException as e:
            failed.append(e)

    probe.window()
    steal0 = _steal_ms()
    t0 = time.perf_counter()
    th = threading.Thread(target=load, name="load")
    th.start()
    th.join()
    took = time.perf_counter() - t0
    time.sleep(0.2)  # (a block late at the end shows in the counters)
    steal = _steal_ms() - steal0
    held = probe.result()
    x = engine.status().xruns
    blocks = engine.timer.since(n0)
    device.stop()
    engine.stop()
    probe.stop()
    if failed:
        raise SystemExit(f"first_rvc_load: the {mode} load failed: {failed[0]}")
    return {
        "seconds": round(took, 3),
        "underrun_ms": round((x.output_underrun_frames - x0.output_underrun_frames) * 1e3 / SR, 1),
        "underrun_events": x.output_underrun_events - x0.output_underrun_events,
        "late_callbacks": device.late_callbacks - late0,
        "block_max_ms": round(float(blocks.max()) * 1e3, 2) if len(blocks) else 0.0,
        "steal_ms": steal,
        **held,
    }


def _steal_ms() -> float:
    """CPU time the hypervisor took from this VM so far (/proc/stat's steal, all CPUs), in ms: a run that
    lost audio while the VM was stolen from lost it to the machine."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0
    return int(fields[8]) * 1e3 / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def run_modes(args: argparse.Namespace, folder: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {m: [] for m in MODES}
    for k in range(args.rounds):
        order = MODES if k % 2 == 0 else MODES[::-1]
        for mode in order:
            took = [r["seconds"] for m in MODES[:-1] for r in rows[m]]
            cmd = [sys.executable, __file__, "--child", mode, "--folder", str(folder), "--block-ms", str(args.block_ms)]
            cmd += ["--period", str(args.period), "--idle-s", str(statistics.median(took) if took else 8.0)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise SystemExit(f"first_rvc_load: a {mode} run failed:\n{done.stdout}{done.stderr}")
            rows[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  {k + 1}/{args.rounds} {mode:20s} {rows[mode][-1]}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="runs per mode")
    ap.add_argument("--block-ms", type=int, default=20)
    ap.add_argument("--period", type=int, default=256)
    ap.add_argument(
        "--index-vectors",
        type=int,
        default=60000,
        help="features in the voice's .index (60,000: 190 MB, a community voice's; RVC keeps up to 200,000)",
    )
    ap.add_argument("--out", type=Path, default=HERE / "results" / "first_rvc_load.json")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--idle-s", type=float, default=8.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder, args.block_ms, args.period, args.idle_s)))
        return

    with tempfile.TemporaryDirectory(prefix="rtvc-first-load-") as tmp:
        folder = Path(tmp)
        print("writing a full-size RVC v2 48k voice, HuBERT base and an index (random weights)...", flush=True)
        subprocess.run([sys.executable, "-c", WRITE, str(folder), str(args.index_vectors), str(HERE)], check=True)
        (folder / "config.toml").write_text(
            f"[audio]\nsamplerate = {SR}\nperiod = {args.period}\n[stream]\nblock_ms = {args.block_ms}\n"
            '[voice]\nprofile = "default"\n'
        )
        rows = run_modes(args, folder)

    def summary(mode: str) -> dict:
        col = {key: [row[key] for row in rows[mode]] for key in rows[mode][0]}
        return {
            "seconds_median": round(statistics.median(col["seconds"]), 2),
            "underrun_ms_median": round(statistics.median(col["underrun_ms"]), 1),
            "underrun_ms_max": round(max(col["underrun_ms"]), 1),
            "underrun_events_median": statistics.median(col["underrun_events"]),
            "late_callbacks_median": statistics.median(col["late_callbacks"]),
            "block_max_ms_median": round(statistics.median(col["block_max_ms"]), 1),
            "block_max_ms_max": round(max(col["block_max_ms"]), 1),
            "lock_waits_over_4ms_median": statistics.median(col["lock_waits_over_4ms"]),
            "lock_wait_ms_sum_median": round(statistics.median(col["lock_wait_ms_sum"]), 1),
            "lock_wait_max_ms_median": round(statistics.median(col["lock_wait_max_ms"]), 1),
            "lock_wait_max_ms_max": max(col["lock_wait_max_ms"]),
            "steal_ms_median": round(statistics.median(col["steal_ms"]), 1),
            "per_run": rows[mode],
        }

    result = {m: summary(m) for m in MODES}
    print(
        f"\nthe first RVC voice loaded (torch not loaded yet) while the default voice plays ({args.block_ms} ms "
        f"blocks, period {args.period}), {args.rounds} runs a mode, each a fresh process, medians (max)"
    )
    print(
        f"{'mode':20s} {'s':>5} {'silence ms':>15} {'underruns':>10} {'late cb':>8} {'worker max ms':>16}"
        f" {'lock waits>4ms':>15} {'lock wait ms':>9} {'longest ms':>16} {'VM steal ms':>12}"
    )
    for m in MODES:
        s = result[m]
        print(
            f"{m:20s} {s['seconds_median']:>5.2f} {s['underrun_ms_median']:>7.1f} ({s['underrun_ms_max']:>5.1f}) "
            f"{s['underrun_events_median']:>10g} {s['late_callbacks_median']:>8g} "
            f"{s['block_max_ms_median']:>7.1f} ({s['block_max_ms_max']:>6.1f})"
            f" {s['lock_waits_over_4ms_median']:>15g} {s['lock_wait_ms_sum_median']:>12.1f}"
            f" {s['lock_wait_max_ms_median']:>7.1f} ({s['lock_wait_max_ms_max']:>6.1f}) {s['steal_ms_median']:>12.0f}"
        )
    from voice_load import _commit

    write_result(
        args.out,
        "first_rvc_load",
        {
            "machine": machine(),
            "block_ms": args.block_ms,
            "period": args.period,
            "runs_per_mode": args.rounds,
            "index_vectors": args.index_vectors,
            "rtvc_commit": _commit(),
            "modes": result,
            "command": "python " + " ".join(["bench/first_rvc_load.py", *sys.argv[1:]]),
        },
    )


if __name__ == "__main__":
    main()
