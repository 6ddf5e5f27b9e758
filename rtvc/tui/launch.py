"""Starting the TUI: `rtvc tui` attaches to a running daemon; `rtvc run` on a terminal starts one first.

`rtvc run` on an interactive terminal starts `rtvc serve` (same config and flags) as a child process with
its log in a file (the terminal belongs to the TUI), waits until the log says it listens, runs the TUI
attached to it, and when the TUI quits stops the daemon (SIGTERM) and prints the daemon's latency report.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rtvc.control.auth import load_or_create_token, token_path
from rtvc.errors import ConfigError, RtvcError
from rtvc.tui.client import Endpoint

START_TIMEOUT_S = 120.0  # a model voice loads for seconds to a minute before the daemon listens
STOP_TIMEOUT_S = 15.0
STOP_SAID_S = 1.0  # a daemon that takes longer to stop is said to be stopping
LISTENING = re.compile(r"control: ws://(\S+):(\d+)/rpc")


TUI_NICE = 10  # the UI yields the CPU to everything at the default priority


def yield_cpu() -> None:
    """Lower this process's CPU priority. The audio path (the engine's worker, and the device callback where
    the audio server does not run it real-time) must never wait for a redraw; a UI redrawing meters 15 times
    a second on a 2-core machine otherwise competes with it. Call it after starting the daemon: children
    inherit it."""
    if hasattr(os, "nice"):  # (Windows has none: the UI runs at the default priority there)
        os.nice(TUI_NICE)  # raising one's own niceness needs no permission


def run_tui(endpoint: Endpoint, own_daemon=None) -> int:
    """The app until the user quits: 0, or 1 where it stopped on an error (Textual has printed the trace)."""
    from rtvc.tui.app import RtvcApp

    yield_cpu()
    app = RtvcApp(endpoint, own_daemon=own_daemon)
    try:
        app.run()
    finally:
        app.returned()
    return app.return_code or 0


def attach(host: str, port: int, token: str | None) -> int:
    """`rtvc tui`: the token defaults to this machine's token file (the daemon's, when it runs here)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):  # (it drew into a file and waited for keys for ever)
        which = "standard input" if not sys.stdin.isatty() else "standard output"
        raise ConfigError(
            f"rtvc tui needs a terminal, and its {which} is not one",
            "run it in a terminal; scripts use the websocket API (docs/API.md) or `rtvc run --headless`",
        )
    if os.environ.get("TERM", "") == "dumb":  # (the full-screen UI drew escapes as text there, keys unread)
        raise ConfigError(
            "rtvc tui needs a terminal that can draw a screen, and this one says TERM=dumb (an editor's shell, an "
            "IDE's console)",
            "run it in a terminal program (or set TERM to what yours is, e.g. TERM=xterm-256color); `rtvc ctl` "
            "works here",
        )
    if token is None:
        if not token_path().is_file():
            raise ConfigError(
                f"no token file at {token_path()}: is the daemon running on this machine as this user?",
                "start it with `rtvc serve`, or pass --token (`rtvc token` on the daemon's machine prints it)",
            )
        return run_tui(Endpoint(host, port, load_or_create_token(), token_path()))
    return run_tui(Endpoint(host, port, token))


def _stop_with_parent() -> None:
    """In the daemon child, before it runs: SIGTERM it when `rtvc run` dies, however it dies (SIGKILL, a crash):
    a daemon left behind holds the sound card and the control port."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait_listening(proc: subprocess.Popen[bytes], log: Path) -> tuple[str, int]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        m = LISTENING.search(text)
        if m:
            return m.group(1), int(m.group(2))
        if proc.poll() is not None:
            said = [ln.removeprefix("rtvc: error: ") for ln in text.splitlines() if ln.startswith("rtvc: error: ")]
            why = said[-1] if said else f"its log ends:\n{text.strip()[-1500:]}"
            fix = f"its log: {log}"
            if "another rtvc serve" in why:  # (a daemon already running here, as a service or by hand: attach to it)
                fix = (
                    f"`rtvc tui` attaches to a daemon that runs there (stop it first to start one with rtvc run); {fix}"
                )
            raise RtvcError(f"the daemon (rtvc serve) exited with {proc.returncode} before listening: {why}", fix)
        time.sleep(0.05)
    raise RtvcError(f"the daemon did not listen within {START_TIMEOUT_S:g} s", f"see its log: {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM: the daemon stops its devices and engine, then prints its latency report."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_SAID_S)
        except subprocess.TimeoutExpired:  # (the terminal showed "starting the daemon" all the while)
            print(f"stopping the daemon (it is killed if it has not stopped within {STOP_TIMEOUT_S:g} s)…", flush=True)
            try:
                proc.wait(STOP_TIMEOUT_S - STOP_SAID_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_with_daemon(serve_argv: list[str]) -> int:
    """`rtvc run` on a terminal: daemon child + TUI; the daemon's exit code."""
    log = Path(tempfile.mkstemp(prefix="rtvc-serve-", suffix=".log")[1])
    print(f"starting the daemon (log: {log})…", flush=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtvc", "serve", *serve_argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
        )
    try:
        host, port = _wait_listening(proc, log)
    except BaseException:
        _stop(proc)
        raise
    ui = 0

    def ended() -> str | None:
        code = proc.poll()
        return None if code is None else f"exited with {exit_status(code)} (its log: {log})"

    try:
        ui = run_tui(Endpoint(host.strip("[]"), port, load_or_create_token(), token_path()), ended)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(proc)
    text = log.read_text(errors="replace")
    report = text[text.find("latency report:") :] if "latency report:" in text else text.strip()[-2000:]
    print(report.rstrip(), flush=True)
    code = exit_status(proc.returncode)
    if code == 0:
        log.unlink(missing_ok=True)
    else:
        print(f"the daemon exited with {code}; its log: {log}", file=sys.stderr)
    if ui and not code:  # (the daemon stops cleanly when the UI goes, however it went)
        print("rtvc: error: the terminal UI stopped on an error (its trace is above); the daemon was stopped with it",
              file=sys.stderr)  # fmt: skip
        return ui
    return code


def exit_status(returncode: int) -> int:
    """A child's return code as a shell reports it: killed by signal N (Popen's -N) is 128 + N (-9 was 247)."""
    return 128 - returncode if returncode < 0 else returncode
