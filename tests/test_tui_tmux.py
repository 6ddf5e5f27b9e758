"""`rtvc run` in a real terminal (tmux): it starts the daemon and the TUI, keys reach the daemon, the screen
reads back, `q` quits, the daemon stops and its latency report is printed on the terminal."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon_harness import ROOT, RpcClient, free_port

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (scripts/system-deps.sh test)"),
    pytest.mark.timeout(120),
]


def test_rtvc_run_in_a_terminal(tmp_path: Path) -> None:
    _run_in_tmux(tmp_path, "q")


def test_ctrl_c_in_the_ui_quits_like_q(tmp_path: Path) -> None:
    _run_in_tmux(tmp_path, "C-c")  # (Textual's default only said to press ctrl+q)


def test_sigterm_to_rtvc_run_quits_like_q(tmp_path: Path) -> None:
    """`kill` (or a closed terminal's SIGHUP) used to kill the UI alone: the daemon ran on, holding the port and
    the sound card, and the terminal was left in the UI's screen with mouse reporting on."""
    _run_in_tmux(tmp_path, "SIGTERM")


def _run_in_tmux(tmp_path: Path, quit_by: str) -> None:
    port = free_port()
    (tmp_path / "profiles").mkdir()
    for name in ("default", "passthrough"):
        shutil.copy(ROOT / "profiles" / f"{name}.toml", tmp_path / "profiles")
    (tmp_path / "config.toml").write_text(f'[voice]\nprofile = "default"\n\n[control]\nport = {port}\n')
    sock = tmp_path / "tmux.sock"  # a private tmux server: nothing of the user's is touched
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    env.pop("TMUX", None)

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-S", str(sock), *args], env=env, capture_output=True, text=True).stdout

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", "rtvc")

    def until(what: str, fn: Callable[[], object], timeout: float = 40.0) -> object:
        deadline = time.monotonic() + timeout
        while not (value := fn()):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; the terminal shows:\n{screen()}")
            time.sleep(0.1)
        return value

    cmd = f"{sys.executable} -m rtvc run --virtual --config config.toml; echo rtvc-exit=$?; sleep 60"
    subprocess.run(
        ["tmux", "-S", str(sock), "new-session", "-d", "-s", "rtvc", "-x", "100", "-y", "30", "-c", str(tmp_path), cmd],
        env=env,
        check=True,
    )
    try:
        until("the TUI, connected", lambda: "● connected" in screen() and "pitch" in screen())
        rpc = RpcClient(port, (tmp_path / "xdg" / "rtvc" / "token").read_text().strip())
        tmux("send-keys", "-t", "rtvc", "m")
        until("mute on in the daemon", lambda: rpc.call("status.get")["control"]["mute"])
        until("mute ON on the terminal", lambda: "M mute ON" in screen())
        rpc.call("params.set", values={"pitch": 7.0})
        until("another client's change on the terminal", lambda: "7.0 st" in screen())
        rpc.close()
        if quit_by in ("q", "C-c"):
            tmux("send-keys", "-t", "rtvc", quit_by)
        else:
            shell = tmux("display-message", "-p", "-t", "rtvc", "#{pane_pid}").strip()
            pids = subprocess.run(["pgrep", "-P", shell], capture_output=True, text=True).stdout.split()
            assert len(pids) == 1, pids
            os.kill(int(pids[0]), signal.SIGTERM)
        text = until("the daemon's report after quitting", lambda: "rtvc-exit=" in screen() and screen())
        assert "latency report:" in str(text) and "rtvc-exit=0" in str(text), text
        assert "Traceback" not in str(text)
        with socket.socket() as sk:  # the daemon is gone: its port is free again
            assert sk.connect_ex(("127.0.0.1", port)) != 0
    finally:
        tmux("kill-server")
