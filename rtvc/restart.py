"""`rtvc serve` starting anew, in the same process, when PortAudio cannot go on.

PortAudio's JACK host API cannot let go of a server that died: stopping its streams waits ten minutes for a
callback that never comes, and restarting PortAudio waits on them too (or aborts the process). So a JACK server
restarted, or PipeWire restarted under pw-jack (`systemctl --user restart pipewire`, a common cure for a desktop's
sound trouble), left rtvc serve running without sound until the user restarted it. Now, once the server answers
again (rtvc.audio.switch), serve writes its state to a file, closes its clients (they reconnect: the TUI, the OBS
dock) and execs itself with the same command line: a new process image on the same PID, whose PortAudio is new.
The new serve reads the state back: the voice and its parameters, mute, the voice changer on or off, hear-myself,
push-to-talk mode, the noise gate, the devices in use (pinned: name, host API and place among devices of that name,
since indices change; a monitor already lost is left out) and the control port. At most MAX_RESTARTS in WINDOW_S,
so that a device that wedges PortAudio at every start does not restart rtvc for ever. SIGTERM, SIGINT and
SIGHUP are blocked from the last look at them to the exec; the new serve takes one that came meanwhile as soon as
it can.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rtvc.config import Config

log = logging.getLogger("rtvc")
RESUME_ENV = "RTVC_RESUME"  # the state file a restarted serve reads (and removes)
RESTARTS_ENV = "RTVC_RESTARTS"  # when the earlier restarts were (Unix times, comma-separated)
MAX_RESTARTS = 3
WINDOW_S = 600.0
BY = "rtvc restart"  # who the state's changes are from, in the events and the log
STOPS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


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
    """Whether serve may start anew now (asked at each wedge): where exec keeps the process (not on Windows)."""
    return refusal() == ""


def refusal() -> str:
    """Why serve may not start anew now, for its status and log; '' where it may."""
    if os.name != "posix":
        return "rtvc serve cannot start itself anew on this system"
    if len(recent_restarts()) >= MAX_RESTARTS:
        # (the bound: a JACK server in a crash loop must not make rtvc start anew for ever)
        return (
            f"rtvc serve did not start itself anew: it already did so {MAX_RESTARTS} times in {WINDOW_S / 60:g} minutes"
        )
    return ""


def snapshot(
    controller: Any,
    audio: Any,
    choice: Any,
    port: int,
    follow: Iterable[str] = (),
    config: dict | None = None,
    config_path: Path | None = None,
) -> dict[str, Any]:
    """What the new serve takes back. `audio`: the AudioConfig in use (devices.select changes it); `choice`: the
    devices in use, pinned (a monitor the engine lost is not: the new serve would wait for it); `port`: the
    control server's (kept where the config let the system choose it); `follow`: the roles that follow PipeWire's
    default devices (rtvc.audio.switch); `config`: the config file's tables this serve runs with (Config.raw):
    the new one reads the file again, and starts with these where it has an error now (edited meanwhile);
    `config_path`: that file, which the new one reads whether or not its command line names it (config_path())."""
    from rtvc.audio.devices import Pin, pin_device
    from rtvc.errors import DeviceError

    st = controller.state()
    engine = controller.engine
    lost_monitor = not engine.has_monitor_device and bool(engine.monitor_error)
    roles = {"input": choice.input, "output": choice.output, "monitor": None if lost_monitor else choice.monitor}
    pins, devices = {}, {}
    for role, dev in roles.items():
        if dev is None:
            continue
        try:
            pin = pin_device(dev)
        except DeviceError:  # (PortAudio unusable: the name is what there is)
            pin = Pin(dev.name, dev.host_api, 0)
        pins[role] = dataclasses.asdict(pin)
        devices[f"{role}_device"] = dev.name  # (in place of an index, which the new list does not keep)
    if lost_monitor:
        devices["monitor_device"] = ""
    return {
        **_controls(controller, st),
        "audio": {**dataclasses.asdict(audio), **devices, "monitor": st["monitor"]},
        "pins": pins,
        "port": port,
        "follow": sorted(follow),
        "config": config or {},
        "config_path": str(config_path.resolve()) if config_path is not None else None,
    }


def _controls(controller: Any, st: dict[str, Any]) -> dict[str, Any]:
    voice = {"profile": controller.profile, "params": st["params"]} if controller.profile is not None else {}
    return {
        **voice,  # (no voice plays: the new serve tries the configured one again)
        "voice_on": st["voice_on"],
        "mute": st["mute"],
        "ptt_mode": st["ptt"]["mode"],
        "monitor": st["monitor"],
        "gate": st["gate"],
    }


def devices_found(controller: Any, port: int, config: dict | None, config_path: Path | None) -> dict[str, Any]:
    """What a serve that ran on the virtual device for want of sound devices hands on when they have come (a sound
    server started after it, at login): its voice and settings; the new one chooses its devices as a start does."""
    path = str(config_path.resolve()) if config_path is not None else None
    state = {"port": port, "config": config or {}, "config_path": path, "devices_found": True}
    return with_controls(state, controller)


def with_controls(state: dict[str, Any], controller: Any) -> dict[str, Any]:
    """A restarted serve's `state` with its live settings as clients left them (it starts anew again before its
    devices came back: a voice selected, a mute set meanwhile were lost)."""
    st = controller.state()
    got = {**state, **_controls(controller, st), "audio": {**state.get("audio", {}), "monitor": st["monitor"]}}
    if st["loading"]:  # a voice asked for and still loading: the new serve loads it, with its profile's parameters
        log.info("voice '%s' was still loading: rtvc loads it when it has started anew", st["loading"])
        got["profile"] = st["loading"]
        got.pop("params", None)
    return got


def block_stops() -> None:
    """SIGTERM, SIGINT and SIGHUP held from here (this thread) to the exec: one that comes now stays pending, and the
    new serve, which unblocks them once its handlers are in, stops at once."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)


