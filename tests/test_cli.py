"""Bad input at the command line: a non-zero exit and one line that names the problem and the fix."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtvc.audio import devices
from rtvc.audio.devices import Device
from rtvc.cli import main

ROOT = Path(__file__).resolve().parent.parent


def rtvc(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rtvc", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("rtvc: error: ")
    return lines[0]


NO_SERVER = {"JACK_DEFAULT_SERVER": "rtvc-no-such-server", "JACK_NO_START_SERVER": "1"}


def has_sound_card() -> bool:
    r = rtvc("devices", env=NO_SERVER)
    return r.returncode == 0


@pytest.mark.skipif("has_sound_card()", reason="this machine has a sound card: 'no devices' cannot be shown")
def test_no_devices_at_all():
    r = rtvc("devices", env=NO_SERVER)
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "no sound devices found" in line and "rtvc run --virtual" in line
    assert "check `rtvc devices`" not in line  # (the command the user just ran)
    for flag in ("--input-device", "--monitor-device", "--host-api"):  # a wish for a device: not the virtual one
        r = rtvc("run", flag, "mic", "--headless", env=NO_SERVER)
        assert r.returncode == 2, (flag, r.stdout)
        assert "no sound devices found" in one_error_line(r.stderr)
    # without a PipeWire to make the virtual microphone in, that is the cause (it said "no sound devices found")
    no_pw = {**NO_SERVER, "PIPEWIRE_REMOTE": "rtvc-no-such-pipewire", "XDG_RUNTIME_DIR": "/nonexistent"}
    r = rtvc("devices", "--virtual-mic", env=no_pw)
    assert r.returncode == 2 and "audio.virtual_mic: " in one_error_line(r.stderr), r.stderr
    assert "no sound devices found" not in r.stderr


def test_bad_config_key_and_value_from_the_command_line(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text("[stream]\nblok_ms = 10\n")
    r = rtvc("run", "--config", str(bad), "--virtual", "--duration", "1")
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert f"{bad}: unknown key 'stream.blok_ms'" in line and "did you mean 'block_ms'" in line
    r = rtvc("run", "--block-ms", "0", "--virtual")
    assert r.returncode == 2
    assert "--block-ms: 'stream.block_ms' = 0.0 is not allowed (it must be a number from 1 to 500)" in one_error_line(
        r.stderr
    )


def test_a_profiles_folder_that_is_a_link_to_nowhere_is_said_and_serve_starts_without_a_voice(tmp_path):
    """A `profiles` link that leads to itself: `rtvc serve` ended at its start in a traceback (Python 3.11's
    resolve() raises RuntimeError for the loop), and "there is no folder profiles" was all `rtvc run` said."""
    from rtvc.config import load_config
    from rtvc.run import no_voice_engine

    (tmp_path / "config.toml").write_text((ROOT / "config.toml").read_text())
    (tmp_path / "profiles").symlink_to("profiles")
    r = rtvc("run", "--virtual", "--duration", "1", cwd=tmp_path)
    line = one_error_line(r.stderr)
    assert r.returncode == 2 and "profile 'default' not found" in line, line
    assert "(profiles is a link to profiles, which leads to no folder: point it at the folder of your profiles" in line
    engine = no_voice_engine(load_config(tmp_path / "config.toml", {}))  # (what serve plays until a voice is picked)
    try:
        assert engine.status().voice == f"no voice: '{tmp_path / 'profiles' / 'default.toml'}' did not load"
    finally:
        engine.close()


def test_unknown_profile_names_the_file_and_the_choices(tmp_path):
    r = rtvc("run", "--profile", "robot", "--virtual")
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "profile 'robot' not found" in line and "default" in line
    # started in another folder (a desktop shortcut): no config.toml, no profiles/ there; it said "profiles in
    # profiles: none", not where rtvc's own are
    r = rtvc("run", "--virtual", "--duration", "1", cwd=tmp_path)
    line = one_error_line(r.stderr)
    assert r.returncode == 2 and f"there is no folder {tmp_path / 'profiles'}: run rtvc in its own folder" in line
    assert "or pass --config with the path of its config.toml" in line, line
    # the label the TUI, the dock and `rtvc ctl status` show (profiles/default.toml's): it said only "not found"
    r = rtvc("run", "--profile", "deeper", "--virtual")
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "profile 'deeper' not found" in line, line
    assert "'deeper' is the label of profile 'default': name it by its file name, default; profiles in " in line, line


@pytest.mark.jack
@pytest.mark.parametrize("jack_server", [256], indirect=True)
def test_device_errors_on_a_real_server(jack_server, capsys):
    """JACK lists one device, 'system' (2 in, 2 out) at 48 kHz."""
    assert main(["run", "--input-device", "usb mic"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "no input device matches 'usb mic'" in line and "'system'" in line
    assert main(["run", "--input-device", "system", "--samplerate", "44100"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "does not support 44100 Hz" in line and "to 48000" in line
    assert main(["run", "--input-device", "system", "--input-channel", "5"]) == 2
    assert "has 2 input(s)" in one_error_line(capsys.readouterr().err)
    assert main(["run", "--input-device", "42"]) == 2
    assert "no device with index 42" in one_error_line(capsys.readouterr().err)


def test_a_name_that_matches_several_devices(monkeypatch, capsys):
    fake = [
        Device(0, "USB Mic", "ALSA", 1, 0, 48000.0, 0.01, 0.01),
        Device(1, "USB Headset", "ALSA", 1, 2, 48000.0, 0.01, 0.01),
    ]
    monkeypatch.setattr(devices, "list_devices", lambda: fake)
    assert main(["run", "--input-device", "usb", "--output-device", "1"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "'usb' matches 2 input devices" in line and "[0] USB Mic" in line and "--input-device 0" in line


def test_a_name_twinned_but_for_case_is_chosen_by_its_own_case(monkeypatch):
    """JACK clients 'Cam' and 'cam' (PipeWire nodes 'USB Headset Mic' and 'usb headset mic'): either name was refused
    as matching 2 devices, so neither could be chosen by name; the one written in the same case is taken."""
    fake = [
        Device(0, "Cam", "JACK", 2, 0, 48000.0, 0.01, 0.01),
        Device(1, "cam", "JACK", 2, 0, 48000.0, 0.01, 0.01),
        Device(2, "USB Headset Mic", "JACK", 1, 0, 48000.0, 0.01, 0.01),
        Device(3, "usb headset mic", "JACK", 1, 0, 48000.0, 0.01, 0.01),
    ]
    monkeypatch.setattr(devices, "list_devices", lambda: fake)
    names = ("Cam", "cam", "USB Headset Mic", "usb headset mic")
    assert [devices.find_device(name, "input").index for name in names] == [0, 1, 2, 3]
    with pytest.raises(devices.DeviceError, match="'CAM' matches 2 input devices"):  # (neither is written so)
        devices.find_device("CAM", "input")


@pytest.mark.jack
@pytest.mark.parametrize("jack_server", [256], indirect=True)
def test_rtvc_devices_takes_a_config_and_says_what_it_would_open(jack_server, tmp_path):
    """`rtvc devices --config PATH` was refused (every other command takes it); it now lists the devices and
    says which ones that config chooses, or why it chooses none."""
    from jack_harness import client_env

    cfg = tmp_path / "config.toml"
    cfg.write_text('[audio]\nhost_api = "JACK"\ninput_device = "system"\noutput_device = "system"\n')
    r = rtvc("devices", "--config", str(cfg), env=client_env(jack_server.name))
    assert r.returncode == 0, r.stderr
    last = r.stdout.splitlines()[-1]
    assert last.startswith("config: input [") and "system (JACK Audio Connection Kit)" in last, r.stdout
    assert last.endswith("at 48000 Hz"), last
    cfg.write_text('[audio]\nhost_api = "JACK"\ninput_device = "headset"\n')
    r = rtvc("devices", "--config", str(cfg), env=client_env(jack_server.name))
    assert r.returncode == 0, r.stderr
    last = r.stdout.splitlines()[-1]
    assert last.startswith("config: no input device matches 'headset'"), r.stdout


def test_convert_runs_a_file_through_the_streaming_path(tmp_path):
    sr = 48000
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr)).astype(np.float32)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x, sr, subtype="FLOAT")
    r = rtvc("convert", str(src), str(dst), "--block-ms", "10", "--profile", "passthrough")
    assert r.returncode == 0, r.stderr
    y, sr2 = sf.read(dst, dtype="float32")
    assert sr2 == sr and len(y) == len(x)
    np.testing.assert_array_equal(y, x)  # passthrough, aligned: the declared latency is trimmed
    sf.write(src, 5 * x, sr, subtype="FLOAT")  # 1.5: past full scale: kept in a float file, and said
    r = rtvc("convert", str(src), str(dst), "--block-ms", "10", "--profile", "passthrough")
    assert r.returncode == 0 and "the output peaks at +3.5 dBFS" in r.stdout, (r.stdout, r.stderr)
    assert "kept in the file; it clips where it is played" in r.stdout


def test_a_long_conversion_says_how_far_it_is(tmp_path, monkeypatch, capsys):
    """A 12-minute recording converted without a word for 76 s (an RVC voice on a CPU: half an hour): how far it is,
    on stderr, after 2 s; on a terminal one line drawn again and cleared at the end, into a pipe a line every 10 s."""
    import io

    from rtvc.cli import main
    from rtvc.run import ConvertProgress

    now = [0.0]

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, every in ((io.StringIO(), 10.0), (Tty(), 0.5)):
        p = ConvertProgress(600.0, stream, clock=lambda: now[0])
        for t in (1.0, 2.5, 2.75, 3.0, 12.0, 13.0):
            now[0] = t
            p(t * 4)  # (4x real time)
        p.close()
        said = stream.getvalue()
        if every == 10.0:
            assert said.splitlines() == [
                "converting: 10.0 of 600.0 s (4x real time, 2 min 28 s left)",
                "converting: 52.0 of 600.0 s (4x real time, 2 min 17 s left)",
            ], said
        else:  # (each drawn over the last; cleared at the end: the "wrote" line follows on a clean line)
            assert said.count("\r\x1b[K") == 5 and said.endswith("\r\x1b[K") and "\n" not in said, repr(said)
            assert "converting: 12.0 of 600.0 s" in said and "converting: 11.0" not in said, repr(said)
        now[0] = 0.0
    # and from `rtvc convert` itself
    monkeypatch.setattr(ConvertProgress, "FIRST_S", 0.0)
    monkeypatch.setattr(ConvertProgress, "PIPE_EVERY_S", 0.0)
    sf.write(tmp_path / "in.wav", np.zeros(3 * 48000, np.float32), 48000)
    assert main(["convert", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--profile", "passthrough"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("converting: ") and " of 3.0 s (" in err and " left)" in err, err


def test_run_without_a_sound_card_uses_the_virtual_device(tmp_path):
    record = tmp_path / "run.wav"
    r = rtvc("run", "--virtual", "--record", str(record), env=NO_SERVER)
    assert r.returncode == 0, r.stderr
    assert "virtual device: playing" in r.stdout and "declared latency" in r.stdout
    assert "xruns  " in r.stdout and "state             stopped" in r.stdout
    y, sr = sf.read(record, dtype="float32")
    assert sr == 48000 and np.abs(y).max() > 0.1  # the speech clip came through


def test_a_run_cut_short_records_what_was_played_and_no_trailing_silence(tmp_path):
    record = tmp_path / "short.wav"
    r = rtvc("run", "--virtual", "--duration", "1", "--record", str(record), env=NO_SERVER)
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(record, dtype="float32")
    assert 0.9 * sr <= len(y) <= 1.3 * sr, len(y) / sr  # the bundled clip is 8 s long
    assert f"({len(y) / sr:.1f} s)" in r.stdout


def test_the_default_recording_is_not_written_over_the_clip_and_clip_or_record_need_the_virtual_device(tmp_path):
    """`run --virtual --clip out/rtvc-run.wav` wrote the recording over the clip (only --record was checked);
    on sound devices --clip and --record were taken without a word and did nothing."""
    (tmp_path / "out").mkdir()
    clip = tmp_path / "out" / "rtvc-run.wav"
    sf.write(clip, np.zeros(4800, np.float32), 48000)
    before = clip.read_bytes()
    r = rtvc("run", "--virtual", "--duration", "1", "--clip", "out/rtvc-run.wav", env=NO_SERVER, cwd=tmp_path)
    assert r.returncode == 2 and "out/rtvc-run.wav is also the input" in r.stderr, (r.stdout, r.stderr)
    assert clip.read_bytes() == before
    home = tmp_path / "home"  # ALSA's null device: a sound device that plays nothing, here without a sound card
    home.mkdir()
    (home / ".asoundrc").write_text("pcm.!default { type null }\n")
    env, cfg = {**NO_SERVER, "HOME": str(home)}, ["--config", str(ROOT / "config.toml")]
    other = tmp_path / "clip.wav"
    other.write_bytes(before)
    for flags in (["--record", f"{tmp_path}/r.wav"], ["--clip", str(other)]):
        r = rtvc("run", *cfg, "--headless", "--duration", "1", *flags, env=env, cwd=tmp_path)
        assert r.returncode == 2 and f"{flags[0]}: for the virtual device" in r.stderr, (r.stdout, r.stderr)
        assert "add --virtual" in r.stderr and "Traceback" not in r.stderr
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    r = rtvc("serve", *cfg, "--port", port, "--clip", str(other), env=env, cwd=tmp_path)
    assert r.returncode == 2 and "--clip" in r.stderr and "for the virtual device" in r.stderr, (r.stdout, r.stderr)
    assert not (tmp_path / "r.wav").exists()


def test_bad_inputs_and_outputs_are_named_before_any_work_and_the_input_is_never_overwritten(tmp_path, capsys):
    sr = 48000
    src = tmp_path / "in.wav"
    sf.write(src, (0.1 * np.sin(np.arange(sr // 2) / 10)).astype(np.float32), sr, subtype="FLOAT")
    original = src.read_bytes()
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), sr)
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "c.toml").write_text("")
    (tmp_path / "folder").mkdir()
    (tmp_path / "cut.wav").write_bytes(original[: len(original) // 2])  # an interrupted copy: libsndfile reads half
    t = str(tmp_path)
    cases = [
        (["convert", f"{t}/nope.wav", f"{t}/o.wav"], "nope.wav: file not found"),
        (["convert", f"{t}/folder", f"{t}/o.wav"], "folder: is a folder, not an audio file"),
        (["convert", f"{t}/empty.wav", f"{t}/o.wav"], "cannot read audio file"),
        (["convert", f"{t}/zero.wav", f"{t}/o.wav"], "zero.wav: holds no audio (0 samples)"),
        (["convert", f"{t}/cut.wav", f"{t}/o.wav"], "cut.wav: truncated: its header promises 0.50 s of audio, it"),
        (["convert", str(src), str(src)], "is also the input: writing it would destroy the original"),
        (["convert", str(src), f"{t}/file.txt/o.wav"], "file.txt is a file, not a folder"),
        (["convert", str(src), f"{t}/folder"], "folder: is a folder (name a file in it, e.g."),
        (["convert", str(src), f"{t}/o.mp4"], "cannot tell an audio format from the name 'o.mp4'"),
        (["convert", "--offline", str(src), f"{t}/o.mp4"], "cannot tell an audio format"),
        (["run", "--virtual", "--clip", str(src), "--record", str(src)], "is also the input"),
        (["run", "--virtual", "--report-json", f"{t}/folder"], "e.g. " + f"{t}/folder/report.json"),
        # the report written over the clip, the recording or the config (each was, whole, with "wrote" said)
        (["run", "--virtual", "--clip", str(src), "--report-json", str(src)], "in.wav is also --clip"),
        (["run", "--virtual", "--record", f"{t}/r.wav", "--report-json", f"{t}/r.wav"], "r.wav is also --record"),
        (["run", "--config", f"{t}/c.toml", "--virtual", "--report-json", f"{t}/c.toml"], "c.toml is also the config"),
        (["run", "--virtual", "--record", f"{t}/r.xi"], "r.xi: a .xi file is written at 44100 Hz"),
        (["convert", str(src), f"{t}/o.wve"], "o.wve: a .wve file is written at 8000 Hz"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("rtvc: error: ") and words in err, (argv, err)
        assert "Traceback" not in err
    assert src.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c.toml",
        "cut.wav",
        "empty.wav",
        "file.txt",
        "folder",
        "in.wav",
        "zero.wav",
    ]
    assert main(["convert", str(src), f"{t}/out/deeper.flac"]) == 0  # formats without float samples: their own
    y, sr2 = sf.read(tmp_path / "out" / "deeper.flac", dtype="float32")
    assert sr2 == sr and len(y) == sr // 2 and np.abs(y).max() > 0.01
    for bad in ("0", "-3", "nan", "inf"):
        with pytest.raises(SystemExit) as e:
            main(["run", "--virtual", "--duration", bad])
        assert e.value.code == 2 and "give a number of seconds above 0" in capsys.readouterr().err


def test_ctrl_c_during_convert_is_one_line_and_writes_nothing(tmp_path):
    sr = 48000
    src = tmp_path / "long.wav"
    sf.write(src, (0.1 * np.sin(np.arange(240 * sr) / 10)).astype(np.float32), sr)  # ~20 s of work here
    dst = tmp_path / "out" / "long.wav"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtvc", "convert", str(src), str(dst)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not dst.parent.exists():  # made once the output is checked, before the conversion starts
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert err.strip() == "rtvc: convert interrupted" and not dst.exists()


def test_serve_refuses_an_empty_clip_at_once(tmp_path):
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 48000)
    r = rtvc("serve", "--virtual", "--clip", str(tmp_path / "zero.wav"), env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert r.returncode == 2, r.stdout
    assert "zero.wav: holds no audio (0 samples)" in one_error_line(r.stderr)


NO_PORTAUDIO = """
import sys
class NoPortAudio:  # what `import sounddevice` does where PortAudio's library is absent
    def find_spec(self, name, path=None, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
sys.meta_path.insert(0, NoPortAudio())
"""


def test_without_portaudio_the_virtual_device_runs_and_a_sound_card_is_named(tmp_path):
    """A GPU server or a container without libportaudio2: `rtvc run --virtual` and `rtvc convert` work (they
    loaded sounddevice at import and died with a traceback), and asking for a sound card names the package."""
    (tmp_path / "sitecustomize.py").write_text(NO_PORTAUDIO)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = tmp_path / "out.wav"
    r = rtvc("run", "--virtual", "--headless", "--duration", "1", "--record", str(out), env=env)
    assert r.returncode == 0, r.stderr
    played, sr = sf.read(out)
    assert sr == 48000 and len(played) >= 48000 and np.abs(played).max() > 0.01
    for args in (["devices"], ["run", "--headless", "--duration", "1"]):
        r = rtvc(*args, env=env)
        assert r.returncode == 2, (args, r.stdout)
        line = one_error_line(r.stderr)
        assert "PortAudio's library is not installed" in line and "apt-get install libportaudio2" in line
        assert "--virtual" in line


FAILS_MID_STREAM = """
import rtvc.voices.pitch as pitch
_convert = pitch.PitchVoice.convert
calls = [0]
def convert(self, window, tail, params):  # from its 101st block on, as a GPU voice that ran out of memory
    calls[0] += 1
    if calls[0] > 100:
        raise MemoryError("out of memory on the device")
    return _convert(self, window, tail, params)
pitch.PitchVoice.convert = convert
"""


def test_a_voice_that_raises_mid_file_writes_no_file_and_live_says_so_in_the_report(tmp_path):
    """Live, a block the voice raises on plays silence and the voice is retried; a file has no retry: convert
    names the error and writes nothing rather than a file with holes. `rtvc run` counts the blocks in its report
    and ends with code 1."""
    (tmp_path / "sitecustomize.py").write_text(FAILS_MID_STREAM)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, 0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * 48000) / 48000), 48000)
    r = rtvc("convert", str(src), str(dst), env=env)
    assert r.returncode == 2, r.stdout
    line = one_error_line(r.stderr)
    assert "the voice raised on" in line and "MemoryError: out of memory on the device" in line
    assert f"{dst} was not written" in line and not dst.exists()
    r = rtvc("run", "--virtual", "--headless", "--duration", "3", "--record", str(dst), env=env)
    assert r.returncode == 1, r.stderr
    assert "blocks played silence because the voice raised (the last: MemoryError: out of memory" in r.stdout
    played, _ = sf.read(dst)
    assert np.abs(played[:48000]).max() > 0.01 and not played[3 * 48000 - 9600 :].any()


TOO_SLOW = """
import time
import rtvc.voices.pitch as pitch
_convert = pitch.PitchVoice.convert
def convert(self, window, tail, params):  # 30 ms a block: a model too heavy for this machine at 20 ms blocks
    time.sleep(0.03)
    return _convert(self, window, tail, params)
pitch.PitchVoice.convert = convert
"""


def test_a_voice_too_slow_to_run_live_is_named_in_the_report_and_still_converts_files(tmp_path):
    """Live, a voice slower than its block is `overloaded`: the report says for how long and what to do, and
    counts the blocks dropped to keep the latency; a file has no clock to keep up with, so convert writes it
    whole and says nothing of the kind."""
    (tmp_path / "sitecustomize.py").write_text(TOO_SLOW)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, 0.3 * np.sin(2 * np.pi * 220 * np.arange(48000) / 48000), 48000)
    r = rtvc("run", "--virtual", "--headless", "--duration", "3", "--record", str(dst), env=env)
    assert r.returncode == 0, r.stderr
    over = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("overloaded"))
    assert "the voice takes longer than a block (20.0 ms) to convert one" in over, over
    # (the pitch voice runs on no GPU: not offered as the fix, as it was to every voice on any machine)
    assert "blocks are dropped; raise stream.block_ms, or choose a lighter voice" in over and "GPU" not in over, over
    skipped = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("skipped blocks"))
    assert int(skipped.split()[2]) > 0, skipped
    r = rtvc("convert", str(src), str(dst), env=env)
    assert r.returncode == 0, r.stderr
    assert "overload" not in r.stdout + r.stderr and "skipped" not in r.stdout + r.stderr
    played, _ = sf.read(dst)
    assert len(played) == 48000
    assert (np.abs(played[4800:43200].reshape(-1, 480)).max(axis=1) > 0.05).all()  # no 10 ms without the voice


FAILS_AT_ONCE = """
import rtvc.voices.pitch as pitch
def convert(self, window, tail, params):
    raise ValueError("a shape the model refuses\\nand a second line")
pitch.PitchVoice.convert = convert
"""


def test_an_error_is_one_line_and_its_cause_is_printed_whole_on_request(tmp_path):
    """A voice that fails on its first block is one line naming the error's first line; RTVC_TRACEBACK=1 (set
    by scripts/gpu-check.sh, where one run must tell all) prints the cause's traceback before it."""
    (tmp_path / "sitecustomize.py").write_text(FAILS_AT_ONCE)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, np.zeros(4800), 48000)
    r = rtvc("convert", str(src), str(dst), env=env)
    assert r.returncode == 2
    assert one_error_line(r.stderr).endswith(
        "the voice failed on its first block (ValueError: a shape the model refuses) (check the profile's [model] "
        "settings (device, precision, block size); a GPU may be out of memory)"
    )
    r = rtvc("convert", str(src), str(dst), env={**env, "RTVC_TRACEBACK": "1"})
    assert r.returncode == 2 and r.stderr.startswith("Traceback (most recent call last):")
    assert 'raise ValueError("a shape the model refuses' in r.stderr and "\nValueError: a shape" in r.stderr
    assert r.stderr.rstrip().splitlines()[-1].startswith("rtvc: error: ")


