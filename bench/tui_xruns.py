"""Does the terminal UI cost the engine an xrun? The daemon on JACK, 60 s without a TUI, then 60 s with one.

`rtvc serve` runs on a JACK dummy server (engine and PortAudio callbacks as on a sound card), fed a sine
by a C client (jack_simple_client). Phase 1: nobody attached. Phase 2: the real TUI (RtvcApp, headless,
in its own process, as `rtvc tui` runs) subscribed to meters at --meter-hz (>= 10). Each phase reports the
daemon's xrun counters (difference over the phase), the clients jackd blamed, and (phase 2) the meter
updates the TUI received per second. Prints a table and writes bench/results/tui_xruns.json.

    python bench/tui_xruns.py                 # the measurement: 3 rounds of 20 s without, 20 s with (60 s each)
    python bench/tui_xruns.py --seconds 5 --rounds 1    # a smoke run

The phases alternate, so a noisy stretch of this shared VM falls on both; jackd's blame counts for the C
sine client say how noisy the machine was in each phase (it does no work that a TUI could disturb).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import machine, write_result  # noqa: E402
from jack_daemon import XRUN_KEYS, JackDaemon, children_cpu, finish  # noqa: E402
from jack_harness import JackServer, steal_ms  # noqa: E402


def alone_states(row: dict[str, Any]) -> list[str]:
    """jackd's states for rtvc's client in a phase where it never blamed the C reference client (else: [])."""
    if "jack_simple_client" in row["jackd_blamed"] or "jackd" in row["jackd_blamed"]:
        return []
    return [s.split(" ", 1)[1] for s in row["blame_states"] if s.startswith("rtvc ")]


def phase(name: str, server: JackServer, daemon: JackDaemon, seconds: float, tui: float | None) -> dict[str, Any]:
    blamed0 = len(server.blame_states())
    steal0 = steal_ms()
    got: dict[str, Any] = {}
    if tui is None:
        before = daemon.counters()
        time.sleep(seconds)
    else:  # the TUI's start-up (imports, first layout) is not counted: from its first meter update on
        client, cpu0 = daemon.load("tui", seconds, tui)
        before, t0 = daemon.counters(), time.monotonic()
        got = finish(client, seconds)
        if got["link"] != "connected":
            raise SystemExit(f"the TUI client lost its connection: {got}")
        tui_cpu = (children_cpu() - cpu0) / (time.monotonic() - t0)  # its whole life: start-up included
    after = daemon.counters()
    row: dict[str, Any] = {"phase": name, "seconds": seconds, **{k: after[k] - before[k] for k in after}}
    states = server.blame_states()[blamed0:]
    row["jackd_blamed"] = [client for client, _ in states]
    row["blame_states"] = [f"{client} {state}".strip() for client, state in states]
    row["steal_ms"] = round(steal_ms() - steal0)
    if got:
        row["tui_cpu_percent"] = round(100 * tui_cpu, 1)
        row["meter_hz_received"] = round(got["meter_updates"] / seconds, 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="per phase and round")
    ap.add_argument("--rounds", type=int, default=3, help="without/with pairs, alternating")
    ap.add_argument(
        "--jack-realtime",
        action="store_true",
        help="jackd --realtime: its clients' process threads (rtvc's PortAudio callback too) run SCHED_FIFO, "
        "as on a desktop with JACK or PipeWire",
    )
    ap.add_argument("--period", type=int, default=256)
    ap.add_argument("--profile", default="default", help="the daemon's voice (the JACK control test's: default)")
    ap.add_argument("--block-ms", type=float, default=10.0)
    ap.add_argument("--meter-hz", type=float, default=15.0, help="the TUI's meter rate (the issue asks >= 10)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tui_xruns.json")
    args = ap.parse_args()
    server = JackServer(args.period, realtime=args.jack_realtime, role="bench")
    server.start()
    daemon = None
    try:
        with tempfile.TemporaryDirectory(prefix="rtvc-tui-xruns-") as tmp:
            daemon = JackDaemon(server.name, Path(tmp), args.profile, args.block_ms)
            daemon.feed_sine()
            time.sleep(1.0)  # start-up (priming, first blocks) is not part of either phase
            rows = []
            for k in range(args.rounds):
                rows.append(phase(f"{k + 1}: without TUI", server, daemon, args.seconds, None))
                with_tui = f"{k + 1}: with TUI ({args.meter_hz:g} Hz)"
                rows.append(phase(with_tui, server, daemon, args.seconds, args.meter_hz))
            daemon.stop()
    finally:
        if daemon is not None:
            daemon.stop()
        server.stop()
    cols = ("seconds", "total", *XRUN_KEYS, "portaudio_flags", "blocks")
    print(f"\nJACK dummy, period {args.period}, block {args.block_ms:g} ms, profile {args.profile}")
    print(f"{'phase':<26}" + "".join(f"{c[:18]:>20}" for c in cols) + f"{'meters/s':>10}{'steal ms':>10}"
          "  jackd blamed rtvc / C client; rtvc alone (its states)")  # fmt: skip
    for r in rows:
        cells = "".join(f"{r[c]:>20g}" for c in cols)
        b = r["jackd_blamed"]
        blamed = f"{b.count('rtvc')} / {b.count('jack_simple_client')}"
        print(
            f"{r['phase']:<26}{cells}{r.get('meter_hz_received', '-'):>10}{r['steal_ms']:>10}  {blamed}; "
            f"{alone_states(r) or '-'}"
        )
    tui = [r for r in rows if "meter_hz_received" in r]
    alone = [r for r in rows if r not in tui]
    cpu = statistics.median(r["tui_cpu_percent"] for r in tui)
    print(f"the TUI process used {cpu}% of a core (median over rounds, start-up included)")
    sums = {name: sum(r["total"] for r in rs) for name, rs in (("without", alone), ("with", tui))}
    c_blamed = {name: sum(r["jackd_blamed"].count("jack_simple_client") for r in rs) for name, rs in
                (("without", alone), ("with", tui))}  # fmt: skip
    print(f"\nxruns over {args.rounds * args.seconds:g} s: without TUI {sums['without']}, with TUI {sums['with']}; "
          f"the C reference client was blamed {c_blamed['without']} / {c_blamed['with']} times")  # fmt: skip
    # the rounds in which the machine kept the C reference client on time, in both phases: what rtvc did when
    # this shared VM was quiet
    quiet = [
        k
        for k in range(len(tui))
        if not any("jack_simple_client" in r["jackd_blamed"] for r in rows[2 * k : 2 * k + 2])
    ]
    q = {"rounds": len(quiet), "xruns_without": sum(alone[k]["total"] for k in quiet),
         "xruns_with": sum(tui[k]["total"] for k in quiet)}  # fmt: skip
    print(f"in the {q['rounds']} rounds where it was on time in both phases: without TUI {q['xruns_without']} xruns, "
          f"with TUI {q['xruns_with']}")  # fmt: skip
    summary = {"xruns_without": sums["without"], "xruns_with": sums["with"], "c_client_blamed": c_blamed}
    summary["quiet_rounds"] = q
    summary["rtvc_blamed_alone"] = {name: [s for r in rs for s in alone_states(r)] for name, rs in
                                    (("without", alone), ("with", tui))}  # fmt: skip
    print(
        f"rtvc's client blamed while the C reference client was on time: without TUI "
        f"{summary['rtvc_blamed_alone']['without']}, with TUI {summary['rtvc_blamed_alone']['with']}"
    )
    summary["tui_cpu_percent_median"] = cpu
    settings = {"period": args.period, "block_ms": args.block_ms, "meter_hz": args.meter_hz, "rounds": args.rounds,
                "profile": args.profile, "seconds": args.seconds}  # fmt: skip
    settings["jackd"] = "--realtime (in effect)" if server.realtime_in_effect else "--no-realtime"
    result = {"machine": machine(), "settings": settings, "summary": summary, "phases": rows}
    write_result(args.out, "tui_xruns", result)


if __name__ == "__main__":
    main()
