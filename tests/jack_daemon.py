"""`rtvc serve` on a JACK dummy server, and the load that control clients put on it, for the JACK tests that
ask "does the control plane cost the engine an xrun?" and for the benches that measure the same.

The daemon runs in its own process (as a user runs it), fed a sine by a C JACK client (jack_simple_client)
that is also the reference: when jackd blames it for an xrun, the machine, not rtvc, missed the deadline.
The loads run in their own processes too (as real tools do), started as `python tests/jack_daemon.py ...`:

    python tests/jack_daemon.py tui PORT TOKEN SECONDS METER_HZ      # the real TUI, headless
    python tests/jack_daemon.py control PORT TOKEN SECONDS CLIENTS   # meter subscribers + a parameter driver

Each prints "ready" once it is connected and receiving meters, then one line of JSON with what it measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from jack_harness import is_rtvc_port, jack_tool

ROOT = Path(__file__).resolve().parent.parent
XRUN_KEYS = ("input_overrun_events", "output_underrun_events", "monitor_underrun_events")
REFERENCE = "jack_simple_client"


class JackDaemon:
    """`rtvc serve --host-api JACK` on the server's system ports, with its own config and token folder."""

    def __init__(
        self,
        server_name: str,
        root: Path,
        profile: str,
        block_ms: float | None = None,
        stream: str = "",
        source: Path | None = None,
        control: str = "",
    ):
        """`stream`: lines for the config's [stream] table (e.g. "prefill_ms = 4"); `control`: for its [control] table.
        `source`: a checkout whose rtvc runs (another revision's, for a bench that compares two); this one's by
        default."""
        (root / "profiles").mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "profiles" / f"{profile}.toml", root / "profiles")
        with socket.socket() as s:  # a free port (the config takes no 0)
            s.bind(("127.0.0.1", 0))
            config = f"[control]\nport = {s.getsockname()[1]}\n{control}\n" + (
                f"[stream]\n{stream}\n" if stream else ""
            )
            (root / "config.toml").write_text(config)
        self.root = root
        self.env = {
            **os.environ,
            "JACK_DEFAULT_SERVER": server_name,
            "JACK_NO_START_SERVER": "1",
            "XDG_CONFIG_HOME": str(root / "xdg"),
            "PYTHONUNBUFFERED": "1",
        }
        if source is not None:
            self.env["PYTHONPATH"] = str(source)
        self.log_path = root / "serve.log"
        argv = [sys.executable, "-m", "rtvc", "serve", "--config", str(root / "config.toml"), "--host-api", "JACK"]
        argv += ["--input-device", "system", "--output-device", "system", "--output-channels", "1"]
        argv += ["--profile", profile] + (["--block-ms", str(block_ms)] if block_ms else [])
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(argv, cwd=root, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.sine: subprocess.Popen[bytes] | None = None
        deadline = time.monotonic() + 60
        while not (m := re.search(r"control: ws://\S+:(\d+)/rpc", self.log())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rtvc serve did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        self.port = int(m.group(1))
        self.token = (root / "xdg" / "rtvc" / "token").read_text().strip()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def feed_sine(self) -> None:
        """The C reference client plays a sine into rtvc's input (instead of the dummy's silent capture)."""
        self.sine = subprocess.Popen([REFERENCE], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            ports = jack_tool(self.env, "jack_lsp").stdout.split()
            # (a checkout before rtvc named its JACK client: "PortAudio", bench/callback_xruns.py's baseline)
            rtvc_in = [p for p in ports if (is_rtvc_port(p) or p.startswith("PortAudio:")) and ":in_" in p]
            if rtvc_in and f"{REFERENCE}:output1" in ports:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"JACK ports never appeared: {ports}")
            time.sleep(0.1)
        jack_tool(self.env, "jack_disconnect", "system:capture_1", rtvc_in[0])
        wired = jack_tool(self.env, "jack_connect", f"{REFERENCE}:output1", rtvc_in[0])
        if wired.returncode != 0:
            raise RuntimeError(f"jack_connect {REFERENCE}:output1 {rtvc_in[0]} failed: {wired.stderr}")

    def engine(self) -> dict[str, Any]:
        from websockets.sync.client import connect

        with connect(f"ws://127.0.0.1:{self.port}/rpc?token={self.token}", open_timeout=10) as ws:
            ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status.get"}))
            return json.loads(ws.recv(timeout=10))["result"]["engine"]

    def counters(self) -> dict[str, int]:
        st = self.engine()
        x = st["xruns"]
        pa = sum(v for k, v in x["portaudio"].items() if k != "priming_output")
        head = {"total": x["total"], **{k: x[k] for k in XRUN_KEYS}, "portaudio_flags": pa}
        return {**head, "output_late_frames": x["output_late_frames"], "blocks": st["blocks"]}

    def load(self, kind: str, seconds: float, arg: float) -> tuple[subprocess.Popen[str], float]:
        """Start a load process (see the module's doc); return it once it said "ready", and the CPU time of
        this process's finished children then (for the load's own CPU use)."""
        cmd = [sys.executable, __file__, kind, str(self.port), self.token, str(seconds), str(arg)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            proc.kill()
            raise RuntimeError(f"the {kind} load did not connect to the daemon: {line!r}")
        return proc, children_cpu()

    def stop(self) -> None:
        for p in (self.sine, self.proc):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def finish(proc: subprocess.Popen[str], seconds: float) -> dict[str, Any]:
    """A load's JSON line, once it has run its `seconds`."""
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"the load did not stop {seconds:g} s after it started") from None
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the load failed (exit {proc.returncode}): {out[-2000:]}")
    return json.loads(lines[-1])


def ready() -> None:
    sys.__stdout__.write("ready\n")  # (Textual captures print() while it runs)
    sys.__stdout__.flush()


# ---- the loads, each in its own process ------------------------------------------------------------------
def tui(port: int, token: str, seconds: float, meter_hz: float) -> dict[str, Any]:
    """The real app (RtvcApp, headless, as `rtvc tui` runs) for `seconds` from its first meter update."""
    sys.path.insert(0, str(ROOT))
    from rtvc.tui.app import RtvcApp
    from rtvc.tui.client import DaemonClient, Endpoint
    from rtvc.tui.launch import yield_cpu

    class Timed(RtvcApp):
        received = 0

        def apply_meters(self, ev: dict[str, Any]) -> None:
            if Timed.received == 0:  # connected and metering: the parent starts counting now
                ready()
                # (this runs in the websocket client's task, outside Textual's message handling: the timer is a
                # thread that hands the exit to the app through Textual's thread bridge)
                threading.Thread(target=self.stop_after, args=(seconds,), daemon=True).start()
            Timed.received += 1
            super().apply_meters(ev)

        def stop_after(self, seconds: float) -> None:
            time.sleep(seconds)
            count = Timed.received - 1
            # (call_from_thread waits for the app to run it: from a thread of its own, so this one goes on)
            threading.Thread(target=self.call_from_thread, args=(self.exit,), daemon=True).start()
            time.sleep(10)  # the app exits and main() prints; this thread is a daemon and dies with it. Textual
            # sometimes never acts on an exit handed over from a thread (seen here): say so, and end anyway
            sys.__stdout__.write(json.dumps({"meter_updates": count, "link": self.link.state, "exit": "forced"}) + "\n")
            sys.__stdout__.flush()
            os._exit(0)

    yield_cpu()  # as `rtvc tui` does
    app = Timed(Endpoint("127.0.0.1", port, token))
    assert isinstance(app.client, DaemonClient)
    app.client.meter_hz = meter_hz
    app.run(headless=True, size=(100, 30))
    return {"meter_updates": Timed.received - 1, "link": app.link.state}


async def control(port: int, token: str, seconds: float, n_clients: int) -> dict[str, Any]:
    """`n_clients` subscribers to state and meters (30 Hz each), and a driver that sets the pitch every 50 ms
    and times its reply, the state event reaching it, and the event reaching the last subscriber."""
    sys.path.insert(0, str(Path(__file__).parent))
    from control_client import Client

    subs = [await Client.open(port, token) for _ in range(n_clients)]
    for c in subs:
        await c.call("events.subscribe", events=["state", "meters"], meter_hz=30)
    driver = await Client.open(port, token)
    await driver.call("events.subscribe", events=["state"])
    await asyncio.gather(*(c.event("meters", timeout=10) for c in subs))
    ready()
    times: dict[str, list[float]] = {"reply": [], "event_to_driver": [], "event_to_all_subscribers": []}
    end = time.monotonic() + seconds
    i = 0
    # alternate away from the pitch there is now, so every set is a change (a set that changes nothing sends no
    # event): a load started again on the same daemon (the test's next window) found -3 left by the last one
    start = (await driver.call("params.get"))["values"]["pitch"]
    step = 1.0 if start < 0 else -1.0  # (within the range either way)
    while time.monotonic() < end:
        for c in [*subs, driver]:  # drop what queued up (meters, earlier events)
            while not c.events.empty():
                c.events.get_nowait()
        t0 = time.perf_counter()
        await driver.call("params.set", values={"pitch": start + step * (1 - i % 2)})
        t1 = time.perf_counter()
        await driver.event("state", timeout=10)
        t2 = time.perf_counter()
        await asyncio.gather(*(c.event("state", timeout=10) for c in subs))
        t3 = time.perf_counter()
        for k, t in zip(times, (t1, t2, t3), strict=True):
            times[k].append(1e3 * (t - t0))
        i += 1
        await asyncio.sleep(0.05)
    for c in [*subs, driver]:
        await c.ws.close()
    return {"changes": i, "times_ms": times}


if __name__ == "__main__":
    kind, port_, token_, seconds_, arg_ = sys.argv[1:6]
    if kind == "tui":
        result = tui(int(port_), token_, float(seconds_), float(arg_))
    else:
        result = asyncio.run(control(int(port_), token_, float(seconds_), int(float(arg_))))
    print(json.dumps(result), flush=True)
