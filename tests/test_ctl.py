"""`rtvc ctl`: one request to a real `rtvc serve --virtual` per call, as a desktop shortcut runs it; what it prints,
and what the daemon's state is after it (asked by the test's own client)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import Daemon, RpcClient, free_port, serving

from rtvc.cli import main


@pytest.fixture(scope="module")
def daemon(tmp_path_factory) -> Iterator[Daemon]:
    with serving(Daemon(tmp_path_factory.mktemp("ctl") / "daemon", free_port())) as d:
        yield d


@pytest.fixture
def ctl(daemon: Daemon, monkeypatch, capsys):
    """rtvc ctl ARGS... against the daemon, with its token file as this machine's: (exit code, stdout, stderr)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(daemon.xdg))

    def run(*args: str, port: int | None = None) -> tuple[int, str, str]:
        code = main(["ctl", "--port", str(port or daemon.port), *args])
        out, err = capsys.readouterr()
        return code, out.strip(), err.strip()

    return run


@pytest.fixture
def rpc(daemon: Daemon) -> Iterator[RpcClient]:
    client = RpcClient(daemon.port, daemon.token())
    yield client
    client.close()


def test_switches_toggle_or_set_and_say_what_they_did(ctl, rpc):
    rpc.call("mute.set", on=False)
    assert ctl("mute") == (0, "mute on", "")
    assert rpc.call("status.get")["control"]["mute"] is True
    assert ctl("mute") == (0, "mute off", "")
    assert ctl("mute", "on")[1] == "mute on" and ctl("mute", "on")[1] == "mute on"  # (on stays on)
    assert rpc.call("status.get")["control"]["mute"] is True
    assert ctl("mute", "off")[1] == "mute off"
    assert ctl("voice", "off")[1] == "voice changer off"
    assert rpc.call("status.get")["control"]["voice_on"] is False
    assert ctl("voice")[1] == "voice changer on"
    assert ctl("gate", "off")[1] == "noise gate off"
    assert ctl("gate")[1] == "noise gate on (-60 dBFS)"
    assert ctl("ptt-mode")[1] == "push-to-talk mode on"
    assert rpc.call("status.get")["control"]["ptt"]["mode"] is True
    assert ctl("ptt-mode")[1] == "push-to-talk mode off"
    # (the daemon's microphone is the bundled speech: no room to learn, refused, the gate as it was)
    code, out, err = ctl("gate", "learn")
    assert code == 2 and "gate.learn: the input went from" in err and "more than a room" in err, err
    assert rpc.call("status.get")["control"]["gate"] == {"on": True, "threshold_db": -60.0, "hold_ms": 200.0}
    code, out, err = ctl("mute", "sometimes")
    assert code == 2 and out == "" and "'mute sometimes': say on, off or toggle" in err
    code, _, err = ctl("monitor")  # (the virtual device has no monitor: the daemon's reason, and its fix)
    assert code == 2 and "monitor.toggle: monitor not switched on: hear myself needs a monitor device" in err


