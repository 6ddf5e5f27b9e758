"""Snapshots of the TUI's main screen at 40x24, 60x24, 80x24 and 120x40, fed a fixed state (no daemon, no live meters).

The snapshot is the screen's text, cell by cell (tests/snapshots/tui_WxH.txt), compared exactly: layout,
labels, steppers, meters with peak hold, latency, sparkline, footer. An SVG of the same screen is written
beside it for people to look at. After an intended change: RTVC_UPDATE_SNAPSHOTS=1 pytest this file, and
look at the SVGs before committing them.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import time
from pathlib import Path

import pytest
from tui_screen import screen_text

from rtvc.tui.app import RtvcApp
from rtvc.tui.client import Endpoint, Link

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("RTVC_UPDATE_SNAPSHOTS") == "1"
pytestmark = pytest.mark.timeout(60)

VOICES = [
    {"name": "default", "label": "Deeper", "voice": "pitch", "active": True},
    {"name": "chipmunk", "label": "Chipmunk", "voice": "pitch", "active": False},
    {"name": "passthrough", "label": "Passthrough", "voice": "passthrough", "active": False},
    {"name": "rvc-example", "label": "RVC example", "voice": "rvc", "active": False, "error": "no model file"},
]
RANGES = {
    "pitch": {"type": "a number", "default": 0.0, "help": "semitones", "min": -24.0, "max": 24.0},
    "formant": {"type": "a number", "default": 0.0, "help": "semitones", "min": -12.0, "max": 12.0},
    "gain_db": {"type": "a number", "default": 0.0, "help": "dB", "min": -60.0, "max": 24.0},
}
VALUES = {"pitch": -4.0, "formant": -1.5, "gain_db": 0.0}
STATE = {
    "profile": "default",
    "voice": "Deeper: pitch + formant shifter",
    "kind": "pitch",
    "params": VALUES,
    "voice_on": True,
    "monitor": False,
    "mute": False,
    "ptt": {"mode": False, "held": 0},
    "silent": False,
    "gate": {"on": True, "threshold_db": -60.0, "hold_ms": 200.0},
    "loading": None,
    "engine": "running",
    "links": {},
}
LATENCY = {"ms": {"device_in": 5.3, "block": 20.0, "converter": 7.0, "prefill": 4.0, "device_out": 5.3, "total": 41.6}}
STATUS = {
    "state": "running",
    "latency": LATENCY,
    "timing": {"p99_ms": 3.21, "budget_ms": 20.0},
    "xruns": {"total": 0},
    "worker_priority": "real-time (SCHED_FIFO 1, below the audio callback's SCHED_FIFO 2)",
}
BLOCKS = [1.2, 1.3, 1.1, 2.8, 1.2, 1.4, 1.3, 5.9, 1.2, 1.1, 1.3, 1.2, 3.3, 1.2, 1.25, 1.3]


def meters(in_peak: float, out_peak: float, block: float) -> dict:
    return {"type": "meters", "in_peak": in_peak, "in_rms": -30.0, "out_peak": out_peak, "out_rms": -32.0,
            "gate": "open", "block_ms": block, "p99_ms": 3.21, "budget_ms": 20.0, "xruns": 0}  # fmt: skip


async def main_screen(width: int, height: int) -> tuple[str, str]:
    now = [100.0]
    app = RtvcApp(Endpoint("127.0.0.1", 47800, "t" * 43), clock=lambda: now[0], connect=False)
    async with app.run_test(size=(width, height)) as pilot:
        app.apply_link(Link("connected", "ws://127.0.0.1:47800/rpc", 0, "client 1"))
        app.apply_voices(VOICES)
        await app.apply_params({"kind": "pitch", "values": VALUES, "ranges": RANGES})
        app.apply_state(STATE)
        app.apply_status(STATUS)
        for i, b in enumerate(BLOCKS):  # loud at first, then quieter: the hold marks stay at the peak
            now[0] += 0.066
            app.apply_meters(meters(-4.0 if i == 3 else -18.0 - i * 0.5, -6.5 if i == 3 else -20.0, b))
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        return screen_text(app), app.export_screenshot(title="rtvc")


@pytest.mark.parametrize("size", [(40, 24), (60, 24), (80, 24), (120, 40)], ids=["40x24", "60x24", "80x24", "120x40"])
def test_main_screen(size: tuple[int, int]) -> None:
    """At 40 and 60 columns the toggles go into two and three columns beside a narrower voice list, and the
    steppers drop their bars before their values (at 40 columns the values were cut off, and at 60 the
    toggles after 'hear')."""
    text, svg = asyncio.run(main_screen(*size))
    lines = text.splitlines()
    assert len(lines) == size[1] and all(len(ln) <= size[0] for ln in lines)
    path = SNAPSHOTS / f"tui_{size[0]}x{size[1]}.txt"
    if UPDATE or not path.exists():
        path.write_text(text)
        path.with_suffix(".svg").write_text(svg)
        if not UPDATE:
            pytest.fail(f"no snapshot yet: wrote {path}; look at it (and its .svg), then run again")
    want = path.read_text()
    if text != want:
        diff = "\n".join(difflib.unified_diff(want.splitlines(), lines, "snapshot", "now", lineterm=""))
        pytest.fail(f"the screen differs from {path.name} (RTVC_UPDATE_SNAPSHOTS=1 to accept):\n{diff}")


def test_the_top_line_takes_one_line_at_any_width_and_follows_a_resize() -> None:
    """At 40 and 60 columns the top line took three and two of the screen's lines (the address wrapped): it drops
    ws:// and /rpc below 78 columns and the words its colours say below 60, also when the terminal is resized."""

    async def run() -> list[str]:
        app = RtvcApp(Endpoint("127.0.0.1", 47800, "t" * 43), connect=False)
        tops = []
        async with app.run_test(size=(120, 24)) as pilot:
            app.apply_link(Link("connected", "ws://127.0.0.1:47800/rpc", 0, "client 1"))
            app.apply_state({**STATE, "links": {"obs": {"state": "connected"}}})
            for width in (120, 70, 40, 120):
                await pilot.resize_terminal(width, 24)
                await pilot.pause()
                tops.append(screen_text(app).splitlines()[:2])
        return tops

    tops = asyncio.run(run())
    assert [t[0].strip() for t in tops] == [
        "rtvc  ● connected  ws://127.0.0.1:47800/rpc  engine running  OBS connected",
        "rtvc  ● connected  127.0.0.1:47800  engine running  OBS connected",
        "rtvc ● 127.0.0.1:47800 running OBS ●",
        "rtvc  ● connected  ws://127.0.0.1:47800/rpc  engine running  OBS connected",
    ]
    assert all("find a voice" in t[1] or "find a voic" in t[1] for t in tops)  # (the second line: the voice list's)


