"""Switching sound devices while the daemon runs (`devices.select`), and reopening them after they failed.

The new devices are resolved before anything stops, so a device that cannot run at the stream's rate changes
nothing. Then the old streams stop, the engine's rings go idle at a block edge (the voice keeps its state), the
new streams open and the engine re-plans its prefill for their period and latencies. If the new streams cannot
open, the old devices are opened again: the daemon keeps its last good devices and the error names what failed
(`AudioLost` when even that failed: then no device runs, status says so, and the reply does not claim the
current ones stay). The switch is heard as a short gap. On JACK, where the new devices take the streams as they
are, nothing stops: rtvc's running ports are moved to the new devices' (`_rewire`), also to a JACK client that came
after the device list was read (`_unlisted_choice`). A device that is not given is kept as it is: the same device,
not whatever its setting would resolve to now.

PortAudio reads its device list once, when it starts. The list is read again (`devices.rescan`, with the streams
stopped) when a device asked for is not in it (a headset plugged in after rtvc started), when the new devices do
not open (an entry gone stale), when the current streams failed (a USB microphone plugged out and back in keeps a
stale entry), and when `devices.list` asks with `rescan`. Devices are renumbered then: the devices in use, and
those given by index (from a list read before), are found again by name, host API and their place among devices
of that same name (`Pin`). A typo therefore costs a short gap too, and the reply names what the new list holds.

While the devices in use have failed or stalled, the daemon looks for them every RECOVER_S and reopens them
(`recover`), so plugging them back in is all a user has to do (after a minute, a look reads the device list only when
the system's sound devices changed, or every 30 s: rtvc.audio.devices.Rereads). A stop, start or restart of PortAudio
that hangs, or a callback thread of its that spins (`_spinning`), leaves it unusable in this process, and `rtvc serve`
starts anew with its state (`restart_refused`, rtvc.restart; `restart_wanted` says why): on JACK (a JACK server that
died or restarted, PipeWire's restarted under pw-jack) once the server answers again, elsewhere at once (PipeWire's
ALSA plugin after a restart of PipeWire). Where it may not, every later switch says to restart rtvc serve.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from rtvc.audio import pipewire
from rtvc.audio.devices import (
    Device,
    DeviceNotFound,
    Rereads,
    RescanHung,
    find_device,
    find_pinned,
    listing_unchanged,
    nothing_new,
    pin_device,
)
from rtvc.audio.devices import rescan as rescan_devices
from rtvc.audio.io import DeviceChoice, DeviceStreams, StartHung, choose_devices, same_device
from rtvc.config import AudioConfig
from rtvc.engine import Engine
from rtvc.errors import DeviceError
from rtvc.logtext import Lines

log = logging.getLogger("rtvc")
SUSPEND_S = 10.0  # how long a switch waits for the worker to finish its block
RECOVER_S = 2.0  # after the devices failed or stalled, how often they are looked for and reopened
SPIN_SHARE = 0.5  # a stalled stream's callback thread busier than this (of one core) spins: PortAudio hung
SPIN_OVER_S = 0.3  # ... over at least this long
WATCH_RESTARTS = 3  # a JACK watch whose child was killed more often within a minute is not started again


# (role, its AudioConfig key, the kind of device it takes)
def _on_jack(devices) -> bool:
    """Whether any of these devices (None: none) is on JACK's host API."""
    return any(d is not None and "JACK" in d.host_api for d in devices)


class ServerNotAnswering(DeviceError):
    """The JACK server under stalled streams does not answer: nothing may touch them now."""


ROLES = (
    ("input", "input_device", "input"),
    ("output", "output_device", "output"),
    ("monitor", "monitor_device", "output"),
)


class AudioLost(DeviceError):
    """A switch that failed after the old devices had stopped, and left none running."""


def left_to_default(audio: AudioConfig, monitor_default: bool = False) -> set[str]:
    """The roles `audio` names no device for (the desktop's default then): the input, and the output but under
    audio.virtual_mic (rtvc's own node); the monitor only where `monitor_default` (hear-myself on PipeWire's default
    speakers: audio.virtual_mic with no monitor device named)."""
    roles = {"input"} if audio.input_device == "" else set()
    if audio.output_device == "" and not audio.virtual_mic:
        roles.add("output")
    return roles | ({"monitor"} if monitor_default else set())


def following(choice: DeviceChoice, defaults: set[str]) -> set[str]:
    """Of the roles in `defaults` (left to the desktop's default: left_to_default), those whose device is on
    PipeWire's JACK (under pw-jack, or with audio.virtual_mic): there rtvc chose PipeWire's default device, and
    follows it as programs on PipeWire do (DeviceSwitcher.follow). Not on plain JACK (its 'system' ports)."""
    from rtvc.audio import voice_mic

    devices = {"input": choice.input, "output": choice.output, "monitor": choice.monitor}
    roles = {r for r in defaults if (d := devices.get(r)) is not None and "JACK" in d.host_api and d.name != "system"}
    return roles if roles and voice_mic.on_pipewire_jack() else set()


def describe_follow(roles: set[str]) -> str:
    """'microphone and speakers', for the log."""
    words = [w for role, w in (("input", "microphone"), ("output", "speakers"), ("monitor", "speakers for hear-myself"))
             if role in roles]  # fmt: skip
    return " and ".join(words)


def describe_choice(choice: DeviceChoice) -> dict[str, Any]:
    return {
        "virtual": False,
        "input": choice.input.title(),
        "output": choice.output.title(),
        "monitor": choice.monitor.title() if choice.monitor else None,
    }


DEFAULTS_CHANGED = "PipeWire's default devices changed"  # (why a role follows them: the default's change, or
# a followed device gone while the default stayed: _follow_after_loss)
KEPT = "kept (the same devices: nothing stopped)"  # (a switch to the devices in use: no change)