def test_select_goes_round_the_voices_and_pitch_steps_within_its_range(ctl, rpc, daemon: Daemon):
    rpc.call("voices.select", name="default")
    names = [v["name"] for v in rpc.call("voices.list")["voices"]]
    assert names == ["default", "edited", "higher", "passthrough"]
    assert ctl("select", "next")[1] == "voice 'edited' (Edited)"
    assert ctl("select", "previous")[1] == "voice 'default' (Deeper)"
    assert ctl("select", "previous")[1] == "voice 'passthrough' (Passthrough)"  # (round: the last)
    assert rpc.call("status.get")["control"]["profile"] == "passthrough"
    code, _, err = ctl("pitch", "+1")
    assert code == 2 and "the voice playing (passthrough) has no pitch to change" in err
    assert ctl("select", "next")[1] == "voice 'default' (Deeper)"
    # the voice playing, its file edited into an error since: next and previous are still its neighbours (they
    # were the first and the last voice), the voices with errors skipped
    rpc.call("voices.select", name="edited")
    edited = daemon.profile("edited")
    was = edited.read_text()
    try:
        edited.write_text(was.replace("pitch = 2.0", "pitch = 99.0"))
        wait_for_error = time.monotonic() + 10
        while not any(v.get("error") for v in rpc.call("voices.list")["voices"] if v["name"] == "edited"):
            assert time.monotonic() < wait_for_error, rpc.call("voices.list")
            time.sleep(0.1)
        assert ctl("select", "next")[1] == "voice 'higher' (Higher)"
        rpc.call("voices.select", name="passthrough")
        assert ctl("select", "previous")[1] == "voice 'higher' (Higher)"  # ('edited' skipped: it cannot load)
    finally:
        edited.write_text(was)
    rpc.call("voices.select", name="default")
    assert ctl("pitch", "+3") == (0, "pitch now -1 semitones (was -4)", "")  # (default: -4)
    assert rpc.call("params.get")["values"]["pitch"] == -1.0
    assert ctl("pitch", "-2.5")[1] == "pitch now -3.5 semitones (was -1)"
    assert ctl("pitch", "=-4")[1] == "pitch now -4 semitones (was -3.5)"
    code, _, err = ctl("pitch", "20")  # (+20 or =20? said, not guessed: a bare -3 is "down 3")
    assert code == 2 and "'pitch 20': say which: +20 (up from now) or =20 (to 20)" in err
    assert rpc.call("params.get")["values"]["pitch"] == -4.0
    assert ctl("pitch", "=20")[1] == "pitch now +20 semitones (was -4)"
    assert ctl("pitch", "+10")[1] == "pitch now +24 semitones, its highest (was +20)"
    assert rpc.call("params.get")["values"]["pitch"] == 24.0
    code, _, err = ctl("select", "nobody")
    assert code == 2 and "voices.select: no voice 'nobody': voices: default, edited, higher, passthrough" in err
    assert rpc.call("status.get")["control"]["profile"] == "default"  # (kept)
    code, _, err = ctl("pitch", "up")
    assert code == 2 and "'pitch up': not a number of semitones" in err


def test_call_sends_any_method_and_status_is_one_line(ctl, rpc):
    code, out, _ = ctl("call", "mute.set", '{"on": true}')
    assert code == 0 and out == '{\n  "on": true\n}'
    assert rpc.call("status.get")["control"]["mute"] is True
    rpc.call("mute.set", on=False)
    code, out, _ = ctl("status")
    latency = rpc.call("status.get")["engine"]["latency"]["ms"]["total"]
    assert code == 0 and out.startswith("voice '") and f"latency {latency:.1f} ms" in out and "mute off" in out
    for args, said in (
        (("call", "mute.set", "{on: true}"), "the parameters are not JSON"),
        (("call", "mute.set", "[true]"), "the parameters must be a JSON object"),
        # (Python's json reads these; the daemon refuses them as not JSON, with no id: ctl waited 30 s for its reply)
        (("call", "params.set", '{"values": {"pitch": NaN}}'), "NaN is not a JSON number"),
        (("call", "params.set", '{"values": {"pitch": -Infinity}}'), "-Infinity is not a JSON number"),
        (("call", "params.set", '{"values": {"pitch": 1e400}}'), "1e400 is beyond what a number can hold"),
        (("call", "mute.sett"), "unknown method 'mute.sett'"),
        (("call", "mute.set", '{"on": 3}'), "(-32602)"),
        (("call", "status.get", '{"method": 1, "self": 2}'), "(-32602)"),  # (not the client's own argument names)
        (("frobnicate",), "unknown action 'frobnicate'"),
    ):
        code, out, err = ctl(*args)
        assert code == 2 and out == "" and said in err, (args, err)


def test_no_daemon_or_a_wrong_token_is_said_with_the_fix(ctl, daemon: Daemon, monkeypatch, tmp_path: Path):
    import subprocess

    from rtvc.control import ctl as ctl_module

    with monkeypatch.context() as m:
        m.setattr(ctl_module, "serve_processes", lambda: [])  # (no serve of this user runs, another test's or not)
        code, _, err = ctl("mute", port=free_port())
    assert code == 2 and "no rtvc daemon answers at 127.0.0.1:" in err and "start it with `rtvc serve`" in err
    # a serve that runs but has not opened its port yet (starting anew after PipeWire restarted: up to ~15 s): "start
    # it" had the user start another, which took the port, and the restarted one ended (a review)
    fake = tmp_path / "bin" / "rtvc"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    starting = subprocess.Popen([str(fake), "serve", "--config", "x.toml"])
    try:
        code, _, err = ctl("mute", port=free_port())
    finally:
        starting.kill()
        starting.wait()
    named = err.split("but rtvc serve runs (process ", 1)[-1].split(")", 1)[0].split(", ")
    assert code == 2 and str(starting.pid) in named, err  # (with any other serve of this user's that runs)
    assert "wait a moment and try again, rather than starting another" in err and "start it with" not in err, err
    code, _, err = ctl("--token", "not-the-token", "mute")
    assert code == 2 and "refused the token given with --token" in err
    # a port that takes the connection and never answers (a daemon stopped by Ctrl-Z): not "start it"
    monkeypatch.setattr("rtvc.control.ctl.OPEN_TIMEOUT_S", 0.5)
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        code, _, err = ctl("mute", port=hung.getsockname()[1])
    assert code == 2 and "takes connections but does not answer" in err and "start it with" not in err, err
    assert "`fg` in its terminal" in err and "systemctl --user restart rtvc" in err, err
    other = tmp_path / "xdg" / "rtvc"
    other.mkdir(parents=True)
    (other / "token").write_text("a" * 43 + "\n")
    (other / "token").chmod(0o600)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    code, _, err = ctl("mute")
    assert code == 2 and f"refused the token in {other / 'token'}" in err and "pass --token" in err
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nowhere"))
    code, _, err = ctl("mute")
    assert code == 2 and "no token file at" in err


