"""profiles.save: the running voice and its current parameters become profiles/NAME.toml, over the wire."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from control_client import Client, RpcFailure

from rtvc.audio.virtual import VirtualDevice
from rtvc.config import load_config
from rtvc.control import rpc
from rtvc.control.auth import load_or_create_token
from rtvc.control.controller import Controller
from rtvc.control.server import ControlServer
from rtvc.errors import ConfigError
from rtvc.profile_writer import portable_model, write_profile
from rtvc.profiles import load_profile
from rtvc.run import build_engine

ROOT = Path(__file__).resolve().parent.parent

SR = 48000
PASSTHROUGH = '# shipped\nlabel = "Passthrough"\nvoice = "passthrough"\n'
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def daemon(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "passthrough.toml").write_text(PASSTHROUGH)
    (tmp_path / "profiles" / "pitch.toml").write_text('label = "Deeper"\nvoice = "pitch"\n[params]\npitch = -4.0\n')
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "pitch"\n')
    cfg = load_config(tmp_path / "config.toml")
    engine = build_engine(cfg)
    controller = Controller(cfg, engine, "pitch")
    server = ControlServer(cfg.control, controller, load_or_create_token(), port=0)
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(5 * SR) / SR)).astype(np.float32)
    device = VirtualDevice(engine, x, 256, paced=True)
    server.start()
    engine.start()
    device.start()
    yield server, tmp_path / "profiles"
    device.stop()
    engine.stop()
    server.stop()


def run(coro) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_save_writes_the_running_voice_and_its_params(daemon):
    server, profiles = daemon

    async def main():
        c = await Client.open(server.port, load_or_create_token())
        other = await Client.open(server.port, load_or_create_token())
        await other.call("events.subscribe")
        await c.call("params.set", values={"pitch": -7.5, "formant": 2.0})
        got = await c.call("profiles.save", name="my-voice", label="Mine")
        assert got["name"] == "my-voice" and got["state"]["profile"] == "my-voice"
        assert got["state"]["voice"] == "Mine: pitch + formant shifter"  # the saved label, as a load would show it
        ev = await other.event("state")
        while "profile" not in ev["changed"]:
            ev = await other.event("state")
        assert ev["by"] == "client 1" and ev["state"]["profile"] == "my-voice"
        assert ev["changed"] == ["profile", "voice", "profiles"] and ev["state"]["voice"].startswith("Mine: ")
        # (the voice lists' cue)
        assert ev["profiles"] == {"added": ["my-voice"], "removed": [], "edited": [], "model_files": []}, ev
        listed = {v["name"]: v for v in (await c.call("voices.list"))["voices"]}
        assert listed["my-voice"]["active"] and listed["my-voice"]["label"] == "Mine"
        await c.call("params.set", values={"pitch": 0.0})
        await c.call("voices.select", name="my-voice")  # the saved file loads as a profile
        assert (await c.call("params.get"))["values"]["pitch"] == -7.5
        await c.close()
        await other.close()

    run(main())
    p = load_profile("my-voice", profiles)
    assert (p.voice, p.label, p.params.pitch, p.params.formant) == ("pitch", "Mine", -7.5, 2.0)
    assert not list(profiles.glob(".*")), "no temporary file left behind"


def test_save_refuses_to_replace_a_profile_unless_asked(daemon):
    server, profiles = daemon

    async def main():
        c = await Client.open(server.port, load_or_create_token())
        with pytest.raises(RpcFailure) as e:
            await c.call("profiles.save", name="passthrough")
        assert e.value.code == rpc.INVALID_PARAMS
        assert "profile 'passthrough' already exists" in e.value.message and "overwrite: true" in e.value.message
        assert (profiles / "passthrough.toml").read_text() == PASSTHROUGH
        await c.call("profiles.save", name="passthrough", overwrite=True)
        for bad in ("../evil", "", "a b", "x" * 65):
            with pytest.raises(RpcFailure, match=r"is not allowed.*letters, digits") as e:
                await c.call("profiles.save", name=bad)
        with pytest.raises(RpcFailure, match="'overwrite' = \"yes\" must be a boolean"):
            await c.call("profiles.save", name="ok", overwrite="yes")
        # a folder, a link to nothing: "Is a directory (check the folder's permissions)" before
        (profiles / "dir.toml").mkdir()
        (profiles / "dangling.toml").symlink_to(profiles / "nowhere.toml")
        for name, what in (("dir", "a folder"), ("dangling", "a link to nothing")):
            with pytest.raises(RpcFailure, match=rf"cannot save profile '{name}': .*{name}\.toml is {what}"):
                await c.call("profiles.save", name=name, overwrite=True)
        (profiles / "dir.toml").rmdir()
        (profiles / "dangling.toml").unlink()
        await c.close()

    run(main())
    assert load_profile("passthrough", profiles).voice == "pitch"  # replaced, as asked
    assert sorted(p.name for p in profiles.iterdir()) == ["passthrough.toml", "pitch.toml"]


def test_a_saved_label_is_stripped_as_a_loaded_one_is(daemon):
    """A profile's label is stripped when it is loaded, and an empty one is its name; profiles.save wrote
    '  Mine  ' as given and named the playing voice '  Mine  : ...' until the file was loaded again."""
    server, profiles = daemon

    async def main():
        c = await Client.open(server.port, load_or_create_token())
        got = await c.call("profiles.save", name="spaced", label="  Mine \u00a0")
        assert got["state"]["voice"] == "Mine: pitch + formant shifter", got
        got = await c.call("profiles.save", name="blank", label=" \u3000 ")
        assert got["state"]["voice"] == "blank: pitch + formant shifter", got
        listed = {v["name"]: v["label"] for v in (await c.call("voices.list"))["voices"]}
        assert listed["spaced"] == "Mine" and listed["blank"] == "blank", listed
        with pytest.raises(RpcFailure, match="holds a control character") as e:
            await c.call("profiles.save", name="tabbed", label="Mine\t")  # refused as a load refuses it
        assert e.value.code == rpc.INVALID_PARAMS
        await c.close()

    run(main())
    assert 'label = "Mine"\n' in (profiles / "spaced.toml").read_text()
    assert 'label = "blank"\n' in (profiles / "blank.toml").read_text()
    assert not (profiles / "tabbed.toml").exists()


def test_saving_over_a_profile_without_a_label_keeps_its_label(daemon):
    """The TUI's save sends no label: saving over "pitch" turned its "Deeper" into "pitch" (comments kept)."""
    server, profiles = daemon

    async def main():
        c = await Client.open(server.port, load_or_create_token())
        await c.call("params.set", values={"pitch": -5.0})
        got = await c.call("profiles.save", name="pitch", overwrite=True)
        assert got["state"]["voice"] == "Deeper: pitch + formant shifter", got
        got = await c.call("profiles.save", name="fresh")  # a new profile: its name
        assert got["state"]["voice"] == "fresh: pitch + formant shifter", got
        await c.close()

    run(main())
    p = load_profile("pitch", profiles)
    assert (p.label, p.params.pitch) == ("Deeper", -5.0)


