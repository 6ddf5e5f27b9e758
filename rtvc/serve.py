"""`rtvc serve`: the headless daemon. Engine + sound devices + controller + control server, until a signal.

Real sound cards, or (`--virtual`, or when there are none) the virtual device playing a clip in a loop on
the audio clock. Every control change, whoever made it, is logged as one line (`mute on (by client 3)`);
the engine's own state is polled four times a second so a stalled or failed device becomes an event.
SIGTERM, SIGINT and SIGHUP stop the devices first, then the engine, then tell the clients and close the server.
The token is never logged: `rtvc token` prints it.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtvc import restart
from rtvc.audio import devices, voice_mic
from rtvc.audio.io import DeviceChoice, DeviceStreams, StartHung, choose_devices
from rtvc.audio.jack_probe import GONE, WITHOUT, jack_server
from rtvc.audio.switch import DeviceSwitcher, describe_follow, following, left_to_default
from rtvc.config import AudioConfig, Config, ObsConfig, format_config, read_obs
from rtvc.control.auth import connect_host, load_or_create_token, token_path
from rtvc.control.controller import Controller, Superseded
from rtvc.control.obs import ObsLink, ObsSettings, renamed
from rtvc.control.scenes import SceneVoices
from rtvc.control.server import ControlServer
from rtvc.engine import Engine
from rtvc.errors import DeviceError, RtvcError
from rtvc.logtext import Lines, LogFormatter
from rtvc.priority import AWAITING_CALLBACKS
from rtvc.profiles import load_profile, profile_name, profile_names, profile_path, unusable, voice_kinds
from rtvc.run import (
    EXIT_DEVICE_HUNG,
    VIRTUAL_PERIOD,
    build_engine,
    no_voice_engine,
    profiles_dir,
    quiet_hung_terminal,
    report,
    stop_signals,
)
from rtvc.voices import VOICES
from rtvc.wavio import bundled_speech, load_mono

POLL_S = 0.25  # engine state -> events, four times a second
log = logging.getLogger("rtvc")


@dataclass
class ServeOptions:
    virtual: bool = False  # the virtual device even when a sound card exists
    clip: Path | None = None  # what the virtual device plays, in a loop (default: the bundled speech clip)


class LoopingDevice:
    """The daemon's virtual device: the clip as the microphone, over and over, paced on the audio clock
    (absolute deadlines, no drift). The output is not kept: the levels and the clients' meters show it."""

    def __init__(self, engine: Engine, clip: np.ndarray, period: int):
        self.engine = engine
        self.period = period
        n = -(-len(clip) // period) * period  # whole periods: no callback straddles the loop point
        self.source = np.zeros(n, dtype=np.float32)
        self.source[: len(clip)] = clip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtvc-virtual-device", daemon=True)

    def start(self) -> None:
        self.engine.set_device(0, 0, separate_streams=False)
        self.engine.prepare(self.period)
        self._thread.start()

    def stop(self) -> bool:
        self._stop.set()
        self._thread.join(5)
        return not self._thread.is_alive()

    def _run(self) -> None:
        sr, p, n = self.engine.samplerate, self.period, len(self.source)
        out = np.zeros((p, 1), dtype=np.float32)
        t0, k = time.perf_counter(), 0
        while not self._stop.is_set():
            delay = t0 + (k + 1) * p / sr - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pos = (k * p) % n
            self.engine.on_duplex(self.source[pos : pos + p], out, p, None)
            k += 1


def _onoff(v: bool) -> str:
    return "on" if v else "off"


def engine_words(st) -> str:
    """The engine's detail for the log, with a lost monitor device (the engine runs on without it)."""
    lost = st.monitor_device["error"]
    return "; ".join(w for w in (st.detail, f"monitor: {lost}" if lost else "") if w)


def describe_change(event: dict[str, Any], engine_detail: str = "") -> str:
    """One log line for one state event."""
    st, parts = event["state"], []
    for key in event["changed"]:
        if key == "mute":
            parts.append(f"mute {_onoff(st['mute'])}")
        elif key == "gate":
            g = st["gate"]
            parts.append(
                f"noise gate {_onoff(g['on'])}, opens at {g['threshold_db']:g} dBFS, holds {g['hold_ms']:g} ms"
            )
        elif key == "voice_on":
            parts.append(f"voice changer {_onoff(st['voice_on'])}")
        elif key == "monitor":
            parts.append(f"monitor {_onoff(st['monitor'])}")
        elif key == "ptt":
            parts.append(f"push-to-talk mode {_onoff(st['ptt']['mode'])}, {st['ptt']['held']} holding")
        elif key == "params":
            parts.append("params " + " ".join(f"{k}={v}" for k, v in st["params"].items()))
        elif key == "loading" and st["loading"]:
            parts.append(f"loading voice '{st['loading']}'")
        elif key in st.get("links", {}) and event.get("warned"):  # (each said as it was found, above)
            n = len(st["links"][key].get("warnings", []))
            parts.append(
                f"{key.upper()}: {n} problem(s) with its settings now" if n else f"{key.upper()}: no problem now"
            )
        elif key in st.get("links", {}):
            link = st["links"][key]
            parts.append(f"{key.upper()} {link['state']}" + (f": {link['detail']}" if link["detail"] else ""))
        elif key == "profile":
            parts.append(f"voice '{st['profile']}'")
        elif key == "no_voice" and st.get("no_voice") and "profile" not in event["changed"]:
            parts.append(f"still no voice: {st['no_voice']}")
        elif key == "devices":
            parts.append("sound devices switched")
        elif key == "routing":
            routing = event.get("routing", {})
            said = [f"{p} connected to {q} again" for p, q in routing.get("restored", [])]
            said += [f"{p} no longer waits for {q} (connected elsewhere)" for p, q in routing.get("dropped", [])]
            if said:
                parts.append("JACK: " + ", ".join(said))
        # (with "loading": a load that failed on its files marks its profile; the line says it did not load)
        elif key == "profiles" and "loading" not in event["changed"]:
            files = event.get("profiles", {})
            said = [f"{how} {', '.join(files[how])}" for how in ("added", "removed", "edited") if files.get(how)]
            if files.get("model_files"):
                said.append(f"model files put in place or moved away for {', '.join(files['model_files'])}")
            parts.append("profiles folder: " + ("; ".join(said) or "changed"))
        elif key == "engine":
            parts.append(f"engine {st['engine']}" + (f": {engine_detail}" if engine_detail else ""))
    if event.get("error"):
        parts.append(event["error"])
    silent = ", output silent" if st["silent"] and set(event["changed"]) & {"mute", "ptt"} else ""
    return f"{', '.join(parts) or '/'.join(event['changed'])}{silent} (by {event['by']})"


def unknown_scene_profiles(cfg: Config) -> list[str]:
    """[obs.scenes] entries whose profile has no file now, or one that cannot load (a value out of range, its
    model files missing): said at start, not first when the scene comes up on stream (not an error: the profile
    may be saved or mended later, and selecting it then works)."""
    folder = profiles_dir(cfg)
    there = profile_names(folder)
    said = []
    for scene, name in cfg.obs.scenes.items():
        path = profile_path(name, folder)
        if not path.is_file():
            near = difflib.get_close_matches(name, there, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            said.append(
                f"[obs.scenes] {scene!r} = {name!r}: no such profile ({path}); {hint}profiles: "
                f"{', '.join(there) or 'none'}"
            )
            continue
        try:
            why = unusable(load_profile(str(path), folder))
        except RtvcError as e:
            why = str(e)
        if why:
            said.append(f"[obs.scenes] {scene!r} = {name!r}: the profile cannot load now: {why}")
    return said


def _obs_keys_set(cfg: Config) -> list[str]:
    """The [obs] settings config.toml sets (but enabled)."""
    return [k for k, src in cfg.sources.items() if k.startswith("obs.") and k != "obs.enabled" and src != "default"]


def start_obs_link(cfg: Config, controller: Controller) -> ObsLink | None:
    """With [obs] enabled: follow OBS's program scene; a scene mapped in [obs.scenes] selects its voice."""
    if not cfg.obs.enabled:
        keys = _obs_keys_set(cfg) if cfg.sources.get("obs.enabled", "default") == "default" else []
        if keys:  # (a link set up but never switched on, not one switched off: silence looked like a broken link)
            why = f"[obs] sets {', '.join(keys)} but not enabled = true: rtvc does not connect to OBS"
            log.warning("%s", why)
            controller.set_link("obs", "stopped", f"{why} (set enabled = true under [obs], then restart rtvc serve)")
        return None
    scenes = dict(cfg.obs.scenes)
    profile_problems = unknown_scene_profiles(cfg)
    for problem in profile_problems:
        log.warning("%s", problem)
    if cfg.obs.port == cfg.control.port and cfg.obs.host in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "[obs] port = %d is rtvc's own control port (control.port), not OBS's: set port under [obs] to the one in "
            "OBS's Tools > WebSocket Server Settings (4455 unless changed there)",
            cfg.obs.port,
        )

    scene_of: dict[str, str] = {}  # profile -> the scene that asked for it last (said where its load fails)

    def select(profile: str, intent: int | None) -> None:
        scene = f" for OBS scene {scene_of[profile]!r}" if profile in scene_of else ""
        try:
            controller.select_voice(profile, "obs", scene, intent=intent)
        except Superseded as e:  # (a client selected another voice after the cut: it plays)
            log.info("%s", str(e).replace("was not loaded", f"{scene} was not loaded", 1))
        except RtvcError:
            pass  # the controller's event carries the error; the serve log prints it

    # a model loads for seconds: not on the link's thread, which must keep reading OBS; the latest scene wins, and
    # a cut wins over a client's select made before it (Controller.intend)
    folder = profiles_dir(cfg)
    voices = SceneVoices(
        lambda: controller.upcoming, select, lambda p: profile_name(p, folder), lambda p: controller.intend(p, "obs")
    )

    from_file = dict(scenes)  # [obs.scenes] as config.toml had it last: `scenes` is it with OBS's renames since

    def on_scene(scene: str) -> None:
        now = obs_now()  # ([obs.scenes] edited while serve runs: taken at the next cut, as a mended password is)
        if now is not None and dict(now.scenes) != from_file:  # (the file's own table: a rename in OBS is no edit)
            edited = [name for name, profile in now.scenes.items() if from_file.get(name) != profile]
            with warning:  # (profiles_changed reads them on serve's thread)
                from_file.clear()
                from_file.update(now.scenes)
                scenes.clear()
                # (a scene renamed in OBS keeps its voice, as said; the entries edited name OBS's scenes as they are)
                scenes.update(renamed(from_file, link.renames, edited))
                profile_problems[:] = unknown_scene_profiles(dataclasses.replace(cfg, obs=now))
            log.info("[obs.scenes] read again from %s: %d scene(s) mapped", cfg.path, len(scenes))
            for problem in profile_problems:
                log.warning("%s", problem)
            link.check_scenes()  # (a scene name mistyped in the edit: said now, not at the next connection)
        profile = scenes.get(scene)
        log.info("OBS program scene %r%s", scene, f": voice '{profile}'" if profile else " ([obs.scenes] maps none)")
        if profile:
            scene_of[profile] = scene
            voices.request(profile)

    settings = ObsSettings(True, cfg.obs.host, cfg.obs.port, cfg.obs.password, scenes)

    said_unread = [""]

    def reread() -> ObsSettings | str | None:  # (a password mended in config.toml after "auth failed": taken at once)
        o = obs_now()
        if o is None:  # (why, shown with the link's state until the file reads: the log alone went unseen)
            return f"config.toml's [obs] not read again: {said_unread[0]}" if said_unread[0] else None
        return ObsSettings(o.enabled, o.host, o.port, o.password, {})

    def obs_now() -> ObsConfig | None:
        """[obs] as config.toml has it now: that table alone (the rest of the file, and flags, are not its)."""
        if cfg.path is None:
            return None
        try:
            found = read_obs(cfg.path)  # (its scenes' paths from the file's folder: a relative one went astray)
            said_unread[0] = ""
            return found
        except (RtvcError, AttributeError) as e:  # (AttributeError: an "obs" that is no table)
            if str(e) != said_unread[0]:  # (once per new reason: it is asked before each try)
                said_unread[0] = str(e)
                log.warning("OBS link: [obs] in %s not read again (%s): the settings in use stay", cfg.path, e)
            return None

    warning = threading.RLock()  # (warn runs on the link's thread, and on serve's after a change in profiles/)

    def warn() -> None:
        """[obs.scenes]'s problems, on the dock and the TUI (they were in the log alone): its profiles missing or
        unloadable, scenes renamed in OBS since config.toml named them, names OBS has no scene of."""
        with warning:
            said = list(profile_problems)
            for was, now in list(link.renames.items()):  # (a renamed scene removed since: forgotten, obs.py)
                if was in from_file and now not in from_file:
                    said.append(
                        f"OBS scene {was!r} renamed {now!r}: its voice '{from_file[was]}' follows it until rtvc"
                        " restarts; rename it in [obs.scenes] in config.toml"
                    )
            controller.set_link_warnings("obs", said + link.missing_scenes())

    def profiles_changed() -> None:
        """A scene's profile saved, mended, broken or removed since: its problem said or gone (a profile saved after
        the start stayed "no such profile" on the dock). Read here; said on the link's thread, which owns the scene
        tables."""
        with warning:
            table = dataclasses.replace(cfg.obs, scenes=dict(from_file))
        now = unknown_scene_profiles(dataclasses.replace(cfg, obs=table))

        def take() -> None:
            if now != profile_problems:
                for problem in set(now) - set(profile_problems):
                    log.warning("%s", problem)
                profile_problems[:] = now
                warn()

        link.call_soon(take)

    link = ObsLink(
        settings, on_scene, lambda state, detail: controller.set_link("obs", state, detail), reread, on_check=warn
    )
    warn()
    controller.profiles_watchers.append(profiles_changed)
    link.start()
    return link


def preload_voices(cfg: Config) -> None:
    """Load what the profiles' voices need (torch for RVC) before audio starts: loading it later, when a
    client selects such a voice, would stop the audio worker for the time a native library takes to load."""
    usable, not_now = voice_kinds(profiles_dir(cfg))
    for kind, names in not_now.items():  # (the bundled RVC example without its files loaded torch for every serve)
        if kind not in usable and getattr(VOICES.get(kind), "preload", None) is not None:
            log.info(
                "profiles %s use the '%s' voice but cannot load now (voices.list says why): its runtime is not"
                " loaded now; it loads, giving way to the audio, once such a profile can load and is selected",
                ", ".join(names),
                kind,
            )
    for kind, names in usable.items():
        preload = getattr(VOICES.get(kind), "preload", None)
        if preload is None:
            continue
        t0 = time.monotonic()
        try:
            preload()
        except RtvcError as e:  # said now; selecting such a profile gives the same error
            log.info("profiles %s need the '%s' voice, which cannot load: %s", ", ".join(names), kind, e)
            continue
        log.info("loaded the '%s' voice's runtime for %s in %.1f s", kind, ", ".join(names), time.monotonic() - t0)


def start_engine(cfg: Config) -> tuple[Engine, str]:
    """serve's engine on the configured voice; where that profile does not load (its model files moved, a value out
    of range, torch missing), an engine with no voice (silence out) and why: the daemon comes up, so the TUI, the dock
    and `rtvc ctl select` can pick another voice or load this one once it is mended. Its stream settings wrong: no
    voice would run, ConfigError as before."""
    try:
        return build_engine(cfg), ""
    except RtvcError as e:
        engine = no_voice_engine(cfg)  # (raises where it is the stream settings, not the voice: said as they are)
        start = profile_name(cfg.voice.profile, profiles_dir(cfg))
        why = f"voice '{start}' (voice.profile) did not load: {e}"
        log.info(
            "%s. rtvc serves with no voice (silence out) until one is selected: the TUI's voice list, the OBS dock, "
            "or `rtvc ctl select NAME`; it loads '%s' by itself once its profile or model files have changed",
            why,
            start,
        )
        return engine, why


def resumed_engine(cfg: Config, state: dict[str, Any]) -> tuple[Engine, str]:
    """A restarted serve's engine, on the voice it had; on the configured one when that no longer loads (its
    profile removed or broken meanwhile: said); with no voice where neither loads (start_engine)."""
    if not state.get("profile"):  # (no voice played before the restart: the configured one is tried, once)
        state.pop("params", None)
        return start_engine(restart.config_for(cfg, state))
    try:
        return build_engine(restart.config_for(cfg, state)), ""
    except RtvcError as e:
        log.info("restarted: voice '%s' does not load now (%s); the configured one instead", state["profile"], e)
        state.pop("profile", None)
        state.pop("params", None)  # (the other voice's)
        return start_engine(restart.config_for(cfg, state))  # (hear-myself as it was)


# why a serve not asked for the virtual device plays it, and the fix (a user service started before the sound server)
NO_CARD = (
    "rtvc serve found no sound devices when it started (no sound card, or the sound server was not running yet): it "
    "plays the virtual device, heard by no one, and {then} (`rtvc devices` lists them)"
)
NO_CARD_AT_START = NO_CARD.format(then="starts anew on your devices once they are there")
RESUME_DEVICES_S = 15.0  # how long a restarted serve waits for its devices as they were (a sound server starting)
LOOK_AGAIN_S = 2.0  # then how often it looks for any of them (after a minute, a look that finds the system's sound
# devices unchanged reads no device list: rtvc.audio.devices.Rereads)


def virtual_mic_resumed(cfg: Config, stop: threading.Event) -> tuple[Config, str] | None:
    """A serve started anew with the virtual microphone (PipeWire restarted): it is ready once PipeWire and its
    session manager are back. It ended serve where they were not within RESUME_DEVICES_S (a review: PipeWire slow to
    come back, or a log-out's order); a restart must not end rtvc, so it is looked for every LOOK_AGAIN_S after
    that, each new reason said, until `stop` (None then). The control port opens once it is ready (`rtvc ctl` says
    a serve is starting meanwhile, not to start one)."""
    told = ""
    patience = RESUME_DEVICES_S
    while True:
        try:
            return voice_mic.apply(cfg, patience_s=patience, play=True)
        except DeviceError as e:
            if str(e) != told:
                log.info(
                    "restarted: the virtual microphone is not ready (%s); rtvc looks for it every %g s (SIGTERM or "
                    "Ctrl-C stops it)", e, LOOK_AGAIN_S,
                )  # fmt: skip
                told = str(e)
        patience = 0.0
        if stop.wait(LOOK_AGAIN_S):
            return None


# devices_again's answer where the JACK server was started again meanwhile: only a new process reaches it
START_ANEW = "start anew"


def jack_server_now() -> str:
    """Where this process's PortAudio runs on JACK: whether the server it connected to still runs
    (rtvc.audio.jack_probe: ANSWERS; GONE; WITHOUT: another server runs, started since); "" where it has no JACK."""
    from rtvc.audio import jack_links

    try:
        if not any("JACK" in a["name"] for a in devices.portaudio().query_hostapis()):
            return ""
    except Exception:  # (PortAudio unusable: nothing to restart it for)
        return ""
    name = jack_links.own_name()
    if name is None:
        return ""
    said = jack_server(client=name, not_client=(voice_mic.LABEL,))
    if said in (GONE, WITHOUT):  # (asked twice: one failed open of a client is no server gone)
        time.sleep(0.5)
        said = jack_server(client=name, not_client=(voice_mic.LABEL,))
    return said


def devices_again(
    cfg: Config,
    configured: Config,
    state: dict[str, Any],
    engine: Engine,
    stop: threading.Event,
    why: Callable[[str], None] = lambda _: None,
    took: list[str] | None = None,
) -> tuple[AudioConfig, DeviceChoice, DeviceStreams] | str | None:
    """A restarted serve's devices, opened: they may come a moment after the server (WirePlumber makes
    PipeWire's), so the list is read again until they are there, for up to RESUME_DEVICES_S. Then without the
    monitor (a Bluetooth headset takes longer), then the `configured` ones. A restart must not end rtvc: when
    none opens, all are looked for again every LOOK_AGAIN_S, after a minute only when the system's sound devices
    changed or every devices.READ_LATER_S (each look reads PortAudio's list again), said, and again
    whenever the reason changes, until one way opens or `stop` is set (None then). It ended serve after 15 s: a
    USB microphone not plugged back in, a server started again at another rate, and the voice and settings lost.
    START_ANEW where PortAudio runs on a JACK server that is gone and another one runs (started again at the right
    rate, say): reading the device list again then aborted the process (PortAudio's JACK host API), so serve starts
    anew instead, as it did for the first server. While the server is gone the list is not read again. `why` is
    told each new reason none opens (the control API shows it meanwhile). `took` is given the way that opened
    ("as they were", "without the monitor", "as configured")."""
    pins = state.get("pins", {})
    ways = [("as they were", cfg.audio, pins)]
    if cfg.audio.monitor_device != "":
        alone = {role: pin for role, pin in pins.items() if role != "monitor"}
        ways.append(("without the monitor", dataclasses.replace(cfg.audio, monitor_device=""), alone))
    ways.append(("as configured", configured.audio, {}))
    deadline, last, said, told = time.monotonic() + RESUME_DEVICES_S, "", "", ""
    rereads: devices.Rereads | None = None  # (past the deadline: whether a look reads the device list again)
    gone = False  # the JACK server PortAudio runs on is gone: its device list is stale, nothing to try
    while not stop.is_set():
        late = time.monotonic() > deadline
        failed: list[tuple[str, str]] = []  # (how, why) of each way tried in this round
        for n, (how, audio, pinned) in enumerate(ways):
            if gone or (n and not late):
                break  # (the first way only, until the deadline: the server may not list them yet)
            try:
                choice = choose_devices(audio, restart.pinned({"pins": pinned}))
                streams = DeviceStreams(choice, engine, audio.samplerate, audio.period)
                choice = streams.choice  # (the streams' channels: rtvc.audio.io)
            except DeviceError as e:
                failed.append((how, e.what))
                continue
            if n:
                log.info("restarted: the devices as they were did not come back (%s); %s instead", failed[0][1], how)
            if took is not None:
                took.append(how)
            return audio, choice, streams
        if failed:
            # the devices in use first: the last way's reason alone named the configured device (one switched away
            # from), and sent the user to plug in the wrong one
            last = failed[0][1] + "".join(f"; {how}: {what}" for how, what in failed[1:] if what != failed[0][1])
        if last != told:
            why(last)
            told = last
        if not said:
            log.info("restarted: waiting up to %g s for the devices (%s)", RESUME_DEVICES_S, last)
            said = "waiting"
        elif late and said != last:
            log.info(
                "restarted, and no devices open yet: %s; rtvc looks for them every %g s (after a minute: when a sound"
                " card or server comes or goes, else every %g s; plug them in, or mend the sound server; SIGTERM or"
                " Ctrl-C stops it)", last, LOOK_AGAIN_S, devices.READ_LATER_S,
            )  # fmt: skip
            said = last
        if late and rereads is None:
            rereads = devices.Rereads(deadline)
        while not stop.wait(1.0 if not late else LOOK_AGAIN_S) and rereads is not None:
            if rereads.due(time.monotonic()):
                break
        if stop.is_set():
            break
        jack = jack_server_now()
        if jack == WITHOUT:
            return START_ANEW
        gone = jack == GONE
        if gone:
            last = "the JACK server rtvc runs on is gone: start it again (rtvc starts anew when it runs)"
            continue
        try:
            devices.rescan()
        except DeviceError:
            pass  # (no server yet: the next try says so)
    return None


_OUTPUT_GONE = (errno.EPIPE, errno.EIO, errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # a pipe whose reader went away;
# a terminal hung up; the disk the log is on full (a review: the report's print at the stop ended serve with exit 1)


def _output_gone(e: OSError) -> None:
    """Standard output (serve's log) can no longer be written: it goes to /dev/null, said once on standard error, and
    serve goes on. (Each log line after a pipe's reader went away printed a traceback, and the report's print at the
    stop ended serve with BrokenPipeError past PortAudio's exit guard: on a JACK server gone, a 10-minute hang.)"""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)
    try:
        print(f"rtvc: serve's log output is gone ({e.strerror}): it goes on, logging nowhere", file=sys.stderr)
    except OSError:
        pass


def _say(text: str) -> None:
    """Printed to serve's log; where it can no longer be written (its reader gone, its disk full), serve runs on,
    logging nowhere (_output_gone)."""
    try:
        print(text, flush=True)
    except OSError as e:
        if e.errno not in _OUTPUT_GONE:
            raise
        _output_gone(e)


class _LogHandler(logging.StreamHandler):
    def handleError(self, record: logging.LogRecord) -> None:
        e = sys.exc_info()[1]
        if isinstance(e, OSError) and e.errno in _OUTPUT_GONE:
            _output_gone(e)
            return
        super().handleError(record)


FALLBACK_LOOK_S = 3.0  # on the virtual device for want of sound devices: how often it looks whether they have come


class DeviceWatch:
    """On the virtual device for want of sound devices (a login's serve started before the sound server): looks
    beside serve's loop for the devices the config asks for; `found` says which once they are there. (It stayed on the
    virtual device, its status saying all was well, and never exited for the service to try again.) `says(text)`: what
    status should say instead of NO_CARD_AT_START where that no longer holds (devices there that do not fit the
    config; the look given up). PortAudio's list is read again as devices.Rereads says (when the system's sound
    devices changed, or READ_LATER_S after the last read). `changed_only`: a restarted serve whose devices did not open
    reads it only once they change (it would start anew on the same ones). No PortAudio stream is open on the virtual
    device: reading the list again (rescan) is safe."""

    def __init__(
        self, audio: AudioConfig, stop: threading.Event, says: Callable[[str], None], changed_only: bool = False
    ):
        self.audio = audio
        self.found = ""
        self._stop = stop
        self._says = says
        self._changed_only = changed_only
        threading.Thread(target=self._run, name="rtvc-look-for-devices", daemon=True).start()

    def _run(self) -> None:
        rereads = devices.Rereads(time.monotonic() - devices.READ_ALWAYS_S)  # (past its first minute of every look)
        unchanged = devices.system_audio() if self._changed_only else None
        unfit = ""
        while not self._stop.wait(FALLBACK_LOOK_S):
            if unchanged is not None:
                if devices.system_audio() == unchanged:
                    continue
                unchanged = None
            if not rereads.due(time.monotonic()):
                continue
            try:
                if not devices.rescan(quiet=True):
                    continue
                choice = choose_devices(self.audio)
            except devices.RescanHung as e:
                said = f"looking for them stopped ({e}): restart rtvc serve once they are there"
                log.info("sound devices: %s", said)
                self._says(NO_CARD.format(then=said))
                return
            except RtvcError as e:  # (there, but not what the config asks for: said once, and looked at again)
                if str(e) != unfit:
                    unfit = str(e)
                    log.info("sound devices are there now, but rtvc cannot take them: %s", e)
                    self._says(NO_CARD.format(then=f"sound devices are there now, but: {e}"))
                continue
            self.found = f"input {choice.input.title()}, output {choice.output.title()}"
            return


def serve(cfg: Config, opts: ServeOptions) -> int:
    stop = threading.Event()  # set by SIGTERM/SIGINT/SIGHUP, even one that comes while the daemon starts
    caught: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        if signum == getattr(signal, "SIGHUP", None):
            quiet_hung_terminal()  # (its terminal closed: the report's print must not end the stop)
        caught.append(signal.Signals(signum).name)
        stop.set()

    for sig in stop_signals():  # (SIGHUP too: the terminal it ran in closed; it ended serve with no report)
        signal.signal(sig, on_signal)
    restart.unblock_stops()  # (blocked across a restart's exec: one that came then is taken now)
    handler = _LogHandler(sys.stdout)
    handler.setFormatter(LogFormatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    _say(f"rtvc {__import__('rtvc').__version__}\n{format_config(cfg)}")
    if restart.config_error:  # (rtvc.cli: config.toml has an error at this restart: the last good one runs)
        log.info("%s", restart.config_error)
    resumed = restart.take()  # (a serve that started anew: rtvc.restart)
    token = load_or_create_token()  # before listening: a client may read it as soon as the port answers
    ControlServer.check_port(cfg.control if resumed is None else restart.config_for(cfg, resumed).control)  # (early)
    asked = cfg.audio  # (what the config names: the devices it leaves to the desktop's default are followed)
    if opts.virtual or not cfg.audio.virtual_mic:
        voice_mic.drop_inherited_claim()  # (a serve started anew that no longer plays into it)
    if opts.virtual and cfg.audio.virtual_mic:
        log.info("virtual device: audio.virtual_mic is not used (the virtual device plays no sound out)")
    elif cfg.audio.virtual_mic:  # (before PortAudio loads: it must take PipeWire's JACK)
        got = virtual_mic_resumed(cfg, stop) if resumed is not None else voice_mic.apply(cfg, play=True)
        if got is None:
            log.info("stopped (%s) while the virtual microphone was waited for", ", ".join(caught) or "asked to")
            return 0
        cfg, said = got
        log.info("%s", said)
    engine, no_voice = start_engine(cfg) if resumed is None else resumed_engine(cfg, resumed)
    configured = cfg
    if resumed is not None:
        cfg = restart.config_for(cfg, resumed)
        changed = restart.kept_over_the_file(cfg, configured)
        if changed:  # (the settings printed above are the file's)
            log.info("kept as before the restart, though config.toml says otherwise now: %s", "; ".join(changed))
        log.info(
            "started anew (%d of at most %d restarts in %g minutes): %s, with its settings and devices",
            len(restart.recent_restarts()), restart.MAX_RESTARTS, restart.WINDOW_S / 60,
            "no voice" if no_voice else f"voice '{profile_name(cfg.voice.profile, profiles_dir(cfg))}'",
        )  # fmt: skip
    clip_audio = load_mono(opts.clip, cfg.audio.samplerate) if opts.clip else None  # a bad clip: said at once
    virtual = opts.virtual
    fresh = resumed is None or bool(resumed.get("devices_found"))  # (devices chosen as at a start)
    if not virtual and fresh and not devices.list_devices():
        if devices.names_a_device(cfg.audio):
            raise devices.no_devices_error(host_api=cfg.audio.host_api)
        log.info("no sound card found: serving on the virtual device instead (%s)", NO_CARD_AT_START)
        virtual = True
    if not virtual and opts.clip is not None:
        raise RtvcError(
            f"--clip {opts.clip}: for the virtual device, and rtvc serves on your sound devices",
            "add --virtual to play the clip through the voice in a loop, or leave --clip out",
        )
    opened: tuple[DeviceChoice, DeviceStreams] | None = None
    unopened = ""  # (a serve started anew on the devices found, which did not open: on the virtual device again)
    if not virtual and fresh:
        try:
            choice = choose_devices(cfg.audio)
            streams = DeviceStreams(choice, engine, cfg.audio.samplerate, cfg.audio.period)
            opened = (streams.choice, streams)  # (the streams' channels: rtvc.audio.io)
        except RtvcError as e:
            if resumed is None:
                raise
            unopened = str(e)
            log.info("the sound devices found do not open (%s): serving on the virtual device again", e)
            virtual = True
    controller: Controller | None = None
    server: ControlServer | None = None
    in_use: dict[str, Any] = {}
    shown: list[Callable[[], dict[str, Any]]] = [lambda: in_use]  # what devices.list says is in use

    def fallback_says(text: str) -> None:  # why the virtual device plays: devices.list, the refusals, status's detail
        in_use["fallback"] = text
        engine.output_unheard = text  # (`rtvc ctl status` said all was well)

    def open_control(cfg: Config) -> tuple[Controller, ControlServer]:
        start = profile_name(cfg.voice.profile, profiles_dir(cfg))
        controller = Controller(cfg, engine, None if no_voice else start, no_voice=no_voice)
        controller.add_listener(
            lambda e: log.info(describe_change(e, engine_words(engine.status()) if e["changed"] == ["engine"] else ""))
        )
        if resumed is not None:
            restart.apply(controller, resumed)
        server = ControlServer(
            cfg.control, controller, token, devices_in_use=lambda: shown[0](), token_file=token_path()
        )
        server.start()
        where = connect_host(cfg.control, server.port)
        log.info("voice: %s", engine.voice_label)
        log.info("control: ws://%s/rpc, dock http://%s/dock (`rtvc token` prints the token)", where, where)
        return controller, server

    def close_control() -> None:
        if controller is not None and server is not None:
            controller.close()
            server.stop()

    device: LoopingDevice | DeviceSwitcher
    if virtual:
        clip = opts.clip or bundled_speech()
        audio = clip_audio if clip_audio is not None else load_mono(clip, cfg.audio.samplerate)
        device = LoopingDevice(engine, audio, cfg.audio.period or VIRTUAL_PERIOD)
        in_use.update({"virtual": True, "clip": str(clip)})
        if not opts.virtual:  # (chosen for want of a sound card: said in devices.list, the refusals and status)
            if unopened:
                fallback_says(NO_CARD.format(then=f"the devices found did not open ({unopened}); it looks again"))
            elif os.name != "posix":  # (rtvc.restart: no start anew there)
                fallback_says(NO_CARD.format(then="start rtvc serve again once they are there"))
            else:
                fallback_says(NO_CARD_AT_START)
        log.info("virtual device: playing %s in a loop as the microphone", clip)
    else:
        took: list[str] = []  # (devices_again's way: the devices as they were, or as configured)
        if opened is not None:
            choice, streams = opened
        else:
            # clients (the TUI, the OBS dock) reconnect at once, and are told why there is no sound yet
            resuming = {"resuming": "rtvc serve started anew and looks for its sound devices"}
            shown[0] = lambda: resuming

            def why(reason: str) -> None:
                resuming["resuming"] = f"rtvc serve started anew and waits for its sound devices: {reason}"
                engine.report_device_error(resuming["resuming"])

            why("looking for them")
            controller, server = open_control(cfg)
            got: Any = None
            try:
                got = devices_again(cfg, configured, resumed, engine, stop, why, took)
            finally:
                if not isinstance(got, tuple):  # (stopped, or starting anew: the clients reconnect)
                    close_control()
            if got == START_ANEW and restart.allowed():
                log.info(
                    "the JACK server was started again, and PortAudio cannot reach it from this process: rtvc serve "
                    "starts anew, with its voice, settings and devices"
                )
                restart.block_stops()
                restart.exec_again(restart.with_controls(resumed, controller), caught)  # (returns: failed, or stop)
                return 0 if caught else 1
            if got == START_ANEW:
                raise RtvcError(
                    f"the JACK server was started again, and rtvc serve has started anew {restart.MAX_RESTARTS} "
                    f"times in {restart.WINDOW_S / 60:g} minutes already",
                    "restart rtvc serve",
                )
            if not isinstance(got, tuple):  # (stopped while it looked for them)
                log.info("stopping (%s): no devices had opened since the restart", caught[0] if caught else "stop")
                return 0
            audio, choice, streams = got
            cfg = dataclasses.replace(cfg, audio=audio)
        if streams.period:
            engine.prepare(streams.period)
        device = DeviceSwitcher(engine, cfg.audio, choice, streams)
        device.restart_refused = restart.refusal
        defaults = left_to_default(asked, monitor_default=cfg.audio.virtual_mic and asked.monitor_device == "")
        # (devices as configured after a restart, those it ran on gone: the defaults the config leaves to the desktop
        # are followed as at a start; the follows of the devices gone were kept, and a headset made the default
        # after was not taken, a review)
        as_at_start = fresh or took == ["as configured"]
        device.follow = following(choice, defaults if as_at_start else set(resumed.get("follow", [])))
        if device.follow:
            log.info("following PipeWire's default %s (the desktop's sound settings)", describe_follow(device.follow))
        log.info("devices:\n%s", Lines(choice.describe()))
    # (seconds, when a profile uses an RVC voice: after the devices, so that a wrong one is said at once)
    try:
        preload_voices(cfg)
    except BaseException:
        if isinstance(device, DeviceSwitcher):
            device.streams.close()  # opened, not started: release the sound card
        close_control()
        raise

    if controller is None or server is None:
        try:
            controller, server = open_control(cfg)
        except Exception:
            if isinstance(device, DeviceSwitcher):
                device.streams.close()  # opened, not started: release the sound card
            raise
    if isinstance(device, DeviceSwitcher):
        controller.device_switcher = device.switch
        controller.devices_stuck = device.stuck
        device.on_routing = controller.routing_changed
        device.on_followed = controller.devices_followed
        shown[0] = device.in_use

    engine.start()
    try:
        device.start()
    except StartHung as e:
        # PortAudio hung in this process: serve starts anew, as when that comes later (a serve started anew met it,
        # PipeWire's ALSA plugin not quite back), within rtvc.restart's bound
        if not isinstance(device, DeviceSwitcher):
            raise
        if not device.give_up(e.what):
            raise DeviceError(f"{e.what}; {restart.refusal()}", "restart rtvc serve") from None
    obs = start_obs_link(cfg, controller)
    scheduling = ""
    again: dict[str, Any] | None = None  # the state to start anew with (rtvc.restart)
    watch = None
    if "fallback" in in_use and os.name == "posix":
        watch = DeviceWatch(cfg.audio, stop, fallback_says, changed_only=bool(unopened))
    refused_said = ""
    while not stop.wait(POLL_S):
        if watch is not None and watch.found:
            if restart.allowed():
                log.info(
                    "sound devices are there now (%s): rtvc serve starts anew on them, with its voice and settings;"
                    " clients reconnect",
                    watch.found,
                )
                again = restart.devices_found(controller, server.port, configured.raw, configured.path)
                break
            if restart.refusal() != refused_said:  # (the bound: it starts anew once that many restarts are older)
                refused_said = restart.refusal()
                said = f"sound devices are there now ({watch.found}), but {refused_said}: it does once it may"
                log.info("%s, or restart it", said)
                fallback_says(NO_CARD.format(then=said))
        if isinstance(device, DeviceSwitcher) and device.restart_wanted:
            log.info(
                "PortAudio cannot go on in this process (%s): rtvc serve starts anew, with its voice, settings and"
                " devices; clients reconnect",
                device.restart_wanted,
            )
            follow = device.follow
            again = restart.snapshot(
                controller, device.audio, device.choice, server.port, follow, configured.raw, configured.path
            )
            break
        if isinstance(device, DeviceSwitcher) and device.recover_due(time.monotonic()):
            # devices that failed are looked for and reopened (seconds, when a stop hangs): beside this loop
            threading.Thread(target=device.recover, name="rtvc-device-recover", daemon=True).start()
        controller.poll_engine()
        controller.poll_profiles()
        if engine.priority not in (scheduling, "", AWAITING_CALLBACKS):
            scheduling = engine.priority  # (what the worker got, and why: at start and after a device switch)
            log.info("worker scheduling: %s", scheduling)
    log.info("stopping (%s)", caught[0] if caught else "to start anew" if again else "stop")
    controller.close()
    if obs is not None:
        obs.stop()
    stopped = device.stop() is not False  # devices first: no callback may run into a stopped engine
    engine.stop()
    controller.poll_engine()  # 'stopped' reaches the clients before they are closed
    server.stop()
    if again is not None:
        restart.block_stops()
        restart.exec_again(again, caught)  # (returns when that failed, or a stop signal came: then as any stop)
    _say(report(engine.status()))  # (an exception here skipped PortAudio's exit guard)
    code = 0 if stopped else EXIT_DEVICE_HUNG
    if controller.loading is not None:
        # a model load cannot be interrupted, and Python would wait for its thread (seconds; a hung network
        # drive: for ever) after everything else has stopped
        log.info("voice '%s' was still loading: not waited for", controller.loading)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