def test_status_says_no_voice_plays_and_why() -> None:
    """`rtvc ctl status` of a daemon whose start profile did not load said "voice 'None' on"."""
    from rtvc.control.ctl import status_line

    why = "voice 'default' (voice.profile) did not load: profiles/default.toml: no such file"
    control = {"profile": None, "no_voice": why, "voice_on": True, "mute": False, "ptt": {"mode": False, "held": 0},
               "monitor": False, "gate": {"on": False, "threshold_db": -60.0}}  # fmt: skip
    line = status_line({"control": control, "engine": {"xruns": {"total": 0}, "state": "running"}})
    assert line.startswith(f"no voice, output silent ({why}; `rtvc ctl select NAME` picks one), mute off"), line
    assert "None" not in line
    control["links"] = {"obs": {"state": "auth failed", "detail": "OBS at 127.0.0.1:4455 refused the password"}}
    line = status_line({"control": control, "engine": {"xruns": {"total": 0}, "state": "running"}})
    assert ", OBS auth failed, xruns 0" in line, line  # (the link down was not said: status.get alone had it)
    # running, but its detail says the call hears nothing (the virtual microphone removed): it was left out
    gone = "the virtual microphone 'rtvc voice' is gone from PipeWire (removed): a call that recorded from it is moved"
    line = status_line({"control": control, "engine": {"xruns": {"total": 0}, "state": "running", "detail": gone}})
    assert line.endswith(f"xruns 0; engine running: {gone}"), line
    # what [obs.scenes] gets wrong (a scene renamed in OBS: it switches no voice after a restart): one line each
    renamed = "OBS scene 'Gaming' renamed 'Gaming 2': its voice 'giant' follows it until rtvc restarts"
    control["links"] = {"obs": {"state": "connected", "detail": "connected", "warnings": [renamed, "[obs.scenes] x"]}}
    line = status_line({"control": control, "engine": {"xruns": {"total": 0}, "state": "running"}})
    assert line.splitlines()[1:] == [f"  {renamed}", "  [obs.scenes] x"], line
    assert ", OBS scenes: 2 problem(s), xruns 0" in line.splitlines()[0], line


