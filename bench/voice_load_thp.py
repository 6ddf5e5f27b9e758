"""Voice loads with and without huge pages for torch's tensors: how long the loader holds Python's lock.

rtvc sets THP_MEM_ALLOC_ENABLE=1 on import (rtvc/__init__.py): torch then backs its CPU tensors of 2 MB and more
with transparent huge pages. torch reads the setting once per process, so this bench runs bench/voice_load.py
in fresh processes, with the setting 0 and 1 in turns (--rounds of each), and gathers what its lock probe saw
during the loads: the waits over 4 ms of a real-time Python thread for the interpreter's lock, per load, and the
silence the playing voice had. The first load of each process grows it (fresh pages: the case the setting is
for); the later ones mostly reuse memory freed by the one before.

    python bench/voice_load_thp.py [--rounds 3] [--loads 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine, write_result

HERE = Path(__file__).resolve().parent
SETTINGS = ("0", "1")


def one_process(thp: str, loads: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="rtvc-thp-") as tmp:
        out = Path(tmp) / "voice_load.json"
        cmd = [sys.executable, str(HERE / "voice_load.py"), "--loads", str(loads), "--out", str(out)]
        done = subprocess.run(cmd, env={**os.environ, "THP_MEM_ALLOC_ENABLE": thp}, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"voice_load.py failed (THP_MEM_ALLOC_ENABLE={thp}):\n{done.stderr[-2000:]}")
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="processes per setting, in turns")
    ap.add_argument("--loads", type=int, default=3, help="loads per mode in each process")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "voice_load_thp.json")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    for r in range(args.rounds):
        for thp in SETTINGS:
            res = one_process(thp, args.loads)
            loads = [row for mode in ("load", "load, shared") for row in res["modes"][mode]["per_load"]]
            first = res["modes"]["load"]["per_load"][0]  # (the process's first load: it grows the process)
            runs[thp].append({"first": first, "all": loads, "kernel_thp": res["thp"]["kernel"]})
            print(
                f"round {r + 1}/{args.rounds} THP_MEM_ALLOC_ENABLE={thp}: first load {first['lock_waits_over_4ms']} "
                f"waits over 4 ms ({first['lock_wait_ms_sum']} ms in all), {first['underrun_ms']:.0f} ms silence",
                flush=True,
            )

    def summary(thp: str) -> dict:
        firsts = [run["first"] for run in runs[thp]]
        every = [row for run in runs[thp] for row in run["all"]]
        return {
            "first_load_lock_waits_median": statistics.median(f["lock_waits_over_4ms"] for f in firsts),
            "first_load_lock_wait_ms_sum_median": statistics.median(f["lock_wait_ms_sum"] for f in firsts),
            "first_load_silence_ms_median": round(statistics.median(f["underrun_ms"] for f in firsts), 1),
            "all_loads_lock_waits_median": statistics.median(row["lock_waits_over_4ms"] for row in every),
            "all_loads_lock_wait_max_ms": max(row["lock_wait_max_ms"] for row in every),
            "all_loads_silence_ms_median": round(statistics.median(row["underrun_ms"] for row in every), 1),
            "runs": runs[thp],
        }

    result = {s: summary(s) for s in SETTINGS}
    print(f"\n{'THP_MEM_ALLOC_ENABLE':>20} {'first load: waits':>18} {'waited ms':>10} {'silence ms':>11} "
          f"{'all loads: waits':>17} {'longest ms':>11} {'silence ms':>11}")  # fmt: skip
    for s in SETTINGS:
        v = result[s]
        print(
            f"{s:>20} {v['first_load_lock_waits_median']:>18g} {v['first_load_lock_wait_ms_sum_median']:>10.1f} "
            f"{v['first_load_silence_ms_median']:>11.1f} "
            f"{v['all_loads_lock_waits_median']:>17g} {v['all_loads_lock_wait_max_ms']:>11.1f} "
            f"{v['all_loads_silence_ms_median']:>11.1f}"
        )
    write_result(
        args.out,
        "voice_load_thp",
        {
            "machine": machine(),
            "method": f"{args.rounds} processes of bench/voice_load.py --loads {args.loads} per setting, in turns; "
            "medians over processes (first load) and over all loads of both load modes",
            "settings": result,
            "command": "python " + " ".join(["bench/voice_load_thp.py", *sys.argv[1:]]),
        },
    )


if __name__ == "__main__":
    main()