def test_a_profile_made_by_hand_with_any_name_can_be_saved_over(daemon):
    """ "my voice.toml", "声.toml" load and are listed, but profiles.save (and the TUI's save) refused their names;
    a new profile's name still follows the rule (a file name on any system)."""
    server, profiles = daemon
    for name in ("my voice", "声"):
        (profiles / f"{name}.toml").write_text(f'label = "{name}!"\nvoice = "pitch"\n')

    async def main():
        c = await Client.open(server.port, load_or_create_token())
        await c.call("params.set", values={"pitch": 3.0})
        for name in ("my voice", "声"):
            got = await c.call("profiles.save", name=name, overwrite=True)
            assert got["state"]["profile"] == name and got["state"]["voice"].startswith(f"{name}!:"), got
        with pytest.raises(RpcFailure, match=r"'new voice' is not allowed"):
            await c.call("profiles.save", name="new voice")
        await c.close()

    run(main())
    assert load_profile("my voice", profiles).params.pitch == 3.0
    assert not (profiles / "new voice.toml").exists()


def test_saving_over_a_profile_that_does_not_load_keeps_its_label(daemon):
    """A hand-edited profile with a value out of range, mended by saving the playing voice over it: its label
    became its name (the label was read by a load of the whole profile, which failed), its comments stayed."""
    server, profiles = daemon
    (profiles / "tuned.toml").write_text(
        '# tuned by hand\nlabel = "My Tuned Voice"\nvoice = "pitch"\n[params]\npitch = 30.0  # too high\n'
    )

    async def main():
        c = await Client.open(server.port, load_or_create_token())
        got = await c.call("profiles.save", name="tuned", overwrite=True)
        assert got["state"]["voice"] == "My Tuned Voice: pitch + formant shifter", got
        listed = {v["name"]: v["label"] for v in (await c.call("voices.list"))["voices"]}
        assert listed["tuned"] == "My Tuned Voice", listed
        await c.close()

    run(main())
    p = load_profile("tuned", profiles)
    assert p.label == "My Tuned Voice" and "# tuned by hand" in p.path.read_text()