def test_a_device_on_another_host_api_than_the_one_set_is_named_so(monkeypatch, capsys):
    from rtvc.audio import devices
    from rtvc.audio.devices import Device

    fake = [Device(0, "USB Mic", "ALSA", 1, 0, 48000.0, 0.01, 0.01), Device(1, "system", "JACK", 2, 2, 48000, 0, 0)]
    monkeypatch.setattr(devices, "list_devices", lambda: fake)
    assert main(["run", "--host-api", "JACK", "--input-device", "usb mic", "--output-device", "system"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "input device 'usb mic' is on ALSA, but audio.host_api is 'JACK'" in line, line


def test_a_taken_control_port_is_said_before_the_voices_load(tmp_path):
    """A second `rtvc run` learnt that the port was taken after the voices had loaded (seconds with a model),
    and `rtvc run` on a terminal showed the daemon's settings dump before the reason."""
    import socket

    from rtvc.errors import RtvcError
    from rtvc.tui.launch import _wait_listening

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = rtvc("serve", "--virtual", "--port", str(port), env={**NO_SERVER, "XDG_CONFIG_HOME": str(tmp_path)})
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert f"the control server cannot listen on 127.0.0.1:{port}" in line and "set control.port" in line, line
    assert "voice: " not in r.stdout  # (said before anything was loaded)

    log = tmp_path / "serve.log"
    log.write_text("rtvc 0.1\n  audio.host_api = ''\n" * 20 + line + "\n")

    class Exited:
        returncode = 2

        def poll(self) -> int:
            return 2

    with pytest.raises(RtvcError) as e:
        _wait_listening(Exited(), log)  # type: ignore[arg-type]
    assert str(e.value).startswith("the daemon (rtvc serve) exited with 2 before listening: the control server")
    assert "audio.host_api" not in str(e.value) and f"its log: {log}" in str(e.value)
    assert "`rtvc tui` attaches to a daemon that runs there" in e.value.fix  # (rtvc run has no --port: a dead end)


def test_run_on_a_terminal_starts_its_daemon_with_every_setting_given(tmp_path):
    """`rtvc run` on a terminal hands its flags to the `rtvc serve` it starts: `--no-gate` was left out, and the
    daemon ran with the noise gate on."""
    from rtvc.cli import _load, _parser, _serve_argv

    clip = tmp_path / "clip.wav"
    run = _parser().parse_args(
        ["run", "--no-gate", "--monitor", "--monitor-device", "phones", "--block-ms", "10", "--gate-db", "-50",
         "--profile", "higher", "--virtual", "--clip", str(clip)]
    )  # fmt: skip
    serve = _parser().parse_args(["serve", *_serve_argv(run)])
    assert _load(serve) == _load(run)
    assert not _load(serve).gate.enabled
    assert (serve.virtual, serve.clip) == (True, clip)
    mic = _parser().parse_args(["run", "--virtual-mic", "--input-device", "USB"])
    served = _load(_parser().parse_args(["serve", *_serve_argv(mic)]))
    assert served == _load(mic) and served.audio.virtual_mic and served.sources["audio.virtual_mic"] == "--virtual-mic"


@pytest.mark.parametrize(("bind", "host"), [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("127.0.0.2", "127.0.0.2")])
def test_tui_attaches_where_the_daemon_listens(tmp_path, monkeypatch, bind, host):
    """`rtvc tui` tried 127.0.0.1 whatever control.bind said: with bind = "::1" (a loopback address config.toml
    allows) it found no daemon, and kept reconnecting to nothing."""
    from rtvc.tui import launch

    called = []
    monkeypatch.setattr(launch, "attach", lambda *a: called.append(a) or 0)
    config = tmp_path / "config.toml"
    config.write_text(f'[control]\nbind = "{bind}"\nport = 47999\n')
    assert main(["tui", "--config", str(config), "--token", "t"]) == 0
    assert main(["tui", "--config", str(config), "--token", "t", "--host", "rig.local"]) == 0
    assert called == [(host, 47999, "t"), ("rig.local", 47999, "t")]


def test_tui_without_a_terminal_says_so(tmp_path, capsys):
    """`rtvc tui </dev/null >file` drew escape codes into the file and waited for keys for ever."""
    config = tmp_path / "config.toml"
    config.write_text("[control]\nport = 47999\n")
    assert main(["tui", "--config", str(config), "--token", "t"]) == 2
    err = capsys.readouterr().err
    assert "rtvc tui needs a terminal, and its standard input is not one" in err and "rtvc run --headless" in err


def in_a_terminal(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    """`rtvc ARGS` with a pseudo-terminal as its standard input and output: its exit code and all it wrote."""
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "rtvc", *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                            env={**os.environ, **env})  # fmt: skip
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # (EIO: the terminal's other end closed)
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(10), out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_a_dumb_terminal_gets_status_lines_not_the_full_screen_ui(tmp_path):
    """TERM=dumb (Emacs' shell, an IDE's console): `rtvc run` drew the full-screen UI's escapes as text, and its
    status line's \\r and \\e[K; `rtvc tui` too. Now `rtvc run` says so and prints status lines, `rtvc tui` refuses."""
    code, out = in_a_terminal(["run", "--virtual"], {"TERM": "dumb", "XDG_CONFIG_HOME": str(tmp_path)}, ROOT)
    assert code == 0, out
    assert "this terminal (TERM=dumb: an editor's shell, an IDE's console) cannot show the UI: status lines" in out
    assert "\x1b" not in out, out  # no escape at all: no UI, no line drawn over
    assert "\nrunning  latency " in out.replace("\r\n", "\n"), out
    config = tmp_path / "config.toml"
    config.write_text("[control]\nport = 47999\n")
    code, out = in_a_terminal(["tui", "--config", str(config), "--token", "t"], {"TERM": "dumb"}, tmp_path)
    assert code == 2 and "rtvc tui needs a terminal that can draw a screen, and this one says TERM=dumb" in out, out
    assert "\x1b" not in out, out


def test_a_daemon_killed_by_a_signal_exits_as_a_shell_says():
    from rtvc.tui.launch import exit_status

    assert (exit_status(-9), exit_status(-15), exit_status(0), exit_status(2)) == (137, 143, 0, 2)


def test_version(capsys):
    from rtvc import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"rtvc {__version__}\n"


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_a_headless_run_stopped_by_its_terminal_closing_writes_its_recording_and_report(tmp_path, sig):
    """SIGHUP (the terminal `rtvc run --headless` ran in, closed; an ssh session dropped) ended it at once with exit
    129: no latency report, the recording and --report-json not written. It stops as Ctrl-C does."""
    rec, rep = tmp_path / "rec.wav", tmp_path / "report.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtvc", "run", "--virtual", "--headless", "--duration", "60", "--record", str(rec),
         "--report-json", str(rep)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),  # (as a terminal's child has it)
    )  # fmt: skip
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("virtual device: playing"):
            break
    time.sleep(2.0)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    out = "".join(seen) + out
    assert proc.returncode == 0, out
    assert "latency report:" in out and f"wrote {rec}" in out, out
    assert sf.info(rec).duration > 1.0 and rep.stat().st_size > 0