def test_options_after_the_action_and_wrong_words_without_a_daemon(daemon: Daemon, monkeypatch, capsys) -> None:
    """`rtvc ctl status --port N` took --port as the action's words ("'status' takes no arguments"; with `mute`,
    the daemon on the default port was asked); a wrong word with no daemon up said "no rtvc daemon answers"."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(daemon.xdg))
    for argv in (["status", "--port", str(daemon.port)], ["status", f"--port={daemon.port}"]):
        assert main(["ctl", *argv]) == 0, capsys.readouterr()
        assert capsys.readouterr().out.startswith("voice '")
    assert main(["ctl", "call", "mute.set", '{"on": false}', "--port", str(daemon.port)]) == 0
    assert capsys.readouterr().out == '{\n  "on": false\n}\n'
    assert main(["ctl", "call", "--port", str(daemon.port), "mute.set", '{"on": false}']) == 0, capsys.readouterr()
    assert capsys.readouterr().out == '{\n  "on": false\n}\n'
    nobody = str(free_port())
    for words, said in (
        (["mute", "maybe"], "'mute maybe': say on, off or toggle"),
        (["pitch", "3"], "'pitch 3': say which: +3 (up from now) or =3"),
        (["select"], "'select' takes one profile name"),
        (["call", "mute.set", "{on: 1}"], "the parameters are not JSON"),
        (["frobnicate"], "unknown action 'frobnicate'"),
        ([], "rtvc ctl: which action?"),
    ):
        assert main(["ctl", "--port", nobody, *words]) == 2
        err = capsys.readouterr().err
        assert said in err and "no rtvc daemon answers" not in err, (words, err)


def test_sockets_that_send_no_token_do_not_lock_ctl_out(ctl, daemon: Daemon) -> None:
    """Every client slot held by sockets that never authenticate (another local program, by mistake or not): the
    TUI and the dock got in (their token is in the address: the oldest such socket gives way), `rtvc ctl` did not
    (it sent its token afterwards): "refused the connection (HTTP 503: too many clients)"."""
    from websockets.sync.client import connect

    held = []
    try:
        for _ in range(40):  # (control.max_clients is 32: the last ones are refused, 503)
            try:
                held.append(connect(f"ws://127.0.0.1:{daemon.port}/rpc", open_timeout=5))
            except Exception:
                break
        assert len(held) >= 30, len(held)
        code, out, err = ctl("status")
        assert code == 0 and out.startswith("voice '"), err
    finally:
        for ws in held:
            ws.close()


def test_an_error_names_the_method_once(ctl) -> None:
    code, _, err = ctl("call", "mute.set")
    assert code == 2 and "missing parameter 'on'" in err and err.count("mute.set:") == 1, err


def test_a_mistake_elsewhere_in_config_toml_does_not_keep_ctl_from_the_running_daemon(
    daemon: Daemon, rpc, tmp_path, monkeypatch, capsys
):
    """A value broken in [stream] (an edit meant for the next start) stopped `rtvc ctl`, `rtvc tui` and `rtvc token`
    with the config's error, --port or not, while the daemon ran on the file as it was: a mute shortcut did nothing
    (a review). They read [control] alone, its lines alone where the file is no TOML; a [control] that does not read
    takes --port."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(daemon.xdg))
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[control]\nport = {daemon.port}\n\n[stream]\nblock_ms = "twenty"\n')
    rpc.call("mute.set", on=False)
    assert main(["ctl", "--config", str(cfg), "mute", "on"]) == 0, capsys.readouterr()
    assert rpc.call("status.get")["control"]["mute"] is True
    assert main(["token", "--config", str(cfg)]) == 0
    assert f"127.0.0.1:{daemon.port}/dock?token=" in capsys.readouterr().out

    # a syntax error elsewhere (half-way through an edit): [control]'s lines read alone (it was refused, a review)
    cfg.write_text(f"[control]\nport = {daemon.port}\n\n[stream]\nblock_ms = 20.0 oops\n[audio\n")
    capsys.readouterr()
    assert main(["ctl", "--config", str(cfg), "mute", "on"]) == 0, capsys.readouterr()
    out, err = capsys.readouterr()
    assert "not valid TOML" in err and "rtvc read its [control] table alone" in err and "mute on" in out, (out, err)
    assert rpc.call("status.get")["control"]["mute"] is True

    cfg.write_text(f"[control]\nport = {daemon.port} oops\n")  # (no TOML there: the port cannot be read from it)
    capsys.readouterr()
    assert main(["ctl", "--config", str(cfg), "mute", "off"]) == 2
    err = capsys.readouterr().err
    assert "or give the daemon's port with --port" in err, err
    assert main(["ctl", "--config", str(cfg), "--port", str(daemon.port), "mute", "off"]) == 0
    out, err = capsys.readouterr()
    assert "rtvc takes the default control settings, with --port" in err and "mute off" in out, (out, err)
    assert rpc.call("status.get")["control"]["mute"] is False

    cfg.write_text('[control]\nport = "x"\n')  # ([control]'s own mistakes are still said)
    assert main(["ctl", "--config", str(cfg), "status"]) == 2
    assert "'control.port'" in capsys.readouterr().err


def test_a_token_renewed_a_moment_ago_is_waited_for(ctl, daemon: Daemon, capsys) -> None:
    """`rtvc token --new` then `rtvc ctl ...` at once was refused (the daemon looks at its token file once a second):
    a script that renews the token and goes on must work."""
    for _ in range(3):
        assert main(["token", "--new", "--config", str(daemon.config)]) == 0
        capsys.readouterr()
        t0 = time.monotonic()
        code, out, err = ctl("status")
        assert code == 0 and out.startswith("voice '"), err
        assert time.monotonic() - t0 < 4.0
    code, _, err = ctl("status", "--token", "0" * 43)  # (a wrong token given is said at once, as before)
    assert code == 2 and "refused the token given with --token" in err, err
