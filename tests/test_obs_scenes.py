"""OBS scene changes that come faster than a model voice loads: the latest scene's voice is the one that plays
(each scene started its own load, and the waiting loads took one lock in no set order)."""

from __future__ import annotations

import threading
import time

from rtvc.control.scenes import SceneVoices
from rtvc.errors import ModelError


class SlowVoices:
    """A controller whose voices take `seconds` to load, one at a time, as Controller.select_voice does."""

    def __init__(self, seconds: float, broken: frozenset[str] = frozenset()):
        self.profile, self.seconds, self.broken = "default", seconds, broken
        self.lock = threading.Lock()
        self.started = threading.Event()

    def select(self, name: str, intent: int | None = None) -> None:
        with self.lock:
            self.started.set()
            time.sleep(self.seconds)
            if name in self.broken:
                raise ModelError(f"{name}.pth: truncated", "download it again")
            self.profile = name


def settle(scenes: SceneVoices, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while scenes._loading:
        assert time.monotonic() < deadline, "the scene loader never finished"
        time.sleep(0.01)


def test_scenes_cut_through_during_a_load_end_on_the_latest_scenes_voice():
    c = SlowVoices(1.0)  # (long enough for the three cuts below on a starved machine)
    scenes = SceneVoices(lambda: c.profile, c.select)
    scenes.request("giant")
    assert c.started.wait(5)  # giant is loading now
    for name in ("chipmunk", "higher", "feminine"):  # three cuts within the load
        scenes.request(name)
    settle(scenes)
    assert c.profile == "feminine" and list(scenes.loaded) == ["giant", "feminine"]  # (cuts passed through: skipped)


def test_a_scene_whose_voice_plays_loads_nothing_and_a_failed_load_does_not_stop_the_next():
    c = SlowVoices(0.05, broken=frozenset({"broken"}))
    scenes = SceneVoices(lambda: c.profile, c.select)
    scenes.request("default")
    settle(scenes)
    assert list(scenes.loaded) == []
    scenes.request("broken")
    settle(scenes)
    assert c.profile == "default" and list(scenes.loaded) == ["broken"]  # (the controller reports the error)
    scenes.request("giant")
    settle(scenes)
    assert c.profile == "giant" and list(scenes.loaded) == ["broken", "giant"]


def test_a_scene_mapped_to_a_profile_path_whose_voice_plays_loads_nothing(tmp_path):
    """[obs.scenes] "Gaming" = "voices/giant.toml": the voice played as 'giant' (the controller named a profile by
    its file's stem), so the scene's 'voices/giant.toml' never equalled it and every cut back to the scene loaded
    the voice again (seconds for a model voice, audio lost meanwhile, the live pitch changes undone). The
    controller now names a profile outside profiles/ by its path (rtvc.profiles.profile_name), as the scenes do."""
    from rtvc.config import load_config
    from rtvc.profiles import profile_name
    from rtvc.run import profiles_dir
    from rtvc.serve import start_obs_link

    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "giant.toml").write_text('voice = "pitch"\n')
    config = tmp_path / "config.toml"
    config.write_text('[obs]\nenabled = true\nport = 1\n[obs.scenes]\n"Gaming" = "voices/giant.toml"\n')
    cfg = load_config(config)

    class Controller:
        def __init__(self) -> None:
            self.profile, self.selected = "default", []
            self.profiles_watchers: list = []

        @property
        def upcoming(self) -> str:  # (no load under way here)
            return self.profile

        def intend(self, name: str, by: str) -> int:
            return 0

        def select_voice(self, name: str, by: str, why: str = "", intent: int | None = None) -> None:
            self.selected.append(name)
            self.profile = profile_name(name, profiles_dir(cfg))  # (as rtvc.control.controller names it)

        def set_link(self, *_: str) -> None:
            pass

        def set_link_warnings(self, *_: object) -> None:
            pass

    c = Controller()
    link = start_obs_link(cfg, c)
    assert link is not None
    try:
        for scene in ("Gaming", "Chatting", "Gaming", "Gaming"):
            link.on_scene(scene)
            deadline = time.monotonic() + 5
            while not c.selected and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.1)  # (a second load, the bug, would have started by now)
    finally:
        link.stop()
    assert c.selected == [str(tmp_path / "voices" / "giant.toml")] == [c.profile]


def test_a_long_stream_of_scene_cuts_keeps_only_the_latest_loads():
    """Every load was kept in a list for the life of the daemon: one entry per scene cut, for hours."""
    from rtvc.control.scenes import LOADED_KEPT

    c = SlowVoices(0.0)
    scenes = SceneVoices(lambda: c.profile, c.select)
    for k in range(3 * LOADED_KEPT):
        scenes.request("giant" if k % 2 == 0 else "default")
        settle(scenes)
    assert c.profile == "default" and len(scenes.loaded) == LOADED_KEPT
    assert list(scenes.loaded)[-2:] == ["giant", "default"]