def test_a_refused_real_time_request_is_on_screen_with_its_fix() -> None:
    """The worker on the normal scheduler although the user asked for real-time is the likely cause of
    crackle: the screen says so and names the fix (the daemon's own words), and updates when it changes."""
    from rtvc.priority import AWAITING_CALLBACKS, make_realtime

    async def main() -> list[str]:
        app = RtvcApp(Endpoint("127.0.0.1", 47800, "t" * 43), clock=lambda: 100.0, connect=False)
        screens = []
        async with app.run_test(size=(80, 24)) as pilot:
            for priority in (AWAITING_CALLBACKS, refused, "normal"):
                app.apply_status({**STATUS, "worker_priority": priority})
                await pilot.pause()
                screens.append(" ".join(screen_text(app).replace("│", " ").split()))
        return screens

    import unittest.mock

    with unittest.mock.patch("os.sched_setscheduler", side_effect=PermissionError):
        refused = make_realtime()
    assert refused.startswith("normal (no permission")
    waiting, refusal, off = asyncio.run(main())
    assert "worker normal (real-time once the audio device calls back)" in waiting and "⚠" not in waiting
    assert "⚠ worker normal (no permission for real-time scheduling: add an rtprio limit for your user" in refusal
    assert "see README 'Latency')" in refusal
    assert "worker normal scheduler (stream.realtime = false)" in off and "⚠" not in off