@pytest.mark.parametrize("jack_bare", [256], indirect=True)
def test_a_second_ctrl_c_while_a_headless_run_stops_is_said_not_raised(jack_bare, tmp_path):
    """An impatient second Ctrl-C (or `timeout`, which signals rtvc and then its whole group) landed while the devices
    closed, or as PortAudio closed its JACK client at the exit: raised, or interrupting libjack's calls, it aborted
    the process in pa_jack.c's assertions (exit 134), the report not always printed. From the stop to the exit a stop
    signal is said and the stop goes on: the report, exit 0."""
    from jack_harness import client_env

    rep = tmp_path / "report.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtvc", "run", "--headless", "--host-api", "JACK", "--duration", "60",
         "--report-json", str(rep)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **client_env(jack_bare.name), "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("voice:"):
            break
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 1.0
    while proc.poll() is None and time.monotonic() < deadline:  # (a held Ctrl-C: again and again, to the exit)
        time.sleep(0.002)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    out = "".join(seen) + out
    # (Python's own end, past PortAudio's, puts the default handlers back: one that lands there ends the process as
    # Ctrl-C does, everything written and closed; never an abort)
    assert proc.returncode in (0, -signal.SIGINT), out
    assert "Assertion" not in out and "latency report:" in out and rep.stat().st_size > 0, out
    assert out.count("stopping: the devices close in order") == 1, out