def test_a_save_over_a_name_that_is_a_path_reads_nothing(daemon, tmp_path):
    """profiles.save with overwrite and no label read the profile it replaces before it checked the name, and a
    name may be a path: /dev/zero filled the memory, a FIFO hung the client's connection. The name is refused
    first (voices.select takes listed names only; read_toml refuses such files unread: test_config)."""
    server, _ = daemon
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)

    async def main():
        c = await Client.open(server.port, load_or_create_token())
        for name in ("/dev/zero", str(fifo)):
            with pytest.raises(RpcFailure) as e:
                await c.call("profiles.save", name=name, overwrite=True)
            assert e.value.code == rpc.INVALID_PARAMS and "is not allowed" in e.value.message, e.value
        assert (await c.call("status.get"))["control"]["profile"] == "pitch"  # answered at once, state kept
        await c.close()

    run(main())


def test_write_profile_keeps_a_model_voice_loadable_from_another_folder(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "voice.pth").write_bytes(b"x")
    (tmp_path / "hubert_base.pt").write_bytes(b"x")
    model = {"path": "voice.pth", "content": str(tmp_path / "hubert_base.pt"), "f0": "yin", "seed": 3}
    moved = portable_model(model, src, dst)
    assert moved == {**model, "path": str((src / "voice.pth").resolve())}
    assert portable_model(model, src, src) == model
    params = {"pitch": 12.0, "speaker": 2, "index_rate": 0.5, "protect": 0.33, "rms_mix": 0.25}
    path = write_profile(dst, "alice", 'Alice "A"', "rvc", params, moved)
    p = load_profile("alice", dst)
    assert (p.label, p.voice, p.model.path, p.model.seed, p.params.speaker) == ('Alice "A"', "rvc", moved["path"], 3, 2)
    with pytest.raises(ConfigError, match=r"'params\.pitch' = 99\.0 is not allowed"):
        write_profile(dst, "alice", "A", "rvc", {**params, "pitch": 99.0}, moved, overwrite=True)
    assert load_profile("alice", dst).params.pitch == 12.0  # the good file stays
    assert os.listdir(dst) == [path.name]


def test_any_unicode_label_is_saved_as_written_and_half_a_surrogate_is_refused(tmp_path):
    label = '🎤 Mic ✨ Ünïcode 👩\u200d🎤 "q"\\'  # emoji (two UTF-16 units; joined), quotes, a backslash
    for control in ("\x7f", "\t", "\x1b[31m"):  # (DEL, tab, an escape sequence: one line of text, no controls)
        with pytest.raises(ConfigError, match="holds a control character"):
            write_profile(tmp_path, "mic", label + control, "pitch", {"pitch": 3.0}, None)
    path = write_profile(tmp_path, "mic", label, "pitch", {"pitch": 3.0}, None)
    assert load_profile("mic", tmp_path).label == label
    assert "🎤 Mic ✨ Ünïcode" in path.read_text(encoding="utf-8")  # readable in an editor, not \ud83c escapes
    with pytest.raises(ConfigError, match=r"half of a surrogate pair.*whole pair") as e:
        write_profile(tmp_path, "mic", "\ud83c Mic", "pitch", {"pitch": 0.0}, None, overwrite=True)
    assert "saving" not in str(e.value)  # names the text, not a temporary file
    assert load_profile("mic", tmp_path).label == label and os.listdir(tmp_path) == ["mic.toml"]


def test_clients_saving_one_name_at_once_each_get_a_true_answer(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    def save(i: int) -> str:
        try:
            write_profile(tmp_path, "same", f"client {i}", "pitch", {"pitch": float(i)}, None)
            return f"saved {i}"
        except ConfigError as e:
            return str(e)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(save, range(8)))
    saved = [a for a in answers if a.startswith("saved")]
    assert len(saved) == 1 and all("already exists" in a for a in answers if a not in saved), answers
    i = int(saved[0].split()[1])
    p = load_profile("same", tmp_path)
    assert (p.label, p.params.pitch) == (f"client {i}", float(i))  # the one told "saved" is the one on disk
    assert os.listdir(tmp_path) == ["same.toml"]  # no temporary file left behind


