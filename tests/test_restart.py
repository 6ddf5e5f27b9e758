"""rtvc.restart: what `rtvc serve` takes back when it starts anew (PortAudio stuck on a JACK server that went away),
the exec itself (the same process, the state file read and removed), and the bound on restarts. The restart
under a real JACK server and a real PipeWire: tests/test_device_switch.py, tests/test_pipewire_live.py."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtvc import restart
from rtvc.audio.devices import Device
from rtvc.audio.io import DeviceChoice
from rtvc.config import load_config
from rtvc.control.controller import Controller
from rtvc.run import build_engine

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parent.parent


def _device(index: int, name: str) -> Device:
    return Device(index, name, "JACK Audio Connection Kit", 2, 2, 48000.0, 0.005, 0.005)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "passthrough.toml").write_text('voice = "passthrough"\n')
    (tmp_path / "profiles" / "deeper.toml").write_text('voice = "pitch"\n[params]\npitch = -4.0\n')
    (tmp_path / "config.toml").write_text(
        '[voice]\nprofile = "passthrough"\n[audio]\nhost_api = "JACK"\ninput_device = 3\noutput_device = "system"\n'
    )
    return tmp_path, load_config(tmp_path / "config.toml")


def test_a_restarted_serve_takes_back_its_voice_settings_and_devices(setup):
    _, cfg = setup
    controller = Controller(cfg, build_engine(cfg), "passthrough")
    controller.select_voice("deeper", "client 1")
    controller.set_params({"pitch": -2.5, "formant": 0.9}, "client 1")
    controller.set_mute(True, "client 1")
    controller.set_voice_on(False, "client 1")
    controller.set_ptt_mode(True, "client 1")
    controller.set_gate("client 1", on=False, threshold_db=-42.0, hold_ms=350.0)
    # (the input chosen from devices.list by index: indices change with the new PortAudio, names do not)
    choice = DeviceChoice(_device(3, "USB Mic"), _device(0, "system"), None, 1, 1, 0)
    # (the input PipeWire's default, followed: rtvc.audio.switch; the new serve follows it on)
    state = json.loads(json.dumps(restart.snapshot(controller, cfg.audio, choice, 47999, {"input"})))  # (as a file)
    assert state["follow"] == ["input"]
    assert state["pins"] == {
        "input": {"name": "USB Mic", "host_api": "JACK Audio Connection Kit", "nth": 0},
        "output": {"name": "system", "host_api": "JACK Audio Connection Kit", "nth": 0},
    }, state["pins"]

    again = restart.config_for(cfg, state)
    assert again.audio.input_device == "USB Mic" and again.audio.output_device == "system", again.audio
    assert again.audio.host_api == "JACK" and again.voice.profile == "deeper"
    assert again.control.port == 47999  # (the port it listened on, which the clients know, whatever the file says)
    fresh = Controller(again, build_engine(again), "deeper")
    events = []
    fresh.add_listener(events.append)
    restart.apply(fresh, state)
    was, now = controller.state(), fresh.state()
    for key in ("profile", "params", "mute", "voice_on", "ptt", "gate", "monitor"):
        assert now[key] == was[key], (key, now[key], was[key])
    assert now["params"]["pitch"] == -2.5 and now["gate"]["threshold_db"] == -42.0
    assert {e["by"] for e in events} == {restart.BY}, events  # (each change said, as from the restart)


def test_starting_anew_during_the_wait_hands_on_the_live_settings_and_a_voice_still_loading(setup, caplog):
    """A restarted serve that starts anew once more before its devices came back (its JACK server started again)
    handed on the state it had started with: a mute or a voice chosen meanwhile were lost, and a voice still
    loading then was dropped with no word (reviews)."""
    _, cfg = setup
    controller = Controller(cfg, build_engine(cfg), "passthrough")
    state = {"profile": "passthrough", "params": {"gain_db": -6.0}, "mute": False, "pins": {"input": {"x": 1}},
             "audio": {"input_device": "system", "monitor": False}, "port": 47999, "config": {"a": 1}}  # fmt: skip
    controller.set_params({"gain_db": -3.0}, "client 1")
    controller.set_mute(True, "client 1")
    controller.set_ptt_mode(True, "client 1")
    got = restart.with_controls(state, controller)
    assert got["params"] == {"gain_db": -3.0} and got["mute"] is True and got["ptt_mode"] is True, got
    assert got["pins"] == state["pins"] and got["port"] == 47999 and got["config"] == {"a": 1}
    assert got["audio"]["input_device"] == "system"
    controller.loading = "deeper"  # (voices.select under way: Controller.select_voice sets it for the load)
    with caplog.at_level("INFO", logger="rtvc"):
        got = restart.with_controls(state, controller)
    assert got["profile"] == "deeper" and "params" not in got, got  # (its own profile's, not the other voice's)
    assert "voice 'deeper' was still loading: rtvc loads it when it has started anew" in caplog.text


def test_settings_the_voice_no_longer_takes_are_said_and_the_rest_applied(setup, caplog):
    _, cfg = setup
    controller = Controller(cfg, build_engine(cfg), "passthrough")
    state = {"profile": "passthrough", "params": {"pitch": 3.0}, "mute": True, "gate": {"on": True}}
    with caplog.at_level("INFO", logger="rtvc"):
        restart.apply(controller, state)
    assert controller.state()["mute"] is True and controller.state()["gate"]["on"] is True
    assert "restarted: params not as it was" in caplog.text and "pitch" in caplog.text, caplog.text


def test_the_exec_keeps_the_process_and_hands_the_state_over(tmp_path):
    """The real exec: a script that starts anew with a state, and the new image reads it (the same PID; the file
    and the variable gone; one restart counted); a SIGTERM that came meanwhile reaches the new image."""
    script = tmp_path / "again.py"
    script.write_text(
        "import json, os, signal, sys\n"
        "from rtvc import restart\n"
        "got = restart.take()\n"
        "if got is None:\n"
        "    restart.block_stops()\n"
        "    os.kill(os.getpid(), signal.SIGTERM)  # (as a user's stop that comes during the restart)\n"
        "    restart.exec_again({'pid': os.getpid(), 'profile': 'deeper'}, [])\n"
        "    print('the exec failed')\n"
        "else:\n"
        "    caught = []\n"
        "    signal.signal(signal.SIGTERM, lambda n, f: caught.append(n))\n"
        "    restart.unblock_stops()  # (as serve does once its handlers are in)\n"
        "    print(json.dumps({'got': got, 'pid': os.getpid(), 'env': os.environ.get(restart.RESUME_ENV),\n"
        "                      'restarts': len(restart.recent_restarts()), 'allowed': restart.allowed(),\n"
        "                      'stopped': caught == [signal.SIGTERM]}))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("RTVC_")}
    env["TMPDIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    said = json.loads(done.stdout.strip().splitlines()[-1])
    assert said["got"] == {"pid": said["pid"], "profile": "deeper"}, said
    assert said["env"] is None and said["restarts"] == 1 and said["allowed"], said
    assert said["stopped"], "a SIGTERM that came during the restart was lost"
    assert not list(tmp_path.glob("rtvc-resume-*")), "the state file stayed"


def test_restarts_are_bounded(monkeypatch):
    now = time.time()
    monkeypatch.setenv(restart.RESTARTS_ENV, f"{now - 5000:.3f},{now - 30:.3f},nonsense,{now - 20:.3f}")
    assert restart.recent_restarts(now) == pytest.approx([now - 30, now - 20], abs=0.01)  # (the window: 10 min)
    assert restart.allowed()
    monkeypatch.setenv(restart.RESTARTS_ENV, ",".join(f"{now - s:.3f}" for s in (300, 200, 100)))
    assert not restart.allowed()  # (a device that wedges PortAudio at every start: not restarted for ever)


def test_a_state_file_that_cannot_be_read_starts_as_configured(tmp_path, monkeypatch, caplog):
    bad = tmp_path / "rtvc-resume-x.json"
    bad.write_text("{not json")
    monkeypatch.setenv(restart.RESUME_ENV, str(bad))
    with caplog.at_level("INFO", logger="rtvc"):
        assert restart.take() is None
    assert "could not be read" in caplog.text and not bad.exists()


@pytest.mark.jack
def test_a_restarted_serve_whose_monitor_is_not_back_opens_without_it(jack_server, monkeypatch, caplog):
    """The devices as they were, pinned, on a real JACK server (PortAudio on it in this process): the input and
    output come back, a monitor (headphones) that does not within the wait is left out, and rtvc serves on
    without it (a restarted serve that waited for it for ever, or exited, would be no voice at all). A state
    that names nothing that is there falls back to the configured devices."""
    import threading

    from rtvc import serve
    from rtvc.config import load_config

    overrides = {
        "audio.host_api": ("JACK", "test"), "audio.input_device": ("system", "test"),
        "audio.output_device": ("system", "test"), "audio.output_channels": (1, "test"),
        "voice.profile": (str(ROOT / "profiles" / "passthrough.toml"), "test"),
    }  # fmt: skip
    cfg = load_config(None, overrides)
    engine = build_engine(cfg)
    jack = "JACK Audio Connection Kit"
    state = {
        "pins": {role: {"name": n, "host_api": jack, "nth": 0} for role, n in
                 (("input", "system"), ("output", "system"), ("monitor", "Bluetooth headset"))},
        "audio": {"monitor_device": "Bluetooth headset", "monitor": True},
    }  # fmt: skip
    monkeypatch.setattr(serve, "RESUME_DEVICES_S", 1.5)
    resumed = restart.config_for(cfg, state)
    took: list[str] = []
    with caplog.at_level("INFO", logger="rtvc"):
        audio, choice, streams = serve.devices_again(resumed, cfg, state, engine, threading.Event(), took=took)
    streams.close()
    assert took == ["without the monitor"], took
    assert choice.input.name == choice.output.name == "system" and choice.monitor is None, choice
    assert audio.monitor_device == "" and "without the monitor instead" in caplog.text, caplog.text
    assert "waiting up to 1.5 s for the devices" in caplog.text and "Bluetooth headset" in caplog.text

    gone = {"pins": {"input": {"name": "USB mic", "host_api": jack, "nth": 0}}, "audio": {"input_device": "USB mic"}}
    took = []
    audio, choice, streams = serve.devices_again(
        restart.config_for(cfg, gone), cfg, gone, engine, threading.Event(), took=took
    )
    streams.close()
    assert audio == cfg.audio and choice.input.name == "system", (audio, choice)
    # (serve then follows the defaults the config leaves to the desktop, as at a start: not the follows of the devices
    # that are gone, whose input was a device chosen by name)
    assert took == ["as configured"], took

    # nothing opens, the configured devices neither (a USB microphone not plugged back in): it ended serve after the
    # wait ("restarted, and no devices opened", exit 2); now it keeps looking, says why, and stops when asked to
    monkeypatch.setattr(serve, "LOOK_AGAIN_S", 0.3)
    usb = load_config(None, {**overrides, "audio.input_device": ("USB mic", "test")})
    stop = threading.Event()
    timer = threading.Timer(3.0, stop.set)
    timer.start()
    caplog.clear()
    with caplog.at_level("INFO", logger="rtvc"):
        t0 = time.monotonic()
        assert serve.devices_again(restart.config_for(usb, gone), usb, gone, engine, stop) is None
    assert 2.9 < time.monotonic() - t0 < 5.0
    said = [r.getMessage() for r in caplog.records if "no devices open yet" in r.getMessage()]
    assert len(said) == 1 and "no input device matches 'USB mic'" in said[0], caplog.text  # (once: the same reason)
    assert (
        "rtvc looks for them every 0.3 s (after a minute: when a sound card or server comes or goes, else every 30"
        " s;" in said[0]
    )
    # switched to another device (devices.select) before the restart: after the wait the reason named the configured
    # one alone ("no input device matches 'USB mic'"), sending the user to plug in a device not in use
    switched = {"pins": {"input": {"name": "micB", "host_api": jack, "nth": 0}}, "audio": {"input_device": "micB"}}
    told: list[str] = []
    stop = threading.Event()
    timer = threading.Timer(3.0, stop.set)
    timer.start()
    assert serve.devices_again(restart.config_for(usb, switched), usb, switched, engine, stop, told.append) is None
    assert told[0].startswith("the input device 'micB'"), told
    assert told[-1].startswith("the input device 'micB'"), told
    assert told[-1].endswith("; as configured: no input device matches 'USB mic'"), told
    engine.close()


def test_a_restart_where_neither_its_voice_nor_the_configured_one_loads_comes_up_with_no_voice(setup, caplog):
    """A serve that starts anew whose voice and configured voice both fail to load now came up with none: it raised
    (the restart ended the daemon); it now serves silence and says why, and hands no voice on to the next restart
    (which tries the configured one again)."""
    from rtvc.serve import resumed_engine

    root, cfg = setup
    (root / "profiles" / "passthrough.toml").write_text('voice = "passthrough"\n[params]\ngain_db = 99.0\n')
    (root / "profiles" / "deeper.toml").unlink()
    state = {"profile": "deeper", "params": {"pitch": -4.0}, "mute": True}
    with caplog.at_level("INFO", logger="rtvc"):
        engine, why = resumed_engine(cfg, state)
    assert why.startswith("voice 'passthrough' (voice.profile) did not load: ") and "gain_db" in why, why
    assert "restarted: voice 'deeper' does not load now" in caplog.text, caplog.text
    assert "rtvc serves with no voice (silence out)" in caplog.text, caplog.text
    assert engine.active[0].voice.kind == "none" and "profile" not in state and "params" not in state
    controller = Controller(cfg, engine, None, no_voice=why)
    restart.apply(controller, state)
    assert controller.state()["mute"] is True and controller.state()["no_voice"] == why
    got = restart.with_controls(state, controller)
    assert "profile" not in got and "params" not in got and got["mute"] is True, got
    assert restart.config_for(cfg, got).voice.profile == cfg.voice.profile


def test_a_config_edited_into_stream_settings_no_voice_runs_with_is_taken_as_it_was(tmp_path, monkeypatch):
    """config.toml edited meanwhile into settings load_config takes but no voice runs with (a 1 ms block under the
    3 ms crossfade; a block that does not divide the period): the serve that started anew exited on them, its voice
    and settings lost (a review). It now runs on the file as the serve before read it, as for a file that does not
    load, and says so; `rtvc doctor` says such a file is wrong."""
    import argparse

    from rtvc.cli import _load, main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "passthrough.toml").write_text('voice = "passthrough"\n')
    kept = {"voice": {"profile": "passthrough"}, "stream": {"block_ms": 10.0}}
    state = tmp_path / "rtvc-resume-1.json"
    # (the serve before ran at period 960: the new one runs at it too, whatever the file says now)
    for edit, bad in (
        ("[stream]\nblock_ms = 1.0\n", True),  # (under the 3 ms crossfade)
        ("[audio]\nperiod = 8192\n[stream]\nblock_ms = 20.0\n", False),  # (wrong alone; the kept 960 takes it)
        ("[audio]\nperiod = 720\n[stream]\nblock_ms = 15.0\n", True),  # (fine alone; 720 frames do not divide 960)
    ):
        (tmp_path / "config.toml").write_text('[voice]\nprofile = "passthrough"\n' + edit)
        state.write_text(json.dumps({"profile": "passthrough", "config": kept, "audio": {"period": 960}}))
        monkeypatch.setenv(restart.RESUME_ENV, str(state))
        monkeypatch.setattr(restart, "config_error", "")
        cfg = _load(argparse.Namespace(config=None, command="serve"))
        if bad:
            assert cfg.stream.block_ms == 10.0 and cfg.audio.period == 0, cfg  # (the file as the serve before had it)
            assert restart.config_error.startswith("config.toml has an error now (stream."), restart.config_error
        else:
            assert cfg.stream.block_ms == 20.0 and cfg.audio.period == 8192 and not restart.config_error, cfg
        monkeypatch.delenv(restart.RESUME_ENV)
        assert main(["doctor"]) == (0 if "720" in edit else 2)  # (the file alone: its line "missing config ...")


def test_a_restarted_serve_keeps_its_port_whatever_the_file_says_now(setup):
    """The README promises the same port after a restart (clients reconnect there); config_for kept it only where the
    system had chosen it (port 0, which config.toml cannot hold): an edited port moved the daemon away from them."""
    _, cfg = setup
    state = {"port": 47999, "audio": {"samplerate": 48000}}
    edited = dataclasses.replace(cfg, control=dataclasses.replace(cfg.control, port=47123))
    assert restart.config_for(edited, state).control.port == 47999
    # and the log says what it kept over the file (the settings printed at start are the file's)
    kept = restart.config_for(edited, {**state, "audio": {"samplerate": 44100, "period": 256}})
    assert restart.kept_over_the_file(kept, edited) == [
        "audio.samplerate = 44100 (the file: 48000)", "audio.period = 256 (the file: 0)",
        "control.port = 47999 (the file: 47123)",
    ]  # fmt: skip
    assert restart.kept_over_the_file(edited, edited) == []


def test_hear_myself_refused_while_portaudio_is_stuck_names_the_restart_not_the_picker(setup):
    """With PortAudio stuck on a JACK server that went away every devices.select is refused: the refusal of hear
    myself sent the user to `d` in the TUI anyway (devices.list said not switchable by then; a review)."""
    from rtvc.errors import DeviceError

    _, cfg = setup
    controller = Controller(cfg, build_engine(cfg), "passthrough")
    controller.device_switcher = lambda *a, **k: {}
    with pytest.raises(DeviceError) as e:
        controller.set_monitor(True, "test")
    assert "d in the TUI" in e.value.fix
    controller.devices_stuck = lambda: True
    with pytest.raises(DeviceError) as e:
        controller.set_monitor(True, "test")
    assert "restart rtvc serve" in e.value.fix and "d in the TUI" not in e.value.fix


def test_a_config_found_in_the_folder_and_gone_by_the_restart_is_taken_as_it_was(tmp_path, monkeypatch):
    """serve started in its folder without --config (./config.toml): the file moved away, the sound server restarted,
    the new serve ran on the defaults (the file's block, [obs] and the rest dropped) and said the kept port differed
    from "the file" (a review). It reads the file the serve before ran with: gone, as a file with an error."""
    import argparse

    from rtvc.cli import _load

    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "passthrough.toml").write_text('voice = "passthrough"\n')
    kept = {"voice": {"profile": "passthrough"}, "stream": {"block_ms": 40.0}}
    state = tmp_path / "rtvc-resume-1.json"
    snap = {"profile": "passthrough", "config": kept, "config_path": str(tmp_path / "config.toml")}
    state.write_text(json.dumps(snap))  # (no config.toml here now)
    monkeypatch.setenv(restart.RESUME_ENV, str(state))
    monkeypatch.setattr(restart, "config_error", "")
    cfg = _load(argparse.Namespace(config=None, command="serve"))
    assert cfg.stream.block_ms == 40.0, cfg
    assert (
        restart.config_error.startswith("config.toml has an error now (") and "file not found" in restart.config_error
    )

    # back, and edited: read as it is now
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "passthrough"\n[stream]\nblock_ms = 10.0\n')
    monkeypatch.setattr(restart, "config_error", "")
    cfg = _load(argparse.Namespace(config=None, command="serve"))
    assert cfg.stream.block_ms == 10.0 and not restart.config_error, cfg


# a serve that holds the virtual microphone's lock and starts anew (restart.exec_again: the same command line), then,
# started anew, finds the lock still held over the exec (another claimer refused) and takes it over (claim)
_SERVE = """
import os, subprocess, sys
from rtvc import restart
from rtvc.audio import voice_mic
if restart.RESUME_ENV not in os.environ:
    voice_mic.claim()
    restart.block_stops()
    restart.exec_again({}, [])
    sys.exit("exec_again returned")
restart.unblock_stops()
restart.take()
other = subprocess.run([sys.executable, "-c", "from rtvc.audio import voice_mic; voice_mic.claim()"],
                       capture_output=True, text=True)
print("other:", other.returncode, "starting to play into the virtual" in other.stderr, flush=True)
voice_mic.claim()
print("adopted:", len(voice_mic._claim), voice_mic.CLAIM_FD_ENV in os.environ,
      voice_mic._claim_path().read_text().strip() == str(os.getpid()), flush=True)
"""


def test_the_virtual_microphones_lock_is_held_over_the_restarts_exec(tmp_path):
    """A review: the exec closed the lock file, and a second rtvc with the virtual microphone started in that moment
    took it; the restarted serve then refused to start ("another rtvc ... plays into the virtual microphone") and
    ended, the second one playing instead. The lock's descriptor now stays open over the exec and the new serve
    takes it over."""
    done = _serve_claiming(_SERVE, tmp_path)
    assert done.stdout.splitlines() == ["other: 1 True", "adopted: 1 False True"], done.stdout + done.stderr


def test_a_serve_started_anew_without_the_virtual_microphone_lets_its_lock_go(tmp_path):
    """A second review: with audio.virtual_mic turned off in config.toml before a restart, the new serve kept the lock
    it was handed over the exec for its whole run, and another rtvc was refused ("another rtvc ... is starting to
    play into the virtual microphone"), untrue."""
    serve = _SERVE.replace('voice_mic.claim()\nprint("adopted:"', 'print("adopted:"').replace(
        "other = subprocess.run", "voice_mic.drop_inherited_claim()\nother = subprocess.run"
    )
    done = _serve_claiming(serve, tmp_path)
    assert done.stdout.splitlines()[0] == "other: 0 False", done.stdout + done.stderr  # (the other took it)


def _serve_claiming(code: str, runtime: Path) -> subprocess.CompletedProcess:
    """`code` (_SERVE or a variant) run with its lock file in `runtime`, as a plain start (no state to resume)."""
    import os

    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "PIPEWIRE_RUNTIME_DIR": str(runtime), "PYTHONPATH": str(ROOT)}
    env.pop(restart.RESUME_ENV, None)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
