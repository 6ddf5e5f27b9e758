"""`rtvc serve` against a real OBS Studio: the program scene picks the voice, and an OBS restart is survived."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from obs_harness import ObsClient, ObsStudio, free_port, running_obs
from test_dock import Daemon, RpcClient, wait_until

pytestmark = pytest.mark.obs
PASSWORD = "rtvc-test-pass"  # the harness's OBS scenes: "Starting", "Just Chatting", "Gaming"


@pytest.fixture
def studio() -> Iterator[ObsStudio]:
    with running_obs(PASSWORD) as s:
        yield s


@pytest.fixture
def daemon(tmp_path: Path, studio: ObsStudio) -> Iterator[Daemon]:
    d = Daemon(tmp_path, free_port())
    d.config.write_text(
        d.config.read_text()
        + f'\n[obs]\nenabled = true\nport = {studio.port}\npassword = "{PASSWORD}"\n'
        + '[obs.scenes]\n"Just Chatting" = "higher"\n"Gaming" = "passthrough"\n"Starting" = "broken"\n'
    )
    d.profile("broken").write_text('voice = "pitch"\n[params]\npitch = 999\n')  # (said at start, and at its scene)
    d.start()
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


def profile(rpc: RpcClient) -> str:
    return rpc.call("status.get")["control"]["profile"]


def warnings(rpc: RpcClient) -> list[str]:
    return rpc.call("status.get")["control"]["links"]["obs"]["warnings"]


def on_just_chatting(rpc: RpcClient, obs: ObsClient) -> None:
    """The daemon linked to OBS, and OBS cut to "Just Chatting": its voice plays."""
    wait_until(
        "the OBS link",
        lambda: rpc.call("status.get")["control"]["links"].get("obs", {}).get("state") == "connected",
        15,
    )
    obs.set_scene("Just Chatting")
    wait_until("the voice mapped to 'Just Chatting'", lambda: profile(rpc) == "higher", 10)


def test_the_program_scene_selects_the_voice_and_an_obs_restart_is_survived(studio, daemon):
    rpc = RpcClient(daemon.port, daemon.token())
    obs = ObsClient(studio.port, PASSWORD)
    try:
        on_just_chatting(rpc, obs)
        assert rpc.call("params.get")["values"]["pitch"] == 4.0  # profiles/higher.toml
        obs.set_scene("Starting")  # mapped to a profile that cannot load: the voice stays, the error names the scene
        failed = "voice 'broken' for OBS scene 'Starting' did not load"
        wait_until("the failed load said", lambda: failed in daemon.log(), 10)
        assert profile(rpc) == "higher"
        obs.close()

        studio.kill_obs()
        wait_until(
            "the link to notice",
            lambda: rpc.call("status.get")["control"]["links"]["obs"]["state"] == "disconnected",
            10,
        )
        assert profile(rpc) == "higher"  # OBS gone: the daemon keeps its voice and keeps serving
        studio.start()
        wait_until(
            "the link to come back",
            lambda: rpc.call("status.get")["control"]["links"]["obs"]["state"] == "connected",
            20,
        )
        obs = ObsClient(studio.port, PASSWORD)
        obs.set_scene("Gaming")
        wait_until("the voice mapped to 'Gaming'", lambda: profile(rpc) == "passthrough", 10)
        # [obs.scenes] edited while serve runs: taken at the next cut (it said "no voice mapped", read at start alone)
        daemon.config.write_text(daemon.config.read_text().replace('"Starting" = "broken"', '"Starting" = "default"'))
        obs.set_scene("Starting")
        wait_until("the voice newly mapped to 'Starting'", lambda: profile(rpc) == "default", 10)
    finally:
        obs.close()
        rpc.close()
    log = daemon.log()
    assert "OBS program scene 'Gaming': voice 'passthrough'" in log
    assert "[obs.scenes] read again from " in log and "OBS program scene 'Starting': voice 'default'" in log, log
    assert "[obs.scenes] 'Starting' = 'broken': the profile cannot load now:" in log
    assert PASSWORD not in log


def test_a_scene_name_mistyped_in_an_edit_of_the_scenes_is_said_at_the_next_cut(studio, daemon):
    """A review: [obs.scenes] was checked against OBS's scenes only at each connection, so a typo made while the
    stream ran never switched a voice and was never said. A scene made in OBS since the connection is no typo."""
    rpc = RpcClient(daemon.port, daemon.token())
    obs = ObsClient(studio.port, PASSWORD)
    try:
        on_just_chatting(rpc, obs)
        obs.request("CreateScene", {"sceneName": "Outro"})
        daemon.config.write_text(
            daemon.config.read_text().replace(
                '"Gaming" = "passthrough"', '"Gamming" = "passthrough"\n"Outro" = "default"'
            )
        )
        obs.set_scene("Outro")
        wait_until("the voice mapped to the new scene", lambda: profile(rpc) == "default", 10)
        said = "[obs.scenes] 'Gamming': OBS has no scene of that name (did you mean 'Gaming'?"
        wait_until("the typo said", lambda: said in daemon.log(), 10)
        assert any(w.startswith(said) for w in warnings(rpc)), warnings(rpc)  # (and on the dock and the TUI)
    finally:
        obs.close()
        rpc.close()
    log = daemon.log()
    assert log.count(said) == 1 and "'Outro': OBS has no scene" not in log, log


def test_a_scene_renamed_in_obs_keeps_its_voice_at_the_next_cut_and_after_an_edit_of_the_scenes(studio, daemon):
    """ "its voice follows it until rtvc restarts": at the next cut serve read [obs.scenes] again, took the table the
    rename had changed for an edit of the file, put the file's old name back ("read again", the start-up warnings
    again) and the renamed scene had no voice. An edit of the file meanwhile is taken, and the rename still holds."""
    rpc = RpcClient(daemon.port, daemon.token())
    obs = ObsClient(studio.port, PASSWORD)
    try:
        on_just_chatting(rpc, obs)
        obs.request("SetSceneName", {"sceneName": "Gaming", "newSceneName": "Gaming 2"})
        renamed = "OBS scene 'Gaming' renamed 'Gaming 2': its voice 'passthrough' follows it until rtvc restarts"
        wait_until("the rename said", lambda: renamed in daemon.log(), 10)
        obs.set_scene("Gaming 2")
        wait_until("the renamed scene's voice", lambda: profile(rpc) == "passthrough", 10)
        assert "[obs.scenes] read again" not in daemon.log()  # (nobody edited the file)
        # [obs.scenes] edited while serve runs: taken, and the scene renamed in OBS keeps its voice under its new name
        daemon.config.write_text(
            daemon.config.read_text().replace('"Just Chatting" = "higher"', '"Just Chatting" = "default"')
        )
        obs.set_scene("Just Chatting")
        wait_until("the voice newly mapped to 'Just Chatting'", lambda: profile(rpc) == "default", 10)
        obs.set_scene("Gaming 2")
        wait_until("the renamed scene's voice after the edit", lambda: profile(rpc) == "passthrough", 10)
        obs.request("SetSceneName", {"sceneName": "Gaming 2", "newSceneName": "Gaming 3"})  # (renamed again)
        obs.set_scene("Just Chatting")
        wait_until("the voice of 'Just Chatting'", lambda: profile(rpc) == "default", 10)
        obs.set_scene("Gaming 3")
        wait_until("the voice of the scene renamed twice", lambda: profile(rpc) == "passthrough", 10)
        # on the dock and the TUI (status.get's links), not in the log alone: the rename, and the start's broken profile
        now = "OBS scene 'Gaming' renamed 'Gaming 3': its voice 'passthrough' follows it until rtvc restarts; rename"
        said = wait_until(
            "the rename among the link's warnings", lambda: (w := warnings(rpc)) and now in w[-1] and w, 10
        )
        assert len(said) == 2 and said[0].startswith("[obs.scenes] 'Starting' = 'broken': the profile cannot"), said
        # mended as said: gone at the next cut (the file is read again then)
        daemon.config.write_text(daemon.config.read_text().replace('"Gaming" = ', '"Gaming 3" = '))
        obs.set_scene("Just Chatting")
        wait_until("the rename's warning gone", lambda: len(warnings(rpc)) == 1, 10)
        # the scene's profile mended (in profiles/, not config.toml): its warning goes too, and comes back broken
        daemon.profile("broken").write_text('voice = "pitch"\n[params]\npitch = 9\n')
        wait_until("the profile's warning gone", lambda: warnings(rpc) == [], 10)
        daemon.profile("broken").write_text('voice = "pitch"\n[params]\npitch = 99\n')
        wait_until("the profile's warning back", lambda: len(warnings(rpc)) == 1, 10)
    finally:
        obs.close()
        rpc.close()
    log = daemon.log()
    assert log.count("[obs.scenes] read again from ") == 2, log  # (the edit, and the rename mended in the file)
    assert log.count("OBS program scene 'Gaming 2': voice 'passthrough'") == 2, log
    assert "OBS program scene 'Gaming 3': voice 'passthrough'" in log and "maps none" not in log, log


def test_a_renamed_scene_removed_gives_its_voice_back_to_the_name_config_toml_has(studio, daemon):
    """A review: "Gaming" renamed "Gaming 2", then removed, and a new "Gaming" made: the new scene switched no
    voice though config.toml maps it, and the warnings said to rename [obs.scenes] to the gone "Gaming 2"."""
    rpc = RpcClient(daemon.port, daemon.token())
    obs = ObsClient(studio.port, PASSWORD)
    try:
        on_just_chatting(rpc, obs)
        obs.request("SetSceneName", {"sceneName": "Gaming", "newSceneName": "Gaming 2"})
        wait_until("the rename among the warnings", lambda: any("renamed 'Gaming 2'" in w for w in warnings(rpc)), 10)
        obs.request("RemoveScene", {"sceneName": "Gaming 2"})
        wait_until("the rename forgotten", lambda: len(warnings(rpc)) == 2 and warnings(rpc), 10)
        said = warnings(rpc)  # ('Starting''s broken profile, and 'Gaming': OBS has no scene of that name now)
        assert said[1].startswith("[obs.scenes] 'Gaming': OBS has no scene of that name"), said
        assert not any("Gaming 2" in w for w in said), said
        obs.request("CreateScene", {"sceneName": "Gaming"})
        wait_until("only the broken profile said", lambda: len(warnings(rpc)) == 1, 10)
        obs.set_scene("Gaming")
        wait_until("the voice config.toml maps to 'Gaming'", lambda: profile(rpc) == "passthrough", 10)
    finally:
        obs.close()
        rpc.close()