def test_a_scene_cut_during_a_voice_picked_by_hand_loading_ends_on_the_scenes_voice(tmp_path, monkeypatch):
    """A voice picked by hand (the dock, rtvc ctl) still loading when OBS cut to a scene: the scene was compared with
    the voice that played before the pick. To another voice, the cut was skipped as "already playing" (the picked
    voice stayed on air, the log saying the scene's); to the picked voice, it was loaded a second time (seconds,
    params.set refused meanwhile). With the real controller, loads made slow."""
    import rtvc.run
    from rtvc.config import load_config
    from rtvc.control.controller import Controller

    (tmp_path / "profiles").mkdir()
    for name, pitch in (("default", -4.0), ("higher", 4.0), ("deeper", -8.0)):
        (tmp_path / "profiles" / f"{name}.toml").write_text(f'voice = "pitch"\n[params]\npitch = {pitch}\n')
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "default"\n')
    cfg = load_config(tmp_path / "config.toml")
    c = Controller(cfg, rtvc.run.build_engine(cfg), "default")
    built: list[str] = []
    real = rtvc.run.build_converter

    def slow(cfg, name):
        built.append(name)
        time.sleep(0.8)
        return real(cfg, name)

    monkeypatch.setattr(rtvc.run, "build_converter", slow)
    for scene_voice, ends, loads in (("higher", "higher", ["deeper", "higher"]), ("deeper", "deeper", ["deeper"])):
        c.select_voice("default", "reset")
        built.clear()
        scenes = SceneVoices(lambda: c.upcoming, lambda p, i: c.select_voice(p, "obs", intent=i))
        picked = threading.Thread(target=c.select_voice, args=("deeper", "client 1"))
        picked.start()
        deadline = time.monotonic() + 5
        while c.loading != "deeper":  # (the hand-picked load under way)
            assert time.monotonic() < deadline
            time.sleep(0.01)
        scenes.request(scene_voice)
        picked.join(10)
        settle(scenes)
        assert c.profile == ends and built == loads, (scene_voice, c.profile, built)


def test_a_scene_cut_wins_over_a_client_select_made_before_it_and_a_select_after_it_wins(tmp_path, monkeypatch):
    """The latest voice asked for plays, whoever asked. A client's select waiting for a load (the dock, rtvc ctl,
    a Stream Deck) and an OBS cut made after it queued apart, each for the one load under way, and the later to get
    its turn played: the stream sat on "Just Chatting" with the voice of a click made before the cut. A select made
    during a scene's load was refused (-32005) where README says it waits. With the real controller, loads slow."""
    import rtvc.run
    from rtvc.config import load_config
    from rtvc.control.controller import Controller, Superseded

    (tmp_path / "profiles").mkdir()
    for name, pitch in (("default", -4.0), ("higher", 4.0), ("deeper", -8.0), ("chipmunk", 9.0)):
        (tmp_path / "profiles" / f"{name}.toml").write_text(f'voice = "pitch"\n[params]\npitch = {pitch}\n')
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "deeper"\n')
    cfg = load_config(tmp_path / "config.toml")
    c = Controller(cfg, rtvc.run.build_engine(cfg), "deeper")
    real = rtvc.run.build_converter
    building = {name: threading.Event() for name in ("higher", "chipmunk")}

    def slow(cfg, name):
        if name in building:
            building[name].set()
        time.sleep(0.6)
        return real(cfg, name)

    monkeypatch.setattr(rtvc.run, "build_converter", slow)
    scenes = SceneVoices(
        lambda: c.upcoming, lambda p, i: c.select_voice(p, "obs", intent=i), intend=lambda p: c.intend(p, "obs")
    )

    def client_select(name: str, out: list) -> threading.Thread:
        intent = c.intend(name, "client 3")  # (as voices.select takes it when the request comes)

        def run() -> None:
            try:
                out.append(c.select_voice(name, "client 3", intent=intent)["profile"])
            except Superseded as e:
                out.append(str(e))

        t = threading.Thread(target=run)
        t.start()
        return t

    got: list = []
    first = client_select("higher", got)  # loading
    assert building["higher"].wait(5)
    second = client_select("chipmunk", got)  # waits for that load
    time.sleep(0.1)
    scenes.request("default")  # the cut, after the click: it wins
    for t in (first, second):
        t.join(10)
    settle(scenes)
    assert c.profile == "default", (c.profile, got)
    superseded = "voice 'chipmunk' was not loaded: an OBS scene asked for voice 'default' after it"
    assert "higher" in got and any(superseded in g for g in got) and len(got) == 2, got
    # a select made while a scene's voice loads (one never loaded: no voice kept to take back at once) waits for it,
    # and plays after it
    scenes.request("chipmunk")
    assert building["chipmunk"].wait(5)
    assert c.loading == "chipmunk"
    after: list = []
    client_select("deeper", after).join(10)
    settle(scenes)
    assert after == ["deeper"] and c.profile == "deeper" and list(scenes.loaded)[-1] == "chipmunk", (after, c.profile)
    # a client overtaken by another client: named by its id
    building["higher"].clear()
    held = client_select("higher", got)
    assert building["higher"].wait(5)
    waiting, later = client_select("chipmunk", got), client_select("default", got)
    for t in (held, waiting, later):
        t.join(10)
    overtaken = "voice 'chipmunk' was not loaded: client 3 asked for voice 'default' after it"
    assert c.profile == "default" and overtaken in got[-3:], got


def test_obs_pointed_at_rtvcs_own_control_port_is_said(tmp_path, caplog):
    """[obs] port = control.port: the link said "not an obs-websocket 5 server (HTTP 404)", not that it was rtvc."""
    from rtvc.config import load_config
    from rtvc.serve import start_obs_link

    config = tmp_path / "config.toml"
    config.write_text("[control]\nport = 47811\n[obs]\nenabled = true\nport = 47811\n")

    class Controller:
        profile, loading, upcoming = "default", None, "default"

        def set_link(self, *_: str) -> None:
            pass

        def set_link_warnings(self, *_: object) -> None:
            pass

        def __init__(self) -> None:
            self.profiles_watchers: list = []

    with caplog.at_level("WARNING", logger="rtvc"):
        link = start_obs_link(load_config(config), Controller())
    assert link is not None
    link.stop()
    assert "[obs] port = 47811 is rtvc's own control port (control.port), not OBS's" in caplog.text, caplog.text