class DeviceSwitcher:
    """Owns the running DeviceStreams of `rtvc serve`; `switch()` and `recover()` run on worker threads."""

    def __init__(self, engine: Engine, audio: AudioConfig, choice: DeviceChoice, streams: DeviceStreams):
        self.engine = engine
        self.audio = audio
        self.choice = choice
        self.streams = streams
        self._lock = threading.Lock()  # one switch at a time (the API also refuses a second one: busy)
        self._wedged = ""  # why PortAudio cannot be used again in this process (a stop or restart that hung)
        self._stopped = ""  # why no device runs (AudioLost), until one does again
        self._failed_since: float | None = None  # (recover_due: when the devices were first seen failed)
        self._lost = ""  # what the engine said when they failed, kept while they are looked for
        self._rereads = Rereads(0.0)  # (recover_due: whether a try reads the device list again now)
        # why the last recovery did not bring them back ('' after none failed): the next tries' lines (the list read
        # again, the reopen refused) go to the debug log; the engine's line says a reason that changes (a device
        # gone for an hour was 3600 lines in the log, two every RECOVER_S)
        self._not_back = ""
        self._quiet = False  # (the switch under way is such a try: switch's `quiet`)
        self._cpu: tuple[float, dict[int, float]] | None = None  # (_spinning: the last look at the callback threads)
        self._spins = ""  # why recover() is to give PortAudio up at once ('' otherwise)
        self._watch: Any = None  # rtvc.audio.jack_watch.JackWatch while the streams run on JACK
        self._quantum_watch: Any = None  # rtvc.audio.pipewire.QuantumWatch while they run on PipeWire's ALSA plugin
        self._waited: list[list[str]] = []  # (_waiting) [direction, rtvc port, peer]: lost with their program
        self._seed: dict[str, Any] = {}  # for the next watch, after a reopen (_relink)
        self._watch_deaths: list[float] = []  # (_watch_died: when the watch's child was killed, within the last minute)
        self._reopening = False  # the switch under way keeps every device (a rescan, a recovery)
        self._clients: list[str] | None = None  # JACK's clients, asked before a switch stopped the streams (_open)
        # which devices run: one more at each reopen and each move of rtvc's JACK ports (which keeps the streams),
        # so that what a watch or a thread asked for about earlier ones is not done to these (switch's only_if)
        self._setup = 0
        self._closed = False  # stop() was called: nothing opens again
        # serve's: PortAudio stuck on a JACK server makes the process start anew once the server answers again
        # (asked at each wedge: why it may not, rtvc.restart.refusal; '' where it may)
        self.restart_refused: Callable[[], str] = lambda: "rtvc serve is not set to start itself anew here"
        self.restart_wanted = ""  # why, once it may (serve's loop then restarts)
        self._fix = "restart rtvc serve"  # what the words about a stuck PortAudio tell the user to do
        self.on_routing: Callable[[dict[str, Any]], None] | None = None  # (serve: the controller's event)
        # the roles whose device is PipeWire's default, followed when the desktop's default changes (following)
        self.follow: set[str] = set()
        self._defaults_watch: Any = None  # rtvc.audio.pipewire.MetadataWatch of "default" while some role follows
        self._tried: dict[str, str] = {}  # role: the default node last gone for (_defaults_wanted)
        # (serve: the controller's `devices` event: an error, or ''; whether hear-myself went off with it)
        self.on_followed: Callable[[str, bool], None] | None = None

    @property
    def _waiting(self) -> list[list[str]]:
        return self._waited

    @_waiting.setter
    def _waiting(self, lost: list[list[str]]) -> None:
        """(Each change of what is waited for: the engine says whether the call hears nothing now.)"""
        from rtvc.audio import voice_mic

        self._waited = lost
        gone = any(d == "outputs" and _client(q) == voice_mic.LABEL for d, _p, q in lost)
        self.engine.output_unheard = voice_mic.GONE if gone else devices_gone(getattr(self, "choice", None), lost)

    def stuck(self) -> bool:
        """PortAudio cannot be used again in this process: every switch is refused (AudioLost) until rtvc restarts."""
        return bool(self._wedged)

    def in_use(self) -> dict[str, Any]:
        """The devices in use; with `stopped` (why) while none runs: the names are then those last used."""
        got = describe_choice(self.choice)
        if self._wedged:
            got["stopped"] = f"{self._wedged} ({self._fix})"
        elif self._stopped:
            got["stopped"] = self._stopped
        if self._waiting:
            got["waiting"] = [w[1:] for w in self._waiting]
        if self.follow:
            got["follows"] = sorted(self.follow)
        if self.audio.virtual_mic:
            got["virtual_mic"] = True  # (the output is rtvc's virtual microphone, and stays: _check_output_kept)
        return got

    def switch(
        self,
        input: str | None,
        output: str | None,
        monitor: str | None = None,
        rescan: bool = False,
        only_if: int | None = None,
        follow: bool = False,
        quiet: bool = False,
    ) -> dict[str, Any] | None:
        """None keeps a device as it is; monitor "" runs without one (hear-myself then has nowhere to go).
        A monitor that was lost (unplugged) is not kept: reopening it would fail, and take the switch and the
        fallback to the old devices with it. `rescan`: read the device list again even when nothing needs it.
        `only_if`: only while the devices are still those of this setup (self._setup; None back otherwise: a reopen
        they asked for, made already, or a user's switch meanwhile).
        A device named stops following PipeWire's default (self.follow), "" (the default) starts; `follow`: the
        switch follows the default (_follow), and what follows stays so. `quiet`: a recovery's try after one that
        failed for the same reason (its lines go to the debug log)."""
        with self._lock:
            self._quiet = quiet
            if self._closed:  # (a reopen asked for by a watch as rtvc stops: no device may open again)
                raise DeviceError("rtvc is stopping: no device is opened now", "start rtvc again")
            if only_if is not None and self._setup != only_if:
                return None
            if self._wedged:
                raise AudioLost(self._wedged, self._fix)
            self._check_output_kept(output)
            self._check_jack_answers()
            self._reopening = input is None and output is None and monitor is None  # (the same ones: for the log)
            lost_monitor = not self.engine.has_monitor_device and bool(self.engine.monitor_error)
            asked = {r for r, v in (("input", input), ("output", output), ("monitor", monitor)) if v is not None}
            if monitor is None and lost_monitor:
                monitor = ""
            given = {"input": input, "output": output, "monitor": monitor}
            cfg = dataclasses.replace(
                self.audio, **{key: given[role] for role, key, _ in ROLES if given[role] is not None}
            )
            current = self._current(lost_monitor)
            kept = {role: d for role, d in current.items() if given[role] is None and d is not None}
            old_cfg = dataclasses.replace(self.audio, monitor_device="") if lost_monitor else self.audio
            choice, first, late = None, None, None
            if not (rescan or self.engine.devices_failed or self._reopening or lost_monitor):
                # (a JACK client started after the list was read, named exactly: moved to without reading the list)
                late = self._unlisted_choice(cfg, kept, given)
            if not (rescan or self.engine.devices_failed) and late is None:
                try:
                    choice = choose_devices(cfg, kept)  # DeviceError: nothing has been touched
                except DeviceNotFound as e:
                    first = e  # plugged in since PortAudio read its list? It is read again below
                # (unless a new PortAudio, in a child, lists nothing new: a name mistyped, a device not plugged in,
                # stopped the voice for a quarter of a second and the answer said the current devices stayed, a review)
                if first is not None and nothing_new():
                    log.info("devices: not switched (%s); none was plugged in since the list was read", first)
                    raise first
            elif (
                rescan
                and not (follow or asked or self.engine.devices_failed or lost_monitor)
                and listing_unchanged(list(current.values()))
            ):  # (the picker's "look again" asked while nothing was plugged in or out: no gap for it)
                log.info("devices: a new PortAudio (in a child process) lists the same devices; nothing stopped")
                self._seed = {"lost": self._waiting}
                return self._took(self.audio, self.choice, set(), KEPT)
            # (before the list is read again: the devices in use, and indices given from the list as it is)
            pins = {role: pin_device(d) for role, d in current.items() if d is not None}
            wanted = {
                **{role: pins[role] for role in kept},
                **{r: pin_device(d) for r, d in _given_indices(cfg, given).items()},
            }
            links = None
            if not (self._reopening or lost_monitor or rescan):
                moving = late or choice
                got, links = (None, None) if moving is None else self._rewire(cfg, moving, set() if follow else asked)
                if got is not None:
                    return got
            # (a move that failed part-way: the connections as they were before it, for _relink)
            links = links if links is not None else self._jack_links(current)
            # (JACK's clients asked while the audio still runs, not in the gap: rtvc.audio.io, _lookalikes)
            self._clients = self._jack_clients(current, choice)
            self._stop_and_suspend()
            if choice is not None:
                try:
                    choice = self._open(choice, cfg)
                    return self._switched(cfg, choice, links, current, set() if follow else asked)
                except DeviceError as e:  # an entry gone stale (unplugged since the list was read)? Read it again
                    if self._wedged:  # (its start hung: PortAudio is done for in this process)
                        raise
                    log.info("devices: the new ones did not open (%s); reading the device list again", e)
                    first = e
            try:
                rescan_devices(quiet=self._quiet)
            except RescanHung as e:
                self._wedge(e.what)
            except DeviceError as e:  # not read again (a JACK server that died): the old list stands
                if first is not None:
                    e = DeviceError(f"{first.what}; and the device list could not be read again: {e.what}", e.fix)
                self._fall_back(current, old_cfg, {}, e, links)
            try:
                choice = choose_devices(cfg, {role: find_pinned(p, role) for role, p in wanted.items()})
                choice = self._open(choice, cfg)
            except DeviceError as e:
                if self._wedged:
                    raise
                self._fall_back(None, old_cfg, pins, e, links)
            return self._switched(cfg, choice, links, current, set() if follow else asked)

    def _check_output_kept(self, output: str | None) -> None:
        """Under audio.virtual_mic the output is rtvc's virtual microphone, what the call records: another output
        took the voice from the call without a word (the TUI offered every output). Refused, touching nothing."""
        from rtvc.audio import voice_mic

        if not self.audio.virtual_mic or output is None:
            return
        try:
            named = find_device(output, "output", self.audio.host_api).name if output else ""
        except DeviceError:
            named = output
        if named != voice_mic.LABEL:
            raise DeviceError(
                f"rtvc plays into its virtual microphone '{voice_mic.LABEL}' (audio.virtual_mic), what the call "
                f"records: another output ({output or 'the default speakers'}) would take your voice from the call",
                "hear yourself on speakers or headphones with hear-myself (devices.select with monitor, d and h in "
                "the UI); to play to speakers instead, start rtvc without --virtual-mic",
            )

    def _current(self, lost_monitor: bool) -> dict[str, Device | None]:
        c = self.choice
        return {"input": c.input, "output": c.output, "monitor": None if lost_monitor else c.monitor}

    def _check_jack_answers(self) -> None:
        """Streams on JACK that stalled: closing them blocks for as long as the server is stopped (a frozen
        machine, a laptop's suspend), and leaves PortAudio unusable. ServerNotAnswering, touching nothing, while
        the server does not answer (rtvc.audio.jack_probe). Where it is gone, or a new one runs (rtvc's client
        not in its graph), stopping them would hang for minutes: PortAudio is as good as stuck (`_wedge`)."""
        if self.engine.status().state != "stalled":  # (failed: its streams may be closed, no port in the graph)
            return
        if not _on_jack((self.choice.input, self.choice.output, self.choice.monitor)):
            return
        from rtvc.audio import jack_links, voice_mic
        from rtvc.audio.jack_probe import GONE, NOT_ANSWERING, WITHOUT, jack_server

        name, others = jack_links.own_name(), (voice_mic.LABEL,)  # (the virtual microphone's name holds rtvc's)
        said = jack_server(client=name, not_client=others)
        if said in (GONE, WITHOUT):  # (asked twice: one failed open of a client is no server gone)
            time.sleep(0.5)
            said = jack_server(client=name, not_client=others)
        # (on PipeWire's JACK, the virtual microphone's or pw-jack's, the server is PipeWire: a review found "the JACK
        # server" named to a user who never set one up, and no word of PipeWire)
        server = "PipeWire (its JACK, which rtvc plays through)" if voice_mic.on_pipewire_jack() else "the JACK server"
        if said == GONE:
            self._wedge(f"{server} rtvc played on is gone, and PortAudio cannot let go of it")
        if said == WITHOUT:
            self._wedge(f"{server} was restarted (or dropped rtvc), and PortAudio cannot let go of the old one")
        if said == NOT_ANSWERING:
            raise ServerNotAnswering(
                "the JACK server is not answering (stopped, or stuck): the devices were left as they are, since "
                "closing its streams now would hang",
                "wait for it to run again (rtvc goes on by itself), or restart the JACK server",
            )

    def _stop_and_suspend(self) -> None:
        self._unwatch(keep=True)
        if not self.streams.stop():
            self._wedge("the current audio device did not stop: it is gone or hung")
        try:
            # a voice's first block can be slow (a cold model): the worker gets time to reach the edge
            self.engine.suspend(timeout=SUSPEND_S)
        except RuntimeError:
            what = f"the audio worker did not finish its block within {SUSPEND_S:g} s, so no device was opened"
            self.engine.report_device_error(what)
            self._stopped, self._waiting = what, []
            raise AudioLost(what, "restart rtvc serve (and report it: a block should never take this long)") from None

    def _wedge(self, what: str) -> NoReturn:
        """PortAudio cannot be used again in this process (`what`): serve starts anew where it may (on JACK once the
        server answers again; elsewhere at once: a stream's stop or start that hung on PipeWire's ALSA plugin, after
        a restart of PipeWire, left rtvc silent until restarted by hand), else the user is told to restart it."""
        self._wedged, self._waiting = what, []  # (no watch runs any more: nothing is waited for)
        jack = _on_jack((self.choice.input, self.choice.output, self.choice.monitor))
        if refused := self.restart_refused():  # (it said "restart rtvc serve" alone, and not why it did not)
            # (waited for: it stayed silent for good once the bound had passed, the JACK server long back)
            self._fix = f"{refused}: it starts itself anew once that many are older, or restart rtvc serve"
        elif jack:
            from rtvc.audio import voice_mic

            if voice_mic.on_pipewire_jack():
                self._fix = (
                    "rtvc serve restarts itself once PipeWire runs again (systemctl --user start pipewire "
                    "wireplumber), or restart rtvc serve"
                )
            else:
                self._fix = "rtvc serve restarts itself once the JACK server runs again, or restart rtvc serve"
        else:
            self._fix = "rtvc serve restarts itself now"
            self.restart_wanted = what
        if not self.restart_wanted:
            threading.Thread(target=self._await, args=(what, jack), name="rtvc-await-restart", daemon=True).start()
        self.engine.report_device_error(f"{what} ({self._fix})")
        raise AudioLost(what, self._fix)

    def _await(self, what: str, jack: bool) -> None:
        """PortAudio is stuck (on a JACK server that went away or dropped rtvc, or in a call that hung): only a new
        process can play again. Once serve may start anew (rtvc.restart's bound) and, on `jack`, the server answers
        (a new one started, PipeWire restarted), serve is asked to restart."""
        from rtvc.audio.jack_probe import ANSWERS, jack_server

        tries = 0
        while not self._closed:
            if not self.restart_refused() and (not jack or jack_server() == ANSWERS):
                self.restart_wanted = what
                return
            tries += 1
            time.sleep(1.0 if tries < 60 else 5.0)  # (a Python child each time: less often once it is long gone)

    @staticmethod
    def _jack_clients(current: dict[str, Device | None], choice: DeviceChoice | None) -> list[str] | None:
        """JACK's clients now, where the devices are JACK's (for the streams to open: rtvc.audio.io); None otherwise."""
        new = () if choice is None else (choice.input, choice.output, choice.monitor)
        if not _on_jack((*current.values(), *new)):
            return None
        from rtvc.audio import jack_links

        return jack_links.clients()

    @staticmethod
    def _jack_links(current: dict[str, Device | None]) -> Any:
        """Before a reopen: what rtvc's JACK ports are connected to (rtvc.audio.jack_links), when the devices
        in use are JACK's; None otherwise."""
        if not _on_jack(current.values()):
            return None
        from rtvc.audio import jack_links

        return jack_links.snapshot()

    def _relink(self, links: Any, before: dict[str, Device | None], after: DeviceChoice) -> None:
        """After a reopen (a rescan, a recovery, a refused switch, a switch of another role): the JACK connections of
        the ports of each role whose device and channels did not change, as they were (`links`: a snapshot of the
        ports before, self.choice's), and those waited for on them; for a role on another device (or another count
        of channels), PortAudio's own connections stand for it (the user chose that device), and those the ports had
        to other programs are made again, waited for or not (_links_after). The next watch waits on for those whose
        program is gone, and knows what the ports should be connected to now."""
        waited, self._waiting, self._seed = self._waiting, [], {}
        if links is None:
            return
        from rtvc.audio import jack_links

        restore, add, expected = _links_after(links, waited, self.choice, before, after)
        # (always: what the ports are connected to then, PortAudio's connections too, is what the watch starts from,
        # so that a program that closes before its first look, the new device included, is seen)
        gone, now = jack_links.restore(links[0], restore)
        if add:
            more, later = jack_links.add(add)
            gone, now = gone + [g for g in more if g not in gone], later or now
        self._seed = {"lost": gone, "expected": now[1] if now else expected}
        self._waiting = gone

    def _switched(
        self,
        cfg: AudioConfig,
        choice: DeviceChoice,
        links: Any,
        before: dict[str, Device | None],
        asked: set[str],
    ) -> dict[str, Any]:
        """`asked`: the roles the user chose a device for: followed when it is the default ("")."""
        self._relink(links, before, choice)
        return self._took(cfg, choice, asked, "reopened" if self._reopening else "switched")

    def _took(self, cfg: AudioConfig, choice: DeviceChoice, asked: set[str], how: str) -> dict[str, Any]:
        """The switch's answer: the devices in use and the latency; `changed` False where nothing changed (the same
        devices asked for again, kept as they ran: the caller sends no event)."""
        self.streams.jack_latency()
        followed = self.follow
        self.audio, self.choice, self._stopped = cfg, choice, ""
        self.follow = (self.follow - asked) | following(choice, left_to_default(cfg) & asked)
        self._tried = {role: node for role, node in self._tried.items() if role not in asked}
        self._watch_jack()
        log.info("devices %s:\n%s", how, Lines(choice.describe()))
        changed = how != KEPT or self.follow != followed
        return {"in_use": self.in_use(), "latency_ms": self._latency_ms(), "changed": changed}

    def _unlisted_choice(
        self, cfg: AudioConfig, kept: dict[str, Device], given: dict[str, str | None]
    ) -> DeviceChoice | None:
        """The devices asked for, where some are JACK clients that came after PortAudio read its list (a headset
        plugged in under PipeWire's JACK, a program started since): by their exact JACK name, with JACK's word for
        their ports, so that rtvc's ports can be moved to them (_rewire) without reading the list again, which
        stops the streams; before a listed device whose name holds that name ("USB Headset" for a late "Headset").
        None where no name given is such a client: the switch then takes the list's words (a part of a name, an
        index), and reads the list again for a name it lacks."""
        old = self.choice
        on_jack = [d for d in (old.input, old.output, old.monitor) if d is not None and "JACK" in d.host_api]
        if self.engine.devices_failed or len(on_jack) != len([d for d in (old.input, old.output, old.monitor) if d]):
            return None
        from rtvc.audio import jack_links
        from rtvc.audio.devices import list_devices

        fixed, late, listed = dict(kept), False, [d for d in list_devices() if "JACK" in d.host_api]
        for role, _key, kind in ROLES:
            name = given[role]
            if not name or role in fixed:  # (None: kept; "": the default, which the list names)
                continue
            exact = [d for d in listed if d.name == name and d.channels(kind) > 0]
            if len(exact) == 1 or name.strip().isdigit():  # (an index: the list's)
                try:
                    fixed[role] = find_device(name, kind, cfg.host_api) if not exact else exact[0]
                    continue
                except DeviceError:
                    return None
            if exact or name == jack_links.own_name():  # (twins: the list's words; rtvc's own ports: a loop)
                return None
            counts = jack_links.client_ports(name)
            if counts is None or counts[0 if kind == "input" else 1] == 0:
                return None
            api, rate = on_jack[0].host_api, float(self.engine.samplerate)
            fixed[role], late = Device(-1, name, api, counts[0], counts[1], rate, 0.0, 0.0), True
        if not late:
            return None
        try:
            return choose_devices(cfg, fixed)
        except DeviceError:
            return None

    def _rewire(self, cfg: AudioConfig, choice: DeviceChoice, asked: set[str]) -> tuple[dict[str, Any] | None, Any]:
        """On JACK, a device is another JACK client on the same server, and rtvc's streams are ports that PortAudio
        connected to its ports when they started: when the new devices take the streams as they are (the same
        input channel, one duplex stream or two, a monitor stream or none), rtvc's running ports are moved to theirs
        (rtvc.audio.jack_links.route: only the old device's connections are cut, those the user made to other
        programs stay) and nothing stops: no gap, no worker suspended. None where that is not so,
        or the move failed: the caller then reopens the streams on the new devices, as on any other host API; with
        the connections as they were before a move that failed (what jack_links.route saw first), which a reopen
        makes again for the devices it keeps. The same devices as now: nothing stops or moves."""
        old = self.choice
        devices = (choice.input, choice.output, choice.monitor, old.input, old.output, old.monitor)
        same_shape = (
            all(d is None or "JACK" in d.host_api for d in devices)
            and old.duplex == choice.duplex
            and (old.monitor is None) == (choice.monitor is None)
            # (the voice is the same on each output channel: rtvc's ports are spread over the new device's as many
            # as the choice says, one mono port on stereo speakers, the first of two on a mono headset)
            and old.input_channel == choice.input_channel
        )
        if not same_shape or self.engine.devices_failed or not self.streams.running:
            return None, None
        groups = []
        if not same_device(choice.input, old.input):
            groups.append(("inputs", 0, choice.input_channel, choice.input.name, old.input.name))
        if not same_device(choice.output, old.output):
            out = (old.output_channels, choice.output.name, old.output.name, choice.output_channels)
            groups.append(("outputs", 0, *out))
        if choice.monitor is not None and old.monitor is not None and not same_device(choice.monitor, old.monitor):
            mon = (old.monitor_channels, choice.monitor.name, old.monitor.name, choice.monitor_channels)
            groups.append(("outputs", old.output_channels, *mon))
        # (the streams as they are: their channels)
        choice = dataclasses.replace(choice, output_channels=old.output_channels, monitor_channels=old.monitor_channels)
        if not groups:  # (a reopen gave a gap and the same connections: _relink)
            self._seed = {"lost": self._waiting}
            return self._took(cfg, choice, asked, KEPT), None
        from rtvc.audio import jack_links

        self._unwatch(keep=True)  # (the move is no reroute of the user's, nor a program lost)
        moved, before, after = jack_links.route(groups)
        if moved is None:
            return None, before
        # a connection to the old device waited for (its program closed) on a port moved is not made again: the new
        # device stands; one to another program (OBS restarting) still is
        ports = before[2] if before else {}
        replaced = {(p, g[4]) for g in groups for p in ports.get(g[0], [])[g[1] : g[1] + g[2]]}
        self._waiting = [w for w in self._waiting if (w[1], _client(w[2])) not in replaced]
        # (and the connections as the move left them: a program that closes before the new watch looks is seen)
        self._seed = {"lost": self._waiting, **({"expected": after[1]} if after else {})}
        self.streams.choice = choice
        self._setup += 1
        return self._took(cfg, choice, asked, "switched (rtvc's JACK ports moved to them: the audio ran on)"), None

    def _fall_back(
        self,
        old: dict[str, Device | None] | None,
        old_cfg: AudioConfig,
        pins: dict[str, Any],
        e: DeviceError,
        links: Any = None,
    ) -> NoReturn:
        """The new devices are not to be had (`e`): the previous ones run again (`old`, as they were, or found
        again from `pins` after the list was read anew) and `e` is raised; AudioLost when they do not run."""
        if self._reopening:  # (a rescan or a recovery: no new devices were asked for)
            log.log(
                logging.DEBUG if self._quiet else logging.INFO,
                "devices: they did not reopen (%s); trying them as they were",
                e,
            )
        else:
            log.info("devices: the new ones did not run (%s); reopening the previous ones", e)
        try:
            if old is None:
                old = {role: find_pinned(p, role) for role, p in pins.items()}
            fixed = {role: d for role, d in old.items() if d is not None}
            choice = choose_devices(old_cfg, fixed)
            choice = self._open(choice, old_cfg)
            self._relink(
                links, {"input": self.choice.input, "output": self.choice.output, "monitor": choice.monitor}, choice
            )
            self.streams.jack_latency()
        except DeviceError as again:  # both gone (unplugged meanwhile): say so, in status too
            if self._wedged:
                raise
            if again.what == e.what:  # (a device in use is gone: the new choice needed it too)
                what = f"{e.what}; no device runs now"
            else:
                what = f"the new devices did not run ({e.what}) and the previous ones did not reopen ({again.what})"
            self.engine.report_device_error(what)
            self._stopped, self._waiting = what, []
            raise AudioLost(what, "select devices that are there with devices.select (devices.list shows them)") from e
        self.audio, self.choice, self._stopped = old_cfg, choice, ""  # (without a lost monitor)
        self._watch_jack()
        raise e

    def _open(self, choice: DeviceChoice, cfg: AudioConfig) -> DeviceChoice:
        """Open and start `choice`'s streams; they become the running ones only once started (a device can
        open and then refuse to start: busy, or unplugged in between). Returns the streams' choice (a stream opened
        on another JACK device may have taken fewer channels: rtvc.audio.io)."""
        clients, self._clients = self._clients, None  # (asked before the streams stopped, for the first open only)
        streams = DeviceStreams(choice, self.engine, cfg.samplerate, cfg.period, jack_clients=clients)
        self.engine.resume(streams.period)
        try:
            streams.start(jack_latency=False)  # (asked once the ports are reconnected: _switched, _fall_back)
        except StartHung as e:
            self._wedge(e.what)
        except DeviceError:
            streams.stop()
            raise
        self.streams = streams
        self._setup += 1
        return streams.choice

    def recover_due(self, now: float) -> bool:
        """Called now and then by the daemon (serve's loop): whether to call `recover` now (on a thread of its
        own: it takes a while). While the devices in use have failed or stalled (a USB microphone unplugged, a
        laptop back from sleep), that is every RECOVER_S, so that plugging them back in is all a user has to do.
        Not while a switch is under way, and never once PortAudio is stuck (then rtvc must restart)."""
        if self._lock.locked():
            # a switch or recovery under way: the engine runs between its new streams' opening and their failing to
            # start, and that is no recovery (the next failure's words, which quote this one, became the cause the
            # next try quoted: the detail grew by a sentence at each such poll while a device stayed busy)
            return False
        if self._wedged or not self.engine.devices_failed:
            self._failed_since, self._lost, self._not_back, self._cpu, self._spins = None, "", "", None, ""
            return False
        if not self._spins and (spins := self._spinning()):
            self._spins = spins
            return True  # (at once: such a thread writes its error lines to the log as fast as it can)
        if self._failed_since is None:
            self._failed_since = now
            self._lost = self.engine.status().detail
            self._rereads = Rereads(now)
        if now - self._failed_since < RECOVER_S:
            return False
        self._failed_since = now
        # (after a minute, only when the system's sound devices changed, or every 30 s: each try reads PortAudio's
        # list again, 20-200 ms, and ~17 KiB kept where PipeWire's ALSA plugin is installed: 30 MB an hour at one every
        # 2 s)
        return self._rereads.due(now)

    def _spinning(self) -> str:
        """Why the stalled streams' callback thread is taken for spinning, '' if not. PortAudio 19.6's ALSA host API
        (Debian 12's) can loop for ever in its xrun handling once the device's restart keeps failing (seen on
        PipeWire's ALSA plugin after PipeWire restarted): no callback comes, the thread takes a whole core, its
        error lines fill the log (about 100 MB/s) and its memory grows, and no stop can end it (it never reads the
        stop request). Seen from the thread's CPU time across two looks (serve's loop asks every POLL_S), timed by
        the monotonic clock itself, not recover_due's `now` (CPU seconds are compared with real ones). Not on JACK,
        whose callback threads are the server's (a stalled JACK server: _check_jack_answers)."""
        if self.engine.status().state != "stalled" or os.name != "posix":
            return ""
        if _on_jack((self.choice.input, self.choice.output, self.choice.monitor)):
            return ""
        now, before = time.monotonic(), self._cpu
        if before is not None and now - before[0] < SPIN_OVER_S:
            return ""  # (the look before stands until one far enough from it)
        ticks = os.sysconf("SC_CLK_TCK")
        cpu: dict[int, float] = {}
        for counters in self.engine.device.counters:
            tid = counters.tid
            try:
                fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split() if tid > 0 else []
            except OSError:  # (no such thread now, or no /proc)
                fields = []
            if fields:
                cpu[tid] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        self._cpu = (now, cpu)
        if before is None:
            return ""
        for tid, seconds in cpu.items():
            share = (seconds - before[1].get(tid, seconds)) / (now - before[0])
            if share >= SPIN_SHARE:
                return (
                    f"PortAudio's audio thread spins without calling back ({min(share, 1.0):.0%} of a core): it"
                    " cannot be stopped"
                )
        return ""

    def _defaults_now(self) -> dict[str, str]:
        """_defaults_wanted for PipeWire's default devices as they are now ({} when nothing follows them)."""
        if not self.follow:
            return {}
        from rtvc.audio import voice_mic

        try:
            return self._defaults_wanted({kind: voice_mic.default_node(kind) for kind in ("input", "output")})
        except DeviceError:
            return {}

    def recover(self) -> bool:
        """Reopen the devices in use, after reading the device list again (a switch that keeps them all). False
        (status says why, and that rtvc keeps looking) when they are not there."""
        if self._wedged or not self.engine.devices_failed:
            return False
        if self._spins:
            self.give_up(self._spins)
            return False
        lost = self._lost or self.engine.status().detail
        try:
            # (a device that follows PipeWire's default: the default now, if it is another, e.g. a headset unplugged)
            now = self._defaults_now()
            roles = (now.get(role) for role in ("input", "output", "monitor"))
            self.switch(*roles, rescan=True, follow=True, quiet=bool(self._not_back))
        except ServerNotAnswering as e:  # stalled, not failed: its callbacks may come back by themselves
            self.engine.stall_note = e.what
            return False
        except DeviceError as e:
            if not self._wedged:  # (stuck: status already says to restart)
                self._not_back = e.what  # (a new reason: the engine's line says it, its detail changed)
                self.engine.report_device_error(
                    f"{lost}; not back yet ({e.what}); rtvc looks for it every {RECOVER_S:g} s"
                    " (plug it back in, or choose another device with devices.select)"
                )
            return False
        self._not_back = ""
        log.info("devices back after a failure (%s)", lost)
        return True

    def rescan(self) -> dict[str, Any]:
        """Read PortAudio's device list again, the current devices kept (a short gap in the audio)."""
        return self.switch(None, None, None, rescan=True)

    def _latency_ms(self) -> float | None:
        lat = self.engine.latency()
        return None if lat is None else round(lat.ms(lat.total), 2)

    def start(self) -> None:
        """Start the streams; under JACK, its figures for the devices' latency are asked on a thread of its own (a
        child process, up to seconds while a server does not answer: serve's loop, which looks after a stalled
        server, must not wait for it), and kept only if these streams still run when the answer comes."""
        with self._lock:  # (a switch asked for meanwhile waits: these streams may be moving their ports, rtvc.audio.io)
            streams = self.streams
            streams.start(jack_latency=False)
            if _on_jack((self.choice.input, self.choice.output)):
                args = (streams, self._setup)
                threading.Thread(target=self._ask_jack, args=args, name="rtvc-jack-latency", daemon=True).start()
            self._watch_jack()

    def give_up(self, what: str) -> bool:
        """PortAudio hung outside a switch (`what`: the first start of the streams, rtvc.audio.io.StartHung; a callback
        thread that spins, _spinning): given up as a switch gives it up (status, the answers to a switch, serve
        starting anew). False where serve may not start anew (serve must then end, saying why)."""
        with self._lock:
            may = not self.restart_refused()
            try:
                self._wedge(what)
            except AudioLost:  # (status says it, and serve starts anew where it may)
                pass
        return may

    def _ask_jack(self, streams: DeviceStreams, setup: int) -> None:
        answer = streams.ask_jack()
        with self._lock:  # (a switch meanwhile asked for its own streams' figures)
            if self._setup == setup:
                streams.apply_jack(answer)

    def stop(self) -> bool:
        """False when PortAudio is stuck (a stop or restart that hung): the process must then exit without
        terminating it."""
        with self._lock:
            self._closed = True
            self._unwatch()
            if self._wedged:  # (its streams would hang the stop too: PortAudio is left as it is)
                return False
            return self.streams.stop()

    # -- JACK's graph, watched while the streams run on it (rtvc.audio.jack_watch) ------------------------
    def _watch_jack(self) -> None:
        """(Under the lock, the streams running.) Reroutes of rtvc's ports update the devices' latency; a program
        rtvc is connected to that closes is said, and connected again when it is back."""
        seed, self._seed = self._seed, {}
        self._watch_deaths = []  # (a watch given up starts with the devices' reopen, as said)
        self._unwatch(keep=True)
        self._watch_pipewire()
        self._watch_defaults()
        if not _on_jack((self.choice.input, self.choice.output, self.choice.monitor)):
            self._waiting = []
            return
        from rtvc.audio import jack_links

        name = jack_links.own_name()
        if name is None:
            return
        self._start_watch(name, self.streams, seed)

    def _start_watch(self, name: str, streams: DeviceStreams, seed: dict[str, Any]) -> None:
        from rtvc.audio.jack_watch import JackWatch

        # (the watch itself, not only the streams: a move of rtvc's ports keeps the streams and starts a new watch)
        watch: list[Any] = []
        died = lambda: self._watch_died(streams, watch)  # noqa: E731
        self._watch = JackWatch(name, lambda what: self._watched(streams, what, watch), seed, died)
        watch.append(self._watch)

    def _watch_died(self, streams: DeviceStreams, watch: list[Any]) -> None:
        """(On the watch's thread.) Its child was killed (by hand, or the kernel out of memory): another starts, with
        what was waited for, so that a program rtvc was connected to is still connected again when it is back. One
        killed again and again (WATCH_RESTARTS within a minute) is given up, said, until the devices reopen."""
        with self._lock:
            if self.streams is not streams or self._watch is None or self._watch not in watch or self._closed:
                return
            now = time.monotonic()
            self._watch_deaths = [t for t in self._watch_deaths if now - t < 60.0] + [now]
            if len(self._watch_deaths) > WATCH_RESTARTS:
                log.info(
                    "JACK routing: the watch was killed %d times within a minute: not started again until the devices"
                    " reopen (a reroute of rtvc's ports or a program that closes is not seen meanwhile)",
                    len(self._watch_deaths),
                )
                self._watch = None
                return
            from rtvc.audio import jack_links

            name = jack_links.own_name()
            if name is not None:
                log.info("JACK routing: the watch starts again")
                self._start_watch(name, streams, {"lost": self._waiting})

    # -- PipeWire's quantum, watched while the streams run through its ALSA plugin (rtvc.audio.pipewire) ----
    def _watch_pipewire(self) -> None:
        """(Under the lock, the streams running.) A quantum the user forces or raises later (or lets go of)
        reopens the devices sized for it: through PipeWire's ALSA plugin a quantum above what the streams were
        opened for lets no sound through, or underruns."""
        streams = self.streams
        if streams.pipewire_defaults is None:  # (no device of these reaches a PipeWire that answered at their open)
            return
        self._quantum_watch = pipewire.QuantumWatch(
            lambda q, key, setup=self._setup: self._quantum_changed(streams, setup, q, key),
            streams.quantum,
            streams.pipewire_defaults,
        )

    def _quantum_changed(self, streams: DeviceStreams, setup: int, quantum: int, key: str) -> None:
        if self._setup != setup or pipewire.sizing(quantum) == streams.sized_for:
            return
        why = f"at least {quantum} frames ({key})" if quantum else "no longer held up by a setting"
        log.info("PipeWire's quantum is now %s: the devices reopen sized for it", why)
        threading.Thread(target=self._requantum, args=(setup,), name="rtvc-pipewire-reopen", daemon=True).start()

    def _requantum(self, setup: int) -> None:
        try:
            self.switch(None, None, None, only_if=setup)  # (reopened meanwhile: sized for the settings then)
        except DeviceError as e:
            log.info("PipeWire's quantum: the devices did not reopen (%s)", e.what)

    # -- PipeWire's default devices, followed where rtvc took them (self.follow) ---------------------------
    def _watch_defaults(self) -> None:
        """(Under the lock, the streams running.) On PipeWire's JACK each device is a client of its own, and rtvc's
        ports stay on the one they were connected to: a headset plugged in, or another microphone chosen in the
        desktop's sound settings, changes PipeWire's default device (WirePlumber's "default" metadata), and a
        role that follows it (self.follow) switches to it, as a program on PipeWire's own streams would move."""
        if not self.follow:
            return
        setup = self._setup
        self._defaults_watch = pipewire.MetadataWatch(
            "default",
            lambda values: self._defaults_changed(setup, values),
            "PipeWire's default devices",
            "a headset plugged in is not followed",
        )

    def _defaults_changed(self, setup: int, values: dict[str, str]) -> None:
        if self._setup != setup or self._closed or self._wedged:
            return
        nodes = {kind: pipewire.node_named(values.get(key, "")) for kind, key in pipewire.DEFAULT_KEYS.items()}
        try:
            wanted = self._defaults_wanted(nodes)
        except DeviceError as e:  # (PortAudio unusable meanwhile: what runs says so)
            log.info("PipeWire's default devices: not followed (%s)", e.what)
            return
        if wanted:
            threading.Thread(target=self._follow, args=(setup, wanted), name="rtvc-follow", daemon=True).start()

    def _defaults_wanted(self, nodes: dict[str, str]) -> dict[str, str]:
        """{role: the device to switch to (its index in the list as read now, or its JACK name where the list does
        not have it yet: the switch reads it again)} for the roles that follow PipeWire's default and are not on it;
        `nodes`: the default node of each kind ("input", "output"). Each default node is gone for once per role
        (self._tried): one that does not open, or that the list names otherwise, is not tried again and again."""
        from rtvc.audio import jack_links, voice_mic
        from rtvc.audio.devices import list_devices

        props = voice_mic.nodes() if self.follow else []
        jack_names = {p.get("node.name"): voice_mic.jack_name(p) for p in props}
        listed = [d for d in list_devices() if "JACK" in d.host_api] if self.follow else []
        wanted = {}
        for role in sorted(self.follow):
            kind = "input" if role == "input" else "output"
            node, current = nodes.get(kind, ""), getattr(self.choice, role)
            if node == voice_mic.NODE and current is not None:
                # rtvc's own made the default microphone (its input would be its output, a loop): the microphone in
                # use stays while PipeWire has it; once it is gone (a headset unplugged, and WirePlumber's default
                # fell back to "rtvc voice", which it remembers as chosen once), rtvc takes the microphone of
                # highest priority, as at start (rtvc.audio.devices._pipewire_default): it stayed on the gone one,
                # and the call heard silence for good (JACK not answering: it stays, as before)
                clients = jack_links.clients()
                there = clients is None or current.name in clients
                node = "" if there else next((n for _name, n in voice_mic.microphones(props)), "")
            # (none; the microphone in use stays, above; one gone for already)
            name = jack_names.get(node, "")  # ('' for a node PipeWire does not list (yet): looked at next time)
            if not name or current is None or self._tried.get(role) == node:
                continue
            self._tried[role] = node
            usable = [d for d in listed if d.channels(kind) > 0]
            # (PipeWire's JACK may add to a name: a unique one holding it is that device, as at start; not where JACK
            # has a client of that very name, one the list read before does not have yet: "USB Headset" made the
            # default speakers was taken for the "USB Headset Mic" listed, and the voice played into a microphone)
            found = [d for d in usable if d.name == name]
            if not found and name not in (jack_links.clients() or []):
                found = [d for d in usable if name in d.name]
            if name == current.name or (len(found) == 1 and found[0].index == current.index):
                continue
            wanted[role] = str(found[0].index) if len(found) == 1 else name
        return wanted

    def _follow_after_loss(self, setup: int) -> None:
        """A program rtvc is connected to closed (a headset unplugged) while some role follows PipeWire's default:
        where the default did not change with it ("rtvc voice" made the default microphone before: WirePlumber keeps
        it, and no change comes), the followed microphone's loss is the only sign; the roles follow the defaults as
        they are now (_defaults_wanted: the microphone of highest priority where the default is rtvc's own). rtvc
        stayed on the gone microphone, the call silent for good. (A default that did change: its event does it, and
        _defaults_wanted goes for each default once.)"""
        if self._setup != setup or self._closed or self._wedged:
            return
        wanted = self._defaults_now()
        if wanted:
            self._follow(setup, wanted, "a device rtvc followed is gone")  # (the default may have changed too)

    def _follow(self, setup: int, wanted: dict[str, str], why: str = DEFAULTS_CHANGED) -> None:
        hearing = self.engine.monitor_enabled
        try:
            roles = (wanted.get(role) for role in ("input", "output", "monitor"))
            got = self.switch(*roles, only_if=setup, follow=True)
        except DeviceError as e:
            if self._closed:
                return
            kept = "no device runs now" if isinstance(e, AudioLost) else "the devices in use stay"
            them = "them" if why == DEFAULTS_CHANGED else "PipeWire's default devices"
            error = f"{why}, and rtvc did not follow {them} ({e.what}): {kept}"
            log.info("%s", error)
            if self.on_followed is not None:
                self.on_followed(error, self.engine.monitor_enabled != hearing)
            return
        if got is None:  # (other devices meanwhile: a user's switch, which the user's choice stands for)
            return
        now = {"input": self.choice.input, "output": self.choice.output, "monitor": self.choice.monitor}
        said = ", ".join(f"{describe_follow({role})} '{now[role].name if now[role] else 'none'}'" for role in wanted)
        them = "them" if why == DEFAULTS_CHANGED else "PipeWire's default devices"
        log.info("%s: rtvc follows %s (%s)", why, them, said)
        if self.on_followed is not None:
            self.on_followed("", self.engine.monitor_enabled != hearing)

    def _unwatch(self, keep: bool = False) -> None:
        """`keep`: what is waited for stays, for the next watch (a reopen: _relink hands it on)."""
        if self._quantum_watch is not None:
            self._quantum_watch.stop()
            self._quantum_watch = None
        if self._defaults_watch is not None:
            self._defaults_watch.stop()
            self._defaults_watch = None
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        if not keep:
            self._waiting = []

    def _watched(self, streams: DeviceStreams, what: dict[str, Any], watch: list[Any]) -> None:
        with self._lock:  # (a switch meanwhile: these streams, or this watch, and what was seen of them, are gone)
            if self.streams is not streams or self._watch is None or self._watch not in watch:
                return
            if "latency" in what:
                got = what["latency"]
                streams.apply_jack((got["inputs"], got["outputs"], int(got["period"])), watched=True)
                return
            lost, back, dropped = what.get("lost", []), what.get("restored", []), what.get("dropped", [])
            done = back + dropped
            self._waiting = [w for w in self._waiting if w not in done] + [w for w in lost if w not in self._waiting]
            waiting = [w[1:] for w in self._waiting]
            setup = self._setup
            followed = {d.name for r in self.follow if (d := getattr(self.choice, r)) is not None}
        if any(_client(q) in followed for _d, _p, q in lost):  # (a followed device's program gone; not OBS closing)
            args = (setup,)
            threading.Thread(target=self._follow_after_loss, args=args, name="rtvc-follow", daemon=True).start()
        if not (lost or back or dropped) or self.on_routing is None:
            return
        error = ""
        if lost:
            programs = sorted({q.split(":", 1)[0] for _d, _p, q in lost})
            error = "JACK: " + "; ".join(f"{p} lost its connection to {q}" for _d, p, q in lost)
            error += f" (gone from {', '.join(programs)}); rtvc connects {'it' if len(lost) == 1 else 'them'} again"
            error += " when it is back" if len(lost) == 1 else " when they are back"
        pairs = {"lost": lost, "restored": back, "dropped": dropped}
        routing = {k: [w[1:] for w in v] for k, v in pairs.items()}
        self.on_routing({**routing, "waiting": waiting, "error": error})  # (serve logs the event)


