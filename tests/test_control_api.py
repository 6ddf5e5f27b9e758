"""The control API end to end: real websocket clients over loopback against a control server driving an
engine on the paced virtual device, and one `rtvc serve --virtual` process for signals and its log.

Every test that sends bad input then checks the daemon still answers and still holds its state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import stat
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from control_client import WS_UPGRADE, Client, RpcFailure, http_get
from daemon_harness import free_port
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.frames import Frame, Opcode

from rtvc.audio.virtual import VirtualDevice
from rtvc.config import load_config
from rtvc.control import rpc
from rtvc.control.auth import load_or_create_token
from rtvc.control.controller import Controller
from rtvc.control.methods import METHODS
from rtvc.control.server import TOKEN_CHECK_S, ControlServer
from rtvc.errors import ConfigError
from rtvc.run import build_engine

ROOT = Path(__file__).resolve().parent.parent
SR = 48000
EXTRA_ORIGIN = "http://localhost:8000"
pytestmark = pytest.mark.timeout(120)


class Daemon:
    """Engine on the paced virtual device (a 0.5 sine), controller and control server, in this process."""

    def __init__(self, root: Path):
        (root / "profiles").mkdir()
        (root / "profiles" / "passthrough.toml").write_text('label = "Passthrough"\nvoice = "passthrough"\n')
        (root / "profiles" / "pitch.toml").write_text('label = "Deeper"\nvoice = "pitch"\n[params]\npitch = -4.0\n')
        (root / "profiles" / "broken.toml").write_text('voice = "no-such-voice"\n')
        (root / "dock").mkdir()
        (root / "dock" / "index.html").write_text("<!doctype html><title>dock</title>")
        (root / "dock" / "app.js").write_text("console.log('dock');")
        cfg_path = root / "config.toml"
        cfg_path.write_text(f'[voice]\nprofile = "passthrough"\n[control]\norigins = ["{EXTRA_ORIGIN}"]\n')
        self.cfg = load_config(cfg_path)
        self.token = load_or_create_token()
        self.engine = build_engine(self.cfg)
        self.controller = Controller(self.cfg, self.engine, "passthrough")
        self.server = ControlServer(self.cfg.control, self.controller, self.token, port=0, dock_dir=root / "dock")
        x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(150 * SR) / SR)).astype(np.float32)
        self.device = VirtualDevice(self.engine, x, 256, paced=True)

    @property
    def port(self) -> int:
        return self.server.port

    def state(self) -> dict[str, Any]:
        return self.controller.state()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    root = tmp_path_factory.mktemp("control")
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(root / "xdg")
    d = Daemon(root)
    d.server.start()
    d.engine.start()
    d.device.start()
    yield d
    d.device.stop()
    d.engine.stop()
    d.server.stop()
    if old is None:
        del os.environ["XDG_CONFIG_HOME"]
    else:
        os.environ["XDG_CONFIG_HOME"] = old


@pytest.fixture(autouse=True)
def baseline(request):
    """Each test starts from the same switches: a test that fails half-way (leaving the mic muted, say)
    must not make the next one fail for its own reasons."""
    yield
    if "daemon" in request.fixturenames:
        d = request.getfixturevalue("daemon")
        deadline = time.monotonic() + 3
        while d.server.clients and time.monotonic() < deadline:  # the test's clients finish closing
            time.sleep(0.05)
        for client in list(d.server.clients):  # a failed test's clients would count against the cap
            d.server._loop.call_soon_threadsafe(client.ws.transport.abort)
        c = d.controller
        c.set_mute(False, "tests")
        c.set_ptt_mode(False, "tests")
        c.set_voice_on(True, "tests")
        c.set_gate("tests", True, -60.0, 200.0)


def run(coro) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


# -- the token ----------------------------------------------------------------------------------------
def test_token_file_is_private_and_kept(tmp_path):
    path = tmp_path / "xdg" / "rtvc" / "token"
    token = load_or_create_token(path)
    assert len(token) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", token)  # 32 random bytes, urlsafe
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_token(path) == token
    assert load_or_create_token(path, renew=True) != token
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match=r"can be read by other users \(mode 0644\).*chmod 600"):
        load_or_create_token(path)


def test_a_token_in_a_read_only_private_folder_is_read(tmp_path, monkeypatch):
    """A review: on a read-only file system (a remounted home, a locked-down config), a token already there and its
    folder already private were refused: the folder was chmod-ed at every start, and that failed."""
    import errno

    path = tmp_path / "xdg" / "rtvc" / "token"
    token = load_or_create_token(path)
    path.parent.chmod(0o500)  # (private, and read-only: any mode others cannot look in is left as it is)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "chmod", read_only)
    assert load_or_create_token(path) == token


def test_a_damaged_token_file_or_a_folder_in_its_place_is_named_not_a_traceback(tmp_path):
    """A token file with a byte that is not text gave a UnicodeDecodeError traceback from `rtvc token` and stopped
    `rtvc serve` the same way; a folder in its place gave IsADirectoryError (and told to chmod 600)."""
    path = tmp_path / "xdg" / "rtvc" / "token"
    load_or_create_token(path)
    path.write_bytes(b"tok\xe9n" * 10)
    with pytest.raises(ConfigError, match=r"does not hold a valid token.*rtvc token --new"):
        load_or_create_token(path)
    assert len(load_or_create_token(path, renew=True)) >= 43  # the fix it names works
    path.unlink()
    path.mkdir()
    for renew in (False, True):
        with pytest.raises(ConfigError, match=r"is a folder, not the token file.*rmdir"):
            load_or_create_token(path, renew=renew)
    # a file where the folder goes, a folder that cannot be written (a `sudo rtvc` left it root's): tracebacks before
    (tmp_path / "x1").mkdir()
    (tmp_path / "x1" / "rtvc").write_text("")
    with pytest.raises(ConfigError, match=r"x1/rtvc is a file, not a folder.*XDG_CONFIG_HOME"):
        load_or_create_token(tmp_path / "x1" / "rtvc" / "token")
    (tmp_path / "x3").write_text("")  # (a file further up: it is the one named, not the folder below it)
    with pytest.raises(ConfigError, match=r"token: .*/x3 is a file, not a folder \(move .*/x3 away"):
        load_or_create_token(tmp_path / "x3" / "cfg" / "rtvc" / "token")
    locked = tmp_path / "x2" / "rtvc"
    locked.mkdir(parents=True)
    refused = PermissionError(13, "Permission denied", str(locked / "token"))
    with (
        mock.patch("os.open", side_effect=refused),
        mock.patch("os.getuid", return_value=os.getuid() + 1),  # (another user's folder: a `sudo rtvc`'s)
        pytest.raises(ConfigError, match=rf"Permission denied.*make {locked} yours \(`sudo chown -R \$USER {locked}`"),
    ):
        load_or_create_token(locked / "token")
    # (it said "sudo chown" for a folder of the user's own made read-only, and for a home folder that is not there)
    with mock.patch("os.open", side_effect=refused), pytest.raises(ConfigError) as e:
        load_or_create_token(locked / "token")
    assert f"({locked} is yours but not writable: `chmod u+rwx {locked}`, or set XDG_CONFIG_HOME" in str(e.value)
    with (
        mock.patch.dict(os.environ, {"HOME": str(tmp_path / "gone"), "XDG_CONFIG_HOME": ""}),
        mock.patch("os.open", side_effect=refused),
        pytest.raises(ConfigError) as e,
    ):
        load_or_create_token(locked / "token")
    assert f"(the home folder {tmp_path / 'gone'} is not there: set HOME to the user's home" in str(e.value)


def test_a_config_folder_of_roots_that_the_user_cannot_enter_gets_the_chown_advice() -> None:
    """A review: ~/.config left root's with mode 700 (a `sudo rtvc`): the fix text's own search for the folder to name
    raised PermissionError (Python 3.11's exists() under a folder that cannot be entered), a traceback. Run for real
    as the user nobody, with the system's Python 3."""
    import shutil
    import subprocess
    import tempfile

    setpriv, python = shutil.which("setpriv"), "/usr/bin/python3"
    if os.getuid() != 0 or not setpriv or not os.path.exists(python):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to run as another user")
    root = Path(tempfile.mkdtemp(prefix="rtvc-nobody-", dir="/tmp"))
    try:
        home = root / "home"
        (home / ".config" / "rtvc").mkdir(parents=True)
        root.chmod(0o755)
        os.chown(home, 65534, 65534)
        (home / ".config").chmod(0o700)  # (root's, closed)
        script = "from rtvc.control.auth import load_or_create_token; load_or_create_token()"
        r = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", script],
            capture_output=True, text=True, timeout=60,
            env={"HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        if "ModuleNotFoundError" in r.stderr:
            pytest.skip(f"the system's Python 3 cannot import rtvc's modules: {r.stderr.strip().splitlines()[-1]}")
        assert "ConfigError: cannot keep the control token at" in r.stderr, r.stderr
        assert f"make {home / '.config'} yours (`sudo chown -R $USER {home / '.config'}`" in r.stderr, r.stderr
        assert "PermissionError" not in r.stderr.replace("ConfigError", ""), r.stderr
    finally:
        shutil.rmtree(root)


def test_a_disk_that_fills_as_the_token_is_made_leaves_no_empty_token_file(tmp_path):
    """A full disk at the first start left a 0-byte token file, and every later start, with space freed, was
    refused: "does not hold a valid token" (a review; under the service, every 5 s until the user acted)."""
    path = tmp_path / "xdg" / "rtvc" / "token"
    full = OSError(28, "No space left on device")
    with mock.patch("os.fsync", side_effect=full), pytest.raises(ConfigError, match=r"No space.*free some space"):
        load_or_create_token(path)
    assert sorted(path.parent.iterdir()) == []  # (nothing half-made left)
    token = load_or_create_token(path)  # (space freed)
    assert path.read_text() == token + "\n" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rtvc_token_prints_the_token_and_the_dock_url(tmp_path, monkeypatch, capsys):
    from rtvc.cli import main

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "config.toml").write_text("[control]\nport = 47999\n")
    assert main(["token", "--config", str(tmp_path / "config.toml")]) == 0
    token = (tmp_path / "xdg" / "rtvc" / "token").read_text().strip()
    out = capsys.readouterr().out
    assert f"token:     {token}\n" in out and f"http://127.0.0.1:47999/dock?token={token}\n" in out
    assert "disconnects the clients" not in out
    assert main(["token", "--new", "--config", str(tmp_path / "config.toml")]) == 0
    new = (tmp_path / "xdg" / "rtvc" / "token").read_text().strip()
    out = capsys.readouterr().out
    assert new != token and f"token:     {new}\n" in out
    assert "a running rtvc serve takes the new token within a second and disconnects the clients" in out


# -- every method ---------------------------------------------------------------------------------------
def test_every_method_answers_on_the_wire_and_drives_the_engine(daemon):
    async def main():
        c = await Client.open(daemon.port)
        reply = await c.request("auth", token=daemon.token)
        assert c.frames[-1] == json.dumps(
            {"jsonrpc": "2.0", "id": 1, "result": {"client": reply["result"]["client"], "version": "0.1.0"}},
            separators=(",", ":"),
        )
        info = await c.call("server.info")
        assert info["name"] == "rtvc" and info["api"] == 1 and set(info["methods"]) == set(METHODS)
        st = await c.call("status.get")
        assert st["engine"]["state"] == "running" and st["control"]["profile"] == "passthrough"
        voices = await c.call("voices.list")
        assert {v["name"] for v in voices["voices"]} == {"passthrough", "pitch", "broken"}
        assert "no-such-voice" in next(v for v in voices["voices"] if v["name"] == "broken")["error"]

        await c.call("voices.select", name="pitch")
        for _ in range(100):  # the engine takes the new voice at its next block edge
            if (await c.call("params.get"))["kind"] == "pitch":
                break
            await asyncio.sleep(0.01)
        p = await c.call("params.get")
        assert p["values"]["pitch"] == -4.0 and p["ranges"]["pitch"]["min"] == -24.0
        assert (await c.call("params.set", values={"pitch": -3.5})) == {"values": {**p["values"], "pitch": -3.5}}
        for _ in range(100):  # the worker takes the new voice (and its parameters) at a block edge
            if daemon.engine.converter.voice.kind == "pitch":
                break
            await asyncio.sleep(0.01)
        assert daemon.engine.converter.params.pitch == -3.5

        await c.request("mute.set", on=True)
        assert c.frames[-1] == f'{{"jsonrpc":"2.0","id":{c._next},"result":{{"on":true}}}}'
        assert daemon.engine.muted is True
        assert await c.call("mute.toggle") == {"on": False} and daemon.engine.muted is False
        assert await c.call("voice.set", on=False) == {"on": False} and daemon.engine.converter.bypass is True
        assert await c.call("voice.toggle") == {"on": True} and daemon.engine.converter.bypass is False
        with pytest.raises(RpcFailure, match="monitor not switched on: hear myself needs a monitor device") as e:
            await c.call("monitor.set", on=True)  # the virtual device has none: nothing to hear it on
        assert e.value.code == -32002 and "monitor_device" in str(e.value) and not daemon.engine.monitor_enabled
        with pytest.raises(RpcFailure, match="needs a monitor device"):
            await c.call("monitor.toggle")
        assert await c.call("monitor.set", on=False) == {"on": False}  # off is always allowed
        daemon.engine.has_monitor_device = True  # (what DeviceStreams sets when it opens a monitor stream)
        assert await c.call("monitor.set", on=True) == {"on": True} and daemon.engine.monitor_enabled
        lost = "the monitor stream stopped: [4] USB Headset (ALSA) failed or disappeared"
        daemon.engine.monitor_lost(lost)
        assert daemon.engine.status().state == "running"  # the main output plays on
        st = await c.call("status.get")
        assert st["engine"]["monitor_device"] == {"present": False, "error": lost}
        assert st["control"]["monitor"] is False  # hear-myself went off with its device: the state says so
        with pytest.raises(RpcFailure, match=r"hear myself has no device: the monitor stream stopped: \[4\] USB"):
            await c.call("monitor.toggle")
        daemon.engine.monitor_error = ""  # (the daemon is shared by this module's tests)
        assert await c.call("ptt.mode", on=True) == {"on": True} and daemon.engine.muted
        assert await c.call("ptt.press") == {"held": 1, "silent": False}
        assert await c.call("ptt.release") == {"held": 0, "silent": True}
        assert await c.call("ptt.mode", on=False) == {"on": False} and not daemon.engine.muted
        dev = await c.call("devices.list")
        assert dev["in_use"] == {"virtual": True} and dev["switchable"] is False and isinstance(dev["devices"], list)
        with pytest.raises(RpcFailure, match="not available on the virtual device") as e:
            await c.call("devices.select", input="0")
        assert e.value.code == rpc.NOT_AVAILABLE
        sub = await c.call("events.subscribe", events=["state"])
        assert sub["events"] == ["state"] and sub["meter_hz"] is None and sub["state"]["profile"] == "pitch"
        assert await c.call("events.unsubscribe") == {"events": []}
        await c.call("voices.select", name="passthrough")
        await c.close()

    run(main())


def test_voices_list_says_which_model_files_are_missing(daemon):
    """A profile whose model file is not there is listed with the file named (the dock and the TUI mark it), not
    as a button that fails first when pressed on stream; selecting it still says the same."""
    folder = daemon.controller.profiles_dir
    (folder / "rvc-gone.toml").write_text(
        'label = "Gone"\nvoice = "rvc"\n[model]\npath = "../models/nope.pth"\ncontent = "."\n'
    )

    async def main():
        c = await Client.open(daemon.port, daemon.token)
        listed = {v["name"]: v for v in (await c.call("voices.list"))["voices"]}
        gone = listed["rvc-gone"]
        assert gone["label"] == "Gone" and gone["voice"] == "rvc" and not gone["active"], gone
        assert "path = '../models/nope.pth'" in gone["error"] and "no such file" in gone["error"], gone
        assert "content" not in gone["error"]  # (a folder: a transformers HuBERT may be one)
        assert "error" not in listed["pitch"]
        await c.close()

    try:
        run(main())
    finally:
        (folder / "rvc-gone.toml").unlink()


def test_a_profile_from_elsewhere_is_named_by_its_path_not_as_a_listed_one(daemon, tmp_path):
    """`rtvc serve --profile /elsewhere/pitch.toml` played that file but called it 'pitch': the list marked
    profiles/pitch.toml ('Deeper') as playing, and a scene mapped to 'pitch' counted as selected. (The API selects
    listed names only; the daemon's start profile is loaded as the controller loads it here.)"""
    from rtvc.profiles import profile_name

    folder = daemon.controller.profiles_dir
    elsewhere = tmp_path / "pitch.toml"
    elsewhere.write_text('label = "Chipmunk"\nvoice = "pitch"\n[params]\npitch = 7.0\n')
    assert profile_name("pitch", folder) == "pitch" == profile_name(str(folder / "pitch.toml"), folder)
    assert profile_name(str(elsewhere), folder) == str(elsewhere)

    async def main():
        c = await Client.open(daemon.port, daemon.token)
        await asyncio.to_thread(daemon.controller.select_voice, str(elsewhere), "test")
        st = await c.call("status.get")
        assert st["control"]["profile"] == str(elsewhere) and st["control"]["params"]["pitch"] == 7.0
        listed = {v["name"]: v for v in (await c.call("voices.list"))["voices"]}
        assert not any(v["active"] for v in listed.values()), listed
        await c.call("voices.select", name="pitch")
        assert (await c.call("status.get"))["control"]["profile"] == "pitch"
        listed = {v["name"]: v for v in (await c.call("voices.list"))["voices"]}
        assert listed["pitch"]["active"]
        await c.call("voices.select", name="passthrough")
        await c.close()

    run(main())


def test_a_model_path_that_cannot_be_looked_at_fails_its_voice_alone(daemon):
    """'~rtvc-nouser/x.pth' (pathlib's expanduser raises for a user this machine lacks) and a name too long to
    stat (OSError, as a folder without permission gives): voices.list and voices.select raised for every voice (-32603).
    The others are listed and selected; that voice alone is marked, and selecting it is a load failure."""
    folder = daemon.controller.profiles_dir
    long = "a" * 300 + ".pth"
    bad = {"rvc-nouser": "~rtvc-nouser/x.pth", "rvc-long": long}
    for name, path in bad.items():
        (folder / f"{name}.toml").write_text(f'voice = "rvc"\n[model]\npath = "{path}"\ncontent = "."\n')

    async def main():
        c = await Client.open(daemon.port, daemon.token)
        listed = {v["name"]: v for v in (await c.call("voices.list"))["voices"]}
        assert {"passthrough", "pitch", "broken", *bad} <= set(listed) and "error" not in listed["pitch"]
        err = listed["rvc-nouser"]["error"]
        said = "path = '~rtvc-nouser/x.pth': '~rtvc-nouser': no user 'rtvc-nouser' on this machine"
        assert f"{folder / 'rvc-nouser.toml'}: [model] {said}" in err, err
        err = listed["rvc-long"]["error"]
        assert f"{folder / 'rvc-long.toml'}: [model] path = '{long}'" in err and "File name too long" in err, err
        assert (await c.call("voices.select", name="pitch"))["profile"] == "pitch"
        for name, path in bad.items():
            reply = await c.request("voices.select", name=name)
            message = reply["error"]["message"]
            assert reply["error"]["code"] == rpc.LOAD_FAILED, reply
            assert message.startswith(f"voice '{name}' did not load, the current voice stays: "), message
            assert str(folder / f"{name}.toml") in message and path in message, message
        assert daemon.state()["profile"] == "pitch"
        await c.call("voices.select", name="passthrough")
        await c.close()

    try:
        run(main())
    finally:
        for name in bad:
            (folder / f"{name}.toml").unlink()


def test_a_select_that_fails_on_an_unreadable_path_ends_its_load(daemon):
    """A review: a profile whose model path the machine cannot use (a NUL in it; a name a Latin-1 locale cannot
    encode) raised before the load's error handling: the select said "internal error" and the daemon stayed
    "loading" for good, every later change refused as busy, and the dock (it waits for a load to end) locked."""
    profile = daemon.controller.profiles_dir / "nul-path.toml"
    profile.write_text('label = "NUL"\nvoice = "rvc"\n[model]\npath = "bad\\u0000.pth"\ncontent = "."\n')

    async def main():
        c = await Client.open(daemon.port, daemon.token)
        reply = await c.request("voices.select", name="nul-path")
        assert "error" in reply, reply
        assert daemon.controller.state()["loading"] is None
        assert await c.call("mute.set", on=True) == {"on": True}  # (not refused as busy)
        await c.call("mute.set", on=False)
        await c.close()

    try:
        run(main())
    finally:
        profile.unlink()


def test_a_model_file_a_load_found_damaged_is_marked_in_voices_list_until_it_changes(daemon):
    """A voice .pth that is there but cut short (a download stopped at 200 kB) passes voices.list's look (the file is
    there); its select failed with -32003, and the list went on showing it as fine, so the dock and the TUI offered it
    unmarked. Now the failed load marks it with that load's error, says so in its event (clients that follow
    "profiles" read the list again), and the mark goes when the file is replaced or the profile edited. A select of a
    marked voice still loads it: the mark refuses nothing."""
    torch = pytest.importorskip("torch")
    from rtvc.rvc.factory import write_rvc_checkpoint

    folder = daemon.controller.profiles_dir
    pth = folder / "damaged.pth"
    profile = folder / "rvc-damaged.toml"
    write_rvc_checkpoint(pth, version="v2", sr="40k", f0=1, size="tiny", seed=0)
    whole = pth.read_bytes()
    pth.write_bytes(whole[:200_000])
    profile.write_text('label = "Damaged"\nvoice = "rvc"\n[model]\npath = "damaged.pth"\ncontent = "."\n')

    async def main():
        c = await Client.open(daemon.port, daemon.token)

        async def listed() -> dict[str, dict]:
            return {v["name"]: v for v in (await c.call("voices.list"))["voices"]}

        async def failed_select() -> tuple[str, dict]:
            reply = await c.request("voices.select", name="rvc-damaged")
            assert reply["error"]["code"] == rpc.LOAD_FAILED, reply
            assert (await c.event())["changed"] == ["loading"]  # (the load begins)
            return reply["error"]["message"], await c.event()

        assert "error" not in (await listed())["rvc-damaged"]  # (the file is there: only a load can tell)
        await c.call("events.subscribe", events=["state"])
        message, ev = await failed_select()
        assert f"{pth}: truncated or damaged checkpoint" in message, message
        assert ev["changed"] == ["loading", "profiles"] and ev["error"].startswith("voice 'rvc-damaged' did not load")
        assert ev["profiles"] == {"added": [], "removed": [], "edited": [], "model_files": ["rvc-damaged"]}, ev
        now = await listed()
        assert now["rvc-damaged"]["error"] in message and f"{pth}: truncated" in now["rvc-damaged"]["error"], now
        assert "error" not in now["pitch"] and "error" not in now["passthrough"] and now["passthrough"]["active"]
        assert daemon.state()["profile"] == "passthrough"

        # selected again, unchanged: loaded again (not refused), failing the same: the mark was there, no new event
        message, ev = await failed_select()
        assert f"{pth}: truncated" in message and ev["changed"] == ["loading"], ev
        assert (await listed())["rvc-damaged"]["error"] == now["rvc-damaged"]["error"]
        assert c.events.empty(), c.events.get_nowait()

        # the file replaced by a whole one: the mark goes, said as a change of its model files
        pth.write_bytes(whole)
        after = await listed()
        assert "error" not in after["rvc-damaged"], after
        ev = await c.event()
        assert ev["changed"] == ["profiles"] and ev["by"] == "profiles", ev
        assert ev["profiles"] == {"added": [], "removed": [], "edited": [], "model_files": ["rvc-damaged"]}, ev

        # a checkpoint of a version rtvc does not run: marked with that error; the profile edited, the mark goes
        cpt = torch.load(pth, map_location="cpu", weights_only=True)
        torch.save({**cpt, "version": "v3"}, pth)
        message, ev = await failed_select()
        assert f"{pth}: unknown RVC version 'v3'" in message and ev["changed"] == ["loading", "profiles"], ev
        assert "unknown RVC version 'v3'" in (await listed())["rvc-damaged"]["error"]
        profile.write_text(profile.read_text().replace('"Damaged"', '"Damaged, v3"'))
        after = await listed()
        assert after["rvc-damaged"]["label"] == "Damaged, v3" and "error" not in after["rvc-damaged"], after
        ev = await c.event()
        assert ev["profiles"] == {"added": [], "removed": [], "edited": ["rvc-damaged"], "model_files": []}, ev
        assert c.events.empty(), c.events.get_nowait()
        await c.close()

    try:
        run(main())
    finally:
        profile.unlink()
        pth.unlink()
        daemon.controller.voices()  # (the poll sees it gone now, not in another test's events)


def test_a_load_marks_its_profile_only_where_a_model_file_it_names_is_why(tmp_path):
    """Which failed loads mark a profile in voices.list: a ModelError naming one of its model files. Not one of the
    machine (torch missing: no file named), nor of the moment (a GPU out of memory on the first block names the
    profile, as an RtvcError): selected again later, those may load, and the lists must not show them as broken."""
    from rtvc.control.load_failures import LoadFailures
    from rtvc.errors import ModelError, RtvcError

    pth = tmp_path / "v.pth"
    pth.write_bytes(b"PK\x03\x04 not all of it")
    (tmp_path / "v.toml").write_text('voice = "rvc"\n[model]\npath = "v.pth"\ncontent = "."\n')
    failures = LoadFailures(tmp_path)
    not_files = [
        ModelError("RVC voices need torch", 'install the rvc extra: pip install -e ".[rvc]"'),
        RtvcError(f"{tmp_path / 'v.toml'}: the voice failed on its first block (OutOfMemoryError: CUDA out of memory)"),
    ]
    for e in not_files:
        assert not failures.failed("v", failures.before_load("v"), e)
        assert failures.error("v") == "" and failures.changed() == []
    damaged = ModelError(f"{pth}: truncated or not a torch checkpoint (EOFError)", "download the file again")
    assert failures.failed("v", failures.before_load("v"), damaged)
    assert not failures.failed("v", failures.before_load("v"), damaged)  # (marked already, with that error)
    assert failures.error("v") == str(damaged) and failures.changed() == []
    pth.write_bytes(b"PK\x03\x04 all of it, downloaded again")
    assert failures.error("v") == ""  # (the stat tells: no poll needed for the list)
    assert failures.changed() == ["v"] and failures.changed() == []  # (said once)


# -- events -----------------------------------------------------------------------------------------------
def test_a_set_that_changes_nothing_sends_no_event(daemon):
    """A Stream Deck key pressed twice, an OBS scene that sets what is already set: every other client got an event
    and the daemon logged a line for each, with nothing changed. Now only a change is an event."""

    async def main():
        setter, watcher = await Client.open(daemon.port, daemon.token), await Client.open(daemon.port, daemon.token)
        sets = [("mute.set", {"on": False}), ("voice.set", {"on": True}), ("ptt.mode", {"on": False})]
        sets.append(("params.set", {"values": {"gain_db": -0.75}}))
        for method, params in sets:  # (as they are now, before the watcher listens)
            await setter.call(method, **params)
        await watcher.call("events.subscribe", events=["state"])
        for method, params in sets:
            await setter.call(method, **params)
        await setter.call("mute.set", on=True)  # the one change
        ev = await asyncio.wait_for(watcher.event(), 5)
        assert ev["changed"] == ["mute", "silent"], ev  # (silent: what mute and push-to-talk make of the output)
        await setter.call("mute.set", on=False)
        assert (await asyncio.wait_for(watcher.event(), 5))["changed"] == ["mute", "silent"]
        assert watcher.events.empty(), watcher.events.get_nowait()
        for c in (setter, watcher):
            await c.close()

    run(main())


def test_a_change_by_one_client_reaches_every_subscriber_with_who_made_it(daemon):
    async def main():
        clients = [await Client.open(daemon.port, daemon.token) for _ in range(3)]
        ids = [(await c.call("server.info"))["client"] for c in clients]
        await clients[0].call("mute.set", on=False)  # (as an earlier test may have left it: a change below)
        for c in clients:
            await c.call("events.subscribe")
        quiet = await Client.open(daemon.port, daemon.token)  # not subscribed: gets no events
        await clients[1].call("mute.set", on=True)
        for c in clients:
            ev = await c.event()
            assert ev["changed"] == ["mute", "silent"] and ev["by"] == ids[1] and ev["state"]["mute"] is True
        # the reply comes before the event it caused, on the wire
        frames = [json.loads(f) for f in clients[1].frames]
        assert [("id" in f, f.get("params", {}).get("changed")) for f in frames[-2:]] == [
            (True, None),
            (False, ["mute", "silent"]),
        ]

        # a change made on another thread (as the OBS link does) crosses the one bridge to every client
        t = threading.Thread(target=daemon.controller.set_mute, args=(False, "obs"))
        t.start()
        t.join()
        for c in clients:
            ev = await c.event()
            assert ev["by"] == "obs" and ev["state"]["mute"] is False

        # the engine's own state: only to clients subscribed to "engine"
        await clients[0].call("events.subscribe", events=["engine"])
        await asyncio.to_thread(daemon.controller.poll_engine)  # the daemon's poll, on its own thread
        ev = await clients[0].event("engine")
        assert ev["by"] == "engine" and ev["engine"] == {
            "state": "running",
            "detail": "",
            "monitor_error": "",
            "unheard": "",
        }
        assert ev["state"]["engine"] == "running"
        lost = "the monitor stream stopped: headphones failed or disappeared"
        daemon.engine.monitor_lost(lost)  # unplugged: the engine runs on, and says so
        await asyncio.to_thread(daemon.controller.poll_engine)
        ev = await clients[0].event("engine")
        assert ev["engine"] == {"state": "running", "detail": "", "monitor_error": lost, "unheard": ""}
        daemon.engine.monitor_error = ""
        await clients[0].call("events.subscribe")

        # round trip: params.set by one client -> the event at another
        times = []
        for i in range(60):
            t0 = time.perf_counter()
            await clients[0].ws.send(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": f"g{i}",
                        "method": "params.set",
                        "params": {"values": {"gain_db": -0.25 - i % 2}},  # (a change each time: an event)
                    }
                )
            )
            ev = await clients[2].event()
            times.append(time.perf_counter() - t0)
            assert ev["changed"] == ["params"] and ev["state"]["params"]["gain_db"] == -0.25 - i % 2
        ms = sorted(1e3 * t for t in times)
        print(f"\nparams.set -> event at another client: median {statistics.median(ms):.2f} ms, max {ms[-1]:.2f} ms")
        assert statistics.median(ms) < 50
        assert quiet.events.empty()
        for c in [*clients, quiet]:
            await c.close()

    run(main())


