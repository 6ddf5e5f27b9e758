"""`rtvc serve` starting anew, in the same process, when PortAudio cannot go on.

PortAudio's JACK host API cannot let go of a server that died: stopping its streams waits ten minutes for a
callback that never comes, and restarting PortAudio waits on them too (or aborts the process). So a JACK server
restarted, or PipeWire restarted under pw-jack (`systemctl --user restart pipewire`, a common cure for a desktop's
sound trouble), left rtvc serve running without sound until the user restarted it. Now, once the server answers
again (rtvc.audio.switch), serve writes its state to a file, closes its clients (they reconnect: the TUI, the OBS
dock) and execs itself with the same command line: a new process image on the same PID, whose PortAudio is new.
The new serve reads the state back: the voice and its parameters, mute, the voice changer on or off, hear-myself,
push-to-talk mode, the noise gate, and the devices in use (by name: indices change). At most MAX_RESTARTS in
WINDOW_S, so that a device that wedges PortAudio at every start does not restart rtvc for ever.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rtvc.config import Config

log = logging.getLogger("rtvc")
RESUME_ENV = "RTVC_RESUME"  # the state file a restarted serve reads (and removes)
RESTARTS_ENV = "RTVC_RESTARTS"  # when the earlier restarts were (Unix times, comma-separated)
MAX_RESTARTS = 3
WINDOW_S = 600.0
BY = "rtvc restart"  # who the state's changes are from, in the events and the log


def recent_restarts(now: float | None = None) -> list[float]:
    """When this serve restarted itself within WINDOW_S."""
    now = time.time() if now is None else now
    times = []
    for part in os.environ.get(RESTARTS_ENV, "").split(","):
        try:
            t = float(part)
        except ValueError:
            continue
        if now - WINDOW_S <= t <= now:
            times.append(t)
    return times


def allowed() -> bool:
    return len(recent_restarts()) < MAX_RESTARTS


def snapshot(controller: Any, audio: Any, choice: Any) -> dict[str, Any]:
    """What the new serve takes back. `audio`: the AudioConfig in use (devices.select changes it), with the
    devices given by index named instead (`choice`: the devices in use)."""
    st = controller.state()
    by_role = {"input_device": choice.input, "output_device": choice.output, "monitor_device": choice.monitor}
    devices = {}
    for key, dev in by_role.items():
        given = getattr(audio, key)
        devices[key] = dev.name if isinstance(given, int) and dev is not None else given
    return {
        "profile": controller.profile,
        "params": st["params"],
        "voice_on": st["voice_on"],
        "mute": st["mute"],
        "ptt_mode": st["ptt"]["mode"],
        "monitor": st["monitor"],
        "gate": st["gate"],
        "audio": {**dataclasses.asdict(audio), **devices, "monitor": st["monitor"]},
    }


def exec_again(state: dict[str, Any]) -> None:
    """Replace this process with a new `rtvc serve` (same command line, same environment) that takes `state`
    back. Returns only when the exec failed (OSError, logged): the caller then stops as it would have."""
    fd, path = tempfile.mkstemp(prefix="rtvc-resume-", suffix=".json")  # (0600: the settings are the user's)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    times = [*recent_restarts(), time.time()]
    env = {**os.environ, RESUME_ENV: path, RESTARTS_ENV: ",".join(f"{t:.3f}" for t in times)}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, env)
    except OSError as e:
        Path(path).unlink(missing_ok=True)
        log.info("rtvc serve could not start anew (%s: %s): restart it", sys.executable, e.strerror or e)


def take() -> dict[str, Any] | None:
    """The state a restart left (its file removed; the variable too, so that nothing started later sees it);
    None at a plain start, or when the file cannot be read (said)."""
    path = os.environ.pop(RESUME_ENV, None)
    if not path:
        return None
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        log.info("restarted, but its state (%s) could not be read (%s): starting as configured", path, e)
        return None
    finally:
        Path(path).unlink(missing_ok=True)
    return state if isinstance(state, dict) else None


def config_for(cfg: Config, state: dict[str, Any]) -> Config:
    """`cfg` with the voice and the devices the restarted serve had."""
    fields = {f.name for f in dataclasses.fields(cfg.audio)}
    audio = dataclasses.replace(cfg.audio, **{k: v for k, v in state.get("audio", {}).items() if k in fields})
    voice = dataclasses.replace(cfg.voice, profile=state.get("profile") or cfg.voice.profile)
    return dataclasses.replace(cfg, audio=audio, voice=voice)


def apply(controller: Any, state: dict[str, Any]) -> None:
    """The live settings as they were (each a change from the voice's profile is an event and a log line)."""
    from rtvc.errors import RtvcError

    steps = (
        ("params", lambda: controller.set_params(state["params"], BY)),
        ("voice_on", lambda: controller.set_voice_on(state["voice_on"], BY)),
        ("mute", lambda: controller.set_mute(state["mute"], BY)),
        ("ptt_mode", lambda: controller.set_ptt_mode(state["ptt_mode"], BY)),
        ("gate", lambda: controller.set_gate(BY, **state["gate"])),
    )
    for key, step in steps:
        if key not in state:
            continue
        try:
            step()
        except (RtvcError, TypeError, KeyError) as e:  # (a profile edited meanwhile: its voice takes other params)
            log.info("restarted: %s not as it was (%s)", key, e)
