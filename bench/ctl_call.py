"""How long `rtvc ctl` takes, as a desktop shortcut runs it: from the key's command to the change done and printed.

A real `rtvc serve --virtual` (default voice) runs with its own config and token folder; each call is a new process,
timed wall to wall, alternating with the same interpreter doing nothing (`python -c pass`, the floor any Python
command has) so that a noisy stretch of a shared machine falls on both. Rows: `status` (one request), `mute toggle`
(one request and the daemon's change), `select next` (voices.list, then voices.select of a pitch voice: it answers
once the voice plays), `pitch +1` (params.get, then params.set).

    python bench/ctl_call.py [--calls 40]

Prints a table and writes bench/results/ctl_call.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from common import machine, write_result

ROOT = Path(__file__).resolve().parent.parent
ACTIONS = (("status",), ("mute",), ("select", "next"), ("pitch", "+1"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=40, help="per row")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ctl_call.json")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="rtvc-bench-ctl-"))
    (root / "profiles").mkdir()
    for name in ("default", "higher", "giant"):
        shutil.copy(ROOT / "profiles" / f"{name}.toml", root / "profiles")
    port = free_port()
    (root / "config.toml").write_text(f'[voice]\nprofile = "default"\n\n[control]\nport = {port}\n')
    env = {**os.environ, "XDG_CONFIG_HOME": str(root / "xdg"), "PYTHONPATH": str(ROOT)}
    serve = subprocess.Popen(
        [sys.executable, "-m", "rtvc", "serve", "--virtual", "--config", str(root / "config.toml")],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/dock/dock.css", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or serve.poll() is not None:
                    raise SystemExit("rtvc serve did not come up") from None
                time.sleep(0.2)
        ctl = [sys.executable, "-m", "rtvc", "ctl", "--port", str(port)]
        floor, rows = [], []
        times: dict[str, list[float]] = {" ".join(a): [] for a in ACTIONS}
        for _ in range(args.calls):
            for action in ACTIONS:
                floor.append(timed([sys.executable, "-c", "pass"], env))
                times[" ".join(action)].append(timed([*ctl, *action], env))
        base = float(np.median(floor))
        print(f"{'rtvc ctl ...':<16} {'p50 ms':>8} {'p99 ms':>8} {'x python -c pass':>17}")
        print(f"{'(python -c pass)':<16} {1e3 * base:8.1f} {1e3 * np.percentile(floor, 99):8.1f} {1.0:17.2f}")
        for what, ts in times.items():
            row = {"action": what, "calls": len(ts), "p50_ms": round(1e3 * float(np.median(ts)), 1),
                   "p99_ms": round(1e3 * float(np.percentile(ts, 99)), 1),
                   "ratio_to_python_start": round(float(np.median(ts)) / base, 2)}  # fmt: skip
            rows.append(row)
            print(f"{what:<16} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f} {row['ratio_to_python_start']:17.2f}")
        floor_row = {"p50_ms": round(1e3 * base, 1), "p99_ms": round(1e3 * float(np.percentile(floor, 99)), 1)}
        write_result(args.out, "ctl_call", {"machine": machine(), "python_start": floor_row, "rows": rows})
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(10)
        except subprocess.TimeoutExpired:
            serve.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
