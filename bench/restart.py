"""How long rtvc serve is without sound when its sound server restarts under it.

Three ways, --rounds restarts each, on this machine's own servers (no sound card):
- "jackd": `rtvc serve --host-api JACK` on a JACK dummy server that is stopped and started again 1 s later
  (PortAudio cannot let go of the old server: serve starts anew by itself, rtvc/restart.py). Timed from the new
  server answering to rtvc's engine running again with its callbacks advancing.
- "pw-jack" and "alsa": `rtvc serve` on a private PipeWire with WirePlumber (tests/pipewire_harness.py), under
  pw-jack and through PipeWire's ALSA plugin (`default`), PipeWire and WirePlumber restarted at the same socket
  (as `systemctl --user restart pipewire`). Timed from WirePlumber running again to the first of 3 impulses
  carried through rtvc (a 2 s window each half second: the figure is up to 0.5 s late).

    python bench/restart.py [--rounds 3]

Prints a table (median and max seconds) and writes bench/results/restart.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import machine, write_result  # noqa: E402
from daemon_harness import RpcClient  # noqa: E402
from jack_daemon import JackDaemon  # noqa: E402
from jack_harness import JackServer  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402


def jackd_rounds(rounds: int) -> list[float]:
    server = JackServer(256, role="bench")
    server.start()
    daemon = JackDaemon(server.name, Path(tempfile.mkdtemp(prefix="rtvc-bench-restart-")), "passthrough")
    took = []

    def callbacks() -> int | None:
        try:
            rpc = RpcClient(daemon.port, daemon.token)
        except OSError:
            return None
        try:
            st = rpc.call("status.get")["engine"]
        except (ConnectionClosed, AssertionError, TimeoutError):  # (the old serve closing, or the new one starting)
            return None
        finally:
            rpc.close()
        return st["callbacks"] if st["state"] == "running" else None

    try:
        wait(callbacks, 30, daemon.log)
        for _ in range(rounds):
            server.stop()
            time.sleep(1.0)
            server.start()  # (returns once the server answers)
            t0 = time.monotonic()
            first = wait(callbacks, 40, daemon.log)
            wait(lambda first=first: (n := callbacks()) is not None and n > first, 10, daemon.log)
            took.append(time.monotonic() - t0)
            print(f"  jackd: running again {took[-1]:.2f} s after the server was back", flush=True)
    finally:
        daemon.stop()
        server.stop()
    return took


def pipewire_rounds(via: str, rounds: int) -> list[float]:
    from pipewire_harness import PipeWire, Served

    took = []
    with PipeWire(256) as pw, Served(pw, "default", via=via) as rtvc:
        wait(lambda: rtvc.latency(), 30, rtvc.log)
        for _ in range(rounds):
            pw.restart()  # (returns once WirePlumber runs)
            t0 = time.monotonic()
            rtvc.heard_again(60, warm=0.0)
            took.append(time.monotonic() - t0)
            print(f"  {via}: sound again {took[-1]:.2f} s after PipeWire was back", flush=True)
    return took


def wait(fn, seconds: float, log):
    deadline = time.monotonic() + seconds
    while not (got := fn()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out; rtvc said:\n{log()[-3000:]}")
        time.sleep(0.1)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rows = {
        "jackd (JACK)": jackd_rounds(args.rounds),
        "PipeWire under pw-jack": pipewire_rounds("jack", args.rounds),
        "PipeWire through ALSA": pipewire_rounds("alsa", args.rounds),
    }
    print(f"\n{'server restarted, rtvc on':<28} {'rounds':>6} {'median s':>9} {'max s':>7}")
    for name, t in rows.items():
        print(f"{name:<28} {len(t):>6} {np.median(t):>9.2f} {max(t):>7.2f}")
    result = {
        "machine": machine(),
        "rounds": args.rounds,
        "seconds": {name: [round(x, 3) for x in t] for name, t in rows.items()},
        "median_s": {name: round(float(np.median(t)), 3) for name, t in rows.items()},
        "max_s": {name: round(max(t), 3) for name, t in rows.items()},
        "before": "under JACK and pw-jack rtvc never came back (PortAudio's stop waits 10 minutes; restart by hand)",
    }
    write_result(ROOT / "bench" / "results" / "restart.json", "restart", result)


if __name__ == "__main__":
    main()