def test_meters_come_at_the_subscribers_rate(daemon):
    async def main():
        c = await Client.open(daemon.port, daemon.token)
        await c.call("events.subscribe", events=["meters"], meter_hz=20)
        first = await c.event("meters")
        rates = []
        for _ in range(4):  # this VM stalls a process for 0.3 s at times, which only ever lowers the rate
            t0, n = time.monotonic(), 0
            while time.monotonic() - t0 < 2.0:
                await c.event("meters")
                n += 1
            rates.append(n / 2)
            if rates[-1] >= 15:
                break
        assert all(r <= 23 for r in rates) and rates[-1] >= 15, f"meter updates a second: {rates}, not 20"
        levels = {"in_peak", "in_rms", "out_peak", "out_rms", "limit_db"}
        assert set(first) == {"type", *levels, "gate", "block_ms", "p99_ms", "budget_ms", "xruns"}
        assert first["gate"] == "open"  # (the sine is far above the gate's threshold)
        assert first["budget_ms"] == pytest.approx(20.0) and first["p99_ms"] > 0
        assert first["in_peak"] == pytest.approx(-6.02, abs=0.1)  # the 0.5 sine
        assert first["in_rms"] == pytest.approx(-9.03, abs=0.3)
        await c.close()

    run(main())


# -- who may connect ------------------------------------------------------------------------------------
def test_no_token_and_wrong_token_are_refused(daemon, monkeypatch):
    async def main():
        c = await Client.open(daemon.port)
        with pytest.raises(RpcFailure, match="send auth") as e:
            await c.call("mute.set", on=True)
        assert e.value.code == rpc.UNAUTHORIZED and daemon.state()["mute"] is False
        with pytest.raises(RpcFailure, match="send auth") as e:  # an unknown method too, as docs/API.md says
            await c.call("no.such")
        assert e.value.code == rpc.UNAUTHORIZED
        reply = await c.request("auth", token="x" * 43)
        assert reply["error"]["code"] == rpc.UNAUTHORIZED and "rtvc token" in reply["error"]["message"]
        assert (await asyncio.wait_for(c.closed, 5))[0] == rpc.CLOSE_UNAUTHORIZED

        for wrong in ("wrong", ""):  # an empty one too (a tool's unfilled template): at once, not after 10 s
            bad = await Client.open(daemon.port, path=f"/rpc?token={wrong}")
            code, reason = await asyncio.wait_for(bad.closed, 5)
            assert code == rpc.CLOSE_UNAUTHORIZED and "wrong token" in reason and "rtvc token" in reason
        good = await Client.open(daemon.port, path=f"/rpc?token={daemon.token}")
        assert (await good.call("status.get"))["control"]["mute"] is False
        await good.close()
        pasted = await Client.open(daemon.port)  # a token pasted with its line end
        assert "client" in (await pasted.request("auth", token=daemon.token + "\n"))["result"]
        await pasted.close()

        monkeypatch.setattr(rpc, "AUTH_TIMEOUT_S", 0.3)
        idle = await Client.open(daemon.port)
        code, reason = await asyncio.wait_for(idle.closed, 5)
        assert code == rpc.CLOSE_UNAUTHORIZED and "no auth within" in reason
        # one that keeps sending without the token: closed at the deadline too (with requests waiting their turn,
        # the deadline went unlooked at, and it held its slot for a minute: a review)
        monkeypatch.setattr(rpc, "AUTH_TIMEOUT_S", 1.0)
        busy = await Client.open(daemon.port)
        _pipelined(busy, 200, "u")  # (past the burst: seconds of them wait at the budget of clients without the token)
        t0 = time.monotonic()
        code, reason = await asyncio.wait_for(busy.closed, 10)
        assert code == rpc.CLOSE_UNAUTHORIZED and "no auth within" in reason, (code, reason)
        assert time.monotonic() - t0 < 3.0

    run(main())


