"""A callback thread on the normal scheduler: the kernel's default time slice against rtvc's short one, side by
side, on a JACK server that runs without real-time scheduling and a CPU kept busy.

`rtvc serve` (default voice) runs on a JACK dummy server started with --no-realtime (period 256), fed a sine by
the C reference client, with the real TUI attached at 15 Hz meters and --busy processes spinning (a game, an
encoder). rtvc's PortAudio callback thread is then an ordinary thread; rtvc asks the kernel for a 0.1 ms slice
for it (rtvc/_rt.c, ask_short_slice), so that it preempts a busy thread when JACK wakes it. Phases of --seconds
alternate, on the same daemon, between:
- "default": this bench resets the thread to the kernel's default slice (sched_setattr from outside);
- "short": the 0.1 ms slice rtvc asks for;
- "fifo": SCHED_FIFO 2 (what a real-time JACK server gives its clients; needs root or an rtprio limit).
Each phase counts the daemon's xruns and whom jackd blamed, in which state ("Triggered": the thread had been
signalled but the OS had not run it yet). Prints a table and writes bench/results/callback_slice.json.
Linux on x86-64 only (the syscall numbers); the slices need Linux 6.12 or newer (EEVDF's custom slices).

    python bench/callback_slice.py                      # 3 rounds of 30 s a phase, 2 busy processes (5 minutes)
    python bench/callback_slice.py --seconds 5 --rounds 1   # a smoke run
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import machine, write_result  # noqa: E402
from jack_daemon import REFERENCE, JackDaemon  # noqa: E402
from jack_harness import JackServer  # noqa: E402

SCHED_SETATTR, SCHED_GETATTR = 314, 315  # x86-64
MODES = ("default", "short", "fifo")


class _Attr(ctypes.Structure):  # struct sched_attr, first version
    _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32), ("flags", ctypes.c_uint64),
                ("nice", ctypes.c_int32), ("priority", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
                ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64)]  # fmt: skip


_libc = ctypes.CDLL(None, use_errno=True)


def set_sched(tid: int, policy: int, priority: int = 0, slice_ns: int = 0) -> None:
    a = _Attr(ctypes.sizeof(_Attr), policy, 0, 0, priority, slice_ns, 0, 0)
    if _libc.syscall(SCHED_SETATTR, tid, ctypes.byref(a), 0) != 0:
        raise SystemExit(f"sched_setattr on thread {tid}: {os.strerror(ctypes.get_errno())}")


def slice_us(tid: int) -> int:
    a = _Attr()
    _libc.syscall(SCHED_GETATTR, tid, ctypes.byref(a), ctypes.sizeof(a), 0)
    return a.runtime // 1000


def callback_thread(pid: int, period: int, samplerate: int) -> int:
    """The daemon's thread that wakes once per JACK period (its PortAudio callback thread)."""

    def switches() -> dict[int, int]:
        out = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
            out[int(tid)] = int(re.search(r"\nvoluntary_ctxt_switches:\s+(\d+)", text).group(1))
        return out

    s0 = switches()
    time.sleep(2.0)
    s1 = switches()
    per_s = {t: (s1[t] - s0.get(t, 0)) / 2.0 for t in s1}
    tid = min(per_s, key=lambda t: abs(per_s[t] - samplerate / period))
    if abs(per_s[tid] - samplerate / period) > 0.1 * samplerate / period:
        raise SystemExit(f"no thread of the daemon wakes once a period: {per_s}")
    return tid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="per phase")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--busy", type=int, default=2, help="busy-looping processes (the CPU load)")
    ap.add_argument("--period", type=int, default=256)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "callback_slice.json")
    args = ap.parse_args()
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        raise SystemExit("Linux on x86-64 only (sched_setattr's syscall number)")
    server = JackServer(args.period, role="bench")
    server.start()
    rows: list[dict[str, Any]] = []
    busy: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory(prefix="rtvc-callback-slice-") as tmp:
            daemon = JackDaemon(server.name, Path(tmp), "default")
            try:
                daemon.feed_sine()
                tid = callback_thread(daemon.proc.pid, args.period, 48000)
                asked = slice_us(tid)
                print(f"rtvc's callback thread {tid}: slice {asked} us as rtvc left it", flush=True)
                total = args.seconds * len(MODES) * args.rounds + 30
                tui, _cpu0 = daemon.load("tui", total, 15.0)
                busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
                for k in range(args.rounds):
                    for mode in MODES:
                        if mode == "default":
                            set_sched(tid, os.SCHED_OTHER)
                        elif mode == "short":
                            set_sched(tid, os.SCHED_OTHER, slice_ns=asked * 1000)
                        else:
                            set_sched(tid, os.SCHED_FIFO, priority=2)
                        got_slice = slice_us(tid)
                        n0, before = len(server.blame_states()), daemon.counters()
                        time.sleep(args.seconds)
                        after, blamed = daemon.counters(), server.blame_states()[n0:]
                        row = {"round": k + 1, "mode": mode, "slice_us": got_slice, "seconds": args.seconds}
                        row["xruns"] = after["total"] - before["total"]
                        for who, name in (("rtvc", "rtvc"), ("reference", REFERENCE)):
                            states = [s for c, s in blamed if c == name]
                            row[f"{who}_blamed"] = len(states)
                            row[f"{who}_triggered"] = states.count("Triggered")
                        row["server_late"] = sum(1 for c, _s in blamed if c == "jackd")
                        rows.append(row)
                        print(row, flush=True)
                tui.kill()
            finally:
                daemon.stop()
    finally:
        for p in busy:
            p.kill()
        server.stop()
    cols = ("slice_us", "xruns", "rtvc_blamed", "rtvc_triggered", "reference_blamed", "server_late")
    print(f"\nJACK dummy --no-realtime, period {args.period}, default voice, TUI at 15 Hz, {args.busy} busy processes")
    print(f"{'round':>5} {'mode':<8}" + "".join(f"{c:>18}" for c in cols))
    for r in rows:
        print(f"{r['round']:>5} {r['mode']:<8}" + "".join(f"{r[c]:>18}" for c in cols))
    summary = {}
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        summary[mode] = {c: sum(r[c] for r in mine) for c in cols[1:]}
        summary[mode]["seconds"] = sum(r["seconds"] for r in mine)
        print(f"{mode}: {summary[mode]}")
    settings = {"period": args.period, "busy": args.busy, "rounds": args.rounds, "seconds": args.seconds}
    settings["kernel"] = platform.release()
    write_result(args.out, "callback_slice", {"machine": machine(), "settings": settings, "summary": summary,
                                              "phases": rows})  # fmt: skip


if __name__ == "__main__":
    main()
