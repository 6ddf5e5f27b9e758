"""Control round trip while the engine plays over JACK: set a parameter -> the state event arrives.

rtvc runs the default voice on real PortAudio callbacks (JACK dummy backend, 48 kHz, period 256); its
control server listens on loopback; 10 clients subscribe to state and meters (30 Hz each); one driver
client sets the pitch again and again and times (a) its own reply, (b) the state event reaching it and
(c) the event reaching the last of the 10 subscribers. The clients run in a separate process (as real
tools do). Two phases in one run, side by side: the driver alone, then with the 10 meter clients; the
engine's xruns and worker block times are counted per phase.

    python bench/control_rtt.py [--changes 300] [--clients 10]

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
    for i in range(changes):
        pitch = -4.0 + (i % 2)  # alternate, so every set is a change
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=300)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "control_rtt.json")
    args = ap.parse_args()

    from rtvc.audio.io import DeviceStreams, choose_devices
    from rtvc.control.controller import Controller
    from rtvc.control.server import ControlServer
    from rtvc.run import build_engine

    server = JackServer(PERIOD)
    server.start()
    with portaudio_on(server):
        cfg = jack_config(ROOT / "profiles" / "default.toml")
        engine = build_engine(cfg)
        streams = DeviceStreams(choose_devices(cfg.audio), engine, SR, 0)
        controller = Controller(cfg, engine, "default")
        control = ControlServer(cfg.control, controller, TOKEN, port=0)
        engine.start()
        streams.start()
        control.start()
        time.sleep(1.0)
        phases = {}
        # side by side in one run: the same changes with the driver alone, then with the meter clients
        for name, n_clients in (("driver only", 0), (f"{args.clients} clients on meters", args.clients)):
            before, blocks = engine.status().xruns, engine.timer.count
            t0 = time.monotonic()
            ctx = multiprocessing.get_context("spawn")
            queue = ctx.Queue()
            proc = ctx.Process(target=clients_process, args=(control.port, n_clients, args.changes, queue))
            proc.start()
            times = queue.get(timeout=600)
            proc.join(30)
            xr = engine.status().xruns
            work = 1e3 * engine.timer.since(blocks)
            phases[name] = {
                "clients_on_meters": n_clients,
                "seconds": round(time.monotonic() - t0, 1),
                "rows": {k: stats(v) for k, v in times.items()},
                "engine_xrun_events": xr.total - before.total,
                "output_underrun_frames": xr.output_underrun_frames - before.output_underrun_frames,
                "worker_block_ms": stats(list(work)),
            }
        control.stop()
        streams.stop()
        engine.stop()
    server.stop()
    print(f"{'phase':<24} {'round trip':<26} {'p50 ms':>8} {'p99 ms':>8}")
    for name, ph in phases.items():
        for k, r in ph["rows"].items():
            print(f"{name:<24} {k:<26} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}")
        w = ph["worker_block_ms"]
        print(
            f"{name:<24} engine: {ph['engine_xrun_events']} xrun events, {ph['output_underrun_frames']} frames "
            f"played as silence; worker block p50/p99 {w['p50_ms']:.2f}/{w['p99_ms']:.2f} ms\n"
        )
    result = {
        "machine": machine(),
        "jackd": f"dummy backend, 48 kHz, period {PERIOD}, --no-realtime",
        "voice": "default (pitch), 20 ms blocks",
        "meter_hz": 30,
        "changes_per_phase": args.changes,
        "clients": "in a separate process",
        "phases": phases,
    }
    write_result(args.out, "control_rtt", result)


if __name__ == "__main__":
    main()
