"""`rtvc service install|remove`: the systemd user unit that runs rtvc serve from each login on (rtvc.service).
systemd's own `systemd-analyze verify` reads the unit where it is installed; its ExecStart, read back as systemd
quotes it, is run and must serve; `systemctl` is a script here that records what it was asked (no user manager
runs in a container)."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon_harness import free_port

from rtvc.service import unit_text

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "{log}"
case "$*" in
  *show-environment*) {manager} ;;
esac
exit 0
"""


def fake_systemctl(tmp_path: Path, manager: bool) -> tuple[dict[str, str], Path]:
    """PATH with a `systemctl` first that logs its arguments; `manager`: whether its user manager answers."""
    bin_dir, log = tmp_path / "bin", tmp_path / "systemctl.log"
    bin_dir.mkdir()
    script = bin_dir / "systemctl"
    answer = "exit 0" if manager else 'echo "Failed to connect to bus: No medium found" >&2; exit 1'
    script.write_text(FAKE_SYSTEMCTL.format(log=log, manager=answer))
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    return env, log


def rtvc(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rtvc", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def exec_start(unit: str) -> list[str]:
    """ExecStart's command as systemd reads it (near enough: shlex for its quoting, then %% back to %, and $$ to $
    past the command's own path, which systemd takes as it is)."""
    line = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    words = [a.replace("%%", "%") for a in shlex.split(line.removeprefix("ExecStart="))]
    return words[:1] + [a.replace("$$", "$") for a in words[1:]]


def verify(unit: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """systemd's own reading of a unit file (Debian's systemd package), or None where it is not installed."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    return subprocess.run(["systemd-analyze", "verify", str(unit)], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(120)
def test_the_unit_systemd_accepts_runs_rtvc_serve_with_this_config(tmp_path):
    folder = tmp_path / "my voice 100% $HOME"  # (a space, a specifier and a variable for systemd to leave alone)
    folder.mkdir()
    port = free_port()
    (folder / "config.toml").write_text(f"[control]\nport = {port}\n")
    (folder / "profiles").symlink_to(Path(__file__).resolve().parent.parent / "profiles")
    env, log = fake_systemctl(tmp_path, manager=False)
    done = rtvc(env, folder, "service", "install")
    assert done.returncode == 0, done.stderr
    unit = tmp_path / "xdg" / "systemd" / "user" / "rtvc.service"
    assert f"wrote {unit}: rtvc serve with {folder / 'config.toml'}" in done.stdout
    assert "no systemd user manager answers (Failed to connect to bus: No medium found): where there is one, " \
        "`systemctl --user enable --now rtvc.service` starts it at each login" in done.stdout  # fmt: skip
    assert log.read_text() == "--user show-environment\n"  # (nothing enabled without a manager)
    text = unit.read_text()
    assert text == unit_text(sys.executable, folder / "config.toml", folder)
    if shutil.which("systemd-analyze"):  # (Debian's systemd package: systemd's own reading of the unit)
        checked = verify(unit, tmp_path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    command = exec_start(text)
    assert command == [sys.executable, "-m", "rtvc", "serve", "--config", str(folder / "config.toml")]
    workdir = next(ln for ln in text.splitlines() if ln.startswith("WorkingDirectory=")).split("=", 1)[1]
    assert workdir.replace("%%", "%") == str(folder)
    # as systemd would start it (no terminal; no JACK server to find: the virtual device where there is no card)
    serve_env = {**env, "JACK_NO_START_SERVER": "1", "JACK_DEFAULT_SERVER": "rtvc-service-test-none"}
    proc = subprocess.Popen(command, cwd=workdir.replace("%%", "%"), env=serve_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            status = rtvc(env, tmp_path, "ctl", "--port", str(port), "status")
            if status.returncode == 0:
                break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.5)
        assert status is not None and status.returncode == 0, status.stderr
        assert status.stdout.startswith("voice 'default' on"), status.stdout
    finally:
        proc.send_signal(signal.SIGTERM)  # (systemctl stop)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


def test_install_enables_and_starts_it_where_systemd_runs_and_remove_takes_it_away(tmp_path):
    env, log = fake_systemctl(tmp_path, manager=True)
    (tmp_path / "profiles").symlink_to(Path(__file__).resolve().parent.parent / "profiles")
    done = rtvc(env, tmp_path, "service", "install")
    assert done.returncode == 0, done.stderr
    unit = tmp_path / "xdg" / "systemd" / "user" / "rtvc.service"
    assert unit.is_file() and f"rtvc serve with the defaults in {tmp_path}" in done.stdout
    assert "enabled and (re)started: rtvc serve runs now and from each login" in done.stdout
    # (restart, not enable --now: a serve already running would keep the config it started with)
    assert log.read_text().splitlines() == [
        "--user show-environment", "--user daemon-reload", "--user enable rtvc.service", "--user restart rtvc.service"
    ]  # fmt: skip
    assert "--config" not in unit.read_text()  # (no config.toml here: serve's defaults, as rtvc serve here runs)
    log.unlink()
    gone = rtvc(env, tmp_path, "service", "remove")
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.splitlines() == ["stopped, and no longer started at login", f"removed {unit}"]
    assert not unit.exists()
    assert "--user disable --now rtvc.service" in log.read_text() and "--user daemon-reload" in log.read_text()
    again = rtvc(env, tmp_path, "service", "remove")
    assert again.returncode == 0 and f"no rtvc service to remove ({unit} absent)" in again.stdout


@pytest.mark.parametrize(
    "config, says",
    [
        ("[stream]\nblok_ms = 20\n", "unknown key 'stream.blok_ms' (did you mean 'block_ms'?"),
        ("", "profile 'default' not found"),  # (no profiles/ beside it: serve would stop at once)
    ],
)
def test_a_config_that_would_not_serve_is_refused_before_a_unit_is_written(tmp_path, config, says):
    (tmp_path / "config.toml").write_text(config)
    env, log = fake_systemctl(tmp_path, manager=True)
    done = rtvc(env, tmp_path, "service", "install")
    assert done.returncode == 2
    assert says in done.stderr
    assert not (tmp_path / "xdg" / "systemd").exists() and not log.exists()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze (Debian's systemd package) absent")
def test_systemd_reads_a_python_whose_path_has_a_dollar_a_percent_and_a_space(tmp_path):
    odd = tmp_path / "py $HOME 100% é"  # (a $ in the command's path was doubled, and systemd kept it doubled)
    odd.mkdir()
    (odd / "python").symlink_to(sys.executable)
    unit = tmp_path / "rtvc.service"
    unit.write_text(unit_text(str(odd / "python"), tmp_path / "a b" / "config.toml", tmp_path / "a b"))
    checked = verify(unit, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert exec_start(unit.read_text())[0] == str(odd / "python")


@pytest.mark.parametrize(
    "python, folder, says",
    [
        (sys.executable, "/tmp/x\nExecStartPre=/bin/touch /tmp/pwned\n#", "has a line break or control character"),
        (sys.executable, "/tmp/ends in a backslash\\", "has a backslash or white space at its end"),
        (sys.executable, "/tmp/ends in a space ", "has a backslash or white space at its end"),
        ("/opt/it's/python", "/tmp/ok", "has a quote or backslash, which systemd refuses in a program's path"),
    ],
)
def test_a_path_the_unit_cannot_hold_is_refused_not_written(python, folder, says):
    from rtvc.errors import RtvcError

    with pytest.raises(RtvcError, match=f"{says}: a systemd unit cannot name it"):
        unit_text(python, Path(folder) / "config.toml", Path(folder))


def test_remove_without_a_user_manager_takes_the_enabled_link_too(tmp_path):
    env, log = fake_systemctl(tmp_path, manager=False)
    units = tmp_path / "xdg" / "systemd" / "user"
    (units / "default.target.wants").mkdir(parents=True)
    (units / "rtvc.service").write_text("[Service]\nExecStart=/bin/true\n")
    (units / "default.target.wants" / "rtvc.service").symlink_to("../rtvc.service")  # (as `enable` leaves it)
    gone = rtvc(env, tmp_path, "service", "remove")
    assert gone.returncode == 0, gone.stderr
    assert not (units / "rtvc.service").exists()
    assert not (units / "default.target.wants" / "rtvc.service").is_symlink()  # (it was left dangling)
    assert "no systemd user manager answers" in gone.stdout and "systemctl --user stop rtvc.service" in gone.stdout
    assert "disable" not in log.read_text()  # (nothing to ask it)


def test_remove_takes_a_link_left_dangling_by_a_unit_deleted_by_hand(tmp_path):
    """The unit file deleted by hand after `enable`: remove said "no rtvc service to remove" and left the
    default.target.wants link, dangling."""
    env, _log = fake_systemctl(tmp_path, manager=True)
    units = tmp_path / "xdg" / "systemd" / "user"
    (units / "default.target.wants").mkdir(parents=True)
    link = units / "default.target.wants" / "rtvc.service"
    link.symlink_to("../rtvc.service")
    gone = rtvc(env, tmp_path, "service", "remove")
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.splitlines() == [
        f"no rtvc service to remove ({units / 'rtvc.service'} absent); removed the link {link} left to it"
    ]
    assert not link.is_symlink()
    again = rtvc(env, tmp_path, "service", "remove")
    assert again.stdout.splitlines() == [f"no rtvc service to remove ({units / 'rtvc.service'} absent)"]
    (units / "elsewhere.service").write_text("[Service]\n")  # (a link that leads to a unit is not rtvc's to take)
    link.symlink_to("../elsewhere.service")
    assert rtvc(env, tmp_path, "service", "remove").returncode == 0 and link.is_symlink()
