"""The control state every surface drives: voice, parameters, voice on/off, monitor, mute, push-to-talk, the
noise gate.

One object, thread-safe, between the engine and the control surfaces (websocket clients, OBS, the TUI). A
surface calls a method; the controller applies it to the engine at the next block boundary (through the
engine's and converter's one-reference switches) and tells every listener what changed and who changed it.
A request that fails (a profile whose model does not load, a value out of range) raises `RtvcError` and
changes nothing.

Mute and push-to-talk: the output is silent when muted, or when push-to-talk mode is on and nobody holds
the talk key. Holders are named (a client id), so a client's presses are released when it disconnects.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from rtvc.config import Config, GateConfig
from rtvc.control.load_failures import LoadFailures
from rtvc.converter import StreamingConverter
from rtvc.engine import Engine
from rtvc.errors import ConfigError, DeviceError, RtvcError
from rtvc.gate import HYSTERESIS_DB, LEARN_LOUDEST_DB, LEARN_MARGIN_DB, LEARN_SILENCE_DB, LEARN_SWING_DB, GateSettings
from rtvc.profiles import (
    ProfilesUnreadable,
    load_profile,
    missing_files,
    profile_files,
    profile_label,
    profile_name,
    shown_name,
    stored_label,
    unusable,
)
from rtvc.settings import describe, from_table

Listener = Callable[[dict[str, Any]], None]
log = logging.getLogger("rtvc.control")


class LearnBusy(RtvcError):
    """gate.learn while another listens to the room."""


class Superseded(RtvcError):
    """A voice select overtaken before its load began: another voice was asked for after it (Controller.intend)."""


class NoVoiceError(RtvcError):
    """A request that needs a voice (params.set, profiles.save) while none plays (Controller.no_voice)."""


PROFILES_CHECK_S = 1.0  # how often profiles/ is looked at (a stat per profile)
START_SETTLE_S = 2.0  # no voice: the start profile's files unchanged this long before they are loaded again


def profiles_seen(folder, parsed: dict | None = None) -> tuple:
    """What tells a change in a profiles folder: each profile's name, modification time and size, and the model
    files it names that are not there (voices.list marks such a profile: files put in place or moved away change
    what the lists show as an edit does). `parsed`: name -> ((mtime, size), profile or None), kept between looks,
    so a profile is read again only when its file changed (the model files are looked at every time: a stat)."""
    seen = []
    for path in profile_files(folder):
        try:
            st = path.stat()
        except OSError:  # a link to nothing or to itself (voices.list lists it, with its error), or removed since
            try:
                st = path.lstat()
            except OSError:  # (removed between the listing and the stat: the next look sees it gone)
                continue
        stamp = (st.st_mtime_ns, st.st_size)
        gone: tuple[str, ...] = ()
        if parsed is not None:
            known = parsed.get(path.name)
            if known is None or known[0] != stamp:
                try:
                    known = (stamp, load_profile(str(path), folder))
                except (ConfigError, OSError):
                    known = (stamp, None)
                parsed[path.name] = known
            if known[1] is not None:
                gone = tuple(missing_files(known[1]))
        seen.append((path.name, *stamp, gone))
    if parsed is not None:
        for name in parsed.keys() - {n for n, *_ in seen}:
            del parsed[name]
    return tuple(seen)


class Controller:
    def __init__(self, cfg: Config, engine: Engine, profile: str | None, no_voice: str = ""):
        """`profile`: the one playing; None with `no_voice`, why no voice plays (the start profile did not load:
        rtvc.serve.start_engine), until one is selected."""
        from rtvc.run import profiles_dir

        self.cfg = cfg
        self.engine = engine
        self.profiles_dir = profiles_dir(cfg)
        self.profile = profile
        self.no_voice = no_voice
        # while no voice plays: the start profile's files (run.converter_key) as a load last failed on them, and as
        # last seen with when they changed (loaded again once they differ and held still START_SETTLE_S)
        self._retry: threading.Thread | None = None
        self._start_failed: tuple | None = None
        self._start_seen: tuple[tuple | None, float] = (None, 0.0)
        if no_voice:
            self._start_failed = self._start_files()
            self._start_seen = (self._start_failed, time.monotonic())
        self.voice_on = True
        self.mute = False
        self.ptt_mode = False
        self._held: set[str] = set()
        self._lock = threading.RLock()  # state changes; a voice load runs outside it
        self._load_lock = threading.Lock()  # one voice load at a time
        self._learn_lock = threading.Lock()  # one gate.learn at a time
        self._listeners: list[Listener] = []
        self._events: deque[dict[str, Any]] = deque()  # taken, not yet handed to the listeners (_emit)
        self._dispatch_lock = threading.Lock()
        self.loading: str | None = None
        self.loading_by = ""  # who asked for the voice loading (a client, "obs", "profiles")
        # each voice asked for (a client's select, an OBS scene's) in the order asked: the latest wins over one
        # asked before it whose load has not begun (intend; select_voice)
        self._intent: tuple[int, str, str] = (0, "", "")  # (its number, the profile's name, by whom)
        # the voice played before this one, kept loaded for a quick switch back: (converter_key, converter, label)
        self._kept: tuple[tuple, StreamingConverter, str] | None = None
        self._key: tuple | None = None  # converter_key of the voice that plays (None: not known)
        if profile_name(cfg.voice.profile, self.profiles_dir) == profile:  # (what build_engine loaded)
            from rtvc.run import converter_key

            self._key = converter_key(cfg, cfg.voice.profile)
        self.closed = False  # the daemon is stopping: a voice that finishes loading now is not switched to
        self.started = time.time()
        self._engine_seen: tuple[str, str, str] | None = None
        self._profiles_parsed: dict = {}  # profiles_seen's: the profiles as last read
        self._failures = LoadFailures(self.profiles_dir)  # profiles whose load failed on their files: voices.list marks
        self._profiles_seen = profiles_seen(self.profiles_dir, self._profiles_parsed)  # as poll_profiles last saw it
        self._silent_said = self.engine.muted or bool(no_voice)  # `silent` as the last event had it
        self._profiles_at = time.monotonic()
        self._profiles_error = ""  # why the last look at profiles/ failed (said once), "" when it worked
        self._profiles_lock = threading.Lock()  # (a save, on an RPC thread, and the poll, on serve's loop)
        # set by the daemon when it drives real sound cards: (input, output) -> description; None on the
        # virtual device, where there is nothing to switch
        self.links: dict[str, dict[str, Any]] = {}  # outside links (OBS): name -> {state, detail, warnings}
        # told after each change in profiles/ that poll_profiles sees (serve: [obs.scenes]'s profiles checked again)
        self.profiles_watchers: list[Callable[[], None]] = []
        # DeviceSwitcher.switch(input, output, monitor, rescan=False), with real devices that can be switched
        self.device_switcher: Callable[..., dict[str, Any]] | None = None
        # whether every switch is refused now (DeviceSwitcher.stuck: PortAudio stuck on a JACK server that went away)
        self.devices_stuck: Callable[[], bool] = lambda: False

    # -- reading ------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        with self._lock:
            conv, label = self.engine.active
            return {
                "profile": self.profile,
                "voice": label,
                "kind": getattr(conv.voice, "kind", ""),
                "params": asdict(conv.params),
                "voice_on": self.voice_on,
                "monitor": self.engine.monitor_enabled,
                "mute": self.mute,
                "ptt": {"mode": self.ptt_mode, "held": len(self._held)},
                "silent": self.silent,
                "no_voice": self.no_voice or None,
                "gate": self._gate_settings(),
                "loading": self.loading,
                "engine": self.engine.status().state,
                "links": {k: {**v, "warnings": list(v.get("warnings", []))} for k, v in self.links.items()},
            }

    @property
    def upcoming(self) -> str | None:
        """The profile that plays once the load under way is in (by name), else the one playing."""
        loading = self.loading
        return profile_name(loading, self.profiles_dir) if loading else self.profile

    @property
    def silent(self) -> bool:
        """The output is silent now: muted, push-to-talk with nobody holding, or no voice."""
        return self.engine.muted or bool(self.no_voice)

    def status(self) -> dict[str, Any]:
        return {"engine": self.engine.status().to_dict(), "control": self.state()}

    def voices(self) -> list[dict[str, Any]]:
        # what a client is shown, the poll has seen (and said first): a profile added and removed again within a
        # poll's second, listed meanwhile (the dock's periodic reread), would otherwise stay on its list, its removal
        # never an event (the poll saw the folder the same before and after)
        self._look_at_profiles()
        out = []
        for path in profile_files(self.profiles_dir):
            try:
                p = load_profile(str(path), self.profiles_dir)
                entry = {"name": p.name, "label": p.label, "voice": p.voice, "active": p.name == self.profile}
                # said here, not first when it is selected on stream; a damaged file, once a load found it
                if why := unusable(p) or self._failures.error(p.name):
                    entry["error"] = why
                out.append(entry)
            except ConfigError as e:  # listed, so the user sees why it cannot be chosen (the one playing stays it)
                name = shown_name(path).removesuffix(".toml")  # (a name that is not UTF-8: U+FFFD in its place)
                label = (stored_label(path.stem, self.profiles_dir) or name) if name == path.stem else name
                active = path.stem == self.profile
                out.append({"name": name, "label": label, "voice": "", "active": active, "error": str(e)})
        return out

    def params(self) -> dict[str, Any]:
        conv, _ = self.engine.active
        return {
            "kind": getattr(conv.voice, "kind", ""),
            "values": asdict(conv.params),
            "ranges": self._ranges(conv),
        }

    @staticmethod
    def _ranges(conv: StreamingConverter) -> dict[str, dict[str, Any]]:
        """The parameters' ranges, narrowed to what the loaded voice takes (an RVC voice's speaker ids)."""
        ranges = describe(type(conv.params))
        narrow = getattr(conv.voice, "param_ranges", None)
        for name, (lo, hi) in (narrow() if narrow else {}).items():
            ranges[name] = {**ranges[name], "min": lo, "max": hi}
        inert = getattr(conv.voice, "inert_params", None)
        for name in inert() if inert else ():  # (no control for what does nothing: a voice without an .index)
            ranges.pop(name, None)
        return ranges

    # -- changing -----------------------------------------------------------------------------------
    def intend(self, name: str, by: str) -> int:
        """A voice asked for now (a client's voices.select, an OBS scene cut), before its load waits its turn: its
        number for select_voice. The latest wins: a select for another voice asked before it, whose load has not
        begun, is Superseded. Requests from the clients and from OBS queued apart, each waiting for the one load
        under way, and the later to get its turn played: a scene cut lost to a select made before it."""
        with self._lock:
            number = self._intent[0] + 1
            self._intent = (number, profile_name(name, self.profiles_dir), by)
            return number

    def select_voice(
        self, name: str, by: str, why: str = "", only_if_no_voice: bool = False, intent: int | None = None
    ) -> dict[str, Any]:
        """Load a profile (seconds, for a model voice) and switch to it; on any error nothing changes. The voice
        played before is kept loaded: selecting it again, unchanged (its profile, its model files, the stream
        settings: run.converter_key), takes it back at once, from a clean start and the profile's parameters.
        `why`: what asked for it, in the error a failed load says (" for OBS scene 'Gaming'"). `intent`: its number
        from intend: Superseded, nothing loaded, where another voice was asked for since."""
        from rtvc.run import build_converter, converter_key

        with self._load_lock:
            with self._lock:
                if self.closed:
                    raise RtvcError(f"rtvc is stopping: voice '{name}' not loaded")
                latest, latest_name, latest_by = self._intent
                if intent is not None and intent < latest and latest_name != profile_name(name, self.profiles_dir):
                    asker = "an OBS scene" if latest_by == "obs" else latest_by  # (a client's id: "client 3")
                    raise Superseded(f"voice '{name}' was not loaded: {asker} asked for voice '{latest_name}' after it")
                if only_if_no_voice and not self.no_voice:  # (a voice was selected while this waited: it stays)
                    return self.state()
                self.loading, self.loading_by = name, by
            self._emit(["loading"], by)
            files = None
            try:
                # (in the try: raising here, for a path this locale cannot encode or with a NUL in it, left the
                # daemon "loading" for good, and the dock, which waits for a load to end, locked: a review)
                files = self._failures.before_load(name)
                key = converter_key(self.cfg, name)
                conv, label = self._take_kept(key, name) or build_converter(self.cfg, name)
            except Exception as e:
                with self._lock:
                    self.loading = None
                # failed on its files: voices.list marks the profile from now on, and the clients that follow
                # "profiles" read the list again (a TUI beside the dock that selected it showed the voice as fine)
                said = f"voice '{name}'{why} did not load: {e}"
                if self._failures.failed(name, files, e):
                    marked = self._marked(profile_name(name, self.profiles_dir))
                    self._emit(["loading", "profiles"], by, error=said, profiles=marked)
                else:
                    self._emit(["loading"], by, error=said)
                raise
            with self._lock:
                self.loading = None
                if self.closed:  # (the engine has stopped: nobody would hear it, and the log would say it)
                    raise RtvcError(f"voice '{name}' loaded after rtvc began to stop: not switched to")
            self._failures.loaded(name)
            with self._lock:
                had_none = bool(self.no_voice)
                outgoing = self.engine.active
                conv.bypass = not self.voice_on
                self.engine.swap_converter(conv, label)
                self.profile = profile_name(name, self.profiles_dir)  # as loaded: the file is not read again
                self.no_voice = ""
                # the voice that played is kept, and the one kept before goes; but a reload of the voice that
                # plays keeps no second copy of it, and leaves the kept one as it was
                dropped = None
                if key is None or key != self._key:
                    dropped, self._kept = self._kept, ((self._key, *outgoing) if self._key is not None else None)
                self._key = key
            del dropped  # (a voice kept before: freed here, outside the lock)
        self._emit(["loading", "profile", "voice", "params"] + (["no_voice"] if had_none else []), by)
        return self.state()

    def _take_kept(self, key: tuple | None, name: str) -> tuple[StreamingConverter, str] | None:
        """The kept voice, restarted with its profile's parameters, where `key` is what it was built from; else
        None, and it stays kept: a load that fails (a corrupt file, a misclick) must not cost the quick switch
        back. So a load holds three voices at most (the one playing, the kept one, the one loading)."""
        with self._lock:
            kept = self._kept
            if kept is None or key is None or kept[0] != key:
                return None
            self._kept = None
        _, conv, label = kept
        for _ in range(50):  # the worker lets go of a voice at its next block edge: at most one block after a swap
            if not self.engine.plays(conv):
                break
            time.sleep(0.01)
        else:
            return None
        conv.reset()
        conv.set_params(load_profile(name, self.profiles_dir).params)
        return conv, label

    def set_params(self, values: dict[str, Any], by: str) -> dict[str, Any]:
        if not isinstance(values, dict) or not values:
            raise ConfigError(
                "params: give a non-empty object of name: value", f"names: {', '.join(self.params()['values'])}"
            )
        with self._lock:
            self._check_voice("params.set")
            conv, _ = self.engine.active
            inert = getattr(conv.voice, "inert_params", None)
            for name, why in (inert() if inert else {}).items():  # (a change to what does nothing here: said)
                v, now = values.get(name), getattr(conv.params, name, None)
                off = (name, v) in (("index_rate", 0), ("protect", 0.5))  # (the settings that say "none": true here)
                if name in values and v != now and not off and name != "pitch":  # (pitch: check_params says it)
                    raise ConfigError(
                        f"params: 'params.{name}' = {v!r}, but {why}, so it does nothing",
                        f"leave {name} at {now:g}",
                    )
            narrow = getattr(conv.voice, "param_ranges", None)
            for name, (lo, hi) in (narrow() if narrow else {}).items():  # (said as this voice has them, both ends)
                v = values.get(name)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and not lo <= v <= hi:
                    raise ConfigError(
                        f"params: 'params.{name}' = {v} is not allowed for this voice", f"it must be from {lo} to {hi}"
                    )
            merged = {**asdict(conv.params), **values}
            new = from_table(type(conv.params), merged, "params", "params")
            check = getattr(conv.voice, "check_params", None)
            if check:
                check(new, "params")
            changed = new != conv.params
            conv.set_params(new)
        if changed:  # (values as they were: no event, no log line; a Stream Deck key pressed twice)
            self._emit(["params"], by)
        return asdict(new)

    def save_profile(self, name: str, label: str | None, overwrite: bool, by: str) -> dict[str, Any]:
        """Write the running voice's kind, [model] and current [params] to profiles/NAME.toml; that
        profile becomes the active one (it is what is playing). A voice being selected meanwhile is saved
        before or after, never across: the state named a profile another voice played."""
        from rtvc.profile_writer import check_name, portable_model, write_profile
        from rtvc.run import converter_key

        check_name(name, self.profiles_dir)  # (before the profile replaced is read: a name must name no other file)
        if not label and overwrite:  # the label of the profile replaced (its comments stay too), else the name
            label = stored_label(name, self.profiles_dir)  # (also of one that does not load: a value out of range)
        label = profile_label(label or "", "profiles.save: 'label'", name)  # what a load of the file will show
        with self._load_lock:
            with self._lock:
                self._check_voice("profiles.save")
                conv, _ = self.engine.active
                kind = getattr(conv.voice, "kind", "")
                params = asdict(conv.params)
            model = None
            if getattr(conv.voice, "Model", None) is not None:
                # a model voice: the [model] it was loaded with (its profile file may have been edited or removed
                # since), every setting that is not the default, paths as the voice resolved them
                settings = conv.voice.model
                raw = {f.name: v for f in fields(settings) if (v := getattr(settings, f.name)) != f.default}
                model = portable_model(raw, conv.voice.base, self.profiles_dir)
            with self._profiles_lock:  # (the event below says so: no "profiles" one for it, before or after)
                self._poll_profiles()  # what changed in the folder before: said first (it was taken for the save's)
                existed = (self.profiles_dir / f"{name}.toml").exists()
                path = write_profile(self.profiles_dir, name, label, kind, params, model, overwrite, keep_layout=True)
                self._profiles_seen = profiles_seen(self.profiles_dir, self._profiles_parsed)
            key = converter_key(self.cfg, name)
            self._failures.loaded(name)  # (it describes the voice that plays now: a load that failed on it is past)
            with self._lock:
                self.profile = name
                # the voice that plays is what the saved profile describes, if its model files are still the ones
                # it was loaded from (one replaced since would make a kept voice stale)
                self._key = key if key is not None and self._key is not None and key[2] == self._key[2] else None
                if conv.wants_wider_search(conv.params):  # (a pitch saved lower than the voice was loaded at: a
                    self._key = None  # load of the file makes its search)
                self.engine.relabel(conv, f"{label}: {conv.voice.label}")  # (as a load of the file names it)
        # "profiles" as for a file written by hand: a client whose voice list follows those events shows this one
        files = {"added": [] if existed else [name], "removed": [], "edited": [name] if existed else []}
        files["model_files"] = []
        self._emit(["profile", "voice", "profiles"], by, profiles=files)
        return {"name": name, "path": str(path), "state": self.state()}

    def _check_voice(self, what: str) -> None:
        if self.no_voice:
            raise NoVoiceError(
                f"{what}: no voice plays ({self.no_voice})",
                "select a voice first (voices.select; the TUI's voice list, the dock)",
            )

    def set_voice_on(self, on: bool, by: str) -> bool:
        with self._lock:
            changed, self.voice_on = self.voice_on != bool(on), bool(on)
            self.engine.converter.bypass = not self.voice_on
            self.engine.active[0].bypass = not self.voice_on
        if changed:
            self._emit(["voice_on"], by)
        return self.voice_on

    def set_monitor(self, on: bool, by: str) -> bool:
        """Hear myself on the monitor device; DeviceError (nothing changes) when on is asked with none playing."""
        if on and not self.engine.has_monitor_device:
            lost = self.engine.monitor_error
            switchable = self.device_switcher is not None and not self.devices_stuck()  # (as devices.list)
            again = "devices.select with `monitor`; d in the TUI" if switchable else "restart rtvc serve"
            if lost:
                raise DeviceError(f"hear myself has no device: {lost}", f"plug it back in and select it ({again})")
            raise DeviceError(
                "hear myself needs a monitor device, and none is set",
                f"choose your headphones: {again}, or audio.monitor_device / --monitor-device (`rtvc devices`)",
            )
        with self._lock:
            changed = self.engine.monitor_enabled != bool(on)
            self.engine.monitor_enabled = bool(on)
        if changed:
            self._emit(["monitor"], by)
        return bool(on)

    def set_mute(self, on: bool, by: str) -> bool:
        with self._lock:
            changed, self.mute = self.mute != bool(on), bool(on)
            self._apply_mute()
        if changed:
            self._emit(["mute"], by)
        return self.mute

    def set_gate(
        self, by: str, on: bool | None = None, threshold_db: float | None = None, hold_ms: float | None = None
    ) -> dict[str, Any]:
        """The noise gate's settings (those given; the others stay), in effect from the next block. Values are
        checked against config.toml's [gate] ranges: a bad one raises ConfigError and nothing changes."""
        with self._lock:
            now = self.engine.gate.settings
            table = {"enabled": now.on if on is None else on, "threshold_db": now.threshold_db, "hold_ms": now.hold_ms}
            if threshold_db is not None:
                table["threshold_db"] = threshold_db
            if hold_ms is not None:
                table["hold_ms"] = hold_ms
            new = from_table(GateConfig, table, "gate.set", "gate")
            self.engine.gate.settings = GateSettings(new.enabled, float(new.threshold_db), float(new.hold_ms))
        if self.engine.gate.settings != now:  # (gate.set {} changes nothing: no event, no log line)
            self._emit(["gate"], by)
        return self._gate_settings()

    def learn_gate(self, by: str, seconds: float = 2.0) -> dict[str, Any]:
        """Listen to the room for `seconds` (the user silent), then switch the gate on with its threshold where the
        room stays LEARN_MARGIN_DB under the closing level: its loudest level + HYSTERESIS_DB + the margin, in whole
        dB (-100 at the lowest). Any thread but the worker; returns the gate's settings and `room_db` (the loudest
        level heard). RtvcError where no input came (the engine not running), the input was digital silence (a muted
        microphone: no room to learn) or the level swung like a voice."""
        gate = self.engine.gate
        # one at a time, the next refused (two at once would share one measurement, the second cutting the first
        # short; queued, eight of 10 s held the control server's worker threads for 80 s, and a voices.select of
        # another client waited behind them)
        if not self._learn_lock.acquire(blocking=False):
            raise LearnBusy("the room is being learnt already: learn again once that has answered")
        try:
            gate.learn(seconds)
            deadline = time.monotonic() + seconds + max(1.0, seconds)
            while gate.learned is None:
                if self.closed:  # (the daemon stops: no more blocks come; its exit must not wait for the deadline)
                    gate.learning_off()
                    raise RtvcError("rtvc is stopping: the room was not learnt")
                if time.monotonic() > deadline:
                    gate.learning_off()
                    raise RtvcError(
                        f"no input came to learn from in {seconds + max(1.0, seconds):g} s: the engine is "
                        f"{self.engine.status().state}",
                        "see status.get's engine.detail; learn again once it runs",
                    )
                time.sleep(0.02)
            loudest, low = gate.learned
        finally:
            self._learn_lock.release()
        if loudest <= LEARN_SILENCE_DB:  # (it set -100 dBFS, "the room: digital silence", a gate that never closed)
            raise RtvcError(
                f"the input was digital silence (all zeros) for the {seconds:g} s rtvc listened to the room: the "
                "microphone may be muted or not the one rtvc listens to; the gate is as it was",
                "unmute it, or pick the microphone (`rtvc devices` lists them), then learn again from the room",
            )
        if loudest - low > LEARN_SWING_DB or loudest > LEARN_LOUDEST_DB:
            raise RtvcError(
                f"the input went from {low:.0f} up to {loudest:.0f} dBFS while the room was learnt: more than a room "
                "(a voice, typing, a knock?); the gate is as it was",
                f"stay quiet for those {seconds:g} s and learn again, or set the threshold yourself",
            )
        threshold = min(0.0, max(-100.0, math.ceil(loudest + HYSTERESIS_DB + LEARN_MARGIN_DB)))
        return {**self.set_gate(by, True, threshold), "room_db": round(max(loudest, -120.0), 1)}

    def _gate_settings(self) -> dict[str, Any]:
        s = self.engine.gate.settings
        return {"on": s.on, "threshold_db": s.threshold_db, "hold_ms": s.hold_ms}

    def set_ptt_mode(self, on: bool, by: str) -> bool:
        with self._lock:
            changed, self.ptt_mode = self.ptt_mode != bool(on), bool(on)
            self._apply_mute()
        if changed:
            self._emit(["ptt"], by)
        return self.ptt_mode

    def ptt_press(self, holder: str, by: str) -> int:
        with self._lock:
            if holder in self._held:  # (a key that repeats while held: nothing changes, no event)
                return len(self._held)
            self._held.add(holder)
            self._apply_mute()
            n = len(self._held)
        self._emit(["ptt"], by)
        return n

    def ptt_release(self, holder: str, by: str) -> int:
        with self._lock:
            if holder not in self._held:
                return len(self._held)
            self._held.discard(holder)
            self._apply_mute()
            n = len(self._held)
        self._emit(["ptt"], by)
        return n

    def switch_devices(
        self, input: str | None, output: str | None, by: str, monitor: str | None = None, rescan: bool = False
    ) -> dict:
        """Switch sound devices (slow: streams stop and open), or with `rescan` read PortAudio's device list
        again and reopen the current ones. DeviceError: the current devices stay."""
        assert self.device_switcher is not None
        hearing = self.engine.monitor_enabled
        result = self.device_switcher(input, output, monitor, rescan=rescan)
        changed = result.pop("changed", True)
        # without a monitor device hear-myself goes off (Engine.monitor_opened): say so with the switch
        if changed or self.engine.monitor_enabled != hearing:  # (the devices in use asked for again: no event)
            self._emit(["devices"] + (["monitor"] if self.engine.monitor_enabled != hearing else []), by)
        return result

    def devices_followed(self, error: str, monitor_changed: bool) -> None:
        """rtvc switched to PipeWire's new default devices by itself (rtvc.audio.switch: a headset plugged in, a
        choice in the desktop's sound settings), or could not (`error`): a `devices` event, by "pipewire"; with
        "monitor" where hear-myself went off with it."""
        self._emit(["devices"] + (["monitor"] if monitor_changed else []), "pipewire", error)

    def set_link(self, name: str, state: str, detail: str) -> None:
        """An outside link (OBS) reports its connection state: an event (a log line) for each change of state, or
        of the reason it is down (not for a retry's "; retrying in N s")."""
        with self._lock:
            was = self.links.get(name, {})
            if state == "connecting" and was.get("state") in ("disconnected", "auth failed"):
                return  # a retry: still down, and why stays said (it was overwritten with "connecting to ...")
            self.links[name] = {"state": state, "detail": detail, "warnings": was.get("warnings", [])}
        reason = lambda d: d.split("; retrying in ")[0]  # noqa: E731
        if state != was.get("state") or reason(detail) != reason(was.get("detail", "")):
            self._emit([name], name)

    def set_link_warnings(self, name: str, warnings: list[str]) -> None:
        """What an outside link's settings get wrong while it works (OBS: a scene [obs.scenes] names that OBS has
        not, renamed since; a scene's profile missing): an event when they change. They were in serve's log alone,
        and a scene renamed in OBS then switched no voice after a restart without a word on the dock or the TUI."""
        with self._lock:
            was = self.links.get(name, {"state": "connecting", "detail": ""})
            if was.get("warnings", []) == warnings:
                return
            self.links[name] = {**was, "warnings": list(warnings)}
        self._emit([name], name, warned=True)

    def routing_changed(self, routing: dict[str, Any]) -> None:
        """Under JACK, connections of rtvc's ports were lost with the program at their other end, made again when it
        came back, or no longer waited for (rtvc.audio.jack_watch): a `routing` event, with a loss as its error."""
        error = routing.get("error", "")
        keys = ("lost", "restored", "dropped", "waiting")
        self._emit(["routing"], "jack", error, routing={k: routing.get(k, []) for k in keys})

    def _apply_mute(self) -> None:
        self.engine.muted = self.mute or (self.ptt_mode and not self._held)

    def close(self) -> None:
        """The daemon is stopping: a voice load still under way ends without a switch or an event."""
        with self._lock:
            self.closed = True

    def poll_engine(self) -> None:
        """Called now and then by the daemon: the engine's own state changes (stalled, failed) become events."""
        st = self.engine.status()
        now = (st.state, st.detail, st.monitor_device["error"])
        if now != self._engine_seen:
            self._engine_seen = now
            self._emit(["engine"], "engine")

    def poll_profiles(self) -> None:
        """Called now and then by the daemon: a profile added to, removed from or edited in profiles/ (by hand, by
        `rtvc import`, by another program) becomes a `state` event with changed ["profiles"], so the voice lists of
        the TUI and the dock show it without waiting for a voice change. A stat of each profile, once a second."""
        if time.monotonic() - self._profiles_at < PROFILES_CHECK_S:
            return
        self._profiles_at = time.monotonic()
        self._look_at_profiles()

    def _look_at_profiles(self) -> None:
        with self._profiles_lock:
            try:
                self._poll_profiles()
            except (OSError, ProfilesUnreadable) as e:  # (out of file descriptors, a network drive gone, its
                # permissions): said once, nothing taken for removed; looked at again
                said = (
                    f"{e}; looked at again each second"
                    if isinstance(e, ProfilesUnreadable)
                    else f"profiles folder {self.profiles_dir} could not be read ({e}); looked at again each second"
                )
                if said != self._profiles_error:
                    self._profiles_error = said
                    log.warning("%s", said)
                return
            if self._profiles_error:
                log.info("profiles folder %s read again", self.profiles_dir)
                self._profiles_error = ""

    def _poll_profiles(self) -> None:
        now = profiles_seen(self.profiles_dir, self._profiles_parsed)
        mended = self._failures.changed()  # (the files a load failed on changed: its mark goes)
        if now != self._profiles_seen or mended:
            before, after = {n: rest for n, *rest in self._profiles_seen}, {n: rest for n, *rest in now}
            self._profiles_seen = now
            both = after.keys() & before.keys()
            files = {
                "added": sorted(Path(n).stem for n in after.keys() - before.keys()),
                "removed": sorted(Path(n).stem for n in before.keys() - after.keys()),
                "edited": sorted(Path(n).stem for n in both if after[n][:2] != before[n][:2]),
            }
            # the model files a profile names put in place, moved away, or replaced after a load failed on them
            # (voices.list's mark changes), its file unchanged
            moved = {Path(n).stem for n in both if after[n][:2] == before[n][:2] and after[n] != before[n]}
            files["model_files"] = sorted(
                (moved | set(mended)) - set(files["added"] + files["removed"] + files["edited"])
            )
            start = profile_name(self.cfg.voice.profile, self.profiles_dir)
            gone = (
                f"voice.profile '{start}' (the voice rtvc starts with) was removed: rtvc will start with no voice; "
                f"put {start}.toml back, or set voice.profile in {self.cfg.path or 'config.toml'} to another profile"
                if start in files["removed"]
                else ""
            )
            self._emit(["profiles"], "profiles", error=gone, profiles=files)
            for fn in self.profiles_watchers:  # (after the event: not on its dispatch)
                try:
                    fn()
                except Exception:
                    log.exception("a watcher of profiles/ failed")
        if self.no_voice:
            self._watch_start()

    @staticmethod
    def _marked(name: str) -> dict[str, list[str]]:
        """A "profiles" event's names for a profile whose mark in voices.list changed while its file did not."""
        return {"added": [], "removed": [], "edited": [], "model_files": [name]}

    def _start_files(self) -> tuple:
        """What tells the start profile's files apart from an edited or replaced copy: the profile file's bytes (None:
        not there) and run.converter_key (its model files; None where the profile does not load)."""
        from rtvc.profiles import profile_path
        from rtvc.run import converter_key

        try:
            text = profile_path(self.cfg.voice.profile, self.profiles_dir).read_bytes()
        except (OSError, RtvcError):
            text = None
        return text, converter_key(self.cfg, self.cfg.voice.profile)

    def _watch_start(self) -> None:
        """No voice plays because the start profile did not load: once its file or model files differ from those
        the last load failed on (mended, put back, a copy finished, a drive mounted) and have held still for
        START_SETTLE_S (a model file being copied exists from the copy's start), it is loaded again beside the
        daemon's loop (seconds, for a model voice), as a select by "profiles"; failing, it says why, and no voice
        plays on until they change again. A change seen during another load is taken after it."""
        name = self.cfg.voice.profile
        key, now = self._start_files(), time.monotonic()
        if key != self._start_seen[0]:
            self._start_seen = (key, now)
            return
        if key[0] is None or key == self._start_failed or now - self._start_seen[1] < START_SETTLE_S:
            return  # (no profile file: nothing to load)
        if self.loading is not None or (self._retry is not None and self._retry.is_alive()):
            return  # (looked at again at the next poll)
        self._start_failed = key  # (these files are tried now: a failure waits for the next change)

        def load() -> None:
            try:
                self.select_voice(name, "profiles", " (tried again: its files changed)", only_if_no_voice=True)
            except Exception as e:  # (said: the loading event's error, and the log)
                with self._lock:
                    if not self.no_voice:  # (another voice was selected meanwhile)
                        return
                    self.no_voice = f"voice '{profile_name(name, self.profiles_dir)}' (voice.profile) did not load: {e}"
                self._emit(["no_voice"], "profiles")

        self._retry = threading.Thread(target=load, name="rtvc-voice-again", daemon=True)
        self._retry.start()

    # -- events -------------------------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        with self._lock:
            self._listeners = [*self._listeners, fn]

    def remove_listener(self, fn: Listener) -> None:
        with self._lock:
            self._listeners = [f for f in self._listeners if f is not fn]

    def _emit(self, changed: list[str], by: str, error: str = "", **extra: Any) -> None:
        """Tells the listeners, in the order the states were taken: each event's snapshot is queued under the state's
        lock and the queue is handed out by one thread at a time. (The snapshot was taken outside the lock and handed
        out as each thread came: a voice select's event, from its worker thread, taken before a mute toggle's and
        handed out after it, left clients holding the old mute until the next change.) When it returns, its event has
        been handed to every listener (by this thread or by the one handing out before it)."""
        with self._lock:
            state = self.state()
            if state["silent"] != self._silent_said:  # `silent` follows mute and push-to-talk: named where it changed
                self._silent_said = state["silent"]
                changed = [*changed, "silent"]
            event = {"type": "state", "changed": changed, "by": by, "state": state, **extra}
            if error:
                event["error"] = error
            self._events.append(event)
        with self._dispatch_lock:  # (listeners hand over and never take the state's lock: no lock order to keep)
            while self._events:
                event = self._events.popleft()
                for fn in self._listeners:  # a copy-on-write list
                    try:
                        fn(event)
                    except Exception:  # (a bug: said, and the others told; the change it tells of stands)
                        log.exception("a listener failed on the event %s", event.get("changed"))
