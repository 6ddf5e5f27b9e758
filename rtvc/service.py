"""`rtvc service install|remove`: `rtvc serve` as a systemd user service, running from each login on.

The voice is then there whenever the desktop is: the OBS dock, `rtvc ctl` shortcuts and `rtvc tui` attach to it.
The unit runs this Python and this config file (its folder as the working directory: profiles/ beside it), after
the sound server (PipeWire, when there is one), and starts it again 5 s after it stops with an error, for as long
as it takes: at login the devices may not be there yet (a JACK server started later, a headset plugged in later),
and a mistake in the config is taken once it is mended (`journalctl --user -u rtvc` shows each try's reason).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from rtvc.errors import RtvcError

UNIT = "rtvc.service"
RETRY_S = 5  # between tries after an error (systemd's default start limit never trips at this pace: it is off)


def unit_path() -> Path:
    """$XDG_CONFIG_HOME/systemd/user/rtvc.service (~/.config when unset or relative), where systemd's user manager
    reads a user's own units."""
    from rtvc.config import user_config_dir

    return user_config_dir() / "systemd" / "user" / UNIT


def quote(arg: str, command: bool = False) -> str:
    """One ExecStart word as systemd reads it: double-quoted, a backslash and a double quote escaped, % doubled (a
    specifier otherwise), and $ doubled (a variable otherwise) except in the command's own path, which systemd
    takes as it is (a doubled one stayed doubled there)."""
    text = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{text if command else text.replace("$", "$$")}"'


def check_path(path: str, what: str, command: bool = False) -> None:
    """Refuse a path the unit cannot hold: a line break or control character (it would end the line: the rest of
    a folder's name read as settings of its own), a name ending in a backslash (the line goes on into the next) or
    in white space (systemd strips it: another folder), and for the command, the characters systemd refuses in a
    program's name."""
    bad = [c for c in path if ord(c) < 32 or c == "\x7f"]
    ends = path != path.rstrip() or path.endswith("\\")
    named = command and any(c in path for c in "\"\\'")
    if bad or ends or named:
        why = (
            "a line break or control character"
            if bad
            else "a backslash or white space at its end"
            if ends
            else "a quote or backslash, which systemd refuses in a program's path"
        )
        raise RtvcError(
            f"{what} {path!r} has {why}: a systemd unit cannot name it", "move it to a folder whose name has none"
        )


def unit_text(python: str, config: Path | None, workdir: Path) -> str:
    """The unit (WorkingDirectory= takes the rest of its line as the path, specifiers expanded: no quotes there)."""
    check_path(python, "this Python", command=True)
    check_path(str(workdir), "the folder")
    if config is not None:
        check_path(str(config), "the config file")
    command = [python, "-m", "rtvc", "serve"] + (["--config", str(config)] if config is not None else [])
    words = [quote(command[0], command=True)] + [quote(a) for a in command[1:]]
    return f"""\
# rtvc serve at each login (`rtvc service install` wrote this; `rtvc service remove` removes it)
[Unit]
Description=rtvc voice changer (rtvc serve)
After=pipewire.service pipewire-pulse.service wireplumber.service
# tried again for as long as it takes (devices not there yet at login; a config mistake, once mended)
StartLimitIntervalSec=0

[Service]
Type=simple
WorkingDirectory={str(workdir).replace("%", "%%")}
ExecStart={" ".join(words)}
Restart=on-failure
RestartSec={RETRY_S}

[Install]
WantedBy=default.target
"""


def unit_command(text: str) -> list[str]:
    """A unit's ExecStart as systemd reads it (the quoting `quote` writes undone); [] where it has none it can read."""
    line = next((ln for ln in text.splitlines() if ln.startswith("ExecStart=")), "")
    try:
        words = [w.replace("%%", "%") for w in shlex.split(line.removeprefix("ExecStart="))]
    except ValueError:  # (an unclosed quote: a unit edited by hand)
        return []
    return words[:1] + [w.replace("$$", "$") for w in words[1:]]


