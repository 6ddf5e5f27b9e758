"""Does the worker's real-time scheduling (stream.realtime) keep blocks on time when other programs load the CPU?

The situation it is for: a streamer's machine runs OBS's encoder, a browser and a game beside rtvc. Here rtvc
plays the default voice on real PortAudio callbacks (JACK dummy backend, 48 kHz, period 256, 10 ms blocks) with
jackd in real-time mode, as JACK and PipeWire run on a desktop: the callbacks preempt ordinary threads, and
only rtvc's worker thread is left to compete with the load. The load: as many busy-looping processes as
there are CPUs, at normal priority. Phases alternate for --rounds rounds, so a noisy stretch of this shared
VM falls on all: {normal, real-time worker} x {idle, loaded}. Each phase counts the engine's xrun events,
its worker block times, and the clients jackd blamed; a C client (jack_simple_client) in the same graph is
the reference: when jackd blames it, the machine (not rtvc) missed the deadline.

    python bench/worker_priority.py [--seconds 10] [--rounds 3] [--busy N]

Prints a table and writes bench/results/worker_priority.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import jack_config, machine, write_result  # noqa: E402
from jack_harness import JackServer, portaudio_on  # noqa: E402

PERIOD = 256


def spin(stop) -> None:
    """A CPU hog at normal priority (a game, an encoder), until `stop` is set."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def run_phase(engine, server: JackServer, seconds: float, busy: int) -> dict:
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    hogs = [ctx.Process(target=spin, args=(stop,), daemon=True) for _ in range(busy)]
    for h in hogs:
        h.start()
    time.sleep(0.2)  # the hogs are running
    before, blocks, blamed = engine.status().xruns, engine.timer.count, len(server.late_clients())
    time.sleep(seconds)
    xr = engine.status().xruns
    work = 1e3 * engine.timer.since(blocks)
    late = server.late_clients()[blamed:]
    stop.set()
    for h in hogs:
        h.join(5)
    return {
        "xruns": xr.total - before.total,
        "underrun_frames": xr.output_underrun_frames - before.output_underrun_frames,
        "work": list(work),
        "blamed_rtvc": sum(1 for c in late if c == "rtvc"),
        "blamed_reference": late.count("jack_simple_client"),
        "priority": engine.status().worker_priority,
    }


def merge(rounds: list[dict], seconds: float) -> dict:
    work = np.asarray([w for r in rounds for w in r["work"]])
    return {
        "seconds": round(seconds * len(rounds), 1),
        "worker_priority": rounds[0]["priority"],
        "xrun_events": sum(r["xruns"] for r in rounds),
        "xruns_per_round": [r["xruns"] for r in rounds],
        "output_underrun_frames": sum(r["underrun_frames"] for r in rounds),
        "worker_block_ms": {
            "p50": round(float(np.median(work)), 2),
            "p99": round(float(np.percentile(work, 99)), 2),
            "max": round(float(work.max()), 2),
        },
        "jackd_blamed_rtvc": sum(r["blamed_rtvc"] for r in rounds),
        "reference_blamed_per_round": [r["blamed_reference"] for r in rounds],
        "xruns_in_quiet_rounds": sum(r["xruns"] for r in rounds if not r["blamed_reference"]),
        "quiet_rounds": sum(1 for r in rounds if not r["blamed_reference"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="per phase and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="busy processes in the loaded phases")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "worker_priority.json")
    args = ap.parse_args()

    from rtvc.audio.io import DeviceStreams, choose_devices
    from rtvc.run import build_engine

    server = JackServer(PERIOD, realtime=True, role="bench")
    server.start()
    if not server.realtime_in_effect:
        server.stop()
        raise SystemExit("jackd could not get real-time scheduling here: this bench needs it (run as root)")
    runs: dict[str, list[dict]] = {}
    with portaudio_on(server):
        cfg = jack_config(ROOT / "profiles" / "default.toml", block_ms=10.0)
        engine = build_engine(cfg)
        streams = DeviceStreams(choose_devices(cfg.audio), engine, cfg.audio.samplerate, 0)
        engine.start()
        streams.start()
        reference = server.start_reference()
        time.sleep(1.0)
        for _round in range(args.rounds):
            for realtime in (False, True):  # switched by the worker itself at a block edge
                engine.realtime = realtime
                time.sleep(0.1)
                for load, busy in (("idle", 0), (f"{args.busy} busy processes", args.busy)):
                    name = f"{'real-time' if realtime else 'normal'} worker, {load}"
                    runs.setdefault(name, []).append(run_phase(engine, server, args.seconds, busy))
        reference.terminate()
        reference.wait(5)
        streams.stop()
        engine.stop()
    phases = {name: merge(rs, args.seconds) for name, rs in runs.items()}
    print(f"\nJACK dummy (jackd real-time), period {PERIOD}, default voice, 10 ms blocks, {args.rounds} x "
          f"{args.seconds:g} s per phase")  # fmt: skip
    head = ("phase", "worker", "xruns", "per round", "frames silent", "block p50/p99/max ms", "ref. blamed", "quiet")
    print(f"{head[0]:<36}{head[1]:<28}{head[2]:>6}  {head[3]:<14}{head[4]:>14}  {head[5]:<22}{head[6]:<16}{head[7]}")
    for name, ph in phases.items():
        w = ph["worker_block_ms"]
        blocks = f"{w['p50']}/{w['p99']}/{w['max']}"
        quiet = f"{ph['xruns_in_quiet_rounds']} xruns in {ph['quiet_rounds']} rounds"
        per_round, ref = str(ph["xruns_per_round"]), str(ph["reference_blamed_per_round"])
        print(f"{name:<36}{ph['worker_priority'][:27]:<28}{ph['xrun_events']:>6}  {per_round:<14}"
              f"{ph['output_underrun_frames']:>14}  {blocks:<22}{ref:<16}{quiet}")  # fmt: skip
    print("(quiet: the rounds in which jackd never blamed the C reference client, i.e. the machine kept time)")
    result = {
        "machine": machine(),
        "jackd": f"dummy backend, 48 kHz, period {PERIOD}, --realtime",
        "voice": "default (pitch), 10 ms blocks",
        "seconds_per_phase_and_round": args.seconds,
        "rounds": args.rounds,
        "busy_processes": args.busy,
        "phases": phases,
    }
    write_result(args.out, "worker_priority", result)


if __name__ == "__main__":
    main()