def test_a_model_voice_is_saved_with_the_model_it_runs_not_its_edited_or_removed_file(tmp_path, monkeypatch):
    """[model] was copied from the running profile's file on disk: edited after loading, it saved settings that
    were not playing; removed, saving failed. Now it comes from the loaded voice."""
    pytest.importorskip("torch", reason="RVC voices need the rvc extra (torch)")
    from rtvc.rvc.factory import write_rvc_checkpoint
    from rtvc.rvc.hubert_factory import write_fairseq_hubert

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    models, profiles = tmp_path / "models", tmp_path / "profiles"
    models.mkdir()
    profiles.mkdir()
    write_rvc_checkpoint(models / "v2.pth", version="v2", sr="48k", f0=1, size="tiny", seed=1)
    write_fairseq_hubert(models / "hubert.pt", seed=0, layers=2, dim=768, heads=12, ffn=512)
    model = '[model]\npath = "../models/v2.pth"\ncontent = "../models/hubert.pt"\nf0 = "yin"\nseed = 7\n'
    (profiles / "alice.toml").write_text(f'voice = "rvc"\n{model}[params]\npitch = 3.0\n')
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "alice"\n')
    cfg = load_config(tmp_path / "config.toml")
    controller = Controller(cfg, build_engine(cfg), "alice")
    (profiles / "alice.toml").write_text(f'voice = "rvc"\n{model.replace("yin", "fcpe")}')  # edited meanwhile
    controller.save_profile("alice-copy", None, False, "test")
    (profiles / "alice.toml").unlink()  # and then removed
    controller.save_profile("alice-again", None, False, "test")
    for name in ("alice-copy", "alice-again"):
        p = load_profile(name, profiles)
        assert (p.model.f0, p.model.seed, p.params.pitch) == ("yin", 7, 3.0), name
        assert (profiles / p.model.path).resolve() == (models / "v2.pth").resolve()
    # its model file replaced since (`rtvc import --force` removes the voice's earlier file): a save wrote a profile
    # naming the file that is gone ("a saved profile always loads"), over the one the import wrote
    (models / "v2.pth").rename(models / "v2-new.pth")
    before = (profiles / "alice-copy.toml").read_text()
    with pytest.raises(
        ConfigError,
        match=r"cannot save profile 'alice-copy': the model files it would name are gone: "
        r"path = '.*v2\.pth' \(.*\): no such file.*select the voice again",
    ):
        controller.save_profile("alice-copy", None, True, "test")
    assert (profiles / "alice-copy.toml").read_text() == before
    assert sorted(f.name for f in profiles.iterdir()) == ["alice-again.toml", "alice-copy.toml"]  # (no temporary)


def test_a_save_racing_a_voice_select_names_the_voice_that_plays(daemon, monkeypatch):
    """voices.select (slow: its busy mark is set when its task first runs) and profiles.save from another client
    at the same moment: the save ran across the load. It read the voice playing before the switch and named its
    profile after it, so the state named the saved profile while the selected voice played (10 times in 20 for
    a helper). It now waits for the load and saves what then plays. Forced here with a slow load and a slow
    write, called as the two requests' worker threads call them."""
    import threading
    import time

    import rtvc.profile_writer
    import rtvc.run

    server, profiles = daemon
    controller = server.controller
    build, write = rtvc.run.build_converter, rtvc.profile_writer.write_profile

    def slow_build(cfg, name):
        time.sleep(0.5)  # (a model voice takes seconds)
        return build(cfg, name)

    def slow_write(*args, **kwargs):
        time.sleep(0.8)
        return write(*args, **kwargs)

    monkeypatch.setattr(rtvc.run, "build_converter", slow_build)
    monkeypatch.setattr(rtvc.profile_writer, "write_profile", slow_write)
    selecting = threading.Thread(target=controller.select_voice, args=("passthrough", "client 1"))
    selecting.start()
    time.sleep(0.1)
    controller.save_profile("race", None, True, "client 2")
    selecting.join(10)
    playing = controller.params()["kind"]
    assert playing == "passthrough" and controller.profile in ("race", "passthrough")
    assert load_profile(controller.profile, profiles).voice == playing, (controller.profile, playing)
    assert load_profile("race", profiles).voice == "passthrough"