def devices_gone(choice: DeviceChoice | None, lost: list[list[str]]) -> str:
    """Why nothing is heard while the streams run on: the JACK program that is the input, output or hear-myself
    device chosen (a USB headset through alsa_in, any device under PipeWire's JACK) closed, its connections waited
    for. It was said once, as an event (the dock's message for 12 s), and status said running with nothing wrong."""
    if choice is None:
        return ""
    roles = [("input", "inputs", choice.input.name), ("output", "outputs", choice.output.name)]
    if choice.monitor is not None and choice.monitor.name != choice.output.name:
        roles.append(("hear-myself", "outputs", choice.monitor.name))
    peers = {(d, _client(q)) for d, _p, q in lost}
    gone = [(role, name) for role, d, name in roles if (d, name) in peers]
    if not gone:
        return ""
    hears = {
        "input": "the voice hears no microphone",
        "output": "no one hears the voice",
        "hear-myself": "you do not hear yourself",
    }
    what = " and ".join(f"the {role} device '{name}'" for role, name in gone)
    one = len(gone) == 1
    return (
        f"{what} {'is' if one else 'are'} gone ({'its JACK program' if one else 'their JACK programs'} closed): "
        f"{' and '.join(hears[role] for role, _n in gone)} until {'it is' if one else 'they are'} back (rtvc "
        f"connects {'it' if one else 'them'} again then) or {'another is' if one else 'others are'} chosen"
        f"{'' if one else ' for each'} (`d` in the TUI)"
    )


