"""The voice played before is kept loaded: switching back to it is immediate, and it comes back as a fresh load
would (a clean start, its profile's parameters), unless its profile or model files changed meanwhile."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from rtvc.audio.virtual import VirtualDevice
from rtvc.config import load_config
from rtvc.control.controller import Controller
from rtvc.run import build_engine

SR = 48000


@pytest.fixture
def live(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for name, pitch in (("up", 12.0), ("same", 0.0), ("down", -12.0)):
        (profiles / f"{name}.toml").write_text(f'label = "{name}"\nvoice = "pitch"\n[params]\npitch = {pitch}\n')
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "up"\n[gate]\nenabled = false\n')
    cfg = load_config(tmp_path / "config.toml")
    engine = build_engine(cfg)
    controller = Controller(cfg, engine, "up")
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(30 * SR) / SR)).astype(np.float32)
    device = VirtualDevice(engine, tone, 256, paced=True)
    engine.start()
    device.start()
    yield controller, engine, device, profiles
    device.stop()
    engine.stop()


def _played_hz(device: VirtualDevice, seconds: float = 0.3) -> float:
    """The strongest frequency of the last `seconds` the device played."""
    time.sleep(seconds + 0.15)
    end = device.frames_done
    x = device.recording[end - int(seconds * SR) : end]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * SR / len(x))


def test_switching_back_takes_the_kept_voice_at_once_and_as_its_profile_says(live):
    controller, engine, device, _ = live
    first = engine.active[0]
    assert _played_hz(device) == pytest.approx(440, abs=10)
    controller.set_params({"pitch": 7.0}, "test")  # changed live, not saved

    controller.select_voice("same", "test")
    assert _played_hz(device) == pytest.approx(220, abs=10)
    controller.select_voice("up", "test")
    back = engine.active[0]
    assert back is first, "the voice played before is taken back, not loaded again"
    assert back.params.pitch == 12.0  # the profile's, as a fresh load would give (7.0 was never saved)
    assert _played_hz(device) == pytest.approx(440, abs=10)
    assert controller.state()["profile"] == "up" and controller.state()["voice"] == "up: pitch + formant shifter"

    # a third voice: the kept one ("same") goes, the one that played ("up") is kept
    controller.select_voice("down", "test")
    assert _played_hz(device) == pytest.approx(110, abs=10)
    controller.select_voice("up", "test")
    assert engine.active[0] is first
    assert _played_hz(device) == pytest.approx(440, abs=10)


def test_a_voice_whose_profile_changed_while_away_is_loaded_again(live):
    controller, engine, device, profiles = live
    first = engine.active[0]
    controller.select_voice("same", "test")
    (profiles / "up.toml").write_text('label = "up"\nvoice = "pitch"\n[params]\npitch = 7.0\n')
    controller.select_voice("up", "test")
    again = engine.active[0]
    assert again is not first and again.params.pitch == 7.0
    assert _played_hz(device) == pytest.approx(220 * 2 ** (7 / 12), abs=10)


def test_what_a_voice_was_built_from_covers_its_model_files_and_the_stream(tmp_path):
    from rtvc.run import converter_key

    profiles = tmp_path / "profiles"
    (profiles / "models").mkdir(parents=True)
    (profiles / "models" / "v.pth").write_bytes(b"voice" * 1000)
    (profiles / "models" / "h.pt").write_bytes(b"hubert" * 1000)
    (profiles / "alice.toml").write_text(
        'voice = "rvc"\n[model]\npath = "models/v.pth"\ncontent = "models/h.pt"\n[params]\npitch = 2.0\n'
    )
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "alice"\n')
    cfg = load_config(tmp_path / "config.toml")
    key = converter_key(cfg, "alice")
    assert key is not None and converter_key(cfg, "alice") == key
    hubert = profiles / "models" / "h.pt"
    stat = hubert.stat()
    hubert.write_bytes(hubert.read_bytes()[:-1] + b"X")  # same size, same inode, and (below) the same time
    os.utime(hubert, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert converter_key(cfg, "alice") != key
    key = converter_key(cfg, "alice")
    cfg2 = load_config(tmp_path / "config.toml", {"stream.block_ms": (10.0, "test")})
    assert converter_key(cfg2, "alice") != key
    assert converter_key(cfg, "nobody") is None


def test_a_model_file_named_from_home_is_part_of_what_a_voice_was_built_from(tmp_path, monkeypatch):
    from rtvc.run import converter_key

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "v.pth").write_bytes(b"voice")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "bob.toml").write_text('voice = "rvc"\n[model]\npath = "~/v.pth"\n')
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "bob"\n')
    cfg = load_config(tmp_path / "config.toml")
    key = converter_key(cfg, "bob")
    (tmp_path / "home" / "v.pth").write_bytes(b"another voice")
    assert converter_key(cfg, "bob") != key
    (tmp_path / "home" / "v.pth").unlink()
    assert converter_key(cfg, "bob") is not None  # (a missing file is part of the key too; its load says why)


def test_selecting_the_voice_that_plays_reloads_it_and_keeps_no_second_copy(live):
    controller, engine, device, _ = live
    first = engine.active[0]
    controller.select_voice("up", "test")
    assert engine.active[0] is not first  # loaded again (a reload, as before)
    assert controller._kept is None
    assert _played_hz(device) == pytest.approx(440, abs=10)


def test_a_select_that_fails_or_reloads_the_playing_voice_keeps_the_voice_kept(live):
    """A misclick on a voice that does not load, or a reselect of the voice that plays (to reset its parameters),
    must not cost the quick switch back: the kept voice went before the load was tried, and the next switch back
    loaded it again (seconds for a model voice)."""
    from rtvc.errors import RtvcError

    controller, engine, device, profiles = live
    first = engine.active[0]
    controller.select_voice("same", "test")
    (profiles / "bad.toml").write_text('voice = "pitch"\n[params]\npitch = 99.0\n')  # out of range
    with pytest.raises(RtvcError, match="pitch"):
        controller.select_voice("bad", "test")
    controller.select_voice("same", "test")  # the playing voice, reloaded
    assert controller._kept is not None and controller._kept[1] is first
    controller.select_voice("up", "test")
    assert engine.active[0] is first, "the kept voice came back"
    assert _played_hz(device) == pytest.approx(440, abs=10)
