"""config.toml: typed, validated, overridable, printed; every mistake named with its fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rtvc.config import format_config, load_config
from rtvc.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_the_shipped_config_is_valid_and_equals_the_defaults():
    shipped = load_config(ROOT / "config.toml")
    defaults = load_config(None)
    assert (shipped.audio, shipped.stream, shipped.voice) == (defaults.audio, defaults.stream, defaults.voice)
    assert shipped.gate == defaults.gate and shipped.gate.enabled


def test_values_are_typed_and_flags_override_the_file(tmp_path):
    p = write(tmp_path, "[audio]\nsamplerate = 44100\ninput_device = 3\n[stream]\nblock_ms = 10\n")
    cfg = load_config(p, {"audio.samplerate": (48000, "--samplerate")})
    assert cfg.audio.samplerate == 48000 and cfg.audio.input_device == 3
    assert cfg.stream.block_ms == 10.0 and isinstance(cfg.stream.block_ms, float)
    text = format_config(cfg)
    assert "audio.samplerate           = 48000        [--samplerate]" in text
    assert f"audio.input_device         = 3            [{p}]" in text
    assert "stream.prefill_ms          = 8.0          [default]" in text
    # one column for every value: the longest key's width (control.max_requests_per_s's pushed its value out)
    assert len({line.index(" = ") for line in text.splitlines()[1:]}) == 1, text


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[audio]\nsamplrate = 48000\n", ["unknown key 'audio.samplrate'", "did you mean 'samplerate'"]),
        ("[audo]\n", ["unknown section [audo]", "allowed sections: audio, stream, voice"]),
        ("[audio]\nsamplerate = 12345\n", ["'audio.samplerate' = 12345 is not allowed", "one of 16000"]),
        (
            "[audio]\nsamplerate = '48000'\n",
            ["'audio.samplerate' = '48000' has the wrong type", "an integer"],
        ),
        ("[stream]\nblock_ms = 0.1\n", ["'stream.block_ms' = 0.1", "a number from 1 to 500"]),
        ("[audio]\nmonitor = 1\n", ["'audio.monitor' = 1 has the wrong type", "true or false"]),
        ("[audio]\nmonitor = true\n", ["'audio.monitor' = true (hear myself) needs a monitor device", "headphones"]),
        ("[audio\n", ["not valid TOML", "fix the syntax"]),
        # tomllib's "Cannot overwrite a value" named no key, and no line where the file ends with the second
        ("[stream]\nblock_ms = 20\nblock_ms = 10", ["'stream.block_ms' is set twice (lines 2 and 3)", "keep one"]),
        ("stream = 5\n[stream]\nblock_ms = 10\n", ["[stream] is set twice (lines 1 and 2)", "keep one"]),
        ("[gate]\non = true\n[audio]\n[gate]\n", ["[gate] is set twice (lines 1 and 4)", "keep one"]),
        ('[obs]\n"scenes" . x = 1\nscenes.x = 2\n', ["'obs.scenes.x' is set twice (lines 2 and 3)"]),
        # (lines inside a multi-line string, and an array of tables' elements, set nothing twice)
        (
            '[voice]\nnote = """\nprofile = 1\n"""\nprofile = "a"\n[audio]\nperiod = 1\nperiod = 2\n',
            ["'audio.period' is set twice (lines 7 and 8)"],
        ),
        (
            "[[obs.x]]\nname = 1\n[[obs.x]]\nname = 2\n[audio]\nperiod = 1\nperiod = 2\n",
            ["'audio.period' is set twice (lines 6 and 7)"],
        ),
        ("[gate]\nthreshold_db = 6\n", ["'gate.threshold_db' = 6", "a number from -100 to 0"]),
        ("[gate]\nthreshold = -50\n", ["unknown key 'gate.threshold'", "did you mean 'threshold_db'"]),
        ("[gate]\nhold_ms = -5\n", ["'gate.hold_ms' = -5", "a number from 0 to 5000"]),
        (
            '[obs]\nscenes = ["Gaming", "giant"]\n',
            ["'obs.scenes' = ['Gaming', 'giant'] has the wrong type", "a table:"],
        ),
    ],
)
def test_bad_config_names_the_key_the_file_and_what_is_allowed(tmp_path, text, words):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg
    for w in words:
        assert w in msg


def test_a_bad_flag_is_blamed_on_the_flag(tmp_path):
    with pytest.raises(ConfigError, match=r"^--block-ms: 'stream.block_ms' = 9999.0 is not allowed"):
        load_config(None, {"stream.block_ms": (9999.0, "--block-ms")})
    with pytest.raises(ConfigError, match=r"^--monitor: 'audio.monitor' = true \(hear myself\) needs a monitor"):
        load_config(None, {"audio.monitor": (True, "--monitor")})  # it did nothing, and said nothing
    cfg = load_config(None, {"audio.monitor": (True, "--monitor"), "audio.monitor_device": ("USB", "--monitor-device")})
    assert cfg.audio.monitor and cfg.audio.monitor_device == "USB"
    with pytest.raises(ConfigError, match=r"^--gate-db: 'gate.threshold_db' = 3.0 is not allowed"):
        load_config(None, {"gate.threshold_db": (3.0, "--gate-db")})


def test_a_device_name_with_a_control_character_is_refused_at_load(tmp_path):
    """A NUL in --input-device said "no input device matches 'micA'" (the NUL invisible), and sent by the control
    API it failed in a JACK query as an internal error: it is named where the name comes in."""
    with pytest.raises(ConfigError, match=r"^--input-device: 'audio.input_device' = 'micA\\x00' is not allowed") as e:
        load_config(None, {"audio.input_device": ("micA\x00", "--input-device")})
    assert "without control characters ('\\x00' is one: retype the name)" in str(e.value)
    p = write(tmp_path, '[audio]\nmonitor_device = "USB\\u0000"\n')
    with pytest.raises(ConfigError, match=r"'audio.monitor_device' = 'USB\\x00' is not allowed"):
        load_config(p)
    assert load_config(None, {"audio.input_device": ("Mic (USB) é 2", "--input-device")}).audio.input_device


def test_the_virtual_microphone_is_where_the_voice_goes_and_says_what_contradicts_it(tmp_path):
    """audio.virtual_mic plays the voice into rtvc's PipeWire node through PipeWire's JACK: an output device or
    another host API beside it is refused at load, naming both settings."""
    p = write(tmp_path, '[audio]\nvirtual_mic = true\noutput_device = "USB"\n')
    with pytest.raises(ConfigError) as e:
        load_config(p)
    said = str(e.value)
    assert f"audio.virtual_mic ({p}) and audio.output_device = 'USB' ({p}) both say where the voice goes" in said
    assert "leave audio.output_device unset" in str(e.value)
    with pytest.raises(ConfigError, match=r"runs on PipeWire's JACK, but audio.host_api = 'ALSA' \(--host-api\)"):
        load_config(None, {"audio.virtual_mic": (True, "--virtual-mic"), "audio.host_api": ("ALSA", "--host-api")})
    for api in ("", "JACK", "jack"):
        cfg = load_config(None, {"audio.virtual_mic": (True, "--virtual-mic"), "audio.host_api": (api, "--host-api")})
        assert cfg.audio.virtual_mic
    with pytest.raises(ConfigError, match=r"needs a monitor device"):  # (default speakers: a laptop's would howl)
        load_config(None, {"audio.virtual_mic": (True, "--virtual-mic"), "audio.monitor": (True, "--monitor")})
    p = write(tmp_path, '[audio]\nvirtual_mic = true\noutput_device = "rtvc voice"\nhost_api = "JACK"\n')
    assert load_config(p).audio.virtual_mic  # (the README's recipe before rtvc made the node: the same node)
    with pytest.raises(ConfigError, match=r"audio.host_api = 'audio'"):
        load_config(None, {"audio.virtual_mic": (True, "--virtual-mic"), "audio.host_api": ("audio", "--host-api")})


def test_files_that_are_not_utf8_text_are_named_and_a_bom_is_read(tmp_path):
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[audio]\n# Gerät: USB\ninput_device = "USB"\n'.encode("latin-1"))
    with pytest.raises(
        ConfigError, match=r"latin1\.toml: not UTF-8 text \(byte 0xe4 on line 2\).*save the file as UTF-8"
    ):
        load_config(latin1)
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"folder\.toml: is a folder, not a file"):
        load_config(folder)
    bom = tmp_path / "notepad.toml"  # Windows Notepad starts UTF-8 files with a byte-order mark
    bom.write_bytes(b"\xef\xbb\xbf" + '[audio]\ninput_device = "Gerät"\n'.encode())
    assert load_config(bom).audio.input_device == "Gerät"


def test_obs_settings_are_checked_and_unknown_scene_profiles_are_named_at_start(tmp_path):
    from rtvc.serve import unknown_scene_profiles

    with pytest.raises(ConfigError, match=r"'obs\.host' = '' is not allowed.*a host name or address"):
        load_config(write(tmp_path, '[obs]\nhost = ""\n'))
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "deep.toml").write_text('voice = "pitch"\n')
    cfg = load_config(write(tmp_path, '[obs.scenes]\n"Just Chatting" = "deep"\n"Gaming" = "deeep"\n'))
    assert unknown_scene_profiles(cfg) == [
        f"[obs.scenes] 'Gaming' = 'deeep': no such profile ({tmp_path / 'profiles' / 'deeep.toml'}); did you mean "
        "'deep'? profiles: deep"
    ]


def test_a_profile_label_is_one_line_of_printable_text(tmp_path):
    """A label is printed by convert and run and shown in every UI: an escape sequence in it would reach the
    terminal; an empty one printed 'voice : ...'."""
    from rtvc.profile_writer import write_profile
    from rtvc.profiles import load_profile

    (tmp_path / "esc.toml").write_text('label = "\\u001b[31mred"\nvoice = "pitch"\n')
    with pytest.raises(ConfigError, match=r"esc.toml: 'label' = '\\x1b\[31mred' holds a control character"):
        load_profile("esc", tmp_path)
    (tmp_path / "empty.toml").write_text('label = " "\nvoice = "pitch"\n')
    assert load_profile("empty", tmp_path).label == "empty"
    with pytest.raises(ConfigError, match=r"profiles.save: 'label' = 'a\\nb' holds a control character"):
        write_profile(tmp_path, "saved", "a\nb", "pitch", {}, None)
    assert not (tmp_path / "saved.toml").exists()
    # a line break by another name, and a bidirectional override ("\u202eevil" shows as "live"): refused too
    refused = [("line\u2028two", "a line separator"), ("\u202eevil", "a text-direction override")]
    refused.append(("half\ud800", "half of a surrogate pair"))  # (named the text alone before, not the label)
    for label, kind in refused:
        with pytest.raises(ConfigError, match=f"profiles.save: 'label' = .* holds {kind}"):
            write_profile(tmp_path, "saved", label, "pitch", {}, None)
    write_profile(tmp_path, "saved", "Miku \U0001f469\u200d\U0001f3a4", "pitch", {}, None)  # (a joiner: an emoji)
    assert load_profile("saved", tmp_path).label == "Miku \U0001f469\u200d\U0001f3a4"


@pytest.mark.parametrize("host", ["ws://127.0.0.1", "127.0.0.1:4455", "localhost:4455", "obs pc", "[::1]", "me@obs-pc"])
def test_an_obs_host_with_a_scheme_or_port_is_named_at_load(tmp_path, host):
    """OBS's address copied as a URL ('ws://127.0.0.1') passed config.toml, and `rtvc serve` started its audio and
    then stopped with "obs host ... is not a host name or address", naming no file or key; 'localhost:4455' was
    taken for an IPv6 address and the link retried every 5 s with 'not an obs-websocket 5 server'."""
    with pytest.raises(ConfigError, match=r"'obs\.host' = .* is not allowed.*no ws://, no path, no port"):
        load_config(write(tmp_path, f'[obs]\nhost = "{host}"\n'))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "fe80::1%eth0", "obs-pc.local", "OBS_PC"])
def test_obs_hosts_that_are_a_name_or_an_address_load_and_link(tmp_path, host):
    from rtvc.control.obs import ObsSettings

    cfg = load_config(write(tmp_path, f'[obs]\nhost = "{host}"\n'))
    assert ObsSettings(True, cfg.obs.host, cfg.obs.port).host == host


def test_a_password_of_the_wrong_type_is_not_printed(tmp_path):
    """obs.password is never printed or logged; a numeric one (password = 123456, unquoted) was printed whole in
    the error that said it must be a string."""
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "[obs]\npassword = 9876543210\n"))
    assert "'obs.password' = (not shown) has the wrong type" in str(e.value) and "a string" in str(e.value)
    assert "9876543210" not in str(e.value)


def test_a_profile_path_in_the_config_file_is_taken_from_the_files_folder(tmp_path, monkeypatch):
    """`[voice] profile = "voices/alice.toml"` was looked for in the working directory, not beside config.toml
    (as profiles/ is): `rtvc serve --config ~/rtvc/config.toml` run from elsewhere, or under systemd (working
    directory /), stopped with "profile 'voices/alice.toml' not found"; [obs.scenes] paths alike."""
    from rtvc.profiles import load_profile
    from rtvc.run import profiles_dir
    from rtvc.serve import unknown_scene_profiles

    home = tmp_path / "rtvc"
    (home / "voices").mkdir(parents=True)
    (home / "voices" / "alice.toml").write_text('voice = "pitch"\n')
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    cfg = load_config(
        write(
            home, '[voice]\nprofile = "voices/alice.toml"\n[obs.scenes]\n"Game" = "voices/alice.toml"\n"Chat" = "x"\n'
        )
    )
    assert load_profile(cfg.voice.profile, profiles_dir(cfg)).name == "alice"
    assert cfg.obs.scenes == {"Game": str(home / "voices" / "alice.toml"), "Chat": "x"}
    assert [p.split(":")[0] for p in unknown_scene_profiles(cfg)] == ["[obs.scenes] 'Chat' = 'x'"]
    flag = load_config(home / "config.toml", {"voice.profile": ("voices/alice.toml", "--profile")})
    assert flag.voice.profile == "voices/alice.toml"  # a flag's path is the shell's: from the working directory
    # ~ is the home folder, as in [model] paths ("no file ~/rtvc/voices/alice.toml" before, in the file and quoted)
    monkeypatch.setenv("HOME", str(tmp_path))
    tilde = load_config(write(home, '[voice]\nprofile = "~/rtvc/voices/alice.toml"\n'))
    assert load_profile(tilde.voice.profile, profiles_dir(tilde)).name == "alice"
    assert load_profile("~/rtvc/voices/alice.toml", profiles_dir(tilde)).name == "alice"
    typo = load_config(write(home, '[voice]\nprofile = "~nosuchuser8/x.toml"\n'))  # (RuntimeError from expanduser)
    with pytest.raises(ConfigError, match=r"profile '.*~nosuchuser8/x.toml' not found"):
        load_profile(typo.voice.profile, profiles_dir(typo))


def test_a_key_above_every_section_is_named_with_the_section_it_belongs_in(tmp_path):
    """`block_ms = 10` pasted above its [stream] header was "unknown section [block_ms]": it is a key."""
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "block_ms = 10\n[stream]\n"))
    assert str(e.value).endswith("'block_ms' is outside any [section] (put it under [stream])"), str(e.value)
    with pytest.raises(ConfigError, match=r"'nonsense' is outside any \[section\] \(keys belong in a section: audio"):
        load_config(write(tmp_path, "nonsense = 1\n"))


def test_a_boolean_is_quoted_as_toml_writes_it(tmp_path):
    with pytest.raises(ConfigError, match=r"'stream\.block_ms' = true has the wrong type"):
        load_config(write(tmp_path, "[stream]\nblock_ms = true\n"))


def test_a_settings_file_that_is_a_device_a_fifo_or_huge_is_refused_unread(tmp_path):
    """A client may name any path as a profile: /dev/zero filled the memory, a FIFO blocked the reading thread."""
    from rtvc.settings import TOML_LIMIT, read_toml

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * TOML_LIMIT + "\n")
    for path, words in (
        (Path("/dev/zero"), "/dev/zero: is not a regular file (name a .toml file)"),
        (fifo, f"{fifo}: is not a regular file (name a .toml file)"),
        (big, f"{big}: over 1 MiB, too large for a settings file (name a .toml file)"),
        (tmp_path, f"{tmp_path}: is a folder, not a file (name a .toml file)"),
    ):
        with pytest.raises(ConfigError) as e:
            read_toml(path)
        assert str(e.value) == words


def test_a_config_toml_here_that_is_a_folder_or_a_link_to_nothing_is_said(tmp_path, monkeypatch, capsys):
    """./config.toml that is a folder, or a link to a file moved away, was passed over: rtvc ran on its defaults
    ("settings (no config file)") with no word why the user's settings did not apply (a review)."""
    from rtvc.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").mkdir()
    assert main(["run", "--headless", "--virtual", "--duration", "0.1"]) == 2
    assert "config.toml: is a folder, not a file" in capsys.readouterr().err
    (tmp_path / "config.toml").rmdir()
    (tmp_path / "config.toml").symlink_to(tmp_path / "moved" / "config.toml")
    assert main(["run", "--headless", "--virtual", "--duration", "0.1"]) == 2
    err = capsys.readouterr().err
    assert f"config.toml: a link to {tmp_path / 'moved' / 'config.toml'}, which is not there" in err, err


def test_a_long_file_name_is_cut_as_a_label_and_a_link_to_nothing_is_said_as_such(tmp_path):
    """A profile with no label and a 200-character file name did not load: "'label' is 200 characters long", though
    the file has no 'label' (its name stood in). A link to a file moved away was "not found", the profiles listed
    after it naming the link itself."""
    from rtvc.profiles import MAX_LABEL, load_profile

    long = "x" * 200
    (tmp_path / f"{long}.toml").write_text('voice = "pitch"\n')
    got = load_profile(long, tmp_path)
    assert got.name == long and len(got.label) == MAX_LABEL and got.label.endswith("…"), got.label
    (tmp_path / "moved.toml").symlink_to(tmp_path / "elsewhere" / "moved.toml")
    with pytest.raises(ConfigError, match=r"profile 'moved': .*moved.toml is a link to .*elsewhere/moved.toml, which "
                       r"leads to no file \(put the file it names back, or remove the link\)"):  # fmt: skip
        load_profile("moved", tmp_path)