def test_an_overloaded_engine_is_on_screen_with_its_fix_until_it_runs_again() -> None:
    """The daemon's `engine` events: a voice too slow for its block puts the state and its fix on the message line;
    once the engine runs again the line says so (the error used to stay on screen)."""
    detail = "the voice takes longer than a block (20.0 ms) to convert one: it cannot keep up here"

    def engine_event(state: str, said: str) -> dict:
        return {"type": "engine", "by": "engine", "changed": ["engine"], "state": {**STATE, "engine": state},
                "engine": {"state": state, "detail": said, "monitor_error": ""}}  # fmt: skip

    async def main() -> list[str]:
        app = RtvcApp(Endpoint("127.0.0.1", 47800, "t" * 43), clock=lambda: 100.0, connect=False)
        screens = []
        async with app.run_test(size=(120, 40)) as pilot:
            app.apply_state(STATE)
            for state, said in (("overloaded", detail), ("running", "")):
                app.apply_event(engine_event(state, said))
                await pilot.pause()
                screens.append(" ".join(screen_text(app).replace("│", " ").split()))
        return screens

    overloaded, running = asyncio.run(main())
    assert f"✖ engine overloaded: {detail}" in overloaded
    assert "engine running again" in running and "✖ engine overloaded" not in running


def test_a_quit_by_signal_ends_the_process_if_the_app_hangs(monkeypatch):
    """After its terminal closed, Textual's shutdown could hang for good (its writer thread's queue): SIGHUP and
    SIGTERM then did nothing. A quit by signal arms a deadline that exits the process; run() returning disarms it."""
    import signal
    import threading

    import rtvc.tui.app as app_mod

    exits: list[int] = []
    done = threading.Event()
    monkeypatch.setattr(app_mod, "QUIT_DEADLINE_S", 0.2)
    monkeypatch.setattr(app_mod.os, "_exit", lambda code: (exits.append(code), done.set()))
    hung = RtvcApp(None, connect=False)
    monkeypatch.setattr(hung, "exit", lambda *a, **k: None)  # (a shutdown that never ends)
    hung.quit_on_signal(signal.SIGHUP)
    assert done.wait(5) and exits == [128 + signal.SIGHUP]
    fine = RtvcApp(None, connect=False)
    monkeypatch.setattr(fine, "exit", lambda *a, **k: None)
    fine.quit_on_signal(signal.SIGTERM)
    fine.returned()  # (run() came back in time)
    time.sleep(0.5)
    assert exits == [128 + signal.SIGHUP]


def test_block_times_are_drawn_on_the_blocks_budget() -> None:
    """The block-time line scaled to its own largest reading (Textual's Sparkline): a 5.9 ms block in a 20 ms
    budget drew a full bar, as a late one would. A full bar is the budget now, red there, yellow from half."""
    from textual.app import App

    from rtvc.tui.meter import BlockTimes

    class Host(App):
        def compose(self):
            yield BlockTimes(id="b")

    async def main() -> None:
        app = Host()
        async with app.run_test(size=(8, 1)) as pilot:
            bars = app.query_one("#b", BlockTimes)
            bars.show([1.0, 5.9, 10.0, 19.0, 20.0, 31.0], 20.0)
            await pilot.pause()
            text = bars.render()
            assert text.plain == "  ▁▃▄███", text.plain
            colours = [str(span.style) for span in text.spans]
            assert colours == ["green", "green", "yellow", "yellow", "red", "red"], colours

    asyncio.run(main())


async def connected(app: RtvcApp) -> None:
    """The app as on a connection to a daemon: its voices and the pitch voice's parameters shown."""
    app.apply_link(Link("connected", "ws://127.0.0.1:47800/rpc", 0, "client 1"))
    app.apply_voices(VOICES)
    await app.apply_params({"kind": "pitch", "values": VALUES, "ranges": RANGES})


def test_the_obs_link_is_on_the_top_line_and_why_it_went_down_on_the_message_line() -> None:
    """The TUI showed nothing of the daemon's OBS link (status.get's links.obs): OBS gone, or a wrong password,
    and a streamer's scenes stopped switching voices without a word on screen."""

    async def main() -> None:
        app = RtvcApp(Endpoint("127.0.0.1", 47800, "t" * 43), clock=lambda: 100.0, connect=False)
        async with app.run_test(size=(100, 24)) as pilot:
            await connected(app)
            up = {**STATE, "links": {"obs": {"state": "connected", "detail": "connected to OBS at 127.0.0.1:4455"}}}
            app.apply_state(up)
            await pilot.pause()
            assert "engine running  OBS connected" in screen_text(app).splitlines()[0]
            why = "OBS at 127.0.0.1:4455 refused the password: check `password` under [obs]; retrying in 10 s"
            down = {**STATE, "links": {"obs": {"state": "auth failed", "detail": why}}}
            app.apply_event({"type": "state", "changed": ["obs"], "by": "obs", "state": down})
            await pilot.pause()
            text = screen_text(app)
            assert "OBS auth failed" in text.splitlines()[0], text
            assert "✖ OBS auth failed: OBS at 127.0.0.1:4455 refused the password" in " ".join(text.split()), text

    asyncio.run(main())


