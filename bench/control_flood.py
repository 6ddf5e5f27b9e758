"""Does a control client in a tight loop cost the voice gaps? `rtvc serve` on JACK, quiet, then flooded.

A review found one local client looping on a request (send, read the reply, send again: a Stream Deck plugin
polling status.get, a chat bot's bug) made the voice crackle: each request holds Python's lock, which the audio
worker needs for every block. The control server now answers a client at `control.max_requests_per_s` (100/s by
default). This bench runs the daemon twice, side by side in one run: with the default rate, and with the rate
lifted (100000/s: as before the limit). Each daemon is fed a sine by a C JACK client (jack_simple_client, also the
machine's reference: when jackd blames it, the machine missed the deadline, not rtvc), and measured in alternating
phases: quiet, then flooded by a client (its own process) sending status.get in a tight loop, with the token (or
without: --no-token). Per phase: the daemon's xrun counters and output late frames (gaps heard), the requests
the flood got answered per second. Prints a table and writes bench/results/control_flood.json.

    python bench/control_flood.py                        # 2 rounds of 25 s quiet, 25 s flooded, per daemon
    python bench/control_flood.py --seconds 3 --rounds 1 # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import machine, write_result  # noqa: E402
from jack_daemon import JackDaemon  # noqa: E402
from jack_harness import JackServer, steal_ms  # noqa: E402

UNLIMITED = 100000


def flood(port: int, token: str, seconds: float) -> dict[str, Any]:
    """The load (run in its own process): status.get in a tight loop for `seconds`; the requests answered."""
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{port}/rpc" + (f"?token={token}" if token else "")
    request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status.get"})
    n, end = 0, time.monotonic() + seconds
    with connect(url, open_timeout=10, max_size=None) as ws:
        print("ready", flush=True)
        while time.monotonic() < end:
            ws.send(request)
            ws.recv(timeout=30)
            n += 1
    return {"requests": n}


def phase(name: str, server: JackServer, daemon: JackDaemon, seconds: float, token: str | None) -> dict[str, Any]:
    blamed0, steal0 = len(server.blame_states()), steal_ms()
    got: dict[str, Any] = {}
    if token is None:
        before = daemon.counters()
        time.sleep(seconds)
    else:
        cmd = [sys.executable, __file__, "--flood", str(daemon.port), token or "-", str(seconds)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            proc.kill()
            raise SystemExit("the flood client did not connect")
        before = daemon.counters()
        got = json.loads(proc.stdout.readline())
        proc.wait(30)
    after = daemon.counters()
    timing = daemon.engine()["timing"]  # (its window: the phase's latest blocks)
    row: dict[str, Any] = {"phase": name, "seconds": seconds, **{k: after[k] - before[k] for k in after}}
    row["gaps_ms"] = round(1e3 * row["output_late_frames"] / 48000, 1)
    row["block_p50_ms"], row["block_p99_ms"] = round(timing["p50_ms"], 2), round(timing["p99_ms"], 2)
    blamed = [client for client, _ in server.blame_states()[blamed0:]]
    row["jackd_blamed_rtvc"] = blamed.count("rtvc")
    row["jackd_blamed_c_client"] = blamed.count("jack_simple_client")
    row["steal_ms"] = round(steal_ms() - steal0)
    if got:
        row["requests_per_s"] = round(got["requests"] / seconds, 1)
    return row


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--flood":
        port, token, seconds = int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
        print(json.dumps(flood(port, "" if token == "-" else token, seconds)), flush=True)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=25.0, help="per phase (over the 20 s window of block times)")
    ap.add_argument("--rounds", type=int, default=2, help="quiet/flooded pairs per daemon")
    ap.add_argument("--no-token", action="store_true", help="the flood sends no token (its requests refused)")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--block-ms", type=float, default=10.0)
    ap.add_argument("--period", type=int, default=256)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "control_flood.json")
    args = ap.parse_args()
    server = JackServer(args.period, role="bench")
    server.start()
    rows: list[dict[str, Any]] = []
    try:
        for rate in (100, UNLIMITED):
            with tempfile.TemporaryDirectory(prefix="rtvc-flood-") as tmp:
                daemon = JackDaemon(
                    server.name, Path(tmp), args.profile, args.block_ms, control=f"max_requests_per_s = {rate}"
                )
                try:
                    daemon.feed_sine()
                    time.sleep(1.0)  # (start-up is in neither phase)
                    label = "100/s (default)" if rate == 100 else f"{rate}/s (no limit)"
                    for k in range(args.rounds):
                        rows.append({"rate": label, **phase(f"{k + 1}: quiet", server, daemon, args.seconds, None)})
                        token = "" if args.no_token else daemon.token
                        rows.append({"rate": label, **phase(f"{k + 1}: flooded", server, daemon, args.seconds, token)})
                finally:
                    daemon.stop()
    finally:
        server.stop()
    cols = ("total", "gaps_ms", "block_p50_ms", "block_p99_ms", "requests_per_s", "jackd_blamed_rtvc",
            "jackd_blamed_c_client")  # fmt: skip
    print(f"\nJACK dummy, period {args.period}, block {args.block_ms:g} ms, profile {args.profile}, "
          f"flood {'without' if args.no_token else 'with'} the token")  # fmt: skip
    print(f"{'rate limit':<22}{'phase':<12}" + "".join(f"{c[:20]:>22}" for c in cols))
    for r in rows:
        print(f"{r['rate']:<22}{r['phase']:<12}" + "".join(f"{r.get(c, '-')!s:>22}" for c in cols))
    summary: dict[str, Any] = {}
    for label in dict.fromkeys(r["rate"] for r in rows):
        mine = [r for r in rows if r["rate"] == label]
        for kind in ("quiet", "flooded"):
            rs = [r for r in mine if r["phase"].endswith(kind)]
            summary[f"{label} {kind}"] = {
                "xruns": sum(r["total"] for r in rs),
                "gaps_ms": round(sum(r["gaps_ms"] for r in rs), 1),
                "block_p99_ms_median": statistics.median(r["block_p99_ms"] for r in rs),
                "requests_per_s_median": statistics.median(r.get("requests_per_s", 0) for r in rs),
                "c_client_blamed": sum(r["jackd_blamed_c_client"] for r in rs),
            }
    print()
    for k, v in summary.items():
        print(f"{k:<34} {v}")
    flood_kind = "status.get, " + ("without" if args.no_token else "with") + " the token"
    settings = {"period": args.period, "block_ms": args.block_ms, "profile": args.profile, "rounds": args.rounds,
                "seconds": args.seconds, "flood": flood_kind}  # fmt: skip
    write_result(args.out, "control_flood", {"machine": machine(), "settings": settings, "summary": summary,
                                             "phases": rows})  # fmt: skip


if __name__ == "__main__":
    main()