def test_closing_in_order_says_a_stop_signal_and_puts_the_handlers_back(capsys, monkeypatch):
    from rtvc import run
    from rtvc.run import closing_in_order

    monkeypatch.setattr(run, "_STOP_SAID", [])

    before = signal.getsignal(signal.SIGINT)
    with closing_in_order():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # (Python runs the handlers between bytecodes: nothing raised)
    assert signal.getsignal(signal.SIGINT) is before
    assert capsys.readouterr().err.count("rtvc: stopping: the devices close in order") == 1


@pytest.mark.skipif("has_sound_card()", reason="this machine has a sound card: serve would open it")
def test_a_serve_that_found_no_sound_devices_says_so_and_starts_anew_once_they_are_there(tmp_path):
    """serve started before the sound server (a user service at login) plays the virtual device: devices.list said
    nothing of why, devices.select told the user to name devices in config.toml; `rtvc ctl status` said all was well,
    and it stayed on the virtual device for good (it never exited for the service to try again: a review). It says
    so in status, and starts anew on the devices once the sound server is there, its voice and settings kept."""
    import json
    import socket

    from jack_harness import JackServer, client_env
    from websockets.sync.client import connect

    from rtvc.control.ctl import status_line

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    late = JackServer(256, role="late")  # (not running yet: its name is the one serve's JACK client asks for)
    env = {**os.environ, **client_env(late.name), "XDG_CONFIG_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "rtvc", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    seen: list[str] = []

    def until(words: str) -> None:
        for line in proc.stdout:
            seen.append(line)
            if words in line:
                return
        raise AssertionError(f"serve ended before {words!r}: {''.join(seen)}")

    def call(ws, method: str, **params) -> dict:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        return json.loads(ws.recv(timeout=10))

    try:
        until(" control: ws://")
        assert any("no sound card found: serving on the virtual device instead" in ln for ln in seen), seen
        token = (tmp_path / "rtvc" / "token").read_text().strip()
        with connect(f"ws://127.0.0.1:{port}/rpc?token={token}", open_timeout=10) as ws:
            in_use = call(ws, "devices.list")["result"]["in_use"]
            assert in_use["virtual"] and "found no sound devices when it started" in in_use["fallback"], in_use
            err = call(ws, "devices.select", input="system")["error"]
            assert "starts anew on your devices once they are there" in err["message"], err
            assert "config.toml" not in err["message"]
            line = status_line(call(ws, "status.get")["result"])
            assert "engine running: rtvc serve found no sound devices when it started" in line, line
            assert call(ws, "mute.set", on=True)["result"] == {"on": True}
        late.start()  # (the sound server, started after serve)
        try:
            until("sound devices are there now (input ")
            until("started anew (")
            until(" control: ws://")
            with connect(f"ws://127.0.0.1:{port}/rpc?token={token}", open_timeout=10) as ws:  # (the same port)
                in_use = call(ws, "devices.list")["result"]["in_use"]
                assert not in_use.get("virtual") and "system" in in_use["input"], in_use
                status = call(ws, "status.get")["result"]
                assert status["control"]["mute"] is True and not status["engine"].get("detail"), status
        finally:
            proc.terminate()  # (PortAudio first: its JACK client aborts on a server gone)
            proc.communicate(timeout=30)
            late.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


@pytest.mark.skipif("has_sound_card()", reason="this machine has a sound card: serve would open it")
def test_sound_devices_that_come_but_do_not_fit_are_said_and_the_virtual_device_plays_on(tmp_path):
    """Devices that came after serve but that it cannot take (a rate the config asks for that they lack): the watch
    said nothing, and status kept saying it would start anew on them (a review). And a serve started anew on the
    devices found, that then did not open: it ended, its voice and settings lost; it plays the virtual device again."""
    import json
    import socket

    from jack_harness import JackServer, client_env
    from websockets.sync.client import connect

    from rtvc import restart

    late = JackServer(256, role="late")  # (48 kHz)

    def serve(extra_env: dict[str, str]):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, **client_env(late.name), "XDG_CONFIG_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
        argv = [sys.executable, "-m", "rtvc", "serve", "--port", str(port), "--samplerate", "44100"]
        proc = subprocess.Popen(argv, cwd=ROOT, env={**env, **extra_env}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if " control: ws://" in line:
                break
        return proc, port, seen

    def detail(port: int) -> tuple[str, dict]:
        token = (tmp_path / "rtvc" / "token").read_text().strip()
        with connect(f"ws://127.0.0.1:{port}/rpc?token={token}", open_timeout=10) as ws:
            ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status.get"}))
            st = json.loads(ws.recv(timeout=10))["result"]
        return st["engine"].get("detail") or "", st["control"]

    proc, port, seen = serve({})
    try:
        assert "starts anew on your devices once they are there" in detail(port)[0]
        late.start()
        deadline = time.monotonic() + 30
        while "sound devices are there now, but:" not in (said := detail(port)[0]):
            assert time.monotonic() < deadline and proc.poll() is None, (said, "".join(seen))
            time.sleep(0.5)
        assert "44100" in said, said
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
        assert out.count("sound devices are there now, but rtvc cannot take them") == 1, out  # (said once)

        state = tmp_path / "rtvc-resume.json"  # (as a serve on the virtual device hands on once devices came)
        state.write_text(json.dumps({"devices_found": True, "config": {}, "mute": True}))
        proc, port, seen = serve({restart.RESUME_ENV: str(state)})
        assert any("the sound devices found do not open (" in ln for ln in seen), seen
        said, control = detail(port)
        assert "the devices found did not open (" in said and control["mute"] is True, (said, control)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=30)
        late.stop()


@pytest.mark.parametrize("command", ["run", "serve"])
def test_a_terminal_that_closes_under_rtvc_leaves_its_files_and_a_clean_exit(tmp_path, command):
    """The terminal rtvc ran in, closed: SIGHUP, and every later write to it fails (EIO). The stop's prints raised
    OSError: `rtvc run` exited 1 with no recording and no --report-json, serve exited 1 with a traceback. Output to
    a hung-up terminal now goes nowhere and the stop finishes."""
    import pty

    rec, rep = tmp_path / "rec.wav", tmp_path / "report.json"
    if command == "run":
        argv = ["run", "--virtual", "--headless", "--duration", "60", "--record", str(rec), "--report-json", str(rep)]
    else:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            argv = ["serve", "--virtual", "--port", str(sock.getsockname()[1])]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path)}
    pid, fd = pty.fork()
    if pid == 0:  # (the child: rtvc on the terminal, SIGHUP as a terminal's program has it)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "rtvc", *argv], env)
    seen, deadline = b"", time.monotonic() + 60
    while b"virtual device: playing" not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(fd, 4096)
        except OSError:
            break
    assert b"virtual device: playing" in seen, seen[-2000:]
    time.sleep(1.5)
    os.close(fd)  # the terminal closes: the kernel hangs it up and sends SIGHUP
    for _ in range(600):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("rtvc did not stop after its terminal closed")
    assert os.waitstatus_to_exitcode(status) == 0, os.waitstatus_to_exitcode(status)
    if command == "run":
        assert sf.info(rec).duration > 1.0 and rep.stat().st_size > 0


