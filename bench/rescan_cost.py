"""What reading PortAudio's device list again costs, and how often a device left unplugged has it read.

While the devices in use are gone (a USB microphone unplugged), `rtvc serve` looks for them every 2 s
(rtvc/audio/switch.py, recover_due); a look that tries reads PortAudio's list again (rtvc.audio.devices.rescan:
PortAudio terminated and initialised). This measures, in a child process per sound system, the CPU time of a
read (p50, p99) and the memory the process keeps per read (its resident set over `--reads` reads, after warm-up):
on PipeWire's ALSA plugin (a private PipeWire, tests/pipewire_harness.py) and on a JACK dummy server (a private
jackd). Then the reads in an hour of a device left unplugged, with the system's devices unchanged: every look (the
code until 2026-12-07) against devices.Rereads (every look for a minute, then every 30 s or when a sound card or
server comes or goes), on a simulated clock with the real `system_audio()`; and the memory kept per hour either way.

    python bench/rescan_cost.py [--reads 200]

Prints a table and writes bench/results/rescan_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import machine, write_result  # noqa: E402
from pipewire_harness import PipeWire, missing  # noqa: E402

CHILD = """
import json, sys, time
from rtvc.audio import devices

def kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4

n = int(sys.argv[1])
for _ in range(20):  # (warm-up: PortAudio's and the plugins' first allocations)
    devices.rescan(quiet=True)
before, ms = kib(), []
for _ in range(n):
    t = time.perf_counter()
    found = devices.rescan(quiet=True)
    ms.append(1e3 * (time.perf_counter() - t))
print(json.dumps({"ms": ms, "kib_per_read": (kib() - before) / n, "devices": len(found)}))
"""


def measure(env: dict[str, str], reads: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(reads)], env=env, capture_output=True, text=True, timeout=900, cwd=ROOT
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    got = json.loads(out.stdout.strip().splitlines()[-1])
    ms = sorted(got.pop("ms"))
    return {**got, "ms_p50": round(ms[len(ms) // 2], 1), "ms_p99": round(ms[int(0.99 * (len(ms) - 1))], 1)}


def jack_dummy(name: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(2.0)
    return proc


def reads_per_hour() -> dict[str, int]:
    """Tries in an hour of a device left unplugged, on a simulated clock (serve's loop asks every 0.25 s)."""
    from rtvc.audio import devices
    from rtvc.audio.switch import RECOVER_S

    rereads, now, looks, reads = devices.Rereads(0.0), 0.0, 0, 0
    while now < 3600.0:
        now += RECOVER_S
        looks += 1
        reads += rereads.due(now)
    return {"every look (before)": looks, "Rereads (now)": reads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=200, help="reads of the device list per sound system")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rescan_cost.json")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = []
    if missing():
        print(f"PipeWire row left out: needs {' '.join(missing())}")
    else:
        with PipeWire(256) as pw:
            rows.append({"system": f"PipeWire {pw.version()}, ALSA plugin", **measure({**pw.env, **env}, args.reads)})
    if shutil.which("jackd"):
        name = f"rtvc-rescan-bench-{os.getpid()}"
        jack = jack_dummy(name)
        try:
            rows.append({"system": "JACK dummy server", **measure({**env, "JACK_DEFAULT_SERVER": name}, args.reads)})
        finally:
            jack.terminate()
            jack.wait(10)
    hour = reads_per_hour()
    print(f"\n{'sound system':<34} {'read p50 ms':>11} {'p99 ms':>7} {'KiB kept/read':>13} {'MB/h before':>11} "
          f"{'MB/h now':>8}")  # fmt: skip
    for r in rows:
        before, now = (hour[k] * r["kib_per_read"] / 1024 for k in hour)
        r["mb_per_hour"] = {"every look (before)": round(before, 1), "Rereads (now)": round(now, 2)}
        print(
            f"{r['system']:<34} {r['ms_p50']:>11} {r['ms_p99']:>7} {r['kib_per_read']:>13.1f} {before:>11.1f}"
            f" {now:>8.2f}"
        )
    print(f"reads in an hour of a device left unplugged: {hour}")
    write_result(args.out, "rescan_cost", {"machine": machine(), "reads": args.reads, "rows": rows, "per_hour": hour})


if __name__ == "__main__":
    main()