def test_odd_ids_tokens_and_headers_get_answers_not_crashes(daemon):
    port = daemon.port

    async def main():
        c = await Client.open(port, daemon.token)
        big = 10**400  # JSON allows it; it is no float
        reply = await c.send_raw(json.dumps({"jsonrpc": "2.0", "id": big, "method": "status.get"}), big)
        assert reply["result"]["control"]["mute"] is False
        for huge in ("1e400", "7" * 5000):  # a number it cannot echo: said as that, not as "must be a number"
            reply = await c.send_raw(f'{{"jsonrpc": "2.0", "id": {huge}, "method": "status.get"}}')
            assert reply["error"]["message"] == '"id" is a number too large to echo back: use a string or a ' \
                "smaller number", reply  # fmt: skip
        await c.close()
        lone = await Client.open(port)  # a lone surrogate cannot be any token: refused like a wrong one
        reply = await lone.send_raw('{"jsonrpc": "2.0", "id": 1, "method": "auth", "params": {"token": "\\ud800"}}', 1)
        assert reply["error"]["code"] == rpc.UNAUTHORIZED
        assert (await asyncio.wait_for(lone.closed, 5))[0] == rpc.CLOSE_UNAUTHORIZED

    run(main())
    for name, value in (("Origin", f"http://127.0.0.1:{port}"), ("Host", f"127.0.0.1:{port}")):
        twice = {name: f"{value}\r\n{name}: {value}"}
        status, _, body = http_get(port, "/rpc", {**twice, **WS_UPGRADE})
        assert status == 400 and f"more than one {name} header".encode() in body, (status, body)
    assert http_get(port, "/dock/%00")[0] == 404


def test_a_renewed_token_takes_over_in_a_running_daemon(daemon, tmp_path):
    """`rtvc token --new` after a leak: the running server reads the new token from its file; the clients
    logged in with the old one are disconnected (4001, saying why), the old token is refused from then on and
    the new one works. A token file made unusable meanwhile keeps the token it had."""
    path = tmp_path / "rtvc" / "token"
    older = load_or_create_token(path)
    old = load_or_create_token(path, renew=True)  # renewed after the daemon read its token, before it listened
    server = ControlServer(daemon.cfg.control, daemon.controller, older, port=0, token_file=path)
    server.start()

    async def main():
        late = await Client.open(server.port)
        await asyncio.sleep(1.5 * TOKEN_CHECK_S)
        assert (await late.request("auth", token=older))["error"]["code"] == rpc.UNAUTHORIZED
        logged_in = await Client.open(server.port, old)
        new = await asyncio.to_thread(load_or_create_token, path, True)
        assert new != old
        code, reason = await asyncio.wait_for(logged_in.closed, 5)
        assert code == rpc.CLOSE_UNAUTHORIZED and "the token was renewed" in reason, (code, reason)
        late = await Client.open(server.port)
        reply = await late.request("auth", token=old)
        assert reply["error"]["code"] == rpc.UNAUTHORIZED
        fresh = await Client.open(server.port, new)
        assert (await fresh.call("status.get"))["control"]["profile"]
        path.chmod(0o644)  # others can read it now: no secret, so not taken; the token in use stays
        path.write_text("x" * 43 + "\n")
        await asyncio.sleep(2.5 * TOKEN_CHECK_S)
        path.chmod(0o600)
        path.write_bytes(b"\xff\xfe not UTF-8\n")  # nor is this; and the watcher lives on to take the next one
        await asyncio.sleep(2.5 * TOKEN_CHECK_S)
        assert (await fresh.call("status.get"))["control"]["profile"]  # (still connected)
        again = await Client.open(server.port, new)
        await again.close()
        path.unlink()
        newest = await asyncio.to_thread(load_or_create_token, path)
        await asyncio.sleep(2.5 * TOKEN_CHECK_S)
        assert (await asyncio.wait_for(fresh.closed, 5))[0] == rpc.CLOSE_UNAUTHORIZED
        last = await Client.open(server.port, newest)
        await last.close()

    try:
        run(main())
    finally:
        server.stop()


def test_origins_and_hosts_off_the_list_are_refused(daemon):
    port = daemon.port

    async def main():
        with pytest.raises(InvalidStatus) as e:
            await connect(f"ws://127.0.0.1:{port}/rpc", origin="http://evil.example")
        assert e.value.response.status_code == 403 and b"control.origins" in e.value.response.body
        for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}", EXTRA_ORIGIN):
            c = await Client.open(port, daemon.token, origin=origin)
            await c.close()

    run(main())
    # DNS rebinding: a page at evil.example resolved to 127.0.0.1 sends its own name as Host
    for host in (f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}"):
        status, _, body = http_get(port, "/rpc", {"Host": host, **WS_UPGRADE})
        assert status == 403 and b"not a loopback address with this port" in body
    status, hdrs, _ = http_get(port, "/rpc", {"Host": f"localhost:{port}", **WS_UPGRADE})
    assert status == 101 and hdrs["upgrade"] == "websocket"


def test_a_bind_on_another_loopback_address_is_reached_there(daemon):
    """control.bind = "127.0.0.2" is a loopback address, so config.toml allows it without allow_remote; the daemon
    listened there and `rtvc token` printed its URLs there, but the Host check knew only 127.0.0.1, localhost and
    [::1]: the dock, the TUI and every tool got 403 "connect to 127.0.0.1:PORT", where nothing listened."""
    from dataclasses import replace

    server = ControlServer(replace(daemon.cfg.control, bind="127.0.0.2"), daemon.controller, daemon.token, port=0)
    server.start()

    async def main():
        url = f"ws://127.0.0.2:{server.port}/rpc?token={daemon.token}"
        async with connect(url, origin=f"http://127.0.0.2:{server.port}", open_timeout=10) as ws:  # the dock
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status.get"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["result"]["control"]["profile"]
        with pytest.raises(InvalidStatus) as e:  # (another name for the machine is still refused)
            await connect(f"ws://evil.example:{server.port}/rpc", host="127.0.0.2", port=server.port, open_timeout=10)
        assert b"connect to 127.0.0.2:" in e.value.response.body

    try:
        run(main())
    finally:
        server.stop()


def test_a_bind_on_every_address_is_reached_on_ipv4_and_ipv6_and_a_foreign_address_is_said(daemon):
    """control.bind = "::" listened on IPv6 alone (asyncio makes such a socket IPv6-only): the URLs rtvc prints
    (127.0.0.1), `rtvc ctl` and the network's IPv4 clients found nothing there. An address that is not this machine's
    was said as a port in use."""
    from dataclasses import replace

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    port = free_port()
    cfg = replace(daemon.cfg.control, bind="::", allow_remote=True, port=port)
    server = ControlServer(cfg, daemon.controller, daemon.token, port=port)
    server.start()

    async def main():
        for host in ("127.0.0.1", "[::1]"):
            async with connect(f"ws://{host}:{port}/rpc?token={daemon.token}", open_timeout=10) as ws:
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status.get"}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["result"]["control"]["profile"], host

    try:
        run(main())
    finally:
        server.stop()
    foreign = replace(daemon.cfg.control, bind="192.0.2.1", allow_remote=True, port=free_port())  # (TEST-NET-1)
    with pytest.raises(ConfigError, match=r"control.bind = '192.0.2.1' is no address of this machine"):
        ControlServer.check_port(foreign)


