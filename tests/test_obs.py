"""ObsLink against a real OBS Studio (headless, under Xvfb): connect, follow scene changes made by another
client, survive an OBS crash and restart, refuse a wrong password clearly, and wait politely for an OBS that
is not there. OBS is driven by an independent obs-websocket client (tests/obs_harness.py).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from obs_harness import SCENES, ObsClient, ObsStudio, free_port, running_obs

from rtvc.control.obs import ObsLink, ObsSettings, renamed

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
    seen = link.scene
    obs.start()
    t_up = time.monotonic()
    t_back, _, _ = rec.wait_state("connected", after=t_lost, timeout=10)
    client = ObsClient(obs.port, PASSWORD)
    try:
        current = client.request("GetCurrentProgramScene")["currentProgramSceneName"]
        if current == seen:  # (the scene it had: not delivered again, so a voice chosen since stays)
            time.sleep(0.5)
            assert not [n for t, n in rec.scenes if t >= t_lost] and link.scene == current, rec.scenes
            t_scene = t_back
        else:
            t_scene = rec.wait_scene(current, after=t_lost, timeout=5)
        print(
            f"loss seen {t_lost - t_kill:.3f} s after the kill; reconnected {t_back - t_up:.3f} s after OBS's port"
            f" opened ({t_back - t_kill:.2f} s after the kill); scene {current!r} (was {seen!r}) reported"
            f" {(t_scene - t_back) * 1000:.1f} ms later"
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


class Proxy:
    """A TCP relay to OBS whose connections the test can cut: the link loses OBS while OBS (and its scene)
    stays as it was, as over a network blip or a moment OBS hung."""

    def __init__(self, target: int) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.target, self.pairs = target, []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                a, _ = self.server.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            self.pairs.append((a, b))
            for src, dst in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        for a, b in self.pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
        self.pairs = []

    def close(self) -> None:
        self.cut()
        self.server.close()


def test_a_reconnection_to_the_scene_it_had_keeps_the_voice_chosen_since(obs: ObsStudio, client: ObsClient, caplog):
    """A moment without OBS (a blip, OBS hung for 15 s) with the scene unchanged: the answer to the current scene
    at the reconnection was delivered as a change, and the scene's voice replaced the one the streamer had chosen
    since. Scenes mapped in [obs.scenes] that OBS does not have (a typo) are said at each connection; a scene
    renamed in OBS keeps its voice under its new name, and that is said with the fix."""
    caplog.set_level(logging.INFO, logger="rtvc.control.obs")
    client.set_scene("Just Chatting")
    proxy, rec = Proxy(obs.port), Recorder()
    scenes = {"Just Chatting": "higher", "Gamming": "passthrough"}
    link = ObsLink(ObsSettings(enabled=True, port=proxy.port, password=PASSWORD, scenes=scenes), rec.on_scene)
    link.start()
    try:
        rec.wait_scene("Just Chatting")
        wait_for(lambda: "[obs.scenes] 'Gamming': OBS has no scene of that name" in caplog.text, "the typo said")
        assert "did you mean 'Gaming'?" in caplog.text
        t_cut = time.monotonic()
        proxy.cut()
        wait_for(lambda: link.state == "disconnected", "the loss")
        wait_for(lambda: link.state == "connected", "the reconnection", 10)
        time.sleep(0.5)
        assert [n for t, n in rec.scenes if t >= t_cut] == [], rec.scenes
        assert "OBS program scene still 'Just Chatting': the voice playing stays" in caplog.text
        client.request("SetSceneName", {"sceneName": "Just Chatting", "newSceneName": "Chatting"})
        said = "OBS scene 'Just Chatting' renamed 'Chatting': its voice 'higher' follows it"
        wait_for(lambda: said in caplog.text, "the rename followed and said")  # (said after the dict changes)
        assert scenes == {"Chatting": "higher", "Gamming": "passthrough"} and link.scene == "Chatting"
        assert (
            renamed({"Just Chatting": "higher", "Gamming": "passthrough"}, link.renames) == scenes
        )  # (serve's re-read)
        client.set_scene("Gaming")
        client.set_scene("Chatting")
        rec.wait_scene("Chatting")
    finally:
        link.stop()
        proxy.close()
        with contextlib.suppress(Exception):
            client.request("SetSceneName", {"sceneName": "Chatting", "newSceneName": "Just Chatting"})


def test_renames_in_obs_are_applied_to_the_scenes_the_file_maps_now() -> None:
    """serve reads [obs.scenes] again at each cut: a scene renamed in OBS keeps its voice under its new name over the
    file's table, edited or not; the file renaming it itself (the fix the log says) is taken as it is, and a name
    the file maps itself keeps the file's voice."""
    renames = {"Gaming": "Gaming 3", "Just Chatting": "Chatting", "Starting": "Just Chatting"}  # (in OBS, in turn)
    file = {"Gaming": "giant", "Just Chatting": "default", "Starting": "higher", "Outro": "passthrough"}
    now = {"Gaming 3": "giant", "Chatting": "default", "Just Chatting": "higher", "Outro": "passthrough"}
    assert renamed(file, renames) == now
    assert renamed({"Gaming": "giant", "Outro": "higher"}, renames) == {"Gaming 3": "giant", "Outro": "higher"}
    assert renamed({"Gaming 3": "giant"}, renames) == {"Gaming 3": "giant"}
    assert renamed({"Gaming": "giant", "Gaming 3": "higher"}, renames)["Gaming 3"] == "higher"
    assert renamed(file, {}) == file