def test_a_save_on_a_full_disk_says_so_and_leaves_nothing(tmp_path, monkeypatch):
    """A full disk was reported as '[Errno 28] No space left on device (check the folder's permissions)': the
    permissions were fine."""
    import errno

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ConfigError) as e:
        write_profile(tmp_path, "mine", "Mine", "pitch", {"pitch": 2.0}, None)
    assert "cannot write profile 'mine'" in str(e.value) and "No space left on device" in str(e.value)
    assert "free some space on that disk" in str(e.value) and "permissions" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # no half-written profile, no temporary file


def test_a_saved_profile_is_readable_as_the_one_it_replaces_and_hidden_files_are_no_voices(tmp_path):
    from rtvc.profiles import profile_files, voice_kinds

    path = write_profile(tmp_path, "mic", "Mic", "pitch", {"pitch": 3.0}, None)
    assert path.stat().st_mode & 0o777 == 0o644  # (mkstemp's 0600 made it private to its owner)
    path.chmod(0o640)
    write_profile(tmp_path, "mic", "Mic", "pitch", {"pitch": 4.0}, None, overwrite=True)
    assert path.stat().st_mode & 0o777 == 0o640
    (tmp_path / ".#mic.toml").symlink_to("user@host.1234")  # an editor's lock file, and its backup
    (tmp_path / ".mic.toml.swp.toml").write_text("not a profile")
    assert profile_files(tmp_path) == [path]
    assert voice_kinds(tmp_path) == ({"pitch": ["mic"]}, {})
    with pytest.raises(ConfigError, match=r"profiles in .*: mic;"):
        load_profile("other", tmp_path)


def test_a_profile_linked_in_is_saved_through_its_link_and_one_with_a_bom_keeps_its_notes(tmp_path):
    """A profile kept with the user's dotfiles and linked into profiles/: a save replaced the link with a file (the
    dotfiles' copy stayed as it was). A profile saved by Windows' Notepad (a UTF-8 BOM) loads, but a save over it
    lost its comments (its text was not taken as the profile's)."""
    kept = tmp_path / "dotfiles" / "mine.toml"
    kept.parent.mkdir()
    kept.write_text('label = "Mine"\nvoice = "pitch"\n[params]\npitch = 3.0  # by ear\n')
    kept.chmod(0o640)
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "mine.toml").symlink_to(kept)
    write_profile(folder, "mine", "Mine", "pitch", {"pitch": 5.0}, None, True, keep_layout=True)
    assert (folder / "mine.toml").is_symlink() and load_profile("mine", folder).params.pitch == 5.0
    assert "pitch = 5.0  # by ear" in kept.read_text() and kept.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in folder.iterdir()) == ["mine.toml"]
    assert sorted(p.name for p in kept.parent.iterdir()) == ["mine.toml"]  # (no temporary left, either side)
    # a failure there is said for the folder the link points into (the profiles folder is writable)
    import errno
    import tempfile

    made = tempfile.mkstemp

    def mkstemp(**kw):
        if os.path.samefile(kw["dir"], kept.parent):  # (as a folder root cannot write either: read-only, immutable)
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return made(**kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "mkstemp", mkstemp)
        with pytest.raises(ConfigError, match=r"cannot write profile 'mine' in .*dotfiles \(profiles/mine\.toml links"):
            write_profile(folder, "mine", "Mine", "pitch", {"pitch": 6.0}, None, True, keep_layout=True)
    assert "pitch = 5.0  # by ear" in kept.read_text()
    assert sorted(p.name for p in folder.iterdir()) == ["mine.toml"]
    bom = folder / "notepad.toml"
    bom.write_bytes(b'\xef\xbb\xbf# my notes\nlabel = "Pad"\nvoice = "pitch"\n[params]\npitch = 3.0  # tuned\n')
    assert load_profile("notepad", folder).params.pitch == 3.0
    write_profile(folder, "notepad", "Pad", "pitch", {"pitch": 4.0}, None, True, keep_layout=True)
    assert bom.read_text() == '# my notes\nlabel = "Pad"\nvoice = "pitch"\n[params]\npitch = 4.0  # tuned\n'