def test_with_allow_remote_the_dock_opened_from_another_machine_connects(daemon):
    """With control.allow_remote the dock is meant to be opened from another machine (OBS on a streaming PC:
    http://rig.local:PORT/dock?token=...), but its page's Origin was not 127.0.0.1 or localhost: its websocket was
    refused (403) and the dock said 'refused the websocket' although config.toml says the dock is always allowed."""
    from dataclasses import replace

    cfg = replace(daemon.cfg.control, bind="127.0.0.1", allow_remote=True)
    server = ControlServer(cfg, daemon.controller, daemon.token, port=0)
    server.start()
    port = server.port

    async def main():
        url = f"ws://rig.local:{port}/rpc?token={daemon.token}"  # (reached on 127.0.0.1, named rig.local)
        async with connect(url, host="127.0.0.1", port=port, origin=f"http://rig.local:{port}", open_timeout=10) as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status.get"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["result"]["control"]["profile"]
        with pytest.raises(InvalidStatus) as e:  # another site's page is still refused
            await connect(url, host="127.0.0.1", port=port, origin="http://evil.example", open_timeout=10)
        assert e.value.response.status_code == 403 and b"control.origins" in e.value.response.body

    try:
        run(main())
    finally:
        server.stop()


def test_the_dock_files_are_served_and_nothing_else(daemon):
    port = daemon.port
    status, hdrs, _ = http_get(port, "/dock?token=abc")
    assert status == 308 and hdrs["location"] == "/dock/?token=abc"
    status, hdrs, body = http_get(port, "/dock/")
    assert status == 200 and body == b"<!doctype html><title>dock</title>"
    assert hdrs["content-type"] == "text/html; charset=utf-8" and hdrs["x-content-type-options"] == "nosniff"
    status, hdrs, body = http_get(port, "/dock/app.js")
    assert status == 200 and body == b"console.log('dock');" and "javascript" in hdrs["content-type"]
    for path in ("/dock/../config.toml", "/dock/%2e%2e/config.toml", "/dock/nope.js", "/", "/config.toml"):
        assert http_get(port, path)[0] == 404, path
    status, _, body = http_get(port, "/dock/" + "a" * 5000)  # a name too long for the file system: was a 500
    assert status == 404 and body.startswith(b"the dock has no file 'aaaa"), (status, body[:80])
    status, _, body = http_get(port, "/rpc")
    assert status == 426 and b"websocket client" in body


# -- bad input: an error or a close for the sender, nothing changes for anyone else ---------------------------
BAD = [  # (what is sent, the error code, words the message must hold)
    ("{not json", rpc.PARSE_ERROR, "not valid JSON"),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "params.set", "params": {"values": {"gain_db": NaN}}}',
        rpc.PARSE_ERROR,
        "NaN is not JSON",
    ),
    ("[" * 20000 + "]" * 20000, rpc.INVALID_REQUEST, "nested too deeply"),
    (  # valid JSON with a number longer than Python reads: answered under its id, the value refused by name
        '{"jsonrpc": "2.0", "id": 1, "method": "params.set", "params": {"values": {"gain_db": ' + "7" * 5000 + "}}}",
        rpc.INVALID_PARAMS,
        "'params.gain_db' = <a number of 5000 digits> is too large",  # (it said "has the wrong type")
    ),
    (  # (quoted as a string before: "<a number of 5000 digits>")
        '{"jsonrpc": "2.0", "id": 1, "method": "gate.set", "params": {"hold_ms": ' + "7" * 5000 + "}}",
        rpc.INVALID_PARAMS,
        "gate.set: 'hold_ms' = <a number of 5000 digits> is too large: from 0 to 5000",  # (it said "must be a number")
    ),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "status.get", "params": null}',
        rpc.INVALID_REQUEST,
        '"params" must be an object',
    ),
    ('[{"jsonrpc": "2.0", "id": 1, "method": "status.get"}]', rpc.INVALID_REQUEST, "batches are not supported"),
    ('"status.get"', rpc.INVALID_REQUEST, "JSON object"),
    ('{"id": 1, "method": "status.get"}', rpc.INVALID_REQUEST, '"jsonrpc": "2.0"'),
    ('{"jsonrpc": "2.0", "id": 1, "method": 5}', rpc.INVALID_REQUEST, '"method" must be a string'),
    ('{"jsonrpc": "2.0", "id": [1], "method": "status.get"}', rpc.INVALID_REQUEST, '"id" must be'),
    ('{"jsonrpc": "2.0", "id": 1, "method": "mute.set", "params": [true]}', rpc.INVALID_PARAMS, "by name"),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "mute.sett", "params": {"on": true}}',
        rpc.METHOD_NOT_FOUND,
        "did you mean 'mute.set'?",
    ),
    (  # (a macro tool that upper-cases: no suggestion came for it)
        '{"jsonrpc": "2.0", "id": 1, "method": "MUTE.SET", "params": {"on": true}}',
        rpc.METHOD_NOT_FOUND,
        "unknown method 'MUTE.SET': did you mean 'mute.set'?",
    ),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "mute.set", "params": {"on": "yes"}}',
        rpc.INVALID_PARAMS,
        "'on' = \"yes\" must be a boolean",
    ),
    (  # JSON's words, with their article ("a object" / "a array" were built from the type's name)
        '{"jsonrpc": "2.0", "id": 1, "method": "params.set", "params": {"values": [1]}}',
        rpc.INVALID_PARAMS,
        "params.set: 'values' = [1] must be an object: name: value",
    ),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "events.subscribe", "params": {"events": "state"}}',
        rpc.INVALID_PARAMS,
        "events.subscribe: 'events' = \"state\" must be an array: of state, engine, meters",
    ),
    ('{"jsonrpc": "2.0", "id": 1, "method": "mute.set", "params": {}}', rpc.INVALID_PARAMS, "missing parameter 'on'"),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "mute.set", "params": {"on": true, "x": 1}}',
        rpc.INVALID_PARAMS,
        "unknown parameter 'x': its parameters are on",
    ),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "params.set", "params": {"values": {"gain_db": 99}}}',
        rpc.INVALID_PARAMS,
        "'params.gain_db' = 99.0 is not allowed (it must be a number from -60 to 24)",
    ),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "params.set", "params": {"values": {"gain": 1}}}',
        rpc.INVALID_PARAMS,
        "unknown key 'params.gain' (did you mean 'gain_db'?",
    ),
    ('{"jsonrpc": "2.0", "id": 1, "method": "params.set", "params": {"values": {}}}', rpc.INVALID_PARAMS, "non-empty"),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "events.subscribe", "params": {"meter_hz": 100}}',
        rpc.INVALID_PARAMS,
        "out of range: from 1 to 30",
    ),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "events.subscribe", "params": {"events": ["mic"]}}',
        rpc.INVALID_PARAMS,
        'unknown event type "mic"',
    ),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "events.subscribe", "params": {"events": [[1], "state"]}}',
        rpc.INVALID_PARAMS,
        "unknown event type [1]",
    ),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "events.subscribe", "params": {"events": ["state"], "meter_hz": 5}}',
        rpc.INVALID_PARAMS,
        'add "meters" to events',
    ),
    (  # integers past a float's range: a range error like any other, not an overflow inside
        '{"jsonrpc": "2.0", "id": 1, "method": "events.subscribe", "params": {"meter_hz": 1' + "0" * 400 + "}}",
        rpc.INVALID_PARAMS,
        "'meter_hz' = 1000000000",
    ),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "params.set", "params": {"values": {"gain_db": -1' + "0" * 400 + "}}}",
        rpc.INVALID_PARAMS,
        "'params.gain_db' = -1000000000",
    ),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "voices.select", "params": {"name": "pich"}}',
        rpc.NOT_FOUND,
        "no voice 'pich': did you mean 'pitch'?",
    ),
    (  # the label that the TUI, the dock and `rtvc ctl status` show: it said only "voices: ..."
        '{"jsonrpc": "2.0", "id": 1, "method": "voices.select", "params": {"name": "deeper"}}',
        rpc.NOT_FOUND,
        "no voice 'deeper': 'deeper' is the label of voice 'pitch': select it by its name, pitch",
    ),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "voices.select", "params": {"name": "../../etc/passwd"}}',
        rpc.NOT_FOUND,
        "voices: ",
    ),
    (
        '{"jsonrpc": "2.0", "id": 1, "method": "voices.select", "params": {"name": "broken"}}',
        rpc.LOAD_FAILED,
        "did not load, the current voice stays",
    ),
    (b"\x00binary", rpc.INVALID_REQUEST, "text frame"),
]


def test_bad_requests_get_a_clear_error_and_change_nothing(daemon):
    async def main():
        c = await Client.open(daemon.port, daemon.token)
        await c.call("mute.set", on=True)
        await c.call("params.set", values={"gain_db": -2.5})
        before = daemon.state()
        for text, code, words in BAD:
            reply = await c.send_raw(text, 1 if json_id(text) else None)
            assert reply["error"]["code"] == code, (text[:80], reply)
            assert words in reply["error"]["message"], (words, reply)
        # a notification (no id) gets no reply, even when it is wrong; the next request's reply is next
        await c.ws.send('{"jsonrpc": "2.0", "method": "no.such"}')
        await c.ws.send('{"jsonrpc": "2.0", "method": "mute.set", "params": [true]}')
        n = len(c.frames)
        assert (await c.call("status.get"))["control"] == before
        assert len(c.frames) == n + 1
        await c.call("mute.set", on=False)
        await c.close()

    run(main())


def test_a_request_after_a_byte_order_mark_is_answered(daemon):
    """Some Windows tools start their text with U+FEFF; json.loads refuses it, so the request was a parse error.
    One leading mark is ignored, as read_toml ignores it in a file; a second one is still not JSON."""

    async def answer(c: Client, text: str) -> str:
        n = len(c.frames)
        await c.ws.send(text)
        while len(c.frames) == n:  # (no subscription: the next frame is the reply, whatever its id)
            await asyncio.sleep(0.01)
        return c.frames[n]

    async def main():
        c = await Client.open(daemon.port, daemon.token)
        got = await answer(c, '\ufeff{"jsonrpc":"2.0","id":7,"method":"mute.set","params":{"on":true}}')
        assert got == '{"jsonrpc":"2.0","id":7,"result":{"on":true}}' and daemon.engine.muted is True, got
        got = await answer(c, '\ufeff\ufeff{"jsonrpc":"2.0","id":8,"method":"mute.set","params":{"on":false}}')
        assert json.loads(got)["error"]["code"] == rpc.PARSE_ERROR and daemon.engine.muted is True, got
        await c.call("mute.set", on=False)
        await c.close()

    run(main())


def json_id(text: str | bytes) -> bool:
    """Whether the server can read an id out of this request (else it answers with id null)."""
    try:
        msg = json.loads(text, parse_constant=rpc._no_constants, parse_int=rpc._parse_int)
    except (ValueError, RecursionError):
        return False
    return isinstance(msg, dict) and isinstance(msg.get("id"), int)


def test_a_voice_that_loads_slowly_does_not_stop_the_others(daemon, monkeypatch):
    import rtvc.run

    real = rtvc.run.build_converter

    def slow(cfg, name):
        time.sleep(1.0)  # a model loading
        return real(cfg, name)

    monkeypatch.setattr(rtvc.run, "build_converter", slow)
    fresh = Path(daemon.controller.profiles_dir) / "slow.toml"  # (not a voice another test left kept)
    fresh.write_text('voice = "pitch"\n[params]\npitch = -4.0\n')
    daemon.controller.voices()  # (its "profiles" event now, not among the select's below)

    async def main():
        a = await Client.open(daemon.port, daemon.token)
        b = await Client.open(daemon.port, daemon.token)
        await b.call("events.subscribe")
        loading = asyncio.create_task(a.call("voices.select", name="slow"))
        ev = await b.event()
        assert ev["changed"] == ["loading"] and ev["state"]["loading"] == "slow"
        t0 = time.perf_counter()
        assert (await a.call("status.get"))["control"]["loading"] == "slow"  # a's own requests go on too
        await b.call("mute.toggle")
        await b.call("mute.toggle")
        assert time.perf_counter() - t0 < 0.5
        with pytest.raises(RpcFailure, match="is loading with its profile's params") as e:
            await b.call("params.set", values={"gain_db": -3.0})  # it would be lost with the old voice
        assert e.value.code == rpc.BUSY
        assert (await loading)["profile"] == "slow"
        await a.call("voices.select", name="passthrough")
        await a.close()
        await b.close()

    try:
        run(main())
    finally:
        fresh.unlink()


def test_during_a_load_the_latest_voices_select_wins(daemon, monkeypatch):
    """A streamer clicks through voices faster than a model loads: the voice clicked last is the one that plays,
    with no click refused. A select made during a load waits for it; one overtaken while it waited loads nothing
    and is answered SUPERSEDED naming the later voice; a second select of the voice loading now (a double click)
    is answered by that load, which runs once."""
    import rtvc.run

    real, built = rtvc.run.build_converter, []

    def slow(cfg, name):
        built.append(name)
        time.sleep(0.8)  # a model loading
        return real(cfg, name)

    monkeypatch.setattr(rtvc.run, "build_converter", slow)
    folder = Path(daemon.controller.profiles_dir)
    fresh = [folder / f"{name}.toml" for name in ("first", "between", "last")]  # (no voice kept from other tests)
    for k, path in enumerate(fresh):
        path.write_text(f'voice = "pitch"\n[params]\npitch = {k + 1}.0\n')
    daemon.controller.voices()  # (their "profiles" event now, not among the selects' below)

    async def main():
        a = await Client.open(daemon.port, daemon.token)
        b = await Client.open(daemon.port, daemon.token)
        await b.call("events.subscribe")
        first = asyncio.create_task(a.call("voices.select", name="first"))
        assert (await b.event())["state"]["loading"] == "first"
        # (from one client: its requests reach the server in the order sent)
        twice = asyncio.create_task(b.call("voices.select", name="first"))  # the same, while it loads
        overtaken = asyncio.create_task(b.call("voices.select", name="between"))
        last = asyncio.create_task(b.call("voices.select", name="last"))
        last_twice = asyncio.create_task(b.call("voices.select", name="last"))  # the same, while it waits
        assert (await first)["profile"] == "first" and (await twice)["profile"] == "first"
        with pytest.raises(RpcFailure) as e:
            await overtaken
        assert e.value.code == rpc.SUPERSEDED
        assert str(e.value).endswith("voice 'between' was not loaded: voice 'last' was selected after it")
        assert (await last)["profile"] == "last" and (await last_twice)["profile"] == "last"
        assert built == ["first", "last"]  # nothing loaded twice, nothing for the overtaken select
        assert daemon.state()["profile"] == "last" and daemon.state()["loading"] is None
        assert (await b.call("params.set", values={"pitch": 5.0}))["values"]["pitch"] == 5.0  # nothing busy now
        await a.call("voices.select", name="passthrough")
        await a.close()
        await b.close()

    try:
        run(main())
    finally:
        for path in fresh:
            path.unlink()