def test_a_scene_renamed_twice_keeps_its_voice_under_every_name_the_file_may_give_it() -> None:
    """A review: "Gaming" -> "Gaming 2" in OBS, config.toml mended to "Gaming 2" as the log says, then "Gaming 2" ->
    "Gaming 3": the next edit of [obs.scenes] lost the voice ("maps none"), as the renames knew only the name rtvc
    started with; and renamed back to it, the file's intermediate name was lost the same way. A scene made since
    under a name another scene had keeps its own."""
    scenes = {"Gaming": "giant", "BRB": "higher"}
    link = ObsLink(ObsSettings(enabled=True, scenes=scenes), lambda scene: None)
    link._renamed("Gaming", "Gaming 2")
    mended = {"Gaming 2": "giant", "BRB": "masculine"}  # (the file as the user mended it, and edited again)
    link._renamed("Gaming 2", "Gaming 3")
    assert scenes == {"Gaming 3": "giant", "BRB": "higher"}
    assert renamed(mended, link.renames) == {"Gaming 3": "giant", "BRB": "masculine"}
    assert renamed({"Gaming": "giant"}, link.renames) == {"Gaming 3": "giant"}  # (the file not mended: as before)
    link._renamed("Gaming 3", "Gaming")  # (back to the name rtvc started with)
    assert renamed(mended, link.renames) == {"Gaming": "giant", "BRB": "masculine"}
    assert renamed({"Gaming": "giant"}, link.renames) == {"Gaming": "giant"}
    link._renamed("BRB", "Be right back")
    link._renamed("Intro", "BRB")  # (another scene takes the name "BRB")
    link._renamed("BRB", "Intro 2")  # (and leaves it: the file's "BRB" is still the first scene's)
    assert renamed({"BRB": "higher", "Intro": "giant"}, link.renames) == {"Be right back": "higher", "Intro 2": "giant"}