def test_saving_over_a_profile_keeps_its_comments_and_layout(tmp_path):
    """A user's notes in a hand-written profile survive a save from the TUI or OBS over it."""
    path = tmp_path / "mine.toml"
    path.write_text(
        "# My stream voice: tuned for the USB mic\n"
        'label = "Mine"   # shown in OBS\n'
        'voice = "pitch"\n'
        "\n"
        "[params]\n"
        "# lower is deeper\n"
        "pitch = -4.0     # semitones\n"
        "formant = -1.5   # semitones\n"
        "gain_db = 0.00\n"
    )
    new = {"pitch": -5.5, "formant": -1.5, "gain_db": 0.0}
    write_profile(tmp_path, "mine", "Mine 2", "pitch", new, None, True, keep_layout=True)
    assert path.read_text() == (
        "# My stream voice: tuned for the USB mic\n"
        'label = "Mine 2"   # shown in OBS\n'
        'voice = "pitch"\n'
        "\n"
        "[params]\n"
        "# lower is deeper\n"
        "pitch = -5.5     # semitones\n"
        "formant = -1.5   # semitones\n"
        "gain_db = 0.00\n"
    )
    p = load_profile("mine", tmp_path)
    assert (p.label, p.params.pitch, p.params.formant, p.params.gain_db) == ("Mine 2", -5.5, -1.5, 0.0)


def test_a_model_profile_saved_over_keeps_its_notes_and_drops_settings_now_default(tmp_path):
    (tmp_path / "v.pth").write_bytes(b"x")
    path = tmp_path / "alice.toml"
    path.write_text(
        'label = "Alice"\nvoice = "rvc"\n\n[model]\npath = "v.pth"  # from the Discord pack\nseed = 5\n'
        "\n[params]\npitch = 2.0\n"
    )
    params = {"pitch": 3.0, "index_rate": 0.5}
    write_profile(tmp_path, "alice", "Alice", "rvc", params, {"path": "v.pth"}, True, keep_layout=True)
    text = path.read_text()
    assert 'path = "v.pth"  # from the Discord pack\n' in text and "seed" not in text, text
    p = load_profile("alice", tmp_path)
    assert (p.model.seed, p.params.pitch, p.params.index_rate) == (0, 3.0, 0.5)


def test_a_profile_saved_over_one_of_another_kind_or_a_broken_one_is_written_afresh(tmp_path):
    """Comments written for another voice would describe what is no longer there; what a broken file kept
    would not load; `rtvc import --force` writes its own header (keep_layout is profiles.save's)."""
    path = tmp_path / "mine.toml"

    def save(pitch: float, keep_layout: bool = True, comment: str = "Saved by rtvc (profiles.save).") -> str:
        write_profile(tmp_path, "mine", "Mine", "pitch", {"pitch": pitch}, None, True, comment, keep_layout)
        assert load_profile("mine", tmp_path).params.pitch == pitch
        return path.read_text()

    path.write_text('# no change, gain only\nlabel = "Mine"\nvoice = "passthrough"\n')
    text = save(2.0)
    assert text.startswith("# Saved by rtvc (profiles.save).\n") and "gain only" not in text
    path.write_text('# broken by hand\nlabel = "Mine\nvoice = "pitch"\n')
    assert "broken by hand" not in save(3.0)
    path.write_text('# typed by hand\nlable = "Mine"\nvoice = "pitch"\n')  # parses, but does not load
    assert "typed by hand" not in save(3.5)
    path.write_text('# mine\nlabel = "Mine"\nvoice = "pitch"\n[model]\n')  # an empty [model]: not for pitch
    assert save(3.75).startswith("# mine\n")
    path.write_bytes(b"\xff\xfe not text")
    save(4.0)
    path.write_text('# mine\nlabel = "Mine"\nvoice = "pitch"\n')
    assert save(5.0, keep_layout=False, comment="Written by rtvc import").startswith("# Written by rtvc import\n")


def test_a_profile_named_like_a_file_loads_by_the_name_it_is_listed_under(tmp_path, monkeypatch):
    """`alice.toml.toml` in profiles/ is listed as 'alice.toml'; selecting that name read ./alice.toml from the
    working directory, or failed with "no file alice.toml (profiles: alice.toml, ...)"."""
    from rtvc.profiles import profile_files

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "alice.toml.toml").write_text('label = "Alice"\nvoice = "pitch"\n')
    (tmp_path / "alice.toml").write_text('label = "Stray"\nvoice = "passthrough"\n')
    monkeypatch.chdir(tmp_path)
    assert [p.stem for p in profile_files(tmp_path / "profiles")] == ["alice.toml"]
    p = load_profile("alice.toml", tmp_path / "profiles")
    assert (p.name, p.label) == ("alice.toml", "Alice")
    assert load_profile("./alice.toml", tmp_path / "profiles").label == "Stray"  # a path still reads the path


