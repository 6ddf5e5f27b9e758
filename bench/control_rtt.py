"""Control round trip while the engine plays over JACK: set a parameter -> the state event arrives.

rtvc runs the default voice on real PortAudio callbacks (JACK dummy backend, 48 kHz, period 256); its
control server listens on loopback; 10 clients subscribe to state and meters (30 Hz each); one driver
client sets the pitch again and again and times (a) its own reply, (b) the state event reaching it and
(c) the event reaching the last of the 10 subscribers. The clients run in a separate process (as real
tools do). Four phases, side by side, alternating for --rounds rounds so that a noisy stretch of a shared
machine falls on all: the driver alone, then with the 10 meter clients, each with the engine's worker on
the normal scheduler and on real-time scheduling (stream.realtime; jackd runs real-time, as on a desktop,
since the worker takes real-time scheduling only below its callbacks); the engine's xruns and
worker block times are counted per phase. A C client (jack_simple_client) runs in the same JACK graph as a
reference: jackd's blame for it says when the machine, not rtvc, missed a deadline.

    python bench/control_rtt.py [--changes 150] [--clients 10] [--rounds 3]

Prints a table and writes bench/results/control_rtt.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import jack_config, machine, write_result  # noqa: E402
from control_client import Client  # noqa: E402
from jack_harness import JackServer, portaudio_on  # noqa: E402

SR = 48000
PERIOD = 256
TOKEN = "bench-token-not-a-secret"


def stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.median(a)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


async def drive(port: int, n_clients: int, changes: int) -> dict[str, list[float]]:
    subs = [await Client.open(port, TOKEN) for _ in range(n_clients)]
    for c in subs:
        await c.call("events.subscribe", events=["state", "meters"], meter_hz=30)
    driver = await Client.open(port, TOKEN)
    await driver.call("events.subscribe", events=["state"])
    reply, own, last = [], [], []
    await asyncio.sleep(1.0)  # meters flowing
    start = (await driver.call("params.get"))["values"]["pitch"]
    step = 1.0 if start < 0 else -1.0  # (within the range either way)
    for i in range(changes):
        pitch = start + step * (1 - i % 2)  # alternate away from the pitch there is: every set is a change (an event)
        for c in [*subs, driver]:  # drop what queued up (meters, earlier events)
            while not c.events.empty():
                c.events.get_nowait()
        t0 = time.perf_counter()
        await driver.call("params.set", values={"pitch": pitch})
        t1 = time.perf_counter()
        await driver.event("state")
        t2 = time.perf_counter()
        await asyncio.gather(*(c.event("state") for c in subs))
        t3 = time.perf_counter()
        reply.append(1e3 * (t1 - t0))
        own.append(1e3 * (t2 - t0))
        last.append(1e3 * (t3 - t0))
        await asyncio.sleep(0.02)
    for c in [*subs, driver]:
        await c.ws.close()
    return {"reply": reply, "event_to_driver": own, "event_to_all_subscribers": last}


def clients_process(port: int, n_clients: int, changes: int, out) -> None:
    """The clients run in their own process, as real tools do: their JSON work is not the daemon's."""
    out.put(asyncio.run(drive(port, n_clients, changes)))


def run_phase(engine, server: JackServer, port: int, n_clients: int, changes: int) -> dict:
    before, blocks, blamed = engine.status().xruns, engine.timer.count, len(server.late_clients())
    t0 = time.monotonic()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=clients_process, args=(port, n_clients, changes, queue))
    proc.start()
    times = queue.get(timeout=600)
    proc.join(30)
    xr = engine.status().xruns
    late = server.late_clients()[blamed:]
    return {
        "times": times,
        "seconds": time.monotonic() - t0,
        "xruns": xr.total - before.total,
        "underrun_frames": xr.output_underrun_frames - before.output_underrun_frames,
        "work": list(1e3 * engine.timer.since(blocks)),
        "blamed_rtvc": sum(1 for c in late if c == "rtvc"),
        "blamed_reference": late.count("jack_simple_client"),
    }