def test_an_edit_of_the_scenes_keeps_the_mapping_in_use_and_takes_what_it_wrote_as_written() -> None:
    """Two reviews: a scene made (or renamed) under another's earlier name and mapped in the file gave its voice to
    the renamed scene ("Gaming" -> "Gaming 2" -> "Gaming 3", a new "Gaming 2" mapped: a cut to "Gaming 3" played
    it); and a rule that gave the name to its new holder moved voices between scenes at any later edit, unlike the
    mapping in use. The entries an edit adds or changes name OBS's scenes as they are now; the others follow their
    scenes, as the mapping in use does."""
    scenes = {"Gaming": "giant", "BRB": "robot", "Intro": "higher"}
    link = ObsLink(ObsSettings(enabled=True, scenes=scenes), lambda scene: None)
    link._renamed("Gaming", "Gaming 2")
    link._renamed("Gaming 2", "Gaming 3")
    link._renamed("BRB", "Be right back")
    link._renamed("Intro", "BRB")
    assert scenes == {"Gaming 3": "giant", "Be right back": "robot", "BRB": "higher"}  # (the mapping in use)
    file = {"Gaming": "giant", "BRB": "robot", "Intro": "higher"}
    # an unrelated edit: the same mapping, plus the new entry
    assert renamed({**file, "Outro": "passthrough"}, link.renames, ["Outro"]) == {**scenes, "Outro": "passthrough"}
    # a new scene "Gaming 2" mapped (the line the user had mended to "Gaming 2" for the first one, given another voice)
    edited = {"Gaming 2": "robot2", "BRB": "robot", "Intro": "higher"}
    got = renamed(edited, link.renames, ["Gaming 2"])
    assert got["Gaming 2"] == "robot2" and "Gaming 3" not in got, got


def test_a_password_mended_in_the_config_is_tried_at_the_next_retry(obs: ObsStudio, monkeypatch, caplog) -> None:
    """ "auth failed ... check `password` under [obs] in config.toml": mending it there changed nothing, the link
    retried the old one every 10 s until rtvc restarted."""
    from rtvc.control import obs as obs_module

    monkeypatch.setattr(obs_module, "SLOW_RETRY_S", 0.5)
    caplog.set_level(logging.INFO, logger="rtvc.control.obs")
    config = {"password": "not-" + PASSWORD}
    reread = lambda: ObsSettings(enabled=True, port=obs.port, password=config["password"])  # noqa: E731
    rec = Recorder()
    link = ObsLink(ObsSettings(enabled=True, port=obs.port, password=config["password"]), rec.on_scene, None, reread)
    link.start()
    try:
        wait_for(lambda: link.state == "auth failed", "the refusal")
        # mended with a slip of TOML: the state shown (the TUI, the dock) says why it is not taken, not the old reason
        unread = "config.toml's [obs] not read again: line 9: not valid TOML"
        reread_now, link.reread = link.reread, lambda: unread
        wait_for(lambda: unread in link.detail, "the file's error shown with the state")
        assert link.state == "auth failed"
        link.reread = reread_now
        config["password"] = PASSWORD  # (the user mends config.toml)
        wait_for(lambda: link.state == "connected", "the mended password taken", 10)
        assert "OBS link: [obs] password changed in config.toml: trying it" in caplog.text
        assert PASSWORD not in caplog.text
    finally:
        link.stop()


def wait_for(ok: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def test_studio_mode_switched_off_reports_only_the_program_scene(obs: ObsStudio, client: ObsClient, make_link) -> None:
    """Studio Mode on, another scene in preview, then off: OBS sends the preview scene as the program scene and the
    program scene again at once, and rtvc switched to the preview scene's voice and back (a load of a model voice
    nobody chose; a review). Program scene changes that close within SCENE_SETTLE_S report the last alone."""
    _link, rec = make_link(obs.port)
    rec.wait_state("connected")
    program, preview = SCENES[0], SCENES[1]
    client.set_scene(program)
    rec.wait_scene(program)
    try:
        client.request("SetStudioModeEnabled", {"studioModeEnabled": True})
        client.request("SetCurrentPreviewScene", {"sceneName": preview})
        time.sleep(0.3)
        t0 = time.monotonic()
        client.request("SetStudioModeEnabled", {"studioModeEnabled": False})
        time.sleep(1.0)
    finally:
        with contextlib.suppress(Exception):
            client.request("SetStudioModeEnabled", {"studioModeEnabled": False})
    after = [n for t, n in rec.scenes if t >= t0]
    assert preview not in after, after
    assert client.request("GetCurrentProgramScene")["currentProgramSceneName"] == program