def test_a_pitch_voice_saved_lower_loads_anew_with_the_search_its_pitch_wants(tmp_path):
    """The default voice moved live to -7 and saved: the playing converter stood for the file, with the 16 ms search
    of its load; selected again after another voice it came back so (the buzz a fresh load of -7 avoids: a review)."""
    import shutil
    from pathlib import Path

    (tmp_path / "profiles").mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "profiles" / "default.toml", tmp_path / "profiles")
    (tmp_path / "profiles" / "passthrough.toml").write_text('voice = "passthrough"\n')
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "default"\n')
    cfg = load_config(tmp_path / "config.toml")
    c = Controller(cfg, build_engine(cfg), "default")
    assert c.engine.active[0].shape.search == 768
    c.save_profile("same", None, False, "test")  # (its pitch as loaded: the playing voice stands for the file)
    assert c._key is not None
    c.set_params({"pitch": -7.0}, "test")
    c.save_profile("deep", None, False, "test")
    assert c._key is None  # (not kept as the file's voice: a select of it loads it anew)
    c.select_voice("passthrough", "test")
    c.select_voice("deep", "test")
    conv = c.engine.active[0]
    assert conv.params.pitch == -7.0 and conv.shape.search == 899, conv.shape  # (48000 / 53.4 Hz)


def test_a_new_profile_is_made_as_the_users_other_files_are(tmp_path):
    """A review: a profile saved by a daemon started under umask 077 was 0644 (readable by others) whatever it was."""
    import os
    import subprocess
    import sys

    code = (
        "import pathlib, sys; from rtvc.profile_writer import write_profile; "
        "write_profile(pathlib.Path(sys.argv[1]), 'own', 'Own', 'pitch', {}, None)"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60, preexec_fn=lambda: os.umask(0o077)
    )
    assert (tmp_path / "own.toml").stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root's setpriv to drop DAC")
def test_a_profile_nobody_may_read_is_saved_over_and_keeps_its_mode(tmp_path):
    """A profile of mode 000 (chmod by hand): the new file took that mode before it was read back to check it, and
    the save failed naming the temporary file, '.default.0zkdx328.toml.saving: cannot be read' (a review). Run
    without root's power to read anything (setpriv), as a user would."""
    (tmp_path / "d.toml").write_text('voice = "pitch"\n[params]\npitch = 1.0\n')
    (tmp_path / "d.toml").chmod(0)
    code = (
        "import sys; from pathlib import Path; from rtvc.profile_writer import write_profile; "
        "print(write_profile(Path(sys.argv[1]), 'd', 'D', 'pitch', {'pitch': 2.0}, None, True, keep_layout=True))"
    )
    caps = "-dac_override,-dac_read_search"
    done = subprocess.run(
        ["setpriv", "--bounding-set", caps, "--inh-caps", caps, sys.executable, "-c", code, str(tmp_path)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((tmp_path / "d.toml").stat().st_mode) == 0
    assert "pitch = 2.0" in (tmp_path / "d.toml").read_text()  # (root reads it here)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.toml"]


@pytest.mark.parametrize(
    "params",
    [
        "params.pitch = -3.0    # semitones: keep me\nparams.formant = 0.0   # formants: keep me\n",
        "params = { pitch = -3.0, formant = 0.0 }  # keep me\n",
    ],
)
def test_a_params_table_written_as_dotted_keys_or_inline_keeps_its_comments(tmp_path, params):
    """profiles.save over a profile whose [params] was written as `params.pitch = ...` keys or as an inline table
    rewrote it as a plain [params] table, its comments gone (a review)."""
    (tmp_path / "dot.toml").write_text(f'# my voice\nvoice = "pitch"\nlabel = "Dot"\n{params}')
    write_profile(tmp_path, "dot", "Dot", "pitch", {"pitch": -2.0, "formant": 0.0}, None, True, keep_layout=True)
    text = (tmp_path / "dot.toml").read_text()
    assert "# my voice" in text and "keep me" in text and "[params]" not in text, text
    assert load_profile(str(tmp_path / "dot.toml"), tmp_path).params.pitch == -2.0
