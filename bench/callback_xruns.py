"""Before and after 2026-12-04's callbacks: xruns of `rtvc serve` on JACK with the TUI attached, side by side.

Until 2026-12-04 rtvc's PortAudio callbacks were Python functions (through sounddevice), which must take the
GIL before they run, on a thread left with the kernel's default time slice; since then they are C (rtvc/_rt.c)
and ask for a short slice where they run on the normal scheduler. This runs the daemon of two checkouts in turn
on one JACK dummy server (--no-realtime, period 256, default voice, fed a sine by the C reference client
jack_simple_client), each phase with the real TUI attached at 15 Hz meters (the load under which CI counted
xruns that jackd blamed on rtvc alone) and --busy processes spinning: the baseline revision (a git worktree of
--baseline) and this checkout. The order alternates per round, so a noisy stretch of this shared VM falls on
both. Prints a table and writes bench/results/callback_xruns.json. (bench/callback_slice.py separates the
slice's share.)

    python bench/callback_xruns.py                       # 3 rounds, 60 s a phase (about 7 minutes)
    python bench/callback_xruns.py --seconds 10 --rounds 1   # a smoke run
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import machine, write_result  # noqa: E402
from jack_daemon import REFERENCE, JackDaemon, finish  # noqa: E402
from jack_harness import JackServer  # noqa: E402

BASELINE = "e5e36ae"  # the last commit with Python callbacks


def phase(name: str, source: Path, server: JackServer, tmp: Path, seconds: float, meter_hz: float) -> dict[str, Any]:
    daemon = JackDaemon(server.name, tmp / name.replace(" ", "-"), "default", source=source)
    try:
        daemon.feed_sine()
        time.sleep(1.0)  # start-up (priming, first blocks) is not measured
        client, _cpu0 = daemon.load("tui", seconds, meter_hz)
        blamed0 = len(server.blame_states())
        before, t0 = daemon.counters(), time.monotonic()
        got = finish(client, seconds)
        after, elapsed = daemon.counters(), time.monotonic() - t0
        blamed = server.blame_states()[blamed0:]
    finally:
        daemon.stop()
    if got["link"] != "connected":
        raise SystemExit(f"the TUI client lost its connection: {got}")
    row: dict[str, Any] = {"callbacks": name, "seconds": round(elapsed, 1), **{k: after[k] - before[k] for k in after}}
    mine = ("rtvc", "PortAudio")  # (the baseline's JACK client was PortAudio's default name)
    row["jackd_blamed_rtvc"] = sum(1 for c, _s in blamed if c in mine)
    row["rtvc_running"] = sum(1 for c, s in blamed if c in mine and s == "Running")  # (its own processing)
    row["jackd_blamed_reference"] = sum(1 for c, _s in blamed if c == REFERENCE)
    row["meter_hz_received"] = round(got["meter_updates"] / seconds, 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default=BASELINE, help="the revision with Python callbacks")
    ap.add_argument("--seconds", type=float, default=60.0, help="per phase")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--period", type=int, default=256)
    ap.add_argument("--meter-hz", type=float, default=15.0)
    ap.add_argument("--busy", type=int, default=0, help="busy-looping processes throughout (a CPU load)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "callback_xruns.json")
    args = ap.parse_args()
    rev = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT, capture_output=True, text=True)
    if rev.returncode != 0:
        raise SystemExit(f"no revision {args.baseline!r} in this checkout: {rev.stderr.strip()}")
    server = JackServer(args.period, role="bench")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rtvc-callback-xruns-") as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base), args.baseline], cwd=ROOT, check=True)
        server.start()
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        try:
            sides = [("python", base), ("C", ROOT)]
            for k in range(args.rounds):
                for name, source in sides if k % 2 == 0 else sides[::-1]:
                    rows.append(phase(name, source, server, Path(tmp) / f"r{k}", args.seconds, args.meter_hz))
                    print(rows[-1], flush=True)
        finally:
            for p in busy:
                p.kill()
            server.stop()
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)
    cols = ("seconds", "total", "portaudio_flags", "jackd_blamed_rtvc", "rtvc_running", "jackd_blamed_reference")
    base_rev = rev.stdout.strip()
    print(f"\nJACK dummy, period {args.period}, default voice, TUI at {args.meter_hz:g} Hz; baseline {base_rev}")
    print(f"{'callbacks':<10}" + "".join(f"{c:>24}" for c in cols))
    for r in rows:
        print(f"{r['callbacks']:<10}" + "".join(f"{r[c]:>24g}" for c in cols))
    summary = {}
    for name in ("python", "C"):
        mine = [r for r in rows if r["callbacks"] == name]
        summary[name] = {
            "xruns": sum(r["total"] for r in mine),
            "blamed_rtvc": sum(r["jackd_blamed_rtvc"] for r in mine),
            "blamed_rtvc_running": sum(r["rtvc_running"] for r in mine),
            "blamed_reference": sum(r["jackd_blamed_reference"] for r in mine),
            "seconds": round(sum(r["seconds"] for r in mine), 1),
        }
        s = summary[name]
        print(f"{name} callbacks: {s['xruns']} xruns in {s['seconds']:g} s (jackd blamed rtvc {s['blamed_rtvc']} "
              f"times, {s['blamed_rtvc_running']} of them running; the C reference client "
              f"{s['blamed_reference']})")  # fmt: skip
    settings = {"period": args.period, "meter_hz": args.meter_hz, "rounds": args.rounds, "voice": "default"}
    settings["busy"] = args.busy
    settings["baseline"] = base_rev
    write_result(args.out, "callback_xruns", {"machine": machine(), "settings": settings, "summary": summary,
                                              "phases": rows})  # fmt: skip


if __name__ == "__main__":
    main()