def test_a_10_mb_message_closes_only_its_sender(daemon):
    async def main():
        other = await Client.open(daemon.port, daemon.token)
        before = daemon.state()
        big = await Client.open(daemon.port, daemon.token, max_size=None)
        try:
            await big.ws.send(
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": "auth", "params": {"token": "x" * 10**7}})
            )
        except OSError:
            pass  # the server may close before all 10 MB are written
        code, _ = await asyncio.wait_for(big.closed, 10)
        assert code == 1009  # message too big
        assert (await other.call("status.get"))["control"] == before
        await other.close()

    run(main())


def test_200_connections_at_once_are_capped_and_the_daemon_keeps_serving(daemon):
    cap = daemon.cfg.control.max_clients

    dropped = 0

    async def one():
        nonlocal dropped
        try:
            return await connect(f"ws://127.0.0.1:{daemon.port}/rpc", open_timeout=20)
        except InvalidStatus as e:
            assert e.response.status_code == 503 and b"control.max_clients" in e.response.body
        except InvalidMessage:  # on a starved machine a handshake can outlast the server's open_timeout (5 s)
            dropped += 1
        return None

    async def main():
        before = daemon.state()
        t0 = time.monotonic()
        conns = await asyncio.gather(*(one() for _ in range(200)))
        opened = [c for c in conns if c is not None]
        # racing handshakes may get past the HTTP check; the surplus is closed at once with 1013
        await asyncio.sleep(0.5)
        live = [c for c in opened if c.close_code is None]
        took = time.monotonic() - t0
        # every handshake answered: exactly the cap; some dropped as too slow: never more than the cap
        assert len(live) == cap or (dropped and len(live) < cap), (len(opened), len(live), dropped)
        assert all(c.close_code == rpc.CLOSE_FULL for c in opened if c not in live)
        assert took < 20, took
        for c in opened:
            await c.close()
        await asyncio.sleep(0.2)
        c = await Client.open(daemon.port, daemon.token)
        assert (await c.call("status.get"))["control"] == before
        await c.close()
        print(f"\n200 connections at once: {len(live)} served, the rest refused ({dropped} timed out), in {took:.2f} s")

    run(main())


def test_a_burst_of_requests_from_a_client_that_reads_is_answered(daemon):
    """300 requests in one write (a macro, a Stream Deck page) from a client reading all along: the daemon answered
    14 and closed it (4008 "too slow"), having answered the buffered frames one after another with no turn for
    its writer, so the replies filled the send queue unsent."""

    async def main():
        c = await Client.open(daemon.port, daemon.token)
        sent, frames = [], []
        for i in range(1, 301):
            sent.append(asyncio.get_running_loop().create_future())
            c._waiting[f"b{i}"] = sent[-1]
            msg = {"jsonrpc": "2.0", "id": f"b{i}", "method": "mute.set", "params": {"on": bool(i % 2)}}
            frames.append(Frame(Opcode.TEXT, json.dumps(msg).encode()).serialize(mask=True, extensions=[]))
        c.ws.transport.write(b"".join(frames))  # (one write: the server finds them all buffered at once)
        replies = await asyncio.wait_for(asyncio.gather(*sent), 20)
        assert [r["result"] for r in replies] == [{"on": bool(i % 2)} for i in range(1, 301)]
        assert await c.call("mute.set", on=False) == {"on": False} and not c.closed.done()
        await c.close()

    run(main())


def _pipelined(client: Client, n: int, prefix: str) -> list[asyncio.Future]:
    """`n` status.get requests written at once (as a macro or a looping tool sends them): their replies' futures."""
    futures, frames = [], []
    for i in range(n):
        futures.append(asyncio.get_running_loop().create_future())
        client._waiting[f"{prefix}{i}"] = futures[-1]
        msg = {"jsonrpc": "2.0", "id": f"{prefix}{i}", "method": "status.get"}
        frames.append(Frame(Opcode.TEXT, json.dumps(msg).encode()).serialize(mask=True, extensions=[]))
    client.ws.transport.write(b"".join(frames))
    return futures


def test_a_client_flooding_requests_is_held_to_the_rate_and_the_others_are_answered(daemon, caplog):
    """A review: one local client looping on a request, without the token even, made the voice crackle (each
    request holds Python's lock, which the audio worker needs: status.get at 891/s gave 0.72 s of gaps in 10 s).
    A client's requests past control.max_requests_per_s wait their turn, answered in order, none lost; another
    client is answered at once meanwhile. One more than MAX_BEHIND_S behind is closed, said (4029): waiting, its
    socket went unread, and the keepalive dropped it (1011) with its requests, unsaid (a second review).
    bench/control_flood.py measures the audio under such a flood."""
    from rtvc.control import connection

    rate = daemon.cfg.control.max_requests_per_s
    n = 250

    async def main():
        flood = await Client.open(daemon.port, daemon.token)
        other = await Client.open(daemon.port, daemon.token)
        t0 = time.monotonic()
        futures = _pipelined(flood, n, "f")
        await asyncio.sleep(0.3)
        t = time.monotonic()
        assert await other.call("mute.set", on=True) == {"on": True}
        answered = time.monotonic() - t
        replies = await asyncio.wait_for(asyncio.gather(*futures), 30)
        took = time.monotonic() - t0
        assert all("result" in r for r in replies) and not flood.closed.done()
        assert took >= 0.9 * (n - connection.BURST) / rate, took  # (the rate held)
        assert answered < took / 2, (answered, took)  # (the other client did not queue behind the flood)
        await other.call("mute.set", on=False)
        # far ahead of its rate: closed once MAX_BEHIND_S behind, its earlier requests answered in order
        ahead = int((connection.MAX_BEHIND_S + 2) * rate + connection.BURST)
        futures = _pipelined(flood, ahead, "g")
        code, reason = await asyncio.wait_for(flood.closed, 30)
        assert code == rpc.CLOSE_TOO_MANY and "too many requests: over 5 s of them at 100/s" in reason, reason
        got = [f.result() for f in futures if f.done() and not f.cancelled() and not f.exception()]
        assert all("result" in r for r in got) and [f.done() for f in futures][: len(got)] == [True] * len(got)
        await other.close()

    with caplog.at_level("INFO", logger="rtvc.control"):
        run(main())
    said = [r.getMessage() for r in caplog.records if "faster than" in r.getMessage()]
    assert len(said) == 2 and "they are answered at that rate" in said[0] and "closed" in said[1], said


def test_a_value_nested_to_the_edge_is_refused_as_invalid(daemon):
    """A value nested just under what json.loads takes: quoting it in the error (json.dumps, deeper on the stack)
    raised RecursionError: -32603 "internal error (please report it)" and a traceback in the log."""

    async def main():
        c = await Client.open(daemon.port, daemon.token)
        codes = set()
        for depth in range(900, 1000, 2):
            text = '{"jsonrpc":"2.0","id":1,"method":"mute.set","params":{"on":' + "[" * depth + "]" * depth + "}}"
            loop = asyncio.get_running_loop()
            c._waiting[1], c._waiting[None] = loop.create_future(), loop.create_future()  # (None: not parsed)
            replies = (c._waiting[1], c._waiting[None])
            await c.ws.send(text)
            done, _ = await asyncio.wait(replies, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            c._waiting.pop(1, None), c._waiting.pop(None, None)
            codes.add(done.pop().result()["error"]["code"])
        assert codes <= {rpc.INVALID_PARAMS, rpc.INVALID_REQUEST} and rpc.INVALID_PARAMS in codes, codes
        assert await c.call("mute.set", on=False) == {"on": False}
        await c.close()

    run(main())


def test_a_client_that_never_reads_is_closed_and_stalls_no_one(daemon):
    async def main():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's buffers fill
        sock.connect(("127.0.0.1", daemon.port))
        sock.setblocking(False)
        # max_queue=1: websockets stops reading the socket once one message waits, as a stuck client would
        slow = await connect(f"ws://127.0.0.1:{daemon.port}/rpc?token={daemon.token}", sock=sock, max_queue=1)
        await slow.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "events.subscribe",
                    "params": {"events": ["state", "meters"], "meter_hz": 30},
                }
            )
        )
        await asyncio.sleep(0.2)
        slow_id = max(daemon.server.clients, key=lambda c: int(c.id.split()[1])).id
        fast = await Client.open(daemon.port, daemon.token)
        await fast.call("mute.set", on=True)  # (so that the first of the loop, off, is a change: an event)
        await fast.call("events.subscribe")
        t0 = time.perf_counter()
        worst = 0.0
        for i in range(0, 3000, 100):  # 3000 state changes, 100 in flight at a time
            t = time.perf_counter()
            replies = [asyncio.create_task(fast.request("mute.set", on=bool(j % 2))) for j in range(i, i + 100)]
            for r in replies:
                assert "result" in await r
            worst = max(worst, time.perf_counter() - t)
            if slow_id not in {c.id for c in daemon.server.clients}:
                break
        took = time.perf_counter() - t0
        assert slow_id not in {c.id for c in daemon.server.clients}, "the slow client was never closed"
        print(
            f"\nslow client closed after {i + 100} changes ({took:.2f} s); worst 100 requests of the other took"
            f" {1e3 * worst:.0f} ms"
        )
        # a daemon that waited on the slow client would hold the fast one's replies until the kick, or for
        # ever; 5 s leaves room for this VM's stalls (0.3-0.5 s at a time), seen at 2.07 s here
        assert worst < 5.0
        await fast.call("mute.set", on=False)
        n = 0
        while not fast.events.empty():  # the fast client got every event, in order
            ev = fast.events.get_nowait()
            n += ev["type"] == "state"
        assert n >= i + 100
        await fast.close()
        slow.transport.abort()

    run(main())


def test_the_noise_gate_on_the_wire_silences_the_output_and_refuses_bad_values(daemon):
    """gate.set above the input's level: the sine (-9 dBFS RMS, more than 6 dB below it) counts as room noise,
    and what plays becomes exact silence; the state event, meters and status say so. Bad values are refused by
    name and change nothing; gate.toggle flips it; the default threshold lets the sine through again."""
    dev, lat = daemon.device, daemon.engine.latency().total

    def heard(a: int, b: int) -> float:
        return float(np.mean(np.abs(dev.recording[a:b]) > 0.01))

    async def main():
        c = await Client.open(daemon.port, daemon.token)
        await c.call("events.subscribe", events=["state", "meters"], meter_hz=20)
        assert (await c.call("status.get"))["control"]["gate"] == {"on": True, "threshold_db": -60.0, "hold_ms": 200.0}
        await c.request("gate.set", threshold_db=-1, hold_ms=50)
        reply = f'{{"jsonrpc":"2.0","id":{c._next},"result":{{"on":true,"threshold_db":-1.0,"hold_ms":50.0}}}}'
        assert reply in c.frames  # (the state event may come first: it is sent as the change is made)
        ev = await c.event("state")
        assert ev["changed"] == ["gate"] and ev["state"]["gate"]["threshold_db"] == -1
        t_set = dev.frames_done
        for _ in range(100):
            if (await c.event("meters"))["gate"] == "closed":
                break
        else:
            raise AssertionError("meters never said the gate closed")
        await asyncio.sleep(0.4)
        a = t_set + lat + round(0.25 * SR)  # the hold (50 ms), the release (100 ms) and a block or two
        assert dev.frames_done - a > 0.1 * SR and heard(a, dev.frames_done) == 0.0
        st = (await c.call("status.get"))["engine"]["gate"]
        assert st["on"] and not st["open"] and st["closed_s"] > 0.1

        for params, words in (
            ({"threshold_db": 5}, "'threshold_db' = 5 is out of range: from -100 to 0"),
            ({"hold_ms": -1}, "'hold_ms' = -1 is out of range: from 0 to 5000"),
            ({"on": "yes"}, "'on' = \"yes\" must be a boolean"),
            ({"threshold": -40}, "unknown parameter 'threshold': its parameters are on, threshold_db, hold_ms"),
        ):
            with pytest.raises(RpcFailure) as e:
                await c.call("gate.set", **params)
            assert e.value.code == rpc.INVALID_PARAMS and words in str(e.value), str(e.value)
        assert daemon.state()["gate"] == {"on": True, "threshold_db": -1, "hold_ms": 50}  # nothing changed

        assert await c.call("gate.toggle") == {"on": False, "threshold_db": -1, "hold_ms": 50}
        t_off = dev.frames_done
        await asyncio.sleep(0.4)
        a = t_off + lat + round(0.05 * SR)
        assert heard(a, dev.frames_done) > 0.9  # off: the sine plays
        assert await c.call("gate.set", on=True, threshold_db=-60) == {"on": True, "threshold_db": -60, "hold_ms": 50}
        await c.close()

    run(main())


