"""A real OBS Studio for tests: headless under Xvfb, in a throw-away HOME, with its WebSocket server on a
free port and known scenes; plus a minimal independent obs-websocket 5 client (raw `websockets`, no rtvc
code) that drives it the way a streamer's other tools would.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import free_port
from websockets.sync.client import connect

SCENES = ("Starting", "Just Chatting", "Gaming")

_GLOBAL_INI = """\
[General]
FirstRun=true
LastVersion=486539266
EnableAutoUpdates=false
ConfirmOnExit=false
[Basic]
Profile=Test
ProfileDir=Test
SceneCollection=Test
SceneCollectionFile=Test
[BasicWindow]
PreviewEnabled=false
SysTrayEnabled=false
[OBSWebSocket]
FirstLoad=false
ServerEnabled=true
ServerPort={port}
AlertsEnabled=false
AuthRequired=true
ServerPassword={password}
DebugEnabled=false
"""

# 320x180 at 5 fps: OBS renders its (empty) scenes about 20x cheaper than at its 1080p/30 defaults
_PROFILE_INI = (
    "[General]\nName=Test\n[Video]\nBaseCX=320\nBaseCY=180\nOutputCX=320\nOutputCY=180\nFPSType=2\nFPSNum=5\nFPSDen=1\n"
)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class ObsStudio:
    """`obs` under its own Xvfb. start() returns once the WebSocket port accepts connections."""

    def __init__(self, port: int, password: str) -> None:
        self.port = port
        self.password = password
        self.home = Path(tempfile.mkdtemp(prefix="rtvc-obs-"))
        self.log_path = self.home / "obs.log"
        self.xvfb: subprocess.Popen | None = None
        self.obs: subprocess.Popen | None = None
        self.display = ""
        self._write_config()

    def _write_config(self) -> None:
        cfg = self.home / ".config" / "obs-studio"
        (cfg / "basic" / "profiles" / "Test").mkdir(parents=True)
        (cfg / "basic" / "scenes").mkdir(parents=True)
        (cfg / "global.ini").write_text(_GLOBAL_INI.format(port=self.port, password=self.password))
        # obs-websocket 5.3 and later (OBS 30+) keep their settings here instead of in global.ini
        (cfg / "plugin_config" / "obs-websocket").mkdir(parents=True)
        server = {"first_load": False, "server_enabled": True, "server_port": self.port, "alerts_enabled": False}
        server |= {"auth_required": True, "server_password": self.password}
        (cfg / "plugin_config" / "obs-websocket" / "config.json").write_text(json.dumps(server))
        (cfg / "basic" / "profiles" / "Test" / "basic.ini").write_text(_PROFILE_INI)
        scene = {"custom_size": False, "id_counter": 0, "items": []}
        collection = {
            "name": "Test",
            "current_scene": SCENES[0],
            "current_program_scene": SCENES[0],
            "scene_order": [{"name": n} for n in SCENES],
            "sources": [{"id": "scene", "versioned_id": "scene", "name": n, "settings": scene} for n in SCENES],
            "groups": [],
            "transitions": [],
            "current_transition": "Cut",
            "transition_duration": 300,
        }
        (cfg / "basic" / "scenes" / "Test.json").write_text(json.dumps(collection))

    def start(self, timeout: float = 40.0) -> float:
        """Start Xvfb (once) and OBS; return the seconds until OBS's WebSocket port accepted a connection."""
        if self.xvfb is None:
            self._start_xvfb()
        env = {
            **os.environ,
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),  # OBS reads its config from here when it is set
            "DISPLAY": self.display,
            "LIBGL_ALWAYS_SOFTWARE": "1",
            "QT_QPA_PLATFORM": "xcb",
        }
        args = ["obs", "--disable-updater", "--multi", "--disable-missing-files-check"]
        t0 = time.monotonic()
        with self.log_path.open("ab") as log:
            self.obs = subprocess.Popen(args, env=env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT)
        while time.monotonic() - t0 < timeout:
            if self.obs.poll() is not None:
                raise RuntimeError(
                    f"obs exited with {self.obs.returncode} before opening port {self.port}: {self.log()}"
                )
            if port_open(self.port):
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError(f"obs did not open its WebSocket port {self.port} in {timeout:.0f} s: {self.log()}")

    def _start_xvfb(self) -> None:
        if shutil.which("Xvfb") is None:
            raise RuntimeError("Xvfb not found: install xvfb (scripts/system-deps.sh test does)")
        read, write = os.pipe()
        try:  # -displayfd: Xvfb picks a free display number and writes it to us once it is ready
            self.xvfb = subprocess.Popen(
                ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                pass_fds=(write,),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            os.close(write)
            with os.fdopen(read) as f:
                number = f.readline().strip()
        except BaseException:
            self.stop()
            raise
        if not number.isdigit():
            self.stop()
            raise RuntimeError("Xvfb did not start (no display number on -displayfd)")
        self.display = f":{number}"

    def kill_obs(self) -> None:
        """Kill OBS the way a crash would (SIGKILL) and wait for its port to close."""
        if self.obs is not None and self.obs.poll() is None:
            self.obs.send_signal(signal.SIGKILL)
            self.obs.wait(10)
        self.obs = None

    def stop(self) -> None:
        self.kill_obs()
        if self.xvfb is not None and self.xvfb.poll() is None:
            self.xvfb.terminate()
            try:
                self.xvfb.wait(5)
            except subprocess.TimeoutExpired:
                self.xvfb.kill()
                self.xvfb.wait(5)
        self.xvfb = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


class ObsClient:
    """A minimal obs-websocket 5 client, independent of rtvc's: Identify (with auth) and blocking requests."""

    def __init__(self, port: int, password: str) -> None:
        self.ws = connect(f"ws://127.0.0.1:{port}", subprotocols=["obswebsocket.json"], open_timeout=5)
        hello = json.loads(self.ws.recv(timeout=5))
        assert hello["op"] == 0, hello
        identify: dict = {"rpcVersion": 1, "eventSubscriptions": 0}
        auth = hello["d"].get("authentication")
        if auth:
            secret = base64.b64encode(hashlib.sha256((password + auth["salt"]).encode()).digest()).decode()
            identify["authentication"] = base64.b64encode(
                hashlib.sha256((secret + auth["challenge"]).encode()).digest()
            ).decode()
        self.ws.send(json.dumps({"op": 1, "d": identify}))
        identified = json.loads(self.ws.recv(timeout=5))
        assert identified["op"] == 2, identified

    def request(self, kind: str, data: dict | None = None) -> dict:
        rid = uuid.uuid4().hex
        self.ws.send(json.dumps({"op": 6, "d": {"requestType": kind, "requestId": rid, "requestData": data or {}}}))
        deadline = time.monotonic() + 5
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if msg["op"] == 7 and msg["d"]["requestId"] == rid:
                status = msg["d"]["requestStatus"]
                assert status["result"], f"{kind} failed: {status}"
                return msg["d"].get("responseData") or {}

    def set_scene(self, name: str) -> None:
        self.request("SetCurrentProgramScene", {"sceneName": name})

    def close(self) -> None:
        self.ws.close()


@contextlib.contextmanager
def running_obs(password: str) -> Iterator[ObsStudio]:
    """A started OBS on a free port, cleaned up after; skips the test when `obs` is not installed."""
    if shutil.which("obs") is None:
        pytest.skip("OBS Studio (`obs`) is not installed: run scripts/system-deps.sh test")
    studio = ObsStudio(free_port(), password)
    try:
        studio.start()
        yield studio
    finally:
        studio.cleanup()
