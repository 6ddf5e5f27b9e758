"""`rtvc service install|remove`: `rtvc serve` as a systemd user service, running from each login on.

The voice is then there whenever the desktop is: the OBS dock, `rtvc ctl` shortcuts and `rtvc tui` attach to it.
The unit runs this Python and this config file (its folder as the working directory: profiles/ beside it), after
the sound server (PipeWire, when there is one), restarted when it fails (a device that hung: exit 3), but not after
a mistake in the config (exit 2: a restart would only fail again; `journalctl --user -u rtvc` shows why).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rtvc.cli import EXIT_USER_ERROR
from rtvc.errors import RtvcError

UNIT = "rtvc.service"


def unit_path() -> Path:
    """$XDG_CONFIG_HOME/systemd/user/rtvc.service (~/.config when unset or relative), where systemd's user manager
    reads a user's own units."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "systemd" / "user" / UNIT


def quote(arg: str) -> str:
    """One ExecStart argument as systemd reads it: double-quoted, with its escapes (a backslash and a double quote
    escaped; % and $ doubled: systemd would expand them as specifiers and variables)."""
    text = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{text}"'


def unit_text(python: str, config: Path | None, workdir: Path) -> str:
    """The unit (WorkingDirectory= takes the rest of its line as the path, specifiers expanded: no quotes there)."""
    command = [python, "-m", "rtvc", "serve"] + (["--config", str(config)] if config is not None else [])
    return f"""\
# rtvc serve at each login (`rtvc service install` wrote this; `rtvc service remove` removes it)
[Unit]
Description=rtvc voice changer (rtvc serve)
After=pipewire.service pipewire-pulse.service wireplumber.service

[Service]
Type=simple
WorkingDirectory={str(workdir).replace("%", "%%")}
ExecStart={" ".join(quote(a) for a in command)}
Restart=on-failure
RestartSec=2
# a mistake in the config (exit {EXIT_USER_ERROR}) is not restarted: it would only fail again
RestartPreventExitStatus={EXIT_USER_ERROR}

[Install]
WantedBy=default.target
"""


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
        raise RtvcError(f"could not write {path}: {e.strerror or e}", "check that folder's owner and space") from None
    said = [f"wrote {path}: rtvc serve with " + (f"{config.resolve()}" if config else f"the defaults in {workdir}")]
    why = _manager()
    if why:
        return [*said, f"{why}: where there is one, `systemctl --user enable --now {UNIT}` starts it at each login"]
    for step in (("daemon-reload",), ("enable", "--now", UNIT)):
        code, out = _systemctl(*step)
        if code != 0:
            raise RtvcError(
                f"systemctl --user {' '.join(step)} failed: {out}",
                f"see `systemctl --user status {UNIT}`; the unit is written, `rtvc service remove` removes it",
            )
    return [
        *said,
        f"enabled and started: rtvc serve runs now and from each login (`systemctl --user status {UNIT}`, its log: "
        f"`journalctl --user -u {UNIT}`); stop it for now with `systemctl --user stop {UNIT}`",
    ]


def remove() -> list[str]:
    """Stop and disable the service where systemd runs, and delete the unit; what was done, a line each."""
    path, said = unit_path(), []
    if not path.is_file():
        return [f"no rtvc service to remove ({path} absent)"]
    managed = not _manager()
    if managed:
        code, out = _systemctl("disable", "--now", UNIT)
        if code != 0:
            raise RtvcError(f"systemctl --user disable --now {UNIT} failed: {out}", f"systemctl --user stop {UNIT}")
        said.append("stopped, and no longer started at login")
    try:
        path.unlink()
    except OSError as e:
        raise RtvcError(f"could not remove {path}: {e.strerror or e}", "remove it by hand") from None
    said.append(f"removed {path}")
    if managed:
        _systemctl("daemon-reload")
    return said