def test_silent_is_named_in_changed_whenever_mute_or_push_to_talk_turn_it(daemon):
    """`silent` is a key of `state` that mute and push-to-talk move: events named only "mute" or "ptt", so a tally
    light that follows `changed` never lit (a third-party client's review)."""

    async def main():
        a = await Client.open(daemon.port, daemon.token)
        b = await Client.open(daemon.port, daemon.token)
        await a.call("mute.set", on=False)
        await a.call("ptt.mode", on=False)
        await b.call("events.subscribe", events=["state"])

        async def step(method: str, **params) -> tuple[list[str], bool]:
            await a.call(method, **params)
            ev = await asyncio.wait_for(b.event("state"), 5)
            return ev["changed"], ev["state"]["silent"]

        assert await step("ptt.mode", on=True) == (["ptt", "silent"], True)
        assert await step("ptt.press") == (["ptt", "silent"], False)
        assert await step("mute.set", on=True) == (["mute", "silent"], True)
        assert await step("ptt.release") == (["ptt"], True)  # (muted as it was: silent stays)
        assert await step("mute.set", on=False) == (["mute"], True)  # (push-to-talk, nobody holding)
        assert await step("ptt.mode", on=False) == (["ptt", "silent"], False)
        await a.close()
        await b.close()

    run(main())


def test_a_gate_set_that_changes_nothing_announces_nothing(daemon):
    """gate.set {} (or the values it has) answered the settings and also sent every client a state event and wrote
    a log line, for no change."""

    async def main():
        a = await Client.open(daemon.port, daemon.token)
        b = await Client.open(daemon.port, daemon.token)
        await b.call("events.subscribe", events=["state"])
        now = await a.call("gate.set")
        assert await a.call("gate.set", **now) == now
        await a.call("mute.toggle")
        ev = await b.event("state")
        assert ev["changed"] == ["mute", "silent"], ev  # the first event is the mute's: none for the gate
        await a.call("mute.toggle")
        await a.close()
        await b.close()

    run(main())


