"""A real `rtvc serve --virtual` in its own process for end-to-end tests (the OBS dock, the TUI), and a
small synchronous JSON-RPC client that asks the daemon what its state is."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nothing listens on, below the kernel's range for the ports it hands out by itself: one it handed
    out here (bind to 0) could be given next to a connection of Chromium's or OBS's before the daemon bound it, and
    the daemon did not start ("Address already in use": a CI run of the dock's tests)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port found below {low}")


def wait_until(what: str, fn: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    """fn()'s first truthy value; fails naming `what` and the last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")
        time.sleep(every)


# ---- the daemon -------------------------------------------------------------------------------------
class Daemon:
    """`rtvc serve --virtual` in its own process, with its own config, profiles and token folder."""

    def __init__(self, root: Path, port: int):
        self.root = root
        self.port = port
        self.config = root / "config.toml"
        self.xdg = root / "xdg"
        self.log_path = root / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.devices = ["--virtual"]  # (a test on a JACK server names its devices, and its env the server)
        self.env: dict[str, str] = {}
        (root / "profiles").mkdir(parents=True, exist_ok=True)
        for name in ("default", "higher", "passthrough"):
            shutil.copy(ROOT / "profiles" / f"{name}.toml", self.profile(name))
        self.profile("edited").write_text('label = "Edited"\nvoice = "pitch"\n\n[params]\npitch = 2.0\n')
        self.config.write_text(f'[voice]\nprofile = "default"\n\n[control]\nport = {port}\n')

    def profile(self, name: str) -> Path:
        return self.root / "profiles" / f"{name}.toml"

    def start(self) -> None:
        env = {**os.environ, **self.env, "XDG_CONFIG_HOME": str(self.xdg), "PYTHONUNBUFFERED": "1"}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtvc", "serve", *self.devices, "--config", str(self.config)],
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"rtvc serve exited with {self.proc.returncode}:\n{self.log()}")
            try:  # an HTTP request (a bare TCP probe would be logged as a failed handshake)
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/dock/dock.css", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_until("rtvc serve to listen", up, timeout)

    def token(self) -> str:
        return (self.xdg / "rtvc" / "token").read_text().strip()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


@contextlib.contextmanager
def serving(daemon: Daemon) -> Iterator[Daemon]:
    """The daemon started and listening; stopped after."""
    daemon.start()
    try:
        daemon.wait_ready()
        yield daemon
    finally:
        daemon.stop()


class RpcClient:
    """The test's own JSON-RPC client on the daemon's websocket: what the daemon says, not what the page shows."""

    def __init__(self, port: int, token: str):
        self.ws: ClientConnection = connect(f"ws://127.0.0.1:{port}/rpc?token={token}", open_timeout=10)
        self.next_id = 1

    def call(self, method: str, **params: Any) -> Any:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params:
            msg["params"] = params
        self.next_id += 1
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv(timeout=10))
            if reply.get("id") == msg["id"]:
                if "error" in reply:
                    raise AssertionError(f"{method} failed: {reply['error']}")
                return reply["result"]

    def close(self) -> None:
        self.ws.close()
