"""How much time per block must the worker be guaranteed? `stream.prefill_ms` side by side under control load.

`rtvc serve` (default voice, 20 ms blocks, default settings) runs on a JACK dummy server (period 256, 48 kHz,
--no-realtime: the worker stays on the normal scheduler; with --jack-realtime jackd runs real-time, as on a
desktop, and the worker real-time below its callbacks), fed a sine by a C client (jack_simple_client), once per
--prefill value and round, alternating, so that a noisy stretch of a shared machine falls on all. In each
window a separate process runs what a busy control surface does: --clients websocket clients take meters at
30 Hz while a driver sets the pitch every 50 ms and times the round trip (reply; the state event at the
driver; at the last subscriber). Per window: the daemon's xrun counters, the worker's block time, and how
often jackd blamed the C reference client (then the machine, not rtvc, missed deadlines).

    python bench/prefill_xruns.py                          # 3 rounds of 20 s, prefill 4 and 8 ms
    python bench/prefill_xruns.py --seconds 5 --rounds 1   # a smoke run
    python bench/prefill_xruns.py --jack-realtime           # the worker real-time (prefill_xruns_rt.json)

Prints a table and writes bench/results/prefill_xruns.json (prefill_xruns_rt.json with --jack-realtime).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import machine, write_result  # noqa: E402
from jack_daemon import REFERENCE, JackDaemon, finish  # noqa: E402
from jack_harness import JackServer  # noqa: E402


def window(server: JackServer, prefill: float, seconds: float, clients: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rtvc-prefill-") as root:
        return _window(server, Path(root), prefill, seconds, clients)


def _window(server: JackServer, root: Path, prefill: float, seconds: float, clients: int) -> dict[str, Any]:
    daemon = JackDaemon(server.name, root, "default", stream=f"prefill_ms = {prefill}")
    try:
        daemon.feed_sine()
        time.sleep(2.0)  # start-up (priming, first blocks) belongs to no window
        load, _ = daemon.load("control", seconds, clients)
        blamed0 = len(server.late_clients())
        before, t0 = daemon.counters(), time.monotonic()
        got = finish(load, seconds)
        elapsed = time.monotonic() - t0
        after = daemon.counters()
        engine = daemon.engine()
    finally:
        daemon.stop()
    blamed = server.late_clients()[blamed0:]
    row: dict[str, Any] = {"prefill_ms": prefill, "seconds": round(elapsed, 1)}
    row.update({k: after[k] - before[k] for k in after})
    row["worker_slack_ms"] = round(engine["worker_slack_ms"], 3)
    row["worker_priority"] = engine["worker_priority"]
    row["latency_ms"] = engine["latency"]["ms"]["total"]
    row["worker_block_ms"] = {k: round(engine["timing"][k], 3) for k in ("p50_ms", "p99_ms", "max_ms")}
    row["reference_blamed"] = blamed.count(REFERENCE)
    row["rtvc_blamed"] = len(blamed) - row["reference_blamed"]
    row["changes"] = got["changes"]
    row["round_trip_ms"] = {
        k: {"p50": round(float(np.percentile(v, 50)), 2), "p99": round(float(np.percentile(v, 99)), 2)}
        for k, v in got["times_ms"].items()
    }
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prefill", type=float, nargs="+", default=[4.0, 8.0], help="stream.prefill_ms values (ms)")
    ap.add_argument("--seconds", type=float, default=20.0, help="per window")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=10, help="meter subscribers at 30 Hz")
    ap.add_argument("--jack-realtime", action="store_true", help="jackd real-time: the worker goes real-time too")
    ap.add_argument("--out", type=Path, help="default: bench/results/prefill_xruns.json (_rt with --jack-realtime)")
    args = ap.parse_args()
    out = args.out or ROOT / "bench" / "results" / f"prefill_xruns{'_rt' if args.jack_realtime else ''}.json"

    server = JackServer(256, realtime=args.jack_realtime, role="bare")
    server.start()
    if args.jack_realtime and not server.realtime_in_effect:
        server.stop()
        raise SystemExit("jackd could not get real-time scheduling here (run as root)")
    rows: list[dict[str, Any]] = []
    try:
        for r in range(args.rounds):
            for prefill in args.prefill:
                row = {"round": r + 1, **window(server, prefill, args.seconds, args.clients)}
                rows.append(row)
                print(
                    f"round {row['round']}  prefill {prefill:4.1f} ms (worker gets {row['worker_slack_ms']:5.2f} ms, "
                    f"latency {row['latency_ms']:.2f} ms): {row['output_underrun_events']} underruns, "
                    f"{row['portaudio_flags']} PA flags, block p99 {row['worker_block_ms']['p99_ms']:.2f} ms, "
                    f"reference blamed {row['reference_blamed']}; worker {row['worker_priority']}",
                    flush=True,
                )
    finally:
        server.stop()

    print(
        f"\n{'prefill ms':>10} {'worker ms':>9} {'latency ms':>10} {'underruns':>10} {'quiet rounds':>12} "
        f"{'underruns (quiet)':>17} {'reply p50/p99 ms':>17}"
    )
    summary = {}
    for prefill in args.prefill:
        mine = [row for row in rows if row["prefill_ms"] == prefill]
        quiet = [row for row in mine if row["reference_blamed"] == 0]
        replies = [row["round_trip_ms"]["reply"] for row in mine]
        s = {
            "worker_slack_ms": mine[0]["worker_slack_ms"],
            "latency_ms": mine[0]["latency_ms"],
            "underruns": [row["output_underrun_events"] for row in mine],
            "quiet_rounds": len(quiet),
            "underruns_in_quiet_rounds": [row["output_underrun_events"] for row in quiet],
            "reply_p50_ms_median": float(np.median([x["p50"] for x in replies])),
            "reply_p99_ms_median": float(np.median([x["p99"] for x in replies])),
        }
        summary[str(prefill)] = s
        print(
            f"{prefill:>10.1f} {s['worker_slack_ms']:>9.2f} {s['latency_ms']:>10.2f} {sum(s['underruns']):>10} "
            f"{len(quiet):>12} {sum(s['underruns_in_quiet_rounds']):>17} "
            f"{s['reply_p50_ms_median']:>8.2f}/{s['reply_p99_ms_median']:<8.2f}"
        )
    result = {
        "machine": machine(),
        "jackd": f"dummy backend, 48 kHz, period 256, {'--realtime' if args.jack_realtime else '--no-realtime'}",
        "voice": "default (pitch), 20 ms blocks",
        "worker_priority": rows[0]["worker_priority"],
        "load": f"{args.clients} clients on meters at 30 Hz + a pitch change every 50 ms, in a separate process",
        "seconds": args.seconds,
        "rounds": args.rounds,
        "summary": summary,
        "windows": rows,
    }
    write_result(out, "prefill_xruns", result)


if __name__ == "__main__":
    main()