def test_push_to_talk_is_released_when_its_holder_disconnects(daemon):
    """ptt mode on: the output is silent unless someone holds the key. The holder's connection drops: the
    engine mutes again and the audio coming out is exact silence again."""
    dev, lat, block = daemon.device, daemon.engine.latency().total, daemon.engine.block

    def wait_until(pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline
            time.sleep(0.005)

    def underruns() -> int:  # this shared machine sometimes stalls the worker: each gap is counted
        return daemon.engine.status().xruns.output_underrun_frames

    def heard(a: int, b: int) -> float:
        y = dev.recording[a:b]
        return float(np.mean(np.abs(y) > 0.01))

    async def main():
        watcher = await Client.open(daemon.port, daemon.token)
        await watcher.call("events.subscribe")
        holder = await Client.open(daemon.port, daemon.token)
        holder_id = (await holder.call("server.info"))["client"]
        assert not daemon.state()["mute"], "the mic is muted: push-to-talk cannot be heard"
        await holder.call("ptt.mode", on=True)
        t_mode = dev.frames_done
        await asyncio.sleep(0.3)
        assert daemon.engine.muted and heard(t_mode + lat + 2 * block, dev.frames_done) == 0.0
        assert (await holder.call("ptt.press"))["held"] == 1
        assert (await holder.call("ptt.press"))["held"] == 1  # a key that repeats while held: no event (below)
        a = dev.frames_done + lat + 2 * block
        for _ in range(5):  # windows of 0.4 s while the key is held; one the VM starved is measured again
            gaps0 = underruns()
            await asyncio.sleep(0.4)
            b, gaps = dev.frames_done, underruns() - gaps0
            if gaps < 0.25 * (b - a):
                break
            print(f"\na window underran: {gaps} of {b - a} frames")
            a = b
        else:
            pytest.skip(f"this machine starved the engine: every window underran (the last: {gaps} frames)")
        # the sine comes through: every quiet frame is a zero crossing (|sin| < 0.02: 1.3%) or a counted underrun
        quiet = (1.0 - heard(a, b)) * (b - a)
        assert quiet <= 0.03 * (b - a) + gaps and heard(a, b) > 0.2, (quiet, b - a, gaps)
        holder.ws.transport.abort()  # the connection drops without a word
        await asyncio.to_thread(wait_until, lambda: daemon.engine.muted)
        t_gone = dev.frames_done
        events = [await watcher.event() for _ in range(3)]  # mode, press, release
        assert [e["by"] for e in events] == [holder_id] * 3 and events[-1]["state"]["ptt"] == {"mode": True, "held": 0}
        await asyncio.sleep(0.4)
        assert heard(t_gone + lat + 2 * block, dev.frames_done) == 0.0
        assert dev.frames_done - (t_gone + lat + 2 * block) > 0.2 * SR
        await watcher.call("ptt.mode", on=False)
        await watcher.close()

    run(main())


# -- the reference, the config, the port ------------------------------------------------------------------
def test_docs_api_md_is_the_generated_reference():
    assert (ROOT / "docs" / "API.md").read_text() == rpc.markdown(METHODS), (
        "regenerate it: python -m rtvc.control.rpc --markdown > docs/API.md"
    )


def test_the_reference_gives_the_code_devices_select_is_refused_with_while_resuming():
    """It said -32002 (not found) while the daemon answers -32004 (not available: _select_devices, and
    test_device_switch.py's restart at another rate, which gets it from a real serve)."""
    said = rpc.markdown(METHODS).split("`in_use.resuming` says why", 1)[1].split("\n\n", 1)[0]
    assert f"`devices.select` is refused ({rpc.NOT_AVAILABLE}) until they are" in " ".join(said.split()), said


def test_control_config_is_validated(tmp_path):
    assert load_config(ROOT / "config.toml").control == load_config(None).control
    p = tmp_path / "config.toml"
    p.write_text('[control]\nbind = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match=r"would accept other machines.*set control.allow_remote = true"):
        load_config(p)
    p.write_text('[control]\nbind = "0.0.0.0"\nallow_remote = true\n')
    assert load_config(p).control.bind == "0.0.0.0"
    p.write_text('[control]\norigins = ["http://a.example/x"]\n')
    with pytest.raises(ConfigError, match=r"control.origins.*scheme://host"):
        load_config(p)
    p.write_text("[control]\nport = 70000\n")
    with pytest.raises(ConfigError, match=r"control.port.*from 1 to 65535"):
        load_config(p)


def test_a_port_in_use_is_a_clear_error(daemon):
    other = ControlServer(daemon.cfg.control, daemon.controller, daemon.token, port=daemon.port)
    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{daemon.port}.*set control.port"):
        other.start()


# -- the daemon process -----------------------------------------------------------------------------------
@dataclass
class Served:
    proc: subprocess.Popen[str]
    lines: list[str]  # its output so far, line by line
    port: int
    token: str


@contextlib.contextmanager
def serving(tmp_path: Path, profiles: dict[str, str]) -> Iterator[Served]:
    """`rtvc serve --virtual` in its own process, on the passthrough profile, with these profiles too; its
    output read as it comes; killed at the end if it still runs."""
    (tmp_path / "profiles").mkdir(exist_ok=True)
    for name, text in {"passthrough": 'voice = "passthrough"\n', **profiles}.items():
        (tmp_path / "profiles" / f"{name}.toml").write_text(text)
    port = free_port()
    (tmp_path / "config.toml").write_text(f'[voice]\nprofile = "passthrough"\n[control]\nport = {port}\n')
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtvc", "serve", "--virtual", "--config", "config.toml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_hangup_default,  # (a test run under nohup would hand the daemon an ignored SIGHUP: it keeps that)
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any(" control: ws://" in ln for ln in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        yield Served(proc, lines, port, (tmp_path / "xdg" / "rtvc" / "token").read_text().strip())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        reader.join(5)


def test_rtvc_serve_stops_at_once_while_a_voice_loads(tmp_path):
    """SIGTERM while a model loads (here from a named pipe nobody writes: a hung network drive): the daemon
    stops now, says the load was not waited for, and never switches to the voice after its report."""
    (tmp_path / "profiles").mkdir()
    os.mkfifo(tmp_path / "profiles" / "slow.pth")
    with serving(tmp_path, {"slow": 'voice = "rvc"\n[model]\npath = "slow.pth"\ncontent = "."\n'}) as d:

        async def select():
            c = await Client.open(d.port, d.token)
            await c.ws.send(
                json.dumps({"jsonrpc": "2.0", "id": 9, "method": "voices.select", "params": {"name": "slow"}})
            )
            for _ in range(200):
                if any("loading voice 'slow'" in ln for ln in d.lines):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            c.ws.transport.abort()

        run(select())
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(15) == 0
        took = time.monotonic() - t0
    log = "".join(d.lines)
    assert "loading voice 'slow'" in log and "voice 'slow' was still loading: not waited for" in log, log
    assert took < 10, (took, log)
    report = log.index("latency report:")
    assert "voice 'slow'" not in log[report:].replace("voice 'slow' was still loading", ""), log
    assert "Traceback" not in log


def _hangup_default() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_rtvc_serve_logs_one_line_per_change_and_stops_cleanly(tmp_path, sig):
    """SIGHUP (the terminal serve ran in, closed) ended it at once with exit 129: no report, clients not told."""
    # (once: importing torch takes seconds) an RVC profile: its runtime loads first; one whose model file is not
    # there does not load it (the bundled example, its files absent, loaded torch for every serve: 5-7 s, 700 MB)
    neural = {"neural": 'voice = "rvc"\n[model]\npath = "here.pth"\n'} if sig == signal.SIGTERM else {}
    neural = {**neural, "absent": 'voice = "rvc"\n[model]\npath = "later.pth"\n'}
    (tmp_path / "profiles").mkdir(exist_ok=True)
    (tmp_path / "profiles" / "here.pth").write_bytes(b"a voice's file (only its presence is looked at)")
    with serving(tmp_path, neural) as d:
        token, lines = d.token, d.lines
        assert stat.S_IMODE((tmp_path / "xdg" / "rtvc" / "token").stat().st_mode) == 0o600

        async def drive():
            c = await Client.open(d.port, path=f"/rpc?token={token}")
            me = (await c.call("server.info"))["client"]
            await c.call("mute.set", on=True)
            await c.call("ptt.mode", on=True)
            await c.call("ptt.press")
            await c.call("ptt.press")  # (a key's repeat: no change, no line)
            await c.close()
            return me

        me = run(drive())
        time.sleep(0.3)
        d.proc.send_signal(sig)
        assert d.proc.wait(20) == 0
    log = "".join(lines)
    assert token not in log
    for change in (
        "mute on, output silent",
        "push-to-talk mode on, 0 holding, output silent",
        "push-to-talk mode on, 1 holding, output silent",
        "push-to-talk mode on, 0 holding, output silent",
    ):
        assert f"{change} (by {me})" in log, log
    assert sum(f"(by {me})" in ln for ln in lines) == 4, log  # one line per change, released on disconnect
    assert f"stopping ({signal.Signals(sig).name})" in log and "engine stopped (by engine)" in log
    assert "Traceback" not in log
    preloaded = [k for k, ln in enumerate(lines) if "loaded the 'rvc' voice's runtime for neural in" in ln]
    control = [k for k, ln in enumerate(lines) if " control: ws://" in ln]
    # before audio starts: importing torch later would stop the audio worker while its libraries load
    assert (preloaded and preloaded[0] < control[0]) if sig == signal.SIGTERM else not preloaded, log
    if sig == signal.SIGINT:
        assert "profiles absent use the 'rvc' voice but cannot load now (voices.list says why)" in log, log
        assert "loaded the 'rvc' voice's runtime" not in log


def test_a_program_opening_sockets_and_sending_nothing_does_not_end_the_daemon(tmp_path):
    """Sockets opened as fast as a program can, sending nothing, took `rtvc serve` to its file limit (1024 on a
    desktop) and its next look at profiles/ raised EMFILE out of its loop: the daemon ended with a traceback, the
    audio with it. Past SOCKETS_PER_CLIENT * max_clients the oldest socket still in its handshake is closed, said in
    the log; a client gets in meanwhile, and the audio never stopped."""
    import resource

    with serving(tmp_path, {}) as d:
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (256, 256))  # (as low as a desktop's 1024 is, for 4x)
        held: list[socket.socket] = []
        try:
            for _ in range(600):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", d.port))
                held.append(s)
            time.sleep(2.5)  # (several looks at profiles/)
            assert d.proc.poll() is None, "".join(d.lines)

            async def meanwhile():  # (the oldest socket in its handshake gives way: a client gets in during it)
                c = await Client.open(d.port, d.token)
                st = await c.call("status.get")
                await c.close()
                return st

            st = run(meanwhile())
            assert st["engine"]["state"] == "running", st["engine"]
        finally:
            for s in held:
                s.close()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(20) == 0
    log = "".join(d.lines)
    assert "sockets open (a program opening connections and sending nothing?)" in log, log
    assert "Traceback" not in log and 1 <= log.count("opening handshake failed") <= 2, log  # (a line every 10 s)


def passthrough_controller(tmp_path: Path) -> tuple[Controller, list[dict]]:
    """A Controller on a passthrough profile in tmp_path/profiles (no serve, no poll of its own), and the events it
    says."""
    cfg_path = tmp_path / "config.toml"
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "passthrough.toml").write_text('voice = "passthrough"\n')
    cfg_path.write_text('[voice]\nprofile = "passthrough"\n')
    cfg = load_config(cfg_path)
    c = Controller(cfg, build_engine(cfg), "passthrough")
    events: list[dict] = []
    c.add_listener(events.append)
    return c, events


def test_a_folder_that_cannot_be_read_for_a_moment_is_said_once_and_looked_at_again(tmp_path, caplog, monkeypatch):
    from rtvc.control import controller as module

    c, events = passthrough_controller(tmp_path)
    real = module.profiles_seen

    def failing(*a, **k):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(module, "profiles_seen", failing)
    with caplog.at_level("INFO", logger="rtvc"):
        for _ in range(3):
            c._profiles_at = 0.0
            c.poll_profiles()
        monkeypatch.setattr(module, "profiles_seen", real)
        (tmp_path / "profiles" / "giant.toml").write_text('voice = "pitch"\n')
        c._profiles_at = 0.0
        c.poll_profiles()
    said = [r.getMessage() for r in caplog.records]
    assert sum("could not be read ([Errno 24] Too many open files)" in m for m in said) == 1, said
    assert any("read again" in m for m in said), said
    assert [e["profiles"]["added"] for e in events] == [["giant"]], events


def test_a_profile_listed_between_two_polls_and_removed_again_is_an_event(tmp_path):
    """A profile copied in and removed within the poll's second, listed meanwhile (the dock's periodic reread): its
    removal was no event (the poll saw the folder the same before and after), and the dock kept its button (a CI
    run of session 39). voices.list now tells the poll what it read."""
    c, events = passthrough_controller(tmp_path)
    c._profiles_at = time.monotonic()  # (a poll just now: the next one is a second away)
    (tmp_path / "profiles" / "copied.toml").write_text('voice = "pitch"\n')
    assert [v["name"] for v in c.voices()] == ["copied", "passthrough"]
    (tmp_path / "profiles" / "copied.toml").unlink()
    c._profiles_at = 0.0
    c.poll_profiles()
    assert [(e["profiles"]["added"], e["profiles"]["removed"]) for e in events] == [(["copied"], []), ([], ["copied"])]
    c.poll_profiles()  # (and no event when nothing changed)
    assert len(events) == 2


def test_rtvc_serve_whose_start_profile_does_not_load_serves_silence_until_a_voice_is_picked(tmp_path):
    """A start profile that did not load (its model files moved, a value out of range) stopped `rtvc serve` at start
    (exit 2; under `rtvc service` tried again every 5 s, the TUI and the dock finding nothing to connect to). It now
    comes up with no voice: silence out (voice on or off: the raw microphone is not what anyone chose), the state
    saying why, params.set and profiles.save refused, and the profile loaded by itself once its file is mended."""
    broken = 'voice = "passthrough"\n[params]\ngain_db = 99.0\n'  # (out of range: the load fails)
    with serving(tmp_path, {"passthrough": broken, "deeper": 'voice = "pitch"\n[params]\npitch = -4.0\n'}) as d:

        async def levels(c: Client, seconds: float) -> tuple[float, float]:
            """The loudest input and output peaks status.get reports over `seconds`."""
            ins, outs = [], []
            for _ in range(int(seconds / 0.1)):
                lv = (await c.call("status.get"))["engine"]["levels"]
                ins.append(lv["in_peak"])
                outs.append(lv["out_peak"])
                await asyncio.sleep(0.1)
            return max(ins), max(outs)

        async def drive():
            c = await Client.open(d.port, d.token)
            await c.call("events.subscribe", events=["state"])
            st = (await c.call("status.get"))["control"]
            assert st["profile"] is None and st["kind"] == "none" and st["params"] == {} and st["silent"], st
            assert st["no_voice"].startswith("voice 'passthrough' (voice.profile) did not load: "), st
            assert "gain_db" in st["no_voice"] and st["voice"] == "no voice: 'passthrough' did not load", st
            heard, played = await levels(c, 2.0)
            assert heard > -40 and played == -120, (heard, played)  # the clip comes in; nothing goes out
            await c.call("voice.set", on=False)  # voice off: not the microphone as it is either
            heard, played = await levels(c, 1.0)
            assert heard > -40 and played == -120, (heard, played)
            await c.call("voice.set", on=True)
            await c.call("ptt.mode", on=True)  # (talking: the output is still silent, and said so)
            assert (await c.call("ptt.press"))["silent"] is True
            await c.call("ptt.release")
            await c.call("ptt.mode", on=False)
            for call, args in (("params.set", {"values": {"gain_db": 0.0}}), ("profiles.save", {"name": "x"})):
                with pytest.raises(RpcFailure) as e:
                    await c.call(call, **args)
                assert e.value.code == -32004 and f"{call}: no voice plays (voice 'passthrough'" in e.value.message
                assert "select a voice first" in e.value.message
            assert not (tmp_path / "profiles" / "x.toml").exists()
            while not c.events.empty():
                c.events.get_nowait()
            # mended by hand: loaded by itself, as a select by "profiles" ("edited" said first)
            (tmp_path / "profiles" / "passthrough.toml").write_text('voice = "passthrough"\n')
            while True:
                ev = await asyncio.wait_for(c.event(), 10)
                if "profile" in ev["changed"]:
                    break
            assert ev["by"] == "profiles" and {"profile", "no_voice", "silent"} <= set(ev["changed"]), ev
            st = ev["state"]
            assert st["profile"] == "passthrough" and st["no_voice"] is None and not st["silent"], st
            await asyncio.sleep(0.3)
            heard, played = await levels(c, 2.0)
            assert heard > -40 and played > -40, (heard, played)
            await c.close()

        run(drive())
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(20) == 0
    log = "".join(d.lines)
    assert "voice 'passthrough' (voice.profile) did not load: " in log, log
    assert "rtvc serves with no voice (silence out) until one is selected" in log, log
    assert "voice 'passthrough' (by profiles)" in log, log
    assert "Traceback" not in log


def test_the_start_profile_is_loaded_again_once_its_files_hold_still_and_never_over_a_voice_picked(tmp_path):
    """No voice plays (the start profile did not load). A change to its files (a model file being copied exists from
    the copy's start) is loaded once it has held still START_SETTLE_S, not at once; a change seen while another load
    runs is taken after it, not dropped; and a load of it that waited behind a client's voices.select leaves that
    client's voice playing."""
    from rtvc.control import controller as module
    from rtvc.run import no_voice_engine

    (tmp_path / "profiles").mkdir()
    start = tmp_path / "profiles" / "passthrough.toml"
    start.write_text('voice = "passthrough"\n[params]\ngain_db = 99.0\n')
    (tmp_path / "profiles" / "deeper.toml").write_text('voice = "pitch"\n[params]\npitch = -4.0\n')
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "passthrough"\n')
    cfg = load_config(tmp_path / "config.toml")
    c = Controller(cfg, no_voice_engine(cfg), None, no_voice="voice 'passthrough' (voice.profile) did not load: ...")
    clock = [1000.0]
    module_time = module.time

    class Clock:  # (the controller's monotonic clock, moved by the test)
        @staticmethod
        def monotonic() -> float:
            return clock[0]

        sleep = staticmethod(module_time.sleep)
        time = staticmethod(module_time.time)

    def look(after: float) -> None:
        clock[0] += after
        c._profiles_at = 0.0
        c.poll_profiles()
        if c._retry is not None:
            c._retry.join(10)

    try:
        module.time = Clock
        look(1.0)
        start.write_text('voice = "passthrough"\n')  # (mended)
        look(1.0)
        look(1.0)
        assert c.no_voice and c.profile is None  # (changed 1 s ago: not yet)
        c.loading = "other"  # (another load under way: the change waits, it is not dropped)
        look(1.5)
        assert c.no_voice
        c.loading = None
        look(1.0)
        assert not c.no_voice and c.profile == "passthrough", c.state()
        # a load of it that waited behind a client's select: the client's voice stays
        c.no_voice = "again"
        c.select_voice("deeper", "client 1")
        got = c.select_voice("passthrough", "profiles", only_if_no_voice=True)
        assert got["profile"] == "deeper" and c.profile == "deeper"
    finally:
        module.time = module_time


def test_a_start_profile_mended_wrongly_stays_silent_and_says_why(tmp_path):
    """The start profile loaded again after an edit that still does not load: said in the event's error and in
    `no_voice`, silence goes on; `voices.select` of another profile ends it."""
    broken = 'voice = "passthrough"\n[params]\ngain_db = 99.0\n'
    with serving(tmp_path, {"passthrough": broken, "deeper": 'voice = "pitch"\n[params]\npitch = -4.0\n'}) as d:

        async def drive():
            c = await Client.open(d.port, d.token)
            await c.call("events.subscribe", events=["state"])
            (tmp_path / "profiles" / "passthrough.toml").write_text('voice = "passthrough"\n[params]\ngain = 1\n')
            while True:
                ev = await asyncio.wait_for(c.event(), 10)
                if ev["changed"] == ["no_voice"]:
                    break
            assert ev["by"] == "profiles" and ev["state"]["profile"] is None, ev
            assert "unknown key 'params.gain'" in ev["state"]["no_voice"] and "99" not in ev["state"]["no_voice"], ev
            state = await c.call("voices.select", name="deeper")
            assert state["profile"] == "deeper" and state["no_voice"] is None and state["kind"] == "pitch", state
            assert (await c.call("params.set", values={"pitch": -3.0}))["values"]["pitch"] == -3.0
            await c.close()

        run(drive())
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(20) == 0
    log = "".join(d.lines)
    assert "voice 'passthrough' (tried again: its files changed) did not load" in log, log
    assert "still no voice: voice 'passthrough' (voice.profile) did not load: " in log, log
    assert "Traceback" not in log


def test_a_profile_added_edited_or_removed_in_the_folder_is_an_event(tmp_path):
    """Profiles copied into profiles/ by hand or by another program reached the clients' lists only at the next
    voice change. `rtvc serve` looks at the folder once a second: each change is one `state` event naming the
    files, and voices.list has them; a profiles.save is said by its own event alone."""
    with serving(tmp_path, {}) as d:
        folder = tmp_path / "profiles"

        async def drive():
            c = await Client.open(d.port, d.token)
            await c.call("events.subscribe", events=["state"])

            async def change(expect: dict[str, list[str]]) -> None:
                ev = await asyncio.wait_for(c.event(), 5)
                assert ev["changed"] == ["profiles"] and ev["by"] == "profiles", ev
                assert ev["profiles"] == {"added": [], "removed": [], "edited": [], "model_files": [], **expect}, ev
                assert ev["state"]["profile"] == "passthrough"  # (the voice that plays is untouched)

            async def listed(name: str) -> dict:
                return {v["name"]: v for v in (await c.call("voices.list"))["voices"]}[name]

            (folder / "giant.toml").write_text('label = "Giant"\nvoice = "pitch"\n')
            await change({"added": ["giant"]})
            (folder / "elf.toml").write_text('voice = "pitch"\n[params]\npitch = 7.0\n')
            await change({"added": ["elf"]})
            assert {v["name"] for v in (await c.call("voices.list"))["voices"]} == {"passthrough", "giant", "elf"}
            (folder / "giant.toml").write_text('label = "Giant, lower"\nvoice = "pitch"\n[params]\npitch = -9.0\n')
            await change({"edited": ["giant"]})
            (folder / "elf.toml").unlink()
            await change({"removed": ["elf"]})
            labels = {v["name"]: v["label"] for v in (await c.call("voices.list"))["voices"]}
            assert labels == {"passthrough": "passthrough", "giant": "Giant, lower"}, labels
            # the model files a profile names put in place, or moved away: voices.list's mark changes, and was said
            # by no event (the TUI showed a voice as broken, or not, until the next change of a profile file)
            (folder / "ana.toml").write_text('voice = "rvc"\n[model]\npath = "ana.pth"\ncontent = "hubert.pt"\n')
            await change({"added": ["ana"]})
            assert "ana.pth" in (await listed("ana"))["error"]
            (folder / "ana.pth").write_bytes(b"x")
            await change({"model_files": ["ana"]})
            assert "hubert.pt" in (await listed("ana"))["error"] and "ana.pth" not in (await listed("ana"))["error"]
            (folder / "hubert.pt").write_bytes(b"x")
            await change({"model_files": ["ana"]})
            assert not (await listed("ana")).get("error"), await listed("ana")
            (folder / "ana.pth").unlink()
            await change({"model_files": ["ana"]})
            (folder / "ana.toml").unlink()
            await change({"removed": ["ana"]})
            # a link to nothing is listed (with its error) as soon as it is there, and gone when it is
            (folder / "nowhere.toml").symlink_to(folder / "missing.toml")
            await change({"added": ["nowhere"]})
            (folder / "nowhere.toml").unlink()
            await change({"removed": ["nowhere"]})
            (folder / "loop.toml").symlink_to("loop.toml")  # (and one to itself)
            await change({"added": ["loop"]})
            (folder / "loop.toml").unlink()
            await change({"removed": ["loop"]})
            # a file name with a line break that reads as a log line of its own (and an escape sequence)
            (folder / "evil\n12:00:00 voice 'hacked' (by obs)\x1b[31m.toml").write_text('voice = "pitch"\n')
            await change({"added": ["evil\n12:00:00 voice 'hacked' (by obs)\x1b[31m"]})
            (folder / "evil2\n 12:00:01 voice 'indented'.toml").write_text('voice = "pitch"\n')  # (as rtvc's own)
            await change({"added": ["evil2\n 12:00:01 voice 'indented'"]})
            # a profile added just before a save: said in an event of its own first (the save's took it over)
            (folder / "sneaky.toml").write_text('voice = "pitch"\n')
            await c.call("profiles.save", name="saved")
            await change({"added": ["sneaky"]})
            ev = await asyncio.wait_for(c.event(), 5)
            assert ev["changed"] == ["profile", "voice", "profiles"] and ev["state"]["profile"] == "saved"
            assert ev["profiles"] == {"added": ["saved"], "removed": [], "edited": [], "model_files": []}, ev
            await c.call("profiles.save", name="saved", overwrite=True)
            ev = await asyncio.wait_for(c.event(), 5)
            assert ev["changed"] == ["profile", "voice", "profiles"] and ev["profiles"]["edited"] == ["saved"], ev
            await asyncio.sleep(2.5)  # two looks at the folder: the saved file is not said again
            assert c.events.empty(), c.events.get_nowait()
            # the profile config.toml starts with, removed: said with what it means (the next start has no voice)
            (folder / "passthrough.toml").rename(tmp_path / "passthrough.toml")
            ev = await asyncio.wait_for(c.event(), 5)
            assert ev["profiles"]["removed"] == ["passthrough"], ev
            said = "voice.profile 'passthrough' (the voice rtvc starts with) was removed: rtvc will start with no voice"
            assert ev["error"].startswith(said), ev
            assert "put passthrough.toml back, or set voice.profile in config.toml to another profile" in ev["error"]
            await c.close()

        run(drive())
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(20) == 0
    log = "".join(d.lines)
    for said in (
        "added giant",
        "added elf",
        "edited giant",
        "removed elf",
        "model files put in place or moved away for ana",
    ):
        assert f"profiles folder: {said} (by profiles)" in log, log
    assert "profiles folder: added evil\\n12:00:00 voice 'hacked' (by obs)\\x1b[31m (by profiles)" in log, log
    assert "\x1b" not in log and "\n12:00:00 voice 'hacked'" not in log and "\n 12:00:01" not in log
    assert "profiles folder: added evil2\\n 12:00:01 voice 'indented' (by profiles)" in log, log
    # rtvc's own lines of more than one line go as written; the values in a line are escaped
    from rtvc.logtext import Lines, LogFormatter

    def line(msg: str, *args: object) -> str:
        return LogFormatter("%(message)s").format(logging.LogRecord("rtvc", 20, "", 0, msg, args or None, None))

    assert line("devices %s:\n%s", "kept", Lines("  input a\n  output b")) == "devices kept:\n  input a\n  output b"
    assert line("scene %r: %s, %.1f s", "a\nb", OSError("x\n y\x1b[0m"), 1.25) == "scene 'a\\nb': x\\n y\\x1b[0m, 1.2 s"


def test_the_tui_waits_longer_for_exactly_the_methods_that_take_seconds():
    from rtvc.control.methods import METHODS
    from rtvc.tui.client import CALL_TIMEOUT_S, SLOW_METHODS

    assert set(SLOW_METHODS) == {name for name, m in METHODS.items() if m.slow}
    assert all(limit > CALL_TIMEOUT_S for limit in SLOW_METHODS.values())


def test_a_client_whose_socket_takes_nothing_is_closed_after_stall_s(monkeypatch):
    """A client subscribed to meters alone that stops reading: meters are dropped, never queued past a few, so
    its queue never filled and it kept its connection (and its slot of control.max_clients) for ever. A
    message its socket has not taken in STALL_S closes it."""
    import asyncio

    from rtvc.control import connection

    monkeypatch.setattr(connection, "STALL_S", 0.2)
    aborted: list[bool] = []

    class Transport:
        def get_extra_info(self, _name: str) -> None:
            return None

        def get_write_buffer_size(self) -> int:
            return 4096  # (what it did not read)

        def abort(self) -> None:
            aborted.append(True)

    class Stalled:
        transport = Transport()

        async def send(self, _text: str) -> None:
            await asyncio.Event().wait()  # the socket takes nothing

        async def close(self, _code: int, _reason: str) -> None:
            await asyncio.Event().wait()

    async def main() -> None:
        conn = connection.Connection("client 1", Stalled(), None, lambda: "t", lambda: "{}")  # type: ignore[arg-type]
        conn.send('{"meters": 1}', droppable=True)
        await asyncio.sleep(0.1)
        assert not conn.closing  # (a slow reader gets STALL_S)
        await asyncio.sleep(0.4)
        assert conn.closing and aborted == [True]

    asyncio.run(main())


def test_voices_list_says_which_profiles_this_machine_cannot_run(daemon):
    """A CUDA or TensorRT profile on a machine without them was listed as a plain voice, and failed first
    when selected; it is marked with what selecting it says."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the profile could run here")
    folder = daemon.controller.profiles_dir
    models = folder.parent / "gpu-models"
    models.mkdir(exist_ok=True)
    (models / "v.pth").write_bytes(b"PK\x03\x04 not read: a torch zip's first bytes")  # (what is checked before torch)
    (folder / "rvc-gpu.toml").write_text(
        'label = "GPU"\nvoice = "rvc"\n[model]\npath = "../gpu-models/v.pth"\ncontent = "."\n'
        'backend = "cuda-graph"\ndevice = "cuda"\nprecision = "fp16"\n'
    )

    async def main():
        c = await Client.open(daemon.port, daemon.token)
        listed = {v["name"]: v for v in (await c.call("voices.list"))["voices"]}
        err = listed["rvc-gpu"]["error"]
        assert "device = 'cuda', but torch sees no CUDA device" in err, err
        assert "precision = 'fp32'" in err, err  # (the fix names every setting to change)
        with pytest.raises(RpcFailure, match="torch sees no CUDA device"):
            await c.call("voices.select", name="rvc-gpu")
        await c.close()

    try:
        run(main())
    finally:
        (folder / "rvc-gpu.toml").unlink()


def test_a_client_that_answers_no_ping_is_dropped_and_said(daemon, monkeypatch, caplog):
    """A dead client (a machine gone, a process stopped) held its slot for 42 s (the library's 20 + 20 s pings) and
    the log did not say why it left (a helper's run: 65 such clients). Now PING_S to answer each ping (then the
    close handshake's 2 s), and the log
    line names the close; here with PING_S at 0.5 s, a client that completes its handshake and then is silent."""
    import base64
    import logging

    import rtvc.control.server as server_mod

    monkeypatch.setattr(server_mod, "PING_S", 0.5)
    server = ControlServer(daemon.cfg.control, daemon.controller, daemon.token, port=0)
    server.start()
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /rpc?token={daemon.token} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 101")
        with caplog.at_level(logging.INFO, logger="rtvc.control"):
            t0 = time.monotonic()
            while not server.clients and time.monotonic() - t0 < 5:
                time.sleep(0.02)
            assert server.clients, "the client never counted as connected"
            t0 = time.monotonic()
            while server.clients and time.monotonic() - t0 < 10:
                time.sleep(0.02)
            took = time.monotonic() - t0

            def said() -> list[str]:
                return [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()]

            while not said() and time.monotonic() - t0 < 10:  # (logged just after the client leaves the set)
                time.sleep(0.02)
        assert took < 6.0, took  # (a ping, its 0.5 s, then the 2 s close_timeout for the close frame)
        assert any("(closed by rtvc: 1011 keepalive ping timeout)" in s for s in said()), said()

        async def leave() -> None:  # a client's own close is its own (rtvc echoes it: that is not rtvc closing it)
            async with connect(f"ws://127.0.0.1:{server.port}/rpc?token={daemon.token}") as ws:
                await ws.close(4000, "bye")

        with caplog.at_level(logging.INFO, logger="rtvc.control"):
            caplog.clear()
            run(leave())
            t0 = time.monotonic()
            while not said() and time.monotonic() - t0 < 10:
                time.sleep(0.02)
        assert len(said()) == 1 and said()[0].endswith("(close 4000: bye)"), said()
    finally:
        sock.close()
        server.stop()


def test_sockets_that_never_authenticate_cannot_lock_out_a_client_with_the_token(daemon):
    """Every slot held by sockets that send no token (another user's program, reconnecting within the 10 s auth
    deadline) refused the TUI and the dock: a client with the token in its address now takes the oldest one's slot;
    one without it is still refused."""
    cap = daemon.cfg.control.max_clients

    async def main():
        before = daemon.state()
        squatters = [await connect(f"ws://127.0.0.1:{daemon.port}/rpc", open_timeout=20) for _ in range(cap)]
        with pytest.raises(InvalidStatus) as e:
            await connect(f"ws://127.0.0.1:{daemon.port}/rpc", open_timeout=20)
        assert e.value.response.status_code == 503
        with pytest.raises(InvalidStatus):  # (a wrong token does not get in either)
            await connect(f"ws://127.0.0.1:{daemon.port}/rpc?token={'w' * 43}", open_timeout=20)
        c = await Client.open(daemon.port, path=f"/rpc?token={daemon.token}")
        assert (await c.call("status.get"))["control"] == before
        await asyncio.sleep(0.3)
        closed = [s for s in squatters if s.close_code is not None]
        assert [s.close_code for s in closed] == [rpc.CLOSE_FULL] and closed[0] is squatters[0], [
            s.close_code for s in squatters
        ]
        await c.close()
        for s in squatters:
            await s.close()

    run(main())


def test_events_reach_listeners_in_the_order_their_states_were_taken(tmp_path):
    """A voice select's event (taken on its worker thread) handed out after a mute toggle's taken later: the last
    event a client held said the old mute, or the old voice, until the next change (a review: 7 in 400 rounds of a
    select racing a toggle). The first listener here is slow for one event, as a thread losing the CPU is."""
    c, _ = passthrough_controller(tmp_path)
    seen: list[dict] = []
    taken = threading.Event()

    def slow(e):
        if e["by"] == "a":
            taken.set()
            time.sleep(0.3)

    c.add_listener(slow)
    c.add_listener(seen.append)
    first = threading.Thread(target=c.set_voice_on, args=(False, "a"))
    first.start()
    assert taken.wait(5)
    c.set_mute(True, "b")  # (taken after the first's state: handed out after it)
    first.join(5)
    assert [e["by"] for e in seen] == ["a", "b"], seen
    assert seen[-1]["state"] == c.state() and seen[-1]["state"]["mute"] and not seen[-1]["state"]["voice_on"]
    assert seen[0]["state"]["mute"] is False  # (the state as it was taken)


def test_serve_whose_log_pipe_closes_goes_on_and_stops_cleanly(tmp_path):
    """serve's standard output a pipe whose reader went away (a `| tee` closed): each log line after it printed a
    'Logging error' traceback, and the report's print at the stop ended serve with exit 141 past PortAudio's exit
    guard (on a JACK server gone: a 10-minute hang, then an abort; a review). It now logs nowhere, says so once on
    standard error, and stops with 0."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "passthrough.toml").write_text('voice = "passthrough"\n')
    port = free_port()
    (tmp_path / "config.toml").write_text(f'[voice]\nprofile = "passthrough"\n[control]\nport = {port}\n')
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PYTHONUNBUFFERED": "1"}
    with (tmp_path / "stderr").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtvc", "serve", "--virtual", "--config", "config.toml"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        while " control: ws://" not in proc.stdout.readline():
            assert proc.poll() is None and time.monotonic() < deadline
        proc.stdout.close()  # (the reader goes away)
        token = (tmp_path / "xdg" / "rtvc" / "token").read_text().strip()

        async def changes():
            c = await Client.open(port, token)
            for i in range(6):
                await c.call("mute.set", on=i % 2 == 0)  # (a log line each)
            state = await c.call("status.get")
            await c.close()
            return state

        assert run(changes())["engine"]["state"] == "running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    said = (tmp_path / "stderr").read_text()
    assert said.count("serve's log output is gone (Broken pipe): it goes on, logging nowhere") == 1, said
    assert "Logging error" not in said and "Traceback" not in said, said


def test_a_listener_that_raises_is_logged_and_the_others_are_still_told(tmp_path, caplog):
    """The thread handing out events may hand out another thread's: a listener's exception surfaced in an unrelated
    caller (a mute that had worked) and the listeners after it missed the event (a review)."""
    c, _ = passthrough_controller(tmp_path)

    def broken(e):
        raise ValueError("a listener's bug")

    after: list[dict] = []
    c.add_listener(broken)
    c.add_listener(after.append)
    with caplog.at_level("ERROR", logger="rtvc"):
        assert c.set_mute(True, "a") is True
    assert [e["changed"] for e in after] == [["mute", "silent"]], after
    assert any("a listener failed on the event ['mute', 'silent']" in r.getMessage() for r in caplog.records)


def test_a_profile_whose_file_name_is_not_utf8_is_listed_with_what_to_do(daemon):
    """A file name that is not UTF-8 (bytes from another system's encoding) went out as lone surrogates in the
    API's JSON ("bad\\udcffutf"), which strict parsers refuse, and no client could name it to select it."""
    folder = daemon.controller.profiles_dir
    odd = folder / os.fsdecode(b"bad\xffutf.toml")
    odd.write_text('voice = "pitch"\n')

    async def main():
        c = await Client.open(daemon.port, daemon.token)
        listed = await c.call("voices.list")
        wire = c.frames[-1]
        assert "\\udc" not in wire, wire  # (no lone surrogate on the wire)
        json.loads(wire.encode("utf-8"))  # (strict UTF-8: what other languages' parsers take)
        entry = next(v for v in listed["voices"] if v["name"].startswith("bad"))
        assert entry["name"] == "bad\ufffdutf", entry
        assert "the file's name is not UTF-8 text, so no client can name it (rename the file)" in entry["error"], entry
        with pytest.raises(RpcFailure) as e:  # (the name the list gives: said so, not "not found", and no surrogate)
            await c.call("voices.select", name=entry["name"])
        assert "the file's name is not UTF-8 text" in e.value.message and "\\udc" not in c.frames[-1], c.frames[-1]
        with pytest.raises(RpcFailure):  # (another name: the profiles listed, U+FFFD for it)
            await c.call("voices.select", name="no-such-voice")
        assert "\\udc" not in c.frames[-1] and "bad\ufffdutf" in json.loads(c.frames[-1])["error"]["message"]
        await c.close()

    try:
        run(main())
    finally:
        odd.unlink()


def test_a_profiles_folder_that_cannot_be_read_is_said_not_taken_for_empty(daemon, monkeypatch, caplog):
    """`chmod 000 profiles` (or a network drive gone): Path.glob said nothing, so every profile was "removed" in the
    log, voices.list was empty with no error, and profiles.save failed with an internal PermissionError (a review;
    root reads any folder, so the folder's listing fails here as it does for a user)."""
    import rtvc.profiles

    folder = daemon.controller.profiles_dir
    real = os.scandir

    def scandir(path="."):
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rtvc.profiles.os, "scandir", scandir)

    async def main():
        c = await Client.open(daemon.port, daemon.token)
        with pytest.raises(RpcFailure) as e:
            await c.call("voices.list")
        assert e.value.code == -32004, e.value
        assert f"the profiles folder {folder} cannot be read (Permission denied)" in e.value.message
        assert "check its permissions" in e.value.message
        with pytest.raises(RpcFailure) as e:
            await c.call("profiles.save", name="kept")
        assert "cannot be read (Permission denied)" in e.value.message and "internal error" not in e.value.message
        await c.close()

    with caplog.at_level(logging.INFO, logger="rtvc"):
        run(main())
        time.sleep(1.5)  # (the folder's poll)
    said = caplog.text
    assert "removed" not in said, said
    monkeypatch.undo()
    assert not (folder / "kept.toml").exists()
