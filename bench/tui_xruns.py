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
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from common import machine, write_result  # noqa: E402
from jack_harness import JackServer  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from rtvc.control.rpc import dumps  # noqa: E402

XRUN_KEYS = ("input_overrun_events", "output_underrun_events", "monitor_underrun_events")


def tui_client(port: int, token: str, seconds: float, meter_hz: float) -> None:
    """Phase 2's client (its own process): the real app, headless, for `seconds`; prints what it received."""
    from rtvc.tui.app import RtvcApp
    from rtvc.tui.client import DaemonClient, Endpoint
    from rtvc.tui.launch import yield_cpu

    class Timed(RtvcApp):
        received = 0

        def apply_meters(self, ev: dict[str, Any]) -> None:
            if Timed.received == 0:  # connected and metering: the parent starts counting now
                sys.__stdout__.write("ready\n")  # (Textual captures print() while it runs)
                sys.__stdout__.flush()
                # (this runs in the websocket client's task, outside Textual's message handling: the timer is
                # a thread that hands the exit to the app through Textual's thread bridge)
                threading.Timer(seconds, lambda: self.call_from_thread(self.exit)).start()
            Timed.received += 1
            super().apply_meters(ev)

    yield_cpu()  # as `rtvc tui` and `rtvc run` do
    app = Timed(Endpoint("127.0.0.1", port, token))
    assert isinstance(app.client, DaemonClient)
    app.client.meter_hz = meter_hz
    app.run(headless=True, size=(100, 30))
    print(f"meters received {Timed.received - 1} link {app.link.state}", flush=True)


def status(port: int, token: str) -> dict[str, Any]:
    with connect(f"ws://127.0.0.1:{port}/rpc?token={token}", open_timeout=10) as ws:
        ws.send(dumps({"jsonrpc": "2.0", "id": 1, "method": "status.get"}))
        return __import__("json").loads(ws.recv(timeout=10))["result"]["engine"]


def counters(st: dict[str, Any]) -> dict[str, int]:
    x = st["xruns"]
    pa = sum(v for k, v in x["portaudio"].items() if k != "priming_output")
    return {"total": x["total"], **{k: x[k] for k in XRUN_KEYS}, "portaudio_flags": pa, "blocks": st["blocks"]}


def start_daemon(server: JackServer, root: Path, block_ms: float) -> tuple[subprocess.Popen[bytes], int, str, dict]:
    (root / "profiles").mkdir(parents=True)
    shutil.copy(ROOT / "profiles" / "passthrough.toml", root / "profiles")
    with socket.socket() as s:  # a free port (the config takes no 0)
        s.bind(("127.0.0.1", 0))
        (root / "config.toml").write_text(f"[control]\nport = {s.getsockname()[1]}\n")
    env = {
        **os.environ,
        "JACK_DEFAULT_SERVER": server.name,
        "JACK_NO_START_SERVER": "1",
        "XDG_CONFIG_HOME": str(root / "xdg"),
        "PYTHONUNBUFFERED": "1",
    }
    log = root / "serve.log"
    argv = [sys.executable, "-m", "rtvc", "serve", "--config", str(root / "config.toml"), "--host-api", "JACK"]
    argv += ["--input-device", "system", "--output-device", "system", "--output-channels", "1"]
    argv += ["--block-ms", str(block_ms), "--profile", "passthrough"]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (m := re.search(r"control: ws://\S+:(\d+)/rpc", log.read_text(errors="replace"))):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"rtvc serve did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return proc, int(m.group(1)), (root / "xdg" / "rtvc" / "token").read_text().strip(), env


def feed_sine(env: dict) -> subprocess.Popen[bytes]:
    sine = subprocess.Popen(["jack_simple_client"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        ports = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True).stdout.split()
        rtvc_in = [p for p in ports if p.startswith("PortAudio") and ":in_" in p]
        if rtvc_in and "jack_simple_client:output1" in ports:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"JACK ports never appeared: {ports}")
        time.sleep(0.1)
    subprocess.run(["jack_disconnect", "system:capture_1", rtvc_in[0]], env=env, capture_output=True)
    subprocess.run(["jack_connect", "jack_simple_client:output1", rtvc_in[0]], env=env, check=True)
    return sine