def _client(port: str) -> str:
    return port.split(":", 1)[0]  # (JACK splits a port's name at its first colon)


def _links_after(
    links: Any, waited: list[list[str]], old: DeviceChoice, before: dict[str, Device | None], after: DeviceChoice
) -> tuple[dict[str, list[list[str] | None]], dict[str, list[list[str]]], dict[str, list[list[str]]]]:
    """What rtvc's new ports (`after`'s streams) are to be connected to after a reopen, from `links` (a snapshot of
    the old ports, `old`'s streams on the `before` devices) and the connections `waited` for on them (their program
    closed): ({direction: [[peer, ...] or None per new port]} to restore, for the roles whose device and channels
    are the same (None: a port of another role, left as PortAudio connected it); {direction: [[peer, ...] per new
    port]} to add, for the others: the connections to other programs than the old and the new device (OBS fed by
    rtvc's output), the n-th port's for the n-th; and the connections expected now, for the next watch (those
    waited for left out: they are gone). The ports of each role are found by their place: the output's first, the
    monitor's after them, among those on JACK; a waited connection's port by its name in the snapshot (PortAudio
    numbers the ports anew at a reopen)."""
    _name, peers, ports = links
    now = {"input": after.input, "output": after.output, "monitor": after.monitor}

    def places(c: DeviceChoice, devices: dict[str, Device | None]) -> dict[str, tuple[int, int]]:
        jack = {role: d is not None and "JACK" in d.host_api for role, d in devices.items()}
        at = {"input": (0, c.input_channel), "output": (0, c.output_channels)}
        at["monitor"] = (c.output_channels if jack["output"] else 0, c.monitor_channels)
        return {role: at[role] for role in at if jack[role]}

    was_at, now_at = places(old, before), places(after, now)
    restore: dict[str, list[list[str] | None]] = {}
    add: dict[str, list[list[str]]] = {}
    expected: dict[str, list[list[str]]] = {}
    for role, d in (("input", "inputs"), ("output", "outputs"), ("monitor", "outputs")):
        if role not in was_at or role not in now_at:
            continue
        (first, count), (new_first, new_count) = was_at[role], now_at[role]
        was, device = before[role], now[role]
        assert was is not None and device is not None
        had = [list(qs) for qs in peers.get(d, [])[first : first + count]]
        had += [[] for _ in range(count - len(had))]
        lost: list[list[str]] = [[] for _ in range(count)]
        names = ports.get(d, [])[first : first + count]
        for wd, port, peer in waited:
            if wd == d and port in names:
                lost[names.index(port)].append(peer)
        size = new_first + new_count
        table = expected.setdefault(d, [])
        table += [[] for _ in range(size - len(table))]
        if (was.name, was.host_api) == (device.name, device.host_api) and count == new_count:
            kept = restore.setdefault(d, [])
            kept += [None] * (size - len(kept))
            for k in range(count):
                kept[new_first + k] = sorted(set(had[k] + lost[k]))
                table[new_first + k] += had[k]
            continue
        theirs = {was.name, device.name}
        more = add.setdefault(d, [])
        more += [[] for _ in range(size - len(more))]
        for k in range(min(count, new_count)):
            others = [q for q in had[k] if _client(q) not in theirs]
            more[new_first + k] += sorted(set(others + [q for q in lost[k] if _client(q) not in theirs]))
            table[new_first + k] += others
    return restore, {d: ps for d, ps in add.items() if any(ps)}, expected


def _given_indices(cfg: AudioConfig, given: dict[str, str | None]) -> dict[str, Device]:
    """The devices given by index, as the list read before names them (a client picked them from it)."""
    found = {}
    for role, key, kind in ROLES:
        spec = getattr(cfg, key)
        if given[role] is not None and isinstance(spec, str) and spec.strip().isdigit():
            try:
                found[role] = find_device(spec, kind, cfg.host_api)
            except DeviceError:
                pass  # (not in the list as it was: it is looked for in the new one)
    return found