def test_what_the_obs_scenes_get_wrong_is_on_the_message_line_once_per_change() -> None:
    """A scene renamed in OBS, a name OBS has no scene of, a scene's profile missing: in serve's log alone (which
    `rtvc run` deletes at a clean quit), and the scene then switched no voice without a word on screen (a review)."""

    async def main() -> None:
        app = RtvcApp(Endpoint("127.0.0.1", 47800, "t" * 43), clock=lambda: 100.0, connect=False)
        async with app.run_test(size=(160, 24)) as pilot:
            await connected(app)
            link = {"state": "connected", "detail": "connected to OBS at 127.0.0.1:4455", "warnings": []}
            app.apply_state({**STATE, "links": {"obs": link}})
            renamed = "OBS scene 'Gaming' renamed 'Gaming 2': its voice 'giant' follows it until rtvc restarts"
            missing = "[obs.scenes] 'Outro': OBS has no scene of that name"
            warned = {**STATE, "links": {"obs": {**link, "warnings": [renamed, missing]}}}
            app.apply_event({"type": "state", "changed": ["obs"], "by": "obs", "state": warned})
            await pilot.pause()
            text = " ".join(screen_text(app).split())
            assert f"✖ OBS: {renamed} (and 1 more: rtvc ctl status)" in text, text
            assert "engine running OBS connected" in text, text
            app.show_message("pitch 2")  # (the user's own action since)
            app.apply_event({"type": "state", "changed": ["obs"], "by": "obs", "state": warned})  # (the same again)
            await pilot.pause()
            assert "OBS:" not in " ".join(screen_text(app).split())  # (said once, not at every event)
            one = {**STATE, "links": {"obs": {**link, "warnings": [missing]}}}
            app.apply_event({"type": "state", "changed": ["obs"], "by": "obs", "state": one})
            await pilot.pause()
            text = " ".join(screen_text(app).split())
            assert f"✖ OBS: {missing}" in text and "more" not in text, text
            # mended: the red line went only with the next message (a review)
            none = {**STATE, "links": {"obs": {**link, "warnings": []}}}
            app.apply_event({"type": "state", "changed": ["obs"], "by": "obs", "state": none})
            await pilot.pause()
            text = " ".join(screen_text(app).split())
            assert "✖ OBS:" not in text and "OBS: [obs.scenes] has no problem now" in text, text

    asyncio.run(main())


def test_a_device_gone_while_the_engine_runs_on_is_said_and_its_return_too() -> None:
    """The program chosen as the microphone closed under JACK (or the virtual microphone removed): the engine runs on,
    and the TUI showed "engine running" with the event's words soon overwritten by anything else."""

    async def main() -> None:
        app = RtvcApp(Endpoint("127.0.0.1", 47800, "t" * 43), clock=lambda: 100.0, connect=False)
        async with app.run_test(size=(200, 24)) as pilot:
            await connected(app)
            app.apply_state(STATE)
            gone = "the input device 'usbhs' is gone (its JACK program closed): the voice hears no microphone"
            engine = {"state": "running", "detail": gone, "monitor_error": "", "unheard": gone}
            app.apply_event({"type": "engine", "changed": ["engine"], "by": "engine", "state": STATE, "engine": engine})
            await pilot.pause()
            assert f"✖ {gone}" in " ".join(screen_text(app).split())
            # kept on the top line while it holds, the message line's words gone with the next message (a review)
            app.show_message("pitch 2")
            await pilot.pause()
            assert "engine device gone" in screen_text(app).splitlines()[0], screen_text(app)
            engine = {"state": "running", "detail": "", "monitor_error": "", "unheard": ""}
            app.apply_event({"type": "engine", "changed": ["engine"], "by": "engine", "state": STATE, "engine": engine})
            await pilot.pause()
            text = " ".join(screen_text(app).split())
            assert gone not in text and "engine running again" in text, text
            assert "engine running" in screen_text(app).splitlines()[0], screen_text(app)

    asyncio.run(main())