def phase(name: str, server: JackServer, port: int, token: str, seconds: float, tui: float | None) -> dict[str, Any]:
    blamed0 = len(server.late_clients())
    got = ""
    if tui is None:
        before = counters(status(port, token))
        time.sleep(seconds)
    else:  # the TUI's start-up (imports, first layout) is not counted: from its first meter update on
        cmd = [sys.executable, __file__, "--tui-client", str(port), token, "--seconds", str(seconds)]
        client = subprocess.Popen([*cmd, "--meter-hz", str(tui)], stdout=subprocess.PIPE, text=True)
        assert client.stdout is not None
        if client.stdout.readline().strip() != "ready":
            client.kill()
            raise SystemExit("the TUI client did not connect to the daemon")
        before = counters(status(port, token))
        cpu0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
        try:
            got, _ = client.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            client.kill()
            raise SystemExit(f"the TUI client did not stop {seconds:g} s after its first meters") from None
        got = got.strip()
        if client.returncode != 0 or "link connected" not in got:
            raise SystemExit(f"the TUI client failed ({client.returncode}): {got}")
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # its whole life: an upper bound past start-up
        tui_cpu = (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / (time.monotonic() - t0)
    after = counters(status(port, token))
    row: dict[str, Any] = {"phase": name, "seconds": seconds, **{k: after[k] - before[k] for k in after}}
    row["jackd_blamed"] = server.late_clients()[blamed0:]
    if got:
        row["tui_cpu_percent"] = round(100 * tui_cpu, 1)
        row["meter_hz_received"] = round(int(re.search(r"meters received (\d+)", got).group(1)) / seconds, 1)
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
    ap.add_argument("--block-ms", type=float, default=10.0)
    ap.add_argument("--meter-hz", type=float, default=15.0, help="the TUI's meter rate (the issue asks >= 10)")
    ap.add_argument("--tui-client", nargs=2, metavar=("PORT", "TOKEN"), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tui_xruns.json")
    args = ap.parse_args()
    if args.tui_client:
        tui_client(int(args.tui_client[0]), args.tui_client[1], args.seconds, args.meter_hz)
        return
    server = JackServer(args.period, realtime=args.jack_realtime, role="bench")
    server.start()
    proc = sine = None
    try:
        with tempfile.TemporaryDirectory(prefix="rtvc-tui-xruns-") as tmp:
            proc, port, token, env = start_daemon(server, Path(tmp), args.block_ms)
            sine = feed_sine(env)
            time.sleep(1.0)  # start-up (priming, first blocks) is not part of either phase
            rows = []
            for k in range(args.rounds):
                rows.append(phase(f"{k + 1}: without TUI", server, port, token, args.seconds, None))
                with_tui = f"{k + 1}: with TUI ({args.meter_hz:g} Hz)"
                rows.append(phase(with_tui, server, port, token, args.seconds, args.meter_hz))
            proc.terminate()
            proc.wait(15)
    finally:
        for p in (sine, proc):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        server.stop()
    cols = ("seconds", "total", *XRUN_KEYS, "portaudio_flags", "blocks")
    print(f"\nJACK dummy, period {args.period}, block {args.block_ms:g} ms, passthrough")
    print(f"{'phase':<26}" + "".join(f"{c[:18]:>20}" for c in cols) + f"{'meters/s':>10}  jackd blamed rtvc / C client")
    for r in rows:
        cells = "".join(f"{r[c]:>20g}" for c in cols)
        b = r["jackd_blamed"]
        blamed = f"{b.count('PortAudio')} / {b.count('jack_simple_client')}"
        print(f"{r['phase']:<26}{cells}{r.get('meter_hz_received', '-'):>10}  {blamed}")
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
    summary["tui_cpu_percent_median"] = cpu
    settings = {"period": args.period, "block_ms": args.block_ms, "meter_hz": args.meter_hz, "rounds": args.rounds}
    settings["jackd"] = "--realtime (in effect)" if server.realtime_in_effect else "--no-realtime"
    result = {"machine": machine(), "settings": settings, "summary": summary, "phases": rows}
    write_result(args.out, "tui_xruns", result)


if __name__ == "__main__":
    main()
