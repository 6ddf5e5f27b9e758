"""ObsLink against a real OBS Studio (headless, under Xvfb): connect, follow scene changes made by another
client, survive an OBS crash and restart, refuse a wrong password clearly, and wait politely for an OBS that
is not there. OBS is driven by an independent obs-websocket client (tests/obs_harness.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from obs_harness import SCENES, ObsClient, ObsStudio, free_port, running_obs

from rtvc.control.obs import ObsLink, ObsSettings

pytestmark = pytest.mark.obs

PASSWORD = "rtvc-T3st-pw"


class Recorder:
    """Collects a link's callbacks with their arrival times; waits for one that matches."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.states: list[tuple[float, str, str]] = []
        self.scenes: list[tuple[float, str]] = []

    def on_state(self, state: str, detail: str) -> None:
        with self.cond:
            self.states.append((time.monotonic(), state, detail))
            self.cond.notify_all()

    def on_scene(self, name: str) -> None:
        with self.cond:
            self.scenes.append((time.monotonic(), name))
            self.cond.notify_all()

    def wait_state(self, state: str, after: float = 0.0, timeout: float = 10.0) -> tuple[float, str, str]:
        return self._wait(lambda: next((s for s in self.states if s[1] == state and s[0] >= after), None), timeout)

    def wait_scene(self, name: str | None, after: float = 0.0, timeout: float = 10.0) -> float:
        """Arrival time of scene `name` (None: any scene) reported at or after `after`."""
        return self._wait(
            lambda: next((t for t, n in self.scenes if (name is None or n == name) and t >= after), None), timeout
        )

    def _wait(self, find: Callable[[], Any], timeout: float) -> Any:
        with self.cond:
            found = self.cond.wait_for(find, timeout)
        assert found is not None, f"timed out after {timeout} s; states={self.states} scenes={self.scenes}"
        return found


@pytest.fixture(scope="module")
def obs() -> Iterator[ObsStudio]:
    with running_obs(PASSWORD) as studio:
        yield studio
    assert studio.obs is None and studio.xvfb is None


@pytest.fixture
def client(obs: ObsStudio) -> Iterator[ObsClient]:
    c = ObsClient(obs.port, PASSWORD)
    yield c
    c.close()


@pytest.fixture
def make_link() -> Iterator[Callable[..., tuple[ObsLink, Recorder]]]:
    links: list[ObsLink] = []

    def make(port: int, password: str = PASSWORD) -> tuple[ObsLink, Recorder]:
        rec = Recorder()
        link = ObsLink(ObsSettings(enabled=True, port=port, password=password), rec.on_scene, rec.on_state)
        links.append(link)
        link.start()
        return link, rec

    yield make
    for link in links:
        link.stop()


def test_connects_and_reports_current_scene(obs: ObsStudio, client: ObsClient, make_link, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    current = client.request("GetCurrentProgramScene")["currentProgramSceneName"]
    t0 = time.monotonic()
    link, rec = make_link(obs.port)
    t_connected, _, detail = rec.wait_state("connected")
    t_scene = rec.wait_scene(current)
    assert f"127.0.0.1:{obs.port}" in detail and link.state == "connected"
    print(f"connected in {t_connected - t0:.3f} s, first scene after {t_scene - t0:.3f} s")
    link.stop()
    assert link.state == "stopped" and rec.states[-1][1] == "stopped"
    assert "OBS link: connected" in caplog.text  # the link's log was captured ...
    assert PASSWORD not in caplog.text and PASSWORD not in repr(link.settings)  # ... and holds no password


def test_follows_program_scene_changes(obs: ObsStudio, client: ObsClient, make_link) -> None:
    _link, rec = make_link(obs.port)
    rec.wait_state("connected")
    current = client.request("GetCurrentProgramScene")["currentProgramSceneName"]
    rec.wait_scene(current)
    names = [n for n in SCENES if n != current] + [current]
    t_start = time.monotonic()
    for name in names:
        t0 = time.monotonic()
        client.set_scene(name)
        latency = rec.wait_scene(name, after=t0, timeout=2.0) - t0
        print(f"scene {name!r} reached the link {latency * 1000:.1f} ms after SetCurrentProgramScene was sent")
    time.sleep(0.2)
    assert [n for t, n in rec.scenes if t >= t_start] == names  # each change once, in order


def test_survives_obs_restart(obs: ObsStudio, make_link) -> None:
    link, rec = make_link(obs.port)
    rec.wait_state("connected")
    rec.wait_scene(None, timeout=5)
    t_kill = time.monotonic()
    obs.kill_obs()
    t_lost, _, detail = rec.wait_state("disconnected", after=t_kill, timeout=5)
    assert f"127.0.0.1:{obs.port}" in detail and "retrying" in detail
    obs.start()
    t_up = time.monotonic()
    t_back, _, _ = rec.wait_state("connected", after=t_lost, timeout=10)
    client = ObsClient(obs.port, PASSWORD)
    try:
        current = client.request("GetCurrentProgramScene")["currentProgramSceneName"]
        t_scene = rec.wait_scene(current, after=t_lost, timeout=5)
        print(
            f"loss seen {t_lost - t_kill:.3f} s after the kill; reconnected {t_back - t_up:.3f} s after OBS's port"
            f" opened ({t_back - t_kill:.2f} s after the kill); scene reported {(t_scene - t_back) * 1000:.1f} ms later"
        )
        t0 = time.monotonic()
        other = next(n for n in SCENES if n != current)
        client.set_scene(other)
        rec.wait_scene(other, after=t0, timeout=2.0)
    finally:
        client.close()
    assert link.state == "connected"


def test_wrong_password_says_so_and_never_shows_it(obs: ObsStudio, make_link, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-pw-" + PASSWORD[::-1]
    link, rec = make_link(obs.port, password=wrong)
    _, _, detail = rec.wait_state("auth failed", timeout=5)
    assert "password" in detail and "config" in detail and f"127.0.0.1:{obs.port}" in detail
    time.sleep(0.3)
    assert link.state == "auth failed" and not any(s == "connected" for _, s, _ in rec.states)
    assert not rec.scenes
    _, no_pw = make_link(obs.port, password="")
    _, _, detail = no_pw.wait_state("auth failed", timeout=5)
    assert "password" in detail and "config" in detail
    link.stop()
    assert "OBS link: auth failed" in caplog.text
    every = caplog.text + repr(link.settings) + " ".join(d for _, _, d in rec.states + no_pw.states)
    assert wrong not in every and PASSWORD not in every


def test_nothing_listening_retries_and_stops_promptly(make_link) -> None:
    port = free_port()
    link, rec = make_link(port)
    _, _, detail = rec.wait_state("disconnected", timeout=3)
    assert f"127.0.0.1:{port}" in detail and "refused" in detail and "retrying in" in detail
    rec.wait_state("connecting", after=rec.states[-1][0], timeout=3)  # it keeps trying by itself
    time.sleep(0.2)
    t0 = time.monotonic()
    link.stop()
    took = time.monotonic() - t0
    assert took < 1.0, f"stop() took {took:.2f} s"
    assert link.state == "stopped" and link._thread is None
    assert not any(t.name == "rtvc-obs" for t in threading.enumerate())