def test_virtual_mic_install_ignores_a_relative_xdg_config_home(tmp_path):
    """The XDG spec says a relative XDG_CONFIG_HOME is ignored, and `rtvc token` and `rtvc service install` use
    ~/.config then; `rtvc virtual-mic install` wrote rel/pipewire/... under the working directory instead."""
    home = tmp_path / "home"
    home.mkdir()
    no_pw = {"PIPEWIRE_REMOTE": "rtvc-no-such-pipewire", "XDG_RUNTIME_DIR": "/nonexistent"}  # (none is touched)
    env = {**no_pw, "XDG_CONFIG_HOME": "rel", "HOME": str(home)}
    r = rtvc("virtual-mic", "install", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    drop_in = home / ".config" / "pipewire" / "pipewire.conf.d" / "rtvc-voice.conf"
    assert drop_in.is_file() and f"wrote {drop_in}" in r.stdout, r.stdout
    assert not (tmp_path / "rel").exists()


def test_a_full_disk_under_the_output_is_an_error_not_a_traceback_and_serve_stops_cleanly(tmp_path: Path):
    """A review: a full disk under standard output (a log file: /dev/full answers every write so) gave a traceback;
    under `rtvc serve`, the report's print at the stop ended it with exit 1 (past PortAudio's exit guard)."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "rtvc", "token"], stdout=full, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=tmp_path, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "rtvc: error: No space left on device (writing its output or log): free space on that disk" in done.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "config.toml").write_text(f"[control]\nport = {port}\n")
    with open("/dev/full", "w") as full:
        serve = subprocess.Popen(
            [sys.executable, "-m", "rtvc", "serve", "--virtual", "--config", str(tmp_path / "config.toml")],
            stdout=full, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert serve.poll() is None and time.monotonic() < deadline, serve.stderr.read() if serve.stderr else ""
            time.sleep(0.2)
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    assert serve.returncode == 0 and "Traceback" not in err, err
    assert "serve's log output is gone (No space left on device): it goes on, logging nowhere" in err, err


def test_under_a_latin_1_locale_rtvc_runs_in_utf_8_mode(tmp_path: Path):
    """A review: under de_DE.ISO-8859-1 `rtvc convert` wrote its output and then crashed printing the voice's label
    (an emoji), `rtvc ctl select` likewise after the switch had worked, and `rtvc import` wrote profiles whose model
    paths were mangled (missing once back in a UTF-8 session). rtvc runs again in Python's UTF-8 mode there."""
    import shutil

    if shutil.which("localedef") is None or not Path("/usr/share/i18n/locales/de_DE").is_file():
        pytest.skip("needs localedef and glibc's locale sources (Debian: the locales package) to make a Latin-1 locale")
    locales = tmp_path / "locales"
    locales.mkdir()
    made = subprocess.run(["localedef", "-i", "de_DE", "-f", "ISO-8859-1", str(locales / "de_DE.ISO-8859-1")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert made.returncode in (0, 1) and (locales / "de_DE.ISO-8859-1").is_dir(), made.stderr  # (1: warnings)
    env = {"LOCPATH": str(locales), "LC_ALL": "de_DE.ISO-8859-1", "PYTHONUTF8": "", "PYTHONIOENCODING": ""}
    probe = rtvc_env_python("import locale; print(locale.getpreferredencoding(False))", env)
    assert probe == "ISO-8859-1", probe  # (the locale is in effect: else this test would prove nothing)
    (tmp_path / "emoji.toml").write_text('label = "Stimme 🎤"\nvoice = "pitch"\n[params]\npitch = 2.0\n', "utf-8")
    sr = 48000
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 220 * np.arange(sr // 2) / sr)).astype(np.float32), sr)
    done = subprocess.run(
        [sys.executable, "-m", "rtvc", "convert", "in.wav", "out.wav", "--profile", "emoji.toml"],
        capture_output=True, timeout=120, cwd=tmp_path, env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert "voice Stimme 🎤: pitch".encode() in done.stdout, done.stdout  # (UTF-8 bytes, not a crash)
    # once: where Python does not take PYTHONUTF8 (-E, -I, -X utf8=0), it ran again and again (a second reader)
    for flags in (["-E"], ["-X", "utf8=0"]):
        again = subprocess.run([sys.executable, *flags, "-m", "rtvc", "--version"], capture_output=True, text=True,
                               timeout=30, cwd=ROOT, env={**os.environ, **env})  # fmt: skip
        assert again.returncode == 0 and again.stdout.startswith("rtvc "), (flags, again.stdout, again.stderr)


def rtvc_env_python(code: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})  # fmt: skip
    return done.stdout.strip()