def unblock_stops() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)


def exec_again(state: dict[str, Any], caught: list[str]) -> None:
    """Replace this process with a new `rtvc serve` (same command line, same environment) that takes `state`
    back (call block_stops first). Returns only when that failed (logged), or when a stop signal was `caught`
    meanwhile (by another thread), the stop signals unblocked: the caller then stops as it would have."""
    path = ""
    try:
        fd, path = tempfile.mkstemp(prefix="rtvc-resume-", suffix=".json")  # (0600: the settings are the user's)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f)
        times = [*recent_restarts(), time.time()]
        env = {**os.environ, RESUME_ENV: path, RESTARTS_ENV: ",".join(f"{t:.3f}" for t in times)}
        _close_on_exec()
        from rtvc.audio import voice_mic

        kept = voice_mic.keep_claim_over_exec()  # (a second rtvc took it in the moment of the exec: a review)
        if kept is not None:
            env[voice_mic.CLAIM_FD_ENV] = str(kept)
        sys.stdout.flush()
        sys.stderr.flush()
        if caught:
            raise ValueError(f"{caught[0]} came: rtvc stops instead")
        os.execve(sys.executable, sys.orig_argv, env)
    except (OSError, TypeError, ValueError) as e:
        if path:
            Path(path).unlink(missing_ok=True)
        unblock_stops()
        log.info("rtvc serve could not start anew (%s): restart it", getattr(e, "strerror", None) or e)


def _close_on_exec() -> None:
    """Every descriptor but the standard three closed by the exec: libjack opens its sockets without
    close-on-exec, and each restart would keep the last one's."""
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # (the listing's own descriptor, closed by now)


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


# what rtvc.cli says when config.toml had an error at a restart and the serve before's tables were taken instead
config_error = ""


def pending() -> bool:
    """Whether this process is a serve that started anew (its state not taken yet)."""
    return bool(os.environ.get(RESUME_ENV))


def pending_state() -> dict[str, Any] | None:
    """The state a restart left, read without taking it (take() does); None where this serve did not start anew or
    it cannot be read."""
    try:
        state = json.loads(Path(os.environ[RESUME_ENV]).read_text())
    except (KeyError, OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def config_kept() -> dict[str, Any] | None:
    """The config file's tables the serve before this one ran with (snapshot's "config"), read from the state a
    restart left without taking it; None where there are none."""
    state = pending_state()
    raw = state.get("config") if state is not None else None
    return raw if isinstance(raw, dict) else None


def config_path() -> Path | None:
    """The config file the serve before this one ran with, where it found it by itself (./config.toml: gone by the
    restart, this serve took the defaults and said the kept port differed from "the file"); None where none."""
    state = pending_state()
    path = state.get("config_path") if state is not None else None
    return Path(path) if isinstance(path, str) and path else None


def discard() -> None:
    """The state of a restart that ends here (the new serve could not start: said by the caller): its file removed."""
    path = os.environ.pop(RESUME_ENV, None)
    if path:
        Path(path).unlink(missing_ok=True)


def config_for(cfg: Config, state: dict[str, Any]) -> Config:
    """`cfg` with the voice and the devices the restarted serve had."""
    fields = {f.name for f in dataclasses.fields(cfg.audio)}
    audio = dataclasses.replace(cfg.audio, **{k: v for k, v in state.get("audio", {}).items() if k in fields})
    voice = dataclasses.replace(cfg.voice, profile=state.get("profile") or cfg.voice.profile)
    control = cfg.control
    if isinstance(state.get("port"), int):  # (the port clients know, whatever config.toml says now: the next start)
        control = dataclasses.replace(control, port=state["port"])
    return dataclasses.replace(cfg, audio=audio, voice=voice, control=control)


def kept_over_the_file(kept: Config, configured: Config) -> list[str]:
    """The settings a restarted serve keeps (config_for) where config.toml now says otherwise, a phrase each: its
    log says them, since the settings it printed above are the file's."""
    return [
        f"{where} = {now!r} (the file: {said!r})"
        for where, now, said in (
            ("audio.samplerate", kept.audio.samplerate, configured.audio.samplerate),
            ("audio.period", kept.audio.period, configured.audio.period),
            ("control.port", kept.control.port, configured.control.port),
        )
        if now != said
    ]


def pinned(state: dict[str, Any]) -> dict[str, Any]:
    """The devices in use at the restart, found again in the device list as it is now (rtvc.audio.devices.Pin);
    DeviceNotFound for one that is not there (yet)."""
    from rtvc.audio.devices import Pin, find_pinned

    return {role: find_pinned(Pin(**pin), role) for role, pin in state.get("pins", {}).items()}


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