def _systemctl(*args: str) -> tuple[int, str] | None:
    """`systemctl --user ARGS`: (exit status, what it said), or None where there is no systemctl."""
    found = shutil.which("systemctl")
    if found is None:
        return None
    try:
        done = subprocess.run([found, "--user", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 1, str(e)
    return done.returncode, (done.stderr.strip() or done.stdout.strip())


def _manager() -> str:
    """'' where a systemd user manager answers, else why not (for the line that says what to do instead)."""
    got = _systemctl("show-environment")
    if got is None:
        return "no systemctl on this machine"
    code, said = got
    return "" if code == 0 else f"no systemd user manager answers ({said.splitlines()[-1] if said else code})"


def install(config: Path | None) -> list[str]:
    """Write the unit (for `config`, the file rtvc read, or none: the working directory's defaults) and, where a
    systemd user manager runs, enable and start it; what was done, a line each."""
    path = unit_path()
    workdir = config.resolve().parent if config is not None else Path.cwd()
    text = unit_text(sys.executable, config.resolve() if config is not None else None, workdir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as e:
        raise RtvcError(
            f"could not write {path}: {e.strerror or e} ({e.filename or path})", "check that folder's owner and space"
        ) from None
    said = [f"wrote {path}: rtvc serve with " + (f"{config.resolve()}" if config else f"the defaults in {workdir}")]
    why = _manager()
    if why:
        return [*said, f"{why}: where there is one, `systemctl --user enable --now {UNIT}` starts it at each login"]
    # (restart: `enable --now` leaves a serve that runs as it is, with the config it started with)
    for step in (("daemon-reload",), ("enable", UNIT), ("restart", UNIT)):
        code, out = _systemctl(*step)
        if code != 0:
            raise RtvcError(
                f"systemctl --user {' '.join(step)} failed: {out}",
                f"see `systemctl --user status {UNIT}`; the unit is written, `rtvc service remove` removes it",
            )
    return [
        *said,
        f"enabled and (re)started: rtvc serve runs now and from each login (`systemctl --user status {UNIT}`, its log: "
        f"`journalctl --user -u {UNIT}`); stop it for now with `systemctl --user stop {UNIT}`",
    ]


def remove() -> list[str]:
    """Stop and disable the service where systemd runs, and delete the unit; what was done, a line each."""
    path, said = unit_path(), []
    wanted = path.parent / "default.target.wants" / UNIT
    if not path.is_file():
        if not (wanted.is_symlink() and not wanted.exists()):
            return [f"no rtvc service to remove ({path} absent)"]
        # the unit deleted by hand after `enable`: its link stays behind, starts nothing, and systemd warns of it
        try:
            wanted.unlink()
        except OSError as e:
            raise RtvcError(f"could not remove {wanted}: {e.strerror or e}", "remove it by hand") from None
        return [f"no rtvc service to remove ({path} absent); removed the link {wanted} left to it"]
    why = _manager()
    managed = not why
    if managed:
        code, out = _systemctl("disable", "--now", UNIT)
        if code != 0:
            raise RtvcError(f"systemctl --user disable --now {UNIT} failed: {out}", f"systemctl --user stop {UNIT}")
        said.append("stopped, and no longer started at login")
    # without a manager to ask, the link `enable` made goes too (else a dangling one stays; it would start nothing)
    try:
        path.unlink()
        if not managed and wanted.is_symlink():
            wanted.unlink()
    except OSError as e:
        raise RtvcError(f"could not remove {e.filename or path}: {e.strerror or e}", "remove it by hand") from None
    said.append(f"removed {path}")
    if managed:
        _systemctl("daemon-reload")
    else:
        said.append(
            f"{why}: a serve that a user manager started (another login of yours) runs until it stops or "
            f"`systemctl --user stop {UNIT}` there"
        )
    return said