def merge(rounds: list[dict]) -> dict:
    keys = rounds[0]["times"]
    return {
        "seconds": round(sum(r["seconds"] for r in rounds), 1),
        "rows": {k: stats([t for r in rounds for t in r["times"][k]]) for k in keys},
        "engine_xrun_events": sum(r["xruns"] for r in rounds),
        "xruns_per_round": [r["xruns"] for r in rounds],
        "output_underrun_frames": sum(r["underrun_frames"] for r in rounds),
        "worker_block_ms": stats([w for r in rounds for w in r["work"]]),
        "jackd_blamed_rtvc": sum(r["blamed_rtvc"] for r in rounds),
        "jackd_blamed_reference": sum(r["blamed_reference"] for r in rounds),
        "reference_blamed_per_round": [r["blamed_reference"] for r in rounds],
        # rounds in which the machine kept the C reference client on time: what rtvc did on a quiet machine
        "xruns_in_quiet_rounds": sum(r["xruns"] for r in rounds if not r["blamed_reference"]),
        "quiet_rounds": sum(1 for r in rounds if not r["blamed_reference"]),
        "worker_priority": rounds[0]["priority"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=150, help="per phase and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "control_rtt.json")
    args = ap.parse_args()

    from rtvc.audio.io import DeviceStreams, choose_devices
    from rtvc.control.controller import Controller
    from rtvc.control.server import ControlServer
    from rtvc.run import build_engine

    server = JackServer(PERIOD, realtime=True, role="bench")
    server.start()
    if not server.realtime_in_effect:
        server.stop()
        raise SystemExit("jackd could not get real-time scheduling here: this bench needs it (run as root)")
    with portaudio_on(server):
        cfg = jack_config(ROOT / "profiles" / "default.toml")
        engine = build_engine(cfg)
        streams = DeviceStreams(choose_devices(cfg.audio), engine, SR, 0)
        controller = Controller(cfg, engine, "default")
        control = ControlServer(cfg.control, controller, TOKEN, port=0)
        engine.start()
        streams.start()
        control.start()
        reference = server.start_reference()
        time.sleep(1.0)
        runs: dict[str, list[dict]] = {}
        for _round in range(args.rounds):
            for realtime in (False, True):  # the worker's scheduling, switched by the worker at a block edge
                engine.realtime = realtime
                time.sleep(0.1)
                worker = "real-time" if realtime else "normal"
                for what, n_clients in (("driver only", 0), (f"{args.clients} clients on meters", args.clients)):
                    row = run_phase(engine, server, control.port, n_clients, args.changes)
                    row["priority"] = engine.status().worker_priority
                    runs.setdefault(f"{worker} worker, {what}", []).append(row)
        reference.terminate()
        reference.wait(5)
        phases = {name: merge(rs) for name, rs in runs.items()}
        control.stop()
        streams.stop()
        engine.stop()
    server.stop()
    print(f"{'phase':<44} {'round trip':<26} {'p50 ms':>8} {'p99 ms':>8}")
    for name, ph in phases.items():
        for k, r in ph["rows"].items():
            print(f"{name:<44} {k:<26} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}")
        w = ph["worker_block_ms"]
        print(
            f"{name:<44} engine: {ph['engine_xrun_events']} xrun events per round {ph['xruns_per_round']}, "
            f"{ph['output_underrun_frames']} frames played as silence; worker block p50/p99 "
            f"{w['p50_ms']:.2f}/{w['p99_ms']:.2f} ms; jackd blamed rtvc {ph['jackd_blamed_rtvc']}, "
            f"the C reference client {ph['jackd_blamed_reference']} times (per round "
            f"{ph['reference_blamed_per_round']}); in the {ph['quiet_rounds']} rounds it was on time: "
            f"{ph['xruns_in_quiet_rounds']} xruns\n"
        )
    result = {
        "machine": machine(),
        "jackd": f"dummy backend, 48 kHz, period {PERIOD}, --realtime",
        "voice": "default (pitch), 20 ms blocks",
        "meter_hz": 30,
        "changes_per_phase_and_round": args.changes,
        "rounds": args.rounds,
        "clients": "in a separate process",
        "phases": phases,
    }
    write_result(args.out, "control_rtt", result)


if __name__ == "__main__":
    main()
